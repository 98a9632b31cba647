/*
 * Names and paths of Xen vchans (include/rill/xen_vchan.h): needs no Xen,
 * so that URIs can be checked and paths printed anywhere.
 */
#include <stdio.h>
#include <string.h>

#include "transport/vchan/xen/xen.h"

bool rill__xen_port_ok(const char *port)
{
	if (port == NULL || *port == '\0' || strlen(port) > RILL__XEN_PATH_MAX)
		return false;
	for (const char *p = port; *p != '\0'; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Xenstore's path characters (docs/misc/xenstore.txt): alphanumerics
 * and - / _ @. */
static bool xen_path_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '/' ||
	       c == '@';
}

bool rill__xen_path_ok(const char *path)
{
	size_t n = path != NULL ? strlen(path) : 0;
	if (n == 0 || n > RILL__XEN_PATH_MAX || path[n - 1] == '/' ||
	    strstr(path, "//") != NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!xen_path_char(path[i]))
			return false;
	return true;
}

static int xen_default_path(unsigned server, unsigned client, const char *port,
                            char *buf, size_t len)
{
	if (server > RILL__XEN_DOMID_MAX || client > RILL__XEN_DOMID_MAX ||
	    !rill__xen_port_ok(port))
		return RILL_EINVAL;
	/* ocaml-vchan's convention: the server's domain path (xenstore's
	 * /local/domain/<id>), data/vchan/<client>/<port>. */
	int n = snprintf(buf, len, "/local/domain/%u/data/vchan/%u/%s", server,
	                 client, port);
	if (n < 0 || (size_t)n >= len || n > RILL__XEN_PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int rill_xen_vchan_path(unsigned server_domid, unsigned client_domid,
                        const char *port, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return RILL_EINVAL;
	return xen_default_path(server_domid, client_domid, port, buf, len);
}

int rill__xen_vchan_path_of(const char *opts_path, unsigned server,
                            unsigned client, const char *port, char *buf,
                            size_t len)
{
	if (opts_path != NULL) {
		if (!rill__xen_path_ok(opts_path)) {
			rill__set_last_errmsg(
			    "xen-vchan: bad xenstore path \"%s\" (want "
			    "[a-zA-Z0-9_@/-], at most %d bytes: libxenvchan "
			    "peers cut longer ones)",
			    opts_path, RILL__XEN_PATH_MAX);
			return RILL_EINVAL;
		}
		snprintf(buf, len, "%s", opts_path);
		return 0;
	}
	int err = xen_default_path(server, client, port, buf, len);
	if (err == RILL_EINVAL)
		rill__set_last_errmsg("xen-vchan: bad domain id or port name "
		                      "(%u, %u, \"%s\"; want [a-zA-Z0-9_-]+)",
		                      server, client,
		                      port != NULL ? port : "(null)");
	else if (err != 0)
		rill__set_last_errmsg("xen-vchan: the xenstore path of port "
		                      "\"%s\" is longer than %d bytes",
		                      port, RILL__XEN_PATH_MAX);
	return err;
}

int rill__xen_sizes(const struct rill_xen_vchan_opts *opts, size_t *rd,
                    size_t *wr)
{
	const size_t max = (size_t)1 << RILL__VCHAN_XEN_MAX;
	*rd = opts != NULL && opts->read_size != 0 ? opts->read_size
	                                           : RILL__XEN_DEFAULT_RING;
	*wr = opts != NULL && opts->write_size != 0 ? opts->write_size
	                                            : RILL__XEN_DEFAULT_RING;
	if (*rd > max || *wr > max) {
		rill__set_last_errmsg("xen-vchan: ring sizes must be 1..%zu "
		                      "bytes (Xen's limit)",
		                      max);
		return RILL_EINVAL;
	}
	return 0;
}
