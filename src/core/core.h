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

#endif
