/*
 * rill bench: vchan between two processes beside the baselines a user
 * would pick instead, all measured in the same run: the plain shared-
 * memory ring (bench/shm_ring.c, the physical limit), a Unix socket and
 * a pipe. Throughput moves o->bytes from parent to child; ping-pong is
 * the median round trip of 1-byte messages.
 *
 * Every case of the table prints one row; the measurements are taken
 * once (by the first case that needs them) and shared.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm_ring.h"
#include "bench.h"

#define BV_RING       (1u << 20)
#define BV_CHUNK      (64u * 1024u)
#define BV_PING_ITERS 20000

static double bench_vchan_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bench_vchan_conn {
	struct rill_flow *f;
	int status;
	bool done;
};

static void bench_vchan_connect_cb(struct rill_flow *f, int status,
                                   const char *msg, void *ud)
{
	(void)msg;
	struct bench_vchan_conn *c = ud;
	c->f = f;
	c->status = status;
	c->done = true;
}

static void bench_vchan_server_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct bench_vchan_conn *c = ud;
	c->status = status;
	c->done = true;
}

/* The child: a vchan client; echo (ping-pong) or sink (throughput). */
struct bench_vchan_child {
	struct rill_flow *f;
	bool echo, eof;
	uint64_t got;
};

static void bench_vchan_child_read(struct rill_flow *f, int status,
                                   struct rill_buf *b, void *ud)
{
	struct bench_vchan_child *c = ud;
	if (status != 0) {
		c->eof = true;
		return;
	}
	c->got += b->len;
	if (c->echo)
		rill_write(f, b, NULL, NULL);
	rill_buf_release(b);
	rill_read(f, bench_vchan_child_read, c);
}

static _Noreturn void bench_vchan_child_main(const char *port, bool echo,
                                             int done_fd)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct bench_vchan_conn c = {0};
	struct rill_connect_opts o = {.retry_until_ms = 5000,
	                              .timeout_ms = 10000};
	rill_vchan_client(&loop, NULL, port, &o, bench_vchan_connect_cb, &c);
	while (!c.done)
		uv_run(&loop, UV_RUN_ONCE);
	if (c.status != 0)
		_exit(2);
	struct bench_vchan_child ch = {.f = c.f, .echo = echo};
	rill_read(c.f, bench_vchan_child_read, &ch);
	while (!ch.eof)
		uv_run(&loop, UV_RUN_ONCE);
	/* the byte count tells the parent the run was complete */
	if (write(done_fd, &ch.got, sizeof ch.got) < 0) {
	}
	_exit(0);
}

/* Parent side of the throughput run. */
struct bench_vchan_writer {
	struct rill_flow *f;
	struct rill_buf *chunk;
	uint64_t to_send, sent;
	int inflight, err;
	bool shut_done;
};

static void bench_vchan_write_more(struct bench_vchan_writer *w);

static void bench_vchan_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct bench_vchan_writer *w = ud;
	w->inflight--;
	if (status != 0 && w->err == 0)
		w->err = status;
	bench_vchan_write_more(w);
}

static void bench_vchan_shut_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct bench_vchan_writer *w = ud;
	w->shut_done = true;
	if (status != 0 && w->err == 0)
		w->err = status;
}

static void bench_vchan_write_more(struct bench_vchan_writer *w)
{
	while (w->err == 0 && w->inflight < 4 && w->sent < w->to_send) {
		uint64_t left = w->to_send - w->sent;
		struct rill_buf *b =
		    left < w->chunk->len
		        ? rill_buf_slice(w->chunk, 0, (size_t)left)
		        : rill_buf_ref(w->chunk);
		int err = rill_write(w->f, b, bench_vchan_write_cb, w);
		w->sent += b->len;
		rill_buf_release(b);
		if (err != 0) {
			w->err = err;
			return;
		}
		w->inflight++;
	}
	if (w->sent == w->to_send && w->inflight == 0 && w->err == 0) {
		w->sent++; /* once */
		rill_shutdown(w->f, RILL_SHUT_WR, bench_vchan_shut_cb, w);
	}
}

struct bench_vchan_ping {
	struct rill_flow *f;
	int i, iters, err;
	double t0;
	double *rtt;
};

static void bench_vchan_ping_next(struct bench_vchan_ping *p);

static void bench_vchan_ping_read(struct rill_flow *f, int status,
                                  struct rill_buf *b, void *ud)
{
	(void)f;
	struct bench_vchan_ping *p = ud;
	if (status != 0) {
		p->err = status;
		return;
	}
	rill_buf_release(b);
	p->rtt[p->i++] = (bench_vchan_now() - p->t0) * 1e6;
	bench_vchan_ping_next(p);
}

static void bench_vchan_ping_next(struct bench_vchan_ping *p)
{
	if (p->i >= p->iters)
		return;
	uint8_t x = (uint8_t)p->i;
	p->t0 = bench_vchan_now();
	int err = rill_write_copy(p->f, &x, 1, NULL, NULL);
	if (err == 0)
		err = rill_read(p->f, bench_vchan_ping_read, p);
	if (err != 0)
		p->err = err;
}

/* One vchan run between this process (server) and a child (client):
 * throughput in MB/s (ping false) or median RTT in us (ping true). */
static double bench_vchan_vchan(uint64_t bytes, bool ping)
{
	static int seq;
	char port[64];
	snprintf(port, sizeof port, "rill-bench-%d-%d", (int)getpid(), seq++);
	int done[2];
	if (pipe(done) != 0)
		return -errno;
	pid_t pid = fork();
	if (pid == 0) {
		close(done[0]);
		bench_vchan_child_main(port, ping, done[1]);
	}
	close(done[1]);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct bench_vchan_conn c = {0};
	struct rill_flow *f = NULL;
	double result;
	int err = rill_vchan_server(&loop, NULL, port, BV_RING, BV_RING,
	                            bench_vchan_server_cb, &c, &f);
	if (err != 0) {
		result = err;
		goto out;
	}
	while (!c.done)
		uv_run(&loop, UV_RUN_ONCE);
	if (c.status != 0) {
		result = c.status;
		goto out;
	}
	if (!ping) {
		struct bench_vchan_writer w = {.f = f, .to_send = bytes};
		w.chunk = rill_buf_new(BV_CHUNK);
		memset(w.chunk->data, 0xa5, w.chunk->len);
		double t0 = bench_vchan_now();
		bench_vchan_write_more(&w);
		while (w.err == 0 && !w.shut_done)
			uv_run(&loop, UV_RUN_ONCE);
		uint64_t got = 0;
		if (w.err == 0 &&
		    (read(done[0], &got, sizeof got) != sizeof got ||
		     got != bytes))
			w.err = -EPIPE;
		double dt = bench_vchan_now() - t0;
		rill_buf_release(w.chunk);
		result = w.err != 0 ? w.err : (double)bytes / dt / 1e6;
	} else {
		struct bench_vchan_ping p = {.f = f, .iters = BV_PING_ITERS};
		p.rtt = malloc(sizeof(double) * BV_PING_ITERS);
		bench_vchan_ping_next(&p);
		while (p.err == 0 && p.i < p.iters)
			uv_run(&loop, UV_RUN_ONCE);
		result = p.err != 0 ? p.err : bench_median(p.rtt, p.iters);
		free(p.rtt);
	}
out:
	rill_close(f);
	for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
		;
	uv_loop_close(&loop);
	if (result < 0)
		kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(done[0]);
	return result;
}

static struct {
	bool have_tput, have_rtt;
	double vchan, ring, unix_sock, pipe_fd;
	double rtt_vchan, rtt_nospin, rtt_ring, rtt_unix;
} bv;

/*
 * Each measurement is repeated BV_ROUNDS times, the kinds interleaved
 * round by round so that a burst of load from elsewhere hits them alike;
 * the best of each (highest throughput, lowest median RTT) is reported.
 */
#define BV_ROUNDS 3

static double bench_vchan_max(double a, double b)
{
	return a > b ? a : b;
}

static double bench_vchan_min(double a, double b)
{
	return a == 0 || b < a ? b : a;
}

static int bench_vchan_measure_tput(const struct bench_opts *o)
{
	if (bv.have_tput)
		return 0;
	for (int i = 0; i < BV_ROUNDS; i++) {
		double v = bench_vchan_vchan(o->bytes, false);
		if (v < 0)
			return (int)v;
		bv.vchan = bench_vchan_max(bv.vchan, v);
		bv.ring = bench_vchan_max(
		    bv.ring, shm_ring_throughput(o->bytes, BV_RING, BV_CHUNK));
		bv.unix_sock = bench_vchan_max(
		    bv.unix_sock, fd_throughput(o->bytes, BV_CHUNK, true));
		bv.pipe_fd = bench_vchan_max(
		    bv.pipe_fd, fd_throughput(o->bytes, BV_CHUNK, false));
	}
	bv.have_tput = true;
	return 0;
}

static int bench_vchan_measure_rtt(void)
{
	if (bv.have_rtt)
		return 0;
	for (int i = 0; i < BV_ROUNDS; i++) {
		double v = bench_vchan_vchan(0, true);
		if (v < 0)
			return (int)v;
		bv.rtt_vchan = bench_vchan_min(bv.rtt_vchan, v);
		setenv("RILL_VCHAN_SPIN_NS", "0", 1);
		v = bench_vchan_vchan(0, true);
		unsetenv("RILL_VCHAN_SPIN_NS");
		if (v < 0)
			return (int)v;
		bv.rtt_nospin = bench_vchan_min(bv.rtt_nospin, v);
		bv.rtt_ring = bench_vchan_min(
		    bv.rtt_ring, shm_ring_pingpong_us(BV_PING_ITERS, 0));
		bv.rtt_unix = bench_vchan_min(
		    bv.rtt_unix, fd_pingpong_us(BV_PING_ITERS, true));
	}
	bv.have_rtt = true;
	return 0;
}

static void bench_vchan_row(struct bench_row *r, const char *name,
                            const char *metric, double v, const char *base,
                            double bv_, const char *unit)
{
	r->name = name;
	r->metric = metric;
	r->value = v;
	r->baseline = base;
	r->base_value = bv_;
	r->unit = unit;
}

/* A round-trip row: times in microseconds shown as round trips per
 * second, so that higher is better there too (struct bench_row). */
static void bench_vchan_rtt_row(struct bench_row *r, const char *name,
                                double us, const char *base, double base_us)
{
	bench_vchan_row(r, name, "pingpong-rtt", us > 0 ? 1e6 / us : 0, base,
	                base_us > 0 ? 1e6 / base_us : 0, "rt/s");
}

int bench_vchan_tput_ring(const struct bench_opts *o, struct bench_row *r)
{
	int err = bench_vchan_measure_tput(o);
	if (err == 0)
		bench_vchan_row(r, "vchan", "throughput", bv.vchan, "shm-ring",
		                bv.ring, NULL);
	return err;
}

int bench_vchan_tput_unix(const struct bench_opts *o, struct bench_row *r)
{
	int err = bench_vchan_measure_tput(o);
	if (err == 0)
		bench_vchan_row(r, "vchan", "throughput", bv.vchan,
		                "unix-socket", bv.unix_sock, NULL);
	return err;
}

int bench_vchan_tput_pipe(const struct bench_opts *o, struct bench_row *r)
{
	int err = bench_vchan_measure_tput(o);
	if (err == 0)
		bench_vchan_row(r, "vchan", "throughput", bv.vchan, "pipe",
		                bv.pipe_fd, NULL);
	return err;
}

int bench_vchan_rtt_ring(const struct bench_opts *o, struct bench_row *r)
{
	(void)o;
	int err = bench_vchan_measure_rtt();
	if (err == 0)
		bench_vchan_rtt_row(r, "vchan", bv.rtt_vchan, "shm-ring-evfd",
		                    bv.rtt_ring);
	return err;
}

int bench_vchan_rtt_unix(const struct bench_opts *o, struct bench_row *r)
{
	(void)o;
	int err = bench_vchan_measure_rtt();
	if (err == 0)
		bench_vchan_rtt_row(r, "vchan", bv.rtt_vchan, "unix-socket",
		                    bv.rtt_unix);
	return err;
}

int bench_vchan_rtt_nospin(const struct bench_opts *o, struct bench_row *r)
{
	(void)o;
	int err = bench_vchan_measure_rtt();
	if (err == 0)
		bench_vchan_rtt_row(r, "vchan-nospin", bv.rtt_nospin,
		                    "shm-ring-evfd", bv.rtt_ring);
	return err;
}
