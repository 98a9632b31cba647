/*
 * The conformance suite on WebSocket stacks:
 *   ws+pair       the layer over the in-memory pair (client on a, server
 *                 on b), attached with rill_ws_attach
 *   ws+unix       by URI, over Unix sockets (listener and connect)
 *   shut+ws+pair  the shut layer over WebSocket messages: a full
 *                 half-close over a WebSocket
 * A WebSocket's half-close is partial (RFC 6455: a Close ends both
 * directions once the current message is finished), so the ws+ stacks
 * declare CONF_NO_HALF_CLOSE; the shut+ layer above restores it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "conformance.h"
#include "harness.h"
#include "vsock_fixture.h"

#define WS_BIG (8u * 1024 * 1024)

static const char ws_why[] =
    "RFC 6455 has no half-close: the peer's Close ends both directions "
    "once the message in progress is finished (rill/ws.h)";

struct ws_pair_open {
	struct rill_flow *f[1];
	int err;
	int done;
};

static void ws_pair_cb(struct rill_flow *f, int status, void *ud)
{
	struct ws_pair_open *o = ud;
	o->done++;
	if (status != 0) {
		th_note("ws attach: %s", rill_last_errmsg());
		if (o->err == 0)
			o->err = status;
		return;
	}
	o->f[0] = f;
}

/* A client on one end of a pair and a server on the other. */
static int ws_pair_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                        struct rill_flow **b)
{
	(void)arg;
	struct rill_flow *pa, *pb;
	int err = rill_pair(loop, 0, &pa, &pb);
	if (err != 0)
		return err;
	struct ws_pair_open oa = {0}, ob = {0};
	struct rill_ws_opts co = {.path = "/conf", .subprotocols = "x,y"};
	struct rill_ws_opts so = {.path = "/conf", .subprotocols = "y"};
	err = rill_ws_attach(pa, RILL_WS_CLIENT, &co, ws_pair_cb, &oa);
	if (err != 0) {
		rill_close(pb);
		return err;
	}
	err = rill_ws_attach(pb, RILL_WS_SERVER, &so, ws_pair_cb, &ob);
	if (err != 0)
		return err; /* a's side fails when pb goes */
	while (oa.done == 0 || ob.done == 0)
		if (uv_run(loop, UV_RUN_ONCE) == 0)
			break;
	if (oa.err != 0 || ob.err != 0 || oa.f[0] == NULL || ob.f[0] == NULL) {
		rill_close(oa.f[0]);
		rill_close(ob.f[0]);
		return oa.err != 0 ? oa.err : ob.err != 0 ? ob.err : -EIO;
	}
	if (strcmp(rill_ws_subprotocol(oa.f[0]), "y") != 0 ||
	    strcmp(rill_ws_subprotocol(ob.f[0]), "y") != 0) {
		th_note("subprotocol not agreed");
		rill_close(oa.f[0]);
		rill_close(ob.f[0]);
		return -EIO;
	}
	*a = oa.f[0];
	*b = ob.f[0];
	return 0;
}

static const struct conf_factory ws_pair_factory = {
    .name = "ws+pair",
    .make = ws_pair_make,
    .caps_missing = CONF_NO_HALF_CLOSE,
    .why_missing = ws_why,
    .big_bytes = WS_BIG,
};
CONF_REGISTER(ws_pair_factory)

static struct vfx fx;

static void fx_cleanup(uv_loop_t *loop, void *arg)
{
	(void)loop;
	(void)arg;
	vfx_cleanup(&fx);
}

static int ws_unix_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                        struct rill_flow **b)
{
	(void)arg;
	vfx_init(&fx);
	char uri[200];
	snprintf(uri, sizeof uri, "ws+unix:%s/s?path=/w&ping=5", fx.dir);
	return vfx_open_pair(loop, uri, uri, a, b);
}

static const struct conf_factory ws_unix_factory = {
    .name = "ws+unix",
    .make = ws_unix_make,
    .cleanup = fx_cleanup,
    .caps_missing = CONF_NO_HALF_CLOSE,
    .why_missing = ws_why,
    .big_bytes = WS_BIG,
};
CONF_REGISTER(ws_unix_factory)

static int shut_ws_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                        struct rill_flow **b)
{
	int err = ws_pair_make(loop, arg, a, b);
	if (err != 0)
		return err;
	err = rill_shut_attach(*a, a);
	if (err != 0) {
		rill_close(*b);
		return err;
	}
	return rill_shut_attach(*b, b);
}

static const struct conf_factory shut_ws_factory = {
    .name = "shut+ws+pair",
    .make = shut_ws_make,
    .big_bytes = WS_BIG,
};
CONF_REGISTER(shut_ws_factory)

/* ---------------------------------------------------------------------- */
/* The handshake deadline and the answer in the same turn of the loop */

struct hs_race {
	int calls, status;
	char req[4096];
	size_t nreq;
};

static void hs_race_cb(struct rill_flow *f, int status, void *ud)
{
	struct hs_race *r = ud;
	r->calls++;
	r->status = status;
	rill_close(f);
}

static void hs_race_read(struct rill_flow *f, int status, struct rill_buf *b,
                         void *ud)
{
	struct hs_race *r = ud;
	if (status != 0)
		return;
	size_t n = b->len < sizeof r->req - 1 - r->nreq
	               ? b->len
	               : sizeof r->req - 1 - r->nreq;
	memcpy(r->req + r->nreq, b->data, n);
	r->nreq += n;
	r->req[r->nreq] = '\0';
	rill_buf_release(b);
	(void)rill_read(f, hs_race_read, r);
}

/* The 101 for the client's request in r->req (RFC 6455 section 4.2.2). */
static void hs_race_answer(const struct hs_race *r, char *out, size_t len)
{
	const char *k = strstr(r->req, "Sec-WebSocket-Key: ");
	TH_TRUE(k != NULL);
	char buf[128];
	snprintf(buf, sizeof buf, "%.24s258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
	         k + strlen("Sec-WebSocket-Key: "));
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	TH_TRUE(EVP_Digest(buf, strlen(buf), md, &mdlen, EVP_sha1(), NULL) ==
	        1);
	char acc[64];
	EVP_EncodeBlock((unsigned char *)acc, md, (int)mdlen);
	snprintf(out, len,
	         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	         "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
	         acc);
}

/*
 * A hostile server times its (valid) 101 to arrive as the client's
 * handshake deadline expires: the deadline fires first in that turn of
 * the loop (the attach fails with RILL_ETIMEDOUT), and the answer read
 * in the same turn must change nothing. It called the attach callback,
 * already gone, a second time: a NULL call (SIGSEGV) in rill cat.
 */
TEST(ws_client_answer_at_the_deadline)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *raw;
	TH_EQ_INT(rill_pair(&loop, 0, &a, &raw), 0);
	struct hs_race r = {0};
	struct rill_ws_opts o = {.handshake_timeout_ms = 200};
	TH_EQ_INT(rill_ws_attach(a, RILL_WS_CLIENT, &o, hs_race_cb, &r), 0);
	TH_EQ_INT(rill_read(raw, hs_race_read, &r), 0);
	while (strstr(r.req, "\r\n\r\n") == NULL && r.calls == 0)
		TH_TRUE(uv_run(&loop, UV_RUN_ONCE) != 0);
	if (r.calls != 0)
		th_skip("the deadline (200 ms) expired before the request "
		        "was read: the machine is too slow for this race");
	char ans[512];
	hs_race_answer(&r, ans, sizeof ans);
	/* Delivered from the pair's idle callback, after the timers. */
	TH_EQ_INT(rill_write_copy(raw, ans, strlen(ans), NULL, NULL), 0);
	usleep(300 * 1000);
	uv_run(&loop, UV_RUN_ONCE);
	TH_EQ_INT(r.calls, 1);
	TH_EQ_ERR(r.status, RILL_ETIMEDOUT);
	rill_close(raw);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_EQ_INT(r.calls, 1);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}
