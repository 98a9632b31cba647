/*
 * bench/fwd_floor: the simplest TCP forwarder one would write in C, as
 * the floor `rill bench relay` measures forwarders against. Each accepted
 * connection gets a connection to the target and two threads, one per
 * direction, each a blocking loop of read(2) into a 128 KiB buffer and
 * write(2) of what came; at EOF it shuts the other socket's writing down,
 * so a half-close crosses. The second thread to finish closes both
 * sockets. No event loop, no splice, no tuning beyond the buffer size
 * (socat's -b 131072).
 *
 * The splice variant (fwd_floor_run's splice argument) is the floor of
 * the memcpy-free forwarders: the same two threads, each a blocking loop
 * of splice(2) socket -> pipe -> socket of at most 128 KiB, with the
 * settings rill's splice path uses between two local connections
 * (src/combinator/splice_local.c: 128 KiB SO_RCVBUF on the socket read,
 * SO_SNDBUF on the socket written, reno instead of a pacing BBR). What
 * it costs is the kernel's work alone: no event loop, no user space.
 *
 * Built into `rill bench` (run in a forked child) and, with
 * FWD_FLOOR_MAIN, as bench/fwd_floor: fwd_floor [--splice] LISTEN_PORT
 * TARGET_PORT (both on 127.0.0.1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fwd_floor.h"

struct fwd_floor_conn {
	int a, b;
	bool splice;
	atomic_int left; /* directions still running */
};

struct fwd_floor_dir {
	struct fwd_floor_conn *c;
	int from, to;
};

#define FWD_FLOOR_SPLICE_BUF (128 * 1024)

static void fwd_floor_tune(int from, int to)
{
	int buf = FWD_FLOOR_SPLICE_BUF;
	setsockopt(from, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
	setsockopt(to, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
	char cc[16] = "";
	socklen_t len = sizeof cc - 1;
	if (getsockopt(to, IPPROTO_TCP, TCP_CONGESTION, cc, &len) == 0 &&
	    strncmp(cc, "bbr", 3) == 0)
		setsockopt(to, IPPROTO_TCP, TCP_CONGESTION, "reno", 4);
}

/* Pipe -> to, all of n bytes; false when to failed. */
static bool fwd_floor_drain(int pipe_r, int to, ssize_t n)
{
	while (n > 0) {
		ssize_t w =
		    splice(pipe_r, NULL, to, NULL, (size_t)n, SPLICE_F_MOVE);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		n -= w;
	}
	return true;
}

static void fwd_floor_splice(int from, int to)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return;
	fwd_floor_tune(from, to);
	bool ok = true;
	while (ok) {
		ssize_t n = splice(from, NULL, p[1], NULL, FWD_FLOOR_SPLICE_BUF,
		                   SPLICE_F_MOVE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		ok = fwd_floor_drain(p[0], to, n);
	}
	close(p[0]);
	close(p[1]);
	if (ok)
		shutdown(to, SHUT_WR);
}

static void fwd_floor_copy(int from, int to)
{
	char *buf = malloc(FWD_FLOOR_BUF);
	while (buf != NULL) {
		ssize_t n = read(from, buf, FWD_FLOOR_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = send(to, buf + off, (size_t)(n - off),
			                 MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				free(buf);
				return;
			}
			off += w;
		}
	}
	free(buf);
	shutdown(to, SHUT_WR);
}

static void fwd_floor_release(struct fwd_floor_conn *c)
{
	if (atomic_fetch_sub(&c->left, 1) == 1) {
		close(c->a);
		close(c->b);
		free(c);
	}
}

static void *fwd_floor_dir_main(void *arg)
{
	struct fwd_floor_dir *d = arg;
	if (d->c->splice)
		fwd_floor_splice(d->from, d->to);
	else
		fwd_floor_copy(d->from, d->to);
	fwd_floor_release(d->c);
	free(d);
	return NULL;
}

static void fwd_floor_start(struct fwd_floor_conn *c, int from, int to)
{
	struct fwd_floor_dir *d = malloc(sizeof *d);
	pthread_t th;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (d != NULL) {
		d->c = c;
		d->from = from;
		d->to = to;
	}
	if (d == NULL || pthread_create(&th, &at, fwd_floor_dir_main, d) != 0) {
		/* No thread: end the connection (wakes the other one). */
		free(d);
		shutdown(c->a, SHUT_RDWR);
		shutdown(c->b, SHUT_RDWR);
		fwd_floor_release(c);
	}
	pthread_attr_destroy(&at);
}

int fwd_floor_run(int lfd, const struct sockaddr_in *target, bool splice)
{
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		int a = accept(lfd, NULL, NULL);
		if (a < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return -errno;
		}
		int b = socket(AF_INET, SOCK_STREAM, 0);
		if (b < 0 || connect(b, (const struct sockaddr *)target,
		                     sizeof *target) != 0) {
			if (b >= 0)
				close(b);
			close(a);
			continue;
		}
		struct fwd_floor_conn *c = malloc(sizeof *c);
		if (c == NULL) {
			close(a);
			close(b);
			continue;
		}
		c->a = a;
		c->b = b;
		c->splice = splice;
		atomic_init(&c->left, 2);
		fwd_floor_start(c, a, b);
		fwd_floor_start(c, b, a);
	}
}

#ifdef FWD_FLOOR_MAIN
#include "loopback.h"

int main(int argc, char **argv)
{
	bool splice = argc == 4 && strcmp(argv[1], "--splice") == 0;
	if (argc != 3 + splice) {
		fprintf(stderr, "usage: fwd_floor [--splice] LISTEN_PORT "
		                "TARGET_PORT\n");
		return 2;
	}
	struct sockaddr_in l = loopback_addr(atoi(argv[1 + splice]));
	struct sockaddr_in t = loopback_addr(atoi(argv[2 + splice]));
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&l, sizeof l) != 0 ||
	    listen(lfd, 128) != 0) {
		perror("fwd_floor: listen");
		return 1;
	}
	int err = fwd_floor_run(lfd, &t, splice);
	fprintf(stderr, "fwd_floor: accept: %s\n", strerror(-err));
	return 1;
}
#endif
