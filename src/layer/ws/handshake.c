/*
 * The WebSocket opening handshake (RFC 6455 section 4): an HTTP/1.1
 * Upgrade request and its 101 answer. Heads are parsed by llhttp (the
 * parser of the HTTP layer); rill only checks the header values. The
 * Sec-WebSocket-Accept digest is SHA-1 and base64 from OpenSSL.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include "core/core.h"
#include "llhttp.h"
#include "layer/ws/ws_internal.h"

/* RFC 6455 section 1.3: the GUID appended to the key. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static char *ws_dup(const char *s)
{
	return s != NULL ? rill_strdup(s) : NULL;
}

int rill__ws_conf_init(struct ws_conf *c, const struct rill_ws_opts *o)
{
	static const struct rill_ws_opts none;
	memset(c, 0, sizeof *c);
	if (o == NULL)
		o = &none;
	c->path = ws_dup(o->path);
	c->host = ws_dup(o->host);
	c->origin = ws_dup(o->origin);
	c->protocols = ws_dup(o->subprotocols);
	c->ping_ms = o->ping_ms;
	c->max_message = o->max_message ? o->max_message : WS_MAX_MESSAGE;
	c->hs_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : WS_HS_MS;
	if ((o->path && !c->path) || (o->host && !c->host) ||
	    (o->origin && !c->origin) || (o->subprotocols && !c->protocols)) {
		rill__ws_conf_free(c);
		return RILL_ENOMEM;
	}
	return 0;
}

void rill__ws_conf_free(struct ws_conf *c)
{
	rill_free(c->path);
	rill_free(c->host);
	rill_free(c->origin);
	rill_free(c->protocols);
	memset(c, 0, sizeof *c);
}

size_t rill__ws_head_end(const char *s, size_t len)
{
	for (size_t i = 3; i < len; i++)
		if (s[i] == '\n' && s[i - 1] == '\r' && s[i - 2] == '\n' &&
		    s[i - 3] == '\r')
			return i + 1;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* llhttp callbacks: record spans (the head is parsed in one piece). */

static int ws_on_url(llhttp_t *p, const char *at, size_t len)
{
	struct ws_head *h = p->data;
	if (h->url == NULL)
		h->url = at;
	h->url_len = (size_t)(at + len - h->url);
	return 0;
}

static int ws_on_field(llhttp_t *p, const char *at, size_t len)
{
	struct ws_head *h = p->data;
	size_t i = h->n;
	if (i > 0 && h->value[i - 1] == NULL &&
	    h->name[i - 1] + h->name_len[i - 1] == at) {
		h->name_len[i - 1] += len; /* the same name, continued */
		return 0;
	}
	if (i == WS_HDRS_MAX) {
		h->too_many = true;
		return HPE_USER;
	}
	h->name[i] = at;
	h->name_len[i] = len;
	h->value[i] = NULL;
	h->value_len[i] = 0;
	h->n++;
	return 0;
}

static int ws_on_value(llhttp_t *p, const char *at, size_t len)
{
	struct ws_head *h = p->data;
	if (h->n == 0)
		return HPE_USER;
	size_t i = h->n - 1;
	if (h->value[i] == NULL)
		h->value[i] = at;
	h->value_len[i] = (size_t)(at + len - h->value[i]);
	return 0;
}

static int ws_on_headers_complete(llhttp_t *p)
{
	struct ws_head *h = p->data;
	h->status = llhttp_get_status_code(p);
	h->get = llhttp_get_method(p) == HTTP_GET;
	h->major = llhttp_get_http_major(p);
	h->minor = llhttp_get_http_minor(p);
	return HPE_PAUSED;
}

int rill__ws_head_parse(struct ws_head *h, const char *s, size_t len,
                        bool request)
{
	llhttp_settings_t set;
	llhttp_settings_init(&set);
	set.on_url = ws_on_url;
	set.on_header_field = ws_on_field;
	set.on_header_value = ws_on_value;
	set.on_headers_complete = ws_on_headers_complete;
	llhttp_t p;
	memset(h, 0, sizeof *h);
	llhttp_init(&p, request ? HTTP_REQUEST : HTTP_RESPONSE, &set);
	p.data = h;
	llhttp_errno_t e = llhttp_execute(&p, s, len);
	if (e != HPE_PAUSED)
		return h->too_many ? RILL_EHTTP_TOO_LARGE : RILL_EHTTP;
	/* Every span is followed by ':', CR or ' ' in the head, which the
	 * parser is done with: terminate the spans there. */
	char *w = (char *)s;
	for (size_t i = 0; i < h->n; i++) {
		if (h->value[i] == NULL)
			h->value[i] = h->name[i] + h->name_len[i];
		w[h->name[i] + h->name_len[i] - s] = '\0';
		w[h->value[i] + h->value_len[i] - s] = '\0';
	}
	if (h->url != NULL)
		w[h->url + h->url_len - s] = '\0';
	return 0;
}

bool rill__ws_head_get(const struct ws_head *h, const char *name, char *out,
                       size_t outlen)
{
	for (size_t i = 0; i < h->n; i++) {
		if (strcasecmp(h->name[i], name) != 0)
			continue;
		snprintf(out, outlen, "%s", h->value[i]);
		return true;
	}
	return false;
}

bool rill__ws_list_has(const char *list, const char *tok)
{
	size_t tl = strlen(tok);
	const char *p = list;
	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *e = p + strcspn(p, ",");
		const char *t = e;
		while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - p) == tl && tl > 0 &&
		    strncasecmp(p, tok, tl) == 0)
			return true;
		p = e;
	}
	return false;
}

void rill__ws_accept_key(const char *key, size_t len,
                         char out[WS_ACCEPT_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char buf[128];
	if (len > sizeof buf - sizeof ws_guid)
		len = sizeof buf - sizeof ws_guid;
	memcpy(buf, key, len);
	memcpy(buf + len, ws_guid, sizeof ws_guid - 1);
	if (EVP_Digest(buf, len + sizeof ws_guid - 1, md, &mdlen, EVP_sha1(),
	               NULL) != 1 ||
	    mdlen != 20) {
		memset(out, 0, WS_ACCEPT_LEN + 1);
		return;
	}
	EVP_EncodeBlock((unsigned char *)out, md, 20);
}

/* A client key: base64 of exactly 16 bytes (RFC 6455 section 4.2.1). */
static bool ws_key_ok(const char *k)
{
	unsigned char raw[24];
	if (k == NULL || strlen(k) != WS_KEY_LEN || k[22] != '=' ||
	    k[23] != '=')
		return false;
	return EVP_DecodeBlock(raw, (const unsigned char *)k, WS_KEY_LEN) == 18;
}

/* The first of ours (a list) that the client's list offers, into out. */
static void ws_pick_protocol(const char *ours, const char *offered, char *out,
                             size_t outlen)
{
	out[0] = '\0';
	if (ours == NULL || offered == NULL)
		return;
	const char *p = ours;
	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		size_t n = strcspn(p, ", ");
		if (n > 0 && n < outlen) {
			memcpy(out, p, n);
			out[n] = '\0';
			if (rill__ws_list_has(offered, out))
				return;
		}
		p += n;
	}
	out[0] = '\0';
}

static void ws_refuse(struct ws_verdict *v, int status, const char *why)
{
	v->status = status;
	v->why = why;
}

void rill__ws_check_request(const struct ws_conf *c, bool get, int minor,
                            const char *target, ws_lookup_fn get_hdr, void *ctx,
                            struct ws_verdict *v)
{
	memset(v, 0, sizeof *v);
	const char *upgrade = get_hdr(ctx, "Upgrade");
	const char *conn = get_hdr(ctx, "Connection");
	const char *key = get_hdr(ctx, "Sec-WebSocket-Key");
	const char *version = get_hdr(ctx, "Sec-WebSocket-Version");
	const char *origin = get_hdr(ctx, "Origin");
	size_t plen = target != NULL ? strcspn(target, "?") : 0;
	if (upgrade == NULL || !rill__ws_list_has(upgrade, "websocket")) {
		ws_refuse(v, 426,
		          "this is a WebSocket endpoint: "
		          "send an Upgrade: websocket request");
		return;
	}
	if (!get || minor < 1) {
		ws_refuse(v, 400,
		          "a WebSocket handshake is a GET "
		          "request of HTTP/1.1");
		return;
	}
	if (conn == NULL || !rill__ws_list_has(conn, "upgrade")) {
		ws_refuse(v, 400, "Connection: Upgrade missing");
		return;
	}
	if (get_hdr(ctx, "Host") == NULL) {
		ws_refuse(v, 400, "Host header missing");
		return;
	}
	if (version == NULL || strcmp(version, "13") != 0) {
		ws_refuse(v, 426,
		          "unsupported Sec-WebSocket-Version "
		          "(13 is supported)");
		return;
	}
	if (!ws_key_ok(key)) {
		ws_refuse(v, 400, "bad Sec-WebSocket-Key");
		return;
	}
	if (c->path != NULL && (target == NULL || strlen(c->path) != plen ||
	                        strncmp(c->path, target, plen) != 0)) {
		ws_refuse(v, 404, "no WebSocket at this path");
		return;
	}
	if (c->origin != NULL &&
	    (origin == NULL || strcmp(origin, c->origin) != 0)) {
		ws_refuse(v, 403, "Origin not allowed");
		return;
	}
	ws_pick_protocol(c->protocols, get_hdr(ctx, "Sec-WebSocket-Protocol"),
	                 v->protocol, sizeof v->protocol);
	rill__ws_accept_key(key, strlen(key), v->accept);
	v->status = 101;
}

struct rill_buf *rill__ws_response(const struct ws_verdict *v)
{
	char tmp[1024];
	int n;
	if (v->status == 101)
		n = snprintf(tmp, sizeof tmp,
		             "HTTP/1.1 101 Switching Protocols\r\n"
		             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		             "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
		             v->accept,
		             v->protocol[0] ? "Sec-WebSocket-Protocol: " : "",
		             v->protocol, v->protocol[0] ? "\r\n" : "");
	else
		n = snprintf(tmp, sizeof tmp,
		             "HTTP/1.1 %d %s\r\n%s"
		             "Content-Type: text/plain\r\n"
		             "Content-Length: %zu\r\nConnection: close\r\n\r\n"
		             "%s\n",
		             v->status, rill_http_reason(v->status),
		             v->status == 426 ? "Upgrade: websocket\r\n"
		                                "Sec-WebSocket-Version: 13\r\n"
		                              : "",
		             strlen(v->why) + 1, v->why);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return NULL;
	return rill_buf_copy(tmp, (size_t)n);
}

struct rill_buf *rill__ws_request(const struct ws_conf *c,
                                  char key[WS_KEY_LEN + 1])
{
	unsigned char raw[16];
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		return NULL;
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
	const char *path = c->path != NULL ? c->path : "/";
	const char *host = c->host != NULL ? c->host : "localhost";
	size_t len = 256 + strlen(path) + strlen(host) +
	             (c->origin ? strlen(c->origin) : 0) +
	             (c->protocols ? strlen(c->protocols) : 0);
	struct rill_buf *b = rill_buf_new(len);
	if (b == NULL)
		return NULL;
	int n = snprintf((char *)b->data, len,
	                 "GET %s HTTP/1.1\r\nHost: %s\r\n"
	                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	                 "Sec-WebSocket-Key: %s\r\n"
	                 "Sec-WebSocket-Version: 13\r\n%s%s%s%s%s%s\r\n",
	                 path, host, key, c->origin ? "Origin: " : "",
	                 c->origin ? c->origin : "", c->origin ? "\r\n" : "",
	                 c->protocols ? "Sec-WebSocket-Protocol: " : "",
	                 c->protocols ? c->protocols : "",
	                 c->protocols ? "\r\n" : "");
	b->len = (size_t)n;
	return b;
}

const char *rill__ws_check_response(const struct ws_conf *c,
                                    const struct ws_head *h, const char *key,
                                    char *proto, size_t protolen)
{
	char v[256];
	proto[0] = '\0';
	if (h->status != 101)
		return "the server did not switch protocols";
	if (!rill__ws_head_get(h, "Upgrade", v, sizeof v) ||
	    !rill__ws_list_has(v, "websocket"))
		return "no Upgrade: websocket in the answer";
	if (!rill__ws_head_get(h, "Connection", v, sizeof v) ||
	    !rill__ws_list_has(v, "upgrade"))
		return "no Connection: Upgrade in the answer";
	char want[WS_ACCEPT_LEN + 1];
	rill__ws_accept_key(key, strlen(key), want);
	if (!rill__ws_head_get(h, "Sec-WebSocket-Accept", v, sizeof v) ||
	    strcmp(v, want) != 0)
		return "wrong Sec-WebSocket-Accept";
	if (rill__ws_head_get(h, "Sec-WebSocket-Extensions", v, sizeof v))
		return "the server chose an extension that was not offered";
	if (rill__ws_head_get(h, "Sec-WebSocket-Protocol", v, sizeof v)) {
		if (c->protocols == NULL ||
		    !rill__ws_list_has(c->protocols, v) || strchr(v, ','))
			return "the server chose a subprotocol that was not "
			       "offered";
		snprintf(proto, protolen, "%s", v);
	}
	return NULL;
}
