/* Internal interfaces of the TLS layer (src/layer/tls.c). */
#ifndef RILL_TLS_INTERNAL_H
#define RILL_TLS_INTERNAL_H

#include "rill/impl.h"

/* Takes one more reference to a configuration (rill_tls_config_free
 * drops one). */
void rill__tls_config_ref(struct rill_tls_config *c);

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
