/*
 * Unit tests of the combinators over in-memory flows: copy statistics,
 * buffers forwarded without copying, proxy half-close, errors per side,
 * close and abort from inside callbacks.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"
#include "rill/impl.h"
#include "core/core.h"

static uv_loop_t *loop_new(void)
{
	uv_loop_t *l = malloc(sizeof *l);
	uv_loop_init(l);
	return l;
}

/* Runs the loop dry and checks that every handle was released. */
static void loop_done(uv_loop_t *l)
{
	uv_run(l, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(l));
	free(l);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* ---------------------------------------------------------------------- */
/* A writer that feeds `data` into a flow in random-sized pieces, then
 * shuts its write side down; and a reader that collects until EOF. */

struct feeder {
	struct rill_flow *f;
	const uint8_t *data;
	size_t len, off;
	uint32_t rnd;
	bool shut;
	int err;
};

static void feed_more(struct feeder *fd);

static void feed_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct feeder *fd = ud;
	if (status != 0) {
		fd->err = status;
		return;
	}
	feed_more(fd);
}

static void feed_more(struct feeder *fd)
{
	if (fd->off == fd->len) {
		if (!fd->shut) {
			fd->shut = true;
			rill_shutdown(fd->f, RILL_SHUT_WR, NULL, NULL);
		}
		return;
	}
	fd->rnd = fd->rnd * 1664525u + 1013904223u;
	size_t n = 1 + (fd->rnd >> 8) % 70000;
	if (n > fd->len - fd->off)
		n = fd->len - fd->off;
	int err = rill_write_copy(fd->f, fd->data + fd->off, n, feed_cb, fd);
	if (err != 0) {
		fd->err = err;
		return;
	}
	fd->off += n;
}

struct sink {
	struct rill_flow *f;
	uint8_t *data;
	size_t cap, len;
	int status; /* 1 while running, then RILL_EOF or error */
	void (*on_eof)(struct sink *s);
	void *ctx;
};

static void sink_cb(struct rill_flow *f, int status, struct rill_buf *b,
                    void *ud)
{
	struct sink *s = ud;
	if (status != 0) {
		s->status = status;
		if (s->on_eof != NULL)
			s->on_eof(s);
		return;
	}
	if (s->len + b->len <= s->cap)
		memcpy(s->data + s->len, b->data, b->len);
	s->len += b->len;
	rill_buf_release(b);
	rill_read(f, sink_cb, s);
}

static void sink_start(struct sink *s, struct rill_flow *f, size_t cap)
{
	s->f = f;
	s->cap = cap;
	s->data = malloc(cap ? cap : 1);
	s->status = 1;
	rill_read(f, sink_cb, s);
}

/* ---------------------------------------------------------------------- */

struct copy_done {
	int calls;
	struct rill_copy_result res;
};

static void copy_cb(struct rill_copy *c, const struct rill_copy_result *res,
                    void *ud)
{
	(void)c;
	struct copy_done *d = ud;
	d->calls++;
	d->res = *res;
}

/* src pair (s0 -> s1), copy s1 -> d0, dst pair (d0 -> d1). */
TEST(copy_moves_everything_with_stats)
{
	uv_loop_t *l = loop_new();
	struct rill_flow *s0, *s1, *d0, *d1;
	TH_OK(rill_pair(l, 0, &s0, &s1));
	TH_OK(rill_pair(l, 64 * 1024, &d0, &d1));
	size_t n = 3 * 1024 * 1024 + 17;
	uint8_t *data = malloc(n);
	fill(data, n, 7);
	struct feeder fd = {.f = s0, .data = data, .len = n, .rnd = 1};
	struct sink sk = {0};
	struct copy_done cd = {0};
	struct rill_copy *c = NULL;
	TH_OK(rill_copy(s1, d0, NULL, copy_cb, &cd, &c));
	TH_NOT_NULL(c);
	TH_EQ_ERR(rill_copy(s1, d0, NULL, copy_cb, &cd, NULL), RILL_EALREADY);
	TH_EQ_INT(cd.calls, 0); /* never from inside the call */
	feed_more(&fd);
	sink_start(&sk, d1, n + 1);
	while (cd.calls == 0 || sk.len < n)
		uv_run(l, UV_RUN_ONCE);
	TH_EQ_INT(cd.calls, 1);
	TH_OK(cd.res.status);
	TH_OK(cd.res.read_err);
	TH_OK(cd.res.write_err);
	TH_TRUE(!cd.res.spliced);
	TH_EQ_U64(cd.res.stats.read_bytes, n);
	TH_EQ_U64(cd.res.stats.write_bytes, n);
	TH_CMP_INT(cd.res.stats.read_ops, >=, 1);
	TH_EQ_U64(cd.res.stats.write_ops, cd.res.stats.read_ops);
	TH_CMP_INT(cd.res.stats.duration_ns, >, 0);
	TH_EQ_INT(sk.len, n);
	TH_EQ_MEM(sk.data, data, n);
	/* copy never shuts down dst: d1 has not seen EOF and d0 writes. */
	for (int i = 0; i < 5; i++)
		uv_run(l, UV_RUN_NOWAIT);
	TH_EQ_INT(sk.status, 1);
	TH_OK(rill_write_copy(d0, "x", 1, NULL, NULL));
	while (sk.len < n + 1)
		uv_run(l, UV_RUN_ONCE);
	TH_EQ_INT(sk.status, 1);
	rill_close(s0);
	rill_close(s1);
	rill_close(d0);
	rill_close(d1);
	free(data);
	free(sk.data);
	loop_done(l);
}

/* ---------------------------------------------------------------------- */
/* Buffers are forwarded, not copied: a source handing out known buffers,
 * a destination recording the data pointers it is given. */

struct probe {
	struct rill_flow base;
	struct rill_buf *out[8];
	int nout, next;
	const uint8_t *seen[8];
	size_t seen_len[8];
	int nseen;
};

static void probe_read(struct rill_flow *f)
{
	struct probe *p = (struct probe *)f;
	if (p->next == p->nout) {
		rill_flow_read_done(f, RILL_EOF, NULL);
		return;
	}
	rill_flow_read_done(f, 0, rill_buf_ref(p->out[p->next++]));
}

static void probe_write(struct rill_flow *f, struct rill_buf *const *bufs,
                        size_t n)
{
	struct probe *p = (struct probe *)f;
	for (size_t i = 0; i < n && p->nseen < 8; i++) {
		p->seen[p->nseen] = bufs[i]->data;
		p->seen_len[p->nseen++] = bufs[i]->len;
	}
	rill_flow_write_done(f, 0);
}

static void probe_shutdown_write(struct rill_flow *f)
{
	rill_flow_shutdown_done(f, 0);
}

static void probe_close(struct rill_flow *f)
{
	struct probe *p = (struct probe *)f;
	for (int i = 0; i < p->nout; i++)
		rill_buf_release(p->out[i]);
	rill_flow_destroyed(f);
}

static const struct rill_flow_ops probe_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "probe",
    .read = probe_read,
    .write = probe_write,
    .shutdown_write = probe_shutdown_write,
    .close = probe_close,
};

TEST(copy_forwards_buffers_without_copying)
{
	uv_loop_t *l = loop_new();
	struct probe *src =
	    (struct probe *)rill_flow_new(l, &probe_ops, sizeof *src);
	struct probe *dst =
	    (struct probe *)rill_flow_new(l, &probe_ops, sizeof *dst);
	for (int i = 0; i < 5; i++) {
		src->out[i] = rill_buf_new(1000 + (size_t)i);
		memset(src->out[i]->data, 'a' + i, src->out[i]->len);
	}
	src->nout = 5;
	struct copy_done cd = {0};
	TH_OK(rill_copy(&src->base, &dst->base, NULL, copy_cb, &cd, NULL));
	while (cd.calls == 0)
		uv_run(l, UV_RUN_ONCE);
	TH_OK(cd.res.status);
	TH_EQ_INT(dst->nseen, 5);
	for (int i = 0; i < 5; i++) {
		TH_TRUE(dst->seen[i] == src->out[i]->data);
		TH_EQ_INT(dst->seen_len[i], 1000 + i);
	}
	TH_EQ_U64(cd.res.stats.read_ops, 5);
	TH_EQ_U64(cd.res.stats.write_ops, 5);
	TH_EQ_U64(cd.res.stats.write_bytes, 5 * 1000 + 10);
	rill_close(&src->base);
	rill_close(&dst->base);
	loop_done(l);
}

/* ---------------------------------------------------------------------- */
/* Proxy: client c <-pair-> a  ==proxy==  b <-pair-> s server */

struct proxy_done {
	int calls;
	int halves;
	bool half_from_a_first;
	struct rill_proxy_result res;
	bool close_in_cb;
	struct rill_flow *a, *b;
};

static void proxy_cb(struct rill_proxy *p, const struct rill_proxy_result *res,
                     void *ud)
{
	(void)p;
	struct proxy_done *d = ud;
	d->calls++;
	d->res = *res;
	if (d->close_in_cb) {
		rill_close(d->a);
		rill_close(d->b);
	}
}

static void half_cb(struct rill_proxy *p, bool from_a,
                    const struct rill_copy_result *res, void *ud)
{
	(void)p;
	(void)res;
	struct proxy_done *d = ud;
	if (d->halves++ == 0)
		d->half_from_a_first = from_a;
}

struct server {
	struct sink in;
	struct rill_flow *f;
	const uint8_t *reply;
	size_t reply_len;
	bool replied;
};

/* The server answers only after the request's EOF: a half-close test. */
static void server_on_eof(struct sink *s)
{
	struct server *sv = s->ctx;
	if (s->status != RILL_EOF)
		return;
	sv->replied = true;
	rill_write_copy(sv->f, sv->reply, sv->reply_len, NULL, NULL);
	rill_shutdown(sv->f, RILL_SHUT_WR, NULL, NULL);
}

TEST(proxy_half_close_request_response)
{
	uv_loop_t *l = loop_new();
	struct rill_flow *c, *a, *b, *s;
	TH_OK(rill_pair(l, 0, &c, &a));
	TH_OK(rill_pair(l, 0, &b, &s));
	size_t qn = 300000, rn = 2 * 1024 * 1024 + 3;
	uint8_t *q = malloc(qn), *r = malloc(rn);
	fill(q, qn, 1);
	fill(r, rn, 2);
	struct proxy_done pd = {.close_in_cb = true, .a = a, .b = b};
	struct rill_proxy_opts po = {.half_cb = half_cb};
	struct rill_proxy *p = NULL;
	TH_OK(rill_proxy(a, b, &po, proxy_cb, &pd, &p));
	TH_TRUE(!rill_proxy_spliced(p));
	struct server sv = {.f = s, .reply = r, .reply_len = rn};
	sv.in.on_eof = server_on_eof;
	sv.in.ctx = &sv;
	sink_start(&sv.in, s, qn + 1);
	struct feeder fd = {.f = c, .data = q, .len = qn, .rnd = 5};
	feed_more(&fd);
	struct sink cl = {0};
	sink_start(&cl, c, rn + 1);
	while (pd.calls == 0 || cl.status == 1)
		uv_run(l, UV_RUN_ONCE);
	TH_EQ_ERR(cl.status, RILL_EOF);
	TH_EQ_ERR(sv.in.status, RILL_EOF);
	TH_EQ_INT(sv.in.len, qn);
	TH_EQ_MEM(sv.in.data, q, qn);
	TH_EQ_INT(cl.len, rn);
	TH_EQ_MEM(cl.data, r, rn);
	TH_EQ_INT(pd.calls, 1);
	TH_EQ_INT(pd.halves, 2);
	TH_TRUE(pd.half_from_a_first); /* the request ended first */
	TH_OK(pd.res.status);
	TH_EQ_INT(pd.res.failed, 0);
	TH_EQ_U64(pd.res.ab.stats.read_bytes, qn);
	TH_EQ_U64(pd.res.ab.stats.write_bytes, qn);
	TH_EQ_U64(pd.res.ba.stats.read_bytes, rn);
	TH_EQ_U64(pd.res.ba.stats.write_bytes, rn);
	rill_close(c);
	rill_close(s);
	free(q);
	free(r);
	free(sv.in.data);
	free(cl.data);
	loop_done(l);
}

/* ---------------------------------------------------------------------- */
/* Errors per side, with flows from functions. */

struct fn_ctx {
	size_t give;  /* bytes to deliver before failing */
	int in_err;   /* then this (0: EOF) */
	int out_err;  /* output fails with this at once (0: accept all) */
	size_t taken; /* bytes accepted by output */
	bool in_never;
};

static long fn_input(void *vctx, void *dst, size_t cap)
{
	struct fn_ctx *x = vctx;
	if (x->give == 0)
		return x->in_err;
	size_t n = cap < x->give ? cap : x->give;
	memset(dst, 'z', n);
	x->give -= n;
	return (long)n;
}

static long fn_output(void *vctx, const void *src, size_t len)
{
	(void)src;
	struct fn_ctx *x = vctx;
	if (x->out_err != 0)
		return x->out_err;
	x->taken += len;
	return (long)len;
}

static const struct rill_fn_flow_ops fn_ops = {fn_input, fn_output, NULL};

static void run_error_case(int a_in, int a_out, int b_in, int b_out,
                           struct proxy_done *pd)
{
	uv_loop_t *l = loop_new();
	struct fn_ctx xa = {.give = 5000, .in_err = a_in, .out_err = a_out};
	struct fn_ctx xb = {.give = 7000, .in_err = b_in, .out_err = b_out};
	struct rill_flow *a, *b;
	TH_OK(rill_flow_from_functions(l, &fn_ops, &xa, &a));
	TH_OK(rill_flow_from_functions(l, &fn_ops, &xb, &b));
	pd->close_in_cb = true;
	pd->a = a;
	pd->b = b;
	TH_OK(rill_proxy(a, b, NULL, proxy_cb, pd, NULL));
	while (pd->calls == 0)
		uv_run(l, UV_RUN_ONCE);
	TH_EQ_INT(pd->calls, 1);
	loop_done(l);
}

TEST(proxy_clean_eof_both_ways)
{
	struct proxy_done pd = {0};
	run_error_case(0, 0, 0, 0, &pd);
	TH_OK(pd.res.status);
	TH_EQ_INT(pd.res.failed, 0);
	TH_EQ_U64(pd.res.ab.stats.write_bytes, 5000);
	TH_EQ_U64(pd.res.ba.stats.write_bytes, 7000);
}

TEST(proxy_reports_side_a_read_error)
{
	struct proxy_done pd = {0};
	run_error_case(RILL_ECONNRESET, 0, 0, 0, &pd);
	TH_EQ_ERR(pd.res.status, RILL_ECONNRESET);
	TH_EQ_ERR(pd.res.ab.read_err, RILL_ECONNRESET);
	TH_OK(pd.res.ab.write_err);
	TH_EQ_U64(pd.res.ab.stats.write_bytes, 5000); /* data before error */
	TH_OK(pd.res.ba.status);
	TH_EQ_INT(pd.res.failed, RILL_PROXY_A);
}

TEST(proxy_reports_side_b_write_error)
{
	struct proxy_done pd = {0};
	run_error_case(0, 0, 0, -EIO, &pd);
	TH_EQ_ERR(pd.res.ab.write_err, -EIO);
	TH_EQ_ERR(pd.res.status, -EIO);
	TH_EQ_INT(pd.res.failed, RILL_PROXY_B);
}

TEST(proxy_reports_both_sides)
{
	struct proxy_done pd = {0};
	run_error_case(-EIO, 0, RILL_ECONNRESET, 0, &pd);
	TH_EQ_ERR(pd.res.ab.read_err, -EIO);
	TH_EQ_ERR(pd.res.ba.read_err, RILL_ECONNRESET);
	TH_EQ_INT(pd.res.failed, RILL_PROXY_A | RILL_PROXY_B);
}

TEST(copy_write_error_is_reported_as_write_side)
{
	uv_loop_t *l = loop_new();
	struct fn_ctx xs = {.give = 100000};
	struct fn_ctx xd = {.out_err = RILL_ECLOSED};
	struct rill_flow *s, *d;
	TH_OK(rill_flow_from_functions(l, &fn_ops, &xs, &s));
	TH_OK(rill_flow_from_functions(l, &fn_ops, &xd, &d));
	struct copy_done cd = {0};
	TH_OK(rill_copy(s, d, NULL, copy_cb, &cd, NULL));
	while (cd.calls == 0)
		uv_run(l, UV_RUN_ONCE);
	TH_EQ_ERR(cd.res.status, RILL_ECLOSED);
	TH_EQ_ERR(cd.res.write_err, RILL_ECLOSED);
	TH_OK(cd.res.read_err);
	TH_EQ_U64(cd.res.stats.write_bytes, 0);
	rill_close(s);
	rill_close(d);
	loop_done(l);
}

TEST(copy_argument_errors)
{
	uv_loop_t *l = loop_new();
	struct rill_flow *a, *b;
	TH_OK(rill_pair(l, 0, &a, &b));
	struct copy_done cd = {0};
	TH_EQ_ERR(rill_copy(NULL, b, NULL, copy_cb, &cd, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_proxy(a, a, NULL, proxy_cb, &cd, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_copy(a, b, NULL, NULL, &cd, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_proxy(a, NULL, NULL, proxy_cb, &cd, NULL), RILL_EINVAL);
	rill_close(a);
	rill_close(b);
	loop_done(l);
}

/* ---------------------------------------------------------------------- */
/* Aborts and closes from inside callbacks. */

struct abort_ctx {
	struct rill_proxy *p;
	struct rill_copy *c;
	int proxy_calls;
	int fired;
	bool in_half;
};

static void abort_proxy_cb(struct rill_proxy *p,
                           const struct rill_proxy_result *res, void *ud)
{
	(void)p;
	(void)res;
	((struct abort_ctx *)ud)->proxy_calls++;
}

static void abort_half_cb(struct rill_proxy *p, bool from_a,
                          const struct rill_copy_result *res, void *ud)
{
	(void)from_a;
	(void)res;
	struct abort_ctx *x = ud;
	x->fired++;
	rill_proxy_abort(p);
}

TEST(proxy_abort_inside_half_callback)
{
	uv_loop_t *l = loop_new();
	struct rill_flow *c, *a, *b, *s;
	TH_OK(rill_pair(l, 0, &c, &a));
	TH_OK(rill_pair(l, 0, &b, &s));
	struct abort_ctx x = {0};
	struct rill_proxy_opts po = {.half_cb = abort_half_cb};
	TH_OK(rill_proxy(a, b, &po, abort_proxy_cb, &x, &x.p));
	TH_OK(rill_write_copy(c, "hello", 5, NULL, NULL));
	TH_OK(rill_shutdown(c, RILL_SHUT_WR, NULL, NULL));
	struct sink sk = {0};
	sink_start(&sk, s, 100);
	while (x.fired == 0)
		uv_run(l, UV_RUN_ONCE);
	/* b was closed by the abort: s sees the bytes then EOF. */
	while (sk.status == 1)
		uv_run(l, UV_RUN_ONCE);
	TH_EQ_INT(x.fired, 1);
	TH_EQ_INT(x.proxy_calls, 0);
	TH_EQ_INT(sk.len, 5);
	rill_close(c);
	rill_close(s);
	free(sk.data);
	loop_done(l);
}

static void abort_timer_cb(uv_timer_t *t)
{
	struct abort_ctx *x = t->data;
	x->fired++;
	if (x->p != NULL)
		rill_proxy_abort(x->p);
	if (x->c != NULL)
		rill_copy_abort(x->c);
	uv_close((uv_handle_t *)t, NULL);
}

static void endless_feed_cb(struct rill_flow *f, int status, void *ud)
{
	if (status == 0)
		rill_write_copy(f, ud, 4096, endless_feed_cb, ud);
}

static void drain_cb(struct rill_flow *f, int status, struct rill_buf *b,
                     void *ud)
{
	if (status != 0) {
		*(int *)ud = status;
		return;
	}
	rill_buf_release(b);
	rill_read(f, drain_cb, ud);
}

TEST(abort_mid_transfer_from_a_timer)
{
	for (int mode = 0; mode < 2; mode++) {
		uv_loop_t *l = loop_new();
		struct rill_flow *c, *a, *b, *s;
		TH_OK(rill_pair(l, 0, &c, &a));
		TH_OK(rill_pair(l, 0, &b, &s));
		struct abort_ctx x = {0};
		struct copy_done cd = {0};
		if (mode == 0)
			TH_OK(rill_proxy(a, b, NULL, abort_proxy_cb, &x, &x.p));
		else
			TH_OK(rill_copy(a, b, NULL, copy_cb, &cd, &x.c));
		static uint8_t blk[4096];
		endless_feed_cb(c, 0, blk);
		int drained = 1;
		rill_read(s, drain_cb, &drained);
		uv_timer_t t;
		uv_timer_init(l, &t);
		t.data = &x;
		uv_timer_start(&t, abort_timer_cb, 20, 0);
		while (x.fired == 0 || drained == 1)
			uv_run(l, UV_RUN_ONCE);
		TH_EQ_ERR(drained, RILL_EOF); /* b closed under s */
		TH_EQ_INT(x.proxy_calls, 0);
		TH_EQ_INT(cd.calls, 0);
		rill_close(c);
		rill_close(s);
		loop_done(l);
	}
}

static void copy_abort_in_cb(struct rill_copy *c,
                             const struct rill_copy_result *res, void *ud)
{
	(void)res;
	((struct copy_done *)ud)->calls++;
	rill_copy_abort(c); /* closes both flows */
}

TEST(copy_abort_inside_completion_closes_flows)
{
	uv_loop_t *l = loop_new();
	struct rill_flow *c, *a, *b, *s;
	TH_OK(rill_pair(l, 0, &c, &a));
	TH_OK(rill_pair(l, 0, &b, &s));
	struct copy_done cd = {0};
	TH_OK(rill_copy(a, b, NULL, copy_abort_in_cb, &cd, NULL));
	TH_OK(rill_write_copy(c, "abc", 3, NULL, NULL));
	TH_OK(rill_shutdown(c, RILL_SHUT_WR, NULL, NULL));
	struct sink sk = {0};
	sink_start(&sk, s, 10);
	while (sk.status == 1)
		uv_run(l, UV_RUN_ONCE);
	TH_EQ_INT(cd.calls, 1);
	TH_EQ_ERR(sk.status, RILL_EOF);
	TH_EQ_INT(sk.len, 3);
	/* c's peer a is closed too: c's writes now fail. */
	int rc = 0;
	for (int i = 0; i < 5 && rc == 0; i++) {
		uv_run(l, UV_RUN_NOWAIT);
		rc = rill_write_copy(c, "x", 1, NULL, NULL) != 0;
	}
	rill_close(c);
	rill_close(s);
	free(sk.data);
	loop_done(l);
}

/* ---------------------------------------------------------------------- */
/* Over kernel sockets: the splice path and the generic path give the same
 * results. client c <-> a ==proxy== b <-> s server, all TCP or Unix. */

struct sock_accept {
	struct rill_flow *f;
};

static void sock_on_accept(struct rill_listener *l, struct rill_flow *f,
                           int status, const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct sock_accept *a = ud;
	if (status == 0 && a->f == NULL)
		a->f = f;
	else
		rill_close(f);
}

/* Two connected socket flows (connecting side, accepted side). */
static void sock_pair(uv_loop_t *l, const char *uri, struct rill_flow **c,
                      struct rill_flow **s)
{
	struct sock_accept acc = {0};
	struct rill_listener *lst = NULL;
	TH_OK(rill_listen(l, uri, NULL, sock_on_accept, &acc, &lst));
	char luri[256];
	TH_OK(rill_listener_uri(lst, luri, sizeof luri));
	TH_OK(rill_connect_sync(l, luri, NULL, c));
	while (acc.f == NULL)
		uv_run(l, UV_RUN_ONCE);
	*s = acc.f;
	rill_listener_close(lst);
}

/* Runs right after the proxy started, when set (a and b: its sides). */
static void (*socket_case_check)(struct rill_flow *a, struct rill_flow *b);

static void socket_proxy_case(const char *uri, unsigned flags, bool expect,
                              struct rill_proxy_result *out)
{
	uv_loop_t *l = loop_new();
	struct rill_flow *c, *a, *b, *s;
	sock_pair(l, uri, &c, &a);
	sock_pair(l, uri, &b, &s);
	size_t qn = 5 * 1024 * 1024 + 11, rn = 3 * 1024 * 1024 + 5;
	uint8_t *q = malloc(qn), *r = malloc(rn);
	fill(q, qn, 11);
	fill(r, rn, 12);
	struct proxy_done pd = {.close_in_cb = true, .a = a, .b = b};
	struct rill_proxy_opts po = {.half_cb = half_cb};
	po.copy.flags = flags;
	struct rill_proxy *p = NULL;
	TH_OK(rill_proxy(a, b, &po, proxy_cb, &pd, &p));
	TH_EQ_INT(rill_proxy_spliced(p), expect);
	if (socket_case_check != NULL)
		socket_case_check(a, b);
	struct server sv = {.f = s, .reply = r, .reply_len = rn};
	sv.in.on_eof = server_on_eof;
	sv.in.ctx = &sv;
	sink_start(&sv.in, s, qn + 1);
	struct feeder fd = {.f = c, .data = q, .len = qn, .rnd = 9};
	feed_more(&fd);
	struct sink cl = {0};
	sink_start(&cl, c, rn + 1);
	while (pd.calls == 0 || cl.status == 1)
		uv_run(l, UV_RUN_ONCE);
	TH_EQ_ERR(cl.status, RILL_EOF);
	TH_EQ_INT(sv.in.len, qn);
	TH_EQ_MEM(sv.in.data, q, qn);
	TH_EQ_INT(cl.len, rn);
	TH_EQ_MEM(cl.data, r, rn);
	TH_OK(pd.res.status);
	TH_EQ_INT(pd.res.failed, 0);
	TH_EQ_INT(pd.res.ab.spliced, expect);
	TH_EQ_INT(pd.res.ba.spliced, expect);
	TH_EQ_INT(pd.halves, 2);
	TH_TRUE(pd.half_from_a_first);
	*out = pd.res;
	rill_close(c);
	rill_close(s);
	free(q);
	free(r);
	free(sv.in.data);
	free(cl.data);
	loop_done(l);
}

static void socket_paths_agree(const char *uri)
{
	struct rill_proxy_result sp, gen;
	socket_proxy_case(uri, 0, true, &sp);
	socket_proxy_case(uri, RILL_COPY_NO_SPLICE, false, &gen);
	const struct rill_copy_result *x[2] = {&sp.ab, &sp.ba};
	const struct rill_copy_result *y[2] = {&gen.ab, &gen.ba};
	for (int i = 0; i < 2; i++) {
		TH_EQ_U64(x[i]->stats.read_bytes, y[i]->stats.read_bytes);
		TH_EQ_U64(x[i]->stats.write_bytes, y[i]->stats.write_bytes);
		TH_EQ_U64(x[i]->stats.read_bytes, x[i]->stats.write_bytes);
		TH_CMP_INT(x[i]->stats.read_ops, >=, 1);
		TH_CMP_INT(x[i]->stats.write_ops, >=, 1);
		TH_EQ_ERR(x[i]->status, y[i]->status);
	}
}

TEST(socket_proxy_tcp_splice_and_generic_agree)
{
	socket_paths_agree("tcp://127.0.0.1:0");
}

TEST(socket_proxy_unix_splice_and_generic_agree)
{
	char uri[64];
	snprintf(uri, sizeof uri, "unix:@rill-comb-test-%d", (int)getpid());
	socket_paths_agree(uri);
}

/* A standalone copy between sockets splices, never shuts dst down, and
 * leaves both flows usable through the API afterwards. */
TEST(socket_copy_splices_and_leaves_flows_usable)
{
	for (int mode = 0; mode < 2; mode++) {
		uv_loop_t *l = loop_new();
		struct rill_flow *c, *a, *b, *s;
		sock_pair(l, "tcp://127.0.0.1:0", &c, &a);
		sock_pair(l, "tcp://127.0.0.1:0", &b, &s);
		size_t n = 2 * 1024 * 1024 + 1;
		uint8_t *data = malloc(n);
		fill(data, n, 3);
		struct rill_copy_opts o = {.flags =
		                               mode ? RILL_COPY_NO_SPLICE : 0};
		struct copy_done cd = {0};
		TH_OK(rill_copy(a, b, &o, copy_cb, &cd, NULL));
		struct feeder fd = {.f = c, .data = data, .len = n, .rnd = 4};
		feed_more(&fd);
		struct sink sk = {0};
		sink_start(&sk, s, n + 16);
		while (cd.calls == 0 || sk.len < n)
			uv_run(l, UV_RUN_ONCE);
		TH_OK(cd.res.status);
		TH_EQ_INT(cd.res.spliced, mode == 0);
		TH_EQ_U64(cd.res.stats.read_bytes, n);
		TH_EQ_U64(cd.res.stats.write_bytes, n);
		TH_EQ_MEM(sk.data, data, n);
		/* dst still open for writing, through the flow API now. */
		TH_OK(rill_write_copy(b, "tail", 4, NULL, NULL));
		TH_OK(rill_shutdown(b, RILL_SHUT_WR, NULL, NULL));
		while (sk.status == 1)
			uv_run(l, UV_RUN_ONCE);
		TH_EQ_ERR(sk.status, RILL_EOF);
		TH_EQ_INT(sk.len, n + 4);
		TH_EQ_MEM(sk.data + n, "tail", 4);
		rill_close(a);
		rill_close(b);
		rill_close(c);
		rill_close(s);
		free(data);
		free(sk.data);
		loop_done(l);
	}
}

/* The server's socket goes away mid-transfer: b (the target side) is the
 * failing side, on both paths, and the proxy still completes. */
TEST(socket_proxy_target_reset_is_side_b)
{
	for (int mode = 0; mode < 2; mode++) {
		uv_loop_t *l = loop_new();
		struct rill_flow *c, *a, *b, *s;
		sock_pair(l, "tcp://127.0.0.1:0", &c, &a);
		sock_pair(l, "tcp://127.0.0.1:0", &b, &s);
		struct proxy_done pd = {.close_in_cb = true, .a = a, .b = b};
		struct rill_proxy_opts po = {0};
		po.copy.flags = mode ? RILL_COPY_NO_SPLICE : 0;
		TH_OK(rill_proxy(a, b, &po, proxy_cb, &pd, NULL));
		static uint8_t blk[4096];
		endless_feed_cb(c, 0, blk);
		/* Let bytes flow, then close s with unread data: RST. */
		for (int i = 0; i < 50; i++)
			uv_run(l, UV_RUN_NOWAIT);
		rill_close(s);
		int ceof = 1;
		rill_read(c, drain_cb, &ceof);
		while (pd.calls == 0 || ceof == 1)
			uv_run(l, UV_RUN_ONCE);
		TH_TRUE(pd.res.failed & RILL_PROXY_B);
		TH_TRUE(pd.res.status != 0);
		TH_TRUE(ceof == RILL_EOF || ceof == RILL_ECONNRESET);
		rill_close(c);
		loop_done(l);
	}
}

/* A layer above the socket transforms the bytes: the proxy must not
 * splice under it (the layer offers no fd), and everything still flows. */
TEST(socket_proxy_layered_flows_use_generic_path)
{
	struct rill_proxy_result res;
	socket_proxy_case("shut+tcp://127.0.0.1:0", 0, false, &res);
	TH_EQ_U64(res.ab.stats.write_bytes, 5 * 1024 * 1024 + 11);
	TH_EQ_U64(res.ba.stats.write_bytes, 3 * 1024 * 1024 + 5);
}

/* The documented switch for the generic path without code changes. */
TEST(socket_proxy_env_no_splice)
{
	setenv("RILL_NO_SPLICE", "1", 1);
	struct rill_proxy_result res;
	socket_proxy_case("tcp://127.0.0.1:0", 0, false, &res);
	TH_TRUE(!res.ab.spliced && !res.ba.spliced);
}

/* ---------------------------------------------------------------------- */
/* Between two connections to this host the splice path keeps little in
 * flight (src/combinator/splice_local.c): 128 KiB socket buffers, which
 * the kernel reports doubled, and a congestion control that does not
 * pace. RILL_SPLICE_LOCAL=0, a Unix socket or the generic path leave the
 * sockets as they were. The bytes are checked either way. */

static int sock_int(struct rill_flow *f, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof v;
	TH_OK(getsockopt(rill__flow_fd(f), level, name, &v, &len));
	return v;
}

static void sock_cc(struct rill_flow *f, char *cc, size_t n)
{
	memset(cc, 0, n);
	socklen_t len = (socklen_t)n - 1;
	TH_OK(getsockopt(rill__flow_fd(f), IPPROTO_TCP, TCP_CONGESTION, cc,
	                 &len));
}

/* What the kernel reports after SO_RCVBUF/SO_SNDBUF of 128 KiB. */
static int tuned_buf(const char *max_sysctl)
{
	int max = 1 << 30;
	FILE *fp = fopen(max_sysctl, "r");
	if (fp != NULL) {
		if (fscanf(fp, "%d", &max) != 1)
			max = 1 << 30;
		fclose(fp);
	}
	return 2 * (max < 128 * 1024 ? max : 128 * 1024);
}

static bool local_expect_tuned;

static void local_check(struct rill_flow *a, struct rill_flow *b)
{
	int rcv = tuned_buf("/proc/sys/net/core/rmem_max");
	int snd = tuned_buf("/proc/sys/net/core/wmem_max");
	struct rill_flow *f[2] = {a, b};
	for (int i = 0; i < 2; i++) {
		char cc[32];
		sock_cc(f[i], cc, sizeof cc);
		if (local_expect_tuned) {
			TH_EQ_INT(sock_int(f[i], SOL_SOCKET, SO_RCVBUF), rcv);
			TH_EQ_INT(sock_int(f[i], SOL_SOCKET, SO_SNDBUF), snd);
			TH_TRUE(strncmp(cc, "bbr", 3) != 0);
		} else {
			/* Untouched: autotuned buffers start elsewhere, and
			 * the congestion control is the system's. */
			TH_TRUE(sock_int(f[i], SOL_SOCKET, SO_RCVBUF) != rcv ||
			        sock_int(f[i], SOL_SOCKET, SO_SNDBUF) != snd);
			char sys[32] = "";
			FILE *fp = fopen(
			    "/proc/sys/net/ipv4/tcp_congestion_control", "r");
			if (fp != NULL) {
				if (fscanf(fp, "%31s", sys) != 1)
					sys[0] = '\0';
				fclose(fp);
			}
			if (sys[0] != '\0')
				TH_EQ_STR(cc, sys);
		}
	}
}

TEST(socket_proxy_local_tcp_is_tuned)
{
	struct rill_proxy_result res;
	socket_case_check = local_check;
	local_expect_tuned = true;
	socket_proxy_case("tcp://127.0.0.1:0", 0, true, &res);
	socket_proxy_case("tcp://[::1]:0", 0, true, &res);
	local_expect_tuned = false;
	socket_proxy_case("tcp://127.0.0.1:0", RILL_COPY_NO_SPLICE, false,
	                  &res);
	setenv("RILL_SPLICE_LOCAL", "0", 1);
	socket_proxy_case("tcp://127.0.0.1:0", 0, true, &res);
	unsetenv("RILL_SPLICE_LOCAL");
	socket_case_check = NULL;
	TH_EQ_U64(res.ab.stats.write_bytes, 5 * 1024 * 1024 + 11);
}
