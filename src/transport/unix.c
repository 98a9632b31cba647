/*
 * Unix stream sockets: the "unix" family of the socket core, and the
 * unix: URI scheme (filesystem paths and Linux abstract names, "@name").
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport/socket.h"

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
	/* SO_REUSEADDR means nothing for Unix sockets; an existing file is
	 * EADDRINUSE, and is not removed: it may belong to a live server. */
	return rill__socket_bind_listen(
	    loop, &rill__unix_family, (struct sockaddr *)&sa, len,
	    opts->backlog, false,
	    abstract || opts->keep_unix_path ? NULL : sa.sun_path, label, cb,
	    ud, out);
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
/* Listening sockets that replace stale ones */

/* True when a server accepts connections on sa right now. */
static bool unix_is_live(const struct sockaddr_un *sa, int *why)
{
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0) {
		*why = errno;
		return true; /* cannot tell: do not touch the file */
	}
	bool live =
	    connect(probe, (const struct sockaddr *)sa, sizeof *sa) == 0;
	*why = live ? 0 : errno;
	close(probe);
	return live;
}

int rill__unix_bind_fd(const char *path, int backlog, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n + 1);
	int err = rill__socket_bind_fd((struct sockaddr *)&sa, sizeof sa,
	                               backlog, false, path, out);
	if (err != -EADDRINUSE)
		return err;
	/* Only a file whose server is gone (connect refused) is replaced:
	 * a live server, or a file that is not a socket, stays. */
	int why = 0;
	if (unix_is_live(&sa, &why) || why != ECONNREFUSED || unlink(path) != 0)
		return -EADDRINUSE;
	return rill__socket_bind_fd((struct sockaddr *)&sa, sizeof sa, backlog,
	                            false, path, out);
}
