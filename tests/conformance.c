/*
 * The flow conformance suite: see conformance.h, doc/contract.md and
 * doc/impl.md. Every check gets a fresh loop and a fresh pair of connected
 * flows from the factory, in its own process, with a counting allocator
 * installed, and ends by closing what is left, draining the loop and
 * asserting that every handle was closed and every byte rill allocated was
 * freed.
 *
 * Data: the large transfers send a stream whose byte at offset p is a
 * function of p (conf_gen), so the reader checks every byte in place and
 * reports the first wrong offset; both sides also hash the stream
 * (FNV-1a 64) and the hashes must agree.
 */
#include "conformance.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define KIB (1024u)
#define MIB (1024u * 1024u)

/* ---------------------------------------------------------------------- */
/* Counting allocator: live bytes through rill's allocator. */

#define CONF_HDR 16u

static atomic_size_t conf_live;
static bool conf_counting;

static void *conf_malloc(size_t n)
{
	if (n > SIZE_MAX - CONF_HDR)
		return NULL;
	size_t *p = malloc(n + CONF_HDR);
	if (p == NULL)
		return NULL;
	p[0] = n;
	atomic_fetch_add(&conf_live, n);
	return (char *)p + CONF_HDR;
}

static void conf_freefn(void *q)
{
	if (q == NULL)
		return;
	size_t *p = (size_t *)(void *)((char *)q - CONF_HDR);
	atomic_fetch_sub(&conf_live, p[0]);
	free(p);
}

static void *conf_realloc(void *q, size_t n)
{
	if (q == NULL)
		return conf_malloc(n);
	if (n > SIZE_MAX - CONF_HDR)
		return NULL;
	size_t *p = (size_t *)(void *)((char *)q - CONF_HDR);
	size_t old = p[0];
	size_t *np = realloc(p, n + CONF_HDR);
	if (np == NULL)
		return NULL;
	np[0] = n;
	atomic_fetch_sub(&conf_live, old);
	atomic_fetch_add(&conf_live, n);
	return (char *)np + CONF_HDR;
}

void conf_count_allocations(void)
{
	if (conf_counting)
		return;
	conf_counting = true;
	rill_replace_allocator(conf_malloc, conf_realloc, conf_freefn);
}

size_t conf_live_bytes(void)
{
	return atomic_load(&conf_live);
}

/* ---------------------------------------------------------------------- */
/* The test stream and its hash. */

#define GEN_PERIOD 65521u /* prime, so the pattern never lines up with 2^k */

static uint8_t gen_tab[GEN_PERIOD];
static bool gen_ready;

static void gen_init(void)
{
	if (gen_ready)
		return;
	uint64_t s = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < GEN_PERIOD; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		gen_tab[i] = (uint8_t)(s >> 24);
	}
	gen_ready = true;
}

/* Fills dst with the stream's bytes [pos, pos+n). */
static void gen_fill(uint8_t *dst, uint64_t pos, size_t n)
{
	size_t idx = (size_t)(pos % GEN_PERIOD);
	for (size_t i = 0; i < n; i++) {
		dst[i] = gen_tab[idx] ^ (uint8_t)((pos + i) >> 16);
		if (++idx == GEN_PERIOD)
			idx = 0;
	}
}

/* Offset (within src) of the first byte that differs from the stream at
 * pos, or n when all match. */
static size_t gen_verify(const uint8_t *src, uint64_t pos, size_t n)
{
	size_t idx = (size_t)(pos % GEN_PERIOD);
	for (size_t i = 0; i < n; i++) {
		if (src[i] != (gen_tab[idx] ^ (uint8_t)((pos + i) >> 16)))
			return i;
		if (++idx == GEN_PERIOD)
			idx = 0;
	}
	return n;
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

/* xorshift64* */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* A uniform value in [lo, hi]. */
static size_t rng_range(uint64_t *s, size_t lo, size_t hi)
{
	return lo + (size_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* ---------------------------------------------------------------------- */
/* Per-check context */

struct conf_ctx {
	const struct conf_factory *fac;
	const char *check;
	bool rev;
	uv_loop_t loop;
	uv_timer_t watchdog;
	const char *waiting_for;
	struct rill_flow *x; /* the "writer" side of the orientation */
	struct rill_flow *y; /* the "reader" side */
	uint64_t rng;
	size_t big;
};

static void ctx_watchdog(uv_timer_t *t)
{
	struct conf_ctx *c = t->data;
	TH_FAIL("conf/%s/%s%s: deadline of the check expired while waiting "
	        "for %s",
	        c->fac->name, c->check, c->rev ? "/rev" : "",
	        c->waiting_for ? c->waiting_for : "(nothing)");
}

/* Runs the loop until *flag; fails if the loop runs out of work first. */
static void ctx_wait(struct conf_ctx *c, const bool *flag, const char *what)
{
	const char *was = c->waiting_for;
	c->waiting_for = what;
	while (!*flag) {
		if (uv_run(&c->loop, UV_RUN_ONCE) == 0 && !*flag)
			TH_FAIL("loop ran out of work while waiting for %s "
			        "(a completion never came)",
			        what);
	}
	c->waiting_for = was;
}

static void ctx_sleep_cb(uv_timer_t *t)
{
	*(bool *)t->data = true;
	/* In UV_RUN_ONCE the timers run before the poll: without a stop, the
	 * same iteration would then block in poll with nothing to wake it
	 * (an idle vchan flow keeps its fds polled but sends nothing). */
	uv_stop(t->loop);
}

/* Runs the loop for ms milliseconds (other work proceeds meanwhile). */
static void ctx_run_for(struct conf_ctx *c, uint64_t ms)
{
	uv_timer_t t;
	bool done = false;
	uv_timer_init(&c->loop, &t);
	t.data = &done;
	uv_timer_start(&t, ctx_sleep_cb, ms, 0);
	ctx_wait(c, &done, "a pause");
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&c->loop, UV_RUN_NOWAIT);
}

/* Runs the loop until *n >= want. */
static void ctx_wait_count(struct conf_ctx *c, const unsigned *n, unsigned want,
                           const char *what)
{
	const char *was = c->waiting_for;
	c->waiting_for = what;
	while (*n < want) {
		if (uv_run(&c->loop, UV_RUN_ONCE) == 0 && *n < want)
			TH_FAIL("loop ran out of work while waiting for %s "
			        "(a completion never came)",
			        what);
	}
	c->waiting_for = was;
}

/* Closes *f (if still open) and forgets it. */
static void ctx_close(struct rill_flow **f)
{
	rill_close(*f);
	*f = NULL;
}

static void ctx_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		th_note("handle left open: %s (active %d)",
		        uv_handle_type_name(uv_handle_get_type(h)),
		        uv_is_active(h));
}

/* Closes a handle that lives in the caller's frame and lets the loop
 * finish with it before the frame goes away. */
static void ctx_close_handle(struct conf_ctx *c, uv_handle_t *h)
{
	uv_close(h, NULL);
	uv_run(&c->loop, UV_RUN_NOWAIT);
}

static void ctx_drain(struct conf_ctx *c)
{
	/* The watchdog is unreferenced, so this returns once nothing else
	 * keeps the loop alive. */
	c->waiting_for = "the teardown to finish";
	uv_run(&c->loop, UV_RUN_DEFAULT);
}

/* ---------------------------------------------------------------------- */
/* Reader: reads until EOF or error, verifying the stream or collecting. */

struct wr;

struct rd {
	struct conf_ctx *c;
	struct wr *poke; /* told about progress (both-ways transfers) */
	bool collecting;
	struct rill_flow *f;
	bool verify;      /* check against the generated stream */
	uint8_t *collect; /* or store the bytes here (malloc'd, grows) */
	size_t collect_cap;
	uint64_t pos; /* bytes received */
	uint64_t hash;
	uint64_t
	    stop_at;    /* pause (no new read) once pos >= stop_at; 0: never */
	uint64_t ops;   /* successful reads */
	int status;     /* final status once done */
	bool done;      /* EOF or error seen */
	bool reading;   /* a read is pending */
	bool paused;    /* do not re-arm after the current read */
	bool in_call;   /* inside rill_read (deferral check) */
	size_t bad_off; /* first mismatching offset, when verify */
	bool bad;
	unsigned zero_bufs;   /* buffers of 0 bytes (contract violation) */
	unsigned cb_in_call;  /* callbacks run inside rill_read */
	unsigned after_done;  /* callbacks after EOF/error without re-read */
	uint64_t pause_every; /* pause this long every pause_bytes */
	uint64_t pause_bytes, next_pause;
	uv_timer_t pause_timer;
	bool pause_timer_init;
};

static void rd_arm(struct rd *r);
static void wr_poked(struct wr *w);

static void rd_pause_cb(uv_timer_t *t)
{
	struct rd *r = t->data;
	rd_arm(r);
}

static void rd_cb(struct rill_flow *f, int status, struct rill_buf *buf,
                  void *ud)
{
	struct rd *r = ud;
	(void)f;
	if (r->in_call)
		r->cb_in_call++;
	if (!r->reading)
		r->after_done++;
	r->reading = false;
	if (status != 0) {
		if (buf != NULL)
			TH_FAIL("read status %s came with a buffer",
			        th_errname(status));
		r->status = status;
		r->done = true;
		return;
	}
	if (buf == NULL)
		TH_FAIL("read status 0 without a buffer");
	if (buf->len == 0)
		r->zero_bufs++;
	if (r->verify && !r->bad) {
		size_t off = gen_verify(buf->data, r->pos, buf->len);
		if (off < buf->len) {
			r->bad = true;
			r->bad_off = (size_t)r->pos + off;
		}
	}
	if (r->collecting) {
		if (r->pos + buf->len > r->collect_cap) {
			size_t nc = r->collect_cap ? r->collect_cap : 4096;
			while (nc < r->pos + buf->len)
				nc *= 2;
			r->collect = realloc(r->collect, nc);
			if (r->collect == NULL)
				TH_FAIL("out of memory in the test");
			r->collect_cap = nc;
		}
		memcpy(r->collect + r->pos, buf->data, buf->len);
	}
	r->hash = fnv1a(r->hash, buf->data, buf->len);
	r->pos += buf->len;
	r->ops++;
	rill_buf_release(buf);
	if (r->poke != NULL)
		wr_poked(r->poke);
	if (r->stop_at != 0 && r->pos >= r->stop_at)
		r->paused = true;
	if (r->paused)
		return;
	if (r->pause_bytes != 0 && r->pos >= r->next_pause) {
		r->next_pause = r->pos + r->pause_bytes;
		uv_timer_start(&r->pause_timer, rd_pause_cb, r->pause_every, 0);
		return;
	}
	rd_arm(r);
}

static void rd_arm(struct rd *r)
{
	if (r->reading || r->done)
		return;
	r->reading = true;
	r->in_call = true;
	int err = rill_read(r->f, rd_cb, r);
	r->in_call = false;
	if (err != 0) {
		r->reading = false;
		TH_FAIL("rill_read failed synchronously: %s", th_errname(err));
	}
}

static void rd_init(struct rd *r, struct conf_ctx *c, struct rill_flow *f,
                    bool verify)
{
	memset(r, 0, sizeof *r);
	r->c = c;
	r->f = f;
	r->verify = verify;
	r->collecting = !verify;
	r->hash = FNV_OFFSET;
	uv_timer_init(&c->loop, &r->pause_timer);
	r->pause_timer.data = r;
	r->pause_timer_init = true;
}

static void rd_start(struct rd *r)
{
	r->paused = false;
	rd_arm(r);
}

static void rd_wait(struct rd *r, const char *what)
{
	ctx_wait(r->c, &r->done, what);
}

static void rd_fini(struct rd *r)
{
	free(r->collect);
	r->collect = NULL;
	if (r->pause_timer_init) {
		ctx_close_handle(r->c, (uv_handle_t *)&r->pause_timer);
		r->pause_timer_init = false;
	}
}

static void rd_expect_stream(struct rd *r, uint64_t len, uint64_t hash)
{
	if (r->zero_bufs)
		TH_FAIL("%u reads delivered a buffer of 0 bytes", r->zero_bufs);
	if (r->bad)
		TH_FAIL("received byte at offset %zu differs from what was "
		        "sent",
		        r->bad_off);
	TH_EQ_ERR(r->status, RILL_EOF);
	TH_EQ_U64(r->pos, len);
	TH_EQ_U64(r->hash, hash);
}

/* ---------------------------------------------------------------------- */
/* Writer: writes `total` bytes of the stream in random writev calls. */

#define WR_MAX_INFLIGHT 8

struct wr {
	struct conf_ctx *c;
	struct rill_flow *f;
	uint64_t rng;
	uint64_t total, issued, acked;
	uint64_t hash;
	size_t sizes[WR_MAX_INFLIGHT];
	unsigned head, inflight, max_inflight;
	size_t max_write; /* upper bound of one write */
	unsigned max_iov; /* upper bound of buffers per writev */
	bool shut_after;  /* shutdown(write) once everything is issued */
	bool shut_issued, shut_done;
	int shut_status;
	int err;              /* first write error */
	bool done;            /* all acked (and shut down if asked), or error */
	struct rd *wait_rd;   /* delay the shutdown until this reader... */
	uint64_t wait_pos;    /* ...has received this many bytes */
	uint64_t completions; /* write callbacks */
};

static void wr_pump(struct wr *w);

/* rill_shutdown as the checks use it. On a kind declared without
 * half-close, RILL_SHUT_WR alone is refused while reads are open
 * (RILL_ENOHALFCLOSE, nothing changed: ck_half_close_declared checks
 * that in detail); the checks then end both sides at once, which is how
 * such a flow signals the end of its data. */
static int conf_shutdown(struct conf_ctx *c, struct rill_flow *f, int mode,
                         rill_shutdown_cb cb, void *ud)
{
	int err = rill_shutdown(f, mode, cb, ud);
	if (err == RILL_ENOHALFCLOSE &&
	    (c->fac->caps_missing & CONF_NO_HALF_CLOSE))
		err = rill_shutdown(f, RILL_SHUT_RDWR, cb, ud);
	return err;
}

static void wr_shut_cb(struct rill_flow *f, int status, void *ud)
{
	struct wr *w = ud;
	(void)f;
	w->shut_done = true;
	w->shut_status = status;
	w->done = true;
}

static void wr_maybe_shut(struct wr *w)
{
	if (w->acked != w->total || w->err != 0)
		return;
	if (!w->shut_after) {
		w->done = true;
		return;
	}
	if (w->shut_issued)
		return;
	if (w->wait_rd != NULL && w->wait_rd->pos < w->wait_pos)
		return; /* the reader pokes us again (wr_poked) */
	w->shut_issued = true;
	int err = conf_shutdown(w->c, w->f, RILL_SHUT_WR, wr_shut_cb, w);
	if (err != 0)
		TH_FAIL("rill_shutdown(write) failed: %s", th_errname(err));
}

static void wr_cb(struct rill_flow *f, int status, void *ud)
{
	struct wr *w = ud;
	(void)f;
	if (w->inflight == 0)
		TH_FAIL("a write callback nobody was waiting for");
	size_t sz = w->sizes[w->head];
	w->head = (w->head + 1) % WR_MAX_INFLIGHT;
	w->inflight--;
	w->completions++;
	if (status != 0) {
		if (w->err == 0)
			w->err = status;
		w->done = true;
		return;
	}
	w->acked += sz;
	wr_pump(w);
	wr_maybe_shut(w);
}

/* One writev of a random size, split into random buffers: some separate,
 * some slices of one buffer. */
static int wr_issue(struct wr *w)
{
	uint64_t left = w->total - w->issued;
	size_t sz;
	unsigned cls = (unsigned)(rng_next(&w->rng) % 10);
	if (cls < 3)
		sz = rng_range(&w->rng, 1, 64);
	else if (cls < 6)
		sz = rng_range(&w->rng, 1, 4096);
	else
		sz = rng_range(&w->rng, 1, w->max_write);
	if (sz > w->max_write)
		sz = w->max_write;
	if (sz > left)
		sz = (size_t)left;
	unsigned niov = (unsigned)rng_range(&w->rng, 1, w->max_iov);
	if (niov > sz)
		niov = (unsigned)sz;
	struct rill_buf *bufs[64];
	struct rill_buf *whole = NULL;
	bool slices = niov > 1 && (rng_next(&w->rng) & 1);
	if (slices) {
		whole = rill_buf_new(sz);
		if (whole == NULL)
			return RILL_ENOMEM;
		gen_fill(whole->data, w->issued, sz);
	}
	size_t off = 0;
	for (unsigned i = 0; i < niov; i++) {
		size_t piece =
		    i + 1 == niov
		        ? sz - off
		        : rng_range(&w->rng, 1, (sz - off) - (niov - 1 - i));
		if (slices) {
			bufs[i] = rill_buf_slice(whole, off, piece);
		} else {
			bufs[i] = rill_buf_new(piece);
			if (bufs[i] != NULL)
				gen_fill(bufs[i]->data, w->issued + off, piece);
		}
		if (bufs[i] == NULL)
			TH_FAIL("out of memory in the test");
		off += piece;
	}
	rill_buf_release(whole);
	for (unsigned i = 0; i < niov; i++)
		w->hash = fnv1a(w->hash, bufs[i]->data, bufs[i]->len);
	int err = rill_writev(w->f, bufs, niov, wr_cb, w);
	for (unsigned i = 0; i < niov; i++)
		rill_buf_release(bufs[i]);
	if (err != 0)
		return err;
	w->sizes[(w->head + w->inflight) % WR_MAX_INFLIGHT] = sz;
	w->inflight++;
	w->issued += sz;
	return 0;
}

static void wr_pump(struct wr *w)
{
	while (w->err == 0 && w->inflight < w->max_inflight &&
	       w->issued < w->total) {
		int err = wr_issue(w);
		if (err != 0) {
			w->err = err;
			w->done = true;
			return;
		}
	}
}

static void wr_init(struct wr *w, struct conf_ctx *c, struct rill_flow *f,
                    uint64_t total)
{
	memset(w, 0, sizeof *w);
	w->c = c;
	w->f = f;
	w->rng = rng_next(&c->rng) | 1;
	w->total = total;
	w->hash = FNV_OFFSET;
	w->max_inflight = 3;
	w->max_write = 256 * KIB;
	w->max_iov = 16;
	w->shut_after = true;
}

static void wr_poked(struct wr *w)
{
	wr_maybe_shut(w);
}

static void wr_start(struct wr *w)
{
	wr_pump(w);
	wr_maybe_shut(w);
}

static void wr_expect_ok(struct wr *w)
{
	TH_OK(w->err);
	TH_EQ_U64(w->acked, w->total);
	if (w->shut_after)
		TH_OK(w->shut_status);
}

/* ---------------------------------------------------------------------- */
/* Small helpers */

struct status_cb {
	int status;
	unsigned calls;
	bool done;
};

static void status_cb(struct rill_flow *f, int status, void *ud)
{
	struct status_cb *s = ud;
	(void)f;
	s->status = status;
	s->calls++;
	s->done = true;
}

static void never_read_cb(struct rill_flow *f, int status, struct rill_buf *buf,
                          void *ud)
{
	(void)f;
	(void)buf;
	(void)ud;
	TH_FAIL("a read callback ran that must never run (status %s)",
	        th_errname(status));
}

static void never_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	(void)ud;
	TH_FAIL("a write/shutdown callback ran that must never run (status "
	        "%s)",
	        th_errname(status));
}

/* Writes bytes (copied) and waits for the completion; returns status. */
static int write_wait(struct conf_ctx *c, struct rill_flow *f, const void *p,
                      size_t n)
{
	struct status_cb s = {0};
	int err = rill_write_copy(f, p, n, status_cb, &s);
	if (err != 0)
		return err;
	ctx_wait(c, &s.done, "a write to complete");
	return s.status;
}

static int shut_wait(struct conf_ctx *c, struct rill_flow *f, int mode)
{
	struct status_cb s = {0};
	int err = conf_shutdown(c, f, mode, status_cb, &s);
	if (err != 0)
		return err;
	ctx_wait(c, &s.done, "a shutdown to complete");
	TH_EQ_INT(s.calls, 1);
	return s.status;
}

/* One read: status, and the bytes appended to out/outlen if any. */
struct one_read {
	bool done;
	int status;
	struct rill_buf *buf;
	bool in_call;
	bool cb_in_call;
};

static void one_read_cb(struct rill_flow *f, int status, struct rill_buf *buf,
                        void *ud)
{
	struct one_read *o = ud;
	(void)f;
	if (o->done)
		TH_FAIL("a read callback ran twice");
	if (o->in_call)
		o->cb_in_call = true;
	o->done = true;
	o->status = status;
	o->buf = buf;
}

static int read_one(struct conf_ctx *c, struct rill_flow *f,
                    struct rill_buf **out)
{
	struct one_read o = {0};
	o.in_call = true;
	int err = rill_read(f, one_read_cb, &o);
	o.in_call = false;
	if (err != 0)
		TH_FAIL("rill_read failed synchronously: %s", th_errname(err));
	ctx_wait(c, &o.done, "a read to complete");
	if (o.cb_in_call)
		TH_FAIL("read callback ran inside rill_read");
	if (o.status == 0) {
		if (o.buf == NULL || o.buf->len == 0)
			TH_FAIL("read delivered an empty buffer");
	} else if (o.buf != NULL) {
		TH_FAIL("read error %s came with a buffer",
		        th_errname(o.status));
	}
	if (out != NULL)
		*out = o.buf;
	else
		rill_buf_release(o.buf);
	return o.status;
}

/* Reads everything until a non-zero status; returns it and the bytes. */
static int read_all(struct conf_ctx *c, struct rill_flow *f, uint8_t **data,
                    size_t *len)
{
	struct rd r;
	rd_init(&r, c, f, false);
	rd_start(&r);
	rd_wait(&r, "the reader to see EOF");
	if (r.zero_bufs)
		TH_FAIL("%u reads delivered a buffer of 0 bytes", r.zero_bufs);
	*len = (size_t)r.pos;
	*data = r.collect;
	r.collect = NULL;
	rd_fini(&r);
	return r.status;
}

static void expect_bytes(struct conf_ctx *c, struct rill_flow *f,
                         const void *want, size_t n, int end)
{
	uint8_t *got;
	size_t len;
	int st = read_all(c, f, &got, &len);
	if (len != n)
		TH_FAIL("received %zu bytes, expected %zu (then %s)", len, n,
		        th_errname(st));
	if (n > 0)
		TH_EQ_MEM(got, want, n);
	free(got);
	TH_EQ_ERR(st, end);
}

/* ---------------------------------------------------------------------- */
/* The checks */

/* How the peer's reads end after a close without shutdown(write). */
static int close_end(const struct conf_ctx *c)
{
	return c->fac->peer_close_status != 0 ? c->fac->peer_close_status
	                                      : RILL_EOF;
}

/* Hello, then EOF. */
static void ck_small_transfer(struct conf_ctx *c)
{
	TH_OK(write_wait(c, c->x, "hello, flow", 11));
	TH_OK(shut_wait(c, c->x, RILL_SHUT_WR));
	expect_bytes(c, c->y, "hello, flow", 11, RILL_EOF);
}

/* big bytes one way: random write sizes (1 B..256 KiB) and iovec splits,
 * several writes in flight, every byte checked, hashes compared. */
static void ck_big_one_way(struct conf_ctx *c)
{
	struct wr w;
	struct rd r;
	wr_init(&w, c, c->x, c->big);
	rd_init(&r, c, c->y, true);
	wr_start(&w);
	rd_start(&r);
	rd_wait(&r, "the reader to see EOF");
	ctx_wait(c, &w.done, "the writer to finish");
	wr_expect_ok(&w);
	rd_expect_stream(&r, c->big, w.hash);
	uint64_t rb, wb;
	rill_flow_counters(c->x, NULL, &wb, NULL, NULL);
	rill_flow_counters(c->y, &rb, NULL, NULL, NULL);
	TH_EQ_U64(wb, c->big);
	TH_EQ_U64(rb, c->big);
	rd_fini(&r);
}

/* big bytes both ways at once. Each side shuts its write side only after
 * it has read everything, so this needs no half-close. */
static void ck_big_both_ways(struct conf_ctx *c)
{
	struct wr wx, wy;
	struct rd rx, ry;
	wr_init(&wx, c, c->x, c->big);
	wr_init(&wy, c, c->y, c->big);
	rd_init(&rx, c, c->x, true);
	rd_init(&ry, c, c->y, true);
	/* x shuts down once x has read all of y's bytes, and vice versa. */
	wx.wait_rd = &rx;
	wx.wait_pos = c->big;
	rx.poke = &wx;
	wy.wait_rd = &ry;
	wy.wait_pos = c->big;
	ry.poke = &wy;
	wr_start(&wx);
	wr_start(&wy);
	rd_start(&rx);
	rd_start(&ry);
	rd_wait(&rx, "x to read everything");
	rd_wait(&ry, "y to read everything");
	ctx_wait(c, &wx.done, "x's writes");
	ctx_wait(c, &wy.done, "y's writes");
	wr_expect_ok(&wx);
	wr_expect_ok(&wy);
	rd_expect_stream(&ry, c->big, wx.hash);
	rd_expect_stream(&rx, c->big, wy.hash);
	rd_fini(&rx);
	rd_fini(&ry);
}

/* Writes issued back to back and shutdown(write) at once, without waiting
 * for any completion: the reader still gets every byte, then EOF. The
 * reader starts late, when data and EOF have both arrived, so a flow that
 * looks at its EOF flag before its data is caught. */
static void ck_data_before_eof(struct conf_ctx *c)
{
	static const size_t sizes[] = {1, 100 * KIB, 3, 7 * KIB + 5, 1};
	size_t total = 0;
	for (size_t i = 0; i < 5; i++)
		total += sizes[i];
	uint8_t *all = malloc(total);
	gen_fill(all, 0, total);
	struct status_cb cbs[5] = {{0}};
	size_t off = 0;
	for (size_t i = 0; i < 5; i++) {
		if (i == 2) {
			/* a writev of three slices */
			struct rill_buf *b = rill_buf_copy(all + off, sizes[i]);
			struct rill_buf *v[3] = {rill_buf_slice(b, 0, 1),
			                         rill_buf_slice(b, 1, 1),
			                         rill_buf_slice(b, 2, 1)};
			TH_OK(rill_writev(c->x, v, 3, status_cb, &cbs[i]));
			for (int k = 0; k < 3; k++)
				rill_buf_release(v[k]);
			rill_buf_release(b);
		} else {
			TH_OK(rill_write_copy(c->x, all + off, sizes[i],
			                      status_cb, &cbs[i]));
		}
		off += sizes[i];
	}
	struct status_cb sh = {0};
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, status_cb, &sh));
	/* Give data and EOF time to arrive (a transport with a small window
	 * completes the shutdown only once the reader reads). */
	for (int i = 0; i < 20 && !sh.done; i++)
		ctx_run_for(c, 10);
	expect_bytes(c, c->y, all, total, RILL_EOF);
	ctx_wait(c, &sh.done, "the shutdown to complete");
	for (size_t i = 0; i < 5; i++) {
		TH_EQ_INT(cbs[i].calls, 1);
		TH_OK(cbs[i].status);
	}
	TH_OK(sh.status);
	free(all);
}

struct eof_again {
	struct conf_ctx *c;
	unsigned calls;
	int statuses[4];
	bool in_call;
	bool cb_in_call;
	bool done;
};

static void eof_again_cb(struct rill_flow *f, int status, struct rill_buf *buf,
                         void *ud)
{
	struct eof_again *e = ud;
	if (buf != NULL) {
		rill_buf_release(buf);
		TH_FAIL("data after shutdown(write) with nothing written");
	}
	if (e->in_call)
		e->cb_in_call = true;
	e->statuses[e->calls++] = status;
	if (e->calls < 4) {
		/* Read again from inside the EOF callback. */
		e->in_call = true;
		int err = rill_read(f, eof_again_cb, e);
		e->in_call = false;
		if (err != 0)
			TH_FAIL("rill_read after EOF failed synchronously: %s",
			        th_errname(err));
	} else {
		e->done = true;
	}
}

/* After EOF, every later read reports EOF again, asynchronously. */
static void ck_read_after_eof(struct conf_ctx *c)
{
	TH_OK(shut_wait(c, c->x, RILL_SHUT_WR));
	struct eof_again e = {.c = c};
	e.in_call = true;
	TH_OK(rill_read(c->y, eof_again_cb, &e));
	e.in_call = false;
	ctx_wait(c, &e.done, "four EOFs");
	for (int i = 0; i < 4; i++)
		TH_EQ_ERR(e.statuses[i], RILL_EOF);
	TH_TRUE(!e.cb_in_call);
	/* And once more from outside a callback, after a pause. */
	ctx_run_for(c, 5);
	TH_EQ_ERR(read_one(c, c->y, NULL), RILL_EOF);
}

/* Writes after shutdown(write) fail RILL_ECLOSED at once, before and
 * after the shutdown completed; the peer sees exactly the data before. */
static void ck_write_after_shutdown(struct conf_ctx *c)
{
	struct status_cb w1 = {0}, sh = {0};
	TH_OK(rill_write_copy(c->x, "abc", 3, status_cb, &w1));
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, status_cb, &sh));
	struct rill_buf *b = rill_buf_copy("zz", 2);
	struct rill_buf *e = rill_buf_new(0);
	TH_EQ_ERR(rill_write(c->x, b, never_write_cb, NULL), RILL_ECLOSED);
	TH_EQ_ERR(rill_writev(c->x, &b, 1, never_write_cb, NULL), RILL_ECLOSED);
	TH_EQ_ERR(rill_write_copy(c->x, "zz", 2, never_write_cb, NULL),
	          RILL_ECLOSED);
	TH_EQ_ERR(rill_write(c->x, e, never_write_cb, NULL), RILL_ECLOSED);
	ctx_wait(c, &sh.done, "the shutdown to complete");
	TH_OK(w1.status);
	TH_OK(sh.status);
	TH_EQ_ERR(rill_write(c->x, b, never_write_cb, NULL), RILL_ECLOSED);
	TH_EQ_ERR(rill_writev(c->x, NULL, 0, never_write_cb, NULL),
	          RILL_ECLOSED);
	rill_buf_release(b);
	rill_buf_release(e);
	expect_bytes(c, c->y, "abc", 3, RILL_EOF);
}

/* Every operation on a closed flow fails RILL_ECLOSED (or is a no-op),
 * without a callback; the flow's memory is valid until the loop runs. */
static void ck_ops_after_close(struct conf_ctx *c)
{
	struct rill_flow *x = c->x;
	struct rill_buf *b = rill_buf_copy("zz", 2);
	ctx_close(&c->x);
	TH_EQ_ERR(rill_read(x, never_read_cb, NULL), RILL_ECLOSED);
	TH_EQ_ERR(rill_write(x, b, never_write_cb, NULL), RILL_ECLOSED);
	TH_EQ_ERR(rill_writev(x, &b, 1, never_write_cb, NULL), RILL_ECLOSED);
	TH_EQ_ERR(rill_write_copy(x, "zz", 2, never_write_cb, NULL),
	          RILL_ECLOSED);
	TH_EQ_ERR(rill_shutdown(x, RILL_SHUT_WR, never_write_cb, NULL),
	          RILL_ECLOSED);
	TH_EQ_ERR(rill_shutdown(x, RILL_SHUT_RD, never_write_cb, NULL),
	          RILL_ECLOSED);
	TH_EQ_ERR(rill_set_read_timeout(x, 10), RILL_ECLOSED);
	TH_EQ_ERR(rill_set_write_timeout(x, 10), RILL_ECLOSED);
	rill_close(x); /* second close: a no-op */
	rill_buf_release(b);
	/* The peer drains and sees the end. */
	ctx_run_for(c, 5);
	uint8_t *got;
	size_t len;
	int st = read_all(c, c->y, &got, &len);
	free(got);
	TH_EQ_INT(len, 0);
	if (st != close_end(c) && st != RILL_ECONNRESET)
		TH_FAIL("peer read ended with %s after the close, expected %s",
		        th_errname(st), th_errname(close_end(c)));
}

/* A shuts its write side; B still sends a lot, and A reads all of it. */
static void ck_half_close(struct conf_ctx *c)
{
	if (c->fac->caps_missing & CONF_NO_HALF_CLOSE)
		TH_SKIP("%s: %s", c->fac->name,
		        c->fac->why_missing ? c->fac->why_missing
		                            : "no half-close");
	TH_OK(write_wait(c, c->x, "last words", 10));
	TH_OK(shut_wait(c, c->x, RILL_SHUT_WR));
	expect_bytes(c, c->y, "last words", 10, RILL_EOF);
	/* y -> x still works, in quantity. */
	uint64_t n = c->big / 8 > 4 * MIB ? c->big / 8 : 4 * MIB;
	if (n > c->big)
		n = c->big;
	struct wr w;
	struct rd r;
	wr_init(&w, c, c->y, n);
	rd_init(&r, c, c->x, true);
	wr_start(&w);
	rd_start(&r);
	rd_wait(&r, "x to read everything y sent after x's shutdown");
	ctx_wait(c, &w.done, "y's writes");
	wr_expect_ok(&w);
	rd_expect_stream(&r, n, w.hash);
	rd_fini(&r);
	/* And x's write side stays shut. */
	TH_EQ_ERR(rill_write_copy(c->x, "x", 1, never_write_cb, NULL),
	          RILL_ECLOSED);
}

/* Reads exactly n bytes (n <= 64) and compares them with want. */
static void read_exactly(struct conf_ctx *c, struct rill_flow *f,
                         const void *want, size_t n)
{
	uint8_t got[64];
	size_t have = 0;
	while (have < n) {
		struct rill_buf *b = NULL;
		TH_OK(read_one(c, f, &b));
		TH_TRUE(have + b->len <= n);
		memcpy(got + have, b->data, b->len);
		have += b->len;
		rill_buf_release(b);
	}
	TH_EQ_MEM(got, want, n);
}

/* The kind's half-close is what the factory declares. Without one,
 * RILL_SHUT_WR alone is refused while reads are open (RILL_ENOHALFCLOSE,
 * synchronously, callback never called) and changes nothing: both
 * directions go on; once x's reads ended, it is allowed. */
static void ck_half_close_declared(struct conf_ctx *c)
{
	bool declared = !(c->fac->caps_missing & CONF_NO_HALF_CLOSE);
	bool cx = rill_flow_can_half_close(c->x);
	bool cy = rill_flow_can_half_close(c->y);
	if (declared) {
		TH_TRUE(cx && cy);
		return;
	}
	/* At least one end cannot (a hybrid-vsock host's end can't, the
	 * guest's end behind the VMM can): its shutdown is refused. */
	if (cx && cy)
		TH_FAIL("declared without half-close, but both ends say they "
		        "can");
	struct rill_flow *n = cx ? c->y : c->x, *p = cx ? c->x : c->y;
	TH_EQ_ERR(rill_shutdown(n, RILL_SHUT_WR, never_write_cb, NULL),
	          RILL_ENOHALFCLOSE);
	TH_TRUE(rill_flow_errmsg(n) != NULL);
	TH_OK(write_wait(c, n, "still here", 10));
	TH_OK(write_wait(c, p, "me too", 6));
	read_exactly(c, p, "still here", 10);
	read_exactly(c, n, "me too", 6);
	/* Once n's reads are over, its write side may end. */
	TH_OK(rill_shutdown(n, RILL_SHUT_RD, NULL, NULL));
	TH_OK(shut_wait(c, n, RILL_SHUT_WR));
	TH_EQ_ERR(read_one(c, p, NULL), RILL_EOF);
}

/* shutdown(read): the pending read and later reads report EOF; the write
 * side keeps working. */
static void ck_shutdown_read(struct conf_ctx *c)
{
	struct one_read o = {0};
	TH_OK(rill_read(c->y, one_read_cb, &o));
	ctx_run_for(c, 2);
	TH_TRUE(!o.done);
	struct status_cb s = {0};
	TH_OK(rill_shutdown(c->y, RILL_SHUT_RD, status_cb, &s));
	TH_TRUE(!o.done); /* never inside the call */
	ctx_wait(c, &o.done, "the pending read to end");
	TH_EQ_ERR(o.status, RILL_EOF);
	TH_TRUE(o.buf == NULL);
	ctx_wait(c, &s.done, "the shutdown callback");
	TH_OK(s.status);
	TH_EQ_ERR(read_one(c, c->y, NULL), RILL_EOF);
	/* Data the peer sends now is not delivered locally. */
	struct status_cb w = {0};
	int err = rill_write_copy(c->x, "late", 4, status_cb, &w);
	TH_TRUE(err == 0 || err == RILL_ECLOSED);
	ctx_run_for(c, 10);
	TH_EQ_ERR(read_one(c, c->y, NULL), RILL_EOF);
	/* y can still send, and x reads it. */
	TH_OK(write_wait(c, c->y, "still here", 10));
	TH_OK(shut_wait(c, c->y, RILL_SHUT_WR));
	struct rill_buf *b = NULL;
	uint8_t got[10];
	size_t n = 0;
	while (n < 10) {
		int st = read_one(c, c->x, &b);
		if (st != 0)
			TH_FAIL("x read %s after %zu of 10 bytes",
			        th_errname(st), n);
		if (b->len > 10 - n)
			TH_FAIL("x read more than y sent");
		memcpy(got + n, b->data, b->len);
		n += b->len;
		rill_buf_release(b);
	}
	TH_EQ_MEM(got, "still here", 10);
	TH_EQ_ERR(read_one(c, c->x, NULL), RILL_EOF);
	if (err == 0 && !w.done)
		ctx_run_for(c, 10); /* the late write may still be pending */
}

/* shutdown(read_write): reads EOF, writes closed, peer sees EOF. */
static void ck_shutdown_rdwr(struct conf_ctx *c)
{
	TH_OK(write_wait(c, c->x, "bye", 3));
	struct one_read o = {0};
	TH_OK(rill_read(c->x, one_read_cb, &o));
	TH_OK(shut_wait(c, c->x, RILL_SHUT_RDWR));
	ctx_wait(c, &o.done, "the pending read to end");
	TH_EQ_ERR(o.status, RILL_EOF);
	TH_EQ_ERR(read_one(c, c->x, NULL), RILL_EOF);
	TH_EQ_ERR(rill_write_copy(c->x, "x", 1, never_write_cb, NULL),
	          RILL_ECLOSED);
	expect_bytes(c, c->y, "bye", 3, RILL_EOF);
}

/* Close twice, and close(NULL): harmless. */
static void ck_double_close(struct conf_ctx *c)
{
	TH_OK(write_wait(c, c->x, "data", 4));
	struct rill_flow *x = c->x;
	rill_close(x);
	rill_close(x);
	c->x = NULL;
	rill_close(NULL);
	ctx_run_for(c, 5);
	expect_bytes(c, c->y, "data", 4, close_end(c));
	rill_close(c->y);
	rill_close(c->y);
	c->y = NULL;
	TH_TRUE(true);
}

struct close_in_cb {
	struct conf_ctx *c;
	struct rill_flow **slot;
	unsigned calls;
	int after_close_err;
	bool done;
};

static void close_in_read_cb(struct rill_flow *f, int status,
                             struct rill_buf *buf, void *ud)
{
	struct close_in_cb *s = ud;
	s->calls++;
	s->done = true;
	rill_buf_release(buf);
	(void)status;
	rill_close(f);
	*s->slot = NULL;
	/* f stays valid until this callback returns */
	s->after_close_err = rill_read(f, never_read_cb, NULL);
}

/* Close inside the flow's own read callback: no further callback, and the
 * peer's operations end cleanly. */
static void ck_close_in_read_cb(struct conf_ctx *c)
{
	struct status_cb w = {0};
	struct rill_buf *b = rill_buf_new(256 * KIB);
	gen_fill(b->data, 0, b->len);
	TH_OK(rill_write(c->x, b, status_cb, &w));
	rill_buf_release(b);
	struct close_in_cb s = {.c = c, .slot = &c->y};
	TH_OK(rill_read(c->y, close_in_read_cb, &s));
	ctx_wait(c, &s.done, "the read callback");
	TH_EQ_ERR(s.after_close_err, RILL_ECLOSED);
	/* The peer's write ends one way or the other. */
	ctx_wait(c, &w.done, "the peer's write to end after the close");
	TH_TRUE(w.status == 0 || w.status == RILL_ECLOSED ||
	        w.status == RILL_ECONNRESET);
	ctx_run_for(c, 10);
	TH_EQ_INT(s.calls, 1);
}

struct close_in_wcb {
	struct rill_flow **slot;
	unsigned calls;
	int after_close_err;
};

static void close_in_write_cb(struct rill_flow *f, int status, void *ud)
{
	struct close_in_wcb *s = ud;
	(void)status;
	s->calls++;
	rill_close(f);
	*s->slot = NULL;
	s->after_close_err = rill_write_copy(f, "x", 1, never_write_cb, NULL);
}

/* Close inside a write callback while more writes and a shutdown are
 * queued: their callbacks never run. */
static void ck_close_in_write_cb(struct conf_ctx *c)
{
	struct close_in_wcb s = {.slot = &c->x};
	TH_OK(rill_write_copy(c->x, "first", 5, close_in_write_cb, &s));
	struct rill_buf *big = rill_buf_new(512 * KIB);
	gen_fill(big->data, 0, big->len);
	TH_OK(rill_write(c->x, big, never_write_cb, NULL));
	TH_OK(rill_write(c->x, big, never_write_cb, NULL));
	rill_buf_release(big);
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, never_write_cb, NULL));
	struct rd r;
	rd_init(&r, c, c->y, false);
	rd_start(&r);
	rd_wait(&r, "the peer to see the end of the stream");
	TH_EQ_INT(s.calls, 1);
	TH_EQ_ERR(s.after_close_err, RILL_ECLOSED);
	TH_TRUE(r.pos >= 5);
	TH_EQ_MEM(r.collect, "first", 5);
	if (r.status != close_end(c) && r.status != RILL_ECONNRESET)
		TH_FAIL("peer read ended with %s after the close, expected %s",
		        th_errname(r.status), th_errname(close_end(c)));
	rd_fini(&r);
	ctx_run_for(c, 5);
	TH_EQ_INT(s.calls, 1);
}

struct cb_count {
	unsigned calls;
};

static void count_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	(void)status;
	((struct cb_count *)ud)->calls++;
}

/* Close with many writes queued (the reader stalls): no callback after
 * the close, and every byte is freed (checked at teardown). */
static void ck_close_with_writes_pending(struct conf_ctx *c)
{
	struct cb_count n = {0};
	for (int i = 0; i < 12; i++) {
		struct rill_buf *b = rill_buf_new(1 * MIB);
		gen_fill(b->data, (uint64_t)i * MIB, b->len);
		TH_OK(rill_write(c->x, b, count_write_cb, &n));
		rill_buf_release(b);
	}
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, count_write_cb, &n));
	ctx_run_for(c, 30);
	unsigned before = n.calls;
	TH_TRUE(before <= 13);
	ctx_close(&c->x);
	ctx_run_for(c, 30);
	TH_EQ_INT(n.calls, before);
	/* The reader gets a prefix of the stream, then the end. */
	struct rd r;
	rd_init(&r, c, c->y, true);
	rd_start(&r);
	rd_wait(&r, "the reader to see the end");
	TH_TRUE(!r.bad);
	if (r.status != close_end(c) && r.status != RILL_ECONNRESET)
		TH_FAIL("peer read ended with %s after the close, expected %s",
		        th_errname(r.status), th_errname(close_end(c)));
	rd_fini(&r);
	TH_EQ_INT(n.calls, before);
}

/* Close with a read pending: its callback never runs. */
static void ck_close_with_read_pending(struct conf_ctx *c)
{
	TH_OK(rill_read(c->x, never_read_cb, NULL));
	ctx_run_for(c, 5);
	ctx_close(&c->x);
	/* Data arriving now must not reach the closed flow's callback. */
	struct status_cb w = {0};
	int err = rill_write_copy(c->y, "late", 4, status_cb, &w);
	TH_TRUE(err == 0 || err == RILL_ECLOSED);
	ctx_run_for(c, 20);
	TH_TRUE(true);
}

/* A second read while one is pending fails RILL_EALREADY at once; the
 * first read still completes normally. */
static void ck_second_read_pending(struct conf_ctx *c)
{
	struct one_read o = {0};
	TH_OK(rill_read(c->y, one_read_cb, &o));
	TH_EQ_ERR(rill_read(c->y, never_read_cb, NULL), RILL_EALREADY);
	ctx_run_for(c, 2);
	TH_EQ_ERR(rill_read(c->y, never_read_cb, NULL), RILL_EALREADY);
	TH_OK(write_wait(c, c->x, "abc", 3));
	ctx_wait(c, &o.done, "the first read");
	TH_OK(o.status);
	TH_TRUE(o.buf != NULL && o.buf->len >= 1 && o.buf->len <= 3);
	TH_EQ_MEM(o.buf->data, "abc", o.buf->len);
	size_t got = o.buf->len;
	rill_buf_release(o.buf);
	TH_OK(shut_wait(c, c->x, RILL_SHUT_WR));
	static const char abc[] = "abc";
	expect_bytes(c, c->y, abc + got, 3 - got, RILL_EOF);
}

/* The reader stalls: the writer's completions stop (back-pressure), and
 * the memory rill holds stays bounded. Then the reader drains and every
 * byte arrives. Kernel socket buffers absorb a few MB, hence the bound
 * (the factory's absorb_bytes, by default 16 MiB). */
#define SLOW_BOUND_DEFAULT (16u * MIB)

static uint64_t slow_bound(const struct conf_ctx *c)
{
	return c->fac->absorb_bytes ? c->fac->absorb_bytes : SLOW_BOUND_DEFAULT;
}

struct slow {
	struct wr *w;
	uint64_t bound;
	uint64_t last_acked;
	bool stalled;
	uv_timer_t t;
};

static void slow_tick(uv_timer_t *t)
{
	struct slow *s = t->data;
	if (s->w->acked == s->last_acked || s->w->done ||
	    s->w->acked > s->bound) {
		s->stalled = true;
		uv_timer_stop(t);
		return;
	}
	s->last_acked = s->w->acked;
}

static void ck_slow_reader(struct conf_ctx *c)
{
	size_t base = conf_live_bytes();
	/* More than the flow may absorb, so that a flow without
	 * back-pressure acknowledges more than the bound. */
	uint64_t bound = slow_bound(c);
	uint64_t total = bound + bound / 2;
	struct wr w;
	wr_init(&w, c, c->x, total);
	w.max_inflight = 2;
	w.max_write = 64 * KIB;
	w.max_iov = 4;
	struct slow s = {.w = &w, .bound = bound};
	uv_timer_init(&c->loop, &s.t);
	s.t.data = &s;
	uv_timer_start(&s.t, slow_tick, 300, 300);
	wr_start(&w);
	ctx_wait(c, &s.stalled, "the writer to stall");
	size_t live = conf_live_bytes() - base;
	th_note("writer stalled after %" PRIu64 " bytes acknowledged, "
	        "%zu bytes live in rill",
	        w.acked, live);
	if (w.acked > bound)
		TH_FAIL("no back-pressure: %" PRIu64 " bytes acknowledged to a "
		        "writer whose peer reads nothing",
		        w.acked);
	TH_OK(w.err);
	TH_CMP_INT(live, <, bound);
	/* Still stalled a little later. */
	uint64_t acked = w.acked;
	ctx_run_for(c, 100);
	TH_EQ_U64(w.acked, acked);
	ctx_close_handle(c, (uv_handle_t *)&s.t);
	/* Drain: everything arrives. */
	struct rd r;
	rd_init(&r, c, c->y, true);
	rd_start(&r);
	rd_wait(&r, "the reader to drain");
	ctx_wait(c, &w.done, "the writer to finish");
	wr_expect_ok(&w);
	rd_expect_stream(&r, total, w.hash);
	rd_fini(&r);
}

/* Zero-length writes succeed and send nothing (documented in rill.h). */
static void ck_zero_length_write(struct conf_ctx *c)
{
	struct status_cb s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0};
	struct rill_buf *e = rill_buf_new(0);
	struct rill_buf *ab = rill_buf_copy("ab", 2);
	struct rill_buf *cc = rill_buf_copy("c", 1);
	TH_OK(rill_write(c->x, e, status_cb, &s1));
	TH_OK(rill_writev(c->x, NULL, 0, status_cb, &s2));
	struct rill_buf *v[4] = {e, ab, e, cc};
	TH_OK(rill_writev(c->x, v, 4, status_cb, &s3));
	TH_OK(rill_write_copy(c->x, NULL, 0, status_cb, &s4));
	TH_TRUE(!s1.done && !s2.done && !s3.done && !s4.done);
	rill_buf_release(e);
	rill_buf_release(ab);
	rill_buf_release(cc);
	ctx_wait(c, &s4.done, "the zero-length writes");
	TH_TRUE(s1.done && s2.done && s3.done);
	TH_OK(s1.status);
	TH_OK(s2.status);
	TH_OK(s3.status);
	TH_OK(s4.status);
	TH_OK(shut_wait(c, c->x, RILL_SHUT_WR));
	expect_bytes(c, c->y, "abc", 3, RILL_EOF);
	uint64_t wb;
	rill_flow_counters(c->x, NULL, &wb, NULL, NULL);
	TH_EQ_U64(wb, 3);
}

/* The peer goes away: writes fail with a closed (or reset) error, and
 * that error sticks for every later write. */
static void ck_sticky_write_error(struct conf_ctx *c)
{
	ctx_close(&c->y);
	struct rill_buf *b = rill_buf_new(64 * KIB);
	gen_fill(b->data, 0, b->len);
	int err = 0;
	uint64_t sent = 0;
	while (err == 0 && sent < 512u * MIB) {
		struct status_cb s = {0};
		err = rill_write(c->x, b, status_cb, &s);
		if (err != 0)
			break; /* failed synchronously: already sticky */
		ctx_wait(c, &s.done, "a write to a closed peer to end");
		err = s.status;
		sent += b->len;
	}
	th_note("writes failed with %s after %" PRIu64 " bytes",
	        th_errname(err), sent);
	TH_TRUE(err == RILL_ECLOSED || err == RILL_ECONNRESET);
	TH_EQ_ERR(rill_write(c->x, b, never_write_cb, NULL), err);
	TH_EQ_ERR(rill_write_copy(c->x, "a", 1, never_write_cb, NULL), err);
	ctx_run_for(c, 5);
	TH_EQ_ERR(rill_write(c->x, b, never_write_cb, NULL), err);
	rill_buf_release(b);
	/* A shutdown(write) now reports the sticky error or nothing new. */
	struct status_cb sh = {0};
	int se = conf_shutdown(c, c->x, RILL_SHUT_WR, status_cb, &sh);
	if (se == 0) {
		ctx_wait(c, &sh.done, "the shutdown");
		TH_TRUE(sh.status == 0 || sh.status == err);
	}
}

/* The peer writes, waits for completion, closes: the reader gets every
 * byte, then EOF. */
static void ck_peer_close_eof_after_drain(struct conf_ctx *c)
{
	/* A flow with little buffering needs the reader to run for the
	 * write to complete, so the reader starts first. */
	struct rd r;
	rd_init(&r, c, c->y, true);
	rd_start(&r);
	uint8_t *data = malloc(100 * KIB);
	gen_fill(data, 0, 100 * KIB);
	TH_OK(write_wait(c, c->x, data, 100 * KIB));
	free(data);
	ctx_close(&c->x);
	rd_wait(&r, "the reader to see the end");
	TH_TRUE(!r.bad);
	TH_EQ_U64(r.pos, 100 * KIB);
	TH_EQ_ERR(r.status, close_end(c));
	rd_fini(&r);
	TH_EQ_ERR(read_one(c, c->y, NULL), close_end(c));
}

/* A reset peer: reads report RILL_ECONNRESET (not EOF), and keep doing. */
static void ck_peer_reset(struct conf_ctx *c)
{
	if (c->fac->reset == NULL)
		TH_SKIP("%s: the factory cannot reset a connection",
		        c->fac->name);
	struct one_read o = {0};
	TH_OK(rill_read(c->y, one_read_cb, &o));
	int err = c->fac->reset(c->x, c->fac->arg);
	c->x = NULL;
	TH_OK(err);
	ctx_wait(c, &o.done, "the read to see the reset");
	TH_EQ_ERR(o.status, RILL_ECONNRESET);
	TH_EQ_ERR(read_one(c, c->y, NULL), RILL_ECONNRESET);
}

struct order {
	unsigned next;
	unsigned bad;
	bool shut_seen;
	bool shut_early;
};

struct order_ud {
	struct order *o;
	unsigned idx;
};

static void order_cb(struct rill_flow *f, int status, void *ud)
{
	struct order_ud *u = ud;
	(void)f;
	if (status != 0)
		TH_FAIL("write %u failed: %s", u->idx, th_errname(status));
	if (u->idx != u->o->next)
		u->o->bad++;
	if (u->o->shut_seen)
		u->o->shut_early = true;
	u->o->next++;
}

static void order_shut_cb(struct rill_flow *f, int status, void *ud)
{
	struct order *o = ud;
	(void)f;
	TH_OK(status);
	o->shut_seen = true;
}

/* 64 writes of random sizes, all queued at once, then shutdown: the
 * callbacks run in order, the shutdown's last; the bytes arrive in order. */
static void ck_write_cb_order(struct conf_ctx *c)
{
	enum { N = 64 };
	struct order o = {0};
	struct order_ud uds[N];
	uint64_t pos = 0, hash = FNV_OFFSET;
	for (unsigned i = 0; i < N; i++) {
		size_t sz = rng_range(&c->rng, 1, 32 * KIB);
		struct rill_buf *b = rill_buf_new(sz);
		gen_fill(b->data, pos, sz);
		hash = fnv1a(hash, b->data, sz);
		pos += sz;
		uds[i].o = &o;
		uds[i].idx = i;
		TH_OK(rill_write(c->x, b, order_cb, &uds[i]));
		rill_buf_release(b);
	}
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, order_shut_cb, &o));
	struct rd r;
	rd_init(&r, c, c->y, true);
	rd_start(&r);
	rd_wait(&r, "the reader");
	ctx_wait(c, &o.shut_seen, "the shutdown callback");
	TH_EQ_INT(o.next, N);
	TH_EQ_INT(o.bad, 0);
	TH_TRUE(!o.shut_early);
	rd_expect_stream(&r, pos, hash);
	rd_fini(&r);
}

/* writev with many buffers (more than IOV_MAX), tiny and slices. */
static void ck_writev_many(struct conf_ctx *c)
{
	enum { N = 2500 };
	struct rill_buf **v = calloc(N, sizeof *v);
	uint64_t pos = 0, hash = FNV_OFFSET;
	struct rill_buf *whole = rill_buf_new(N * 40);
	gen_fill(whole->data, 0, whole->len);
	for (unsigned i = 0; i < N; i++) {
		size_t sz = rng_range(&c->rng, 1, 40);
		if (i % 3 == 0) {
			v[i] = rill_buf_new(sz);
			gen_fill(v[i]->data, pos, sz);
		} else {
			/* a slice of `whole` at the same stream offset */
			v[i] = rill_buf_slice(whole, (size_t)pos, sz);
		}
		hash = fnv1a(hash, v[i]->data, sz);
		pos += sz;
	}
	struct status_cb s = {0};
	TH_OK(rill_writev(c->x, v, N, status_cb, &s));
	for (unsigned i = 0; i < N; i++)
		rill_buf_release(v[i]);
	rill_buf_release(whole);
	free(v);
	/* And a writev of 1100 one-byte buffers. */
	enum { M = 1100 };
	struct rill_buf **u = calloc(M, sizeof *u);
	for (unsigned i = 0; i < M; i++) {
		u[i] = rill_buf_new(1);
		gen_fill(u[i]->data, pos + i, 1);
		hash = fnv1a(hash, u[i]->data, 1);
	}
	pos += M;
	struct status_cb s2 = {0};
	TH_OK(rill_writev(c->x, u, M, status_cb, &s2));
	for (unsigned i = 0; i < M; i++)
		rill_buf_release(u[i]);
	free(u);
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, NULL, NULL));
	struct rd r;
	rd_init(&r, c, c->y, true);
	rd_start(&r);
	rd_wait(&r, "the reader");
	ctx_wait(c, &s2.done, "the writevs");
	TH_OK(s.status);
	TH_OK(s2.status);
	rd_expect_stream(&r, pos, hash);
	rd_fini(&r);
}

/* A read deadline: RILL_ETIMEDOUT (not EOF), and it sticks. */
static void ck_read_deadline(struct conf_ctx *c)
{
	TH_OK(rill_set_read_timeout(c->y, 80));
	uint64_t t0 = uv_now(&c->loop);
	TH_EQ_ERR(read_one(c, c->y, NULL), RILL_ETIMEDOUT);
	uv_update_time(&c->loop);
	TH_CMP_INT(uv_now(&c->loop) - t0, >=, 40);
	TH_EQ_ERR(read_one(c, c->y, NULL), RILL_ETIMEDOUT);
	/* Data arriving later does not revive the read side. */
	TH_OK(write_wait(c, c->x, "late", 4));
	ctx_run_for(c, 10);
	TH_EQ_ERR(read_one(c, c->y, NULL), RILL_ETIMEDOUT);
}

/* A write deadline against a reader that never reads: RILL_ETIMEDOUT,
 * sticky for later writes. */
static void ck_write_deadline(struct conf_ctx *c)
{
	TH_OK(rill_set_write_timeout(c->x, 80));
	struct rill_buf *b = rill_buf_new(1 * MIB);
	gen_fill(b->data, 0, b->len);
	int err = 0;
	uint64_t sent = 0;
	while (err == 0 && sent < 256u * MIB) {
		struct status_cb s = {0};
		err = rill_write(c->x, b, status_cb, &s);
		if (err != 0)
			break;
		ctx_wait(c, &s.done, "a write to complete or time out");
		err = s.status;
		sent += b->len;
	}
	TH_EQ_ERR(err, RILL_ETIMEDOUT);
	TH_EQ_ERR(rill_write(c->x, b, never_write_cb, NULL), RILL_ETIMEDOUT);
	rill_buf_release(b);
}

/* Deadlines measure progress, not the length of a transfer: a transfer
 * that takes several deadlines' worth of time in total, with writes always
 * queued and a reader that pauses often (but briefly), never times out. */
static uint64_t env_u64(const char *name, uint64_t dflt);

static void ck_deadline_progress(struct conf_ctx *c)
{
	/* Deadlines of 1 s (a loaded machine can stall a process for a good
	 * fraction of that), a transfer paused 150 ms every 192 KiB: about
	 * 1.5 s in total. CONF_TIME_SCALE=K stretches both K times, for an
	 * emulated CPU (the QEMU guests of tests/vm/): the transfer still
	 * lasts longer than one deadline. */
	uint64_t k = env_u64("CONF_TIME_SCALE", 1);
	k = k > 0 ? k : 1;
	TH_OK(rill_set_write_timeout(c->x, 1000 * k));
	TH_OK(rill_set_read_timeout(c->y, 1000 * k));
	uint64_t total = 2 * MIB;
	struct wr w;
	struct rd r;
	wr_init(&w, c, c->x, total);
	w.max_inflight = 4;
	w.max_write = 32 * KIB;
	rd_init(&r, c, c->y, true);
	r.pause_bytes = 192 * KIB;
	r.pause_every = 150 * k;
	r.next_pause = r.pause_bytes;
	uint64_t t0 = uv_now(&c->loop);
	wr_start(&w);
	rd_start(&r);
	rd_wait(&r, "the reader");
	ctx_wait(c, &w.done, "the writer");
	uv_update_time(&c->loop);
	th_note("transfer took %" PRIu64 " ms with %" PRIu64 " ms deadlines",
	        uv_now(&c->loop) - t0, 1000 * k);
	wr_expect_ok(&w);
	rd_expect_stream(&r, total, w.hash);
	rd_fini(&r);
}

/* A second shutdown(write) is harmless; its callback reports 0. */
static void ck_double_shutdown_write(struct conf_ctx *c)
{
	struct status_cb s1 = {0}, s2 = {0}, s3 = {0};
	TH_OK(rill_write_copy(c->x, "once", 4, NULL, NULL));
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, status_cb, &s1));
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, status_cb, &s2));
	ctx_wait(c, &s2.done, "the second shutdown");
	TH_TRUE(s1.done);
	TH_OK(s1.status);
	TH_OK(s2.status);
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, status_cb, &s3));
	ctx_wait(c, &s3.done, "the third shutdown");
	TH_OK(s3.status);
	expect_bytes(c, c->y, "once", 4, RILL_EOF);
	TH_EQ_INT(s1.calls + s2.calls + s3.calls, 3);
}

/* Bad arguments give RILL_EINVAL, never a crash, and leave the flow
 * working. */
static void ck_bad_arguments(struct conf_ctx *c)
{
	struct rill_buf *b = rill_buf_copy("ok", 2);
	struct rill_buf *vnull[2] = {b, NULL};
	TH_EQ_ERR(rill_read(NULL, never_read_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_read(c->x, NULL, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_write(NULL, b, never_write_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_write(c->x, NULL, never_write_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_writev(c->x, NULL, 1, never_write_cb, NULL),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_writev(c->x, vnull, 2, never_write_cb, NULL),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_write_copy(c->x, NULL, 5, never_write_cb, NULL),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_shutdown(NULL, RILL_SHUT_WR, never_write_cb, NULL),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_shutdown(c->x, 0, never_write_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_shutdown(c->x, 4, never_write_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_shutdown(c->x, -1, never_write_cb, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_set_read_timeout(NULL, 1), RILL_EINVAL);
	TH_EQ_ERR(rill_set_write_timeout(NULL, 1), RILL_EINVAL);
	struct rill_buf *out = b;
	TH_EQ_ERR(rill_read_sync(NULL, &out), RILL_EINVAL);
	TH_TRUE(out == NULL);
	TH_EQ_ERR(rill_write_sync(NULL, "x", 1), RILL_EINVAL);
	TH_EQ_ERR(rill_shutdown_sync(NULL, RILL_SHUT_WR), RILL_EINVAL);
	rill_close(NULL);
	/* The flow still works. */
	struct status_cb s = {0};
	TH_OK(rill_write(c->x, b, status_cb, &s));
	rill_buf_release(b);
	ctx_wait(c, &s.done, "the write");
	TH_OK(s.status);
	TH_OK(shut_wait(c, c->x, RILL_SHUT_WR));
	expect_bytes(c, c->y, "ok", 2, RILL_EOF);
}

/* The counters: bytes and completed operations on both sides. */
static void ck_counters(struct conf_ctx *c)
{
	uint64_t total = 0;
	struct rd r;
	rd_init(&r, c, c->y, true);
	rd_start(&r);
	for (unsigned i = 1; i <= 10; i++) {
		uint8_t tmp[1000];
		gen_fill(tmp, total, i * 100);
		TH_OK(write_wait(c, c->x, tmp, i * 100));
		total += i * 100;
	}
	TH_OK(shut_wait(c, c->x, RILL_SHUT_WR));
	rd_wait(&r, "the reader");
	TH_EQ_U64(r.pos, total);
	uint64_t xr, xw, xro, xwo, yr, yw, yro, ywo;
	rill_flow_counters(c->x, &xr, &xw, &xro, &xwo);
	rill_flow_counters(c->y, &yr, &yw, &yro, &ywo);
	TH_EQ_U64(xw, total);
	TH_EQ_U64(xwo, 10);
	TH_EQ_U64(xr, 0);
	TH_EQ_U64(xro, 0);
	TH_EQ_U64(yr, total);
	TH_EQ_U64(yro, r.ops);
	TH_EQ_U64(yw, 0);
	TH_EQ_U64(ywo, 0);
	rill_flow_counters(NULL, &xr, NULL, NULL, NULL);
	TH_EQ_U64(xr, 0);
	rd_fini(&r);
}

/* Callbacks never run inside the call that started the operation, even
 * when the result is known at once (data already queued, EOF, a write the
 * flow accepts immediately, a shutdown with nothing queued). */
struct defer_state {
	bool in_call;
	unsigned inside;
	unsigned calls;
	int last;
	struct rill_buf *buf;
};

static void defer_wcb(struct rill_flow *f, int status, void *ud)
{
	struct defer_state *d = ud;
	(void)f;
	if (d->in_call)
		d->inside++;
	d->calls++;
	d->last = status;
}

static void defer_rcb(struct rill_flow *f, int status, struct rill_buf *b,
                      void *ud)
{
	struct defer_state *d = ud;
	(void)f;
	if (d->in_call)
		d->inside++;
	d->calls++;
	d->last = status;
	rill_buf_release(d->buf);
	d->buf = b;
}

static void ck_no_callback_inside_call(struct conf_ctx *c)
{
	struct defer_state d = {0};
	d.in_call = true;
	TH_OK(rill_write_copy(c->x, "abc", 3, defer_wcb, &d));
	d.in_call = false;
	TH_EQ_INT(d.calls, 0);
	ctx_wait_count(c, &d.calls, 1, "the write");
	ctx_run_for(c, 20); /* the data reaches y */
	d.in_call = true;
	TH_OK(rill_read(c->y, defer_rcb, &d));
	d.in_call = false;
	TH_EQ_INT(d.calls, 1);
	ctx_wait_count(c, &d.calls, 2, "the read");
	TH_OK(d.last);
	size_t got = d.buf != NULL ? d.buf->len : 0;
	while (got < 3) {
		struct rill_buf *b;
		TH_OK(read_one(c, c->y, &b));
		got += b->len;
		rill_buf_release(b);
	}
	d.in_call = true;
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, defer_wcb, &d));
	d.in_call = false;
	ctx_wait_count(c, &d.calls, 3, "the shutdown");
	d.in_call = true;
	TH_OK(rill_read(c->y, defer_rcb, &d));
	d.in_call = false;
	ctx_wait_count(c, &d.calls, 4, "the EOF");
	TH_EQ_ERR(d.last, RILL_EOF);
	d.in_call = true;
	TH_OK(rill_read(c->y, defer_rcb, &d)); /* sticky EOF: still later */
	d.in_call = false;
	ctx_wait_count(c, &d.calls, 5, "the second EOF");
	d.in_call = true;
	TH_OK(rill_shutdown(c->y, RILL_SHUT_RD, defer_wcb, &d));
	d.in_call = false;
	ctx_wait_count(c, &d.calls, 6, "the read shutdown");
	TH_EQ_INT(d.inside, 0);
	rill_buf_release(d.buf);
}

/* After a write completes, the writer may reuse its buffer: the reader
 * must still see what was written (no aliasing of the writer's memory). */
struct reuse {
	struct rill_buf *b;
	unsigned done;
};

static void reuse_cb(struct rill_flow *f, int status, void *ud)
{
	struct reuse *r = ud;
	(void)f;
	TH_OK(status);
	memset(r->b->data, 0xEE, r->b->len);
	r->done++;
}

static void ck_writer_buffer_reuse(struct conf_ctx *c)
{
	struct reuse r = {0};
	r.b = rill_buf_new(96 * KIB);
	gen_fill(r.b->data, 0, r.b->len);
	struct rd rd;
	rd_init(&rd, c, c->y, true);
	rd_start(&rd);
	TH_OK(rill_write(c->x, r.b, reuse_cb, &r));
	ctx_wait_count(c, &r.done, 1, "the first write");
	/* The callback overwrote the buffer; the reader must not see that.
	 * Write the next part of the stream from the refilled buffer. */
	gen_fill(r.b->data, 96 * KIB, r.b->len);
	TH_OK(rill_write(c->x, r.b, reuse_cb, &r));
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, NULL, NULL));
	rd_wait(&rd, "the reader");
	TH_EQ_INT(r.done, 2);
	TH_TRUE(!rd.bad);
	TH_EQ_U64(rd.pos, 192 * KIB);
	rd_fini(&rd);
	rill_buf_release(r.b);
}

/* A buffer read from a flow belongs to the reader: it outlives both flows
 * and its bytes do not change. */
static void ck_read_buf_outlives_flow(struct conf_ctx *c)
{
	uint8_t data[300];
	gen_fill(data, 0, sizeof data);
	TH_OK(write_wait(c, c->x, data, sizeof data));
	struct rill_buf *b;
	TH_OK(read_one(c, c->y, &b));
	struct rill_buf *keep = rill_buf_ref(b);
	rill_buf_release(b);
	ctx_close(&c->x);
	ctx_close(&c->y);
	ctx_drain(c);
	TH_TRUE(keep->len >= 1 && keep->len <= sizeof data);
	TH_EQ_MEM(keep->data, data, keep->len);
	rill_buf_release(keep);
}

/* ---------------------------------------------------------------------- */
/* Registry */

struct conf_check {
	const char *name;
	void (*fn)(struct conf_ctx *c);
};

/* ---------------------------------------------------------------------- */
/* rill_write_file */

/* A temporary file (already unlinked) of `pre` bytes that are not the
 * stream, then bytes [0, n) of the stream: so file offset pre + p holds
 * the stream's byte p, and a range sent from a wrong offset shows. */
static int file_make(uint64_t pre, uint64_t n)
{
	const char *dir = getenv("TMPDIR");
	char path[512];
	snprintf(path, sizeof path, "%s/rill-conf-file-XXXXXX",
	         dir != NULL && *dir != '\0' ? dir : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		TH_FAIL("mkstemp(%s): %s", path, strerror(errno));
	unlink(path);
	size_t cap = 1 * MIB;
	uint8_t *b = malloc(cap);
	if (b == NULL)
		TH_FAIL("out of memory in the test");
	for (uint64_t done = 0; done < pre + n;) {
		size_t k = cap;
		if (done < pre) {
			if (k > pre - done)
				k = (size_t)(pre - done);
			gen_fill(b, done, k);
			for (size_t i = 0; i < k; i++)
				b[i] ^= 0xa5;
		} else {
			if (k > pre + n - done)
				k = (size_t)(pre + n - done);
			gen_fill(b, done - pre, k);
		}
		if (write(fd, b, k) != (ssize_t)k)
			TH_FAIL("writing the test file: %s", strerror(errno));
		done += k;
	}
	free(b);
	return fd;
}

static uint64_t gen_hash(uint64_t n)
{
	uint8_t b[64 * 1024];
	uint64_t h = FNV_OFFSET;
	for (uint64_t p = 0; p < n;) {
		size_t k = n - p < sizeof b ? (size_t)(n - p) : sizeof b;
		gen_fill(b, p, k);
		h = fnv1a(h, b, k);
		p += k;
	}
	return h;
}

/* A file range, at offsets that are not page-aligned, between ordinary
 * writes, all queued at once: the reader gets every byte in order (checked
 * in place and by hash), each callback reports success in order. Plus the
 * synchronous refusals: a bad fd, not a regular file, a range beyond the
 * file's end, and a zero-length range that succeeds. */
static void ck_write_file(struct conf_ctx *c)
{
	uint64_t pre = 12345;
	uint64_t n = c->big / 2 + 4321;
	int fd = file_make(pre, n);

	TH_EQ_ERR(rill_write_file(NULL, fd, 0, 1, NULL, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_write_file(c->x, -1, 0, 1, NULL, NULL), RILL_EINVAL);
	int p[2];
	TH_OK(pipe(p));
	TH_EQ_ERR(rill_write_file(c->x, p[0], 0, 1, NULL, NULL), RILL_EINVAL);
	close(p[0]);
	close(p[1]);
	TH_EQ_ERR(rill_write_file(c->x, fd, pre + n - 10, 11, NULL, NULL),
	          -ENODATA);
	TH_EQ_ERR(rill_write_file(c->x, fd, UINT64_MAX - 2, 1, NULL, NULL),
	          RILL_EINVAL);
	struct status_cb z = {0};
	TH_OK(rill_write_file(c->x, fd, 5, 0, status_cb, &z));
	ctx_wait(c, &z.done, "a zero-length file write");
	TH_OK(z.status);

	/* [0, a) buffer | [a, b) file | [b, b+1) file | [b+1, d) buffer |
	 * [d, n) file */
	uint64_t a = 1000, b = a + n / 2 + 7, d = b + 1 + 333;
	/* order_cb fails the check on an error and counts callbacks that
	 * come out of order. */
	struct order o = {0};
	struct order_ud slot[5];
	for (unsigned i = 0; i < 5; i++)
		slot[i] = (struct order_ud){&o, i};
	uint8_t *tmp = malloc((size_t)a);
	gen_fill(tmp, 0, (size_t)a);
	TH_OK(rill_write_copy(c->x, tmp, (size_t)a, order_cb, &slot[0]));
	TH_OK(rill_write_file(c->x, fd, pre + a, b - a, order_cb, &slot[1]));
	TH_OK(rill_write_file(c->x, fd, pre + b, 1, order_cb, &slot[2]));
	free(tmp);
	tmp = malloc((size_t)(d - b - 1));
	gen_fill(tmp, b + 1, (size_t)(d - b - 1));
	TH_OK(rill_write_copy(c->x, tmp, (size_t)(d - b - 1), order_cb,
	                      &slot[3]));
	free(tmp);
	TH_OK(rill_write_file(c->x, fd, pre + d, n - d, order_cb, &slot[4]));
	TH_OK(conf_shutdown(c, c->x, RILL_SHUT_WR, NULL, NULL));

	struct rd r;
	rd_init(&r, c, c->y, true);
	rd_start(&r);
	rd_wait(&r, "the reader to see EOF");
	ctx_wait_count(c, &o.next, 5, "the write callbacks");
	TH_EQ_INT(o.bad, 0);
	rd_expect_stream(&r, n, gen_hash(n));
	uint64_t wb;
	rill_flow_counters(c->x, NULL, &wb, NULL, NULL);
	TH_EQ_U64(wb, n);
	rd_fini(&r);
	close(fd);
}

/* The file shrinks while it is being sent (more of it than the flows can
 * absorb, so the write is still going): the write fails with -ENODATA,
 * the reader gets exactly the file's bytes up to its new end, in order,
 * and no read or write waits for ever.
 *
 * The new end lies beyond what the flows can absorb while the reader
 * pauses: sendfile(2) hands the page cache's pages to the socket, and
 * Linux zeroes the truncated pages that are still on their way (see
 * rill_write_file in rill.h), which no sender can take back. */
static void ck_write_file_shrinks(struct conf_ctx *c)
{
	uint64_t pre = 4097;
	uint64_t n = 2 * slow_bound(c) + 3 * MIB + 11;
	int fd = file_make(pre, n);
	struct status_cb s = {0};
	TH_OK(rill_write_file(c->x, fd, pre, n, status_cb, &s));
	struct rd r;
	rd_init(&r, c, c->y, true);
	r.stop_at = 64 * KIB;
	rd_start(&r);
	ctx_wait(c, &r.paused, "the first 64 KiB of the file");
	if (s.done)
		TH_FAIL("the write of %" PRIu64 " bytes completed (%s) while "
		        "the reader had read %" PRIu64,
		        n, th_errname(s.status), r.pos);
	/* Let the writer fill what the flows absorb, then cut the file past
	 * that, at an offset that is not page-aligned. */
	ctx_run_for(c, 100);
	if (s.done)
		TH_FAIL("the write completed (%s) while the reader paused",
		        th_errname(s.status));
	uint64_t cut = pre + slow_bound(c) + MIB + 77;
	TH_OK(ftruncate(fd, (off_t)cut));
	r.stop_at = 0;
	rd_start(&r);
	ctx_wait(c, &s.done, "the file write to fail");
	TH_EQ_ERR(s.status, -ENODATA);
	/* The error sticks; closing the writer ends the reader's stream. */
	TH_EQ_ERR(rill_write_copy(c->x, "x", 1, NULL, NULL), -ENODATA);
	ctx_close(&c->x);
	rd_wait(&r, "the reader to end after the writer closed");
	if (r.bad)
		TH_FAIL("received byte at offset %zu is not the file's",
		        r.bad_off);
	TH_EQ_U64(r.pos, cut - pre);
	TH_TRUE(r.status != 0);
	rd_fini(&r);
	close(fd);
}

static const struct conf_check conf_checks[] = {
    {"small_transfer", ck_small_transfer},
    {"big_one_way", ck_big_one_way},
    {"big_both_ways", ck_big_both_ways},
    {"data_before_eof", ck_data_before_eof},
    {"read_after_eof", ck_read_after_eof},
    {"write_after_shutdown", ck_write_after_shutdown},
    {"ops_after_close", ck_ops_after_close},
    {"half_close", ck_half_close},
    {"half_close_declared", ck_half_close_declared},
    {"shutdown_read", ck_shutdown_read},
    {"shutdown_rdwr", ck_shutdown_rdwr},
    {"double_close", ck_double_close},
    {"close_in_read_cb", ck_close_in_read_cb},
    {"close_in_write_cb", ck_close_in_write_cb},
    {"close_with_writes_pending", ck_close_with_writes_pending},
    {"close_with_read_pending", ck_close_with_read_pending},
    {"second_read_pending", ck_second_read_pending},
    {"slow_reader", ck_slow_reader},
    {"zero_length_write", ck_zero_length_write},
    {"sticky_write_error", ck_sticky_write_error},
    {"peer_close_eof_after_drain", ck_peer_close_eof_after_drain},
    {"peer_reset", ck_peer_reset},
    {"write_cb_order", ck_write_cb_order},
    {"writev_many", ck_writev_many},
    {"read_deadline", ck_read_deadline},
    {"write_deadline", ck_write_deadline},
    {"deadline_progress", ck_deadline_progress},
    {"double_shutdown_write", ck_double_shutdown_write},
    {"bad_arguments", ck_bad_arguments},
    {"counters", ck_counters},
    {"no_callback_inside_call", ck_no_callback_inside_call},
    {"writer_buffer_reuse", ck_writer_buffer_reuse},
    {"read_buf_outlives_flow", ck_read_buf_outlives_flow},
    {"write_file", ck_write_file},
    {"write_file_shrinks", ck_write_file_shrinks},
};

#define NCHECKS (sizeof conf_checks / sizeof conf_checks[0])

size_t conf_check_count(void)
{
	return NCHECKS;
}

const char *conf_check_name(size_t i)
{
	return i < NCHECKS ? conf_checks[i].name : NULL;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	if (s == NULL || *s == '\0')
		return dflt;
	return strtoull(s, NULL, 0);
}

void conf_run_check(const struct conf_factory *f, size_t i, bool rev)
{
	if (i >= NCHECKS)
		TH_FAIL("no check %zu", i);
	conf_count_allocations();
	gen_init();
	struct conf_ctx *c = calloc(1, sizeof *c);
	c->fac = f;
	c->check = conf_checks[i].name;
	c->rev = rev;
	c->big = f->big_bytes ? f->big_bytes : 64 * MIB;
	/* CONF_BIG_BYTES lowers the large transfers (valgrind runs). */
	uint64_t cap = env_u64("CONF_BIG_BYTES", 0);
	if (cap != 0 && cap < c->big)
		c->big = (size_t)cap;
	/* A fixed seed per check, so a failure is reproducible; CONF_SEED
	 * changes it. */
	c->rng = env_u64("CONF_SEED", 0x5eed) ^ (uint64_t)(i * 0x9e37u + rev);
	c->rng = c->rng ? c->rng : 1;
	for (int k = 0; k < 4; k++)
		rng_next(&c->rng);
	TH_OK(uv_loop_init(&c->loop));
	uv_timer_init(&c->loop, &c->watchdog);
	c->watchdog.data = c;
	unsigned secs = f->timeout_s ? f->timeout_s : 120;
	uint64_t mult = env_u64("TH_TIMEOUT_MULT", 1);
	uint64_t ms = (uint64_t)secs * 1000 * (mult ? mult : 1);
	uv_timer_start(&c->watchdog, ctx_watchdog, ms - ms / 10, 0);
	uv_unref((uv_handle_t *)&c->watchdog);

	size_t live0 = conf_live_bytes();
	struct rill_flow *a = NULL, *b = NULL;
	c->waiting_for = "the factory to make a connected pair";
	int err = f->make(&c->loop, f->arg, &a, &b);
	if (err != 0)
		TH_FAIL("factory %s failed to make a pair: %s", f->name,
		        th_errname(err));
	if (a == NULL || b == NULL)
		TH_FAIL("factory %s returned a NULL flow", f->name);
	c->x = rev ? b : a;
	c->y = rev ? a : b;
	c->waiting_for = NULL;

	conf_checks[i].fn(c);

	ctx_close(&c->x);
	ctx_close(&c->y);
	ctx_drain(c);
	if (f->cleanup != NULL)
		f->cleanup(&c->loop, f->arg);
	ctx_drain(c);
	uv_close((uv_handle_t *)&c->watchdog, NULL);
	ctx_drain(c);
	size_t now = conf_live_bytes();
	size_t leaked = now > live0 ? now - live0 : 0;
	if (leaked != 0 && !(f->caps_missing & CONF_KEEPS_ALLOCATIONS))
		TH_FAIL("%zu bytes allocated through rill are still live after "
		        "both flows were closed and the loop drained",
		        leaked);
	if (uv_loop_close(&c->loop) != 0) {
		uv_walk(&c->loop, ctx_walk_cb, NULL);
		TH_FAIL("libuv handles were left open after both flows were "
		        "closed and the loop drained");
	}
	th_pass_one();
	free(c);
}

/* ---------------------------------------------------------------------- */
/* Registration with the harness */

struct conf_reg {
	const struct conf_factory *f;
	size_t i;
	bool rev;
};

/* The harness keeps pointers into these until it exits; they are freed
 * at exit so that leak checkers (valgrind, LSan) stay quiet. */
static struct conf_reg *conf_regs[64];
static size_t conf_nregs;

__attribute__((destructor)) static void conf_unregister_all(void)
{
	for (size_t i = 0; i < conf_nregs; i++)
		free(conf_regs[i]);
	conf_nregs = 0;
}

static void conf_test(void *arg)
{
	struct conf_reg *r = arg;
	conf_run_check(r->f, r->i, r->rev);
}

void conf_register(const struct conf_factory *f)
{
	if (conf_nregs == sizeof conf_regs / sizeof conf_regs[0]) {
		fprintf(stderr, "conformance: too many factories\n");
		abort();
	}
	struct conf_reg *regs = calloc(NCHECKS * 2, sizeof *regs);
	if (regs == NULL)
		abort();
	conf_regs[conf_nregs++] = regs;
	for (size_t i = 0; i < NCHECKS; i++) {
		for (int rev = 0; rev < 2; rev++) {
			struct conf_reg *r = &regs[i * 2 + (size_t)rev];
			r->f = f;
			r->i = i;
			r->rev = rev != 0;
			char name[256];
			snprintf(name, sizeof name, "conf/%s/%s%s", f->name,
			         conf_checks[i].name, rev ? "/rev" : "");
			th_add(name, conf_test, r, f->timeout_s);
		}
	}
}
