/*
 * examples/http_json.c - an HTTP JSON endpoint served over a Unix socket
 * and queried over it, in one process and one loop.
 *
 *   server   rill_listen("unix:PATH") -> rill_http_server_serve on every
 *            accepted flow; the handler reads the request body and answers
 *            POST /sum {"a": 2, "b": 40} with {"sum": 42, "request": N}.
 *   client   rill_connect("unix:PATH") -> rill_http_client_new; two
 *            requests on one keep-alive connection.
 *
 * Usage: http_json SOCKET_PATH. Exits 0 when both answers are right.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rill.h>

/* ---------------------------------------------------------------------- */
/* Server */

struct req {
	struct rill_flow *ex; /* the exchange: a flow of the request body */
	char body[256];
	size_t len;
};

static unsigned served;

static void reply(struct req *r, int status, const char *json)
{
	struct rill_http_header h[] = {{"Content-Type", "application/json"}};
	struct rill_buf *b = rill_buf_copy(json, strlen(json));
	if (b == NULL || rill_http_respond_buf(r->ex, status, h, 1, b) != 0)
		fprintf(stderr, "server: cannot respond\n");
	rill_buf_release(b); /* the response holds its own reference */
	rill_close(r->ex);   /* response complete: the connection goes on */
	free(r);
}

/* A tiny parser for {"a": N, "b": N}: enough for the example. */
static bool json_int(const char *s, const char *key, long *out)
{
	char k[16];
	snprintf(k, sizeof k, "\"%s\"", key);
	const char *p = strstr(s, k);
	if (p == NULL || (p = strchr(p + strlen(k), ':')) == NULL)
		return false;
	char *end;
	*out = strtol(p + 1, &end, 10);
	return end != p + 1;
}

static void on_body(struct rill_flow *ex, int status, struct rill_buf *b,
                    void *ud)
{
	struct req *r = ud;
	if (status == 0) { /* a piece of the body: keep it, read on */
		size_t n = b->len < sizeof r->body - 1 - r->len
		               ? b->len
		               : sizeof r->body - 1 - r->len;
		memcpy(r->body + r->len, b->data, n);
		r->len += n;
		rill_buf_release(b);
		if (rill_read(ex, on_body, r) != 0)
			reply(r, 500, "{\"error\": \"read\"}");
		return;
	}
	if (status != RILL_EOF) {
		rill_close(ex); /* the connection is gone */
		free(r);
		return;
	}
	r->body[r->len] = '\0';
	long a, bb;
	if (!json_int(r->body, "a", &a) || !json_int(r->body, "b", &bb)) {
		reply(r, 400,
		      "{\"error\": \"want {\\\"a\\\": N, \\\"b\\\": N}\"}");
		return;
	}
	char json[128];
	snprintf(json, sizeof json, "{\"sum\": %ld, \"request\": %u}", a + bb,
	         ++served);
	reply(r, 200, json);
}

static void handler(struct rill_flow *ex, void *ud)
{
	(void)ud;
	struct req *r = calloc(1, sizeof *r);
	if (r == NULL) {
		rill_close(ex); /* answers 500 */
		return;
	}
	r->ex = ex;
	if (strcmp(rill_http_method(ex), "POST") != 0 ||
	    strcmp(rill_http_target(ex), "/sum") != 0) {
		reply(r, 404, "{\"error\": \"POST /sum only\"}");
		return;
	}
	if (rill_read(ex, on_body, r) != 0)
		reply(r, 500, "{\"error\": \"read\"}");
}

static void on_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	if (status == 0)
		rill_http_server_serve(ud, f); /* consumes f */
	else
		fprintf(stderr, "accept: %s\n", errmsg);
}

/* ---------------------------------------------------------------------- */
/* Client */

struct call {
	int status;
	bool done;
	char answer[256];
	size_t len;
};

static void on_answer_body(struct rill_flow *ex, int status, struct rill_buf *b,
                           void *ud)
{
	struct call *c = ud;
	if (status == 0) {
		size_t n = b->len < sizeof c->answer - 1 - c->len
		               ? b->len
		               : sizeof c->answer - 1 - c->len;
		memcpy(c->answer + c->len, b->data, n);
		c->len += n;
		rill_buf_release(b);
		if (rill_read(ex, on_answer_body, c) == 0)
			return;
	}
	c->answer[c->len] = '\0';
	c->done = true;
	rill_close(ex);
}

static void on_response(struct rill_flow *ex, int status, void *ud)
{
	struct call *c = ud;
	if (status != 0) {
		fprintf(stderr, "client: %s\n", rill_strerror(status));
		c->done = true;
		rill_close(ex);
		return;
	}
	c->status = rill_http_status(ex);
	const char *ct = rill_http_header(ex, "content-type");
	printf("HTTP %d, Content-Type: %s\n", c->status, ct ? ct : "(none)");
	if (rill_read(ex, on_answer_body, c) != 0) {
		c->done = true;
		rill_close(ex);
	}
}

/* POSTs json to /sum and runs the loop until the answer is in. */
static int post_sum(uv_loop_t *loop, struct rill_http_client *hc,
                    const char *json, struct call *c)
{
	struct rill_http_header h[] = {{"Host", "localhost"},
	                               {"Content-Type", "application/json"}};
	struct rill_flow *ex;
	size_t n = strlen(json);
	int err = rill_http_request(hc, "POST", "/sum", h, 2, (int64_t)n,
	                            on_response, c, &ex);
	if (err == 0) /* the body; the request ends after n bytes */
		err = rill_write_copy(ex, json, n, NULL, NULL);
	if (err != 0)
		return err;
	while (!c->done)
		uv_run(loop, UV_RUN_ONCE);
	printf("  %s -> %s\n", json, c->answer);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
		return 2;
	}
	uv_loop_t *loop = uv_default_loop();
	char uri[300];
	snprintf(uri, sizeof uri, "unix:%s", argv[1]);

	struct rill_http_server *srv;
	struct rill_listener *l;
	if (rill_http_server_new(loop, NULL, handler, NULL, &srv) != 0 ||
	    rill_listen(loop, uri, NULL, on_accept, srv, &l) != 0) {
		fprintf(stderr, "server: %s\n", rill_last_errmsg());
		return 1;
	}

	struct rill_flow *conn;
	struct rill_http_client *hc;
	if (rill_connect_sync(loop, uri, NULL, &conn) != 0 ||
	    rill_http_client_new(conn, NULL, &hc) != 0) {
		fprintf(stderr, "client: %s\n", rill_last_errmsg());
		return 1;
	}
	struct call c1 = {0}, c2 = {0};
	int bad = post_sum(loop, hc, "{\"a\": 2, \"b\": 40}", &c1) != 0 ||
	          c1.status != 200 ||
	          strcmp(c1.answer, "{\"sum\": 42, \"request\": 1}") != 0;
	bad |= !rill_http_client_reusable(hc); /* keep-alive */
	bad |= post_sum(loop, hc, "{\"a\": -5, \"b\": 3}", &c2) != 0 ||
	       c2.status != 200 ||
	       strcmp(c2.answer, "{\"sum\": -2, \"request\": 2}") != 0;

	rill_http_client_free(hc);
	rill_listener_close(l);
	rill_http_server_free(srv);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	puts(bad ? "FAILED" : "ok");
	return bad;
}
