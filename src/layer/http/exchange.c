/*
 * One request/response exchange as a flow (struct http_ex): the head
 * accessors of the public API, body reads, and body writes framed as
 * the response or request head announced (Content-Length or chunked).
 * See http_internal.h for the layer's design.
 */
#include <stdio.h>
#include <string.h>

#include "layer/http/http_internal.h"

static const struct rill_flow_ops http_ex_ops;

/* The exchange behind f, or NULL when f is not an HTTP exchange. */
struct http_ex *rill__http_ex_of(struct rill_flow *f)
{
	if (f == NULL || f->ops != &http_ex_ops)
		return NULL;
	return rill_container_of(f, struct http_ex, base);
}

static const struct http_head *http_ex_head(struct rill_flow *f)
{
	struct http_ex *ex = rill__http_ex_of(f);
	if (ex == NULL || ex->conn == NULL || ex->conn->ex != ex ||
	    !ex->conn->head.complete)
		return NULL;
	return &ex->conn->head;
}

const char *rill_http_method(struct rill_flow *f)
{
	struct http_ex *ex = rill__http_ex_of(f);
	if (ex == NULL || ex->role != ROLE_SERVER)
		return "";
	return llhttp_method_name((llhttp_method_t)ex->method);
}

const char *rill_http_target(struct rill_flow *f)
{
	const struct http_head *h = http_ex_head(f);
	if (h == NULL || rill__http_ex_of(f)->role != ROLE_SERVER)
		return "";
	return h->arena + h->url;
}

int rill_http_status(struct rill_flow *f)
{
	struct http_ex *ex = rill__http_ex_of(f);
	return ex != NULL && ex->role == ROLE_CLIENT ? ex->status : 0;
}

int rill_http_version_minor(struct rill_flow *f)
{
	struct http_ex *ex = rill__http_ex_of(f);
	return ex != NULL ? ex->minor : 0;
}

const char *rill_http_header(struct rill_flow *f, const char *name)
{
	const struct http_head *h = http_ex_head(f);
	if (h == NULL || name == NULL)
		return NULL;
	return rill__http_head_get(h, name);
}

size_t rill_http_header_count(struct rill_flow *f)
{
	const struct http_head *h = http_ex_head(f);
	return h != NULL ? h->n : 0;
}

int rill_http_header_at(struct rill_flow *f, size_t i, const char **name,
                        const char **value)
{
	const struct http_head *h = http_ex_head(f);
	if (h == NULL || i >= h->n)
		return RILL_EINVAL;
	if (name != NULL)
		*name = h->arena + h->hdrs[i].name;
	if (value != NULL)
		*value = h->arena + h->hdrs[i].value;
	return 0;
}

int64_t rill_http_content_length(struct rill_flow *f)
{
	struct http_ex *ex = rill__http_ex_of(f);
	return ex != NULL ? ex->clen : -1;
}

/* Making an exchange */

struct http_ex *rill__http_ex_new(struct http_conn *c, int role)
{
	struct http_ex *ex = (struct http_ex *)(void *)rill_flow_new(
	    rill_flow_loop(c->io), &http_ex_ops, sizeof(struct http_ex));
	if (ex == NULL)
		return NULL;
	ex->conn = c;
	ex->role = role;
	ex->clen = -1;
	ex->out_left = -1;
	return ex;
}

void rill__http_ex_fill_head(struct http_ex *ex, struct http_conn *c)
{
	llhttp_t *p = &c->parser;
	ex->method = p->method;
	ex->minor = p->http_minor;
	ex->status = p->status_code;
	if ((p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED))
		ex->clen = (int64_t)p->content_length;
}

/* ---------------------------------------------------------------------- */
/* Exchange flow ops */

static void http_ex_read(struct rill_flow *f)
{
	struct http_ex *ex = rill__http_ex_of(f);
	struct http_conn *c = ex->conn;
	if (c == NULL) {
		rill_flow_read_done(f, ex->err ? ex->err : RILL_ECLOSED, NULL);
		return;
	}
	if (c->body_done && c->ex == ex) {
		rill_flow_read_done(f, RILL_EOF, NULL);
		return;
	}
	ex->reading = true;
	rill__http_conn_drive(c);
}

/* Builds the iovec of one body write: [head] [chunk size] bufs [CRLF].
 * Returns the count, or 0 on ENOMEM. out must hold n + 3. */
static size_t http_ex_frame(struct http_ex *ex, struct rill_buf *const *bufs,
                            size_t n, size_t total, struct rill_buf **out)
{
	size_t k = 0;
	if (ex->out_head != NULL) {
		out[k++] = ex->out_head;
		ex->out_head = NULL;
	}
	if (ex->out_chunked) {
		char tmp[24];
		int m = snprintf(tmp, sizeof tmp, "%zx\r\n", total);
		struct rill_buf *h = rill_buf_copy(tmp, (size_t)m);
		if (h == NULL)
			goto fail;
		out[k++] = h;
	}
	for (size_t i = 0; i < n; i++)
		out[k++] = rill_buf_ref(bufs[i]);
	if (ex->out_chunked) {
		struct rill_buf *t = rill__http_static_buf("\r\n", 2);
		if (t == NULL)
			goto fail;
		out[k++] = t;
	}
	return k;
fail:
	for (size_t i = 0; i < k; i++)
		rill_buf_release(out[i]);
	return 0;
}

static void http_ex_write(struct rill_flow *f, struct rill_buf *const *bufs,
                          size_t n)
{
	struct http_ex *ex = rill__http_ex_of(f);
	struct http_conn *c = ex->conn;
	if (c == NULL || c->st == ST_DEAD) {
		rill_flow_write_done(f, ex->err ? ex->err : RILL_ECLOSED);
		return;
	}
	if ((ex->role == ROLE_SERVER && !ex->out_started) || ex->out_done) {
		rill_flow_set_errmsg(
		    f, ex->out_done ? "the message body is complete"
		                    : "rill_http_respond was not called");
		rill_flow_write_done(f,
		                     ex->out_done ? RILL_ECLOSED : RILL_EHTTP);
		return;
	}
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += bufs[i]->len;
	if (ex->out_left >= 0 && !ex->out_discard) {
		if ((uint64_t)ex->out_left < total) {
			rill_flow_set_errmsg(f, "body longer than its "
			                        "Content-Length");
			rill_flow_write_done(f, RILL_EHTTP);
			return;
		}
		ex->out_left -= (int64_t)total;
	}
	if (ex->out_discard) {
		if (ex->out_head == NULL) {
			rill_flow_write_done(f, 0);
			return;
		}
		n = 0; /* send the head only */
		total = 0;
	}
	struct rill_buf *stackv[16];
	struct rill_buf **v = stackv;
	if (n + 3 > 16) {
		v = rill_malloc((n + 3) * sizeof *v);
		if (v == NULL) {
			rill_flow_write_done(f, RILL_ENOMEM);
			return;
		}
	}
	size_t k = n == 0 ? 0 : http_ex_frame(ex, bufs, n, total, v);
	if (n == 0 && ex->out_head != NULL) {
		v[k++] = ex->out_head;
		ex->out_head = NULL;
	}
	int err = k == 0 ? RILL_ENOMEM
	                 : rill__http_conn_write(c, v, k, ex, WR_EX_WRITE);
	if (v != stackv)
		rill_free(v);
	if (err != 0)
		rill_flow_write_done(f, err);
}

/*
 * A body framed by Content-Length goes to the connection as the file
 * range it is (sendfile on a plain socket): the head first if it is
 * still waiting, then the range. Any other framing (chunked, a body that
 * is dropped, until-close) and every error case are declined: the core
 * then steps through the range with http_ex_write, which frames it or
 * reports the error.
 */
static int http_ex_write_file(struct rill_flow *f, int fd, uint64_t offset,
                              uint64_t length)
{
	struct http_ex *ex = rill__http_ex_of(f);
	struct http_conn *c = ex->conn;
	if (c == NULL || c->st == ST_DEAD || ex->out_done || ex->out_chunked ||
	    ex->out_discard || ex->out_left < 0 ||
	    (uint64_t)ex->out_left < length ||
	    (ex->role == ROLE_SERVER && !ex->out_started) ||
	    c->wrq_n + 2 > HTTP_WRQ_MAX)
		return -ENOTSUP;
	if (ex->out_head != NULL) {
		/* Nobody waits for the head alone: the file's completion
		 * comes after it. */
		struct rill_buf *h = ex->out_head;
		ex->out_head = NULL;
		int err = rill__http_conn_write(c, &h, 1, NULL, WR_EX_WRITE);
		if (err != 0) {
			rill_flow_write_done(f, err);
			return 0;
		}
	}
	ex->out_left -= (int64_t)length;
	int err = rill__http_conn_write_file(c, fd, offset, length, ex);
	if (err != 0)
		rill_flow_write_done(f, err);
	return 0;
}

static void http_ex_shutdown_write(struct rill_flow *f)
{
	struct http_ex *ex = rill__http_ex_of(f);
	struct http_conn *c = ex->conn;
	if (c == NULL || c->st == ST_DEAD) {
		rill_flow_shutdown_done(f, ex->err ? ex->err : RILL_ECLOSED);
		return;
	}
	if (ex->out_done) {
		rill_flow_shutdown_done(f, 0);
		return;
	}
	if (ex->role == ROLE_SERVER && !ex->out_started) {
		rill_flow_set_errmsg(f, "rill_http_respond was not called");
		rill_flow_shutdown_done(f, RILL_EHTTP);
		return;
	}
	if (ex->out_left > 0 && !ex->out_discard) {
		/* Fewer bytes than announced: the message cannot end well. */
		rill_flow_set_errmsg(f, "body shorter than its Content-Length");
		rill_flow_shutdown_done(f, RILL_EHTTP);
		rill__http_conn_destroy(c, RILL_EHTTP);
		return;
	}
	struct rill_buf *v[2];
	size_t k = 0;
	if (ex->out_head != NULL) {
		v[k++] = ex->out_head;
		ex->out_head = NULL;
	}
	if (ex->out_chunked && !ex->out_discard) {
		/* The last chunk and an empty trailer (RFC 9112 7.1). */
		struct rill_buf *t = rill__http_static_buf("0\r\n\r\n", 5);
		if (t == NULL) {
			for (size_t i = 0; i < k; i++)
				rill_buf_release(v[i]);
			rill_flow_shutdown_done(f, RILL_ENOMEM);
			return;
		}
		v[k++] = t;
	}
	if (k == 0) {
		rill__http_conn_output_done(ex);
		rill_flow_shutdown_done(f, 0);
		if (c->ex == ex)
			rill__http_conn_drive(c);
		return;
	}
	int err = rill__http_conn_write(c, v, k, ex, WR_EX_SHUT);
	if (err != 0)
		rill_flow_shutdown_done(f, err);
}

static void http_ex_shutdown_read(struct rill_flow *f)
{
	struct http_ex *ex = rill__http_ex_of(f);
	ex->reading = false;
}

static void http_ex_close(struct rill_flow *f)
{
	struct http_ex *ex = rill__http_ex_of(f);
	struct http_conn *c = ex->conn;
	if (c != NULL) {
		/* Writes of ex still on the connection: rill_close emptied
		 * the core's queue of ex before calling here. */
		bool pending = false;
		for (unsigned i = 0; i < c->wrq_n; i++) {
			struct http_wrq *w =
			    &c->wrq[(c->wrq_head + i) % HTTP_WRQ_MAX];
			if (w->ex == ex) {
				w->ex = NULL;
				pending = true;
			}
		}
		if (c->ex == ex && ex->role == ROLE_SERVER &&
		    !ex->out_started) {
			/* The handler gave no answer. */
			ex->reading = false;
			rill__http_conn_send_error(c, 500);
		} else if (c->ex == ex) {
			c->ex = NULL;
			/* All bytes of a Content-Length body were written:
			 * the message is complete without a shutdown. */
			bool complete = ex->out_done ||
			                (!ex->out_chunked && ex->out_left == 0);
			/* A chunked body whose writes all went out ends at
			 * the close as at a shutdown: the peer reads EOF
			 * after draining, as the flow contract asks. With
			 * writes still pending the body was cut: abort. */
			if (!complete && ex->out_chunked && !pending &&
			    ex->out_started && c->st != ST_DEAD) {
				struct rill_buf *v[2];
				size_t k = 0;
				if (ex->out_head != NULL) {
					v[k++] = ex->out_head;
					ex->out_head = NULL;
				}
				v[k] = rill__http_static_buf("0\r\n\r\n", 5);
				if (v[k] != NULL &&
				    rill__http_conn_write(c, v, k + 1, NULL,
				                          WR_PLAIN) == 0)
					complete = true;
			}
			if (complete && ex->out_head != NULL) {
				struct rill_buf *h = ex->out_head;
				ex->out_head = NULL;
				if (rill__http_conn_write(c, &h, 1, NULL,
				                          WR_PLAIN) != 0)
					complete = false;
			}
			if (!complete) {
				rill__http_conn_destroy(c, RILL_ECLOSED);
			} else {
				rill__http_conn_drive(c);
			}
		}
	}
	ex->conn = NULL;
	rill_buf_release(ex->out_head);
	ex->out_head = NULL;
	rill_flow_destroyed(f);
}

static int http_ex_address(struct rill_flow *f, int which, char *buf,
                           size_t len)
{
	struct http_ex *ex = rill__http_ex_of(f);
	if (ex->conn == NULL || ex->conn->io == NULL)
		return RILL_ECLOSED;
	return rill_flow_address(ex->conn->io, which, buf, len);
}

static const struct rill_flow_ops http_ex_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "http",
    .read = http_ex_read,
    .write = http_ex_write,
    .write_file = http_ex_write_file,
    .shutdown_write = http_ex_shutdown_write,
    .shutdown_read = http_ex_shutdown_read,
    .close = http_ex_close,
    .address = http_ex_address,
};
