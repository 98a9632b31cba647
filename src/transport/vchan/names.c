/*
 * Naming of memfd vchans: (domain, port) -> the rendezvous socket path
 * (doc/vchan-rendezvous.md section 1), and the checks of the directories
 * on the way (doc/security.md).
 *
 * The default directory (and a named domain in it) is where another
 * local user could lie in wait: /tmp/rill-vchan-UID can be made by
 * anyone before us. So it must be a real directory (not a symlink: each
 * step is opened with O_NOFOLLOW|O_DIRECTORY and checked with fstat),
 * owned by our effective uid, with no access for group or others; the
 * server creates it with mode 0700. A directory given as a path (a domain
 * with '/') is the caller's choice and may be shared on purpose: it must
 * still be a real directory owned by us or root, and writable by group or
 * others only with the sticky bit (as /tmp), so that no one else can
 * replace our socket in it. The peer's credentials are checked on both
 * sides of the rendezvous anyway (gate.c, local_client.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport/vchan/local.h"

bool rill__vchan_name_ok(const char *s, bool allow_dot)
{
	if (s == NULL || *s == '\0' || strlen(s) > 255)
		return false;
	if (allow_dot && (strcmp(s, ".") == 0 || strcmp(s, "..") == 0))
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		          (allow_dot && c == '.');
		if (!ok)
			return false;
	}
	return true;
}

static int vchan_default_dir(char *buf, size_t len)
{
	const char *d = getenv("RILL_VCHAN_DIR");
	int n;
	if (d != NULL && *d != '\0')
		n = snprintf(buf, len, "%s", d);
	else if ((d = getenv("XDG_RUNTIME_DIR")) != NULL && *d != '\0')
		n = snprintf(buf, len, "%s/rill-vchan", d);
	else
		n = snprintf(buf, len, "/tmp/rill-vchan-%u",
		             (unsigned)getuid());
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* What is wrong with the directory st for its use (text: room for the
 * words), or NULL. */
static const char *vchan_dir_fault(const struct stat *st, bool strict,
                                   char text[static 96])
{
	uid_t me = geteuid();
	if (!S_ISDIR(st->st_mode))
		return "not a directory";
	if (strict && st->st_uid != me) {
		snprintf(text, 96, "owned by uid %u, not by us (uid %u)",
		         (unsigned)st->st_uid, (unsigned)me);
		return text;
	}
	if (strict && (st->st_mode & 077) != 0) {
		snprintf(text, 96,
		         "mode %04o gives group or others access (want 0700)",
		         (unsigned)(st->st_mode & 07777));
		return text;
	}
	if (!strict && st->st_uid != me && st->st_uid != 0) {
		snprintf(text, 96,
		         "owned by uid %u, neither us (uid %u) nor root",
		         (unsigned)st->st_uid, (unsigned)me);
		return text;
	}
	if (!strict && (st->st_mode & 022) != 0 && !(st->st_mode & S_ISVTX))
		return "writable by group or others without the sticky bit";
	return NULL;
}

/*
 * Opens name (relative to at) as a directory and checks it. With create,
 * makes it first (mode 0700) when missing. Returns the fd, -ENOENT when
 * missing (and not created), or -errno / RILL_EACCES... with the message
 * naming full. A symlink is refused, not followed.
 */
static int vchan_dir_open(int at, const char *name, const char *full,
                          bool create, bool strict)
{
	if (create && mkdirat(at, name, 0700) != 0 && errno != EEXIST) {
		int e = errno;
		rill__set_last_errmsg("vchan: cannot create the directory %s: "
		                      "%s",
		                      full, strerror(e));
		return -e;
	}
	int fd =
	    openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT && !create)
			return -ENOENT;
		rill__set_last_errmsg(
		    "vchan: refusing the rendezvous directory %s: %s", full,
		    e == ELOOP || e == ENOTDIR
		        ? "not a directory (a symlink or a file)"
		        : strerror(e));
		return e == ELOOP ? -ENOTDIR : -e;
	}
	struct stat st;
	char text[96];
	const char *fault = fstat(fd, &st) != 0
	                        ? strerror(errno)
	                        : vchan_dir_fault(&st, strict, text);
	if (fault != NULL) {
		rill__set_last_errmsg("vchan: refusing the rendezvous "
		                      "directory %s: %s",
		                      full, fault);
		close(fd);
		return -EACCES;
	}
	return fd;
}

/* The directory of domain into buf, checked for use (local.h). */
static int vchan_dir(const char *domain, char *buf, size_t len,
                     enum rill__vchan_dir_use use)
{
	bool server = use == RILL__VCHAN_DIR_SERVER;
	bool explicit_dir = domain != NULL && strchr(domain, '/') != NULL;
	int n;
	if (explicit_dir) {
		n = snprintf(buf, len, "%s", domain);
		if (n < 0 || (size_t)n >= len)
			return -ENAMETOOLONG;
		/* A client checks the server's credentials instead. */
		if (!server)
			return 0;
		int fd = vchan_dir_open(AT_FDCWD, buf, buf, true, false);
		if (fd < 0)
			return fd;
		close(fd);
		return 0;
	}
	if (domain != NULL && *domain != '\0' &&
	    !rill__vchan_name_ok(domain, true))
		return RILL_EINVAL;
	int err = vchan_default_dir(buf, len);
	if (err != 0)
		return err;
	size_t l = strlen(buf);
	bool sub = domain != NULL && *domain != '\0';
	if (sub) {
		n = snprintf(buf + l, len - l, "/%s", domain);
		if (n < 0 || (size_t)n >= len - l)
			return -ENAMETOOLONG;
	}
	if (use == RILL__VCHAN_DIR_NAME)
		return 0;
	buf[l] = '\0';
	int fd = vchan_dir_open(AT_FDCWD, buf, buf, server, true);
	if (sub)
		buf[l] = '/';
	if (fd == -ENOENT)
		return 0; /* a client: no server yet (connect says ENOENT) */
	if (fd < 0 || !sub) {
		if (fd >= 0)
			close(fd);
		return fd < 0 ? fd : 0;
	}
	int dfd = vchan_dir_open(fd, domain, buf, server, true);
	close(fd);
	if (dfd == -ENOENT)
		return 0;
	if (dfd < 0)
		return dfd;
	close(dfd);
	return 0;
}

int rill__vchan_socket_path(const char *domain, const char *port, char *buf,
                            size_t len, enum rill__vchan_dir_use use)
{
	if (!rill__vchan_name_ok(port, false))
		return RILL_EINVAL;
	char dir[RILL__VCHAN_SUN_PATH];
	int err = vchan_dir(domain, dir, sizeof dir, use);
	if (err == RILL_EINVAL || err == -ENAMETOOLONG)
		rill__set_last_errmsg("vchan: bad or too long name %s/%s: %s",
		                      domain != NULL ? domain : "", port,
		                      rill_strerror(err));
	if (err != 0)
		return err;
	int n = snprintf(buf, len, "%s/%s", dir, port);
	if (n < 0 || (size_t)n >= len || (size_t)n >= RILL__VCHAN_SUN_PATH) {
		rill__set_last_errmsg("vchan: socket path too long: %s/%s", dir,
		                      port);
		return -ENAMETOOLONG;
	}
	return 0;
}

int rill_vchan_path(const char *domain, const char *port, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return RILL_EINVAL;
	return rill__vchan_socket_path(domain, port, buf, len,
	                               RILL__VCHAN_DIR_NAME);
}
