/*
 * rill cat [-l] [--progress] URI: standard input/output <-> a flow.
 *
 * Two pumps move bytes: stdin -> flow and flow -> stdout, each keeping a
 * few writes in flight and passing the buffers it reads straight to the
 * other side (no copy). End of stdin shuts the flow's write side down;
 * the flow's end of file shuts stdout down. The command ends when both
 * pumps are done, or as soon as the flow's EOF arrived if stdin is a
 * terminal (nobody is going to type more for a peer that left).
 *
 * A flow that cannot half-close (rill_flow_can_half_close: xen-vchan,
 * hybrid-vsock...) refuses the write shutdown: ending its write side
 * would end the reply too. The end of stdin is then held back: the flow
 * stays open and is read until the peer closes, --idle-timeout finds it
 * quiet or --linger runs out (a cut-short end: exit 1).
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define CAT_INFLIGHT 4

struct cat;

struct cat_pump {
	struct cat *c;
	struct rill_flow *src, *dst;
	const char *src_name, *dst_name;
	uint64_t bytes;
	int inflight;
	bool reading, eof, done;
	bool held;  /* EOF not passed on: the flow cannot half-close */
	int rd_err; /* a read error, reported once the writes before it ended */
};

struct cat {
	uv_loop_t *loop;
	struct rill_flow *io, *net;
	struct rill_listener *lst;
	struct cat_pump up, down; /* stdin -> net, net -> stdout */
	uv_timer_t progress;
	uv_timer_t idle, linger;
	uint64_t idle_ms, linger_ms; /* 0: none */
	bool show_progress;
	bool verbose;
	bool stdin_tty;
	bool finished;
	int status;
	double t0;
};

static double cat_now(uv_loop_t *loop)
{
	(void)loop;
	return (double)uv_hrtime() / 1e9;
}

static void cat_finish(struct cat *c, int status)
{
	if (c->finished)
		return;
	c->finished = true;
	c->status = status;
	rill_close(c->io);
	rill_close(c->net);
	c->io = c->net = NULL;
	rill_listener_close(c->lst);
	c->lst = NULL;
	uv_timer_stop(&c->idle);
	uv_timer_stop(&c->linger);
	if (c->show_progress) {
		uv_timer_stop(&c->progress);
		double dt = cat_now(c->loop) - c->t0;
		fprintf(stderr,
		        "\rrill: %llu bytes in, %llu bytes out, %.1f s     \n",
		        (unsigned long long)c->down.bytes,
		        (unsigned long long)c->up.bytes, dt);
	}
	uv_close((uv_handle_t *)&c->progress, NULL);
	uv_close((uv_handle_t *)&c->idle, NULL);
	uv_close((uv_handle_t *)&c->linger, NULL);
}

static void cat_fail(struct cat *c, const char *what, struct rill_flow *f,
                     int err)
{
	if (c->finished)
		return;
	const char *detail = f != NULL ? rill_flow_errmsg(f) : NULL;
	cli_error("%s: %s", what, detail != NULL ? detail : rill_strerror(err));
	cat_finish(c, 1);
}

static void cat_check_done(struct cat *c)
{
	if (c->finished)
		return;
	if (c->down.done && (c->up.done || c->stdin_tty))
		cat_finish(c, 0);
}

static void cat_pump_read(struct cat_pump *p);

static void cat_shut_cb(struct rill_flow *f, int status, void *ud)
{
	struct cat_pump *p = ud;
	(void)f;
	if (status != 0) {
		char what[64];
		snprintf(what, sizeof what, "shutdown %s", p->dst_name);
		cat_fail(p->c, what, p->dst, status);
		return;
	}
	p->done = true;
	cat_check_done(p->c);
}

static void cat_on_idle(uv_timer_t *t)
{
	struct cat *c = t->data;
	if (c->up.eof) {
		fprintf(stderr,
		        "rill: no data for %.3f s after the end of input: "
		        "closing\n",
		        (double)c->idle_ms / 1000.0);
		cat_finish(c, 0);
		return;
	}
	cli_error("no data either way for %.3f s (--idle-timeout): closing",
	          (double)c->idle_ms / 1000.0);
	cat_finish(c, 1);
}

static void cat_on_linger(uv_timer_t *t)
{
	struct cat *c = t->data;
	cli_error("the peer had not finished %.3f s after the end of input "
	          "(--linger): closing, the reply may be cut short (%llu "
	          "bytes received)",
	          (double)c->linger_ms / 1000.0,
	          (unsigned long long)c->down.bytes);
	cat_finish(c, 1);
}

/* Bytes moved: the idle clock starts again. */
static void cat_active(struct cat *c)
{
	if (c->idle_ms > 0 && !c->finished)
		uv_timer_start(&c->idle, cat_on_idle, c->idle_ms, 0);
}

/* The end of stdin cannot be passed on: keep the flow open and read on. */
static void cat_hold_eof(struct cat_pump *p)
{
	struct cat *c = p->c;
	p->held = true;
	p->done = true;
	if (c->verbose || (c->idle_ms == 0 && c->linger_ms == 0))
		fprintf(stderr,
		        "rill: %s cannot half-close: the end of input is not "
		        "passed on; reading until the peer closes%s\n",
		        rill_flow_kind(p->dst),
		        c->idle_ms == 0 && c->linger_ms == 0
		            ? " (--idle-timeout or --linger bound the wait)"
		            : "");
	cat_check_done(c);
}

static void cat_pump_maybe_end(struct cat_pump *p)
{
	if (p->eof && p->inflight == 0 && !p->done) {
		struct cat *c = p->c;
		if (p == &c->up && c->linger_ms > 0)
			uv_timer_start(&c->linger, cat_on_linger, c->linger_ms,
			               0);
		int err = rill_shutdown(p->dst, RILL_SHUT_WR, cat_shut_cb, p);
		if (err == RILL_ENOHALFCLOSE)
			cat_hold_eof(p);
		else if (err != 0)
			cat_shut_cb(p->dst, err, p);
	}
}

static void cat_write_cb(struct rill_flow *f, int status, void *ud)
{
	struct cat_pump *p = ud;
	(void)f;
	p->inflight--;
	if (p->c->finished)
		return;
	if (status != 0) {
		char what[64];
		snprintf(what, sizeof what, "write to %s", p->dst_name);
		cat_fail(p->c, what, p->dst, status);
		return;
	}
	if (p->rd_err != 0 && p->inflight == 0) {
		char what[64];
		snprintf(what, sizeof what, "read from %s", p->src_name);
		cat_fail(p->c, what, p->src, p->rd_err);
		return;
	}
	if (!p->eof && !p->reading)
		cat_pump_read(p);
	cat_pump_maybe_end(p);
}

static void cat_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                        void *ud)
{
	struct cat_pump *p = ud;
	(void)f;
	p->reading = false;
	cat_active(p->c);
	if (status == RILL_EOF) {
		p->eof = true;
		cat_pump_maybe_end(p);
		return;
	}
	if (status != 0 && p->inflight > 0) {
		/* What was read before the error is written out first (a
		 * WebSocket peer's error Close follows its last data). */
		p->rd_err = status;
		p->eof = true;
		return;
	}
	if (status != 0) {
		char what[64];
		snprintf(what, sizeof what, "read from %s", p->src_name);
		cat_fail(p->c, what, p->src, status);
		return;
	}
	p->bytes += b->len;
	int err = rill_write(p->dst, b, cat_write_cb, p);
	rill_buf_release(b);
	if (err != 0) {
		char what[64];
		snprintf(what, sizeof what, "write to %s", p->dst_name);
		cat_fail(p->c, what, p->dst, err);
		return;
	}
	p->inflight++;
	if (p->inflight < CAT_INFLIGHT)
		cat_pump_read(p);
}

static void cat_pump_read(struct cat_pump *p)
{
	p->reading = true;
	int err = rill_read(p->src, cat_read_cb, p);
	if (err != 0) {
		p->reading = false;
		char what[64];
		snprintf(what, sizeof what, "read from %s", p->src_name);
		cat_fail(p->c, what, p->src, err);
	}
}

static void cat_on_progress(uv_timer_t *t)
{
	struct cat *c = t->data;
	double dt = cat_now(c->loop) - c->t0;
	double total = (double)(c->up.bytes + c->down.bytes);
	fprintf(stderr, "\rrill: %llu bytes in, %llu bytes out, %.1f MB/s     ",
	        (unsigned long long)c->down.bytes,
	        (unsigned long long)c->up.bytes,
	        dt > 0 ? total / dt / 1e6 : 0.0);
}

static void cat_start(struct cat *c)
{
	c->up = (struct cat_pump){.c = c,
	                          .src = c->io,
	                          .dst = c->net,
	                          .src_name = "stdin",
	                          .dst_name = "peer"};
	c->down = (struct cat_pump){.c = c,
	                            .src = c->net,
	                            .dst = c->io,
	                            .src_name = "peer",
	                            .dst_name = "stdout"};
	c->t0 = cat_now(c->loop);
	if (c->show_progress)
		uv_timer_start(&c->progress, cat_on_progress, 1000, 1000);
	cat_pump_read(&c->down);
	if (!c->finished)
		cat_pump_read(&c->up);
}

static void cat_io_opened(struct rill_flow *f, int status, const char *errmsg,
                          void *ud)
{
	struct cat *c = ud;
	if (status != 0) {
		cli_error("stdio: %s", errmsg);
		rill_close(c->net);
		c->net = NULL;
		cat_finish(c, 1);
		return;
	}
	c->io = f;
	cat_start(c);
}

static void cat_have_net(struct cat *c, struct rill_flow *f)
{
	c->net = f;
	int err = rill_connect(c->loop, "stdio:", NULL, cat_io_opened, c);
	if (err != 0) {
		cli_error("stdio: %s", rill_last_errmsg());
		cat_finish(c, 1);
	}
}

static void cat_connected(struct rill_flow *f, int status, const char *errmsg,
                          void *ud)
{
	struct cat *c = ud;
	if (status != 0) {
		cli_error("%s", errmsg);
		cat_finish(c, 1);
		return;
	}
	cat_have_net(c, f);
}

static void cat_accepted(struct rill_listener *l, struct rill_flow *f,
                         int status, const char *errmsg, void *ud)
{
	struct cat *c = ud;
	(void)l;
	if (status != 0) {
		cli_error("accept: %s", errmsg);
		return; /* keep waiting for a good one */
	}
	if (c->net != NULL || c->finished) {
		rill_close(f);
		return;
	}
	/* Serve one connection: stop listening now. */
	rill_listener_close(c->lst);
	c->lst = NULL;
	cat_have_net(c, f);
}

static void cat_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: rill cat [-l] [--progress] [-v] [-t MS]\n"
	    "                [--idle-timeout S] [--linger S] URI\n"
	    "\n"
	    "Copies standard input to the flow named by URI and the flow's\n"
	    "data to standard output, with half-close: at the end of\n"
	    "standard input the flow's write side is shut down, and the\n"
	    "flow is read until its end of file. A flow that cannot\n"
	    "half-close (xen-vchan, hybrid-vsock, vchan with half_close=0)\n"
	    "is not shut down, which would cut the reply: it stays open\n"
	    "and is read until the peer closes it. Exits 0 after a clean\n"
	    "end, 1 with a one-line reason on any error or cut-short end.\n"
	    "\n"
	    "  -l, --listen      listen on URI and serve one connection\n"
	    "      --progress    show bytes and rate on stderr every second\n"
	    "  -t, --timeout MS  connect deadline in milliseconds\n"
	    "      --idle-timeout S  end when no byte moved either way for\n"
	    "                    S seconds (decimals allowed): exit 0 after\n"
	    "                    the end of input, else 1 (default: never)\n"
	    "      --linger S    after the end of input, wait at most S\n"
	    "                    seconds for the flow to end; then close it\n"
	    "                    and exit 1 (default: no limit)\n"
	    "  -v, --verbose     print the address listened on to stderr\n"
	    "  -h, --help        show this help\n"
	    "\n"
	    "URIs: tcp://host:port, tcp://[::1]:port, unix:/path,\n"
	    "unix:@abstract, - (stdio), and layers such as shut+unix:/p.\n"
	    "Examples:\n"
	    "  rill cat tcp://example.org:80 < request.txt\n"
	    "  rill cat -l unix:/tmp/s.sock > received.bin\n");
}

int cli_cat(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"listen", no_argument, NULL, 'l'},
	    {"progress", no_argument, NULL, 'p'},
	    {"timeout", required_argument, NULL, 't'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"idle-timeout", required_argument, NULL, 'I'},
	    {"linger", required_argument, NULL, 'L'},
	    {NULL, 0, NULL, 0},
	};
	bool listen = false;
	struct cat c = {0};
	struct rill_connect_opts copts = {0};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "lt:vh", lopts, NULL)) != -1) {
		switch (opt) {
		case 'l': listen = true; break;
		case 'p': c.show_progress = true; break;
		case 'v': c.verbose = true; break;
		case 't': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0')
				return cli_usage_error(
				    "cat", "bad timeout '%s'", optarg);
			copts.timeout_ms = v;
			break;
		}
		case 'I':
		case 'L':
			if (!cli_parse_secs(optarg, opt == 'I' ? &c.idle_ms
			                                       : &c.linger_ms))
				return cli_usage_error(
				    "cat", "bad number of seconds '%s'",
				    optarg);
			break;
		case 'h': cat_usage(stdout); return 0;
		default: return cli_usage_error("cat", "bad option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("cat", optind == argc
		                                  ? "missing URI"
		                                  : "too many arguments");
	const char *uri = argv[optind];
	if (strcmp(uri, "-") == 0 || strncmp(uri, "stdio:", 6) == 0)
		return cli_usage_error("cat", "URI is standard input/output "
		                              "already; give a socket URI");
	/* Writes to a pipe whose reader left must fail with an error, not
	 * kill the process. */
	signal(SIGPIPE, SIG_IGN);
	uv_loop_t loop;
	uv_loop_init(&loop);
	c.loop = &loop;
	c.stdin_tty = isatty(0);
	uv_timer_init(&loop, &c.progress);
	c.progress.data = &c;
	uv_timer_init(&loop, &c.idle);
	c.idle.data = &c;
	uv_timer_init(&loop, &c.linger);
	c.linger.data = &c;
	int err;
	if (listen) {
		err = rill_listen(&loop, uri, NULL, cat_accepted, &c, &c.lst);
		if (err == 0 && c.verbose) {
			char buf[512];
			if (rill_listener_uri(c.lst, buf, sizeof buf) == 0)
				fprintf(stderr, "rill: listening on %s\n", buf);
		}
	} else {
		err = rill_connect(&loop, uri, &copts, cat_connected, &c);
	}
	if (err != 0) {
		cli_error("%s", rill_last_errmsg()[0] ? rill_last_errmsg()
		                                      : rill_strerror(err));
		uv_close((uv_handle_t *)&c.progress, NULL);
		uv_close((uv_handle_t *)&c.idle, NULL);
		uv_close((uv_handle_t *)&c.linger, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		cli_wait_closed(&loop);
		uv_loop_close(&loop);
		return 1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	/* The flows closed at the end may still be in their close handshake
	 * (shut+): exit only once it is over. */
	cli_wait_closed(&loop);
	uv_loop_close(&loop);
	return c.status;
}
