/*
 * rill_ws_accept: a server exchange of the HTTP layer upgraded to a
 * WebSocket, so one server answers files and WebSockets on one port.
 * Uses the HTTP layer's public API only (the request's head, and
 * rill_http_take_connection).
 */
#include <string.h>

#include "core/core.h"
#include "layer/ws/ws_internal.h"

static const char *ws_ex_lookup(void *ctx, const char *name)
{
	return rill_http_header(ctx, name);
}

int rill_ws_accept(struct rill_flow *ex, const struct rill_ws_opts *opts,
                   rill_ws_attach_cb cb, void *ud)
{
	if (ex == NULL || cb == NULL)
		return RILL_EINVAL;
	struct ws_conf conf;
	int err = rill__ws_conf_init(&conf, opts);
	if (err != 0)
		return err;
	struct ws_verdict v;
	rill__ws_check_request(&conf, strcmp(rill_http_method(ex), "GET") == 0,
	                       rill_http_version_minor(ex),
	                       rill_http_target(ex), ws_ex_lookup, ex, &v);
	if (v.status != 101) {
		rill__ws_conf_free(&conf);
		struct rill_http_header h[2] = {
		    {"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"}};
		size_t n = strlen(v.why);
		struct rill_buf *body = rill_buf_new(n + 1);
		if (body == NULL)
			return RILL_ENOMEM;
		memcpy(body->data, v.why, n);
		body->data[n] = '\n';
		err = rill_http_respond_buf(ex, v.status, h,
		                            v.status == 426 ? 2 : 0, body);
		rill_buf_release(body);
		rill__set_last_errmsg("WebSocket: refused (%d): %s", v.status,
		                      v.why);
		return err != 0 ? err : RILL_EHANDSHAKE;
	}
	struct rill_flow *conn;
	struct rill_buf *rest;
	err = rill_http_take_connection(ex, &conn, &rest);
	if (err != 0) {
		rill__ws_conf_free(&conf);
		return err;
	}
	struct rill_buf *resp = rill__ws_response(&v);
	err = resp != NULL ? rill_write(conn, resp, NULL, NULL) : RILL_ENOMEM;
	rill_buf_release(resp);
	if (err != 0) {
		rill_buf_release(rest);
		rill__ws_conf_free(&conf);
		rill_close(conn);
		return err;
	}
	return rill__ws_attach_public(conn, RILL_WS_SERVER, &conf, v.protocol,
	                              rest, cb, ud);
}
