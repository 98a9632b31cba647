/*
 * rill/net.h - opening flows by URI: connect, listen, addresses, options.
 * Included by rill.h; do not include directly.
 *
 * A URI names a flow: layers joined by '+' in front of a transport
 * (see doc/uri.md), e.g. "tcp://127.0.0.1:80", "unix:/run/x.sock",
 * "unix:@abstract", "shut+unix:/tmp/s", "tls+tcp://host:443?ca=FILE", "-".
 * Whether a URI connects or listens is the caller's choice.
 */
#ifndef RILL_NET_H
#define RILL_NET_H

#ifdef __cplusplus
extern "C" {
#endif

struct rill_listener;

/*
 * The message that explains the last synchronous failure of rill_connect,
 * rill_listen or rill_uri_check on this thread, e.g.
 * `bad port "70000" in "tcp://h:70000"`. Every call of those (and of the
 * blocking rill_connect_sync) starts by emptying it, so a later success
 * empties it too: read it right after the call that failed. Empty string
 * when there is none.
 */
RILL_EXTERN const char *rill_last_errmsg(void);

/* Parses uri without opening anything. 0, or RILL_EURI (see
 * rill_last_errmsg). */
RILL_EXTERN int rill_uri_check(const char *uri);

struct rill_connect_opts {
	/* Deadline for the whole connect, handshakes included; 0: none. */
	uint64_t timeout_ms;
	/* Retry a refused (or not yet existing) endpoint until this many ms
	 * have passed since the call; 0: try once. */
	uint64_t retry_until_ms;
};

/*
 * Connect callback: status 0 and a new flow the callee owns (and must
 * rill_close), or a negative error with f NULL and errmsg (never NULL)
 * saying what failed, e.g. "connect tcp://127.0.0.1:9: connection
 * refused". errmsg is valid during the callback only.
 */
typedef void (*rill_connect_cb)(struct rill_flow *f, int status,
                                const char *errmsg, void *ud);

/*
 * Opens a flow to uri. opts may be NULL (defaults). Names are resolved
 * asynchronously and every address is tried in order. Errors through cb:
 * RILL_ECONNREFUSED, RILL_ETIMEDOUT (deadline), -EAI_* style DNS failures
 * mapped to -ENOENT... see doc/uri.md for the full list.
 * Returns 0, or synchronously (cb never called) RILL_EURI for a bad URI,
 * RILL_EINVAL, RILL_ENOMEM; rill_last_errmsg() explains.
 */
RILL_EXTERN int rill_connect(uv_loop_t *loop, const char *uri,
                             const struct rill_connect_opts *opts,
                             rill_connect_cb cb, void *ud);

/* rill_connect() run to completion; *out gets the flow. On error the
 * message is in rill_last_errmsg(). Same -EDEADLK rule as rill_read_sync. */
RILL_EXTERN int rill_connect_sync(uv_loop_t *loop, const char *uri,
                                  const struct rill_connect_opts *opts,
                                  struct rill_flow **out);

struct rill_listen_opts {
	int backlog;         /* 0: 511 */
	bool keep_unix_path; /* do not unlink a Unix socket file on close */
	/* Deadline for the layers' handshakes (TLS...) on each accepted
	 * connection; 0: 10 s. */
	uint64_t handshake_timeout_ms;
	/*
	 * A listener group, to spread connections over several loops (one
	 * per thread): with join set, this listener opens no socket; it
	 * joins `join`, a listener that rill_listen opened on another loop
	 * for the same transport. That one accepts, and hands the
	 * connections in turn (round robin over the group, itself included)
	 * to the group's listeners, as bare sockets: each becomes a flow on
	 * its listener's loop, where that listener's layers (from its own
	 * URI: tls+..., shut+...) do their handshakes and its callback runs.
	 * Every flow so stays on one loop for its whole life.
	 * Call rill_listen for a joining listener on its loop's thread, or
	 * before that loop runs; close each listener on its own loop's
	 * thread. Closing the joined one stops accepting for the whole
	 * group (the others then get nothing more). Transports: tcp, unix,
	 * vsock, hybrid-vsock, hyperkit, vchan; others give -ENOTSUP. The
	 * other options are ignored when joining.
	 */
	struct rill_listener *join;
};

/*
 * Accept callback: status 0 and a new flow the callee owns, or a negative
 * error for one failed incoming connection (f NULL; e.g. a failed TLS
 * handshake, errmsg explains). The listener keeps listening either way.
 */
typedef void (*rill_accept_cb)(struct rill_listener *l, struct rill_flow *f,
                               int status, const char *errmsg, void *ud);

/*
 * Listens on uri; calls cb for every accepted flow until
 * rill_listener_close(). opts may be NULL. SO_REUSEADDR is set on TCP.
 * Returns 0 and stores the listener in *out, or a negative error
 * synchronously (-EADDRINUSE, -EACCES, RILL_EURI...; rill_last_errmsg()).
 */
RILL_EXTERN int rill_listen(uv_loop_t *loop, const char *uri,
                            const struct rill_listen_opts *opts,
                            rill_accept_cb cb, void *ud,
                            struct rill_listener **out);

/* Stops listening and frees the listener (and removes its Unix socket
 * file unless keep_unix_path). No callback after it returns. Accepted
 * flows are not affected. NULL is a no-op. */
RILL_EXTERN void rill_listener_close(struct rill_listener *l);

/* A URI that connects to this listener, e.g. "tcp://127.0.0.1:41234"
 * when it was opened on port 0. A vsock listener on any CID names this
 * machine's CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID: a guest's own, 2 on a
 * host with vhost_vsock), or "local" (CID 1) when the kernel knows none
 * (doc/uri.md). Returns 0, or -ENOSPC if len is short. */
RILL_EXTERN int rill_listener_uri(struct rill_listener *l, char *buf,
                                  size_t len);

enum rill_addr_which { RILL_ADDR_LOCAL = 0, RILL_ADDR_PEER = 1 };

/*
 * Printable local or peer address of a flow (Mirage's src/dst), e.g.
 * "tcp://[::1]:5000" or "unix:/tmp/s". A layer reports its transport's.
 * Returns 0, -ENOTSUP (flow has no address), -ENOSPC, RILL_ECLOSED.
 */
RILL_EXTERN int rill_flow_address(struct rill_flow *f, int which, char *buf,
                                  size_t len);

/* TCP_NODELAY (Mirage's write_nodelay). -ENOTSUP on non-TCP flows. */
RILL_EXTERN int rill_flow_set_nodelay(struct rill_flow *f, bool on);

/* TCP keepalive: first probe after `after_s` idle seconds, then every
 * `interval_s`, giving up after `probes`. on=false disables. -ENOTSUP on
 * non-TCP flows. */
RILL_EXTERN int rill_flow_set_keepalive(struct rill_flow *f, bool on,
                                        unsigned after_s, unsigned interval_s,
                                        unsigned probes);

#ifdef __cplusplus
}
#endif

#endif /* RILL_NET_H */
