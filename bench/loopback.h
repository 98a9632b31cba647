/*
 * Small helpers shared by the stand-alone programs in bench/: a loopback
 * address and a monotonic clock.
 */
#ifndef RILL_BENCH_LOOPBACK_H
#define RILL_BENCH_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

/* 127.0.0.1:port. */
static inline struct sockaddr_in loopback_addr(int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* Seconds on CLOCK_MONOTONIC. */
static inline double monotonic_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#endif
