/*
 * Handing a server connection over to another protocol after an
 * Upgrade request (RFC 9110 section 7.8): the exchange gives up its
 * connection, which leaves the server, and the caller speaks the new
 * protocol on it (rill_ws_accept does for WebSocket).
 */
#include "core/core.h"
#include "layer/http/http_internal.h"

int rill_http_take_connection(struct rill_flow *f, struct rill_flow **conn,
                              struct rill_buf **rest)
{
	struct http_ex *ex = f != NULL ? rill__http_ex_of(f) : NULL;
	if (conn == NULL || rest == NULL || ex == NULL ||
	    ex->role != ROLE_SERVER || ex->conn == NULL || ex->out_started ||
	    rill_flow_is_closed(f))
		return RILL_EINVAL;
	struct http_conn *c = ex->conn;
	/* Earlier responses still being written, or a read in flight on
	 * the connection: it cannot change hands now. */
	if (c->ex != ex || c->reading || c->wrq_n != 0 || c->st != ST_EXCHANGE)
		return -EBUSY;
	struct rill_buf *r = NULL;
	if (c->in != NULL && c->in_off < c->in->len) {
		r = rill_buf_slice(c->in, c->in_off, c->in->len - c->in_off);
		if (r == NULL)
			return RILL_ENOMEM;
	}
	*conn = c->io;
	*rest = r;
	c->io = NULL;
	/* The exchange is answered (by the new protocol): closing it must
	 * not send a 500. */
	ex->out_started = true;
	ex->out_done = true;
	rill__http_conn_destroy(c, RILL_ECLOSED);
	return 0;
}
