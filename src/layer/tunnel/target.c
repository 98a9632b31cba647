/*
 * Target addresses of the tunnel layers ("HOST:PORT", "[V6]:PORT") and
 * base64 for HTTP Basic credentials: pure code (wire.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "layer/tunnel/wire.h"

bool rill__tun_name_ok(const char *s, size_t n)
{
	if (n == 0 || n >= RILL__TUN_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return false;
	}
	return true;
}

/* A decimal port 1..65535 without sign or leading zero. */
static bool tun_parse_port(const char *s, size_t n, uint16_t *port)
{
	if (n == 0 || n > 5 || s[0] == '0')
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

int rill__tun_parse_target(const char *s, size_t n, struct rill__tun_target *t,
                           const char **why)
{
	const char *host, *colon;
	size_t hlen;
	bool v6 = n > 0 && s[0] == '[';
	if (v6) {
		const char *end = memchr(s, ']', n);
		if (end == NULL || end + 1 >= s + n || end[1] != ':') {
			*why = "bad [IPv6]:PORT";
			return -1;
		}
		host = s + 1;
		hlen = (size_t)(end - host);
		colon = end + 1;
	} else {
		colon = NULL;
		for (size_t i = 0; i < n; i++)
			if (s[i] == ':')
				colon = s + i;
		if (colon == NULL) {
			*why = "missing :PORT";
			return -1;
		}
		host = s;
		hlen = (size_t)(colon - s);
	}
	if (!tun_parse_port(colon + 1, (size_t)(s + n - colon - 1), &t->port)) {
		*why = "bad port";
		return -1;
	}
	if (hlen == 0 || hlen >= RILL__TUN_HOST_MAX) {
		*why = "bad host";
		return -1;
	}
	memcpy(t->host, host, hlen);
	t->host[hlen] = '\0';
	uint8_t a[16];
	if (v6 ? inet_pton(AF_INET6, t->host, a) != 1
	       : !rill__tun_name_ok(host, hlen)) {
		*why = v6 ? "bad IPv6 address" : "bad host name";
		return -1;
	}
	return 0;
}

int rill__tun_format_target(const struct rill__tun_target *t, char *buf,
                            size_t len)
{
	bool v6 = strchr(t->host, ':') != NULL;
	int n = snprintf(buf, len, v6 ? "[%s]:%u" : "%s:%u", t->host,
	                 (unsigned)t->port);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

void rill__base64(const uint8_t *src, size_t n, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)src[i + 1] << 8;
		if (i + 2 < n)
			v |= src[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}
