/* The conformance suite on the in-memory pair, at two capacities: the
 * default (256 KiB) and a tiny one, where every write waits for the
 * reader many times over. */
#include "conformance.h"

static int pair_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                     struct rill_flow **b)
{
	return rill_pair(loop, (size_t)(uintptr_t)arg, a, b);
}

static const struct conf_factory pair_factory = {
    .name = "pair",
    .make = pair_make,
};
CONF_REGISTER(pair_factory)

static const struct conf_factory pair_tiny_factory = {
    .name = "pair-tiny",
    .make = pair_make,
    .arg = (void *)(uintptr_t)1000,
    .big_bytes = 4u * 1024 * 1024,
};
CONF_REGISTER(pair_tiny_factory)
