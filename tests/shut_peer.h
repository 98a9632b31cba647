/*
 * A shut-protocol peer that is not rill: plain blocking POSIX sockets, no
 * rill code, written from doc/shut-framing.md to behave the way ocaml-hvsock's
 * Flow_shutdown does, for the close-handshake tests (test_shut_peer_api,
 * test_shut_peer_cli).
 *
 * Like upstream, it answers the other side's Close with Close, and after
 * its own Close it reads on (discarding data, skipping ShutdownWrite)
 * until the other side's Close. It is stricter than upstream in what it
 * reports: every EPIPE and ECONNRESET is a failure; so is a hang-up of
 * the connection before the other side's Close, and any byte after it.
 * After the handshake it reads until the other side closes the
 * connection, so that a reset the other side causes by closing too early
 * (with our Close still unread in its receive queue) is seen here.
 */
#ifndef RILL_TEST_SHUT_PEER_H
#define RILL_TEST_SHUT_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Who does what, and in which order (the peer's side of each case). */
enum peer_order {
	ORDER_PEER_HALF_CLOSES_FIRST,  /* peer: write, ShutdownWrite, read */
	ORDER_RILL_HALF_CLOSES_FIRST,  /* peer: read to EOF, write, shut */
	ORDER_BOTH_AT_ONCE,            /* peer: write, shut, read */
	ORDER_PEER_CLOSES_AFTER_WRITE, /* peer: read, write, Close */
	ORDER_RILL_CLOSES_AFTER_WRITE, /* peer: write, shut, read */
	ORDER_COUNT
};

extern const char *const peer_order_names[ORDER_COUNT];

/* What the peer sends and what it expects to receive. */
struct peer_plan {
	enum peer_order order;
	size_t send_len;
	uint64_t send_seed;
	size_t recv_len;
	uint64_t recv_seed;
	unsigned timeout_ms;            /* per blocking read/write; 0: 10 s */
	unsigned answer_delay_ms;       /* a slow peer: wait before answering */
	void (*before_close)(void *ud); /* called right before our close */
	void (*before_answer)(void *ud); /* ... before answering a Close */
	void *ud;
};

/* The outcome. ok is false on any failure; why says which one. */
struct peer_result {
	bool ok;
	char why[256];
	size_t received;
	bool saw_close; /* the other side's Close arrived */
};

/* Runs the peer's side of plan on the connected stream socket fd, which
 * it closes. */
void peer_run(int fd, const struct peer_plan *plan, struct peer_result *res);

/* The deterministic test bytes of a seed, and their FNV-1a hash. */
void peer_fill(uint64_t seed, uint64_t offset, uint8_t *dst, size_t len);
uint64_t peer_hash_update(uint64_t h, const uint8_t *p, size_t len);
#define PEER_HASH_INIT 0xcbf29ce484222325ull
uint64_t peer_expected_hash(uint64_t seed, size_t len);

/* Sizes and seeds of repetition rep (varied: empty, one byte, one frame,
 * around frame edges, hundreds of KiB). */
size_t peer_rep_len(unsigned rep, unsigned which);
uint64_t peer_rep_seed(unsigned rep, unsigned which, enum peer_order order);

/* Plain sockets for the peer: a listener on a Unix path / TCP loopback
 * port 0 (the chosen port in *port), connect and accept with deadlines.
 * They return an fd or -1 (errno set). */
int peer_listen_unix(const char *path);
int peer_listen_tcp(int *port);
int peer_connect_unix(const char *path);
int peer_connect_tcp(int port);
int peer_accept(int lfd, unsigned timeout_ms);

#endif
