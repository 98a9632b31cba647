/*
 * examples/http_echo.c - a streaming HTTP echo: the response starts at
 * once and carries the request body back piece by piece as it arrives,
 * each buffer read from the request written to the response without a
 * copy, with the back-pressure of both directions.
 *
 *   POST /echo   200, the same bytes (Content-Length when the request
 *                had one, chunked otherwise), same Content-Type
 *   else         404, in one call (rill_http_reply)
 *
 * The handler starts its response before it reads the body. A client that
 * sent "Expect: 100-continue" (curl does for bodies over 1 MiB) is invited
 * with "100 Continue" before the response head, so an upload does not
 * stall for the client's Expect timeout, and the connection stays open.
 *
 * Usage:
 *   http_echo SOCKET_PATH   serves on unix:SOCKET_PATH and checks itself
 *                           on the same loop with the blocking client
 *                           (rill_http_request_sync): a 96 KiB body with
 *                           Expect: 100-continue comes back intact, twice
 *                           on one keep-alive connection. Exits 0 if so.
 *                           (The blocking client writes the whole body
 *                           before it reads the answer: an echo's answer
 *                           must fit in the connection's buffers meanwhile.
 *                           curl reads while it sends: any size.)
 *   http_echo --serve URI   serves on URI (tcp://127.0.0.1:8080...) until
 *                           SIGINT or SIGTERM; prints the URI it listens
 *                           on. Try: curl --data-binary @FILE URL/echo
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rill.h>

/* ---------------------------------------------------------------------- */
/* Server */

static void on_body(struct rill_flow *ex, int status, struct rill_buf *b,
                    void *ud);

static void on_done(struct rill_flow *ex, int status, void *ud)
{
	(void)status;
	(void)ud;
	rill_close(ex); /* the response is complete: the connection goes on */
}

static void on_echoed(struct rill_flow *ex, int status, void *ud)
{
	(void)ud;
	if (status < 0 || rill_read(ex, on_body, NULL) != 0)
		rill_close(ex); /* the client went away: abort */
}

static void on_body(struct rill_flow *ex, int status, struct rill_buf *b,
                    void *ud)
{
	(void)ud;
	if (status == RILL_EOF) { /* the whole body came back: end */
		if (rill_shutdown(ex, RILL_SHUT_WR, on_done, NULL) != 0)
			rill_close(ex);
		return;
	}
	if (status < 0) {
		rill_close(ex);
		return;
	}
	/* The next read waits until this write was taken: back-pressure. */
	int err = rill_write(ex, b, on_echoed, NULL);
	rill_buf_release(b); /* the write holds its own reference */
	if (err != 0)
		rill_close(ex);
}

static void handler(struct rill_flow *ex, void *ud)
{
	(void)ud;
	if (strcmp(rill_http_method(ex), "POST") != 0 ||
	    strcmp(rill_http_target(ex), "/echo") != 0) {
		rill_http_reply(ex, 404, "text/plain", "POST /echo\n", 11);
		return;
	}
	const char *type = rill_http_header(ex, "Content-Type");
	struct rill_http_header h[] = {
	    {"Content-Type", type ? type : "application/octet-stream"}};
	/* Respond first, then read: the order that needs 100 Continue. */
	if (rill_http_respond(ex, 200, h, 1, rill_http_content_length(ex)) !=
	        0 ||
	    rill_read(ex, on_body, NULL) != 0)
		rill_close(ex);
}

static void on_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	if (status != 0) {
		fprintf(stderr, "accept: %s\n", errmsg);
		return;
	}
	rill_http_server_serve(ud, f); /* consumes f, even on failure */
}

/* ---------------------------------------------------------------------- */
/* --serve: until a signal, then a graceful shutdown */

struct serving {
	struct rill_listener *l;
	struct rill_http_server *srv;
	uv_signal_t sigint, sigterm;
};

static void on_stopped(void *ud)
{
	struct serving *s = ud;
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	(void)signum;
	struct serving *s = h->data;
	if (s->l == NULL)
		return;
	rill_listener_close(s->l);
	s->l = NULL;
	/* Requests in progress finish; then on_stopped. */
	rill_http_server_shutdown(s->srv, on_stopped, s);
}

static int serve(uv_loop_t *loop, const char *uri)
{
	struct serving s = {0};
	char where[300];
	if (rill_http_server_new(loop, NULL, handler, NULL, &s.srv) != 0 ||
	    rill_listen(loop, uri, NULL, on_accept, s.srv, &s.l) != 0 ||
	    rill_listener_uri(s.l, where, sizeof where) != 0) {
		fprintf(stderr, "http_echo: %s\n", rill_last_errmsg());
		return 1;
	}
	printf("%s\n", where);
	fflush(stdout);
	uv_signal_init(loop, &s.sigint);
	uv_signal_init(loop, &s.sigterm);
	s.sigint.data = s.sigterm.data = &s;
	uv_signal_start(&s.sigint, on_signal, SIGINT);
	uv_signal_start(&s.sigterm, on_signal, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	rill_http_server_free(s.srv);
	/* Closing flows finish in the background: run until none is left. */
	while (rill_closing_flows(loop) > 0)
		uv_run(loop, UV_RUN_ONCE);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The self-check: the blocking client on the server's own loop */

static int echo_once(struct rill_http_client *hc, const unsigned char *data,
                     size_t len)
{
	struct rill_http_header h[] = {{"Host", "localhost"},
	                               {"Content-Type", "application/x-test"},
	                               {"Expect", "100-continue"}};
	struct rill_flow *ex;
	int err =
	    rill_http_request_sync(hc, "POST", "/echo", h, 3, data, len, &ex);
	if (err != 0) {
		fprintf(stderr, "request: %s\n", rill_strerror(err));
		return 1;
	}
	struct rill_buf *all;
	err = rill_read_all_sync(ex, len + 1, &all);
	int bad = err != 0 || rill_http_status(ex) != 200 || all->len != len ||
	          memcmp(all->data, data, len) != 0;
	printf("HTTP %d, %zu bytes back, %s\n", rill_http_status(ex),
	       all != NULL ? all->len : 0, bad ? "DIFFERENT" : "identical");
	rill_buf_release(all); /* NULL-safe; kept beside an error too */
	rill_close(ex);
	return bad;
}

static int check(uv_loop_t *loop, const char *path)
{
	char uri[300];
	snprintf(uri, sizeof uri, "unix:%s", path);
	struct rill_http_server *srv;
	struct rill_listener *l;
	if (rill_http_server_new(loop, NULL, handler, NULL, &srv) != 0 ||
	    rill_listen(loop, uri, NULL, on_accept, srv, &l) != 0) {
		fprintf(stderr, "server: %s\n", rill_last_errmsg());
		return 1;
	}
	size_t len = 96u << 10;
	unsigned char *data = malloc(len);
	for (size_t i = 0; data != NULL && i < len; i++)
		data[i] = (unsigned char)(i * 7 + (i >> 13));
	struct rill_flow *conn;
	struct rill_http_client *hc;
	int bad = 1;
	if (data != NULL && rill_connect_sync(loop, uri, NULL, &conn) == 0 &&
	    rill_http_client_new(conn, NULL, &hc) == 0) {
		bad = echo_once(hc, data, len);
		bad |=
		    !rill_http_client_reusable(hc); /* no Connection: close */
		bad |= echo_once(hc, data, len / 3);
		rill_http_client_free(hc);
	}
	free(data);
	rill_listener_close(l);
	rill_http_server_free(srv);
	while (rill_closing_flows(loop) > 0)
		uv_run(loop, UV_RUN_ONCE);
	puts(bad ? "FAILED" : "ok");
	return bad;
}

int main(int argc, char **argv)
{
	uv_loop_t *loop = uv_default_loop();
	int rc;
	if (argc == 3 && strcmp(argv[1], "--serve") == 0) {
		rc = serve(loop, argv[2]);
	} else if (argc == 2) {
		rc = check(loop, argv[1]);
	} else {
		fprintf(stderr, "usage: %s SOCKET_PATH | --serve URI\n",
		        argv[0]);
		return 2;
	}
	uv_run(loop, UV_RUN_DEFAULT);
	return uv_loop_close(loop) == 0 ? rc : 1;
}
