/*
 * rill/vchan.h - flows over shared-memory rings in Xen's vchan layout.
 * Included by rill.h; do not include directly.
 *
 * A vchan is one server and one client sharing two byte rings (client ->
 * server "left", server -> client "right") and a control page laid out
 * exactly as Xen's struct vchan_interface (doc/vchan-rendezvous.md). On
 * one host a (domain, port) pair names a rendezvous Unix socket; the
 * server creates the shared memory (a sealed memfd) and two eventfds and
 * hands them to the client over that socket (doc/vchan-rendezvous.md, byte
 * by byte).
 *
 * Naming. port matches [a-zA-Z0-9_-]+. domain is NULL or "" (the default
 * directory), a name matching [a-zA-Z0-9_.-]+ (a subdirectory of the
 * default directory), or, when it contains a '/', a directory path. The
 * default directory is $RILL_VCHAN_DIR, else $XDG_RUNTIME_DIR/rill-vchan,
 * else /tmp/rill-vchan-<uid>. The socket is <directory>/<port>.
 *
 * Ring sizes are minimums and round up as libxenvchan rounds them: a ring
 * that fits in 1024 (the other in 2048) bytes lives in the control page
 * (order 10 or 11), otherwise it is the next power of two >= 4096 bytes.
 * On one host rings may exceed Xen's 1 MiB cap, up to 1 GiB. 0 and larger
 * sizes are rejected with RILL_EINVAL.
 *
 * Semantics. Reads deliver fresh buffers (bytes are copied out of shared
 * memory, never aliased). EOF = the peer's live byte is 0 and the ring is
 * drained. A peer that dies (even by SIGKILL) closes the rendezvous
 * socket, which stays open for the life of the vchan: reads then drain
 * and report EOF, writes fail with RILL_ECLOSED - never a hang. A peer
 * that breaks the ring protocol (an index or order out of range) makes
 * the flow fail with RILL_ERING.
 *
 * shutdown(write) sets this side's live byte to 0 (Xen's "exited"), so the
 * peer's reads drain and report EOF. vchan has no half-close in Xen: a
 * libxenvchan peer stops writing once it sees live 0. rill itself keeps
 * accepting writes towards a peer that shut down its write side until the
 * peer closes the rendezvous socket; only rill-to-rill relies on that, and
 * `shut+vchan:` gives a portable half-close.
 */
#ifndef RILL_VCHAN_H
#define RILL_VCHAN_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Server callback: status 0 when a client attached (f is the server flow
 * returned by rill_vchan_server), or a negative error when the vchan
 * failed before that (the flow's operations then fail too). Called at
 * most once, never after rill_close(f).
 */
typedef void (*rill_vchan_server_cb)(struct rill_flow *f, int status, void *ud);

/*
 * Creates the server end of a vchan on (domain, port), with a ring of at
 * least read_size bytes towards this side and write_size bytes towards
 * the client, and waits (on loop) for one client. The flow is usable at
 * once, as in Xen: writes fill the ring before the client arrives, reads
 * wait for it. The rendezvous socket is removed when the client attaches
 * or the flow is closed. cb (may be NULL) reports the client's arrival.
 *
 * Returns 0 and stores the flow (caller closes it), or synchronously:
 * RILL_EINVAL (bad name, size), -EADDRINUSE (a live server has the name,
 * or a file that is not our own socket is there: it is left alone),
 * -EACCES / -ENOTDIR (the rendezvous directory is not safe: see below),
 * -ENAMETOOLONG, other -errno from mkdir/bind/memfd/mmap, RILL_ENOMEM;
 * rill_last_errmsg() explains, naming the path.
 *
 * Safety (doc/security.md): the default directory and a named domain in
 * it must be real directories owned by our effective uid with mode 0700
 * (created so when missing); the client must run as our effective uid or
 * root (SO_PEERCRED); connectors are served side by side, each with a
 * 5 s deadline for the rendezvous, at most 64 at once (the oldest is
 * dropped when full). The vchan: URI adds allow_uid=,
 * handshake_timeout= and max_handshakes= (doc/uri.md).
 */
RILL_EXTERN int rill_vchan_server(uv_loop_t *loop, const char *domain,
                                  const char *port, size_t read_size,
                                  size_t write_size, rill_vchan_server_cb cb,
                                  void *ud, struct rill_flow **out);

/*
 * Connects to the server on (domain, port). opts may be NULL: timeout_ms
 * bounds the whole rendezvous, retry_until_ms retries while no server
 * listens yet. cb gets the flow (status 0; the callee owns and closes it)
 * or an error: -ENOENT / RILL_ECONNREFUSED (no server), RILL_ETIMEDOUT
 * (timeout_ms, or 5 s for the rendezvous once connected), RILL_EHANDSHAKE
 * (the server broke the rendezvous protocol, or its descriptors are not
 * a memfd and two eventfds), RILL_ERING (bad shared memory), -EACCES (the
 * server runs as a uid other than ours or root), with errmsg saying why.
 * Returns -EACCES / -ENOTDIR synchronously when the default directory
 * exists and is not ours alone.
 * Returns 0, or synchronously (cb never called) RILL_EINVAL, RILL_ENOMEM.
 */
RILL_EXTERN int rill_vchan_client(uv_loop_t *loop, const char *domain,
                                  const char *port,
                                  const struct rill_connect_opts *opts,
                                  rill_connect_cb cb, void *ud);

/*
 * How long (ns) a vchan flow polls its ring before it sleeps on its
 * eventfd when it has to wait; 0 sleeps at once. Default 50000 (50 us),
 * or $RILL_VCHAN_SPIN_NS. Returns 0, or RILL_EINVAL (not a vchan flow).
 */
RILL_EXTERN int rill_vchan_set_spin(struct rill_flow *f, uint64_t ns);

/*
 * The rendezvous socket path of (domain, port) into buf. Returns 0,
 * RILL_EINVAL (bad name), -ENAMETOOLONG (too long for a Unix socket or
 * for buf).
 */
RILL_EXTERN int rill_vchan_path(const char *domain, const char *port, char *buf,
                                size_t len);

#ifdef __cplusplus
}
#endif

#endif /* RILL_VCHAN_H */
