/* The fd: transport (fd.c): sockets the process inherited, and systemd
 * socket activation. */
#ifndef RILL_TRANSPORT_FD_H
#define RILL_TRANSPORT_FD_H

#include "scheme.h"

/*
 * Reads the socket activation environment once per process (later calls
 * do nothing): when LISTEN_PID is this process, the LISTEN_FDS inherited
 * descriptors from 3 on are made close-on-exec and their LISTEN_FDNAMES
 * remembered. The variables are left in place (unsetenv is not
 * thread-safe); they name this process, so children ignore them.
 */
void rill__fd_activation_load(void);

#endif
