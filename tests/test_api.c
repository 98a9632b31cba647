/*
 * Unit tests of the public API outside the conformance suite: misuse
 * (NULL flow, ops after close, a second read, bad modes), the blocking
 * API and its -EDEADLK guard, deadlines, and deferral of callbacks.
 */
#include <stdlib.h>

#include "harness.h"
#include "rill.h"

struct env {
	uv_loop_t loop;
	struct rill_flow *a, *b;
};

static void env_open(struct env *e, size_t cap)
{
	TH_OK(uv_loop_init(&e->loop));
	TH_OK(rill_pair(&e->loop, cap, &e->a, &e->b));
}

static void env_close(struct env *e)
{
	rill_close(e->a);
	rill_close(e->b);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&e->loop));
}

static void never_read_cb(struct rill_flow *f, int status, struct rill_buf *buf,
                          void *ud)
{
	(void)f;
	(void)buf;
	(void)ud;
	TH_FAIL("read callback ran: %s", th_errname(status));
}

static void never_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	(void)ud;
	TH_FAIL("write callback ran: %s", th_errname(status));
}

TEST(null_flow_everywhere)
{
	struct rill_buf *b = rill_buf_copy("x", 1);
	TH_EQ_ERR(rill_read(NULL, never_read_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_write(NULL, b, never_write_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_writev(NULL, &b, 1, never_write_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_write_copy(NULL, "x", 1, never_write_cb, NULL),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_shutdown(NULL, RILL_SHUT_RDWR, never_write_cb, NULL),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_set_read_timeout(NULL, 5), RILL_EINVAL);
	TH_EQ_ERR(rill_set_write_timeout(NULL, 5), RILL_EINVAL);
	TH_TRUE(rill_flow_loop(NULL) == NULL);
	TH_EQ_STR(rill_flow_kind(NULL), "(null)");
	TH_TRUE(rill_flow_errmsg(NULL) == NULL);
	TH_TRUE(rill_flow_data(NULL) == NULL);
	rill_flow_set_data(NULL, b);
	uint64_t n = 7;
	rill_flow_counters(NULL, &n, NULL, NULL, NULL);
	TH_EQ_U64(n, 0);
	struct rill_buf *out = b;
	TH_EQ_ERR(rill_read_sync(NULL, &out), RILL_EINVAL);
	TH_TRUE(out == NULL);
	TH_EQ_ERR(rill_write_sync(NULL, "x", 1), RILL_EINVAL);
	TH_EQ_ERR(rill_shutdown_sync(NULL, RILL_SHUT_WR), RILL_EINVAL);
	TH_EQ_ERR(rill_read_all_sync(NULL, 10, &out), RILL_EINVAL);
	TH_TRUE(out == NULL);
	rill_close(NULL);
	rill_buf_release(b);
}

TEST(bad_constructor_arguments)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *a = NULL, *b = NULL;
	TH_EQ_ERR(rill_pair(NULL, 0, &a, &b), RILL_EINVAL);
	TH_EQ_ERR(rill_pair(&loop, 0, NULL, &b), RILL_EINVAL);
	TH_EQ_ERR(rill_pair(&loop, 0, &a, NULL), RILL_EINVAL);
	TH_TRUE(a == NULL && b == NULL);
	struct rill_fn_flow_ops ops = {0};
	TH_EQ_ERR(rill_flow_from_functions(NULL, &ops, NULL, &a), RILL_EINVAL);
	TH_EQ_ERR(rill_flow_from_functions(&loop, NULL, NULL, &a), RILL_EINVAL);
	TH_EQ_ERR(rill_flow_from_functions(&loop, &ops, NULL, NULL),
	          RILL_EINVAL);
	char out[4];
	TH_EQ_ERR(rill_flow_from_strings(&loop, "x", 1, out, 4, NULL, &a),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_flow_from_strings(&loop, NULL, 3, NULL, 0, NULL, &a),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_replace_allocator(NULL, realloc, free), RILL_EINVAL);
	TH_EQ_ERR(rill_replace_allocator(malloc, NULL, free), RILL_EINVAL);
	TH_EQ_ERR(rill_replace_allocator(malloc, realloc, NULL), RILL_EINVAL);
	TH_OK(uv_loop_close(&loop));
}

TEST(shutdown_bad_mode)
{
	struct env e;
	env_open(&e, 0);
	TH_EQ_ERR(rill_shutdown(e.a, 0, never_write_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_shutdown(e.a, 4, never_write_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_shutdown(e.a, -3, never_write_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_shutdown(e.a, 1 << 20, never_write_cb, NULL),
	          RILL_EINVAL);
	/* still fully usable */
	TH_OK(rill_write_sync(e.a, "ok", 2));
	struct rill_buf *b;
	TH_OK(rill_read_sync(e.b, &b));
	TH_EQ_MEM(b->data, "ok", 2);
	rill_buf_release(b);
	env_close(&e);
}

TEST(ops_after_close_fail_closed)
{
	struct env e;
	env_open(&e, 0);
	rill_close(e.a);
	TH_EQ_ERR(rill_read(e.a, never_read_cb, NULL), RILL_ECLOSED);
	TH_EQ_ERR(rill_write_copy(e.a, "x", 1, never_write_cb, NULL),
	          RILL_ECLOSED);
	TH_EQ_ERR(rill_shutdown(e.a, RILL_SHUT_WR, never_write_cb, NULL),
	          RILL_ECLOSED);
	TH_EQ_ERR(rill_set_read_timeout(e.a, 1), RILL_ECLOSED);
	rill_close(e.a);
	e.a = NULL;
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(e.b, &b), RILL_EOF);
	TH_EQ_ERR(rill_write_sync(e.b, "x", 1), RILL_ECLOSED);
	env_close(&e);
}

TEST(read_while_read_pending)
{
	struct env e;
	env_open(&e, 0);
	struct rill_buf *got = NULL;
	TH_OK(rill_write_copy(e.a, "abc", 3, NULL, NULL));
	/* The sync read leaves no read pending once it returns. */
	TH_OK(rill_read_sync(e.b, &got));
	rill_buf_release(got);
	TH_OK(rill_read(e.b, never_read_cb, NULL));
	TH_EQ_ERR(rill_read(e.b, never_read_cb, NULL), RILL_EALREADY);
	TH_EQ_ERR(rill_read_sync(e.b, &got), RILL_EALREADY);
	TH_TRUE(got == NULL);
	rill_close(e.b); /* the pending read is dropped without callback */
	e.b = NULL;
	env_close(&e);
}

/* ---------------------------------------------------------------------- */
/* The blocking API */

TEST(blocking_api_round_trip)
{
	struct env e;
	env_open(&e, 1000); /* tiny: the sync write must wait for room */
	static char big[100000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7);
	/* A writer on the same loop: an async write, drained by a sync
	 * read-all (the loop runs both). */
	TH_OK(rill_write_copy(e.a, big, sizeof big, NULL, NULL));
	TH_OK(rill_shutdown(e.a, RILL_SHUT_WR, NULL, NULL));
	struct rill_buf *all;
	TH_OK(rill_read_all_sync(e.b, sizeof big, &all));
	TH_EQ_INT(all->len, sizeof big);
	TH_EQ_MEM(all->data, big, sizeof big);
	rill_buf_release(all);
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(e.b, &b), RILL_EOF);
	TH_TRUE(b == NULL);
	/* Other direction, sync write, then a shutdown. */
	TH_OK(rill_write_sync(e.b, "pong", 4));
	TH_OK(rill_shutdown_sync(e.b, RILL_SHUT_WR));
	TH_OK(rill_read_all_sync(e.a, 100, &all));
	TH_EQ_INT(all->len, 4);
	TH_EQ_MEM(all->data, "pong", 4);
	rill_buf_release(all);
	TH_EQ_ERR(rill_write_sync(e.b, "x", 1), RILL_ECLOSED);
	env_close(&e);
}

TEST(read_all_sync_limit)
{
	struct env e;
	env_open(&e, 0);
	TH_OK(rill_write_sync(e.a, "0123456789", 10));
	TH_OK(rill_shutdown_sync(e.a, RILL_SHUT_WR));
	struct rill_buf *all = (struct rill_buf *)&e;
	TH_EQ_ERR(rill_read_all_sync(e.b, 9, &all), -EMSGSIZE);
	/* The first max bytes are kept beside the error. */
	TH_TRUE(all != NULL);
	TH_EQ_INT(all->len, 9);
	TH_TRUE(memcmp(all->data, "012345678", 9) == 0);
	rill_buf_release(all);
	env_close(&e);
}

/* An error after some bytes: the bytes are returned beside it (issue 29:
 * a TLS peer closing without close_notify lost what it had sent). */
TEST(read_all_sync_keeps_bytes_on_error)
{
	struct env e;
	env_open(&e, 0);
	TH_OK(rill_write_sync(e.a, "partial", 7));
	TH_OK(rill_set_read_timeout(e.b, 50));
	struct rill_buf *all = NULL;
	TH_EQ_ERR(rill_read_all_sync(e.b, 100, &all), RILL_ETIMEDOUT);
	TH_TRUE(all != NULL);
	if (all != NULL) {
		TH_EQ_INT(all->len, 7);
		TH_TRUE(memcmp(all->data, "partial", 7) == 0);
	}
	rill_buf_release(all);
	env_close(&e);
}

TEST(read_all_sync_empty_stream)
{
	struct env e;
	env_open(&e, 0);
	TH_OK(rill_shutdown_sync(e.a, RILL_SHUT_WR));
	struct rill_buf *all;
	TH_OK(rill_read_all_sync(e.b, 100, &all));
	TH_EQ_INT(all->len, 0);
	rill_buf_release(all);
	env_close(&e);
}

/* Nothing can ever complete the read: the wait gives up with -EDEADLK
 * instead of hanging. */
TEST(sync_read_with_nothing_to_wait_for)
{
	struct env e;
	env_open(&e, 0);
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(e.b, &b), -EDEADLK);
	TH_TRUE(b == NULL);
	env_close(&e);
}

struct deadlk {
	int rd, wr, sh, all;
	bool done;
};

static void deadlk_read_cb(struct rill_flow *f, int status,
                           struct rill_buf *buf, void *ud)
{
	struct deadlk *d = ud;
	(void)status;
	rill_buf_release(buf);
	struct rill_buf *b = (struct rill_buf *)d;
	d->rd = rill_read_sync(f, &b);
	if (b != NULL)
		TH_FAIL("rill_read_sync stored a buffer on failure");
	d->wr = rill_write_sync(f, "x", 1);
	d->sh = rill_shutdown_sync(f, RILL_SHUT_WR);
	d->all = rill_read_all_sync(f, 10, &b);
	d->done = true;
}

static void deadlk_write_cb(struct rill_flow *f, int status, void *ud)
{
	struct deadlk *d = ud;
	(void)status;
	d->wr = rill_write_sync(f, "y", 1);
	d->done = true;
}

/* The blocking calls refuse to run inside a callback on their loop. */
TEST(sync_api_from_callback_is_edeadlk)
{
	struct env e;
	env_open(&e, 0);
	struct deadlk d = {0};
	TH_OK(rill_write_copy(e.a, "hi", 2, NULL, NULL));
	TH_OK(rill_read(e.b, deadlk_read_cb, &d));
	while (!d.done)
		uv_run(&e.loop, UV_RUN_ONCE);
	TH_EQ_ERR(d.rd, -EDEADLK);
	TH_EQ_ERR(d.wr, -EDEADLK);
	TH_EQ_ERR(d.sh, -EDEADLK);
	TH_EQ_ERR(d.all, -EDEADLK);
	struct deadlk w = {0};
	TH_OK(rill_write_copy(e.a, "z", 1, deadlk_write_cb, &w));
	while (!w.done)
		uv_run(&e.loop, UV_RUN_ONCE);
	TH_EQ_ERR(w.wr, -EDEADLK);
	/* Outside callbacks they work again. */
	TH_OK(rill_write_sync(e.a, "ok", 2));
	env_close(&e);
}

/* ---------------------------------------------------------------------- */
/* Deadlines */

struct tmo {
	bool done;
	int status;
	uint64_t at;
	uv_loop_t *loop;
};

static void tmo_read_cb(struct rill_flow *f, int status, struct rill_buf *buf,
                        void *ud)
{
	struct tmo *t = ud;
	(void)f;
	rill_buf_release(buf);
	t->done = true;
	t->status = status;
	uv_update_time(t->loop);
	t->at = uv_now(t->loop);
}

static void tmo_write_cb(struct rill_flow *f, int status, void *ud)
{
	tmo_read_cb(f, status, NULL, ud);
}

TEST(read_deadline_expires_and_sticks)
{
	struct env e;
	env_open(&e, 0);
	TH_OK(rill_set_read_timeout(e.b, 50));
	struct tmo t = {.loop = &e.loop};
	uint64_t t0 = uv_now(&e.loop);
	TH_OK(rill_read(e.b, tmo_read_cb, &t));
	while (!t.done)
		uv_run(&e.loop, UV_RUN_ONCE);
	TH_EQ_ERR(t.status, RILL_ETIMEDOUT);
	TH_CMP_INT(t.at - t0, >=, 45);
	TH_CONTAINS(rill_flow_errmsg(e.b), "deadline");
	struct rill_buf *b;
	TH_OK(rill_write_sync(e.a, "late", 4));
	TH_EQ_ERR(rill_read_sync(e.b, &b), RILL_ETIMEDOUT);
	/* Writes are unaffected by the read side's error. */
	TH_OK(rill_write_sync(e.b, "w", 1));
	env_close(&e);
}

TEST(read_deadline_not_hit_when_data_comes)
{
	struct env e;
	env_open(&e, 0);
	TH_OK(rill_set_read_timeout(e.b, 200));
	for (int i = 0; i < 5; i++) {
		TH_OK(rill_write_sync(e.a, "x", 1));
		struct rill_buf *b;
		TH_OK(rill_read_sync(e.b, &b));
		rill_buf_release(b);
	}
	/* 0 disables: with nothing to wait for, the sync read gives up
	 * (no timer keeps the loop alive). */
	TH_OK(rill_set_read_timeout(e.b, 0));
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(e.b, &b), -EDEADLK);
	env_close(&e);
}

TEST(write_deadline_expires_and_sticks)
{
	struct env e;
	env_open(&e, 1000);
	TH_OK(rill_set_write_timeout(e.a, 50));
	struct tmo t = {.loop = &e.loop};
	static char big[10000];
	TH_OK(rill_write_copy(e.a, big, sizeof big, tmo_write_cb, &t));
	while (!t.done)
		uv_run(&e.loop, UV_RUN_ONCE);
	TH_EQ_ERR(t.status, RILL_ETIMEDOUT);
	TH_EQ_ERR(rill_write_copy(e.a, "x", 1, never_write_cb, NULL),
	          RILL_ETIMEDOUT);
	TH_EQ_ERR(rill_write_sync(e.a, "x", 1), RILL_ETIMEDOUT);
	env_close(&e);
}

/* A write timeout while writes are queued behind the stuck one fails them
 * all, in order, and a shutdown queued behind them too. */
struct order3 {
	int st[3];
	unsigned n;
};

static void order3_cb(struct rill_flow *f, int status, void *ud)
{
	struct order3 *o = ud;
	(void)f;
	o->st[o->n++] = status;
}

TEST(write_deadline_fails_queue_in_order)
{
	struct env e;
	env_open(&e, 1000);
	TH_OK(rill_set_write_timeout(e.a, 30));
	static char big[5000];
	struct order3 o = {0};
	TH_OK(rill_write_copy(e.a, big, sizeof big, order3_cb, &o));
	TH_OK(rill_write_copy(e.a, big, 10, order3_cb, &o));
	TH_OK(rill_shutdown(e.a, RILL_SHUT_WR, order3_cb, &o));
	while (o.n < 3)
		uv_run(&e.loop, UV_RUN_ONCE);
	TH_EQ_ERR(o.st[0], RILL_ETIMEDOUT);
	TH_EQ_ERR(o.st[1], RILL_ETIMEDOUT);
	TH_EQ_ERR(o.st[2], RILL_ETIMEDOUT);
	env_close(&e);
}

/* ---------------------------------------------------------------------- */
/* Deferral: a callback never runs inside the call that started it, even
 * when the result is known synchronously (function flows complete inside
 * the implementation call). */

struct defer {
	bool in_call;
	unsigned inside, calls;
};

static void defer_rcb(struct rill_flow *f, int status, struct rill_buf *b,
                      void *ud)
{
	struct defer *d = ud;
	(void)f;
	(void)status;
	rill_buf_release(b);
	if (d->in_call)
		d->inside++;
	d->calls++;
}

static void defer_wcb(struct rill_flow *f, int status, void *ud)
{
	defer_rcb(f, status, NULL, ud);
}

TEST(callbacks_deferred_on_synchronous_flows)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	char out[16];
	size_t out_len;
	struct rill_flow *f;
	TH_OK(rill_flow_from_strings(&loop, "abc", 3, out, sizeof out, &out_len,
	                             &f));
	struct defer d = {0};
	d.in_call = true;
	TH_OK(rill_read(f, defer_rcb, &d));
	TH_OK(rill_write_copy(f, "xyz", 3, defer_wcb, &d));
	TH_OK(rill_shutdown(f, RILL_SHUT_WR, defer_wcb, &d));
	d.in_call = false;
	TH_EQ_INT(d.calls, 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	TH_EQ_INT(d.calls, 3);
	TH_EQ_INT(d.inside, 0);
	TH_EQ_INT(out_len, 3);
	TH_EQ_MEM(out, "xyz", 3);
	rill_close(f);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&loop));
}

/* A callback that starts the next operation: that one's callback runs
 * after this one returned, never nested inside it (no recursion). */
struct chain {
	unsigned depth, max_depth, calls;
	bool in_cb;
};

static void chain_cb(struct rill_flow *f, int status, struct rill_buf *b,
                     void *ud)
{
	struct chain *c = ud;
	rill_buf_release(b);
	if (c->in_cb)
		c->depth++;
	if (c->depth > c->max_depth)
		c->max_depth = c->depth;
	c->calls++;
	if (status == 0 && c->calls < 1000) {
		c->in_cb = true;
		TH_OK(rill_read(f, chain_cb, c));
		c->in_cb = false;
	}
}

TEST(read_from_callback_is_deferred)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	static char in[4000];
	struct rill_flow *f;
	TH_OK(rill_flow_from_strings(&loop, in, sizeof in, NULL, 0, NULL, &f));
	struct chain c = {0};
	TH_OK(rill_read(f, chain_cb, &c));
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_TRUE(c.calls >= 2);
	TH_EQ_INT(c.max_depth, 0);
	rill_close(f);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&loop));
}

TEST(user_data_slot)
{
	struct env e;
	env_open(&e, 0);
	int tag;
	TH_TRUE(rill_flow_data(e.a) == NULL);
	rill_flow_set_data(e.a, &tag);
	TH_TRUE(rill_flow_data(e.a) == &tag);
	TH_TRUE(rill_flow_loop(e.a) == &e.loop);
	TH_EQ_STR(rill_flow_kind(e.a), "pair");
	env_close(&e);
}

static void close_timer_cb(uv_timer_t *t)
{
	rill_close(t->data);
	uv_close((uv_handle_t *)t, NULL);
}

/* The flow is closed (from another callback) while a blocking read waits
 * on it: the wait ends with RILL_ECLOSED, nothing leaks. */
TEST(sync_wait_ends_when_flow_closed)
{
	struct env e;
	env_open(&e, 0);
	uv_timer_t t;
	uv_timer_init(&e.loop, &t);
	t.data = e.b;
	uv_timer_start(&t, close_timer_cb, 20, 0);
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(e.b, &b), RILL_ECLOSED);
	TH_TRUE(b == NULL);
	e.b = NULL;
	env_close(&e);
}

/* A blocking read that gave up (-EDEADLK) leaves its read pending; the
 * flow's close releases it (checked by LSan/valgrind). */
TEST(sync_read_given_up_then_closed)
{
	struct env e;
	env_open(&e, 0);
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(e.b, &b), -EDEADLK);
	TH_EQ_ERR(rill_read(e.b, never_read_cb, NULL), RILL_EALREADY);
	env_close(&e);
}
