/*
 * rill bench relay: `rill relay` forwarding one loopback TCP stream,
 * beside the same stream without a relay (direct) and through socat doing
 * the same forwarding, all measured in the same run.
 *
 * The endpoints are the same plain C code for every kind: a sender (this
 * thread, blocking socket, 128 KiB writes, then a write shutdown) and a
 * receiver thread (blocking socket, 256 KiB reads until EOF). Between
 * them:
 *   direct      nothing: the sender connects to the receiver
 *   splice      `rill relay` (this binary, a child process), the default
 *               path between plain sockets: splice(2), no user-space copy
 *   copy        `rill relay --no-splice`: the generic path (each buffer
 *               read is written as is, through user space)
 *   socat       `socat TCP-LISTEN:P,bind=127.0.0.1,fork,reuseaddr
 *               TCP:127.0.0.1:Q` (skipped when socat is not installed)
 * Throughput is the bytes sent over the time from the sender's connect to
 * the receiver's EOF. The kinds are interleaved over BR_ROUNDS rounds and
 * the best of each is kept (the machine may be shared). Each forwarder is
 * a separate process, as a user would run it: on a 2-core machine the
 * relayed kinds share the cores three ways, the direct one two ways.
 *
 * Unless --bytes is given, a run moves at most BR_DEFAULT_BYTES, so the
 * case takes a few seconds in a plain `rill bench`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define BR_WRITE         (128u * 1024u)
#define BR_READ          (256u * 1024u)
#define BR_ROUNDS        3
#define BR_DEFAULT_BYTES (256ull << 20)
#define BR_IO_TIMEOUT_S  30

enum br_kind { BR_DIRECT, BR_SPLICE, BR_COPY, BR_SOCAT, BR_KINDS };

static const char *const br_names[BR_KINDS] = {
    "direct", "rill relay", "rill relay --no-splice", "socat"};

/* The rows (the case names of BENCH_RELAY_CASES in bench.h). */
static const struct {
	const char *name;
	enum br_kind relay, base;
} br_cases[] = {
    {"relay-splice", BR_SPLICE, BR_DIRECT},
    {"relay-splice-vs-socat", BR_SPLICE, BR_SOCAT},
    {"relay-copy", BR_COPY, BR_DIRECT},
    {"relay-copy-vs-socat", BR_COPY, BR_SOCAT},
};

static struct {
	unsigned measured; /* bit per kind */
	int err;
	bool have_socat;
	double mbs[BR_KINDS];
} br;

/* ---------------------------------------------------------------------- */
/* Sockets */

static struct sockaddr_in br_addr(int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	return a;
}

static void br_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = BR_IO_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A listening socket on 127.0.0.1 (port 0: any); stores its port. */
static int br_listen(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = br_addr(0);
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(fd, 16) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

/* A loopback port nobody listens on now, for a forwarder to take. */
static int br_free_port(void)
{
	int port = 0;
	int fd = br_listen(&port);
	if (fd < 0)
		return fd;
	close(fd);
	return port;
}

/* ---------------------------------------------------------------------- */
/* Forwarder processes */

static bool br_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	if (path == NULL)
		path = "/usr/bin:/bin";
	while (*path != '\0') {
		size_t n = strcspn(path, ":");
		char full[PATH_MAX];
		if (n > 0 && n + strlen(prog) + 2 <= sizeof full) {
			snprintf(full, sizeof full, "%.*s/%s", (int)n, path,
			         prog);
			if (access(full, X_OK) == 0)
				return true;
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

/* Starts argv (execvp; exe overrides argv[0] as the file) with stdio on
 * /dev/null (stderr kept with RILL_BENCH_DEBUG set), and waits until it
 * listens on port. Returns the pid, or a negative error. */
static pid_t br_spawn(const char *exe, char *const argv[], int port,
                      bool splice)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		if (getenv("RILL_BENCH_DEBUG") == NULL)
			dup2(null, 2);
		if (splice)
			unsetenv("RILL_NO_SPLICE");
		execvp(exe != NULL ? exe : argv[0], argv);
		_exit(127);
	}
	if (!bench_wait_listen(port, pid)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -EIO;
	}
	return pid;
}

static void br_stop(pid_t pid)
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

/* ---------------------------------------------------------------------- */
/* One transfer */

struct br_sink {
	int lfd;
	uint64_t got;
	double t_end;
	int err;
};

static void *br_sink_main(void *arg)
{
	struct br_sink *k = arg;
	struct pollfd p = {.fd = k->lfd, .events = POLLIN};
	if (poll(&p, 1, BR_IO_TIMEOUT_S * 1000) != 1) {
		k->err = -ETIMEDOUT;
		return NULL;
	}
	int fd = accept4(k->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		k->err = -errno;
		return NULL;
	}
	br_timeouts(fd);
	uint8_t *buf = malloc(BR_READ);
	if (buf == NULL) {
		k->err = RILL_ENOMEM;
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, buf, BR_READ);
		if (n > 0) {
			k->got += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			k->err = -errno;
		break;
	}
	k->t_end = bench_now();
	free(buf);
	close(fd);
	return NULL;
}

/* Sends bytes to 127.0.0.1:port, received by the sink on lfd; MB/s or a
 * negative error. */
static double br_transfer(int lfd, int port, uint64_t bytes,
                          const uint8_t *chunk)
{
	struct br_sink k = {.lfd = lfd};
	pthread_t th;
	if (pthread_create(&th, NULL, br_sink_main, &k) != 0)
		return RILL_ENOMEM;
	int err = 0;
	double t0 = bench_now();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = br_addr(port);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
		err = -errno;
	if (err == 0)
		br_timeouts(fd);
	for (uint64_t sent = 0; err == 0 && sent < bytes;) {
		uint64_t left = bytes - sent;
		ssize_t n = send(fd, chunk, left < BR_WRITE ? left : BR_WRITE,
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
		shutdown(lfd, SHUT_RDWR); /* wakes the sink's accept */
	pthread_join(th, NULL);
	if (err == 0)
		err = k.err;
	if (err == 0 && k.got != bytes)
		err = -EIO;
	if (err != 0)
		return err;
	return (double)bytes / (k.t_end - t0) / 1e6;
}

/* ---------------------------------------------------------------------- */
/* The measurement every relay case shares */

/*
 * Measures the kinds in `want` (bit per kind) that are not measured yet;
 * the first row asks for every kind the selected rows need, so they are
 * all measured in one interleaved run.
 */
static int br_measure(const struct bench_opts *o, unsigned want)
{
	want &= ~br.measured;
	if (br.err != 0 || want == 0)
		return br.err;
	br.measured |= want;
	uint64_t bytes = o->bytes;
	if (!o->bytes_set && bytes > BR_DEFAULT_BYTES)
		bytes = BR_DEFAULT_BYTES;
	br.have_socat = br_in_path("socat");
	uint8_t *chunk = malloc(BR_WRITE);
	if (chunk == NULL)
		return br.err = RILL_ENOMEM;
	memset(chunk, 0xa5, BR_WRITE);
	int sport = 0;
	int lfd = br_listen(&sport);
	pid_t pids[BR_KINDS] = {0};
	int ports[BR_KINDS] = {[BR_DIRECT] = sport};
	int err = lfd < 0 ? lfd : 0;
	char exe[PATH_MAX];
	ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (err == 0 && el <= 0)
		err = -errno;
	if (err == 0)
		exe[el] = '\0';
	char target[64], lsn[BR_KINDS][128];
	snprintf(target, sizeof target, "tcp://127.0.0.1:%d", sport);
	if (!br.have_socat)
		want &= ~(1u << BR_SOCAT);
	for (int k = BR_SPLICE; k < BR_KINDS && err == 0; k++) {
		if (!(want & (1u << k)))
			continue;
		ports[k] = br_free_port();
		if (ports[k] < 0) {
			err = ports[k];
			break;
		}
		char sc[64];
		if (k == BR_SOCAT) {
			snprintf(lsn[k], sizeof lsn[k],
			         "TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr",
			         ports[k]);
			snprintf(sc, sizeof sc, "TCP:127.0.0.1:%d", sport);
			char *argv[] = {"socat", lsn[k], sc, NULL};
			pids[k] = br_spawn(NULL, argv, ports[k], false);
		} else {
			snprintf(lsn[k], sizeof lsn[k], "tcp://127.0.0.1:%d",
			         ports[k]);
			char *argv[7];
			int n = 0;
			argv[n++] = "rill";
			argv[n++] = "relay";
			argv[n++] = "--quiet";
			if (k == BR_COPY)
				argv[n++] = "--no-splice";
			argv[n++] = lsn[k];
			argv[n++] = target;
			argv[n] = NULL;
			pids[k] = br_spawn(exe, argv, ports[k], k == BR_SPLICE);
		}
		if (pids[k] < 0) {
			cli_error("bench relay: %s did not start listening on "
			          "127.0.0.1:%d (set RILL_BENCH_DEBUG=1 to see "
			          "why)",
			          br_names[k], ports[k]);
			err = pids[k];
			pids[k] = 0;
		}
	}
	for (int r = 0; r < BR_ROUNDS && err == 0; r++) {
		for (int k = 0; k < BR_KINDS && err == 0; k++) {
			if (!(want & (1u << k)))
				continue;
			double v = br_transfer(lfd, ports[k], bytes, chunk);
			if (v < 0) {
				err = (int)v;
				cli_error(
				    "bench relay: transfer through %s: %s",
				    br_names[k], rill_strerror(err));
			} else if (v > br.mbs[k]) {
				br.mbs[k] = v;
			}
		}
	}
	for (int k = 0; k < BR_KINDS; k++)
		br_stop(pids[k]);
	if (lfd >= 0)
		close(lfd);
	free(chunk);
	return br.err = err;
}

static int br_row(const struct bench_opts *o, struct bench_row *row,
                  enum br_kind relay, enum br_kind base)
{
	row->name = relay == BR_SPLICE ? "relay-splice" : "relay-copy";
	row->metric = "throughput";
	row->baseline = base == BR_DIRECT ? "direct tcp" : "socat";
	unsigned want = 1u << relay | 1u << base;
	for (size_t i = 0; i < sizeof br_cases / sizeof br_cases[0]; i++)
		if (o->only == NULL || strstr(br_cases[i].name, o->only))
			want |=
			    1u << br_cases[i].relay | 1u << br_cases[i].base;
	int err = br_measure(o, want);
	if (err != 0)
		return err;
	if (base == BR_SOCAT && !br.have_socat) {
		row->skipped = "socat is not installed";
		return BENCH_SKIPPED;
	}
	row->value = br.mbs[relay];
	row->base_value = br.mbs[base];
	return 0;
}

int bench_relay_splice(const struct bench_opts *o, struct bench_row *row)
{
	return br_row(o, row, BR_SPLICE, BR_DIRECT);
}

int bench_relay_splice_socat(const struct bench_opts *o, struct bench_row *row)
{
	return br_row(o, row, BR_SPLICE, BR_SOCAT);
}

int bench_relay_copy(const struct bench_opts *o, struct bench_row *row)
{
	return br_row(o, row, BR_COPY, BR_DIRECT);
}

int bench_relay_copy_socat(const struct bench_opts *o, struct bench_row *row)
{
	return br_row(o, row, BR_COPY, BR_SOCAT);
}
