/* The vsock family of transports (vsock.c): socket families and URI
 * schemes, for the scheme registry in uri.c. */
#ifndef RILL_TRANSPORT_VSOCK_H
#define RILL_TRANSPORT_VSOCK_H

#include "core/scheme.h"

/* The AF_VSOCK socket family (also for inherited vsock sockets, fd.c). */
extern const struct rill_socket_family rill__vsock_family;

#endif
