/*
 * HTTP server and client over in-memory pairs: raw bytes in, raw bytes
 * out for the server (so malformed and hostile input is easy to state),
 * and rill's client against rill's server.
 */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "rill.h"

static uv_loop_t *loop;

/* ---- a test application ------------------------------------------------ */

struct app_ex {
	struct rill_flow *ex;
	char body[65536];
	size_t len;
};

static void app_echo_read(struct rill_flow *ex, int st, struct rill_buf *b,
                          void *ud)
{
	struct app_ex *a = ud;
	if (st == 0) {
		size_t n = b->len;
		if (n > sizeof a->body - a->len)
			n = sizeof a->body - a->len;
		memcpy(a->body + a->len, b->data, n);
		a->len += n;
		rill_buf_release(b);
		rill_read(ex, app_echo_read, a);
		return;
	}
	if (st == RILL_EOF) {
		struct rill_buf *out = rill_buf_copy(a->body, a->len);
		rill_http_respond_buf(ex, 200, NULL, 0, out);
		rill_buf_release(out);
	}
	rill_close(ex);
	free(a);
}

static void app_stream_shut(struct rill_flow *ex, int st, void *ud)
{
	(void)st;
	(void)ud;
	rill_close(ex);
}

/* /big: one 1 MiB write; its result, and an exchange /forget left open */
static int big_status = 1;
static struct rill_flow *forgotten;

static void app_big_wrote(struct rill_flow *ex, int st, void *ud)
{
	(void)ud;
	big_status = st;
	rill_close(ex);
}

static void app_big(struct rill_flow *ex)
{
	size_t n = 1u << 20;
	struct rill_buf *b = rill_buf_new(n);
	memset(b->data, 'b', n);
	b->len = n;
	if (rill_http_respond(ex, 200, NULL, 0, (int64_t)n) != 0 ||
	    rill_write(ex, b, app_big_wrote, NULL) != 0)
		rill_close(ex);
	rill_buf_release(b);
}

static void handler(struct rill_flow *ex, void *ud)
{
	(void)ud;
	const char *t = rill_http_target(ex);
	if (strcmp(t, "/big") == 0) {
		app_big(ex);
	} else if (strcmp(t, "/forget") == 0) {
		/* The mistake of issue 29: complete, never closed. */
		struct rill_buf *b = rill_buf_copy("kept", 4);
		rill_http_respond_buf(ex, 200, NULL, 0, b);
		rill_buf_release(b);
		forgotten = ex;
	} else if (strcmp(t, "/silent") == 0) {
		forgotten = ex; /* no answer at all */
	} else if (strcmp(t, "/reply") == 0) {
		rill_http_reply(ex, 201, "text/plain", "made", 4);
	} else if (strcmp(t, "/hello") == 0) {
		struct rill_http_header h[] = {{"Content-Type", "text/plain"}};
		struct rill_buf *b = rill_buf_copy("hello", 5);
		rill_http_respond_buf(ex, 200, h, 1, b);
		rill_buf_release(b);
		rill_close(ex);
	} else if (strcmp(t, "/echo") == 0) {
		struct app_ex *a = calloc(1, sizeof *a);
		a->ex = ex;
		rill_read(ex, app_echo_read, a);
	} else if (strcmp(t, "/stream") == 0) {
		rill_http_respond(ex, 200, NULL, 0, -1);
		rill_write_copy(ex, "abc", 3, NULL, NULL);
		rill_write_copy(ex, "defgh", 5, NULL, NULL);
		rill_shutdown(ex, RILL_SHUT_WR, app_stream_shut, NULL);
	} else if (strcmp(t, "/none") == 0) {
		rill_close(ex);
	} else {
		rill_http_respond_buf(ex, 404, NULL, 0, NULL);
		rill_close(ex);
	}
}

static struct rill_http_server *srv;

static struct rill_flow *start(const struct rill_http_server_opts *o)
{
	loop = uv_default_loop();
	struct rill_flow *a, *b;
	if (rill_pair(loop, 0, &a, &b) != 0)
		TH_FAIL("pair");
	if (srv == NULL)
		TH_OK(rill_http_server_new(loop, o, handler, NULL, &srv));
	TH_OK(rill_http_server_serve(srv, b));
	return a;
}

/* Sends raw bytes, half-closes, returns everything the server answered
 * (NUL-terminated, caller frees). */
static char *raw(const struct rill_http_server_opts *o, const char *req,
                 size_t len, bool half_close)
{
	struct rill_flow *c = start(o);
	TH_OK(rill_write_sync(c, req, len));
	if (half_close)
		TH_OK(rill_shutdown_sync(c, RILL_SHUT_WR));
	struct rill_buf *all = NULL;
	int err = rill_read_all_sync(c, 1 << 20, &all);
	TH_OK(err);
	char *s = malloc(all->len + 1);
	memcpy(s, all->data, all->len);
	s[all->len] = '\0';
	rill_buf_release(all);
	rill_close(c);
	return s;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

#define RAW(o, s) raw((o), (s), sizeof(s) - 1, true)

TEST(get_content_length)
{
	char *r = RAW(NULL, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	TH_CONTAINS(r, "HTTP/1.1 200 OK\r\n");
	TH_CONTAINS(r, "Content-Length: 5\r\n");
	TH_CONTAINS(r, "Content-Type: text/plain\r\n");
	TH_CONTAINS(r, "Date: ");
	TH_CONTAINS(r, "\r\n\r\nhello");
	free(r);
}

TEST(keepalive_pipelining_in_order)
{
	char *r =
	    RAW(NULL, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
	              "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
	              "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
	              "GET /stream HTTP/1.1\r\n\r\n");
	TH_EQ_INT(count(r, "HTTP/1.1 "), 4);
	const char *a = strstr(r, "200 OK"), *b = strstr(r, "404 Not Found");
	const char *c = strstr(r, "xyz"), *d = strstr(r, "3\r\nabc\r\n");
	TH_TRUE(a && b && c && d && a < b && b < c && c < d);
	TH_CONTAINS(r, "Transfer-Encoding: chunked\r\n");
	TH_CONTAINS(r, "5\r\ndefgh\r\n0\r\n\r\n");
	free(r);
}

TEST(chunked_request_body)
{
	char *r = RAW(NULL, "POST /echo HTTP/1.1\r\nTransfer-Encoding: "
	                    "chunked\r\n\r\n4\r\nwiki\r\n5;ext=1\r\npedia\r\n"
	                    "0\r\n\r\n");
	TH_CONTAINS(r, "Content-Length: 9\r\n\r\nwikipedia");
	free(r);
}

TEST(head_has_no_body)
{
	char *r = RAW(NULL, "HEAD /hello HTTP/1.1\r\n\r\n");
	TH_CONTAINS(r, "Content-Length: 5\r\n");
	TH_TRUE(strstr(r, "hello") == NULL);
	free(r);
}

TEST(http10_closes)
{
	char *r = raw(NULL, "GET /hello HTTP/1.0\r\n\r\n", 23, false);
	TH_CONTAINS(r, "Connection: close\r\n");
	TH_CONTAINS(r, "hello");
	free(r);
}

TEST(connection_close_honoured)
{
	char *r = raw(NULL,
	              "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n"
	              "GET /hello HTTP/1.1\r\n\r\n",
	              65, false);
	TH_EQ_INT(count(r, "HTTP/1.1 200"), 1);
	TH_CONTAINS(r, "Connection: close\r\n");
	free(r);
}

TEST(expect_100_continue)
{
	char *r = RAW(NULL, "POST /echo HTTP/1.1\r\nContent-Length: 2\r\n"
	                    "Expect: 100-continue\r\n\r\nok");
	TH_CONTAINS(r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK");
	TH_CONTAINS(r, "\r\n\r\nok");
	free(r);
}

/* The body is read after the response started (issue 29): 100 Continue
 * still comes first, and the connection stays open. */
TEST(expect_100_continue_respond_first)
{
	char *r = RAW(NULL, "POST /stream HTTP/1.1\r\nContent-Length: 2\r\n"
	                    "Expect: 100-continue\r\n\r\nok"
	                    "GET /hello HTTP/1.1\r\n\r\n");
	TH_CONTAINS(r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK");
	TH_TRUE(strstr(r, "Connection: close") == NULL);
	TH_CONTAINS(r, "\r\n\r\nhello");
	free(r);
}

/* A refusal before reading invites nothing and closes. */
TEST(expect_100_continue_refused)
{
	char *r = RAW(NULL, "POST /nope HTTP/1.1\r\nContent-Length: 2\r\n"
	                    "Expect: 100-continue\r\n\r\n");
	TH_TRUE(strstr(r, "100 Continue") == NULL);
	TH_CONTAINS(r, "HTTP/1.1 404 ");
	TH_CONTAINS(r, "Connection: close\r\n");
	free(r);
}

TEST(no_response_gives_500)
{
	char *r = RAW(NULL, "GET /none HTTP/1.1\r\n\r\n");
	TH_CONTAINS(r, "HTTP/1.1 500 ");
	free(r);
}

/* ---- hostile input ----------------------------------------------------- */

struct bad {
	const char *name, *req, *status;
};

static const struct bad bad_requests[] = {
    {"garbage", "\x01\x02\x03 junk\r\n\r\n", "400"},
    {"http09_no_version", "GET /\r\n\r\n", "505"},
    {"bad_method", "G(T / HTTP/1.1\r\n\r\n", "400"},
    {"space_in_target", "GET /a b HTTP/1.1\r\n\r\n", "400"},
    {"http2_version", "GET / HTTP/2.0\r\n\r\n", "505"},
    {"http3_version", "GET / HTTP/3.1\r\n\r\n", "505"},
    {"lf_injection_value", "GET / HTTP/1.1\r\nX: a\rb: c\r\n\r\n", "400"},
    {"space_before_colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", "400"},
    {"obs_fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "400"},
    {"cl_and_te",
     "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "400"},
    {"two_cl",
     "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n"
     "Content-Length: 4\r\n\r\nabcd",
     "400"},
    {"bad_cl", "POST /echo HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "400"},
    {"neg_cl", "POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400"},
    {"te_not_chunked_last",
     "POST /echo HTTP/1.1\r\nTransfer-Encoding: "
     "chunked, gzip\r\n\r\n",
     "400"},
    {"bad_chunk_size",
     "POST /echo HTTP/1.1\r\nTransfer-Encoding: "
     "chunked\r\n\r\nzz\r\n",
     "400"},
    {"bad_expect",
     "POST /echo HTTP/1.1\r\nContent-Length: 1\r\n"
     "Expect: 200-ok\r\n\r\nx",
     "400"},
    {"huge_cl",
     "POST /echo HTTP/1.1\r\nContent-Length: "
     "99999999999\r\n\r\n",
     "413"},
    {"nul_in_header", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", "400"},
};

static void bad_request_test(void *arg)
{
	const struct bad *b = arg;
	size_t len = strlen(b->req);
	if (strcmp(b->name, "nul_in_header") == 0)
		len = 27;
	char *r = raw(NULL, b->req, len, true);
	char want[64];
	snprintf(want, sizeof want, "HTTP/1.1 %s ", b->status);
	/* llhttp unfolds obs-fold into one value, which RFC 9112 5.2
	 * allows instead of a 400; either way no line break gets through. */
	if (strcmp(b->name, "obs_fold") == 0 &&
	    strncmp(r, "HTTP/1.1 404", 12) == 0)
		snprintf(want, sizeof want, "HTTP/1.1 404 ");
	TH_TRUE(strncmp(r, want, strlen(want)) == 0 ||
	        (th_note("got: %.60s", r), false));
	if (strcmp(want, "HTTP/1.1 404 ") != 0)
		TH_CONTAINS(r, "Connection: close");
	free(r);
	/* The server keeps serving others. */
	r = RAW(NULL, "GET /hello HTTP/1.1\r\n\r\n");
	TH_CONTAINS(r, "200 OK");
	free(r);
}

__attribute__((constructor)) static void reg_bad(void)
{
	for (size_t i = 0; i < sizeof bad_requests / sizeof bad_requests[0];
	     i++) {
		char name[80];
		snprintf(name, sizeof name, "bad/%s", bad_requests[i].name);
		th_add(name, bad_request_test, (void *)&bad_requests[i], 0);
	}
}

TEST(oversize_headers_431)
{
	struct rill_http_server_opts o = {.max_header_bytes = 1024};
	char req[4096];
	int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX: ");
	memset(req + n, 'a', 2000);
	n += 2000;
	n += snprintf(req + n, sizeof req - (size_t)n, "\r\n\r\n");
	char *r = raw(&o, req, (size_t)n, true);
	TH_TRUE(strncmp(r, "HTTP/1.1 431 ", 13) == 0);
	free(r);
}

TEST(too_many_headers_431)
{
	struct rill_http_server_opts o = {.max_headers = 10};
	char req[4096];
	int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 20; i++)
		n += snprintf(req + n, sizeof req - (size_t)n, "X%d: y\r\n", i);
	n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
	char *r = raw(&o, req, (size_t)n, true);
	TH_TRUE(strncmp(r, "HTTP/1.1 431 ", 13) == 0);
	free(r);
}

TEST(chunked_body_over_limit_413)
{
	struct rill_http_server_opts o = {.max_body = 8};
	char *r =
	    raw(&o,
	        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	        "10\r\n0123456789abcdef\r\n0\r\n\r\n",
	        78, true);
	TH_TRUE(strncmp(r, "HTTP/1.1 413 ", 13) == 0);
	free(r);
}

TEST(slowloris_header_timeout_408)
{
	struct rill_http_server_opts o = {.header_timeout_ms = 200};
	/* Never finish the head; do not half-close. */
	char *r = raw(&o, "GET / HTTP/1.1\r\nX-Slow: a", 25, false);
	TH_TRUE(strncmp(r, "HTTP/1.1 408 ", 13) == 0);
	free(r);
}

TEST(idle_keepalive_timeout_closes)
{
	/* The idle timer also runs before the first request: long enough
	 * that a loaded machine reads the request before it fires. */
	struct rill_http_server_opts o = {.idle_timeout_ms = 1000};
	char *r = raw(&o, "GET /hello HTTP/1.1\r\n\r\n", 23, false);
	TH_CONTAINS(r, "hello"); /* then EOF after the idle timeout */
	free(r);
}

TEST(slow_body_timeout_408)
{
	struct rill_http_server_opts o = {.body_timeout_ms = 100};
	char *r = raw(&o, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nab",
	              45, false);
	TH_TRUE(strncmp(r, "HTTP/1.1 408 ", 13) == 0);
	free(r);
}

/* A client that stops reading (issue 23): the response write that makes
 * no progress for send_timeout_ms fails with RILL_ETIMEDOUT and the
 * connection goes. A pair of 4 KiB stands for a socket's buffers. */
TEST(send_timeout_drops_non_reader)
{
	loop = uv_default_loop();
	struct rill_http_server_opts o = {.send_timeout_ms = 200};
	struct rill_flow *a, *b;
	TH_OK(rill_pair(loop, 4096, &a, &b));
	TH_OK(rill_http_server_new(loop, &o, handler, NULL, &srv));
	TH_OK(rill_http_server_serve(srv, b));
	const char *req = "GET /big HTTP/1.1\r\n\r\n";
	TH_OK(rill_write_copy(a, req, strlen(req), NULL, NULL));
	uint64_t t0 = uv_now(loop);
	while (big_status == 1 && uv_now(loop) - t0 < 5000 &&
	       uv_run(loop, UV_RUN_ONCE) != 0)
		;
	TH_EQ_ERR(big_status, RILL_ETIMEDOUT);
	TH_EQ_INT(rill_http_server_connections(srv), 0);
	rill_close(a);
	rill_http_server_free(srv);
	uv_run(loop, UV_RUN_DEFAULT);
}

static char logged[512];
static void on_log(void *ud, const char *msg)
{
	(void)ud;
	snprintf(logged, sizeof logged, "%s", msg);
}

/* A handler that never closes its exchange (issue 29): a warning through
 * the log callback, and the connection is let go. */
TEST(handler_timeout_warns_and_aborts)
{
	struct rill_http_server_opts o = {.handler_timeout_ms = 100,
	                                  .log = on_log};
	char *r = raw(&o, "GET /forget HTTP/1.1\r\n\r\n", 24, false);
	TH_CONTAINS(r, "\r\n\r\nkept");
	TH_CONTAINS(logged, "GET /forget");
	TH_CONTAINS(logged, "did not close the exchange");
	TH_EQ_INT(rill_http_server_connections(srv), 0);
	free(r);
	/* Its calls fail now; the owner still closes it. */
	TH_TRUE(forgotten != NULL);
	TH_TRUE(rill_write_sync(forgotten, "x", 1) < 0);
	rill_close(forgotten);
	rill_http_server_free(srv);
	uv_run(loop, UV_RUN_DEFAULT);
}

/* No answer at all: 500 after the handler timeout. */
TEST(handler_timeout_silent_500)
{
	struct rill_http_server_opts o = {.handler_timeout_ms = 100,
	                                  .log = on_log};
	char *r = raw(&o, "GET /silent HTTP/1.1\r\n\r\n", 24, false);
	TH_TRUE(strncmp(r, "HTTP/1.1 500 ", 13) == 0);
	TH_CONTAINS(logged, "neither read, wrote nor closed");
	free(r);
	rill_close(forgotten);
	rill_http_server_free(srv);
	uv_run(loop, UV_RUN_DEFAULT);
}

/* A server with max_connections 1, serving b1 (its peer in *a1), and a
 * second pair not served yet. */
static void one_slot_taken(struct rill_flow **a1, struct rill_flow **a2,
                           struct rill_flow **b2)
{
	loop = uv_default_loop();
	struct rill_http_server_opts o = {.max_connections = 1};
	struct rill_flow *b1;
	TH_OK(rill_pair(loop, 0, a1, &b1));
	TH_OK(rill_pair(loop, 0, a2, b2));
	TH_OK(rill_http_server_new(loop, &o, handler, NULL, &srv));
	TH_OK(rill_http_server_serve(srv, b1));
}

TEST(max_connections)
{
	struct rill_flow *a1, *a2, *b2;
	one_slot_taken(&a1, &a2, &b2);
	TH_EQ_ERR(rill_http_server_serve(srv, b2), -EBUSY);
	TH_EQ_INT(rill_http_server_connections(srv), 1);
	struct rill_buf *got = NULL;
	TH_EQ_ERR(rill_read_sync(a2, &got), RILL_EOF); /* closed at once */
	rill_close(a1);
	rill_close(a2);
	rill_http_server_free(srv);
	uv_run(loop, UV_RUN_DEFAULT);
}

/* At the limit, a keep-alive connection waiting for its next request is
 * closed for a new one (a fresh silent one, as above, is not). */
TEST(max_connections_reuses_idle_keepalive)
{
	struct rill_flow *a1, *a2, *b2;
	one_slot_taken(&a1, &a2, &b2);
	const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
	TH_OK(rill_write_sync(a1, req, sizeof req - 1));
	/* The whole response (head and body may come apart): now idle. */
	struct rill_buf *got = NULL;
	bool whole = false;
	while (!whole) {
		TH_OK(rill_read_sync(a1, &got));
		whole = got->len >= 5 &&
		        memcmp(got->data + got->len - 5, "hello", 5) == 0;
		rill_buf_release(got);
	}
	TH_OK(rill_http_server_serve(srv, b2));
	TH_EQ_INT(rill_http_server_connections(srv), 1);
	got = NULL;
	TH_EQ_ERR(rill_read_sync(a1, &got), RILL_EOF); /* closed for b2 */
	TH_OK(rill_write_sync(a2, req, sizeof req - 1));
	TH_OK(rill_read_sync(a2, &got));
	TH_TRUE(got->len > 12 && memcmp(got->data, "HTTP/1.1 200", 12) == 0);
	rill_buf_release(got);
	rill_close(a1);
	rill_close(a2);
	rill_http_server_free(srv);
	uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- client against server -------------------------------------------- */

struct cl_state {
	int status;
	int got_head;
};

static void on_resp(struct rill_flow *ex, int status, void *ud)
{
	struct cl_state *s = ud;
	s->got_head = 1;
	s->status = status == 0 ? rill_http_status(ex) : status;
}

static struct rill_http_client *client(void)
{
	struct rill_flow *c = start(NULL);
	struct rill_http_client *cl;
	TH_OK(rill_http_client_new(c, NULL, &cl));
	return cl;
}

static char *do_request(struct rill_http_client *cl, const char *method,
                        const char *target, const char *body, int64_t clen,
                        int *status)
{
	struct cl_state st = {0};
	struct rill_flow *ex;
	TH_OK(rill_http_request(cl, method, target, NULL, 0, clen, on_resp, &st,
	                        &ex));
	if (body != NULL) {
		TH_OK(rill_write_sync(ex, body, strlen(body)));
		if (clen < 0)
			TH_OK(rill_shutdown_sync(ex, RILL_SHUT_WR));
	}
	struct rill_buf *all = NULL;
	TH_OK(rill_read_all_sync(ex, 1 << 20, &all));
	TH_TRUE(st.got_head);
	*status = st.status;
	char *s = malloc(all->len + 1);
	memcpy(s, all->data, all->len);
	s[all->len] = '\0';
	rill_buf_release(all);
	rill_close(ex);
	return s;
}

TEST(client_keepalive_reuse)
{
	struct rill_http_client *cl = client();
	int st;
	for (int i = 0; i < 3; i++) {
		char *b = do_request(cl, "GET", "/hello", NULL, 0, &st);
		TH_EQ_INT(st, 200);
		TH_EQ_STR(b, "hello");
		free(b);
		uv_run(loop, UV_RUN_NOWAIT);
		TH_TRUE(rill_http_client_reusable(cl));
	}
	TH_EQ_INT(rill_http_server_connections(srv), 1);
	char *b = do_request(cl, "GET", "/stream", NULL, 0, &st);
	TH_EQ_STR(b, "abcdefgh");
	free(b);
	b = do_request(cl, "POST", "/echo", "chunky body", -1, &st);
	TH_EQ_STR(b, "chunky body");
	free(b);
	b = do_request(cl, "POST", "/echo", "fixed", 5, &st);
	TH_EQ_STR(b, "fixed");
	free(b);
	b = do_request(cl, "HEAD", "/hello", NULL, 0, &st);
	TH_EQ_INT(st, 200);
	TH_EQ_STR(b, "");
	free(b);
	b = do_request(cl, "GET", "/missing", NULL, 0, &st);
	TH_EQ_INT(st, 404);
	free(b);
	rill_http_client_free(cl);
	rill_http_server_free(srv);
	uv_run(loop, UV_RUN_DEFAULT);
}

static int shut_done;
static void on_shut(void *ud)
{
	(void)ud;
	shut_done = 1;
}

TEST(graceful_shutdown)
{
	struct rill_http_client *cl = client();
	int st;
	char *b = do_request(cl, "GET", "/hello", NULL, 0, &st);
	free(b);
	uv_run(loop, UV_RUN_NOWAIT);
	rill_http_server_shutdown(srv, on_shut, NULL);
	while (!shut_done)
		uv_run(loop, UV_RUN_ONCE);
	TH_EQ_INT(rill_http_server_connections(srv), 0);
	struct rill_flow *ex;
	struct cl_state cs = {0};
	/* The connection is gone: the request fails one way or another. */
	int err = rill_http_request(cl, "GET", "/hello", NULL, 0, 0, on_resp,
	                            &cs, &ex);
	if (err == 0) {
		while (!cs.got_head)
			uv_run(loop, UV_RUN_ONCE);
		TH_TRUE(cs.status < 0);
		rill_close(ex);
	} else {
		TH_TRUE(err < 0);
	}
	rill_http_client_free(cl);
	rill_http_server_free(srv);
	uv_run(loop, UV_RUN_DEFAULT);
}

/* The blocking client and the one-call response (issue 29). */
TEST(request_sync_and_reply)
{
	struct rill_http_client *cl = client();
	struct rill_flow *ex = NULL;
	struct rill_http_header h[] = {{"Host", "x"}};
	TH_OK(
	    rill_http_request_sync(cl, "POST", "/echo", h, 1, "ping", 4, &ex));
	TH_EQ_INT(rill_http_status(ex), 200);
	struct rill_buf *all = NULL;
	TH_OK(rill_read_all_sync(ex, 100, &all));
	TH_EQ_INT(all->len, 4);
	TH_EQ_MEM(all->data, "ping", 4);
	rill_buf_release(all);
	rill_close(ex);
	TH_OK(rill_http_request_sync(cl, "GET", "/reply", h, 1, NULL, 0, &ex));
	TH_EQ_INT(rill_http_status(ex), 201);
	TH_EQ_STR(rill_http_header(ex, "Content-Type"), "text/plain");
	TH_OK(rill_read_all_sync(ex, 100, &all));
	TH_EQ_INT(all->len, 4);
	TH_EQ_MEM(all->data, "made", 4);
	rill_buf_release(all);
	rill_close(ex);
	TH_EQ_ERR(rill_http_request_sync(cl, "GET", "/x", h, 1, NULL, 5, &ex),
	          RILL_EINVAL);
	TH_TRUE(ex == NULL);
	rill_http_client_free(cl);
	rill_http_server_free(srv);
	uv_run(loop, UV_RUN_DEFAULT);
}

/* The client's response-head timeout runs once the request is sent
 * (issue 23: it has a default now; 30 s is too long for a test, so the
 * behaviour is checked with a short one). */
TEST(client_head_timeout)
{
	struct rill_flow *c = start(NULL);
	struct rill_http_client *cl;
	struct rill_http_client_opts co = {.header_timeout_ms = 150};
	TH_OK(rill_http_client_new(c, &co, &cl));
	struct rill_flow *ex = NULL;
	struct rill_http_header h[] = {{"Host", "x"}};
	TH_EQ_ERR(
	    rill_http_request_sync(cl, "GET", "/silent", h, 1, NULL, 0, &ex),
	    RILL_ETIMEDOUT);
	TH_TRUE(ex == NULL);
	rill_close(forgotten);
	rill_http_client_free(cl);
	rill_http_server_free(srv);
	uv_run(loop, UV_RUN_DEFAULT);
}
