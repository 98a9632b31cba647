/*
 * Knowing when teardowns finished: rill_closing_flows() and
 * rill_when_flows_closed() (rill_close(3)). The slow teardown here is the
 * shut layer's close handshake over an in-memory pair, whose raw other
 * end is a hand-made peer that answers when the test says so.
 */
#include <stdlib.h>

#include "harness.h"
#include "rill.h"

static const uint8_t MSG_CLOSE[4] = {0xAD, 0xDE, 0xAD, 0xDE};

struct waited {
	int calls;
	size_t closing_then; /* rill_closing_flows() inside the callback */
	uv_loop_t *loop;
};

static void on_closed(uv_loop_t *loop, void *ud)
{
	struct waited *w = ud;
	w->calls++;
	w->loop = loop;
	w->closing_then = rill_closing_flows(loop);
}

/* Runs the loop until w was called back; fails if it never is. */
static void run_until_called(uv_loop_t *loop, struct waited *w)
{
	while (w->calls == 0)
		if (uv_run(loop, UV_RUN_ONCE) == 0 && w->calls == 0)
			TH_FAIL("the loop ran out of work before the callback");
}

TEST(counts_closed_flows_until_freed)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	TH_EQ_U64(rill_closing_flows(&loop), 0);
	rill_close(a);
	TH_EQ_U64(rill_closing_flows(&loop), 1);
	rill_close(a); /* a second close counts nothing */
	rill_close(b);
	TH_EQ_U64(rill_closing_flows(&loop), 2);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_EQ_U64(rill_closing_flows(&loop), 0);
	TH_OK(uv_loop_close(&loop));
}

TEST(callback_never_inside_the_call)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct waited w = {0};
	TH_OK(rill_when_flows_closed(&loop, on_closed, &w));
	TH_EQ_INT(w.calls, 0); /* nothing closing, still from the loop */
	run_until_called(&loop, &w);
	TH_EQ_INT(w.calls, 1);
	TH_TRUE(w.loop == &loop);
	TH_EQ_U64(w.closing_then, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_EQ_INT(w.calls, 1);
	TH_OK(uv_loop_close(&loop));
}

TEST(bad_arguments)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct waited w = {0};
	TH_EQ_ERR(rill_when_flows_closed(NULL, on_closed, &w), RILL_EINVAL);
	TH_EQ_ERR(rill_when_flows_closed(&loop, NULL, &w), RILL_EINVAL);
	TH_EQ_U64(rill_closing_flows(NULL), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_EQ_INT(w.calls, 0);
	TH_OK(uv_loop_close(&loop));
}

/* A shut layer over a pair: the layer's close waits for the raw peer. */
struct stack {
	uv_loop_t loop;
	struct rill_flow *shut, *raw;
};

static void stack_init(struct stack *s)
{
	struct rill_flow *inner;
	TH_OK(uv_loop_init(&s->loop));
	TH_OK(rill_pair(&s->loop, 0, &inner, &s->raw));
	TH_OK(rill_shut_attach(inner, &s->shut));
}

static void expect_close_message(struct rill_flow *raw)
{
	uint8_t got[4];
	size_t have = 0;
	while (have < 4) {
		struct rill_buf *b = NULL;
		TH_OK(rill_read_sync(raw, &b));
		TH_CMP_INT(have + b->len, <=, 4);
		memcpy(got + have, b->data, b->len);
		have += b->len;
		rill_buf_release(b);
	}
	TH_EQ_MEM(got, MSG_CLOSE, 4);
}

TEST(waits_for_the_shut_handshake)
{
	struct stack s;
	stack_init(&s);
	rill_close(s.shut);
	struct waited w = {0};
	TH_OK(rill_when_flows_closed(&s.loop, on_closed, &w));
	expect_close_message(s.raw);
	/* The layer drains, waiting for the peer's answer. */
	for (int i = 0; i < 20; i++)
		uv_run(&s.loop, UV_RUN_NOWAIT);
	TH_EQ_INT(w.calls, 0);
	TH_EQ_U64(rill_closing_flows(&s.loop), 1); /* the layer; inner open */
	TH_OK(rill_write_sync(s.raw, MSG_CLOSE, 4));
	run_until_called(&s.loop, &w);
	TH_EQ_U64(w.closing_then, 0);
	/* Our end of the pair was closed by the layer: the raw end's EOF. */
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(s.raw, &b), RILL_EOF);
	rill_close(s.raw);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	TH_EQ_INT(w.calls, 1);
	TH_OK(uv_loop_close(&s.loop));
}

TEST(bounded_by_the_close_deadline)
{
	struct stack s;
	stack_init(&s);
	TH_OK(rill_shut_set_close_timeout(s.shut, 200));
	uint64_t t0 = uv_hrtime();
	rill_close(s.shut);
	struct waited w = {0};
	TH_OK(rill_when_flows_closed(&s.loop, on_closed, &w));
	run_until_called(&s.loop, &w); /* the peer never answers */
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	TH_CMP_INT(ms, >=, 195);
	TH_EQ_U64(w.closing_then, 0);
	rill_close(s.raw);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&s.loop));
}

/* Closes another flow from the first waiter's wake-up: a waiter whose
 * count reached zero, but that has not run yet, waits for it too. */
struct late {
	struct rill_flow *extra;
	struct waited *w;
};

static void close_extra_on_closed(uv_loop_t *loop, void *ud)
{
	struct late *l = ud;
	rill_close(l->extra);
	TH_EQ_U64(rill_closing_flows(loop), 1);
	TH_EQ_INT(l->w->calls, 0);
}

TEST(late_close_is_waited_for)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *a, *b, *c, *d;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	TH_OK(rill_pair(&loop, 0, &c, &d));
	rill_close(a);
	struct waited w = {0};
	struct late l = {.extra = c, .w = &w};
	/* Both wait for a; the first one then closes c. */
	TH_OK(rill_when_flows_closed(&loop, close_extra_on_closed, &l));
	TH_OK(rill_when_flows_closed(&loop, on_closed, &w));
	run_until_called(&loop, &w);
	TH_EQ_U64(w.closing_then, 0);
	rill_close(b);
	rill_close(d);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_EQ_INT(w.calls, 1);
	TH_OK(uv_loop_close(&loop));
}

/* Two loops (two threads in a real program) keep separate counts. */
TEST(counts_are_per_loop)
{
	uv_loop_t l1, l2;
	TH_OK(uv_loop_init(&l1));
	TH_OK(uv_loop_init(&l2));
	struct rill_flow *a, *b, *c, *d;
	TH_OK(rill_pair(&l1, 0, &a, &b));
	TH_OK(rill_pair(&l2, 0, &c, &d));
	rill_close(a);
	TH_EQ_U64(rill_closing_flows(&l1), 1);
	TH_EQ_U64(rill_closing_flows(&l2), 0);
	struct waited w = {0};
	TH_OK(rill_when_flows_closed(&l2, on_closed, &w));
	run_until_called(&l2, &w);
	TH_EQ_U64(rill_closing_flows(&l1), 1); /* l1 never ran */
	uv_run(&l1, UV_RUN_DEFAULT);
	TH_EQ_U64(rill_closing_flows(&l1), 0);
	rill_close(b);
	rill_close(c);
	rill_close(d);
	uv_run(&l1, UV_RUN_DEFAULT);
	uv_run(&l2, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&l1));
	TH_OK(uv_loop_close(&l2));
}
