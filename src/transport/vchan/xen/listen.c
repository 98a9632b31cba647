/*
 * The listener behind `rill listen xen-vchan:DOMID/PORT`: one server
 * vchan waits at the path at a time; when its client arrived, the flow
 * goes to the accept callback and a fresh vchan is published at the same
 * path (new grants and event channel) for the next client. The listener
 * owns the keys: they are removed when it closes.
 */
#include <stdio.h>
#include <string.h>

#include "transport/vchan/xen/xen.h"
#include "core/scheme.h"

#define XEN_LISTEN_RETRY_MS 1000

struct xen_listener {
	struct rill_listener base;
	unsigned domid;
	char path[RILL__XEN_PATH_BUF];
	size_t rd, wr;
	char *uri;
	struct rill__xen_vchan *waiting;
	uv_timer_t retry; /* publishing the next vchan failed: try again */
};

static void xen_listener_arrived(struct rill__xen_vchan *xv);

/* Publishes the next vchan; 0 or an error (message set). */
static int xen_listener_publish(struct xen_listener *l)
{
	struct rill__xen_vchan *xv = NULL;
	int err = rill__xen_server_create(l->base.loop, l->domid, l->path,
	                                  l->rd, l->wr, &xv);
	if (err != 0)
		return err;
	xv->owner = l;
	xv->arrived_cb = xen_listener_arrived;
	l->waiting = xv;
	return 0;
}

static void xen_listener_on_retry(uv_timer_t *t)
{
	struct xen_listener *l = t->data;
	int err = xen_listener_publish(l);
	if (err == 0)
		return;
	l->base.cb(&l->base, NULL, err, rill_last_errmsg(), l->base.ud);
	uv_timer_start(&l->retry, xen_listener_on_retry, XEN_LISTEN_RETRY_MS,
	               0);
}

static void xen_listener_arrived(struct rill__xen_vchan *xv)
{
	struct xen_listener *l = xv->owner;
	xv->owner = NULL;
	xv->arrived_cb = NULL;
	l->waiting = NULL;
	/* The next vchan first: its keys replace this one's at once, so a
	 * client looking now finds a free vchan. */
	xen_listener_on_retry(&l->retry);
	l->base.cb(&l->base, &xv->ring.base, 0, NULL, l->base.ud);
}

static void xen_listener_free(uv_handle_t *h)
{
	struct xen_listener *l = h->data;
	rill_free(l->uri);
	rill_free(l);
}

static void xen_listener_close(struct rill_listener *base)
{
	struct xen_listener *l = (struct xen_listener *)(void *)base;
	if (l->waiting != NULL)
		rill__xen_vchan_discard(l->waiting);
	l->waiting = NULL;
	rill__xen_store_remove(l->path);
	uv_close((uv_handle_t *)&l->retry, xen_listener_free);
}

static int xen_listener_uri(struct rill_listener *base, char *buf, size_t len)
{
	struct xen_listener *l = (struct xen_listener *)(void *)base;
	int n = snprintf(buf, len, "%s", l->uri);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct rill_listener_ops xen_listener_ops = {
    .close = xen_listener_close,
    .uri = xen_listener_uri,
};

/* The listener's path: opts->path or the default, with our domid. */
static int xen_listener_path(struct xen_listener *l, const char *port,
                             const struct rill_xen_vchan_opts *opts)
{
	const char *given = opts != NULL ? opts->path : NULL;
	unsigned self = 0;
	int err = given == NULL ? rill__xen_store_self(&self) : 0;
	if (err == 0)
		err = rill__xen_vchan_path_of(given, self, l->domid, port,
		                              l->path, sizeof l->path);
	return err;
}

int rill__xen_vchan_listen(uv_loop_t *loop, unsigned domid, const char *port,
                           const struct rill_xen_vchan_opts *opts,
                           const char *uri, rill_accept_cb cb, void *ud,
                           struct rill_listener **out)
{
	int err = rill__xen_check_devices(true);
	if (err != 0)
		return err;
	struct xen_listener *l = rill_calloc(1, sizeof *l);
	if (l == NULL || (l->uri = rill_strdup(uri)) == NULL) {
		rill_free(l);
		return RILL_ENOMEM;
	}
	l->base.ops = &xen_listener_ops;
	l->base.loop = loop;
	l->base.cb = cb;
	l->base.ud = ud;
	l->domid = domid;
	err = rill__xen_sizes(opts, &l->rd, &l->wr);
	if (err == 0)
		err = xen_listener_path(l, port, opts);
	if (err == 0)
		err = xen_listener_publish(l);
	if (err != 0) {
		rill_free(l->uri);
		rill_free(l);
		return err;
	}
	uv_timer_init(loop, &l->retry);
	l->retry.data = l;
	*out = &l->base;
	return 0;
}
