/*
 * rill bench: throughput of every flow kind, each beside a baseline
 * measured in the same run, as a table (or --json).
 *
 * A throughput case moves `size` bytes from one flow to another on one
 * loop: the writer keeps a window of 64 KiB writes in flight and the
 * reader releases what it reads. The baseline for the in-memory pair is
 * memcpy of the same bytes in the same chunk size (the pair copies each
 * byte once).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_tls.h"

#define BENCH_CHUNK (64u * 1024u)

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

static double bench_memcpy(uint64_t bytes)
{
	uint8_t *src = malloc(BENCH_CHUNK), *dst = malloc(BENCH_CHUNK);
	if (src == NULL || dst == NULL) {
		free(src);
		free(dst);
		return RILL_ENOMEM;
	}
	memset(src, 0xa5, BENCH_CHUNK);
	double t0 = bench_now();
	for (uint64_t done = 0; done < bytes; done += BENCH_CHUNK) {
		memcpy(dst, src, BENCH_CHUNK);
		/* Keep the compiler from dropping the copy. */
		__asm__ volatile("" : : "r"(dst) : "memory");
	}
	double dt = bench_now() - t0;
	free(src);
	free(dst);
	return (double)bytes / dt / 1e6;
}

void bench_drain_loop(uv_loop_t *loop)
{
	while (uv_run(loop, UV_RUN_NOWAIT) != 0)
		;
}

static int case_pair(const struct bench_opts *o, struct bench_row *row)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *b;
	int err = rill_pair(&loop, 0, &a, &b);
	if (err != 0)
		return err;
	row->name = "pair";
	row->metric = "throughput";
	row->baseline = "memcpy";
	row->base_value = bench_memcpy(o->bytes);
	row->value = bench_transfer(&loop, a, b, o->bytes);
	rill_close(a);
	rill_close(b);
	bench_drain_loop(&loop);
	uv_loop_close(&loop);
	return row->value < 0 ? (int)row->value : 0;
}

/* shut+unix beside unix, both measured here (cli/bench_shut.c). */
static int case_shut_unix(const struct bench_opts *o, struct bench_row *row)
{
	row->name = "shut+unix";
	row->metric = "throughput";
	row->baseline = "unix";
	return cli_bench_shut_unix(o->bytes, &row->value, &row->base_value);
}

static int case_tls_tcp(const struct bench_opts *o, struct bench_row *row)
{
	row->name = "tls+tcp";
	row->metric = "throughput";
	row->baseline = "socat OPENSSL";
	return bench_tls_throughput(o->bytes, &row->value, &row->base_value);
}

static int case_tls_handshakes(const struct bench_opts *o,
                               struct bench_row *row)
{
	(void)o;
	row->name = "tls+tcp";
	row->metric = "handshakes";
	row->unit = "hs/s";
	row->baseline = "socat (fork)";
	return bench_tls_handshakes(BENCH_TLS_PEER_SOCAT, &row->value,
	                            &row->base_value);
}

static int case_tls_handshakes_s_server(const struct bench_opts *o,
                                        struct bench_row *row)
{
	(void)o;
	row->name = "tls+tcp";
	row->metric = "handshakes";
	row->unit = "hs/s";
	row->baseline = "s_server";
	return bench_tls_handshakes(BENCH_TLS_PEER_S_SERVER, &row->value,
	                            &row->base_value);
}

static const struct {
	const char *name;
	int (*run)(const struct bench_opts *o, struct bench_row *row);
} cases[] = {{"pair", case_pair},
             {"tcp4", bench_tcp4},
             {"tcp4-rtt", bench_tcp4_rtt},
             {"tcp6", bench_tcp6},
             {"tcp6-rtt", bench_tcp6_rtt},
             {"unix", bench_unix},
             {"unix-rtt", bench_unix_rtt},
             {"shut+unix", case_shut_unix},
             {"tls+tcp", case_tls_tcp},
             {"tls+tcp-handshakes", case_tls_handshakes},
             {"tls+tcp-handshakes-vs-s_server", case_tls_handshakes_s_server},
             BENCH_VCHAN_CASES};

static size_t case_count(void)
{
	size_t n = sizeof cases / sizeof cases[0];
	while (bench_relay_case_name(n - sizeof cases / sizeof cases[0]))
		n++;
	return n;
}

static const char *case_name(size_t i)
{
	size_t n = sizeof cases / sizeof cases[0];
	return i < n ? cases[i].name : bench_relay_case_name(i - n);
}

static int case_run(size_t i, const struct bench_opts *o, struct bench_row *row)
{
	size_t n = sizeof cases / sizeof cases[0];
	return i < n ? cases[i].run(o, row) : bench_relay_case(i - n, o, row);
}

static void print_row(const struct bench_opts *o, const struct bench_row *r,
                      bool first)
{
	double ratio = r->lower_better
	                   ? (r->value > 0 ? r->base_value / r->value : 0)
	                   : (r->base_value > 0 ? r->value / r->base_value : 0);
	const char *unit = r->unit != NULL ? r->unit : "MB/s";
	/* JSON: the separator goes before every row but the first, so the
	 * array stays valid whichever cases a filter selects. */
	if (o->json)
		printf("%s  {\"flow\": \"%s\", \"metric\": \"%s\", "
		       "\"value\": %.1f, \"unit\": \"%s\", \"baseline\": "
		       "\"%s\", \"baseline_value\": %.1f, \"ratio\": %.3f, "
		       "\"lower_is_better\": %s}",
		       first ? "" : ",\n", r->name, r->metric, r->value, unit,
		       r->baseline, r->base_value, ratio,
		       r->lower_better ? "true" : "false");
	else
		printf("%-16s %-12s %12.1f %-6s  %-22s %12.1f %-6s  %6.2fx\n",
		       r->name, r->metric, r->value, unit, r->baseline,
		       r->base_value, unit, ratio);
}

static void bench_usage(FILE *out)
{
	fprintf(out,
	        "Usage: rill bench [--bytes N[KMG]] [--rounds N] [--json] "
	        "[CASE]\n"
	        "\n"
	        "Measures each flow kind beside a baseline measured in the\n"
	        "same run and prints value, baseline and their ratio.\n"
	        "  --bytes N   bytes per throughput run (default 1G; the\n"
	        "              relay cases: 512M)\n"
	        "  --rounds N  interleaved rounds of the relay cases, whose\n"
	        "              medians are kept (default 5)\n"
	        "  --json      print JSON instead of a table\n"
	        "  CASE        run only cases whose name contains CASE\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (end == s)
		return -1;
	switch (*end) {
	case 'K':
	case 'k':
		v <<= 10;
		end++;
		break;
	case 'M':
	case 'm':
		v <<= 20;
		end++;
		break;
	case 'G':
	case 'g':
		v <<= 30;
		end++;
		break;
	default: break;
	}
	if (*end != '\0' || v == 0)
		return -1;
	*out = v;
	return 0;
}

int cli_bench(int argc, char **argv)
{
	struct bench_opts o = {.bytes = 1ull << 30};
	static const struct option lopts[] = {
	    {"bytes", required_argument, NULL, 'b'},
	    {"json", no_argument, NULL, 'j'},
	    {"rounds", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hjb:", lopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (parse_size(optarg, &o.bytes) != 0)
				return cli_usage_error("bench", "bad size '%s'",
				                       optarg);
			o.bytes_set = true;
			break;
		case 'j': o.json = true; break;
		case 'r': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || v < 1 || v > 15)
				return cli_usage_error(
				    "bench", "bad --rounds '%s' (1-15)",
				    optarg);
			o.rounds = (int)v;
			break;
		}
		case 'h': bench_usage(stdout); return 0;
		default: return cli_usage_error("bench", "bad option");
		}
	}
	if (optind < argc)
		o.only = argv[optind];
	size_t n = case_count();
	size_t matching = 0, printed = 0;
	for (size_t i = 0; i < n; i++)
		if (o.only == NULL || strstr(case_name(i), o.only) != NULL)
			matching++;
	if (matching == 0)
		return cli_usage_error(
		    "bench", "no benchmark case matches '%s'", o.only);
	if (o.json)
		printf("[\n");
	else
		printf("%-16s %-12s %19s  %-22s %19s  %7s\n", "flow", "metric",
		       "value", "baseline", "baseline value", "ratio");
	int status = 0;
	for (size_t i = 0; i < n; i++) {
		if (o.only != NULL && strstr(case_name(i), o.only) == NULL)
			continue;
		struct bench_row row = {0};
		int err = case_run(i, &o, &row);
		if (err == BENCH_SKIPPED) {
			fprintf(stderr, "rill bench: %s skipped: %s\n",
			        case_name(i), row.skipped);
			continue;
		}
		if (err != 0) {
			cli_error("bench %s: %s", case_name(i),
			          rill_strerror(err));
			status = 1;
			continue;
		}
		print_row(&o, &row, printed++ == 0);
	}
	if (o.json)
		printf("%s]\n", printed ? "\n" : "");
	else
		bench_relay_report(stdout);
	return status;
}
