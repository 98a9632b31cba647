/*
 * The registry's list of every scheme object (src/uri.c): each is defined
 * by its module (a transport or a layer) and known to the rest of rill
 * only through this list, so addressing points one way: down.
 */
#ifndef RILL_SCHEMES_H
#define RILL_SCHEMES_H

#include "core/scheme.h"

/* Transports (src/transport/). */
extern const struct rill_transport_scheme rill__tcp_scheme;
extern const struct rill_transport_scheme rill__unix_scheme;
extern const struct rill_transport_scheme rill__stdio_scheme;
extern const struct rill_transport_scheme rill__exec_scheme;
extern const struct rill_transport_scheme rill__fd_scheme;
extern const struct rill_transport_scheme rill__vsock_scheme;
extern const struct rill_transport_scheme rill__hvsock_scheme;
extern const struct rill_transport_scheme rill__hybrid_vsock_scheme;
extern const struct rill_transport_scheme rill__hyperkit_scheme;
extern const struct rill_transport_scheme rill__vchan_scheme;
extern const struct rill_transport_scheme rill__xen_vchan_scheme;

/* Layers (src/layer/). */
extern const struct rill_layer_scheme rill__shut_scheme;
extern const struct rill_layer_scheme rill__tls_scheme;
extern const struct rill_layer_scheme rill__socks5_scheme;
extern const struct rill_layer_scheme rill__connect_scheme;
extern const struct rill_layer_scheme rill__proxy_scheme;
extern const struct rill_layer_scheme rill__ws_scheme;

#endif
