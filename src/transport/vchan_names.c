/*
 * Naming of memfd vchans: (domain, port) -> the rendezvous socket path
 * (doc/vchan-rendezvous.md section 1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport/vchan_local.h"

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

static int vchan_mkdir(const char *dir, bool create)
{
	if (create && mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* The directory of domain into buf; with create, makes the default
 * directory (mode 0700) and the domain's own directory if missing. */
static int vchan_dir(const char *domain, char *buf, size_t len, bool create)
{
	if (domain != NULL && strchr(domain, '/') != NULL) {
		int n = snprintf(buf, len, "%s", domain);
		if (n < 0 || (size_t)n >= len)
			return -ENAMETOOLONG;
		return vchan_mkdir(buf, create);
	}
	if (domain != NULL && *domain != '\0' &&
	    !rill__vchan_name_ok(domain, true))
		return RILL_EINVAL;
	int err = vchan_default_dir(buf, len);
	if (err == 0)
		err = vchan_mkdir(buf, create);
	if (err != 0 || domain == NULL || *domain == '\0')
		return err;
	size_t l = strlen(buf);
	int n = snprintf(buf + l, len - l, "/%s", domain);
	if (n < 0 || (size_t)n >= len - l)
		return -ENAMETOOLONG;
	return vchan_mkdir(buf, create);
}

int rill__vchan_socket_path(const char *domain, const char *port, char *buf,
                            size_t len, bool create)
{
	if (!rill__vchan_name_ok(port, false))
		return RILL_EINVAL;
	char dir[RILL__VCHAN_SUN_PATH];
	int err = vchan_dir(domain, dir, sizeof dir, create);
	if (err != 0)
		return err;
	int n = snprintf(buf, len, "%s/%s", dir, port);
	if (n < 0 || (size_t)n >= len || (size_t)n >= RILL__VCHAN_SUN_PATH)
		return -ENAMETOOLONG;
	return 0;
}

int rill_vchan_path(const char *domain, const char *port, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return RILL_EINVAL;
	return rill__vchan_socket_path(domain, port, buf, len, false);
}
