/*
 * The public Xen vchan calls (include/rill/xen_vchan.h): every argument
 * is checked here, with or without Xen, before the backend (or its
 * stand-in, none.c) gets them.
 */
#include "transport/vchan/xen/xen.h"

/* Domain id, and the syntax of the port (or of the path when one is
 * given); the length of a default path is checked once our own domain
 * id is known. */
static int xen_api_check(unsigned domid, const char *port,
                         const struct rill_xen_vchan_opts *opts)
{
	const char *given = opts != NULL ? opts->path : NULL;
	if (domid > RILL__XEN_DOMID_MAX) {
		rill__set_last_errmsg("xen-vchan: domain id %u out of range",
		                      domid);
		return RILL_EINVAL;
	}
	if (given != NULL ? rill__xen_path_ok(given) : rill__xen_port_ok(port))
		return 0;
	/* The same message as when the path is made. */
	char path[RILL__XEN_PATH_BUF];
	int err =
	    rill__xen_vchan_path_of(given, 0, domid, port, path, sizeof path);
	return err != 0 ? err : RILL_EINVAL;
}

int rill_xen_vchan_server(uv_loop_t *loop, unsigned domid, const char *port,
                          const struct rill_xen_vchan_opts *opts,
                          rill_vchan_server_cb cb, void *ud,
                          struct rill_flow **out)
{
	rill__set_last_errmsg("%s", "");
	if (loop == NULL || out == NULL)
		return RILL_EINVAL;
	*out = NULL;
	size_t rd, wr;
	int err = xen_api_check(domid, port, opts);
	if (err == 0)
		err = rill__xen_sizes(opts, &rd, &wr);
	if (err != 0)
		return err;
	return rill__xen_server_open(loop, domid, port, opts, rd, wr, cb, ud,
	                             out);
}

int rill_xen_vchan_client(uv_loop_t *loop, unsigned domid, const char *port,
                          const struct rill_xen_vchan_opts *opts,
                          const struct rill_connect_opts *copts,
                          rill_connect_cb cb, void *ud)
{
	rill__set_last_errmsg("%s", "");
	if (loop == NULL || cb == NULL)
		return RILL_EINVAL;
	int err = xen_api_check(domid, port, opts);
	if (err != 0)
		return err;
	return rill__xen_client_open(loop, domid, port, opts, copts, cb, ud);
}
