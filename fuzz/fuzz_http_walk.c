/*
 * Fuzz target: http_path_walk (cli/http_files.c), rill http serve's
 * resolution of a request path beneath the served directory on kernels
 * without openat2. The input is the path (as a client's target decodes
 * to; cut at the first NUL), resolved in a fixed tree with links that
 * stay inside, links that climb out, absolute links, loops and links to
 * directories. Properties:
 *  - whatever opens is beneath the root (its /proc/self/fd name);
 *  - where openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) exists, the
 *    walk opens exactly when it does, and the same inode.
 * The tree lives in a fresh directory under TMPDIR, removed at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "http_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char walk_dir[1024];
static char walk_root_real[PATH_MAX];
static int walk_root = -1;

static void walk_cleanup(void)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", walk_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", walk_dir);
}

static void walk_at(const char *rel, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", walk_dir, rel);
}

static void walk_setup(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(walk_dir, sizeof walk_dir, "%s/fuzz-walk-XXXXXX",
	         tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(walk_dir) == NULL)
		abort();
	atexit(walk_cleanup);
	static const char *const dirs[] = {"root", "root/a", "root/a/b",
	                                   "root/.hidden", "other"};
	static const char *const files[] = {"root/a/b/f", "root/top",
	                                    "other/secret", "root/.hidden/h"};
	static const char *const links[][2] = {
	    {"root/in", "a/b/f"},
	    {"root/a/up", "../top"},
	    {"root/out", "../other"},
	    {"root/a/b/deep", "../../../other"},
	    {"root/abs", "/etc"},
	    {"root/loop", "loop"},
	    {"root/d", "a"},
	    {"root/a/b/self", "."},
	    {"root/a/dd", "b/../../top"},
	    {"root/chain", "in"},
	};
	char p[PATH_MAX], q[PATH_MAX];
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		walk_at(dirs[i], p, sizeof p);
		if (mkdir(p, 0755) != 0)
			abort();
	}
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		walk_at(files[i], p, sizeof p);
		FILE *f = fopen(p, "w");
		if (f == NULL)
			abort();
		fclose(f);
	}
	for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
		walk_at(links[i][0], p, sizeof p);
		snprintf(q, sizeof q, "%s", links[i][1]);
		if (symlink(q, p) != 0)
			abort();
	}
	walk_at("root", p, sizeof p);
	walk_root = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (walk_root < 0 || realpath(p, walk_root_real) == NULL)
		abort();
}

static bool walk_beneath(int fd)
{
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n < 0)
		return true; /* no /proc: nothing to check against */
	path[n] = '\0';
	size_t rl = strlen(walk_root_real);
	return strncmp(path, walk_root_real, rl) == 0 &&
	       (path[rl] == '\0' || path[rl] == '/');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (walk_root < 0)
		walk_setup();
	char rel[PATH_MAX];
	size_t n = size < sizeof rel - 1 ? size : sizeof rel - 1;
	memcpy(rel, data, n);
	rel[n] = '\0';
	if (rel[0] == '/')
		return 0; /* the server never passes a leading slash */
	int fd = http_path_walk(walk_root, rel, O_RDONLY | O_NONBLOCK);
	if (fd >= 0 && !walk_beneath(fd))
		abort();
#ifdef SYS_openat2
	struct open_how how = {
	    .flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	const char *r2 = rel[0] == '\0' ? "." : rel;
	int fd2 = (int)syscall(SYS_openat2, walk_root, r2, &how, sizeof how);
	if (fd2 >= 0 || errno != ENOSYS) {
		/* EAGAIN: the kernel's resolution raced; nothing to compare. */
		bool racy = fd2 < 0 && errno == EAGAIN;
		if (!racy && (fd >= 0) != (fd2 >= 0))
			abort();
		if (fd >= 0 && fd2 >= 0) {
			struct stat a, b;
			if (fstat(fd, &a) != 0 || fstat(fd2, &b) != 0 ||
			    a.st_ino != b.st_ino || a.st_dev != b.st_dev)
				abort();
		}
		if (fd2 >= 0)
			close(fd2);
	}
#endif
	if (fd >= 0)
		close(fd);
	return 0;
}
