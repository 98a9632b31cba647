/*
 * Accepting connections on a listening socket: the one accept loop of
 * rill, shared by the socket listeners (socket.c) and the vchan
 * rendezvous (transport/vchan/local_server.c, transport/vchan/uri.c).
 *
 * It watches the listening fd with a uv_poll_t and accepts up to `batch`
 * connections per wakeup. When accept fails for lack of resources
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM) the pending connection stays queued
 * and the fd keeps polling readable, so the acceptor stops watching for
 * RILL__ACCEPT_PAUSE_MS before it tries again: it never spins.
 */
#ifndef RILL_TRANSPORT_ACCEPTOR_H
#define RILL_TRANSPORT_ACCEPTOR_H

#include <stdbool.h>

#include <uv.h>

#define RILL__ACCEPT_PAUSE_MS 100

struct rill__acceptor;

/*
 * One result: fd >= 0 and err 0 for a new connection (non-blocking,
 * close-on-exec, owned by the callee), or fd -1 and a negative errno
 * (the acceptor has paused itself if the error can repeat at once). The
 * callback may stop or close the acceptor.
 */
typedef void (*rill__accept_cb)(struct rill__acceptor *a, int fd, int err);

struct rill__acceptor {
	uv_poll_t poll;
	uv_timer_t pause;
	int fd; /* the listening socket; the caller owns and closes it */
	unsigned batch;
	rill__accept_cb cb;
	void (*closed_cb)(struct rill__acceptor *a);
	void *data; /* the caller's */
	int handles_open;
	bool watching, closing;
};

/* Starts watching fd (listening, any blocking mode). Returns 0 or a
 * libuv error (nothing to close then). */
int rill__acceptor_init(uv_loop_t *loop, struct rill__acceptor *a, int fd,
                        unsigned batch, rill__accept_cb cb);

/* Stops accepting (connections wait in the backlog) / starts again. */
void rill__acceptor_stop(struct rill__acceptor *a);
void rill__acceptor_start(struct rill__acceptor *a);

/* Closes the handles; no callback after this returns. closed_cb (may be
 * NULL) runs from the loop once a's memory may be freed. The watch stops
 * at once, so the caller may close fd right after this call. */
void rill__acceptor_close(struct rill__acceptor *a,
                          void (*closed_cb)(struct rill__acceptor *a));

#endif
