/* The TAP harness: see harness.h. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rill.h"

#define TH_EXIT_PASS 0
#define TH_EXIT_FAIL 1
#define TH_EXIT_SKIP 77

struct th_test {
	char *name;
	th_fn fn;
	void *arg;
	unsigned timeout_s;
};

static struct th_test *tests;
static size_t ntests, cap_tests;
static unsigned long assertions; /* in the child */
static int report_fd = -1;       /* child -> parent: skip reason */

bool th_in_vm_guest(void)
{
	const char *v = getenv("RILL_VM_GUEST");
	return v != NULL && strcmp(v, "1") == 0 &&
	       access("/etc/rill-vm/env", F_OK) == 0;
}

void th_add(const char *name, th_fn fn, void *arg, unsigned timeout_s)
{
	if (ntests == cap_tests) {
		cap_tests = cap_tests ? cap_tests * 2 : 64;
		tests = realloc(tests, cap_tests * sizeof *tests);
		if (tests == NULL)
			abort();
	}
	tests[ntests].name = strdup(name);
	tests[ntests].fn = fn;
	tests[ntests].arg = arg;
	tests[ntests].timeout_s = timeout_s;
	ntests++;
}

const char *th_errname(int err)
{
	return rill_err_name(err);
}

void th_pass_one(void)
{
	assertions++;
}

void th_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("# ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

_Noreturn void th_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("# FAIL %s:%d: ", file, line);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	fflush(stdout);
	fflush(stderr);
	_exit(TH_EXIT_FAIL);
}

_Noreturn void th_skip(const char *fmt, ...)
{
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (report_fd >= 0) {
		ssize_t w = write(report_fd, reason, strlen(reason));
		(void)w;
	}
	fflush(stdout);
	fflush(stderr);
	_exit(TH_EXIT_SKIP);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool selected(const char *name, int argc, char **argv)
{
	bool any = false;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue;
		any = true;
		if (strstr(name, argv[i]) != NULL)
			return true;
	}
	return !any;
}

/* Runs one test in a child; returns 0 pass, 1 fail, 2 skip. */
static int run_one(struct th_test *t, char *why, size_t whylen)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		snprintf(why, whylen, "pipe: %s", strerror(errno));
		return 1;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(pfd[0]);
		report_fd = pfd[1];
		setpgid(0, 0);
		signal(SIGPIPE, SIG_IGN);
		assertions = 0;
		t->fn(t->arg);
		if (assertions == 0) {
			printf("# FAIL: the test ran no assertion\n");
			fflush(stdout);
			_exit(TH_EXIT_FAIL);
		}
		fflush(stdout);
		fflush(stderr);
		exit(TH_EXIT_PASS); /* exit(): LSan checks at exit */
	}
	close(pfd[1]);
	unsigned timeout = t->timeout_s;
	if (timeout == 0) {
		const char *env = getenv("TH_TIMEOUT");
		timeout = env != NULL ? (unsigned)atoi(env) : 120;
	}
	const char *mult = getenv("TH_TIMEOUT_MULT");
	if (mult != NULL && atoi(mult) > 1)
		timeout *= (unsigned)atoi(mult);
	double deadline = now_s() + timeout;
	int status = 0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (now_s() > deadline) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(pfd[0]);
			snprintf(why, whylen, "timed out after %u s", timeout);
			return 1;
		}
		usleep(2000);
	}
	/* Reap anything the test left behind in its process group. */
	kill(-pid, SIGKILL);
	ssize_t n = read(pfd[0], why, whylen - 1);
	why[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	if (WIFSIGNALED(status)) {
		snprintf(why, whylen, "killed by signal %d (%s)",
		         WTERMSIG(status), strsignal(WTERMSIG(status)));
		return 1;
	}
	int code = WEXITSTATUS(status);
	if (code == TH_EXIT_PASS)
		return 0;
	if (code == TH_EXIT_SKIP)
		return 2;
	if (why[0] == '\0')
		snprintf(why, whylen, "exit status %d", code);
	return 1;
}

/* The program's private temporary directory: every test's files go
 * under it (TMPDIR points there), and it goes when the program ends,
 * whatever the tests left behind (a killed test cannot clean up). */
static char th_tmp_root[256];

static int th_rm_entry(const char *path, const struct stat *st, int flag,
                       struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void th_tmp_open(void)
{
	const char *base = getenv("TMPDIR");
	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	snprintf(th_tmp_root, sizeof th_tmp_root, "%s/rill-th-XXXXXX", base);
	if (mkdtemp(th_tmp_root) == NULL) {
		th_tmp_root[0] = '\0';
		return;
	}
	setenv("TMPDIR", th_tmp_root, 1);
}

static void th_tmp_close(void)
{
	if (th_tmp_root[0] != '\0')
		nftw(th_tmp_root, th_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void th_tmp_template(char *buf, size_t len, const char *name)
{
	const char *base = getenv("TMPDIR");
	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	snprintf(buf, len, "%s/%s-XXXXXX", base, name);
}

int th_main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--list") == 0) {
			for (size_t j = 0; j < ntests; j++)
				puts(tests[j].name);
			return 0;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	size_t planned = 0;
	for (size_t i = 0; i < ntests; i++)
		if (selected(tests[i].name, argc, argv))
			planned++;
	printf("1..%zu\n", planned);
	th_tmp_open();
	size_t num = 0, failed = 0;
	for (size_t i = 0; i < ntests; i++) {
		if (!selected(tests[i].name, argc, argv))
			continue;
		char why[512] = "";
		double t0 = now_s();
		int r = run_one(&tests[i], why, sizeof why);
		double dt = now_s() - t0;
		num++;
		if (r == 0)
			printf("ok %zu - %s # %.2fs\n", num, tests[i].name, dt);
		else if (r == 2)
			printf("ok %zu - %s # SKIP %s\n", num, tests[i].name,
			       why);
		else {
			printf("not ok %zu - %s # %s\n", num, tests[i].name,
			       why);
			failed++;
		}
	}
	th_tmp_close();
	for (size_t i = 0; i < ntests; i++)
		free(tests[i].name);
	free(tests);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	return th_main(argc, argv);
}
