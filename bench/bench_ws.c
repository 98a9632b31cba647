/*
 * rill bench ws-relay: `rill relay ws+tcp://... tcp://...` (websockify's
 * job) beside websockify itself and beside the plain `rill relay
 * tcp://... tcp://...` (splice, and --no-splice), in the same run.
 *
 * Each forwarder runs as its own process on loopback; this process is
 * the WebSocket (or TCP) client that writes `bytes` in 64 KiB messages
 * and the TCP sink that reads them. Throughput is bytes over the
 * transfer's time; the forwarder's CPU per GiB comes from its
 * /proc/PID/stat (user + system, its reaped children included:
 * websockify forks one per connection). Rounds are interleaved
 * (rill ws, websockify, relay, relay --no-splice, again...) and the
 * medians are reported.
 */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define BW_BYTES      (128ull << 20)
#define BW_ROUNDS     3
#define BW_MAX_ROUNDS 9

enum { BW_WS, BW_WEBSOCKIFY, BW_RELAY, BW_RELAY_COPY, BW_KINDS };

static const char *const bw_names[BW_KINDS] = {
    "rill relay ws+tcp", "websockify", "rill relay", "rill relay --no-splice"};

static struct {
	bool done;
	int err;
	const char *skipped;
	double mbps[BW_KINDS], cpu[BW_KINDS]; /* medians; cpu: s per GiB */
} bw;

struct bw_sink {
	struct rill_flow *f;
};

static void bw_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct bw_sink *s = ud;
	if (status == 0 && s->f == NULL)
		s->f = f;
	else if (status == 0)
		rill_close(f);
}

struct bw_conn {
	struct rill_flow *f;
	int err;
	bool done;
};

static void bw_connected(struct rill_flow *f, int status, const char *errmsg,
                         void *ud)
{
	(void)errmsg;
	struct bw_conn *c = ud;
	c->done = true;
	c->err = status;
	c->f = f;
}

/* CPU seconds of pid and its reaped children. */
static double bw_cpu(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return 0;
	unsigned long long ut, st, cut, cst;
	/* fields 14-17 (utime stime cutime cstime); p is at field 2's end */
	if (sscanf(p + 2,
	           "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu "
	           "%llu",
	           &ut, &st, &cut, &cst) != 4)
		return 0;
	return (double)(ut + st + cut + cst) / (double)sysconf(_SC_CLK_TCK);
}

static pid_t bw_spawn(int kind, int port, int target)
{
	char exe[PATH_MAX], lsn[128], dst[64];
	ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (el <= 0)
		return -1;
	exe[el] = '\0';
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	freopen("/dev/null", "r", stdin);
	freopen("/dev/null", "w", stdout);
	if (getenv("RILL_BENCH_DEBUG") == NULL)
		freopen("/dev/null", "w", stderr);
	switch (kind) {
	case BW_WEBSOCKIFY:
		snprintf(lsn, sizeof lsn, "127.0.0.1:%d", port);
		snprintf(dst, sizeof dst, "127.0.0.1:%d", target);
		execlp("websockify", "websockify", lsn, dst, (char *)NULL);
		break;
	default:
		snprintf(lsn, sizeof lsn, "%stcp://127.0.0.1:%d",
		         kind == BW_WS ? "ws+" : "", port);
		snprintf(dst, sizeof dst, "tcp://127.0.0.1:%d", target);
		if (kind == BW_RELAY_COPY)
			execl(exe, "rill", "relay", "--quiet", "--no-splice",
			      lsn, dst, (char *)NULL);
		else
			execl(exe, "rill", "relay", "--quiet", lsn, dst,
			      (char *)NULL);
	}
	_exit(127);
}

static int bw_free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int port = -1;
	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

/* A transfer that ends when the sink has every byte, not at an EOF:
 * websockify drops what it still holds for the target when the client's
 * Close arrives, so a write shutdown right after the last write would
 * lose bytes there. */
struct bw_xfer {
	struct rill_flow *w, *r;
	struct rill_buf *chunk;
	uint64_t to_send, sent, got;
	int inflight, err;
	bool done;
};

static void bw_pump(struct bw_xfer *x);

static void bw_wrote(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct bw_xfer *x = ud;
	x->inflight--;
	if (status != 0 && x->err == 0)
		x->err = status;
	bw_pump(x);
}

static void bw_pump(struct bw_xfer *x)
{
	while (x->err == 0 && x->inflight < 4 && x->sent < x->to_send) {
		if (rill_write(x->w, x->chunk, bw_wrote, x) != 0) {
			x->err = -EIO;
			return;
		}
		x->inflight++;
		x->sent += x->chunk->len;
	}
}

static void bw_got(struct rill_flow *f, int status, struct rill_buf *b,
                   void *ud)
{
	struct bw_xfer *x = ud;
	if (status != 0) {
		if (x->err == 0)
			x->err = status;
		x->done = true;
		return;
	}
	x->got += b->len;
	rill_buf_release(b);
	if (x->got >= x->to_send) {
		x->done = true;
		return;
	}
	if (rill_read(f, bw_got, x) != 0) {
		x->err = -EIO;
		x->done = true;
	}
}

static double bw_transfer(uv_loop_t *loop, struct rill_flow *w,
                          struct rill_flow *r, uint64_t bytes)
{
	struct bw_xfer x = {.w = w, .r = r};
	x.chunk = rill_buf_new(BENCH_CHUNK);
	if (x.chunk == NULL)
		return RILL_ENOMEM;
	memset(x.chunk->data, 'w', BENCH_CHUNK);
	x.to_send = (bytes + BENCH_CHUNK - 1) / BENCH_CHUNK * BENCH_CHUNK;
	double t0 = bench_now();
	bw_pump(&x);
	if (rill_read(r, bw_got, &x) != 0)
		x.err = -EIO;
	while (x.err == 0 && !x.done)
		if (uv_run(loop, UV_RUN_ONCE) == 0)
			break;
	double dt = bench_now() - t0;
	rill_buf_release(x.chunk);
	if (x.err != 0 || x.got < x.to_send)
		return x.err != 0 ? x.err : -EIO;
	return (double)x.to_send / dt / 1e6;
}

/* One transfer through forwarder kind: MB/s and CPU s/GiB. */
static int bw_once(int kind, uint64_t bytes, double *mbps, double *cpu)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct bw_sink sink = {0};
	struct rill_listener *l = NULL;
	int target = bw_free_port(), port = bw_free_port();
	char uri[128];
	snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", target);
	int err = rill_listen(&loop, uri, NULL, bw_accept, &sink, &l);
	pid_t pid = err == 0 ? bw_spawn(kind, port, target) : -1;
	if (err == 0 && (pid < 0 || !bench_wait_listen(port, pid)))
		err = -EIO;
	struct bw_conn c = {0};
	if (err == 0) {
		snprintf(uri, sizeof uri, "%stcp://127.0.0.1:%d",
		         kind <= BW_WEBSOCKIFY ? "ws+" : "", port);
		err = rill_connect(&loop, uri, NULL, bw_connected, &c);
	}
	while (err == 0 && (!c.done || (c.err == 0 && sink.f == NULL)))
		if (uv_run(&loop, UV_RUN_ONCE) == 0)
			break;
	if (err == 0)
		err = c.err != 0 ? c.err : sink.f == NULL ? -EIO : 0;
	double cpu0 = pid > 0 ? bw_cpu(pid) : 0;
	if (err == 0) {
		*mbps = bw_transfer(&loop, c.f, sink.f, bytes);
		if (*mbps < 0)
			err = (int)*mbps;
	}
	rill_close(c.f);
	rill_close(sink.f);
	if (l != NULL)
		rill_listener_close(l);
	bench_drain_loop(&loop);
	uv_loop_close(&loop);
	usleep(300 * 1000); /* websockify reaps its child */
	if (pid > 0) {
		*cpu = (bw_cpu(pid) - cpu0) / ((double)bytes / (1 << 30));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return err;
}

static int bw_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double bw_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, bw_cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int bw_measure(const struct bench_opts *o)
{
	if (bw.done)
		return bw.err;
	bw.done = true;
	if (system("command -v websockify >/dev/null 2>&1") != 0) {
		bw.skipped = "websockify is not installed";
		return bw.err = BENCH_SKIPPED;
	}
	uint64_t bytes = o->bytes_set ? o->bytes : BW_BYTES;
	int rounds = o->rounds > 0 ? o->rounds : BW_ROUNDS;
	if (rounds > BW_MAX_ROUNDS)
		rounds = BW_MAX_ROUNDS;
	double m[BW_KINDS][BW_MAX_ROUNDS], c[BW_KINDS][BW_MAX_ROUNDS];
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < BW_KINDS; k++) {
			int err = bw_once(k, bytes, &m[k][r], &c[k][r]);
			if (err != 0) {
				bench_error("bench ws-relay: %s: %s",
				            bw_names[k], rill_strerror(err));
				return bw.err = err;
			}
		}
	for (int k = 0; k < BW_KINDS; k++) {
		bw.mbps[k] = bw_median(m[k], rounds);
		bw.cpu[k] = bw_median(c[k], rounds);
	}
	return 0;
}

static int bw_row(const struct bench_opts *o, struct bench_row *row, int base,
                  bool cpu)
{
	row->name = "ws-relay";
	row->metric = cpu ? "CPU per GiB" : "throughput";
	row->baseline = bw_names[base];
	int err = bw_measure(o);
	if (err != 0) {
		row->skipped = bw.skipped;
		return err;
	}
	if (cpu) {
		row->unit = "ms/GiB";
		row->lower_better = true;
		row->value = bw.cpu[BW_WS] * 1000;
		row->base_value = bw.cpu[base] * 1000;
	} else {
		row->value = bw.mbps[BW_WS];
		row->base_value = bw.mbps[base];
	}
	return 0;
}

int bench_ws_vs_websockify(const struct bench_opts *o, struct bench_row *r)
{
	return bw_row(o, r, BW_WEBSOCKIFY, false);
}

int bench_ws_vs_relay(const struct bench_opts *o, struct bench_row *r)
{
	return bw_row(o, r, BW_RELAY, false);
}

int bench_ws_cpu_vs_websockify(const struct bench_opts *o, struct bench_row *r)
{
	return bw_row(o, r, BW_WEBSOCKIFY, true);
}

int bench_ws_cpu_vs_relay(const struct bench_opts *o, struct bench_row *r)
{
	return bw_row(o, r, BW_RELAY, true);
}

int bench_ws_cpu_vs_relay_copy(const struct bench_opts *o, struct bench_row *r)
{
	return bw_row(o, r, BW_RELAY_COPY, true);
}
