/* vchan transport internals shared with the URI table and the tests. */
#ifndef RILL_TRANSPORT_VCHAN_H
#define RILL_TRANSPORT_VCHAN_H

#include "core/scheme.h"

/* Test hook: the index both rings of servers created later start at
 * (to cross the u32 wrap early). 0 by default. */
void rill__vchan_set_start_index(uint32_t idx);

/* Test hook: the ring orders of a flow (this side's read and write
 * rings); -EINVAL for a flow that is not an attached vchan. */
int rill__vchan_orders_of(struct rill_flow *f, int *rd_order, int *wr_order);

/* Test hook: the shared memory of an attached vchan flow (to play a
 * hostile peer), or NULL. */
void *rill__vchan_shared_page(struct rill_flow *f);

#endif
