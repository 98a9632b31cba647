/*
 * The standard process metrics, as Prometheus's client libraries export
 * them (client_golang's process collector: the same names, help texts
 * and units): CPU seconds from getrusage(2), descriptors from
 * /proc/self/fd and RLIMIT_NOFILE, memory from /proc/self/statm, the
 * start time from /proc/self/stat (field 22, in clock ticks after boot)
 * and the boot time (btime in /proc/stat). A value that cannot be read
 * is rendered as NaN rather than a made-up number.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics/metrics_internal.h"

static double process_cpu(void *ud)
{
	(void)ud;
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return NAN;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double process_open_fds(void *ud)
{
	(void)ud;
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return NAN;
	double n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static double process_max_fds(void *ud)
{
	(void)ud;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return NAN;
	return rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
}

/* Field i (0: size, 1: resident) of /proc/self/statm, in bytes. */
static double process_statm(int i)
{
	FILE *f = fopen("/proc/self/statm", "re");
	if (f == NULL)
		return NAN;
	unsigned long v[2];
	int n = fscanf(f, "%lu %lu", &v[0], &v[1]);
	fclose(f);
	if (n != 2)
		return NAN;
	return (double)v[i] * (double)sysconf(_SC_PAGESIZE);
}

static double process_vsize(void *ud)
{
	(void)ud;
	return process_statm(0);
}

static double process_rss(void *ud)
{
	(void)ud;
	return process_statm(1);
}

static double process_boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	if (f == NULL)
		return NAN;
	char line[256];
	double t = NAN;
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned long long v;
		if (sscanf(line, "btime %llu", &v) == 1) {
			t = (double)v;
			break;
		}
	}
	fclose(f);
	return t;
}

static double process_start(void *ud)
{
	(void)ud;
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "re");
	if (f == NULL)
		return NAN;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: the
	 * fields after it start after the last ')'. starttime is field 22,
	 * the 20th after that. */
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return NAN;
	p++;
	for (int field = 3; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL)
		return NAN;
	double ticks = strtod(p + 1, NULL);
	return process_boot_time() + ticks / (double)sysconf(_SC_CLK_TCK);
}

int rill_metrics_add_process(struct rill_metrics *m)
{
	static const struct {
		enum rill_metric_type type;
		const char *name, *help;
		double (*fn)(void *ud);
	} table[] = {
	    {RILL_METRIC_COUNTER, "process_cpu_seconds_total",
	     "Total user and system CPU time spent in seconds.", process_cpu},
	    {RILL_METRIC_GAUGE, "process_open_fds",
	     "Number of open file descriptors.", process_open_fds},
	    {RILL_METRIC_GAUGE, "process_max_fds",
	     "Maximum number of open file descriptors.", process_max_fds},
	    {RILL_METRIC_GAUGE, "process_virtual_memory_bytes",
	     "Virtual memory size in bytes.", process_vsize},
	    {RILL_METRIC_GAUGE, "process_resident_memory_bytes",
	     "Resident memory size in bytes.", process_rss},
	    {RILL_METRIC_GAUGE, "process_start_time_seconds",
	     "Start time of the process since unix epoch in seconds.",
	     process_start},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		int err =
		    rill_metrics_callback(m, table[i].type, table[i].name,
		                          table[i].help, table[i].fn, NULL);
		if (err != 0)
			return err;
	}
	return 0;
}
