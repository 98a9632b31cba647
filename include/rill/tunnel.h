/*
 * rill/tunnel.h - the requests a socks5+ or connect+ listener accepts.
 * Included by rill.h; do not include directly.
 *
 * Listening on "socks5+tcp://127.0.0.1:1080" or
 * "connect+tcp://127.0.0.1:3128" answers the SOCKS5 greeting or reads the
 * HTTP CONNECT request of every client (within the listener's handshake
 * deadline; malformed ones are answered with the protocol's error and
 * closed, and reach the accept callback as an error). The accepted flow
 * then carries the requested target, and no reply has been sent yet: the
 * program connects onward and answers with rill_tunnel_reply, so that the
 * client learns of success only once the onward connection exists, and
 * of a failure in the protocol's own terms.
 *
 * A program that never calls rill_tunnel_reply still works: the flow's
 * first read, write or shutdown sends the success reply first.
 */
#ifndef RILL_TUNNEL_H
#define RILL_TUNNEL_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The target the client of an accepted socks5+ or connect+ flow asked
 * for, as "HOST:PORT" or "[IPV6]:PORT" into buf. HOST is an IP literal
 * or a name of letters, digits, '-', '_' and '.' only (anything else was
 * refused during the handshake), so it can be put into a URI as it is.
 * The name is not resolved. Returns 0, -ENOTSUP (f is not such a flow:
 * only the top of the stack is looked at), -ENOSPC, RILL_EINVAL,
 * RILL_ECLOSED.
 */
RILL_EXTERN int rill_tunnel_target(struct rill_flow *f, char *buf, size_t len);

/*
 * Sends the reply to the client's request. status 0 is success (SOCKS5
 * 0x00, HTTP "200 Connection established"); an error code says why not,
 * in the protocol's terms:
 *
 *   status                              SOCKS5 reply      HTTP status
 *   -EACCES, -EPERM, RILL_EPROXY_DENIED  0x02 not allowed  403
 *   -ENETUNREACH                         0x03              502
 *   -EHOSTUNREACH, -ENOENT (no name)     0x04 host unr.    502
 *   RILL_ECONNREFUSED                    0x05 refused      502
 *   RILL_ETIMEDOUT                       0x06 TTL expired  504
 *   anything else                        0x01 failure      502
 *
 * cb (may be NULL) runs once the reply was written (rill_write's rules:
 * never after rill_close). After a failure reply, close the flow in cb.
 * After success, use the flow: its bytes are the tunnel's.
 * Returns 0, or synchronously (cb never called) -ENOTSUP (not an
 * accepted socks5+/connect+ flow), RILL_EALREADY (a reply went already,
 * maybe implicitly), RILL_EINVAL, RILL_ECLOSED, or rill_write's errors.
 */
RILL_EXTERN int rill_tunnel_reply(struct rill_flow *f, int status,
                                  rill_write_cb cb, void *ud);

#ifdef __cplusplus
}
#endif

#endif /* RILL_TUNNEL_H */
