/*
 * The server of a Xen vchan (include/rill/xen_vchan.h), in the steps of
 * libxenvchan_server_init (tools/libs/vchan/init.c): an unbound event
 * channel for the client's domain; the control page shared with it, with
 * an unmap notification on srv_live; the ring pages of rings too big for
 * the page shared too, their grant references written into the page (the
 * left ring's first); the page laid out; then ring-ref and event-channel
 * published in xenstore.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include "transport/vchan/xen/xen.h"

static int xen_server_error(int err, const char *what)
{
	const char *lib = rill__xen_lib_error();
	rill__set_last_errmsg("xen-vchan: %s: %s%s%s", what, strerror(-err),
	                      *lib != '\0' ? " - " : "", lib);
	return err;
}

static int xen_server_evtchn(struct rill__xen_vchan *xv)
{
	int err = rill__xen_open_evtchn(xv);
	if (err != 0)
		return xen_server_error(err, "opening /dev/xen/evtchn");
	xenevtchn_port_or_error_t p =
	    xenevtchn_bind_unbound_port(xv->evtchn, xv->peer_domid);
	if (p < 0)
		return xen_server_error(-errno, "allocating an event channel");
	xv->port = (uint32_t)p;
	xv->port_bound = true;
	if (xenevtchn_unmask(xv->evtchn, xv->port) != 0)
		return xen_server_error(-errno, "unmasking the event channel");
	return 0;
}

static uint32_t xen_pages(int order)
{
	return order >= RILL__VCHAN_PAGE_SHIFT
	           ? 1u << (order - RILL__VCHAN_PAGE_SHIFT)
	           : 0;
}

/* Shares `pages` ring pages, their references at refs (in the page). */
static int xen_server_share_ring(struct rill__xen_vchan *xv, uint32_t pages,
                                 uint32_t *refs, void **mem)
{
	if (pages == 0)
		return 0;
	*mem =
	    xengntshr_share_pages(xv->gnt, xv->peer_domid, (int)pages, refs, 1);
	if (*mem == NULL)
		return xen_server_error(-errno, "sharing the ring pages");
	return 0;
}

static int xen_server_share(struct rill__xen_vchan *xv, int lo, int ro,
                            uint32_t *ring_ref)
{
	xv->gnt = xengntshr_open(rill__xen_logger(), 0);
	if (xv->gnt == NULL)
		return xen_server_error(-errno, "opening /dev/xen/gntalloc");
	xv->page = xengntshr_share_page_notify(
	    xv->gnt, xv->peer_domid, ring_ref, 1,
	    offsetof(struct rill__vchan_page, srv_live), xv->port);
	if (xv->page == NULL)
		return xen_server_error(-errno, "sharing the control page");
	memset(xv->page, 0, RILL__VCHAN_PAGE);
	struct rill__vchan_page *p = xv->page;
	xv->left_pages = xen_pages(lo);
	xv->right_pages = xen_pages(ro);
	int err =
	    xen_server_share_ring(xv, xv->left_pages, p->grants, &xv->left);
	if (err == 0)
		err = xen_server_share_ring(xv, xv->right_pages,
		                            p->grants + xv->left_pages,
		                            &xv->right);
	if (err != 0)
		return err;
	rill__vchan_init_page(p, lo, ro, 0);
	/* As libxenvchan: the client is asked from the start to wake us when
	 * it writes. */
	atomic_store_explicit(&p->cli_notify, RILL__VCHAN_NOTIFY_WRITE,
	                      memory_order_release);
	return 0;
}

int rill__xen_server_create(uv_loop_t *loop, unsigned domid, const char *path,
                            size_t rd, size_t wr, struct rill__xen_vchan **out)
{
	int lo, ro;
	if (rill__vchan_orders(rd, wr, &lo, &ro) != 0 ||
	    lo > RILL__VCHAN_XEN_MAX || ro > RILL__VCHAN_XEN_MAX) {
		rill__set_last_errmsg("xen-vchan: ring sizes must be 1..%u "
		                      "bytes",
		                      1u << RILL__VCHAN_XEN_MAX);
		return RILL_EINVAL;
	}
	struct rill__xen_vchan *xv = rill__xen_vchan_new(loop, true, domid);
	if (xv == NULL)
		return RILL_ENOMEM;
	snprintf(xv->path, sizeof xv->path, "%s", path);
	uint32_t ring_ref = 0;
	int err = xen_server_evtchn(xv);
	if (err == 0)
		err = xen_server_share(xv, lo, ro, &ring_ref);
	if (err == 0) {
		err = rill__xen_attach(xv, lo, ro);
		if (err != 0)
			rill__set_last_errmsg("xen-vchan: %s",
			                      uv_strerror(err));
	}
	if (err == 0)
		err = rill__xen_store_publish(path, domid, ring_ref, xv->port);
	if (err != 0) {
		rill__xen_vchan_discard(xv);
		return err;
	}
	*out = xv;
	return 0;
}

int rill__xen_server_open(uv_loop_t *loop, unsigned domid, const char *port,
                          const struct rill_xen_vchan_opts *opts, size_t rd,
                          size_t wr, rill_vchan_server_cb cb, void *ud,
                          struct rill_flow **out)
{
	const char *given = opts != NULL ? opts->path : NULL;
	int err = rill__xen_check_devices(true);
	unsigned self = 0;
	if (err == 0 && given == NULL)
		err = rill__xen_store_self(&self);
	char path[RILL__XEN_PATH_BUF];
	if (err == 0)
		err = rill__xen_vchan_path_of(given, self, domid, port, path,
		                              sizeof path);
	struct rill__xen_vchan *xv = NULL;
	if (err == 0)
		err = rill__xen_server_create(loop, domid, path, rd, wr, &xv);
	if (err != 0)
		return err;
	xv->owns_keys = true;
	xv->srv_cb = cb;
	xv->ud = ud;
	*out = &xv->ring.base;
	return 0;
}
