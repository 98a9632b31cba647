/*
 * Read buffers of a vchan flow, recycled. Big fresh allocations on every
 * read cost more than the copy out of the ring itself (glibc serves them
 * with mmap, or trims its heap after each free: page faults on every
 * read), so a big read's memory returns to the flow's pool when the
 * reader releases the buffer, for the next read. The pool is shared by
 * the flow and its outstanding buffers; the last one out frees it. Small
 * reads use plain buffers, so a reader that keeps many small buffers does
 * not pin big blocks.
 */
#ifndef RILL_TRANSPORT_VCHAN_POOL_H
#define RILL_TRANSPORT_VCHAN_POOL_H

#include <stddef.h>

#include "rill.h"

/* The largest read, and the smallest one served from the pool. */
#define RILL__VCHAN_READ_MAX (256u * 1024u)
#define RILL__VCHAN_POOL_MIN (32u * 1024u)

struct rill__vchan_pool;

/* A buffer for a read of n (<= RILL__VCHAN_READ_MAX) bytes; *pool is
 * created on first use. NULL on ENOMEM. */
struct rill_buf *rill__vchan_pool_buf(struct rill__vchan_pool **pool, size_t n);

/* The flow goes: frees the idle blocks; buffers still out free theirs
 * when released. *pool becomes NULL. */
void rill__vchan_pool_drop(struct rill__vchan_pool **pool);

#endif
