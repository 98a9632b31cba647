/*
 * rill http serve: the command. Options, one HTTP server per event loop
 * (thread), accepting, shutting down. The request handling is
 * http_serve.c. Public API only.
 *
 * Limits a client cannot lift: --max-conns connections at once (default
 * SERVE_MAX_CONNS; beyond it a connection is closed at accept), the
 * WebSockets relayed by --ws included, and
 * --send-timeout (the library's send_timeout_ms): a response the client
 * stops reading is dropped with its connection.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allow.h"
#include "cli.h"
#include "http_cmd.h"
#include "http_serve.h"

#define SERVE_MAX_CONNS   512  /* --max-conns default */
#define SERVE_WS_GRACE_MS 5000 /* --ws relays left at SIGTERM: then closed */
#define SERVE_OPT_OTHER   (-2) /* serve_opt_text: not one of its options */

/* A connection the server took has ended: its duration and bytes. */
static void serve_conn_done(void *ud, const struct rill_http_conn_info *ci)
{
	struct serve *sv = ud;
	cli_m_active(&sv->ms, -1);
	cli_m_conn_time(&sv->ms, ci->seconds);
	cli_m_bytes(&sv->ms, ci->bytes_in, ci->bytes_out);
}

/* A failed accept (a TLS handshake, one cut for a newer one): one line a
 * second at most, with the count of those not shown, as a flood of bad
 * clients must not become a flood of log lines. */
static void serve_accept_failed(struct serve *sv, const char *errmsg)
{
	uint64_t now = uv_now(sv->loop);
	if (sv->failed_ms != 0 && now - sv->failed_ms < 1000) {
		sv->failed++;
		return;
	}
	if (sv->failed > 0)
		cli_error("accept: %s (and %" PRIu64 " more failed since the "
		          "last such line)",
		          errmsg, sv->failed);
	else
		cli_error("accept: %s", errmsg);
	sv->failed = 0;
	sv->failed_ms = now ? now : 1;
}

static void serve_on_accept(struct rill_listener *l, struct rill_flow *f,
                            int status, const char *errmsg, void *ud)
{
	(void)l;
	struct cli_worker *w = ud;
	struct serve *sv = w->data;
	cli_m_tls(&sv->ms, true, sv->listen_tls, status);
	if (status != 0) {
		if (!sv->quiet)
			serve_accept_failed(sv, errmsg);
		return;
	}
	cli_m_accepted(&sv->ms);
	/* --ws bridges left the server but count against --max-conns (the
	 * server alone makes room by closing an idle keep-alive). */
	int err = -EBUSY;
	if (sv->ws_set.n == 0 ||
	    sv->ws_set.n + rill_http_server_connections(sv->srv) <
	        sv->max_conns)
		err = rill_http_server_serve(sv->srv, f);
	else
		rill_close(f);
	if (err == 0)
		cli_m_active(&sv->ms, 1); /* until serve_conn_done */
	if (err == -EBUSY)
		cli_m_denied(&sv->ms, "max-conns");
	if (err != -EBUSY || sv->quiet)
		return;
	/* Over --max-conns: closed at once (a client learns at once
	 * instead of waiting in the backlog). One line a second at most:
	 * a flood must not become a flood of log lines. */
	sv->refused++;
	uint64_t now = uv_now(sv->loop);
	if (sv->refused_ms == 0 || now - sv->refused_ms >= 1000) {
		cli_error("http serve: %" PRIu64 " connection(s) closed at "
		          "accept: --max-conns reached (%zu on this thread)",
		          sv->refused, sv->max_conns);
		sv->refused = 0;
		sv->refused_ms = now ? now : 1;
	}
}

/*
 * glibc keeps freed heap memory for reuse: after a burst of connections
 * (each holds a 256 KiB chunk in flight), RSS would stay at the burst's
 * peak. Once a second, when connections went away since the last look,
 * malloc_trim gives the free pages back, so a flood of clients that
 * --send-timeout dropped leaves no lasting footprint.
 */
static void serve_trim(uv_timer_t *t)
{
	struct serve *sv = t->data;
	size_t n = rill_http_server_connections(sv->srv);
	if (n < sv->trim_peak) {
#ifdef __GLIBC__
		malloc_trim(0);
#endif
		sv->trim_peak = n;
	} else {
		sv->trim_peak = n;
	}
}

static void serve_stopped(void *ud)
{
	struct serve *sv = ud;
	cli_worker_done(sv->w);
}

static void serve_ws_grace_over(uv_timer_t *t)
{
	struct serve *sv = t->data;
	serve_ws_stop(&sv->ws_set);
}

/* SIGINT/SIGTERM: in-flight requests finish (the listener is closed);
 * --ws relays get SERVE_WS_GRACE_MS, as rill relay's default --grace:
 * they are sessions of any length, which would hold the loop for ever. */
static void serve_on_stop(struct cli_worker *w)
{
	struct serve *sv = w->data;
	if (w->index == 0)
		cli_metrics_stop(sv->metrics);
	sv->ws_set.stopping = true;
	uv_timer_start(&sv->ws_grace, serve_ws_grace_over, SERVE_WS_GRACE_MS,
	               0);
	rill_http_server_shutdown(sv->srv, serve_stopped, sv);
}

/* A second signal: stop now. */
static void serve_on_hurry(struct cli_worker *w)
{
	struct serve *sv = w->data;
	serve_ws_stop(&sv->ws_set);
	rill_http_server_free(sv->srv);
	sv->srv = NULL;
	cli_worker_done(w);
}

static void serve_on_finish(struct cli_worker *w)
{
	struct serve *sv = w->data;
	uv_close((uv_handle_t *)&sv->trim, NULL);
	uv_close((uv_handle_t *)&sv->ws_grace, NULL);
	serve_ws_stop(&sv->ws_set);
	rill_http_server_free(sv->srv);
	sv->srv = NULL;
	for (size_t i = 0; i < SERVE_CACHE_SLOTS; i++)
		rill_buf_release(sv->cache[i].body);
}

static const struct cli_workers_ops serve_ops = {
    .accept = serve_on_accept,
    .stop = serve_on_stop,
    .hurry = serve_on_hurry,
    .finish = serve_on_finish,
};

/* --allow (cli/allow.h); read only once the loops run. */
static struct cli_allow serve_allow = {.cmd = "http serve"};

/* One struct serve per loop (its own cache and HTTP server), the root
 * shared; then every loop runs. Returns the exit status. */
static int serve_run(struct serve *tmpl, const char *uri, unsigned threads,
                     const struct rill_http_server_opts *tmpl_o,
                     size_t max_conns)
{
	struct cli_workers g;
	/* --max-conns is shared out over the loops (each has its own
	 * server), so the whole process never holds more. */
	if (threads > max_conns)
		threads = (unsigned)max_conns;
	struct serve *svs = calloc(threads, sizeof *svs);
	int err = svs == NULL ? RILL_ENOMEM
	                      : cli_workers_init(&g, threads, &serve_ops, NULL);
	for (unsigned i = 0; err == 0 && i < threads; i++) {
		struct serve *sv = &svs[i];
		sv->loop = &g.w[i].loop;
		sv->dirfd = tmpl->dirfd;
		memcpy(sv->root, tmpl->root, sizeof sv->root);
		sv->listing = tmpl->listing;
		sv->dotfiles = tmpl->dotfiles;
		sv->quiet = tmpl->quiet;
		sv->metrics = tmpl->metrics;
		sv->log_format = tmpl->log_format;
		sv->listen_tls = cli_uri_has_tls(uri);
		sv->ws = tmpl->ws;
		sv->w = &g.w[i];
		g.w[i].data = sv;
		struct rill_http_server_opts o = *tmpl_o;
		o.conn_done = serve_conn_done;
		o.conn_ud = sv;
		o.max_connections =
		    max_conns / threads + (i < max_conns % threads ? 1 : 0);
		sv->max_conns = o.max_connections;
		err = rill_http_server_new(sv->loop, &o, cli_serve_handler, sv,
		                           &sv->srv);
	}
	struct rill_listen_opts lo = {0};
	serve_allow.log = !tmpl->quiet;
	for (unsigned i = 0; err == 0 && i < threads; i++)
		err = cli_mshard_init(&svs[i].ms, tmpl->metrics);
	if (cli_allow_opts(&serve_allow, &lo) == NULL)
		memset(&lo, 0, sizeof lo);
	/* Connections still in their TLS (or shut) handshake: at most a
	 * loop's share of --max-conns, the oldest cut for a new one. */
	lo.max_handshakes = max_conns / threads + 1;
	if (err == 0)
		err = cli_workers_listen(&g, uri, &lo, tmpl->quiet);
	if (err == 0 && tmpl->metrics != NULL &&
	    cli_metrics_listen(tmpl->metrics, &g.w[0].loop) != 0)
		exit(1); /* said why; the loops hold listeners now */
	if (err != 0) {
		const char *why = rill_last_errmsg();
		cli_error("http serve: %s",
		          why && *why ? why : rill_strerror(err));
		for (unsigned i = 0; svs != NULL && i < threads; i++)
			rill_http_server_free(svs[i].srv);
		if (svs != NULL && g.w != NULL)
			cli_workers_abandon(&g);
		free(svs);
		return 1;
	}
	/* The loops do not run yet: their handles may be made here. */
	for (unsigned i = 0; i < threads; i++) {
		uv_timer_init(svs[i].loop, &svs[i].trim);
		svs[i].trim.data = &svs[i];
		uv_timer_start(&svs[i].trim, serve_trim, 1000, 1000);
		uv_unref((uv_handle_t *)&svs[i].trim);
		uv_timer_init(svs[i].loop, &svs[i].ws_grace);
		svs[i].ws_grace.data = &svs[i];
		uv_unref((uv_handle_t *)&svs[i].ws_grace);
	}
	cli_workers_run(&g);
	free(svs);
	return 0;
}

static void serve_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: rill http serve [OPTIONS] URI [DIR]\n"
	    "\n"
	    "Serves the files under DIR (default: the current directory)\n"
	    "over HTTP/1.1 on every connection accepted on URI, which may\n"
	    "be any listening URI: tcp://127.0.0.1:8080, unix:/run/s.sock,\n"
	    "vsock://any:80, vchan:web, tls+tcp://...?cert=..&key=..,\n"
	    "shut+unix:... GET and HEAD; keep-alive and pipelining.\n"
	    "\n"
	    "  Content-Type comes from the file extension (a table of the\n"
	    "  common types). Files carry Last-Modified and a strong ETag;\n"
	    "  If-None-Match and If-Modified-Since are answered with 304,\n"
	    "  If-Match and If-Unmodified-Since with 412. One byte range\n"
	    "  (Range: bytes=A-B, A-, -N) gives 206 with Content-Range, an\n"
	    "  unsatisfiable one 416; If-Range is honoured; several ranges\n"
	    "  get the whole file (200). HEAD answers every path with the\n"
	    "  headers GET would send.\n"
	    "  A directory is served as its index.html, else as an HTML\n"
	    "  listing (hidden files omitted), or 404 with --no-listing.\n"
	    "  Paths never leave DIR: \"..\" segments (also encoded as\n"
	    "  %%2e%%2e) and NUL are refused with 404, and files are opened\n"
	    "  with openat2(RESOLVE_BENEATH): symbolic links are followed\n"
	    "  only when they stay inside DIR; others give 404. Names that\n"
	    "  start with a dot (.git, .env) give 404 unless --dotfiles.\n"
	    "  Anything but a regular file or a directory (a FIFO, a\n"
	    "  device) gives 403.\n"
	    "\n"
	    "Options:\n"
	    "  --no-listing          404 for directories without index.html\n"
	    "  --max-header-bytes N  request head limit (default 16384)\n"
	    "  --max-body N          request body limit (default 64 MiB)\n"
	    "  --idle-timeout MS     keep-alive idle timeout (default 60000)\n"
	    "  --header-timeout MS   request head deadline (default 10000)\n"
	    "  --body-timeout MS     request body progress (default 30000)\n"
	    "  --send-timeout MS     close a connection whose response\n"
	    "                        makes no write progress for MS (a\n"
	    "                        client that stopped reading; default\n"
	    "                        30000)\n"
	    "  --max-conns N         serve at most N connections at once,\n"
	    "                        --ws relays included; at the limit\n"
	    "                        the longest-idle keep-alive is closed\n"
	    "                        for a new one, else that one is\n"
	    "                        closed at accept (default 512)\n"
	    "  --dotfiles            serve files and directories whose\n"
	    "                        name starts with a dot (default: 404)\n"
	    "  --threads N           N event loops on N threads, the\n"
	    "                        connections spread over them (default:\n"
	    "                        the number of online CPUs)\n"
	    "  --allow PATTERN       serve only clients that match a PATTERN\n"
	    "                        (repeatable; the syntax of rill relay\n"
	    "                        --allow); others are closed at accept\n"
	    "  --ws PATH=URI         WebSocket upgrades of PATH are relayed\n"
	    "                        to a new connection to URI, both ways\n"
	    "                        (websockify's job; a plain request\n"
	    "                        for PATH gets 426); repeatable. Once\n"
	    "                        one side ended, the other has 5 s\n"
	    "                        to end (then both are closed)\n"
	    "  -q, --quiet           no messages for failed accepts\n"
	    "  --metrics URI         serve Prometheus metrics (GET\n"
	    "                        /metrics) over HTTP on the listening\n"
	    "                        URI URI\n"
	    "  --log-format json     one JSON object per request on stderr\n"
	    "                        (default text: no request log)\n"
	    "  -h, --help            this help\n"
	    "\n"
	    "SIGINT/SIGTERM: graceful shutdown (in-flight requests finish,\n"
	    "--ws relays have 5 s); a second signal stops at once.\n");
}

/* What the options of rill http serve ask for. */
struct serve_args {
	bool listing, quiet, dotfiles;
	uint64_t max_conns;
	const char *metrics_uri;
	enum cli_log_format log_format;
	unsigned threads;
	struct rill_http_server_opts o;
	struct serve_ws *ws;
};

/* The options that take text (--allow, --metrics, --log-format, --ws):
 * -1 when c is one of them and its value is taken, an exit status (2)
 * on a bad value, SERVE_OPT_OTHER when c is another option. */
static int serve_opt_text(int c, struct serve_args *a)
{
	switch (c) {
	case 'a':
		if (cli_allow_add(&serve_allow, "http serve", optarg))
			return 2;
		return -1;
	case 'P': a->metrics_uri = optarg; return -1;
	case 'F':
		if (!cli_log_format_parse(optarg, &a->log_format))
			return cli_usage_error("http serve",
			                       "bad --log-format '%s'", optarg);
		return -1;
	case 'W':
		if (!serve_ws_add(a->ws, optarg))
			return cli_usage_error(
			    "http serve", "bad --ws '%s' (PATH=URI)", optarg);
		return -1;
	default: return SERVE_OPT_OTHER;
	}
}

/* The other options, whose values are numbers: -1 to go on, else the
 * exit status (0 after --help). */
static int serve_opt(int c, struct serve_args *a)
{
	char *end = NULL;
	unsigned long long v = 0;
	if (optarg != NULL) {
		v = strtoull(optarg, &end, 10);
		if (*optarg == '\0' || *end != '\0' || v == 0)
			return cli_usage_error("http serve", "bad number '%s'",
			                       optarg);
	}
	switch (c) {
	case 'L': a->listing = false; break;
	case 'H': a->o.max_header_bytes = (size_t)v; break;
	case 'B': a->o.max_body = v; break;
	case 'I': a->o.idle_timeout_ms = v; break;
	case 'T': a->o.header_timeout_ms = v; break;
	case 'Y': a->o.body_timeout_ms = v; break;
	case 'S': a->o.send_timeout_ms = v; break;
	case 'M':
		if (v > 1000000)
			return cli_usage_error("http serve",
			                       "bad --max-conns '%s'", optarg);
		a->max_conns = v;
		break;
	case 'D': a->dotfiles = true; break;
	case 'N':
		if (v > 1024)
			return cli_usage_error("http serve",
			                       "bad --threads '%s'", optarg);
		a->threads = (unsigned)v;
		break;
	case 'q': a->quiet = true; break;
	case 'h': serve_usage(stdout); return 0;
	default: return cli_usage_error("http serve", "bad option");
	}
	return -1;
}

/* Parses the options into a: -1 to go on, else the exit status. */
static int serve_parse_opts(int argc, char **argv, struct serve_args *a)
{
	static const struct option lopts[] = {
	    {"no-listing", no_argument, NULL, 'L'},
	    {"max-header-bytes", required_argument, NULL, 'H'},
	    {"max-body", required_argument, NULL, 'B'},
	    {"idle-timeout", required_argument, NULL, 'I'},
	    {"header-timeout", required_argument, NULL, 'T'},
	    {"body-timeout", required_argument, NULL, 'Y'},
	    {"send-timeout", required_argument, NULL, 'S'},
	    {"max-conns", required_argument, NULL, 'M'},
	    {"dotfiles", no_argument, NULL, 'D'},
	    {"threads", required_argument, NULL, 'N'},
	    {"allow", required_argument, NULL, 'a'},
	    {"ws", required_argument, NULL, 'W'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"metrics", required_argument, NULL, 'P'},
	    {"log-format", required_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+qh", lopts, NULL)) != -1) {
		int rc = serve_opt_text(c, a);
		if (rc == SERVE_OPT_OTHER)
			rc = serve_opt(c, a);
		if (rc >= 0)
			return rc;
	}
	return -1;
}

int cli_http_serve(int argc, char **argv)
{
	static struct serve_ws ws;
	struct serve_args a = {
	    .listing = true,
	    .max_conns = SERVE_MAX_CONNS,
	    .log_format = CLI_LOG_TEXT,
	    .threads = cli_threads_default(),
	    .ws = &ws,
	};
	int rc = serve_parse_opts(argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage_error("http serve", "expected URI [DIR]");
	const char *uri = argv[optind];
	const char *dir = argc - optind == 2 ? argv[optind + 1] : ".";
	struct serve *svp = calloc(1, sizeof *svp);
	if (svp == NULL)
		return 1;
	svp->listing = a.listing;
	svp->dotfiles = a.dotfiles;
	svp->quiet = a.quiet;
	svp->log_format = a.log_format;

	ws.quiet = a.quiet;
	svp->ws = ws.n > 0 ? &ws : NULL;
	if (realpath(dir, svp->root) == NULL) {
		cli_error("http serve: %s: %s", dir, strerror(errno));
		free(svp);
		return 1;
	}
	svp->dirfd = open(svp->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (svp->dirfd < 0) {
		cli_error("http serve: %s: %s", dir, strerror(errno));
		free(svp);
		return 1;
	}
	struct cli_metrics metrics;
	if (a.metrics_uri != NULL) {
		if (cli_metrics_init(&metrics, a.metrics_uri, uri,
		                     CLI_METRICS_HTTP | CLI_METRICS_CONNS) !=
		    0) {
			close(svp->dirfd);
			free(svp);
			return 1;
		}
		svp->metrics = &metrics;
	}
	int code = serve_run(svp, uri, a.threads, &a.o, (size_t)a.max_conns);
	cli_metrics_free(svp->metrics);
	close(svp->dirfd);
	free(svp);
	return code;
}
