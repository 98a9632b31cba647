/*
 * rill relay --allow-target PATTERN: which targets a dynamic relay
 * (CONNECT_URI with {target}, behind a socks5+ or connect+ listener) may
 * connect to. Kept apart from the relay so that it can be tested and
 * merged on its own.
 *
 * A pattern is HOST[:PORT] or HOST:LOW-HIGH, optionally preceded by '!'
 * (deny). HOST is '*' (any), a name (example.org, matched without regard
 * to case), '*.domain' (any name below domain, not domain itself), an IP
 * address, or a CIDR block (10.0.0.0/8, 2001:db8::/32); an IPv6 address
 * with a port is written in brackets ([::1]:22, [fd00::/8]:443).
 *
 * The rules:
 *  1. The requested HOST:PORT is checked against the patterns in order;
 *     the first whose host and port both match decides (allow, or deny
 *     for '!'). When none matches the target is denied. Name patterns
 *     match only names, address patterns only addresses; '*' matches
 *     both.
 *  2. A requested name is then resolved (once: the relay connects to the
 *     address it checked), and every address it resolves to is checked
 *     against the '!' patterns: one match denies the request, so that a
 *     name cannot smuggle in a denied address.
 *  3. An address in 0.0.0.0/8, or ::, is always denied, whether asked
 *     for or resolved: it names no host, yet a connect to it reaches
 *     this one (Linux takes it for loopback), past any '!127.0.0.0/8'.
 */
#ifndef RILL_CLI_TARGET_ALLOW_H
#define RILL_CLI_TARGET_ALLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct target_rule;

struct target_allow {
	struct target_rule *rules;
	size_t n;
};

/* Adds a pattern; 0, or -1 with *why saying what is wrong with it. */
int target_allow_add(struct target_allow *a, const char *pattern,
                     const char **why);

/* Rule 1 for host (a name or an IP literal without brackets) and port. */
bool target_allow_request(const struct target_allow *a, const char *host,
                          uint16_t port);

/* Rule 2 for one address (4 bytes for IPv4, 16 for IPv6): true unless a
 * '!' pattern matches it and port, or it is in 0.0.0.0/8 or is :: (rule
 * 3). */
bool target_allow_address(const struct target_allow *a, const uint8_t *ip,
                          size_t iplen, uint16_t port);

void target_allow_free(struct target_allow *a);

#endif
