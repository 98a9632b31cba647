/*
 * systemd's readiness protocol (sd_notify(3)), written by hand: when
 * NOTIFY_SOCKET names a Unix datagram socket (a path, or "@name" for an
 * abstract one), state lines are sent to it as one datagram each.
 * READY=1 once every listener is listening, STOPPING=1 at the first
 * SIGINT/SIGTERM, and WATCHDOG=1 every WATCHDOG_USEC/2 when the service
 * has a watchdog (and WATCHDOG_PID, if set, is this process). Without
 * NOTIFY_SOCKET every call is a no-op.
 *
 * Why not libsystemd's sd_notify: the protocol is one sendto(2) of a
 * short text, and the library would make every build of rill (and the
 * static rill executable the VM guests run) depend on libsystemd for
 * that. The kernel attaches our credentials (SCM_CREDENTIALS) when the
 * receiver asks for them, which is how systemd knows the sender.
 */
#ifndef RILL_CLI_NOTIFY_H
#define RILL_CLI_NOTIFY_H

#include <stdbool.h>
#include <uv.h>

/* READY=1 (with a STATUS= line), and the watchdog timer on loop (not
 * keeping it alive). The first call reads NOTIFY_SOCKET, WATCHDOG_USEC
 * and WATCHDOG_PID and unsets them, so that children (exec: targets,
 * which start only later, per connection) do not inherit them. */
void cli_notify_ready(uv_loop_t *loop, const char *status);

/* STOPPING=1; stops the watchdog pings. */
void cli_notify_stopping(void);

/* Closes the watchdog timer, if any (before the loop is closed). */
void cli_notify_end(void);

#endif
