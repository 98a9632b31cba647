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
	/*
	 * For a proxy+ layer (PROXY protocol): the source and destination of
	 * the connection being relayed, as rill_flow_address prints them
	 * ("tcp://192.0.2.1:5000", "tcp://[2001:db8::1]:443",
	 * "vsock://3:1024", "unix:/run/s"); the header then carries them.
	 * NULL (either): the header says LOCAL (v2) or UNKNOWN (v1). Copied
	 * by rill_connect; ignored without a proxy+ layer.
	 */
	const char *proxy_header_src;
	const char *proxy_header_dst;
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

/* ------------------------------------------------------------------------
 * Who is at the other end: peer identities and patterns (rill_flow_peer(3))
 */

enum rill_peer_kind {
	RILL_PEER_UNKNOWN = 0, /* not a socket rill can name the peer of */
	RILL_PEER_IP = 1,      /* TCP: addr, port */
	RILL_PEER_VSOCK = 2,   /* AF_VSOCK: cid, port */
	RILL_PEER_UNIX = 3,    /* Unix socket: uid, gid, pid (SO_PEERCRED) */
};

/*
 * The identity of a flow's peer, as the kernel reports it: never
 * anything the peer sent. For RILL_PEER_IP an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, an IPv4 client of a [::] listener) is given as IPv4.
 * For RILL_PEER_UNIX the credentials are those of the process that made
 * the peer socket, when it connected (SO_PEERCRED).
 */
struct rill_peer {
	int kind;          /* enum rill_peer_kind */
	bool ipv6;         /* RILL_PEER_IP: addr holds 16 bytes, else 4 */
	uint8_t addr[16];  /* RILL_PEER_IP: network byte order */
	uint32_t port;     /* RILL_PEER_IP and RILL_PEER_VSOCK */
	uint32_t cid;      /* RILL_PEER_VSOCK */
	uint32_t uid, gid; /* RILL_PEER_UNIX */
	int32_t pid;       /* RILL_PEER_UNIX */
};

/*
 * Fills *out with the identity of f's peer. A layer (tls+, shut+...)
 * reports the transport's beneath it. Returns 0 (kind may be
 * RILL_PEER_UNKNOWN: an in-memory pair, a vchan, a pipe...), RILL_EINVAL
 * (NULL argument), RILL_ECLOSED, or -errno from getpeername(2) (e.g.
 * -ENOTCONN once the peer went away).
 */
RILL_EXTERN int rill_flow_peer(struct rill_flow *f, struct rill_peer *out);

/*
 * The peer as a short text without the port, e.g. "192.0.2.7",
 * "2001:db8::1", "cid=3", "uid=1000", "unknown": the "source" that
 * rill relay's --max-per-source counts. Returns 0 or -ENOSPC.
 */
RILL_EXTERN int rill_peer_format(const struct rill_peer *p, char *buf,
                                 size_t len);

/* A set of peers (an allowlist entry), from rill_peer_pattern_parse. */
struct rill_peer_pattern {
	int kind;         /* RILL_PEER_IP, RILL_PEER_VSOCK or RILL_PEER_UNIX */
	bool ipv6;        /* RILL_PEER_IP: a 16-byte address */
	uint8_t addr[16]; /* RILL_PEER_IP: the network, host bits zero */
	unsigned prefix;  /* RILL_PEER_IP: 0..32 or 0..128 */
	uint32_t lo, hi;  /* RILL_PEER_VSOCK: CIDs lo..hi; UNIX: uid lo */
};

/*
 * Parses one pattern (the syntax of rill relay --allow):
 *   192.0.2.7, 192.0.2.0/24, 2001:db8::1, 2001:db8::/32, [::1]
 *       an IPv4 or IPv6 address or network (CIDR), for TCP peers; host
 *       bits after the prefix are ignored; ::ffff:a.b.c.d/N (N >= 96)
 *       is the IPv4 network a.b.c.d/(N-96);
 *   3, 3-9
 *       a vsock CID or an inclusive range of CIDs;
 *   uid=1000
 *       the user id of a Unix socket peer (SO_PEERCRED).
 * Numbers are decimal without sign or leading '+'. Returns 0, or
 * RILL_EINVAL with rill_last_errmsg() saying what is wrong. The text is
 * untrusted input: any byte string gives a result, never a crash.
 */
RILL_EXTERN int rill_peer_pattern_parse(const char *text,
                                        struct rill_peer_pattern *out);

/* Whether peer is in the set pat: same kind, and the address within the
 * network, the CID within the range, or the same uid. */
RILL_EXTERN bool rill_peer_match(const struct rill_peer_pattern *pat,
                                 const struct rill_peer *peer);

/*
 * An accept filter (rill_listen_opts.filter): true to take the
 * connection, false to refuse it. peer is valid during the call only.
 */
typedef bool (*rill_accept_filter)(struct rill_listener *l,
                                   const struct rill_peer *peer, void *ud);

struct rill_listen_opts {
	int backlog;         /* 0: 511 */
	bool keep_unix_path; /* do not unlink a Unix socket file on close */
	/*
	 * unix: paths only. When the path exists, replace it if it is a
	 * stale socket: a socket file owned by this process's effective
	 * uid that nobody answers on (a non-blocking connect is refused;
	 * its server died, say by kill -9). A live server's socket, another
	 * user's socket, or anything that is not a socket is never touched:
	 * rill_listen then fails with -EADDRINUSE and a message saying
	 * which. Off by default (rill relay, echo and http serve turn it
	 * on). A server that is starting (bound, not yet listening) looks
	 * stale for that instant.
	 */
	bool replace_stale_unix;
	/* Deadline for the layers' handshakes (TLS...) on each accepted
	 * connection, for the whole handshake however slowly its bytes
	 * come; 0: 10 s. */
	uint64_t handshake_timeout_ms;
	/*
	 * The layers' handshakes in flight at once (per listener, so per
	 * loop in a group; honoured when joining). When that many are
	 * running, a new connection cuts the oldest: its socket is shut
	 * down, its handshake fails and cb hears of it as any failed one
	 * (-EBUSY, "handshake cut"). An honest client answers at once, so
	 * it is never the oldest for long; silent connectors cannot pile up
	 * descriptors and layer state (about 50 KB each for TLS) until the
	 * deadline. A transport without a socket refuses the new connection
	 * instead (cb: -EBUSY). Transports without layers are not counted.
	 * 0: 1024; SIZE_MAX: no limit.
	 */
	size_t max_handshakes;
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
	 * other options but the filter are ignored when joining.
	 */
	struct rill_listener *join;
	/*
	 * Accept filter, optional: called for every connection as soon as
	 * the transport accepted it, before any layer's handshake (TLS...)
	 * and before cb, with the peer's identity (rill_flow_peer; kind
	 * RILL_PEER_UNKNOWN where the transport has none: refuse those
	 * unless you mean to take them). When it returns false the
	 * connection is closed at once and cb never hears of it: the
	 * filter logs if it wants to. It runs on the listener's loop (each
	 * listener of a group runs its own; it is honoured when joining).
	 * It must not close the listener. filter_ud is passed to it.
	 */
	rill_accept_filter filter;
	void *filter_ud;
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
