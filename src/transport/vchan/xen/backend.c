/*
 * The Xen backend of the vchan flow (see xen.h): the backend ops
 * (wake the peer through the event channel, consume our wake-ups, watch
 * for the client's arrival, unmap and unbind on release), the device
 * checks, and a logger for the Xen libraries.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xentoollog.h>

#include "transport/vchan/xen/xen.h"

/* ---------------------------------------------------------------------- */
/* The libraries log their errors through a logger (default: stderr). This
 * one keeps the last message of the thread, for rill's own error text. */

static _Thread_local char xen_lib_msg[256];

__attribute__((format(printf, 5, 0))) static void
xen_log_vmessage(struct xentoollog_logger *logger, xentoollog_level level,
                 int errnoval, const char *context, const char *format,
                 va_list al)
{
	(void)logger;
	(void)errnoval;
	(void)context;
	if (level < XTL_WARN)
		return;
	vsnprintf(xen_lib_msg, sizeof xen_lib_msg, format, al);
}

static void xen_log_destroy(struct xentoollog_logger *logger)
{
	(void)logger;
}

static struct xentoollog_logger xen_logger = {
    .vmessage = xen_log_vmessage,
    .progress = NULL,
    .destroy = xen_log_destroy,
};

void *rill__xen_logger(void)
{
	xen_lib_msg[0] = '\0';
	return &xen_logger;
}

const char *rill__xen_lib_error(void)
{
	return xen_lib_msg;
}

/* ---------------------------------------------------------------------- */
/* Devices */

int rill__xen_check_devices(bool server)
{
	const char *need[] = {"/dev/xen/evtchn",
	                      server ? "/dev/xen/gntalloc" : "/dev/xen/gntdev"};
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
		if (access(need[i], R_OK | W_OK) == 0)
			continue;
		rill__set_last_errmsg(
		    "xen-vchan: %s: %s: this is not a Xen domain, or the "
		    "xen-evtchn, xen-gntdev and xen-gntalloc modules are not "
		    "loaded",
		    need[i], strerror(errno));
		return errno == EACCES ? -EACCES : -ENODEV;
	}
	return 0;
}

int rill__xen_open_evtchn(struct rill__xen_vchan *xv)
{
	xv->evtchn = xenevtchn_open(rill__xen_logger(), 0);
	if (xv->evtchn == NULL)
		return errno != 0 ? -errno : -ENODEV;
	/* Our wake-ups are drained with xenevtchn_pending, a read(2) of
	 * the device: it must never block the loop. */
	int fd = xenevtchn_fd(xv->evtchn);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		return -errno;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Backend ops */

static struct rill__xen_vchan *xen_of(struct rill__vchan_flow *vf)
{
	return rill_container_of(vf, struct rill__xen_vchan, ring);
}

static void xen_signal(struct rill__vchan_flow *vf)
{
	struct rill__xen_vchan *xv = xen_of(vf);
	if (xv->port_bound)
		xenevtchn_notify(xv->evtchn, xv->port);
}

static void xen_drain(struct rill__vchan_flow *vf)
{
	struct rill__xen_vchan *xv = xen_of(vf);
	/* Each pending port was masked by the kernel as it was delivered:
	 * unmask it, or no further event arrives. */
	for (int i = 0; i < 64; i++) {
		xenevtchn_port_or_error_t p = xenevtchn_pending(xv->evtchn);
		if (p < 0)
			break;
		xenevtchn_unmask(xv->evtchn, (evtchn_port_t)p);
	}
}

static void xen_woken(struct rill__vchan_flow *vf)
{
	struct rill__xen_vchan *xv = xen_of(vf);
	if (!xv->server || xv->arrived ||
	    rill__vchan_peer_live(&vf->v) == RILL__VCHAN_LIVE_WAITING)
		return;
	/* The client set cli_live (1, or 0 if it came and went at once). */
	xv->arrived = true;
	if (xv->arrived_cb != NULL) {
		xv->arrived_cb(xv);
		return;
	}
	if (xv->srv_cb != NULL && !rill_flow_is_closed(&vf->base))
		xv->srv_cb(&vf->base, 0, xv->ud);
}

static void xen_close_handles(struct rill__vchan_flow *vf)
{
	struct rill__xen_vchan *xv = xen_of(vf);
	if (xv->timer_init)
		rill__vchan_flow_close_handle(vf, (uv_handle_t *)&xv->timer);
	xv->timer_init = false;
}

static void xen_unmap(struct rill__xen_vchan *xv, void **mem, uint32_t pages)
{
	if (*mem == NULL)
		return;
	if (xv->server)
		xengntshr_unshare(xv->gnt, *mem, pages);
	else
		xengnttab_unmap(xv->gnt, *mem, pages);
	*mem = NULL;
}

static void xen_release(struct rill__vchan_flow *vf)
{
	struct rill__xen_vchan *xv = xen_of(vf);
	/* As libxenvchan_close: the rings, then the page (its unmap
	 * notification clears our live byte and wakes the peer once more),
	 * then the event channel. */
	xen_unmap(xv, &xv->left, xv->left_pages);
	xen_unmap(xv, &xv->right, xv->right_pages);
	xen_unmap(xv, &xv->page, 1);
	if (xv->evtchn != NULL)
		xenevtchn_close(xv->evtchn);
	xv->evtchn = NULL;
	xv->port_bound = false;
	if (xv->gnt != NULL) {
		if (xv->server)
			xengntshr_close(xv->gnt);
		else
			xengnttab_close(xv->gnt);
	}
	xv->gnt = NULL;
	if (xv->owns_keys)
		rill__xen_store_remove(xv->path);
	xv->owns_keys = false;
}

static int xen_address(struct rill__vchan_flow *vf, int which, char *buf,
                       size_t len)
{
	struct rill__xen_vchan *xv = xen_of(vf);
	int n;
	if (which == RILL_ADDR_PEER)
		n = snprintf(buf, len, "xen-vchan:%u?path=%s", xv->peer_domid,
		             xv->path);
	else
		n = snprintf(buf, len, "xen-vchan:self?path=%s", xv->path);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct rill__vchan_backend xen_backend = {
    .signal = xen_signal,
    .drain = xen_drain,
    .woken = xen_woken,
    .close_handles = xen_close_handles,
    .release = xen_release,
    .address = xen_address,
};

static const struct rill_flow_ops xen_vchan_ops =
    RILL__VCHAN_FLOW_OPS("xen-vchan");

struct rill__xen_vchan *rill__xen_vchan_new(uv_loop_t *loop, bool server,
                                            unsigned peer_domid)
{
	struct rill__vchan_flow *vf = rill__vchan_flow_new(
	    loop, &xen_vchan_ops, &xen_backend, sizeof(struct rill__xen_vchan));
	if (vf == NULL)
		return NULL;
	/* libxenvchan stops writing to a peer whose live byte is 0: its
	 * death and its close look the same. */
	rill__vchan_flow_no_half_close(vf);
	struct rill__xen_vchan *xv = xen_of(vf);
	xv->server = server;
	xv->peer_domid = peer_domid;
	return xv;
}

void rill__xen_vchan_discard(struct rill__xen_vchan *xv)
{
	xv->ring.discard = true;
	rill__vchan_flow_teardown(&xv->ring);
}

int rill__xen_attach(struct rill__xen_vchan *xv, int left_order,
                     int right_order)
{
	rill__vchan_attach_at(&xv->ring.v, xv->page, left_order, right_order,
	                      xv->left, xv->right, xv->server);
	return rill__vchan_flow_attach(&xv->ring, xenevtchn_fd(xv->evtchn));
}
