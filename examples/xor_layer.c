/*
 * xor_layer: see xor_layer.h. Everything not transformed (shutdown, close,
 * addresses) uses rill's pass-through layer ops; the core does all the
 * contract bookkeeping (one read at a time, write queue, deferral, sticky
 * errors, nothing after close), so this file only transforms bytes.
 */
#include "xor_layer.h"

#include "rill/impl.h"

/* One direction's key stream: a 32-bit linear congruential generator
 * (Numerical Recipes constants), one byte per step. */
struct xor_stream {
	uint32_t state;
};

static void xor_apply(struct xor_stream *ks, uint8_t *dst, const uint8_t *src,
                      size_t n)
{
	uint32_t s = ks->state;
	for (size_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		dst[i] = src[i] ^ (uint8_t)(s >> 24);
	}
	ks->state = s;
}

struct xor_layer {
	struct rill_layer layer; /* first: the core sees a struct rill_flow */
	struct xor_stream rd;    /* bytes coming up from the inner flow */
	struct xor_stream wr;    /* bytes going down to it */
};

static struct xor_layer *xor_of(struct rill_flow *f)
{
	return rill_container_of(f, struct xor_layer, layer.base);
}

static void xor_read_cb(struct rill_flow *inner, int status,
                        struct rill_buf *buf, void *ud)
{
	(void)inner;
	struct rill_flow *f = ud;
	if (status != 0) {
		rill_flow_read_done(f, status, NULL); /* EOF or error */
		return;
	}
	/* The inner buffer is ours now, but it may share memory with other
	 * slices the inner flow handed out; transform into a fresh buffer
	 * rather than in place. */
	struct rill_buf *out = rill_buf_new(buf->len);
	if (out == NULL) {
		rill_buf_release(buf);
		rill_flow_read_done(f, RILL_ENOMEM, NULL);
		return;
	}
	xor_apply(&xor_of(f)->rd, out->data, buf->data, buf->len);
	rill_buf_release(buf);
	rill_flow_read_done(f, 0, out); /* ownership passes to the core */
}

static void xor_read(struct rill_flow *f)
{
	int err = rill_read(rill_layer_inner(f), xor_read_cb, f);
	if (err != 0)
		rill_flow_read_done(f, err, NULL);
}

static void xor_write_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	rill_flow_write_done(ud, status);
}

static void xor_write(struct rill_flow *f, struct rill_buf *const *bufs,
                      size_t n)
{
	/* The user's buffers are read-only to us: transform into one new
	 * buffer, and complete when the inner flow accepted it (that keeps
	 * the inner flow's back-pressure). */
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += bufs[i]->len;
	struct rill_buf *out = rill_buf_new(total);
	if (out == NULL) {
		rill_flow_write_done(f, RILL_ENOMEM);
		return;
	}
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		xor_apply(&xor_of(f)->wr, out->data + off, bufs[i]->data,
		          bufs[i]->len);
		off += bufs[i]->len;
	}
	int err = rill_write(rill_layer_inner(f), out, xor_write_cb, f);
	rill_buf_release(out); /* the inner flow holds its own reference */
	if (err != 0)
		rill_flow_write_done(f, err);
}

static const struct rill_flow_ops xor_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "xor",
    .read = xor_read,
    .write = xor_write,
    .shutdown_write = rill_layer_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = rill_layer_close,
    .address = rill_layer_address,
};

int xor_layer_attach(struct rill_flow *inner, uint32_t key,
                     struct rill_flow **out)
{
	if (out == NULL) {
		rill_close(inner); /* consumes inner, even on failure */
		return RILL_EINVAL;
	}
	*out = NULL;
	if (inner == NULL)
		return RILL_EINVAL;
	struct rill_layer *l =
	    rill_layer_new(inner, &xor_ops, sizeof(struct xor_layer));
	if (l == NULL)
		return RILL_ENOMEM; /* rill_layer_new closed inner */
	struct xor_layer *x = xor_of(&l->base);
	x->rd.state = key;
	x->wr.state = key;
	*out = &l->base;
	return 0;
}
