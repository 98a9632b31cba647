/*
 * The conformance suite on the shut layer and the hybrid-vsock transport:
 *   shut+pair          the layer over the in-memory pair
 *   shut+unix          the layer over Unix sockets
 *   shut+hybrid-vsock  the layer over hybrid vsock, through the emulated
 *                      Firecracker muxer, which collapses half-close: the
 *                      layer must make half-close work anyway
 *   hybrid-vsock       plain, through the same muxer (no half-close)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"
#include "harness.h"
#include "vsock_fixture.h"

#define SHUT_BIG (16u * 1024 * 1024)

static int shut_pair_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                          struct rill_flow **b)
{
	(void)arg;
	int err = rill_pair(loop, 0, a, b);
	if (err != 0)
		return err;
	err = rill_shut_attach(*a, a);
	if (err != 0) {
		rill_close(*b);
		return err;
	}
	return rill_shut_attach(*b, b);
}

static const struct conf_factory shut_pair_factory = {
    .name = "shut+pair",
    .make = shut_pair_make,
    .big_bytes = SHUT_BIG,
};
CONF_REGISTER(shut_pair_factory)

/* One fixture per process: every check runs in its own. */
static struct vfx fx;

static void fx_cleanup(uv_loop_t *loop, void *arg)
{
	(void)loop;
	(void)arg;
	vfx_cleanup(&fx);
}

static int shut_unix_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                          struct rill_flow **b)
{
	(void)arg;
	vfx_init(&fx);
	char uri[160];
	snprintf(uri, sizeof uri, "shut+unix:%s/s", fx.dir);
	return vfx_open_pair(loop, uri, uri, a, b);
}

static const struct conf_factory shut_unix_factory = {
    .name = "shut+unix",
    .make = shut_unix_make,
    .cleanup = fx_cleanup,
    .big_bytes = SHUT_BIG,
};
CONF_REGISTER(shut_unix_factory)

/* The "guest" listens on guest/52; the host connects through the VMM. */
static int hybrid_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                       struct rill_flow **b)
{
	const char *layer = arg;
	vfx_init(&fx);
	vfx_start_emulator(&fx, "firecracker", NULL);
	char luri[200], curi[200];
	snprintf(luri, sizeof luri, "%sunix:%s/52", layer, fx.guest);
	snprintf(curi, sizeof curi, "%shybrid-vsock:%s:52", layer, fx.uds);
	return vfx_open_pair(loop, luri, curi, a, b);
}

static const struct conf_factory shut_hybrid_factory = {
    .name = "shut+hybrid-vsock",
    .make = hybrid_make,
    .cleanup = fx_cleanup,
    .arg = "shut+",
    .big_bytes = SHUT_BIG,
};
CONF_REGISTER(shut_hybrid_factory)

static const struct conf_factory hybrid_factory = {
    .name = "hybrid-vsock",
    .make = hybrid_make,
    .cleanup = fx_cleanup,
    .arg = "",
    .caps_missing = CONF_NO_HALF_CLOSE,
    .why_missing = "the VMM muxer (Firecracker, Cloud Hypervisor) turns a "
                   "half-close into a full shutdown; use shut+hybrid-vsock",
    .big_bytes = SHUT_BIG,
};
CONF_REGISTER(hybrid_factory)
