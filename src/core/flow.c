/*
 * The flow core: every public flow operation goes through here, and the
 * bookkeeping of the contract (doc/contract.md) lives here once, so
 * that implementations only move bytes.
 *
 * Life of an operation. The user's request is recorded (a read callback,
 * or a request appended to the write queue: writes and write shutdowns
 * share one queue so they complete in order). Then the core "starts" what
 * the implementation can do now (flow_start). Implementations report back
 * through rill_flow_*_done(); the core records the result and "delivers"
 * it to the user (flow_deliver).
 *
 * Two rules make callbacks safe:
 *  - A user callback never runs inside the API call that started the
 *    operation. When an implementation completes synchronously inside such
 *    a call, delivery is deferred to the next loop iteration (the idle
 *    handle defer_).
 *  - After rill_close() no user callback runs: results that arrive later
 *    are dropped, and f's memory is freed only from a libuv close callback,
 *    so a callback that closes f can still touch f until it returns.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rill/impl.h"

#include "core/core.h"

enum {
	F_CLOSED = 1u << 0,      /* user called rill_close */
	F_RD_PENDING = 1u << 1,  /* user read waiting for a result */
	F_RD_IMPL = 1u << 2,     /* ops->read in flight */
	F_RD_READY = 1u << 3,    /* rd_status_/rd_buf_ hold a result */
	F_SHUT_WR = 1u << 5,     /* write shutdown requested: refuse writes */
	F_SHUT_SENT = 1u << 6,   /* ops->shutdown_write was called */
	F_SHUT_RD = 1u << 7,     /* read shutdown requested */
	F_IN_API = 1u << 8,      /* inside a public call on this flow */
	F_IN_PROGRESS = 1u << 9, /* inside flow_progress */
	F_DEFERRED = 1u << 10,   /* defer_ idle handle started */
	F_DESTROYED = 1u << 11,  /* implementation finished its close */
	F_FREEING = 1u << 12,    /* uv_close(defer_) issued */
	F_TEARDOWN = 1u << 13,   /* counted by rill_closing_flows */
	F_NO_HALF_CLOSE = 1u << 14, /* RILL_SHUT_WR alone would end both ways */
	/* made by rill_layer_new: a struct rill_layer (rill__flow_bottom) */
	F_LAYER = 1u << 24,
};

/* A queued write or write shutdown. */
struct rill_write_req {
	struct rill_write_req *next;
	rill_write_cb cb;
	void *ud;
	int status;
	bool is_shutdown;
	bool done;      /* status is final, waiting for delivery */
	bool delivered; /* user callback ran (or was dropped) */
	bool in_impl;   /* handed to the implementation, not yet returned */
	size_t n;
	size_t total;
	struct rill__file_range *file; /* rill_write_file, else NULL */
	struct rill_buf **bufs;
	struct rill_buf *inline_bufs[4];
};

struct rill_flow_timers {
	uv_timer_t rd;
	uv_timer_t wr;
	uint64_t rd_ms;
	uint64_t wr_ms;
	int open_handles;
	struct rill_flow *f;
};

/* User callbacks currently running on this thread (for the sync API). */
static _Thread_local int cb_depth;

int rill__callback_depth(void)
{
	return cb_depth;
}

static void flow_progress(struct rill_flow *f);
static void flow_free_cb(uv_handle_t *h);

/* ---------------------------------------------------------------------- */

struct rill_flow *rill_flow_new(uv_loop_t *loop,
                                const struct rill_flow_ops *ops, size_t size)
{
	if (loop == NULL || ops == NULL || size < sizeof(struct rill_flow))
		return NULL;
	if (ops->version < 1 || ops->version > RILL_FLOW_OPS_VERSION) {
		rill__set_last_errmsg(
		    "rill_flow_new: the ops table of \"%s\" has version %d; "
		    "this rill knows versions 1 to %d (set .version = "
		    "RILL_FLOW_OPS_VERSION)",
		    ops->name != NULL ? ops->name : "?", ops->version,
		    RILL_FLOW_OPS_VERSION);
		return NULL;
	}
	struct rill_flow *f = rill_calloc(1, size);
	if (f == NULL)
		return NULL;
	if (rill__closing_flow_new(loop) != 0) {
		rill_free(f);
		return NULL;
	}
	f->ops = ops;
	f->loop = loop;
	uv_idle_init(loop, &f->defer_);
	f->defer_.data = f;
	return f;
}

static void flow_schedule(struct rill_flow *f);

static void on_defer(uv_idle_t *h)
{
	struct rill_flow *f = h->data;
	uv_idle_stop(h);
	f->flags_ &= ~F_DEFERRED;
	flow_progress(f);
}

static void flow_schedule(struct rill_flow *f)
{
	if (f->flags_ & (F_DEFERRED | F_FREEING))
		return;
	f->flags_ |= F_DEFERRED;
	uv_idle_start(&f->defer_, on_defer);
}

/* Called after a completion was recorded. */
static void flow_dispatch(struct rill_flow *f)
{
	if (f->flags_ & F_IN_PROGRESS)
		return; /* the running progress loop picks it up */
	if (f->flags_ & F_IN_API) {
		flow_schedule(f);
		return;
	}
	flow_progress(f);
}

/* ---------------------------------------------------------------------- */
/* Timers */

static void timers_close_cb(uv_handle_t *h)
{
	struct rill_flow_timers *t = h->data;
	if (--t->open_handles == 0)
		rill_free(t);
}

static void on_read_timeout(uv_timer_t *h);
static void on_write_timeout(uv_timer_t *h);

static struct rill_flow_timers *flow_timers(struct rill_flow *f)
{
	if (f->timers_ != NULL)
		return f->timers_;
	struct rill_flow_timers *t = rill_calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	uv_timer_init(f->loop, &t->rd);
	uv_timer_init(f->loop, &t->wr);
	t->rd.data = t;
	t->wr.data = t;
	t->open_handles = 2;
	t->f = f;
	f->timers_ = t;
	return t;
}

static void timers_close(struct rill_flow *f)
{
	struct rill_flow_timers *t = f->timers_;
	if (t == NULL)
		return;
	f->timers_ = NULL;
	uv_close((uv_handle_t *)&t->rd, timers_close_cb);
	uv_close((uv_handle_t *)&t->wr, timers_close_cb);
}

static void read_timer_start(struct rill_flow *f)
{
	struct rill_flow_timers *t = f->timers_;
	if (t != NULL && t->rd_ms > 0) {
		/* The loop's clock is cached; an operation started outside a
		 * loop callback would otherwise get a deadline that is early.
		 */
		uv_update_time(f->loop);
		uv_timer_start(&t->rd, on_read_timeout, t->rd_ms, 0);
	}
}

static void read_timer_stop(struct rill_flow *f)
{
	if (f->timers_ != NULL)
		uv_timer_stop(&f->timers_->rd);
}

/* The write deadline measures progress: it runs while one request is
 * inside the implementation and restarts with each request handed down, so
 * a long transfer that keeps moving never times out, while a write stuck
 * behind a reader that stopped reading does. */
static void write_timer_start(struct rill_flow *f)
{
	struct rill_flow_timers *t = f->timers_;
	if (t != NULL && t->wr_ms > 0) {
		uv_update_time(f->loop);
		uv_timer_start(&t->wr, on_write_timeout, t->wr_ms, 0);
	}
}

static void write_timer_stop(struct rill_flow *f)
{
	if (f->timers_ != NULL)
		uv_timer_stop(&f->timers_->wr);
}

static void on_read_timeout(uv_timer_t *h)
{
	struct rill_flow *f = ((struct rill_flow_timers *)h->data)->f;
	if (!(f->flags_ & F_RD_PENDING) || f->rd_err_ != 0)
		return;
	/* A late result from the implementation is dropped: the error sticks
	 * because the position in the stream is no longer known. */
	f->rd_err_ = RILL_ETIMEDOUT;
	rill_flow_set_errmsg(f, "read deadline expired");
	flow_progress(f);
}

static void on_write_timeout(uv_timer_t *h)
{
	struct rill_flow *f = ((struct rill_flow_timers *)h->data)->f;
	if (f->wr_err_ != 0)
		return;
	f->wr_err_ = RILL_ETIMEDOUT;
	rill_flow_set_errmsg(f, "write deadline expired");
	/* Fail every queued request now; the one inside the implementation
	 * keeps its buffers until the implementation returns it. */
	for (struct rill_write_req *r = f->wq_head_; r != NULL; r = r->next) {
		if (!r->done) {
			r->done = true;
			r->status = RILL_ETIMEDOUT;
		}
	}
	flow_progress(f);
}

static int set_timeout(struct rill_flow *f, uint64_t ms, bool rd)
{
	if (f == NULL)
		return RILL_EINVAL;
	if (f->flags_ & F_CLOSED)
		return RILL_ECLOSED;
	if (ms == 0 && f->timers_ == NULL)
		return 0;
	struct rill_flow_timers *t = flow_timers(f);
	if (t == NULL)
		return RILL_ENOMEM;
	if (rd)
		t->rd_ms = ms;
	else
		t->wr_ms = ms;
	return 0;
}

int rill_set_read_timeout(struct rill_flow *f, uint64_t ms)
{
	return set_timeout(f, ms, true);
}

int rill_set_write_timeout(struct rill_flow *f, uint64_t ms)
{
	return set_timeout(f, ms, false);
}

/* The next step of a file range (write_file.c), or its error. */
static void flow_file_step(struct rill_flow *f, struct rill__file_range *fr)
{
	char why[200];
	int err = rill__file_step(f, fr, why, sizeof why);
	if (err == 0)
		return;
	if (why[0] != '\0')
		rill_flow_set_errmsg(f, "%s", why);
	rill_flow_write_done(f, err);
}

/* ---------------------------------------------------------------------- */
/* Write requests */

static void req_free(struct rill_write_req *r)
{
	for (size_t i = 0; i < r->n; i++)
		rill_buf_release(r->bufs[i]);
	if (r->bufs != r->inline_bufs)
		rill_free(r->bufs);
	rill__file_range_free(r->file);
	rill_free(r);
}

static void wq_append(struct rill_flow *f, struct rill_write_req *r)
{
	if (f->wq_tail_ != NULL)
		f->wq_tail_->next = r;
	else
		f->wq_head_ = r;
	f->wq_tail_ = r;
}

static void wq_pop(struct rill_flow *f)
{
	struct rill_write_req *r = f->wq_head_;
	f->wq_head_ = r->next;
	if (f->wq_head_ == NULL)
		f->wq_tail_ = NULL;
}

/* ---------------------------------------------------------------------- */
/* Starting implementation work */

static void flow_start(struct rill_flow *f)
{
	if (f->flags_ & F_CLOSED)
		return;

	if ((f->flags_ & (F_RD_PENDING | F_RD_IMPL | F_RD_READY)) ==
	        F_RD_PENDING &&
	    f->rd_err_ == 0) {
		f->flags_ |= F_RD_IMPL;
		read_timer_start(f);
		if (f->rd_into_ != NULL)
			f->ops->read_into(f, f->rd_into_);
		else
			f->ops->read(f);
		if (f->flags_ & F_CLOSED)
			return;
	}

	while (f->wr_cur_ == NULL) {
		/* Requests start in order, one at a time: the next one is the
		 * first that is not finished yet. */
		struct rill_write_req *r = f->wq_head_;
		while (r != NULL && r->done)
			r = r->next;
		if (r == NULL)
			break;
		if (f->wr_err_ != 0) {
			r->done = true;
			r->status = f->wr_err_;
		} else if (r->is_shutdown && (f->flags_ & F_SHUT_SENT)) {
			r->done = true; /* a second shutdown */
			r->status = 0;
		} else if (!r->is_shutdown && r->total == 0) {
			r->done = true; /* documented: zero bytes succeed */
			r->status = 0;
		} else {
			f->wr_cur_ = r;
			r->in_impl = true;
			write_timer_start(f);
			if (r->is_shutdown) {
				f->flags_ |= F_SHUT_SENT;
				f->ops->shutdown_write(f);
			} else if (r->file != NULL) {
				flow_file_step(f, r->file);
			} else {
				f->ops->write(f, r->bufs, r->n);
			}
			if (f->flags_ & F_CLOSED)
				return;
		}
	}
}

/* Delivers one ready result to the user; returns true if it did. */
static bool flow_deliver(struct rill_flow *f)
{
	if (f->flags_ & F_CLOSED)
		return false;

	if (f->flags_ & F_RD_PENDING) {
		int status = 0;
		struct rill_buf *buf = NULL;
		bool ready = false;
		if (f->flags_ & F_RD_READY) {
			status = f->rd_status_;
			buf = f->rd_buf_;
			f->rd_buf_ = NULL;
			f->flags_ &= ~F_RD_READY;
			ready = true;
		} else if (f->rd_err_ != 0) {
			status = f->rd_err_; /* sticky EOF or error */
			ready = true;
		}
		if (ready) {
			rill_read_cb cb = f->read_cb_;
			void *ud = f->read_ud_;
			f->read_cb_ = NULL;
			f->rd_into_ = NULL;
			f->flags_ &= ~F_RD_PENDING;
			read_timer_stop(f);
			if (buf != NULL) {
				f->rd_bytes_ += buf->len;
				f->rd_ops_++;
			}
			cb_depth++;
			cb(f, status, buf, ud);
			cb_depth--;
			return true;
		}
	}

	struct rill_write_req *r = f->wq_head_;
	if (r != NULL && r->done) {
		/* Popped before the callback, which may close f. A request the
		 * implementation still holds lives on through wr_cur_. */
		wq_pop(f);
		r->delivered = true;
		if (f->wq_head_ == NULL)
			write_timer_stop(f);
		if (!r->is_shutdown && r->status == 0) {
			f->wr_bytes_ += r->total;
			f->wr_ops_++;
		}
		rill_write_cb cb = r->cb;
		void *ud = r->ud;
		int status = r->status;
		if (!r->in_impl)
			req_free(r);
		if (cb != NULL) {
			cb_depth++;
			cb(f, status, ud);
			cb_depth--;
		}
		return true;
	}
	return false;
}

static void flow_progress(struct rill_flow *f)
{
	if (f->flags_ & F_IN_PROGRESS)
		return;
	f->flags_ |= F_IN_PROGRESS;
	do {
		flow_start(f);
	} while (flow_deliver(f));
	f->flags_ &= ~F_IN_PROGRESS;
}

/* Runs after a public call recorded a request. */
static void flow_kick(struct rill_flow *f)
{
	if (f->flags_ & F_IN_PROGRESS)
		return; /* called from a user callback: the loop continues */
	uint32_t was = f->flags_ & F_IN_API;
	f->flags_ |= F_IN_API;
	flow_start(f);
	f->flags_ = (f->flags_ & ~F_IN_API) | was;
	if (f->flags_ & F_CLOSED)
		return;
	/* Anything ready now must wait for the loop: never call back inside
	 * the call that started the operation. */
	bool rd_ready = (f->flags_ & F_RD_PENDING) &&
	                ((f->flags_ & F_RD_READY) || f->rd_err_ != 0);
	bool wr_ready = f->wq_head_ != NULL && f->wq_head_->done;
	if (rd_ready || wr_ready)
		flow_schedule(f);
}

/* ---------------------------------------------------------------------- */
/* Completions from implementations */

void rill_flow_read_done(struct rill_flow *f, int status, struct rill_buf *buf)
{
	f->flags_ &= ~F_RD_IMPL;
	if (status == 0 && (buf == NULL || buf->len == 0)) {
		/* An implementation bug; the contract promises >= 1 byte, so
		 * fail loudly rather than hand the user an empty buffer. */
		rill_buf_release(buf);
		buf = NULL;
		status = -EPROTO;
		rill_flow_set_errmsg(f, "%s flow delivered an empty buffer",
		                     rill_flow_kind(f));
	}
	if (status == 0 && buf == NULL)
		status = -EPROTO;
	if (status > 0)
		status = -EPROTO;
	if ((f->flags_ & F_CLOSED) || f->rd_err_ != 0 ||
	    !(f->flags_ & F_RD_PENDING)) {
		/* Closed, timed out or read side shut: the result is dropped.
		 */
		rill_buf_release(buf);
		if (!(f->flags_ & F_CLOSED) && f->rd_err_ == 0 && status != 0)
			f->rd_err_ = status;
		return;
	}
	if (status != 0) {
		rill_buf_release(buf);
		buf = NULL;
		f->rd_err_ = status;
	}
	f->rd_status_ = status;
	f->rd_buf_ = buf;
	f->flags_ |= F_RD_READY;
	flow_dispatch(f);
}

static void write_req_returned(struct rill_flow *f, int status)
{
	struct rill_write_req *r = f->wr_cur_;
	if (r == NULL)
		return; /* defensive: a completion nobody asked for */
	f->wr_cur_ = NULL;
	r->in_impl = false;
	write_timer_stop(f); /* flow_start restarts it for the next request */
	if (status > 0)
		status = -EPROTO;
	if (r->file != NULL && status == 0 && !r->done && !r->delivered &&
	    rill__file_advance(r->file)) {
		/* One step of a file range: flow_start hands the next one
		 * down (a loop there, not a recursion here, when steps
		 * complete synchronously). */
		if (!(f->flags_ & F_CLOSED))
			flow_dispatch(f);
		return;
	}
	if (status != 0 && f->wr_err_ == 0)
		f->wr_err_ = status;
	if (r->delivered) {
		/* Its callback already ran (deadline) or was dropped (close).
		 */
		req_free(r);
	} else if (!r->done) {
		r->done = true;
		r->status = status;
	}
	if (f->flags_ & F_CLOSED)
		return;
	flow_dispatch(f);
}

void rill_flow_write_done(struct rill_flow *f, int status)
{
	write_req_returned(f, status);
}

void rill_flow_shutdown_done(struct rill_flow *f, int status)
{
	write_req_returned(f, status);
}

bool rill_flow_is_closed(const struct rill_flow *f)
{
	return (f->flags_ & F_CLOSED) != 0;
}

void rill_flow_set_errmsg(struct rill_flow *f, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	char *s = rill_strdup(tmp);
	if (s == NULL)
		return; /* keep the old message rather than fail */
	rill_free(f->errmsg_);
	f->errmsg_ = s;
}

const char *rill_flow_errmsg(struct rill_flow *f)
{
	return f != NULL ? f->errmsg_ : NULL;
}

/* ---------------------------------------------------------------------- */
/* Public operations */

static int read_start(struct rill_flow *f, struct rill_read_into *ri,
                      rill_read_cb cb, void *ud)
{
	if (f->flags_ & F_CLOSED)
		return RILL_ECLOSED;
	if (f->flags_ & F_RD_PENDING)
		return RILL_EALREADY;
	f->read_cb_ = cb;
	f->read_ud_ = ud;
	f->rd_into_ = ri;
	f->flags_ |= F_RD_PENDING;
	flow_kick(f);
	return 0;
}

int rill_read(struct rill_flow *f, rill_read_cb cb, void *ud)
{
	if (f == NULL || cb == NULL)
		return RILL_EINVAL;
	return read_start(f, NULL, cb, ud);
}

int rill_read_into(struct rill_flow *f, struct rill_read_into *ri,
                   rill_read_cb cb, void *ud)
{
	if (f == NULL || cb == NULL || ri == NULL || ri->get == NULL ||
	    ri->unget == NULL)
		return RILL_EINVAL;
	if (f->ops->read_into == NULL)
		return -ENOTSUP;
	return read_start(f, ri, cb, ud);
}

static int write_check(struct rill_flow *f)
{
	if (f->flags_ & (F_CLOSED | F_SHUT_WR))
		return RILL_ECLOSED;
	return f->wr_err_;
}

int rill_writev(struct rill_flow *f, struct rill_buf *const *bufs, size_t n,
                rill_write_cb cb, void *ud)
{
	if (f == NULL || (n > 0 && bufs == NULL))
		return RILL_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (bufs[i] == NULL)
			return RILL_EINVAL;
	int err = write_check(f);
	if (err != 0)
		return err;
	struct rill_write_req *r = rill_calloc(1, sizeof *r);
	if (r == NULL)
		return RILL_ENOMEM;
	r->bufs = r->inline_bufs;
	if (n > sizeof r->inline_bufs / sizeof r->inline_bufs[0]) {
		r->bufs = rill_calloc(n, sizeof *r->bufs);
		if (r->bufs == NULL) {
			rill_free(r);
			return RILL_ENOMEM;
		}
	}
	/* Empty buffers are left out, so an implementation sees only bytes. */
	for (size_t i = 0; i < n; i++) {
		if (bufs[i]->len == 0)
			continue;
		r->bufs[r->n++] = rill_buf_ref(bufs[i]);
		r->total += bufs[i]->len;
	}
	r->cb = cb;
	r->ud = ud;
	wq_append(f, r);
	flow_kick(f);
	return 0;
}

int rill_write(struct rill_flow *f, struct rill_buf *buf, rill_write_cb cb,
               void *ud)
{
	if (buf == NULL)
		return RILL_EINVAL;
	return rill_writev(f, &buf, 1, cb, ud);
}

int rill_write_file(struct rill_flow *f, int fd, uint64_t offset,
                    uint64_t length, rill_write_cb cb, void *ud)
{
	if (f == NULL || length > SIZE_MAX)
		return RILL_EINVAL;
	int err = write_check(f);
	if (err == 0)
		err = rill__file_check(fd, offset, length);
	if (err != 0)
		return err;
	struct rill_write_req *r = rill_calloc(1, sizeof *r);
	if (r == NULL)
		return RILL_ENOMEM;
	r->bufs = r->inline_bufs;
	r->total = (size_t)length;
	if (length > 0) {
		r->file = rill__file_range_new(fd, offset, length);
		if (r->file == NULL) {
			rill_free(r);
			return RILL_ENOMEM;
		}
	}
	r->cb = cb;
	r->ud = ud;
	wq_append(f, r);
	flow_kick(f);
	return 0;
}

int rill_write_copy(struct rill_flow *f, const void *data, size_t len,
                    rill_write_cb cb, void *ud)
{
	if (f == NULL || (data == NULL && len > 0))
		return RILL_EINVAL;
	int err = write_check(f);
	if (err != 0)
		return err;
	struct rill_buf *b = rill_buf_copy(data, len);
	if (b == NULL)
		return RILL_ENOMEM;
	err = rill_write(f, b, cb, ud);
	rill_buf_release(b);
	return err;
}

int rill_shutdown(struct rill_flow *f, int mode, rill_shutdown_cb cb, void *ud)
{
	if (f == NULL || mode < RILL_SHUT_RD || mode > RILL_SHUT_RDWR)
		return RILL_EINVAL;
	if (f->flags_ & F_CLOSED)
		return RILL_ECLOSED;
	/* Never cut the other direction: on a flow that cannot half-close,
	 * the write side may end only with (or after) the read side. */
	if (mode == RILL_SHUT_WR && (f->flags_ & F_NO_HALF_CLOSE) &&
	    !(f->flags_ & F_SHUT_WR) && f->rd_err_ == 0) {
		rill_flow_set_errmsg(f,
		                     "%s cannot half-close: shutting down its "
		                     "write side would end both directions "
		                     "(keep it open, or use shut+)",
		                     rill_flow_kind(f));
		return RILL_ENOHALFCLOSE;
	}
	struct rill_write_req *r = NULL;
	if (mode & RILL_SHUT_WR) {
		r = rill_calloc(1, sizeof *r);
		if (r == NULL)
			return RILL_ENOMEM;
		r->bufs = r->inline_bufs;
		r->is_shutdown = true;
		r->cb = (rill_write_cb)cb;
		r->ud = ud;
	}
	if ((mode & RILL_SHUT_RD) && !(f->flags_ & F_SHUT_RD)) {
		f->flags_ |= F_SHUT_RD;
		if (f->rd_err_ == 0)
			f->rd_err_ = RILL_EOF;
		read_timer_stop(f);
		if (f->ops->shutdown_read != NULL) {
			uint32_t was = f->flags_ & F_IN_API;
			f->flags_ |= F_IN_API;
			f->ops->shutdown_read(f);
			f->flags_ = (f->flags_ & ~F_IN_API) | was;
			if (f->flags_ & F_CLOSED) {
				rill_free(r);
				return 0;
			}
		}
	}
	if (r == NULL && cb != NULL) {
		/* RILL_SHUT_RD with a callback: a request that completes
		 * immediately, in order with the writes before it. */
		r = rill_calloc(1, sizeof *r);
		if (r == NULL)
			return RILL_ENOMEM;
		r->bufs = r->inline_bufs;
		r->done = true;
		r->is_shutdown = true;
		r->cb = (rill_write_cb)cb;
		r->ud = ud;
	}
	if (mode & RILL_SHUT_WR)
		f->flags_ |= F_SHUT_WR;
	if (r != NULL)
		wq_append(f, r);
	flow_kick(f);
	return 0;
}

bool rill_flow_can_half_close(struct rill_flow *f)
{
	return f != NULL && !(f->flags_ & F_NO_HALF_CLOSE);
}

void rill_flow_set_half_close(struct rill_flow *f, bool can)
{
	if (can)
		f->flags_ &= ~(uint32_t)F_NO_HALF_CLOSE;
	else
		f->flags_ |= F_NO_HALF_CLOSE;
}

void rill_close(struct rill_flow *f)
{
	if (f == NULL || (f->flags_ & F_CLOSED))
		return;
	f->flags_ |= F_CLOSED | F_TEARDOWN;
	rill__closing_start(f->loop);
	if (f->flags_ & F_RD_PENDING)
		rill__tell_drop_read(f->read_cb_, f->read_ud_);
	f->read_cb_ = NULL;
	f->rd_into_ = NULL;
	f->flags_ &= ~(F_RD_PENDING | F_RD_READY);
	rill_buf_release(f->rd_buf_);
	f->rd_buf_ = NULL;
	/* Drop every queued request without its callback; the one the
	 * implementation still holds is freed when it comes back, or by
	 * rill_flow_destroyed. */
	struct rill_write_req *r = f->wq_head_;
	while (r != NULL) {
		struct rill_write_req *next = r->next;
		r->delivered = true;
		rill__tell_drop_status(r->cb, r->ud);
		if (!r->in_impl)
			req_free(r);
		r = next;
	}
	f->wq_head_ = f->wq_tail_ = NULL;
	if (f->timers_ != NULL) {
		uv_timer_stop(&f->timers_->rd);
		uv_timer_stop(&f->timers_->wr);
	}
	if (f->flags_ & F_DEFERRED) {
		uv_idle_stop(&f->defer_);
		f->flags_ &= ~F_DEFERRED;
	}
	f->flags_ |= F_IN_API;
	f->ops->close(f);
}

static void flow_free_cb(uv_handle_t *h)
{
	struct rill_flow *f = h->data;
	uv_loop_t *loop = f->loop;
	bool counted = (f->flags_ & F_TEARDOWN) != 0;
	rill_free(f->errmsg_);
	rill_free(f);
	/* After the free: the teardown is over when the memory is gone. */
	rill__closing_flow_freed(loop, counted);
}

void rill_flow_destroyed(struct rill_flow *f)
{
	if (f->flags_ & F_DESTROYED)
		return;
	f->flags_ |= F_DESTROYED | F_CLOSED;
	struct rill_write_req *r = f->wq_head_;
	while (r != NULL) {
		struct rill_write_req *next = r->next;
		if (r != f->wr_cur_)
			req_free(r);
		r = next;
	}
	f->wq_head_ = f->wq_tail_ = NULL;
	if (f->wr_cur_ != NULL)
		req_free(f->wr_cur_);
	f->wr_cur_ = NULL;
	rill_buf_release(f->rd_buf_);
	f->rd_buf_ = NULL;
	timers_close(f);
	f->flags_ |= F_FREEING;
	uv_close((uv_handle_t *)&f->defer_, flow_free_cb);
}

void rill_flow_discard(struct rill_flow *f)
{
	if (f == NULL)
		return;
	f->flags_ |= F_CLOSED;
	rill_flow_destroyed(f);
}

/* ---------------------------------------------------------------------- */
/* Accessors */

uv_loop_t *rill_flow_loop(struct rill_flow *f)
{
	return f != NULL ? f->loop : NULL;
}

const char *rill_flow_kind(struct rill_flow *f)
{
	if (f == NULL)
		return "(null)";
	return f->kind_ != NULL ? f->kind_ : f->ops->name;
}

void rill_flow_set_kind(struct rill_flow *f, const char *kind)
{
	if (f != NULL)
		f->kind_ = kind;
}

void rill_flow_counters(struct rill_flow *f, uint64_t *rd_bytes,
                        uint64_t *wr_bytes, uint64_t *rd_ops, uint64_t *wr_ops)
{
	if (rd_bytes != NULL)
		*rd_bytes = f != NULL ? f->rd_bytes_ : 0;
	if (wr_bytes != NULL)
		*wr_bytes = f != NULL ? f->wr_bytes_ : 0;
	if (rd_ops != NULL)
		*rd_ops = f != NULL ? f->rd_ops_ : 0;
	if (wr_ops != NULL)
		*wr_ops = f != NULL ? f->wr_ops_ : 0;
}

void rill_flow_set_data(struct rill_flow *f, void *data)
{
	if (f != NULL)
		f->data = data;
}

void *rill_flow_data(struct rill_flow *f)
{
	return f != NULL ? f->data : NULL;
}

int rill_flow_address(struct rill_flow *f, int which, char *buf, size_t len)
{
	if (f == NULL || buf == NULL ||
	    (which != RILL_ADDR_LOCAL && which != RILL_ADDR_PEER))
		return RILL_EINVAL;
	if (f->flags_ & F_CLOSED)
		return RILL_ECLOSED;
	if (f->ops->address == NULL)
		return -ENOTSUP;
	return f->ops->address(f, which, buf, len);
}

int rill_flow_set_nodelay(struct rill_flow *f, bool on)
{
	if (f == NULL)
		return RILL_EINVAL;
	if (f->flags_ & F_CLOSED)
		return RILL_ECLOSED;
	if (f->ops->set_nodelay == NULL)
		return -ENOTSUP;
	return f->ops->set_nodelay(f, on);
}

int rill_flow_set_keepalive(struct rill_flow *f, bool on, unsigned after_s,
                            unsigned interval_s, unsigned probes)
{
	if (f == NULL)
		return RILL_EINVAL;
	if (f->flags_ & F_CLOSED)
		return RILL_ECLOSED;
	if (f->ops->set_keepalive == NULL)
		return -ENOTSUP;
	return f->ops->set_keepalive(f, on, after_s, interval_s, probes);
}

void rill__flow_mark_layer(struct rill_flow *f)
{
	f->flags_ |= F_LAYER;
}

struct rill_flow *rill__flow_bottom(struct rill_flow *f)
{
	while (f != NULL && !(f->flags_ & F_CLOSED) && (f->flags_ & F_LAYER))
		f = rill_layer_inner(f);
	return f != NULL && !(f->flags_ & F_CLOSED) ? f : NULL;
}

bool rill__flow_reading(struct rill_flow *f)
{
	return f->read_cb_ != NULL;
}

bool rill__flow_holds_input(struct rill_flow *f)
{
	return f->rd_err_ != 0 || f->rd_buf_ != NULL;
}

bool rill__flow_holds_output(struct rill_flow *f)
{
	return f->wr_err_ != 0 || f->wq_head_ != NULL || f->wr_cur_ != NULL;
}

int rill__flow_fd(struct rill_flow *f)
{
	if (f == NULL || (f->flags_ & F_CLOSED) || f->ops->fd == NULL)
		return -1;
	return f->ops->fd(f);
}

bool rill__flow_writes_pending(struct rill_flow *f)
{
	return f->wq_head_ != NULL;
}
