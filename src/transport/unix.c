/*
 * Unix stream sockets: the "unix" family of the socket core, and the
 * unix: URI scheme (filesystem paths and Linux abstract names, "@name").
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "transport/socket.h"

static int unix_format(const struct sockaddr *sa, socklen_t len,
                       bool listener, char *buf, size_t cap)
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
#define UNIX_PUT(c)                          \
	do {                                 \
		if (o + 1 >= cap)            \
			return -ENOSPC;      \
		buf[o++] = (char)(c);        \
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
