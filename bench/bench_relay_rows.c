/*
 * rill bench relay: the rows (`rill relay` with its defaults beside each
 * peer, per metric) and, after the table, the report with every
 * forwarder's medians, the load of the machine and the acceptance goals
 * of the relay checked against the same run.
 *
 * Every ratio reads "higher is better for rill": throughput is
 * rill/peer, CPU per GiB and added round trip are peer/rill.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_relay.h"

#define BR_DEFAULT_BYTES  (512ull << 20)
#define BR_DEFAULT_ROUNDS 5

enum bench_relay_metric { BR_TPUT, BR_CPU, BR_RTT, BR_TPUT4 };

static const struct {
	const char *name;
	enum bench_relay_metric metric;
	enum bench_relay_kind base;
} bench_relay_cases[] = {
    {"relay-vs-socat", BR_TPUT, BR_SOCAT},
    {"relay-vs-haproxy", BR_TPUT, BR_HAPROXY},
    {"relay-vs-fwd-threads", BR_TPUT, BR_FLOOR},
    {"relay-vs-copy", BR_TPUT, BR_COPY},
    {"relay-vs-untuned-splice", BR_TPUT, BR_UNTUNED},
    {"relay-vs-splice-threads", BR_TPUT, BR_SFLOOR},
    {"relay-vs-direct", BR_TPUT, BR_DIRECT},
    {"relay-vs-socat-8k", BR_TPUT, BR_SOCAT8K},
    {"relay-cpu-vs-socat", BR_CPU, BR_SOCAT},
    {"relay-cpu-vs-haproxy", BR_CPU, BR_HAPROXY},
    {"relay-cpu-vs-fwd-threads", BR_CPU, BR_FLOOR},
    {"relay-cpu-vs-copy", BR_CPU, BR_COPY},
    {"relay-cpu-vs-untuned-splice", BR_CPU, BR_UNTUNED},
    {"relay-cpu-vs-splice-threads", BR_CPU, BR_SFLOOR},
    {"relay-rtt-vs-socat", BR_RTT, BR_SOCAT},
    {"relay-rtt-vs-haproxy", BR_RTT, BR_HAPROXY},
    {"relay-rtt-vs-fwd-threads", BR_RTT, BR_FLOOR},
    {"relay-4x-vs-socat", BR_TPUT4, BR_SOCAT},
    {"relay-4x-vs-haproxy", BR_TPUT4, BR_HAPROXY},
    {"relay-4x-vs-fwd-threads", BR_TPUT4, BR_FLOOR},
};
#define BR_NCASES (sizeof bench_relay_cases / sizeof bench_relay_cases[0])

static struct bench_relay_run bench_relay_run;
static int bench_relay_err;
static unsigned bench_relay_tried;

static unsigned bench_relay_case_wants(size_t i)
{
	/* Direct TCP always: the added round trips need it, and the table
	 * shows it beside every forwarder. */
	return 1u << BR_RILL | 1u << bench_relay_cases[i].base |
	       1u << BR_DIRECT;
}

/* Measures what every selected relay row needs, once, on the first. */
static int bench_relay_measure(const struct bench_opts *o)
{
	unsigned want = 0;
	for (size_t i = 0; i < BR_NCASES; i++)
		if (o->only == NULL ||
		    strstr(bench_relay_cases[i].name, o->only))
			want |= bench_relay_case_wants(i);
	for (int k = 0; k < BR_KINDS; k++)
		if (bench_relay_fwd_missing((enum bench_relay_kind)k) != NULL)
			want &= ~(1u << k);
	want &= ~bench_relay_tried;
	if (bench_relay_err != 0 || want == 0)
		return bench_relay_err;
	bench_relay_tried |= want;
	uint64_t bytes = o->bytes_set ? o->bytes : BR_DEFAULT_BYTES;
	int rounds = o->rounds > 0 ? o->rounds : BR_DEFAULT_ROUNDS;
	return bench_relay_err =
	           bench_relay_run_all(&bench_relay_run, want, bytes, rounds);
}

static double bench_relay_added(enum bench_relay_kind k)
{
	double a = bench_relay_run.res[k].rtt_us -
	           bench_relay_run.res[BR_DIRECT].rtt_us;
	return a > 0.01 ? a : 0.01; /* noise can make it <= 0 */
}

static double bench_relay_value(enum bench_relay_metric m,
                                enum bench_relay_kind k)
{
	const struct bench_relay_result *r = &bench_relay_run.res[k];
	switch (m) {
	case BR_TPUT: return r->mbs;
	case BR_CPU: return r->cpu_gib * 1000.0;
	case BR_RTT: return bench_relay_added(k);
	default: return r->mbs4;
	}
}

static int bench_relay_case_run(size_t i, const struct bench_opts *o,
                                struct bench_row *row)
{
	static const char *const metric[] = {"throughput", "cpu", "rtt-added",
	                                     "4-streams"};
	static const char *const unit[] = {"MB/s", "ms/GiB", "us", "MB/s"};
	enum bench_relay_metric m = bench_relay_cases[i].metric;
	enum bench_relay_kind base = bench_relay_cases[i].base;
	row->name = "relay";
	row->metric = metric[m];
	row->unit = unit[m];
	row->baseline = bench_relay_names[base];
	row->lower_better = m == BR_CPU || m == BR_RTT;
	const char *missing = bench_relay_fwd_missing(base);
	int err = bench_relay_measure(o);
	if (err != 0)
		return err;
	if (missing != NULL) {
		row->skipped = missing;
		return BENCH_SKIPPED;
	}
	row->value = bench_relay_value(m, BR_RILL);
	row->base_value = bench_relay_value(m, base);
	return 0;
}

int bench_relay_case(size_t i, const struct bench_opts *o,
                     struct bench_row *row)
{
	return bench_relay_case_run(i, o, row);
}

const char *bench_relay_case_name(size_t i)
{
	return i < BR_NCASES ? bench_relay_cases[i].name : NULL;
}

/* ---------------------------------------------------------------------- */
/* The report */

/* The best peer for a metric (highest throughput, lowest CPU). */
static enum bench_relay_kind bench_relay_best_peer(enum bench_relay_metric m)
{
	enum bench_relay_kind best = BR_KINDS;
	for (int k = 0; k < BR_KINDS; k++) {
		if (!(BR_PEERS & (1u << k)) ||
		    !(bench_relay_run.measured & (1u << k)))
			continue;
		double v = bench_relay_value(m, (enum bench_relay_kind)k);
		if (best == BR_KINDS ||
		    (m == BR_CPU ? v < bench_relay_value(m, best)
		                 : v > bench_relay_value(m, best)))
			best = (enum bench_relay_kind)k;
	}
	return best;
}

static double bench_relay_peer_median_added(int *n)
{
	double v[BR_KINDS];
	*n = 0;
	for (int k = 0; k < BR_KINDS; k++)
		if ((BR_PEERS & (1u << k)) &&
		    (bench_relay_run.measured & (1u << k)))
			v[(*n)++] = bench_relay_added((enum bench_relay_kind)k);
	for (int i = 1; i < *n; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	if (*n == 0)
		return 0;
	return *n % 2 ? v[*n / 2] : (v[*n / 2 - 1] + v[*n / 2]) / 2;
}

static void bench_relay_report_table(FILE *out)
{
	fprintf(out, "\n| forwarder | 1 stream Gbit/s | CPU s/GiB | "
	             "endpoints' CPU s/GiB | RTT us | added RTT us | 4 streams "
	             "Gbit/s | threads busy / used (4 streams) |\n"
	             "|---|---|---|---|---|---|---|---|\n");
	for (int k = 0; k < BR_KINDS; k++) {
		if (!(bench_relay_run.measured & (1u << k)))
			continue;
		const struct bench_relay_result *r = &bench_relay_run.res[k];
		if (k == BR_DIRECT)
			fprintf(
			    out,
			    "| %s | %.2f | - | %.3f | %.1f | - | %.2f | - |\n",
			    bench_relay_names[k], r->mbs * 8 / 1000,
			    r->ends_gib, r->rtt_us, r->mbs4 * 8 / 1000);
		else
			fprintf(
			    out,
			    "| %s | %.2f | %.3f | %.3f | %.1f | %.1f | %.2f | "
			    "%d / %d |\n",
			    bench_relay_names[k], r->mbs * 8 / 1000, r->cpu_gib,
			    r->ends_gib, r->rtt_us,
			    bench_relay_run.measured & 1u << BR_DIRECT
			        ? r->rtt_us -
			              bench_relay_run.res[BR_DIRECT].rtt_us
			        : 0,
			    r->mbs4 * 8 / 1000, r->busy_threads, r->threads);
	}
}

static void bench_relay_report_goals(FILE *out)
{
	const struct bench_relay_result *me = &bench_relay_run.res[BR_RILL];
	enum bench_relay_kind bt = bench_relay_best_peer(BR_TPUT),
	                      bc = bench_relay_best_peer(BR_CPU);
	fprintf(out, "\nacceptance (issue 17), same run:\n");
	if (bt == BR_KINDS) {
		fprintf(out, "  no peer measured\n");
		return;
	}
	double rt = me->mbs / bench_relay_run.res[bt].mbs;
	fprintf(out,
	        "  throughput: %.2fx the best peer (%s); goal >= 1.3x: %s\n",
	        rt, bench_relay_names[bt], rt >= 1.3 ? "met" : "NOT met");
	if (bench_relay_run.res[bc].cpu_gib > 0) {
		double rc = me->cpu_gib / bench_relay_run.res[bc].cpu_gib;
		fprintf(out,
		        "  CPU per byte: %.2fx the best peer's (%s); goal <= "
		        "0.5x: %s\n",
		        rc, bench_relay_names[bc],
		        rc <= 0.5 ? "met" : "NOT met");
	} else {
		fprintf(out, "  CPU per byte: too little to measure (use more "
		             "--bytes)\n");
	}
	if (bench_relay_run.measured & 1u << BR_DIRECT) {
		int n = 0;
		double med = bench_relay_peer_median_added(&n);
		double ra = bench_relay_added(BR_RILL) / med;
		fprintf(out,
		        "  added RTT: %.1f us = %.2fx the median of %d peers "
		        "(%.1f us); goal <= 1.5x: %s\n",
		        bench_relay_added(BR_RILL), ra, n, med,
		        ra <= 1.5 ? "met" : "NOT met");
	}
	fprintf(out,
	        "  4 streams: the relay's CPU time spread over %d thread(s) "
	        "with >= 20%% each; goal >= 2: %s\n",
	        me->busy_threads, me->busy_threads >= 2 ? "met" : "NOT met");
}

void bench_relay_report(FILE *out)
{
	if (!(bench_relay_run.measured & 1u << BR_RILL))
		return;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	fprintf(out,
	        "\nrelay run: %d interleaved rounds, medians; %llu MiB per "
	        "run (socat 8 KiB: a quarter); %ld CPUs; load average %.2f "
	        "before, %.2f after\n",
	        bench_relay_run.rounds,
	        (unsigned long long)(bench_relay_run.bytes >> 20), cpus,
	        bench_relay_run.load_before, bench_relay_run.load_after);
	bench_relay_report_table(out);
	bench_relay_report_goals(out);
}
