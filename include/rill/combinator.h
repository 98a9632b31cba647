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
};

enum rill_copy_flags {
	RILL_COPY_NO_SPLICE = 1u << 0, /* always use the generic path */
};

struct rill_copy_opts {
	unsigned flags; /* RILL_COPY_* */
	/* Generic path: how many buffers may be written to dst but not yet
	 * accepted while the next ones are read (the pipeline depth).
	 * 0 selects 4. The memory held is at most this many read buffers. */
	unsigned max_inflight;
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
 * Copies src to dst until src's EOF or an error. Never closes or shuts
 * down either flow. After a write error the copy completes once the read
 * already in flight on src returns (its bytes are counted as read and
 * dropped); use rill_proxy, or shut src's reads down, to end sooner.
 * opts may be NULL. src and dst must be different flows on one loop.
 *
 * Returns 0 (and stores the copy in *out when out is not NULL), or
 * synchronously (cb never called): RILL_EINVAL (NULL flow or cb, src ==
 * dst, different loops), RILL_ECLOSED (a flow is closed), RILL_EALREADY
 * (a read is pending on src), RILL_ENOMEM.
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

struct rill_proxy_opts {
	struct rill_copy_opts copy; /* for both directions */
	rill_proxy_half_cb half_cb;
};

/*
 * Forwards a to b and b to a at once. When a->b ends (EOF or error), a's
 * reads are shut down (RILL_SHUT_RD) and b's writes (RILL_SHUT_WR, after
 * every forwarded byte is flushed: the peer of b sees EOF); the same for
 * b->a. The proxy completes when both directions ended and both write
 * shutdowns finished. It never closes a flow.
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
