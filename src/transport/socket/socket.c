/*
 * The socket core's I/O path: one flow implementation for every stream
 * socket family (see socket.h). Connecting is connect.c, listening
 * listen.c.
 *
 * Readiness comes from a libuv uv_poll_t per fd; the poll is started only
 * while an operation is waiting for the fd (EAGAIN), so an idle flow costs
 * no wakeups. Every operation first tries the system call at once: on a
 * busy connection the data is usually there already, and a poll round
 * trip per read would cost more than the read itself.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/core.h"
#include "transport/socket/socket.h"

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
	int wf_fd; /* the write is a file range (sendfile), when >= 0 */
	uint64_t wf_off, wf_left;
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
	rill__buf_mark_private(b); /* its bytes are in no other buffer */
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

static bool sock_try_sendfile(struct sock_flow *s);
static void sock_on_kick(uv_idle_t *h);

/* Writes as much as the fd takes; returns true when the operation
 * completed (all written, or an error) and false on EAGAIN. */
static bool sock_try_write(struct sock_flow *s)
{
	if (s->wf_fd >= 0 && s->wfd >= 0)
		return sock_try_sendfile(s);
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

/*
 * One sendfile(2) call moves at most this much: between calls the write
 * budget is checked, so a large file yields to the loop like a stream of
 * writes does (SOCK_WRITE_BUDGET), and the kernel is never asked for
 * more than it would take in one go anyway.
 */
#define SOCK_SENDFILE_MAX (4u * 1024u * 1024u)

/* sock_try_write for a file range: the kernel copies from the page cache
 * to the socket, nothing passes through user space. */
static bool sock_try_sendfile(struct sock_flow *s)
{
	int err = 0;
	while (s->wf_left > 0) {
		if (s->sync_written >= SOCK_WRITE_BUDGET && s->wpollable) {
			uv_idle_start(&s->kick, sock_on_kick);
			return false; /* sock_on_kick resumes */
		}
		size_t want = s->wf_left < SOCK_SENDFILE_MAX
		                  ? (size_t)s->wf_left
		                  : SOCK_SENDFILE_MAX;
		off_t off = (off_t)s->wf_off;
		ssize_t n;
		do {
			n = sendfile(s->wfd, s->wf_fd, &off, want);
		} while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    s->wpollable)
			return false;
		if (n < 0) {
			err = -errno;
			rill_flow_set_errmsg(&s->base, "%s sendfile: %s",
			                     s->fam->name, strerror(-err));
			err = sock_write_err(err);
			break;
		}
		if (n == 0) {
			/* The file ends before the range does: it shrank
			 * after rill_write_file checked it. */
			rill_flow_set_errmsg(
			    &s->base,
			    "the file ended at byte %" PRIu64 ", %" PRIu64
			    " bytes before the end of the range",
			    s->wf_off, s->wf_left);
			err = -ENODATA;
			break;
		}
		s->sync_written += (size_t)n;
		s->wf_off += (uint64_t)n;
		s->wf_left -= (uint64_t)n;
	}
	s->wf_fd = -1;
	s->writing = false;
	rill_flow_write_done(&s->base, err);
	return true;
}

int rill__socket_write_file(struct rill_flow *f, int fd, uint64_t offset,
                            uint64_t length)
{
	struct sock_flow *s = sock_of(f);
	/* A socket only: sendfile(2) into a pipe or a file works too, but
	 * not into every kind of fd (a terminal refuses it), and by the
	 * time the kernel says so the request is ours. The core's pread +
	 * write steps serve the rest. */
	if (s->wfd < 0 || !s->is_socket)
		return -ENOTSUP;
	s->wf_fd = fd;
	s->wf_off = offset;
	s->wf_left = length;
	s->writing = true;
	if (!sock_try_write(s) && !s->closing &&
	    !uv_is_active((uv_handle_t *)&s->kick))
		sock_update_polls(s, s->reading, true);
	return 0;
}

static void sock_on_kick(uv_idle_t *h)
{
	struct sock_flow *s = h->data;
	uv_idle_stop(h);
	s->sync_written = 0;
	if (s->writing && !s->closing && !sock_try_write(s) && !s->closing &&
	    !uv_is_active((uv_handle_t *)&s->kick))
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

int rill__socket_set_nonblock(int fd, int *saved)
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
	if (fam->kind != NULL)
		rill_flow_set_kind(f, fam->kind);
	rill_flow_set_half_close(f, !fam->no_half_close);
	s->fam = fam;
	s->rfd = s->wfd = -1;
	s->wf_fd = -1;
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
	int err = rill__socket_set_nonblock(fd, NULL);
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
		err = rill__socket_set_nonblock(fd, NULL);
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
