/*
 * rill bench relay-tls: one forwarder between a TLS end and a plain end,
 * both directions, `rill relay` beside socat -b 131072, HAProxy (nbthread
 * 1, mode tcp) and stunnel4, one stream each, interleaved rounds, medians
 * (bench/tls_relay_ab.py is the same measurement as a script).
 *
 *   termination (TLS in, plain out):
 *       sender -> [helper: rill relay tcp -> tls+tcp] -> FORWARDER -> sink
 *   origination (plain in, TLS out):
 *       sender -> FORWARDER -> [helper: rill relay tls+tcp -> tcp] -> sink
 *
 * The helpers are rill relays (not measured). The sender is socat reading
 * /dev/zero through head, the sink socat writing /dev/null; it serves one
 * connection and exits, which ends the timing. Each forwarder is started
 * for one transfer and stopped after it: its CPU is what wait4() reports
 * (user + system, startup and handshake included).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define TR_DEFAULT_BYTES  (256ull << 20)
#define TR_DEFAULT_ROUNDS 3
#define TR_MAX_ROUNDS     15

enum { TR_RILL, TR_SOCAT, TR_HAPROXY, TR_STUNNEL, TR_KINDS };
static const char *const tr_names[TR_KINDS] = {"rill", "socat", "haproxy",
                                               "stunnel4"};

static struct {
	bool ran;
	int err;
	const char *skipped;
	char missing[96];
	int rounds;
	uint64_t bytes;
	/* [origination?][kind][round]: MB/s and CPU ms/GiB */
	double mbs[2][TR_KINDS][TR_MAX_ROUNDS];
	double cpu[2][TR_KINDS][TR_MAX_ROUNDS];
} tr;

/* Writes the forwarder's argv for kind into argv (strings in buf). */
static void tr_argv(int kind, bool term, int lport, int cport, const char *dir,
                    char **argv, char (*buf)[640])
{
	int n = 0;
	if (kind == TR_RILL) {
		argv[n++] = "/proc/self/exe";
		argv[n++] = "relay";
		if (term) {
			snprintf(buf[0], sizeof buf[0],
			         "tls+tcp://127.0.0.1:%d?cert=%s/c.pem&key=%s/"
			         "k.pem",
			         lport, dir, dir);
			snprintf(buf[1], sizeof buf[1], "tcp://127.0.0.1:%d",
			         cport);
		} else {
			snprintf(buf[0], sizeof buf[0], "tcp://127.0.0.1:%d",
			         lport);
			snprintf(buf[1], sizeof buf[1],
			         "tls+tcp://127.0.0.1:%d?verify=none", cport);
		}
		argv[n++] = buf[0];
		argv[n++] = buf[1];
	} else if (kind == TR_SOCAT) {
		argv[n++] = "socat";
		argv[n++] = "-b";
		argv[n++] = "131072";
		if (term) {
			snprintf(buf[0], sizeof buf[0],
			         "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,"
			         "cert=%s/c.pem,key=%s/k.pem,verify=0",
			         lport, dir, dir);
			snprintf(buf[1], sizeof buf[1], "TCP:127.0.0.1:%d",
			         cport);
		} else {
			snprintf(buf[0], sizeof buf[0],
			         "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr",
			         lport);
			snprintf(buf[1], sizeof buf[1],
			         "OPENSSL:127.0.0.1:%d,verify=0", cport);
		}
		argv[n++] = buf[0];
		argv[n++] = buf[1];
	} else {
		/* Config files written by tr_configs. */
		snprintf(buf[0], sizeof buf[0], "%s/%s-%s.conf", dir,
		         tr_names[kind], term ? "term" : "orig");
		if (kind == TR_HAPROXY) {
			argv[n++] = "haproxy";
			argv[n++] = "-db";
			argv[n++] = "-f";
		} else {
			argv[n++] = "stunnel4";
		}
		argv[n++] = buf[0];
	}
	argv[n] = NULL;
}

/* HAProxy's and stunnel's configuration for one transfer. */
static int tr_configs(int kind, bool term, int lport, int cport,
                      const char *dir)
{
	char path[700], conf[2048];
	snprintf(path, sizeof path, "%s/%s-%s.conf", dir, tr_names[kind],
	         term ? "term" : "orig");
	char ssl[700] = "";
	if (kind == TR_HAPROXY) {
		if (term)
			snprintf(ssl, sizeof ssl, " ssl crt %s/ck.pem", dir);
		snprintf(conf, sizeof conf,
		         "global\n  nbthread 1\n  maxconn 100\n"
		         "defaults\n  mode tcp\n  timeout connect 5s\n"
		         "  timeout client 60s\n  timeout server 60s\n"
		         "frontend f\n  bind 127.0.0.1:%d%s\n"
		         "  default_backend b\nbackend b\n"
		         "  server s 127.0.0.1:%d%s\n",
		         lport, ssl, cport, term ? "" : " ssl verify none");
	} else if (kind == TR_STUNNEL) {
		snprintf(conf, sizeof conf,
		         "foreground = yes\npid =\n%s[t]\n"
		         "accept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
		         "cert = %s/c.pem\nkey = %s/k.pem\n",
		         term ? "" : "client = yes\n", lport, cport, dir, dir);
	} else {
		return 0;
	}
	return bench_write_text(path, conf);
}

/* Waits up to max_s for pid to exit; true when it did. */
static bool tr_wait(pid_t pid, double max_s)
{
	for (double t0 = bench_now(); bench_now() - t0 < max_s;) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return true;
		usleep(2000);
	}
	return false;
}

/* One transfer through kind; records MB/s and CPU s/GiB for round. */
static int tr_one(int kind, bool term, const char *dir, int round)
{
	int sink_port = bench_free_port(), fwd_port = bench_free_port(),
	    helper_port = bench_free_port();
	char sink_addr[96], entry[160];
	snprintf(sink_addr, sizeof sink_addr,
	         "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr", sink_port);
	char *sink_argv[] = {"socat",          "-u", "-b", "131072", sink_addr,
	                     "OPEN:/dev/null", NULL};
	pid_t sink = bench_spawn(sink_argv);
	char hb[2][640];
	char *helper_argv[] = {"/proc/self/exe", "relay", hb[0], hb[1], NULL};
	int target = term ? sink_port : helper_port;
	if (term) {
		snprintf(hb[0], sizeof hb[0], "tcp://127.0.0.1:%d",
		         helper_port);
		snprintf(hb[1], sizeof hb[1],
		         "tls+tcp://127.0.0.1:%d?verify=none", fwd_port);
		snprintf(entry, sizeof entry, "%d", helper_port);
	} else {
		snprintf(hb[0], sizeof hb[0],
		         "tls+tcp://127.0.0.1:%d?cert=%s/c.pem&key=%s/k.pem",
		         helper_port, dir, dir);
		snprintf(hb[1], sizeof hb[1], "tcp://127.0.0.1:%d", sink_port);
		snprintf(entry, sizeof entry, "%d", fwd_port);
	}
	int err =
	    tr_configs(kind, term, fwd_port, term ? sink_port : target, dir);
	char fb[2][640];
	char *fwd_argv[8];
	tr_argv(kind, term, fwd_port, term ? sink_port : target, dir, fwd_argv,
	        fb);
	pid_t fwd = err == 0 ? bench_spawn(fwd_argv) : -1;
	pid_t helper = err == 0 ? bench_spawn(helper_argv) : -1;
	/* Listening, checked in /proc: a probe connection would be relayed
	 * to the sink, which serves one connection. */
	if (err == 0 && (!bench_wait_listen(fwd_port, fwd) ||
	                 !bench_wait_listen(helper_port, helper))) {
		fprintf(stderr,
		        "rill bench relay-tls: %s (%s) did not listen\n",
		        tr_names[kind], term ? "termination" : "origination");
		err = -EIO;
	}
	double t0 = bench_now(), dt = 0;
	if (err == 0) {
		char cmd[256];
		snprintf(cmd, sizeof cmd,
		         "head -c %llu /dev/zero | socat -u -b 131072 - "
		         "TCP:127.0.0.1:%s",
		         (unsigned long long)tr.bytes, entry);
		char *sh[] = {"sh", "-c", cmd, NULL};
		pid_t sender = bench_spawn(sh);
		if (!tr_wait(sender, 300) || !tr_wait(sink, 60)) {
			bench_stop(sender);
			err = -ETIMEDOUT;
		}
		dt = bench_now() - t0;
	}
	double cpu = 0;
	if (fwd > 0) {
		kill(fwd, SIGTERM);
		struct rusage ru;
		if (wait4(fwd, NULL, 0, &ru) == fwd)
			cpu = (double)ru.ru_utime.tv_sec +
			      (double)ru.ru_utime.tv_usec / 1e6 +
			      (double)ru.ru_stime.tv_sec +
			      (double)ru.ru_stime.tv_usec / 1e6;
	}
	bench_stop(helper);
	bench_stop(sink);
	if (err == 0) {
		int o = term ? 0 : 1;
		tr.mbs[o][kind][round] = (double)tr.bytes / dt / 1e6;
		tr.cpu[o][kind][round] =
		    cpu * 1e3 / ((double)tr.bytes / (double)(1ull << 30));
	}
	return err;
}

static void tr_run_all(const struct bench_opts *o)
{
	tr.ran = true;
	const char *progs[] = {"socat", "haproxy", "stunnel4", "openssl"};
	for (size_t i = 0; i < sizeof progs / sizeof *progs; i++)
		if (!bench_have(progs[i])) {
			snprintf(
			    tr.missing, sizeof tr.missing,
			    "%s is not installed (scripts/install-deps.sh)",
			    progs[i]);
			tr.skipped = tr.missing;
			return;
		}
	tr.rounds = o->rounds ? o->rounds : TR_DEFAULT_ROUNDS;
	tr.bytes = o->bytes_set ? o->bytes : TR_DEFAULT_BYTES;
	char dir[] = "/tmp/rill-bench-tls-relay-XXXXXX";
	if (mkdtemp(dir) == NULL) {
		tr.err = -errno;
		return;
	}
	chmod(dir, 0755); /* HAProxy and stunnel may drop to another user */
	tr.err = bench_make_cert(dir);
	/* Interleaved: every forwarder once per direction per round. */
	for (int r = 0; tr.err == 0 && r < tr.rounds; r++)
		for (int term = 1; tr.err == 0 && term >= 0; term--)
			for (int k = 0; tr.err == 0 && k < TR_KINDS; k++)
				tr.err = tr_one(k, term, dir, r);
	char rm[128];
	snprintf(rm, sizeof rm, "rm -rf %s", dir);
	if (system(rm) != 0)
		fprintf(stderr, "rill bench relay-tls: could not remove %s\n",
		        dir);
}

/* Cases: [origination?][metric: tput, cpu][peer 1..3]. */
#define TR_NCASES (2 * 2 * (TR_KINDS - 1))

const char *bench_tls_relay_case_name(size_t i)
{
	static char names[TR_NCASES][48];
	if (i >= TR_NCASES)
		return NULL;
	size_t dir = i / 6, metric = (i / 3) % 2, peer = 1 + i % 3;
	snprintf(names[i], sizeof names[i], "relay-tls-%s%s-vs-%s",
	         metric ? "cpu-" : "", dir ? "orig" : "term", tr_names[peer]);
	return names[i];
}

int bench_tls_relay_case(size_t i, const struct bench_opts *o,
                         struct bench_row *row)
{
	if (!tr.ran)
		tr_run_all(o);
	if (tr.skipped != NULL) {
		row->skipped = tr.skipped;
		return BENCH_SKIPPED;
	}
	if (tr.err != 0)
		return tr.err;
	size_t dir = i / 6, metric = (i / 3) % 2, peer = 1 + i % 3;
	double(*v)[TR_MAX_ROUNDS] = metric ? tr.cpu[dir] : tr.mbs[dir];
	row->name = dir ? "tls origination" : "tls termination";
	row->metric = metric ? "CPU" : "throughput";
	row->unit = metric ? "ms/GiB" : NULL;
	row->lower_better = metric != 0;
	row->baseline = tr_names[peer];
	row->value = bench_median_of(v[TR_RILL], tr.rounds);
	row->base_value = bench_median_of(v[peer], tr.rounds);
	return 0;
}
