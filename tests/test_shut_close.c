/*
 * The shut layer's close handshake (doc/shut-framing.md), state by state,
 * against the hand-made raw peer of shut_fixture.h: after rill_close()
 * the layer sends Close, drains (discarding data, skipping ShutdownWrite)
 * and closes the flow below only after the peer's Close or ShutdownRead,
 * an EOF or error below, or the close deadline. Whether the teardown is
 * over is asked through rill_when_flows_closed().
 */
#include <unistd.h>

#include "shut_fixture.h"

/* Watches the teardown of everything closed on the fixture's loop. */
struct watch {
	struct fx *x;
	bool over;
};

static void on_over(uv_loop_t *loop, void *ud)
{
	(void)loop;
	((struct watch *)ud)->over = true;
}

static void watch_start(struct watch *w, struct fx *x)
{
	w->x = x;
	w->over = false;
	TH_OK(rill_when_flows_closed(&x->loop, on_over, w));
}

/* The drain goes on: nothing the peer did ends it. About 100 ms of loop
 * iterations, long enough for a wrong end to show over a socket. */
static void expect_draining(struct watch *w)
{
	for (int i = 0; i < 20; i++) {
		uv_run(&w->x->loop, UV_RUN_NOWAIT);
		usleep(5000);
	}
	uv_run(&w->x->loop, UV_RUN_NOWAIT);
	if (w->over)
		TH_FAIL("the teardown ended before the peer answered");
	TH_CMP_INT(rill_closing_flows(&w->x->loop), >=, 1);
}

static void expect_over(struct watch *w)
{
	while (!w->over)
		if (uv_run(&w->x->loop, UV_RUN_ONCE) == 0 && !w->over)
			TH_FAIL("the loop ran out of work during the teardown");
	/* The flow below was closed: the raw end reads EOF. */
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(w->x->raw, &b), RILL_EOF);
}

/* The raw end writes n full data frames. */
static void raw_frames(struct fx *x, int n)
{
	uint8_t frame[4 + 4096];
	put32(frame, 4096);
	memset(frame + 4, 'd', 4096);
	for (int i = 0; i < n; i++)
		raw_write(x, frame, sizeof frame);
}

/* rill_close, then the Close message arrives at the raw end. */
static void close_shut(struct fx *x, struct watch *w, const void *before,
                       size_t n)
{
	rill_close(x->shut);
	x->shut = NULL;
	watch_start(w, x);
	uint8_t want[64];
	memcpy(want, before, n);
	memcpy(want + n, MSG_CLOSE, 4);
	expect_bytes(x->raw, want, n + 4);
}

TEST_BOTH(close_sends_close_and_waits_for_answer)
{
	struct fx x;
	fx_init(&x);
	TH_OK(rill_write_sync(x.shut, "q", 1));
	rill_close(x.shut);
	x.shut = NULL;
	static const uint8_t want[] = {1, 0, 0, 0, 'q', 0xAD, 0xDE, 0xAD, 0xDE};
	expect_bytes(x.raw, want, sizeof want);
	/* The layer drains: data and ShutdownWrite are skipped, and the
	 * inner flow stays open until our Close arrives. */
	uint8_t junk[8] = {3, 0, 0, 0, 'x', 'y', 'z'};
	raw_write(&x, junk, 7);
	raw_write(&x, MSG_SHUT_WR, 4);
	uint64_t t0 = uv_hrtime();
	raw_write(&x, MSG_CLOSE, 4);
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(x.raw, &b), RILL_EOF);
	/* Far below the 5 s deadline: the answer ended the drain. */
	TH_CMP_INT((uv_hrtime() - t0) / 1000000, <, 2000);
	fx_done(&x);
}

TEST_BOTH(close_drain_ends_on_shutdown_read)
{
	struct fx x;
	fx_init(&x);
	rill_close(x.shut);
	x.shut = NULL;
	expect_bytes(x.raw, MSG_CLOSE, 4);
	raw_write(&x, MSG_SHUT_RD, 4);
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(x.raw, &b), RILL_EOF);
	fx_done(&x);
}

TEST_BOTH(close_deadline_when_peer_never_answers)
{
	struct fx x;
	fx_init(&x);
	TH_OK(rill_shut_set_close_timeout(x.shut, 300));
	uint64_t t0 = uv_hrtime();
	rill_close(x.shut);
	x.shut = NULL;
	expect_bytes(x.raw, MSG_CLOSE, 4);
	/* The peer says nothing; the deadline closes the inner flow. */
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(x.raw, &b), RILL_EOF);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	TH_CMP_INT(ms, >=, 295);
	TH_CMP_INT(ms, <, 3000);
	fx_done(&x);
}

TEST_BOTH(close_with_peer_gone_is_quick)
{
	/* The peer hangs up instead of answering: EOF ends the drain. */
	struct fx x;
	fx_init(&x);
	rill_close(x.raw);
	x.raw = NULL;
	rill_close(x.shut);
	x.shut = NULL;
	uint64_t t0 = uv_hrtime();
	uv_run(&x.loop, UV_RUN_DEFAULT);
	TH_CMP_INT((uv_hrtime() - t0) / 1000000, <, 2000);
	TH_OK(uv_loop_close(&x.loop));
}

/* ---------------------------------------------------------------------- */
/* In every state, only the peer's answer ends the drain */

TEST_BOTH(drain_after_peer_shutdown_write_waits_for_close)
{
	/* The peer half-closed first: our reader saw EOF, and the drain
	 * still waits for the peer's Close (the old rule ended it here). */
	struct fx x;
	fx_init(&x);
	raw_write(&x, "\x02\0\0\0hi", 6);
	raw_write(&x, MSG_SHUT_WR, 4);
	uint8_t got[8];
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, sizeof got, &n), RILL_EOF);
	TH_EQ_U64(n, 2);
	struct watch w;
	close_shut(&x, &w, "", 0);
	expect_draining(&w);
	raw_write(&x, MSG_CLOSE, 4);
	expect_over(&w);
	fx_done(&x);
}

TEST_BOTH(drain_after_own_shutdown_write_waits_for_close)
{
	struct fx x;
	fx_init(&x);
	TH_OK(rill_shutdown_sync(x.shut, RILL_SHUT_WR));
	struct watch w;
	close_shut(&x, &w, MSG_SHUT_WR, 4);
	expect_draining(&w);
	raw_write(&x, MSG_CLOSE, 4);
	expect_over(&w);
	fx_done(&x);
}

TEST_BOTH(drain_after_both_half_closes_waits_for_close)
{
	struct fx x;
	fx_init(&x);
	raw_write(&x, MSG_SHUT_WR, 4);
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(x.shut, &b), RILL_EOF);
	TH_OK(rill_shutdown_sync(x.shut, RILL_SHUT_WR));
	struct watch w;
	close_shut(&x, &w, MSG_SHUT_WR, 4);
	expect_draining(&w);
	/* Data after the peer's ShutdownWrite is skipped too. */
	raw_write(&x, "\x03\0\0\0xyz", 7);
	expect_draining(&w);
	raw_write(&x, MSG_CLOSE, 4);
	expect_over(&w);
	fx_done(&x);
}

TEST_BOTH(drain_after_earlier_shutdown_read_waits_for_close)
{
	/* A ShutdownRead that came before our close does not end the
	 * drain: the peer may still write its Close. */
	struct fx x;
	fx_init(&x);
	raw_write(&x, MSG_SHUT_RD, 4);
	int err = 0;
	for (int i = 0; i < 100 && err == 0; i++)
		err = rill_write_sync(x.shut, "no", 2);
	TH_EQ_ERR(err, RILL_ECLOSED); /* the ShutdownRead arrived */
	struct watch w;
	close_shut(&x, &w, "", 0);
	expect_draining(&w);
	raw_write(&x, MSG_CLOSE, 4);
	expect_over(&w);
	fx_done(&x);
}

TEST_BOTH(drain_skips_unread_data_until_the_close)
{
	/* Unread data stands before the peer's Close, which comes only
	 * after ours: the drain reads through the data, then ends. */
	struct fx x;
	fx_init(&x);
	raw_frames(&x, 16);
	struct watch w;
	close_shut(&x, &w, "", 0);
	expect_draining(&w);
	raw_frames(&x, 16);
	expect_draining(&w);
	raw_write(&x, MSG_CLOSE, 4);
	expect_over(&w);
	fx_done(&x);
}

TEST_BOTH(drain_ends_at_a_close_behind_unread_data)
{
	struct fx x;
	fx_init(&x);
	raw_frames(&x, 8);
	raw_write(&x, MSG_CLOSE, 4);
	/* The peer's Close is answered even though nobody reads. */
	expect_bytes(x.raw, MSG_CLOSE, 4);
	rill_close(x.shut);
	x.shut = NULL;
	struct watch w;
	watch_start(&w, &x);
	expect_over(&w);
	fx_done(&x);
}

struct pending {
	int done, failed;
};

static void on_pending_write(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct pending *p = ud;
	p->done++;
	if (status != 0)
		p->failed++;
}

TEST_BOTH(close_with_writes_pending_sends_whole_frames_then_close)
{
	/* The raw end does not read while the layer writes 4 MiB, so the
	 * writes wait; rill_close drops the rest. What arrives is whole
	 * frames of the bytes written, in order, then Close: a frame is
	 * never cut, and the Close is never inside one. */
	struct fx x;
	fx_init(&x);
	enum { N = 64, LEN = 64 * 1024 };
	struct pending p = {0};
	for (int i = 0; i < N; i++) {
		struct rill_buf *b = rill_buf_new(LEN);
		TH_NOT_NULL(b);
		for (size_t k = 0; k < LEN; k++)
			b->data[k] = (uint8_t)((size_t)i * LEN + k);
		TH_OK(rill_write(x.shut, b, on_pending_write, &p));
		rill_buf_release(b);
	}
	for (int i = 0; i < 10; i++)
		uv_run(&x.loop, UV_RUN_NOWAIT);
	TH_CMP_INT(p.done, <, N); /* some are still waiting */
	rill_close(x.shut);
	x.shut = NULL;
	struct watch w;
	watch_start(&w, &x);
	/* Decode everything up to the Close. */
	size_t data = 0;
	uint8_t hdr[4];
	size_t hl = 0, need = 0;
	bool closed = false;
	while (!closed) {
		struct rill_buf *b = NULL;
		TH_OK(rill_read_sync(x.raw, &b));
		for (size_t i = 0; i < b->len && !closed; i++) {
			if (need > 0) {
				if (b->data[i] != (uint8_t)data)
					TH_FAIL("byte %zu is wrong", data);
				data++;
				need--;
				continue;
			}
			hdr[hl++] = b->data[i];
			if (hl < 4)
				continue;
			hl = 0;
			uint32_t v = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 |
			             (uint32_t)hdr[2] << 16 |
			             (uint32_t)hdr[3] << 24;
			if (v == 0xdeaddeadu) {
				closed = true;
				if (i + 1 != b->len)
					TH_FAIL("bytes after the Close");
			} else if (v == 0 || v > 4096) {
				TH_FAIL("header 0x%08x after %zu bytes",
				        (unsigned)v, data);
			} else {
				need = v;
			}
		}
		rill_buf_release(b);
	}
	TH_EQ_U64(need, 0);
	TH_CMP_INT(data, <, (size_t)N * LEN);
	TH_EQ_INT(p.failed, 0); /* dropped callbacks are not failures */
	expect_draining(&w);
	raw_write(&x, MSG_CLOSE, 4);
	expect_over(&w);
	fx_done(&x);
}

TEST_BOTH(slow_answer_ends_the_drain_not_the_deadline)
{
	struct fx x;
	fx_init(&x);
	TH_OK(rill_shut_set_close_timeout(x.shut, 5000));
	uint64_t t0 = uv_hrtime();
	struct watch w;
	close_shut(&x, &w, "", 0);
	usleep(300 * 1000); /* the peer takes its time */
	expect_draining(&w);
	raw_write(&x, MSG_CLOSE, 4);
	expect_over(&w);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	TH_CMP_INT(ms, >=, 300);
	TH_CMP_INT(ms, <, 4000);
	fx_done(&x);
}
