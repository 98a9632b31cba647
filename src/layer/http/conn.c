/*
 * The connection: timers, the write queue, input, teardown (destroy,
 * linger, canned errors) and the driver, whose step functions decide
 * what a connection does next. It calls down to parse.c and message.c
 * only; it reaches its user (server or client) through the role table
 * c->user, and its exchange through the shared struct http_ex and the
 * flow core's completions.
 * See http_internal.h for the layer's design.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "layer/http/http_internal.h"

static void http_conn_on_timer(uv_timer_t *t);

void rill__http_conn_timer(struct http_conn *c, enum timer_kind k, uint64_t ms)
{
	if (c->tkind == k)
		return;
	c->tkind = k;
	if (k == TM_NONE || ms == 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, http_conn_on_timer, ms, 0);
}

/* ---------------------------------------------------------------------- */
/* Connection: writes */

static void http_conn_io_write_cb(struct rill_flow *io, int status, void *ud);

/* Records whom the next completion of the connection's writes is for. */
static void http_conn_wrq_push(struct http_conn *c, struct http_ex *whom,
                               int kind)
{
	/* The send timeout counts from the first write of an idle queue. */
	if (c->wrq_n == 0)
		c->wr_progress_ms = uv_now(c->timer.loop);
	unsigned i = (c->wrq_head + c->wrq_n) % HTTP_WRQ_MAX;
	c->wrq[i].ex = whom;
	c->wrq[i].kind = (uint8_t)kind;
	c->wrq_n++;
	if (kind == WR_PLAIN)
		c->pending_resp++;
}

/* Writes bufs to the connection; whom == NULL for plain writes. Takes
 * over the caller's references to bufs (released here in every case).
 * Returns 0 or an error (then nobody is notified). */
int rill__http_conn_write(struct http_conn *c, struct rill_buf **bufs, size_t n,
                          struct http_ex *whom, int kind)
{
	int err = RILL_ECLOSED;
	if (c->st != ST_DEAD && c->io != NULL) {
		if (c->wrq_n == HTTP_WRQ_MAX) {
			err = RILL_ENOMEM;
		} else {
			err = rill_writev(c->io, bufs, n, http_conn_io_write_cb,
			                  c);
			if (err == 0)
				http_conn_wrq_push(c, whom, kind);
		}
	}
	for (size_t i = 0; i < n; i++)
		rill_buf_release(bufs[i]);
	return err;
}

int rill__http_conn_write_file(struct http_conn *c, int fd, uint64_t offset,
                               uint64_t length, struct http_ex *whom)
{
	if (c->st == ST_DEAD || c->io == NULL)
		return RILL_ECLOSED;
	if (c->wrq_n == HTTP_WRQ_MAX)
		return RILL_ENOMEM;
	int err = rill_write_file(c->io, fd, offset, length,
	                          http_conn_io_write_cb, c);
	if (err == 0)
		http_conn_wrq_push(c, whom, WR_EX_WRITE);
	return err;
}

static void http_conn_io_write_cb(struct rill_flow *io, int status, void *ud)
{
	(void)io;
	struct http_conn *c = ud;
	c->wr_progress_ms = uv_now(c->timer.loop);
	struct http_wrq w = c->wrq[c->wrq_head];
	c->wrq_head = (c->wrq_head + 1) % HTTP_WRQ_MAX;
	c->wrq_n--;
	if (w.kind == WR_PLAIN)
		c->pending_resp--;
	if (w.ex != NULL) {
		struct http_ex *ex = w.ex;
		if (w.kind == WR_EX_WRITE) {
			rill_flow_write_done(&ex->base, status);
		} else {
			if (status == 0)
				rill__http_conn_output_done(ex);
			rill_flow_shutdown_done(&ex->base, status);
		}
	}
	if (status < 0) {
		rill__http_conn_destroy(c, status);
		return;
	}
	rill__http_conn_drive(c);
}

/* ---------------------------------------------------------------------- */
/* Connection: the handler's pace */

/* Whether a write of ex is on the connection. */
static bool http_conn_ex_writing(struct http_conn *c, struct http_ex *ex)
{
	for (unsigned i = 0; i < c->wrq_n; i++)
		if (c->wrq[(c->wrq_head + i) % HTTP_WRQ_MAX].ex == ex)
			return true;
	return false;
}

/* Server: the exchange waits on its handler: no body read of it, and no
 * write of it queued or on the connection (a stuck write is the send
 * timeout's business). */
static bool http_conn_handler_idle(struct http_conn *c)
{
	struct http_ex *ex = c->ex;
	if (c->role != ROLE_SERVER || c->st != ST_EXCHANGE || ex == NULL ||
	    c->srv == NULL)
		return false;
	return !ex->reading && !rill__flow_writes_pending(&ex->base) &&
	       !http_conn_ex_writing(c, ex);
}

/* A warning through the user's log (the server's log callback). */
__attribute__((format(printf, 2, 3))) static void
http_conn_log(struct http_conn *c, const char *fmt, ...)
{
	if (c->user->log == NULL)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	c->user->log(c, msg);
}

static void http_conn_on_handler_timer(uv_timer_t *t)
{
	struct http_conn *c = t->data;
	if (!http_conn_handler_idle(c))
		return;
	struct http_ex *ex = c->ex;
	unsigned long long ms =
	    (unsigned long long)c->srv->o.handler_timeout_ms;
	const char *m = llhttp_method_name((llhttp_method_t)ex->method);
	const char *target =
	    c->head.complete ? c->head.arena + c->head.url : "";
	bool complete = ex->out_done || (ex->out_started && !ex->out_chunked &&
	                                 ex->out_left == 0);
	if (complete)
		http_conn_log(
		    c,
		    "%s %s: the response was complete %llu ms ago but the "
		    "handler did not close the exchange (a missing "
		    "rill_close?); closing its connection",
		    m, target, ms);
	else
		http_conn_log(
		    c,
		    "%s %s: the handler neither read, wrote nor closed the "
		    "exchange for %llu ms; aborting it (%s)",
		    m, target, ms,
		    ex->out_started ? "connection closed" : "500 sent");
	if (!ex->out_started)
		rill__http_conn_send_error(c, 500);
	else
		rill__http_conn_destroy(c, RILL_ETIMEDOUT);
}

void rill__http_conn_watch(struct http_conn *c)
{
	if (c->st == ST_DEAD || c->srv == NULL)
		return;
	uint64_t ms = c->srv->o.handler_timeout_ms;
	if (ms == UINT64_MAX || !http_conn_handler_idle(c)) {
		uv_timer_stop(&c->htimer);
		return;
	}
	if (!uv_is_active((uv_handle_t *)&c->htimer))
		uv_timer_start(&c->htimer, http_conn_on_handler_timer, ms, 0);
}

int rill__http_conn_continue(struct http_conn *c, struct http_ex *ex)
{
	if (!ex->expect_continue)
		return 0;
	ex->expect_continue = false;
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct rill_buf *b = rill__http_static_buf(cont, sizeof cont - 1);
	if (b == NULL || rill__http_conn_write(c, &b, 1, NULL, WR_PLAIN) != 0) {
		rill__http_conn_destroy(c, RILL_ENOMEM);
		return RILL_ENOMEM;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Connection: life */

static void http_conn_timer_closed(uv_handle_t *h)
{
	struct http_conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	rill_free(c->head.arena);
	rill_free(c->head.hdrs);
	rill_free(c);
}

void rill__http_conn_output_done(struct http_ex *ex)
{
	ex->out_done = true;
	struct http_conn *c = ex->conn;
	if (c != NULL)
		c->again = true;
}

/* The connection lets go of its exchange: err is what the exchange
 * reports from now on (a read waiting, a response head awaited). */
static void http_conn_detach_ex(struct http_ex *ex, int err)
{
	ex->conn = NULL;
	ex->err = err;
	if (ex->reading) {
		ex->reading = false;
		rill_flow_read_done(&ex->base, err, NULL);
	}
	if (ex->resp_cb != NULL) {
		rill_http_response_cb cb = ex->resp_cb;
		ex->resp_cb = NULL;
		cb(&ex->base, err, ex->resp_ud);
	}
}

/* Tears the connection down at once; err goes to an open exchange. The
 * memory stays valid until the loop runs again. */
void rill__http_conn_destroy(struct http_conn *c, int err)
{
	if (c->st == ST_DEAD)
		return;
	c->st = ST_DEAD;
	rill_flow_counters(c->io, &c->io_in, &c->io_out, NULL, NULL);
	rill_close(c->io);
	c->io = NULL;
	rill_buf_release(c->in);
	c->in = NULL;
	rill_buf_release(c->ev_body);
	c->ev_body = NULL;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, http_conn_timer_closed);
	uv_close((uv_handle_t *)&c->htimer, http_conn_timer_closed);
	c->user->gone(c);
	/* Pending exchange writes will never complete: fail them. */
	for (unsigned i = 0; i < c->wrq_n; i++) {
		struct http_wrq *w = &c->wrq[(c->wrq_head + i) % HTTP_WRQ_MAX];
		if (w->ex == NULL)
			continue;
		struct http_ex *ex = w->ex;
		w->ex = NULL;
		if (w->kind == WR_EX_WRITE)
			rill_flow_write_done(&ex->base, err);
		else
			rill_flow_shutdown_done(&ex->base, err);
	}
	c->wrq_n = 0;
	struct http_ex *ex = c->ex;
	c->ex = NULL;
	if (ex != NULL)
		http_conn_detach_ex(ex, err);
}

static void http_conn_linger_shut_cb(struct rill_flow *io, int status, void *ud)
{
	(void)io;
	struct http_conn *c = ud;
	if (status < 0)
		rill__http_conn_destroy(c, RILL_ECLOSED);
}

/* Server: stop serving this connection. Queued responses are flushed,
 * then the write side is shut down, and input is drained for a while so
 * that the client reads our last response before any reset. */
static void http_conn_linger(struct http_conn *c)
{
	if (c->st == ST_DEAD || c->st == ST_LINGER)
		return;
	c->st = ST_LINGER;
	struct http_ex *ex = c->ex;
	c->ex = NULL;
	if (ex != NULL)
		http_conn_detach_ex(ex, RILL_ECLOSED);
	int err =
	    rill_shutdown(c->io, RILL_SHUT_WR, http_conn_linger_shut_cb, c);
	if (err == RILL_ENOHALFCLOSE) /* the end of both ways, after the
	                                 queued responses */
		err = rill_shutdown(c->io, RILL_SHUT_RDWR,
		                    http_conn_linger_shut_cb, c);
	if (err != 0) {
		rill__http_conn_destroy(c, RILL_ECLOSED);
		return;
	}
	c->tkind = TM_NONE;
	rill__http_conn_timer(c, TM_LINGER, HTTP_LINGER_MS);
	rill__http_conn_drive(c);
}

static void http_conn_on_timer(uv_timer_t *t)
{
	struct http_conn *c = t->data;
	enum timer_kind k = c->tkind;
	c->tkind = TM_NONE;
	switch (k) {
	case TM_HEADER:
		/* The client's response-head deadline is a plain timeout;
		 * the server answers a late request head with 408. */
		if (c->role == ROLE_CLIENT)
			rill__http_conn_destroy(c, RILL_ETIMEDOUT);
		else
			rill__http_conn_send_error(c, 408);
		break;
	case TM_BODY:
		if (c->ex != NULL && !c->ex->out_started &&
		    c->role == ROLE_SERVER)
			rill__http_conn_send_error(c, 408);
		else
			rill__http_conn_destroy(c, RILL_ETIMEDOUT);
		break;
	case TM_IDLE:
	case TM_LINGER:
	default: rill__http_conn_destroy(c, RILL_ETIMEDOUT); break;
	}
}

/* Server: answers with one of our canned errors and closes. */
void rill__http_conn_send_error(struct http_conn *c, int status)
{
	if (c->st == ST_DEAD || c->st == ST_LINGER)
		return;
	struct http_ex *ex = c->ex;
	if (ex == NULL && c->st == ST_EXCHANGE) {
		/* The request was answered already (its body is being
		 * skipped): one response per request, so just close. */
		http_conn_linger(c);
		return;
	}
	if (ex != NULL && ex->out_started) {
		/* Part of a response is out: all we can do is close. */
		rill__http_conn_destroy(c, status == 413 ? RILL_EHTTP_TOO_LARGE
		                                         : RILL_EHTTP);
		return;
	}
	if (ex != NULL) {
		c->ex = NULL;
		http_conn_detach_ex(ex, status == 413   ? RILL_EHTTP_TOO_LARGE
		                        : status == 408 ? RILL_ETIMEDOUT
		                                        : RILL_EHTTP);
		if (c->st == ST_DEAD)
			return;
	}
	const char *msg;
	switch (status) {
	case 408: msg = HTTP_CANNED(408, "Request Timeout"); break;
	case 413: msg = HTTP_CANNED(413, "Content Too Large"); break;
	case 431:
		msg = HTTP_CANNED(431, "Request Header Fields Too Large");
		break;
	case 505: msg = HTTP_CANNED(505, "HTTP Version Not Supported"); break;
	case 500: msg = HTTP_CANNED(500, "Internal Server Error"); break;
	case 503: msg = HTTP_CANNED(503, "Service Unavailable"); break;
	default: msg = HTTP_CANNED(400, "Bad Request"); break;
	}
	struct rill_buf *b = rill__http_static_buf(msg, strlen(msg));
	if (b == NULL || rill__http_conn_write(c, &b, 1, NULL, WR_PLAIN) != 0) {
		rill__http_conn_destroy(c, RILL_ENOMEM);
		return;
	}
	http_conn_linger(c);
}

int rill__http_conn_init(struct http_conn *c, uv_loop_t *loop,
                         struct rill_flow *io, int role,
                         const struct http_conn_user *user, size_t hbytes,
                         size_t nhdrs)
{
	c->role = role;
	c->user = user;
	c->io = io;
	c->head.cap = hbytes + 1;
	c->head.max = nhdrs;
	c->head.arena = rill_malloc(c->head.cap);
	c->head.hdrs = rill_malloc(nhdrs * sizeof *c->head.hdrs);
	if (c->head.arena == NULL || c->head.hdrs == NULL) {
		rill_free(c->head.arena);
		rill_free(c->head.hdrs);
		return RILL_ENOMEM;
	}
	rill__http_head_reset(&c->head);
	llhttp_init(&c->parser,
	            role == ROLE_SERVER ? HTTP_REQUEST : HTTP_RESPONSE,
	            &rill__http_settings);
	c->parser.data = c;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	uv_timer_init(loop, &c->htimer);
	c->htimer.data = c;
	c->open_handles = 2;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Connection: input */

static void http_conn_on_read(struct rill_flow *io, int status,
                              struct rill_buf *buf, void *ud)
{
	(void)io;
	struct http_conn *c = ud;
	c->reading = false;
	if (status == 0) {
		if (c->st == ST_LINGER) {
			/* Bounded: a client that keeps sending gets
			 * reset instead of being read forever. */
			c->linger_bytes += buf->len;
			rill_buf_release(buf);
			if (c->linger_bytes > HTTP_LINGER_MAX)
				c->io_status = RILL_ECLOSED;
		} else {
			c->in = buf;
			c->in_off = 0;
		}
	} else {
		c->io_status = status;
	}
	rill__http_conn_drive(c);
}

static void http_conn_want_input(struct http_conn *c)
{
	if (c->reading || c->io_status != 0 || c->in != NULL)
		return;
	int err = rill_read(c->io, http_conn_on_read, c);
	if (err != 0) {
		c->io_status = err;
		c->again = true;
		return;
	}
	c->reading = true;
}

/* ---------------------------------------------------------------------- */
/* The driver: decides what the connection does next */

/* Lingering: discard whatever arrives until the peer's EOF (or the
 * linger timer, or the discard cap) ends the connection. */
static void http_conn_step_linger(struct http_conn *c)
{
	if (c->io_status != 0) {
		rill__http_conn_destroy(c, RILL_ECLOSED);
		return;
	}
	rill_buf_release(c->in);
	c->in = NULL;
	http_conn_want_input(c);
}

/* A head the parser found goes to the connection's user: the server's
 * handler, or the client's response callback. */
static void http_conn_deliver_head(struct http_conn *c)
{
	c->ev_head = false;
	c->user->head(c);
	c->again = true;
}

/* Delivers what the parser found last time: the head first, then a body
 * span, then the message's end. Returns true when it delivered something
 * (the step is over). */
static bool http_conn_deliver(struct http_conn *c)
{
	struct http_ex *ex = c->ex;
	if (c->ev_head) {
		http_conn_deliver_head(c);
		return true;
	}
	if (c->ev_body != NULL) {
		struct rill_buf *b = c->ev_body;
		c->ev_body = NULL;
		if (ex == NULL || !ex->reading) {
			rill_buf_release(b); /* nobody wants it any more */
		} else {
			ex->reading = false;
			rill__http_conn_timer(c, TM_NONE, 0);
			rill_flow_read_done(&ex->base, 0, b);
			c->again = true;
			return true;
		}
	}
	if (c->ev_msg_end) {
		c->ev_msg_end = false;
		c->body_done = true;
		if (ex != NULL && ex->reading) {
			ex->reading = false;
			rill_flow_read_done(&ex->base, RILL_EOF, NULL);
			c->again = true;
			return true;
		}
	}
	return false;
}

/* The server lingers, the client just closes. */
static void http_conn_end(struct http_conn *c)
{
	if (c->role == ROLE_SERVER)
		http_conn_linger(c);
	else
		rill__http_conn_destroy(c, RILL_ECLOSED);
}

/* The exchange is over (closed by its owner): skip the rest of its body,
 * start the next message, or end the connection. Returns true when the
 * parser must run (to skip the body). */
static bool http_conn_exchange_over(struct http_conn *c)
{
	if (!c->body_done && !(c->role == ROLE_SERVER && c->drain_ok)) {
		/* Its body was not read, and is too large to skip: do not
		 * parse what is left as requests. */
		http_conn_end(c);
		return false;
	}
	if (!c->body_done)
		return true; /* skip the body */
	if (!c->keep_alive) {
		http_conn_end(c);
		return false;
	}
	if (c->role == ROLE_CLIENT) {
		c->st = ST_IDLE;
		return false;
	}
	c->st = ST_HEAD;
	c->head.complete = false;
	c->head_seen = false;
	c->again = true;
	return false;
}

/* Inside an exchange: whether the parser must run for it now. */
static bool http_conn_exchange_wants_input(struct http_conn *c)
{
	struct http_ex *ex = c->ex;
	if (ex == NULL)
		return http_conn_exchange_over(c);
	if (c->body_done)
		return false; /* the owner answers / reads at its pace */
	if (!ex->reading) {
		/* Client: the response head is still due. */
		return c->role == ROLE_CLIENT && !c->head.complete;
	}
	/* The handler reads the body: invite it (unless a response that
	 * refused it started already: message.c cleared the flag). */
	if (rill__http_conn_continue(c, ex) != 0)
		return false;
	return true;
}

/* Runs the parser over what input there is; a syntax error ends the
 * connection (the server answers it first). */
static void http_conn_step_parse(struct http_conn *c)
{
	llhttp_errno_t e = rill__http_parse(c);
	if (e != HPE_OK && getenv("HTTP_DEBUG"))
		fprintf(stderr, "llhttp: %s %s\n", llhttp_errno_name(e),
		        llhttp_get_error_reason(&c->parser));
	if (e != HPE_OK) {
		if (c->role == ROLE_SERVER) {
			rill__http_conn_send_error(
			    c, rill__http_error_status(c, e));
		} else {
			rill__http_conn_destroy(c, c->head.overflow
			                               ? RILL_EHTTP_TOO_LARGE
			                               : RILL_EHTTP);
		}
		return;
	}
	c->again = true;
}

/* Client: a body delimited by the end of the connection ends with it:
 * llhttp_finish ends it (its on_message_complete sets ev_msg_end), once.
 */
static void http_conn_finish_body(struct http_conn *c)
{
	c->finished = true;
	llhttp_errno_t fe = llhttp_finish(&c->parser);
	if (fe == HPE_PAUSED)
		llhttp_resume(&c->parser);
	else if (fe != HPE_OK)
		c->ev_msg_end = false;
	if (!c->ev_msg_end) {
		rill__http_conn_destroy(c, RILL_EHTTP);
		return;
	}
	c->keep_alive = false;
	c->again = true;
}

/* The peer's EOF or a read error, with no input left to parse. */
static void http_conn_step_io_end(struct http_conn *c)
{
	if (c->role == ROLE_CLIENT && c->st == ST_EXCHANGE &&
	    c->head.complete && c->io_status == RILL_EOF && !c->finished &&
	    llhttp_message_needs_eof(&c->parser)) {
		http_conn_finish_body(c);
		return;
	}
	if (c->role == ROLE_SERVER && c->st == ST_HEAD && c->head_seen &&
	    c->io_status == RILL_EOF) {
		rill__http_conn_destroy(c, RILL_EHTTP);
		return;
	}
	/* The connection ended in the middle of a message (the peer
	 * aborted its exchange): to the exchange that is a reset, as on a
	 * transport. Between a server's messages it is a plain end. */
	int err = c->io_status;
	if (err == RILL_EOF)
		err = c->st == ST_HEAD && c->role == ROLE_SERVER
		          ? RILL_EOF
		          : RILL_ECONNRESET;
	rill__http_conn_destroy(c, err);
}

/* Needs input: arm the timer of what we wait for, then read. */
static void http_conn_step_wait(struct http_conn *c)
{
	if (c->role == ROLE_SERVER) {
		struct rill_http_server *s = c->srv;
		if (c->st != ST_HEAD)
			rill__http_conn_timer(c, TM_BODY, s->o.body_timeout_ms);
		else if (c->head_seen)
			rill__http_conn_timer(c, TM_HEADER,
			                      s->o.header_timeout_ms);
		else
			rill__http_conn_timer(c, TM_IDLE, s->o.idle_timeout_ms);
	} else if (c->client != NULL && !c->head.complete) {
		/* The response head is due once the whole request is out; a
		 * long upload before that is not a late response. */
		struct http_ex *ex = c->ex;
		bool sent =
		    ex != NULL &&
		    (ex->out_done || (!ex->out_chunked && ex->out_left == 0 &&
		                      !http_conn_ex_writing(c, ex)));
		uint64_t ms = c->client->o.header_timeout_ms;
		if (sent && ms != UINT64_MAX)
			rill__http_conn_timer(c, TM_HEADER, ms);
	}
	http_conn_want_input(c);
}

/* One step of the connection: deliver what was parsed, else decide
 * whether the parser must run, then parse, end, or wait for input. */
static void http_conn_step(struct http_conn *c)
{
	if (c->st == ST_DEAD)
		return;
	if (c->st == ST_LINGER) {
		http_conn_step_linger(c);
		return;
	}
	if (http_conn_deliver(c) || c->st == ST_IDLE)
		return;
	if (c->st == ST_HEAD) {
		if (c->role == ROLE_SERVER && c->pending_resp > HTTP_PIPE_MAX)
			return; /* the client does not read its responses */
	} else if (!http_conn_exchange_wants_input(c)) {
		return;
	}
	if (c->in != NULL || c->kick)
		http_conn_step_parse(c);
	else if (c->io_status != 0)
		http_conn_step_io_end(c);
	else
		http_conn_step_wait(c);
}

void rill__http_conn_drive(struct http_conn *c)
{
	if (c->driving) {
		c->again = true;
		return;
	}
	c->driving = true;
	do {
		c->again = false;
		http_conn_step(c);
	} while (c->again && c->st != ST_DEAD);
	c->driving = false;
	rill__http_conn_watch(c);
}
