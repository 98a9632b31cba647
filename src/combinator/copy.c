/*
 * copy: forward one flow into another (mirage-flow-combinators' Copy).
 *
 * Two engines with the same results:
 *
 *  - generic: rill_read(src) -> rill_write(dst) of the very buffer read,
 *    so no byte is copied here. Up to max_inflight writes may be pending
 *    while the next read is already under way: reading and writing
 *    overlap, and the memory held stays bounded by that many buffers.
 *
 *  - splice: both flows are plain kernel sockets (rill__flow_fd), so the
 *    bytes go src socket -> pipe -> dst socket with splice(2) and never
 *    enter user space. The fds are watched with libuv polls; a pipe is
 *    taken from a small per-thread pool only while bytes are in transit,
 *    so an idle connection holds no pipe (no fds, no kernel pages).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rill/impl.h"
#include "core/core.h"
#include "combinator/combinator.h"

#define COPY_DEFAULT_INFLIGHT 4u
#define COPY_MAX_INFLIGHT     64u
/* Rounds of splice per readiness event, so one busy connection cannot
 * starve the others on the loop; level-triggered polls bring us back. */
#define SPLICE_ROUNDS 16
/* Pipe size asked for (F_SETPIPE_SZ); the kernel may give less. A larger
 * pipe means fewer syscalls per byte on a fast path. */
#define SPLICE_PIPE_SIZE (1024 * 1024)
#define SPLICE_POOL_MAX  16

/* ---------------------------------------------------------------------- */
/* Results */

static void copy_fail(struct rill_copy *c, bool reading, int err)
{
	if (reading) {
		if (c->res.read_err == 0)
			c->res.read_err = err;
	} else {
		if (c->res.write_err == 0)
			c->res.write_err = err;
	}
	if (c->res.status == 0)
		c->res.status = err;
}

void rill__copy_stats_now(const struct rill_copy *c, struct rill_copy_stats *st)
{
	*st = c->res.stats;
	if (!c->done)
		st->duration_ns = uv_hrtime() - c->t0;
}

void rill_copy_stats(struct rill_copy *c, struct rill_copy_stats *out)
{
	if (c == NULL || out == NULL)
		return;
	rill__copy_stats_now(c, out);
}

/* ---------------------------------------------------------------------- */
/* The pipe pool (one per thread: a loop and its flows live on one). */

struct splice_pipe {
	int r, w;
	size_t cap;
};

static _Thread_local struct splice_pipe splice_pool[SPLICE_POOL_MAX];
static _Thread_local int splice_pool_n;

static int pipe_get(struct rill_copy *c)
{
	if (splice_pool_n > 0) {
		struct splice_pipe *p = &splice_pool[--splice_pool_n];
		c->pipe_r = p->r;
		c->pipe_w = p->w;
		c->pipe_cap = p->cap;
		return 0;
	}
	int fds[2];
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
		return -errno;
	/* Best effort: an unprivileged user past pipe-user-pages-soft gets
	 * a smaller pipe, which still works. */
	(void)fcntl(fds[1], F_SETPIPE_SZ, SPLICE_PIPE_SIZE);
	int cap = fcntl(fds[1], F_GETPIPE_SZ);
	c->pipe_r = fds[0];
	c->pipe_w = fds[1];
	c->pipe_cap = cap > 0 ? (size_t)cap : 4096;
	return 0;
}

/* Gives the pipe back: to the pool when empty, else closes it. */
static void pipe_put(struct rill_copy *c)
{
	if (c->pipe_r < 0)
		return;
	if (c->pipe_bytes == 0 && splice_pool_n < SPLICE_POOL_MAX) {
		struct splice_pipe *p = &splice_pool[splice_pool_n++];
		p->r = c->pipe_r;
		p->w = c->pipe_w;
		p->cap = c->pipe_cap;
	} else {
		close(c->pipe_r);
		close(c->pipe_w);
	}
	c->pipe_r = c->pipe_w = -1;
	c->pipe_bytes = 0;
}

/* ---------------------------------------------------------------------- */
/* Pollers */

static void ep_update(struct rill__splice_ep *ep);

static void ep_close_cb(uv_handle_t *h)
{
	struct rill__splice_ep *ep = h->data;
	if (ep->own_fd)
		close(ep->fd);
	rill_free(ep);
}

struct rill__splice_ep *rill__splice_ep_new(struct rill_flow *f)
{
	int fd = rill__flow_fd(f);
	if (fd < 0)
		return NULL;
	struct rill__splice_ep *ep = rill_calloc(1, sizeof *ep);
	if (ep == NULL)
		return NULL;
	/* libuv allows one poll per fd: use the flow's own fd when its
	 * transport is not watching it now (it is idle while we own it),
	 * otherwise a dup of it (same socket, another fd number). */
	if (uv_poll_init(f->loop, &ep->poll, fd) == 0) {
		ep->fd = fd;
	} else {
		int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (d < 0 || uv_poll_init(f->loop, &ep->poll, d) != 0) {
			if (d >= 0)
				close(d);
			rill_free(ep);
			return NULL;
		}
		ep->fd = d;
		ep->own_fd = true;
	}
	ep->poll.data = ep;
	ep->local = rill__splice_fd_local(fd);
	return ep;
}

void rill__splice_ep_free(struct rill__splice_ep *ep)
{
	if (ep == NULL)
		return;
	ep->reader = ep->writer = NULL;
	uv_close((uv_handle_t *)&ep->poll, ep_close_cb);
}

static void splice_pump(struct rill_copy *c);

static void ep_cb(uv_poll_t *h, int status, int events)
{
	struct rill__splice_ep *ep = h->data;
	if (status < 0)
		events = UV_READABLE | UV_WRITABLE; /* the syscalls will say */
	if (ep->reader != NULL && (events & (UV_READABLE | UV_DISCONNECT)))
		splice_pump(ep->reader);
	/* The reader may have finished everything, even freed its owner:
	 * finishing detaches a copy from its pollers and closes them, and a
	 * closing poller's memory lives until its close callback. */
	if (!uv_is_closing((uv_handle_t *)h) && ep->writer != NULL &&
	    (events & UV_WRITABLE))
		splice_pump(ep->writer);
}

/* Whether the pipe has room enough for a read worth a system call: at
 * least half of it free, so reads and writes overlap (the copy path has
 * several buffers in flight) without splicing slivers. */
static size_t splice_cap(const struct rill_copy *c)
{
	return c->pipe_limit > 0 && c->pipe_limit < c->pipe_cap ? c->pipe_limit
	                                                        : c->pipe_cap;
}

static bool splice_room(const struct rill_copy *c)
{
	return c->pipe_r < 0 || c->pipe_bytes <= splice_cap(c) / 2;
}

static bool splice_wants_read(const struct rill_copy *c)
{
	return !c->done && !c->ended && !c->rd_done && splice_room(c);
}

static bool splice_wants_write(const struct rill_copy *c)
{
	return !c->done && !c->ended && c->pipe_bytes > 0;
}

static void ep_update(struct rill__splice_ep *ep)
{
	if (ep == NULL || uv_is_closing((uv_handle_t *)&ep->poll))
		return;
	int ev = 0;
	if (ep->reader != NULL && splice_wants_read(ep->reader))
		ev |= UV_READABLE;
	if (ep->writer != NULL && splice_wants_write(ep->writer))
		ev |= UV_WRITABLE;
	if (ev == ep->events)
		return;
	ep->events = ev;
	if (ev != 0)
		uv_poll_start(&ep->poll, ev, ep_cb);
	else
		uv_poll_stop(&ep->poll);
}

/* ---------------------------------------------------------------------- */
/* Completion */

static void copy_detach(struct rill_copy *c)
{
	if (c->in != NULL) {
		if (c->in->reader == c)
			c->in->reader = NULL;
		ep_update(c->in);
	}
	if (c->out != NULL) {
		if (c->out->writer == c)
			c->out->writer = NULL;
		ep_update(c->out);
	}
	pipe_put(c);
}

/* A standalone copy lets go of its pollers (one, shared, for an echo)
 * and its timer. */
static void copy_release(struct rill_copy *c)
{
	struct rill__splice_ep *in = c->in, *out = c->out;
	c->in = c->out = NULL;
	rill__splice_ep_free(in);
	if (out != in)
		rill__splice_ep_free(out);
	rill__comb_timer_free(c->timer);
	c->timer = NULL;
}

static void copy_finish(struct rill_copy *c)
{
	c->done = true;
	c->res.stats.duration_ns = uv_hrtime() - c->t0;
	copy_detach(c);
	if (c->finished != NULL) {
		c->finished(c); /* the owner may free c */
		return;
	}
	copy_release(c);
	c->in_cb = true;
	c->cb(c, &c->res, c->ud);
	rill_free(c);
}

/*
 * Cuts a standalone copy (rill_cut_reason): stops it, closes both flows
 * (that drops their pending callbacks), then calls back.
 */
static void copy_cut(struct rill_copy *c, int reason, int status)
{
	rill__copy_stop(c);
	c->res.cut = reason;
	if (c->res.status == 0)
		c->res.status = status;
	c->res.stats.duration_ns = uv_hrtime() - c->t0;
	rill_close(c->src);
	rill_close(c->dst);
	copy_release(c);
	c->in_cb = true;
	c->cb(c, &c->res, c->ud);
	rill_free(c);
}

static void copy_idle_fire(void *owner)
{
	struct rill_copy *c = owner;
	uint64_t now = uv_now(c->src->loop);
	if (now - c->active_ms >= c->idle_ms)
		copy_cut(c, RILL_CUT_IDLE, RILL_ETIMEDOUT);
	else
		rill__comb_timer_arm(c->timer, c->active_ms + c->idle_ms - now);
}

/*
 * Runs after every event. Must be the last thing a handler does with c:
 * the owner's hooks may free it.
 */
static void copy_check(struct rill_copy *c)
{
	if (c->done)
		return;
	if ((c->flags & RILL_COPY_ABORT_ON_ERROR) && c->res.status != 0) {
		if (c->failed != NULL)
			c->failed(c); /* the owner cuts, and may free c */
		else
			copy_cut(c, RILL_CUT_ERROR, c->res.status);
		return;
	}
	bool spliced = c->res.spliced;
	bool drained = spliced ? c->pipe_bytes == 0 : c->inflight == 0;
	if (!c->ended && (c->res.write_err != 0 || (c->rd_done && drained))) {
		c->ended = true;
		if (spliced) {
			/* No more polling for this copy. */
			ep_update(c->in);
			ep_update(c->out);
		}
		if (c->ending != NULL) {
			c->ending(c);
			if (c->done)
				return;
		}
	}
	if (!c->ended)
		return;
	if (!spliced && (c->reading || c->inflight > 0))
		return; /* wait for what is still in the flows */
	copy_finish(c);
}

/* ---------------------------------------------------------------------- */
/* Generic path */

static void gen_pump(struct rill_copy *c);

static void gen_write_cb(struct rill_flow *f, int status, void *ud)
{
	struct rill_copy *c = ud;
	c->inflight--;
	if (status == 0) {
		/* The core counted this write's bytes just before calling us;
		 * nobody else writes to dst while the copy runs. */
		uint64_t written;
		rill_flow_counters(f, NULL, &written, NULL, NULL);
		c->res.stats.write_bytes = written - c->dst_wr_base;
		c->res.stats.write_ops++;
		c->active_ms = uv_now(f->loop);
	} else {
		copy_fail(c, false, status);
	}
	gen_pump(c);
	copy_check(c);
}

static void gen_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                        void *ud)
{
	(void)f;
	struct rill_copy *c = ud;
	c->reading = false;
	if (status == 0) {
		c->res.stats.read_bytes += b->len;
		c->res.stats.read_ops++;
		c->active_ms = uv_now(f->loop);
		if (c->res.write_err == 0 && !c->done) {
			int err = rill_write(c->dst, b, gen_write_cb, c);
			if (err != 0)
				copy_fail(c, false, err);
			else
				c->inflight++;
		}
		rill_buf_release(b);
		gen_pump(c);
	} else {
		c->rd_done = true;
		if (status != RILL_EOF)
			copy_fail(c, true, status);
	}
	copy_check(c);
}

static void gen_pump(struct rill_copy *c)
{
	if (c->done || c->reading || c->rd_done || c->res.write_err != 0 ||
	    c->inflight >= c->max_inflight)
		return;
	int err = rill_read(c->src, gen_read_cb, c);
	if (err != 0) {
		c->rd_done = true;
		copy_fail(c, true, err);
		return;
	}
	c->reading = true;
}

void rill__copy_start_generic(struct rill_copy *c)
{
	c->res.spliced = false;
	rill_flow_counters(c->dst, NULL, &c->dst_wr_base, NULL, NULL);
	c->t0 = uv_hrtime();
	gen_pump(c);
}

/* ---------------------------------------------------------------------- */
/* Splice path */

/* Pipe -> dst. Returns false after an error (recorded); sets *blocked
 * when dst took less than offered (its buffer is full: wait for
 * POLLOUT instead of asking again for an EAGAIN). */
static bool splice_out(struct rill_copy *c, bool *blocked, bool *epipe)
{
	ssize_t n;
	do {
		n = splice(c->pipe_r, NULL, c->out->fd, NULL, c->pipe_bytes,
		           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		*blocked = (size_t)n < c->pipe_bytes;
		c->pipe_bytes -= (size_t)n;
		c->res.stats.write_bytes += (uint64_t)n;
		c->res.stats.write_ops++;
		c->active_ms = uv_now(c->dst->loop);
		return true;
	}
	if (n < 0 && errno == EAGAIN) {
		*blocked = true;
		return true;
	}
	*epipe = n < 0 && errno == EPIPE;
	copy_fail(c, false, n < 0 ? -errno : RILL_ECLOSED);
	return false;
}

/* src -> pipe. Sets *drained when src gave less than asked: its queue is
 * (most likely) empty, so the next read waits for POLLIN. */
static bool splice_in(struct rill_copy *c, bool *drained)
{
	if (c->pipe_r < 0) {
		int err = pipe_get(c);
		if (err != 0) {
			c->rd_done = true;
			copy_fail(c, true, err);
			return false;
		}
	}
	size_t room = splice_cap(c) - c->pipe_bytes;
	ssize_t n;
	do {
		n = splice(c->in->fd, NULL, c->pipe_w, NULL, room,
		           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		*drained = (size_t)n < room;
		c->pipe_bytes += (size_t)n;
		c->res.stats.read_bytes += (uint64_t)n;
		c->res.stats.read_ops++;
		c->active_ms = uv_now(c->src->loop);
		return true;
	}
	*drained = true;
	if (n < 0 && errno == EAGAIN)
		return true;
	c->rd_done = true; /* EOF, or an error */
	if (n < 0)
		copy_fail(c, true, -errno);
	return true;
}

/* Moves what it can without waiting: the pipe is drained into dst and
 * refilled from src while each side takes or gives all it was offered,
 * for at most SPLICE_ROUNDS rounds (one busy connection cannot starve the
 * loop; the level-triggered polls bring it back). */
static void splice_move(struct rill_copy *c, bool *epipe)
{
	bool blocked = false, drained = false;
	for (int round = 0; round < SPLICE_ROUNDS; round++) {
		bool progress = false;
		if (c->pipe_bytes > 0 && !blocked) {
			if (!splice_out(c, &blocked, epipe))
				return;
			progress = !blocked || c->pipe_bytes == 0;
		}
		if (c->pipe_bytes == 0)
			pipe_put(c); /* an idle copy holds no pipe */
		if (!c->rd_done && !drained && splice_room(c)) {
			if (!splice_in(c, &drained))
				return;
			progress = true;
		}
		if (!progress || (blocked && (drained || !splice_room(c))))
			return;
	}
}

static void splice_pump(struct rill_copy *c)
{
	if (c->done || c->ended)
		return;
	/* splice(2) into a socket whose peer is gone raises SIGPIPE and has
	 * no MSG_NOSIGNAL: block it around the calls and swallow one that
	 * we caused, unless the process ignores it anyway. */
	sigset_t pipeset, oldset;
	bool masked = false;
	if (!c->sigpipe_ign) {
		sigemptyset(&pipeset);
		sigaddset(&pipeset, SIGPIPE);
		masked = pthread_sigmask(SIG_BLOCK, &pipeset, &oldset) == 0;
	}
	bool epipe = false;
	splice_move(c, &epipe);
	if (c->pipe_bytes == 0)
		pipe_put(c);
	if (masked) {
		if (epipe) {
			struct timespec zero = {0, 0};
			while (sigtimedwait(&pipeset, NULL, &zero) > 0) {
			}
		}
		pthread_sigmask(SIG_SETMASK, &oldset, NULL);
	}
	ep_update(c->in);
	ep_update(c->out);
	copy_check(c);
}

void rill__copy_start_splice(struct rill_copy *c, struct rill__splice_ep *in,
                             struct rill__splice_ep *out)
{
	c->res.spliced = true;
	c->in = in;
	c->out = out;
	in->reader = c;
	out->writer = c;
	struct sigaction sa;
	c->sigpipe_ign =
	    sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
	c->pipe_limit = rill__splice_local_tune(in, out);
	c->t0 = uv_hrtime();
	ep_update(in);
}

/* ---------------------------------------------------------------------- */
/* Set-up and the public calls */

void rill__copy_init(struct rill_copy *c, struct rill_flow *src,
                     struct rill_flow *dst, const struct rill_copy_opts *opts)
{
	memset(c, 0, sizeof *c);
	c->src = src;
	c->dst = dst;
	c->pipe_r = c->pipe_w = -1;
	c->max_inflight = COPY_DEFAULT_INFLIGHT;
	c->active_ms = uv_now(src->loop);
	if (opts != NULL) {
		c->flags = opts->flags;
		c->idle_ms = opts->idle_timeout_ms;
	}
	if (opts != NULL && opts->max_inflight > 0)
		c->max_inflight = opts->max_inflight < COPY_MAX_INFLIGHT
		                      ? opts->max_inflight
		                      : COPY_MAX_INFLIGHT;
}

int rill__copy_check(struct rill_flow *src, struct rill_flow *dst)
{
	if (src == NULL || dst == NULL || src->loop != dst->loop)
		return RILL_EINVAL;
	if (rill_flow_is_closed(src) || rill_flow_is_closed(dst))
		return RILL_ECLOSED;
	if (rill__flow_reading(src))
		return RILL_EALREADY;
	return 0;
}

bool rill__splice_possible(struct rill_flow *src, struct rill_flow *dst,
                           const struct rill_copy_opts *opts)
{
	if (opts != NULL && (opts->flags & RILL_COPY_NO_SPLICE))
		return false;
	const char *env = getenv("RILL_NO_SPLICE");
	if (env != NULL && env[0] != '\0' && strcmp(env, "0") != 0)
		return false;
	if (rill__flow_fd(src) < 0 || rill__flow_fd(dst) < 0)
		return false;
	/* The kernel path must not overtake what the flows still hold: a
	 * finished read (EOF/error sticks in the core), or queued writes. */
	if (rill__flow_holds_input(src) || rill__flow_holds_output(dst))
		return false;
	return true;
}

int rill_copy(struct rill_flow *src, struct rill_flow *dst,
              const struct rill_copy_opts *opts, rill_copy_cb cb, void *ud,
              struct rill_copy **out)
{
	if (cb == NULL)
		return RILL_EINVAL;
	int err = rill__copy_check(src, dst);
	if (err != 0)
		return err;
	struct rill_copy *c = rill_malloc(sizeof *c);
	if (c == NULL)
		return RILL_ENOMEM;
	rill__copy_init(c, src, dst, opts);
	c->cb = cb;
	c->ud = ud;
	c->standalone = true;
	if (c->idle_ms > 0) {
		c->timer = rill__comb_timer_new(src->loop, copy_idle_fire, c);
		if (c->timer == NULL) {
			rill_free(c);
			return RILL_ENOMEM;
		}
		rill__comb_timer_arm(c->timer, c->idle_ms);
	}
	if (out != NULL)
		*out = c;
	if (rill__splice_possible(src, dst, opts)) {
		/* An echo (src == dst) reads and writes through one poller:
		 * libuv watches an fd once. */
		struct rill__splice_ep *in = rill__splice_ep_new(src);
		struct rill__splice_ep *o = in == NULL ? NULL
		                            : src == dst
		                                ? in
		                                : rill__splice_ep_new(dst);
		if (in != NULL && o != NULL) {
			rill__copy_start_splice(c, in, o);
			return 0;
		}
		rill__splice_ep_free(in);
	}
	rill__copy_start_generic(c);
	return 0;
}

void rill__copy_stop(struct rill_copy *c)
{
	c->done = true;
	c->ended = true;
	/* Bytes still in the pipe are lost with the flows: close it. */
	if (c->pipe_r >= 0) {
		close(c->pipe_r);
		close(c->pipe_w);
		c->pipe_r = c->pipe_w = -1;
		c->pipe_bytes = 0;
	}
	copy_detach(c);
}

void rill_copy_abort(struct rill_copy *c)
{
	if (c == NULL)
		return;
	if (c->in_cb) {
		rill_close(c->src);
		rill_close(c->dst);
		return;
	}
	rill__copy_stop(c);
	/* Closing drops the flows' pending callbacks, which point at c. */
	rill_close(c->src);
	rill_close(c->dst);
	copy_release(c);
	rill_free(c);
}
