/*
 * Reference-counted byte slices. A buffer made by rill_buf_new carries its
 * bytes in the same allocation as its header; a slice points into its
 * parent's bytes and holds a reference to the parent; a wrapped buffer
 * calls its owner's free function at the end.
 */
#include <string.h>

#include "core/core.h"

struct rill_buf *rill_buf_new(size_t len)
{
	if (len > SIZE_MAX - sizeof(struct rill_buf))
		return NULL;
	struct rill_buf *b = rill_malloc(sizeof *b + len);
	if (b == NULL)
		return NULL;
	memset(b, 0, sizeof *b);
	b->data = (uint8_t *)(b + 1);
	b->len = len;
	b->refs_ = 1;
	return b;
}

struct rill_buf *rill_buf_copy(const void *src, size_t len)
{
	struct rill_buf *b = rill_buf_new(len);
	if (b != NULL && len > 0)
		memcpy(b->data, src, len);
	return b;
}

struct rill_buf *rill_buf_wrap(void *mem, size_t len,
                               void (*free_fn)(void *ctx, void *mem), void *ctx)
{
	struct rill_buf *b = rill_malloc(sizeof *b);
	if (b == NULL)
		return NULL;
	memset(b, 0, sizeof *b);
	b->data = mem;
	b->len = len;
	b->refs_ = 1;
	b->free_fn_ = free_fn;
	b->free_ctx_ = ctx;
	return b;
}

struct rill_buf *rill_buf_slice(struct rill_buf *b, size_t off, size_t len)
{
	if (b == NULL || off > b->len || len > b->len - off)
		return NULL;
	struct rill_buf *s = rill_malloc(sizeof *s);
	if (s == NULL)
		return NULL;
	memset(s, 0, sizeof *s);
	s->data = b->data + off;
	s->len = len;
	s->refs_ = 1;
	s->parent_ = rill_buf_ref(b);
	return s;
}

struct rill_buf *rill_buf_ref(struct rill_buf *b)
{
	b->refs_++;
	return b;
}

void rill_buf_release(struct rill_buf *b)
{
	while (b != NULL) {
		if (--b->refs_ > 0)
			return;
		struct rill_buf *parent = b->parent_;
		if (b->free_fn_ != NULL)
			b->free_fn_(b->free_ctx_, b->data);
		rill_free(b);
		b = parent; /* a slice held one reference to its parent */
	}
}

/* flags_ of a buffer (core.h: private read buffers). */
#define BUF_PRIVATE 1u

void rill__buf_mark_private(struct rill_buf *b)
{
	b->flags_ |= BUF_PRIVATE;
}

bool rill__buf_mutable(const struct rill_buf *b)
{
	return b->refs_ == 1 && (b->flags_ & BUF_PRIVATE) != 0;
}
