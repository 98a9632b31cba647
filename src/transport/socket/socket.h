/*
 * The socket core (doc/architecture.md): one flow implementation
 * for every stream socket family, parameterised by the family's address
 * formatting, as ocaml-hvsock's Af_common is. TCP v4/v6, Unix and stdio use
 * it now; AF_VSOCK, AF_HYPERV, hybrid vsock and HyperKit reuse it.
 *
 * A socket flow owns a non-blocking fd (or, for stdio, a pair of fds)
 * watched by a libuv uv_poll_t. Reads are optimistic (read(2) first, poll
 * only on EAGAIN) into a reusable 256 KiB chunk of which each read hands
 * out a slice; writes map to one sendmsg(2)/writev(2) per attempt and
 * resume after partial writes.
 *
 * Errors: reads report RILL_EOF at end of stream, RILL_ECONNRESET on a
 * reset; writes report RILL_ECLOSED when the peer is gone (EPIPE or
 * ECONNRESET); everything else is -errno.
 */
#ifndef RILL_TRANSPORT_SOCKET_H
#define RILL_TRANSPORT_SOCKET_H

#include <sys/socket.h>

#include "core/scheme.h"

/*
 * What differs between socket families. One static const instance per
 * family; it must outlive every flow and listener made with it.
 */
struct rill_socket_family {
	/* The flow kind and URI scheme, e.g. "tcp", "unix", "vsock". */
	const char *name;
	/* The ops table of flows of this family: use RILL_SOCKET_OPS(name). */
	const struct rill_flow_ops *ops;
	/* The flows' kind when it is not ops->name, so that families that
	 * differ only in name share one table (rill_flow_set_kind). */
	const char *kind;
	/* TCP_NODELAY and keepalive apply (else -ENOTSUP). */
	bool tcp_options;
	/* The peer takes shutdown(SHUT_WR) as the end of both directions
	 * (a VMM's vsock muxer): flows refuse a write shutdown alone
	 * (rill_flow_set_half_close). */
	bool no_half_close;
	/*
	 * Writes the URI of an address ("tcp://[::1]:80", "unix:@x") into
	 * buf. `listener` is true for a listener's own address, where a
	 * wildcard address should become one a client can connect to.
	 * Returns 0, -ENOSPC, or -EAFNOSUPPORT.
	 */
	int (*format)(const struct sockaddr *sa, socklen_t len, bool listener,
	              char *buf, size_t cap);
	/*
	 * Optional: what a failed connect's -errno means in this family
	 * (AF_VSOCK reports a refusal as ECONNRESET: RILL_ECONNREFUSED).
	 * Applied before the message, the retry decision and the callback.
	 */
	int (*connect_error)(int err);
};

/* The operations shared by every socket family (see struct rill_flow_ops). */
void rill__socket_read(struct rill_flow *f);
void rill__socket_read_into(struct rill_flow *f, struct rill_read_into *ri);
int rill__socket_write_file(struct rill_flow *f, int fd, uint64_t offset,
                            uint64_t length);
void rill__socket_write(struct rill_flow *f, struct rill_buf *const *bufs,
                        size_t n);
void rill__socket_shutdown_write(struct rill_flow *f);
void rill__socket_shutdown_read(struct rill_flow *f);
void rill__socket_close(struct rill_flow *f);
int rill__socket_address(struct rill_flow *f, int which, char *buf, size_t len);
int rill__socket_set_nodelay(struct rill_flow *f, bool on);
int rill__socket_set_keepalive(struct rill_flow *f, bool on, unsigned after_s,
                               unsigned interval_s, unsigned probes);
int rill__socket_fd(struct rill_flow *f);

/* An ops table initializer for a family named `kind`, e.g.
 *   static const struct rill_flow_ops vsock_ops = RILL_SOCKET_OPS("vsock");
 */
#define RILL_SOCKET_OPS(kind)                                                 \
	{                                                                     \
		.version = RILL_FLOW_OPS_VERSION, .name = (kind),             \
		.read = rill__socket_read, .write = rill__socket_write,       \
		.shutdown_write = rill__socket_shutdown_write,                \
		.shutdown_read = rill__socket_shutdown_read,                  \
		.close = rill__socket_close, .address = rill__socket_address, \
		.set_nodelay = rill__socket_set_nodelay,                      \
		.set_keepalive = rill__socket_set_keepalive,                  \
		.fd = rill__socket_fd, .read_into = rill__socket_read_into,   \
		.write_file = rill__socket_write_file,                        \
	}

/*
 * A flow over a connected stream socket fd. Takes ownership of fd: it is
 * made non-blocking and close-on-exec, and closed with the flow, or at once
 * if this fails. Returns 0 and *out, or -errno / RILL_ENOMEM.
 */
int rill__socket_flow_new(uv_loop_t *loop, int fd,
                          const struct rill_socket_family *fam,
                          struct rill_flow **out);

/*
 * A flow reading rfd and writing wfd that it does NOT own (stdio): fds that
 * can be polled (pipes, sockets, ttys) are made non-blocking and their
 * flags are restored on close; others (regular files, /dev/null) are used
 * with plain blocking calls, which never wait long on such files.
 * shutdown(write) on a non-socket replaces wfd with /dev/null (dup2) so the
 * reader of the pipe sees end of file. rfd or wfd may be -1 (reads report
 * EOF / writes fail with RILL_ECLOSED). Sockets are written with
 * MSG_NOSIGNAL, but writev(2) to a pipe whose reader left raises SIGPIPE:
 * programs using stdio flows should ignore it (rill cat and echo do), and
 * then get RILL_ECLOSED.
 */
int rill__socket_flow_new_fds(uv_loop_t *loop, int rfd, int wfd,
                              const struct rill_socket_family *fam,
                              struct rill_flow **out);

/*
 * A flow reading the socket rfd and writing the socket wfd, two different
 * fds it owns (the exec transport: a child's stdout and stdin). Both are
 * made non-blocking and close-on-exec and closed with the flow, or at once
 * if this fails. Writes use MSG_NOSIGNAL, shutdown(write) is
 * shutdown(wfd, SHUT_WR) and shutdown(read) shutdown(rfd, SHUT_RD). No
 * splice fast path (ops->fd says -1). Returns 0 and *out, or RILL_EINVAL
 * (rfd == wfd, a negative fd), -errno, RILL_ENOMEM.
 */
int rill__socket_flow_new_split(uv_loop_t *loop, int rfd, int wfd,
                                const struct rill_socket_family *fam,
                                struct rill_flow **out);

/* One address to connect to. */
struct rill__sockaddr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/*
 * Connects a stream socket of fam to addrs[0..n) in order, the first that
 * accepts wins. label names the target in messages ("tcp://h:80").
 * timeout_ms (0: none) bounds the whole attempt: -ETIMEDOUT. With
 * retry_until_ms > 0, refused (or missing Unix path) connects are retried
 * until that many ms have passed since the call. A Unix listener whose
 * backlog is full (EAGAIN) is retried until the deadline.
 * Completion through cb exactly once, never inside this call: a new flow
 * or an error with a message "connect <label> (<addr>): <reason>".
 * Returns 0, or RILL_EINVAL / RILL_ENOMEM synchronously.
 */
int rill__socket_connect(uv_loop_t *loop, const struct rill_socket_family *fam,
                         const struct rill__sockaddr *addrs, size_t n,
                         const char *label, uint64_t timeout_ms,
                         uint64_t retry_until_ms, rill_connect_cb cb, void *ud);

/*
 * As rill__socket_connect, but completes with the connected socket itself
 * (non-blocking, close-on-exec, owned by the callee) instead of a flow,
 * for protocols that speak over the socket before any flow exists (the
 * vchan rendezvous): cb(fd, 0, NULL, ud), or cb(-1, error, message, ud).
 */
typedef void (*rill__connect_fd_cb)(int fd, int status, const char *errmsg,
                                    void *ud);
int rill__socket_connect_fd(uv_loop_t *loop,
                            const struct rill_socket_family *fam,
                            const struct rill__sockaddr *addrs, size_t n,
                            const char *label, uint64_t timeout_ms,
                            uint64_t retry_until_ms, rill__connect_fd_cb cb,
                            void *ud);

/*
 * Resolves host:port asynchronously (uv_getaddrinfo) and connects to
 * every address in order (rill__socket_connect), all within timeout_ms.
 * DNS failures: -ENOENT (no such name), -EAGAIN (temporary), -EIO, with a
 * message naming the host.
 */
int rill__socket_connect_host(uv_loop_t *loop,
                              const struct rill_socket_family *fam,
                              const char *host, const char *port,
                              const char *label, uint64_t timeout_ms,
                              uint64_t retry_until_ms, rill_connect_cb cb,
                              void *ud);

/*
 * A listener on a bound, listening socket fd (ownership taken; closed on
 * failure). cb is called for every accepted flow. unlink_path (may be
 * NULL; copied) is removed when the listener closes.
 */
int rill__socket_listen(uv_loop_t *loop, int fd,
                        const struct rill_socket_family *fam,
                        const char *unlink_path, rill_accept_cb cb, void *ud,
                        struct rill_listener **out);

/*
 * Creates a socket of sa's family, sets SO_REUSEADDR when reuseaddr, binds
 * it to sa, listens with backlog (0: 511) and makes a listener as above.
 * Errors are -errno; rill_last_errmsg() says "listen <label>: <reason>".
 */
int rill__socket_bind_listen(uv_loop_t *loop,
                             const struct rill_socket_family *fam,
                             const struct sockaddr *sa, socklen_t len,
                             int backlog, bool reuseaddr,
                             const char *unlink_path, const char *label,
                             rill_accept_cb cb, void *ud,
                             struct rill_listener **out);

/*
 * Creates a non-blocking, close-on-exec stream socket of sa's family,
 * binds it to sa (SO_REUSEADDR first when reuseaddr) and listens with
 * backlog (0: 511). unlink_path (may be NULL) is removed if listen fails
 * after bind created it. Returns 0 and *out, or -errno (nothing open).
 */
int rill__socket_bind_fd(const struct sockaddr *sa, socklen_t len, int backlog,
                         bool reuseaddr, const char *unlink_path, int *out);

/*
 * A listening Unix socket on the filesystem path: as rill__socket_bind_fd,
 * but a socket file nobody listens on any more (its server died) is
 * replaced, if it is a socket owned by our effective uid (unix.c). Never
 * removes anything else. -EADDRINUSE when a live server has the path or
 * the file is not ours to replace, -ENAMETOOLONG, -errno; *why (may be
 * NULL) then says what is there, or stays NULL.
 */
int rill__unix_bind_fd(const char *path, int backlog, int *out,
                       const char **why);

/*
 * The acceptor's side of a socket listener made by rill__socket_listen
 * (and its family), for a listener group; NULL when l is another kind
 * of listener or is closing.
 */
struct rill__spread_member *
rill__socket_listener_spread(struct rill_listener *l,
                             const struct rill_socket_family **fam);

/*
 * Joins the group of the socket listener `acceptor` (any URI scheme built
 * on rill__socket_listen): the connections it hands over become flows on
 * loop and go to cb there. 0, RILL_EINVAL (acceptor is not such a
 * listener), RILL_ECLOSED, RILL_ENOMEM. The u argument is unused (the
 * scheme was checked by the caller).
 */
int rill__socket_join(uv_loop_t *loop, const struct rill_uri *u,
                      struct rill_listener *acceptor, rill_accept_cb cb,
                      void *ud, struct rill_listener **out);

/* The families defined so far. */
extern const struct rill_socket_family rill__tcp_family;
extern const struct rill_socket_family rill__unix_family;
extern const struct rill_socket_family rill__stdio_family;

/* Their URI schemes (listed in uri.c). */

/* Sets O_NONBLOCK on fd; the old flags go to *saved unless it is NULL.
 * 0 or -errno. */
int rill__socket_set_nonblock(int fd, int *saved);

#endif
