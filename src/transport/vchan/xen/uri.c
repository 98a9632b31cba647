/*
 * The URI scheme xen-vchan:DOMID/PORT?path=P&read_size=N&write_size=N
 * (doc/uri.md). DOMID is the other end's domain: the client's domain for
 * a listener, the server's for a connect. PORT may be left out when path
 * gives the vchan's full xenstore path. Parsing needs no Xen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/vchan/vchan.h"
#include "transport/vchan/xen/xen.h"

struct xen_uri {
	unsigned domid;
	char port[RILL__XEN_PATH_BUF]; /* "" when absent */
	struct rill_xen_vchan_opts opts;
};

static int xen_uri_domid(const struct rill_uri *u, const char *s, size_t n,
                         unsigned *out)
{
	char part[16];
	if (n == 0 || n >= sizeof part)
		return rill__uri_error(u, "bad domain id", u->rest);
	memcpy(part, s, n);
	part[n] = '\0';
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (part[i] < '0' || part[i] > '9')
			return rill__uri_error(u, "bad domain id", part);
		v = v * 10 + (unsigned long)(part[i] - '0');
	}
	if (v > RILL__XEN_DOMID_MAX)
		return rill__uri_error(u, "domain id out of range", part);
	*out = (unsigned)v;
	return 0;
}

static int xen_uri_sizes(const struct rill_uri *u, struct xen_uri *x)
{
	uint64_t max = (uint64_t)1 << RILL__VCHAN_XEN_MAX, rd = 0, wr = 0;
	int err = rill__uri_param_u64(u, "read_size", 1, max, 0, &rd);
	if (err == 0)
		err = rill__uri_param_u64(u, "write_size", 1, max, 0, &wr);
	x->opts.read_size = (size_t)rd;
	x->opts.write_size = (size_t)wr;
	return err;
}

static int xen_uri_parse(const struct rill_uri *u, struct xen_uri *x)
{
	memset(x, 0, sizeof *x);
	const char *rest = u->rest;
	const char *slash = strchr(rest, '/');
	size_t n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	int err = xen_uri_domid(u, rest, n, &x->domid);
	if (err != 0)
		return err;
	x->opts.path = rill__uri_param(u, "path");
	if (slash != NULL) {
		if (!rill__xen_port_ok(slash + 1))
			return rill__uri_error(
			    u, "bad xen-vchan port (want [a-zA-Z0-9_-]+)",
			    slash + 1);
		snprintf(x->port, sizeof x->port, "%s", slash + 1);
	} else if (x->opts.path == NULL) {
		return rill__uri_error(u,
		                       "missing port (DOMID/PORT, or "
		                       "path=) in",
		                       rest);
	}
	if (x->opts.path != NULL && !rill__xen_path_ok(x->opts.path))
		return rill__uri_error(
		    u,
		    "bad xenstore path (want [a-zA-Z0-9_@/-], "
		    "at most 49 bytes)",
		    x->opts.path);
	return xen_uri_sizes(u, x);
}

static int xen_uri_check(const struct rill_uri *u)
{
	struct xen_uri x;
	return xen_uri_parse(u, &x);
}

static int xen_uri_connect(uv_loop_t *loop, const struct rill_uri *u,
                           const struct rill_connect_opts *opts,
                           rill_connect_cb cb, void *ud)
{
	struct xen_uri x;
	int err = xen_uri_parse(u, &x);
	if (err != 0)
		return err;
	return rill_xen_vchan_client(loop, x.domid,
	                             x.port[0] != '\0' ? x.port : NULL, &x.opts,
	                             opts, cb, ud);
}

static int xen_uri_listen(uv_loop_t *loop, const struct rill_uri *u,
                          const struct rill_listen_opts *opts,
                          rill_accept_cb cb, void *ud,
                          struct rill_listener **out)
{
	(void)opts;
	struct xen_uri x;
	int err = xen_uri_parse(u, &x);
	if (err != 0)
		return err;
	/* What a client gives to reach this listener: the domain id in it
	 * is the client's, so only the path carries over as is. */
	char uri[256];
	snprintf(uri, sizeof uri, "xen-vchan:%s%s%s", u->rest,
	         x.opts.path != NULL ? "?path=" : "",
	         x.opts.path != NULL ? x.opts.path : "");
	return rill__xen_vchan_listen(loop, x.domid,
	                              x.port[0] != '\0' ? x.port : NULL,
	                              &x.opts, uri, cb, ud, out);
}

static const char *const xen_uri_params[] = {"path", "read_size", "write_size",
                                             NULL};

const struct rill_transport_scheme rill__xen_vchan_scheme = {
    .name = "xen-vchan",
    .params = xen_uri_params,
    .check = xen_uri_check,
    .connect = xen_uri_connect,
    .listen = xen_uri_listen,
};
