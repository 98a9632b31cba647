/* Internal interfaces shared between rill's modules (never installed). */
#ifndef RILL_CORE_H
#define RILL_CORE_H

#include "rill/impl.h"

/* Number of user callbacks the core is running on this thread right now. */
int rill__callback_depth(void);

/* The kernel fd under a plain socket flow, or -1 (see ops->fd). */
int rill__flow_fd(struct rill_flow *f);

/* Records the thread's last error message (rill_last_errmsg). */
void rill__set_last_errmsg(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * rill_close drops the callbacks of pending operations; the blocking API
 * (sync.c) must hear about its own, to finish a wait in progress with
 * RILL_ECLOSED or free the state of one it gave up on.
 */
void rill__sync_drop_read(rill_read_cb cb, void *ud);
void rill__sync_drop_status(rill_write_cb cb, void *ud);

#endif
