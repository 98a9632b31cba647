/*
 * What the two vchan peers of the Xen guest tests share (xen_lib_peer.c on
 * libxenvchan, xen_rill_peer.c on rill): the command line, and the bytes
 * both ends send and check - byte i of the stream in direction `salt` (1:
 * server to client, 2: client to server), so that either checks the other
 * on the fly, byte by byte, with no hash and no buffering.
 *
 *   PEER NAME server|client DOMID TARGET [options]
 *     TARGET       the vchan's xenstore path (starting with '/'), or (rill
 *                  only) a port name on the default path
 *     --send N     bytes to send (N may end in K or M)
 *     --expect N   bytes to receive and check
 *     --read-size N, --write-size N
 *                  server: ring minimums towards it and towards the
 *                  client (default 64K both, rill's default)
 *     --sizes A,B  one vchan after the other at TARGET/<size>, rings of
 *                  that size both ways, each with the whole transfer
 *     --hold       after the transfer, print "# held" and wait to be
 *                  killed
 *     --bench-tput N, --bench-rtt N
 *                  the client sends N bytes, the server prints "# bench
 *                  tput BYTES SECONDS"; or N round trips of one byte, the
 *                  client prints "# bench rtt N SECONDS"
 *     --timeout S  give up after S seconds (default 60)
 *   and the options of one program (hostile, expect-ering...), handed to
 *   its own parser.
 */
#ifndef RILL_TEST_XEN_PEER_H
#define RILL_TEST_XEN_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XP_SERVER_TO_CLIENT 1
#define XP_CLIENT_TO_SERVER 2

static inline uint8_t xp_byte(uint64_t i, unsigned salt)
{
	uint64_t x = (i >> 6) * 0x9E3779B97F4A7C15ull + salt * 0x5851F42Du;
	return (uint8_t)((x >> 29) ^ (i & 63) ^ salt);
}

static inline void xp_fill(uint8_t *p, size_t n, uint64_t off, unsigned salt)
{
	for (size_t i = 0; i < n; i++)
		p[i] = xp_byte(off + i, salt);
}

/* The index of the first byte of p[0..n) that is not the pattern at
 * off, or n when all are. */
static inline size_t xp_check(const uint8_t *p, size_t n, uint64_t off,
                              unsigned salt)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != xp_byte(off + i, salt))
			return i;
	return n;
}

struct xp_args {
	const char *name;
	bool server;
	unsigned domid;
	const char *target;
	size_t send, expect, read_size, write_size, bench_tput, bench_rtt;
	const char *sizes;
	bool hold;
	double timeout;
};

static inline double xp_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline size_t xp_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		v <<= 10;
	else if (*end == 'M' || *end == 'm')
		v <<= 20;
	return (size_t)v;
}

/* One option with value v into a; false when it is not a common one. */
static inline bool xp_option(struct xp_args *a, const char *o, const char *v)
{
	size_t *sizes[] = {&a->send,       &a->expect,     &a->read_size,
	                   &a->write_size, &a->bench_tput, &a->bench_rtt};
	const char *names[] = {"--send",       "--expect",     "--read-size",
	                       "--write-size", "--bench-tput", "--bench-rtt"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(o, names[i]) == 0) {
			*sizes[i] = xp_size(v);
			return true;
		}
	}
	if (strcmp(o, "--sizes") == 0)
		a->sizes = v;
	else if (strcmp(o, "--timeout") == 0)
		a->timeout = atof(v);
	else
		return false;
	return true;
}

/*
 * Parses argv into a. Options that are not common go to own(ctx, argv,
 * &i) with i at the option: it returns false for an unknown one and
 * advances i past what it used (own may be NULL). Exits 2 on a bad
 * command line.
 */
static inline void
xp_parse(struct xp_args *a, int argc, char **argv,
         bool (*own)(void *ctx, char **argv, int argc, int *i), void *ctx)
{
	if (argc < 5) {
		fprintf(stderr,
		        "usage: %s NAME server|client DOMID TARGET "
		        "[options]\n",
		        argv[0]);
		exit(2);
	}
	a->name = argv[1];
	a->server = strcmp(argv[2], "server") == 0;
	a->domid = (unsigned)atoi(argv[3]);
	a->target = argv[4];
	a->timeout = 60;
	a->read_size = a->write_size = 65536;
	for (int i = 5; i < argc;) {
		const char *o = argv[i];
		if (strcmp(o, "--hold") == 0) {
			a->hold = true;
			i++;
		} else if (i + 1 < argc && xp_option(a, o, argv[i + 1])) {
			i += 2;
		} else if (own == NULL || !own(ctx, argv, argc, &i)) {
			fprintf(stderr, "%s: bad option %s\n", argv[0], o);
			exit(2);
		}
	}
}

#endif
