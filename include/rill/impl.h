/*
 * rill/impl.h - for people implementing a new flow kind or layer.
 *
 * Users of rill never need this header. An implementation:
 *
 *   1. embeds `struct rill_flow` as the FIRST member of its own struct and
 *      gets back to itself with rill_container_of();
 *   2. provides one `static const struct rill_flow_ops` table;
 *   3. creates instances with rill_flow_new(loop, &ops, sizeof(mine));
 *   4. reports completions with rill_flow_read_done(),
 *      rill_flow_write_done() and rill_flow_shutdown_done().
 *
 * The core does all the bookkeeping of the contract (doc/contract.md):
 * at most one read reaches the implementation at a time; writes are queued
 * and handed down one request at a time, in order; sticky EOF / errors;
 * writes refused after shutdown or close; shutdown(write) waits until the
 * queue is flushed; deadlines; callbacks never run inside the API call that
 * started them; nothing reaches the user after rill_close(). So an
 * implementation only moves bytes.
 *
 * A layer over another flow (an "overlay") embeds `struct rill_layer`
 * instead, whose pass-through ops (rill_layer_*) forward everything to the
 * inner flow, so the layer writes only what it transforms. Attaching a
 * layer consumes the inner flow, even on failure; closing the top of a
 * stack closes the whole stack.
 */
#ifndef RILL_IMPL_H
#define RILL_IMPL_H

#include "../rill.h"

#ifdef __cplusplus
extern "C" {
#endif

#define rill_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct rill_write_req;
struct rill_flow_timers;
struct rill_read_into;

/*
 * The layout of struct rill_flow_ops this header describes, as SQLite's
 * sqlite3_io_methods.iVersion: 1 has the operations from name to
 * write_file. A table sets .version = RILL_FLOW_OPS_VERSION; operations
 * added later come at the end with a new version, and the core calls
 * them only in tables of a version that has them. rill_flow_new() and
 * rill_layer_new() refuse a table of version 0 (not set) or of a version
 * newer than the rill it runs with.
 */
#define RILL_FLOW_OPS_VERSION 1

struct rill_flow_ops {
	/* RILL_FLOW_OPS_VERSION when the table was written. Required. */
	int version;

	/* Short kind name ("tcp", "shut"...), static. Required. What
	 * rill_flow_kind() returns, unless rill_flow_set_kind() named the
	 * flow otherwise. */
	const char *name;

	/*
	 * Produce one read result: call rill_flow_read_done(f, 0, buf) with a
	 * buffer of >= 1 byte (ownership passes to the core), or with RILL_EOF
	 * or an error (buf NULL). May complete synchronously inside this
	 * call. Never called again before that completion, nor after EOF or
	 * an error. Required.
	 */
	void (*read)(struct rill_flow *f);

	/*
	 * Accept every byte of bufs[0..n) (n >= 1, total > 0), then call
	 * rill_flow_write_done(f, 0) once; or call it with an error. The
	 * buffers stay referenced by the core until then: take your own
	 * references to keep them longer. May complete synchronously.
	 * Never called again before completion. Required.
	 */
	void (*write)(struct rill_flow *f, struct rill_buf *const *bufs,
	              size_t n);

	/*
	 * All writes are done: tell the peer "no more data", then call
	 * rill_flow_shutdown_done(f, status) once. Required.
	 */
	void (*shutdown_write)(struct rill_flow *f);

	/* Reads were shut down locally; tell the peer if the kind can.
	 * A pending ops->read may still complete; its result is dropped.
	 * May be NULL. */
	void (*shutdown_read)(struct rill_flow *f);

	/*
	 * The user closed f. No completion is delivered to the user any more
	 * (the core drops late ones, so an implementation may still call the
	 * *_done functions harmlessly). Release everything, possibly in the
	 * background (a close handshake), then call rill_flow_destroyed(f)
	 * exactly once; after that the core frees f. Required.
	 */
	void (*close)(struct rill_flow *f);

	/* Optional: printable address (see rill_flow_address); NULL ->
	 * -ENOTSUP. */
	int (*address)(struct rill_flow *f, int which, char *buf, size_t len);

	/* Optional: socket options (see rill_flow_set_*); NULL -> -ENOTSUP. */
	int (*set_nodelay)(struct rill_flow *f, bool on);
	int (*set_keepalive)(struct rill_flow *f, bool on, unsigned after_s,
	                     unsigned interval_s, unsigned probes);

	/*
	 * Optional: the kernel socket fd under a plain socket flow, for the
	 * splice(2) fast path of the copy combinator; -1 or NULL otherwise.
	 * Layers must not provide it (their bytes are transformed).
	 */
	int (*fd)(struct rill_flow *f);

	/*
	 * Optional: ops->read, but the bytes go where the reader says (see
	 * struct rill_read_into and rill_read_into()). Right before each
	 * attempt to take bytes, call ri->get(ri): it fills in ri->owner,
	 * ri->iov, ri->iovcnt and ri->total, or returns false (complete
	 * with RILL_ENOMEM then). Place the next n bytes of the stream
	 * (1 <= n <= ri->total) in order through ri->iov[0..iovcnt), then
	 * call rill_flow_read_done(f, 0, b) with b a new slice [0, n) of
	 * ri->owner: only its length matters, the reader knows where the
	 * bytes went. When the attempt finds nothing to read yet, call
	 * ri->unget(ri) before waiting (a flow that waits holds none of the
	 * reader's memory), and call get again for the next attempt. Also
	 * call unget when completing with RILL_EOF or an error after a get.
	 * Everything else is as for ops->read: called only by the core, one
	 * read at a time (never while an ops->read is in flight), never
	 * after EOF or an error. ri stays valid until the read completes or
	 * ops->close is called; forget it there. NULL: rill_read_into()
	 * fails with -ENOTSUP and the reader reads normally.
	 */
	void (*read_into)(struct rill_flow *f, struct rill_read_into *ri);

	/*
	 * Optional: write bytes [offset, offset + length) of the regular
	 * file at fd (length >= 1; see rill_write_file). Return 0 when the
	 * flow took the request: it then calls rill_flow_write_done(f, 0)
	 * once every byte was accepted, or with an error; a file that ends
	 * before the range does is -ENODATA. Do not change fd's position
	 * (use the offset: pread(2), sendfile(2) with an offset pointer).
	 * Return -ENOTSUP (and call nothing) to decline this one request:
	 * the core then writes it itself in pread + ops->write steps, as it
	 * does for every flow whose table leaves this NULL. Called as
	 * ops->write is: one request at a time, in order with the others.
	 * Socket flows use sendfile(2); the HTTP exchange hands a
	 * Content-Length body to its connection.
	 */
	int (*write_file)(struct rill_flow *f, int fd, uint64_t offset,
	                  uint64_t length);

	/*
	 * Operations added in later versions go here, at the end, and are
	 * optional: a table written with designated initializers leaves
	 * them NULL, so an implementation written before they existed
	 * compiles unchanged and gets the core's behaviour for them. Each
	 * comes with a new RILL_FLOW_OPS_VERSION, and the core reads it only
	 * from tables whose version has it.
	 */
};

/* The base of every flow. Fields are owned by the core: read only. */
struct rill_flow {
	const struct rill_flow_ops *ops;
	uv_loop_t *loop;
	void *data; /* user data (rill_flow_set_data) */

	/* core state: private to src/core/flow.c */
	uint32_t flags_;
	int rd_err_; /* sticky read result: 0, RILL_EOF or error */
	int wr_err_; /* sticky write error */
	rill_read_cb read_cb_;
	void *read_ud_;
	struct rill_buf *rd_buf_; /* result waiting for deferred delivery */
	int rd_status_;
	struct rill_write_req *wq_head_, *wq_tail_;
	struct rill_write_req *wr_cur_;  /* inside the implementation */
	struct rill_read_into *rd_into_; /* layout of the pending read */
	rill_shutdown_cb shut_cb_;
	void *shut_ud_;
	int shut_status_;
	struct rill_flow_timers *timers_;
	char *errmsg_;
	const char *kind_; /* rill_flow_set_kind; NULL: ops->name */
	uint64_t rd_bytes_, wr_bytes_, rd_ops_, wr_ops_;
	uv_idle_t defer_; /* deferred completions, and the final free */
};

/*
 * Allocates `size` bytes (>= sizeof(struct rill_flow)), zeroed, with the
 * base initialised for ops on loop. Returns NULL on ENOMEM, or when
 * ops->version is 0 or newer than RILL_FLOW_OPS_VERSION of this rill
 * (rill_last_errmsg() says so, naming the table and both versions). The
 * core frees the memory after rill_flow_destroyed().
 */
RILL_EXTERN struct rill_flow *
rill_flow_new(uv_loop_t *loop, const struct rill_flow_ops *ops, size_t size);

/*
 * Frees a flow made by rill_flow_new() that was never handed to a user
 * (an attach or connect that failed half-way). Does not call ops->close.
 */
RILL_EXTERN void rill_flow_discard(struct rill_flow *f);

/*
 * Names the kind of f for rill_flow_kind() when it is not ops->name, so
 * that kinds which differ only in name share one ops table (vsock,
 * hybrid-vsock and hyperkit socket flows; tls and tls-noverify). kind is
 * a static string. Call it right after rill_flow_new().
 */
RILL_EXTERN void rill_flow_set_kind(struct rill_flow *f, const char *kind);

/* Completions, see struct rill_flow_ops. buf ownership passes to the core. */
RILL_EXTERN void rill_flow_read_done(struct rill_flow *f, int status,
                                     struct rill_buf *buf);
RILL_EXTERN void rill_flow_write_done(struct rill_flow *f, int status);
RILL_EXTERN void rill_flow_shutdown_done(struct rill_flow *f, int status);

/* The implementation finished its close: the core may free f. */
RILL_EXTERN void rill_flow_destroyed(struct rill_flow *f);

/*
 * Declares whether f can half-close (rill_flow_can_half_close); flows
 * start able to. A kind whose peer takes a write shutdown as the end of
 * both directions calls this with false right after rill_flow_new(), and
 * the core then refuses RILL_SHUT_WR alone with RILL_ENOHALFCLOSE while
 * reads are open (ops->shutdown_write is then only called once reading
 * is over). rill_layer_new() copies the inner flow's answer; a layer that
 * marks the end of its stream in band (its shutdown_write does not shut
 * the flow below) sets true.
 */
RILL_EXTERN void rill_flow_set_half_close(struct rill_flow *f, bool can);

/* ------------------------------------------------------------------------
 * Reads into the reader's own layout.
 *
 * A layer that knows where the next bytes of the flow below belong can
 * have them put there by the flow itself, with no copy in between: the
 * shut layer lays out one readv(2) so that frame payloads land side by
 * side in one buffer and the 4-byte headers elsewhere. The reader fills
 * in get and unget and calls rill_read_into(); the flow below calls get
 * right before it takes bytes, which fills in the rest:
 *
 *   owner   the buffer that holds the memory iov points into; the read
 *           completes with a slice [0, n) of it, n the bytes read
 *   iov     where the bytes go, in order (the caller's memory; it stays
 *           valid until the next get or unget)
 *   iovcnt  entries of iov (>= 1)
 *   total   bytes of all entries together (>= 1, <= owner->len)
 *
 * unget is called when an attempt found nothing (the flow waits; the
 * reader may drop the memory it handed out) or ended with EOF or an
 * error. get returns false when it cannot make room (ENOMEM).
 */
struct iovec;
struct rill_read_into {
	bool (*get)(struct rill_read_into *ri);
	void (*unget)(struct rill_read_into *ri);
	struct rill_buf *owner;
	const struct iovec *iov;
	int iovcnt;
	size_t total;
};

/*
 * rill_read() into ri's layout: one read of f that puts its bytes where
 * ri->get says, then calls cb with status 0 and a slice [0, n) of the
 * owner buffer get named (the caller releases it; n is what was read), or
 * with RILL_EOF or an error, exactly as rill_read would. Deadlines,
 * sticky results and callback rules are rill_read's. ri (and its get and
 * unget) must stay valid until f is closed; once cb ran, ri may be passed
 * to the next rill_read_into.
 *
 * Returns 0, or synchronously (cb never called) what rill_read returns,
 * RILL_EINVAL when ri, ri->get or ri->unget is NULL, or -ENOTSUP when f
 * does not read into a layout (ops->read_into is NULL: read normally).
 */
RILL_EXTERN int rill_read_into(struct rill_flow *f, struct rill_read_into *ri,
                               rill_read_cb cb, void *ud);

/* True once the user closed f (the implementation may stop work early). */
RILL_EXTERN bool rill_flow_is_closed(const struct rill_flow *f);

/* Records the detail text for rill_flow_errmsg() (printf-style). */
RILL_EXTERN void rill_flow_set_errmsg(struct rill_flow *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* rill's allocator (see rill_replace_allocator). */
RILL_EXTERN void *rill_malloc(size_t n);
RILL_EXTERN void *rill_calloc(size_t n, size_t size);
RILL_EXTERN void *rill_realloc(void *p, size_t n);
RILL_EXTERN void rill_free(void *p);
RILL_EXTERN char *rill_strdup(const char *s);

/* ------------------------------------------------------------------------
 * Layers: a flow over another flow.
 *
 * Embed struct rill_layer first in your layer's struct; set inner with
 * rill_layer_init(). Use the rill_layer_* functions below in your ops table
 * for whatever your layer does not transform: they pass the operation
 * through to the inner flow unchanged. rill_layer_close closes the inner
 * flow (and so the stack) and then calls rill_flow_destroyed().
 */
struct rill_layer {
	struct rill_flow base;
	struct rill_flow *inner;
};

/*
 * Makes a layer of `size` bytes over inner with ops. Consumes inner: on
 * failure (NULL returned, ENOMEM) inner has been closed.
 */
RILL_EXTERN struct rill_layer *rill_layer_new(struct rill_flow *inner,
                                              const struct rill_flow_ops *ops,
                                              size_t size);

RILL_EXTERN void rill_layer_read(struct rill_flow *f);
RILL_EXTERN void rill_layer_write(struct rill_flow *f,
                                  struct rill_buf *const *bufs, size_t n);
/* ops->write_file for a layer that passes bytes through unchanged: the
 * range goes to rill_write_file() of the inner flow. */
RILL_EXTERN int rill_layer_write_file(struct rill_flow *f, int fd,
                                      uint64_t offset, uint64_t length);
RILL_EXTERN void rill_layer_shutdown_write(struct rill_flow *f);
RILL_EXTERN void rill_layer_shutdown_read(struct rill_flow *f);
RILL_EXTERN void rill_layer_close(struct rill_flow *f);
RILL_EXTERN int rill_layer_address(struct rill_flow *f, int which, char *buf,
                                   size_t len);
RILL_EXTERN int rill_layer_set_nodelay(struct rill_flow *f, bool on);
RILL_EXTERN int rill_layer_set_keepalive(struct rill_flow *f, bool on,
                                         unsigned after_s, unsigned interval_s,
                                         unsigned probes);

/* The flow under a layer made by rill_layer_new. */
static inline struct rill_flow *rill_layer_inner(struct rill_flow *f)
{
	return ((struct rill_layer *)(void *)f)->inner;
}

#ifdef __cplusplus
}
#endif

#endif /* RILL_IMPL_H */
