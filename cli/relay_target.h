/*
 * rill relay's dynamic targets: a CONNECT_URI with {target}, behind a
 * socks5+ or connect+ listener. For each accepted flow: read the
 * requested target (rill_tunnel_target), check it against the
 * --allow-target patterns, resolve a name once and check every address,
 * then hand the relay the URI to connect to, with {target} replaced by
 * the checked address ("192.0.2.7:443", "[2001:db8::7]:443").
 */
#ifndef RILL_CLI_RELAY_TARGET_H
#define RILL_CLI_RELAY_TARGET_H

#include "rill.h"
#include "target_allow.h"

#define RELAY_TARGET_MARK "{target}"

/*
 * The outcome: status 0 and uri (the CONNECT_URI to use), or an error for
 * rill_tunnel_reply (RILL_EPROXY_DENIED, -EHOSTUNREACH...) and why (a
 * message for the log). requested is the client's HOST:PORT ("?" when
 * there is none). The strings live during the call only.
 */
typedef void (*relay_target_cb)(void *ud, int status, const char *requested,
                                const char *uri, const char *why);

/* Starts the check for client's request; cb runs exactly once, maybe
 * before this returns. Returns nothing: every failure goes through cb. */
void relay_target_start(uv_loop_t *loop, const struct target_allow *allow,
                        const char *connect_uri, struct rill_flow *client,
                        relay_target_cb cb, void *ud);

/* The CONNECT_URI with {target} replaced by a valid stand-in, for
 * checking its syntax at start; a new string (free it), NULL on ENOMEM. */
char *relay_target_sample(const char *connect_uri);

#endif
