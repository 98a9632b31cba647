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

/* shut+unix beside unix, both measured here (bench/bench_shut.c). */
static int case_shut_unix(const struct bench_opts *o, struct bench_row *row)
{
	row->name = "shut+unix";
	row->metric = "throughput";
	row->baseline = "unix";
	return bench_shut_unix(o->bytes, &row->value, &row->base_value);
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
             BENCH_VCHAN_CASES BENCH_WS_CASES};

/* The cases: the table above, then the families that measure all their
 * rows in one run (names from a function, NULL past the last). */
static const struct {
	const char *(*name)(size_t i);
	int (*run)(size_t i, const struct bench_opts *o, struct bench_row *r);
} families[] = {
    {bench_relay_case_name, bench_relay_case},
    {bench_tls_relay_case_name, bench_tls_relay_case},
    {bench_http_case_name, bench_http_case},
};
#define NFAMILIES (sizeof families / sizeof families[0])

/* Which family case i (past the table) is in, and its index there. */
static size_t case_family(size_t i, size_t *at)
{
	size_t f = 0;
	i -= sizeof cases / sizeof cases[0];
	while (f < NFAMILIES && families[f].name(i) == NULL) {
		size_t n = 0;
		while (families[f].name(n) != NULL)
			n++;
		i -= n;
		f++;
	}
	*at = i;
	return f;
}

static size_t case_count(void)
{
	size_t n = sizeof cases / sizeof cases[0];
	for (size_t f = 0; f < NFAMILIES; f++)
		for (size_t i = 0; families[f].name(i) != NULL; i++)
			n++;
	return n;
}

static const char *case_name(size_t i)
{
	if (i < sizeof cases / sizeof cases[0])
		return cases[i].name;
	size_t at;
	size_t f = case_family(i, &at);
	return f < NFAMILIES ? families[f].name(at) : NULL;
}

static int case_run(size_t i, const struct bench_opts *o, struct bench_row *row)
{
	if (i < sizeof cases / sizeof cases[0])
		return cases[i].run(o, row);
	size_t at;
	size_t f = case_family(i, &at);
	return families[f].run(at, o, row);
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
	        "              relay cases: 512M; relay-tls: 256M)\n"
	        "  --rounds N  interleaved rounds of the relay cases, whose\n"
	        "              medians are kept (default 5; relay-tls and\n"
	        "              http: 3)\n"
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
				return bench_usage_error("bad size '%s'",
				                         optarg);
			o.bytes_set = true;
			break;
		case 'j': o.json = true; break;
		case 'r': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || v < 1 || v > 15)
				return bench_usage_error(
				    "bad --rounds '%s' (1-15)", optarg);
			o.rounds = (int)v;
			break;
		}
		case 'h': bench_usage(stdout); return 0;
		default: return bench_usage_error("bad option");
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
		return bench_usage_error("no benchmark case matches '%s'",
		                         o.only);
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
			bench_error("bench %s: %s", case_name(i),
			            rill_strerror(err));
			status = 1;
			continue;
		}
		print_row(&o, &row, printed++ == 0);
	}
	if (o.json)
		printf("%s]\n", printed ? "\n" : "");
	else {
		bench_relay_report(stdout);
		bench_http_report(stdout);
	}
	return status;
}
