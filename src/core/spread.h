/*
 * Listener groups (rill_listen_opts.join), internal: one listener accepts
 * and the accepted connections are spread, in turn, over every listener
 * of the group, each on its own loop (and thread). A connection crosses
 * threads as a bare fd, before any flow exists, so every flow is born on
 * the loop it stays on.
 *
 * Each listener of a group embeds a struct rill__spread_member. The
 * acceptor's member is made with rill__spread_open; the others join it
 * with rill__spread_join on their own loop (they are woken with a
 * uv_async_t and take their fds on that loop).
 */
#ifndef RILL_CORE_SPREAD_H
#define RILL_CORE_SPREAD_H

#include <stdbool.h>
#include <uv.h>

struct rill__spread;

struct rill__spread_member {
	struct rill__spread *group;
	struct rill__spread_member *next;
	uv_loop_t *loop;
	/* Runs on the member's loop with an accepted fd it now owns. */
	void (*take)(struct rill__spread_member *m, int fd);
	/* Runs on the member's loop once it has left (rill__spread_leave)
	 * and nothing refers to it any more: free it here. NULL for the
	 * acceptor's member (it leaves at once). */
	void (*left)(struct rill__spread_member *m);
	/* Joined members only: the wake-up and the fds handed over. */
	uv_async_t async;
	bool joined;
	int *fds; /* under the group's lock */
	size_t nfds, cap;
};

/* The acceptor's member: a new group of one. 0 or RILL_ENOMEM. */
int rill__spread_open(struct rill__spread_member *m, uv_loop_t *loop);

/* m joins the group of acceptor (an open member, on another loop); call
 * on loop's thread or before that loop runs. 0, RILL_ECLOSED (the
 * acceptor left), or an error from uv_async_init. */
int rill__spread_join(struct rill__spread_member *m,
                      struct rill__spread_member *acceptor, uv_loop_t *loop,
                      void (*take)(struct rill__spread_member *m, int fd),
                      void (*left)(struct rill__spread_member *m));

/* On the acceptor's loop, for a freshly accepted fd: hands it to the
 * member whose turn it is and returns true, or returns false when the
 * turn is the acceptor's own (the caller takes the fd itself). */
bool rill__spread_hand(struct rill__spread_member *acceptor, int fd);

/* Leaves the group, on m's own loop: no fd reaches m after this returns
 * (those queued are closed). A joined member's `left` runs later, from
 * its loop; the acceptor's member is done at once. */
void rill__spread_leave(struct rill__spread_member *m);

#endif
