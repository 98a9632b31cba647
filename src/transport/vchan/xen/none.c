/*
 * Stand-ins for the Xen vchan backend when rill was built without Xen's
 * libraries (libxengnttab, libxenevtchn, libxenstore from libxen-dev):
 * the API and the xen-vchan: scheme exist everywhere, and say why they
 * cannot work here.
 */
#include "transport/vchan/xen/xen.h"

static int xen_none(void)
{
	rill__set_last_errmsg("xen-vchan: this rill was built without Xen "
	                      "support (libxengnttab, libxenevtchn and "
	                      "libxenstore were not found at build time: "
	                      "install libxen-dev and rebuild)");
	return -ENOTSUP;
}

int rill__xen_server_open(uv_loop_t *loop, unsigned domid, const char *port,
                          const struct rill_xen_vchan_opts *opts, size_t rd,
                          size_t wr, rill_vchan_server_cb cb, void *ud,
                          struct rill_flow **out)
{
	(void)loop;
	(void)domid;
	(void)port;
	(void)opts;
	(void)rd;
	(void)wr;
	(void)cb;
	(void)ud;
	(void)out;
	return xen_none();
}

int rill__xen_client_open(uv_loop_t *loop, unsigned domid, const char *port,
                          const struct rill_xen_vchan_opts *opts,
                          const struct rill_connect_opts *copts,
                          rill_connect_cb cb, void *ud)
{
	(void)loop;
	(void)domid;
	(void)port;
	(void)opts;
	(void)copts;
	(void)cb;
	(void)ud;
	return xen_none();
}

int rill__xen_vchan_listen(uv_loop_t *loop, unsigned domid, const char *port,
                           const struct rill_xen_vchan_opts *opts,
                           const char *uri, rill_accept_cb cb, void *ud,
                           struct rill_listener **out)
{
	(void)loop;
	(void)domid;
	(void)port;
	(void)opts;
	(void)uri;
	(void)cb;
	(void)ud;
	(void)out;
	return xen_none();
}
