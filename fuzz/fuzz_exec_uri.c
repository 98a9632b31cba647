/*
 * Fuzz target: exec: and fd: URIs through the URI parser (word splitting
 * and percent-decoding of exec:, numbers and names of fd:). Parsing must
 * never crash and a parse that succeeds must succeed again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const prefixes[] = {"exec:", "fd:", "shut+exec:"};
	for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
		size_t pl = strlen(prefixes[i]);
		char *s = malloc(pl + size + 1);
		if (s == NULL)
			return 0;
		memcpy(s, prefixes[i], pl);
		memcpy(s + pl, data, size);
		s[pl + size] = '\0';
		int a = rill_uri_check(s);
		if (a == 0 && rill_uri_check(s) != 0)
			abort();
		free(s);
	}
	return 0;
}
