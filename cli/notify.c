/* systemd readiness notifications; see notify.h. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

static struct {
	struct sockaddr_un addr;
	socklen_t addrlen; /* 0: no NOTIFY_SOCKET */
	uint64_t watchdog_ms;
	uv_timer_t timer;
	bool timer_on;
} notify;

static void notify_init(void)
{
	const char *s = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	const char *wpid = getenv("WATCHDOG_PID");
	size_t n = s != NULL ? strlen(s) : 0;
	if (n > 0 && n < sizeof notify.addr.sun_path &&
	    (s[0] == '/' || s[0] == '@')) {
		notify.addr.sun_family = AF_UNIX;
		memcpy(notify.addr.sun_path, s, n);
		/* "@name": an abstract socket, whose name starts with NUL
		 * and is exactly as long as given (no terminator). */
		if (s[0] == '@')
			notify.addr.sun_path[0] = '\0';
		notify.addrlen =
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
		                (s[0] == '/' ? 1 : 0));
	} else if (n > 0) {
		fprintf(stderr,
		        "rill: NOTIFY_SOCKET '%s' is not a Unix socket path or "
		        "@name; no readiness notification\n",
		        s);
	}
	char *end;
	unsigned long long us = wd != NULL ? strtoull(wd, &end, 10) : 0;
	bool ours = wpid == NULL || strtol(wpid, NULL, 10) == (long)getpid();
	if (wd != NULL && *end == '\0' && us > 0 && ours)
		notify.watchdog_ms = us / 2000 > 0 ? us / 2000 : 1;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

/* One datagram; failures are reported once and otherwise ignored:
 * readiness is advisory and must never stop the service. */
static void notify_send(const char *msg)
{
	static bool warned;
	if (notify.addrlen == 0)
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
	           (const struct sockaddr *)&notify.addr, notify.addrlen) < 0) {
		if (!warned)
			fprintf(stderr, "rill: notify socket: %s\n",
			        strerror(errno));
		warned = true;
	}
	if (fd >= 0)
		close(fd);
}

static void notify_on_watchdog(uv_timer_t *t)
{
	(void)t;
	notify_send("WATCHDOG=1");
}

void cli_notify_ready(uv_loop_t *loop, const char *status)
{
	static bool init;
	if (!init)
		notify_init();
	init = true;
	char msg[512];
	snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
	/* A STATUS line ends at a newline: keep the status on one line. */
	for (char *p = msg + 8; *p; p++)
		if (*p == '\n')
			*p = ' ';
	notify_send(msg);
	if (notify.addrlen == 0 || notify.watchdog_ms == 0 || notify.timer_on)
		return;
	uv_timer_init(loop, &notify.timer);
	uv_timer_start(&notify.timer, notify_on_watchdog, notify.watchdog_ms,
	               notify.watchdog_ms);
	uv_unref((uv_handle_t *)&notify.timer);
	notify.timer_on = true;
}

void cli_notify_end(void)
{
	if (!notify.timer_on)
		return;
	notify.timer_on = false;
	uv_close((uv_handle_t *)&notify.timer, NULL);
}

void cli_notify_stopping(void)
{
	notify_send("STOPPING=1");
	cli_notify_end();
}
