/*
 * Fuzz target: systemd's socket activation variables as rill parses them
 * (src/transport/socket/fd_activation.c). The input is "PID\nFDS\nNAMES": the
 * three values of LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES (a missing
 * line is an unset variable). The process id is fixed at 4242. Parsing
 * must never crash or read past a value, a count must be 0 or in range
 * and only for a plain decimal 4242, and the names must be the pieces
 * of the text between colons, in order, at most the count.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"
#include "transport/socket/fd.h"

#define FUZZ_PID       4242
#define FUZZ_NAMES_CAP 1024

#define FUZZ_CHECK(c)                     \
	do {                              \
		if (!(c))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of the input as a fresh NUL-terminated string (exactly
 * its size, so ASan sees an over-read), or NULL at the end. */
static char *fuzz_line(const uint8_t **p, const uint8_t *end, bool last)
{
	if (*p > end)
		return NULL;
	const uint8_t *nl = last ? NULL : memchr(*p, '\n', (size_t)(end - *p));
	size_t n = nl != NULL ? (size_t)(nl - *p) : (size_t)(end - *p);
	char *s = malloc(n + 1);
	if (s == NULL)
		abort();
	memcpy(s, *p, n);
	s[n] = '\0';
	*p = nl != NULL ? nl + 1 : end + 1;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	char *pid = fuzz_line(&p, end, false);
	char *fds = fuzz_line(&p, end, false);
	char *names = fuzz_line(&p, end, true);
	int count = rill__fd_activation_count(pid, fds, FUZZ_PID);
	FUZZ_CHECK(count >= 0 && count <= RILL__FD_ACTIVATION_MAX);
	if (count > 0) {
		/* Leading zeros are allowed: the value must be ours. */
		FUZZ_CHECK(strspn(pid, "0123456789") == strlen(pid) &&
		           strtoll(pid, NULL, 10) == FUZZ_PID);
		FUZZ_CHECK(strspn(fds, "0123456789") == strlen(fds));
	}
	if (names != NULL) {
		size_t len = strlen(names);
		char *copy = malloc(len + 1);
		char **list = calloc(FUZZ_NAMES_CAP, sizeof *list);
		if (copy == NULL || list == NULL)
			abort();
		memcpy(copy, names, len + 1);
		int max = count < FUZZ_NAMES_CAP ? count : FUZZ_NAMES_CAP;
		int n = rill__fd_activation_names(copy, list, max);
		FUZZ_CHECK(n >= 0 && n <= max);
		/* The names, joined by ':' again, start the original. */
		size_t off = 0;
		for (int i = 0; i < n; i++) {
			FUZZ_CHECK(list[i] >= copy && list[i] <= copy + len);
			size_t l = strlen(list[i]);
			FUZZ_CHECK(strchr(list[i], ':') == NULL);
			FUZZ_CHECK(memcmp(names + off, list[i], l) == 0);
			off += l;
			FUZZ_CHECK(off <= len);
			if (i + 1 < n) {
				FUZZ_CHECK(names[off] == ':');
				off++;
			}
		}
		free(list);
		free(copy);
	}
	free(pid);
	free(fds);
	free(names);
	return 0;
}
