/*
 * The WebSocket flow's opening handshake (RFC 6455 section 4) over the
 * flow below, its attach, and the public facts about a WebSocket flow.
 * The handshake's bytes are read here until a complete head (at most
 * WS_HEAD_MAX bytes, before the deadline); what follows the head is the
 * first input of the frames (flow.c).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "layer/ws/ws_internal.h"

static struct ws_flow *ws_of(struct rill_flow *f)
{
	return rill_container_of(f, struct ws_flow, layer.base);
}

static void ws_hs_fail(struct ws_flow *ws, int err, const char *why);

static void ws_hs_timer_cb(uv_timer_t *t)
{
	struct ws_flow *ws = t->data;
	if (ws->st == WS_HS || ws->st == WS_REFUSE)
		ws_hs_fail(ws, RILL_ETIMEDOUT,
		           "WebSocket: handshake deadline expired");
}

static void ws_hs_fail(struct ws_flow *ws, int err, const char *why)
{
	ws_attach_cb cb = ws->attach_cb;
	void *ud = ws->attach_ud;
	ws->attach_cb = NULL;
	if (why != ws->why)
		snprintf(ws->why, sizeof ws->why, "%s", why);
	rill__set_last_errmsg("%s", ws->why);
	ws->st = WS_DEAD;
	char msg[sizeof ws->why];
	memcpy(msg, ws->why, sizeof msg);
	rill_close(&ws->layer.base);
	if (cb != NULL)
		cb(NULL, err, msg, ud);
}

static void ws_open(struct ws_flow *ws)
{
	int err = rill__ws_start(ws);
	if (err != 0) {
		ws_hs_fail(ws, err, "WebSocket: out of memory");
		return;
	}
	/* The head is done with (what followed it is a slice in ws->in). */
	rill_buf_release(ws->hs);
	ws->hs = NULL;
	ws_attach_cb cb = ws->attach_cb;
	ws->attach_cb = NULL;
	cb(&ws->layer.base, 0, NULL, ws->attach_ud);
}

static void ws_hs_wrote(struct rill_flow *inner, int status, void *ud)
{
	struct ws_flow *ws = ud;
	if (ws->st == WS_OPEN)
		return; /* a client's request: the answer came first */
	if (ws->st == WS_DEAD)
		return; /* failed meanwhile (the deadline): closing */
	if (status != 0) {
		ws_hs_fail(ws, status, "WebSocket: handshake write failed");
		return;
	}
	if (ws->st == WS_REFUSE) {
		ws->st = WS_DEAD;
		rill_shutdown(inner, RILL_SHUT_WR, NULL, NULL);
		ws_hs_fail(ws, RILL_EHANDSHAKE, ws->why);
		return;
	}
	if (ws->role == RILL_WS_SERVER)
		ws_open(ws);
}

static const char *ws_hdr_lookup(void *ctx, const char *name)
{
	const struct ws_head *h = ctx;
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->name[i], name) == 0)
			return h->value[i];
	return NULL;
}

/* A complete head arrived in ws->hs[0..end). */
static void ws_hs_head(struct ws_flow *ws, size_t end)
{
	struct ws_head h;
	int err = rill__ws_head_parse(&h, (char *)ws->hs->data, end,
	                              ws->role == RILL_WS_SERVER);
	if (ws->hs->len > end) {
		ws->in = rill_buf_slice(ws->hs, end, ws->hs->len - end);
		if (ws->in == NULL) {
			ws_hs_fail(ws, RILL_ENOMEM, "WebSocket: out of memory");
			return;
		}
	}
	if (ws->role == RILL_WS_CLIENT) {
		const char *why =
		    err != 0
		        ? "malformed handshake answer"
		        : rill__ws_check_response(&ws->conf, &h, ws->key,
		                                  ws->proto, sizeof ws->proto);
		if (why != NULL) {
			char msg[192];
			snprintf(msg, sizeof msg, "WebSocket: %s (HTTP %d)",
			         why, err != 0 ? 0 : h.status);
			ws_hs_fail(ws, RILL_EHANDSHAKE, msg);
			return;
		}
		ws_open(ws);
		return;
	}
	struct ws_verdict v;
	if (err != 0) {
		memset(&v, 0, sizeof v);
		v.status = err == RILL_EHTTP_TOO_LARGE ? 431 : 400;
		v.why = "malformed HTTP request";
	} else {
		rill__ws_check_request(&ws->conf, h.get, h.minor, h.url,
		                       ws_hdr_lookup, &h, &v);
	}
	struct rill_buf *resp = rill__ws_response(&v);
	if (resp == NULL) {
		ws_hs_fail(ws, RILL_ENOMEM, "WebSocket: out of memory");
		return;
	}
	if (v.status != 101) {
		ws->st = WS_REFUSE;
		snprintf(ws->why, sizeof ws->why, "WebSocket: refused (%d): %s",
		         v.status, v.why);
	} else {
		snprintf(ws->proto, sizeof ws->proto, "%s", v.protocol);
	}
	err = rill_write(ws->layer.inner, resp, ws_hs_wrote, ws);
	rill_buf_release(resp);
	if (err != 0)
		ws_hs_fail(ws, err, "WebSocket: handshake write failed");
}

static void ws_hs_read_cb(struct rill_flow *inner, int status,
                          struct rill_buf *buf, void *ud)
{
	struct ws_flow *ws = ud;
	if (ws->st != WS_HS) {
		/* The deadline expired in the same turn of the loop as this
		 * read: the handshake failed and the flow is closing. */
		rill_buf_release(buf);
		return;
	}
	if (status != 0) {
		ws_hs_fail(ws, status == RILL_EOF ? RILL_EHANDSHAKE : status,
		           "WebSocket: connection ended during the handshake");
		return;
	}
	size_t have = ws->hs != NULL ? ws->hs->len : 0;
	struct rill_buf *b = rill_buf_new(have + buf->len + 1);
	if (b == NULL) {
		rill_buf_release(buf);
		ws_hs_fail(ws, RILL_ENOMEM, "WebSocket: out of memory");
		return;
	}
	if (have > 0)
		memcpy(b->data, ws->hs->data, have);
	memcpy(b->data + have, buf->data, buf->len);
	b->len = have + buf->len;
	rill_buf_release(buf);
	rill_buf_release(ws->hs);
	ws->hs = b;
	size_t end = rill__ws_head_end((const char *)b->data, b->len);
	if (end > WS_HEAD_MAX || (end == 0 && b->len > WS_HEAD_MAX)) {
		if (ws->role == RILL_WS_CLIENT) {
			ws_hs_fail(ws, RILL_EHANDSHAKE,
			           "WebSocket: handshake answer too large");
			return;
		}
		struct ws_verdict v = {.status = 431,
		                       .why = "request head too large"};
		struct rill_buf *resp = rill__ws_response(&v);
		ws->st = WS_REFUSE;
		snprintf(ws->why, sizeof ws->why,
		         "WebSocket: refused (431): "
		         "request head too large");
		int err = resp != NULL
		              ? rill_write(inner, resp, ws_hs_wrote, ws)
		              : RILL_ENOMEM;
		rill_buf_release(resp);
		if (err != 0)
			ws_hs_fail(ws, err, ws->why);
		return;
	}
	if (end == 0) {
		int err = rill_read(inner, ws_hs_read_cb, ws);
		if (err != 0)
			ws_hs_fail(ws, err, "WebSocket: read failed");
		return;
	}
	ws_hs_head(ws, end);
}

static void ws_hs_start(uv_timer_t *t)
{
	struct ws_flow *ws = t->data;
	uv_timer_start(&ws->timer, ws_hs_timer_cb, ws->conf.hs_ms, 0);
	if (ws->st == WS_OPEN) {
		/* rill_ws_accept: the handshake was answered already. */
		ws->st = WS_HS;
		ws_open(ws);
		return;
	}
	int err = 0;
	if (ws->role == RILL_WS_CLIENT) {
		struct rill_buf *req = rill__ws_request(&ws->conf, ws->key);
		err = req != NULL
		          ? rill_write(ws->layer.inner, req, ws_hs_wrote, ws)
		          : RILL_ENOMEM;
		rill_buf_release(req);
	}
	if (err == 0)
		err = rill_read(ws->layer.inner, ws_hs_read_cb, ws);
	if (err != 0)
		ws_hs_fail(ws, err, "WebSocket: could not start the handshake");
}

int rill__ws_attach(struct rill_flow *inner, int role, struct ws_conf *conf,
                    const char *protocol, bool open, struct rill_buf *rest,
                    ws_attach_cb cb, void *ud)
{
	struct rill_layer *l =
	    rill_layer_new(inner, &rill__ws_ops, sizeof(struct ws_flow));
	if (l == NULL) {
		rill__ws_conf_free(conf);
		rill_buf_release(rest);
		rill__set_last_errmsg("WebSocket: out of memory");
		return RILL_ENOMEM;
	}
	struct ws_flow *ws = rill_container_of(l, struct ws_flow, layer);
	/* A Close ends both directions once answered (RFC 6455 5.5.1): the
	 * peer may finish only the message it is sending. Not a half-close:
	 * rill_shutdown(RILL_SHUT_WR) alone is refused while reads are
	 * open, so that no reply is cut short; shut+ws+ adds a real one. */
	rill_flow_set_half_close(&l->base, false);
	ws->in = rest;
	ws->role = role;
	ws->conf = *conf;
	memset(conf, 0, sizeof *conf);
	ws->attach_cb = cb;
	ws->attach_ud = ud;
	ws->st = open ? WS_OPEN : WS_HS;
	if (protocol != NULL)
		snprintf(ws->proto, sizeof ws->proto, "%s", protocol);
	uv_timer_init(l->base.loop, &ws->timer);
	ws->timer.data = ws;
	/* Started from the loop, so cb never runs inside this call. */
	uv_timer_start(&ws->timer, ws_hs_start, 0, 0);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Public */

struct ws_public_attach {
	rill_ws_attach_cb cb;
	void *ud;
};

static void ws_public_cb(struct rill_flow *f, int status, const char *msg,
                         void *ud)
{
	struct ws_public_attach pa = *(struct ws_public_attach *)ud;
	rill_free(ud);
	if (msg != NULL)
		rill__set_last_errmsg("%s", msg);
	pa.cb(f, status, pa.ud);
}

int rill__ws_attach_public(struct rill_flow *inner, int role,
                           struct ws_conf *conf, const char *protocol,
                           struct rill_buf *rest, rill_ws_attach_cb cb,
                           void *ud)
{
	struct ws_public_attach *pa = rill_malloc(sizeof *pa);
	if (pa == NULL) {
		rill__ws_conf_free(conf);
		rill_buf_release(rest);
		rill_close(inner);
		return RILL_ENOMEM;
	}
	pa->cb = cb;
	pa->ud = ud;
	bool open = protocol != NULL;
	int err = rill__ws_attach(inner, role, conf, protocol, open, rest,
	                          ws_public_cb, pa);
	if (err != 0)
		rill_free(pa);
	return err;
}

int rill_ws_attach(struct rill_flow *inner, int role,
                   const struct rill_ws_opts *opts, rill_ws_attach_cb cb,
                   void *ud)
{
	if (inner == NULL || cb == NULL ||
	    (role != RILL_WS_CLIENT && role != RILL_WS_SERVER)) {
		rill_close(inner);
		rill__set_last_errmsg("rill_ws_attach: bad argument");
		return RILL_EINVAL;
	}
	struct ws_conf conf;
	int err = rill__ws_conf_init(&conf, opts);
	if (err != 0) {
		rill_close(inner);
		return err;
	}
	return rill__ws_attach_public(inner, role, &conf, NULL, NULL, cb, ud);
}

bool rill_flow_is_ws(struct rill_flow *f)
{
	return f != NULL && f->ops == &rill__ws_ops;
}

const char *rill_ws_subprotocol(struct rill_flow *f)
{
	if (!rill_flow_is_ws(f) || rill_flow_is_closed(f))
		return NULL;
	struct ws_flow *ws = ws_of(f);
	return ws->proto[0] != '\0' ? ws->proto : NULL;
}

int rill_ws_close_code(struct rill_flow *f)
{
	if (!rill_flow_is_ws(f) || rill_flow_is_closed(f))
		return 0;
	return ws_of(f)->close_code;
}
