/*
 * The tunnel layers (socks5+, connect+, proxy+) share one flow and one
 * handshake engine (engine.c); each protocol (socks5.c, connect.c,
 * proxy.c) writes only its steps.
 *
 * A handshake is a chain of steps in continuation style: a step looks at
 * the bytes gathered so far (acc), and either asks for more
 * (tun_need(t, same_step)), sends something and goes on
 * (tun_send(t, bytes, len, next_step)), fails (tun_fail), or ends
 * (tun_ready): the layered flow then goes to whoever attached it. Bytes
 * that arrived after the handshake's last message stay in acc and are
 * the flow's first read. The whole handshake runs under the attach's
 * deadline, counted from the attach: each read and write of a step gets
 * what is left of it as the inner flow's read or write deadline (cleared
 * at the end), so a peer that trickles its message a byte at a time
 * gets no more time than a silent one.
 *
 * On the accepting side of socks5+ and connect+ the handshake ends with
 * the request read; the reply waits for rill_tunnel_reply (or goes out as
 * success with the flow's first read, write or shutdown).
 */
#ifndef RILL_LAYER_TUNNEL_H
#define RILL_LAYER_TUNNEL_H

#include "core/core.h"
#include "core/scheme.h"
#include "layer/tunnel/wire.h"

/* The handshake deadline when the attach gives none (a connect without
 * timeout_ms). */
#define TUN_DEFAULT_DEADLINE_MS 30000u

struct tun;
typedef void (*tun_step)(struct tun *t);

/* What a protocol adds to the engine. */
struct tun_proto {
	const char *name; /* "socks5" */
	/* The reply to a request for status (0 or an error code) into out
	 * (>= 256 bytes); its length. NULL for a protocol without replies. */
	size_t (*reply)(int status, uint8_t *out);
};

struct tun {
	struct rill_layer l;
	const struct tun_proto *proto;
	int role;
	uint8_t *acc; /* gathered handshake bytes, then the first read */
	size_t acc_len, acc_max, acc_cap;
	tun_step next;
	uint64_t deadline; /* the handshake's end, in loop time (ms) */
	rill_attach_cb cb; /* the attach in progress; NULL once done */
	void *ud;
	bool reply_pending;     /* accepting side: no reply sent yet */
	rill_write_cb reply_cb; /* rill_tunnel_reply's */
	void *reply_ud;
	bool have_target;
	struct rill__tun_target target;
	/* proxy+: the addresses the header gave (family LOCAL: none). */
	struct rill__pp_addrs pp;
	int state;        /* the protocol's own */
	const char *note; /* why a refusal was sent (static) */
	char *user, *pass;
};

/*
 * Makes the layer over inner (consumed) with the engine's ops under the
 * name proto->name, acc_max bytes for the handshake and deadline_ms (0:
 * none). NULL on ENOMEM (inner closed, rill_last_errmsg set).
 */
struct tun *tun_new(struct rill_flow *inner, const struct tun_proto *proto,
                    const struct rill_flow_ops *ops, int role,
                    uint64_t deadline_ms, rill_attach_cb cb, void *ud);

/* The engine's ops for a protocol (a table per protocol, for the kind
 * name): name, then the engine's functions. */
#define TUN_OPS(kind)                                                   \
	{                                                               \
		.version = RILL_FLOW_OPS_VERSION, .name = kind,         \
		.read = rill__tun_read, .write = rill__tun_write,       \
		.shutdown_write = rill__tun_shutdown_write,             \
		.shutdown_read = rill_layer_shutdown_read,              \
		.close = rill__tun_close, .address = rill__tun_address, \
		.set_nodelay = rill_layer_set_nodelay,                  \
		.set_keepalive = rill_layer_set_keepalive,              \
	}
void rill__tun_read(struct rill_flow *f);
void rill__tun_write(struct rill_flow *f, struct rill_buf *const *bufs,
                     size_t n);
void rill__tun_shutdown_write(struct rill_flow *f);
void rill__tun_close(struct rill_flow *f);
int rill__tun_address(struct rill_flow *f, int which, char *buf, size_t len);

/* Reads more from the inner flow into acc, then runs next. */
void tun_need(struct tun *t, tun_step next);
/* Writes len bytes (copied) to the inner flow, then runs next. */
void tun_send(struct tun *t, const void *bytes, size_t len, tun_step next);
/* Drops the first n bytes of acc. */
void tun_consume(struct tun *t, size_t n);
/* Ends the handshake with an error: closes the stack and reports. */
void tun_fail(struct tun *t, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends the handshake: the flow goes to the attach's callback. */
void tun_ready(struct tun *t);
/* Starts: runs first (which usually sends or asks for bytes). */
void tun_start(struct tun *t, tun_step first);

/* The host of a target as the TLS layer would name it; for the URI
 * parameter "target" (HOST:PORT) of socks5+ and connect+. */
int tun_uri_target(const struct rill_uri *u, struct rill__tun_target *t);

#endif
