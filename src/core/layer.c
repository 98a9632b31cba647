/*
 * Pass-through operations for layers: each forwards one operation to the
 * inner flow and reports the inner result as the layer's own. A layer
 * uses these for everything it does not transform.
 */
#include "rill/impl.h"
#include "core/core.h"

struct rill_layer *rill_layer_new(struct rill_flow *inner,
                                  const struct rill_flow_ops *ops, size_t size)
{
	if (inner == NULL)
		return NULL;
	struct rill_layer *l = (struct rill_layer *)(void *)rill_flow_new(
	    inner->loop, ops,
	    size < sizeof(struct rill_layer) ? sizeof(struct rill_layer)
	                                     : size);
	if (l == NULL) {
		rill_close(inner); /* attach consumes the inner flow */
		return NULL;
	}
	l->inner = inner;
	rill_flow_set_half_close(&l->base, rill_flow_can_half_close(inner));
	rill__flow_mark_layer(&l->base);
	return l;
}

static void layer_read_cb(struct rill_flow *inner, int status,
                          struct rill_buf *buf, void *ud)
{
	(void)inner;
	rill_flow_read_done(ud, status, buf);
}

void rill_layer_read(struct rill_flow *f)
{
	int err = rill_read(rill_layer_inner(f), layer_read_cb, f);
	if (err != 0)
		rill_flow_read_done(f, err, NULL);
}

static void layer_write_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	rill_flow_write_done(ud, status);
}

void rill_layer_write(struct rill_flow *f, struct rill_buf *const *bufs,
                      size_t n)
{
	int err = rill_writev(rill_layer_inner(f), bufs, n, layer_write_cb, f);
	if (err != 0)
		rill_flow_write_done(f, err);
}

int rill_layer_write_file(struct rill_flow *f, int fd, uint64_t offset,
                          uint64_t length)
{
	/* The range goes down whole: the flow below sends it its own way
	 * (sendfile on a socket), or its core steps through it. */
	int err = rill_write_file(rill_layer_inner(f), fd, offset, length,
	                          layer_write_cb, f);
	if (err != 0)
		rill_flow_write_done(f, err);
	return 0;
}

static void layer_shutdown_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	rill_flow_shutdown_done(ud, status);
}

void rill_layer_shutdown_write(struct rill_flow *f)
{
	int err = rill_shutdown(rill_layer_inner(f), RILL_SHUT_WR,
	                        layer_shutdown_cb, f);
	if (err != 0)
		rill_flow_shutdown_done(f, err);
}

void rill_layer_shutdown_read(struct rill_flow *f)
{
	(void)rill_shutdown(rill_layer_inner(f), RILL_SHUT_RD, NULL, NULL);
}

void rill_layer_close(struct rill_flow *f)
{
	struct rill_layer *l = (struct rill_layer *)(void *)f;
	rill_close(l->inner);
	l->inner = NULL;
	rill_flow_destroyed(f);
}

int rill_layer_address(struct rill_flow *f, int which, char *buf, size_t len)
{
	return rill_flow_address(rill_layer_inner(f), which, buf, len);
}

int rill_layer_set_nodelay(struct rill_flow *f, bool on)
{
	return rill_flow_set_nodelay(rill_layer_inner(f), on);
}

int rill_layer_set_keepalive(struct rill_flow *f, bool on, unsigned after_s,
                             unsigned interval_s, unsigned probes)
{
	return rill_flow_set_keepalive(rill_layer_inner(f), on, after_s,
	                               interval_s, probes);
}
