/*
 * The socket core: one flow implementation for every stream socket family
 * (see socket.h), plus connect with deadlines and retries, and listeners.
 *
 * Readiness comes from a libuv uv_poll_t per fd; the poll is started only
 * while an operation is waiting for the fd (EAGAIN), so an idle flow costs
 * no wakeups. Every operation first tries the system call at once: on a
 * busy connection the data is usually there already, and a poll round
 * trip per read would cost more than the read itself.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "core.h"
#include "spread.h"
#include "transport/acceptor.h"
#include "transport/socket.h"

/*
 * Reads land in a chunk of SOCK_CHUNK bytes and each read hands out a
 * slice of it, so a fast reader makes one large read(2) per call without
 * an allocation of that size per read. A new chunk is taken when less
 * than SOCK_MIN_READ bytes are left in the current one; while the reader
 * holds no slice of it, the chunk is reused from its start (warm cache).
 * A read that has to wait for the poll parks the chunk (core/chunk.c): an
 * idle flow holds no chunk once the reader released its slices, and the
 * memory is recycled through a per-thread cache, not malloc/free.
 */
#define SOCK_CHUNK    RILL__CHUNK_SIZE
#define SOCK_MIN_READ (64u * 1024u)
#define SOCK_IOV_MAX  64

/*
 * Writes complete synchronously while the kernel takes the bytes, and a
 * writer that queues its next write from the completion callback would
 * then fill the whole socket buffer (megabytes, autotuned) before the loop
 * runs anything else, the reader on the other end included: cold caches,
 * and other flows starve. After this many bytes accepted without a trip
 * through the loop, the next write waits for the next loop iteration (an
 * idle handle; not the poll, which on a Unix socket would also wait until
 * the reader freed most of the buffer).
 */
#define SOCK_WRITE_BUDGET (128u * 1024u)

struct sock_flow {
	struct rill_flow base;
	const struct rill_socket_family *fam;
	int rfd, wfd;
	bool owns_fds;  /* close rfd/wfd with the flow */
	bool is_socket; /* rfd == wfd is a socket */
	bool rpollable, wpollable;
	bool two_polls;              /* fd mode: rpoll watches rfd, wpoll wfd */
	bool rpoll_open, wpoll_open; /* handles initialised, not closed */
	bool reading, writing;
	bool closing;
	uv_poll_t rpoll;
	uv_poll_t *wpoll; /* fd mode only: allocated behind the struct */
	uv_idle_t kick;   /* resumes a write held back by the budget */
	int rmask, wmask; /* events the polls are started for */
	int handles_open;
	int rflags_saved, wflags_saved; /* -1: nothing to restore */
	size_t sync_written;            /* bytes since the last poll wakeup */
	bool drained; /* the last read was short: the fd is likely empty */
	struct rill_buf *chunk;
	struct rill_buf *parked; /* the chunk while reads wait (chunk.c) */
	size_t chunk_off;
	struct rill_read_into *into; /* this read: the caller's layout */
	struct rill_buf *const *w_bufs;
	size_t w_n, w_i, w_off;
};

static struct sock_flow *sock_of(struct rill_flow *f)
{
	return rill_container_of(f, struct sock_flow, base);
}

static void sock_on_poll(uv_poll_t *h, int status, int events);

/*
 * Starts or stops the polls for the operations that wait. Interest in
 * "readable" is dropped lazily: it stays on after a read completed, since
 * the next read usually follows at once and every uv_poll_stop costs an
 * epoll_ctl(DEL) and the next start an ADD (libuv invalidates the fd on
 * stop). It is dropped when the fd turns readable with no read pending
 * (keep_r false), which level-triggered epoll would otherwise report on
 * every loop iteration. "Writable" is nearly always true, so it goes as
 * soon as no write waits.
 */
static void sock_polls(struct sock_flow *s, bool want_r, bool want_w,
                       bool keep_r)
{
	if (s->closing)
		return;
	bool r_on =
	    s->two_polls ? s->rmask != 0 : (s->rmask & UV_READABLE) != 0;
	int rm = (want_r || (keep_r && r_on)) && s->rpollable ? UV_READABLE : 0;
	int wm = want_w && s->wpollable ? UV_WRITABLE : 0;
	if (!s->two_polls) {
		rm |= wm;
		wm = 0;
	}
	if (rm != s->rmask && s->rpollable) {
		if (rm != 0)
			uv_poll_start(&s->rpoll, rm, sock_on_poll);
		else
			uv_poll_stop(&s->rpoll);
		s->rmask = rm;
	}
	if (s->two_polls && wm != s->wmask) {
		if (wm != 0)
			uv_poll_start(s->wpoll, wm, sock_on_poll);
		else
			uv_poll_stop(s->wpoll);
		s->wmask = wm;
	}
}

static void sock_update_polls(struct sock_flow *s, bool want_r, bool want_w)
{
	sock_polls(s, want_r, want_w, true);
}

/* ---------------------------------------------------------------------- */
/* Reading */

/* sock_try_read for a read into the caller's layout (s->into). */
static bool sock_try_read_into(struct sock_flow *s)
{
	struct rill_read_into *ri = s->into;
	if (!ri->get(ri)) {
		s->reading = false;
		s->into = NULL;
		rill_flow_read_done(&s->base, RILL_ENOMEM, NULL);
		return true;
	}
	ssize_t n;
	do
		n = readv(s->rfd, ri->iov, ri->iovcnt);
	while (n < 0 && errno == EINTR);
	s->drained = n < 0 || (size_t)n < ri->total;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
	    s->rpollable) {
		ri->unget(ri);
		return false;
	}
	s->reading = false;
	s->into = NULL;
	struct rill_buf *b = NULL;
	int st = 0;
	if (n < 0) {
		st = -errno;
		rill_flow_set_errmsg(&s->base, "%s read: %s", s->fam->name,
		                     strerror(-st));
	} else if (n == 0) {
		st = RILL_EOF;
	} else {
		b = rill_buf_slice(ri->owner, 0, (size_t)n);
		st = b != NULL ? 0 : RILL_ENOMEM;
	}
	if (st != 0)
		ri->unget(ri);
	rill_flow_read_done(&s->base, st, b);
	return true;
}

/* Tries one read; returns true when the operation completed (data, EOF or
 * error) and false on EAGAIN. */
static bool sock_try_read(struct sock_flow *s)
{
	if (s->rfd < 0) {
		s->reading = false;
		s->into = NULL;
		rill_flow_read_done(&s->base, RILL_EOF, NULL);
		return true;
	}
	if (s->into != NULL)
		return sock_try_read_into(s);
	if (s->chunk != NULL && s->chunk->refs_ == 1)
		s->chunk_off = 0; /* nobody holds a slice: reuse from start */
	if (s->chunk == NULL || SOCK_CHUNK - s->chunk_off < SOCK_MIN_READ) {
		rill_buf_release(s->chunk);
		s->chunk = rill__chunk_new();
		s->chunk_off = 0;
		if (s->chunk == NULL) {
			s->reading = false;
			rill_flow_read_done(&s->base, RILL_ENOMEM, NULL);
			return true;
		}
	}
	ssize_t n;
	size_t want = SOCK_CHUNK - s->chunk_off;
	do
		n = read(s->rfd, s->chunk->data + s->chunk_off, want);
	while (n < 0 && errno == EINTR);
	s->drained = n < 0 || (size_t)n < want;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && s->rpollable)
		return false;
	s->reading = false;
	if (n < 0) {
		int err = -errno;
		rill_flow_set_errmsg(&s->base, "%s read: %s", s->fam->name,
		                     strerror(-err));
		rill_buf_release(s->chunk);
		s->chunk = NULL;
		rill_flow_read_done(&s->base, err, NULL);
		return true;
	}
	if (n == 0) {
		/* Nothing more will be read: give the chunk back now. */
		rill_buf_release(s->chunk);
		s->chunk = NULL;
		rill_flow_read_done(&s->base, RILL_EOF, NULL);
		return true;
	}
	struct rill_buf *b = rill_buf_slice(s->chunk, s->chunk_off, (size_t)n);
	if (b == NULL) {
		rill_flow_read_done(&s->base, RILL_ENOMEM, NULL);
		return true;
	}
	s->chunk_off += (size_t)n;
	/* Keep the next read aligned for the benefit of memcpy users. */
	s->chunk_off = (s->chunk_off + 63u) & ~(size_t)63u;
	if (s->chunk_off > SOCK_CHUNK)
		s->chunk_off = SOCK_CHUNK;
	rill_flow_read_done(&s->base, 0, b);
	return true;
}

/* sock_try_read with the chunk parked by the last wait, if it is still
 * there (slices of it are held). */
static bool sock_read_now(struct sock_flow *s)
{
	if (s->chunk == NULL && s->into == NULL) /* into: no chunk needed */
		s->chunk = rill__chunk_unpark(&s->parked);
	return sock_try_read(s);
}

/* A read waits for the poll: an idle flow holds no chunk. */
static void sock_read_wait(struct sock_flow *s)
{
	rill__chunk_park(&s->chunk, &s->parked);
	sock_update_polls(s, true, s->writing);
}

static void sock_read_start(struct sock_flow *s)
{
	s->reading = true;
	/* After a short read the fd is most likely empty: a read(2) now
	 * would only say EAGAIN, so wait for the poll straight away (its
	 * interest in "readable" is usually still on, see sock_polls). */
	if (s->drained && s->rpollable) {
		sock_read_wait(s);
		return;
	}
	if (!sock_read_now(s) && !s->closing)
		sock_read_wait(s);
}

void rill__socket_read(struct rill_flow *f)
{
	struct sock_flow *s = sock_of(f);
	s->into = NULL;
	sock_read_start(s);
}

/* ops->read_into: one readv(2) into the reader's layout. */
void rill__socket_read_into(struct rill_flow *f, struct rill_read_into *ri)
{
	struct sock_flow *s = sock_of(f);
	s->into = ri;
	sock_read_start(s);
}

/* ---------------------------------------------------------------------- */
/* Writing */

static int sock_write_err(int err)
{
	/* The contract: a write after the peer stopped reading fails with
	 * "closed", whichever of the two the kernel chose. */
	if (err == -EPIPE || err == -ECONNRESET)
		return RILL_ECLOSED;
	return err;
}

/* Writes as much as the fd takes; returns true when the operation
 * completed (all written, or an error) and false on EAGAIN. */
static bool sock_try_write(struct sock_flow *s)
{
	if (s->wfd < 0) {
		s->writing = false;
		rill_flow_write_done(&s->base, RILL_ECLOSED);
		return true;
	}
	while (s->w_i < s->w_n) {
		struct iovec iov[SOCK_IOV_MAX];
		int cnt = 0;
		size_t off = s->w_off;
		for (size_t i = s->w_i; i < s->w_n && cnt < SOCK_IOV_MAX; i++) {
			iov[cnt].iov_base = s->w_bufs[i]->data + off;
			iov[cnt].iov_len = s->w_bufs[i]->len - off;
			cnt++;
			off = 0;
		}
		ssize_t n;
		do {
			if (s->is_socket) {
				struct msghdr m = {.msg_iov = iov,
				                   .msg_iovlen = (size_t)cnt};
				n = sendmsg(s->wfd, &m, MSG_NOSIGNAL);
			} else {
				n = writev(s->wfd, iov, cnt);
			}
		} while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    s->wpollable)
			return false;
		if (n < 0) {
			int err = -errno;
			rill_flow_set_errmsg(&s->base, "%s write: %s",
			                     s->fam->name, strerror(-err));
			s->writing = false;
			rill_flow_write_done(&s->base, sock_write_err(err));
			return true;
		}
		s->sync_written += (size_t)n;
		size_t left = (size_t)n;
		while (left > 0 && s->w_i < s->w_n) {
			size_t avail = s->w_bufs[s->w_i]->len - s->w_off;
			if (left < avail) {
				s->w_off += left;
				left = 0;
			} else {
				left -= avail;
				s->w_i++;
				s->w_off = 0;
			}
		}
	}
	s->writing = false;
	rill_flow_write_done(&s->base, 0);
	return true;
}

static void sock_on_kick(uv_idle_t *h)
{
	struct sock_flow *s = h->data;
	uv_idle_stop(h);
	s->sync_written = 0;
	if (s->writing && !s->closing && !sock_try_write(s) && !s->closing)
		sock_update_polls(s, s->reading, true);
}

void rill__socket_write(struct rill_flow *f, struct rill_buf *const *bufs,
                        size_t n)
{
	struct sock_flow *s = sock_of(f);
	s->w_bufs = bufs;
	s->w_n = n;
	s->w_i = 0;
	s->w_off = 0;
	s->writing = true;
	if (s->sync_written >= SOCK_WRITE_BUDGET && s->wpollable) {
		uv_idle_start(&s->kick, sock_on_kick);
		return;
	}
	if (!sock_try_write(s) && !s->closing)
		sock_update_polls(s, s->reading, true);
}

static void sock_on_poll(uv_poll_t *h, int status, int events)
{
	struct sock_flow *s = h->data;
	bool was_reading = s->reading;
	if (status < 0) {
		/* libuv reports POLLERR as UV_EBADF and stops the handle. The
		 * socket's own error (a reset...) is what the next read or
		 * write returns, so try both; the polls restart below if
		 * an operation still waits. */
		if (h == &s->rpoll)
			s->rmask = 0;
		else
			s->wmask = 0;
		events = UV_READABLE | UV_WRITABLE;
	}
	/* Errors and hang-ups show up as readable/writable too (libuv adds
	 * them to the requested events), so each try finds them. */
	if ((events & (UV_READABLE | UV_DISCONNECT)) && s->reading &&
	    !sock_read_now(s))
		rill__chunk_park(&s->chunk, &s->parked); /* still waiting */
	if (s->closing)
		return;
	if (events & UV_WRITABLE)
		s->sync_written = 0;
	if (s->writing)
		sock_try_write(s);
	if (s->closing)
		return;
	/* A readable event while no read was pending: stop watching (see
	 * sock_polls). */
	sock_polls(s, s->reading, s->writing,
	           !(events & UV_READABLE) || was_reading);
}

/* ---------------------------------------------------------------------- */
/* Shutdown, close */

void rill__socket_shutdown_write(struct rill_flow *f)
{
	struct sock_flow *s = sock_of(f);
	int err = 0;
	if (s->wfd < 0) {
		err = 0;
	} else if (s->is_socket) {
		if (shutdown(s->wfd, SHUT_WR) != 0 && errno != ENOTCONN)
			err = -errno;
	} else {
		/* A pipe's reader sees EOF only when every write end is
		 * closed; put /dev/null in place of ours so the fd number
		 * stays taken (it is usually stdout). */
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null < 0) {
			err = -errno;
		} else {
			if (s->wflags_saved >= 0)
				fcntl(s->wfd, F_SETFL, s->wflags_saved);
			s->wflags_saved = -1;
			if (s->two_polls && s->wpollable) {
				uv_poll_stop(s->wpoll);
				s->wmask = 0;
				s->wpollable = false;
			}
			if (dup2(null, s->wfd) < 0)
				err = -errno;
			close(null);
		}
	}
	if (err != 0)
		rill_flow_set_errmsg(f, "%s shutdown: %s", s->fam->name,
		                     strerror(-err));
	rill_flow_shutdown_done(f, sock_write_err(err));
}

void rill__socket_shutdown_read(struct rill_flow *f)
{
	struct sock_flow *s = sock_of(f);
	s->reading = false;
	/* Best effort: on Linux TCP this makes later data be acknowledged
	 * and dropped; the peer is not told. */
	if (s->is_socket)
		shutdown(s->rfd, SHUT_RD);
	rill_buf_release(s->chunk);
	s->chunk = NULL;
	rill__chunk_forget(&s->parked);
	sock_polls(s, false, s->writing, false);
}

static void sock_finish(struct sock_flow *s)
{
	if (s->rflags_saved >= 0 && s->rfd >= 0)
		fcntl(s->rfd, F_SETFL, s->rflags_saved);
	if (s->wflags_saved >= 0 && s->wfd >= 0)
		fcntl(s->wfd, F_SETFL, s->wflags_saved);
	if (s->owns_fds) {
		if (s->rfd >= 0)
			close(s->rfd);
		if (s->wfd >= 0 && s->wfd != s->rfd)
			close(s->wfd);
	}
	rill_buf_release(s->chunk);
	s->chunk = NULL;
	rill__chunk_forget(&s->parked);
	rill__chunk_user_drop();
	rill_flow_destroyed(&s->base);
}

static void sock_handle_closed(uv_handle_t *h)
{
	struct sock_flow *s = h->data;
	if (--s->handles_open == 0)
		sock_finish(s);
}

void rill__socket_close(struct rill_flow *f)
{
	struct sock_flow *s = sock_of(f);
	s->closing = true;
	s->reading = false;
	s->writing = false;
	s->into = NULL;
	/* The fds are closed only after libuv let go of them. */
	uv_close((uv_handle_t *)&s->kick, sock_handle_closed);
	if (s->rpoll_open)
		uv_close((uv_handle_t *)&s->rpoll, sock_handle_closed);
	if (s->wpoll_open)
		uv_close((uv_handle_t *)s->wpoll, sock_handle_closed);
	s->rpoll_open = s->wpoll_open = false;
}

/* ---------------------------------------------------------------------- */
/* Addresses and options */

int rill__socket_address(struct rill_flow *f, int which, char *buf, size_t len)
{
	struct sock_flow *s = sock_of(f);
	if (!s->is_socket || s->fam->format == NULL)
		return -ENOTSUP;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	memset(&ss, 0, sizeof ss);
	int r = which == RILL_ADDR_PEER
	            ? getpeername(s->rfd, (struct sockaddr *)&ss, &sl)
	            : getsockname(s->rfd, (struct sockaddr *)&ss, &sl);
	if (r != 0)
		return -errno;
	return s->fam->format((struct sockaddr *)&ss, sl, false, buf, len);
}

int rill__socket_set_nodelay(struct rill_flow *f, bool on)
{
	struct sock_flow *s = sock_of(f);
	if (!s->fam->tcp_options || !s->is_socket)
		return -ENOTSUP;
	int v = on ? 1 : 0;
	if (setsockopt(s->rfd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0)
		return -errno;
	return 0;
}

int rill__socket_set_keepalive(struct rill_flow *f, bool on, unsigned after_s,
                               unsigned interval_s, unsigned probes)
{
	struct sock_flow *s = sock_of(f);
	if (!s->fam->tcp_options || !s->is_socket)
		return -ENOTSUP;
	int v = on ? 1 : 0;
	if (setsockopt(s->rfd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v) != 0)
		return -errno;
	if (!on)
		return 0;
	if (after_s > 0 || interval_s > 0 || probes > 0) {
		if (after_s == 0 || interval_s == 0 || probes == 0 ||
		    after_s > 32767 || interval_s > 32767 || probes > 127)
			return RILL_EINVAL; /* Linux's limits (tcp(7)) */
		int a = (int)after_s, i = (int)interval_s, p = (int)probes;
		if (setsockopt(s->rfd, IPPROTO_TCP, TCP_KEEPIDLE, &a,
		               sizeof a) != 0 ||
		    setsockopt(s->rfd, IPPROTO_TCP, TCP_KEEPINTVL, &i,
		               sizeof i) != 0 ||
		    setsockopt(s->rfd, IPPROTO_TCP, TCP_KEEPCNT, &p,
		               sizeof p) != 0)
			return -errno;
	}
	return 0;
}

int rill__socket_fd(struct rill_flow *f)
{
	struct sock_flow *s = sock_of(f);
	/* A flow over two sockets (exec) has no one fd to splice with. */
	return s->is_socket && s->rfd == s->wfd ? s->rfd : -1;
}

/* ---------------------------------------------------------------------- */
/* Creation */

static int sock_set_nonblock(int fd, int *saved)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (saved != NULL)
		*saved = fl;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		return -errno;
	return 0;
}

/* A socket flow watches its one fd with rpoll; two_polls (fd mode) adds
 * a second handle for wfd, allocated behind the struct. */
static struct sock_flow *sock_alloc(uv_loop_t *loop,
                                    const struct rill_socket_family *fam,
                                    bool two_polls)
{
	size_t size = sizeof(struct sock_flow);
	if (two_polls)
		size += sizeof(uv_poll_t);
	struct rill_flow *f = rill_flow_new(loop, fam->ops, size);
	if (f == NULL)
		return NULL;
	struct sock_flow *s = sock_of(f);
	s->fam = fam;
	s->rfd = s->wfd = -1;
	s->rflags_saved = s->wflags_saved = -1;
	s->rpoll.data = s;
	s->two_polls = two_polls;
	if (two_polls) {
		s->wpoll = (uv_poll_t *)(s + 1);
		s->wpoll->data = s;
	}
	uv_idle_init(loop, &s->kick);
	s->kick.data = s;
	s->handles_open = 1;
	rill__chunk_user_add();
	return s;
}

int rill__socket_flow_new(uv_loop_t *loop, int fd,
                          const struct rill_socket_family *fam,
                          struct rill_flow **out)
{
	if (loop == NULL || fd < 0 || fam == NULL || out == NULL) {
		if (fd >= 0)
			close(fd);
		return RILL_EINVAL;
	}
	int err = sock_set_nonblock(fd, NULL);
	if (err == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
		err = -errno;
	struct sock_flow *s = err == 0 ? sock_alloc(loop, fam, false) : NULL;
	if (s == NULL) {
		close(fd);
		return err != 0 ? err : RILL_ENOMEM;
	}
	s->rfd = s->wfd = fd;
	s->owns_fds = true;
	s->is_socket = true;
	err = uv_poll_init(loop, &s->rpoll, fd);
	if (err != 0) {
		/* Never handed out: tear down like a close (the idle handle
		 * must leave the loop before the memory goes). */
		rill__socket_close(&s->base);
		return err;
	}
	s->rpollable = s->wpollable = true;
	s->rpoll_open = true;
	s->handles_open++;
	*out = &s->base;
	return 0;
}

/* Sets up polling of one stdio fd; false if it cannot be polled (then the
 * fd is used with blocking calls). */
static bool sock_fd_poll_init(struct sock_flow *s, uv_poll_t *p, int fd,
                              int *saved)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
		return false;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return false;
	/* uv_poll_init makes the fd non-blocking itself; epoll refuses some
	 * character devices (/dev/null), and then the fd stays blocking. */
	if (uv_poll_init(s->base.loop, p, fd) != 0) {
		fcntl(fd, F_SETFL, fl);
		return false;
	}
	*saved = fl;
	s->handles_open++;
	return true;
}

int rill__socket_flow_new_fds(uv_loop_t *loop, int rfd, int wfd,
                              const struct rill_socket_family *fam,
                              struct rill_flow **out)
{
	if (loop == NULL || fam == NULL || out == NULL)
		return RILL_EINVAL;
	struct sock_flow *s = sock_alloc(loop, fam, true);
	if (s == NULL)
		return RILL_ENOMEM;
	s->rfd = rfd;
	s->wfd = wfd;
	if (rfd >= 0)
		s->rpollable =
		    sock_fd_poll_init(s, &s->rpoll, rfd, &s->rflags_saved);
	if (wfd >= 0)
		s->wpollable =
		    sock_fd_poll_init(s, s->wpoll, wfd, &s->wflags_saved);
	s->rpoll_open = s->rpollable;
	s->wpoll_open = s->wpollable;
	*out = &s->base;
	return 0;
}

int rill__socket_flow_new_split(uv_loop_t *loop, int rfd, int wfd,
                                const struct rill_socket_family *fam,
                                struct rill_flow **out)
{
	int err = loop == NULL || fam == NULL || out == NULL || rfd < 0 ||
	                  wfd < 0 || rfd == wfd
	              ? RILL_EINVAL
	              : 0;
	for (int i = 0; i < 2 && err == 0; i++) {
		int fd = i == 0 ? rfd : wfd;
		err = sock_set_nonblock(fd, NULL);
		if (err == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
			err = -errno;
	}
	struct sock_flow *s = err == 0 ? sock_alloc(loop, fam, true) : NULL;
	if (s == NULL) {
		if (rfd >= 0)
			close(rfd);
		if (wfd >= 0 && wfd != rfd)
			close(wfd);
		return err != 0 ? err : RILL_ENOMEM;
	}
	s->rfd = rfd;
	s->wfd = wfd;
	s->owns_fds = true;
	s->is_socket = true;
	err = uv_poll_init(loop, &s->rpoll, rfd);
	if (err == 0) {
		s->rpoll_open = true;
		s->handles_open++;
		err = uv_poll_init(loop, s->wpoll, wfd);
	}
	if (err != 0) {
		rill__socket_close(&s->base); /* closes both fds */
		return err;
	}
	s->wpoll_open = true;
	s->handles_open++;
	s->rpollable = s->wpollable = true;
	*out = &s->base;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Connect */

struct sock_connect {
	uv_loop_t *loop;
	const struct rill_socket_family *fam;
	struct rill__sockaddr *addrs;
	size_t n, idx;
	char *label;
	int fd;
	uv_poll_t *poll; /* the attempt in progress, if any */
	uv_timer_t deadline, step;
	uv_getaddrinfo_t gai;
	uint64_t start_ms, timeout_ms, retry_until_ms;
	uint64_t retry_delay;
	rill_connect_cb cb;
	rill__connect_fd_cb fd_cb; /* instead of cb: hand out the fd */
	void *ud;
	int err; /* the last attempt's error */
	char errmsg[384];
	int refs; /* open handles + a pending getaddrinfo */
	bool finished;
};

static void conn_step(struct sock_connect *c);

static void conn_unref(struct sock_connect *c)
{
	if (--c->refs > 0)
		return;
	rill_free(c->addrs);
	rill_free(c->label);
	rill_free(c);
}

static void conn_handle_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

static void conn_poll_closed(uv_handle_t *h)
{
	struct sock_connect *c = h->data;
	rill_free(h);
	conn_unref(c);
}

/* Ends the current attempt; keeps the fd open when keep_fd. */
static void conn_end_attempt(struct sock_connect *c, bool keep_fd)
{
	if (c->poll != NULL) {
		/* uv_close stops the watcher at once, so the fd is free for
		 * the flow's own poll handle (or for close) right away. */
		uv_close((uv_handle_t *)c->poll, conn_poll_closed);
		c->poll = NULL;
	}
	if (!keep_fd && c->fd >= 0)
		close(c->fd);
	if (!keep_fd)
		c->fd = -1;
}

static void conn_finish(struct sock_connect *c, int status, struct rill_flow *f)
{
	c->finished = true;
	conn_end_attempt(c, false);
	uv_close((uv_handle_t *)&c->deadline, conn_handle_closed);
	uv_close((uv_handle_t *)&c->step, conn_handle_closed);
	if (c->fd_cb != NULL)
		c->fd_cb(-1, status, c->errmsg, c->ud);
	else
		c->cb(f, status, status != 0 ? c->errmsg : NULL, c->ud);
}

static void conn_fail(struct sock_connect *c, int err)
{
	conn_finish(c, err, NULL);
}

static void conn_addr_text(struct sock_connect *c, char *buf, size_t len)
{
	const struct rill__sockaddr *a = &c->addrs[c->idx];
	if (c->fam->format == NULL ||
	    c->fam->format((const struct sockaddr *)&a->ss, a->len, false, buf,
	                   len) != 0)
		snprintf(buf, len, "?");
}

/* Records why the current address failed and moves to the next. */
static void conn_attempt_failed(struct sock_connect *c, int err)
{
	if (c->fam->connect_error != NULL)
		err = c->fam->connect_error(err);
	char addr[256];
	conn_addr_text(c, addr, sizeof addr);
	c->err = err;
	if (strcmp(addr, c->label) == 0)
		snprintf(c->errmsg, sizeof c->errmsg, "connect %s: %s",
		         c->label, rill_strerror(err));
	else
		snprintf(c->errmsg, sizeof c->errmsg, "connect %s (%s): %s",
		         c->label, addr, rill_strerror(err));
	conn_end_attempt(c, false);
	c->idx++;
}

static void conn_succeeded(struct sock_connect *c)
{
	int fd = c->fd;
	conn_end_attempt(c, true);
	c->fd = -1;
	if (c->fd_cb != NULL) {
		c->finished = true;
		uv_close((uv_handle_t *)&c->deadline, conn_handle_closed);
		uv_close((uv_handle_t *)&c->step, conn_handle_closed);
		c->fd_cb(fd, 0, NULL, c->ud);
		return;
	}
	struct rill_flow *f = NULL;
	int err = rill__socket_flow_new(c->loop, fd, c->fam, &f);
	if (err != 0) {
		snprintf(c->errmsg, sizeof c->errmsg, "connect %s: %s",
		         c->label, rill_strerror(err));
		conn_fail(c, err);
		return;
	}
	conn_finish(c, 0, f);
}

static void conn_on_poll(uv_poll_t *h, int status, int events)
{
	struct sock_connect *c = h->data;
	(void)events;
	if (c->finished || h != c->poll)
		return;
	int err = 0;
	socklen_t len = sizeof err;
	/* libuv turns POLLERR into status UV_EBADF; the real reason is the
	 * socket's pending error either way. */
	(void)status;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == 0) {
		conn_succeeded(c);
		return;
	}
	conn_attempt_failed(c, -err);
	conn_step(c);
}

static void conn_on_step(uv_timer_t *t)
{
	struct sock_connect *c = t->data;
	if (!c->finished)
		conn_step(c);
}

static void conn_on_deadline(uv_timer_t *t)
{
	struct sock_connect *c = t->data;
	if (c->finished)
		return;
	snprintf(c->errmsg, sizeof c->errmsg,
	         "connect %s: timed out after %llu ms", c->label,
	         (unsigned long long)c->timeout_ms);
	conn_fail(c, RILL_ETIMEDOUT);
}

static bool conn_retryable(int err)
{
	return err == -ECONNREFUSED || err == -ENOENT || err == -ECONNRESET;
}

/* Tries addresses from idx on until one is in progress or all failed. */
static void conn_step(struct sock_connect *c)
{
	while (c->idx < c->n) {
		const struct rill__sockaddr *a = &c->addrs[c->idx];
		int fd = socket(a->ss.ss_family,
		                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			conn_attempt_failed(c, -errno);
			continue;
		}
		c->fd = fd;
		int r;
		do
			r = connect(fd, (const struct sockaddr *)&a->ss,
			            a->len);
		while (r != 0 && errno == EINTR);
		if (r == 0) {
			conn_succeeded(c);
			return;
		}
		if (errno == EAGAIN) {
			/* A Unix listener with a full backlog: the kernel
			 * cannot tell us when there is room, so try again
			 * shortly, until the deadline. */
			close(fd);
			c->fd = -1;
			c->err = -EAGAIN;
			snprintf(c->errmsg, sizeof c->errmsg,
			         "connect %s: listener backlog full", c->label);
			uv_timer_start(&c->step, conn_on_step, 5, 0);
			return;
		}
		if (errno != EINPROGRESS) {
			conn_attempt_failed(c, -errno);
			continue;
		}
		c->poll = rill_malloc(sizeof *c->poll);
		if (c->poll == NULL) {
			conn_attempt_failed(c, RILL_ENOMEM);
			continue;
		}
		r = uv_poll_init(c->loop, c->poll, fd);
		if (r != 0) {
			rill_free(c->poll);
			c->poll = NULL;
			conn_attempt_failed(c, r);
			continue;
		}
		c->refs++;
		c->poll->data = c;
		uv_poll_start(c->poll, UV_WRITABLE, conn_on_poll);
		return;
	}
	/* Every address failed. */
	uint64_t elapsed = uv_now(c->loop) - c->start_ms;
	if (c->retry_until_ms > 0 && conn_retryable(c->err) &&
	    elapsed < c->retry_until_ms) {
		uint64_t delay = c->retry_delay;
		if (delay > c->retry_until_ms - elapsed)
			delay = c->retry_until_ms - elapsed;
		c->retry_delay =
		    c->retry_delay * 2 > 500 ? 500 : c->retry_delay * 2;
		c->idx = 0;
		uv_timer_start(&c->step, conn_on_step, delay, 0);
		return;
	}
	conn_fail(c, c->err != 0 ? c->err : -EADDRNOTAVAIL);
}

static struct sock_connect *conn_new(uv_loop_t *loop,
                                     const struct rill_socket_family *fam,
                                     const char *label, uint64_t timeout_ms,
                                     uint64_t retry_until_ms,
                                     rill_connect_cb cb, void *ud)
{
	struct sock_connect *c = rill_calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->label = rill_strdup(label != NULL ? label : fam->name);
	if (c->label == NULL) {
		rill_free(c);
		return NULL;
	}
	c->loop = loop;
	c->fam = fam;
	c->fd = -1;
	c->cb = cb;
	c->ud = ud;
	c->timeout_ms = timeout_ms;
	c->retry_until_ms = retry_until_ms;
	c->retry_delay = 10;
	uv_update_time(loop);
	c->start_ms = uv_now(loop);
	uv_timer_init(loop, &c->deadline);
	uv_timer_init(loop, &c->step);
	c->deadline.data = c;
	c->step.data = c;
	c->refs = 2;
	if (timeout_ms > 0)
		uv_timer_start(&c->deadline, conn_on_deadline, timeout_ms, 0);
	return c;
}

static int conn_start(uv_loop_t *loop, const struct rill_socket_family *fam,
                      const struct rill__sockaddr *addrs, size_t n,
                      const char *label, uint64_t timeout_ms,
                      uint64_t retry_until_ms, rill_connect_cb cb,
                      rill__connect_fd_cb fd_cb, void *ud)
{
	struct rill__sockaddr *copy = rill_calloc(n, sizeof *copy);
	if (copy == NULL)
		return RILL_ENOMEM;
	memcpy(copy, addrs, n * sizeof *copy);
	struct sock_connect *c =
	    conn_new(loop, fam, label, timeout_ms, retry_until_ms, cb, ud);
	if (c == NULL) {
		rill_free(copy);
		return RILL_ENOMEM;
	}
	c->addrs = copy;
	c->n = n;
	c->fd_cb = fd_cb;
	/* The first attempt runs from the loop: the callback must never
	 * run inside this call, and a Unix connect can succeed at once. */
	uv_timer_start(&c->step, conn_on_step, 0, 0);
	return 0;
}

int rill__socket_connect(uv_loop_t *loop, const struct rill_socket_family *fam,
                         const struct rill__sockaddr *addrs, size_t n,
                         const char *label, uint64_t timeout_ms,
                         uint64_t retry_until_ms, rill_connect_cb cb, void *ud)
{
	if (loop == NULL || fam == NULL || addrs == NULL || n == 0 ||
	    cb == NULL)
		return RILL_EINVAL;
	return conn_start(loop, fam, addrs, n, label, timeout_ms,
	                  retry_until_ms, cb, NULL, ud);
}

int rill__socket_connect_fd(uv_loop_t *loop,
                            const struct rill_socket_family *fam,
                            const struct rill__sockaddr *addrs, size_t n,
                            const char *label, uint64_t timeout_ms,
                            uint64_t retry_until_ms, rill__connect_fd_cb cb,
                            void *ud)
{
	if (loop == NULL || fam == NULL || addrs == NULL || n == 0 ||
	    cb == NULL)
		return RILL_EINVAL;
	return conn_start(loop, fam, addrs, n, label, timeout_ms,
	                  retry_until_ms, NULL, cb, ud);
}

static int conn_gai_error(int status)
{
	switch (status) {
	case UV_EAI_NONAME:
	case UV_EAI_NODATA:
	case UV_EAI_SERVICE:
	case UV_EAI_ADDRFAMILY: return -ENOENT;
	case UV_EAI_AGAIN: return -EAGAIN;
	case UV_EAI_MEMORY: return RILL_ENOMEM;
	case UV_ECANCELED: return RILL_ECANCELED;
	default: return -EIO;
	}
}

static void conn_on_resolved(uv_getaddrinfo_t *req, int status,
                             struct addrinfo *res)
{
	struct sock_connect *c = req->data;
	if (c->finished) {
		uv_freeaddrinfo(res);
		conn_unref(c);
		return;
	}
	c->refs--; /* the request is over; handles still hold c */
	if (status != 0) {
		int err = conn_gai_error(status);
		snprintf(c->errmsg, sizeof c->errmsg,
		         "connect %s: cannot resolve host: %s", c->label,
		         uv_strerror(status));
		uv_freeaddrinfo(res);
		conn_fail(c, err);
		return;
	}
	size_t n = 0;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
		if (ai->ai_addrlen <= sizeof(struct sockaddr_storage))
			n++;
	c->addrs = n > 0 ? rill_calloc(n, sizeof *c->addrs) : NULL;
	if (c->addrs == NULL) {
		uv_freeaddrinfo(res);
		snprintf(c->errmsg, sizeof c->errmsg, "connect %s: %s",
		         c->label,
		         n == 0 ? "host has no address" : "out of memory");
		conn_fail(c, n == 0 ? -ENOENT : RILL_ENOMEM);
		return;
	}
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(struct sockaddr_storage))
			continue;
		memcpy(&c->addrs[c->n].ss, ai->ai_addr, ai->ai_addrlen);
		c->addrs[c->n].len = ai->ai_addrlen;
		c->n++;
	}
	uv_freeaddrinfo(res);
	conn_step(c);
}

int rill__socket_connect_host(uv_loop_t *loop,
                              const struct rill_socket_family *fam,
                              const char *host, const char *port,
                              const char *label, uint64_t timeout_ms,
                              uint64_t retry_until_ms, rill_connect_cb cb,
                              void *ud)
{
	if (loop == NULL || fam == NULL || host == NULL || port == NULL ||
	    cb == NULL)
		return RILL_EINVAL;
	struct sock_connect *c =
	    conn_new(loop, fam, label, timeout_ms, retry_until_ms, cb, ud);
	if (c == NULL)
		return RILL_ENOMEM;
	struct addrinfo hints;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	c->gai.data = c;
	c->refs++;
	int err =
	    uv_getaddrinfo(loop, &c->gai, conn_on_resolved, host, port, &hints);
	if (err != 0) {
		/* Nothing started: undo without a callback. */
		c->refs--;
		c->finished = true;
		uv_close((uv_handle_t *)&c->deadline, conn_handle_closed);
		uv_close((uv_handle_t *)&c->step, conn_handle_closed);
		rill__set_last_errmsg("connect %s: %s", c->label,
		                      uv_strerror(err));
		return conn_gai_error(err);
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Listen */

struct sock_listener {
	struct rill_listener base;
	struct rill__spread_member spread; /* a group's acceptor */
	const struct rill_socket_family *fam;
	int fd;
	struct rill__acceptor acc;
	char *unlink_path;
};

/* Accepts at most this many connections per wakeup, so a flood of new
 * connections cannot starve the flows already open. */
#define SOCK_ACCEPT_BATCH 64

static void lst_on_accept(struct rill__acceptor *a, int fd, int err)
{
	struct sock_listener *l = a->data;
	if (fd < 0) {
		char msg[128];
		snprintf(msg, sizeof msg, "accept: %s", rill_strerror(err));
		l->base.cb(&l->base, NULL, err, msg, l->base.ud);
		return;
	}
	if (rill__spread_hand(&l->spread, fd))
		return; /* another listener of the group takes it */
	struct rill_flow *f = NULL;
	err = rill__socket_flow_new(l->base.loop, fd, l->fam, &f);
	if (err != 0) {
		l->base.cb(&l->base, NULL, err, "accept: out of memory",
		           l->base.ud);
		return;
	}
	l->base.cb(&l->base, f, 0, NULL, l->base.ud);
}

static void lst_acceptor_closed(struct rill__acceptor *a)
{
	rill_free(a->data);
}

static void lst_close(struct rill_listener *base)
{
	struct sock_listener *l = (struct sock_listener *)base;
	rill__spread_leave(&l->spread);
	rill__acceptor_close(&l->acc, lst_acceptor_closed);
	/* The watch stopped at once: the fd can go now, so that the
	 * address is free again when this returns. */
	close(l->fd);
	l->fd = -1;
	if (l->unlink_path != NULL) {
		unlink(l->unlink_path);
		rill_free(l->unlink_path);
		l->unlink_path = NULL;
	}
}

static int lst_uri(struct rill_listener *base, char *buf, size_t len)
{
	struct sock_listener *l = (struct sock_listener *)base;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	memset(&ss, 0, sizeof ss);
	if (l->fd < 0)
		return RILL_ECLOSED;
	if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) != 0)
		return -errno;
	if (l->fam->format == NULL)
		return -ENOTSUP;
	return l->fam->format((struct sockaddr *)&ss, sl, true, buf, len);
}

static const struct rill_listener_ops lst_ops = {
    .close = lst_close,
    .uri = lst_uri,
};

struct rill__spread_member *
rill__socket_listener_spread(struct rill_listener *base,
                             const struct rill_socket_family **fam)
{
	if (base == NULL || base->ops != &lst_ops)
		return NULL;
	struct sock_listener *l = (struct sock_listener *)base;
	if (l->acc.closing)
		return NULL;
	*fam = l->fam;
	return &l->spread;
}

int rill__socket_listen(uv_loop_t *loop, int fd,
                        const struct rill_socket_family *fam,
                        const char *unlink_path, rill_accept_cb cb, void *ud,
                        struct rill_listener **out)
{
	if (loop == NULL || fd < 0 || fam == NULL || cb == NULL ||
	    out == NULL) {
		if (fd >= 0)
			close(fd);
		return RILL_EINVAL;
	}
	struct sock_listener *l = rill_calloc(1, sizeof *l);
	char *path = unlink_path != NULL ? rill_strdup(unlink_path) : NULL;
	if (l == NULL || (unlink_path != NULL && path == NULL)) {
		rill_free(l);
		rill_free(path);
		close(fd);
		return RILL_ENOMEM;
	}
	int err = sock_set_nonblock(fd, NULL);
	if (err == 0)
		err = rill__spread_open(&l->spread, loop);
	if (err == 0) {
		err = rill__acceptor_init(loop, &l->acc, fd, SOCK_ACCEPT_BATCH,
		                          lst_on_accept);
		if (err != 0)
			rill__spread_leave(&l->spread);
	}
	if (err != 0) {
		rill_free(l);
		rill_free(path);
		close(fd);
		return err;
	}
	l->base.ops = &lst_ops;
	l->base.loop = loop;
	l->base.cb = cb;
	l->base.ud = ud;
	l->fam = fam;
	l->fd = fd;
	l->unlink_path = path;
	l->acc.data = l;
	*out = &l->base;
	return 0;
}

int rill__socket_bind_fd(const struct sockaddr *sa, socklen_t len, int backlog,
                         bool reuseaddr, const char *unlink_path, int *out)
{
	int fd = socket(sa->sa_family,
	                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (reuseaddr)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, sa, len) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (listen(fd, backlog > 0 ? backlog : 511) != 0) {
		int err = -errno;
		close(fd);
		if (unlink_path != NULL)
			unlink(unlink_path);
		return err;
	}
	*out = fd;
	return 0;
}

int rill__socket_bind_listen(uv_loop_t *loop,
                             const struct rill_socket_family *fam,
                             const struct sockaddr *sa, socklen_t len,
                             int backlog, bool reuseaddr,
                             const char *unlink_path, const char *label,
                             rill_accept_cb cb, void *ud,
                             struct rill_listener **out)
{
	if (label == NULL)
		label = fam->name;
	int fd = -1;
	int err =
	    rill__socket_bind_fd(sa, len, backlog, reuseaddr, unlink_path, &fd);
	if (err != 0) {
		rill__set_last_errmsg("listen %s: %s", label, strerror(-err));
		return err;
	}
	err = rill__socket_listen(loop, fd, fam, unlink_path, cb, ud, out);
	if (err != 0) {
		rill__set_last_errmsg("listen %s: %s", label,
		                      rill_strerror(err));
		if (unlink_path != NULL)
			unlink(unlink_path);
	}
	return err;
}
