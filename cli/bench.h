/* rill bench: the types shared by the benchmark case files. */
#ifndef RILL_CLI_BENCH_H
#define RILL_CLI_BENCH_H

#include <stdbool.h>
#include <stdint.h>

struct bench_opts {
	uint64_t bytes;
	bool json;
	const char *only;
};

struct bench_row {
	const char *name;     /* flow kind */
	const char *metric;   /* "throughput" */
	double value;         /* in unit */
	const char *baseline; /* name of the baseline */
	double base_value;
	const char *unit; /* NULL: "MB/s" */
};

/* cli/bench_vchan.c: vchan beside a plain shared-memory ring, a Unix
 * socket and a pipe, each between two processes. */
int bench_vchan_tput_ring(const struct bench_opts *o, struct bench_row *r);
int bench_vchan_tput_unix(const struct bench_opts *o, struct bench_row *r);
int bench_vchan_tput_pipe(const struct bench_opts *o, struct bench_row *r);
int bench_vchan_rtt_ring(const struct bench_opts *o, struct bench_row *r);
int bench_vchan_rtt_unix(const struct bench_opts *o, struct bench_row *r);
int bench_vchan_rtt_nospin(const struct bench_opts *o, struct bench_row *r);
#define BENCH_VCHAN_CASES                                \
	{"vchan", bench_vchan_tput_ring},                \
	    {"vchan-vs-unix", bench_vchan_tput_unix},    \
	    {"vchan-vs-pipe", bench_vchan_tput_pipe},    \
	    {"vchan-rtt", bench_vchan_rtt_ring},         \
	    {"vchan-rtt-vs-unix", bench_vchan_rtt_unix}, \
	    {"vchan-rtt-nospin", bench_vchan_rtt_nospin},

#endif
