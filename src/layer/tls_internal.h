/* Internal interfaces of the TLS layer (src/layer/tls.c). */
#ifndef RILL_TLS_INTERNAL_H
#define RILL_TLS_INTERNAL_H

#include "rill/impl.h"

/* Takes one more reference to a configuration (rill_tls_config_free
 * drops one). */
void rill__tls_config_ref(struct rill_tls_config *c);

/* Drops one reference; returns how many are left (the caller frees
 * nothing: for release hooks). */
int rill__tls_config_unref(struct rill_tls_config *c);

/*
 * Makes rill_tls_config_free(c) call release(c) instead of dropping the
 * reference itself: release drops it (rill__tls_config_unref) under the
 * lock of a cache that lists c, unlists c when it was the last, and
 * returns true then (c is freed).
 */
void rill__tls_config_set_release(struct rill_tls_config *c,
                                  bool (*release)(struct rill_tls_config *));

/*
 * rill_tls_attach with a handshake deadline that overrides the
 * configuration's (0: keep the configuration's).
 */
int rill__tls_attach(struct rill_flow *inner, struct rill_tls_config *cfg,
                     uint64_t deadline_ms, rill_tls_attach_cb cb, void *ud);

/* The "tls" layer scheme for the URI registry (src/uri.c). */
struct rill_layer_scheme;
extern const struct rill_layer_scheme rill__tls_scheme;

#endif
