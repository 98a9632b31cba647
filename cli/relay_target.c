/*
 * rill relay's dynamic targets (relay_target.h). Public API only.
 *
 * A name is resolved by getaddrinfo(3) (the system's rules: hosts file,
 * DNS, nsswitch) on a thread of its own, not on libuv's pool: the pool
 * runs two lookups at a time, so two clients asking for names in a zone
 * whose servers never answer held every other lookup back for as long
 * as the resolver waited (a client asking for localhost was answered
 * after 19.5 s). A thread per lookup in progress costs one small stack;
 * their number is bounded by --max-conns.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay_target.h"

struct rt_req {
	uv_async_t done; /* the lookup thread's end; open while it runs */
	bool lookup;     /* done was opened */
	int gai_err;
	struct addrinfo *res;
	const struct target_allow *allow;
	const char *connect_uri;
	relay_target_cb cb;
	void *ud;
	char requested[300];
	char host[260];
	uint16_t port;
};

/* connect_uri with every {target} replaced by with; NULL on ENOMEM. */
static char *rt_replace(const char *connect_uri, const char *with)
{
	size_t ml = strlen(RELAY_TARGET_MARK), wl = strlen(with);
	size_t n = 0;
	for (const char *p = strstr(connect_uri, RELAY_TARGET_MARK); p != NULL;
	     p = strstr(p + ml, RELAY_TARGET_MARK))
		n++;
	char *out = malloc(strlen(connect_uri) + n * wl + 1);
	if (out == NULL)
		return NULL;
	char *o = out;
	const char *s = connect_uri;
	for (const char *p = strstr(s, RELAY_TARGET_MARK); p != NULL;
	     p = strstr(s, RELAY_TARGET_MARK)) {
		memcpy(o, s, (size_t)(p - s));
		o += p - s;
		memcpy(o, with, wl);
		o += wl;
		s = p + ml;
	}
	memcpy(o, s, strlen(s) + 1);
	return out;
}

char *relay_target_sample(const char *connect_uri)
{
	return rt_replace(connect_uri, "127.0.0.1:1");
}

static void rt_closed(uv_handle_t *h)
{
	free(h->data);
}

static void rt_free(struct rt_req *q)
{
	if (q->lookup)
		uv_close((uv_handle_t *)&q->done, rt_closed);
	else
		free(q);
}

/* Ends the request with an error. */
static void rt_fail(struct rt_req *q, int status, const char *why)
{
	q->cb(q->ud, status, q->requested, NULL, why);
	rt_free(q);
}

/* Ends the request: the URI for address ip (a literal). */
static void rt_ok(struct rt_req *q, const char *ip)
{
	char with[300];
	snprintf(with, sizeof with,
	         strchr(ip, ':') != NULL ? "[%s]:%u" : "%s:%u", ip,
	         (unsigned)q->port);
	char *uri = rt_replace(q->connect_uri, with);
	if (uri == NULL) {
		rt_fail(q, RILL_ENOMEM, "out of memory");
		return;
	}
	q->cb(q->ud, 0, q->requested, uri, NULL);
	free(uri);
	rt_free(q);
}

/* On the loop, once the lookup thread is over. */
static void rt_resolved(uv_async_t *h)
{
	struct rt_req *q = h->data;
	struct addrinfo *res = q->res;
	if (q->gai_err != 0 || res == NULL) {
		if (res != NULL)
			freeaddrinfo(res);
		rt_fail(q, -EHOSTUNREACH, "name does not resolve");
		return;
	}
	/* Every address is checked, not only the one used: a name must not
	 * be a way to reach a denied address. */
	char ip[INET6_ADDRSTRLEN] = "";
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		const uint8_t *a;
		size_t al;
		if (ai->ai_family == AF_INET) {
			a = (const uint8_t *)&(
			        (struct sockaddr_in *)(void *)ai->ai_addr)
			        ->sin_addr;
			al = 4;
		} else if (ai->ai_family == AF_INET6) {
			a = (const uint8_t *)&(
			        (struct sockaddr_in6 *)(void *)ai->ai_addr)
			        ->sin6_addr;
			al = 16;
		} else {
			continue;
		}
		char buf[INET6_ADDRSTRLEN];
		inet_ntop(ai->ai_family, a, buf, sizeof buf);
		if (!target_allow_address(q->allow, a, al, q->port)) {
			char why[sizeof q->host + INET6_ADDRSTRLEN + 40];
			snprintf(why, sizeof why,
			         "%s resolves to %s, a denied address", q->host,
			         buf);
			freeaddrinfo(res);
			rt_fail(q, RILL_EPROXY_DENIED, why);
			return;
		}
		if (ip[0] == '\0')
			memcpy(ip, buf, sizeof buf);
	}
	freeaddrinfo(res);
	if (ip[0] == '\0')
		rt_fail(q, -EHOSTUNREACH, "no IP address for the name");
	else
		rt_ok(q, ip);
}

/* Splits HOST:PORT / [V6]:PORT (as rill_tunnel_target gives it). */
static bool rt_split(struct rt_req *q)
{
	const char *s = q->requested;
	const char *colon = strrchr(s, ':');
	if (colon == NULL)
		return false;
	const char *h = s;
	size_t hl = (size_t)(colon - s);
	if (*s == '[' && hl >= 2 && colon[-1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof q->host)
		return false;
	memcpy(q->host, h, hl);
	q->host[hl] = '\0';
	q->port = (uint16_t)atoi(colon + 1);
	return true;
}

/* getaddrinfo runs the NSS modules (DNS, files...): room for them. */
#define RT_STACK (256 * 1024)

/* The lookup thread: touches only q, then wakes the loop, which frees q
 * after rt_resolved (the open async handle keeps the loop alive until
 * then). */
static void *rt_lookup(void *arg)
{
	struct rt_req *q = arg;
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM};
	q->gai_err = getaddrinfo(q->host, NULL, &hints, &q->res);
	uv_async_send(&q->done);
	return NULL;
}

void relay_target_start(uv_loop_t *loop, const struct target_allow *allow,
                        const char *connect_uri, struct rill_flow *client,
                        relay_target_cb cb, void *ud)
{
	struct rt_req *q = calloc(1, sizeof *q);
	if (q == NULL) {
		cb(ud, RILL_ENOMEM, "?", NULL, "out of memory");
		return;
	}
	q->allow = allow;
	q->connect_uri = connect_uri;
	q->cb = cb;
	q->ud = ud;
	int err = rill_tunnel_target(client, q->requested, sizeof q->requested);
	if (err != 0 || !rt_split(q)) {
		snprintf(q->requested, sizeof q->requested, "?");
		rt_fail(q, err != 0 ? err : RILL_EINVAL,
		        "no target: CONNECT_URI has {target}, so LISTEN_URI "
		        "must be socks5+ or connect+");
		return;
	}
	if (!target_allow_request(allow, q->host, q->port)) {
		rt_fail(q, RILL_EPROXY_DENIED, "no --allow-target matches");
		return;
	}
	uint8_t a[16];
	if (inet_pton(AF_INET, q->host, a) == 1 ||
	    inet_pton(AF_INET6, q->host, a) == 1) {
		bool v4 = strchr(q->host, ':') == NULL;
		if (!target_allow_address(allow, a, v4 ? 4 : 16, q->port))
			rt_fail(q, RILL_EPROXY_DENIED, "a denied address");
		else
			rt_ok(q, q->host);
		return;
	}
	err = uv_async_init(loop, &q->done, rt_resolved);
	if (err != 0) {
		rt_fail(q, -EHOSTUNREACH, uv_strerror(err));
		return;
	}
	q->done.data = q;
	q->lookup = true;
	pthread_attr_t attr;
	pthread_t tid;
	err = pthread_attr_init(&attr);
	if (err == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, RT_STACK);
		err = pthread_create(&tid, &attr, rt_lookup, q);
		pthread_attr_destroy(&attr);
	}
	if (err != 0)
		rt_fail(q, -EHOSTUNREACH, "cannot start a lookup thread");
}
