/*
 * N loops on N threads for a listening subcommand (`rill relay`, `rill
 * http serve`): loop 0 runs on the calling thread and listens; loops
 * 1..N-1 join its listener (rill_listen_opts.join), so the accepted
 * connections are spread over every loop and each flow stays on the loop
 * that accepted it. SIGINT/SIGTERM are caught on loop 0 and passed to
 * every worker.
 */
#ifndef RILL_CLI_WORKERS_H
#define RILL_CLI_WORKERS_H

#include <pthread.h>
#include <stdatomic.h>

#include "cli.h"

struct cli_workers;

struct cli_worker {
	struct cli_workers *group;
	unsigned index;
	uv_loop_t loop;
	struct rill_listener *listener; /* NULL once closed */
	void *data;                     /* the subcommand's own state */
	/* private */
	pthread_t thread;
	uv_async_t wake;
	bool stop_seen, hurry_seen;
	atomic_bool done;
};

struct cli_workers_ops {
	/* Accept callback of every worker's listener (ud: the worker). */
	rill_accept_cb accept;
	/* First signal, on the worker's thread, after its listener was
	 * closed: end gracefully and call cli_worker_done when nothing is
	 * left. */
	void (*stop)(struct cli_worker *w);
	/* Second signal, on the worker's thread: end now. */
	void (*hurry)(struct cli_worker *w);
	/* On loop 0's thread when a signal arrives (first: the first one),
	 * e.g. for a log line. May be NULL. */
	void (*signalled)(struct cli_workers *g, int signum, bool first);
	/* On the worker's thread once its loop has ended, to free what
	 * lives on it (the loop runs again afterwards, for the closes).
	 * May be NULL. */
	void (*finish)(struct cli_worker *w);
};

struct cli_workers {
	unsigned n;
	struct cli_worker *w;
	const struct cli_workers_ops *ops;
	void *ud;
	atomic_bool stopping;
	atomic_bool hurry;
	atomic_uint live; /* workers not done yet */
	uv_signal_t sigint, sigterm;
	uv_async_t all_done;
	bool closed;
};

/* The default for --threads: the online CPUs (at least 1). */
unsigned cli_threads_default(void);

/* Parses --threads N (1..1024). */
bool cli_parse_threads(const char *s, unsigned *n);

/* Makes n loops (not yet running). 0 or a negative error. */
int cli_workers_init(struct cli_workers *g, unsigned n,
                     const struct cli_workers_ops *ops, void *ud);

/*
 * Worker 0 listens on uri; the others join it. A transport that cannot
 * spread its connections (stdio) keeps one worker, with a note unless
 * quiet. A stale unix: socket file is replaced (replace_stale_unix is
 * set whatever opts says). 0, or the listen error (rill_last_errmsg()
 * explains).
 */
int cli_workers_listen(struct cli_workers *g, const char *uri,
                       const struct rill_listen_opts *opts, bool quiet);

/* Runs every loop until every worker is done and the signals are
 * closed; then closes the loops and frees them. */
void cli_workers_run(struct cli_workers *g);

/* Frees what cli_workers_init made when run is not reached (the loops
 * must hold nothing but what init made). */
void cli_workers_abandon(struct cli_workers *g);

/* On w's thread: w has nothing left to do; its loop may end. */
void cli_worker_done(struct cli_worker *w);

#endif
