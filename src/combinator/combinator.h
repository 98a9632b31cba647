/*
 * Internal interface between copy.c (the one-direction engine, generic and
 * splice paths) and proxy.c (two engines sharing their sockets' pollers).
 */
#ifndef RILL_COMBINATOR_INTERNAL_H
#define RILL_COMBINATOR_INTERNAL_H

#include "rill/impl.h"

/*
 * A kernel socket watched for the splice path. One per fd: a proxy's two
 * directions share it (one reads from it, the other writes into it),
 * because libuv allows one poll handle per fd. It polls the flow's own fd
 * when libuv lets it (the transport is not watching it), else a dup(2).
 */
struct rill__splice_ep {
	uv_poll_t poll;
	int fd;
	bool own_fd; /* fd is our dup: close it */
	bool local;  /* a TCP connection to this host (splice_local.c) */
	int events;  /* currently polled UV_READABLE/UV_WRITABLE */
	struct rill_copy *reader, *writer;
};

/*
 * A timer for the combinators' deadlines (idle, linger). Its memory is
 * its own, so the owner may be freed while the handle closes: after
 * rill__comb_timer_free, fire is never called again.
 */
struct rill__comb_timer {
	uv_timer_t t;
	void (*fire)(void *owner);
	void *owner;
};

/* A stopped timer, or NULL (ENOMEM). */
struct rill__comb_timer *
rill__comb_timer_new(uv_loop_t *loop, void (*fire)(void *owner), void *owner);
/* (Re)starts it to fire once, ms from now. */
void rill__comb_timer_arm(struct rill__comb_timer *t, uint64_t ms);
/* Stops it and frees it in the background. NULL is a no-op. */
void rill__comb_timer_free(struct rill__comb_timer *t);

/* The engine of one direction (the public struct rill_copy). */
struct rill_copy {
	struct rill_flow *src, *dst;
	rill_copy_cb cb;
	void *ud;
	/* Internal owner hooks (proxy): `ending` when no more data will be
	 * written to dst (write error, or everything read was written);
	 * `finished` when nothing is outstanding any more. When finished is
	 * NULL the public callback runs and the copy frees itself. */
	void (*ending)(struct rill_copy *c);
	void (*finished)(struct rill_copy *c);
	/* With RILL_COPY_ABORT_ON_ERROR: the first error was recorded. The
	 * owner cuts (and may free c); NULL: the copy cuts itself. */
	void (*failed)(struct rill_copy *c);
	void *owner;
	unsigned flags;     /* RILL_COPY_* */
	uint64_t idle_ms;   /* standalone copy: idle timeout, 0: none */
	uint64_t active_ms; /* uv_now() when bytes last moved */
	struct rill__comb_timer *timer; /* standalone copy's idle timer */
	struct rill_copy_result res;
	uint64_t t0;
	uint64_t dst_wr_base; /* generic: dst's byte counter at start */
	unsigned max_inflight;
	unsigned inflight; /* generic: writes not yet completed */
	bool reading;      /* generic: a read is pending on src */
	bool rd_done;      /* src gave EOF or an error */
	bool ended;        /* `ending` ran */
	bool done;         /* `finished` / the callback ran */
	bool in_cb;        /* inside the public callback */
	bool standalone;   /* allocated by rill_copy: free on finish */
	bool sigpipe_ign;  /* SIGPIPE is ignored: no masking needed */
	/* splice path */
	struct rill__splice_ep *in, *out;
	int pipe_r, pipe_w;
	size_t pipe_bytes, pipe_cap;
	size_t pipe_limit; /* most bytes to keep in the pipe, 0: its size */
};

/* Fills c for src -> dst (no allocation, nothing started). */
void rill__copy_init(struct rill_copy *c, struct rill_flow *src,
                     struct rill_flow *dst, const struct rill_copy_opts *opts);

/* The common argument checks of rill_copy / rill_proxy. */
int rill__copy_check(struct rill_flow *src, struct rill_flow *dst);

/* True when opts and the flows allow the splice path. */
bool rill__splice_possible(struct rill_flow *src, struct rill_flow *dst,
                           const struct rill_copy_opts *opts);

/* A poller for f's fd, or NULL (then use the generic path). */
struct rill__splice_ep *rill__splice_ep_new(struct rill_flow *f);
/* Closes the poller (and its dup) in the background. */
void rill__splice_ep_free(struct rill__splice_ep *ep);

/* Whether fd is a TCP connection to this host (loopback, or one of its
 * own addresses). */
bool rill__splice_fd_local(int fd);

/* When both pollers are such local connections (and RILL_SPLICE_LOCAL is
 * not 0): tunes the sockets for one copy in -> out and returns the bytes
 * to keep in its pipe at most; else changes nothing and returns 0. */
size_t rill__splice_local_tune(const struct rill__splice_ep *in,
                               const struct rill__splice_ep *out);

/* Starts c on the generic path, or on the splice path with these pollers
 * (c becomes in->reader and out->writer). */
void rill__copy_start_generic(struct rill_copy *c);
void rill__copy_start_splice(struct rill_copy *c, struct rill__splice_ep *in,
                             struct rill__splice_ep *out);

/* Stops c for an abort: detaches from its pollers, drops its pipe. The
 * flows must be closed by the caller (pending callbacks then never run). */
void rill__copy_stop(struct rill_copy *c);

/* Fills st with c's statistics now. */
void rill__copy_stats_now(const struct rill_copy *c,
                          struct rill_copy_stats *st);

#endif
