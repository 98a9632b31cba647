/*
 * The splice path between two endpoints on this host (issue 17).
 *
 * When both sockets of a copy are TCP connections to this host (loopback,
 * or one of its own addresses), the endpoints run on the same CPUs as
 * the relay and the bytes never leave memory. Measured on a 2-vCPU guest
 * (BENCHMARKS.md): with the defaults the sender's pages travel by
 * reference through the relay's receive queue, a 1 MiB pipe and the
 * sink's queue, the sink reads them long after they were written and it
 * does its own TCP receive work as the bottleneck of the chain: the
 * endpoints spent twice the CPU per byte they spend through a copying
 * forwarder, and the relay moved less. Little in flight keeps the pages
 * hot and the chain balanced:
 *   - 128 KiB socket buffers (SO_RCVBUF on the side read, SO_SNDBUF on
 *     the side written; the kernel doubles them) and at most 128 KiB in
 *     the pipe;
 *   - a congestion control that does not pace: BBR paces every
 *     transmission with a timer, which on loopback only costs (a fifth
 *     of the relay's samples); there is no network to be fair to.
 * Between hosts none of this applies: the buffers keep autotuning (they
 * bound the bandwidth-delay product) and the congestion control stays.
 * RILL_SPLICE_LOCAL=0 in the environment turns the tuning off.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "combinator/combinator.h"

#define SPLICE_LOCAL_BUF  (128 * 1024)
#define SPLICE_LOCAL_PIPE (128 * 1024)
#define SPLICE_LOCAL_CC   "reno"

static bool local_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
		return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
	}
	if (a->ss_family == AF_INET6) {
		const struct in6_addr *v6 =
		    &((const struct sockaddr_in6 *)a)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(v6) ||
		       (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
	}
	return false;
}

static bool local_same_addr(const struct sockaddr_storage *a,
                            const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		              &((const struct sockaddr_in6 *)b)->sin6_addr,
		              sizeof(struct in6_addr)) == 0;
	return false;
}

bool rill__splice_fd_local(int fd)
{
	int proto = 0;
	socklen_t len = sizeof proto;
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) != 0 ||
	    proto != IPPROTO_TCP)
		return false;
	struct sockaddr_storage self, peer;
	socklen_t sl = sizeof self, pl = sizeof peer;
	if (getsockname(fd, (struct sockaddr *)&self, &sl) != 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &pl) != 0)
		return false;
	if (self.ss_family != AF_INET && self.ss_family != AF_INET6)
		return false;
	/* A connection to one of our own addresses goes over loopback. */
	return local_loopback(&peer) || local_same_addr(&peer, &self);
}

static bool local_enabled(void)
{
	const char *env = getenv("RILL_SPLICE_LOCAL");
	return env == NULL || strcmp(env, "0") != 0;
}

/* Whether fd's congestion control paces (BBR and its versions). */
static bool local_cc_paces(int fd)
{
	char cc[16] = "";
	socklen_t len = sizeof cc - 1;
	if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &len) != 0)
		return false;
	return strncmp(cc, "bbr", 3) == 0;
}

size_t rill__splice_local_tune(const struct rill__splice_ep *in,
                               const struct rill__splice_ep *out)
{
	if (!in->local || !out->local || !local_enabled())
		return 0;
	/* Best effort: a socket that refuses keeps its defaults, which
	 * work, only less well here. */
	int buf = SPLICE_LOCAL_BUF;
	(void)setsockopt(in->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
	(void)setsockopt(out->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
	if (local_cc_paces(out->fd))
		(void)setsockopt(out->fd, IPPROTO_TCP, TCP_CONGESTION,
		                 SPLICE_LOCAL_CC, sizeof SPLICE_LOCAL_CC - 1);
	return SPLICE_LOCAL_PIPE;
}
