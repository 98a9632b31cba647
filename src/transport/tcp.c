/*
 * TCP over IPv4 and IPv6: the "tcp" family of the socket core, and the
 * tcp:// URI scheme.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "transport/socket.h"

static int tcp_format(const struct sockaddr *sa, socklen_t len, bool listener,
                      char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	unsigned port;
	int n;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in a;
		memcpy(&a, sa, sizeof a);
		/* A client cannot connect to the wildcard address: name the
		 * loopback address instead, which reaches a wildcard
		 * listener. */
		if (listener && a.sin_addr.s_addr == htonl(INADDR_ANY))
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
		port = ntohs(a.sin_port);
		n = snprintf(buf, cap, "tcp://%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6 &&
	           len >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 a;
		memcpy(&a, sa, sizeof a);
		if (listener && IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr))
			a.sin6_addr = in6addr_loopback;
		inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof host);
		port = ntohs(a.sin6_port);
		n = snprintf(buf, cap, "tcp://[%s]:%u", host, port);
	} else {
		return -EAFNOSUPPORT;
	}
	return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

static const struct rill_flow_ops tcp_ops = RILL_SOCKET_OPS("tcp");

const struct rill_socket_family rill__tcp_family = {
    .name = "tcp",
    .ops = &tcp_ops,
    .tcp_options = true,
    .format = tcp_format,
};
