/*
 * Standard input and output as one flow (URI "stdio:" or "-"): reads come
 * from fd 0, writes go to fd 1, through the socket core's fd mode.
 */
#include "transport/socket.h"

static const struct rill_flow_ops stdio_ops = RILL_SOCKET_OPS("stdio");

const struct rill_socket_family rill__stdio_family = {
    .name = "stdio",
    .ops = &stdio_ops,
    .tcp_options = false,
    .format = NULL,
};
