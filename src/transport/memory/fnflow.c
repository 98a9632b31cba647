/*
 * Flows from functions and from strings, with mirage-flow's F semantics:
 * no input means reads report EOF; no output means writes fail closed; an
 * output that takes fewer bytes than offered is full, which is a partial
 * write followed by RILL_ECLOSED.
 */
#include <string.h>

#include "rill/impl.h"

#define FN_READ_SIZE (64u * 1024u)

struct fn_flow {
	struct rill_flow base;
	struct rill_fn_flow_ops ops;
	void *ctx;
};

static struct fn_flow *fn_of(struct rill_flow *f)
{
	return rill_container_of(f, struct fn_flow, base);
}

static void fn_read(struct rill_flow *f)
{
	struct fn_flow *s = fn_of(f);
	if (s->ops.input == NULL) {
		rill_flow_read_done(f, RILL_EOF, NULL);
		return;
	}
	struct rill_buf *b = rill_buf_new(FN_READ_SIZE);
	if (b == NULL) {
		rill_flow_read_done(f, RILL_ENOMEM, NULL);
		return;
	}
	long n = s->ops.input(s->ctx, b->data, b->len);
	if (n <= 0) {
		rill_buf_release(b);
		rill_flow_read_done(f, n == 0 ? RILL_EOF : (int)n, NULL);
		return;
	}
	if ((size_t)n > b->len)
		n = (long)b->len; /* a misbehaving input cannot overrun */
	b->len = (size_t)n;
	rill_flow_read_done(f, 0, b);
}

static void fn_write(struct rill_flow *f, struct rill_buf *const *bufs,
                     size_t n)
{
	struct fn_flow *s = fn_of(f);
	if (s->ops.output == NULL) {
		rill_flow_write_done(f, RILL_ECLOSED);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		long took = s->ops.output(s->ctx, bufs[i]->data, bufs[i]->len);
		if (took < 0) {
			rill_flow_write_done(f, (int)took);
			return;
		}
		if ((size_t)took < bufs[i]->len) {
			rill_flow_write_done(f, RILL_ECLOSED);
			return;
		}
	}
	rill_flow_write_done(f, 0);
}

static void fn_shutdown_write(struct rill_flow *f)
{
	rill_flow_shutdown_done(f, 0);
}

static void fn_close(struct rill_flow *f)
{
	struct fn_flow *s = fn_of(f);
	if (s->ops.on_close != NULL)
		s->ops.on_close(s->ctx);
	rill_flow_destroyed(f);
}

static const struct rill_flow_ops fn_flow_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "functions",
    .read = fn_read,
    .write = fn_write,
    .shutdown_write = fn_shutdown_write,
    .close = fn_close,
};

int rill_flow_from_functions(uv_loop_t *loop,
                             const struct rill_fn_flow_ops *ops, void *ctx,
                             struct rill_flow **out)
{
	if (loop == NULL || ops == NULL || out == NULL)
		return RILL_EINVAL;
	struct fn_flow *s = (struct fn_flow *)(void *)rill_flow_new(
	    loop, &fn_flow_ops, sizeof *s);
	if (s == NULL)
		return RILL_ENOMEM;
	s->ops = *ops;
	s->ctx = ctx;
	*out = &s->base;
	return 0;
}

/* Strings: a context for the functions above. */
struct str_ctx {
	const uint8_t *in;
	size_t in_len, in_pos;
	uint8_t *out;
	size_t out_cap;
	size_t *out_len;
};

static long str_input(void *ctx, void *dst, size_t cap)
{
	struct str_ctx *c = ctx;
	size_t n = c->in_len - c->in_pos;
	if (n > cap)
		n = cap;
	memcpy(dst, c->in + c->in_pos, n);
	c->in_pos += n;
	return (long)n;
}

static long str_output(void *ctx, const void *src, size_t len)
{
	struct str_ctx *c = ctx;
	size_t room = c->out_cap - *c->out_len;
	size_t n = len < room ? len : room;
	memcpy(c->out + *c->out_len, src, n);
	*c->out_len += n;
	return (long)n;
}

static void str_on_close(void *ctx)
{
	rill_free(ctx);
}

int rill_flow_from_strings(uv_loop_t *loop, const void *input, size_t in_len,
                           void *output, size_t out_cap, size_t *out_len,
                           struct rill_flow **out)
{
	if (loop == NULL || out == NULL ||
	    (output != NULL && out_len == NULL) ||
	    (input == NULL && in_len > 0))
		return RILL_EINVAL;
	struct str_ctx *c = rill_calloc(1, sizeof *c);
	if (c == NULL)
		return RILL_ENOMEM;
	c->in = input;
	c->in_len = in_len;
	c->out = output;
	c->out_cap = out_cap;
	c->out_len = out_len;
	if (out_len != NULL)
		*out_len = 0;
	struct rill_fn_flow_ops ops = {
	    .input = input != NULL ? str_input : NULL,
	    .output = output != NULL ? str_output : NULL,
	    .on_close = str_on_close,
	};
	int err = rill_flow_from_functions(loop, &ops, c, out);
	if (err != 0)
		rill_free(c);
	return err;
}
