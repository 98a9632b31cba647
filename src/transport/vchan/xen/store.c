/*
 * Xenstore for Xen vchans: our own domain id, the server's two keys and
 * their permissions, the client's lookup. Each call opens its own
 * connection (xs_open), as libxenvchan does: setup is rare, and no
 * connection (nor its reader thread) stays behind.
 *
 * The keys, as libxenvchan's server writes them (tools/libs/vchan/
 * init.c): <path>/ring-ref, the grant reference of the control page, and
 * <path>/event-channel, the server's unbound port, both in decimal, in
 * one transaction, owned by the server's domain with no access for
 * others except read access for the client's domain.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "core/core.h"
#include "transport/vchan/xen/store.h"

static struct xs_handle *xen_store_open(void)
{
	struct xs_handle *xs = xs_open(0);
	if (xs == NULL)
		rill__set_last_errmsg(
		    "xen-vchan: cannot reach xenstore "
		    "(/dev/xen/xenbus or xenstored's socket): "
		    "%s",
		    strerror(errno));
	return xs;
}

int rill__xen_store_self(unsigned *domid)
{
	struct xs_handle *xs = xen_store_open();
	if (xs == NULL)
		return errno != 0 ? -errno : -EIO;
	unsigned len = 0;
	/* A relative path: our own domain's "domid" key. */
	char *v = xs_read(xs, XBT_NULL, "domid", &len);
	int err = v == NULL ? errno : 0;
	uint32_t id = 0;
	bool ok = rill__xen_parse_u32(v, len, &id) && id <= RILL__XEN_DOMID_MAX;
	free(v);
	xs_close(xs);
	if (!ok) {
		rill__set_last_errmsg("xen-vchan: cannot read our domain id "
		                      "(xenstore key \"domid\"): %s",
		                      err != 0 ? strerror(err)
		                               : "not a number");
		return err != 0 ? -err : -EIO;
	}
	*domid = id;
	return 0;
}

static bool xen_write_key(struct xs_handle *xs, xs_transaction_t t,
                          const char *path, const char *key, uint32_t value,
                          struct xs_permissions *perms)
{
	char k[RILL__XEN_PATH_BUF], v[16];
	snprintf(k, sizeof k, "%s/%s", path, key);
	snprintf(v, sizeof v, "%u", value);
	return xs_write(xs, t, k, v, (unsigned)strlen(v)) &&
	       xs_set_permissions(xs, t, k, perms, 2);
}

int rill__xen_store_publish(const char *path, unsigned reader,
                            uint32_t ring_ref, uint32_t port)
{
	unsigned self;
	int err = rill__xen_store_self(&self);
	if (err != 0)
		return err;
	struct xs_handle *xs = xen_store_open();
	if (xs == NULL)
		return errno != 0 ? -errno : -EIO;
	/* The first entry is the owner and what every domain not listed
	 * gets; the second gives the client's domain read access. */
	struct xs_permissions perms[2] = {
	    {.id = self, .perms = XS_PERM_NONE},
	    {.id = reader, .perms = XS_PERM_READ},
	};
	for (int tries = 0; tries < 16; tries++) {
		xs_transaction_t t = xs_transaction_start(xs);
		if (t == XBT_NULL)
			break;
		bool ok =
		    xen_write_key(xs, t, path, "ring-ref", ring_ref, perms) &&
		    xen_write_key(xs, t, path, "event-channel", port, perms);
		err = errno;
		if (!ok) {
			xs_transaction_end(xs, t, true);
			break;
		}
		if (xs_transaction_end(xs, t, false)) {
			xs_close(xs);
			return 0;
		}
		err = errno;
		if (err != EAGAIN)
			break; /* EAGAIN: a concurrent change; try again */
	}
	xs_close(xs);
	rill__set_last_errmsg("xen-vchan: cannot write %s/ring-ref and "
	                      "event-channel in xenstore: %s",
	                      path, strerror(err));
	return err != 0 ? -err : -EIO;
}

/* Reads path/key as a u32: 0, RILL_ECONNREFUSED or RILL_EHANDSHAKE. */
static int xen_read_key(struct xs_handle *xs, const char *path, const char *key,
                        uint32_t *out)
{
	char k[RILL__XEN_PATH_BUF];
	snprintf(k, sizeof k, "%s/%s", path, key);
	unsigned len = 0;
	char *v = xs_read(xs, XBT_NULL, k, &len);
	if (v == NULL || len == 0) {
		free(v);
		rill__set_last_errmsg("xen-vchan: no server at %s (no %s in "
		                      "xenstore)",
		                      path, key);
		return RILL_ECONNREFUSED;
	}
	bool ok = rill__xen_parse_u32(v, len, out) && *out != 0;
	free(v);
	if (!ok) {
		rill__set_last_errmsg("xen-vchan: %s is not a valid %s", k,
		                      key);
		return RILL_EHANDSHAKE;
	}
	return 0;
}

int rill__xen_store_lookup(const char *path, uint32_t *ring_ref, uint32_t *port)
{
	struct xs_handle *xs = xen_store_open();
	if (xs == NULL)
		return errno != 0 ? -errno : -EIO;
	int err = xen_read_key(xs, path, "ring-ref", ring_ref);
	if (err == 0)
		err = xen_read_key(xs, path, "event-channel", port);
	xs_close(xs);
	return err;
}

void rill__xen_store_remove(const char *path)
{
	struct xs_handle *xs = xs_open(0);
	if (xs == NULL)
		return;
	xs_rm(xs, XBT_NULL, path);
	xs_close(xs);
}
