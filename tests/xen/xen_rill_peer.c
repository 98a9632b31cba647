/*
 * A vchan peer built on rill's Xen backend (rill_xen_vchan_server /
 * rill_xen_vchan_client), the rill side of every Xen guest leg. Same
 * command line and byte pattern as xen_lib_peer.c, so either end of a
 * leg can be either program:
 *
 *   xen_rill_peer NAME server|client DOMID PATH|PORT [options]
 *
 * PATH (starting with '/') is the vchan's xenstore path; anything else
 * is a port name on the default path. The common options are in
 * xen_peer.h; this one adds
 *     --expect-ering    the peer breaks the ring during or after the
 *                       transfer: keep a read pending and, after the
 *                       transfer, write a byte every 20 ms; the first
 *                       error must be RILL_ERING
 *     --echo            the peer echoes: expect our own bytes back
 *     --until-eof       after the transfer, read on until the peer's EOF
 *                       (a peer that drops what is left in the ring when
 *                       we close, as vchan-socket-proxy does, must get
 *                       everything first)
 *     --kill-peer CMD...  (last option) runs CMD (the other end, which
 *                       sends --expect bytes and holds), kills it with
 *                       SIGKILL once they arrived, and must see EOF
 *                       within 5 s
 *
 * Prints one TAP line naming the leg NAME.
 *
 *   xen_rill_peer gen SALT N          writes N pattern bytes to stdout
 *   xen_rill_peer check SALT N NAME   checks N pattern bytes on stdin
 *                                     (then EOF), prints one TAP line
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rill.h"
#include "xen_peer.h"

#define RP_CHUNK    65536
#define RP_INFLIGHT 4
#define RP_EOF_MAX  5.0

struct rpeer {
	struct xp_args a;
	const char *path, *port; /* of the vchan open now */
	bool expect_ering, echo, until_eof;
	char **kill_cmd;
	/* --sizes: what is left of the list, the path, the count */
	char sizes[256], *next_size;
	char size_path[128];
	int nsizes;

	uv_loop_t loop;
	uv_timer_t deadline, tick;
	struct rill_flow *f;
	size_t sent, got;
	int inflight;
	bool reading, finished;
	pid_t child;
	double t_kill, t_first, rtt_t0;
	size_t rtt_done;
};

__attribute__((format(printf, 3, 4))) static void
rp_result(struct rpeer *p, bool ok, const char *fmt, ...)
{
	if (p->finished)
		return;
	p->finished = true;
	char why[320] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	printf("1..1\n%s 1 - %s%s%s\n", ok ? "ok" : "not ok", p->a.name,
	       why[0] != '\0' ? ": " : "", why);
	fflush(stdout);
	if (p->child > 0) {
		kill(p->child, SIGKILL);
		waitpid(p->child, NULL, 0);
		p->child = 0;
	}
	rill_close(p->f);
	p->f = NULL;
	uv_stop(&p->loop);
	exit(ok ? 0 : 1);
}

static const char *rp_err(struct rpeer *p, int err)
{
	const char *m = p->f != NULL ? rill_flow_errmsg(p->f) : NULL;
	return m != NULL && *m != '\0' ? m : rill_strerror(err);
}

static void rp_pump(struct rpeer *p);
static void rp_read(struct rpeer *p);

/* ---------------------------------------------------------------------- */
/* The checked transfer */

static bool rp_transfer_done(struct rpeer *p)
{
	return p->sent == p->a.send && p->inflight == 0 &&
	       p->got == p->a.expect;
}

static void rp_after_transfer(struct rpeer *p);
static void rp_open(struct rpeer *p);
static bool rp_next_size(struct rpeer *p);

static void rp_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct rpeer *p = ud;
	p->inflight--;
	if (status != 0 && p->expect_ering) {
		if (status == RILL_ERING)
			rp_result(p, true, "a write failed with RILL_ERING");
		rp_result(p, false, "a write failed with %s, not RILL_ERING",
		          rill_err_name(status));
	}
	if (status != 0)
		rp_result(p, false, "write: %s", rp_err(p, status));
	rp_pump(p);
}

static void rp_pump(struct rpeer *p)
{
	unsigned salt = p->a.server ? XP_SERVER_TO_CLIENT : XP_CLIENT_TO_SERVER;
	while (p->sent < p->a.send && p->inflight < RP_INFLIGHT) {
		size_t n = p->a.send - p->sent < RP_CHUNK ? p->a.send - p->sent
		                                          : RP_CHUNK;
		struct rill_buf *b = rill_buf_new(n);
		if (b == NULL)
			rp_result(p, false, "out of memory");
		xp_fill(b->data, n, p->sent, salt);
		p->sent += n;
		p->inflight++;
		int err = rill_write(p->f, b, rp_write_cb, p);
		rill_buf_release(b);
		if (err != 0)
			rp_result(p, false, "write: %s", rp_err(p, err));
	}
	if (rp_transfer_done(p))
		rp_after_transfer(p);
}

static void rp_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                       void *ud)
{
	(void)f;
	struct rpeer *p = ud;
	p->reading = false;
	if (status == RILL_EOF && p->until_eof && rp_transfer_done(p))
		rp_result(p, true, "%zu bytes each way checked, then EOF",
		          p->a.send);
	if (status == RILL_EOF && p->t_kill > 0) {
		double dt = xp_now() - p->t_kill;
		rp_result(p, dt <= RP_EOF_MAX,
		          "EOF %.2f s after the peer was killed", dt);
	}
	if (status != 0 && p->expect_ering) {
		if (status == RILL_ERING)
			rp_result(p, true, "a read failed with RILL_ERING (%s)",
			          rp_err(p, status));
		rp_result(p, false, "a read ended with %s, not RILL_ERING",
		          rill_err_name(status));
	}
	if (status != 0)
		rp_result(p, false, "read after %zu of %zu bytes: %s", p->got,
		          p->a.expect, rp_err(p, status));
	unsigned salt = p->a.server ? XP_CLIENT_TO_SERVER : XP_SERVER_TO_CLIENT;
	if (p->echo)
		salt = p->a.server ? XP_SERVER_TO_CLIENT : XP_CLIENT_TO_SERVER;
	if (p->got + b->len > p->a.expect && p->t_kill == 0)
		rp_result(p, false, "%zu bytes more than the %zu expected",
		          p->got + b->len - p->a.expect, p->a.expect);
	size_t bad = xp_check(b->data, b->len, p->got, salt);
	if (bad != b->len)
		rp_result(p, false, "byte %zu is wrong", p->got + bad);
	p->got += b->len;
	rill_buf_release(b);
	if (p->got == p->a.expect && p->kill_cmd != NULL && p->t_kill == 0) {
		p->t_kill = xp_now();
		kill(p->child, SIGKILL);
	}
	if (p->got < p->a.expect || p->t_kill > 0 || p->expect_ering ||
	    p->until_eof)
		rp_read(p);
	if (rp_transfer_done(p))
		rp_after_transfer(p);
}

static void rp_read(struct rpeer *p)
{
	if (p->reading)
		return;
	p->reading = true;
	int err = rill_read(p->f, rp_read_cb, p);
	if (err != 0)
		rp_result(p, false, "read: %s", rill_strerror(err));
}

static void rp_on_tick(uv_timer_t *t)
{
	struct rpeer *p = t->data;
	uint8_t x = 0;
	p->inflight++;
	int err = rill_write_copy(p->f, &x, 1, rp_write_cb, p);
	if (err == RILL_ERING)
		rp_result(p, true, "the write failed with RILL_ERING");
	if (err != 0)
		rp_result(p, false, "write: %s, not RILL_ERING",
		          rill_err_name(err));
}

static void rp_after_transfer(struct rpeer *p)
{
	if (p->a.hold) {
		printf("# held\n");
		fflush(stdout);
		return; /* until killed */
	}
	if (p->expect_ering) {
		rp_read(p);
		if (!uv_is_active((uv_handle_t *)&p->tick))
			uv_timer_start(&p->tick, rp_on_tick, 20, 20);
		return;
	}
	if (p->until_eof) {
		rp_read(p);
		return;
	}
	if (p->next_size != NULL) {
		rill_close(p->f);
		p->f = NULL;
		p->sent = p->got = 0;
		if (rp_next_size(p)) {
			rp_open(p);
			return;
		}
		rp_result(p, true, "%d vchans, %zu bytes each way on each",
		          p->nsizes, p->a.send);
	}
	if (p->kill_cmd == NULL)
		rp_result(p, true, "%zu bytes each way checked", p->a.send);
}

/* ---------------------------------------------------------------------- */
/* Benchmarks */

static void rp_bench_read_cb(struct rill_flow *f, int status,
                             struct rill_buf *b, void *ud);

static void rp_bench_write_cb(struct rill_flow *f, int status, void *ud);

/* The client writes bench_tput bytes (one buffer, written again and
 * again), then waits for the server's close; the server reads. */
static void rp_bench_tput(struct rpeer *p)
{
	static struct rill_buf *chunk;
	if (p->a.server) {
		rill_read(p->f, rp_bench_read_cb, p);
		return;
	}
	if (chunk == NULL) {
		chunk = rill_buf_new(RP_CHUNK);
		memset(chunk->data, 0x5a, RP_CHUNK);
		rill_read(p->f, rp_bench_read_cb, p);
	}
	while (p->sent < p->a.bench_tput && p->inflight < RP_INFLIGHT) {
		p->sent += RP_CHUNK;
		p->inflight++;
		if (rill_write(p->f, chunk, rp_bench_write_cb, p) != 0)
			rp_result(p, false, "bench: write refused");
	}
}

static void rp_bench_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct rpeer *p = ud;
	p->inflight--;
	if (status != 0)
		rp_result(p, false, "bench: write: %s", rp_err(p, status));
	rp_bench_tput(p);
}

static void rp_bench_ping(struct rpeer *p)
{
	uint8_t x = 0x5a;
	rill_write_copy(p->f, &x, 1, NULL, NULL);
}

static void rp_bench_read_cb(struct rill_flow *f, int status,
                             struct rill_buf *b, void *ud)
{
	(void)f;
	struct rpeer *p = ud;
	if (status != 0) {
		rp_result(p, status == RILL_EOF, "bench: %s",
		          rill_strerror(status));
		return;
	}
	size_t n = b->len;
	rill_buf_release(b);
	if (p->a.bench_tput > 0 && p->a.server) {
		if (p->got == 0)
			p->t_first = xp_now();
		p->got += n;
		if (p->got >= p->a.bench_tput) {
			printf("# bench tput %zu %.6f\n", p->got,
			       xp_now() - p->t_first);
			rp_result(p, true, "%s", "bench done");
		}
		rill_read(p->f, rp_bench_read_cb, p);
		return;
	}
	if (p->a.bench_tput > 0) {
		rill_read(p->f, rp_bench_read_cb, p);
		return; /* the client waits for the server's close */
	}
	/* ping-pong: the client counts round trips */
	if (!p->a.server && ++p->rtt_done == p->a.bench_rtt) {
		printf("# bench rtt %zu %.6f\n", p->rtt_done,
		       xp_now() - p->rtt_t0);
		rp_result(p, true, "%s", "bench done");
	}
	rp_bench_ping(p);
	rill_read(p->f, rp_bench_read_cb, p);
}

/* ---------------------------------------------------------------------- */
/* Setup */

static void rp_start(struct rpeer *p)
{
	if (p->a.bench_tput > 0) {
		rp_bench_tput(p);
		return;
	}
	if (p->a.bench_rtt > 0) {
		p->rtt_t0 = xp_now();
		if (!p->a.server)
			rp_bench_ping(p);
		rill_read(p->f, rp_bench_read_cb, p);
		return;
	}
	if (p->a.expect > 0 || p->expect_ering)
		rp_read(p);
	rp_pump(p);
}

static void rp_spawn(struct rpeer *p)
{
	p->child = fork();
	if (p->child == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execv(p->kill_cmd[0], p->kill_cmd);
		_exit(127);
	}
	if (p->child < 0)
		rp_result(p, false, "fork: %s", strerror(errno));
}

static void rp_connected(struct rill_flow *f, int status, const char *msg,
                         void *ud)
{
	struct rpeer *p = ud;
	if (status != 0)
		rp_result(p, false, "connect: %s",
		          msg != NULL ? msg : rill_strerror(status));
	p->f = f;
	rp_start(p);
}

static void rp_on_deadline(uv_timer_t *t)
{
	struct rpeer *p = t->data;
	rp_result(p, false, "timed out after %.0f s (sent %zu, got %zu)",
	          p->a.timeout, p->sent, p->got);
}

static void rp_open(struct rpeer *p)
{
	struct rill_xen_vchan_opts o = {
	    .path = p->path,
	    .read_size = p->a.read_size,
	    .write_size = p->a.write_size,
	};
	int err;
	if (p->a.server) {
		err = rill_xen_vchan_server(&p->loop, p->a.domid, p->port, &o,
		                            NULL, NULL, &p->f);
		if (err == 0)
			rp_start(p);
	} else {
		struct rill_connect_opts c = {
		    .timeout_ms = (uint64_t)(p->a.timeout * 1000),
		    .retry_until_ms = (uint64_t)(p->a.timeout * 1000),
		};
		err = rill_xen_vchan_client(&p->loop, p->a.domid, p->port, &o,
		                            &c, rp_connected, p);
	}
	if (err != 0)
		rp_result(p, false, "%s: %s", p->a.server ? "server" : "client",
		          rill_last_errmsg());
}

/* --sizes: the path and ring sizes of the next vchan; false at the end
 * of the list. */
static bool rp_next_size(struct rpeer *p)
{
	char *tok = p->next_size;
	if (tok == NULL || *tok == '\0')
		return false;
	char *comma = strchr(tok, ',');
	p->next_size = comma != NULL ? comma + 1 : tok + strlen(tok);
	if (comma != NULL)
		*comma = '\0';
	snprintf(p->size_path, sizeof p->size_path, "%s/%s", p->a.target, tok);
	p->path = p->size_path;
	p->a.read_size = p->a.write_size = xp_size(tok);
	p->nsizes++;
	return true;
}

static bool rp_own_option(void *ctx, char **argv, int argc, int *i)
{
	struct rpeer *p = ctx;
	const char *o = argv[*i];
	bool *flag = !strcmp(o, "--expect-ering") ? &p->expect_ering
	             : !strcmp(o, "--echo")       ? &p->echo
	             : !strcmp(o, "--until-eof")  ? &p->until_eof
	                                          : NULL;
	if (flag != NULL) {
		*flag = true;
		(*i)++;
		return true;
	}
	if (strcmp(o, "--kill-peer") != 0 || *i + 1 == argc)
		return false;
	p->kill_cmd = argv + *i + 1;
	*i = argc; /* the rest is the command */
	return true;
}

static int rp_gen(unsigned salt, size_t n)
{
	static uint8_t buf[65536];
	for (size_t off = 0; off < n;) {
		size_t k = n - off < sizeof buf ? n - off : sizeof buf;
		xp_fill(buf, k, off, salt);
		if (fwrite(buf, 1, k, stdout) != k)
			return 1;
		off += k;
	}
	return fflush(stdout) != 0;
}

static int rp_check(unsigned salt, size_t n, const char *name)
{
	static uint8_t buf[65536];
	size_t off = 0, r;
	while ((r = fread(buf, 1, sizeof buf, stdin)) > 0) {
		size_t bad = xp_check(buf, r, off, salt);
		if (bad != r || off + r > n) {
			printf("1..1\nnot ok 1 - %s: byte %zu is wrong\n", name,
			       off + bad);
			return 1;
		}
		off += r;
	}
	printf("1..1\n%s 1 - %s: %zu of %zu bytes\n",
	       off == n ? "ok" : "not ok", name, off, n);
	return off == n ? 0 : 1;
}

int main(int argc, char **argv)
{
	static struct rpeer p;
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && !strcmp(argv[1], "gen"))
		return rp_gen((unsigned)atoi(argv[2]), xp_size(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "check"))
		return rp_check((unsigned)atoi(argv[2]), xp_size(argv[3]),
		                argv[4]);
	xp_parse(&p.a, argc, argv, rp_own_option, &p);
	if (p.a.target[0] == '/')
		p.path = p.a.target;
	else
		p.port = p.a.target;
	if (p.a.sizes != NULL)
		snprintf(p.sizes, sizeof p.sizes, "%s", p.a.sizes);
	uv_loop_init(&p.loop);
	uv_timer_init(&p.loop, &p.deadline);
	uv_timer_init(&p.loop, &p.tick);
	p.deadline.data = p.tick.data = &p;
	uv_timer_start(&p.deadline, rp_on_deadline,
	               (uint64_t)(p.a.timeout * 1000), 0);
	if (p.sizes[0] != '\0') {
		p.next_size = p.sizes;
		rp_next_size(&p);
	}
	if (p.kill_cmd != NULL && !p.a.server)
		rp_spawn(&p); /* the server to kill comes first */
	rp_open(&p);
	if (p.kill_cmd != NULL && p.a.server)
		rp_spawn(&p);
	uv_run(&p.loop, UV_RUN_DEFAULT);
	rp_result(&p, false, "the loop ended early");
	return 1;
}
