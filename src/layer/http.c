/*
 * HTTP/1.1 over any flow (DESIGN.md section 6): server and client.
 *
 * The parser is llhttp (Node.js's), compiled from Debian's node-llhttp
 * sources. rill never parses HTTP syntax itself: it collects llhttp's
 * spans into a per-connection arena and frames what it sends.
 *
 * One connection (struct http_conn) carries one exchange at a time
 * (struct http_ex, a flow). The parser is paused at every point where the
 * connection must wait for its user: at the end of a head (the handler or
 * the response callback runs), after every body span (one span is one
 * read result of the exchange: that is the body's back-pressure), and at
 * the end of a message. llhttp callbacks only record; everything that can
 * reach user code happens after llhttp_execute() returned, in
 * conn_drive(), so no user callback ever runs inside the parser.
 *
 * Pipelined requests wait in the input buffer (the parser stays paused)
 * until the exchange before them was closed by its handler, so responses
 * leave in order. All writes to the connection go through its own write
 * queue in order too; the connection keeps a small FIFO saying whom each
 * completion belongs to, because an exchange may be closed while its
 * write is still in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "llhttp.h"
#include "rill/impl.h"

/* Canned responses of the server's own errors (RFC 9110 section 15). */
#define HTTP_CANNED(code, reason)                                              \
	"HTTP/1.1 " #code " " reason "\r\nContent-Length: 0\r\n"               \
	"Connection: close\r\n\r\n"

#define HTTP_WRQ_MAX   32 /* io writes in flight per connection */
#define HTTP_PIPE_MAX  8  /* stop reading pipelined requests beyond this */
#define HTTP_LINGER_MS 2000

enum { ROLE_SERVER = 0, ROLE_CLIENT = 1 };

enum conn_state {
	ST_HEAD,     /* waiting for / parsing a message head */
	ST_EXCHANGE, /* a head was delivered; body and response in progress */
	ST_IDLE,     /* client: no request outstanding */
	ST_LINGER,   /* server: closing; draining input until EOF or timeout */
	ST_DEAD,
};

enum timer_kind { TM_NONE, TM_IDLE, TM_HEADER, TM_BODY, TM_LINGER };

struct http_hdr {
	uint32_t name, name_len, value, value_len;
};

/* One parsed head, strings in the connection's arena. */
struct http_head {
	char *arena;
	size_t cap, used;
	struct http_hdr *hdrs;
	size_t max, n;
	uint32_t url, url_len;
	bool in_value;
	bool overflow; /* a limit was hit: 431 */
	bool complete;
	size_t raw; /* raw head bytes fed to the parser */
};

struct http_ex;

struct http_wrq {
	struct http_ex *ex; /* NULL: a response write nobody waits for */
	uint8_t kind;       /* WR_PLAIN, WR_EX_WRITE, WR_EX_SHUT */
};

enum { WR_PLAIN, WR_EX_WRITE, WR_EX_SHUT };

struct rill_http_server {
	uv_loop_t *loop;
	struct rill_http_server_opts o;
	rill_http_handler handler;
	void *ud;
	struct http_conn *conns;
	size_t nconns;
	bool shutting_down;
	void (*done)(void *ud);
	void *done_ud;
	uv_idle_t done_idle;
	bool freeing;
};

struct http_conn {
	llhttp_t parser;
	struct http_head head;
	int role;
	enum conn_state st;
	struct rill_http_server *srv;
	struct http_conn *next, *prev; /* server's list */
	struct rill_http_client *client;
	struct rill_flow *io;
	uv_timer_t timer;
	enum timer_kind tkind;
	struct rill_buf *in; /* unparsed input */
	size_t in_off;
	bool reading;
	int io_status; /* 0, RILL_EOF or the io read error */
	struct http_ex *ex;
	/* Results recorded by llhttp callbacks for conn_drive. */
	bool ev_head, ev_msg_end;
	struct rill_buf *ev_body;
	int ev_status; /* server error status to send (400, 413...) */
	bool body_done;
	bool keep_alive;
	bool driving, again;
	uint64_t body_bytes;
	uint64_t nreq;
	struct http_wrq wrq[HTTP_WRQ_MAX];
	unsigned wrq_head, wrq_n;
	unsigned pending_resp; /* plain response writes in flight */
	bool head_seen;        /* bytes of the current head arrived */
	bool drain_ok;         /* an unread request body may be skipped */
	bool kick;             /* the parser paused: run it again */
};

struct http_ex {
	struct rill_flow base;
	struct http_conn *conn; /* NULL once detached */
	int err;                /* reported after detach */
	int role;
	/* Head fields copied from the parser at the end of the head. */
	uint8_t method;
	uint8_t minor;
	uint16_t status;
	int64_t clen;
	/* Body input. */
	bool reading;
	bool expect_continue;
	/* Output framing. */
	struct rill_buf *out_head; /* not yet sent */
	bool out_started;          /* respond called (server) */
	bool out_chunked;
	bool out_discard; /* HEAD / 204 / 304: drop body bytes */
	bool out_until_close;
	bool out_done;
	int64_t out_left; /* Content-Length bytes still due, or -1 */
	bool head_request;
	rill_http_response_cb resp_cb;
	void *resp_ud;
};

struct rill_http_client {
	struct http_conn *conn;
	struct rill_http_client_opts o;
	bool broken;
};

static const struct rill_flow_ops http_ex_ops;
static void conn_drive(struct http_conn *c);
static void conn_destroy(struct http_conn *c, int err);
static void conn_send_error(struct http_conn *c, int status);

/* ---------------------------------------------------------------------- */
/* Small helpers */

static struct rill_buf *static_buf(const char *s, size_t len)
{
	return rill_buf_wrap((void *)(uintptr_t)s, len, NULL, NULL);
}

const char *rill_http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "";
	}
}

/* The Date header value (RFC 9110 5.6.7 IMF-fixdate), recomputed at most
 * once per second of loop time. */
static const char *http_date(uv_loop_t *loop)
{
	static _Thread_local char buf[40];
	static _Thread_local uint64_t last = UINT64_MAX;
	uint64_t now = uv_now(loop) / 1000;
	if (now != last) {
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		last = now;
	}
	return buf;
}

/* ---------------------------------------------------------------------- */
/* Head collection (llhttp span callbacks) */

static struct http_conn *conn_of(llhttp_t *p)
{
	return p->data;
}

static bool head_append(struct http_head *h, const char *at, size_t len)
{
	if (h->overflow)
		return false;
	if (len + 1 > h->cap - h->used) {
		h->overflow = true;
		return false;
	}
	memcpy(h->arena + h->used, at, len);
	h->used += len;
	return true;
}

static bool head_terminate(struct http_head *h)
{
	return head_append(h, "", 1);
}

static void head_reset(struct http_head *h)
{
	h->used = 0;
	h->n = 0;
	h->url = 0;
	h->url_len = 0;
	h->in_value = false;
	h->overflow = false;
	h->complete = false;
	h->raw = 0;
	/* arena[0] is an empty string for absent fields. */
	h->arena[0] = '\0';
	h->used = 1;
}

static int on_message_begin(llhttp_t *p)
{
	struct http_conn *c = conn_of(p);
	head_reset(&c->head);
	c->body_done = false;
	c->body_bytes = 0;
	return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct http_head *h = &conn_of(p)->head;
	if (h->url_len == 0)
		h->url = (uint32_t)h->used;
	h->url_len += (uint32_t)len;
	return head_append(h, at, len) ? 0 : -1;
}

static int on_url_complete(llhttp_t *p)
{
	struct http_head *h = &conn_of(p)->head;
	if (h->url_len == 0)
		h->url = (uint32_t)h->used;
	return head_terminate(h) ? 0 : -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http_head *h = &conn_of(p)->head;
	if (!h->in_value) {
		if (h->n == h->max) {
			h->overflow = true;
			return -1;
		}
		h->in_value = true;
		struct http_hdr *d = &h->hdrs[h->n];
		d->name = (uint32_t)h->used;
		d->name_len = 0;
		d->value = 0;
		d->value_len = 0;
	}
	h->hdrs[h->n].name_len += (uint32_t)len;
	return head_append(h, at, len) ? 0 : -1;
}

static int on_header_field_complete(llhttp_t *p)
{
	struct http_conn *c = conn_of(p);
	struct http_head *h = &c->head;
	if (!head_terminate(h))
		return -1;
	/* A field name is a token (RFC 9110 5.1): llhttp lets whitespace
	 * before the colon through, which RFC 9112 5.1 says to reject. */
	const char *name = h->arena + h->hdrs[h->n].name;
	if (name[0] == '\0' || strpbrk(name, " \t\r\n") != NULL) {
		c->ev_status = 400;
		return -1;
	}
	h->hdrs[h->n].value = (uint32_t)h->used;
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http_head *h = &conn_of(p)->head;
	h->hdrs[h->n].value_len += (uint32_t)len;
	return head_append(h, at, len) ? 0 : -1;
}

static int on_header_value_complete(llhttp_t *p)
{
	struct http_conn *c = conn_of(p);
	struct http_head *h = &c->head;
	if (!head_terminate(h))
		return -1;
	/* obs-fold (a line starting with whitespace) reaches us as CR LF
	 * inside the value: reject it, as RFC 9112 5.2 allows, rather than
	 * hand line breaks to the application. */
	if (strpbrk(h->arena + h->hdrs[h->n].value, "\r\n") != NULL) {
		c->ev_status = 400;
		return -1;
	}
	h->n++;
	h->in_value = false;
	return 0;
}

static const char *head_get(const struct http_head *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->arena + h->hdrs[i].name, name) == 0)
			return h->arena + h->hdrs[i].value;
	return NULL;
}

static int on_headers_complete(llhttp_t *p)
{
	struct http_conn *c = conn_of(p);
	if (c->role == ROLE_CLIENT) {
		/* Informational responses (100 Continue...) are skipped:
		 * llhttp parses them as body-less messages. */
		if (p->status_code >= 100 && p->status_code < 200 &&
		    p->status_code != 101)
			return 0;
		c->head.complete = true;
		c->ev_head = true;
		/* A response to HEAD has no body whatever it announces
		 * (RFC 9110 9.3.2): 1 tells llhttp so. The message end
		 * follows at once and pauses the parser. */
		if (c->ex != NULL && c->ex->head_request)
			return 1;
		return HPE_PAUSED;
	}
	c->head.complete = true;
	c->ev_head = true;
	return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	if (len == 0 || c->in == NULL)
		return 0; /* a span flushed by a run over empty input */
	c->body_bytes += len;
	if (c->role == ROLE_SERVER && c->srv != NULL &&
	    c->body_bytes > c->srv->o.max_body) {
		c->ev_status = 413;
		return -1;
	}
	if (c->ex == NULL)
		return 0; /* draining an abandoned body */
	size_t off = (size_t)((const uint8_t *)at - c->in->data);
	c->ev_body = rill_buf_slice(c->in, off, len);
	if (c->ev_body == NULL) {
		c->ev_status = 500;
		return -1;
	}
	return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
	struct http_conn *c = conn_of(p);
	if (c->role == ROLE_CLIENT && p->status_code >= 100 &&
	    p->status_code < 200 && p->status_code != 101)
		return 0; /* the end of an informational response */
	c->ev_msg_end = true;
	return HPE_PAUSED;
}

static const llhttp_settings_t http_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---------------------------------------------------------------------- */
/* Exchange accessors */

static struct http_ex *ex_of(struct rill_flow *f)
{
	if (f == NULL || f->ops != &http_ex_ops)
		return NULL;
	return rill_container_of(f, struct http_ex, base);
}

static const struct http_head *ex_head(struct rill_flow *f)
{
	struct http_ex *ex = ex_of(f);
	if (ex == NULL || ex->conn == NULL || ex->conn->ex != ex ||
	    !ex->conn->head.complete)
		return NULL;
	return &ex->conn->head;
}

const char *rill_http_method(struct rill_flow *f)
{
	struct http_ex *ex = ex_of(f);
	if (ex == NULL || ex->role != ROLE_SERVER)
		return "";
	return llhttp_method_name((llhttp_method_t)ex->method);
}

const char *rill_http_target(struct rill_flow *f)
{
	const struct http_head *h = ex_head(f);
	if (h == NULL || ex_of(f)->role != ROLE_SERVER)
		return "";
	return h->arena + h->url;
}

int rill_http_status(struct rill_flow *f)
{
	struct http_ex *ex = ex_of(f);
	return ex != NULL && ex->role == ROLE_CLIENT ? ex->status : 0;
}

int rill_http_version_minor(struct rill_flow *f)
{
	struct http_ex *ex = ex_of(f);
	return ex != NULL ? ex->minor : 0;
}

const char *rill_http_header(struct rill_flow *f, const char *name)
{
	const struct http_head *h = ex_head(f);
	if (h == NULL || name == NULL)
		return NULL;
	return head_get(h, name);
}

size_t rill_http_header_count(struct rill_flow *f)
{
	const struct http_head *h = ex_head(f);
	return h != NULL ? h->n : 0;
}

int rill_http_header_at(struct rill_flow *f, size_t i, const char **name,
                        const char **value)
{
	const struct http_head *h = ex_head(f);
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
	struct http_ex *ex = ex_of(f);
	return ex != NULL ? ex->clen : -1;
}

/* ---------------------------------------------------------------------- */
/* Connection: timers */

static void conn_on_timer(uv_timer_t *t);

static void conn_timer(struct http_conn *c, enum timer_kind k, uint64_t ms)
{
	if (c->tkind == k)
		return;
	c->tkind = k;
	if (k == TM_NONE || ms == 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, conn_on_timer, ms, 0);
}

/* ---------------------------------------------------------------------- */
/* Connection: writes */

static void conn_io_write_cb(struct rill_flow *io, int status, void *ud);

/* Writes bufs to the connection; whom == NULL for plain writes. Takes
 * over the caller's references to bufs (released here in every case).
 * Returns 0 or an error (then nobody is notified). */
static int conn_write(struct http_conn *c, struct rill_buf **bufs, size_t n,
                      struct http_ex *whom, int kind)
{
	int err = RILL_ECLOSED;
	if (c->st != ST_DEAD && c->io != NULL) {
		if (c->wrq_n == HTTP_WRQ_MAX) {
			err = RILL_ENOMEM;
		} else {
			err = rill_writev(c->io, bufs, n, conn_io_write_cb, c);
			if (err == 0) {
				unsigned i = (c->wrq_head + c->wrq_n) %
				             HTTP_WRQ_MAX;
				c->wrq[i].ex = whom;
				c->wrq[i].kind = (uint8_t)kind;
				c->wrq_n++;
				if (kind == WR_PLAIN)
					c->pending_resp++;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		rill_buf_release(bufs[i]);
	return err;
}

static void ex_output_done(struct http_ex *ex);

static void conn_io_write_cb(struct rill_flow *io, int status, void *ud)
{
	(void)io;
	struct http_conn *c = ud;
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
				ex_output_done(ex);
			rill_flow_shutdown_done(&ex->base, status);
		}
	}
	if (status < 0) {
		conn_destroy(c, status);
		return;
	}
	conn_drive(c);
}

/* ---------------------------------------------------------------------- */
/* Connection: life */

static void conn_timer_closed(uv_handle_t *h)
{
	struct http_conn *c = h->data;
	rill_free(c->head.arena);
	rill_free(c->head.hdrs);
	rill_free(c);
}

static void srv_check_done(struct rill_http_server *s);

static void ex_detach(struct http_ex *ex, int err)
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
static void conn_destroy(struct http_conn *c, int err)
{
	if (c->st == ST_DEAD)
		return;
	c->st = ST_DEAD;
	rill_close(c->io);
	c->io = NULL;
	rill_buf_release(c->in);
	c->in = NULL;
	rill_buf_release(c->ev_body);
	c->ev_body = NULL;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, conn_timer_closed);
	if (c->srv != NULL) {
		struct rill_http_server *s = c->srv;
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
		s->nconns--;
		c->srv = NULL;
		srv_check_done(s);
	}
	if (c->client != NULL) {
		c->client->broken = true;
		c->client->conn = NULL;
		c->client = NULL;
	}
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
		ex_detach(ex, err);
}

static void conn_linger_shut_cb(struct rill_flow *io, int status, void *ud)
{
	(void)io;
	struct http_conn *c = ud;
	if (status < 0)
		conn_destroy(c, RILL_ECLOSED);
}

/* Server: stop serving this connection. Queued responses are flushed,
 * then the write side is shut down, and input is drained for a while so
 * that the client reads our last response before any reset. */
static void conn_linger(struct http_conn *c)
{
	if (c->st == ST_DEAD || c->st == ST_LINGER)
		return;
	c->st = ST_LINGER;
	struct http_ex *ex = c->ex;
	c->ex = NULL;
	if (ex != NULL)
		ex_detach(ex, RILL_ECLOSED);
	if (rill_shutdown(c->io, RILL_SHUT_WR, conn_linger_shut_cb, c) != 0) {
		conn_destroy(c, RILL_ECLOSED);
		return;
	}
	c->tkind = TM_NONE;
	conn_timer(c, TM_LINGER, HTTP_LINGER_MS);
	conn_drive(c);
}

static void conn_on_timer(uv_timer_t *t)
{
	struct http_conn *c = t->data;
	enum timer_kind k = c->tkind;
	c->tkind = TM_NONE;
	switch (k) {
	case TM_HEADER:
		conn_send_error(c, 408);
		break;
	case TM_BODY:
		if (c->ex != NULL && !c->ex->out_started && c->role == ROLE_SERVER)
			conn_send_error(c, 408);
		else
			conn_destroy(c, RILL_ETIMEDOUT);
		break;
	case TM_IDLE:
	case TM_LINGER:
	default:
		conn_destroy(c, RILL_ETIMEDOUT);
		break;
	}
}

/* Server: answers with one of our canned errors and closes. */
static void conn_send_error(struct http_conn *c, int status)
{
	if (c->st == ST_DEAD || c->st == ST_LINGER)
		return;
	struct http_ex *ex = c->ex;
	if (ex != NULL && ex->out_started) {
		/* Part of a response is out: all we can do is close. */
		conn_destroy(c, status == 413 ? RILL_EHTTP_TOO_LARGE
		                              : RILL_EHTTP);
		return;
	}
	if (ex != NULL) {
		c->ex = NULL;
		ex_detach(ex, status == 413 ? RILL_EHTTP_TOO_LARGE
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
	struct rill_buf *b = static_buf(msg, strlen(msg));
	if (b == NULL || conn_write(c, &b, 1, NULL, WR_PLAIN) != 0) {
		conn_destroy(c, RILL_ENOMEM);
		return;
	}
	conn_linger(c);
}

static int conn_init(struct http_conn *c, uv_loop_t *loop,
                     struct rill_flow *io, int role, size_t hbytes,
                     size_t nhdrs)
{
	c->role = role;
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
	head_reset(&c->head);
	llhttp_init(&c->parser,
	            role == ROLE_SERVER ? HTTP_REQUEST : HTTP_RESPONSE,
	            &http_settings);
	c->parser.data = c;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Connection: input */

static void conn_on_read(struct rill_flow *io, int status,
                         struct rill_buf *buf, void *ud)
{
	(void)io;
	struct http_conn *c = ud;
	c->reading = false;
	if (status == 0) {
		if (c->st == ST_LINGER) {
			rill_buf_release(buf);
		} else {
			c->in = buf;
			c->in_off = 0;
		}
	} else {
		c->io_status = status;
	}
	conn_drive(c);
}

static void conn_want_input(struct http_conn *c)
{
	if (c->reading || c->io_status != 0 || c->in != NULL)
		return;
	int err = rill_read(c->io, conn_on_read, c);
	if (err != 0) {
		c->io_status = err;
		c->again = true;
		return;
	}
	c->reading = true;
}

/* Maps an llhttp failure to the status the server answers with. */
static int http_error_status(struct http_conn *c, llhttp_errno_t e)
{
	if (c->ev_status != 0)
		return c->ev_status;
	if (c->head.overflow)
		return 431;
	if (e == HPE_INVALID_VERSION)
		return 505;
	return 400;
}

/* Runs the parser over the unparsed input until it pauses or needs more.
 * Returns 0, or an llhttp error (not HPE_PAUSED). */
static llhttp_errno_t conn_parse(struct http_conn *c)
{
	/* After a pause llhttp may still have steps to take that need no
	 * input (the end of a message right after its head or its last
	 * body byte): run it over an empty input then. */
	static const char none[1];
	const char *data = none;
	size_t len = 0;
	if (c->in != NULL) {
		data = (const char *)c->in->data + c->in_off;
		len = c->in->len - c->in_off;
	}
	c->kick = false;
	llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
	size_t used = len;
	if (e == HPE_PAUSED) {
		used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
		llhttp_resume(&c->parser);
		c->kick = true;
		e = HPE_OK;
	} else if (e == HPE_PAUSED_UPGRADE) {
		/* Upgrades are not supported: what follows is not HTTP. */
		used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
		c->keep_alive = false;
		c->ev_msg_end = true;
		e = HPE_OK;
	}
	if (!c->head.complete) {
		c->head.raw += used;
		if (c->head.raw > c->head.cap + 1024 && e == HPE_OK)
			c->head.overflow = true;
	}
	if (used > 0)
		c->head_seen = true;
	if (c->in == NULL)
		return e;
	c->in_off += used;
	if (c->in_off >= c->in->len) {
		rill_buf_release(c->in);
		c->in = NULL;
	}
	if (e == HPE_OK && c->head.overflow)
		return HPE_USER;
	return e;
}

/* ---------------------------------------------------------------------- */
/* Server side */

static struct http_ex *ex_new(struct http_conn *c, int role)
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

static void ex_fill_head(struct http_ex *ex, struct http_conn *c)
{
	llhttp_t *p = &c->parser;
	ex->method = p->method;
	ex->minor = p->http_minor;
	ex->status = p->status_code;
	if ((p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED))
		ex->clen = (int64_t)p->content_length;
}

static bool request_has_body(llhttp_t *p)
{
	if (p->flags & F_CHUNKED)
		return true;
	return (p->flags & F_CONTENT_LENGTH) && p->content_length > 0;
}

/* A request head is complete: make its exchange and call the handler. */
static void srv_on_head(struct http_conn *c)
{
	struct rill_http_server *s = c->srv;
	llhttp_t *p = &c->parser;
	if (p->http_major != 1) {
		conn_send_error(c, 505);
		return;
	}
	if ((p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED) &&
	    p->content_length > s->o.max_body) {
		conn_send_error(c, 413);
		return;
	}
	c->nreq++;
	c->keep_alive = llhttp_should_keep_alive(p) && !s->shutting_down &&
	                (s->o.max_requests_per_conn == 0 ||
	                 c->nreq < s->o.max_requests_per_conn);
	struct http_ex *ex = ex_new(c, ROLE_SERVER);
	if (ex == NULL) {
		conn_send_error(c, 503);
		return;
	}
	ex_fill_head(ex, c);
	ex->head_request = p->method == HTTP_HEAD;
	const char *expect = head_get(&c->head, "Expect");
	if (expect != NULL) {
		if (strcasecmp(expect, "100-continue") != 0) {
			rill_flow_discard(&ex->base);
			conn_send_error(c, 400);
			return;
		}
		ex->expect_continue = p->http_minor >= 1 && request_has_body(p);
	}
	/* A small unread body is skipped to keep the connection; a large
	 * one, or one the client waits to be invited to send, is not. */
	c->drain_ok = !request_has_body(p) ||
	              (!(p->flags & F_CHUNKED) && !ex->expect_continue &&
	               p->content_length <= 256 * 1024);
	c->ex = ex;
	c->st = ST_EXCHANGE;
	c->head_seen = false;
	conn_timer(c, TM_NONE, 0);
	s->handler(&ex->base, s->ud);
}

/* ---------------------------------------------------------------------- */
/* The driver: decides what the connection does next */

static void conn_step(struct http_conn *c)
{
	if (c->st == ST_DEAD)
		return;

	if (c->st == ST_LINGER) {
		if (c->io_status != 0) {
			conn_destroy(c, RILL_ECLOSED);
			return;
		}
		rill_buf_release(c->in);
		c->in = NULL;
		conn_want_input(c);
		return;
	}

	/* Deliver what the parser found last time: the head first. */
	struct http_ex *ex = c->ex;
	if (c->ev_head) {
		c->ev_head = false;
		if (c->role == ROLE_SERVER) {
			srv_on_head(c);
		} else if (ex != NULL) {
			ex_fill_head(ex, c);
			c->keep_alive = llhttp_should_keep_alive(&c->parser);
			conn_timer(c, TM_NONE, 0);
			rill_http_response_cb cb = ex->resp_cb;
			ex->resp_cb = NULL;
			if (cb != NULL)
				cb(&ex->base, 0, ex->resp_ud);
		}
		c->again = true;
		return;
	}

	if (c->ev_body != NULL) {
		struct rill_buf *b = c->ev_body;
		if (ex == NULL || !ex->reading) {
			rill_buf_release(b); /* nobody wants it any more */
			c->ev_body = NULL;
		} else {
			c->ev_body = NULL;
			ex->reading = false;
			conn_timer(c, TM_NONE, 0);
			rill_flow_read_done(&ex->base, 0, b);
			c->again = true;
			return;
		}
	}
	if (c->ev_msg_end) {
		c->ev_msg_end = false;
		c->body_done = true;
		if (ex != NULL && ex->reading) {
			ex->reading = false;
			rill_flow_read_done(&ex->base, RILL_EOF, NULL);
			c->again = true;
			return;
		}
	}
	if (c->st == ST_IDLE)
		return;

	/* Where we are: the head, or an exchange. */
	bool want_parse;
	if (c->st == ST_HEAD) {
		if (c->role == ROLE_SERVER && c->pending_resp > HTTP_PIPE_MAX)
			return; /* the client does not read its responses */
		want_parse = true;
	} else {
		ex = c->ex;
		if (ex == NULL) {
			/* The exchange is over (closed by its owner). */
			if (!c->body_done && !(c->role == ROLE_SERVER &&
			                       c->drain_ok)) {
				/* Its body was not read, and is too large
				 * to skip: do not parse what is left as
				 * requests. */
				if (c->role == ROLE_SERVER)
					conn_linger(c);
				else
					conn_destroy(c, RILL_ECLOSED);
				return;
			}
			if (!c->body_done) {
				want_parse = true; /* skip the body */
				goto parse;
			}
			if (!c->keep_alive) {
				if (c->role == ROLE_SERVER)
					conn_linger(c);
				else
					conn_destroy(c, RILL_ECLOSED);
				return;
			}
			if (c->role == ROLE_CLIENT) {
				c->st = ST_IDLE;
				return;
			}
			c->st = ST_HEAD;
			c->head.complete = false;
			c->head_seen = false;
			c->again = true;
			return;
		}
		if (c->body_done)
			return; /* the owner answers / reads at its pace */
		if (!ex->reading) {
			/* Client: the response head is still due. */
			if (!(c->role == ROLE_CLIENT && !c->head.complete))
				return;
		} else if (ex->expect_continue && !ex->out_started) {
			ex->expect_continue = false;
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			struct rill_buf *b = static_buf(cont, sizeof cont - 1);
			if (b == NULL ||
			    conn_write(c, &b, 1, NULL, WR_PLAIN) != 0) {
				conn_destroy(c, RILL_ENOMEM);
				return;
			}
		}
		want_parse = true;
	}
	if (!want_parse)
		return;
parse:
	if (c->in != NULL || c->kick) {
		llhttp_errno_t e = conn_parse(c);
		if (e != HPE_OK && getenv("HTTP_DEBUG"))
			fprintf(stderr, "llhttp: %s %s\n", llhttp_errno_name(e),
			        llhttp_get_error_reason(&c->parser));
		if (e != HPE_OK) {
			if (c->role == ROLE_SERVER) {
				conn_send_error(c, http_error_status(c, e));
			} else {
				conn_destroy(c, c->head.overflow
				                    ? RILL_EHTTP_TOO_LARGE
				                    : RILL_EHTTP);
			}
			return;
		}
		c->again = true;
		return;
	}
	if (c->io_status != 0) {
		/* The peer is gone. */
		if (c->role == ROLE_CLIENT && c->st == ST_EXCHANGE &&
		    c->head.complete && c->io_status == RILL_EOF &&
		    llhttp_message_needs_eof(&c->parser)) {
			/* A body delimited by the end of the connection. */
			if (llhttp_finish(&c->parser) == HPE_OK &&
			    !c->ev_msg_end)
				c->ev_msg_end = true;
			c->keep_alive = false;
			c->again = true;
			return;
		}
		if (c->role == ROLE_SERVER && c->st == ST_HEAD &&
		    c->head_seen && c->io_status == RILL_EOF) {
			conn_destroy(c, RILL_EHTTP);
			return;
		}
		conn_destroy(c, c->io_status == RILL_EOF
		                    ? (c->st == ST_HEAD && c->role == ROLE_SERVER
		                           ? RILL_EOF
		                           : RILL_EHTTP)
		                    : c->io_status);
		return;
	}
	/* Need input: arm the right timer. */
	if (c->role == ROLE_SERVER) {
		struct rill_http_server *s = c->srv;
		if (c->st == ST_HEAD) {
			if (c->head_seen)
				conn_timer(c, TM_HEADER,
				           s->o.header_timeout_ms);
			else
				conn_timer(c, TM_IDLE, s->o.idle_timeout_ms);
		} else {
			conn_timer(c, TM_BODY, s->o.body_timeout_ms);
		}
	} else if (c->client != NULL && !c->head.complete) {
		conn_timer(c, TM_HEADER, c->client->o.header_timeout_ms);
	}
	conn_want_input(c);
}

static void conn_drive(struct http_conn *c)
{
	if (c->driving) {
		c->again = true;
		return;
	}
	c->driving = true;
	do {
		c->again = false;
		conn_step(c);
	} while (c->again && c->st != ST_DEAD);
	c->driving = false;
}

/* ---------------------------------------------------------------------- */
/* Exchange flow ops */

static void ex_read(struct rill_flow *f)
{
	struct http_ex *ex = ex_of(f);
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
	conn_drive(c);
}

/* Builds the iovec of one body write: [head] [chunk size] bufs [CRLF].
 * Returns the count, or 0 on ENOMEM. out must hold n + 3. */
static size_t ex_frame(struct http_ex *ex, struct rill_buf *const *bufs,
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
		struct rill_buf *t = static_buf("\r\n", 2);
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

static void ex_write(struct rill_flow *f, struct rill_buf *const *bufs,
                     size_t n)
{
	struct http_ex *ex = ex_of(f);
	struct http_conn *c = ex->conn;
	if (c == NULL || c->st == ST_DEAD) {
		rill_flow_write_done(f, ex->err ? ex->err : RILL_ECLOSED);
		return;
	}
	if ((ex->role == ROLE_SERVER && !ex->out_started) || ex->out_done) {
		rill_flow_set_errmsg(f, ex->out_done
		                            ? "the message body is complete"
		                            : "rill_http_respond was not called");
		rill_flow_write_done(f, ex->out_done ? RILL_ECLOSED : RILL_EHTTP);
		return;
	}
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += bufs[i]->len;
	if (ex->out_left >= 0) {
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
	size_t k = n == 0 ? 0 : ex_frame(ex, bufs, n, total, v);
	if (n == 0 && ex->out_head != NULL) {
		v[k++] = ex->out_head;
		ex->out_head = NULL;
	}
	int err = k == 0 ? RILL_ENOMEM : conn_write(c, v, k, ex, WR_EX_WRITE);
	if (v != stackv)
		rill_free(v);
	if (err != 0)
		rill_flow_write_done(f, err);
}

static void ex_output_done(struct http_ex *ex)
{
	ex->out_done = true;
	struct http_conn *c = ex->conn;
	if (c != NULL)
		c->again = true;
}

static void ex_shutdown_write(struct rill_flow *f)
{
	struct http_ex *ex = ex_of(f);
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
		conn_destroy(c, RILL_EHTTP);
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
		struct rill_buf *t = static_buf("0\r\n\r\n", 5);
		if (t == NULL) {
			for (size_t i = 0; i < k; i++)
				rill_buf_release(v[i]);
			rill_flow_shutdown_done(f, RILL_ENOMEM);
			return;
		}
		v[k++] = t;
	}
	if (k == 0) {
		ex_output_done(ex);
		rill_flow_shutdown_done(f, 0);
		if (c->ex == ex)
			conn_drive(c);
		return;
	}
	int err = conn_write(c, v, k, ex, WR_EX_SHUT);
	if (err != 0)
		rill_flow_shutdown_done(f, err);
}

static void ex_shutdown_read(struct rill_flow *f)
{
	struct http_ex *ex = ex_of(f);
	ex->reading = false;
}

static void ex_close(struct rill_flow *f)
{
	struct http_ex *ex = ex_of(f);
	struct http_conn *c = ex->conn;
	if (c != NULL) {
		for (unsigned i = 0; i < c->wrq_n; i++) {
			struct http_wrq *w =
			    &c->wrq[(c->wrq_head + i) % HTTP_WRQ_MAX];
			if (w->ex == ex)
				w->ex = NULL;
		}
		if (c->ex == ex) {
			c->ex = NULL;
			/* All bytes of a Content-Length body were written:
			 * the message is complete without a shutdown. */
			bool complete = ex->out_done ||
			                (!ex->out_chunked && ex->out_left == 0);
			if (complete && ex->out_head != NULL) {
				struct rill_buf *h = ex->out_head;
				ex->out_head = NULL;
				if (conn_write(c, &h, 1, NULL, WR_PLAIN) != 0)
					complete = false;
			}
			if (ex->role == ROLE_SERVER && !ex->out_started) {
				/* The handler gave no answer. */
				conn_send_error(c, 500);
			} else if (!complete) {
				conn_destroy(c, RILL_ECLOSED);
			} else {
				conn_drive(c);
			}
		}
	}
	ex->conn = NULL;
	rill_buf_release(ex->out_head);
	ex->out_head = NULL;
	rill_flow_destroyed(f);
}

static int ex_address(struct rill_flow *f, int which, char *buf, size_t len)
{
	struct http_ex *ex = ex_of(f);
	if (ex->conn == NULL || ex->conn->io == NULL)
		return RILL_ECLOSED;
	return rill_flow_address(ex->conn->io, which, buf, len);
}

static const struct rill_flow_ops http_ex_ops = {
    .name = "http",
    .read = ex_read,
    .write = ex_write,
    .shutdown_write = ex_shutdown_write,
    .shutdown_read = ex_shutdown_read,
    .close = ex_close,
    .address = ex_address,
};

/* ---------------------------------------------------------------------- */
/* Responses */

static bool header_is_reserved(const char *name)
{
	return strcasecmp(name, "Content-Length") == 0 ||
	       strcasecmp(name, "Transfer-Encoding") == 0 ||
	       strcasecmp(name, "Connection") == 0 ||
	       strcasecmp(name, "Date") == 0;
}

/* Header names must be tokens and values must not contain CR or LF:
 * anything else would let a caller inject lines (RFC 9110 5.1, 5.5). */
static bool header_ok(const struct rill_http_header *h)
{
	if (h->name == NULL || h->value == NULL || h->name[0] == '\0')
		return false;
	for (const char *p = h->name; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch))
			return false;
	}
	for (const char *p = h->value; *p; p++)
		if (*p == '\r' || *p == '\n')
			return false;
	return true;
}

static int ex_start_response(struct http_ex *ex, int status,
                             const struct rill_http_header *hdrs, size_t n,
                             int64_t clen)
{
	struct http_conn *c = ex->conn;
	if (ex->role != ROLE_SERVER || ex->out_started || status < 200 ||
	    status > 999 || (n > 0 && hdrs == NULL) || clen < -1)
		return RILL_EINVAL;
	if (c == NULL || c->st == ST_DEAD || c->ex != ex)
		return ex->err ? ex->err : RILL_ECLOSED;
	size_t need = 160;
	const char *sname = c->srv->o.server_name;
	if (sname != NULL)
		need += strlen(sname) + 12;
	for (size_t i = 0; i < n; i++) {
		if (!header_ok(&hdrs[i]) || header_is_reserved(hdrs[i].name))
			return RILL_EINVAL;
		need += strlen(hdrs[i].name) + strlen(hdrs[i].value) + 4;
	}
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
	if (!c->body_done && ex->expect_continue)
		c->keep_alive = false;
	struct rill_buf *b = rill_buf_new(need);
	if (b == NULL)
		return RILL_ENOMEM;
	char *p = (char *)b->data;
	char *end = p + need;
	p += snprintf(p, (size_t)(end - p), "HTTP/1.1 %d %s\r\n", status,
	              rill_http_reason(status));
	if (sname != NULL)
		p += snprintf(p, (size_t)(end - p), "Server: %s\r\n", sname);
	p += snprintf(p, (size_t)(end - p), "Date: %s\r\n",
	              http_date(c->io->loop));
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(hdrs[i].name), vl = strlen(hdrs[i].value);
		memcpy(p, hdrs[i].name, nl);
		p += nl;
		*p++ = ':';
		*p++ = ' ';
		memcpy(p, hdrs[i].value, vl);
		p += vl;
		*p++ = '\r';
		*p++ = '\n';
	}
	/* 204 and 304 carry no framing: RFC 9110 8.6 forbids it on 204,
	 * and on 304 it would have to describe the unsent 200 body. */
	if (status != 204 && status != 304) {
		if (clen >= 0)
			p += snprintf(p, (size_t)(end - p),
			              "Content-Length: %lld\r\n", (long long)clen);
		else if (ex->out_chunked)
			p += snprintf(p, (size_t)(end - p),
			              "Transfer-Encoding: chunked\r\n");
	}
	if (!c->keep_alive)
		p += snprintf(p, (size_t)(end - p), "Connection: close\r\n");
	else if (ex->minor == 0)
		p += snprintf(p, (size_t)(end - p),
		              "Connection: keep-alive\r\n");
	*p++ = '\r';
	*p++ = '\n';
	b->len = (size_t)(p - (char *)b->data);
	ex->out_head = b;
	ex->out_started = true;
	ex->out_left = nobody ? 0 : clen;
	return 0;
}

int rill_http_respond(struct rill_flow *f, int status,
                      const struct rill_http_header *headers, size_t n,
                      int64_t content_length)
{
	struct http_ex *ex = ex_of(f);
	if (ex == NULL || rill_flow_is_closed(f))
		return RILL_EINVAL;
	return ex_start_response(ex, status, headers, n, content_length);
}

int rill_http_respond_buf(struct rill_flow *f, int status,
                          const struct rill_http_header *headers, size_t n,
                          struct rill_buf *body)
{
	struct http_ex *ex = ex_of(f);
	if (ex == NULL || rill_flow_is_closed(f))
		return RILL_EINVAL;
	size_t len = body != NULL ? body->len : 0;
	int err = ex_start_response(ex, status, headers, n, (int64_t)len);
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
	err = conn_write(c, v, k, NULL, WR_PLAIN);
	if (err != 0)
		conn_destroy(c, err);
	return err;
}

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
	s->loop = loop;
	s->handler = handler;
	s->ud = ud;
	uv_idle_init(loop, &s->done_idle);
	s->done_idle.data = s;
	*out = s;
	return 0;
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
	struct http_conn *c = rill_calloc(1, sizeof *c);
	if (c == NULL) {
		rill_close(io);
		return RILL_ENOMEM;
	}
	int err = conn_init(c, s->loop, io, ROLE_SERVER, s->o.max_header_bytes,
	                    s->o.max_headers);
	if (err != 0) {
		rill_free(c);
		rill_close(io);
		return err;
	}
	/* Small responses must leave at once (Nagle would hold them back
	 * waiting for an ACK); -ENOTSUP on non-TCP flows is fine. */
	(void)rill_flow_set_nodelay(io, true);
	c->srv = s;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	c->st = ST_HEAD;
	conn_drive(c);
	return 0;
}

size_t rill_http_server_connections(struct rill_http_server *s)
{
	return s != NULL ? s->nconns : 0;
}

static void srv_done_idle(uv_idle_t *h)
{
	struct rill_http_server *s = h->data;
	uv_idle_stop(h);
	void (*done)(void *) = s->done;
	s->done = NULL;
	if (done != NULL)
		done(s->done_ud);
}

static void srv_check_done(struct rill_http_server *s)
{
	if (s->shutting_down && s->nconns == 0 && s->done != NULL &&
	    !s->freeing)
		uv_idle_start(&s->done_idle, srv_done_idle);
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
		if (c->st == ST_HEAD && !c->head_seen && c->in == NULL)
			conn_destroy(c, RILL_ECANCELED); /* idle */
		c = next;
	}
	srv_check_done(s);
}

static void srv_freed(uv_handle_t *h)
{
	rill_free(h->data);
}

void rill_http_server_free(struct rill_http_server *s)
{
	if (s == NULL)
		return;
	s->freeing = true;
	s->done = NULL;
	while (s->conns != NULL)
		conn_destroy(s->conns, RILL_ECANCELED);
	uv_close((uv_handle_t *)&s->done_idle, srv_freed);
}

/* ---------------------------------------------------------------------- */
/* Client */

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
	int err = conn_init(c, rill_flow_loop(io), io, ROLE_CLIENT,
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
		conn_destroy(cl->conn, RILL_ECLOSED);
	rill_free(cl);
}

bool rill_http_client_reusable(struct rill_http_client *cl)
{
	return cl != NULL && cl->conn != NULL && !cl->broken &&
	       cl->conn->st == ST_IDLE && cl->conn->ex == NULL;
}

static bool token_ok(const char *s, bool target)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 32 || ch >= 127)
			return false;
		if (!target && strchr("\"(),/:;<=>?@[\\]{}", ch))
			return false;
	}
	return true;
}

int rill_http_request(struct rill_http_client *cl, const char *method,
                      const char *target,
                      const struct rill_http_header *hdrs, size_t n,
                      int64_t clen, rill_http_response_cb cb, void *ud,
                      struct rill_flow **out)
{
	if (cl == NULL || !token_ok(method, false) || !token_ok(target, true) ||
	    (n > 0 && hdrs == NULL) || clen < -1 || cb == NULL || out == NULL)
		return RILL_EINVAL;
	struct http_conn *c = cl->conn;
	if (c == NULL || cl->broken)
		return RILL_ECLOSED;
	if (c->ex != NULL || c->st != ST_IDLE)
		return -EBUSY;
	size_t need = strlen(method) + strlen(target) + 64;
	for (size_t i = 0; i < n; i++) {
		if (!header_ok(&hdrs[i]))
			return RILL_EINVAL;
		need += strlen(hdrs[i].name) + strlen(hdrs[i].value) + 4;
	}
	struct http_ex *ex = ex_new(c, ROLE_CLIENT);
	struct rill_buf *b = rill_buf_new(need);
	if (ex == NULL || b == NULL) {
		if (ex != NULL)
			rill_flow_discard(&ex->base);
		rill_buf_release(b);
		return RILL_ENOMEM;
	}
	char *p = (char *)b->data, *end = p + need;
	p += snprintf(p, (size_t)(end - p), "%s %s HTTP/1.1\r\n", method,
	              target);
	for (size_t i = 0; i < n; i++)
		p += snprintf(p, (size_t)(end - p), "%s: %s\r\n", hdrs[i].name,
		              hdrs[i].value);
	if (clen > 0)
		p += snprintf(p, (size_t)(end - p), "Content-Length: %lld\r\n",
		              (long long)clen);
	else if (clen < 0)
		p += snprintf(p, (size_t)(end - p),
		              "Transfer-Encoding: chunked\r\n");
	*p++ = '\r';
	*p++ = '\n';
	b->len = (size_t)(p - (char *)b->data);
	ex->head_request = strcmp(method, "HEAD") == 0;
	ex->out_chunked = clen < 0;
	ex->out_left = clen;
	ex->out_started = true;
	ex->resp_cb = cb;
	ex->resp_ud = ud;
	int err = conn_write(c, &b, 1, NULL, WR_PLAIN);
	if (err != 0) {
		rill_flow_discard(&ex->base);
		return err;
	}
	if (clen == 0)
		ex->out_done = true;
	llhttp_init(&c->parser, HTTP_RESPONSE, &http_settings);
	c->parser.data = c;
	c->head.complete = false;
	c->body_done = false;
	c->keep_alive = true;
	c->ex = ex;
	c->st = ST_EXCHANGE;
	*out = &ex->base;
	conn_drive(c);
	return 0;
}
