/*
 * rill bench cases for socket flows: tcp4, tcp6 and unix, each measured
 * beside a plain C loop over non-blocking sockets of the same family, in
 * the same run, on one thread like the flows.
 *
 * Throughput: both ends in one process; rill moves `bytes` with
 * bench_transfer (64 KiB writes, a window of 4); the plain loop writes
 * 64 KiB chunks and reads 256 KiB at a time, waiting in epoll only when
 * neither side can make progress.
 * Round trip: 1 byte a -> b, 1 byte b -> a, repeated; reported as round
 * trips per second (higher is better, so the ratio reads like the
 * throughput one), and as microseconds in BENCHMARKS.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

#define SOCKB_CHUNK (64u * 1024u)
#define SOCKB_RBUF  (256u * 1024u)
#define SOCKB_RTT_N 20000

struct bench_socket_kind {
	const char *name;
	const char *listen_uri; /* rill */
	int family;
};

static const struct bench_socket_kind bench_socket_tcp4 = {
    "tcp4", "tcp://127.0.0.1:0", AF_INET};
static const struct bench_socket_kind bench_socket_tcp6 = {
    "tcp6", "tcp://[::1]:0", AF_INET6};
static const struct bench_socket_kind bench_socket_unix = {"unix", NULL,
                                                           AF_UNIX};

/* ---------------------------------------------------------------------- */
/* Plain sockets */

/* A connected pair of non-blocking sockets of the family, or -errno. */
static int bench_socket_plain_pair(const struct bench_socket_kind *k,
                                   int fds[2])
{
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof ss);
	if (k->family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *a;
	} else if (k->family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof *a;
	} else {
		struct sockaddr_un *a = (struct sockaddr_un *)&ss;
		a->sun_family = AF_UNIX;
		/* Abstract name: nothing to clean up. */
		int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1,
		                 "rill-bench-plain-%d", (int)getpid());
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
		                  (size_t)n);
	}
	int l = socket(k->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&ss, len) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&ss, &len) != 0) {
		int err = -errno;
		close(l);
		return err;
	}
	int c = socket(k->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, len) != 0) {
		int err = -errno;
		if (c >= 0)
			close(c);
		close(l);
		return err;
	}
	int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	int err = s < 0 ? -errno : 0;
	close(l);
	if (err != 0) {
		close(c);
		return err;
	}
	fcntl(c, F_SETFL, O_NONBLOCK);
	fcntl(s, F_SETFL, O_NONBLOCK);
	fds[0] = c;
	fds[1] = s;
	return 0;
}

static double bench_socket_plain_throughput(const struct bench_socket_kind *k,
                                            uint64_t bytes)
{
	int fds[2];
	int err = bench_socket_plain_pair(k, fds);
	if (err != 0)
		return err;
	uint8_t *wbuf = malloc(SOCKB_CHUNK), *rbuf = malloc(SOCKB_RBUF);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (wbuf == NULL || rbuf == NULL || ep < 0) {
		free(wbuf);
		free(rbuf);
		close(fds[0]);
		close(fds[1]);
		if (ep >= 0)
			close(ep);
		return RILL_ENOMEM;
	}
	memset(wbuf, 0xa5, SOCKB_CHUNK);
	struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fds[0]};
	epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev);
	ev = (struct epoll_event){.events = EPOLLIN, .data.fd = fds[1]};
	epoll_ctl(ep, EPOLL_CTL_ADD, fds[1], &ev);
	uint64_t sent = 0, received = 0;
	bool shut = false;
	double t0 = bench_now();
	while (received < bytes) {
		bool progress = false;
		if (sent < bytes) {
			uint64_t left = bytes - sent;
			ssize_t n =
			    write(fds[0], wbuf,
			          left < SOCKB_CHUNK ? left : SOCKB_CHUNK);
			if (n > 0) {
				sent += (uint64_t)n;
				progress = true;
			}
		} else if (!shut) {
			shutdown(fds[0], SHUT_WR);
			shut = true;
			epoll_ctl(ep, EPOLL_CTL_DEL, fds[0], NULL);
		}
		ssize_t n = read(fds[1], rbuf, SOCKB_RBUF);
		if (n > 0) {
			received += (uint64_t)n;
			progress = true;
		} else if (n == 0) {
			break;
		}
		if (!progress) {
			struct epoll_event evs[2];
			epoll_wait(ep, evs, 2, -1);
		}
	}
	double dt = bench_now() - t0;
	close(ep);
	close(fds[0]);
	close(fds[1]);
	free(wbuf);
	free(rbuf);
	if (received != bytes)
		return -EIO;
	return (double)bytes / dt / 1e6;
}

/* Reads exactly one byte from fd, waiting in poll when there is none. */
static int bench_socket_read1(int fd)
{
	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n == 1)
			return 0;
		if (n == 0)
			return -EIO;
		if (errno != EAGAIN)
			return -errno;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, -1);
	}
}

static double bench_socket_plain_rtt(const struct bench_socket_kind *k)
{
	int fds[2];
	int err = bench_socket_plain_pair(k, fds);
	if (err != 0)
		return err;
	if (k->family != AF_UNIX) {
		int one = 1;
		setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	double t0 = bench_now();
	for (int i = 0; i < SOCKB_RTT_N && err == 0; i++) {
		if (write(fds[0], "p", 1) != 1)
			err = -errno;
		if (err == 0)
			err = bench_socket_read1(fds[1]);
		if (err == 0 && write(fds[1], "q", 1) != 1)
			err = -errno;
		if (err == 0)
			err = bench_socket_read1(fds[0]);
	}
	double dt = bench_now() - t0;
	close(fds[0]);
	close(fds[1]);
	return err != 0 ? err : SOCKB_RTT_N / dt;
}

/* ---------------------------------------------------------------------- */
/* rill flows */

struct bench_socket_conn {
	struct rill_flow *a, *b;
	int status;
	bool connected;
};

static void bench_socket_on_accept(struct rill_listener *l, struct rill_flow *f,
                                   int status, const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct bench_socket_conn *c = ud;
	if (status != 0 || c->b != NULL) {
		rill_close(f);
		return;
	}
	c->b = f;
}

static void bench_socket_on_connect(struct rill_flow *f, int status,
                                    const char *errmsg, void *ud)
{
	(void)errmsg;
	struct bench_socket_conn *c = ud;
	c->connected = true;
	c->status = status;
	c->a = f;
}

static int bench_socket_rill_pair(uv_loop_t *loop,
                                  const struct bench_socket_kind *k,
                                  struct bench_socket_conn *c)
{
	char luri[160], uri[160];
	memset(c, 0, sizeof *c);
	if (k->listen_uri == NULL)
		snprintf(luri, sizeof luri, "unix:@rill-bench-%d",
		         (int)getpid());
	else
		snprintf(luri, sizeof luri, "%s", k->listen_uri);
	struct rill_listener *l;
	int err = rill_listen(loop, luri, NULL, bench_socket_on_accept, c, &l);
	if (err != 0)
		return err;
	err = rill_listener_uri(l, uri, sizeof uri);
	if (err == 0)
		err = rill_connect(loop, uri, NULL, bench_socket_on_connect, c);
	if (err == 0) {
		while (!c->connected || (c->status == 0 && c->b == NULL))
			uv_run(loop, UV_RUN_ONCE);
		err = c->status;
	}
	rill_listener_close(l);
	return err;
}

struct bench_socket_pingpong {
	struct rill_flow *a, *b;
	struct rill_buf *byte;
	int left;
	int err;
	bool done;
};

static void bench_socket_pp_read_a(struct rill_flow *f, int status,
                                   struct rill_buf *b, void *ud);

static void bench_socket_pp_fail(struct bench_socket_pingpong *p, int err)
{
	if (p->err == 0)
		p->err = err;
	p->done = true;
}

static void bench_socket_pp_send(struct bench_socket_pingpong *p,
                                 struct rill_flow *to, rill_read_cb on_reply,
                                 struct rill_flow *reader)
{
	int err = rill_write(to, p->byte, NULL, NULL);
	if (err == 0)
		err = rill_read(reader, on_reply, p);
	if (err != 0)
		bench_socket_pp_fail(p, err);
}

static void bench_socket_pp_read_b(struct rill_flow *f, int status,
                                   struct rill_buf *b, void *ud)
{
	(void)f;
	struct bench_socket_pingpong *p = ud;
	rill_buf_release(b);
	if (status != 0) {
		bench_socket_pp_fail(p, status);
		return;
	}
	bench_socket_pp_send(p, p->b, bench_socket_pp_read_a, p->a); /* pong */
}

static void bench_socket_pp_read_a(struct rill_flow *f, int status,
                                   struct rill_buf *b, void *ud)
{
	(void)f;
	struct bench_socket_pingpong *p = ud;
	rill_buf_release(b);
	if (status != 0) {
		bench_socket_pp_fail(p, status);
		return;
	}
	if (--p->left == 0) {
		p->done = true;
		return;
	}
	bench_socket_pp_send(p, p->a, bench_socket_pp_read_b, p->b); /* ping */
}

static double bench_socket_rill_rtt(uv_loop_t *loop, struct rill_flow *a,
                                    struct rill_flow *b)
{
	struct bench_socket_pingpong p = {.a = a, .b = b, .left = SOCKB_RTT_N};
	p.byte = rill_buf_copy("p", 1);
	if (p.byte == NULL)
		return RILL_ENOMEM;
	double t0 = bench_now();
	bench_socket_pp_send(&p, a, bench_socket_pp_read_b, b);
	while (!p.done)
		if (uv_run(loop, UV_RUN_ONCE) == 0)
			break;
	double dt = bench_now() - t0;
	rill_buf_release(p.byte);
	if (p.err != 0)
		return p.err;
	if (p.left != 0)
		return -EIO;
	return SOCKB_RTT_N / dt;
}

/*
 * Three rounds, alternating baseline and rill, keeping the best of each:
 * on a shared machine one run can lose its CPU for a while, and a single
 * pair of runs would then compare luck rather than code.
 */
#define SOCKB_ROUNDS 3

static int bench_socket_case(const struct bench_socket_kind *k, bool rtt,
                             const struct bench_opts *o, struct bench_row *row)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	int err = 0;
	row->name = k->name;
	row->baseline = "plain socket";
	row->metric = rtt ? "1B rtt" : "throughput";
	row->unit = rtt ? "rt/s" : NULL;
	for (int i = 0; i < SOCKB_ROUNDS && err == 0; i++) {
		double base = rtt ? bench_socket_plain_rtt(k)
		                  : bench_socket_plain_throughput(k, o->bytes);
		if (base < 0) {
			err = (int)base;
			break;
		}
		/* A new connection per round: a transfer ends with a write
		 * shutdown. */
		struct bench_socket_conn c;
		err = bench_socket_rill_pair(&loop, k, &c);
		double v = err;
		if (err == 0 && rtt) {
			rill_flow_set_nodelay(c.a, true);
			rill_flow_set_nodelay(c.b, true);
			v = bench_socket_rill_rtt(&loop, c.a, c.b);
		} else if (err == 0) {
			v = bench_transfer(&loop, c.a, c.b, o->bytes);
		}
		rill_close(c.a);
		rill_close(c.b);
		bench_drain_loop(&loop);
		if (v < 0) {
			err = (int)v;
			break;
		}
		if (base > row->base_value)
			row->base_value = base;
		if (v > row->value)
			row->value = v;
	}
	uv_loop_close(&loop);
	return err;
}

int bench_tcp4(const struct bench_opts *o, struct bench_row *row)
{
	return bench_socket_case(&bench_socket_tcp4, false, o, row);
}

int bench_tcp4_rtt(const struct bench_opts *o, struct bench_row *row)
{
	return bench_socket_case(&bench_socket_tcp4, true, o, row);
}

int bench_tcp6(const struct bench_opts *o, struct bench_row *row)
{
	return bench_socket_case(&bench_socket_tcp6, false, o, row);
}

int bench_tcp6_rtt(const struct bench_opts *o, struct bench_row *row)
{
	return bench_socket_case(&bench_socket_tcp6, true, o, row);
}

int bench_unix(const struct bench_opts *o, struct bench_row *row)
{
	return bench_socket_case(&bench_socket_unix, false, o, row);
}

int bench_unix_rtt(const struct bench_opts *o, struct bench_row *row)
{
	return bench_socket_case(&bench_socket_unix, true, o, row);
}
