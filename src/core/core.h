/* Internal interfaces shared between rill's modules (never installed). */
#ifndef RILL_CORE_H
#define RILL_CORE_H

#include "rill/impl.h"

/* Number of user callbacks the core is running on this thread right now. */
int rill__callback_depth(void);

/* The kernel fd under a plain socket flow, or -1 (see ops->fd). */
int rill__flow_fd(struct rill_flow *f);

/*
 * What the core holds of f, for code outside src/core/ that must not
 * read its private fields (the copy combinator):
 * rill__flow_reading: a rill_read is pending (its callback has not run).
 * rill__flow_holds_input: a read result the core keeps for f (a finished
 *   read not yet delivered, or the sticky EOF or error), which a path
 *   around the core (splice) must not overtake.
 * rill__flow_holds_output: writes queued or running in the core, or the
 *   sticky write error.
 */
bool rill__flow_reading(struct rill_flow *f);
bool rill__flow_holds_input(struct rill_flow *f);
bool rill__flow_holds_output(struct rill_flow *f);

/* rill_layer_new marks its flows; rill__flow_bottom goes down through
 * the marked ones to the transport (NULL when a flow on the way, or f,
 * is closed or NULL). */
void rill__flow_mark_layer(struct rill_flow *f);
struct rill_flow *rill__flow_bottom(struct rill_flow *f);

/*
 * Teardown accounting (closing.c), called by the flow core only:
 * rill__closing_flow_new when a flow is made on loop (RILL_ENOMEM: the
 * flow cannot be made), rill__closing_start when it is closed, and
 * rill__closing_flow_freed when its memory went (was_closing: it had been
 * counted by rill__closing_start).
 */
int rill__closing_flow_new(uv_loop_t *loop);
void rill__closing_start(uv_loop_t *loop);
void rill__closing_flow_freed(uv_loop_t *loop, bool was_closing);

/* Records the thread's last error message (rill_last_errmsg). */
void rill__set_last_errmsg(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * rill_close drops the callbacks of pending operations: they never run.
 * Code that waits for a callback of its own must hear about it (the
 * blocking API, sync.c, finishes a wait in progress with RILL_ECLOSED, or
 * frees the state of one it gave up on). It registers a drop observer,
 * which rill_close tells of every callback it drops; the observer picks
 * out its own by the function pointer. One observer per process: the
 * last registered wins (registering the same one again is harmless, from
 * any thread).
 */
struct rill__drop_observer {
	void (*read)(rill_read_cb cb, void *ud);
	void (*status)(rill_write_cb cb, void *ud);
};
void rill__observe_drops(const struct rill__drop_observer *o);
/* For rill_close (closing.c holds the observer): tells it of a dropped
 * read callback, or write or shutdown callback. */
void rill__tell_drop_read(rill_read_cb cb, void *ud);
void rill__tell_drop_status(rill_write_cb cb, void *ud);

/*
 * Private read buffers (buf.c). A transport that reads into memory of
 * its own (the socket flows' chunks) marks each buffer it hands to its
 * reader; nobody else can see those bytes. A layer holding the only
 * reference to such a buffer may change its bytes in place
 * (rill__buf_mutable: the ws layer unmasks received frames there instead
 * of copying them out). rill_buf_ref and slices do not carry the mark.
 */
void rill__buf_mark_private(struct rill_buf *b);
bool rill__buf_mutable(const struct rill_buf *b);

/*
 * Read chunks (chunk.c): buffers of RILL__CHUNK_SIZE bytes for a
 * transport to read into and hand out slices of, recycled through a small
 * per-thread cache.
 *
 * rill__chunk_new: a new chunk (one reference), or NULL on ENOMEM.
 * rill__chunk_park: the owner of *chunk stops holding it while its reads
 *   wait: *chunk becomes NULL and the owner's reference goes, so the
 *   memory returns as soon as no slice holds it either. Until then
 *   *parked points to it (and is set to NULL when it goes): *parked must
 *   stay valid until rill__chunk_unpark or rill__chunk_forget.
 * rill__chunk_unpark: takes a parked chunk back (a new reference), or
 *   NULL if its memory went meanwhile.
 * rill__chunk_forget: the owner goes away; a parked chunk lives on with
 *   its slices.
 * rill__chunk_user_add / _drop: every chunk owner (a transport flow)
 *   counts itself for its lifetime; when the last one in the process
 *   goes, the calling thread's cache is emptied, so that nothing stays
 *   allocated once every flow is closed.
 * rill__chunk_cache_empty / rill__chunk_cached: empty / count this
 *   thread's cache (tests).
 */
#define RILL__CHUNK_SIZE (256u * 1024u)
/* What one chunk allocates: its memory is aligned to a cache line. */
#define RILL__CHUNK_ALIGN 64u
#define RILL__CHUNK_ALLOC \
	(RILL__CHUNK_SIZE + RILL__CHUNK_ALIGN + sizeof(void *))
struct rill_buf *rill__chunk_new(void);
void rill__chunk_park(struct rill_buf **chunk, struct rill_buf **parked);
struct rill_buf *rill__chunk_unpark(struct rill_buf **parked);
void rill__chunk_forget(struct rill_buf **parked);
void rill__chunk_user_add(void);
void rill__chunk_user_drop(void);
void rill__chunk_cache_empty(void);
size_t rill__chunk_cached(void);

/*
 * A file range of rill_write_file (write_file.c), owned by its write
 * request in the flow core. The core hands it down in steps: the whole
 * range to ops->write_file when the flow has one and takes it, else
 * bounded pread + ops->write steps through one reused buffer.
 *
 * rill__file_check: the synchronous checks of rill_write_file (0 or the
 *   error it returns).
 * rill__file_range_new / _free: NULL on ENOMEM.
 * rill__file_step: starts the next step on f and returns 0; it
 *   completes through rill_flow_write_done (perhaps inside this call).
 *   Or starts nothing and returns the error for the caller to complete
 *   the write with (why: what went wrong, or "").
 * rill__file_advance: the step completed with status 0; true when more
 *   steps are due.
 */
struct rill__file_range;
int rill__file_check(int fd, uint64_t offset, uint64_t length);
struct rill__file_range *rill__file_range_new(int fd, uint64_t offset,
                                              uint64_t length);
void rill__file_range_free(struct rill__file_range *fr);
int rill__file_step(struct rill_flow *f, struct rill__file_range *fr, char *why,
                    size_t whylen);
bool rill__file_advance(struct rill__file_range *fr);

/*
 * Whether writes of f are still pending in the core: queued, handed to
 * the implementation, or done with their callback not yet run. For
 * layers that must not read the core's private fields (the HTTP
 * server's handler timeout asks it of an exchange).
 */
bool rill__flow_writes_pending(struct rill_flow *f);

#endif
