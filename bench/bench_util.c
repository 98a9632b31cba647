/*
 * What the cases of `rill bench` share: timing, waiting for a helper
 * process's listener, one transfer between two flows, draining a loop.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"

static void bench_verror(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

static void bench_verror(const char *fmt, va_list ap)
{
	fputs("rill: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void bench_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bench_verror(fmt, ap);
	va_end(ap);
}

int bench_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bench_verror(fmt, ap);
	va_end(ap);
	fputs("Try 'rill bench --help'.\n", stderr);
	return 2;
}

bool bench_wait_listen(int port, pid_t pid)
{
	char needle[32];
	snprintf(needle, sizeof needle, ":%04X 00000000:0000 0A", port);
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen("/proc/net/tcp", "r");
		char line[256];
		bool found = false;
		while (f != NULL && fgets(line, sizeof line, f) != NULL)
			if (strstr(line, needle) != NULL)
				found = true;
		if (f != NULL)
			fclose(f);
		if (found)
			return true;
		if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		usleep(10000);
	}
	return false;
}

double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------------- */
/* A generic one-loop transfer between two connected flows. */

struct xfer {
	struct rill_flow *w, *r;
	struct rill_buf *chunk;
	uint64_t to_send, sent, received;
	int inflight;
	int err;
	bool eof;
};

static void xfer_write_more(struct xfer *x);

static void xfer_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct xfer *x = ud;
	x->inflight--;
	if (status != 0 && x->err == 0)
		x->err = status;
	xfer_write_more(x);
}

static void xfer_write_more(struct xfer *x)
{
	while (x->err == 0 && x->inflight < 4 && x->sent < x->to_send) {
		uint64_t left = x->to_send - x->sent;
		struct rill_buf *b = x->chunk;
		if (left < b->len)
			b = rill_buf_slice(x->chunk, 0, (size_t)left);
		else
			rill_buf_ref(b);
		int err = rill_write(x->w, b, xfer_write_cb, x);
		x->sent += b->len;
		rill_buf_release(b);
		if (err != 0) {
			x->err = err;
			return;
		}
		x->inflight++;
	}
	if (x->sent == x->to_send && x->inflight == 0 && x->err == 0) {
		x->sent++; /* shut down once */
		rill_shutdown(x->w, RILL_SHUT_WR, NULL, NULL);
	}
}

static void xfer_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                         void *ud)
{
	struct xfer *x = ud;
	if (status == RILL_EOF) {
		x->eof = true;
		return;
	}
	if (status != 0) {
		if (x->err == 0)
			x->err = status;
		return;
	}
	x->received += b->len;
	rill_buf_release(b);
	int err = rill_read(f, xfer_read_cb, x);
	if (err != 0 && x->err == 0)
		x->err = err;
}

double bench_transfer(uv_loop_t *loop, struct rill_flow *w, struct rill_flow *r,
                      uint64_t bytes)
{
	struct xfer x = {.w = w, .r = r, .to_send = bytes};
	x.chunk = rill_buf_new(BENCH_CHUNK);
	if (x.chunk == NULL)
		return RILL_ENOMEM;
	memset(x.chunk->data, 0xa5, x.chunk->len);
	double t0 = bench_now();
	rill_read(r, xfer_read_cb, &x);
	xfer_write_more(&x);
	while (x.err == 0 && !x.eof)
		if (uv_run(loop, UV_RUN_ONCE) == 0)
			break;
	double dt = bench_now() - t0;
	rill_buf_release(x.chunk);
	if (x.err != 0)
		return x.err;
	if (x.received != bytes) {
		fprintf(stderr, "recv %llu sent %llu eof %d\n",
		        (unsigned long long)x.received,
		        (unsigned long long)x.sent, x.eof);
		return -EIO;
	}
	return (double)bytes / dt / 1e6;
}

void bench_drain_loop(uv_loop_t *loop)
{
	while (uv_run(loop, UV_RUN_NOWAIT) != 0)
		;
}
