/*
 * The conformance suite on vchan (half-close declared not applicable:
 * vchan has none in Xen's protocol, see include/rill/vchan.h) and on
 * shut+vchan (every check: the shut layer adds the half-close).
 */
#include "conformance.h"
#include "vchan_util.h"

static int vchan_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                      struct rill_flow **b)
{
	(void)arg;
	static int seq;
	static bool dir;
	if (!dir) {
		vt_private_dir();
		dir = true;
	}
	char port[32];
	snprintf(port, sizeof port, "conf%d", seq++);
	/* a: the connecting side (client), b: the accepted side (server) */
	return vt_pair(loop, port, 256 * 1024, 256 * 1024, b, a);
}

static const struct conf_factory vchan_factory = {
    .name = "vchan",
    .make = vchan_make,
    .caps_missing = CONF_NO_HALF_CLOSE,
    .why_missing = "vchan has no half-close: shutdown(write) marks this "
                   "side closed (live byte 0) and a libxenvchan peer then "
                   "stops writing; use shut+vchan",
};
CONF_REGISTER(vchan_factory)

static int shut_vchan_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                           struct rill_flow **b)
{
	int err = vchan_make(loop, arg, a, b);
	if (err != 0)
		return err;
	err = rill_shut_attach(*a, a);
	if (err != 0) {
		rill_close(*b);
		return err;
	}
	return rill_shut_attach(*b, b);
}

static const struct conf_factory shut_vchan_factory = {
    .name = "shut+vchan",
    .make = shut_vchan_make,
};
CONF_REGISTER(shut_vchan_factory)
