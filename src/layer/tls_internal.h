/* Internal interfaces of the TLS layer (src/layer/tls.c). */
#ifndef RILL_TLS_INTERNAL_H
#define RILL_TLS_INTERNAL_H

#include "rill/impl.h"

/* Takes one more reference to a configuration (rill_tls_config_free
 * drops one). */
void rill__tls_config_ref(struct rill_tls_config *c);

#endif
