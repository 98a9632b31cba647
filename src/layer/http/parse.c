/*
 * Collecting a message head: llhttp's span callbacks write the URL and
 * header fields into the connection's arena (bounded by the configured
 * limits), and pause the parser at every point where the connection must
 * wait for its user. Also the parser run itself.
 * See http_internal.h for the layer's design.
 */
#include <string.h>
#include <strings.h>

#include "layer/http/http_internal.h"

static struct http_conn *http_conn_of(llhttp_t *p)
{
	return p->data;
}

static bool http_head_append(struct http_head *h, const char *at, size_t len)
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

static bool http_head_terminate(struct http_head *h)
{
	return http_head_append(h, "", 1);
}

void rill__http_head_reset(struct http_head *h)
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

static int http_on_message_begin(llhttp_t *p)
{
	struct http_conn *c = http_conn_of(p);
	rill__http_head_reset(&c->head);
	c->body_done = false;
	c->body_bytes = 0;
	return 0;
}

static int http_on_url(llhttp_t *p, const char *at, size_t len)
{
	struct http_head *h = &http_conn_of(p)->head;
	if (h->url_len == 0)
		h->url = (uint32_t)h->used;
	h->url_len += (uint32_t)len;
	return http_head_append(h, at, len) ? 0 : -1;
}

static int http_on_url_complete(llhttp_t *p)
{
	struct http_head *h = &http_conn_of(p)->head;
	if (h->url_len == 0)
		h->url = (uint32_t)h->used;
	return http_head_terminate(h) ? 0 : -1;
}

static int http_on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http_head *h = &http_conn_of(p)->head;
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
	return http_head_append(h, at, len) ? 0 : -1;
}

static int http_on_header_field_complete(llhttp_t *p)
{
	struct http_conn *c = http_conn_of(p);
	struct http_head *h = &c->head;
	if (!http_head_terminate(h))
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

static int http_on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http_head *h = &http_conn_of(p)->head;
	h->hdrs[h->n].value_len += (uint32_t)len;
	return http_head_append(h, at, len) ? 0 : -1;
}

static int http_on_header_value_complete(llhttp_t *p)
{
	struct http_conn *c = http_conn_of(p);
	struct http_head *h = &c->head;
	if (!http_head_terminate(h))
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

const char *rill__http_head_get(const struct http_head *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcasecmp(h->arena + h->hdrs[i].name, name) == 0)
			return h->arena + h->hdrs[i].value;
	return NULL;
}

static int http_on_headers_complete(llhttp_t *p)
{
	struct http_conn *c = http_conn_of(p);
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

static int http_on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http_conn *c = http_conn_of(p);
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

static int http_on_message_complete(llhttp_t *p)
{
	struct http_conn *c = http_conn_of(p);
	if (c->role == ROLE_CLIENT && p->status_code >= 100 &&
	    p->status_code < 200 && p->status_code != 101)
		return 0; /* the end of an informational response */
	c->ev_msg_end = true;
	return HPE_PAUSED;
}

const llhttp_settings_t rill__http_settings = {
    .on_message_begin = http_on_message_begin,
    .on_url = http_on_url,
    .on_url_complete = http_on_url_complete,
    .on_header_field = http_on_header_field,
    .on_header_field_complete = http_on_header_field_complete,
    .on_header_value = http_on_header_value,
    .on_header_value_complete = http_on_header_value_complete,
    .on_headers_complete = http_on_headers_complete,
    .on_body = http_on_body,
    .on_message_complete = http_on_message_complete,
};

/* Maps an llhttp failure to the status the server answers with. */
int rill__http_error_status(struct http_conn *c, llhttp_errno_t e)
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
llhttp_errno_t rill__http_parse(struct http_conn *c)
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
		/* Upgrades (and CONNECT) are not supported: what follows
		 * is not HTTP. Drop it; the connection closes after the
		 * response. llhttp stays in this state, so every later
		 * input is dropped the same way. */
		used = len;
		c->keep_alive = false;
		if (!c->body_done)
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
