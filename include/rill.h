/*
 * rill.h - reliable byte streams ("flows") on a libuv loop.
 *
 * This header is the specification of rill's public API. Every function
 * states what it does, its results, its errors, and who owns what.
 *
 * The model in one page
 * ---------------------
 * A flow (struct rill_flow) is one reliable, ordered byte stream connected
 * to one peer: a TCP or Unix socket, a vsock, a shared-memory ring, an
 * in-memory pair, or a layer (shut framing, TLS, HTTP body) stacked on
 * another flow. Every flow offers the same five operations:
 *
 *   rill_read      pull at most one buffer (>= 1 byte), or EOF, or an error
 *   rill_write(v)  hand buffers to the flow; completes once all are accepted
 *   rill_shutdown  half-close: read, write, or both
 *   rill_close     terminate and free; never blocks; idempotent
 *
 * Operations are asynchronous in completion style: each takes a callback
 * that is called exactly once, from the loop, never from inside the call
 * that started the operation. The one rule for errors (as in libuv): a
 * function that takes a callback and returns a negative error code will
 * never call that callback.
 *
 * After rill_close(f) returns, no callback of f is ever called again, so it
 * is always safe to close a flow and free your own state, including from
 * inside one of f's own callbacks. Buffers still queued for writing are
 * released by the flow (they are reference counted).
 *
 * Errors are negative integers: -errno where one fits, or a code from
 * rill's own range (RILL_E*, below -30000). rill_strerror() names them all.
 *
 * Threads: a flow, and every buffer it hands out, belongs to the thread
 * running its loop. Run several loops on several threads to use more cores.
 */
#ifndef RILL_H
#define RILL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(RILL_BUILDING)
#define RILL_EXTERN __attribute__((visibility("default")))
#else
#define RILL_EXTERN
#endif

#define RILL_VERSION_MAJOR  0
#define RILL_VERSION_MINOR  1
#define RILL_VERSION_PATCH  0
#define RILL_VERSION_STRING "0.1.0"

/* The version of the library linked at run time, e.g. "0.1.0". */
RILL_EXTERN const char *rill_version(void);

/* ------------------------------------------------------------------------
 * Errors
 *
 * rill's own codes. errno-based codes are used as -errno directly; the
 * ones that carry a contract meaning are named here too.
 */

/* X(name, value, message) for every code in rill's own range. */
#define RILL_OWN_ERRORS(X)                                                    \
	X(EOF, -30001, "end of file")                                         \
	X(EFRAME, -30010, "framing protocol error from the peer")             \
	X(ERING, -30020, "shared-memory ring protocol error from the peer")   \
	X(ETLS, -30030, "TLS error")                                          \
	X(ETLS_TRUNCATED, -30031,                                             \
	  "TLS stream truncated: peer closed without close_notify")           \
	X(ETLS_CERT, -30032, "TLS certificate verification failed")           \
	X(ETLS_CERT_EXPIRED, -30033, "TLS certificate expired")               \
	X(ETLS_HOSTNAME, -30034, "TLS certificate does not match host name")  \
	X(ETLS_UNKNOWN_CA, -30035, "TLS certificate issued by an unknown CA") \
	X(ETLS_SELF_SIGNED, -30036, "TLS certificate is self-signed")         \
	X(ETLS_VERSION, -30037, "TLS protocol version not supported by peer") \
	X(ETLS_HANDSHAKE, -30038, "TLS handshake failed")                     \
	X(ETLS_NO_CERT, -30039, "TLS peer sent no certificate")               \
	X(ETLS_NOT_TLS, -30040, "peer does not speak TLS")                    \
	X(EHTTP, -30050, "HTTP protocol error")                               \
	X(EHTTP_TOO_LARGE, -30051, "HTTP message exceeds a limit")            \
	X(EURI, -30060, "malformed URI")                                      \
	X(EHANDSHAKE, -30070, "transport handshake refused by the peer")      \
	X(ENOTSUP_PLATFORM, -30080,                                           \
	  "transport not available on this platform")                         \
	X(ENOHALFCLOSE, -30100,                                               \
	  "flow cannot half-close: shutting down its write side would end "   \
	  "both directions")                                                  \
	X(EPROXY, -30090, "the proxy failed the request")                     \
	X(EPROXY_AUTH, -30091, "proxy authentication failed")                 \
	X(EPROXY_DENIED, -30092, "the proxy does not allow this target")      \
	X(EWS, -30110, "WebSocket: error Close status or protocol error")

enum rill_error {
#define RILL__ERR_ENUM(name, value, msg) RILL_##name = (value),
	RILL_OWN_ERRORS(RILL__ERR_ENUM)
#undef RILL__ERR_ENUM
	/* Contract errors that are plain errno values. */
	RILL_ECLOSED = -EPIPE,       /* write after shutdown/close/peer gone */
	RILL_ETIMEDOUT = -ETIMEDOUT, /* a deadline expired */
	RILL_ECONNRESET = -ECONNRESET,
	RILL_ECONNREFUSED = -ECONNREFUSED,
	RILL_EALREADY = -EALREADY, /* a read is already pending */
	RILL_EINVAL = -EINVAL,     /* bad argument (NULL flow, bad mode) */
	RILL_ENOMEM = -ENOMEM,
	RILL_ECANCELED = -ECANCELED,
};

/*
 * A static, human-readable description of any rill code or -errno value.
 * Never NULL; unknown codes give "unknown error".
 */
RILL_EXTERN const char *rill_strerror(int err);

/* The symbolic name of a code, e.g. "RILL_EOF" or "ECONNREFUSED". */
RILL_EXTERN const char *rill_err_name(int err);

/* ------------------------------------------------------------------------
 * Allocator
 *
 * Every allocation rill makes goes through these three functions. Replace
 * them before creating any flow or buffer (typically at program start);
 * the default is malloc/realloc/free. Returns 0, or RILL_EINVAL if any
 * function is NULL. Tests use this to fail allocations on purpose.
 */
RILL_EXTERN int rill_replace_allocator(void *(*malloc_fn)(size_t),
                                       void *(*realloc_fn)(void *, size_t),
                                       void (*free_fn)(void *));

/* ------------------------------------------------------------------------
 * Buffers: reference-counted byte slices
 *
 * A struct rill_buf names `len` bytes at `data`. It is reference counted:
 * rill_buf_ref() takes another reference, rill_buf_release() drops one,
 * and the memory goes when the last reference goes. A slice shares its
 * parent's memory and keeps the parent alive.
 *
 * Bytes may be changed only by a holder who knows nobody else can see
 * them (a buffer just made with rill_buf_new). Once a buffer has been
 * written to a flow, treat its bytes as read-only until the write
 * completes: the flow may still be sending them. A buffer read from one
 * flow can be written to another without copying.
 *
 * Not thread-safe: a buffer is used by one thread at a time.
 */
struct rill_buf {
	uint8_t *data; /* first byte */
	size_t len;    /* number of bytes; may be lowered by the owner */
	/* private */
	uint32_t refs_;
	uint32_t flags_;
	struct rill_buf *parent_;
	void (*free_fn_)(void *ctx, void *mem);
	void *free_ctx_;
};

/*
 * A new buffer of `len` bytes (uninitialised), one reference held by the
 * caller. Returns NULL when memory is exhausted. len may be 0.
 */
RILL_EXTERN struct rill_buf *rill_buf_new(size_t len);

/* A new buffer holding a copy of `len` bytes at `src`. NULL on ENOMEM. */
RILL_EXTERN struct rill_buf *rill_buf_copy(const void *src, size_t len);

/*
 * A buffer over memory the caller owns, without copying. When the last
 * reference is released, free_fn(ctx, mem) is called (free_fn may be NULL
 * for static memory). NULL on ENOMEM, in which case free_fn is NOT called.
 */
RILL_EXTERN struct rill_buf *
rill_buf_wrap(void *mem, size_t len, void (*free_fn)(void *ctx, void *mem),
              void *ctx);

/*
 * A new buffer naming bytes [off, off+len) of b, sharing its memory (no
 * copy). The slice holds a reference to b. Returns NULL if the range is
 * outside b (off + len > b->len) or on ENOMEM.
 */
RILL_EXTERN struct rill_buf *rill_buf_slice(struct rill_buf *b, size_t off,
                                            size_t len);

/* Takes one more reference to b and returns b. */
RILL_EXTERN struct rill_buf *rill_buf_ref(struct rill_buf *b);

/* Drops one reference; frees b when it was the last. NULL is a no-op. */
RILL_EXTERN void rill_buf_release(struct rill_buf *b);

/* ------------------------------------------------------------------------
 * Flows
 */
struct rill_flow;

enum rill_shutdown_mode {
	RILL_SHUT_RD = 1,   /* later local reads report EOF */
	RILL_SHUT_WR = 2,   /* flush, then tell the peer "no more data" */
	RILL_SHUT_RDWR = 3, /* both */
};

/*
 * Read callback. status is 0 and buf holds >= 1 byte: the caller of
 * rill_read now owns that reference and must rill_buf_release() it. Or
 * status is RILL_EOF (buf NULL): the peer sent everything it will send, or
 * reads were shut down. Or status is a negative error (buf NULL). After
 * RILL_EOF or an error, every later read reports the same code.
 */
typedef void (*rill_read_cb)(struct rill_flow *f, int status,
                             struct rill_buf *buf, void *ud);

/* Write and shutdown completion: status 0, or a negative error code. */
typedef void (*rill_write_cb)(struct rill_flow *f, int status, void *ud);
typedef void (*rill_shutdown_cb)(struct rill_flow *f, int status, void *ud);

/*
 * Starts one read. cb is called exactly once, later, from the loop, with
 * one buffer, EOF or an error (see rill_read_cb). Data that arrived before
 * an EOF or an error is always delivered first.
 *
 * Returns 0, or synchronously (cb never called):
 *   RILL_EINVAL    f or cb is NULL
 *   RILL_EALREADY  a read is already pending on f
 *   RILL_ECLOSED   f was closed
 */
RILL_EXTERN int rill_read(struct rill_flow *f, rill_read_cb cb, void *ud);

/*
 * Writes all bytes of bufs[0..n) in order. The flow takes its own
 * reference to each buffer: the caller may release its references at once,
 * but must not change the bytes before cb. The bufs array itself is copied
 * and may be reused as soon as the call returns. cb (may be NULL) is called
 * once every byte was accepted by the flow (the back-pressure point), or
 * with an error. Several writes may be pending; they complete in order.
 *
 * A write of zero bytes in total succeeds (cb status 0) without sending
 * anything, unless writes are already refused (then it fails like any
 * write).
 *
 * Returns 0, or synchronously (cb never called):
 *   RILL_EINVAL   f NULL, n > 0 with bufs NULL, or a NULL buffer
 *   RILL_ECLOSED  f was closed, or its write side was shut down
 *   the sticky write error, when an earlier write failed
 *   RILL_ENOMEM
 * An error found later (peer gone: RILL_ECLOSED; reset...) reaches cb; it
 * then sticks: every later write fails with it.
 */
RILL_EXTERN int rill_writev(struct rill_flow *f, struct rill_buf *const *bufs,
                            size_t n, rill_write_cb cb, void *ud);

/* rill_writev() with one buffer. */
RILL_EXTERN int rill_write(struct rill_flow *f, struct rill_buf *buf,
                           rill_write_cb cb, void *ud);

/*
 * Copies len bytes from data into a new buffer and writes it; the caller's
 * memory is free again when the call returns. Same results as rill_write.
 */
RILL_EXTERN int rill_write_copy(struct rill_flow *f, const void *data,
                                size_t len, rill_write_cb cb, void *ud);

/*
 * Writes bytes [offset, offset + length) of the regular file open at fd,
 * in order with the flow's other writes: rill_write's contract (ordering,
 * back-pressure, sticky errors, deadlines per step of progress), with the
 * file's bytes instead of buffers. cb (may be NULL) runs once every byte
 * was accepted. A socket flow hands the range to the kernel (sendfile(2),
 * no copy through user space); every other flow and layer (TLS, shut,
 * vchan, pairs, HTTP bodies without Content-Length) gets it in bounded
 * pread(2) + write steps of at most 256 KiB, made by the core. fd's file
 * position is not used or changed; fd must stay open until cb ran or f
 * was closed (rill does not close it). Several writes of one fd may be
 * pending at once.
 *
 * length 0 succeeds like a zero-length write. The file is read when the
 * write gets its turn, not at the call: a file that is shorter than
 * offset + length by then fails the write with -ENODATA after its bytes
 * up to the end were sent (the error sticks: the stream is cut, never
 * padded). A file whose bytes change while it is being sent may deliver
 * either version of those bytes, as with any reader of a changing file.
 * With sendfile(2) the kernel sends the page cache's own pages: bytes it
 * already took when the file is cut below them may reach the peer as
 * zeros (Linux zeroes truncated pages; nginx has the same exposure), so
 * treat a stream whose write failed with -ENODATA as broken, as rill http
 * serve does by aborting the response.
 *
 * Returns 0, or synchronously (cb never called):
 *   RILL_EINVAL   f NULL, fd < 0, fd not a regular file (fstat), or
 *                 offset + length beyond 2^63
 *   -ENODATA      the file is already shorter than offset + length
 *   -EBADF...     fstat(fd) failed
 *   what rill_write returns (RILL_ECLOSED, the sticky error, RILL_ENOMEM)
 */
RILL_EXTERN int rill_write_file(struct rill_flow *f, int fd, uint64_t offset,
                                uint64_t length, rill_write_cb cb, void *ud);

/*
 * Half-closes the flow.
 *
 * RILL_SHUT_WR: later writes fail with RILL_ECLOSED at once; the writes
 * already queued are flushed, then the peer is told "no more data"; cb
 * (may be NULL) is called when that is done, or with an error. The peer's
 * reads drain and then report EOF.
 * RILL_SHUT_RD: a pending read and later reads report RILL_EOF; the peer
 * is told where the flow can (best effort).
 * RILL_SHUT_RDWR: both; cb is called when the write side is done.
 * Shutting down a side twice is harmless; cb then reports 0 (or the
 * sticky write error).
 *
 * Flows that cannot half-close (rill_flow_can_half_close() is false: a
 * xen-vchan, a hybrid-vsock connection, a vchan opened with
 * half_close=0, and layers such as TLS over them) refuse RILL_SHUT_WR
 * alone while their read side is still open: ending the write side there
 * would end both directions and cut the peer's reply short. The call
 * then returns RILL_ENOHALFCLOSE and changes nothing (writes and reads
 * go on). Keep such a flow open until the peer closes or you are done
 * reading, then rill_close() it; or shut down both sides at once
 * (RILL_SHUT_RDWR), or the write side after the reads ended (EOF, an
 * error or RILL_SHUT_RD), which is always allowed. The shut+ layer adds
 * a real half-close to any of them.
 *
 * Returns 0, or synchronously (cb never called): RILL_EINVAL (f NULL, bad
 * mode), RILL_ECLOSED (f closed), RILL_ENOHALFCLOSE (see above).
 */
RILL_EXTERN int rill_shutdown(struct rill_flow *f, int mode,
                              rill_shutdown_cb cb, void *ud);

/*
 * Closes the flow: cancels every pending operation WITHOUT calling its
 * callback, releases queued buffers, and tears the flow (and, for a layer,
 * the whole stack beneath it) down in the background. Never blocks. No
 * callback of f is called after this returns. NULL, and a second close,
 * are harmless no-ops.
 *
 * Lifetime: f's memory stays valid until control returns to the loop, so
 * calls made on f in the meantime (for instance further on in the same
 * callback) fail cleanly with RILL_ECLOSED; after that f must not be used.
 * Flush first with rill_shutdown(RILL_SHUT_WR) if queued data matters.
 *
 * The teardown runs on f's loop, and can take a while: the shut layer
 * sends Close and waits for the peer's answer (up to its close_timeout,
 * see rill_shut_set_close_timeout) before it closes the flow below, so
 * that no data in flight is lost. A program that exits, or stops running
 * the loop, before the teardowns of the flows it closed have finished
 * cuts them short (the peer may see a reset). Keep the loop running until
 * rill_closing_flows() is 0, or until the callback of
 * rill_when_flows_closed() ran.
 */
RILL_EXTERN void rill_close(struct rill_flow *f);

/*
 * The number of flows on loop that were closed (by the program, or by rill
 * itself: the flows beneath a layer, the connections of an HTTP server,
 * the flows of a proxy...) and whose teardown has not finished yet. A
 * flow counts from its rill_close() until its memory is freed. Each flow
 * of a stack counts once. 0 for a NULL loop.
 */
RILL_EXTERN size_t rill_closing_flows(uv_loop_t *loop);

/* Called once no flow on loop is tearing down (rill_when_flows_closed). */
typedef void (*rill_flows_closed_cb)(uv_loop_t *loop, void *ud);

/*
 * Calls cb(loop, ud) once, from the loop, as soon as no flow on loop is
 * tearing down any more: when the last teardown in progress finished, or
 * on the next loop iteration if none is in progress. A flow closed before
 * cb runs is waited for too, so rill_closing_flows(loop) is 0 when cb
 * runs. Until then a handle of rill's stays on the loop, so uv_run()
 * keeps running and uv_loop_close() reports UV_EBUSY. Every teardown ends
 * by itself: the longest is a shut layer's close_timeout (5 s by
 * default); with a close_timeout of 0 a peer that never answers and never
 * hangs up holds it open for ever. Call it from the thread that runs
 * loop. Any number of callbacks may wait at once. cb may close flows and
 * call rill_when_flows_closed() again.
 *
 * Typical use, a program that stops:
 *
 *     rill_listener_close(lst);
 *     rill_close(conn);                         (and every other flow)
 *     rill_when_flows_closed(loop, on_closed, NULL);
 *     ... on_closed(loop, ud) closes the program's own handles, or
 *     calls uv_stop(loop), or exits.
 *
 * Returns 0, or (cb never called) RILL_EINVAL (loop or cb NULL) or
 * RILL_ENOMEM.
 */
RILL_EXTERN int rill_when_flows_closed(uv_loop_t *loop, rill_flows_closed_cb cb,
                                       void *ud);

/*
 * Deadlines. A read (write) that has not completed `ms` milliseconds
 * after it started fails with RILL_ETIMEDOUT, and that error sticks for
 * the direction: the flow's state after a partial operation is unknown.
 * 0 disables (the default). Takes effect for operations started later.
 * Returns 0, RILL_EINVAL or RILL_ECLOSED.
 */
RILL_EXTERN int rill_set_read_timeout(struct rill_flow *f, uint64_t ms);
RILL_EXTERN int rill_set_write_timeout(struct rill_flow *f, uint64_t ms);

/* The loop f runs on. */
RILL_EXTERN uv_loop_t *rill_flow_loop(struct rill_flow *f);

/* The kind of flow, e.g. "pair", "tcp", "shut". Static string. */
RILL_EXTERN const char *rill_flow_kind(struct rill_flow *f);

/*
 * A description of the last error this flow reported, with the details a
 * code cannot carry (for example which certificate check failed, or what
 * a VMM replied), or NULL when there is none. Valid until the next
 * operation on f or its close.
 */
RILL_EXTERN const char *rill_flow_errmsg(struct rill_flow *f);

/*
 * Bytes read and written through f so far (counted at this layer), and
 * the number of completed read/write operations. Any pointer may be NULL.
 */
RILL_EXTERN void rill_flow_counters(struct rill_flow *f, uint64_t *rd_bytes,
                                    uint64_t *wr_bytes, uint64_t *rd_ops,
                                    uint64_t *wr_ops);

/*
 * Whether the flow can half-close: true when shutting down its write side
 * (RILL_SHUT_WR) tells the peer "no more data" and leaves the other
 * direction open, so the peer can still reply in full. False for kinds
 * whose peer takes the end of one direction as the end of both (see
 * rill_shutdown and doc/contract.md); their RILL_SHUT_WR alone is refused
 * with RILL_ENOHALFCLOSE while reads are open. A layer inherits the
 * answer of the flow below, unless it frames the end of the stream
 * itself (shut+, an HTTP exchange). NULL gives false.
 */
RILL_EXTERN bool rill_flow_can_half_close(struct rill_flow *f);

/* User data slot, untouched by rill. */
RILL_EXTERN void rill_flow_set_data(struct rill_flow *f, void *data);
RILL_EXTERN void *rill_flow_data(struct rill_flow *f);

/* ------------------------------------------------------------------------
 * In-memory flows
 */

/*
 * Two connected flows in one process. Each direction holds at most
 * `capacity` bytes (0 selects 256 KiB) that were written but not yet read;
 * a write beyond that waits (back-pressure) until the reader catches up.
 * Half-close works both ways. Closing one end makes the other end's reads
 * report EOF after draining, and its writes fail with RILL_ECLOSED.
 * Returns 0 and stores both ends, or RILL_EINVAL / RILL_ENOMEM (nothing
 * stored). The caller owns both flows and closes each.
 */
RILL_EXTERN int rill_pair(uv_loop_t *loop, size_t capacity,
                          struct rill_flow **a, struct rill_flow **b);

/*
 * A flow from functions (mirage-flow's F.make). Either function may be
 * NULL: with no input, reads report EOF; with no output, writes fail with
 * RILL_ECLOSED.
 *
 *   input(ctx, dst, cap)  fills dst with up to cap bytes; returns the
 *                         number (> 0), 0 for end of input, or a negative
 *                         error, which then sticks.
 *   output(ctx, src, len) consumes up to len bytes; returns how many it
 *                         took. Fewer than len (including 0) means the
 *                         output is full: the bytes taken are kept and the
 *                         write fails with RILL_ECLOSED (a partial write).
 *                         A negative error also fails the write.
 *   on_close(ctx)         called once when the flow is closed (may be NULL).
 *
 * The functions are called from the loop and must not block.
 */
struct rill_fn_flow_ops {
	long (*input)(void *ctx, void *dst, size_t cap);
	long (*output)(void *ctx, const void *src, size_t len);
	void (*on_close)(void *ctx);
};
RILL_EXTERN int rill_flow_from_functions(uv_loop_t *loop,
                                         const struct rill_fn_flow_ops *ops,
                                         void *ctx, struct rill_flow **out);

/*
 * A flow over strings (mirage-flow's F.string): reads deliver the bytes
 * of input[0..in_len) (NULL: reads report EOF at once); writes append to
 * output[0..out_cap) and *out_len counts what was stored (output NULL:
 * writes fail with RILL_ECLOSED; full: a partial write, then RILL_ECLOSED).
 * input, output and out_len must outlive the flow. Returns 0,
 * RILL_EINVAL or RILL_ENOMEM.
 */
RILL_EXTERN int rill_flow_from_strings(uv_loop_t *loop, const void *input,
                                       size_t in_len, void *output,
                                       size_t out_cap, size_t *out_len,
                                       struct rill_flow **out);

/* ------------------------------------------------------------------------
 * Blocking convenience API
 *
 * For simple programs and tests: each call runs f's loop
 * (uv_run(UV_RUN_ONCE)) until its operation completes, so other work on
 * the loop makes progress meanwhile. They must not be called from inside a
 * callback running on that loop (they return -EDEADLK then) nor while
 * another thread runs the loop.
 *
 * They also return -EDEADLK when the loop runs out of work before the
 * operation completed (nothing could ever complete it, e.g. a read with no
 * writer on the loop). The operation then stays pending on the flow and
 * its result is discarded: close the flow. A flow closed while one of
 * these waits on it (from another callback) ends the wait with
 * RILL_ECLOSED.
 */

/* Reads one buffer into *out (caller releases it). Returns 0, RILL_EOF or
 * an error; *out is NULL unless 0. */
RILL_EXTERN int rill_read_sync(struct rill_flow *f, struct rill_buf **out);

/* Writes len bytes (copied); returns 0 or an error. */
RILL_EXTERN int rill_write_sync(struct rill_flow *f, const void *data,
                                size_t len);

/* rill_shutdown() and wait; returns 0 or an error. */
RILL_EXTERN int rill_shutdown_sync(struct rill_flow *f, int mode);

/*
 * Reads until EOF into one new buffer of at most max bytes, stored in *out
 * (the caller releases it). Returns 0 at EOF; -EMSGSIZE when more than max
 * bytes arrive; or the read error (RILL_ETLS_TRUNCATED from a TLS peer
 * that closed without close_notify, RILL_ETIMEDOUT...). On an error *out
 * still holds the bytes that arrived before it (the first max of them
 * for -EMSGSIZE), or is NULL when there were none: release it either
 * way, and decide whether those bytes can be trusted (a truncated TLS
 * stream may lack its end).
 */
RILL_EXTERN int rill_read_all_sync(struct rill_flow *f, size_t max,
                                   struct rill_buf **out);

#ifdef __cplusplus
}
#endif

#include "rill/net.h"
#include "rill/vchan.h"
#include "rill/xen_vchan.h"
#include "rill/shut.h"
#include "rill/tls.h"
#include "rill/http.h"
#include "rill/ws.h"
#include "rill/combinator.h"
#include "rill/exec.h"
#include "rill/tunnel.h"
#include "rill/metrics.h"

#endif /* RILL_H */
