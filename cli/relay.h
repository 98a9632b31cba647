/*
 * rill relay (relay.c): what its files share. The options and the
 * counters every loop shares, and the command line (relay_opts.c).
 */
#ifndef RILL_CLI_RELAY_H
#define RILL_CLI_RELAY_H

#include <stdatomic.h>
#include <stdio.h>

#include "allow.h"
#include "logfmt.h"
#include "metrics.h"
#include "relay_target.h"
#include "sources.h"
#include "workers.h"

/* What every loop shares: the options (read only once running) and the
 * counters. */
struct relay {
	const char *listen_uri, *connect_uri;
	uint64_t max_conns;      /* 0: unlimited */
	uint64_t max_per_source; /* 0: unlimited */
	struct cli_allow allow;
	struct cli_sources *sources; /* with max_per_source */
	uint64_t connect_timeout_ms, retry_until_ms, idle_ms, linger_ms,
	    grace_ms;
	bool linger_set;
	bool no_splice;
	bool quiet;
	bool dynamic;                /* connect_uri has {target} */
	struct target_allow targets; /* --allow-target */
	unsigned threads;
	const char *metrics_uri;        /* --metrics; NULL: none */
	struct cli_metrics metrics;     /* when metrics_uri */
	enum cli_log_format log_format; /* --log-format */
	bool listen_tls, connect_tls;   /* for the TLS handshake counts */
	struct cli_workers workers;
	atomic_uint_fast64_t nconns; /* live connections, every loop */
	atomic_uint_fast64_t next_id;
	/* uv_now() of loop 0 when the grace period ends (every loop's
	 * uv_now() counts from the same monotonic clock). */
	atomic_uint_fast64_t stop_deadline_ms;
	atomic_uint stuck; /* loops left with only connects pending */
	int exit_code;
};

/* Prints the help text of rill relay on out. */
void relay_usage(FILE *out);

/* Parses the options and operands into r (its defaults already set):
 * 0 to go on (*done: the help was printed, exit 0), else the exit
 * status. */
int relay_parse(int argc, char **argv, struct relay *r, bool *done);

#endif
