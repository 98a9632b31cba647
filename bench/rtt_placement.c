/*
 * bench/rtt_placement: 1-byte round trips through a forwarder, one
 * connection after the other, each with the CPUs its threads ran on.
 *
 *   rtt_placement FWD_PORT ECHO_PORT CONNECTIONS FWD_PID
 *
 * Listens on 127.0.0.1:ECHO_PORT (the forwarder's target) with one echo
 * thread per connection. For every connection: 100 pings of warm-up, then
 * 2,000 timed ones (TCP_NODELAY on both ends); prints the median, the CPU
 * the client thread and the echo thread last ran on and how often they
 * migrated, and the same for each thread of FWD_PID that switched more
 * than 100 times meanwhile (the one that carried the connection). Shows
 * what decides a round trip on a small VM: whether the hops stay on one
 * CPU.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"

#define PL_PINGS   2000
#define PL_WARMUP  100
#define PL_THREADS 64

static int pl_lfd;
static volatile int pl_echo_tid;

/* The value of key in a /proc/.../sched file, or -1. */
static long pl_sched(int pid, int tid, const char *key)
{
	char path[128], line[256];
	snprintf(path, sizeof path, "/proc/%d/task/%d/sched", pid, tid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	long v = -1;
	while (fgets(line, sizeof line, f) != NULL) {
		char *c = strchr(line, ':');
		if (c != NULL && strncmp(line, key, strlen(key)) == 0)
			v = atol(c + 1);
	}
	fclose(f);
	return v;
}

/* The CPU a thread last ran on (field 39 of its stat), or -1. */
static int pl_cpu(int pid, int tid)
{
	char path[128], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	p += 2; /* field 3 */
	for (int field = 3; field < 39 && p != NULL; field++) {
		p = strchr(p, ' ');
		if (p != NULL)
			p++;
	}
	return p != NULL ? atoi(p) : -1;
}

static void *pl_echo(void *arg)
{
	(void)arg;
	pl_echo_tid = (int)syscall(SYS_gettid);
	int fd = accept(pl_lfd, NULL, NULL);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	char b;
	while (read(fd, &b, 1) == 1 && write(fd, &b, 1) == 1) {
	}
	close(fd);
	return NULL;
}

static int pl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct pl_tasks {
	int n, tid[PL_THREADS];
	long mig[PL_THREADS], sw[PL_THREADS];
};

static void pl_snap(int pid, struct pl_tasks *t)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	struct dirent *e;
	t->n = 0;
	while (d != NULL && t->n < PL_THREADS && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		int tid = atoi(e->d_name);
		t->tid[t->n] = tid;
		t->mig[t->n] = pl_sched(pid, tid, "se.nr_migrations");
		t->sw[t->n] = pl_sched(pid, tid, "nr_switches");
		t->n++;
	}
	if (d != NULL)
		closedir(d);
}

static void pl_one(int k, int port, int fwd_pid)
{
	int me = (int)syscall(SYS_gettid), self = getpid(), one = 1;
	pthread_t th;
	pl_echo_tid = 0;
	pthread_create(&th, NULL, pl_echo, NULL);
	struct sockaddr_in fa = loopback_addr(port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&fa, sizeof fa) != 0) {
		perror("rtt_placement: connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	char x = 'x';
	for (int i = 0; i < PL_WARMUP; i++)
		if (write(fd, &x, 1) != 1 || read(fd, &x, 1) != 1)
			exit(1);
	struct pl_tasks t0, t1;
	pl_snap(fwd_pid, &t0);
	int echo = pl_echo_tid;
	long cm = pl_sched(self, me, "se.nr_migrations");
	long em = pl_sched(self, echo, "se.nr_migrations");
	static double d[PL_PINGS];
	for (int i = 0; i < PL_PINGS; i++) {
		double s = monotonic_now();
		if (write(fd, &x, 1) != 1 || read(fd, &x, 1) != 1)
			exit(1);
		d[i] = monotonic_now() - s;
	}
	pl_snap(fwd_pid, &t1);
	qsort(d, PL_PINGS, sizeof d[0], pl_cmp);
	printf("connection %2d: median %6.1f us; client cpu%d (+%ld "
	       "migrations), echo cpu%d (+%ld);",
	       k, d[PL_PINGS / 2] * 1e6, pl_cpu(self, me),
	       pl_sched(self, me, "se.nr_migrations") - cm, pl_cpu(self, echo),
	       pl_sched(self, echo, "se.nr_migrations") - em);
	for (int i = 0; i < t1.n; i++)
		for (int j = 0; j < t0.n; j++)
			if (t0.tid[j] == t1.tid[i] && t1.sw[i] - t0.sw[j] > 100)
				printf(" forwarder thread %d cpu%d (+%ld)",
				       t1.tid[i], pl_cpu(fwd_pid, t1.tid[i]),
				       t1.mig[i] - t0.mig[j]);
	printf("\n");
	fflush(stdout);
	close(fd);
	pthread_join(th, NULL);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: rtt_placement FWD_PORT ECHO_PORT "
		                "CONNECTIONS FWD_PID\n");
		return 2;
	}
	int one = 1;
	struct sockaddr_in ea = loopback_addr(atoi(argv[2]));
	pl_lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(pl_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(pl_lfd, (struct sockaddr *)&ea, sizeof ea) != 0 ||
	    listen(pl_lfd, 8) != 0) {
		perror("rtt_placement: listen");
		return 1;
	}
	for (int k = 0; k < atoi(argv[3]); k++)
		pl_one(k, atoi(argv[1]), atoi(argv[4]));
	return 0;
}
