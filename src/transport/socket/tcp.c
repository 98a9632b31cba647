/*
 * TCP over IPv4 and IPv6: the "tcp" family of the socket core, and the
 * tcp:// URI scheme.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "transport/socket/socket.h"

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

/* ---------------------------------------------------------------------- */
/* The tcp:// scheme: tcp://host:port, tcp://[v6]:port, tcp://:port
 * (listen on every address). */

#define TCP_HOST_MAX 256

struct tcp_target {
	char host[TCP_HOST_MAX]; /* without brackets; "" for the wildcard */
	char port[8];
	unsigned port_num;
	bool v6_literal;
};

static bool tcp_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int tcp_parse(const struct rill_uri *u, struct tcp_target *t)
{
	memset(t, 0, sizeof *t);
	const char *r = u->rest;
	if (strncmp(r, "//", 2) != 0)
		return rill__uri_error(u, "expected tcp://host:port, not", r);
	r += 2;
	const char *colon;
	if (*r == '[') {
		const char *end = strchr(r, ']');
		if (end == NULL)
			return rill__uri_error(
			    u, "missing ] after IPv6 address", r);
		size_t n = (size_t)(end - r - 1);
		if (n == 0 || n >= sizeof t->host)
			return rill__uri_error(u, "bad IPv6 address", r);
		memcpy(t->host, r + 1, n);
		t->host[n] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, t->host, &a6) != 1)
			return rill__uri_error(u, "bad IPv6 address", t->host);
		t->v6_literal = true;
		colon = end + 1;
		if (*colon != ':')
			return rill__uri_error(u, "expected :port after", r);
	} else {
		colon = strrchr(r, ':');
		if (colon == NULL)
			return rill__uri_error(u, "missing :port after host",
			                       r);
		size_t n = (size_t)(colon - r);
		if (n >= sizeof t->host)
			return rill__uri_error(u, "host name too long", r);
		memcpy(t->host, r, n);
		t->host[n] = '\0';
		for (size_t i = 0; i < n; i++)
			if (!tcp_host_char(t->host[i]))
				return rill__uri_error(
				    u,
				    strchr(t->host, ':') != NULL
				        ? "IPv6 address needs [brackets]:"
				        : "bad host",
				    t->host);
	}
	const char *p = colon + 1;
	size_t plen = strlen(p);
	bool digits = plen > 0 && plen <= 5;
	for (size_t i = 0; i < plen && digits; i++)
		digits = p[i] >= '0' && p[i] <= '9';
	unsigned long v = digits ? strtoul(p, NULL, 10) : 0;
	if (plen == 0)
		return rill__uri_error(u, "missing port after", r);
	if (!digits || v > 65535)
		return rill__uri_error(u, "bad port", p);
	t->port_num = (unsigned)v;
	snprintf(t->port, sizeof t->port, "%u", t->port_num);
	return 0;
}

static const char *const tcp_params[] = {"nodelay", NULL};

static int tcp_check(const struct rill_uri *u)
{
	struct tcp_target t;
	int err = tcp_parse(u, &t);
	if (err != 0)
		return err;
	uint64_t nd;
	return rill__uri_param_u64(u, "nodelay", 0, 1, 0, &nd);
}

struct tcp_connect {
	rill_connect_cb cb;
	void *ud;
	bool nodelay;
};

static void tcp_connected(struct rill_flow *f, int status, const char *errmsg,
                          void *ud)
{
	struct tcp_connect *c = ud;
	rill_connect_cb cb = c->cb;
	void *cud = c->ud;
	if (status == 0 && c->nodelay)
		rill__socket_set_nodelay(f, true);
	rill_free(c);
	cb(f, status, errmsg, cud);
}

static int tcp_connect(uv_loop_t *loop, const struct rill_uri *u,
                       const struct rill_connect_opts *opts, rill_connect_cb cb,
                       void *ud)
{
	struct tcp_target t;
	int err = tcp_parse(u, &t);
	if (err != 0)
		return err;
	if (t.host[0] == '\0')
		return rill__uri_error(u, "missing host in", u->rest);
	if (t.port_num == 0)
		return rill__uri_error(u, "cannot connect to port", t.port);
	uint64_t nd;
	err = rill__uri_param_u64(u, "nodelay", 0, 1, 0, &nd);
	if (err != 0)
		return err;
	struct tcp_connect *c = rill_calloc(1, sizeof *c);
	if (c == NULL)
		return RILL_ENOMEM;
	c->cb = cb;
	c->ud = ud;
	c->nodelay = nd != 0;
	char label[TCP_HOST_MAX + 32];
	snprintf(label, sizeof label, "tcp:%s", u->rest);
	err = rill__socket_connect_host(loop, &rill__tcp_family, t.host, t.port,
	                                label, opts->timeout_ms,
	                                opts->retry_until_ms, tcp_connected, c);
	if (err != 0)
		rill_free(c);
	return err;
}

static int tcp_listen(uv_loop_t *loop, const struct rill_uri *u,
                      const struct rill_listen_opts *opts, rill_accept_cb cb,
                      void *ud, struct rill_listener **out)
{
	struct tcp_target t;
	int err = tcp_parse(u, &t);
	if (err != 0)
		return err;
	char label[TCP_HOST_MAX + 32];
	snprintf(label, sizeof label, "tcp:%s", u->rest);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	/* An empty host listens on every address: "::" accepts IPv4 too
	 * (Linux's default bindv6only=0); without IPv6, 0.0.0.0. Names are
	 * resolved here, blocking: listening is a setup step. */
	const char *host = t.host[0] != '\0' ? t.host : NULL;
	if (host == NULL)
		hints.ai_family = AF_INET6;
	int gai = getaddrinfo(host, t.port, &hints, &res);
	if (gai != 0 && host == NULL) {
		hints.ai_family = AF_INET;
		gai = getaddrinfo(host, t.port, &hints, &res);
	}
	if (gai != 0) {
		rill__set_last_errmsg("listen %s: cannot resolve host: %s",
		                      label, gai_strerror(gai));
		return gai == EAI_NONAME ? -ENOENT : -EIO;
	}
	err = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		err = rill__socket_bind_listen(
		    loop, &rill__tcp_family, ai->ai_addr, ai->ai_addrlen,
		    opts->backlog, true, NULL, label, cb, ud, out);
		if (err == 0 || host == NULL)
			break;
	}
	freeaddrinfo(res);
	return err;
}

const struct rill_transport_scheme rill__tcp_scheme = {
    .name = "tcp",
    .params = tcp_params,
    .check = tcp_check,
    .connect = tcp_connect,
    .listen = tcp_listen,
    .join = rill__socket_join,
};
