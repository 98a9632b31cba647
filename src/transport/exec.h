/* The exec: transport (exec.c): a child process's standard input and
 * output as a flow. For the scheme registry in uri.c. */
#ifndef RILL_TRANSPORT_EXEC_H
#define RILL_TRANSPORT_EXEC_H

#include "uri.h"

extern const struct rill_transport_scheme rill__exec_scheme;

#endif
