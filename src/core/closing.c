/*
 * Teardown accounting: how many flows of each loop were closed and are
 * still tearing down, and who waits for that number to reach zero
 * (rill_closing_flows, rill_when_flows_closed).
 *
 * rill_close() returns at once, while a flow's teardown can go on for a
 * while on its loop (the shut layer's close handshake waits for the
 * peer's answer). A program that exits in the meantime cuts it short, so
 * the core counts, per loop, every flow from rill_close() until its memory
 * is freed, and wakes the waiters of a loop when its count reaches zero.
 *
 * rill keeps no per-loop object, so the counts live in one process-wide
 * list of loop records under a mutex: flows of different loops may be
 * closed on different threads. A record exists while the loop has live
 * flows or waiters; it is made when the loop's first flow is made, where
 * running out of memory can still be reported (rill_flow_new returns
 * NULL), so that rill_close, which cannot fail, never allocates.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "core/core.h"

struct closing_waiter {
	uv_idle_t idle; /* started when the loop's count is zero */
	struct closing_loop *rec;
	struct closing_waiter *next;
	rill_flows_closed_cb cb;
	void *ud;
};

struct closing_loop {
	struct closing_loop *next;
	uv_loop_t *loop;
	size_t flows;                  /* live flows (closed or not) */
	size_t closing;                /* closed and not yet freed */
	size_t waiters;                /* registered and not yet called back */
	struct closing_waiter *parked; /* waiting for closing == 0 */
};

static pthread_mutex_t closing_lock = PTHREAD_MUTEX_INITIALIZER;
static struct closing_loop *closing_loops;

static struct closing_loop *closing_find(uv_loop_t *loop)
{
	struct closing_loop *r = closing_loops;
	while (r != NULL && r->loop != loop)
		r = r->next;
	return r;
}

/* Takes a record of loop (made if needed); NULL on ENOMEM. Locked. */
static struct closing_loop *closing_get(uv_loop_t *loop)
{
	struct closing_loop *r = closing_find(loop);
	if (r != NULL)
		return r;
	r = rill_calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->loop = loop;
	r->next = closing_loops;
	closing_loops = r;
	return r;
}

/* Frees r once nothing refers to it any more. Locked. */
static void closing_put(struct closing_loop *r)
{
	if (r->flows > 0 || r->waiters > 0)
		return;
	struct closing_loop **pp = &closing_loops;
	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	rill_free(r);
}

int rill__closing_flow_new(uv_loop_t *loop)
{
	pthread_mutex_lock(&closing_lock);
	struct closing_loop *r = closing_get(loop);
	if (r != NULL)
		r->flows++;
	pthread_mutex_unlock(&closing_lock);
	return r != NULL ? 0 : RILL_ENOMEM;
}

void rill__closing_start(uv_loop_t *loop)
{
	pthread_mutex_lock(&closing_lock);
	struct closing_loop *r = closing_find(loop);
	if (r != NULL)
		r->closing++;
	pthread_mutex_unlock(&closing_lock);
}

static void closing_on_idle(uv_idle_t *h);

void rill__closing_flow_freed(uv_loop_t *loop, bool was_closing)
{
	pthread_mutex_lock(&closing_lock);
	struct closing_loop *r = closing_find(loop);
	struct closing_waiter *wake = NULL;
	if (r != NULL) {
		if (was_closing && r->closing > 0)
			r->closing--;
		r->flows--;
		if (r->closing == 0) {
			wake = r->parked;
			r->parked = NULL;
		}
		closing_put(r);
	}
	pthread_mutex_unlock(&closing_lock);
	/* This runs on the loop's thread (a libuv close callback). The
	 * callbacks themselves run from the idle handles, outside of rill's
	 * own close callback. */
	while (wake != NULL) {
		struct closing_waiter *w = wake;
		wake = w->next;
		w->next = NULL;
		uv_idle_start(&w->idle, closing_on_idle);
	}
}

size_t rill_closing_flows(uv_loop_t *loop)
{
	if (loop == NULL)
		return 0;
	pthread_mutex_lock(&closing_lock);
	struct closing_loop *r = closing_find(loop);
	size_t n = r != NULL ? r->closing : 0;
	pthread_mutex_unlock(&closing_lock);
	return n;
}

static void closing_waiter_free(uv_handle_t *h)
{
	rill_free(rill_container_of(h, struct closing_waiter, idle));
}

static void closing_on_idle(uv_idle_t *h)
{
	struct closing_waiter *w =
	    rill_container_of(h, struct closing_waiter, idle);
	uv_idle_stop(h);
	pthread_mutex_lock(&closing_lock);
	struct closing_loop *r = w->rec;
	bool ready = r->closing == 0;
	if (!ready) {
		/* A flow was closed after the count reached zero: wait for
		 * that one too, so that the callback can rely on the count. */
		w->next = r->parked;
		r->parked = w;
	} else {
		r->waiters--;
		closing_put(r);
	}
	pthread_mutex_unlock(&closing_lock);
	if (!ready)
		return;
	rill_flows_closed_cb cb = w->cb;
	void *ud = w->ud;
	uv_loop_t *loop = h->loop;
	uv_close((uv_handle_t *)h, closing_waiter_free);
	cb(loop, ud);
}

int rill_when_flows_closed(uv_loop_t *loop, rill_flows_closed_cb cb, void *ud)
{
	if (loop == NULL || cb == NULL)
		return RILL_EINVAL;
	struct closing_waiter *w = rill_calloc(1, sizeof *w);
	if (w == NULL)
		return RILL_ENOMEM;
	pthread_mutex_lock(&closing_lock);
	struct closing_loop *r = closing_get(loop);
	if (r == NULL) {
		pthread_mutex_unlock(&closing_lock);
		rill_free(w);
		return RILL_ENOMEM;
	}
	r->waiters++;
	w->rec = r;
	w->cb = cb;
	w->ud = ud;
	bool now = r->closing == 0;
	if (!now) {
		w->next = r->parked;
		r->parked = w;
	}
	uv_idle_init(loop, &w->idle);
	pthread_mutex_unlock(&closing_lock);
	/* Even when nothing is closing, the callback runs from the loop,
	 * never inside this call. */
	if (now)
		uv_idle_start(&w->idle, closing_on_idle);
	return 0;
}

/* The drop observer (core.h): rill_close tells it of every callback it
 * drops. */
static _Atomic(const struct rill__drop_observer *) drop_observer;

void rill__observe_drops(const struct rill__drop_observer *o)
{
	atomic_store(&drop_observer, o);
}

void rill__tell_drop_read(rill_read_cb cb, void *ud)
{
	const struct rill__drop_observer *o = atomic_load(&drop_observer);
	if (o != NULL && o->read != NULL)
		o->read(cb, ud);
}

void rill__tell_drop_status(rill_write_cb cb, void *ud)
{
	const struct rill__drop_observer *o = atomic_load(&drop_observer);
	if (o != NULL && o->status != NULL)
		o->status(cb, ud);
}
