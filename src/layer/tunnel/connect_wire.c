/*
 * HTTP CONNECT heads (RFC 9110 section 9.3.6; message syntax RFC 9112):
 * pure code, see wire.h. Only what a CONNECT needs, parsed strictly: the
 * request or status line, then header fields as token ":" value, each
 * line ended by CRLF; no obsolete line folding, no control bytes. The
 * head ends at the first empty line: bytes after it belong to the tunnel.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "rill.h"
#include "layer/tunnel/wire.h"

/* RFC 9110 section 5.6.2 tchar. */
static bool cw_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The length of the head up to and including its empty line; 0 when
 * incomplete; -EMSGSIZE beyond the limit. */
static int cw_head_len(const uint8_t *p, size_t n, const char **why)
{
	size_t lim = n < RILL__CONNECT_HEAD_MAX ? n : RILL__CONNECT_HEAD_MAX;
	for (size_t i = 3; i < lim; i++)
		if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' &&
		    p[i - 3] == '\r')
			return (int)(i + 1);
	if (n >= RILL__CONNECT_HEAD_MAX) {
		*why = "head too long";
		return -EMSGSIZE;
	}
	return 0;
}

/* One line [p, end) without its CRLF: the position of its CRLF, or NULL
 * when a bare CR or LF is inside. */
static const uint8_t *cw_line_end(const uint8_t *p, const uint8_t *end)
{
	for (const uint8_t *q = p; q + 1 < end; q++) {
		if (q[0] == '\r' && q[1] == '\n')
			return q;
		if (q[0] == '\r' || q[0] == '\n' || q[0] == 0)
			return NULL;
	}
	return NULL;
}

/*
 * Header fields from p up to the empty line at the end of the head.
 * want (may be NULL) names one field whose value goes to val.
 */
static int cw_fields(const uint8_t *p, const uint8_t *end, const char *want,
                     char *val, size_t val_len, const char **why)
{
	if (val != NULL && val_len > 0)
		val[0] = '\0';
	for (;;) {
		const uint8_t *eol = cw_line_end(p, end);
		if (eol == NULL) {
			*why = "bare CR, LF or NUL in the head";
			return RILL_EFRAME;
		}
		if (eol == p)
			return 0; /* the empty line */
		const uint8_t *q = p;
		while (q < eol && cw_tchar(*q))
			q++;
		if (q == p || q == eol || *q != ':') {
			*why = "malformed header field";
			return RILL_EFRAME;
		}
		size_t nlen = (size_t)(q - p);
		q++;
		while (q < eol && (*q == ' ' || *q == '\t'))
			q++;
		const uint8_t *v = q, *ve = eol;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const uint8_t *c = v; c < ve; c++)
			if ((*c < 0x20 && *c != '\t') || *c == 0x7f) {
				*why = "control byte in a header field";
				return RILL_EFRAME;
			}
		if (want != NULL && strlen(want) == nlen &&
		    strncasecmp((const char *)p, want, nlen) == 0) {
			size_t vl = (size_t)(ve - v);
			if (vl >= val_len) {
				*why = "header field too long";
				return RILL_EFRAME;
			}
			memcpy(val, v, vl);
			val[vl] = '\0';
		}
		p = eol + 2;
	}
}

/* "HTTP/1.x" at p (8 bytes available). */
static bool cw_version(const uint8_t *p)
{
	return memcmp(p, "HTTP/1.", 7) == 0 && (p[7] == '0' || p[7] == '1');
}

int rill__connect_parse_request(const uint8_t *p, size_t n, bool *is_connect,
                                struct rill__tun_target *t, char *auth,
                                size_t auth_len, const char **why)
{
	int len = cw_head_len(p, n, why);
	if (len <= 0)
		return len;
	const uint8_t *end = p + len;
	const uint8_t *eol = cw_line_end(p, end);
	if (eol == NULL) {
		*why = "bare CR, LF or NUL in the request line";
		return RILL_EFRAME;
	}
	const uint8_t *sp1 = memchr(p, ' ', (size_t)(eol - p));
	const uint8_t *sp2 =
	    sp1 != NULL ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (sp1 == NULL || sp2 == NULL || sp1 == p || eol - sp2 != 9 ||
	    !cw_version(sp2 + 1)) {
		*why = "malformed request line";
		return RILL_EFRAME;
	}
	for (const uint8_t *c = p; c < sp1; c++)
		if (!cw_tchar(*c)) {
			*why = "malformed method";
			return RILL_EFRAME;
		}
	*is_connect = sp1 - p == 7 && memcmp(p, "CONNECT", 7) == 0;
	if (*is_connect &&
	    rill__tun_parse_target((const char *)sp1 + 1,
	                           (size_t)(sp2 - sp1 - 1), t, why) != 0)
		return RILL_EFRAME;
	int r =
	    cw_fields(eol + 2, end, "Proxy-Authorization", auth, auth_len, why);
	return r < 0 ? r : len;
}

int rill__connect_parse_response(const uint8_t *p, size_t n, int *status,
                                 char *reason, size_t reason_len,
                                 const char **why)
{
	int len = cw_head_len(p, n, why);
	if (len <= 0)
		return len;
	const uint8_t *end = p + len;
	const uint8_t *eol = cw_line_end(p, end);
	if (eol == NULL || eol - p < 12 || !cw_version(p) || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9' || (eol - p > 12 && p[12] != ' ')) {
		*why = "malformed status line";
		return RILL_EFRAME;
	}
	*status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	const uint8_t *r = eol - p > 12 ? p + 13 : eol;
	size_t rl = (size_t)(eol - r);
	if (rl >= reason_len)
		rl = reason_len - 1;
	for (size_t i = 0; i < rl; i++)
		reason[i] = r[i] >= 0x20 && r[i] < 0x7f ? (char)r[i] : '?';
	reason[rl] = '\0';
	int f = cw_fields(eol + 2, end, NULL, NULL, 0, why);
	return f < 0 ? f : len;
}
