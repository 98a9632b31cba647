/*
 * The server's responses: rill_http_respond, rill_http_respond_buf and
 * rill_http_reply start (or send) the response of an exchange, with the
 * head message.c builds, and answer an Expect: 100-continue first.
 * See http_internal.h for the layer's design.
 */
#include <stdio.h>

#include "layer/http/http_internal.h"

/* Expect: 100-continue and a response that starts before the body was
 * read: a handler that reads the body (now or already asked to) or that
 * streams a 2xx response gets the body, so invite it before the head;
 * any other response refuses it (RFC 9110 10.1.1), and the connection
 * then closes after it because the client may send the body anyway.
 * Returns 0 or an error (the connection is gone). */
static int http_ex_expect(struct http_ex *ex, int status, bool whole)
{
	struct http_conn *c = ex->conn;
	if (c->body_done || !ex->expect_continue)
		return 0;
	if (ex->reading || (status < 300 && !whole)) {
		int err = rill__http_conn_continue(c, ex);
		if (err != 0)
			return err;
		/* The body comes now: a small one the handler leaves
		 * unread can be skipped as without the expectation. */
		c->drain_ok = !(c->parser.flags & F_CHUNKED) && ex->clen >= 0 &&
		              ex->clen <= 256 * 1024;
		return 0;
	}
	ex->expect_continue = false;
	c->keep_alive = false;
	return 0;
}

static int http_ex_start_response(struct http_ex *ex, int status,
                                  const struct rill_http_header *hdrs, size_t n,
                                  int64_t clen, bool whole)
{
	struct http_conn *c = ex->conn;
	if (ex->role != ROLE_SERVER || ex->out_started || status < 200 ||
	    status > 999 || (n > 0 && hdrs == NULL) || clen < -1)
		return RILL_EINVAL;
	if (c == NULL || c->st == ST_DEAD || c->ex != ex)
		return ex->err ? ex->err : RILL_ECLOSED;
	for (size_t i = 0; i < n; i++)
		if (!rill__http_response_header_ok(&hdrs[i]))
			return RILL_EINVAL;
	bool nobody = status == 204 || status == 304;
	ex->out_discard = nobody || ex->head_request;
	if (clen < 0 && !nobody) {
		if (ex->minor == 0)
			ex->out_until_close = true;
		else
			ex->out_chunked = true;
	}
	/* A body we will not read to its end leaves the connection in an
	 * unknown state: say we close it. */
	if (ex->out_until_close || c->srv->shutting_down)
		c->keep_alive = false;
	int err = http_ex_expect(ex, status, whole);
	if (err != 0)
		return err;
	struct http_resp_head h = {
	    .loop = c->io->loop,
	    .status = status,
	    .server_name = c->srv->o.server_name,
	    .hdrs = hdrs,
	    .n = n,
	    .clen = clen,
	    .chunked = ex->out_chunked,
	    .keep_alive = c->keep_alive,
	    .http10 = ex->minor == 0,
	};
	struct rill_buf *b = rill__http_response_head(&h);
	if (b == NULL)
		return RILL_ENOMEM;
	ex->out_head = b;
	ex->out_started = true;
	/* Without a body to send (HEAD, 204, 304) the message is complete
	 * once the head is out. */
	ex->out_left = ex->out_discard ? 0 : clen;
	return 0;
}

int rill_http_respond(struct rill_flow *f, int status,
                      const struct rill_http_header *headers, size_t n,
                      int64_t content_length)
{
	struct http_ex *ex = rill__http_ex_of(f);
	if (ex == NULL || rill_flow_is_closed(f))
		return RILL_EINVAL;
	return http_ex_start_response(ex, status, headers, n, content_length,
	                              false);
}

int rill_http_respond_buf(struct rill_flow *f, int status,
                          const struct rill_http_header *headers, size_t n,
                          struct rill_buf *body)
{
	struct http_ex *ex = rill__http_ex_of(f);
	if (ex == NULL || rill_flow_is_closed(f))
		return RILL_EINVAL;
	size_t len = body != NULL ? body->len : 0;
	int err =
	    http_ex_start_response(ex, status, headers, n, (int64_t)len, true);
	if (err != 0)
		return err;
	struct http_conn *c = ex->conn;
	struct rill_buf *v[2];
	size_t k = 0;
	v[k++] = ex->out_head;
	ex->out_head = NULL;
	if (len > 0 && !ex->out_discard)
		v[k++] = rill_buf_ref(body);
	ex->out_left = 0;
	ex->out_done = true;
	err = rill__http_conn_write(c, v, k, NULL, WR_PLAIN);
	if (err != 0)
		rill__http_conn_destroy(c, err);
	return err;
}

int rill_http_reply(struct rill_flow *f, int status, const char *content_type,
                    const void *body, size_t len)
{
	if (rill__http_ex_of(f) == NULL)
		return RILL_EINVAL;
	struct rill_http_header h = {"Content-Type", content_type};
	struct rill_buf *b = NULL;
	int err = 0;
	if (len > 0) {
		b = body != NULL ? rill_buf_copy(body, len) : NULL;
		err = body == NULL ? RILL_EINVAL : b == NULL ? RILL_ENOMEM : 0;
	}
	if (err == 0)
		err = rill_http_respond_buf(f, status, &h,
		                            content_type != NULL ? 1 : 0, b);
	rill_buf_release(b);
	rill_close(f);
	return err;
}
