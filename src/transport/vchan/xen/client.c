/*
 * The client of a Xen vchan (include/rill/xen_vchan.h), in the steps of
 * libxenvchan_client_init (tools/libs/vchan/init.c): read ring-ref and
 * event-channel, bind the event channel, map the control page with an
 * unmap notification on cli_live, read the orders and the grant
 * references once, map the rings (the one we only read, read-only), set
 * cli_live and wake the server.
 *
 * The server is untrusted: the orders are read once and checked against
 * Xen's limits before any mapping, the grant references are copied out
 * of the page once, and a page whose cli_live says another client is
 * attached is left alone (-EBUSY, or retried while allowed).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include "transport/vchan/xen/xen.h"

#define XEN_RETRY_FIRST_MS 10
#define XEN_RETRY_MAX_MS   200
/* A vchan with a client (cli_live 1) is retried this long even without
 * retry_until: a listener publishes the next vchan at the same path as
 * soon as a client arrived, and a client may read the keys in between. */
#define XEN_BUSY_RETRY_MS 2000

static void xen_client_finish(struct rill__xen_vchan *xv, int status,
                              const char *msg)
{
	rill_connect_cb cb = xv->cli_cb;
	void *ud = xv->ud;
	xv->cli_cb = NULL;
	if (status == 0) {
		uv_timer_stop(&xv->timer);
		cb(&xv->ring.base, 0, NULL, ud);
		return;
	}
	char text[384];
	snprintf(text, sizeof text, "%s", msg);
	rill__xen_vchan_discard(xv);
	cb(NULL, status, text, ud);
}

static int xen_client_error(int err, const char *what)
{
	const char *lib = rill__xen_lib_error();
	rill__set_last_errmsg("xen-vchan: %s: %s%s%s", what, strerror(-err),
	                      *lib != '\0' ? " - " : "", lib);
	return err;
}

/* Undoes a try that failed in a way worth trying again. */
static void xen_client_undo(struct rill__xen_vchan *xv)
{
	if (xv->page != NULL)
		xengnttab_unmap(xv->gnt, xv->page, 1);
	xv->page = NULL;
	if (xv->evtchn != NULL)
		xenevtchn_close(xv->evtchn);
	xv->evtchn = NULL;
	xv->port_bound = false;
}

static int xen_client_bind(struct rill__xen_vchan *xv, uint32_t remote)
{
	int err = rill__xen_open_evtchn(xv);
	if (err != 0)
		return xen_client_error(err, "opening /dev/xen/evtchn");
	xenevtchn_port_or_error_t p =
	    xenevtchn_bind_interdomain(xv->evtchn, xv->peer_domid, remote);
	if (p < 0)
		return xen_client_error(-errno, "binding the server's event "
		                                "channel");
	xv->port = (uint32_t)p;
	xv->port_bound = true;
	if (xenevtchn_unmask(xv->evtchn, xv->port) != 0)
		return xen_client_error(-errno, "unmasking the event channel");
	return 0;
}

/* Maps a ring of `order` outside the page, from refs[*next...). */
static int xen_client_map_ring(struct rill__xen_vchan *xv, int order,
                               uint32_t *refs, uint32_t *next, int prot,
                               void **mem, uint32_t *pages)
{
	if (order < RILL__VCHAN_PAGE_SHIFT)
		return 0;
	*pages = 1u << (order - RILL__VCHAN_PAGE_SHIFT);
	*mem = xengnttab_map_domain_grant_refs(xv->gnt, *pages, xv->peer_domid,
	                                       refs + *next, prot);
	*next += *pages;
	if (*mem == NULL) {
		*pages = 0;
		return xen_client_error(-errno, "mapping the ring pages");
	}
	return 0;
}

/* The page is mapped: check it, map the rings. */
static int xen_client_map_rings(struct rill__xen_vchan *xv, int *lo, int *ro)
{
	uint32_t refs[RILL__XEN_MAX_GRANTS], nrefs = 0;
	if (rill__xen_page_grants(xv->page, lo, ro, refs, &nrefs) != 0) {
		rill__set_last_errmsg("xen-vchan: the server's page has bad "
		                      "ring orders (%d, %d)",
		                      *lo, *ro);
		return RILL_ERING;
	}
	uint32_t next = 0;
	/* Left: we write it. Right: we only read it, so read-only. */
	int err =
	    xen_client_map_ring(xv, *lo, refs, &next, PROT_READ | PROT_WRITE,
	                        &xv->left, &xv->left_pages);
	if (err == 0)
		err = xen_client_map_ring(xv, *ro, refs, &next, PROT_READ,
		                          &xv->right, &xv->right_pages);
	return err;
}

/* One try: 0 (connected), -EAGAIN (retry later, message set) or an
 * error. */
static int xen_client_try(struct rill__xen_vchan *xv)
{
	uint32_t ring_ref, remote;
	int err = rill__xen_store_lookup(xv->path, &ring_ref, &remote);
	if (err != 0)
		return err;
	err = xen_client_bind(xv, remote);
	if (err != 0)
		return err;
	xv->page = xengnttab_map_grant_ref_notify(
	    xv->gnt, xv->peer_domid, ring_ref, PROT_READ | PROT_WRITE,
	    offsetof(struct rill__vchan_page, cli_live), xv->port);
	if (xv->page == NULL)
		return xen_client_error(-errno, "mapping the control page");
	struct rill__vchan_page *p = xv->page;
	if (atomic_load_explicit(&p->cli_live, memory_order_acquire) ==
	    RILL__VCHAN_LIVE_OPEN) {
		rill__set_last_errmsg("xen-vchan: the vchan at %s already has "
		                      "a client",
		                      xv->path);
		return -EBUSY;
	}
	int lo, ro;
	err = xen_client_map_rings(xv, &lo, &ro);
	if (err == 0)
		err = rill__xen_attach(xv, lo, ro);
	if (err != 0)
		return err;
	rill__vchan_set_live(&xv->ring.v, RILL__VCHAN_LIVE_OPEN);
	/* As libxenvchan: ask the server to wake us when it writes, then
	 * wake it (it sees cli_live 1). */
	atomic_store_explicit(&p->srv_notify, RILL__VCHAN_NOTIFY_WRITE,
	                      memory_order_seq_cst);
	xenevtchn_notify(xv->evtchn, xv->port);
	return 0;
}

static bool xen_client_retryable(struct rill__xen_vchan *xv, int err,
                                 uint64_t now)
{
	if (xv->deadline != 0 && xv->deadline <= now)
		return false;
	if (err == -EBUSY && now < xv->busy_until)
		return true;
	return (err == RILL_ECONNREFUSED || err == -EBUSY) &&
	       xv->retry_until > now;
}

static void xen_client_on_timer(uv_timer_t *t)
{
	struct rill__xen_vchan *xv = t->data;
	uv_loop_t *loop = xv->ring.base.loop;
	int err = xen_client_try(xv);
	if (err == 0) {
		xen_client_finish(xv, 0, NULL);
		return;
	}
	uv_update_time(loop);
	uint64_t now = uv_now(loop);
	if (xen_client_retryable(xv, err, now)) {
		xen_client_undo(xv);
		uint64_t wait = xv->retry_ms;
		xv->retry_ms =
		    wait * 2 > XEN_RETRY_MAX_MS ? XEN_RETRY_MAX_MS : wait * 2;
		uv_timer_start(&xv->timer, xen_client_on_timer, wait, 0);
		return;
	}
	if ((err == RILL_ECONNREFUSED || err == -EBUSY) && xv->deadline != 0 &&
	    xv->deadline <= now) {
		rill__set_last_errmsg("xen-vchan: no server at %s before the "
		                      "deadline",
		                      xv->path);
		err = RILL_ETIMEDOUT;
	}
	xen_client_finish(xv, err, rill_last_errmsg());
}

int rill__xen_client_open(uv_loop_t *loop, unsigned domid, const char *port,
                          const struct rill_xen_vchan_opts *opts,
                          const struct rill_connect_opts *copts,
                          rill_connect_cb cb, void *ud)
{
	const char *given = opts != NULL ? opts->path : NULL;
	int err = rill__xen_check_devices(false);
	unsigned self = 0;
	if (err == 0 && given == NULL)
		err = rill__xen_store_self(&self);
	char path[RILL__XEN_PATH_BUF];
	if (err == 0)
		err = rill__xen_vchan_path_of(given, domid, self, port, path,
		                              sizeof path);
	if (err != 0)
		return err;
	struct rill__xen_vchan *xv = rill__xen_vchan_new(loop, false, domid);
	if (xv == NULL)
		return RILL_ENOMEM;
	memcpy(xv->path, path, sizeof path);
	xv->gnt = xengnttab_open(rill__xen_logger(), 0);
	if (xv->gnt == NULL) {
		err = xen_client_error(-errno, "opening /dev/xen/gntdev");
		rill__xen_vchan_discard(xv);
		return err;
	}
	xv->cli_cb = cb;
	xv->ud = ud;
	uv_timer_init(loop, &xv->timer);
	xv->timer_init = true;
	xv->timer.data = xv;
	xv->retry_ms = XEN_RETRY_FIRST_MS;
	uv_update_time(loop);
	uint64_t now = uv_now(loop);
	if (copts != NULL && copts->timeout_ms > 0)
		xv->deadline = now + copts->timeout_ms;
	if (copts != NULL && copts->retry_until_ms > 0)
		xv->retry_until = now + copts->retry_until_ms;
	xv->busy_until = now + XEN_BUSY_RETRY_MS;
	/* From the loop, so that cb never runs inside this call. */
	uv_timer_start(&xv->timer, xen_client_on_timer, 0, 0);
	return 0;
}
