/*
 * bench/relay_ab_stream: one TCP stream through a forwarder, and who paid
 * for it. Used by bench/relay_ab.py (interleaved A/B runs of forwarder
 * settings).
 *
 *   relay_ab_stream FWD_PORT SINK_PORT MIB [FWD_PID]
 *
 * Listens on 127.0.0.1:SINK_PORT (the forwarder's target), connects to
 * 127.0.0.1:FWD_PORT, sends MIB MiB in 128 KiB writes, and a sink thread
 * reads them in 256 KiB reads until EOF. Prints one line: throughput, the
 * forwarder's CPU seconds per GiB (user + system of FWD_PID from
 * /proc/PID/stat, its exited threads included), the sender's and the
 * sink's own CPU per GiB (RUSAGE_THREAD) with their voluntary and
 * involuntary context switches, and how idle the machine was meanwhile.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"

#define AB_WRITE (128 * 1024)
#define AB_READ  (256 * 1024)

struct ab_cpu {
	double s;
	long vcsw, ivcsw;
};

static struct ab_cpu ab_thread_cpu(void)
{
	struct rusage r;
	getrusage(RUSAGE_THREAD, &r);
	struct ab_cpu c = {
	    .s = (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
	         (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6,
	    .vcsw = r.ru_nvcsw,
	    .ivcsw = r.ru_nivcsw};
	return c;
}

static struct ab_cpu ab_diff(struct ab_cpu a, struct ab_cpu b)
{
	struct ab_cpu d = {b.s - a.s, b.vcsw - a.vcsw, b.ivcsw - a.ivcsw};
	return d;
}

/* utime + stime + cutime + cstime of pid, in seconds (0 if unknown). */
static double ab_pid_cpu(int pid)
{
	if (pid <= 0)
		return 0;
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long long v[4];
	/* After ") ": fields 3..13, then utime stime cutime cstime. */
	if (p == NULL || sscanf(p + 2,
	                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	                        "%llu %llu %llu %llu",
	                        &v[0], &v[1], &v[2], &v[3]) != 4)
		return 0;
	return (double)(v[0] + v[1] + v[2] + v[3]) /
	       (double)sysconf(_SC_CLK_TCK);
}

/* Busy and idle jiffies of the whole machine. */
static void ab_machine(long long *busy, long long *idle)
{
	long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	if (f != NULL) {
		if (fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld",
		           &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
		           &v[7]) != 8)
			memset(v, 0, sizeof v);
		fclose(f);
	}
	*idle = v[3] + v[4];
	*busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

static int ab_lfd;
static struct ab_cpu ab_sink_cpu;
static long long ab_got;

static void *ab_sink(void *arg)
{
	(void)arg;
	int fd = accept(ab_lfd, NULL, NULL);
	char *buf = malloc(AB_READ);
	struct ab_cpu c0 = ab_thread_cpu();
	ssize_t n;
	while (fd >= 0 && buf != NULL && (n = read(fd, buf, AB_READ)) > 0)
		ab_got += n;
	ab_sink_cpu = ab_diff(c0, ab_thread_cpu());
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: relay_ab_stream FWD_PORT SINK_PORT MIB "
		                "[FWD_PID]\n");
		return 2;
	}
	long long bytes = atoll(argv[3]) << 20;
	int pid = argc > 4 ? atoi(argv[4]) : 0;
	struct sockaddr_in la = loopback_addr(atoi(argv[2]));
	struct sockaddr_in fa = loopback_addr(atoi(argv[1]));
	int one = 1;
	ab_lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ab_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(ab_lfd, (struct sockaddr *)&la, sizeof la) != 0 ||
	    listen(ab_lfd, 8) != 0) {
		perror("relay_ab_stream: listen");
		return 1;
	}
	pthread_t th;
	pthread_create(&th, NULL, ab_sink, NULL);
	long long b0, i0, b1, i1;
	ab_machine(&b0, &i0);
	double f0 = ab_pid_cpu(pid), t0 = monotonic_now();
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&fa, sizeof fa) != 0) {
		perror("relay_ab_stream: connect");
		return 1;
	}
	char *buf = malloc(AB_WRITE);
	memset(buf, 0xa5, AB_WRITE);
	struct ab_cpu s0 = ab_thread_cpu();
	for (long long sent = 0; sent < bytes;) {
		ssize_t n = write(fd, buf, AB_WRITE);
		if (n <= 0) {
			perror("relay_ab_stream: write");
			return 1;
		}
		sent += n;
	}
	struct ab_cpu snd = ab_diff(s0, ab_thread_cpu());
	shutdown(fd, SHUT_WR);
	pthread_join(th, NULL);
	double dt = monotonic_now() - t0;
	double fwd = ab_pid_cpu(pid) - f0;
	ab_machine(&b1, &i1);
	while (read(fd, buf, AB_WRITE) > 0) {
	}
	close(fd);
	free(buf);
	if (ab_got != bytes) {
		fprintf(stderr, "relay_ab_stream: got %lld of %lld bytes\n",
		        ab_got, bytes);
		return 1;
	}
	double gib = (double)bytes / (1u << 30);
	long long busy = b1 - b0, idle = i1 - i0;
	printf(
	    "%.2f Gbit/s fwd %.3f send %.3f (cs %ld/%ld) sink %.3f "
	    "(cs %ld/%ld) CPU s/GiB; machine idle %.0f%%\n",
	    (double)bytes * 8 / dt / 1e9, fwd / gib, snd.s / gib, snd.vcsw,
	    snd.ivcsw, ab_sink_cpu.s / gib, ab_sink_cpu.vcsw, ab_sink_cpu.ivcsw,
	    busy + idle > 0 ? 100.0 * (double)idle / (double)(busy + idle) : 0);
	return 0;
}
