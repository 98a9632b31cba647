/*
 * N loops on N threads for a listening subcommand; see workers.h.
 *
 * Shutdown: a signal on loop 0 sets the group's flags and wakes every
 * worker (uv_async_send); each worker, on its own thread, closes its own
 * listener and runs the subcommand's stop (or hurry) hook. A worker that
 * has nothing left calls cli_worker_done, which closes its wake-up handle
 * (its loop then ends) and tells loop 0; when the last one is done, loop
 * 0 closes the signal handles and ends too.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notify.h"
#include "workers.h"

#define CLI_THREADS_MAX 1024

unsigned cli_threads_default(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > CLI_THREADS_MAX ? CLI_THREADS_MAX : (unsigned)n;
}

bool cli_parse_threads(const char *s, unsigned *n)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (end == s || *end != '\0' || s[0] == '-' || v < 1 ||
	    v > CLI_THREADS_MAX)
		return false;
	*n = (unsigned)v;
	return true;
}

static void workers_on_wake(uv_async_t *h)
{
	struct cli_worker *w = h->data;
	struct cli_workers *g = w->group;
	if (atomic_load(&w->done))
		return;
	if (atomic_load(&g->stopping) && !w->stop_seen) {
		w->stop_seen = true;
		rill_listener_close(w->listener);
		w->listener = NULL;
		g->ops->stop(w);
	}
	if (!atomic_load(&w->done) && atomic_load(&g->hurry) &&
	    !w->hurry_seen) {
		w->hurry_seen = true;
		g->ops->hurry(w);
	}
}

static void workers_close_signals(struct cli_workers *g)
{
	if (g->closed)
		return;
	g->closed = true;
	uv_close((uv_handle_t *)&g->sigint, NULL);
	uv_close((uv_handle_t *)&g->sigterm, NULL);
	uv_close((uv_handle_t *)&g->all_done, NULL);
}

static void workers_on_all_done(uv_async_t *h)
{
	struct cli_workers *g = h->data;
	if (atomic_load(&g->live) == 0)
		workers_close_signals(g);
}

static void workers_on_signal(uv_signal_t *h, int signum)
{
	struct cli_workers *g = h->data;
	bool first = !atomic_exchange(&g->stopping, true);
	if (!first)
		atomic_store(&g->hurry, true);
	else
		cli_notify_stopping();
	if (g->ops->signalled != NULL)
		g->ops->signalled(g, signum, first);
	/* A done worker's loop may have ended, but it is closed only
	 * after loop 0 ends: a late send is harmless. */
	for (unsigned i = 0; i < g->n; i++)
		if (!atomic_load(&g->w[i].done))
			uv_async_send(&g->w[i].wake);
}

int cli_workers_init(struct cli_workers *g, unsigned n,
                     const struct cli_workers_ops *ops, void *ud)
{
	memset(g, 0, sizeof *g);
	g->w = calloc(n, sizeof *g->w);
	if (g->w == NULL)
		return RILL_ENOMEM;
	g->n = n;
	g->ops = ops;
	g->ud = ud;
	atomic_init(&g->live, n);
	for (unsigned i = 0; i < n; i++) {
		struct cli_worker *w = &g->w[i];
		w->group = g;
		w->index = i;
		int err = uv_loop_init(&w->loop);
		if (err == 0)
			err =
			    uv_async_init(&w->loop, &w->wake, workers_on_wake);
		if (err != 0) {
			g->n = i; /* a half-made loop is leaked, not closed */
			cli_workers_abandon(g);
			return err;
		}
		w->wake.data = w;
	}
	return 0;
}

int cli_workers_listen(struct cli_workers *g, const char *uri,
                       const struct rill_listen_opts *opts, bool quiet)
{
	struct rill_listen_opts lo = {0};
	if (opts != NULL)
		lo = *opts;
	/* A server restarted after a crash takes its unix: path back. */
	lo.replace_stale_unix = true;
	struct rill_listen_opts jo = lo;
	int err = rill_listen(&g->w[0].loop, uri, &lo, g->ops->accept, &g->w[0],
	                      &g->w[0].listener);
	if (err != 0)
		return err;
	jo.join = g->w[0].listener;
	for (unsigned i = 1; i < g->n; i++) {
		err = rill_listen(&g->w[i].loop, uri, &jo, g->ops->accept,
		                  &g->w[i], &g->w[i].listener);
		if (err == -ENOTSUP && i == 1) {
			if (!quiet)
				fprintf(stderr, "rill: %s: one thread (%s)\n",
				        uri, rill_last_errmsg());
			/* Drop the unused loops: nothing runs on them. */
			for (unsigned k = 1; k < g->n; k++) {
				uv_close((uv_handle_t *)&g->w[k].wake, NULL);
				uv_run(&g->w[k].loop, UV_RUN_NOWAIT);
				uv_loop_close(&g->w[k].loop);
			}
			atomic_store(&g->live, 1);
			g->n = 1;
			return 0;
		}
		if (err != 0)
			return err;
	}
	return 0;
}

/* Runs w's loop to its end on this thread, then its finish hook, then
 * the loop again for what closed. */
static void workers_run_one(struct cli_worker *w)
{
	uv_run(&w->loop, UV_RUN_DEFAULT);
	if (w->group->ops->finish != NULL)
		w->group->ops->finish(w);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	cli_wait_closed(&w->loop); /* the close handshakes of this loop */
}

static void *workers_thread_main(void *arg)
{
	struct cli_worker *w = arg;
	char name[16];
	snprintf(name, sizeof name, "rill-loop-%u", w->index);
	pthread_setname_np(pthread_self(), name);
	workers_run_one(w);
	return NULL;
}

void cli_workers_run(struct cli_workers *g)
{
	uv_loop_t *l0 = &g->w[0].loop;
	uv_signal_init(l0, &g->sigint);
	uv_signal_init(l0, &g->sigterm);
	uv_async_init(l0, &g->all_done, workers_on_all_done);
	g->sigint.data = g->sigterm.data = g->all_done.data = g;
	uv_signal_start(&g->sigint, workers_on_signal, SIGINT);
	uv_signal_start(&g->sigterm, workers_on_signal, SIGTERM);
	/* The workers' threads take no signal: loop 0 gets them all. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 1; i < g->n; i++)
		if (pthread_create(&g->w[i].thread, NULL, workers_thread_main,
		                   &g->w[i]) != 0) {
			cli_error("cannot start thread %u: %s", i,
			          strerror(errno));
			exit(1);
		}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Every listener (and the command's --metrics one) listens: a
	 * connection made from now on is accepted. */
	cli_notify_ready(l0, "listening");
	workers_run_one(&g->w[0]);
	cli_notify_end();
	uv_run(l0, UV_RUN_NOWAIT);
	for (unsigned i = 1; i < g->n; i++)
		pthread_join(g->w[i].thread, NULL);
	for (unsigned i = 0; i < g->n; i++)
		uv_loop_close(&g->w[i].loop);
	free(g->w);
	g->w = NULL;
}

void cli_workers_abandon(struct cli_workers *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		rill_listener_close(g->w[i].listener);
		uv_close((uv_handle_t *)&g->w[i].wake, NULL);
		uv_run(&g->w[i].loop, UV_RUN_DEFAULT);
		uv_loop_close(&g->w[i].loop);
	}
	free(g->w);
	g->w = NULL;
}

void cli_worker_done(struct cli_worker *w)
{
	if (atomic_exchange(&w->done, true))
		return;
	rill_listener_close(w->listener);
	w->listener = NULL;
	uv_close((uv_handle_t *)&w->wake, NULL);
	struct cli_workers *g = w->group;
	if (atomic_fetch_sub(&g->live, 1) == 1)
		uv_async_send(&g->all_done);
}
