/*
 * The vchan ring flow: one side of a vchan moving bytes through the rings
 * of ring.c, written once for every way two sides can meet (the
 * memfd backend of one host, vchan_local*.c; Xen grant tables and event
 * channels, vchan_xen*.c).
 *
 * The flow owns the read/write/EOF/notify logic and the validation of
 * the peer's indices; a backend owns the shared memory, the wake-up
 * channel and the rendezvous. The backend embeds struct rill__vchan_flow
 * first in its own struct, fills in its ops, and calls:
 *   rill__vchan_flow_new        to allocate (the flow is not attached);
 *   rill__vchan_flow_attach     once the ring is mapped and the wake fd
 *                               is known (starts watching it);
 *   rill__vchan_flow_run        when something changed (the peer arrived
 *                               or left);
 *   rill__vchan_flow_teardown   to close (user close or a failure).
 *
 * Moving bytes (rill__vchan_flow_run): try the pending read and write;
 * when one has to wait, poll the ring for up to spin_ns, then set the
 * notify request bit in the peer's byte, re-check the ring once more (no
 * lost wake-up, see ring.c), and sleep until the wake fd fires.
 */
#ifndef RILL_TRANSPORT_VCHAN_FLOW_H
#define RILL_TRANSPORT_VCHAN_FLOW_H

#include "core/core.h"
#include "transport/vchan/pool.h"
#include "transport/vchan/ring.h"

struct rill__vchan_flow;

/* What differs between the ways to meet. One static const per backend. */
struct rill__vchan_backend {
	/* Wakes the peer (it may be asleep on its own wake fd). */
	void (*signal)(struct rill__vchan_flow *vf);
	/* The wake fd polled readable: consume the wake-up. */
	void (*drain)(struct rill__vchan_flow *vf);
	/* After a wake-up, before the flow runs (may be NULL): the backend
	 * looks at what changed (the client arrived...). */
	void (*woken)(struct rill__vchan_flow *vf);
	/* Teardown: close the backend's own libuv handles, each through
	 * rill__vchan_flow_close_handle (may be NULL). */
	void (*close_handles)(struct rill__vchan_flow *vf);
	/* Every handle is closed: unmap, close fds, free what the backend
	 * holds (not vf itself). */
	void (*release)(struct rill__vchan_flow *vf);
	/* The flow's printable address (rill_flow_address). */
	int (*address)(struct rill__vchan_flow *vf, int which, char *buf,
	               size_t len);
};

struct rill__vchan_flow {
	struct rill_flow base;
	const struct rill__vchan_backend *backend;
	struct rill__vchan v;
	bool attached; /* v is valid and the wake fd is watched */
	/*
	 * The peer is gone (set by the backend: a hang-up of the memfd
	 * rendezvous socket). Writes then fail with RILL_ECLOSED and reads
	 * report EOF once the ring is drained.
	 */
	bool peer_gone;
	/* A peer's live byte 0 also fails writes (Xen: the peer's death and
	 * its close look the same, and libxenvchan stops there too). */
	bool live0_is_gone;
	bool discard; /* never handed to the user: discard, not destroyed */

	int wake_fd;
	uv_poll_t wake_poll;
	uv_idle_t kick; /* resumes a run that used up its budget */
	bool wake_init, kick_init, torn_down;
	unsigned open_handles;

	int fail; /* sticky error of the vchan */
	bool reading, writing, wr_shut;
	bool in_run, rerun;
	struct rill__vchan_pool *pool;
	uint64_t spin_ns;   /* the tunable maximum */
	uint64_t spin_cur;  /* adaptive: what the last spins earned */
	unsigned spin_idle; /* sleeps since spinning was abandoned */
	struct rill_buf *const *w_bufs;
	size_t w_n, w_i, w_off;
};

/* An ops table for vchan flows of kind `kind` ("vchan", "xen-vchan"). */
#define RILL__VCHAN_FLOW_OPS(kind)                                 \
	{                                                          \
		.version = RILL_FLOW_OPS_VERSION, .name = (kind),  \
		.read = rill__vchan_flow_read,                     \
		.write = rill__vchan_flow_write,                   \
		.shutdown_write = rill__vchan_flow_shutdown_write, \
		.close = rill__vchan_flow_close,                   \
		.address = rill__vchan_flow_address,               \
	}

void rill__vchan_flow_read(struct rill_flow *f);
void rill__vchan_flow_write(struct rill_flow *f, struct rill_buf *const *bufs,
                            size_t n);
void rill__vchan_flow_shutdown_write(struct rill_flow *f);
void rill__vchan_flow_close(struct rill_flow *f);
int rill__vchan_flow_address(struct rill_flow *f, int which, char *buf,
                             size_t len);

/* The vchan flow under f, or NULL when f is not one. */
struct rill__vchan_flow *rill__vchan_flow_of(struct rill_flow *f);

/*
 * Allocates a flow of `size` bytes (the backend's struct) with ops (made
 * with RILL__VCHAN_FLOW_OPS) and backend. The spin starts at
 * $RILL_VCHAN_SPIN_NS or 50 us. NULL on ENOMEM.
 */
struct rill__vchan_flow *
rill__vchan_flow_new(uv_loop_t *loop, const struct rill_flow_ops *ops,
                     const struct rill__vchan_backend *backend, size_t size);

/* libxenvchan's close rules: the peer's live 0 ends the vchan both ways
 * (writes then fail RILL_ECLOSED), and the flow cannot half-close. */
void rill__vchan_flow_no_half_close(struct rill__vchan_flow *vf);

/*
 * The ring is attached (vf->v valid): watch wake_fd (readable means
 * "woken"). Returns 0 or a libuv error.
 */
int rill__vchan_flow_attach(struct rill__vchan_flow *vf, int wake_fd);

/* Moves what can move now; call after any change of state. */
void rill__vchan_flow_run(struct rill__vchan_flow *vf);

/* Makes the vchan fail with err (sticky; the first error wins). */
void rill__vchan_flow_fail(struct rill__vchan_flow *vf, int err,
                           const char *what);

/* Sets this side's live byte and wakes the peer (if attached). */
void rill__vchan_flow_set_live(struct rill__vchan_flow *vf, uint8_t live);

/*
 * Closes every handle (the flow's, then the backend's through
 * close_handles), then calls backend->release and frees the flow
 * (rill_flow_destroyed, or rill_flow_discard when vf->discard). Runs
 * once; later calls do nothing.
 */
void rill__vchan_flow_teardown(struct rill__vchan_flow *vf);

/* For backend->close_handles: closes h, counted by the teardown. */
void rill__vchan_flow_close_handle(struct rill__vchan_flow *vf, uv_handle_t *h);

/* For something that closes on its own (an acceptor), at any time: a
 * teardown waits until the matching unhold. */
void rill__vchan_flow_hold(struct rill__vchan_flow *vf);
void rill__vchan_flow_unhold(struct rill__vchan_flow *vf);

#endif
