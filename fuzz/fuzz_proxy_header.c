/*
 * Fuzz target: PROXY protocol headers (v1 and v2, told apart by their
 * first byte) as a proxy+ listener reads them. Checks that a parsed
 * header lies within the input and the size limits, that no shorter
 * prefix parses, that the addresses format (without control
 * characters: they go into log lines), and that a header rebuilt
 * from them (same version) parses back to the same addresses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layer/tunnel/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const struct rill__pp_addrs *a, int version)
{
	uint8_t out[RILL__PP2_MAX];
	size_t n = rill__pp_build(version, a, out);
	struct rill__pp_addrs b;
	int v2 = 0;
	const char *why = NULL;
	if (n == 0 || n > RILL__PP2_MAX ||
	    rill__pp_parse(out, n, &b, &v2, &why) != (int)n || v2 != version)
		abort();
	/* v1 carries no unix or vsock addresses: those come back LOCAL. */
	bool v1_only_ip = version == 1 && a->family != RILL__PP_INET &&
	                  a->family != RILL__PP_INET6;
	if (v1_only_ip ? b.family != RILL__PP_LOCAL : b.family != a->family)
		abort();
	char s1[200], s2[200];
	for (int side = 0; side < 2 && !v1_only_ip; side++) {
		int e1 = rill__pp_format_address(a, side, s1, sizeof s1);
		int e2 = rill__pp_format_address(&b, side, s2, sizeof s2);
		if (e1 != e2 || (e1 == 0 && strcmp(s1, s2) != 0))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rill__pp_addrs a;
	int version = 0;
	const char *why = NULL;
	int r = rill__pp_parse(data, size, &a, &version, &why);
	if (r < 0 && why == NULL)
		abort();
	if (r <= 0)
		return 0;
	if ((size_t)r > size ||
	    (version == 1 ? r > RILL__PP1_MAX : r > RILL__PP2_MAX))
		abort();
	struct rill__pp_addrs p;
	for (size_t k = 0; k < (size_t)r; k++)
		if (rill__pp_parse(data, k, &p, &version, &why) != 0)
			abort();
	/* An address goes into log lines: never a control character. */
	char s[200];
	for (int side = 0; side < 2; side++)
		if (rill__pp_format_address(&a, side, s, sizeof s) == 0)
			for (const char *c = s; *c != '\0'; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7F)
					abort();
	rill__pp_parse(data, size, &a, &version, &why);
	check_round_trip(&a, version);
	return 0;
}
