/*
 * rill/combinator.h - copy and proxy: forwarding one flow into another.
 * Included by rill.h; do not include directly.
 *
 * rill_copy(src, dst) moves bytes from src to dst until src reports EOF
 * or either side fails (mirage-flow-combinators' Copy). rill_proxy(a, b)
 * runs a copy each way and propagates half-closes (Proxy).
 *
 * Zero copy. The generic path writes each buffer read from src to dst
 * as is (rill_write of the very buffer read): no byte is copied in user
 * space. When both flows are plain kernel sockets (TCP or Unix, no layer
 * above them), the bytes do not enter user space at all: they move with
 * splice(2) through a pipe. Both paths give the same results (data,
 * statistics, status); RILL_COPY_NO_SPLICE or the environment variable
 * RILL_NO_SPLICE=1 forces the generic path.
 *
 * While a copy or proxy runs it owns the reads of its sources and the
 * writes of its destinations: do not read, write or close those flows
 * yourself until its callback ran, except through rill_copy_abort /
 * rill_proxy_abort. (The splice path moves bytes under the flows, so the
 * flows' own counters, rill_flow_counters, do not see them; the
 * combinator's statistics always do.)
 */
#ifndef RILL_COMBINATOR_H
#define RILL_COMBINATOR_H

#ifdef __cplusplus
extern "C" {
#endif

/* Statistics of one direction. Reads/writes count completed operations
 * (a splice(2) call that moved bytes counts as one). */
struct rill_copy_stats {
	uint64_t read_bytes;
	uint64_t read_ops;
	uint64_t write_bytes;
	uint64_t write_ops;
	uint64_t duration_ns; /* from start until completion (or now) */
};

/* How a copy ended. */
struct rill_copy_result {
	/* 0: src reached EOF and every byte read was written to dst.
	 * Otherwise the first error seen (read_err or write_err). */
	int status;
	int read_err;  /* 0, or the error src reported (EOF is not one) */
	int write_err; /* 0, or the error dst reported */
	bool spliced;  /* the bytes moved with splice(2) */
	/* rill_proxy only: dst cannot half-close (rill_flow_can_half_close),
	 * so src's EOF was not passed on; dst stayed open for the other
	 * direction, which ends the proxy when its own peer closes. */
	bool eof_held;
	struct rill_copy_stats stats;
	/* RILL_CUT_*: RILL_CUT_NONE, or why the copy was cut (and both
	 * flows closed). In a proxy's per-direction results, always 0: see
	 * rill_proxy_result.cut. */
	int cut;
};

enum rill_copy_flags {
	RILL_COPY_NO_SPLICE = 1u << 0, /* always use the generic path */
	/* Cut (see below) at the first error of either flow instead of
	 * waiting for what is still in flight, or, in a proxy, for the
	 * other direction to end. */
	RILL_COPY_ABORT_ON_ERROR = 1u << 1,
};

/*
 * Why a copy or proxy was cut: it ended early, before its directions
 * ended by themselves, and CLOSED BOTH FLOWS (rill_close) just before its
 * callback, because operations still pending on them (a write a silent
 * peer never takes, a read it never answers) can only be taken back that
 * way; what they carried is lost. Calling rill_close on them again inside
 * the callback is harmless (a no-op); after the callback they must not
 * be used. The result's status then says why: RILL_ETIMEDOUT for a
 * timeout, the first error for RILL_CUT_ERROR.
 */
enum rill_cut_reason {
	RILL_CUT_NONE = 0,   /* ended by itself: the flows are the caller's */
	RILL_CUT_IDLE = 1,   /* idle_timeout_ms: no byte moved either way */
	RILL_CUT_LINGER = 2, /* rill_proxy_opts.linger_ms ran out */
	RILL_CUT_ERROR = 3,  /* RILL_COPY_ABORT_ON_ERROR and an error */
};

struct rill_copy_opts {
	unsigned flags; /* RILL_COPY_* */
	/* Generic path: how many buffers may be written to dst but not yet
	 * accepted while the next ones are read (the pipeline depth).
	 * 0 selects 4. The memory held is at most this many read buffers. */
	unsigned max_inflight;
	/* Cut with RILL_ETIMEDOUT (RILL_CUT_IDLE) when no byte was read or
	 * written for this many ms (in a proxy: in either direction; taken
	 * from the proxy's `copy` options). 0: never (the default). A peer
	 * that stops reading stops the copy's reads too (back-pressure), so
	 * it counts as idle. */
	uint64_t idle_timeout_ms;
};

struct rill_copy;

/*
 * Completion of a copy: called once, from the loop, with the result (valid
 * during the call). c is freed when the callback returns. The flows are
 * untouched: the caller still owns them and decides what to do.
 */
typedef void (*rill_copy_cb)(struct rill_copy *c,
                             const struct rill_copy_result *res, void *ud);

/*
 * Copies src to dst until src's EOF or an error. Never shuts down either
 * flow, and closes them only when cut (rill_cut_reason: an idle timeout,
 * or RILL_COPY_ABORT_ON_ERROR). After a write error the copy completes
 * once the read already in flight on src returns (its bytes are counted
 * as read and dropped); use RILL_COPY_ABORT_ON_ERROR, rill_proxy, or shut
 * src's reads down, to end sooner. opts may be NULL. src and dst must be
 * on one loop. src == dst is allowed: an echo, every byte read from the
 * flow is written back to it (the flow's half-close is the caller's, in
 * the callback).
 *
 * Returns 0 (and stores the copy in *out when out is not NULL), or
 * synchronously (cb never called): RILL_EINVAL (NULL flow or cb,
 * different loops), RILL_ECLOSED (a flow is closed), RILL_EALREADY (a
 * read is pending on src), RILL_ENOMEM.
 */
RILL_EXTERN int rill_copy(struct rill_flow *src, struct rill_flow *dst,
                          const struct rill_copy_opts *opts, rill_copy_cb cb,
                          void *ud, struct rill_copy **out);

/* Live statistics of a running copy (also valid inside its callback). */
RILL_EXTERN void rill_copy_stats(struct rill_copy *c,
                                 struct rill_copy_stats *out);

/*
 * Aborts a running copy: closes BOTH flows (an operation already started
 * on them cannot be taken back, and what it carried is lost), frees c,
 * and calls no callback. Safe inside any callback of the flows. Inside the
 * copy's own callback it just closes both flows. NULL is a no-op.
 */
RILL_EXTERN void rill_copy_abort(struct rill_copy *c);

/* ---------------------------------------------------------------------- */

enum rill_proxy_side {
	RILL_PROXY_A = 1u << 0, /* flow a reported an error */
	RILL_PROXY_B = 1u << 1, /* flow b reported an error */
};

struct rill_proxy_result {
	/* 0 when both directions ended with EOF and every byte was
	 * forwarded and every half-close delivered; else the first error. */
	int status;
	/* RILL_PROXY_A / RILL_PROXY_B bits: which flow(s) failed. An error
	 * reading a (a->b) or writing a (b->a) is a's failure. */
	unsigned failed;
	struct rill_copy_result ab; /* a -> b */
	struct rill_copy_result ba; /* b -> a */
	/* RILL_CUT_*: RILL_CUT_NONE, or why the proxy was cut: it closed a
	 * and b before this callback (see enum rill_cut_reason); status is
	 * then RILL_ETIMEDOUT, or the first error for RILL_CUT_ERROR. */
	int cut;
};

struct rill_proxy;

/* Completion of a proxy: once, when both directions ended. p is freed when
 * the callback returns; the flows are still the caller's to close. */
typedef void (*rill_proxy_cb)(struct rill_proxy *p,
                              const struct rill_proxy_result *res, void *ud);

/*
 * One direction ended (optional, may be NULL in opts): from_a is true for
 * a->b. Called before the proxy's completion, once per direction, after
 * the half-close was started. Useful for a linger deadline: the other
 * direction may go on for as long as its peer wants.
 */
typedef void (*rill_proxy_half_cb)(struct rill_proxy *p, bool from_a,
                                   const struct rill_copy_result *res,
                                   void *ud);

enum rill_proxy_flags {
	/* linger_ms applies (so that a linger of 0 means "no wait at all"). */
	RILL_PROXY_LINGER = 1u << 0,
};

struct rill_proxy_opts {
	/* For both directions: flags (RILL_COPY_NO_SPLICE,
	 * RILL_COPY_ABORT_ON_ERROR: the first error of either flow cuts the
	 * whole proxy), max_inflight, idle_timeout_ms (no byte moved either
	 * way). */
	struct rill_copy_opts copy;
	rill_proxy_half_cb half_cb;
	unsigned flags; /* RILL_PROXY_* */
	/* With RILL_PROXY_LINGER: once the first direction ended, the
	 * proxy has linger_ms to complete (the other direction to end and
	 * both write shutdowns to finish); then it is cut (RILL_CUT_LINGER,
	 * status RILL_ETIMEDOUT). Without the flag it waits for as long as
	 * the other peer wants, as a half-closed request waits for its
	 * reply. */
	uint64_t linger_ms;
};

/*
 * Forwards a to b and b to a at once. When a->b ends (EOF or error), a's
 * reads are shut down (RILL_SHUT_RD) and b's writes (RILL_SHUT_WR, after
 * every forwarded byte is flushed: the peer of b sees EOF); the same for
 * b->a. The proxy completes when both directions ended and both write
 * shutdowns finished. It closes the flows only when cut (an idle timeout,
 * the linger, RILL_COPY_ABORT_ON_ERROR: see enum rill_cut_reason). a and
 * b must be different flows.
 *
 * When b cannot half-close (rill_flow_can_half_close), its write side is
 * left open at a's EOF (RILL_SHUT_WR there would end b->a too): the
 * result's ab.eof_held says so, and b->a goes on until b's peer closes,
 * or the caller ends the proxy (a linger or idle deadline). The same
 * holds the other way round.
 *
 * Cancel: rill_proxy_abort(p) (closes both flows). Closing a or b
 * yourself while the proxy runs is not allowed (the proxy would wait for
 * callbacks that never come).
 *
 * Returns 0 (stores the proxy in *out when not NULL), or synchronously
 * (cb never called) RILL_EINVAL, RILL_ECLOSED, RILL_EALREADY, RILL_ENOMEM.
 */
RILL_EXTERN int rill_proxy(struct rill_flow *a, struct rill_flow *b,
                           const struct rill_proxy_opts *opts, rill_proxy_cb cb,
                           void *ud, struct rill_proxy **out);

/* Live statistics of both directions; either pointer may be NULL. */
RILL_EXTERN void rill_proxy_stats(struct rill_proxy *p,
                                  struct rill_copy_stats *ab,
                                  struct rill_copy_stats *ba);

/* True once direction a->b (from_a) or b->a ended. */
RILL_EXTERN bool rill_proxy_ended(struct rill_proxy *p, bool from_a);

/* True when the proxy forwards with splice(2). */
RILL_EXTERN bool rill_proxy_spliced(struct rill_proxy *p);

/*
 * Aborts: closes a and b, frees p, no callback. Safe inside callbacks of
 * the flows and inside half_cb; inside the proxy's completion callback it
 * just closes both flows. NULL is a no-op.
 */
RILL_EXTERN void rill_proxy_abort(struct rill_proxy *p);

#ifdef __cplusplus
}
#endif

#endif /* RILL_COMBINATOR_H */
