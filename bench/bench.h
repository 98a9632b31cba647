/* rill bench: what the case files share (cases table in bench.c). */
#ifndef RILL_CLI_BENCH_H
#define RILL_CLI_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "rill.h"

/*
 * `rill bench` sees the public headers only (include/), not the CLI's
 * private cli.h: what it needs of the CLI it has here.
 *
 * cli_bench: the subcommand, called by cli/main.c (which declares it in
 *   cli.h): argc/argv start at "bench"; returns the exit status (0, 1
 *   runtime failure, 2 bad command line).
 * bench_error: prints "rill: <msg>" to stderr, as the CLI's errors.
 * bench_usage_error: the same, then a pointer to `rill bench --help`;
 *   returns 2.
 */
int cli_bench(int argc, char **argv);
void bench_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int bench_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* The shut+unix case (bench_shut.c): best MB/s of several runs of each
 * kind, alternating. 0 or a negative error. */
int bench_shut_unix(uint64_t bytes, double *shut_mbs, double *unix_mbs);

/* The write size of one transfer (bench_transfer) and of memcpy. */
#define BENCH_CHUNK (64u * 1024u)

struct bench_opts {
	uint64_t bytes;
	bool bytes_set; /* --bytes was given */
	bool json;
	int rounds; /* --rounds (relay cases); 0: their default */
	const char *only;
};

struct bench_row {
	const char *name;     /* flow kind */
	const char *metric;   /* "throughput" */
	double value;         /* in unit; higher is better */
	const char *baseline; /* name of the baseline */
	double base_value;
	const char *unit; /* NULL: "MB/s" */
	/* value is a cost (CPU, delay): the ratio is base/value, so that a
	 * ratio above 1 always means rill does better. */
	bool lower_better;
	/* Why the row could not be measured (with BENCH_SKIPPED). */
	const char *skipped;
};

/* A case returns this (and sets row->skipped) when a tool it compares
 * with is missing: a note on stderr, no row, not a failure. */
#define BENCH_SKIPPED 1

/* Waits (up to 5 s) until something listens on TCP port `port` of any
 * IPv4 address (read from /proc/net/tcp); false at the deadline or, when
 * pid > 0, as soon as that child process has exited. */
bool bench_wait_listen(int port, pid_t pid);

/* Monotonic seconds. */
double bench_now(void);

/* Moves bytes from w to r on loop (a window of 64 KiB writes in flight,
 * then a write shutdown); returns MB/s or a negative error. */
double bench_transfer(uv_loop_t *loop, struct rill_flow *w, struct rill_flow *r,
                      uint64_t bytes);

/* Runs loop until nothing is left to do (after closing flows). */
void bench_drain_loop(uv_loop_t *loop);

/* Socket cases (bench_socket.c): throughput and 1-byte ping-pong beside
 * a plain C non-blocking socket loop of the same family. */
int bench_tcp4(const struct bench_opts *o, struct bench_row *row);
int bench_tcp4_rtt(const struct bench_opts *o, struct bench_row *row);
int bench_tcp6(const struct bench_opts *o, struct bench_row *row);
int bench_tcp6_rtt(const struct bench_opts *o, struct bench_row *row);
int bench_unix(const struct bench_opts *o, struct bench_row *row);
int bench_unix_rtt(const struct bench_opts *o, struct bench_row *row);
/* bench/bench_vchan.c: vchan beside a plain shared-memory ring, a Unix
 * socket and a pipe, each between two processes. */
int bench_vchan_tput_ring(const struct bench_opts *o, struct bench_row *r);
int bench_vchan_tput_unix(const struct bench_opts *o, struct bench_row *r);
int bench_vchan_tput_pipe(const struct bench_opts *o, struct bench_row *r);
int bench_vchan_rtt_ring(const struct bench_opts *o, struct bench_row *r);
int bench_vchan_rtt_unix(const struct bench_opts *o, struct bench_row *r);
int bench_vchan_rtt_nospin(const struct bench_opts *o, struct bench_row *r);
/* bench/bench_relay_rows.c: `rill relay` beside socat -b 131072, HAProxy,
 * a plain threaded forwarder and more (see bench_relay.c), one row per
 * peer and metric, all measured in the first selected row's run. */
const char *bench_relay_case_name(size_t i); /* NULL past the last */
int bench_relay_case(size_t i, const struct bench_opts *o,
                     struct bench_row *row);
/* After the table: every forwarder's medians and the goals (stdout). */
void bench_relay_report(FILE *out);
/* bench/bench_ws.c: `rill relay ws+tcp:// tcp://` beside websockify and
 * the plain relay (splice and --no-splice), all measured in one run. */
int bench_ws_vs_websockify(const struct bench_opts *o, struct bench_row *r);
int bench_ws_vs_relay(const struct bench_opts *o, struct bench_row *r);
int bench_ws_cpu_vs_websockify(const struct bench_opts *o, struct bench_row *r);
int bench_ws_cpu_vs_relay(const struct bench_opts *o, struct bench_row *r);
int bench_ws_cpu_vs_relay_copy(const struct bench_opts *o, struct bench_row *r);
#define BENCH_WS_CASES                                                  \
	{"ws-relay-vs-websockify", bench_ws_vs_websockify},             \
	    {"ws-relay-vs-relay", bench_ws_vs_relay},                   \
	    {"ws-relay-cpu-vs-websockify", bench_ws_cpu_vs_websockify}, \
	    {"ws-relay-cpu-vs-relay", bench_ws_cpu_vs_relay},           \
	    {"ws-relay-cpu-vs-relay-copy", bench_ws_cpu_vs_relay_copy},
/* Process helpers (bench_http.c): a loopback TCP port nobody listens on
 * now (or -1); whether prog is on PATH; argv run to its end with its
 * stdout in out (NUL-terminated), returning its exit status; argv
 * started with stdin, stdout and stderr on /dev/null; SIGTERM, then
 * SIGKILL after 2 s, reaped. */
int bench_free_port(void);
/* Writes text to path: 0 or -errno. */
int bench_write_text(const char *path, const char *text);
/* DIR/c.pem and DIR/k.pem (EC P-256, CN localhost, one day, readable by
 * all: servers may drop to nobody) and DIR/ck.pem (both): 0 or -EIO. */
int bench_make_cert(const char *dir);
/* The median of v[0..n), 1 <= n <= BENCH_MAX_SAMPLES; 0 otherwise. */
#define BENCH_MAX_SAMPLES 15
double bench_median_of(const double *v, int n);
bool bench_have(const char *prog);
int bench_run_output(char *const argv[], char *out, size_t cap);
pid_t bench_spawn(char *const argv[]);
void bench_stop(pid_t pid);

/* bench/bench_tls_relay.c: rill relay between TLS and plain TCP, both
 * directions, beside socat, HAProxy and stunnel4 (throughput and CPU per
 * GiB rows, all measured in the first selected row's run). */
const char *bench_tls_relay_case_name(size_t i); /* NULL past the last */
int bench_tls_relay_case(size_t i, const struct bench_opts *o,
                         struct bench_row *row);

/* bench/bench_http.c: rill http serve beside nginx and h2o (wrk), the
 * server's CPU per request, one row per file kind and peer, all measured
 * in the first selected row's run. */
const char *bench_http_case_name(size_t i); /* NULL past the last */
int bench_http_case(size_t i, const struct bench_opts *o,
                    struct bench_row *row);
/* After the table: req/s, p99 and CPU per request of every server. */
void bench_http_report(FILE *out);
#define BENCH_VCHAN_CASES                                \
	{"vchan", bench_vchan_tput_ring},                \
	    {"vchan-vs-unix", bench_vchan_tput_unix},    \
	    {"vchan-vs-pipe", bench_vchan_tput_pipe},    \
	    {"vchan-rtt", bench_vchan_rtt_ring},         \
	    {"vchan-rtt-vs-unix", bench_vchan_rtt_unix}, \
	    {"vchan-rtt-nospin", bench_vchan_rtt_nospin},

#endif
