/*
 * rill bench: shut+unix beside plain unix, measured in the same run.
 *
 * Both move the same bytes over a Unix socket on one loop, the writer
 * keeping four 64 KiB writes in flight, the reader releasing what it
 * reads (the shape of bench.c's pair case). Each kind is measured
 * BS_ROUNDS times, alternating, and the best run of each is reported, so
 * that a burst of load on the machine does not decide the ratio.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define BS_CHUNK  (64u * 1024u)
#define BS_WINDOW 4
#define BS_ROUNDS 4

struct bench_shut_xfer {
	struct rill_flow *w, *r;
	struct rill_buf *chunk;
	uint64_t to_send, sent, received;
	int inflight;
	int err;
	bool eof, shut;
};

static double bench_shut_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_shut_write_more(struct bench_shut_xfer *x);

static void bench_shut_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct bench_shut_xfer *x = ud;
	x->inflight--;
	if (status != 0 && x->err == 0)
		x->err = status;
	bench_shut_write_more(x);
}

static void bench_shut_write_more(struct bench_shut_xfer *x)
{
	while (x->err == 0 && x->inflight < BS_WINDOW && x->sent < x->to_send) {
		uint64_t left = x->to_send - x->sent;
		struct rill_buf *b = left < x->chunk->len
		                         ? rill_buf_slice(x->chunk, 0, left)
		                         : rill_buf_ref(x->chunk);
		int err = b != NULL
		              ? rill_write(x->w, b, bench_shut_write_cb, x)
		              : RILL_ENOMEM;
		x->sent += b != NULL ? b->len : 0;
		rill_buf_release(b);
		if (err != 0) {
			x->err = err;
			return;
		}
		x->inflight++;
	}
	if (x->sent == x->to_send && x->inflight == 0 && !x->shut) {
		x->shut = true;
		rill_shutdown(x->w, RILL_SHUT_WR, NULL, NULL);
	}
}

static void bench_shut_read_cb(struct rill_flow *f, int status,
                               struct rill_buf *b, void *ud)
{
	struct bench_shut_xfer *x = ud;
	if (status != 0) {
		if (status == RILL_EOF)
			x->eof = true;
		else if (x->err == 0)
			x->err = status;
		return;
	}
	x->received += b->len;
	rill_buf_release(b);
	int err = rill_read(f, bench_shut_read_cb, x);
	if (err != 0 && x->err == 0)
		x->err = err;
}

struct bench_shut_accept {
	struct rill_flow *f;
	int err;
};

static void bench_shut_accept_cb(struct rill_listener *l, struct rill_flow *f,
                                 int status, const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct bench_shut_accept *a = ud;
	if (status != 0)
		a->err = status;
	else if (a->f == NULL)
		a->f = f;
	else
		rill_close(f);
}

/* One transfer over a fresh connection to uri; MB/s or a negative error. */
static double bench_shut_run(const char *uri, uint64_t bytes)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct bench_shut_accept acc = {0};
	struct rill_listener *l;
	struct rill_flow *c = NULL;
	double result;
	int err = rill_listen(&loop, uri, NULL, bench_shut_accept_cb, &acc, &l);
	if (err != 0) {
		bench_error("bench: listen %s: %s", uri, rill_last_errmsg());
		uv_loop_close(&loop);
		return err;
	}
	err = rill_connect_sync(&loop, uri, NULL, &c);
	while (err == 0 && acc.f == NULL && acc.err == 0)
		uv_run(&loop, UV_RUN_ONCE);
	rill_listener_close(l);
	if (err != 0 || acc.err != 0) {
		result = err != 0 ? err : acc.err;
	} else {
		struct bench_shut_xfer x = {
		    .w = c, .r = acc.f, .to_send = bytes};
		x.chunk = rill_buf_new(BS_CHUNK);
		if (x.chunk == NULL) {
			result = RILL_ENOMEM;
		} else {
			memset(x.chunk->data, 0xa5, x.chunk->len);
			double t0 = bench_shut_now();
			rill_read(x.r, bench_shut_read_cb, &x);
			bench_shut_write_more(&x);
			while (x.err == 0 && !x.eof)
				if (uv_run(&loop, UV_RUN_ONCE) == 0)
					break;
			double dt = bench_shut_now() - t0;
			rill_buf_release(x.chunk);
			if (x.err != 0)
				result = x.err;
			else if (x.received != bytes)
				result = -EIO;
			else
				result = (double)bytes / dt / 1e6;
		}
	}
	rill_close(c);
	rill_close(acc.f);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return result;
}

int bench_shut_unix(uint64_t bytes, double *shut_mbs, double *unix_mbs)
{
	char dir[] = "/tmp/rill-bench-XXXXXX";
	if (mkdtemp(dir) == NULL)
		return -errno;
	char plain[96], shut[96], path[64];
	snprintf(path, sizeof path, "%s/s", dir);
	snprintf(plain, sizeof plain, "unix:%s", path);
	snprintf(shut, sizeof shut, "shut+unix:%s", path);
	*shut_mbs = *unix_mbs = 0;
	int err = 0;
	for (int round = 0; round < BS_ROUNDS && err == 0; round++) {
		double u = bench_shut_run(plain, bytes);
		double s = u < 0 ? u : bench_shut_run(shut, bytes);
		if (u < 0 || s < 0) {
			err = (int)(u < 0 ? u : s);
			break;
		}
		if (u > *unix_mbs)
			*unix_mbs = u;
		if (s > *shut_mbs)
			*shut_mbs = s;
	}
	unlink(path);
	rmdir(dir);
	return err;
}
