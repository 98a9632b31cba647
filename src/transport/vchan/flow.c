/*
 * The vchan ring flow, shared by every backend (see flow.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "transport/vchan/flow.h"

#define VCHAN_DEFAULT_SPIN_NS 50000u
/* Work done in one go before letting the loop run other handles. */
#define VCHAN_RUN_BUDGET 64

static uint64_t vchan_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void vchan_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

static struct rill__vchan_flow *vchan_flow_of(struct rill_flow *f)
{
	return rill_container_of(f, struct rill__vchan_flow, base);
}

struct rill__vchan_flow *rill__vchan_flow_of(struct rill_flow *f)
{
	if (f == NULL || f->ops->read != rill__vchan_flow_read)
		return NULL;
	return vchan_flow_of(f);
}

void rill__vchan_flow_fail(struct rill__vchan_flow *vf, int err,
                           const char *what)
{
	if (vf->fail == 0) {
		vf->fail = err;
		rill_flow_set_errmsg(&vf->base, "%s: %s", vf->base.ops->name,
		                     what);
	}
}

static void vchan_signal(struct rill__vchan_flow *vf)
{
	vf->backend->signal(vf);
}

/* ---------------------------------------------------------------------- */
/* Reading */

static void vchan_read_done(struct rill__vchan_flow *vf, int status,
                            struct rill_buf *b)
{
	vf->reading = false;
	rill_flow_read_done(&vf->base, status, b);
}

/* EOF only when the peer is gone and the ring stays empty after we saw
 * that (its last bytes precede its live 0). */
static bool vchan_at_eof(struct rill__vchan_flow *vf, int *err)
{
	bool gone = vf->peer_gone ||
	            rill__vchan_peer_live(&vf->v) == RILL__VCHAN_LIVE_CLOSED;
	if (!gone)
		return false;
	uint32_t ready;
	*err = rill__vchan_readable(&vf->v, &ready);
	return *err == 0 && ready == 0;
}

/* Copies what is ready into a fresh buffer and delivers it. */
static void vchan_deliver(struct rill__vchan_flow *vf, uint32_t ready)
{
	size_t n = ready < RILL__VCHAN_READ_MAX ? ready : RILL__VCHAN_READ_MAX;
	struct rill_buf *b = rill__vchan_pool_buf(&vf->pool, n);
	if (b == NULL) {
		vchan_read_done(vf, RILL_ENOMEM, NULL);
		return;
	}
	size_t got;
	int err = rill__vchan_read(&vf->v, b->data, n, &got);
	if (err != 0 || got == 0) {
		/* Cannot happen with an honest peer: ready was checked. */
		rill_buf_release(b);
		rill__vchan_flow_fail(vf, RILL_ERING,
		                      "the ring index went backwards");
		vchan_read_done(vf, RILL_ERING, NULL);
		return;
	}
	b->len = got;
	if (rill__vchan_take_request(&vf->v, RILL__VCHAN_NOTIFY_READ))
		vchan_signal(vf);
	vchan_read_done(vf, 0, b);
}

/* Completes the pending read if it can; true when it did. */
static bool vchan_try_read(struct rill__vchan_flow *vf)
{
	if (!vf->reading)
		return false;
	if (vf->fail != 0) {
		vchan_read_done(vf, vf->fail, NULL);
		return true;
	}
	if (!vf->attached)
		return false;
	uint32_t ready;
	int err = rill__vchan_readable(&vf->v, &ready);
	if (err == 0 && ready == 0) {
		if (vchan_at_eof(vf, &err)) {
			vchan_read_done(vf, RILL_EOF, NULL);
			return true;
		}
		if (err == 0)
			return false;
	}
	if (err != 0) {
		rill__vchan_flow_fail(
		    vf, err, "the peer wrote a producer index out of range");
		vchan_read_done(vf, err, NULL);
		return true;
	}
	vchan_deliver(vf, ready);
	return true;
}

/* ---------------------------------------------------------------------- */
/* Writing */

static void vchan_write_done(struct rill__vchan_flow *vf, int status)
{
	vf->writing = false;
	vf->w_bufs = NULL;
	rill_flow_write_done(&vf->base, status);
}

static bool vchan_peer_left(struct rill__vchan_flow *vf)
{
	return vf->peer_gone ||
	       (vf->live0_is_gone && vf->attached &&
	        rill__vchan_peer_live(&vf->v) == RILL__VCHAN_LIVE_CLOSED);
}

/* Moves what fits of the pending write; true when anything happened. */
static bool vchan_try_write(struct rill__vchan_flow *vf)
{
	if (!vf->writing)
		return false;
	if (vf->fail != 0) {
		vchan_write_done(vf, vf->fail);
		return true;
	}
	if (vchan_peer_left(vf)) {
		rill_flow_set_errmsg(&vf->base, "%s: the peer is gone",
		                     vf->base.ops->name);
		vchan_write_done(vf, RILL_ECLOSED);
		return true;
	}
	if (!vf->attached)
		return false;
	bool moved = false;
	while (vf->w_i < vf->w_n) {
		struct rill_buf *b = vf->w_bufs[vf->w_i];
		size_t put;
		int err = rill__vchan_write(&vf->v, b->data + vf->w_off,
		                            b->len - vf->w_off, &put);
		if (err != 0) {
			rill__vchan_flow_fail(vf, err,
			                      "the peer wrote a consumer index "
			                      "out of range");
			vchan_write_done(vf, err);
			return true;
		}
		if (put == 0)
			break;
		moved = true;
		vf->w_off += put;
		if (vf->w_off == b->len) {
			vf->w_i++;
			vf->w_off = 0;
		}
	}
	if (moved && rill__vchan_take_request(&vf->v, RILL__VCHAN_NOTIFY_WRITE))
		vchan_signal(vf);
	if (vf->w_i == vf->w_n) {
		vchan_write_done(vf, 0);
		return true;
	}
	return moved;
}

/* ---------------------------------------------------------------------- */
/* Waiting */

/* True when a waiting operation could proceed now (for the spin). */
static bool vchan_ready_now(struct rill__vchan_flow *vf)
{
	uint32_t n;
	if (vf->reading && (rill__vchan_readable(&vf->v, &n) != 0 || n > 0 ||
	                    rill__vchan_peer_live(&vf->v) == 0))
		return true;
	if (vf->writing && (rill__vchan_writable(&vf->v, &n) != 0 || n > 0))
		return true;
	return false;
}

/*
 * Polls the ring for up to spin_cur ns. The spin adapts: it doubles
 * (up to spin_ns) when it saw the peer act, halves when it did not, and
 * stops when that is all it does - the peer may run on this very loop,
 * or be idle - trying again after a number of sleeps.
 */
static void vchan_spin(struct rill__vchan_flow *vf)
{
	if (vf->spin_ns == 0)
		return;
	if (vf->spin_cur == 0) {
		if (++vf->spin_idle < 256)
			return;
		vf->spin_idle = 0;
		vf->spin_cur = vf->spin_ns / 8 + 1;
	}
	uint64_t end = vchan_now_ns() + vf->spin_cur;
	unsigned i = 0;
	bool ready;
	while (!(ready = vchan_ready_now(vf))) {
		vchan_cpu_relax();
		if ((++i & 63) == 0 && vchan_now_ns() >= end)
			break;
	}
	if (ready) {
		uint64_t c = vf->spin_cur * 2;
		vf->spin_cur = c > vf->spin_ns ? vf->spin_ns : c;
	} else {
		vf->spin_cur /= 2;
		if (vf->spin_cur < 500)
			vf->spin_cur = 0;
	}
}

static void vchan_on_kick(uv_idle_t *h)
{
	uv_idle_stop(h);
	rill__vchan_flow_run(h->data);
}

/* One step of the wait: spin, then ask for a wake-up and look again.
 * False when there is nothing left to do but sleep. */
static bool vchan_wait_step(struct rill__vchan_flow *vf, bool *spun,
                            bool *requested)
{
	if (!*spun) {
		*spun = true;
		vchan_spin(vf);
		return true;
	}
	if (!*requested) {
		*requested = true;
		if (vf->reading)
			rill__vchan_request(&vf->v, RILL__VCHAN_NOTIFY_WRITE);
		if (vf->writing)
			rill__vchan_request(&vf->v, RILL__VCHAN_NOTIFY_READ);
		return true; /* re-check before sleeping */
	}
	return false; /* sleep until the wake fd fires */
}

void rill__vchan_flow_run(struct rill__vchan_flow *vf)
{
	if (vf->in_run) {
		vf->rerun = true;
		return;
	}
	vf->in_run = true;
	bool spun = false, requested = false;
	int budget = VCHAN_RUN_BUDGET;
	for (;;) {
		vf->rerun = false;
		bool prog = vchan_try_read(vf);
		prog |= vchan_try_write(vf);
		if (rill_flow_is_closed(&vf->base) || vf->torn_down)
			break;
		if (!vf->reading && !vf->writing && !vf->rerun)
			break;
		if (!vf->attached)
			break; /* the rendezvous wakes us */
		if (prog || vf->rerun) {
			if (--budget == 0) {
				/* Let other handles run; the idle handle
				 * brings us back on the next iteration. */
				uv_idle_start(&vf->kick, vchan_on_kick);
				break;
			}
			spun = requested = false;
			continue;
		}
		if (!vchan_wait_step(vf, &spun, &requested))
			break;
	}
	vf->in_run = false;
}

static void vchan_on_wake(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct rill__vchan_flow *vf = h->data;
	vf->backend->drain(vf);
	if (vf->backend->woken != NULL)
		vf->backend->woken(vf);
	if (!vf->torn_down)
		rill__vchan_flow_run(vf);
}

int rill__vchan_flow_attach(struct rill__vchan_flow *vf, int wake_fd)
{
	uv_loop_t *loop = vf->base.loop;
	int err = uv_poll_init(loop, &vf->wake_poll, wake_fd);
	if (err != 0)
		return err;
	vf->wake_init = true;
	vf->wake_fd = wake_fd;
	vf->wake_poll.data = vf;
	uv_idle_init(loop, &vf->kick);
	vf->kick_init = true;
	vf->kick.data = vf;
	vf->attached = true;
	return uv_poll_start(&vf->wake_poll, UV_READABLE, vchan_on_wake);
}

void rill__vchan_flow_set_live(struct rill__vchan_flow *vf, uint8_t live)
{
	if (!vf->attached)
		return;
	rill__vchan_set_live(&vf->v, live);
	/* Unconditional, as libxenvchan_close does: a sleeping peer must
	 * re-check the live byte. */
	vchan_signal(vf);
}

/* ---------------------------------------------------------------------- */
/* Teardown */

static void vchan_finish_teardown(struct rill__vchan_flow *vf)
{
	rill__vchan_pool_drop(&vf->pool);
	vf->backend->release(vf);
	vf->attached = false;
	if (vf->discard)
		rill_flow_discard(&vf->base);
	else
		rill_flow_destroyed(&vf->base);
}

void rill__vchan_flow_hold(struct rill__vchan_flow *vf)
{
	vf->open_handles++;
}

void rill__vchan_flow_unhold(struct rill__vchan_flow *vf)
{
	if (--vf->open_handles == 0 && vf->torn_down)
		vchan_finish_teardown(vf);
}

static void vchan_handle_closed(uv_handle_t *h)
{
	rill__vchan_flow_unhold(h->data);
}

void rill__vchan_flow_close_handle(struct rill__vchan_flow *vf, uv_handle_t *h)
{
	h->data = vf;
	rill__vchan_flow_hold(vf);
	uv_close(h, vchan_handle_closed);
}

void rill__vchan_flow_teardown(struct rill__vchan_flow *vf)
{
	if (vf->torn_down)
		return;
	vf->torn_down = true;
	vf->reading = vf->writing = false;
	/* One count for this function, so that no close callback can finish
	 * the teardown before every handle is on its way. */
	rill__vchan_flow_hold(vf);
	if (vf->wake_init)
		rill__vchan_flow_close_handle(vf,
		                              (uv_handle_t *)&vf->wake_poll);
	if (vf->kick_init)
		rill__vchan_flow_close_handle(vf, (uv_handle_t *)&vf->kick);
	vf->wake_init = vf->kick_init = false;
	if (vf->backend->close_handles != NULL)
		vf->backend->close_handles(vf);
	rill__vchan_flow_unhold(vf);
}

/* ---------------------------------------------------------------------- */
/* Flow ops */

void rill__vchan_flow_read(struct rill_flow *f)
{
	struct rill__vchan_flow *vf = vchan_flow_of(f);
	vf->reading = true;
	rill__vchan_flow_run(vf);
}

void rill__vchan_flow_write(struct rill_flow *f, struct rill_buf *const *bufs,
                            size_t n)
{
	struct rill__vchan_flow *vf = vchan_flow_of(f);
	vf->w_bufs = bufs;
	vf->w_n = n;
	vf->w_i = 0;
	vf->w_off = 0;
	vf->writing = true;
	rill__vchan_flow_run(vf);
}

void rill__vchan_flow_shutdown_write(struct rill_flow *f)
{
	struct rill__vchan_flow *vf = vchan_flow_of(f);
	vf->wr_shut = true;
	rill__vchan_flow_set_live(vf, RILL__VCHAN_LIVE_CLOSED);
	rill_flow_shutdown_done(f, 0);
}

void rill__vchan_flow_close(struct rill_flow *f)
{
	struct rill__vchan_flow *vf = vchan_flow_of(f);
	rill__vchan_flow_set_live(vf, RILL__VCHAN_LIVE_CLOSED);
	rill__vchan_flow_teardown(vf);
}

int rill__vchan_flow_address(struct rill_flow *f, int which, char *buf,
                             size_t len)
{
	struct rill__vchan_flow *vf = vchan_flow_of(f);
	if (vf->backend->address != NULL)
		return vf->backend->address(vf, which, buf, len);
	int n = snprintf(buf, len, "%s:", f->ops->name);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

void rill__vchan_flow_no_half_close(struct rill__vchan_flow *vf)
{
	vf->live0_is_gone = true;
	rill_flow_set_half_close(&vf->base, false);
}

struct rill__vchan_flow *
rill__vchan_flow_new(uv_loop_t *loop, const struct rill_flow_ops *ops,
                     const struct rill__vchan_backend *backend, size_t size)
{
	struct rill__vchan_flow *vf =
	    (struct rill__vchan_flow *)(void *)rill_flow_new(loop, ops, size);
	if (vf == NULL)
		return NULL;
	vf->backend = backend;
	vf->wake_fd = -1;
	vf->spin_ns = VCHAN_DEFAULT_SPIN_NS;
	const char *s = getenv("RILL_VCHAN_SPIN_NS");
	if (s != NULL && *s != '\0')
		vf->spin_ns = strtoull(s, NULL, 10);
	vf->spin_cur = vf->spin_ns;
	return vf;
}

int rill_vchan_set_spin(struct rill_flow *f, uint64_t ns)
{
	struct rill__vchan_flow *vf = rill__vchan_flow_of(f);
	if (vf == NULL)
		return RILL_EINVAL;
	vf->spin_ns = ns;
	vf->spin_cur = ns;
	return 0;
}
