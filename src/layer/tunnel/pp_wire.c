/*
 * The PROXY protocol, versions 1 and 2, as HAProxy's
 * doc/proxy-protocol.txt specifies it: pure code, see wire.h.
 *
 * v1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN...\r\n",
 *     at most 107 bytes, fields separated by exactly one space.
 * v2: the 12-byte signature, ver_cmd (0x20 LOCAL, 0x21 PROXY), fam
 *     (0x11 TCP/IPv4, 0x21 TCP/IPv6, 0x31 UNIX stream, 0x00 UNSPEC), a
 *     16-bit big-endian length, the addresses, then TLVs (type, 16-bit
 *     length, value) that must fill the rest exactly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"
#include "layer/tunnel/wire.h"

static const uint8_t pp2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static uint16_t pp_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t pp_be32(const uint8_t *p)
{
	return (uint32_t)pp_be16(p) << 16 | pp_be16(p + 2);
}

static void pp_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void pp_put32(uint8_t *p, uint32_t v)
{
	pp_put16(p, (uint16_t)(v >> 16));
	pp_put16(p + 2, (uint16_t)v);
}

/* A v1 port: decimal 0..65535, no sign, no leading zero. */
static bool pp1_port(const char *s, uint16_t *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = (uint16_t)v;
	return v <= 65535;
}

static int pp1_parse(const uint8_t *p, size_t n, struct rill__pp_addrs *a,
                     const char **why)
{
	static const char pre[] = "PROXY ";
	size_t cmp = n < 6 ? n : 6;
	if (memcmp(p, pre, cmp) != 0) {
		*why = "not a PROXY protocol header";
		return RILL_EFRAME;
	}
	size_t lim = n < RILL__PP1_MAX ? n : RILL__PP1_MAX;
	const uint8_t *lf = memchr(p, '\n', lim);
	if (lf == NULL) {
		if (n >= RILL__PP1_MAX) {
			*why = "v1 line longer than 107 bytes";
			return RILL_EFRAME;
		}
		return 0;
	}
	size_t len = (size_t)(lf - p) + 1;
	if (len < 8 || lf[-1] != '\r') {
		*why = "v1 line not ended by CRLF";
		return RILL_EFRAME;
	}
	char line[RILL__PP1_MAX + 1];
	memcpy(line, p, len - 2);
	line[len - 2] = '\0';
	memset(a, 0, sizeof *a);
	if (strncmp(line + 6, "UNKNOWN", 7) == 0 &&
	    (line[13] == '\0' || line[13] == ' ')) {
		a->family = RILL__PP_LOCAL;
		return (int)len;
	}
	/* Exactly five fields after "PROXY ", one space apart. */
	char *f[5];
	char *s = line + 6;
	for (int i = 0; i < 5; i++) {
		f[i] = s;
		char *sp = strchr(s, ' ');
		if ((sp == NULL) != (i == 4) || sp == s) {
			*why = "v1 fields malformed";
			return RILL_EFRAME;
		}
		if (sp != NULL) {
			*sp = '\0';
			s = sp + 1;
		}
	}
	if (*f[4] == '\0') {
		*why = "v1 fields malformed";
		return RILL_EFRAME;
	}
	int af;
	if (strcmp(f[0], "TCP4") == 0) {
		af = AF_INET;
		a->family = RILL__PP_INET;
	} else if (strcmp(f[0], "TCP6") == 0) {
		af = AF_INET6;
		a->family = RILL__PP_INET6;
	} else {
		*why = "v1 protocol not TCP4, TCP6 or UNKNOWN";
		return RILL_EFRAME;
	}
	if (inet_pton(af, f[1], a->src) != 1 ||
	    inet_pton(af, f[2], a->dst) != 1) {
		*why = "v1 address malformed";
		return RILL_EFRAME;
	}
	if (!pp1_port(f[3], &a->src_port) || !pp1_port(f[4], &a->dst_port)) {
		*why = "v1 port malformed";
		return RILL_EFRAME;
	}
	return (int)len;
}

/* The TLVs of a v2 header in [p, end): each must fit exactly. */
static int pp2_tlvs(const uint8_t *p, const uint8_t *end,
                    struct rill__pp_addrs *a, const char **why)
{
	while (p < end) {
		if (end - p < 3) {
			*why = "v2 TLV truncated";
			return RILL_EFRAME;
		}
		size_t vl = pp_be16(p + 1);
		if ((size_t)(end - p - 3) < vl) {
			*why = "v2 TLV longer than the header";
			return RILL_EFRAME;
		}
		if (p[0] == RILL__PP2_TYPE_VSOCK &&
		    a->family == RILL__PP_LOCAL) {
			if (vl != 16) {
				*why = "v2 vsock TLV not 16 bytes";
				return RILL_EFRAME;
			}
			a->family = RILL__PP_VSOCK;
			a->src_cid = pp_be32(p + 3);
			a->src_vport = pp_be32(p + 7);
			a->dst_cid = pp_be32(p + 11);
			a->dst_vport = pp_be32(p + 15);
		}
		p += 3 + vl;
	}
	return 0;
}

/* A v2 unix path (108 bytes, up to the first NUL) without control
 * characters: it becomes the flow's address, which logs print. */
static bool pp2_path_ok(const uint8_t *p)
{
	for (size_t i = 0; i < 108 && p[i] != 0; i++)
		if (p[i] < 0x20 || p[i] == 0x7F)
			return false;
	return true;
}

static int pp2_parse(const uint8_t *p, size_t n, struct rill__pp_addrs *a,
                     const char **why)
{
	size_t cmp = n < 12 ? n : 12;
	if (memcmp(p, pp2_sig, cmp) != 0) {
		*why = "not a PROXY protocol header";
		return RILL_EFRAME;
	}
	if (n < 16)
		return 0;
	size_t len = 16 + (size_t)pp_be16(p + 14);
	if ((p[12] & 0xF0) != 0x20 || (p[12] & 0x0F) > 1) {
		*why = "v2 version or command unknown";
		return RILL_EFRAME;
	}
	if (len > RILL__PP2_MAX) {
		*why = "v2 header longer than rill takes (2048 bytes)";
		return -EMSGSIZE;
	}
	if (n < len)
		return 0;
	memset(a, 0, sizeof *a);
	bool local = (p[12] & 0x0F) == 0;
	uint8_t fam = p[13] >> 4, proto = p[13] & 0x0F;
	size_t alen;
	switch (fam) {
	case 0: alen = 0; break;
	case 1: alen = 12; break;
	case 2: alen = 36; break;
	case 3: alen = 216; break;
	default: *why = "v2 address family unknown"; return RILL_EFRAME;
	}
	if (len - 16 < alen) {
		*why = "v2 addresses longer than the header";
		return RILL_EFRAME;
	}
	if (!local && fam != 0 && proto != 1) {
		*why = "v2 transport not a stream";
		return RILL_EFRAME;
	}
	const uint8_t *ad = p + 16;
	if (!local && fam == 1) {
		a->family = RILL__PP_INET;
		memcpy(a->src, ad, 4);
		memcpy(a->dst, ad + 4, 4);
		a->src_port = pp_be16(ad + 8);
		a->dst_port = pp_be16(ad + 10);
	} else if (!local && fam == 2) {
		a->family = RILL__PP_INET6;
		memcpy(a->src, ad, 16);
		memcpy(a->dst, ad + 16, 16);
		a->src_port = pp_be16(ad + 32);
		a->dst_port = pp_be16(ad + 34);
	} else if (!local && fam == 3) {
		if (!pp2_path_ok(ad) || !pp2_path_ok(ad + 108)) {
			*why = "v2 unix path with a control character";
			return RILL_EFRAME;
		}
		a->family = RILL__PP_UNIX;
		memcpy(a->src_path, ad, 108);
		memcpy(a->dst_path, ad + 108, 108);
	}
	int r = pp2_tlvs(ad + alen, p + len, a, why);
	if (local)
		a->family = RILL__PP_LOCAL;
	return r < 0 ? r : (int)len;
}

int rill__pp_parse(const uint8_t *p, size_t n, struct rill__pp_addrs *a,
                   int *version, const char **why)
{
	if (n == 0)
		return 0;
	if (p[0] == 'P') {
		*version = 1;
		return pp1_parse(p, n, a, why);
	}
	if (p[0] == 0x0D) {
		*version = 2;
		return pp2_parse(p, n, a, why);
	}
	*why = "not a PROXY protocol header";
	return RILL_EFRAME;
}

static size_t pp1_build(const struct rill__pp_addrs *a, uint8_t *out)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	int af = a->family == RILL__PP_INET ? AF_INET : AF_INET6;
	if ((a->family != RILL__PP_INET && a->family != RILL__PP_INET6) ||
	    inet_ntop(af, a->src, s, sizeof s) == NULL ||
	    inet_ntop(af, a->dst, d, sizeof d) == NULL) {
		memcpy(out, "PROXY UNKNOWN\r\n", 15);
		return 15;
	}
	int n =
	    snprintf((char *)out, RILL__PP1_MAX + 1, "PROXY %s %s %s %u %u\r\n",
	             af == AF_INET ? "TCP4" : "TCP6", s, d,
	             (unsigned)a->src_port, (unsigned)a->dst_port);
	return (size_t)n;
}

size_t rill__pp_build(int version, const struct rill__pp_addrs *a, uint8_t *out)
{
	if (version == 1)
		return pp1_build(a, out);
	memcpy(out, pp2_sig, 12);
	out[12] = a->family == RILL__PP_LOCAL ? 0x20 : 0x21;
	uint8_t *ad = out + 16;
	size_t alen = 0;
	switch (a->family) {
	case RILL__PP_INET:
		out[13] = 0x11;
		memcpy(ad, a->src, 4);
		memcpy(ad + 4, a->dst, 4);
		pp_put16(ad + 8, a->src_port);
		pp_put16(ad + 10, a->dst_port);
		alen = 12;
		break;
	case RILL__PP_INET6:
		out[13] = 0x21;
		memcpy(ad, a->src, 16);
		memcpy(ad + 16, a->dst, 16);
		pp_put16(ad + 32, a->src_port);
		pp_put16(ad + 34, a->dst_port);
		alen = 36;
		break;
	case RILL__PP_UNIX:
		out[13] = 0x31;
		memset(ad, 0, 216);
		memcpy(ad, a->src_path, strnlen(a->src_path, 108));
		memcpy(ad + 108, a->dst_path, strnlen(a->dst_path, 108));
		alen = 216;
		break;
	case RILL__PP_VSOCK:
		out[13] = 0x00;
		ad[0] = RILL__PP2_TYPE_VSOCK;
		pp_put16(ad + 1, 16);
		pp_put32(ad + 3, a->src_cid);
		pp_put32(ad + 7, a->src_vport);
		pp_put32(ad + 11, a->dst_cid);
		pp_put32(ad + 15, a->dst_vport);
		alen = 19;
		break;
	default: out[13] = 0x00; break;
	}
	pp_put16(out + 14, (uint16_t)alen);
	return 16 + alen;
}

/* A vsock CID or port as rill prints it: decimal or a well-known name. */
static bool pp_vsock_num(const char *s, size_t n, uint32_t *out)
{
	static const struct {
		const char *name;
		uint32_t v;
	} names[] = {
	    {"any", 0xFFFFFFFFu}, {"hypervisor", 0}, {"local", 1}, {"host", 2}};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strlen(names[i].name) == n &&
		    memcmp(s, names[i].name, n) == 0) {
			*out = names[i].v;
			return true;
		}
	if (n == 0 || n > 10)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = (uint32_t)v;
	return v <= 0xFFFFFFFFu;
}

enum rill__pp_family rill__pp_parse_address(const char *s,
                                            struct rill__pp_addrs *a, int side)
{
	if (s == NULL)
		return RILL__PP_LOCAL;
	uint8_t *ip = side == 0 ? a->src : a->dst;
	if (strncmp(s, "tcp://", 6) == 0) {
		const char *h = s + 6, *colon = strrchr(h, ':');
		char host[INET6_ADDRSTRLEN + 2];
		size_t hl = colon != NULL ? (size_t)(colon - h) : 0;
		uint16_t port;
		if (hl == 0 || hl >= sizeof host || !pp1_port(colon + 1, &port))
			return RILL__PP_LOCAL;
		memcpy(host, h, hl);
		host[hl] = '\0';
		*(side == 0 ? &a->src_port : &a->dst_port) = port;
		if (host[0] == '[' && host[hl - 1] == ']') {
			host[hl - 1] = '\0';
			return inet_pton(AF_INET6, host + 1, ip) == 1
			           ? RILL__PP_INET6
			           : RILL__PP_LOCAL;
		}
		return inet_pton(AF_INET, host, ip) == 1 ? RILL__PP_INET
		                                         : RILL__PP_LOCAL;
	}
	if (strncmp(s, "vsock://", 8) == 0) {
		const char *c = s + 8, *colon = strchr(c, ':');
		uint32_t cid, port;
		if (colon == NULL ||
		    !pp_vsock_num(c, (size_t)(colon - c), &cid) ||
		    !pp_vsock_num(colon + 1, strlen(colon + 1), &port))
			return RILL__PP_LOCAL;
		*(side == 0 ? &a->src_cid : &a->dst_cid) = cid;
		*(side == 0 ? &a->src_vport : &a->dst_vport) = port;
		return RILL__PP_VSOCK;
	}
	if (strncmp(s, "unix:", 5) == 0 && strlen(s + 5) < 108) {
		snprintf(side == 0 ? a->src_path : a->dst_path, 109, "%s",
		         s + 5);
		return RILL__PP_UNIX;
	}
	return RILL__PP_LOCAL;
}

/* An IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d), in place. */
static void pp_map6(uint8_t *ip)
{
	uint8_t v4[4];
	memcpy(v4, ip, 4);
	memset(ip, 0, 10);
	ip[10] = ip[11] = 0xFF;
	memcpy(ip + 12, v4, 4);
}

void rill__pp_addrs_from(const char *src, const char *dst,
                         struct rill__pp_addrs *a)
{
	memset(a, 0, sizeof *a);
	enum rill__pp_family fs = rill__pp_parse_address(src, a, 0);
	enum rill__pp_family fd = rill__pp_parse_address(dst, a, 1);
	if (fs == fd) {
		a->family = fs;
	} else if ((fs == RILL__PP_INET && fd == RILL__PP_INET6) ||
	           (fs == RILL__PP_INET6 && fd == RILL__PP_INET)) {
		pp_map6(fs == RILL__PP_INET ? a->src : a->dst);
		a->family = RILL__PP_INET6;
	} else {
		memset(a, 0, sizeof *a);
	}
}

int rill__pp_format_address(const struct rill__pp_addrs *a, int side, char *buf,
                            size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	int n;
	switch (a->family) {
	case RILL__PP_INET:
	case RILL__PP_INET6:
		if (inet_ntop(a->family == RILL__PP_INET ? AF_INET : AF_INET6,
		              side == 0 ? a->src : a->dst, ip,
		              sizeof ip) == NULL)
			return -ENOTSUP;
		n = snprintf(buf, len,
		             a->family == RILL__PP_INET ? "tcp://%s:%u"
		                                        : "tcp://[%s]:%u",
		             ip,
		             (unsigned)(side == 0 ? a->src_port : a->dst_port));
		break;
	case RILL__PP_VSOCK:
		n = snprintf(buf, len, "vsock://%u:%u",
		             side == 0 ? a->src_cid : a->dst_cid,
		             side == 0 ? a->src_vport : a->dst_vport);
		break;
	case RILL__PP_UNIX: {
		const char *p = side == 0 ? a->src_path : a->dst_path;
		n = snprintf(buf, len, "unix:%.*s", (int)strnlen(p, 108), p);
		break;
	}
	default: return -ENOTSUP;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}
