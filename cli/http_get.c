/*
 * rill http get: fetch a URL over any connecting URI and write the body
 * to standard output. Public API only.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "http_cmd.h"

struct get {
	bool head_done;
	int status;
	bool show_headers;
	const char *method;
	struct rill_flow *ex; /* NULL once a deadline closed it */
	bool timed_out;
	uv_timer_t deadline;
};

/* --max-time: the whole request took too long. Closing the exchange ends
 * the wait of rill_read_sync (RILL_ECLOSED) and the head's wait in
 * cli_http_get. */
static void get_deadline(uv_timer_t *t)
{
	struct get *g = t->data;
	g->timed_out = true;
	if (!g->head_done) {
		g->head_done = true;
		g->status = RILL_ETIMEDOUT;
	}
	rill_close(g->ex);
	g->ex = NULL;
}

static void get_on_head(struct rill_flow *ex, int status, void *ud)
{
	struct get *g = ud;
	g->head_done = true;
	g->status = status;
	if (status != 0 || !g->show_headers)
		return;
	int code = rill_http_status(ex);
	printf("HTTP/1.%d %d %s\r\n", rill_http_version_minor(ex), code,
	       rill_http_reason(code));
	size_t n = rill_http_header_count(ex);
	for (size_t i = 0; i < n; i++) {
		const char *k, *v;
		if (rill_http_header_at(ex, i, &k, &v) == 0)
			printf("%s: %s\r\n", k, v);
	}
	printf("\r\n");
}

/* Splits http://host[:port]/path into a connect URI, Host and target. */
static bool get_parse_url(const char *url, char *conn, size_t clen, char *host,
                          size_t hlen, const char **target)
{
	const char *p;
	if (strncmp(url, "http://", 7) == 0)
		p = url + 7;
	else
		return false;
	const char *slash = strchr(p, '/');
	size_t auth = slash ? (size_t)(slash - p) : strlen(p);
	if (auth == 0 || auth >= hlen)
		return false;
	memcpy(host, p, auth);
	host[auth] = '\0';
	*target = slash ? slash : "/";
	/* tcp:// needs a port; HTTP's default is 80. */
	const char *colon = strrchr(host, ':');
	const char *rb = strrchr(host, ']');
	bool has_port = colon != NULL && (rb == NULL || colon > rb);
	int n = snprintf(conn, clen, "tcp://%s%s", host, has_port ? "" : ":80");
	return n > 0 && (size_t)n < clen;
}

static void get_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: rill http get [OPTIONS] URL\n"
	    "\n"
	    "Fetches URL (http://host[:port]/path) and writes the response\n"
	    "body to standard output. The connection goes to host:port over\n"
	    "TCP, or over any connecting URI given with --via (unix:/s.sock,\n"
	    "vsock://3:80, vchan:web, tls+tcp://h:443?ca=FILE, shut+...);\n"
	    "the URL then only supplies the Host header and the path.\n"
	    "\n"
	    "Options:\n"
	    "  --via URI          connect through URI instead of the URL's "
	    "host\n"
	    "  -i, --include      print the status line and headers too\n"
	    "  -I, --head         send HEAD instead of GET (implies -i)\n"
	    "  --timeout MS       give up when connecting, the response\n"
	    "                     head, or any wait for body bytes takes MS\n"
	    "                     milliseconds (default 30000)\n"
	    "  --max-time MS      give up when the whole request takes MS\n"
	    "                     milliseconds (default: no limit; a server\n"
	    "                     that trickles a byte at a time is only\n"
	    "                     stopped by this)\n"
	    "  -h, --help         this help\n"
	    "\n"
	    "Exit status: 0 for a 1xx-3xx response; 1 with a one-line reason\n"
	    "on stderr for a 4xx/5xx status (the body is still printed), a\n"
	    "connection failure or a malformed response; 2 for bad usage.\n");
}

/* What the options of rill http get ask for. */
struct get_args {
	const char *via;
	uint64_t timeout;
	uint64_t max_time; /* 0: none */
};

/* Parses the options into a and g: -1 to go on, else the exit status. */
static int get_parse_opts(int argc, char **argv, struct get_args *a,
                          struct get *g)
{
	static const struct option lopts[] = {
	    {"via", required_argument, NULL, 'v'},
	    {"include", no_argument, NULL, 'i'},
	    {"head", no_argument, NULL, 'I'},
	    {"timeout", required_argument, NULL, 't'},
	    {"max-time", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+iIh", lopts, NULL)) != -1) {
		switch (c) {
		case 'v': a->via = optarg; break;
		case 'i': g->show_headers = true; break;
		case 'I':
			g->show_headers = true;
			g->method = "HEAD";
			break;
		case 't':
		case 'm': {
			char *end;
			uint64_t v = strtoull(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v == 0)
				return cli_usage_error(
				    "http get", "bad %s '%s'",
				    c == 't' ? "timeout" : "max-time", optarg);
			*(c == 't' ? &a->timeout : &a->max_time) = v;
			break;
		}
		case 'h': get_usage(stdout); return 0;
		default: return cli_usage_error("http get", "bad option");
		}
	}
	return -1;
}

/* --max-time, counted from t0 (the start), for what is left of the
 * request. */
static void get_arm(struct get *g, const struct get_args *a, uint64_t t0)
{
	uv_loop_t *loop = g->deadline.loop;
	uv_update_time(loop);
	uint64_t spent = uv_now(loop) - t0;
	if (a->max_time != 0)
		uv_timer_start(&g->deadline, get_deadline,
		               a->max_time > spent ? a->max_time - spent : 1,
		               0);
}

/* The response head arrived (g): writes the body of ex to standard
 * output. Returns the exit status. */
static int get_body(const char *url, struct get *g, struct rill_flow *ex)
{
	if (g->status != 0) {
		cli_error("http get %s: %s", url, rill_strerror(g->status));
		return 1;
	}
	int err;
	for (;;) {
		struct rill_buf *b;
		err = rill_read_sync(ex, &b);
		if (err != 0)
			break;
		fwrite(b->data, 1, b->len, stdout);
		rill_buf_release(b);
	}
	fflush(stdout);
	int code = rill_http_status(ex);
	if (g->timed_out) {
		cli_error("http get %s: response body: no end within "
		          "--max-time",
		          url);
		return 1;
	}
	if (err != RILL_EOF) {
		cli_error("http get %s: response body: %s", url,
		          rill_strerror(err));
		return 1;
	}
	if (code >= 400) {
		cli_error("http get %s: %d %s", url, code,
		          rill_http_reason(code));
		return 1;
	}
	return 0;
}

int cli_http_get(int argc, char **argv)
{
	struct get_args a = {.timeout = 30000};
	struct get g = {.method = "GET"};
	int rc = get_parse_opts(argc, argv, &a, &g);
	if (rc >= 0)
		return rc;
	if (argc - optind != 1)
		return cli_usage_error("http get", "expected one URL");
	const char *url = argv[optind];
	char conn_uri[1024], host[512];
	const char *target;
	if (!get_parse_url(url, conn_uri, sizeof conn_uri, host, sizeof host,
	                   &target))
		return cli_usage_error(
		    "http get",
		    "bad URL '%s' (expected http://host[:port]"
		    "/path)",
		    url);
	uv_loop_t *loop = uv_default_loop();
	uv_update_time(loop);
	uint64_t t0 = uv_now(loop);
	struct rill_connect_opts co = {.timeout_ms = a.timeout};
	if (a.max_time != 0 && a.max_time < co.timeout_ms)
		co.timeout_ms = a.max_time;
	struct rill_flow *f = NULL;
	const char *cu = a.via != NULL ? a.via : conn_uri;
	int err = rill_connect_sync(loop, cu, &co, &f);
	if (err != 0) {
		const char *why = rill_last_errmsg();
		cli_error("http get %s: %s", url,
		          why && *why ? why : rill_strerror(err));
		return 1;
	}
	rill_set_read_timeout(f, a.timeout);
	struct rill_http_client *cl;
	/* --timeout bounds the response head as a whole too (a server that
	 * trickles it never lets one wait for bytes reach --timeout). */
	struct rill_http_client_opts ho = {.header_timeout_ms = a.timeout};
	err = rill_http_client_new(f, &ho, &cl);
	struct rill_flow *ex = NULL;
	struct rill_http_header h[] = {
	    {"Host", host},
	    {"User-Agent", "rill/" RILL_VERSION_STRING},
	    {"Accept", "*/*"},
	};
	if (err == 0)
		err = rill_http_request(cl, g.method, target, h, 3, 0,
		                        get_on_head, &g, &ex);
	g.ex = ex;
	uv_timer_init(loop, &g.deadline);
	g.deadline.data = &g;
	if (err == 0)
		get_arm(&g, &a, t0);
	if (err != 0) {
		cli_error("http get %s: %s", url, rill_strerror(err));
		uv_close((uv_handle_t *)&g.deadline, NULL);
		rill_http_client_free(cl);
		cli_wait_closed(loop);
		return 1;
	}
	while (!g.head_done)
		uv_run(loop, UV_RUN_ONCE);
	if (g.status == RILL_ETIMEDOUT) {
		cli_error("http get %s: no response head within %s", url,
		          g.timed_out ? "--max-time" : "--timeout");
		rc = 1;
	} else {
		rc = get_body(url, &g, g.ex);
	}
	uv_close((uv_handle_t *)&g.deadline, NULL);
	rill_close(g.ex);
	rill_http_client_free(cl);
	/* Over shut+, the close handshake must finish before we exit. */
	cli_wait_closed(loop);
	return rc;
}
