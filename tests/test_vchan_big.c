/* vchan: 1 GiB between two processes, checked by hash (suite 'release':
 * too slow under the sanitizers). */
#include <sys/wait.h>

#include "vchan_util.h"

#define BIG_BYTES (1ull << 30)
#define BIG_BLOCK (1u << 20)

static void big_fill(uint8_t *p, uint64_t block)
{
	uint64_t x = block * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < BIG_BLOCK; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

/* FNV-1a over the bytes: order- and content-sensitive, and independent
 * of how the stream was cut into buffers. */
static uint64_t big_hash(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001B3ull;
	return h;
}

static void big_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	int *inflight = ud;
	(*inflight)--;
	if (status != 0)
		_exit(3);
}

TEST_TIMEOUT(one_gib_between_two_processes, 300)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s;
	TH_OK(rill_vchan_server(&loop, NULL, "big", 1 << 20, 1 << 20, NULL,
	                        NULL, &s));
	int hp[2];
	TH_OK(pipe(hp));
	pid_t pid = fork();
	if (pid == 0) {
		uv_loop_t cl;
		uv_loop_init(&cl);
		struct vt_connect c = {0};
		rill_vchan_client(&cl, NULL, "big", NULL, vt_connect_cb, &c);
		while (!c.done)
			uv_run(&cl, UV_RUN_ONCE);
		if (c.status != 0)
			_exit(2);
		uint64_t h = 0xcbf29ce484222325ull;
		for (uint64_t b = 0; b < BIG_BYTES / BIG_BLOCK; b++) {
			struct rill_buf *buf = rill_buf_new(BIG_BLOCK);
			big_fill(buf->data, b);
			h = big_hash(h, buf->data, BIG_BLOCK);
			/* at most two writes in flight: bounded memory */
			static int inflight;
			int err = rill_write(c.f, buf, big_write_cb, &inflight);
			rill_buf_release(buf);
			if (err != 0)
				_exit(3);
			inflight++;
			while (inflight >= 2)
				uv_run(&cl, UV_RUN_ONCE);
		}
		if (rill_shutdown_sync(c.f, RILL_SHUT_WR) != 0)
			_exit(4);
		if (write(hp[1], &h, sizeof h) != sizeof h)
			_exit(5);
		rill_close(c.f);
		_exit(0);
	}
	close(hp[1]);
	uint64_t h = 0xcbf29ce484222325ull, got = 0;
	struct rill_buf *b;
	int err;
	while ((err = rill_read_sync(s, &b)) == 0) {
		h = big_hash(h, b->data, b->len);
		got += b->len;
		rill_buf_release(b);
	}
	TH_EQ_ERR(err, RILL_EOF);
	TH_EQ_U64(got, BIG_BYTES);
	uint64_t want = 0;
	TH_EQ_INT(read(hp[0], &want, sizeof want), sizeof want);
	TH_EQ_U64(h, want);
	int st;
	waitpid(pid, &st, 0);
	TH_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	rill_close(s);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}
