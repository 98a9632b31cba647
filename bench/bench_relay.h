/*
 * rill bench relay, internal: the forwarders (bench_relay_fwd.c), the
 * endpoints and the interleaved run (bench_relay.c), the rows and the
 * report (bench_relay_rows.c).
 */
#ifndef RILL_CLI_BENCH_RELAY_H
#define RILL_CLI_BENCH_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "bench.h"

/* Every way a stream crosses from the sender to the sink. */
enum bench_relay_kind {
	BR_DIRECT,  /* no forwarder */
	BR_RILL,    /* rill relay, its defaults */
	BR_COPY,    /* rill relay --no-splice */
	BR_UNTUNED, /* rill relay, RILL_SPLICE_LOCAL=0 (extra row) */
	BR_SOCAT,   /* socat -b 131072 */
	BR_HAPROXY, /* haproxy, mode tcp */
	BR_FLOOR,   /* bench/fwd_floor.c: two blocking threads */
	BR_SFLOOR,  /* the same with splice, tuned as rill's (extra row) */
	BR_SOCAT8K, /* socat with its default 8 KiB buffer (extra row) */
	BR_KINDS
};

/* The peers a user would pick (the acceptance compares with these). */
#define BR_PEERS ((1u << BR_SOCAT) | (1u << BR_HAPROXY) | (1u << BR_FLOOR))

#define BR_MAX_ROUNDS 15
#define BR_MAX_TASKS  64

extern const char *const bench_relay_names[BR_KINDS];

/* One forwarder process. */
struct bench_relay_fwd {
	enum bench_relay_kind kind;
	pid_t pid;
	int port; /* it listens on 127.0.0.1:port */
};

/* Whether kind's program is installed (NULL) or why not. */
const char *bench_relay_fwd_missing(enum bench_relay_kind kind);

/* Starts kind forwarding to 127.0.0.1:target; waits until it listens.
 * 0 or a negative error (message printed). */
int bench_relay_fwd_start(struct bench_relay_fwd *f, enum bench_relay_kind kind,
                          int target, const char *tmpdir);

/* SIGTERM, then SIGKILL after 2 s; reaps it. */
void bench_relay_fwd_stop(struct bench_relay_fwd *f);

/* CPU seconds (user + system) of the forwarder and its reaped children,
 * after waiting (up to 1 s) until it has no live child process (socat's
 * per-connection children). */
double bench_relay_fwd_cpu(const struct bench_relay_fwd *f);

/* CPU ticks of each thread of the forwarder (up to max); returns the
 * number of threads, ids in tids. */
int bench_relay_fwd_threads(const struct bench_relay_fwd *f, int *tids,
                            uint64_t *ticks, int max);

/* A loopback port nobody listens on now; negative error. */
int bench_relay_free_port(void);

/* A listening socket on 127.0.0.1, any port (stored in *port). */
int bench_relay_listen(int *port);

/* The medians of the run, per kind (0 when not measured). */
struct bench_relay_result {
	double mbs;       /* one stream, MB/s */
	double cpu_gib;   /* forwarder CPU seconds per GiB (one stream) */
	double ends_gib;  /* the sender's and sink's, per GiB (same run) */
	double rtt_us;    /* 1-byte round trip through it */
	double mbs4;      /* four parallel streams, MB/s in total */
	int busy_threads; /* threads with >= 20% of its CPU (4 streams) */
	int threads;      /* threads that used any CPU (4 streams) */
};

struct bench_relay_run {
	unsigned measured; /* bit per kind */
	int rounds;
	uint64_t bytes;
	double load_before, load_after;
	struct bench_relay_result res[BR_KINDS];
};

/* Measures every kind in want once per round, interleaved, and stores
 * the medians in run. 0 or a negative error (message printed). */
int bench_relay_run_all(struct bench_relay_run *run, unsigned want,
                        uint64_t bytes, int rounds);

/* The one-minute load average now (0 when unknown). */
double bench_relay_loadavg(void);

#endif
