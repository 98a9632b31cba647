/* The fd: transport (fd.c): sockets the process inherited, and systemd
 * socket activation. */
#ifndef RILL_TRANSPORT_FD_H
#define RILL_TRANSPORT_FD_H

#include <stdbool.h>

#include "core/scheme.h"

/*
 * Reads the socket activation environment once per process (later calls
 * do nothing): when LISTEN_PID is this process, the LISTEN_FDS inherited
 * descriptors from 3 on are made close-on-exec and their LISTEN_FDNAMES
 * remembered. The variables are left in place (unsetenv is not
 * thread-safe); they name this process, so children ignore them.
 */
void rill__fd_activation_load(void);

#define RILL__FD_ACTIVATION_MAX 65536 /* LISTEN_FDS above this: ignored */

/*
 * The number of inherited descriptors that LISTEN_PID (pid) and
 * LISTEN_FDS (fds) give the process self_pid: 1..RILL__FD_ACTIVATION_MAX,
 * or 0 when either is missing (NULL), not a plain decimal number, names
 * another process, or is out of range. Pure (fd_activation.c).
 */
int rill__fd_activation_count(const char *pid, const char *fds, long self_pid);

/*
 * Splits LISTEN_FDNAMES in place at each ':' into names[0..max): names
 * beyond max are ignored, and a list shorter than max leaves the rest
 * unset. Returns how many were stored (0 when max is 0). Pure.
 */
int rill__fd_activation_names(char *text, char **names, int max);

#endif
