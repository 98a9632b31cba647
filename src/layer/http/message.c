/*
 * Message heads built as buffers: reason phrases, the Date header,
 * header and token checks, the request head of rill_http_request and the
 * response head of rill_http_respond. Nothing here writes: the callers
 * hand the buffers to the connection.
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
/* Header checks */

/* A token character (RFC 9110 5.6.2 tchar): letters, digits and
 * !#$%&'*+-.^_`|~ -- the printable ASCII that is not a separator. */
static bool http_tchar(unsigned char ch)
{
	unsigned char lc = ch | 0x20;
	if ((lc >= 'a' && lc <= 'z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* The headers the layer writes itself (framing and Date). */
static bool http_header_is_reserved(const char *name)
{
	switch (strlen(name)) {
	case 4: return strcasecmp(name, "Date") == 0;
	case 10: return strcasecmp(name, "Connection") == 0;
	case 14: return strcasecmp(name, "Content-Length") == 0;
	case 17: return strcasecmp(name, "Transfer-Encoding") == 0;
	default: return false;
	}
}

/* Header names must be tokens and values must not contain CR or LF:
 * anything else would let a caller inject lines (RFC 9110 5.1, 5.5). */
bool rill__http_header_ok(const struct rill_http_header *h)
{
	if (h->name == NULL || h->value == NULL || h->name[0] == '\0')
		return false;
	for (const char *p = h->name; *p; p++)
		if (!http_tchar((unsigned char)*p))
			return false;
	return h->value[strcspn(h->value, "\r\n")] == '\0';
}

bool rill__http_token_ok(const char *s, bool target)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 32 || ch >= 127)
			return false;
		if (!target && !http_tchar(ch))
			return false;
	}
	return true;
}

bool rill__http_response_header_ok(const struct rill_http_header *h)
{
	return rill__http_header_ok(h) && !http_header_is_reserved(h->name);
}

/* ---------------------------------------------------------------------- */
/* Heads */

/* Appending to a head whose size was reckoned beforehand. */
static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_str(char *p, const char *s)
{
	return put(p, s, strlen(s));
}

static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* Built by appending (no printf: this runs for every response). The
 * fixed parts take at most 160 bytes: status line with the longest
 * reason (45), Date (37), Content-Length with 19 digits (37), Connection
 * (24), the final CRLF. */
struct rill_buf *rill__http_response_head(const struct http_resp_head *h)
{
	size_t need = 160;
	if (h->server_name != NULL)
		need += strlen(h->server_name) + 12;
	for (size_t i = 0; i < h->n; i++)
		need += strlen(h->hdrs[i].name) + strlen(h->hdrs[i].value) + 4;
	struct rill_buf *b = rill_buf_new(need);
	if (b == NULL)
		return NULL;
	char *p = PUT_LIT((char *)b->data, "HTTP/1.1 ");
	p = put_u64(p, (uint64_t)h->status); /* 200-999: the caller checks */
	*p++ = ' ';
	p = put_str(p, rill_http_reason(h->status));
	p = PUT_LIT(p, "\r\n");
	if (h->server_name != NULL) {
		p = PUT_LIT(p, "Server: ");
		p = put_str(p, h->server_name);
		p = PUT_LIT(p, "\r\n");
	}
	p = PUT_LIT(p, "Date: ");
	p = put_str(p, http_date(h->loop));
	p = PUT_LIT(p, "\r\n");
	for (size_t i = 0; i < h->n; i++) {
		p = put_str(p, h->hdrs[i].name);
		p = PUT_LIT(p, ": ");
		p = put_str(p, h->hdrs[i].value);
		p = PUT_LIT(p, "\r\n");
	}
	/* 204 and 304 carry no framing: RFC 9110 8.6 forbids it on 204,
	 * and on 304 it would have to describe the unsent 200 body. */
	if (h->status != 204 && h->status != 304) {
		if (h->clen >= 0) {
			p = PUT_LIT(p, "Content-Length: ");
			p = put_u64(p, (uint64_t)h->clen);
			p = PUT_LIT(p, "\r\n");
		} else if (h->chunked) {
			p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
		}
	}
	if (!h->keep_alive)
		p = PUT_LIT(p, "Connection: close\r\n");
	else if (h->http10)
		p = PUT_LIT(p, "Connection: keep-alive\r\n");
	p = PUT_LIT(p, "\r\n");
	b->len = (size_t)(p - (char *)b->data);
	return b;
}

struct rill_buf *rill__http_request_head(const char *method, const char *target,
                                         const struct rill_http_header *hdrs,
                                         size_t n, int64_t clen)
{
	size_t need = strlen(method) + strlen(target) + 64;
	for (size_t i = 0; i < n; i++)
		need += strlen(hdrs[i].name) + strlen(hdrs[i].value) + 4;
	struct rill_buf *b = rill_buf_new(need);
	if (b == NULL)
		return NULL;
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
	return b;
}
