/*
 * Address parsing and formatting for vsock, AF_HYPERV, hybrid vsock and
 * HyperKit (doc/uri.md, Transports). See addr.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/hex.h"
#include "transport/vsock/addr.h"

/* Parses a decimal u32 of exactly len bytes (no sign, no spaces). */
static int vsock_addr_parse_u32(const char *s, size_t len, uint32_t *out)
{
	if (len == 0 || len > 10)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static bool vsock_addr_word(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

static const struct {
	const char *name;
	uint32_t cid;
} vsock_addr_cids[] = {
    {"any", RILL__VSOCK_CID_ANY},
    {"hypervisor", RILL__VSOCK_CID_HYPERVISOR},
    {"local", RILL__VSOCK_CID_LOCAL},
    {"host", RILL__VSOCK_CID_HOST},
};

int rill__vsock_parse(const char *rest, uint32_t *cid, uint32_t *port,
                      const char **what)
{
	*what = "address";
	if (strncmp(rest, "//", 2) != 0)
		return -1;
	const char *s = rest + 2;
	const char *colon = strchr(s, ':');
	if (colon == NULL)
		return -1;
	size_t clen = (size_t)(colon - s);
	bool named = false;
	for (size_t i = 0;
	     i < sizeof vsock_addr_cids / sizeof vsock_addr_cids[0]; i++) {
		if (vsock_addr_word(s, clen, vsock_addr_cids[i].name)) {
			*cid = vsock_addr_cids[i].cid;
			named = true;
		}
	}
	if (!named && vsock_addr_parse_u32(s, clen, cid) != 0) {
		*what = "cid";
		return -1;
	}
	const char *p = colon + 1;
	if (strcmp(p, "any") == 0) {
		*port = RILL__VSOCK_PORT_ANY;
	} else if (vsock_addr_parse_u32(p, strlen(p), port) != 0) {
		*what = "port";
		return -1;
	}
	return 0;
}

int rill__vsock_format(uint32_t cid, uint32_t port, char *buf, size_t cap)
{
	char c[16];
	const char *name = NULL;
	for (size_t i = 0;
	     i < sizeof vsock_addr_cids / sizeof vsock_addr_cids[0]; i++)
		if (vsock_addr_cids[i].cid == cid)
			name = vsock_addr_cids[i].name;
	if (name == NULL) {
		snprintf(c, sizeof c, "%u", (unsigned)cid);
		name = c;
	}
	int n = snprintf(buf, cap, "vsock://%s:%u", name, (unsigned)port);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

uint32_t rill__vsock_listener_cid(uint32_t bound, uint32_t local)
{
	if (bound != RILL__VSOCK_CID_ANY)
		return bound;
	return local != RILL__VSOCK_CID_ANY ? local : RILL__VSOCK_CID_LOCAL;
}

int rill__path_port_parse(const char *rest, char *path, size_t cap,
                          uint32_t *port, const char **what)
{
	const char *colon = strrchr(rest, ':');
	*what = "port";
	if (colon == NULL)
		return -1;
	if (vsock_addr_parse_u32(colon + 1, strlen(colon + 1), port) != 0)
		return -1;
	size_t plen = (size_t)(colon - rest);
	*what = "path";
	if (plen == 0 || plen >= cap || memchr(rest, '\0', plen) != NULL)
		return -1;
	memcpy(path, rest, plen);
	path[plen] = '\0';
	return 0;
}

/* ---------------------------------------------------------------------- */
/* GUIDs */

int rill__guid_parse(const char *s, size_t len, struct rill__guid *g)
{
	if (len == RILL__GUID_STRLEN + 2 && s[0] == '{' && s[len - 1] == '}') {
		s++;
		len -= 2;
	}
	if (len != RILL__GUID_STRLEN)
		return -1;
	/* 32 hex digits in groups 8-4-4-4-12. */
	uint8_t b[16];
	size_t nb = 0;
	for (size_t i = 0; i < len;) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			i++;
			continue;
		}
		int hi = rill__hex_digit(s[i]), lo = rill__hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0 || i + 1 == 8 || i + 1 == 13 ||
		    i + 1 == 18 || i + 1 == 23)
			return -1;
		b[nb++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	if (nb != 16)
		return -1;
	g->data1 = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	           (uint32_t)b[2] << 8 | b[3];
	g->data2 = (uint16_t)(b[4] << 8 | b[5]);
	g->data3 = (uint16_t)(b[6] << 8 | b[7]);
	memcpy(g->data4, b + 8, 8);
	return 0;
}

void rill__guid_format(const struct rill__guid *g, char *buf)
{
	snprintf(buf, RILL__GUID_STRLEN + 1,
	         "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         (unsigned)g->data1, (unsigned)g->data2, (unsigned)g->data3,
	         g->data4[0], g->data4[1], g->data4[2], g->data4[3],
	         g->data4[4], g->data4[5], g->data4[6], g->data4[7]);
}

bool rill__guid_equal(const struct rill__guid *a, const struct rill__guid *b)
{
	return a->data1 == b->data1 && a->data2 == b->data2 &&
	       a->data3 == b->data3 && memcmp(a->data4, b->data4, 8) == 0;
}

/* The template of port-mapped service GUIDs: <port>-FACB-11E6-BD58-
 * 64006A7986D3 (ocaml-hvsock, Linux hv_sock, doc/uri.md). */
static const struct rill__guid vsock_addr_service_template = {
    0, 0xFACB, 0x11E6, {0xBD, 0x58, 0x64, 0x00, 0x6A, 0x79, 0x86, 0xD3}};

void rill__hvsock_service_of_port(uint32_t port, struct rill__guid *g)
{
	*g = vsock_addr_service_template;
	g->data1 = port;
}

int rill__hvsock_port_of_service(const struct rill__guid *g, uint32_t *port)
{
	struct rill__guid t = vsock_addr_service_template;
	t.data1 = g->data1;
	if (!rill__guid_equal(&t, g))
		return -1;
	*port = g->data1;
	return 0;
}

static const struct {
	const char *name;
	const char *guid;
} vsock_addr_vms[] = {
    {"wildcard", "00000000-0000-0000-0000-000000000000"},
    {"children", "90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd"},
    {"loopback", "e0e16197-dd56-4a10-9195-5ee7a155a838"},
    {"parent", "a42e7cda-d03f-480c-9cc2-a4de20abb878"},
};

int rill__hvsock_vm_by_name(const char *name, size_t len, struct rill__guid *g)
{
	for (size_t i = 0; i < sizeof vsock_addr_vms / sizeof vsock_addr_vms[0];
	     i++)
		if (vsock_addr_word(name, len, vsock_addr_vms[i].name))
			return rill__guid_parse(vsock_addr_vms[i].guid,
			                        RILL__GUID_STRLEN, g);
	return -1;
}

const char *rill__hvsock_vm_name(const struct rill__guid *g)
{
	for (size_t i = 0; i < sizeof vsock_addr_vms / sizeof vsock_addr_vms[0];
	     i++) {
		struct rill__guid w;
		if (rill__guid_parse(vsock_addr_vms[i].guid, RILL__GUID_STRLEN,
		                     &w) == 0 &&
		    rill__guid_equal(&w, g))
			return vsock_addr_vms[i].name;
	}
	return NULL;
}

int rill__hvsock_parse(const char *rest, struct rill__guid *vm,
                       struct rill__guid *service, const char **what)
{
	*what = "address";
	if (strncmp(rest, "//", 2) != 0)
		return -1;
	const char *s = rest + 2;
	const char *slash = strchr(s, '/');
	if (slash == NULL)
		return -1;
	size_t vlen = (size_t)(slash - s);
	*what = "vm";
	if (rill__hvsock_vm_by_name(s, vlen, vm) != 0 &&
	    rill__guid_parse(s, vlen, vm) != 0)
		return -1;
	const char *sv = slash + 1;
	size_t slen = strlen(sv);
	uint32_t port;
	*what = "service";
	if (vsock_addr_parse_u32(sv, slen, &port) == 0)
		rill__hvsock_service_of_port(port, service);
	else if (rill__guid_parse(sv, slen, service) != 0)
		return -1;
	return 0;
}

int rill__hvsock_format(const struct rill__guid *vm,
                        const struct rill__guid *service, char *buf, size_t cap)
{
	char v[RILL__GUID_STRLEN + 1], sv[RILL__GUID_STRLEN + 1];
	const char *vname = rill__hvsock_vm_name(vm);
	if (vname == NULL) {
		rill__guid_format(vm, v);
		vname = v;
	}
	uint32_t port;
	if (rill__hvsock_port_of_service(service, &port) == 0)
		snprintf(sv, sizeof sv, "%u", (unsigned)port);
	else
		rill__guid_format(service, sv);
	int n = snprintf(buf, cap, "hvsock://%s/%s", vname, sv);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

static void vsock_addr_put_guid(uint8_t *p, const struct rill__guid *g)
{
	/* Windows GUID in memory: Data1..3 little-endian, Data4 as is. */
	p[0] = (uint8_t)g->data1;
	p[1] = (uint8_t)(g->data1 >> 8);
	p[2] = (uint8_t)(g->data1 >> 16);
	p[3] = (uint8_t)(g->data1 >> 24);
	p[4] = (uint8_t)g->data2;
	p[5] = (uint8_t)(g->data2 >> 8);
	p[6] = (uint8_t)g->data3;
	p[7] = (uint8_t)(g->data3 >> 8);
	memcpy(p + 8, g->data4, 8);
}

void rill__hvsock_sockaddr(const struct rill__guid *vm,
                           const struct rill__guid *service, uint8_t *out)
{
	out[0] = RILL__AF_HYPERV;
	out[1] = 0;
	out[2] = 0;
	out[3] = 0;
	vsock_addr_put_guid(out + 4, vm);
	vsock_addr_put_guid(out + 20, service);
}

/* ---------------------------------------------------------------------- */
/* The hybrid-vsock CONNECT reply */

int rill__hybrid_parse_reply(const uint8_t *buf, size_t len,
                             uint32_t *host_port)
{
	/* Check every byte seen so far against "OK <digits>\n", so that a
	 * wrong reply fails at once instead of waiting for a newline. */
	static const char ok[] = "OK ";
	size_t i = 0;
	for (; i < len && i < 3; i++)
		if (buf[i] != (uint8_t)ok[i])
			return -1;
	size_t d0 = i;
	for (; i < len && i < RILL__HYBRID_REPLY_MAX; i++) {
		if (buf[i] == '\n')
			break;
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
	}
	if (i == RILL__HYBRID_REPLY_MAX)
		return -2;
	if (i == len)
		return 0;
	/* buf[i] is the newline. */
	if (i == d0 || d0 < 3 ||
	    vsock_addr_parse_u32((const char *)buf + d0, i - d0, host_port) !=
	        0)
		return -1;
	return (int)(i + 1);
}

void rill__escape(const uint8_t *buf, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	if (cap == 0)
		return;
	for (size_t i = 0; i < len; i++) {
		char tmp[8];
		uint8_t c = buf[i];
		if (c == '\n')
			snprintf(tmp, sizeof tmp, "\\n");
		else if (c == '\r')
			snprintf(tmp, sizeof tmp, "\\r");
		else if (c == '\\' || c == '"')
			snprintf(tmp, sizeof tmp, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			snprintf(tmp, sizeof tmp, "\\x%02x", c);
		else
			snprintf(tmp, sizeof tmp, "%c", c);
		size_t tl = strlen(tmp);
		if (o + tl + 4 > cap) {
			if (o + 4 <= cap) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(out + o, tmp, tl);
		o += tl;
	}
	out[o] = '\0';
}
