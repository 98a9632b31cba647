/*
 * rill bench http: `rill http serve --threads 1` beside nginx (one
 * worker, sendfile on) and h2o (one thread), serving the same files from
 * one document root, measured by wrk -t1 in interleaved rounds of one
 * run. Columns: requests per second, the 99th percentile of latency, and
 * the server's own CPU per request (user + system ticks of its process
 * from /proc, divided by the requests wrk completed).
 *
 * Before anything is measured, every server must answer every row's URL
 * with a 200 and the file's full size (curl): nginx and h2o started as
 * root serve from workers running as nobody, and an unreadable document
 * root would otherwise be measured as a stream of fast 403s.
 *
 * The cases print, per row, rill's CPU per request against each peer's
 * (lower is better); the report after the table has every column.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define BH_DEFAULT_ROUNDS 3
#define BH_SECONDS        "3"
#define BH_MAX_ROUNDS     15

enum { BH_RILL, BH_NGINX, BH_H2O, BH_SERVERS };
static const char *const bh_names[BH_SERVERS] = {"rill", "nginx", "h2o"};

static const struct bh_row {
	const char *name;
	const char *file;
	uint64_t size;
	const char *conns;
	bool close; /* Connection: close on every request */
	bool tls;
} bh_rows[] = {
    {"612B keep-alive", "s.html", 612, "50", false, false},
    {"1 MiB", "m.bin", 1u << 20, "10", false, false},
    {"64 MiB", "l.bin", 64u << 20, "2", false, false},
    {"612B close", "s.html", 612, "50", true, false},
    {"https 612B", "s.html", 612, "50", false, true},
    {"https 1 MiB", "m.bin", 1u << 20, "10", false, true},
};
#define BH_NROWS (sizeof bh_rows / sizeof bh_rows[0])

struct bh_result {
	double rps[BH_MAX_ROUNDS];
	double p99_us[BH_MAX_ROUNDS];
	double cpu_us[BH_MAX_ROUNDS];
	int n;
};

static struct {
	bool ran;
	int err;
	const char *skipped;
	char missing[128];
	int rounds;
	struct bh_result r[BH_NROWS][BH_SERVERS];
} bh;

struct bh_server {
	pid_t pid[2]; /* plain, TLS (nginx and h2o: one process for both) */
	int port[2];
};

int bench_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

bool bench_have(const char *prog)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

/* Runs argv with stdout into out (NUL-terminated); the exit status. */
int bench_run_output(char *const argv[], char *out, size_t cap)
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		close(p[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	size_t len = 0;
	ssize_t n;
	while ((n = read(p[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

pid_t bench_spawn(char *const argv[])
{
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

void bench_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static uint64_t bh_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15 (utime, stime), counted after the command
	 * name's closing parenthesis. */
	char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (p == NULL || sscanf(p + 2,
	                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
	                        "%*u %llu %llu",
	                        &ut, &st) != 2)
		return 0;
	return ut + st;
}

int bench_write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -errno;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -errno;
}

int bench_make_cert(const char *dir)
{
	char c[600], k[600], ck[600], out[64];
	snprintf(c, sizeof c, "%s/c.pem", dir);
	snprintf(k, sizeof k, "%s/k.pem", dir);
	snprintf(ck, sizeof ck, "%s/ck.pem", dir);
	char *gen[] = {"openssl",
	               "req",
	               "-x509",
	               "-newkey",
	               "ec",
	               "-pkeyopt",
	               "ec_paramgen_curve:P-256",
	               "-nodes",
	               "-keyout",
	               k,
	               "-out",
	               c,
	               "-days",
	               "1",
	               "-subj",
	               "/CN=localhost",
	               NULL};
	if (bench_run_output(gen, out, sizeof out) != 0)
		return -EIO;
	char cmd[2000];
	snprintf(cmd, sizeof cmd, "cat %s %s > %s", c, k, ck);
	if (system(cmd) != 0)
		return -EIO;
	/* Read by servers that drop to another user (nobody). */
	chmod(k, 0644);
	chmod(ck, 0644);
	return 0;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double bench_median_of(const double *v, int n)
{
	double t[BENCH_MAX_SAMPLES];
	if (n <= 0 || n > BENCH_MAX_SAMPLES)
		return 0;
	memcpy(t, v, (size_t)n * sizeof *t);
	qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* The document root: world-readable, as nginx's and h2o's workers run
 * as nobody when started as root. */
static int bh_docroot(const char *dir, char *www, size_t cap)
{
	snprintf(www, cap, "%s/www", dir);
	if (chmod(dir, 0755) != 0 || mkdir(www, 0755) != 0)
		return -errno;
	uint8_t *b = malloc(1u << 20);
	if (b == NULL)
		return RILL_ENOMEM;
	for (size_t i = 0; i < (1u << 20); i++)
		b[i] = (uint8_t)('a' + (i * 7 + i / 61) % 26);
	static const struct {
		const char *name;
		size_t mib, bytes;
	} files[] = {{"s.html", 0, 612}, {"m.bin", 1, 0}, {"l.bin", 64, 0}};
	int err = 0;
	for (size_t i = 0; i < 3 && err == 0; i++) {
		char path[800];
		snprintf(path, sizeof path, "%s/%s", www, files[i].name);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0) {
			err = -errno;
			break;
		}
		size_t n = files[i].mib ? files[i].mib : 1;
		for (size_t k = 0; k < n && err == 0; k++) {
			size_t len = files[i].mib ? (1u << 20) : files[i].bytes;
			if (write(fd, b, len) != (ssize_t)len)
				err = -EIO;
		}
		close(fd);
	}
	free(b);
	return err;
}

static int bh_configs(const char *dir, const char *www,
                      const struct bh_server *s)
{
	char conf[4096], path[600];
	snprintf(
	    conf, sizeof conf,
	    "daemon off;\nmaster_process off;\nworker_processes 1;\n"
	    "error_log %s/nginx-error.log warn;\npid %s/nginx.pid;\n"
	    "events { worker_connections 1024; }\n"
	    "http {\n access_log off;\n sendfile on;\n tcp_nopush on;\n"
	    " tcp_nodelay on;\n keepalive_requests 1000000;\n"
	    " client_body_temp_path %s/nb;\n proxy_temp_path %s/np;\n"
	    " fastcgi_temp_path %s/nf;\n uwsgi_temp_path %s/nu;\n"
	    " scgi_temp_path %s/ns;\n"
	    " types { text/html html; application/octet-stream bin; }\n"
	    " server {\n  listen 127.0.0.1:%d;\n"
	    "  listen 127.0.0.1:%d ssl;\n"
	    "  ssl_certificate %s/c.pem;\n  ssl_certificate_key %s/k.pem;\n"
	    "  root %s;\n }\n}\n",
	    dir, dir, dir, dir, dir, dir, dir, s[BH_NGINX].port[0],
	    s[BH_NGINX].port[1], dir, dir, www);
	snprintf(path, sizeof path, "%s/nginx.conf", dir);
	int err = bench_write_text(path, conf);
	if (err != 0)
		return err;
	snprintf(conf, sizeof conf,
	         "num-threads: 1\nerror-log: %s/h2o-error.log\n%s"
	         "listen:\n  host: 127.0.0.1\n  port: %d\n"
	         "listen:\n  host: 127.0.0.1\n  port: %d\n  ssl:\n"
	         "    certificate-file: %s/c.pem\n    key-file: %s/k.pem\n"
	         "    ocsp-update-interval: 0\n"
	         "hosts:\n  default:\n    paths:\n      /:\n"
	         "        file.dir: %s\n",
	         dir, geteuid() == 0 ? "user: nobody\n" : "", s[BH_H2O].port[0],
	         s[BH_H2O].port[1], dir, dir, www);
	snprintf(path, sizeof path, "%s/h2o.conf", dir);
	return bench_write_text(path, conf);
}

static int bh_start(const char *dir, const char *www, struct bh_server *s)
{
	char c[600], k[600], tls[1400], plain[64], cfg[600];
	snprintf(c, sizeof c, "%s/c.pem", dir);
	snprintf(k, sizeof k, "%s/k.pem", dir);
	int err = bench_make_cert(dir);
	if (err != 0)
		return err;
	for (int i = 0; i < BH_SERVERS; i++)
		for (int j = 0; j < 2; j++)
			s[i].port[j] = bench_free_port();
	err = bh_configs(dir, www, s);
	if (err != 0)
		return err;
	snprintf(plain, sizeof plain, "tcp://127.0.0.1:%d", s[BH_RILL].port[0]);
	snprintf(tls, sizeof tls, "tls+tcp://127.0.0.1:%d?cert=%s&key=%s",
	         s[BH_RILL].port[1], c, k);
	char *r0[] = {
	    "/proc/self/exe", "http", "serve", "-q", "--threads", "1", plain,
	    (char *)www,      NULL};
	char *r1[] = {
	    "/proc/self/exe", "http", "serve", "-q", "--threads", "1", tls,
	    (char *)www,      NULL};
	s[BH_RILL].pid[0] = bench_spawn(r0);
	s[BH_RILL].pid[1] = bench_spawn(r1);
	snprintf(cfg, sizeof cfg, "%s/nginx.conf", dir);
	char *ng[] = {"nginx", "-p", (char *)dir, "-c", cfg, NULL};
	s[BH_NGINX].pid[0] = s[BH_NGINX].pid[1] = bench_spawn(ng);
	snprintf(cfg, sizeof cfg, "%s/h2o.conf", dir);
	char *h2[] = {"h2o", "-c", cfg, NULL};
	s[BH_H2O].pid[0] = s[BH_H2O].pid[1] = bench_spawn(h2);
	for (int i = 0; i < BH_SERVERS; i++)
		for (int j = 0; j < 2; j++)
			if (!bench_wait_listen(s[i].port[j], s[i].pid[j])) {
				fprintf(stderr,
				        "rill bench http: %s does not listen "
				        "on port %d (see %s)\n",
				        bh_names[i], s[i].port[j], dir);
				return -EIO;
			}
	return 0;
}

static void bh_url(const struct bh_server *s, const struct bh_row *r, char *url,
                   size_t cap)
{
	snprintf(url, cap, "%s://127.0.0.1:%d/%s", r->tls ? "https" : "http",
	         s->port[r->tls ? 1 : 0], r->file);
}

/* Every server answers every row with a 200 and the full size. */
static int bh_check(const struct bh_server *s)
{
	for (size_t i = 0; i < BH_NROWS; i++) {
		for (int k = 0; k < BH_SERVERS; k++) {
			char url[128], out[256], want[64];
			bh_url(&s[k], &bh_rows[i], url, sizeof url);
			char *argv[] = {"curl", "-sk",
			                "-o",   "/dev/null",
			                "-w",   "%{http_code} %{size_download}",
			                url,    NULL};
			bench_run_output(argv, out, sizeof out);
			snprintf(want, sizeof want, "200 %llu",
			         (unsigned long long)bh_rows[i].size);
			if (strcmp(out, want) != 0) {
				fprintf(stderr,
				        "rill bench http: %s answers %s with "
				        "\"%s\", not \"%s\"\n",
				        bh_names[k], url, out, want);
				return -EPROTO;
			}
		}
	}
	return 0;
}

/* A wrk latency figure ("812.00us", "1.20ms", "2.01s") in µs. */
static double bh_us(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (strncmp(end, "us", 2) == 0)
		return v;
	if (strncmp(end, "ms", 2) == 0)
		return v * 1e3;
	if (*end == 's')
		return v * 1e6;
	if (*end == 'm')
		return v * 60e6;
	return v;
}

/* One wrk run of row r against server k: appends to the results. */
static int bh_measure(const struct bh_server *s, size_t r, int k)
{
	char url[128], out[8192];
	bh_url(&s[k], &bh_rows[r], url, sizeof url);
	char conns[16];
	snprintf(conns, sizeof conns, "-c%s", bh_rows[r].conns);
	char *argv[] = {"wrk",       "-t1", conns, "-d" BH_SECONDS "s",
	                "--latency", url,   NULL,  NULL,
	                NULL};
	if (bh_rows[r].close) {
		argv[6] = "-H";
		argv[7] = "Connection: close";
	}
	pid_t pid = s[k].pid[bh_rows[r].tls ? 1 : 0];
	uint64_t t0 = bh_ticks(pid);
	if (bench_run_output(argv, out, sizeof out) != 0)
		return -EIO;
	uint64_t t1 = bh_ticks(pid);
	const char *p = strstr(out, " requests in ");
	const char *q = strstr(out, "Requests/sec:");
	const char *l = strstr(out, " 99% ");
	if (p == NULL || q == NULL || l == NULL)
		return -EPROTO;
	while (p > out && p[-1] != '\n' && p[-1] != ' ')
		p--;
	double reqs = strtod(p, NULL);
	if (reqs <= 0)
		return -EPROTO;
	struct bh_result *res = &bh.r[r][k];
	res->rps[res->n] = strtod(q + 13, NULL);
	res->p99_us[res->n] = bh_us(l + 5 + strspn(l + 5, " "));
	res->cpu_us[res->n] =
	    (double)(t1 - t0) * 1e6 / (double)sysconf(_SC_CLK_TCK) / reqs;
	res->n++;
	return 0;
}

static void bh_run_all(const struct bench_opts *o)
{
	bh.ran = true;
	const char *progs[] = {"nginx", "h2o", "wrk", "curl", "openssl"};
	for (size_t i = 0; i < sizeof progs / sizeof *progs; i++)
		if (!bench_have(progs[i])) {
			snprintf(
			    bh.missing, sizeof bh.missing,
			    "%s is not installed (scripts/install-deps.sh)",
			    progs[i]);
			bh.skipped = bh.missing;
			return;
		}
	bh.rounds = o->rounds ? o->rounds : BH_DEFAULT_ROUNDS;
	char dir[] = "/tmp/rill-bench-http-XXXXXX", www[700];
	if (mkdtemp(dir) == NULL) {
		bh.err = -errno;
		return;
	}
	struct bh_server s[BH_SERVERS];
	memset(s, 0, sizeof s);
	bh.err = bh_docroot(dir, www, sizeof www);
	if (bh.err == 0)
		bh.err = bh_start(dir, www, s);
	if (bh.err == 0)
		bh.err = bh_check(s);
	/* Interleaved: every server once per row per round, so that the
	 * load of the shared machine falls on all of them alike. */
	for (int round = 0; bh.err == 0 && round < bh.rounds; round++)
		for (size_t r = 0; bh.err == 0 && r < BH_NROWS; r++)
			for (int k = 0; bh.err == 0 && k < BH_SERVERS; k++)
				bh.err = bh_measure(s, r, k);
	for (int i = 0; i < BH_SERVERS; i++) {
		bench_stop(s[i].pid[0]);
		if (s[i].pid[1] != s[i].pid[0])
			bench_stop(s[i].pid[1]);
	}
	char rm[128];
	snprintf(rm, sizeof rm, "rm -rf %s", dir);
	if (system(rm) != 0)
		fprintf(stderr, "rill bench http: could not remove %s\n", dir);
}

const char *bench_http_case_name(size_t i)
{
	static char names[BH_NROWS * 2][48];
	if (i >= BH_NROWS * 2)
		return NULL;
	const struct bh_row *r = &bh_rows[i / 2];
	char *n = names[i];
	snprintf(n, sizeof names[i], "%s-%s-cpu-vs-%s",
	         r->tls ? "https" : "http", r->name + (r->tls ? 6 : 0),
	         i % 2 ? "h2o" : "nginx");
	for (char *p = n; *p; p++)
		if (*p == ' ')
			*p = '-';
	return n;
}

int bench_http_case(size_t i, const struct bench_opts *o, struct bench_row *row)
{
	if (!bh.ran)
		bh_run_all(o);
	if (bh.skipped != NULL) {
		row->skipped = bh.skipped;
		return BENCH_SKIPPED;
	}
	if (bh.err != 0)
		return bh.err;
	size_t r = i / 2;
	int peer = i % 2 ? BH_H2O : BH_NGINX;
	row->name = bh_rows[r].tls ? "https" : "http";
	row->metric = bh_rows[r].name;
	row->unit = "us/req";
	row->lower_better = true;
	row->baseline = peer == BH_H2O ? "h2o CPU" : "nginx CPU";
	row->value =
	    bench_median_of(bh.r[r][BH_RILL].cpu_us, bh.r[r][BH_RILL].n);
	row->base_value =
	    bench_median_of(bh.r[r][peer].cpu_us, bh.r[r][peer].n);
	return 0;
}

void bench_http_report(FILE *out)
{
	if (!bh.ran || bh.err != 0 || bh.skipped != NULL)
		return;
	fprintf(out,
	        "\nrill bench http: wrk -t1 -d%ss, medians of %d interleaved "
	        "rounds; CPU = the server process's user+system per request\n",
	        BH_SECONDS, bh.rounds);
	fprintf(out, "%-16s %-6s %12s %12s %12s\n", "row", "server", "req/s",
	        "p99 us", "CPU us/req");
	for (size_t r = 0; r < BH_NROWS; r++)
		for (int k = 0; k < BH_SERVERS; k++) {
			const struct bh_result *x = &bh.r[r][k];
			fprintf(out, "%-16s %-6s %12.0f %12.0f %12.2f\n",
			        k == 0 ? bh_rows[r].name : "", bh_names[k],
			        bench_median_of(x->rps, x->n),
			        bench_median_of(x->p99_us, x->n),
			        bench_median_of(x->cpu_us, x->n));
		}
}
