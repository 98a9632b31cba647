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
