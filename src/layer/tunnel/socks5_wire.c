/*
 * SOCKS5 messages (RFC 1928) and the username/password sub-negotiation
 * (RFC 1929): pure code, see wire.h.
 */
#include <arpa/inet.h>
#include <string.h>

#include "rill.h"
#include "layer/tunnel/wire.h"

int rill__socks5_parse_greeting(const uint8_t *p, size_t n, unsigned *methods,
                                const char **why)
{
	if (n < 1)
		return 0;
	if (p[0] != 5) {
		*why = "not SOCKS version 5";
		return RILL_EFRAME;
	}
	if (n < 2)
		return 0;
	if (p[1] == 0) {
		*why = "greeting offers no method";
		return RILL_EFRAME;
	}
	size_t len = 2 + (size_t)p[1];
	if (n < len)
		return 0;
	*methods = 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 8)
			*methods |= 1u << p[i];
	return (int)len;
}

int rill__socks5_parse_method(const uint8_t *p, size_t n, uint8_t *method,
                              const char **why)
{
	if (n >= 1 && p[0] != 5) {
		*why = "not SOCKS version 5";
		return RILL_EFRAME;
	}
	if (n < 2)
		return 0;
	*method = p[1];
	return 2;
}

int rill__socks5_parse_auth(const uint8_t *p, size_t n, char *user, char *pass,
                            const char **why)
{
	if (n < 1)
		return 0;
	if (p[0] != 1) {
		*why = "bad username/password version";
		return RILL_EFRAME;
	}
	if (n < 2)
		return 0;
	size_t ulen = p[1];
	if (n < 3 + ulen)
		return 0;
	size_t plen = p[2 + ulen];
	if (n < 3 + ulen + plen)
		return 0;
	memcpy(user, p + 2, ulen);
	user[ulen] = '\0';
	memcpy(pass, p + 3 + ulen, plen);
	pass[plen] = '\0';
	if (strlen(user) != ulen || strlen(pass) != plen) {
		*why = "NUL byte in username or password";
		return RILL_EFRAME;
	}
	return (int)(3 + ulen + plen);
}

size_t rill__socks5_build_auth(uint8_t *out, const char *user, const char *pass)
{
	size_t ul = strlen(user), pl = strlen(pass);
	if (ul > 255 || pl > 255)
		return 0;
	out[0] = 1;
	out[1] = (uint8_t)ul;
	memcpy(out + 2, user, ul);
	out[2 + ul] = (uint8_t)pl;
	memcpy(out + 3 + ul, pass, pl);
	return 3 + ul + pl;
}

int rill__socks5_parse_auth_reply(const uint8_t *p, size_t n, uint8_t *status,
                                  const char **why)
{
	if (n < 2)
		return 0;
	if (p[0] != 1) {
		*why = "bad username/password reply version";
		return RILL_EFRAME;
	}
	*status = p[1];
	return 2;
}

/* The address part ATYP ADDR PORT at p (n bytes): its length, 0 for more,
 * < 0 malformed. */
static int socks5_parse_addr(const uint8_t *p, size_t n,
                             struct rill__tun_target *t, bool *atyp_bad,
                             const char **why)
{
	size_t alen;
	if (n < 1)
		return 0;
	switch (p[0]) {
	case 1: alen = 4; break;
	case 4: alen = 16; break;
	case 3:
		if (n < 2)
			return 0;
		alen = 1 + (size_t)p[1];
		break;
	default:
		*atyp_bad = true;
		*why = "unknown address type";
		return RILL_EFRAME;
	}
	if (n < 1 + alen + 2)
		return 0;
	const uint8_t *a = p + 1;
	if (p[0] == 3) {
		if (!rill__tun_name_ok((const char *)a + 1, alen - 1)) {
			*why = "bad host name";
			return RILL_EFRAME;
		}
		memcpy(t->host, a + 1, alen - 1);
		t->host[alen - 1] = '\0';
	} else if (inet_ntop(p[0] == 1 ? AF_INET : AF_INET6, a, t->host,
	                     sizeof t->host) == NULL) {
		*why = "bad address";
		return RILL_EFRAME;
	}
	t->port = (uint16_t)(a[alen] << 8 | a[alen + 1]);
	return (int)(1 + alen + 2);
}

int rill__socks5_parse_request(const uint8_t *p, size_t n, uint8_t *cmd,
                               struct rill__tun_target *t, bool *atyp_bad,
                               const char **why)
{
	*atyp_bad = false;
	if (n >= 1 && p[0] != 5) {
		*why = "not SOCKS version 5";
		return RILL_EFRAME;
	}
	if (n < 3)
		return 0;
	if (p[2] != 0) {
		*why = "reserved byte not 0";
		return RILL_EFRAME;
	}
	*cmd = p[1];
	int r = socks5_parse_addr(p + 3, n - 3, t, atyp_bad, why);
	if (r <= 0)
		return r;
	if (t->port == 0) {
		*why = "port 0";
		return RILL_EFRAME;
	}
	return r + 3;
}

size_t rill__socks5_build_request(uint8_t *out,
                                  const struct rill__tun_target *t)
{
	out[0] = 5;
	out[1] = 1; /* CONNECT */
	out[2] = 0;
	size_t o;
	if (inet_pton(AF_INET, t->host, out + 4) == 1) {
		out[3] = 1;
		o = 8;
	} else if (inet_pton(AF_INET6, t->host, out + 4) == 1) {
		out[3] = 4;
		o = 20;
	} else {
		size_t hl = strlen(t->host);
		if (!rill__tun_name_ok(t->host, hl))
			return 0;
		out[3] = 3;
		out[4] = (uint8_t)hl;
		memcpy(out + 5, t->host, hl);
		o = 5 + hl;
	}
	out[o] = (uint8_t)(t->port >> 8);
	out[o + 1] = (uint8_t)t->port;
	return o + 2;
}

int rill__socks5_parse_reply(const uint8_t *p, size_t n, uint8_t *rep,
                             const char **why)
{
	if (n >= 1 && p[0] != 5) {
		*why = "not SOCKS version 5";
		return RILL_EFRAME;
	}
	if (n < 3)
		return 0;
	/* The bound address is read only to know the reply's length; a
	 * name there need not be one a client would send. */
	size_t alen;
	if (n < 4)
		return 0;
	switch (p[3]) {
	case 1: alen = 4; break;
	case 4: alen = 16; break;
	case 3:
		if (n < 5)
			return 0;
		alen = 1 + (size_t)p[4];
		break;
	default: *why = "unknown address type in the reply"; return RILL_EFRAME;
	}
	if (n < 4 + alen + 2)
		return 0;
	*rep = p[1];
	return (int)(4 + alen + 2);
}

size_t rill__socks5_build_reply(uint8_t *out, uint8_t rep)
{
	memset(out, 0, 10);
	out[0] = 5;
	out[1] = rep;
	out[3] = 1;
	return 10;
}

const char *rill__socks5_rep_name(uint8_t rep)
{
	switch (rep) {
	case RILL__SOCKS5_OK: return "succeeded";
	case RILL__SOCKS5_GENERAL: return "general SOCKS server failure";
	case RILL__SOCKS5_NOT_ALLOWED:
		return "connection not allowed by ruleset";
	case RILL__SOCKS5_NET_UNREACH: return "network unreachable";
	case RILL__SOCKS5_HOST_UNREACH: return "host unreachable";
	case RILL__SOCKS5_REFUSED: return "connection refused";
	case RILL__SOCKS5_TTL_EXPIRED: return "TTL expired";
	case RILL__SOCKS5_CMD_UNSUPPORTED: return "command not supported";
	case RILL__SOCKS5_ATYP_UNSUPPORTED: return "address type not supported";
	default: return "unknown reply code";
	}
}
