/*
 * The HTTP client object: one connection, one request at a time.
 * See http_internal.h for the layer's design.
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "layer/http/http_internal.h"

/* ---------------------------------------------------------------------- */
/* The client as its connection's user (struct http_conn_user) */

/* The response head of c->ex arrived: the response callback runs. */
static void http_client_on_head(struct http_conn *c)
{
	struct http_ex *ex = c->ex;
	if (ex == NULL)
		return;
	rill__http_ex_fill_head(ex, c);
	c->keep_alive = llhttp_should_keep_alive(&c->parser);
	rill__http_conn_timer(c, TM_NONE, 0);
	rill_http_response_cb cb = ex->resp_cb;
	ex->resp_cb = NULL;
	if (cb != NULL)
		cb(&ex->base, 0, ex->resp_ud);
}

/* The connection was torn down: the client cannot be used again. */
static void http_client_conn_gone(struct http_conn *c)
{
	if (c->client == NULL)
		return;
	c->client->broken = true;
	c->client->conn = NULL;
	c->client = NULL;
}

static const struct http_conn_user http_client_user = {
    .head = http_client_on_head,
    .gone = http_client_conn_gone,
};

int rill_http_client_new(struct rill_flow *io,
                         const struct rill_http_client_opts *opts,
                         struct rill_http_client **out)
{
	if (io == NULL || out == NULL) {
		rill_close(io);
		return RILL_EINVAL;
	}
	struct rill_http_client *cl = rill_calloc(1, sizeof *cl);
	struct http_conn *c = rill_calloc(1, sizeof *c);
	if (cl == NULL || c == NULL) {
		rill_free(cl);
		rill_free(c);
		rill_close(io);
		return RILL_ENOMEM;
	}
	if (opts != NULL)
		cl->o = *opts;
	if (cl->o.max_header_bytes == 0)
		cl->o.max_header_bytes = 64 * 1024;
	if (cl->o.max_headers == 0)
		cl->o.max_headers = 200;
	if (cl->o.header_timeout_ms == 0)
		cl->o.header_timeout_ms = 30000;
	int err = rill__http_conn_init(
	    c, rill_flow_loop(io), io, ROLE_CLIENT, &http_client_user,
	    cl->o.max_header_bytes, cl->o.max_headers);
	if (err != 0) {
		rill_free(cl);
		rill_free(c);
		rill_close(io);
		return err;
	}
	(void)rill_flow_set_nodelay(io, true);
	c->st = ST_IDLE;
	c->client = cl;
	cl->conn = c;
	*out = cl;
	return 0;
}

void rill_http_client_free(struct rill_http_client *cl)
{
	if (cl == NULL)
		return;
	if (cl->conn != NULL)
		rill__http_conn_destroy(cl->conn, RILL_ECLOSED);
	rill_free(cl);
}

bool rill_http_client_reusable(struct rill_http_client *cl)
{
	return cl != NULL && cl->conn != NULL && !cl->broken &&
	       cl->conn->st == ST_IDLE && cl->conn->ex == NULL;
}

/* The blocking request's wait for the response head. */
struct http_sync {
	uv_loop_t *loop;
	bool done;
	int status;
};

static void http_sync_head(struct rill_flow *ex, int status, void *ud)
{
	(void)ex;
	struct http_sync *st = ud;
	st->done = true;
	st->status = status;
	/* The waiting uv_run(UV_RUN_ONCE) must return now (sync.c). */
	uv_stop(st->loop);
}

int rill_http_request_sync(struct rill_http_client *cl, const char *method,
                           const char *target,
                           const struct rill_http_header *hdrs, size_t n,
                           const void *body, size_t len, struct rill_flow **out)
{
	if (out != NULL)
		*out = NULL;
	if (cl == NULL || out == NULL || (len > 0 && body == NULL) ||
	    len > INT64_MAX)
		return RILL_EINVAL;
	if (rill__callback_depth() > 0)
		return -EDEADLK;
	if (cl->conn == NULL || cl->broken)
		return RILL_ECLOSED;
	/* The state may live on the stack: the callback runs only while we
	 * wait here, and every early return closes the exchange first,
	 * after which it is never called. */
	struct http_sync st = {.loop = rill_flow_loop(cl->conn->io)};
	struct rill_flow *ex;
	int err = rill_http_request(cl, method, target, hdrs, n, (int64_t)len,
	                            http_sync_head, &st, &ex);
	if (err != 0)
		return err;
	/* A failed body write (the server may have answered early and
	 * closed) still lets its response head be read. */
	if (len > 0)
		(void)rill_write_sync(ex, body, len);
	while (!st.done) {
		if (uv_run(st.loop, UV_RUN_ONCE) == 0 && !st.done) {
			rill_close(ex);
			return -EDEADLK;
		}
	}
	if (st.status != 0) {
		rill_close(ex);
		return st.status;
	}
	*out = ex;
	return 0;
}

int rill_http_request(struct rill_http_client *cl, const char *method,
                      const char *target, const struct rill_http_header *hdrs,
                      size_t n, int64_t clen, rill_http_response_cb cb,
                      void *ud, struct rill_flow **out)
{
	if (cl == NULL || !rill__http_token_ok(method, false) ||
	    !rill__http_token_ok(target, true) || (n > 0 && hdrs == NULL) ||
	    clen < -1 || cb == NULL || out == NULL)
		return RILL_EINVAL;
	struct http_conn *c = cl->conn;
	if (c == NULL || cl->broken)
		return RILL_ECLOSED;
	if (c->ex != NULL || c->st != ST_IDLE)
		return -EBUSY;
	for (size_t i = 0; i < n; i++)
		if (!rill__http_header_ok(&hdrs[i]))
			return RILL_EINVAL;
	struct http_ex *ex = rill__http_ex_new(c, ROLE_CLIENT);
	struct rill_buf *b =
	    rill__http_request_head(method, target, hdrs, n, clen);
	if (ex == NULL || b == NULL) {
		if (ex != NULL)
			rill_flow_discard(&ex->base);
		rill_buf_release(b);
		return RILL_ENOMEM;
	}
	ex->head_request = strcmp(method, "HEAD") == 0;
	ex->out_chunked = clen < 0;
	ex->out_left = clen;
	ex->out_started = true;
	ex->resp_cb = cb;
	ex->resp_ud = ud;
	int err = rill__http_conn_write(c, &b, 1, NULL, WR_PLAIN);
	if (err != 0) {
		rill_flow_discard(&ex->base);
		return err;
	}
	if (clen == 0)
		ex->out_done = true;
	llhttp_init(&c->parser, HTTP_RESPONSE, &rill__http_settings);
	c->parser.data = c;
	c->head.complete = false;
	c->body_done = false;
	c->finished = false;
	c->keep_alive = true;
	c->ex = ex;
	c->st = ST_EXCHANGE;
	*out = &ex->base;
	rill__http_conn_drive(c);
	return 0;
}
