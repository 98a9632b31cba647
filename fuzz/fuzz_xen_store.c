/*
 * Fuzz target: what a Xen vchan client takes from its server before it
 * maps anything (src/transport/vchan/xen/parse.c). The input is
 * "RINGREF\nEVTCHN\nPAGE": the two xenstore values (not NUL-terminated,
 * as xs_read returns them, each in a heap block of exactly its size so
 * that ASan sees an over-read) and the first bytes of the control page
 * (the rest of the 4096-byte page is zero). A value must parse only when
 * it is the plain decimal of a u32; the page must give valid orders
 * within Xen's limits or RILL_ERING, and exactly the grant references
 * its rings need, copied from the page.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"
#include "transport/vchan/ring.h"
#include "transport/vchan/xen/xen.h"

#define FUZZ_CHECK(c)                     \
	do {                              \
		if (!(c))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The reference: the same value through snprintf round-trip. */
static void fuzz_value(const uint8_t *v, size_t n)
{
	char *s = malloc(n > 0 ? n : 1);
	if (s == NULL)
		abort();
	memcpy(s, v, n);
	uint32_t out = 0;
	bool ok = rill__xen_parse_u32(s, n, &out);
	if (ok) {
		char back[16];
		int k = snprintf(back, sizeof back, "%u", out);
		/* Leading zeros are accepted: compare the digits' value. */
		size_t z = 0;
		while (z + 1 < n && s[z] == '0')
			z++;
		FUZZ_CHECK((size_t)k == n - z &&
		           memcmp(back, s + z, n - z) == 0);
	} else {
		bool digits = n > 0 && n <= 10;
		uint64_t v64 = 0;
		for (size_t i = 0; digits && i < n; i++) {
			digits = s[i] >= '0' && s[i] <= '9';
			v64 = v64 * 10 + (uint64_t)(s[i] - '0');
		}
		FUZZ_CHECK(!digits || v64 > UINT32_MAX);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size, *p = data;
	for (int i = 0; i < 2; i++) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		fuzz_value(p, (size_t)(nl - p));
		p = nl < end ? nl + 1 : end;
	}
	uint8_t *page = calloc(1, RILL__VCHAN_PAGE);
	if (page == NULL)
		abort();
	size_t n = (size_t)(end - p);
	memcpy(page, p, n < RILL__VCHAN_PAGE ? n : RILL__VCHAN_PAGE);
	uint32_t refs[RILL__XEN_MAX_GRANTS], nrefs = 0;
	int lo = -1, ro = -1;
	int err = rill__xen_page_grants(page, &lo, &ro, refs, &nrefs);
	if (err == 0) {
		FUZZ_CHECK(rill__vchan_check_orders(lo, ro) == 0);
		FUZZ_CHECK(lo <= RILL__VCHAN_XEN_MAX &&
		           ro <= RILL__VCHAN_XEN_MAX);
		uint32_t want = (lo >= 12 ? 1u << (lo - 12) : 0) +
		                (ro >= 12 ? 1u << (ro - 12) : 0);
		FUZZ_CHECK(nrefs == want && nrefs <= RILL__XEN_MAX_GRANTS);
		FUZZ_CHECK(memcmp(refs, page + 24, nrefs * 4) == 0);
	} else {
		FUZZ_CHECK(err == RILL_ERING);
	}
	free(page);
	return 0;
}
