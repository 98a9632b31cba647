/*
 * What a Xen vchan client reads from its untrusted server, parsed: the
 * xenstore values (ring-ref, event-channel, our own domid; decimal text)
 * and the control page's ring orders and grant references. Pure
 * functions (no Xen libraries), built with or without Xen, so that the
 * fuzz target (fuzz/fuzz_xen_store.c) reaches exactly the code the
 * client runs.
 */
#include <string.h>

#include "transport/vchan/ring.h"
#include "transport/vchan/xen/xen.h"

bool rill__xen_parse_u32(const char *s, size_t len, uint32_t *out)
{
	if (s == NULL || len == 0 || len > 10)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Pages of a ring of `order` outside the control page (0 inside it). */
static uint32_t xen_parse_ring_pages(int order)
{
	return order >= RILL__VCHAN_PAGE_SHIFT
	           ? 1u << (order - RILL__VCHAN_PAGE_SHIFT)
	           : 0;
}

int rill__xen_page_grants(const void *page, int *lo, int *ro,
                          uint32_t refs[RILL__XEN_MAX_GRANTS], uint32_t *n)
{
	/* The orders are read once: the server may change them later. */
	if (rill__vchan_read_orders(page, lo, ro) != 0 ||
	    *lo > RILL__VCHAN_XEN_MAX || *ro > RILL__VCHAN_XEN_MAX)
		return RILL_ERING;
	uint32_t total = xen_parse_ring_pages(*lo) + xen_parse_ring_pages(*ro);
	if (total > RILL__XEN_MAX_GRANTS)
		return RILL_ERING; /* cannot happen with orders <= 20 */
	/* One copy of the references, for the same reason. */
	memcpy(refs, (const uint8_t *)page + sizeof(struct rill__vchan_page),
	       total * sizeof refs[0]);
	*n = total;
	return 0;
}
