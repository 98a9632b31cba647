/*
 * Writing message heads: reason phrases, the Date header, header and
 * token checks, and the response head of rill_http_respond.
 * See http_internal.h for the layer's design.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "layer/http/http_internal.h"

struct rill_buf *rill__http_static_buf(const char *s, size_t len)
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
/* Responses */

static bool http_header_is_reserved(const char *name)
{
	return strcasecmp(name, "Content-Length") == 0 ||
	       strcasecmp(name, "Transfer-Encoding") == 0 ||
	       strcasecmp(name, "Connection") == 0 ||
	       strcasecmp(name, "Date") == 0;
}

/* Header names must be tokens and values must not contain CR or LF:
 * anything else would let a caller inject lines (RFC 9110 5.1, 5.5). */
bool rill__http_header_ok(const struct rill_http_header *h)
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
	size_t need = 160;
	const char *sname = c->srv->o.server_name;
	if (sname != NULL)
		need += strlen(sname) + 12;
	for (size_t i = 0; i < n; i++) {
		if (!rill__http_header_ok(&hdrs[i]) ||
		    http_header_is_reserved(hdrs[i].name))
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
	int err = http_ex_expect(ex, status, whole);
	if (err != 0)
		return err;
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
			              "Content-Length: %lld\r\n",
			              (long long)clen);
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

bool rill__http_token_ok(const char *s, bool target)
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
