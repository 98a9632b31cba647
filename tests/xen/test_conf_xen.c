/*
 * The conformance suite on the Xen backend of vchan, server and client
 * in one dom0 process (run inside the Xen guest, tests/xen/). xen-vchan
 * has no half-close (a libxenvchan peer stops at live 0), so those checks
 * are declared not applicable; shut+xen-vchan adds the half-close and
 * runs every check.
 */
#include <stdio.h>
#include <unistd.h>

#include "conformance.h"
#include "harness.h"

struct xc_wait {
	bool srv_done, cli_done;
	int srv_status, cli_status;
	struct rill_flow *cli;
};

static void xc_server_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct xc_wait *w = ud;
	w->srv_done = true;
	w->srv_status = status;
}

static void xc_client_cb(struct rill_flow *f, int status, const char *msg,
                         void *ud)
{
	struct xc_wait *w = ud;
	if (status != 0 && msg != NULL)
		th_note("xen-vchan client: %s", msg);
	w->cli_done = true;
	w->cli_status = status;
	w->cli = f;
}

static int xc_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                   struct rill_flow **b)
{
	(void)arg;
	static int seq;
	char port[32];
	/* Each check is a process of its own: the pid keeps paths apart. */
	snprintf(port, sizeof port, "conf%d-%d", (int)getpid() % 100000, seq++);
	struct rill_xen_vchan_opts o = {.read_size = 256 * 1024,
	                                .write_size = 256 * 1024};
	static struct xc_wait w;
	w = (struct xc_wait){0};
	int err = rill_xen_vchan_server(loop, 0, port, &o, xc_server_cb, &w, b);
	if (err != 0) {
		th_note("xen-vchan server: %s", rill_last_errmsg());
		return err;
	}
	struct rill_connect_opts c = {.timeout_ms = 20000};
	err = rill_xen_vchan_client(loop, 0, port, NULL, &c, xc_client_cb, &w);
	if (err != 0)
		return err;
	while (!w.cli_done || (w.cli_status == 0 && !w.srv_done))
		uv_run(loop, UV_RUN_ONCE);
	if (w.cli_status != 0)
		return w.cli_status;
	*a = w.cli;
	return w.srv_status;
}

static const struct conf_factory xc_factory = {
    .name = "xen-vchan",
    .make = xc_make,
    .caps_missing = CONF_NO_HALF_CLOSE,
    /* 256 KiB rings each way: a writer whose peer reads nothing stalls
     * long before this; less to drain under emulation. */
    .absorb_bytes = 1u << 20,
    .why_missing = "xen-vchan has no half-close: shutdown(write) sets the "
                   "live byte to 0 and a libxenvchan peer then stops "
                   "writing; use shut+xen-vchan",
};
CONF_REGISTER(xc_factory)

static int xc_shut_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                        struct rill_flow **b)
{
	int err = xc_make(loop, arg, a, b);
	if (err != 0)
		return err;
	err = rill_shut_attach(*a, a);
	if (err != 0) {
		rill_close(*b);
		return err;
	}
	return rill_shut_attach(*b, b);
}

static const struct conf_factory xc_shut_factory = {
    .name = "shut+xen-vchan",
    .make = xc_shut_make,
    .absorb_bytes = 1u << 20,
};
CONF_REGISTER(xc_shut_factory)
