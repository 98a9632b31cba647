/*
 * The vchan ring core under ThreadSanitizer: a writer thread and a reader
 * thread share one page and rings (orders 10 and 11, and 12+ outside the
 * page), with indices starting just before the u32 wrap. Neither spins:
 * every wait goes through the notify bits and an eventfd, exactly as the
 * flow does it, so a lost wake-up hangs (the test's timeout) and a
 * missing barrier is a TSan report. Built and run by test_vchan_tsan.sh.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rill.h"
#include "transport/vchan/ring.h"

struct side {
	struct rill__vchan v;
	int my_evt, peer_evt;
	uint64_t total;
	uint64_t sum;
	int err;
};

static void wait_evt(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	poll(&p, 1, -1);
	uint64_t x;
	if (read(fd, &x, sizeof x) < 0) {
	}
}

static void signal_evt(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, sizeof one) < 0) {
	}
}

static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + (i >> 11));
}

static void *writer(void *arg)
{
	struct side *s = arg;
	static uint8_t buf[70000];
	uint64_t sent = 0;
	uint32_t rnd = 1;
	while (sent < s->total) {
		rnd = rnd * 1103515245u + 12345u;
		size_t n = 1 + (rnd >> 8) % sizeof buf;
		if (n > s->total - sent)
			n = (size_t)(s->total - sent);
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(sent + i);
		size_t off = 0;
		while (off < n) {
			size_t put;
			s->err =
			    rill__vchan_write(&s->v, buf + off, n - off, &put);
			if (s->err != 0)
				return NULL;
			off += put;
			if (put > 0) {
				if (rill__vchan_take_request(
				        &s->v, RILL__VCHAN_NOTIFY_WRITE))
					signal_evt(s->peer_evt);
				continue;
			}
			rill__vchan_request(&s->v, RILL__VCHAN_NOTIFY_READ);
			uint32_t room;
			rill__vchan_writable(&s->v, &room);
			if (room == 0)
				wait_evt(s->my_evt);
		}
		sent += n;
	}
	rill__vchan_set_live(&s->v, 0);
	signal_evt(s->peer_evt);
	return NULL;
}

static void *reader(void *arg)
{
	struct side *s = arg;
	static uint8_t buf[50000];
	uint64_t got = 0;
	for (;;) {
		size_t n;
		s->err = rill__vchan_read(&s->v, buf, sizeof buf, &n);
		if (s->err != 0)
			return NULL;
		if (n > 0) {
			for (size_t i = 0; i < n; i++)
				if (buf[i] != pattern(got + i)) {
					s->err = -EBADMSG;
					return NULL;
				}
			got += n;
			if (rill__vchan_take_request(&s->v,
			                             RILL__VCHAN_NOTIFY_READ))
				signal_evt(s->peer_evt);
			continue;
		}
		if (rill__vchan_peer_live(&s->v) == 0) {
			uint32_t r;
			rill__vchan_readable(&s->v, &r);
			if (r == 0)
				break;
			continue;
		}
		rill__vchan_request(&s->v, RILL__VCHAN_NOTIFY_WRITE);
		uint32_t r;
		rill__vchan_readable(&s->v, &r);
		if (r == 0 && rill__vchan_peer_live(&s->v) != 0)
			wait_evt(s->my_evt);
	}
	s->sum = got;
	return NULL;
}

static int run(int lo, int ro, uint32_t start, uint64_t total)
{
	size_t len = rill__vchan_map_size(lo, ro);
	void *mem = calloc(1, len);
	rill__vchan_init_page(mem, lo, ro, start);
	struct side srv = {.total = total}, cli = {.total = total};
	if (rill__vchan_attach(&srv.v, mem, len, true) != 0 ||
	    rill__vchan_attach(&cli.v, mem, len, false) != 0)
		return 1;
	rill__vchan_set_live(&cli.v, 1);
	srv.my_evt = cli.peer_evt = eventfd(0, 0);
	cli.my_evt = srv.peer_evt = eventfd(0, 0);
	pthread_t a, b;
	pthread_create(&a, NULL, writer, &cli); /* client writes left */
	pthread_create(&b, NULL, reader, &srv); /* server reads left */
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	close(srv.my_evt);
	close(cli.my_evt);
	free(mem);
	if (cli.err != 0 || srv.err != 0 || srv.sum != total) {
		printf("# orders %d/%d: writer %d reader %d, %llu of %llu\n",
		       lo, ro, cli.err, srv.err, (unsigned long long)srv.sum,
		       (unsigned long long)total);
		return 1;
	}
	return 0;
}

int main(void)
{
	const struct {
		int lo, ro;
		uint32_t start;
	} cases[] = {
	    {10, 11, 0xFFFFFFFFu - 5000},
	    {11, 10, 0},
	    {12, 11, 0xFFFFFFF0u},
	    {16, 12, 0xFFFFFFFFu - 100000},
	};
	printf("1..4\n");
	int bad = 0;
	for (int i = 0; i < 4; i++) {
		int r = run(cases[i].lo, cases[i].ro, cases[i].start, 8u << 20);
		bad |= r;
		printf("%sok %d - threaded ring, orders %d/%d, start %u\n",
		       r ? "not " : "", i + 1, cases[i].lo, cases[i].ro,
		       cases[i].start);
	}
	return bad;
}
