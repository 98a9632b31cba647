/*
 * xor_layer - an example of a third-party flow, written only against
 * rill/impl.h: a layer that XORs every byte with a key stream, so what
 * crosses the flow beneath is scrambled and what the user reads and
 * writes is plain. Both ends must use the same key.
 *
 * It is not encryption (the key stream is a linear congruential
 * generator); it exists to show how little a layer has to write, and it
 * passes the whole conformance suite stacked on the in-memory pair
 * (tests/test_conf_xor.c).
 */
#ifndef XOR_LAYER_H
#define XOR_LAYER_H

#include <stdint.h>

#include "rill.h"

/*
 * Stacks the XOR layer on inner. Consumes inner, even on failure (it is
 * then closed). Returns 0 and stores the new top flow in *out (the caller
 * closes it, which closes inner too), or RILL_EINVAL (inner or out NULL)
 * or RILL_ENOMEM.
 */
int xor_layer_attach(struct rill_flow *inner, uint32_t key,
                     struct rill_flow **out);

#endif
