/*
 * The conformance suite on HTTP body flows. One exchange is a connected
 * pair of flows: the client's exchange (writes: the chunked request body,
 * reads: the response body) and the server's (reads: the request body,
 * writes: the chunked response body). Half-close is the end of a chunked
 * body, so every check applies, over:
 *   http+pair   client and server over an in-memory pair
 *   http+unix   over a Unix socket (rill_listen / rill_connect), opt-in
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conformance.h"
#include "harness.h"

struct conf_http {
	struct rill_http_server *srv;
	struct rill_http_client *cl;
	struct rill_listener *lis;
	struct rill_flow *server_ex;
	char path[128];
};

static struct conf_http H;

static void ch_handler(struct rill_flow *ex, void *ud)
{
	(void)ud;
	if (rill_http_respond(ex, 200, NULL, 0, -1) != 0) {
		rill_close(ex);
		return;
	}
	H.server_ex = ex;
}

static void ch_head(struct rill_flow *ex, int status, void *ud)
{
	(void)ex;
	(void)status;
	(void)ud;
}

static int ch_exchange(uv_loop_t *loop, struct rill_flow *client_conn,
                       struct rill_flow **a, struct rill_flow **b)
{
	int err = rill_http_client_new(client_conn, NULL, &H.cl);
	if (err != 0)
		return err;
	/* One exchange per connection, so that both ends go away when the
	 * exchange flows are closed and the loop drains. */
	struct rill_http_header h[] = {{"Host", "conformance"},
	                               {"Connection", "close"}};
	err = rill_http_request(H.cl, "POST", "/", h, 2, -1, ch_head, NULL, a);
	if (err != 0)
		return err;
	while (H.server_ex == NULL)
		if (uv_run(loop, UV_RUN_ONCE) == 0 && H.server_ex == NULL)
			return RILL_ECLOSED;
	*b = H.server_ex;
	return 0;
}

static int ch_make_pair(uv_loop_t *loop, void *arg, struct rill_flow **a,
                        struct rill_flow **b)
{
	(void)arg;
	struct rill_flow *x, *y;
	int err = rill_pair(loop, 0, &x, &y);
	if (err != 0)
		return err;
	err = rill_http_server_new(loop, NULL, ch_handler, NULL, &H.srv);
	if (err == 0)
		err = rill_http_server_serve(H.srv, y);
	if (err != 0) {
		rill_close(x);
		return err;
	}
	return ch_exchange(loop, x, a, b);
}

static void ch_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)errmsg;
	(void)ud;
	if (status == 0) {
		rill_http_server_serve(H.srv, f);
		rill_listener_close(l); /* one connection per check */
		H.lis = NULL;
	}
}

static int ch_make_unix(uv_loop_t *loop, void *arg, struct rill_flow **a,
                        struct rill_flow **b)
{
	(void)arg;
	const char *tmp = getenv("TMPDIR");
	snprintf(H.path, sizeof H.path, "unix:%s/rill-conf-http-%d.sock",
	         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", (int)getpid());
	int err = rill_http_server_new(loop, NULL, ch_handler, NULL, &H.srv);
	if (err == 0)
		err = rill_listen(loop, H.path, NULL, ch_accept, NULL, &H.lis);
	if (err != 0)
		return err;
	struct rill_flow *c;
	err = rill_connect_sync(loop, H.path, NULL, &c);
	if (err != 0)
		return err;
	return ch_exchange(loop, c, a, b);
}

static void ch_cleanup(uv_loop_t *loop, void *arg)
{
	(void)arg;
	rill_http_client_free(H.cl);
	rill_http_server_free(H.srv);
	rill_listener_close(H.lis);
	uv_run(loop, UV_RUN_NOWAIT);
	memset(&H, 0, sizeof H);
}

static const struct conf_factory http_pair_factory = {
    .name = "http+pair",
    .make = ch_make_pair,
    .cleanup = ch_cleanup,
    .big_bytes = 16u * 1024 * 1024,
};
CONF_REGISTER(http_pair_factory)

/* http+unix: body flows over a real socket. (Its close_with_writes_pending
 * check used to stall; it passes since the conformance pauses stop the
 * loop when they end, ca7a4d6.) About a minute under the sanitizers,
 * mostly sleeping in the deadline checks. */
static const struct conf_factory http_unix_factory = {
    .name = "http+unix",
    .make = ch_make_unix,
    .cleanup = ch_cleanup,
    .big_bytes = 16u * 1024 * 1024,
};

CONF_REGISTER(http_unix_factory)
