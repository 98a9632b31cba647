/*
 * The shut layer, byte by byte: the exact bytes rill sends for every
 * message (doc/shut-framing.md), and what it makes of frames written by a
 * hand-made peer. The peer is the raw end of an in-memory pair, or of a
 * Unix socket connection, whose other end carries the shut layer. The
 * receive tests run over each (TEST_BOTH, shut_fixture.h): over a socket
 * and over a pair the layer reads with scatter reads (payload straight
 * into one buffer, headers apart), behind a plain layer with ordinary
 * reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shut_fixture.h"

/* ---------------------------------------------------------------------- */
/* What rill sends */

TEST(sends_small_data_frame)
{
	struct fx x;
	fx_init(&x);
	TH_OK(rill_write_sync(x.shut, "hello", 5));
	static const uint8_t want[] = {5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'};
	expect_bytes(x.raw, want, sizeof want);
	fx_done(&x);
}

TEST(sends_frames_of_at_most_4096)
{
	struct fx x;
	fx_init(&x);
	size_t n = 10000;
	uint8_t *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	TH_OK(rill_write_sync(x.shut, data, n));
	uint8_t *want = malloc(n + 12);
	/* 4096 + 4096 + 1808 */
	put32(want, 4096);
	memcpy(want + 4, data, 4096);
	put32(want + 4100, 4096);
	memcpy(want + 4104, data + 4096, 4096);
	put32(want + 8200, 1808);
	memcpy(want + 8204, data + 8192, 1808);
	static const uint8_t full[] = {0x00, 0x10, 0x00, 0x00};
	TH_EQ_MEM(want, full, 4); /* the table's example, byte for byte */
	expect_bytes(x.raw, want, n + 12);
	free(data);
	free(want);
	fx_done(&x);
}

TEST(writev_frames_span_buffers)
{
	/* Frames cut across the user's buffers: 3000 + 3000 bytes go out as
	 * one full frame and one of 1904, and empty buffers add nothing. */
	struct fx x;
	fx_init(&x);
	struct rill_buf *b[3];
	b[0] = rill_buf_new(3000);
	b[1] = rill_buf_new(0);
	b[2] = rill_buf_new(3000);
	memset(b[0]->data, 'a', 3000);
	memset(b[2]->data, 'b', 3000);
	TH_OK(rill_writev(x.shut, b, 3, NULL, NULL));
	for (int i = 0; i < 3; i++)
		rill_buf_release(b[i]);
	uint8_t *want = malloc(6008);
	put32(want, 4096);
	memset(want + 4, 'a', 3000);
	memset(want + 3004, 'b', 1096);
	put32(want + 4100, 1904);
	memset(want + 4104, 'b', 1904);
	expect_bytes(x.raw, want, 6008);
	free(want);
	fx_done(&x);
}

TEST(sends_shutdown_write)
{
	struct fx x;
	fx_init(&x);
	TH_OK(rill_write_sync(x.shut, "ab", 2));
	TH_OK(rill_shutdown_sync(x.shut, RILL_SHUT_WR));
	static const uint8_t want[] = {2,   0,    0,    0,    'a',
	                               'b', 0xAD, 0xDE, 0xEF, 0xBE};
	expect_bytes(x.raw, want, sizeof want);
	TH_EQ_ERR(rill_write_copy(x.shut, "x", 1, NULL, NULL), RILL_ECLOSED);
	fx_done(&x);
}

TEST(sends_shutdown_read)
{
	struct fx x;
	fx_init(&x);
	TH_OK(rill_shutdown_sync(x.shut, RILL_SHUT_RD));
	expect_bytes(x.raw, MSG_SHUT_RD, 4);
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(x.shut, &b), RILL_EOF);
	fx_done(&x);
}

TEST(sends_nothing_for_empty_write)
{
	struct fx x;
	fx_init(&x);
	TH_OK(rill_write_sync(x.shut, "", 0));
	TH_OK(rill_write_sync(x.shut, "z", 1));
	static const uint8_t want[] = {1, 0, 0, 0, 'z'};
	expect_bytes(x.raw, want, sizeof want);
	fx_done(&x);
}

/* ---------------------------------------------------------------------- */
/* What rill accepts */

TEST_BOTH(accepts_frames_of_1_4096_5000)
{
	struct fx x;
	fx_init(&x);
	size_t sizes[] = {1, 4096, 5000};
	size_t total = 0;
	uint8_t *want = malloc(1 + 4096 + 5000);
	for (size_t k = 0; k < 3; k++) {
		uint8_t *fr = malloc(4 + sizes[k]);
		put32(fr, (uint32_t)sizes[k]);
		for (size_t i = 0; i < sizes[k]; i++)
			fr[4 + i] = want[total + i] = (uint8_t)(k * 31 + i);
		raw_write(&x, fr, 4 + sizes[k]);
		total += sizes[k];
		free(fr);
	}
	raw_write(&x, MSG_SHUT_WR, 4);
	uint8_t *got = malloc(total);
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, total, &n), RILL_EOF);
	TH_EQ_U64(n, total);
	TH_EQ_MEM(got, want, total);
	free(got);
	free(want);
	fx_done(&x);
}

TEST_BOTH(accepts_frames_split_byte_by_byte)
{
	struct fx x;
	fx_init(&x);
	static const uint8_t s[] = {3, 0,   0,   0,    'a',  'b',  'c',
	                            0, 0,   0,   0,    2,    0,    0,
	                            0, 'd', 'e', 0xAD, 0xDE, 0xEF, 0xBE};
	for (size_t i = 0; i < sizeof s; i++)
		raw_write(&x, s + i, 1);
	uint8_t got[16];
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, sizeof got, &n), RILL_EOF);
	TH_EQ_U64(n, 5);
	TH_EQ_MEM(got, "abcde", 5);
	fx_done(&x);
}

TEST_BOTH(skips_zero_length_frames)
{
	struct fx x;
	fx_init(&x);
	uint8_t s[4 * 5 + 5 + 4];
	memset(s, 0, 12);                 /* three empty frames */
	memcpy(s + 12, "\x01\0\0\0Z", 5); /* one byte */
	memset(s + 17, 0, 8);             /* two more empty frames */
	memcpy(s + 25, MSG_SHUT_WR, 4);
	raw_write(&x, s, sizeof s);
	uint8_t got[8];
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, sizeof got, &n), RILL_EOF);
	TH_EQ_U64(n, 1);
	TH_EQ_INT(got[0], 'Z');
	fx_done(&x);
}

TEST_BOTH(bad_length_is_frame_error)
{
	struct fx x;
	fx_init(&x);
	uint8_t s[4 + 2 + 4];
	memcpy(s, "\x02\0\0\0ok", 6);
	put32(s + 6, 0x80000000u);
	raw_write(&x, s, sizeof s);
	uint8_t got[8];
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, sizeof got, &n), RILL_EFRAME);
	TH_EQ_U64(n, 2); /* data before the error comes first */
	TH_CONTAINS(rill_flow_errmsg(x.shut), "0x80000000");
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(x.shut, &b), RILL_EFRAME); /* sticky */
	fx_done(&x);
}

TEST_BOTH(huge_but_legal_length_is_not_an_error)
{
	/* 0x7fffffff is a legal (if large) frame; a peer that then hangs
	 * up has truncated it. */
	struct fx x;
	fx_init(&x);
	uint8_t s[4 + 3];
	put32(s, 0x7fffffffu);
	memcpy(s + 4, "abc", 3);
	raw_write(&x, s, sizeof s);
	TH_OK(rill_shutdown_sync(x.raw, RILL_SHUT_WR));
	uint8_t got[8];
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, sizeof got, &n), RILL_EFRAME);
	TH_EQ_U64(n, 3);
	TH_CONTAINS(rill_flow_errmsg(x.shut), "inside a frame");
	fx_done(&x);
}

TEST_BOTH(peer_vanishes_mid_frame)
{
	struct fx x;
	fx_init(&x);
	uint8_t s[4 + 10];
	put32(s, 100);
	memset(s + 4, 'v', 10);
	raw_write(&x, s, sizeof s);
	rill_close(x.raw);
	x.raw = NULL;
	uint8_t got[128];
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, sizeof got, &n), RILL_EFRAME);
	TH_EQ_U64(n, 10);
	TH_CONTAINS(rill_flow_errmsg(x.shut), "90 payload bytes missing");
	fx_done(&x);
}

TEST_BOTH(peer_vanishes_mid_header)
{
	struct fx x;
	fx_init(&x);
	raw_write(&x, "\x05\0", 2);
	rill_close(x.raw);
	x.raw = NULL;
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(x.shut, &b), RILL_EFRAME);
	fx_done(&x);
}

TEST_BOTH(peer_hangup_between_frames_is_eof)
{
	struct fx x;
	fx_init(&x);
	raw_write(&x, "\x01\0\0\0!", 5);
	rill_close(x.raw);
	x.raw = NULL;
	uint8_t got[8];
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, sizeof got, &n), RILL_EOF);
	TH_EQ_U64(n, 1);
	fx_done(&x);
}

TEST_BOTH(peer_shutdown_read_fails_writes)
{
	struct fx x;
	fx_init(&x);
	raw_write(&x, MSG_SHUT_RD, 4);
	raw_write(&x, "\x02\0\0\0hi", 6);
	/* Reading consumes the ShutdownRead and still delivers data. */
	expect_bytes(x.shut, "hi", 2);
	TH_EQ_ERR(rill_write_sync(x.shut, "no", 2), RILL_ECLOSED);
	TH_CONTAINS(rill_flow_errmsg(x.shut), "shut down its reads");
	fx_done(&x);
}

TEST_BOTH(peer_close_means_eof_and_is_answered)
{
	struct fx x;
	fx_init(&x);
	raw_write(&x, "\x02\0\0\0hi", 6);
	raw_write(&x, MSG_CLOSE, 4);
	uint8_t got[8];
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, sizeof got, &n), RILL_EOF);
	TH_EQ_U64(n, 2);
	/* Our answer lets the peer finish its close handshake. */
	expect_bytes(x.raw, MSG_CLOSE, 4);
	TH_EQ_ERR(rill_write_sync(x.shut, "no", 2), RILL_ECLOSED);
	/* Closing now needs no drain: the peer's Close was seen. */
	rill_close(x.shut);
	x.shut = NULL;
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(x.raw, &b), RILL_EOF);
	fx_done(&x);
}

TEST(attach_consumes_inner_on_error)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	TH_EQ_ERR(rill_shut_attach(a, NULL), RILL_EINVAL);
	/* a was closed: its peer reads EOF. */
	struct rill_buf *buf = NULL;
	TH_EQ_ERR(rill_read_sync(b, &buf), RILL_EOF);
	struct rill_flow *out = (struct rill_flow *)&out;
	TH_EQ_ERR(rill_shut_attach(NULL, &out), RILL_EINVAL);
	TH_EQ_ERR(rill_shut_set_close_timeout(b, 5), RILL_EINVAL);
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&loop));
}

/* ---------------------------------------------------------------------- */
/* Two shut ends */

TEST(two_ends_half_close_both_ways)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	TH_OK(rill_shut_attach(a, &a));
	TH_OK(rill_shut_attach(b, &b));
	TH_OK(rill_write_sync(a, "request", 7));
	TH_OK(rill_shutdown_sync(a, RILL_SHUT_WR));
	uint8_t got[64];
	size_t n;
	TH_EQ_ERR(read_to_end(b, got, sizeof got, &n), RILL_EOF);
	TH_EQ_U64(n, 7);
	TH_OK(rill_write_sync(b, "response", 8));
	TH_OK(rill_shutdown_sync(b, RILL_SHUT_WR));
	TH_EQ_ERR(read_to_end(a, got, sizeof got, &n), RILL_EOF);
	TH_EQ_U64(n, 8);
	TH_EQ_MEM(got, "response", 8);
	uint64_t t0 = uv_hrtime();
	rill_close(a);
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	/* Each Close answers the other's drain: no deadline involved. */
	TH_CMP_INT((uv_hrtime() - t0) / 1000000, <, 2000);
	TH_OK(uv_loop_close(&loop));
}

TEST(one_side_closes_other_reads_eof)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	TH_OK(rill_shut_attach(a, &a));
	TH_OK(rill_shut_attach(b, &b));
	TH_OK(rill_write_sync(a, "last words", 10));
	rill_close(a);
	uint8_t got[64];
	size_t n;
	TH_EQ_ERR(read_to_end(b, got, sizeof got, &n), RILL_EOF);
	TH_EQ_U64(n, 10);
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&loop));
}

TEST_BOTH(peer_close_fails_writes_of_a_non_reader)
{
	/* The user only writes; the layer still sees the peer's Close and
	 * answers it, and the writes fail instead of vanishing. */
	struct fx x;
	fx_init(&x);
	raw_write(&x, MSG_CLOSE, 4);
	expect_bytes(x.raw, MSG_CLOSE, 4);
	TH_EQ_ERR(rill_write_sync(x.shut, "late", 4), RILL_ECLOSED);
	TH_CONTAINS(rill_flow_errmsg(x.shut), "closed");
	fx_done(&x);
}

TEST_BOTH(peer_close_after_half_close_fails_writes)
{
	struct fx x;
	fx_init(&x);
	raw_write(&x, MSG_SHUT_WR, 4);
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(x.shut, &b), RILL_EOF);
	TH_OK(rill_write_sync(x.shut, "answer", 6));
	static const uint8_t want[] = {6,   0,   0,   0,   'a',
	                               'n', 's', 'w', 'e', 'r'};
	expect_bytes(x.raw, want, sizeof want);
	raw_write(&x, MSG_CLOSE, 4);
	int err = 0;
	for (int i = 0; i < 100 && err == 0; i++)
		err = rill_write_sync(x.shut, "more", 4);
	TH_EQ_ERR(err, RILL_ECLOSED);
	fx_done(&x);
}

TEST_BOTH(consecutive_frames_arrive_in_one_read)
{
	/* Frames that arrive together are handed out together, their
	 * headers removed; a control message still ends the run. */
	struct fx x;
	fx_init(&x);
	static const uint8_t s[] = {2, 0,   0,   0,   'a',  'b',  2,    0,   0,
	                            0, 'c', 'd', 0,   0,    0,    0,    2,   0,
	                            0, 0,   'e', 'f', 0xAD, 0xDE, 0xEF, 0xBE};
	raw_write(&x, s, sizeof s);
	struct rill_buf *b = NULL;
	TH_OK(rill_read_sync(x.shut, &b));
	TH_EQ_U64(b->len, 6);
	TH_EQ_MEM(b->data, "abcdef", 6);
	rill_buf_release(b);
	TH_EQ_ERR(rill_read_sync(x.shut, &b), RILL_EOF);
	fx_done(&x);
}

/* ---------------------------------------------------------------------- */
/* A long stream of mixed frames, fed in pieces of random size */

struct mix {
	struct fx *x;
	const uint8_t *wire;
	size_t wire_len, wire_off;
	uint8_t *got;
	size_t got_len, got_cap;
	int status;
	bool done;
	uint32_t rng;
	uv_timer_t pause, wpause;
	const size_t *hdr_at; /* wire offsets of the frame headers */
	size_t n_hdr, hdr_i;
};

static uint32_t mix_rand(struct mix *m)
{
	m->rng = m->rng * 1103515245u + 12345u;
	return m->rng >> 8;
}

static void mix_read(struct mix *m);

static void mix_resume(uv_timer_t *t)
{
	mix_read(t->data);
}

static void mix_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                        void *ud)
{
	(void)f;
	struct mix *m = ud;
	if (status != 0) {
		m->status = status;
		m->done = true;
		return;
	}
	if (m->got_len + b->len > m->got_cap)
		TH_FAIL("%zu bytes more than sent",
		        m->got_len + b->len - m->got_cap);
	memcpy(m->got + m->got_len, b->data, b->len);
	m->got_len += b->len;
	rill_buf_release(b);
	/* Sometimes stop reading for a moment: data piles up behind. */
	if (mix_rand(m) % 8 == 0)
		uv_timer_start(&m->pause, mix_resume, 1, 0);
	else
		mix_read(m);
}

static void mix_read(struct mix *m)
{
	TH_OK(rill_read(m->x->shut, mix_read_cb, m));
}

static void mix_write_paused(struct rill_flow *f, int status, void *ud);

static void mix_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct mix *m = ud;
	TH_OK(status);
	if (m->wire_off == m->wire_len)
		return;
	size_t n = 1 + mix_rand(m) % 70000;
	bool pause = false;
	while (m->hdr_i < m->n_hdr && m->hdr_at[m->hdr_i] < m->wire_off)
		m->hdr_i++;
	if (mix_rand(m) % 4 == 0) {
		n = 1 + mix_rand(m) % 7;
	} else if (mix_rand(m) % 3 == 0 && m->hdr_i + 3 < m->n_hdr) {
		/* End 1-3 bytes into a header, and let the reader see
		 * that much alone. */
		size_t h = m->hdr_at[m->hdr_i + mix_rand(m) % 3];
		n = h + 1 + mix_rand(m) % 3 - m->wire_off;
		pause = true;
	}
	if (n > m->wire_len - m->wire_off)
		n = m->wire_len - m->wire_off;
	const uint8_t *p = m->wire + m->wire_off;
	m->wire_off += n;
	TH_OK(rill_write_copy(m->x->raw, p, n,
	                      pause ? mix_write_paused : mix_write_cb, m));
}

static void mix_write_resume(uv_timer_t *t)
{
	mix_write_cb(NULL, 0, t->data);
}

static void mix_write_paused(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct mix *m = ud;
	TH_OK(status);
	uv_timer_start(&m->wpause, mix_write_resume, 2, 0);
}

/* Appends a data frame of n payload bytes to the wire, the payload to
 * want. */
static size_t mix_hdrs[8192];
static size_t mix_n_hdr;

static void mix_frame(uint8_t *wire, size_t *wl, uint8_t *want, size_t *pl,
                      size_t n, uint32_t *seed)
{
	if (mix_n_hdr < sizeof mix_hdrs / sizeof *mix_hdrs)
		mix_hdrs[mix_n_hdr++] = *wl;
	put32(wire + *wl, (uint32_t)n);
	*wl += 4;
	for (size_t i = 0; i < n; i++) {
		*seed = *seed * 1664525u + 1013904223u;
		wire[*wl + i] = want[*pl + i] = (uint8_t)(*seed >> 24);
	}
	*wl += n;
	*pl += n;
}

TEST_BOTH(mixed_frames_in_random_pieces)
{
	/* Full 4096-byte frames (what rill sends) mixed with short, empty,
	 * 1 KiB, 2 KiB and over-long frames and ShutdownRead messages, the
	 * wire cut at random places (often inside a header), the reader
	 * pausing now and then: every payload byte arrives, in order, then
	 * EOF at the ShutdownWrite. */
	static const size_t pattern[] = {4096, 4096,  4096, 1,    4096, 0,
	                                 5000, 4096,  100,  1024, 1024, 1024,
	                                 2048, 70000, 4096, 4096, 3,    4096};
	for (uint32_t seed = 1; seed <= 3; seed++) {
		struct fx x;
		fx_init(&x);
		size_t cap = 16u << 20;
		uint8_t *wire = malloc(cap), *want = malloc(cap);
		size_t wl = 0, pl = 0;
		uint32_t data_seed = seed;
		mix_n_hdr = 0;
		for (int rep = 0; rep < 20; rep++) {
			for (size_t i = 0; rep % 2 == 0 &&
			                   i < sizeof pattern / sizeof *pattern;
			     i++)
				mix_frame(wire, &wl, want, &pl, pattern[i],
				          &data_seed);
			/* Long runs of full frames: the scatter reads' case. */
			for (int i = 0; i < (rep % 2 ? 150 : 20 + rep); i++)
				mix_frame(wire, &wl, want, &pl, 4096,
				          &data_seed);
			if (rep % 7 == 3) {
				memcpy(wire + wl, MSG_SHUT_RD, 4);
				wl += 4;
			}
		}
		memcpy(wire + wl, MSG_SHUT_WR, 4);
		wl += 4;
		TH_TRUE(wl <= cap);
		struct mix m = {.x = &x,
		                .wire = wire,
		                .wire_len = wl,
		                .got = malloc(pl),
		                .got_cap = pl,
		                .rng = seed,
		                .hdr_at = mix_hdrs,
		                .n_hdr = mix_n_hdr};
		uv_timer_init(&x.loop, &m.pause);
		m.pause.data = &m;
		uv_timer_init(&x.loop, &m.wpause);
		m.wpause.data = &m;
		mix_read(&m);
		mix_write_cb(NULL, 0, &m);
		while (!m.done)
			uv_run(&x.loop, UV_RUN_ONCE);
		TH_EQ_ERR(m.status, RILL_EOF);
		TH_EQ_U64(m.got_len, pl);
		TH_EQ_MEM(m.got, want, pl);
		/* The ShutdownRead messages on the way made writes fail. */
		TH_EQ_ERR(rill_write_sync(x.shut, "x", 1), RILL_ECLOSED);
		uv_close((uv_handle_t *)&m.pause, NULL);
		uv_close((uv_handle_t *)&m.wpause, NULL);
		free(m.got);
		free(wire);
		free(want);
		fx_done(&x);
	}
}

TEST_BOTH(close_behind_unread_data_fails_writes)
{
	/* The peer sends data, then Close; the user does not read. The
	 * layer looks past the unread data, answers the Close and fails
	 * the writes; the data is still there to read, then EOF. */
	struct fx x;
	fx_init(&x);
	uint8_t *s = malloc(4 + 3000 + 4 + 4096 + 4);
	put32(s, 3000);
	memset(s + 4, 'a', 3000);
	put32(s + 3004, 4096);
	memset(s + 3008, 'b', 4096);
	memcpy(s + 3008 + 4096, MSG_CLOSE, 4);
	raw_write(&x, s, 3000 + 4096 + 12);
	expect_bytes(x.raw, MSG_CLOSE, 4);
	TH_EQ_ERR(rill_write_sync(x.shut, "late", 4), RILL_ECLOSED);
	TH_CONTAINS(rill_flow_errmsg(x.shut), "closed");
	uint8_t *got = malloc(8192);
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, 8192, &n), RILL_EOF);
	TH_EQ_U64(n, 7096);
	TH_TRUE(got[0] == 'a' && got[2999] == 'a' && got[3000] == 'b' &&
	        got[7095] == 'b');
	free(got);
	free(s);
	fx_done(&x);
}

TEST_BOTH(close_far_behind_unread_data_is_found)
{
	/* The Close comes after more data than one inner read brings: the
	 * layer keeps reading (within its look-ahead budget) to find it. */
	struct fx x;
	fx_init(&x);
	size_t frames = 40, len = frames * 4100 + 4;
	uint8_t *s = malloc(len);
	for (size_t i = 0; i < frames; i++) {
		put32(s + i * 4100, 4096);
		memset(s + i * 4100 + 4, (int)('A' + i % 26), 4096);
	}
	memcpy(s + frames * 4100, MSG_CLOSE, 4);
	for (size_t off = 0; off < len; off += 1000)
		raw_write(&x, s + off, len - off < 1000 ? len - off : 1000);
	expect_bytes(x.raw, MSG_CLOSE, 4);
	TH_EQ_ERR(rill_write_sync(x.shut, "late", 4), RILL_ECLOSED);
	uint8_t *got = malloc(frames * 4096);
	size_t n;
	TH_EQ_ERR(read_to_end(x.shut, got, frames * 4096, &n), RILL_EOF);
	TH_EQ_U64(n, frames * 4096);
	for (size_t i = 0; i < frames; i++)
		TH_TRUE(got[i * 4096] == 'A' + i % 26 &&
		        got[i * 4096 + 4095] == 'A' + i % 26);
	free(got);
	free(s);
	fx_done(&x);
}
