/*
 * Peer identities (rill_flow_peer: what the kernel says about the other
 * end of a socket flow) and peer patterns (rill_peer_pattern_parse: the
 * allowlist syntax of rill relay --allow, an untrusted string).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

#include "core/core.h"

/* ---------------------------------------------------------------------- */
/* Identities */

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void peer_from_sockaddr(const struct sockaddr_storage *ss,
                               struct rill_peer *out)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		out->kind = RILL_PEER_IP;
		memcpy(out->addr, &in->sin_addr, 4);
		out->port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		out->kind = RILL_PEER_IP;
		out->port = ntohs(in6->sin6_port);
		/* An IPv4 client of a dual-stack listener: name it as IPv4,
		 * so that IPv4 patterns apply to it. */
		if (memcmp(in6->sin6_addr.s6_addr, v4_mapped, 12) == 0) {
			memcpy(out->addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			out->ipv6 = true;
			memcpy(out->addr, in6->sin6_addr.s6_addr, 16);
		}
	} else if (ss->ss_family == AF_VSOCK) {
		const struct sockaddr_vm *vm = (const void *)ss;
		out->kind = RILL_PEER_VSOCK;
		out->cid = vm->svm_cid;
		out->port = vm->svm_port;
	}
}

int rill_flow_peer(struct rill_flow *f, struct rill_peer *out)
{
	if (f == NULL || out == NULL)
		return RILL_EINVAL;
	memset(out, 0, sizeof *out);
	if (rill_flow_is_closed(f))
		return RILL_ECLOSED;
	int fd = rill__flow_fd(rill__flow_bottom(f));
	if (fd < 0)
		return 0; /* not a socket: RILL_PEER_UNKNOWN */
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	memset(&ss, 0, sizeof ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return -errno;
	if (ss.ss_family == AF_UNIX) {
		struct ucred cr;
		socklen_t cl = sizeof cr;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0)
			return -errno;
		out->kind = RILL_PEER_UNIX;
		out->uid = cr.uid;
		out->gid = cr.gid;
		out->pid = cr.pid;
		return 0;
	}
	peer_from_sockaddr(&ss, out);
	return 0;
}

int rill_peer_format(const struct rill_peer *p, char *buf, size_t len)
{
	if (p == NULL || buf == NULL || len == 0)
		return RILL_EINVAL;
	char tmp[INET6_ADDRSTRLEN + 16];
	switch (p->kind) {
	case RILL_PEER_IP:
		if (inet_ntop(p->ipv6 ? AF_INET6 : AF_INET, p->addr, tmp,
		              sizeof tmp) == NULL)
			snprintf(tmp, sizeof tmp, "?");
		break;
	case RILL_PEER_VSOCK:
		snprintf(tmp, sizeof tmp, "cid=%" PRIu32, p->cid);
		break;
	case RILL_PEER_UNIX:
		snprintf(tmp, sizeof tmp, "uid=%" PRIu32, p->uid);
		break;
	default: snprintf(tmp, sizeof tmp, "unknown");
	}
	size_t n = strlen(tmp);
	if (n >= len)
		return -ENOSPC;
	memcpy(buf, tmp, n + 1);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Patterns */

/* The longest pattern worth reading: an IPv6 address with an IPv4 tail,
 * brackets and a prefix fit well within it. */
#define PATTERN_MAX 64

static int pattern_error(const char *text, const char *why)
{
	/* The text is untrusted: print at most PATTERN_MAX bytes of it,
	 * control characters escaped. */
	char shown[PATTERN_MAX * 4 + 4];
	size_t o = 0;
	for (size_t i = 0; i < PATTERN_MAX && text[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)text[i];
		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			shown[o++] = (char)ch;
		else
			o += (size_t)snprintf(shown + o, sizeof shown - o,
			                      "\\x%02x", ch);
	}
	if (strlen(text) > PATTERN_MAX)
		o += (size_t)snprintf(shown + o, sizeof shown - o, "...");
	shown[o] = '\0';
	rill__set_last_errmsg("bad peer pattern \"%s\": %s", shown, why);
	return RILL_EINVAL;
}

/* A decimal number of at most 10 digits, no sign, within [0, max]:
 * the whole of s[0..n). */
static bool pattern_number(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	if (n == 0 || n > 10)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static void pattern_mask(struct rill_peer_pattern *p)
{
	size_t bytes = p->ipv6 ? 16 : 4;
	for (size_t i = 0; i < bytes; i++) {
		unsigned bit = (unsigned)i * 8;
		if (bit >= p->prefix)
			p->addr[i] = 0;
		else if (p->prefix - bit < 8)
			p->addr[i] &= (uint8_t)(0xff00u >> (p->prefix - bit));
	}
}

static int pattern_ip(const char *text, struct rill_peer_pattern *p)
{
	char addr[PATTERN_MAX + 1];
	const char *slash = strchr(text, '/');
	size_t alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	if (alen >= 2 && text[0] == '[' && text[alen - 1] == ']') {
		text++;
		alen -= 2;
	}
	if (alen == 0 || alen > PATTERN_MAX)
		return pattern_error(text, "not an IP address");
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	p->kind = RILL_PEER_IP;
	if (inet_pton(AF_INET, addr, p->addr) == 1) {
		p->prefix = 32;
	} else if (inet_pton(AF_INET6, addr, p->addr) == 1) {
		p->ipv6 = true;
		p->prefix = 128;
	} else {
		return pattern_error(text, "not an IPv4 or IPv6 address");
	}
	if (slash != NULL) {
		uint64_t v;
		const char *num = slash + 1;
		if (!pattern_number(num, strlen(num), p->prefix, &v))
			return pattern_error(
			    text, p->ipv6 ? "the prefix length must be 0..128"
			                  : "the prefix length must be 0..32");
		p->prefix = (unsigned)v;
	}
	/* ::ffff:a.b.c.d/N is the IPv4 network a.b.c.d/(N-96): peers
	 * are named that way (rill_flow_peer). */
	if (p->ipv6 && p->prefix >= 96 && memcmp(p->addr, v4_mapped, 12) == 0) {
		memmove(p->addr, p->addr + 12, 4);
		memset(p->addr + 4, 0, 12);
		p->ipv6 = false;
		p->prefix -= 96;
	}
	pattern_mask(p);
	return 0;
}

int rill_peer_pattern_parse(const char *text, struct rill_peer_pattern *out)
{
	if (text == NULL || out == NULL) {
		rill__set_last_errmsg("rill_peer_pattern_parse: NULL argument");
		return RILL_EINVAL;
	}
	memset(out, 0, sizeof *out);
	size_t n = strlen(text);
	if (n == 0)
		return pattern_error(text, "empty");
	if (n > PATTERN_MAX)
		return pattern_error(text, "too long");
	if (strncmp(text, "uid=", 4) == 0) {
		uint64_t v;
		if (!pattern_number(text + 4, n - 4, UINT32_MAX - 1, &v))
			return pattern_error(text, "the uid must be a decimal "
			                           "number below 4294967295");
		out->kind = RILL_PEER_UNIX;
		out->lo = out->hi = (uint32_t)v;
		return 0;
	}
	/* Only digits, or digits-digits: a CID or a range of CIDs. */
	size_t digits = strspn(text, "0123456789");
	if (digits == n || (digits > 0 && text[digits] == '-')) {
		uint64_t lo, hi;
		if (!pattern_number(text, digits, UINT32_MAX, &lo))
			return pattern_error(text, "the CID must be a decimal "
			                           "number up to 4294967295");
		hi = lo;
		if (digits < n &&
		    !pattern_number(text + digits + 1, n - digits - 1,
		                    UINT32_MAX, &hi))
			return pattern_error(text, "a CID range is LOW-HIGH, "
			                           "two decimal numbers");
		if (hi < lo)
			return pattern_error(text, "the CID range ends before "
			                           "it starts");
		out->kind = RILL_PEER_VSOCK;
		out->lo = (uint32_t)lo;
		out->hi = (uint32_t)hi;
		return 0;
	}
	return pattern_ip(text, out);
}

bool rill_peer_match(const struct rill_peer_pattern *pat,
                     const struct rill_peer *peer)
{
	if (pat == NULL || peer == NULL || pat->kind != peer->kind)
		return false;
	switch (pat->kind) {
	case RILL_PEER_VSOCK:
		return peer->cid >= pat->lo && peer->cid <= pat->hi;
	case RILL_PEER_UNIX: return peer->uid == pat->lo;
	case RILL_PEER_IP: break;
	default: return false;
	}
	if (pat->ipv6 != peer->ipv6)
		return false;
	unsigned full = pat->prefix / 8, rest = pat->prefix % 8;
	if (memcmp(pat->addr, peer->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest);
	return (peer->addr[full] & mask) == pat->addr[full];
}
