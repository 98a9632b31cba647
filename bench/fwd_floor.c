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
 * Built into `rill bench` (run in a forked child) and, with
 * FWD_FLOOR_MAIN, as bench/fwd_floor: fwd_floor LISTEN_PORT TARGET_PORT
 * (both on 127.0.0.1).
 */
#include <arpa/inet.h>
#include <errno.h>
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
	atomic_int left; /* directions still running */
};

struct fwd_floor_dir {
	struct fwd_floor_conn *c;
	int from, to;
};

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

int fwd_floor_run(int lfd, const struct sockaddr_in *target)
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
		atomic_init(&c->left, 2);
		fwd_floor_start(c, a, b);
		fwd_floor_start(c, b, a);
	}
}

#ifdef FWD_FLOOR_MAIN
static struct sockaddr_in fwd_floor_addr(int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	return a;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: fwd_floor LISTEN_PORT TARGET_PORT\n");
		return 2;
	}
	struct sockaddr_in l = fwd_floor_addr(atoi(argv[1]));
	struct sockaddr_in t = fwd_floor_addr(atoi(argv[2]));
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&l, sizeof l) != 0 ||
	    listen(lfd, 128) != 0) {
		perror("fwd_floor: listen");
		return 1;
	}
	int err = fwd_floor_run(lfd, &t);
	fprintf(stderr, "fwd_floor: accept: %s\n", strerror(-err));
	return 1;
}
#endif
