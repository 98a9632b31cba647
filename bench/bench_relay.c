/*
 * rill bench relay: the endpoints and the interleaved run.
 *
 * The endpoints are the same plain C code for every forwarder: senders
 * (blocking sockets, 128 KiB writes, then a write shutdown) and sinks
 * (blocking sockets, 256 KiB reads until EOF), one thread each, and an
 * echo thread for the round trips. What is measured, per forwarder:
 *   - throughput of one stream: bytes over the time from the sender's
 *     connect to the sink's EOF;
 *   - the forwarder's CPU seconds (user + system, from /proc) over that
 *     transfer, per GiB;
 *   - the 1-byte round trip: a client writes one byte, an echo thread
 *     sends it back, BR_PINGS times per forwarder over BR_PING_CONNS
 *     connections; the median ping (TCP_NODELAY on the endpoints; the
 *     forwarders run as configured). All forwarders' connections are
 *     open at once and take turns in short blocks (bench_relay_rtt_all);
 *   - the total throughput of four parallel streams, and over how many of
 *     the forwarder's threads its CPU time was spread.
 * Every forwarder is its own process, started once for the whole run.
 * The rounds interleave the forwarders (each round starts one further
 * along), and the medians are kept: a noisy neighbour hurts all alike.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench_relay.h"

#define BR_WRITE        (128u * 1024u)
#define BR_READ         (256u * 1024u)
#define BR_IO_TIMEOUT_S 60
#define BR_STREAMS      4
#define BR_PINGS        2000
#define BR_PING_WARMUP  100
#define BR_PING_BLOCK   25
#define BR_PING_CONNS   4

/* ---------------------------------------------------------------------- */
/* Sockets */

static void bench_relay_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = BR_IO_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int bench_relay_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	bench_relay_timeouts(fd);
	return fd;
}

/* Waits for one connection on lfd and accepts it. */
static int bench_relay_accept(int lfd)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	if (poll(&p, 1, BR_IO_TIMEOUT_S * 1000) != 1)
		return -ETIMEDOUT;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	bench_relay_timeouts(fd);
	return fd;
}

/* ---------------------------------------------------------------------- */
/* Streams */

struct bench_relay_stream {
	int lfd, port;
	uint64_t bytes, got;
	const uint8_t *chunk;
	double t_end;
	int err;
	int sink_fd; /* accepted by the sink */
};

static void *bench_relay_sink_main(void *arg)
{
	struct bench_relay_stream *s = arg;
	int fd = bench_relay_accept(s->lfd);
	if (fd < 0) {
		s->err = fd;
		return NULL;
	}
	uint8_t *buf = malloc(BR_READ);
	for (s->err = buf == NULL ? RILL_ENOMEM : 0; s->err == 0;) {
		ssize_t n = read(fd, buf, BR_READ);
		if (n > 0)
			s->got += (uint64_t)n;
		else if (n == 0)
			break;
		else if (errno != EINTR)
			s->err = -errno;
	}
	s->t_end = bench_now();
	free(buf);
	close(fd);
	return NULL;
}

static void *bench_relay_send_main(void *arg)
{
	struct bench_relay_stream *s = arg;
	int fd = bench_relay_connect(s->port);
	int err = fd < 0 ? fd : 0;
	for (uint64_t sent = 0; err == 0 && sent < s->bytes;) {
		uint64_t left = s->bytes - sent;
		ssize_t n =
		    send(fd, s->chunk, left < BR_WRITE ? left : BR_WRITE,
		         MSG_NOSIGNAL);
		if (n > 0)
			sent += (uint64_t)n;
		else if (n < 0 && errno != EINTR)
			err = -errno;
	}
	if (err == 0 && shutdown(fd, SHUT_WR) != 0)
		err = -errno;
	/* The forwarder closes our side after the sink's EOF went back. */
	uint8_t drop[256];
	while (err == 0) {
		ssize_t n = read(fd, drop, sizeof drop);
		if (n == 0)
			break;
		if (n < 0 && errno != EINTR)
			err = -errno;
	}
	if (fd >= 0)
		close(fd);
	if (err != 0)
		shutdown(s->lfd, SHUT_RDWR); /* wakes the sinks' accepts */
	s->err = err;
	return NULL;
}

/* n streams of bytes/n each to port, received on lfd; MB/s in total or a
 * negative error. */
static double bench_relay_streams(int lfd, int port, uint64_t bytes, int n,
                                  const uint8_t *chunk)
{
	struct bench_relay_stream snd[BR_STREAMS], sink[BR_STREAMS];
	pthread_t ts[BR_STREAMS], tk[BR_STREAMS];
	int started = 0, err = 0;
	double t0 = bench_now();
	for (int i = 0; i < n; i++) {
		struct bench_relay_stream s = {.lfd = lfd,
		                               .port = port,
		                               .bytes = bytes / (uint64_t)n,
		                               .chunk = chunk};
		snd[i] = sink[i] = s;
		if (pthread_create(&tk[i], NULL, bench_relay_sink_main,
		                   &sink[i]) != 0)
			break;
		if (pthread_create(&ts[i], NULL, bench_relay_send_main,
		                   &snd[i]) != 0) {
			shutdown(lfd, SHUT_RDWR);
			pthread_join(tk[i], NULL);
			break;
		}
		started++;
	}
	double t_end = t0;
	uint64_t got = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(ts[i], NULL);
		pthread_join(tk[i], NULL);
		if (err == 0)
			err = snd[i].err != 0 ? snd[i].err : sink[i].err;
		got += sink[i].got;
		if (sink[i].t_end > t_end)
			t_end = sink[i].t_end;
	}
	if (err == 0 && started < n)
		err = RILL_ENOMEM;
	if (err == 0 && got != bytes / (uint64_t)n * (uint64_t)n)
		err = -EIO;
	if (err != 0)
		return err;
	return (double)got / (t_end - t0) / 1e6;
}

/* ---------------------------------------------------------------------- */
/* Round trips */

static void *bench_relay_echo_main(void *arg)
{
	struct bench_relay_stream *s = arg;
	int fd = bench_relay_accept(s->lfd);
	if (fd < 0) {
		s->err = fd;
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	uint8_t b;
	for (;;) {
		ssize_t n = read(fd, &b, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || write(fd, &b, 1) != 1)
			break;
	}
	close(fd);
	return NULL;
}

static int bench_relay_cmp_double(const void *a, const void *b);

/* BR_PING_CONNS ping connections per forwarder (and direct), all open at
 * once, each answered by its own echo thread. */
#define BR_PINGERS (BR_KINDS * BR_PING_CONNS)
struct bench_relay_pingers {
	int n, threads;
	int fd[BR_PINGERS];
	enum bench_relay_kind kind[BR_PINGERS];
	struct bench_relay_stream echo[BR_PINGERS];
	pthread_t th[BR_PINGERS];
};

static int bench_relay_ping(int fd, double *dt)
{
	uint8_t b = 'x';
	double t0 = bench_now();
	if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1)
		return errno != 0 ? -errno : -EIO;
	if (dt != NULL)
		*dt = bench_now() - t0;
	return 0;
}

static void bench_relay_pingers_close(struct bench_relay_pingers *p, int lfd)
{
	for (int i = 0; i < p->n; i++)
		close(p->fd[i]);
	if (p->n < p->threads)
		shutdown(lfd, SHUT_RDWR); /* an echo thread still in accept */
	for (int i = 0; i < p->threads; i++)
		pthread_join(p->th[i], NULL);
}

/* One more pinger to port (an echo thread first); warms the path up. */
static int bench_relay_pinger_add(struct bench_relay_pingers *p, int lfd,
                                  int port, enum bench_relay_kind kind)
{
	p->echo[p->threads].lfd = lfd;
	if (pthread_create(&p->th[p->threads], NULL, bench_relay_echo_main,
	                   &p->echo[p->threads]) != 0)
		return RILL_ENOMEM;
	p->threads++;
	int fd = bench_relay_connect(port);
	if (fd < 0)
		return fd;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	p->kind[p->n] = kind;
	p->fd[p->n++] = fd;
	int err = 0;
	for (int i = 0; err == 0 && i < BR_PING_WARMUP; i++)
		err = bench_relay_ping(fd, NULL);
	return err;
}

/*
 * The 1-byte round trip through every kind in want, in microseconds
 * (rtt[kind]): the median of the BR_PINGS pings of each kind. Two things
 * of this machine decide a round trip more than the forwarder does, and
 * the measurement is built so that they fall on every kind alike:
 *  - a ping that crosses to a CPU that is idle (a halted vCPU) costs
 *    20-40 us per hop more than one that stays on a busy CPU, and the
 *    scheduler keeps a connection's threads where they first landed: the
 *    same forwarder gives 16 us on one connection and 70 us on the next.
 *    So each kind gets BR_PING_CONNS connections (each draws its own
 *    placement) rather than one;
 *  - the neighbours' load comes and goes within seconds. So the pings go
 *    in blocks of BR_PING_BLOCK that take turns over all the connections,
 *    and the median, not the mean, is kept (a few pings held up by a
 *    preemption do not decide).
 */
static int bench_relay_rtt_all(int lfd, int direct_port,
                               const struct bench_relay_fwd *fwd, unsigned want,
                               int round, double *rtt)
{
	struct bench_relay_pingers p;
	memset(&p, 0, sizeof p);
	int err = 0;
	/* The order of the connections turns too (threads are placed as they
	 * are created). */
	for (int c = 0; c < BR_PING_CONNS && err == 0; c++)
		for (int j = 0; j < BR_KINDS && err == 0; j++) {
			int k = (j + c + round) % BR_KINDS;
			if (want & (1u << k))
				err = bench_relay_pinger_add(
				    &p, lfd,
				    k == BR_DIRECT ? direct_port : fwd[k].port,
				    (enum bench_relay_kind)k);
		}
	enum { PER_CONN = BR_PINGS / BR_PING_CONNS };
	static double dt[BR_PINGERS][PER_CONN];
	for (int b = 0; err == 0 && b < PER_CONN / BR_PING_BLOCK; b++)
		for (int j = 0; err == 0 && j < p.n; j++) {
			int i = (j + b) % p.n;
			for (int t = 0; err == 0 && t < BR_PING_BLOCK; t++)
				err = bench_relay_ping(
				    p.fd[i], &dt[i][b * BR_PING_BLOCK + t]);
		}
	bench_relay_pingers_close(&p, lfd);
	for (int i = 0; err == 0 && i < p.threads; i++)
		err = p.echo[i].err;
	for (int k = 0; err == 0 && k < BR_KINDS; k++) {
		static double all[BR_PINGS];
		int n = 0;
		for (int i = 0; i < p.n; i++) {
			if (p.kind[i] != (enum bench_relay_kind)k)
				continue;
			qsort(dt[i], PER_CONN, sizeof dt[i][0],
			      bench_relay_cmp_double);
			if (getenv("RILL_BENCH_DEBUG") != NULL)
				fprintf(stderr,
				        "rtt %s: connection %d: %.1f us\n",
				        bench_relay_names[k], i,
				        dt[i][PER_CONN / 2] * 1e6);
			memcpy(&all[n], dt[i], sizeof dt[i]);
			n += PER_CONN;
		}
		if (n == 0)
			continue;
		qsort(all, (size_t)n, sizeof all[0], bench_relay_cmp_double);
		rtt[k] = (all[(n - 1) / 2] + all[n / 2]) / 2 * 1e6;
	}
	return err;
}

/* ---------------------------------------------------------------------- */
/* The run */

struct bench_relay_samples {
	double mbs[BR_MAX_ROUNDS], cpu[BR_MAX_ROUNDS], rtt[BR_MAX_ROUNDS];
	double ends[BR_MAX_ROUNDS];
	double mbs4[BR_MAX_ROUNDS];
	int busy[BR_MAX_ROUNDS], threads[BR_MAX_ROUNDS];
	int n;
};

static int bench_relay_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double bench_relay_median(const double *v, int n)
{
	double s[BR_MAX_ROUNDS];
	memcpy(s, v, sizeof s[0] * (size_t)n);
	qsort(s, (size_t)n, sizeof s[0], bench_relay_cmp_double);
	return n == 0 ? 0 : n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

double bench_relay_loadavg(void)
{
	double l[1];
	return getloadavg(l, 1) == 1 ? l[0] : 0;
}

/* Four streams through f; counts the threads that did the work. */
static double bench_relay_four(int lfd, int port,
                               const struct bench_relay_fwd *f, uint64_t bytes,
                               const uint8_t *chunk, int *busy, int *threads)
{
	int tids[BR_MAX_TASKS], tids1[BR_MAX_TASKS];
	uint64_t t0[BR_MAX_TASKS], t1[BR_MAX_TASKS];
	int n0 =
	    f != NULL ? bench_relay_fwd_threads(f, tids, t0, BR_MAX_TASKS) : 0;
	double v = bench_relay_streams(lfd, port, bytes, BR_STREAMS, chunk);
	int n1 =
	    f != NULL ? bench_relay_fwd_threads(f, tids1, t1, BR_MAX_TASKS) : 0;
	uint64_t d[BR_MAX_TASKS], total = 0;
	for (int i = 0; i < n1; i++) {
		d[i] = t1[i];
		for (int j = 0; j < n0; j++)
			if (tids[j] == tids1[i])
				d[i] = t1[i] - t0[j];
		total += d[i];
	}
	*busy = *threads = 0;
	for (int i = 0; i < n1; i++) {
		if (d[i] > 0)
			(*threads)++;
		if (total > 0 && d[i] * 5 >= total)
			(*busy)++;
	}
	return v;
}

/* CPU seconds of this process (the endpoints' threads) so far. */
static double bench_relay_self_cpu(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* One round of every metric through one forwarder (f NULL: direct). */
static int bench_relay_round(int lfd, int direct_port,
                             const struct bench_relay_fwd *f, uint64_t bytes,
                             const uint8_t *chunk,
                             struct bench_relay_samples *s)
{
	int port = f != NULL ? f->port : direct_port;
	double c0 = f != NULL ? bench_relay_fwd_cpu(f) : 0;
	double e0 = bench_relay_self_cpu();
	double v = bench_relay_streams(lfd, port, bytes, 1, chunk);
	if (v < 0)
		return (int)v;
	double e1 = bench_relay_self_cpu();
	double c1 = f != NULL ? bench_relay_fwd_cpu(f) : 0;
	int busy = 0, threads = 0;
	double v4 =
	    bench_relay_four(lfd, port, f, bytes, chunk, &busy, &threads);
	if (v4 < 0)
		return (int)v4;
	s->mbs[s->n] = v;
	s->cpu[s->n] = (c1 - c0) / ((double)bytes / (1u << 30));
	s->ends[s->n] = (e1 - e0) / ((double)bytes / (1u << 30));
	s->mbs4[s->n] = v4;
	s->busy[s->n] = busy;
	s->threads[s->n] = threads;
	s->n++;
	return 0;
}

static int bench_relay_cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static void bench_relay_store(struct bench_relay_result *r,
                              struct bench_relay_samples *s)
{
	r->mbs = bench_relay_median(s->mbs, s->n);
	r->cpu_gib = bench_relay_median(s->cpu, s->n);
	r->ends_gib = bench_relay_median(s->ends, s->n);
	r->rtt_us = bench_relay_median(s->rtt, s->n);
	r->mbs4 = bench_relay_median(s->mbs4, s->n);
	qsort(s->busy, (size_t)s->n, sizeof s->busy[0], bench_relay_cmp_int);
	qsort(s->threads, (size_t)s->n, sizeof s->threads[0],
	      bench_relay_cmp_int);
	r->busy_threads = s->n > 0 ? s->busy[s->n / 2] : 0;
	r->threads = s->n > 0 ? s->threads[s->n / 2] : 0;
}

/* Socat's 8 KiB default moves a few times slower: a quarter of the
 * bytes keeps the run short. */
static uint64_t bench_relay_kind_bytes(enum bench_relay_kind k, uint64_t bytes)
{
	uint64_t b = k == BR_SOCAT8K ? bytes / 4 : bytes;
	b -= b % ((uint64_t)BR_STREAMS * BR_WRITE);
	return b > 0 ? b : (uint64_t)BR_STREAMS * BR_WRITE;
}

static int bench_relay_rounds(struct bench_relay_run *run, unsigned want,
                              int lfd, int sport, struct bench_relay_fwd *fwd,
                              const uint8_t *chunk)
{
	static struct bench_relay_samples smp[BR_KINDS];
	memset(smp, 0, sizeof smp);
	int err = 0;
	for (int r = 0; r < run->rounds && err == 0; r++) {
		double rtt[BR_KINDS] = {0};
		err = bench_relay_rtt_all(lfd, sport, fwd, want, r, rtt);
		if (err != 0)
			bench_error("bench relay: round trips: %s",
			            rill_strerror(err));
		for (int k = 0; k < BR_KINDS; k++)
			smp[k].rtt[smp[k].n] = rtt[k];
		for (int i = 0; i < BR_KINDS && err == 0; i++) {
			enum bench_relay_kind k =
			    (enum bench_relay_kind)((i + r) % BR_KINDS);
			if (!(want & (1u << k)))
				continue;
			err = bench_relay_round(
			    lfd, sport, k == BR_DIRECT ? NULL : &fwd[k],
			    bench_relay_kind_bytes(k, run->bytes), chunk,
			    &smp[k]);
			if (err != 0)
				bench_error("bench relay: through %s: %s",
				            bench_relay_names[k],
				            rill_strerror(err));
		}
	}
	for (int k = 0; k < BR_KINDS && err == 0; k++)
		if (want & (1u << k))
			bench_relay_store(&run->res[k], &smp[k]);
	return err;
}

int bench_relay_run_all(struct bench_relay_run *run, unsigned want,
                        uint64_t bytes, int rounds)
{
	run->rounds = rounds < 1               ? 1
	              : rounds > BR_MAX_ROUNDS ? BR_MAX_ROUNDS
	                                       : rounds;
	run->bytes = bytes;
	run->load_before = bench_relay_loadavg();
	char tmpl[] = "/tmp/rill-bench-relay-XXXXXX";
	const char *tmpdir = mkdtemp(tmpl);
	uint8_t *chunk = malloc(BR_WRITE);
	int sport = 0;
	int lfd = bench_relay_listen(&sport);
	int err = lfd < 0                           ? lfd
	          : tmpdir == NULL || chunk == NULL ? RILL_ENOMEM
	                                            : 0;
	if (chunk != NULL)
		memset(chunk, 0xa5, BR_WRITE);
	struct bench_relay_fwd fwd[BR_KINDS];
	memset(fwd, 0, sizeof fwd);
	for (int k = BR_DIRECT + 1; k < BR_KINDS && err == 0; k++)
		if (want & (1u << k))
			err = bench_relay_fwd_start(
			    &fwd[k], (enum bench_relay_kind)k, sport, tmpdir);
	if (err == 0)
		err = bench_relay_rounds(run, want, lfd, sport, fwd, chunk);
	for (int k = 0; k < BR_KINDS; k++)
		bench_relay_fwd_stop(&fwd[k]);
	if (err == 0)
		run->measured |= want;
	run->load_after = bench_relay_loadavg();
	if (lfd >= 0)
		close(lfd);
	free(chunk);
	if (tmpdir != NULL) {
		char cfg[PATH_MAX];
		for (int k = 0; k < BR_KINDS; k++) {
			snprintf(cfg, sizeof cfg, "%s/haproxy-%d.cfg", tmpdir,
			         fwd[k].port);
			unlink(cfg);
		}
		rmdir(tmpdir);
	}
	return err;
}
