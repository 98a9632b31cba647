/*
 * The physical baseline for vchan: the plainest correct shared-memory
 * byte ring between two processes (fork), with eventfd wake-ups and the
 * same "set a want bit, re-check, sleep" protocol, but no libuv, no
 * validation, no buffer allocation. Used by `rill bench`.
 */
#ifndef RILL_BENCH_SHM_RING_H
#define RILL_BENCH_SHM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MB/s moving `bytes` from a parent to a child process through a ring of
 * ring_size bytes (power of two), written in chunks of `chunk` bytes and
 * copied out by the reader into a private buffer. Negative: -errno. */
double shm_ring_throughput(uint64_t bytes, size_t ring_size, size_t chunk);

/* Median round trip in microseconds of a 1-byte ping-pong between two
 * processes over two rings; waits sleep on an eventfd at once (spin_ns
 * 0) or after polling for up to spin_ns. Negative: -errno. */
double shm_ring_pingpong_us(int iters, uint64_t spin_ns);

/* The same two measurements over a Unix socketpair (unix true) or a pair
 * of pipes, for comparison. */
double fd_throughput(uint64_t bytes, size_t chunk, bool unix_socket);
double fd_pingpong_us(int iters, bool unix_socket);

/* Median of n doubles (sorts v). */
double bench_median(double *v, int n);

#endif
