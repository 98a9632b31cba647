/* The vsock family of transports (vsock.c): socket families and URI
 * schemes, for the scheme registry in uri.c. */
#ifndef RILL_TRANSPORT_VSOCK_H
#define RILL_TRANSPORT_VSOCK_H

#include "uri.h"

/* The AF_VSOCK socket family (also for inherited vsock sockets, fd.c). */
extern const struct rill_socket_family rill__vsock_family;

extern const struct rill_transport_scheme rill__vsock_scheme;
extern const struct rill_transport_scheme rill__hvsock_scheme;
extern const struct rill_transport_scheme rill__hybrid_vsock_scheme;
extern const struct rill_transport_scheme rill__hyperkit_scheme;

#endif
