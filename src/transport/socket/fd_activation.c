/*
 * systemd's socket activation variables, parsed (sd_listen_fds(3)):
 * LISTEN_PID and LISTEN_FDS as strict decimal numbers, LISTEN_FDNAMES as
 * a colon-separated list. Pure functions over strings (no environment,
 * no descriptors), so that the fuzz target reaches them directly
 * (fuzz/fuzz_listen_fds.c). The environment is inherited, so it is
 * untrusted input: anything malformed means "no socket activation".
 */
#include <stddef.h>
#include <string.h>

#include "transport/socket/fd.h"

/* A decimal number of at most 18 digits, nothing else: false otherwise
 * (no sign, no blanks, no empty string, unlike strtol). */
static bool fd_activation_decimal(const char *s, long long *out)
{
	if (s == NULL || *s == '\0' || strlen(s) > 18)
		return false;
	long long v = 0;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	*out = v;
	return true;
}

int rill__fd_activation_count(const char *pid, const char *fds, long self_pid)
{
	long long p, n;
	if (!fd_activation_decimal(pid, &p) || p != (long long)self_pid ||
	    !fd_activation_decimal(fds, &n) || n <= 0 ||
	    n > RILL__FD_ACTIVATION_MAX)
		return 0;
	return (int)n;
}

int rill__fd_activation_names(char *text, char **names, int max)
{
	int n = 0;
	char *s = text;
	while (s != NULL && n < max) {
		names[n++] = s;
		char *colon = strchr(s, ':');
		if (colon == NULL)
			break;
		*colon = '\0';
		s = colon + 1;
	}
	return n;
}
