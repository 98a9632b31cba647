/*
 * The fd: transport: a stream socket this process inherited, by number
 * (fd:3) or by its socket activation name (fd:web).
 *
 * Listening on fd:N takes a listening socket (systemd's Accept=no, or
 * any parent that bound one); connecting takes a connected one (Accept=yes,
 * inetd, a socketpair end). The socket keeps the flavour of its address
 * family (tcp, unix or vsock flows, with their addresses and options).
 *
 * systemd socket activation (sd_listen_fds(3)): when LISTEN_PID names this
 * process, LISTEN_FDS descriptors start at 3 (SD_LISTEN_FDS_START) and
 * LISTEN_FDNAMES holds their names, colon-separated (FileDescriptorName=,
 * or systemd-socket-activate --fdname). Those descriptors are made
 * close-on-exec at the first use of fd: or exec:, so that no child
 * inherits them.
 *
 * An inherited descriptor is adopted once: the flow or listener closes it,
 * and its number may then be reused by anything, so a second fd:N for the
 * same N is refused instead of taking whatever sits there by then.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "transport/socket/fd.h"
#include "transport/socket/socket.h"
#include "transport/vsock/vsock.h"

#define FD_LISTEN_START 3 /* SD_LISTEN_FDS_START */
#define FD_NAME_MAX     255
#define FD_CLAIMS_MAX   256

/* Inherited sockets of any other family: no address, no options. */
static const struct rill_flow_ops fd_ops = RILL_SOCKET_OPS("fd");

static const struct rill_socket_family fd_generic_family = {
    .name = "fd",
    .ops = &fd_ops,
    .tcp_options = false,
    .format = NULL,
};

/* ---------------------------------------------------------------------- */
/* Socket activation, read once per process */

static pthread_once_t fd_once = PTHREAD_ONCE_INIT;
static int fd_listen_count;
static char *fd_names_text; /* LISTEN_FDNAMES, split in place */
static char **fd_names;
static int fd_names_count;

static void fd_activation_read(void)
{
	fd_listen_count = rill__fd_activation_count(
	    getenv("LISTEN_PID"), getenv("LISTEN_FDS"), (long)getpid());
	for (int i = 0; i < fd_listen_count; i++) {
		int fl = fcntl(FD_LISTEN_START + i, F_GETFD);
		if (fl >= 0 && !(fl & FD_CLOEXEC))
			fcntl(FD_LISTEN_START + i, F_SETFD, fl | FD_CLOEXEC);
	}
	/* Process-lifetime memory, not rill's allocator: nothing frees it. */
	const char *names = getenv("LISTEN_FDNAMES");
	if (names == NULL || fd_listen_count == 0)
		return;
	fd_names_text = strdup(names);
	fd_names = calloc((size_t)fd_listen_count, sizeof *fd_names);
	if (fd_names_text == NULL || fd_names == NULL) {
		free(fd_names_text);
		free(fd_names);
		fd_names_text = NULL;
		fd_names = NULL;
		return;
	}
	fd_names_count =
	    rill__fd_activation_names(fd_names_text, fd_names, fd_listen_count);
}

void rill__fd_activation_load(void)
{
	pthread_once(&fd_once, fd_activation_read);
}

/*
 * The descriptors open when the program started (before main, when
 * nothing of rill or libuv had opened any): a later "fd:3" that names
 * something not open then (libuv's epoll fd, say) gets an error that says
 * so, rather than "not a socket". Only for the message: a program may
 * also hand rill a socket it made itself (a socketpair end).
 */
#define FD_STARTUP_MAX 256
static bool fd_at_startup[FD_STARTUP_MAX];

__attribute__((constructor)) static void fd_note_startup(void)
{
	for (int fd = 0; fd < FD_STARTUP_MAX; fd++)
		fd_at_startup[fd] = fcntl(fd, F_GETFD) >= 0;
}

/* ---------------------------------------------------------------------- */
/* fd:N and fd:NAME */

static pthread_mutex_t fd_claim_lock = PTHREAD_MUTEX_INITIALIZER;
static int fd_claims[FD_CLAIMS_MAX];
static size_t fd_nclaims;

/* Marks fd as adopted; false if it was adopted before (or too many). */
static bool fd_claim(int fd)
{
	pthread_mutex_lock(&fd_claim_lock);
	bool ok = fd_nclaims < FD_CLAIMS_MAX;
	for (size_t i = 0; i < fd_nclaims && ok; i++)
		ok = fd_claims[i] != fd;
	if (ok)
		fd_claims[fd_nclaims++] = fd;
	pthread_mutex_unlock(&fd_claim_lock);
	return ok;
}

static bool fd_name_char(char c)
{
	/* systemd: printable ASCII, no ':' (the list separator). */
	return c > ' ' && c < 0x7f && c != ':';
}

/* The descriptor u names; RILL_EURI with a message when none. */
static int fd_resolve(const struct rill_uri *u, int *out)
{
	rill__fd_activation_load();
	const char *s = u->rest;
	if (*s == '\0')
		return rill__uri_error(u, "missing descriptor number or name",
		                       s);
	if (strspn(s, "0123456789") == strlen(s)) {
		char *end;
		errno = 0;
		long v = strtol(s, &end, 10);
		if (errno != 0 || v > 1000000)
			return rill__uri_error(u, "bad descriptor number", s);
		*out = (int)v;
		return 0;
	}
	size_t len = strlen(s);
	for (size_t i = 0; i < len; i++)
		if (!fd_name_char(s[i]))
			return rill__uri_error(u, "bad descriptor name", s);
	if (len > FD_NAME_MAX)
		return rill__uri_error(u, "descriptor name too long", s);
	for (int i = 0; i < fd_names_count; i++) {
		if (strcmp(fd_names[i], s) == 0) {
			*out = FD_LISTEN_START + i;
			return 0;
		}
	}
	return rill__uri_error(
	    u,
	    fd_names_count > 0 ? "no inherited socket (LISTEN_FDNAMES) named"
	                       : "no socket activation (LISTEN_FDNAMES) "
	                         "for the name",
	    s);
}

static int fd_check(const struct rill_uri *u)
{
	int fd;
	return fd_resolve(u, &fd);
}

/* What the descriptor is. Returns 0, or -errno / RILL_EINVAL with msg. */
static int fd_inspect(int fd, const char *uri, bool *listening,
                      const struct rill_socket_family **fam, char *msg,
                      size_t cap)
{
	int type = 0, acc = 0;
	socklen_t len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
		int err = -errno;
		if (err == -ENOTSOCK && fd < FD_STARTUP_MAX &&
		    !fd_at_startup[fd])
			snprintf(msg, cap,
			         "%s: not a socket, and not inherited (no "
			         "descriptor %d was open when the program "
			         "started)",
			         uri, fd);
		else
			snprintf(msg, cap, "%s: %s", uri,
			         err == -EBADF ? "no such open file descriptor"
			         : err == -ENOTSOCK ? "not a socket"
			                            : strerror(-err));
		return err;
	}
	if (type != SOCK_STREAM) {
		snprintf(msg, cap, "%s: not a stream socket", uri);
		return -ESOCKTNOSUPPORT;
	}
	len = sizeof acc;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0)
		acc = 0;
	*listening = acc != 0;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		ss.ss_family = AF_UNSPEC;
	switch (ss.ss_family) {
	case AF_INET:
	case AF_INET6: *fam = &rill__tcp_family; break;
	case AF_UNIX: *fam = &rill__unix_family; break;
	case AF_VSOCK: *fam = &rill__vsock_family; break;
	default: *fam = &fd_generic_family; break;
	}
	return 0;
}

/* The connect completes from the loop. */
struct fd_connect {
	uv_timer_t timer;
	struct rill_flow *f;
	int err;
	char msg[320];
	rill_connect_cb cb;
	void *ud;
};

static void fd_connect_free(uv_handle_t *h)
{
	rill_free(h->data);
}

static void fd_connect_fire(uv_timer_t *t)
{
	struct fd_connect *c = t->data;
	uv_close((uv_handle_t *)&c->timer, fd_connect_free);
	c->cb(c->f, c->err, c->err != 0 ? c->msg : NULL, c->ud);
}

/*
 * Checks that fd is a stream socket of the kind the caller wants (a
 * listening one for listen, a connected one for connect), then claims it.
 * Returns 0 and its family, or an error with msg.
 */
static int fd_adopt(const struct rill_uri *u, int fd, bool listen,
                    const struct rill_socket_family **fam, char *msg,
                    size_t cap)
{
	bool listening = false;
	int err = fd_inspect(fd, u->text, &listening, fam, msg, cap);
	if (err != 0)
		return err;
	if (listening && !listen) {
		snprintf(msg, cap,
		         "%s is a listening socket: use it where a command "
		         "listens (rill relay's first URI, rill http serve, "
		         "rill echo, rill cat -l)",
		         u->text);
		return RILL_EINVAL;
	}
	if (!listening && listen) {
		snprintf(msg, cap,
		         "%s is not a listening socket (a connected one is "
		         "for connecting: rill cat %s, or rill relay's target)",
		         u->text, u->text);
		return RILL_EINVAL;
	}
	if (!fd_claim(fd)) {
		snprintf(msg, cap, "%s: descriptor %d was already used once",
		         u->text, fd);
		return -EBUSY;
	}
	return 0;
}

static int fd_connect(uv_loop_t *loop, const struct rill_uri *u,
                      const struct rill_connect_opts *opts, rill_connect_cb cb,
                      void *ud)
{
	int fd;
	int err = fd_resolve(u, &fd);
	if (err != 0)
		return err;
	struct fd_connect *c = rill_calloc(1, sizeof *c);
	if (c == NULL)
		return RILL_ENOMEM;
	c->cb = cb;
	c->ud = ud;
	const struct rill_socket_family *fam = NULL;
	c->err = fd_adopt(u, fd, false, &fam, c->msg, sizeof c->msg);
	if (c->err == 0) {
		c->err = rill__socket_flow_new(loop, fd, fam, &c->f);
		if (c->err != 0)
			snprintf(c->msg, sizeof c->msg, "%s: %s", u->text,
			         rill_strerror(c->err));
	}
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	uv_timer_start(&c->timer, fd_connect_fire, 0, 0);
	return 0;
}

static int fd_listen(uv_loop_t *loop, const struct rill_uri *u,
                     const struct rill_listen_opts *opts, rill_accept_cb cb,
                     void *ud, struct rill_listener **out)
{
	int fd;
	int err = fd_resolve(u, &fd);
	if (err != 0)
		return err;
	const struct rill_socket_family *fam = NULL;
	char msg[320];
	err = fd_adopt(u, fd, true, &fam, msg, sizeof msg);
	if (err == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
		err = -errno;
		snprintf(msg, sizeof msg, "%s: %s", u->text, strerror(-err));
	}
	if (err != 0) {
		rill__set_last_errmsg("listen %s", msg);
		return err;
	}
	/* The listener owns the descriptor from here (closed on failure). */
	err = rill__socket_listen(loop, fd, fam, NULL, cb, ud, out);
	if (err != 0)
		rill__set_last_errmsg("listen %s: %s", u->text,
		                      rill_strerror(err));
	return err;
}

const struct rill_transport_scheme rill__fd_scheme = {
    .name = "fd",
    .params = NULL,
    .check = fd_check,
    .connect = fd_connect,
    .listen = fd_listen,
};
