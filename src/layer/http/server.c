/*
 * The HTTP server object: serving connections, a request head's
 * arrival (validation, then the handler), graceful shutdown. The server
 * is its connections' user: conn.c calls it only through the role
 * table http_server_user.
 * See http_internal.h for the layer's design.
 */
#include <stdio.h>
#include <strings.h>

#include "layer/http/http_internal.h"

static void http_server_check_done(struct rill_http_server *s);

/* ---------------------------------------------------------------------- */
/* The server as its connections' user (struct http_conn_user) */

/* A warning through the server's log callback (or stderr). */
static void http_server_conn_log(struct http_conn *c, const char *msg)
{
	struct rill_http_server *s = c->srv;
	if (s->o.log != NULL)
		s->o.log(s->o.log_ud, msg);
	else
		fprintf(stderr, "rill http: %s\n", msg);
}

/* A connection was torn down: it leaves the server's list. */
static void http_server_conn_gone(struct http_conn *c)
{
	struct rill_http_server *s = c->srv;
	if (s == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	if (s->nconns == 0)
		uv_timer_stop(&s->sweep);
	c->srv = NULL;
	if (s->o.conn_done != NULL) {
		struct rill_http_conn_info ci = {
		    .seconds = (double)(uv_hrtime() - c->t0_ns) / 1e9,
		    .bytes_in = c->io_in,
		    .bytes_out = c->io_out,
		    .requests = c->nreq,
		};
		s->o.conn_done(s->o.conn_ud, &ci);
	}
	http_server_check_done(s);
}

static bool http_request_has_body(llhttp_t *p)
{
	if (p->flags & F_CHUNKED)
		return true;
	return (p->flags & F_CONTENT_LENGTH) && p->content_length > 0;
}

/* A request head is complete: make its exchange and call the handler. */
static void http_server_on_head(struct http_conn *c)
{
	struct rill_http_server *s = c->srv;
	llhttp_t *p = &c->parser;
	if (p->http_major != 1) {
		rill__http_conn_send_error(c, 505);
		return;
	}
	/* A request Transfer-Encoding that does not end in chunked leaves
	 * the body length unknown: RFC 9112 6.3 says 400 and close. */
	if ((p->flags & F_TRANSFER_ENCODING) && !(p->flags & F_CHUNKED)) {
		rill__http_conn_send_error(c, 400);
		return;
	}
	if ((p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED) &&
	    p->content_length > s->o.max_body) {
		rill__http_conn_send_error(c, 413);
		return;
	}
	c->nreq++;
	c->keep_alive = llhttp_should_keep_alive(p) && !s->shutting_down &&
	                (s->o.max_requests_per_conn == 0 ||
	                 c->nreq < s->o.max_requests_per_conn);
	struct http_ex *ex = rill__http_ex_new(c, ROLE_SERVER);
	if (ex == NULL) {
		rill__http_conn_send_error(c, 503);
		return;
	}
	rill__http_ex_fill_head(ex, c);
	ex->head_request = p->method == HTTP_HEAD;
	const char *expect = rill__http_head_get(&c->head, "Expect");
	if (expect != NULL) {
		if (strcasecmp(expect, "100-continue") != 0) {
			rill_flow_discard(&ex->base);
			rill__http_conn_send_error(c, 400);
			return;
		}
		ex->expect_continue =
		    p->http_minor >= 1 && http_request_has_body(p);
	}
	/* A small unread body is skipped to keep the connection; a large
	 * one, or one the client waits to be invited to send, is not. */
	c->drain_ok = !http_request_has_body(p) ||
	              (!(p->flags & F_CHUNKED) && !ex->expect_continue &&
	               p->content_length <= 256 * 1024);
	c->ex = ex;
	c->st = ST_EXCHANGE;
	c->head_seen = false;
	rill__http_conn_timer(c, TM_NONE, 0);
	s->handler(&ex->base, s->ud);
}

static const struct http_conn_user http_server_user = {
    .head = http_server_on_head,
    .gone = http_server_conn_gone,
    .log = http_server_conn_log,
};

/* ---------------------------------------------------------------------- */
/* Server object */

int rill_http_server_new(uv_loop_t *loop,
                         const struct rill_http_server_opts *opts,
                         rill_http_handler handler, void *ud,
                         struct rill_http_server **out)
{
	if (loop == NULL || handler == NULL || out == NULL)
		return RILL_EINVAL;
	struct rill_http_server *s = rill_calloc(1, sizeof *s);
	if (s == NULL)
		return RILL_ENOMEM;
	if (opts != NULL)
		s->o = *opts;
	if (s->o.max_header_bytes == 0)
		s->o.max_header_bytes = 16 * 1024;
	if (s->o.max_headers == 0)
		s->o.max_headers = 100;
	if (s->o.max_body == 0)
		s->o.max_body = 64u * 1024 * 1024;
	if (s->o.header_timeout_ms == 0)
		s->o.header_timeout_ms = 10000;
	if (s->o.idle_timeout_ms == 0)
		s->o.idle_timeout_ms = 60000;
	if (s->o.body_timeout_ms == 0)
		s->o.body_timeout_ms = 30000;
	if (s->o.send_timeout_ms == 0)
		s->o.send_timeout_ms = 30000;
	if (s->o.handler_timeout_ms == 0)
		s->o.handler_timeout_ms = 60000;
	s->loop = loop;
	s->handler = handler;
	s->ud = ud;
	uv_idle_init(loop, &s->done_idle);
	s->done_idle.data = s;
	uv_timer_init(loop, &s->sweep);
	s->sweep.data = s;
	s->open_handles = 2;
	*out = s;
	return 0;
}

/* Send progress: a connection with writes in flight and none completed
 * for send_timeout_ms is closed; its exchange's writes fail with
 * RILL_ETIMEDOUT. */
static void http_server_sweep(uv_timer_t *t)
{
	struct rill_http_server *s = t->data;
	uint64_t now = uv_now(s->loop);
	struct http_conn *c = s->conns;
	while (c != NULL) {
		struct http_conn *next = c->next;
		if (c->wrq_n > 0 &&
		    now - c->wr_progress_ms >= s->o.send_timeout_ms)
			rill__http_conn_destroy(c, RILL_ETIMEDOUT);
		c = next;
	}
	if (s->nconns == 0)
		uv_timer_stop(t); /* a server without connections keeps no
		                     loop alive */
}

/* Between requests: no byte of the next head, nothing unparsed. */
static bool http_server_conn_idle(const struct http_conn *c)
{
	return c->st == ST_HEAD && !c->head_seen && c->in == NULL;
}

/*
 * At max_connections: closes the keep-alive connection that has been
 * waiting the longest for its next request (it served one at least and
 * writes nothing), as nginx reuses its idle keep-alive connections.
 * Otherwise one client that sends a request a minute on each of them
 * (the idle timeout) holds every slot. A new silent connection is not
 * taken: its head deadline ends it anyway, and the one being accepted
 * would be just like it. false when there is none.
 */
static bool http_server_reuse(struct rill_http_server *s)
{
	struct http_conn *oldest = NULL;
	for (struct http_conn *c = s->conns; c != NULL; c = c->next)
		if (http_server_conn_idle(c) && c->nreq > 0 && c->wrq_n == 0 &&
		    c->pending_resp == 0)
			oldest = c; /* the list is newest first */
	if (oldest == NULL)
		return false;
	rill__http_conn_destroy(oldest, RILL_ECANCELED);
	return true;
}

static void http_server_sweep_start(struct rill_http_server *s)
{
	uint64_t ms = s->o.send_timeout_ms;
	if (ms == UINT64_MAX || uv_is_active((uv_handle_t *)&s->sweep))
		return;
	uint64_t every = ms / 4 > 0 ? ms / 4 : 1;
	uv_timer_start(&s->sweep, http_server_sweep, every, every);
}

int rill_http_server_serve(struct rill_http_server *s, struct rill_flow *io)
{
	if (s == NULL || io == NULL) {
		rill_close(io);
		return RILL_EINVAL;
	}
	if (s->shutting_down) {
		rill_close(io);
		return RILL_ECANCELED;
	}
	if (s->o.max_connections > 0 && s->nconns >= s->o.max_connections &&
	    !http_server_reuse(s)) {
		rill_close(io);
		return -EBUSY;
	}
	struct http_conn *c = rill_calloc(1, sizeof *c);
	if (c == NULL) {
		rill_close(io);
		return RILL_ENOMEM;
	}
	int err =
	    rill__http_conn_init(c, s->loop, io, ROLE_SERVER, &http_server_user,
	                         s->o.max_header_bytes, s->o.max_headers);
	if (err != 0) {
		rill_free(c);
		rill_close(io);
		return err;
	}
	/* Small responses must leave at once (Nagle would hold them back
	 * waiting for an ACK); -ENOTSUP on non-TCP flows is fine. */
	(void)rill_flow_set_nodelay(io, true);
	c->srv = s;
	c->t0_ns = uv_hrtime();
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	http_server_sweep_start(s);
	c->st = ST_HEAD;
	rill__http_conn_drive(c);
	return 0;
}

size_t rill_http_server_connections(struct rill_http_server *s)
{
	return s != NULL ? s->nconns : 0;
}

static void http_server_done_idle(uv_idle_t *h)
{
	struct rill_http_server *s = h->data;
	uv_idle_stop(h);
	void (*done)(void *) = s->done;
	s->done = NULL;
	if (done != NULL)
		done(s->done_ud);
}

/* Runs the shutdown's done callback once the last connection is gone. */
static void http_server_check_done(struct rill_http_server *s)
{
	if (s->shutting_down && s->nconns == 0 && s->done != NULL &&
	    !s->freeing)
		uv_idle_start(&s->done_idle, http_server_done_idle);
}

void rill_http_server_shutdown(struct rill_http_server *s,
                               void (*done)(void *ud), void *ud)
{
	if (s == NULL || s->shutting_down)
		return;
	s->shutting_down = true;
	s->done = done;
	s->done_ud = ud;
	struct http_conn *c = s->conns;
	while (c != NULL) {
		struct http_conn *next = c->next;
		c->keep_alive = false;
		if (http_server_conn_idle(c))
			rill__http_conn_destroy(c, RILL_ECANCELED);
		c = next;
	}
	http_server_check_done(s);
}

static void http_server_freed(uv_handle_t *h)
{
	struct rill_http_server *s = h->data;
	if (--s->open_handles == 0)
		rill_free(s);
}

void rill_http_server_free(struct rill_http_server *s)
{
	if (s == NULL)
		return;
	s->freeing = true;
	s->done = NULL;
	while (s->conns != NULL)
		rill__http_conn_destroy(s->conns, RILL_ECANCELED);
	uv_close((uv_handle_t *)&s->done_idle, http_server_freed);
	uv_close((uv_handle_t *)&s->sweep, http_server_freed);
}
