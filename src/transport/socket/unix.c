/*
 * Unix stream sockets: the "unix" family of the socket core, and the
 * unix: URI scheme (filesystem paths and Linux abstract names, "@name").
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/core.h"
#include "transport/socket/socket.h"

static int unix_format(const struct sockaddr *sa, socklen_t len, bool listener,
                       char *buf, size_t cap)
{
	(void)listener;
	if (sa->sa_family != AF_UNIX)
		return -EAFNOSUPPORT;
	const struct sockaddr_un *a = (const struct sockaddr_un *)sa;
	size_t off = offsetof(struct sockaddr_un, sun_path);
	size_t plen = len > off ? len - off : 0;
	if (plen > sizeof a->sun_path)
		plen = sizeof a->sun_path;
	size_t o = 0;
#define UNIX_PUT(c)                     \
	do {                            \
		if (o + 1 >= cap)       \
			return -ENOSPC; \
		buf[o++] = (char)(c);   \
	} while (0)
	UNIX_PUT('u');
	UNIX_PUT('n');
	UNIX_PUT('i');
	UNIX_PUT('x');
	UNIX_PUT(':');
	if (plen > 0 && a->sun_path[0] == '\0') {
		/* Abstract: every byte of the name counts, NULs included;
		 * bytes that would not print are %-escaped. */
		UNIX_PUT('@');
		for (size_t i = 1; i < plen; i++) {
			unsigned char c = (unsigned char)a->sun_path[i];
			if (c > 0x20 && c < 0x7f && c != '%') {
				UNIX_PUT(c);
			} else {
				static const char hex[] = "0123456789ABCDEF";
				UNIX_PUT('%');
				UNIX_PUT(hex[c >> 4]);
				UNIX_PUT(hex[c & 15]);
			}
		}
	} else {
		for (size_t i = 0; i < plen && a->sun_path[i] != '\0'; i++)
			UNIX_PUT(a->sun_path[i]);
	}
#undef UNIX_PUT
	buf[o] = '\0';
	return 0;
}

static const struct rill_flow_ops unix_ops = RILL_SOCKET_OPS("unix");

const struct rill_socket_family rill__unix_family = {
    .name = "unix",
    .ops = &unix_ops,
    .tcp_options = false,
    .format = unix_format,
};

/* ---------------------------------------------------------------------- */
/* The unix: scheme: unix:/abs/path, unix:rel/path, unix:///abs/path,
 * unix:@abstract (Linux). */

static int unix_parse(const struct rill_uri *u, struct sockaddr_un *sa,
                      socklen_t *len, bool *abstract)
{
	const char *p = u->rest;
	if (strncmp(p, "//", 2) == 0)
		p += 2; /* unix:///path, as curl and others write it */
	if (*p == '\0')
		return rill__uri_error(u, "missing socket path in", u->rest);
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	size_t n = strlen(p);
	*abstract = p[0] == '@';
	if (*abstract) {
		/* Linux abstract namespace: sun_path[0] is NUL and the name
		 * is exactly the bytes after it (unix(7)); no NUL ending. */
		if (n < 2)
			return rill__uri_error(u, "empty abstract socket name",
			                       p);
		if (n > sizeof sa->sun_path)
			return rill__uri_error(
			    u, "abstract socket name too long (max 107 bytes):",
			    p);
		memcpy(sa->sun_path + 1, p + 1, n - 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		if (n >= sizeof sa->sun_path)
			return rill__uri_error(
			    u, "socket path too long (max 107 bytes):", p);
		memcpy(sa->sun_path, p, n);
		*len =
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

static int unix_check(const struct rill_uri *u)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	bool abstract = false;
	return unix_parse(u, &sa, &len, &abstract);
}

static int unix_connect(uv_loop_t *loop, const struct rill_uri *u,
                        const struct rill_connect_opts *opts,
                        rill_connect_cb cb, void *ud)
{
	struct rill__sockaddr a;
	bool abstract = false;
	struct sockaddr_un *sa = (struct sockaddr_un *)&a.ss;
	memset(&a, 0, sizeof a);
	int err = unix_parse(u, sa, &a.len, &abstract);
	if (err != 0)
		return err;
	char label[160];
	snprintf(label, sizeof label, "unix:%s", u->rest);
	return rill__socket_connect(loop, &rill__unix_family, &a, 1, label,
	                            opts->timeout_ms, opts->retry_until_ms, cb,
	                            ud);
}

static int unix_listen(uv_loop_t *loop, const struct rill_uri *u,
                       const struct rill_listen_opts *opts, rill_accept_cb cb,
                       void *ud, struct rill_listener **out)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	bool abstract = false;
	int err = unix_parse(u, &sa, &len, &abstract);
	if (err != 0)
		return err;
	char label[160];
	snprintf(label, sizeof label, "unix:%s", u->rest);
	const char *unlink_path =
	    abstract || opts->keep_unix_path ? NULL : sa.sun_path;
	if (!abstract && opts->replace_stale_unix) {
		int fd = -1;
		const char *why = NULL;
		err = rill__unix_bind_fd(sa.sun_path, opts->backlog, &fd, &why);
		if (err != 0) {
			rill__set_last_errmsg(
			    "listen %s: %s%s%s", label, strerror(-err),
			    why != NULL ? ": " : "", why != NULL ? why : "");
			return err;
		}
		err = rill__socket_listen(loop, fd, &rill__unix_family,
		                          unlink_path, cb, ud, out);
		if (err != 0) {
			rill__set_last_errmsg("listen %s: %s", label,
			                      rill_strerror(err));
			if (unlink_path != NULL)
				unlink(unlink_path);
		}
		return err;
	}
	/* SO_REUSEADDR means nothing for Unix sockets; an existing file is
	 * EADDRINUSE, and is not removed: it may belong to a live server
	 * (replace_stale_unix replaces a dead one). */
	return rill__socket_bind_listen(
	    loop, &rill__unix_family, (struct sockaddr *)&sa, len,
	    opts->backlog, false, unlink_path, label, cb, ud, out);
}

const struct rill_transport_scheme rill__unix_scheme = {
    .name = "unix",
    .params = NULL,
    .check = unix_check,
    .connect = unix_connect,
    .listen = unix_listen,
    .join = rill__socket_join,
};

/* ---------------------------------------------------------------------- */
/* Listening sockets that replace stale ones
 *
 * A socket file whose server died (kill -9) stays behind, and bind then
 * fails with EADDRINUSE. It is replaced only when all of these hold: it
 * is a socket (lstat: a regular file, a directory or a symlink is never
 * touched; connect() would also say ECONNREFUSED for a regular file), it
 * belongs to our effective uid (another user's socket is theirs to
 * clean), and a non-blocking connect to it is refused (nobody listens;
 * a full backlog gives EAGAIN, which counts as alive). */

/* 0: stale, ENOENT: gone already, else EADDRINUSE with *why. */
static int unix_probe_stale(const struct sockaddr_un *sa, const char *path,
                            const char **why)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return ENOENT;
		*why = "the path exists and cannot be examined";
		return EADDRINUSE;
	}
	if (!S_ISSOCK(st.st_mode)) {
		*why = "the path exists and is not a socket (left alone)";
		return EADDRINUSE;
	}
	if (st.st_uid != geteuid()) {
		*why = "a socket of another user is there (left alone)";
		return EADDRINUSE;
	}
	int probe =
	    socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe < 0) {
		*why = "cannot probe the existing socket";
		return EADDRINUSE;
	}
	int e = connect(probe, (const struct sockaddr *)sa, sizeof *sa) == 0
	            ? 0
	            : errno;
	close(probe);
	if (e == ENOENT)
		return ENOENT;
	if (e != ECONNREFUSED) {
		*why = e == 0 || e == EAGAIN
		           ? "a server is listening there"
		           : "the existing socket answers in an unexpected way "
		             "(left alone)";
		return EADDRINUSE;
	}
	/* The same file still, so that what we unlink is what we checked. */
	struct stat again;
	if (lstat(path, &again) != 0 || again.st_ino != st.st_ino ||
	    again.st_dev != st.st_dev) {
		*why = "the socket file changed under the check";
		return EADDRINUSE;
	}
	return 0;
}

int rill__unix_bind_fd(const char *path, int backlog, int *out,
                       const char **why)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	const char *dummy;
	if (why == NULL)
		why = &dummy;
	*why = NULL;
	if (n >= sizeof sa.sun_path) {
		*why = "path too long for a Unix socket (max 107 bytes)";
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, n + 1);
	int err = rill__socket_bind_fd((struct sockaddr *)&sa, sizeof sa,
	                               backlog, false, path, out);
	if (err != -EADDRINUSE)
		return err;
	int e = unix_probe_stale(&sa, path, why);
	if (e == EADDRINUSE)
		return -EADDRINUSE;
	if (e == 0 && unlink(path) != 0 && errno != ENOENT) {
		*why = "cannot remove the stale socket";
		return -EADDRINUSE;
	}
	err = rill__socket_bind_fd((struct sockaddr *)&sa, sizeof sa, backlog,
	                           false, path, out);
	if (err == -EADDRINUSE)
		*why = "another server took the path meanwhile";
	return err;
}
