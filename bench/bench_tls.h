/* rill bench: the TLS cases (bench/bench_tls.c). */
#ifndef RILL_CLI_BENCH_TLS_H
#define RILL_CLI_BENCH_TLS_H

#include <stdint.h>

/*
 * Bulk throughput over tls+tcp on loopback (TLS 1.3, AES-128-GCM), a rill
 * sender thread to a rill receiver thread, beside two socat processes
 * doing the same (OPENSSL: and OPENSSL-LISTEN: addresses, same cipher).
 * Stores MB/s of both; returns 0 or a negative error (message printed).
 */
int bench_tls_throughput(uint64_t bytes, double *rill_mbs, double *socat_mbs);

enum { BENCH_TLS_PEER_SOCAT = 0, BENCH_TLS_PEER_S_SERVER = 1 };

/*
 * Full handshakes per second (connect, handshake, close; no resumption)
 * from one rill client thread to a rill tls+tcp server thread, beside the
 * same client against a baseline server: socat OPENSSL-LISTEN with fork
 * (what users run), or `openssl s_server` (one process, no fork).
 * Returns 0 or a negative error.
 */
int bench_tls_handshakes(int peer, double *rill_hs, double *base_hs);

#endif
