/*
 * rill bench relay: the forwarders, each its own process as a user would
 * run it, and what they cost in CPU (read from /proc).
 *
 *   rill relay            this binary, `relay --quiet` (its defaults: the
 *                         splice path, one loop per online CPU)
 *   rill relay --no-splice
 *   rill relay            with RILL_SPLICE_LOCAL=0: the splice path as it
 *                         was before its tuning for local peers
 *   socat -b 131072       TCP-LISTEN:P,bind=127.0.0.1,fork,reuseaddr
 *                         TCP:127.0.0.1:Q with 128 KiB buffers
 *   socat                 the same with socat's default 8 KiB buffer
 *   haproxy               Debian's package, `mode tcp`, one frontend and
 *                         one backend server, everything else default
 *                         (it runs one thread per CPU)
 *   fwd-threads           bench/fwd_floor.c in a forked child
 *   splice-threads        the same, splicing (the memcpy-free floor)
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_relay.h"
#include "fwd_floor.h"

const char *const bench_relay_names[BR_KINDS] = {
    [BR_DIRECT] = "direct tcp",           [BR_RILL] = "rill relay",
    [BR_COPY] = "rill relay --no-splice", [BR_UNTUNED] = "rill relay (untuned)",
    [BR_SOCAT] = "socat -b 131072",       [BR_HAPROXY] = "haproxy",
    [BR_FLOOR] = "fwd-threads",           [BR_SFLOOR] = "splice-threads",
    [BR_SOCAT8K] = "socat (8 KiB)",
};

static struct sockaddr_in bench_relay_addr(int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	return a;
}

int bench_relay_listen(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = bench_relay_addr(0);
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int bench_relay_free_port(void)
{
	int port = 0;
	int fd = bench_relay_listen(&port);
	if (fd < 0)
		return fd;
	close(fd);
	return port;
}

static bool bench_relay_in_path(const char *prog)
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

const char *bench_relay_fwd_missing(enum bench_relay_kind kind)
{
	switch (kind) {
	case BR_SOCAT:
	case BR_SOCAT8K:
		return bench_relay_in_path("socat") ? NULL
		                                    : "socat is not installed";
	case BR_HAPROXY:
		return bench_relay_in_path("haproxy")
		           ? NULL
		           : "haproxy is not installed";
	default: return NULL;
	}
}

/* The child's side of a start: stdio on /dev/null (stderr kept with
 * RILL_BENCH_DEBUG set), then exec or run the floor. Never returns. */
static void bench_relay_child(enum bench_relay_kind kind, const char *exe,
                              char *const argv[], int floor_lfd, int target)
{
	int null = open("/dev/null", O_RDWR);
	dup2(null, 0);
	dup2(null, 1);
	if (getenv("RILL_BENCH_DEBUG") == NULL)
		dup2(null, 2);
	if (floor_lfd >= 0) {
		struct sockaddr_in t = bench_relay_addr(target);
		fwd_floor_run(floor_lfd, &t, kind == BR_SFLOOR);
		_exit(1);
	}
	unsetenv("RILL_NO_SPLICE");
	if (kind == BR_UNTUNED)
		setenv("RILL_SPLICE_LOCAL", "0", 1);
	else
		unsetenv("RILL_SPLICE_LOCAL");
	execvp(exe != NULL ? exe : argv[0], argv);
	_exit(127);
}

static int bench_relay_haproxy_cfg(const char *tmpdir, int port, int target,
                                   char *path, size_t len)
{
	snprintf(path, len, "%s/haproxy-%d.cfg", tmpdir, port);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -errno;
	fprintf(f,
	        "global\n"
	        "    maxconn 4096\n"
	        "defaults\n"
	        "    mode tcp\n"
	        "    timeout connect 10s\n"
	        "    timeout client 120s\n"
	        "    timeout server 120s\n"
	        "frontend bench\n"
	        "    bind 127.0.0.1:%d\n"
	        "    default_backend target\n"
	        "backend target\n"
	        "    server t 127.0.0.1:%d\n",
	        port, target);
	return fclose(f) == 0 ? 0 : -EIO;
}

int bench_relay_fwd_start(struct bench_relay_fwd *f, enum bench_relay_kind kind,
                          int target, const char *tmpdir)
{
	memset(f, 0, sizeof *f);
	f->kind = kind;
	int port = bench_relay_free_port();
	if (port < 0)
		return port;
	f->port = port;
	char exe[PATH_MAX], lsn[128], dst[64], cfg[PATH_MAX];
	ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (el <= 0)
		return -errno;
	exe[el] = '\0';
	char *argv[8] = {NULL};
	int floor_lfd = -1;
	switch (kind) {
	case BR_RILL:
	case BR_UNTUNED:
	case BR_COPY:
		snprintf(lsn, sizeof lsn, "tcp://127.0.0.1:%d", port);
		snprintf(dst, sizeof dst, "tcp://127.0.0.1:%d", target);
		argv[0] = "rill";
		argv[1] = "relay";
		argv[2] = "--quiet";
		argv[3] = kind == BR_COPY ? "--no-splice" : lsn;
		argv[4] = kind == BR_COPY ? lsn : dst;
		argv[5] = kind == BR_COPY ? dst : NULL;
		break;
	case BR_SOCAT:
	case BR_SOCAT8K: {
		snprintf(lsn, sizeof lsn,
		         "TCP-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr", port);
		snprintf(dst, sizeof dst, "TCP:127.0.0.1:%d", target);
		int n = 0;
		argv[n++] = "socat";
		if (kind == BR_SOCAT) {
			argv[n++] = "-b";
			argv[n++] = "131072";
		}
		argv[n++] = lsn;
		argv[n++] = dst;
		break;
	}
	case BR_HAPROXY: {
		int err = bench_relay_haproxy_cfg(tmpdir, port, target, cfg,
		                                  sizeof cfg);
		if (err != 0)
			return err;
		argv[0] = "haproxy";
		argv[1] = "-db"; /* foreground */
		argv[2] = "-f";
		argv[3] = cfg;
		break;
	}
	case BR_FLOOR:
	case BR_SFLOOR: {
		int p = 0;
		floor_lfd = bench_relay_listen(&p);
		if (floor_lfd < 0)
			return floor_lfd;
		f->port = p;
		break;
	}
	default: return RILL_EINVAL;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int err = -errno;
		if (floor_lfd >= 0)
			close(floor_lfd);
		return err;
	}
	if (pid == 0)
		bench_relay_child(
		    kind,
		    argv[0] != NULL && strcmp(argv[0], "rill") == 0 ? exe
		                                                    : NULL,
		    argv, floor_lfd, target);
	if (floor_lfd >= 0)
		close(floor_lfd);
	f->pid = pid;
	if (!bench_wait_listen(f->port, pid)) {
		bench_error("bench relay: %s did not start listening on "
		            "127.0.0.1:%d (set RILL_BENCH_DEBUG=1 to see why)",
		            bench_relay_names[kind], f->port);
		bench_relay_fwd_stop(f);
		return -EIO;
	}
	return 0;
}

void bench_relay_fwd_stop(struct bench_relay_fwd *f)
{
	if (f->pid <= 0)
		return;
	kill(f->pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(f->pid, NULL, WNOHANG) == f->pid) {
			f->pid = 0;
			return;
		}
		usleep(10000);
	}
	kill(f->pid, SIGKILL);
	waitpid(f->pid, NULL, 0);
	f->pid = 0;
}

/* Fields 14-17 of /proc/PATH/stat (utime stime cutime cstime) summed, in
 * ticks; with children false only the first two. -1 when unreadable. */
static int64_t bench_relay_stat_ticks(const char *path, bool children,
                                      int *ppid)
{
	char buf[1024];
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	/* After ") ": state ppid ... ; utime is the 12th field on. */
	char state;
	int pp;
	unsigned long long v[15];
	if (sscanf(p + 2,
	           "%c %d %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
	           "%llu %llu %llu",
	           &state, &pp, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
	           &v[7], &v[8], &v[9], &v[10], &v[11], &v[12]) != 15)
		return -1;
	if (ppid != NULL)
		*ppid = pp;
	/* v[0] is field 5 (pgrp): utime is field 14 = v[9]. */
	int64_t t = (int64_t)(v[9] + v[10]);
	if (children)
		t += (int64_t)(v[11] + v[12]);
	return t;
}

/* Whether pid has a child process now (socat's per-connection child). */
static bool bench_relay_has_child(pid_t pid)
{
	DIR *d = opendir("/proc");
	if (d == NULL)
		return false;
	bool found = false;
	struct dirent *e;
	while (!found && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[300];
		int pp = 0;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		if (bench_relay_stat_ticks(path, false, &pp) >= 0 && pp == pid)
			found = true;
	}
	closedir(d);
	return found;
}

double bench_relay_fwd_cpu(const struct bench_relay_fwd *f)
{
	if (f->kind == BR_SOCAT || f->kind == BR_SOCAT8K)
		for (int i = 0; i < 100 && bench_relay_has_child(f->pid); i++)
			usleep(10000);
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)f->pid);
	int64_t t = bench_relay_stat_ticks(path, true, NULL);
	return t < 0 ? 0 : (double)t / (double)sysconf(_SC_CLK_TCK);
}

int bench_relay_fwd_threads(const struct bench_relay_fwd *f, int *tids,
                            uint64_t *ticks, int max)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/task", (int)f->pid);
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	int n = 0;
	struct dirent *e;
	while (n < max && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char path[400];
		snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
		int64_t t = bench_relay_stat_ticks(path, false, NULL);
		if (t < 0)
			continue;
		tids[n] = atoi(e->d_name);
		ticks[n] = (uint64_t)t;
		n++;
	}
	closedir(d);
	return n;
}
