/*
 * --allow PATTERN for the listening subcommands (relay, echo, http
 * serve): an allowlist of peers (rill_peer_pattern_parse), checked by the
 * listener's accept filter before any layer's handshake.
 */
#ifndef RILL_CLI_ALLOW_H
#define RILL_CLI_ALLOW_H

#include "cli.h"

/* At most this many --allow patterns: a bound like every other. */
#define CLI_ALLOW_MAX 1024

struct cli_allow {
	struct rill_peer_pattern *pats;
	size_t n;
	bool log;        /* print a line for each refused peer */
	const char *cmd; /* "echo"... for the log line */
};

/* Adds one pattern. 0, or 2 after printing a usage error (bad pattern,
 * too many, out of memory). */
int cli_allow_add(struct cli_allow *a, const char *cmd, const char *text);

/* True when a has no pattern (everyone is allowed) or one matches. */
bool cli_allow_match(const struct cli_allow *a, const struct rill_peer *peer);

/* The peer with its port (for log lines): "tcp://192.0.2.7:4242",
 * "vsock://3:1234", "uid=1000 pid=42", "unknown". */
void cli_peer_text(const struct rill_peer *p, char *buf, size_t len);

/* An accept filter (rill_listen_opts.filter, ud: a struct cli_allow):
 * refuses peers that match no pattern, with a line on stderr when
 * a->log: "rill CMD: PEER end=denied". */
bool cli_allow_filter(struct rill_listener *l, const struct rill_peer *peer,
                      void *ud);

/* The listen options with a's filter, in *o; NULL when a is empty. */
const struct rill_listen_opts *cli_allow_opts(struct cli_allow *a,
                                              struct rill_listen_opts *o);

void cli_allow_free(struct cli_allow *a);

#endif
