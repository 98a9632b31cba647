/*
 * The tunnel layers' flow and handshake engine (tunnel.h): the handshake
 * steps over the inner flow, then a pass-through flow whose first read
 * returns the bytes that came after the handshake, and, on the accepting
 * side of socks5+ and connect+, the reply (rill_tunnel_reply).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "layer/tunnel/tunnel.h"

static struct tun *tun_of(struct rill_flow *f)
{
	return rill_container_of(f, struct tun, l.base);
}

struct tun *tun_new(struct rill_flow *inner, const struct tun_proto *proto,
                    const struct rill_flow_ops *ops, int role,
                    uint64_t deadline_ms, rill_attach_cb cb, void *ud)
{
	struct rill_layer *l = rill_layer_new(inner, ops, sizeof(struct tun));
	if (l == NULL) {
		rill__set_last_errmsg("%s layer: out of memory", proto->name);
		return NULL;
	}
	struct tun *t = rill_container_of(&l->base, struct tun, l.base);
	t->proto = proto;
	t->role = role;
	t->cb = cb;
	t->ud = ud;
	t->acc_max = RILL__CONNECT_HEAD_MAX;
	t->acc_cap = t->acc_max;
	t->acc = rill_malloc(t->acc_cap);
	if (t->acc == NULL) {
		rill_close(&l->base);
		rill__set_last_errmsg("%s layer: out of memory", proto->name);
		return NULL;
	}
	/* One deadline for the whole handshake (tun_arm). A connect without
	 * a deadline still gets one: a proxy that never answers must not
	 * hold it for ever. */
	if (deadline_ms == 0)
		deadline_ms = TUN_DEFAULT_DEADLINE_MS;
	uv_update_time(rill_flow_loop(inner));
	t->deadline = uv_now(rill_flow_loop(inner)) + deadline_ms;
	return t;
}

void tun_fail(struct tun *t, int err, const char *fmt, ...)
{
	char msg[512];
	int n = snprintf(msg, sizeof msg, "%s layer: ", t->proto->name);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	va_end(ap);
	rill_attach_cb cb = t->cb;
	void *ud = t->ud;
	t->cb = NULL;
	rill_close(&t->l.base);
	if (cb != NULL)
		cb(NULL, err, msg, ud);
}

/* Gives the next read or write of the inner flow what is left of the
 * handshake's deadline; false (and the handshake failed) once none is. */
static bool tun_arm(struct tun *t, const char *what)
{
	uv_loop_t *loop = rill_flow_loop(t->l.inner);
	uv_update_time(loop);
	uint64_t now = uv_now(loop);
	if (now >= t->deadline) {
		tun_fail(t, RILL_ETIMEDOUT, "handshake %s: deadline expired",
		         what);
		return false;
	}
	rill_set_read_timeout(t->l.inner, t->deadline - now);
	rill_set_write_timeout(t->l.inner, t->deadline - now);
	return true;
}

void tun_ready(struct tun *t)
{
	rill_set_read_timeout(t->l.inner, 0);
	rill_set_write_timeout(t->l.inner, 0);
	rill_attach_cb cb = t->cb;
	t->cb = NULL;
	cb(&t->l.base, 0, NULL, t->ud);
}

void tun_start(struct tun *t, tun_step first)
{
	first(t);
}

void tun_consume(struct tun *t, size_t n)
{
	memmove(t->acc, t->acc + n, t->acc_len - n);
	t->acc_len -= n;
}

static const char *tun_errmsg(struct rill_flow *f, int status)
{
	const char *m = rill_flow_errmsg(f);
	return m != NULL ? m : rill_strerror(status);
}

static void tun_need_cb(struct rill_flow *inner, int status,
                        struct rill_buf *buf, void *ud)
{
	struct tun *t = ud;
	if (status == RILL_EOF) {
		tun_fail(t, RILL_EHANDSHAKE,
		         "the peer closed the connection during the handshake");
		return;
	}
	if (status != 0) {
		tun_fail(t, status, "handshake: %s", tun_errmsg(inner, status));
		return;
	}
	if (t->acc_len >= t->acc_max) {
		/* The parsers refuse a message at their limit before acc
		 * gets there; this is a safety net. */
		rill_buf_release(buf);
		tun_fail(t, -EMSGSIZE,
		         "handshake message longer than %zu bytes", t->acc_max);
		return;
	}
	if (buf->len > t->acc_cap - t->acc_len) {
		/* A chunk may carry the end of the handshake and the first
		 * bytes of the flow: take it whole, so acc holds at most
		 * acc_max bytes plus one chunk. */
		uint8_t *n = rill_realloc(t->acc, t->acc_len + buf->len);
		if (n == NULL) {
			rill_buf_release(buf);
			tun_fail(t, RILL_ENOMEM, "out of memory");
			return;
		}
		t->acc = n;
		t->acc_cap = t->acc_len + buf->len;
	}
	memcpy(t->acc + t->acc_len, buf->data, buf->len);
	t->acc_len += buf->len;
	rill_buf_release(buf);
	t->next(t);
}

void tun_need(struct tun *t, tun_step next)
{
	t->next = next;
	if (!tun_arm(t, "read"))
		return;
	int err = rill_read(t->l.inner, tun_need_cb, t);
	if (err != 0)
		tun_fail(t, err, "handshake read: %s", rill_strerror(err));
}

static void tun_send_cb(struct rill_flow *inner, int status, void *ud)
{
	struct tun *t = ud;
	if (status != 0) {
		tun_fail(t, status, "handshake write: %s",
		         tun_errmsg(inner, status));
		return;
	}
	t->next(t);
}

void tun_send(struct tun *t, const void *bytes, size_t len, tun_step next)
{
	t->next = next;
	if (!tun_arm(t, "write"))
		return;
	int err = rill_write_copy(t->l.inner, bytes, len, tun_send_cb, t);
	if (err != 0)
		tun_fail(t, err, "handshake write: %s", rill_strerror(err));
}

/* ---------------------------------------------------------------------- */
/* The flow after the handshake */

/* Accepting side: the success reply goes out before anything else. */
static int tun_reply_now(struct tun *t, int status)
{
	if (!t->reply_pending)
		return 0;
	t->reply_pending = false;
	uint8_t out[256];
	size_t n = t->proto->reply(status, out);
	return rill_write_copy(t->l.inner, out, n, NULL, NULL);
}

void rill__tun_read(struct rill_flow *f)
{
	struct tun *t = tun_of(f);
	int err = tun_reply_now(t, 0);
	if (err != 0) {
		rill_flow_read_done(f, err, NULL);
		return;
	}
	if (t->acc_len > 0) {
		struct rill_buf *b = rill_buf_copy(t->acc, t->acc_len);
		if (b == NULL) {
			rill_flow_read_done(f, RILL_ENOMEM, NULL);
			return;
		}
		t->acc_len = 0;
		rill_flow_read_done(f, 0, b);
		return;
	}
	rill_layer_read(f);
}

void rill__tun_write(struct rill_flow *f, struct rill_buf *const *bufs,
                     size_t n)
{
	int err = tun_reply_now(tun_of(f), 0);
	if (err != 0)
		rill_flow_write_done(f, err);
	else
		rill_layer_write(f, bufs, n);
}

void rill__tun_shutdown_write(struct rill_flow *f)
{
	int err = tun_reply_now(tun_of(f), 0);
	if (err != 0)
		rill_flow_shutdown_done(f, err);
	else
		rill_layer_shutdown_write(f);
}

void rill__tun_close(struct rill_flow *f)
{
	struct tun *t = tun_of(f);
	rill_free(t->acc);
	t->acc = NULL;
	rill_free(t->user);
	rill_free(t->pass);
	t->user = t->pass = NULL;
	rill_layer_close(f);
}

int rill__tun_address(struct rill_flow *f, int which, char *buf, size_t len)
{
	struct tun *t = tun_of(f);
	if (t->pp.family != RILL__PP_LOCAL)
		return rill__pp_format_address(
		    &t->pp, which == RILL_ADDR_PEER ? 0 : 1, buf, len);
	return rill_layer_address(f, which, buf, len);
}

/* ---------------------------------------------------------------------- */
/* The public calls (rill/tunnel.h) */

static void tun_reply_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	struct tun *t = ud;
	if (t->reply_cb != NULL && !rill_flow_is_closed(&t->l.base))
		t->reply_cb(&t->l.base, status, t->reply_ud);
}

/* f's tunnel state when f is an accepted socks5+ or connect+ flow. */
static struct tun *tun_accepted(struct rill_flow *f)
{
	if (f == NULL || f->ops->read != rill__tun_read)
		return NULL;
	struct tun *t = tun_of(f);
	return t->have_target ? t : NULL;
}

int rill_tunnel_target(struct rill_flow *f, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return RILL_EINVAL;
	struct tun *t = tun_accepted(f);
	if (t == NULL)
		return -ENOTSUP;
	if (rill_flow_is_closed(f))
		return RILL_ECLOSED;
	return rill__tun_format_target(&t->target, buf, len);
}

int rill_tunnel_reply(struct rill_flow *f, int status, rill_write_cb cb,
                      void *ud)
{
	struct tun *t = tun_accepted(f);
	if (t == NULL)
		return f == NULL ? RILL_EINVAL : -ENOTSUP;
	if (rill_flow_is_closed(f))
		return RILL_ECLOSED;
	if (!t->reply_pending)
		return RILL_EALREADY;
	uint8_t out[256];
	size_t n = t->proto->reply(status, out);
	/* Straight to the inner flow: the reply is not the flow's data (its
	 * counters), and writes the user makes later queue behind it.
	 * Closing f closes the inner flow, whose core then drops
	 * tun_reply_cb: cb never runs after rill_close(f). */
	t->reply_cb = cb;
	t->reply_ud = ud;
	int err = rill_write_copy(t->l.inner, out, n, tun_reply_cb, t);
	if (err == 0)
		t->reply_pending = false;
	return err;
}

int tun_uri_target(const struct rill_uri *u, struct rill__tun_target *t)
{
	const char *v = rill__uri_param(u, "target");
	const char *why = NULL;
	if (v == NULL)
		return rill__uri_error(u, "missing parameter", "target");
	if (rill__tun_parse_target(v, strlen(v), t, &why) != 0) {
		char what[64];
		snprintf(what, sizeof what, "bad target (%s)", why);
		return rill__uri_error(u, what, v);
	}
	return 0;
}
