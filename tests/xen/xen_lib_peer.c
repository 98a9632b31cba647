/*
 * A vchan peer built on Xen's own libxenvchan (4.17), for the interop
 * legs of the Xen guest tests: what rill must talk to. Not rill code.
 *
 *   xen_lib_peer NAME server|client DOMID XS_PATH [options]
 *
 * The common options are in xen_peer.h; this one adds
 *     --hostile prod    after the transfer: publish a producer index far
 *                       beyond what was written, wake the peer, wait for
 *                       it to close
 *     --hostile cons    the same with the consumer index of the ring we
 *                       read (the peer's writes must fail)
 *
 * Prints one TAP line (and the plan) naming the leg NAME.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include <libxenvchan.h>

#include "xen_peer.h"

struct peer {
	struct xp_args a;
	const char *path; /* of the vchan open now */
	const char *hostile;
	struct libxenvchan *ctrl;
	double t0;
};

__attribute__((format(printf, 3, 4))) static void result(struct peer *p, int ok,
                                                         const char *fmt, ...)
{
	char why[256] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	printf("1..1\n%s 1 - %s%s%s\n", ok ? "ok" : "not ok", p->a.name,
	       why[0] != '\0' ? ": " : "", why);
	fflush(stdout);
	if (p->ctrl != NULL)
		libxenvchan_close(p->ctrl);
	exit(ok ? 0 : 1);
}

/* Sleeps until the event channel fires or 100 ms pass; then consumes the
 * event (libxenvchan_wait). */
static void wait_event(struct peer *p)
{
	int fd = libxenvchan_fd_for_select(p->ctrl);
	fd_set r;
	FD_ZERO(&r);
	FD_SET(fd, &r);
	struct timeval tv = {0, 100000};
	if (select(fd + 1, &r, NULL, NULL, &tv) > 0)
		libxenvchan_wait(p->ctrl);
	if (xp_now() - p->t0 > p->a.timeout)
		result(p, 0, "timed out after %.0f s", p->a.timeout);
}

static void open_vchan(struct peer *p)
{
	p->t0 = xp_now();
	for (;;) {
		if (p->a.server)
			p->ctrl = libxenvchan_server_init(
			    NULL, p->a.domid, p->path, p->a.read_size,
			    p->a.write_size);
		else
			p->ctrl =
			    libxenvchan_client_init(NULL, p->a.domid, p->path);
		if (p->ctrl != NULL)
			break;
		/* A client may come before its server: retry. */
		if (p->a.server || xp_now() - p->t0 > p->a.timeout)
			result(p, 0, "libxenvchan_%s_init(%d, %s): %s",
			       p->a.server ? "server" : "client", p->a.domid,
			       p->path, strerror(errno));
		usleep(20000);
	}
	p->ctrl->blocking = 0;
	if (p->a.server) /* wait for the client */
		while (libxenvchan_is_open(p->ctrl) == 2)
			wait_event(p);
}

/* Sends and receives at once (so that neither side's full ring can
 * stall the other), checking every byte received. */
static void transfer(struct peer *p)
{
	static uint8_t out[65536], in[65536];
	unsigned tx = p->a.server ? XP_SERVER_TO_CLIENT : XP_CLIENT_TO_SERVER;
	unsigned rx = p->a.server ? XP_CLIENT_TO_SERVER : XP_SERVER_TO_CLIENT;
	size_t sent = 0, got = 0;
	while (sent < p->a.send || got < p->a.expect) {
		int moved = 0;
		if (sent < p->a.send) {
			size_t n = p->a.send - sent < sizeof out
			               ? p->a.send - sent
			               : sizeof out;
			xp_fill(out, n, sent, tx);
			int w = libxenvchan_write(p->ctrl, out, n);
			if (w < 0)
				result(p, 0, "write failed after %zu bytes",
				       sent);
			sent += (size_t)w;
			moved |= w > 0;
		}
		if (got < p->a.expect) {
			size_t n = p->a.expect - got < sizeof in
			               ? p->a.expect - got
			               : sizeof in;
			int r = libxenvchan_read(p->ctrl, in, n);
			if (r < 0)
				result(p, 0,
				       "read failed or EOF after %zu of "
				       "%zu bytes",
				       got, p->a.expect);
			size_t bad = xp_check(in, (size_t)r, got, rx);
			if (bad != (size_t)r)
				result(p, 0, "byte %zu is wrong", got + bad);
			got += (size_t)r;
			moved |= r > 0;
		}
		if (!moved)
			wait_event(p);
	}
}

/* Breaks the ring protocol as a hostile peer would, then waits for the
 * peer to give up (live byte 0) or the timeout. */
static void hostile(struct peer *p)
{
	struct vchan_interface *ring = p->ctrl->ring;
	if (strcmp(p->hostile, "prod") == 0) {
		/* The ring we write: claim far more than its size. */
		struct ring_shared *w =
		    p->a.server ? &ring->right : &ring->left;
		w->prod = w->cons + (4u << p->ctrl->write.order) + 17;
	} else {
		/* The ring we read: consume what was never produced. */
		struct ring_shared *r =
		    p->a.server ? &ring->left : &ring->right;
		r->cons = r->prod + (4u << p->ctrl->read.order) + 17;
	}
	__sync_synchronize();
	xenevtchn_notify(p->ctrl->event, p->ctrl->event_port);
	while (libxenvchan_is_open(p->ctrl) != 0)
		wait_event(p);
}

static void bench_tput(struct peer *p)
{
	static uint8_t buf[65536];
	size_t done = 0;
	double t0 = 0;
	while (done < p->a.bench_tput) {
		size_t n = p->a.bench_tput - done < sizeof buf
		               ? p->a.bench_tput - done
		               : sizeof buf;
		int r = p->a.server ? libxenvchan_read(p->ctrl, buf, n)
		                    : libxenvchan_write(p->ctrl, buf, n);
		if (r < 0)
			result(p, 0, "bench: %s failed after %zu bytes",
			       p->a.server ? "read" : "write", done);
		if (r > 0 && done == 0)
			t0 = xp_now();
		done += (size_t)r;
		if (r == 0)
			wait_event(p);
	}
	if (p->a.server)
		printf("# bench tput %zu %.6f\n", done, xp_now() - t0);
}

/* Moves exactly one byte in direction `write`. */
static void bench_one(struct peer *p, int write)
{
	uint8_t b = 0x5a;
	for (;;) {
		int r = write ? libxenvchan_write(p->ctrl, &b, 1)
		              : libxenvchan_read(p->ctrl, &b, 1);
		if (r < 0)
			result(p, 0, "bench: ping-pong broke");
		if (r == 1)
			return;
		wait_event(p);
	}
}

static void bench_rtt(struct peer *p)
{
	double t0 = xp_now();
	for (size_t i = 0; i < p->a.bench_rtt; i++) {
		bench_one(p, !p->a.server);
		bench_one(p, p->a.server);
	}
	if (!p->a.server)
		printf("# bench rtt %zu %.6f\n", p->a.bench_rtt, xp_now() - t0);
}

/* --sizes: the whole transfer on one vchan per size, one after the
 * other; one TAP line for all. */
static void each_size(struct peer *p)
{
	static char path[128];
	const char *base = p->a.target;
	char list[256];
	snprintf(list, sizeof list, "%s", p->a.sizes);
	int n = 0;
	for (char *tok = strtok(list, ","); tok != NULL;
	     tok = strtok(NULL, ","), n++) {
		snprintf(path, sizeof path, "%s/%s", base, tok);
		p->path = path;
		p->a.read_size = p->a.write_size = xp_size(tok);
		open_vchan(p);
		transfer(p);
		libxenvchan_close(p->ctrl);
		p->ctrl = NULL;
	}
	result(p, 1, "%d vchans (%s), %zu bytes each way on each", n,
	       p->a.sizes, p->a.send);
}

static bool own_option(void *ctx, char **argv, int argc, int *i)
{
	struct peer *p = ctx;
	if (strcmp(argv[*i], "--hostile") != 0 || *i + 1 == argc)
		return false;
	p->hostile = argv[*i + 1];
	*i += 2;
	return true;
}

int main(int argc, char **argv)
{
	struct peer p = {0};
	signal(SIGPIPE, SIG_IGN);
	xp_parse(&p.a, argc, argv, own_option, &p);
	p.path = p.a.target;
	if (p.a.sizes != NULL)
		each_size(&p);
	open_vchan(&p);
	if (p.a.bench_tput > 0) {
		bench_tput(&p);
		result(&p, 1, "%s", "bench done");
	}
	if (p.a.bench_rtt > 0) {
		bench_rtt(&p);
		result(&p, 1, "%s", "bench done");
	}
	transfer(&p);
	if (p.a.hold) {
		printf("# held\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	if (p.hostile != NULL)
		hostile(&p);
	result(&p, 1, "%zu bytes each way checked", p.a.send);
	return 0;
}
