/*
 * The server's door of the memfd vchan rendezvous: every connection to a
 * rendezvous socket goes through it before it gets anything of ours.
 *
 *   - the peer's credentials (SO_PEERCRED): by default only our own
 *     effective uid and root may connect; a policy adds others;
 *   - a deadline for the whole exchange (HELLO, OFFER, READY) from the
 *     moment of accept, default RILL__VCHAN_HANDSHAKE_MS;
 *   - a cap on the connections in the middle of a rendezvous: when it is
 *     full, the oldest is dropped to make room, so that silent connectors
 *     cannot keep an honest client out (it speaks at once, they do not);
 *   - no shared memory for anyone before a valid HELLO: the owner's
 *     offer hook runs only then (and the URI listener allocates there).
 *
 * Any number of connections are served side by side on the owner's loop:
 * one silent client never holds up another. The gate calls its owner
 * through a small table of hooks; the owner never reaches into it.
 */
#ifndef RILL_TRANSPORT_VCHAN_GATE_H
#define RILL_TRANSPORT_VCHAN_GATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "transport/vchan/rendezvous.h"

#define RILL__VCHAN_HANDSHAKE_MS 5000u /* default rendezvous deadline */
#define RILL__VCHAN_PENDING_MAX  64u   /* default cap on rendezvous */
#define RILL__VCHAN_ALLOW_MAX    16    /* uids in an allow_uid= list */

/* Who may take part in a rendezvous, and for how long. */
struct rill__vchan_policy {
	uint64_t timeout_ms;  /* the whole rendezvous; 0: default */
	unsigned max_pending; /* rendezvous at once; 0: default */
	unsigned nallow;
	uid_t allow[RILL__VCHAN_ALLOW_MAX]; /* besides our euid and root */
};

/* The default policy: same uid or root, 5 s, 64 at once. */
void rill__vchan_policy_default(struct rill__vchan_policy *p);

/* True when a peer running as uid may be our peer under p. */
bool rill__vchan_uid_allowed(const struct rill__vchan_policy *p, uid_t uid);

/*
 * Parses an allow_uid= value ("N" or "N,M,..." of decimal uids) into p.
 * 0, or RILL_EINVAL (empty, not a number, more than
 * RILL__VCHAN_ALLOW_MAX).
 */
int rill__vchan_policy_allow(struct rill__vchan_policy *p, const char *list);

/* The uid of the process at the other end of a Unix socket: 0 with *uid,
 * or -errno. */
int rill__vchan_peer_uid(int fd, uid_t *uid);

struct rill__vchan_gate;
struct rill__vchan_gate_conn;

struct rill__vchan_gate_hooks {
	/* A valid HELLO came on fd: set up the memory and send the OFFER
	 * (rill__rdv_send_offer). 0, or an error with *why; *mem (stored
	 * with the connection) is what dropped/ready get back. -EBUSY
	 * drops the connection with "busy". */
	int (*offer)(struct rill__vchan_gate *g, int fd, void **mem,
	             const char **why);
	/* READY came: the rendezvous is over. fd is the owner's now. */
	void (*ready)(struct rill__vchan_gate *g, int fd, void *mem);
	/* A connection was dropped (its fd closed by the gate): refused
	 * uid, bad message, hang-up, deadline, evicted, closed gate. mem is
	 * what offer stored, or NULL. May be NULL. */
	void (*dropped)(struct rill__vchan_gate *g, void *mem, int err,
	                const char *why);
};

struct rill__vchan_gate {
	uv_loop_t *loop;
	const struct rill__vchan_gate_hooks *hooks;
	void *data; /* the owner's */
	struct rill__vchan_policy pol;
	struct rill__vchan_gate_conn *oldest, *newest;
	unsigned n;
	bool closed; /* rill__vchan_gate_close was called: add no more */
};

void rill__vchan_gate_init(struct rill__vchan_gate *g, uv_loop_t *loop,
                           const struct rill__vchan_gate_hooks *hooks,
                           const struct rill__vchan_policy *pol, void *data);

/*
 * A connection just accepted (fd owned by the gate from now on, on g's
 * loop). Checks the peer's uid at once; may call hooks->dropped (for
 * this connection, or for the oldest one when the cap is reached) before
 * it returns.
 */
void rill__vchan_gate_add(struct rill__vchan_gate *g, int fd);

/* Drops every connection in progress (hooks->dropped with
 * RILL_ECANCELED for each); later adds just close their fd. The gate's
 * memory may be freed after (the connections' own goes with their
 * handles). */
void rill__vchan_gate_close(struct rill__vchan_gate *g);

#endif
