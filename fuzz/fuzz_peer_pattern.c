/*
 * Fuzz target: the peer patterns of rill relay --allow
 * (rill_peer_pattern_parse), and matching them against peers built from
 * the same bytes. Whatever parses must hold its invariants: a network's
 * own address is in it, the host bits are zero, a pattern printed back
 * parses to the same pattern, and a CID range is ordered.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ip(const struct rill_peer_pattern *p)
{
	size_t bytes = p->ipv6 ? 16 : 4;
	if (p->prefix > bytes * 8)
		abort();
	struct rill_peer peer = {.kind = RILL_PEER_IP, .ipv6 = p->ipv6};
	memcpy(peer.addr, p->addr, bytes);
	if (!rill_peer_match(p, &peer))
		abort();
	/* Host bits are zero: setting the last bit leaves the network
	 * only when the prefix covers it. */
	peer.addr[bytes - 1] ^= 1;
	if (rill_peer_match(p, &peer) != (p->prefix < bytes * 8))
		abort();
	/* Printed back, it parses to the same pattern. */
	char addr[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 8];
	if (inet_ntop(p->ipv6 ? AF_INET6 : AF_INET, p->addr, addr,
	              sizeof addr) == NULL)
		abort();
	snprintf(text, sizeof text, "%s/%u", addr, p->prefix);
	struct rill_peer_pattern q;
	if (rill_peer_pattern_parse(text, &q) != 0 ||
	    memcmp(p, &q, sizeof q) != 0)
		abort();
	/* The other family never matches. */
	peer.ipv6 = !p->ipv6;
	if (rill_peer_match(p, &peer))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	struct rill_peer_pattern p;
	memset(&p, 0xa5, sizeof p);
	int err = rill_peer_pattern_parse(s, &p);
	if (err != 0) {
		if (err != RILL_EINVAL || rill_last_errmsg()[0] == '\0')
			abort();
		free(s);
		return 0;
	}
	struct rill_peer peer = {.kind = p.kind};
	switch (p.kind) {
	case RILL_PEER_IP: check_ip(&p); break;
	case RILL_PEER_VSOCK:
		if (p.lo > p.hi)
			abort();
		peer.cid = p.lo;
		if (!rill_peer_match(&p, &peer))
			abort();
		peer.cid = p.hi;
		if (!rill_peer_match(&p, &peer))
			abort();
		break;
	case RILL_PEER_UNIX:
		peer.uid = p.lo;
		if (!rill_peer_match(&p, &peer) || p.lo == UINT32_MAX)
			abort();
		break;
	default: abort();
	}
	/* A peer made of the input's bytes: matching and printing it
	 * never fail badly. */
	struct rill_peer raw = {.kind = (int)(size % 5)};
	raw.ipv6 = size % 2 == 0;
	memcpy(raw.addr, data, size < 16 ? size : 16);
	raw.cid = raw.uid = size >= 4 ? (uint32_t)data[0] << 24 |
	                                    (uint32_t)data[1] << 16 |
	                                    (uint32_t)data[2] << 8 | data[3]
	                              : 0;
	(void)rill_peer_match(&p, &raw);
	char buf[64];
	if (rill_peer_format(&raw, buf, sizeof buf) != 0)
		abort();
	free(s);
	return 0;
}
