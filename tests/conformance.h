/*
 * The flow conformance suite (doc/impl.md, doc/contract.md): written once, run
 * against every flow kind and stack. A flow kind registers a factory that
 * makes a connected pair of flows; the suite registers every check as a
 * harness test named "conf/<factory>/<check>[/rev]" (each in its own
 * process, so each gets fresh flows). Checks run in both orientations:
 * a -> b and b -> a (for sockets: connecting side and accepted side).
 *
 * The checks assume only that a write of up to 1 KiB completes while the
 * peer is not reading (every real transport buffers that much); anything
 * larger is read concurrently. Large transfers use big_bytes (64 MiB by
 * default; the environment variable CONF_BIG_BYTES lowers it, e.g. under
 * valgrind). CONF_SEED changes the random write sizes and splits.
 * CONF_TIME_SCALE=K stretches the timing-sensitive check (deadlines that
 * progress must keep resetting) K times, for emulated CPUs (tests/vm/).
 *
 * Use, in a test program linked with harness.c and conformance.c:
 *
 *   static int make(uv_loop_t *loop, void *arg, struct rill_flow **a,
 *                   struct rill_flow **b) { return rill_pair(loop, 0, a, b); }
 *   static const struct conf_factory pair_factory = {
 *           .name = "pair", .make = make,
 *   };
 *   CONF_REGISTER(pair_factory);
 */
#ifndef RILL_TEST_CONFORMANCE_H
#define RILL_TEST_CONFORMANCE_H

#include "rill.h"

/* Capabilities a flow kind may lack; the checks that need them are then
 * reported as skipped, with the factory's reason. */
#define CONF_NO_HALF_CLOSE 0x1u /* shutdown(write) is not a half-close */
/* The flow kind keeps process-wide state allocated through rill (a cache
 * of TLS configurations, say), so the check that every byte allocated
 * through rill is freed at the end of each check cannot apply; LSan and
 * valgrind still check for real leaks at exit. */
#define CONF_KEEPS_ALLOCATIONS 0x2u

struct conf_factory {
	const char *name; /* "pair", "tcp4", "shut+unix"... */

	/*
	 * Makes two connected flows on loop (a: the connecting side, b: the
	 * accepted side, where that applies). May run the loop to get there.
	 * Returns 0, or a negative error (the check then fails).
	 */
	int (*make)(uv_loop_t *loop, void *arg, struct rill_flow **a,
	            struct rill_flow **b);

	/* Optional: release what make() set up (listeners, files), after
	 * both flows were closed and the loop drained. */
	void (*cleanup)(uv_loop_t *loop, void *arg);

	/* Optional: make f's peer see a connection reset (e.g. TCP close
	 * with SO_LINGER 0). NULL: the peer-reset check is skipped. f is
	 * closed by this call. */
	int (*reset)(struct rill_flow *f, void *arg);

	void *arg;
	unsigned caps_missing; /* CONF_NO_* */
	const char *why_missing;

	/* What the peer's reads end with after a flow is closed WITHOUT a
	 * shutdown(write) first (close is not an orderly teardown). 0 means
	 * RILL_EOF; a layer that detects truncation declares its code, e.g.
	 * RILL_ETLS_TRUNCATED for TLS (close sends no close_notify). */
	int peer_close_status;

	/* Bytes for the large hash-checked transfers; 0: 64 MiB. */
	size_t big_bytes;

	/* What the kernel may buffer between the two flows before a writer
	 * whose peer reads nothing stalls; 0: 16 MiB (TCP's autotuned
	 * buffers hold a few). The slow-reader check writes half as much
	 * again and bounds both the bytes acknowledged to the writer and the
	 * memory rill holds by it. */
	size_t absorb_bytes;

	/* Timeout per check in seconds; 0: the harness default. */
	unsigned timeout_s;
};

/* Registers every check of the suite for f (f must stay valid). */
void conf_register(const struct conf_factory *f);

/*
 * Direct access to the checks, for the meta-test (which runs the suite
 * against deliberately broken flows and expects each to be caught) and for
 * programs that want one check by hand.
 */
size_t conf_check_count(void);
const char *conf_check_name(size_t i);

/*
 * Runs check i of the suite for factory f in the calling process, in
 * orientation rev (false: a -> b). Installs a counting allocator
 * (rill_replace_allocator), so it must run in a fresh process that has not
 * allocated through rill yet (a harness test, or a forked child). Returns
 * when the check passed; a failure or skip ends the process through the
 * harness (th_fail: exit 1, th_skip: exit 77).
 */
void conf_run_check(const struct conf_factory *f, size_t i, bool rev);

/* Bytes currently allocated through rill's allocator (counting allocator
 * installed by conf_run_check or conf_count_allocations). */
size_t conf_live_bytes(void);

/* Installs the counting allocator (once per process, before any rill
 * allocation). */
void conf_count_allocations(void);

#define CONF_REGISTER(factory)                                            \
	__attribute__((constructor)) static void conf_reg_##factory(void) \
	{                                                                 \
		conf_register(&(factory));                                \
	}

#endif
