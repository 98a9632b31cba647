/*
 * The --allow-target patterns of rill relay (target_allow.h).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "target_allow.h"

enum rule_kind { RULE_ANY, RULE_NAME, RULE_SUFFIX, RULE_NET };

struct target_rule {
	bool deny;
	enum rule_kind kind;
	char name[256];  /* RULE_NAME, RULE_SUFFIX (".domain") */
	uint8_t net[16]; /* RULE_NET: IPv4 as IPv4-mapped IPv6 */
	unsigned prefix; /* RULE_NET: bits of net that must match */
	uint16_t lo, hi; /* ports */
};

static bool ta_port(const char *s, uint16_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return false;
	unsigned long v = strtoul(s, &end, 10);
	if (*end != '\0' || v < 1 || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* "PORT" or "LOW-HIGH" into the rule. */
static bool ta_ports(char *s, struct target_rule *r)
{
	char *dash = strchr(s, '-');
	if (dash != NULL)
		*dash = '\0';
	if (!ta_port(s, &r->lo))
		return false;
	r->hi = r->lo;
	return dash == NULL || (ta_port(dash + 1, &r->hi) && r->hi >= r->lo);
}

/* An address as IPv6 (IPv4 mapped); false if s is none. */
static bool ta_ip(const char *s, uint8_t out[16], bool *v4)
{
	uint8_t a4[4];
	*v4 = inet_pton(AF_INET, s, a4) == 1;
	if (*v4) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xFF;
		memcpy(out + 12, a4, 4);
		return true;
	}
	return inet_pton(AF_INET6, s, out) == 1;
}

/* HOST of a pattern into r: '*', a name, '*.domain', an address or a
 * CIDR block. */
static bool ta_host(char *h, struct target_rule *r, const char **why)
{
	if (strcmp(h, "*") == 0) {
		r->kind = RULE_ANY;
		return true;
	}
	char *slash = strchr(h, '/');
	if (slash != NULL)
		*slash = '\0';
	bool v4;
	if (ta_ip(h, r->net, &v4)) {
		r->kind = RULE_NET;
		r->prefix = 128;
		if (slash != NULL) {
			char *end;
			unsigned long p = strtoul(slash + 1, &end, 10);
			if (*end != '\0' || slash[1] == '\0' ||
			    p > (v4 ? 32u : 128u)) {
				*why = "bad CIDR prefix length";
				return false;
			}
			r->prefix = (unsigned)p + (v4 ? 96 : 0);
		}
		return true;
	}
	if (slash != NULL) {
		*why = "a CIDR block needs an IP address";
		return false;
	}
	bool suffix = strncmp(h, "*.", 2) == 0;
	const char *n = suffix ? h + 1 : h;
	size_t len = strlen(n);
	if (len > 0 && n[len - 1] == '.')
		len--; /* a fully qualified name's dot */
	if (len == 0 || len >= sizeof r->name ||
	    strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	              "0123456789-_.") < len) {
		*why = "bad host name";
		return false;
	}
	memcpy(r->name, n, len);
	r->name[len] = '\0';
	r->kind = suffix ? RULE_SUFFIX : RULE_NAME;
	return true;
}

/* Splits "HOST[:PORTS]" / "[V6]:PORTS" / bare IPv6 (CIDR) into r. */
static bool ta_parse(char *s, struct target_rule *r, const char **why)
{
	char *ports = NULL;
	if (*s == '[') {
		char *end = strchr(s, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':')) {
			*why = "bad [IPv6]";
			return false;
		}
		*end = '\0';
		if (end[1] == ':')
			ports = end + 2;
		s++;
	} else {
		char *c1 = strchr(s, ':');
		/* One colon: HOST:PORTS. More: a bare IPv6 address. */
		if (c1 != NULL && strchr(c1 + 1, ':') == NULL) {
			*c1 = '\0';
			ports = c1 + 1;
		}
	}
	r->lo = 1;
	r->hi = 65535;
	if (ports != NULL && !ta_ports(ports, r)) {
		*why = "bad port or port range";
		return false;
	}
	return ta_host(s, r, why);
}

int target_allow_add(struct target_allow *a, const char *pattern,
                     const char **why)
{
	struct target_rule r = {0};
	char buf[300];
	if (strlen(pattern) >= sizeof buf) {
		*why = "pattern too long";
		return -1;
	}
	snprintf(buf, sizeof buf, "%s", pattern);
	char *s = buf;
	if (*s == '!') {
		r.deny = true;
		s++;
	}
	if (!ta_parse(s, &r, why))
		return -1;
	struct target_rule *n =
	    realloc(a->rules, (a->n + 1) * sizeof *a->rules);
	if (n == NULL) {
		*why = "out of memory";
		return -1;
	}
	a->rules = n;
	a->rules[a->n++] = r;
	return 0;
}

static bool ta_net_match(const struct target_rule *r, const uint8_t ip[16])
{
	unsigned bits = r->prefix;
	size_t bytes = bits / 8;
	if (memcmp(r->net, ip, bytes) != 0)
		return false;
	if (bits % 8 == 0)
		return true;
	uint8_t mask = (uint8_t)(0xFF << (8 - bits % 8));
	return (r->net[bytes] & mask) == (ip[bytes] & mask);
}

static bool ta_name_match(const struct target_rule *r, const char *host)
{
	size_t hl = strlen(host);
	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	size_t nl = strlen(r->name);
	if (r->kind == RULE_NAME)
		return hl == nl && strncasecmp(host, r->name, nl) == 0;
	/* r->name is ".domain": host must end with it, with a label
	 * before. */
	return hl > nl && strncasecmp(host + hl - nl, r->name, nl) == 0;
}

bool target_allow_request(const struct target_allow *a, const char *host,
                          uint16_t port)
{
	uint8_t ip[16];
	bool v4;
	bool is_ip = ta_ip(host, ip, &v4);
	for (size_t i = 0; i < a->n; i++) {
		const struct target_rule *r = &a->rules[i];
		if (port < r->lo || port > r->hi)
			continue;
		bool m =
		    r->kind == RULE_ANY ||
		    (r->kind == RULE_NET && is_ip && ta_net_match(r, ip)) ||
		    ((r->kind == RULE_NAME || r->kind == RULE_SUFFIX) &&
		     !is_ip && ta_name_match(r, host));
		if (m)
			return !r->deny;
	}
	return false;
}

bool target_allow_address(const struct target_allow *a, const uint8_t *ip,
                          size_t iplen, uint16_t port)
{
	uint8_t v6[16];
	if (iplen == 4) {
		memset(v6, 0, 10);
		v6[10] = v6[11] = 0xFF;
		memcpy(v6 + 12, ip, 4);
	} else {
		memcpy(v6, ip, 16);
	}
	/* 0.0.0.0/8 and :: (also ::ffff:0.0.0.0/104) name no host, but
	 * connecting to them reaches this one (Linux takes them for
	 * loopback): never a target, or '!127.0.0.0/8' could be stepped
	 * around. */
	static const uint8_t unspec4[13] = {0, 0, 0, 0,    0,    0, 0,
	                                    0, 0, 0, 0xFF, 0xFF, 0};
	static const uint8_t unspec6[16] = {0};
	if (memcmp(v6, unspec4, sizeof unspec4) == 0 ||
	    memcmp(v6, unspec6, sizeof unspec6) == 0)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct target_rule *r = &a->rules[i];
		if (!r->deny || port < r->lo || port > r->hi)
			continue;
		if (r->kind == RULE_ANY ||
		    (r->kind == RULE_NET && ta_net_match(r, v6)))
			return false;
	}
	return true;
}

void target_allow_free(struct target_allow *a)
{
	free(a->rules);
	a->rules = NULL;
	a->n = 0;
}
