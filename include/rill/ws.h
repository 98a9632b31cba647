/*
 * rill/ws.h - WebSocket (RFC 6455) as a layer on any flow.
 * Included by rill.h; do not include directly.
 *
 * A WebSocket flow carries a byte stream in messages:
 *
 *   writes    each rill_write / rill_writev is one binary message, sent
 *             in frames of at most 256 KiB (masked by a client, not by a
 *             server, as the RFC requires);
 *   reads     deliver the payload bytes of binary and text messages as
 *             one stream; message boundaries are not kept. Text is
 *             checked as UTF-8 as it arrives. Fragmented messages and
 *             control frames between fragments are handled; pings are
 *             answered.
 *
 * Closing follows the Close handshake:
 *
 *   rill_shutdown(RILL_SHUT_WR)  finishes the queued writes, then sends
 *             Close 1000 and shuts down the write side of the flow below.
 *   the peer's Close  reads report RILL_EOF after the data before it
 *             when its status is 1000 (normal), 1001 (going away) or none;
 *             any other status reads as RILL_EWS, and rill_ws_close_code
 *             tells which. The Close is answered once the write in
 *             progress (one message) is finished; writes after that fail
 *             RILL_ECLOSED.
 *   rill_close  sends Close 1000 (if not sent yet) and waits in the
 *             background, at most 2 s, for the peer's Close before
 *             closing the flow below.
 *
 * So half-close is partial, as RFC 6455 allows no more: after one side
 * shut down its writes, the other may finish the message it is writing,
 * then its writes fail. (Put the shut+ layer over ws+, as in
 * shut+ws+tcp://..., for a full half-close.) A peer that violates the protocol
 * (an unmasked client frame, reserved bits or opcodes, a control frame over 125
 * bytes or fragmented, invalid UTF-8 in text, a message over max_message) gets
 * a Close with the RFC's code (1002, 1007, 1009) and reads report RILL_EWS. A
 * flow below that ends without a Close reads as RILL_EWS (1006).
 *
 * What is trusted: nothing of the peer's. A handshake head is at most
 * 8 KiB and 64 header lines and must arrive within the handshake
 * deadline; a message at most max_message bytes. The layer holds at most
 * one read of the flow below and the payload taken from it while the
 * reader is slow, and at most 64 KiB of control frames to send (it stops
 * reading while more wait).
 */
#ifndef RILL_WS_H
#define RILL_WS_H

#ifdef __cplusplus
extern "C" {
#endif

enum { RILL_WS_CLIENT = 0, RILL_WS_SERVER = 1 };

struct rill_ws_opts {
	/* Client: the request target ("/" when NULL). Server: the only
	 * target accepted (NULL: any); others get 404. */
	const char *path;
	/* Client: the Host header ("localhost" when NULL). */
	const char *host;
	/* Client: the Origin header (none when NULL). Server: the only
	 * Origin accepted (NULL: any); others get 403. */
	const char *origin;
	/* Comma-separated subprotocols ("binary"). Client: offered; the
	 * server must pick one of them or none. Server: the first of these
	 * that the client offers is chosen; none is chosen when the client
	 * offers none of them. */
	const char *subprotocols;
	/* Sends a ping every ping_ms; when nothing arrived from the peer
	 * by the next one (while the reader keeps up), reads and writes
	 * fail RILL_ETIMEDOUT. 0: no pings. */
	uint64_t ping_ms;
	/* Largest message (and frame) accepted; 0: 64 MiB. Larger ones are
	 * refused with Close 1009. */
	uint64_t max_message;
	/* The handshake must complete within this; 0: 10 s. */
	uint64_t handshake_timeout_ms;
};

/* Attach completion: f is the WebSocket flow (the caller owns it) with
 * status 0, or NULL with an error (inner already closed). */
typedef void (*rill_ws_attach_cb)(struct rill_flow *f, int status, void *ud);

/*
 * Makes a WebSocket over inner, a connected flow of any kind: as
 * RILL_WS_CLIENT sends the Upgrade request and checks the answer; as
 * RILL_WS_SERVER reads the request and answers it (101, or 400 / 403 /
 * 404 / 426 with a reason, and the attach fails RILL_EHANDSHAKE). opts
 * may be NULL (defaults) and is copied. Consumes inner even on failure.
 * Returns 0 and calls cb once from the loop, or an error (RILL_EINVAL,
 * RILL_ENOMEM) without calling cb. Errors through cb: RILL_EHANDSHAKE
 * (the peer refused or is not a WebSocket; rill_last_errmsg says why,
 * when read inside cb), RILL_ETIMEDOUT, or the flow below's error.
 */
RILL_EXTERN int rill_ws_attach(struct rill_flow *inner, int role,
                               const struct rill_ws_opts *opts,
                               rill_ws_attach_cb cb, void *ud);

/*
 * Upgrades a server exchange of rill_http_server (include/rill/http.h)
 * whose request asks for a WebSocket: checks it as rill_ws_attach does,
 * answers 101 (or the error, and then fails RILL_EHANDSHAKE; the
 * exchange is answered and should be closed), and takes the connection
 * out of the HTTP server. On success ex is finished: close it (any
 * time). Returns 0 and calls cb once from the loop, or an error without
 * calling cb: RILL_EINVAL (not a server exchange, response started),
 * RILL_EHANDSHAKE (not a valid Upgrade request: the error response was
 * sent), RILL_ENOMEM.
 */
RILL_EXTERN int rill_ws_accept(struct rill_flow *ex,
                               const struct rill_ws_opts *opts,
                               rill_ws_attach_cb cb, void *ud);

/* True when f is a WebSocket flow. */
RILL_EXTERN bool rill_flow_is_ws(struct rill_flow *f);
/* The subprotocol agreed on, or NULL (none, or not a WebSocket). */
RILL_EXTERN const char *rill_ws_subprotocol(struct rill_flow *f);
/* The status of the peer's Close (1005 when it had none), or 0 when no
 * Close arrived yet or f is not a WebSocket. */
RILL_EXTERN int rill_ws_close_code(struct rill_flow *f);

#ifdef __cplusplus
}
#endif

#endif /* RILL_WS_H */
