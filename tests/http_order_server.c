/*
 * A test server for Expect: 100-continue (issue 29): each path is one
 * order in which a handler may start its response and read the body.
 *
 *   /respond-first     rill_http_respond (chunked), then reads the body;
 *                      at its end writes "N bytes\n"
 *   /read-in-callback  rill_read, then rill_http_respond in the same
 *                      callback; the same answer
 *   /read-all-first    reads the whole body, then rill_http_respond_buf
 *   /refuse            rill_http_reply 413 without reading the body
 *   /leak              answers "leaked\n" in full and never closes the
 *                      exchange (handler_timeout_ms catches it)
 *
 * Usage: http_order_server URI [HANDLER_TIMEOUT_MS]. Prints the URI it
 * listens on, then serves until SIGTERM (graceful shutdown, which must
 * end even with a leaked exchange). Server warnings go to stdout
 * prefixed "log: ".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rill.h>

/* The exchanges /leak forgot, closed at exit so that LeakSanitizer
 * sees no lost flow. */
static struct rill_flow *leaked[64];
static size_t nleaked;

struct req {
	struct rill_flow *ex;
	uint64_t got;
	bool buffered; /* answer with respond_buf at EOF */
};

static void on_done(struct rill_flow *ex, int status, void *ud)
{
	(void)status;
	(void)ud;
	rill_close(ex);
}

static void on_body(struct rill_flow *ex, int status, struct rill_buf *b,
                    void *ud)
{
	struct req *r = ud;
	if (status == 0) {
		r->got += b->len;
		rill_buf_release(b);
		if (rill_read(ex, on_body, r) != 0) {
			rill_close(ex);
			free(r);
		}
		return;
	}
	char line[64];
	int n = snprintf(line, sizeof line, "%llu bytes\n",
	                 (unsigned long long)r->got);
	if (status != RILL_EOF) {
		rill_close(ex);
	} else if (r->buffered) {
		rill_http_reply(ex, 200, "text/plain", line, (size_t)n);
	} else if (rill_write_copy(ex, line, (size_t)n, NULL, NULL) != 0 ||
	           rill_shutdown(ex, RILL_SHUT_WR, on_done, NULL) != 0) {
		rill_close(ex);
	}
	free(r);
}

static void handler(struct rill_flow *ex, void *ud)
{
	(void)ud;
	const char *t = rill_http_target(ex);
	struct rill_http_header h[] = {{"Content-Type", "text/plain"}};
	if (strcmp(t, "/refuse") == 0) {
		rill_http_reply(ex, 413, "text/plain", "too large\n", 10);
		return;
	}
	if (strcmp(t, "/leak") == 0) {
		/* The mistake: a complete response, and no rill_close. */
		struct rill_buf *b = rill_buf_copy("leaked\n", 7);
		rill_http_respond_buf(ex, 200, h, 1, b);
		rill_buf_release(b);
		if (nleaked < sizeof leaked / sizeof *leaked)
			leaked[nleaked++] = ex;
		else
			rill_close(ex);
		return;
	}
	struct req *r = calloc(1, sizeof *r);
	if (r == NULL) {
		rill_close(ex);
		return;
	}
	r->ex = ex;
	int err = 0;
	if (strcmp(t, "/respond-first") == 0) {
		err = rill_http_respond(ex, 200, h, 1, -1);
		if (err == 0)
			err = rill_read(ex, on_body, r);
	} else if (strcmp(t, "/read-in-callback") == 0) {
		err = rill_read(ex, on_body, r);
		if (err == 0)
			err = rill_http_respond(ex, 200, h, 1, -1);
	} else if (strcmp(t, "/read-all-first") == 0) {
		r->buffered = true;
		err = rill_read(ex, on_body, r);
	} else {
		free(r);
		rill_http_reply(ex, 404, NULL, NULL, 0);
		return;
	}
	if (err != 0) {
		/* A read that was started owns r until its callback. */
		rill_close(ex);
	}
}

static void on_log(void *ud, const char *msg)
{
	(void)ud;
	printf("log: %s\n", msg);
	fflush(stdout);
}

static void on_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	if (status == 0)
		rill_http_server_serve(ud, f);
}

struct serving {
	struct rill_listener *l;
	struct rill_http_server *srv;
	uv_signal_t sig;
};

static void on_stopped(void *ud)
{
	struct serving *s = ud;
	printf("stopped\n");
	fflush(stdout);
	uv_close((uv_handle_t *)&s->sig, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	(void)signum;
	struct serving *s = h->data;
	if (s->l == NULL)
		return;
	rill_listener_close(s->l);
	s->l = NULL;
	rill_http_server_shutdown(s->srv, on_stopped, s);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	uv_loop_t *loop = uv_default_loop();
	struct rill_http_server_opts o = {.log = on_log};
	if (argc > 2)
		o.handler_timeout_ms = strtoull(argv[2], NULL, 10);
	struct serving s = {0};
	char where[300];
	if (rill_http_server_new(loop, &o, handler, NULL, &s.srv) != 0 ||
	    rill_listen(loop, argv[1], NULL, on_accept, s.srv, &s.l) != 0 ||
	    rill_listener_uri(s.l, where, sizeof where) != 0) {
		fprintf(stderr, "%s\n", rill_last_errmsg());
		return 1;
	}
	printf("%s\n", where);
	fflush(stdout);
	uv_signal_init(loop, &s.sig);
	s.sig.data = &s;
	uv_signal_start(&s.sig, on_signal, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	rill_http_server_free(s.srv);
	for (size_t i = 0; i < nleaked; i++)
		rill_close(leaked[i]);
	while (rill_closing_flows(loop) > 0)
		uv_run(loop, UV_RUN_ONCE);
	uv_run(loop, UV_RUN_DEFAULT);
	return uv_loop_close(loop) == 0 ? 0 : 1;
}
