/*
 * The socket flow's read chunk (src/core/chunk.c,
 * src/transport/socket/socket.c): a read that has to wait gives the 256 KiB
 * chunk back, so an idle flow holds none; a chunk still sliced by the reader is
 * parked and comes back on the next read (held small slices share one chunk);
 * busy flows recycle chunks through the per-thread cache instead of allocating
 * one per wait; and reads stay correct throughout. Observed through a counting
 * allocator (rill_replace_allocator).
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"
#include "core/core.h"
#include "transport/socket/socket.h"

#define HDR 16u
static size_t live_bytes;
static unsigned long big_allocs; /* allocations of a chunk's size or more */

static void *t_malloc(size_t n)
{
	size_t *p = malloc(n + HDR);
	if (p == NULL)
		return NULL;
	p[0] = n;
	live_bytes += n;
	if (n >= RILL__CHUNK_SIZE)
		big_allocs++;
	return (char *)p + HDR;
}

static void t_free(void *q)
{
	if (q == NULL)
		return;
	size_t *p = (size_t *)(void *)((char *)q - HDR);
	live_bytes -= p[0];
	free(p);
}

static void *t_realloc(void *q, size_t n)
{
	if (q == NULL)
		return t_malloc(n);
	size_t *p = (size_t *)(void *)((char *)q - HDR);
	size_t old = p[0];
	size_t *np = realloc(p, n + HDR);
	if (np == NULL)
		return NULL;
	live_bytes = live_bytes - old + n;
	np[0] = n;
	return (char *)np + HDR;
}

struct fixture {
	uv_loop_t loop;
	struct rill_flow *a, *b; /* a writes, b reads */
	size_t live0;            /* before the flows */
};

static void setup(struct fixture *fx)
{
	TH_OK(rill_replace_allocator(t_malloc, t_realloc, t_free));
	fx->live0 = live_bytes;
	TH_OK(uv_loop_init(&fx->loop));
	int sv[2];
	TH_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	TH_OK(rill__socket_flow_new(&fx->loop, sv[0], &rill__unix_family,
	                            &fx->a));
	TH_OK(rill__socket_flow_new(&fx->loop, sv[1], &rill__unix_family,
	                            &fx->b));
}

static void teardown(struct fixture *fx)
{
	rill_close(fx->a);
	rill_close(fx->b);
	while (uv_run(&fx->loop, UV_RUN_NOWAIT) != 0)
		;
	TH_OK(uv_loop_close(&fx->loop));
	/* The last flow emptied the cache: nothing rill allocated is left. */
	TH_EQ_INT(rill__chunk_cached(), 0);
	TH_EQ_INT(live_bytes, fx->live0);
}

struct rd {
	bool done;
	int status;
	struct rill_buf *buf;
};

static void rd_cb(struct rill_flow *f, int status, struct rill_buf *b, void *ud)
{
	(void)f;
	struct rd *r = ud;
	r->done = true;
	r->status = status;
	r->buf = b;
}

static void rd_wait(struct fixture *fx, struct rd *r)
{
	while (!r->done)
		uv_run(&fx->loop, UV_RUN_ONCE);
	TH_OK(r->status);
}

/* Bytes rill holds beyond what the cache holds (the flows' own). */
static size_t held(const struct fixture *fx)
{
	return live_bytes - fx->live0 -
	       rill__chunk_cached() * (size_t)RILL__CHUNK_ALLOC;
}

TEST(idle_read_holds_no_chunk)
{
	struct fixture fx;
	setup(&fx);
	size_t flows = live_bytes - fx.live0;
	/* Nothing to read: the read waits, and the chunk its read(2) needed
	 * went back to the cache. */
	struct rd r = {0};
	TH_OK(rill_read(fx.b, rd_cb, &r));
	uv_run(&fx.loop, UV_RUN_NOWAIT);
	TH_TRUE(!r.done);
	TH_EQ_INT(rill__chunk_cached(), 1);
	TH_EQ_INT(held(&fx), flows);

	TH_OK(rill_write_sync(fx.a, "hello", 5));
	rd_wait(&fx, &r);
	TH_EQ_INT(r.buf->len, 5);
	TH_EQ_MEM(r.buf->data, "hello", 5);
	/* The reader holds a slice of the chunk (from the cache). */
	TH_EQ_INT(rill__chunk_cached(), 0);
	TH_CMP_INT(held(&fx), >=, flows + RILL__CHUNK_SIZE);
	rill_buf_release(r.buf);

	/* Idle again: the next read waits without a chunk. */
	r = (struct rd){0};
	TH_OK(rill_read(fx.b, rd_cb, &r));
	uv_run(&fx.loop, UV_RUN_NOWAIT);
	TH_TRUE(!r.done);
	TH_EQ_INT(held(&fx), flows);
	rill__chunk_cache_empty();
	TH_EQ_INT(live_bytes - fx.live0, flows);

	/* And it still reads correctly (a new chunk from the allocator). */
	TH_OK(rill_write_sync(fx.a, "world!", 6));
	rd_wait(&fx, &r);
	TH_EQ_INT(r.buf->len, 6);
	TH_EQ_MEM(r.buf->data, "world!", 6);
	rill_buf_release(r.buf);
	teardown(&fx);
}

TEST(held_slice_parks_chunk_until_released)
{
	struct fixture fx;
	setup(&fx);
	size_t flows = live_bytes - fx.live0;
	struct rd r1 = {0}, r2 = {0};
	TH_OK(rill_write_sync(fx.a, "abc", 3));
	TH_OK(rill_read(fx.b, rd_cb, &r1));
	rd_wait(&fx, &r1);
	TH_EQ_MEM(r1.buf->data, "abc", 3);
	/* The next read waits while the reader still holds "abc": the flow
	 * drops its own reference, the slice keeps the chunk alive. */
	TH_OK(rill_read(fx.b, rd_cb, &r2));
	uv_run(&fx.loop, UV_RUN_NOWAIT);
	TH_TRUE(!r2.done);
	TH_EQ_INT(rill__chunk_cached(), 0);
	TH_CMP_INT(held(&fx), >=, flows + RILL__CHUNK_SIZE);
	/* The last slice goes: so does the chunk, though the flow never
	 * heard of it (it is still waiting). */
	rill_buf_release(r1.buf);
	TH_EQ_INT(rill__chunk_cached(), 1);
	TH_EQ_INT(held(&fx), flows);
	/* The waiting read goes on with a chunk from the cache. */
	TH_OK(rill_write_sync(fx.a, "defg", 4));
	rd_wait(&fx, &r2);
	TH_EQ_INT(r2.buf->len, 4);
	TH_EQ_MEM(r2.buf->data, "defg", 4);
	TH_EQ_INT(rill__chunk_cached(), 0);
	rill_buf_release(r2.buf);
	teardown(&fx);
}

#define NHELD 64

TEST(held_small_slices_share_one_chunk)
{
	struct fixture fx;
	setup(&fx);
	rill__chunk_cache_empty();
	unsigned long big0 = big_allocs;
	struct rill_buf *bufs[NHELD];
	for (int i = 0; i < NHELD; i++) {
		/* Each read waits first (the last one drained the socket),
		 * so the chunk is parked between reads. */
		struct rd r = {0};
		TH_OK(rill_read(fx.b, rd_cb, &r));
		uint8_t msg[100];
		memset(msg, 'A' + i % 26, sizeof msg);
		TH_OK(rill_write_sync(fx.a, msg, sizeof msg));
		rd_wait(&fx, &r);
		TH_EQ_INT(r.buf->len, sizeof msg);
		TH_EQ_MEM(r.buf->data, msg, sizeof msg);
		bufs[i] = r.buf;
	}
	/* All 64 slices in one chunk, taken back after every wait. */
	TH_EQ_INT(big_allocs - big0, 1);
	for (int i = 0; i < NHELD; i++) {
		TH_EQ_INT(bufs[i]->data[99], 'A' + i % 26);
		rill_buf_release(bufs[i]);
	}
	teardown(&fx);
}

/* A busy flow whose reads wait after nearly every buffer: one chunk
 * recycled, not one allocated per wait. */
struct xfer {
	struct fixture *fx;
	struct rill_buf *out;
	uint64_t total, sent, got;
	uint32_t sum_sent, sum_got;
	int err;
	bool writing, reading;
};

static void xfer_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                         void *ud)
{
	(void)f;
	struct xfer *x = ud;
	x->reading = false;
	if (status != 0) {
		x->err = status;
		return;
	}
	for (size_t i = 0; i < b->len; i++)
		x->sum_got = x->sum_got * 31u + b->data[i];
	x->got += b->len;
	rill_buf_release(b);
}

static void xfer_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct xfer *x = ud;
	x->writing = false;
	if (status != 0)
		x->err = status;
}

#define XFER_BYTES (16u << 20)
#define XFER_WRITE (64u * 1024u)

TEST(busy_reads_recycle_chunks)
{
	struct fixture fx;
	setup(&fx);
	rill__chunk_cache_empty();
	unsigned long big0 = big_allocs;
	struct xfer x = {.fx = &fx, .total = XFER_BYTES};
	x.out = rill_buf_new(XFER_WRITE);
	TH_NOT_NULL(x.out);
	unsigned long reads = 0;
	while (x.got < x.total && x.err == 0) {
		if (!x.writing && x.sent < x.total) {
			/* One write at a time: the reader catches up, and
			 * its next read waits. */
			for (size_t i = 0; i < XFER_WRITE; i++)
				x.out->data[i] = (uint8_t)(x.sent + i * 7);
			for (size_t i = 0; i < XFER_WRITE; i++)
				x.sum_sent = x.sum_sent * 31u + x.out->data[i];
			TH_OK(rill_write(fx.a, x.out, xfer_write_cb, &x));
			x.writing = true;
			x.sent += XFER_WRITE;
		}
		if (!x.reading) {
			TH_OK(rill_read(fx.b, xfer_read_cb, &x));
			x.reading = true;
			reads++;
		}
		uv_run(&fx.loop, UV_RUN_ONCE);
	}
	TH_OK(x.err);
	TH_EQ_U64(x.got, x.total);
	TH_EQ_INT(x.sum_got, x.sum_sent);
	th_note("%lu reads, %lu chunk-sized allocations", reads,
	        big_allocs - big0);
	TH_CMP_INT(reads, >=, XFER_BYTES / RILL__CHUNK_SIZE * 2);
	TH_CMP_INT(big_allocs - big0, <=, 2);
	rill_buf_release(x.out);
	/* Between reads the flow keeps its chunk; a read that waits does
	 * not. */
	TH_CMP_INT(held(&fx), >=, RILL__CHUNK_SIZE);
	struct rd r = {0};
	TH_OK(rill_read(fx.b, rd_cb, &r));
	TH_CMP_INT(held(&fx), <, RILL__CHUNK_SIZE);
	teardown(&fx);
}

/* A thread's cache goes with the thread, even while flows on other
 * threads keep the process-wide count of chunk users above zero. */
static void *thread_reads(void *arg)
{
	size_t *cached = arg;
	struct fixture fx;
	TH_OK(uv_loop_init(&fx.loop));
	int sv[2];
	TH_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	TH_OK(
	    rill__socket_flow_new(&fx.loop, sv[0], &rill__unix_family, &fx.a));
	TH_OK(
	    rill__socket_flow_new(&fx.loop, sv[1], &rill__unix_family, &fx.b));
	struct rd r = {0};
	TH_OK(rill_write_sync(fx.a, "x", 1));
	TH_OK(rill_read(fx.b, rd_cb, &r));
	rd_wait(&fx, &r);
	rill_buf_release(r.buf);
	rill_close(fx.a);
	rill_close(fx.b);
	while (uv_run(&fx.loop, UV_RUN_NOWAIT) != 0)
		;
	TH_OK(uv_loop_close(&fx.loop));
	*cached = rill__chunk_cached();
	return NULL;
}

TEST(thread_exit_empties_its_cache)
{
	struct fixture fx;
	setup(&fx); /* these flows stay open meanwhile */
	size_t before = live_bytes;
	size_t cached = 0;
	pthread_t t;
	TH_OK(pthread_create(&t, NULL, thread_reads, &cached));
	TH_OK(pthread_join(t, NULL));
	TH_EQ_INT(cached, 1); /* the thread's flows left a chunk there */
	TH_EQ_INT(live_bytes, before);
	teardown(&fx);
}
