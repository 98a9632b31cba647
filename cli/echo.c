/*
 * rill echo URI: an echo server. Every accepted connection is served
 * concurrently: what it sends comes back (the very buffers read, no copy),
 * with a few writes in flight; at its end of file the write side is shut
 * down once everything was echoed, and the connection closed.
 *
 * SIGINT or SIGTERM stops it: no more connections are accepted, the live
 * ones are closed, and the process exits once every close handshake is
 * over (cli_wait_closed), so that shut+ peers lose nothing. A second
 * signal exits at once.
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "allow.h"
#include "cli.h"
#include "logfmt.h"
#include "metrics.h"
#include "notify.h"

#define ECHO_INFLIGHT 4

struct echo_server {
	uv_loop_t *loop;
	struct rill_listener *listener;
	struct echo_conn *conns; /* live connections */
	uv_signal_t sigint, sigterm;
	bool verbose;
	bool stopping;
	const char *metrics_uri; /* --metrics; NULL: none */
	struct cli_metrics metrics;
	struct cli_mshard ms;
	enum cli_log_format log_format;
};

struct echo_conn {
	struct echo_server *srv;
	struct echo_conn *prev, *next;
	struct rill_flow *f;
	uint64_t t0_ns; /* accepted at, uv_hrtime() */
	int inflight;
	bool reading, eof, shut;
};

static void echo_read(struct echo_conn *e);

/* One JSON object per connection (--log-format json). */
static void echo_log_json(struct echo_conn *e, int err, uint64_t up,
                          uint64_t down, double secs)
{
	char peer[160];
	struct cli_json j;
	struct timespec start;
	cli_time_ago(secs, &start);
	cli_json_begin(&j, "echo");
	cli_json_time(&j, "start", &start);
	cli_json_str(
	    &j, "client",
	    rill_flow_address(e->f, RILL_ADDR_PEER, peer, sizeof peer) == 0
	        ? peer
	        : NULL);
	cli_json_u64(&j, "up", up);
	cli_json_u64(&j, "down", down);
	cli_json_secs(&j, "time", secs);
	cli_json_str(&j, "end", err == 0 ? "eof" : "error");
	if (err != 0)
		cli_json_str(&j, "detail",
		             rill_flow_errmsg(e->f) != NULL
		                 ? rill_flow_errmsg(e->f)
		                 : rill_strerror(err));
	cli_json_end(&j, stderr);
}

static void echo_end(struct echo_conn *e, int err)
{
	struct echo_server *srv = e->srv;
	uint64_t up = 0, down = 0;
	double secs = cli_secs_since(e->t0_ns);
	rill_flow_counters(e->f, &up, &down, NULL, NULL);
	cli_m_bytes(&srv->ms, up, down);
	cli_m_conn_time(&srv->ms, secs);
	cli_m_active(&srv->ms, -1);
	if (srv->log_format == CLI_LOG_JSON)
		echo_log_json(e, err, up, down, secs);
	else if (err != 0 && e->srv->verbose)
		fprintf(stderr, "rill: echo connection: %s\n",
		        rill_flow_errmsg(e->f) ? rill_flow_errmsg(e->f)
		                               : rill_strerror(err));
	rill_close(e->f);
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		e->srv->conns = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	free(e);
}

static void echo_shut_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	echo_end(ud, status);
}

static void echo_maybe_shut(struct echo_conn *e)
{
	if (e->eof && e->inflight == 0 && !e->shut) {
		e->shut = true;
		int err = rill_shutdown(e->f, RILL_SHUT_WR, echo_shut_cb, e);
		if (err != 0)
			echo_end(e, err);
	}
}

static void echo_write_cb(struct rill_flow *f, int status, void *ud)
{
	struct echo_conn *e = ud;
	(void)f;
	e->inflight--;
	if (status != 0) {
		echo_end(e, status);
		return;
	}
	if (!e->eof && !e->reading)
		echo_read(e);
	else
		echo_maybe_shut(e);
}

static void echo_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                         void *ud)
{
	struct echo_conn *e = ud;
	e->reading = false;
	if (status == RILL_EOF) {
		e->eof = true;
		echo_maybe_shut(e);
		return;
	}
	if (status != 0) {
		echo_end(e, status);
		return;
	}
	int err = rill_write(f, b, echo_write_cb, e);
	rill_buf_release(b);
	if (err != 0) {
		echo_end(e, err);
		return;
	}
	e->inflight++;
	if (e->inflight < ECHO_INFLIGHT)
		echo_read(e);
}

static void echo_read(struct echo_conn *e)
{
	e->reading = true;
	int err = rill_read(e->f, echo_read_cb, e);
	if (err != 0) {
		e->reading = false;
		echo_end(e, err);
	}
}

static void echo_accepted(struct rill_listener *l, struct rill_flow *f,
                          int status, const char *errmsg, void *ud)
{
	(void)l;
	struct echo_server *srv = ud;
	if (status != 0) {
		cli_error("accept: %s", errmsg);
		return;
	}
	struct echo_conn *e = srv->stopping ? NULL : calloc(1, sizeof *e);
	if (e == NULL && srv->stopping) {
		rill_close(f);
		return;
	}
	if (e == NULL) {
		cli_error("accept: out of memory");
		rill_close(f);
		return;
	}
	e->f = f;
	e->srv = srv;
	e->t0_ns = uv_hrtime();
	cli_m_accepted(&srv->ms);
	cli_m_active(&srv->ms, 1);
	e->next = srv->conns;
	if (e->next != NULL)
		e->next->prev = e;
	srv->conns = e;
	echo_read(e);
}

static void echo_on_signal(uv_signal_t *h, int signum)
{
	(void)signum;
	struct echo_server *srv = h->data;
	if (srv->stopping)
		exit(1); /* a second signal: no more waiting */
	srv->stopping = true;
	cli_notify_stopping();
	if (srv->metrics_uri != NULL)
		cli_metrics_stop(&srv->metrics);
	rill_listener_close(srv->listener);
	srv->listener = NULL;
	/* Their teardowns keep the loop running (the signal handles do
	 * not), then cli_wait_closed makes sure. */
	while (srv->conns != NULL)
		echo_end(srv->conns, 0);
}

static void echo_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: rill echo [-v] [--allow PATTERN]... URI\n"
	    "\n"
	    "Listens on URI and echoes every connection back to its\n"
	    "sender, all connections concurrently. At a connection's end\n"
	    "of file, its write side is shut down after the last byte was\n"
	    "echoed. Runs until SIGINT or SIGTERM, which stop accepting,\n"
	    "close every connection, and exit 0 once their close\n"
	    "handshakes (shut+) are over; a second signal exits at once.\n"
	    "\n"
	    "  -v, --verbose      print the address listened on, and errors\n"
	    "                     of single connections, to stderr\n"
	    "  --metrics URI      serve Prometheus metrics (GET /metrics)\n"
	    "                     over HTTP on the listening URI URI\n"
	    "  --log-format json  one JSON object per connection on stderr\n"
	    "                     when it ends (default text: none)\n"
	    "  --allow PATTERN    serve only clients that match a\n"
	    "                     PATTERN (repeatable; the syntax of rill\n"
	    "                     relay --allow); others are closed at\n"
	    "                     accept (with -v, a line ending\n"
	    "                     end=denied)\n"
	    "  -h, --help         show this help\n"
	    "\n"
	    "Example:\n"
	    "  rill echo tcp://127.0.0.1:7000\n");
}

int cli_echo(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"verbose", no_argument, NULL, 'v'},
	    {"allow", required_argument, NULL, 'a'},
	    {"metrics", required_argument, NULL, 'M'},
	    {"log-format", required_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct echo_server srv;
	static struct cli_allow allow = {.cmd = "echo"};
	/* A restart after a crash takes a stale unix: socket back. */
	struct rill_listen_opts lo = {.replace_stale_unix = true};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "vh", lopts, NULL)) != -1) {
		switch (opt) {
		case 'v': srv.verbose = true; break;
		case 'a':
			if (cli_allow_add(&allow, "echo", optarg) != 0)
				return 2;
			lo.filter = cli_allow_filter;
			lo.filter_ud = &allow;
			break;
		case 'M': srv.metrics_uri = optarg; break;
		case 'F':
			if (!cli_log_format_parse(optarg, &srv.log_format))
				return cli_usage_error(
				    "echo", "bad --log-format '%s'", optarg);
			break;
		case 'h': echo_usage(stdout); return 0;
		default: return cli_usage_error("echo", "bad option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("echo", optind == argc
		                                   ? "missing URI"
		                                   : "too many arguments");
	signal(SIGPIPE, SIG_IGN);
	allow.log = srv.verbose;
	if (srv.metrics_uri != NULL &&
	    cli_metrics_init(&srv.metrics, srv.metrics_uri, argv[optind],
	                     CLI_METRICS_CONNS) != 0)
		return 1;
	uv_loop_t loop;
	uv_loop_init(&loop);
	srv.loop = &loop;
	int err = rill_listen(&loop, argv[optind], &lo, echo_accepted, &srv,
	                      &srv.listener);
	if (err == 0 && srv.metrics_uri != NULL) {
		err = cli_mshard_init(&srv.ms, &srv.metrics);
		if (err == 0)
			err = cli_metrics_listen(&srv.metrics, &loop);
		if (err != 0)
			exit(1); /* said why */
	}
	if (err != 0) {
		cli_error("%s", rill_last_errmsg()[0] ? rill_last_errmsg()
		                                      : rill_strerror(err));
		uv_loop_close(&loop);
		return 1;
	}
	if (srv.verbose) {
		char buf[512];
		if (rill_listener_uri(srv.listener, buf, sizeof buf) == 0)
			fprintf(stderr, "rill: listening on %s\n", buf);
	}
	uv_signal_init(&loop, &srv.sigint);
	uv_signal_init(&loop, &srv.sigterm);
	srv.sigint.data = srv.sigterm.data = &srv;
	uv_signal_start(&srv.sigint, echo_on_signal, SIGINT);
	uv_signal_start(&srv.sigterm, echo_on_signal, SIGTERM);
	/* The loop ends when the listener and the connections are gone (a
	 * stdio listener serves once), not for the signal handles. */
	uv_unref((uv_handle_t *)&srv.sigint);
	uv_unref((uv_handle_t *)&srv.sigterm);
	cli_notify_ready(&loop, "listening");
	uv_run(&loop, UV_RUN_DEFAULT);
	cli_notify_end();
	cli_metrics_stop(srv.metrics_uri != NULL ? &srv.metrics : NULL);
	uv_close((uv_handle_t *)&srv.sigint, NULL);
	uv_close((uv_handle_t *)&srv.sigterm, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	cli_wait_closed(&loop);
	uv_loop_close(&loop);
	cli_allow_free(&allow);
	cli_metrics_free(srv.metrics_uri != NULL ? &srv.metrics : NULL);
	return 0;
}
