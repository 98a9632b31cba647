/*
 * The combinators' deadline timer (combinator.h): one libuv timer in
 * memory of its own, so that a copy or proxy can finish and free itself
 * at once while the handle's close completes in the background.
 */
#include "core/core.h"
#include "combinator/combinator.h"

static void comb_timer_cb(uv_timer_t *h)
{
	struct rill__comb_timer *t = h->data;
	if (t->fire != NULL)
		t->fire(t->owner);
}

static void comb_timer_closed(uv_handle_t *h)
{
	rill_free(h->data);
}

struct rill__comb_timer *
rill__comb_timer_new(uv_loop_t *loop, void (*fire)(void *owner), void *owner)
{
	struct rill__comb_timer *t = rill_calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	uv_timer_init(loop, &t->t);
	t->t.data = t;
	t->fire = fire;
	t->owner = owner;
	return t;
}

void rill__comb_timer_arm(struct rill__comb_timer *t, uint64_t ms)
{
	/* From now, not from the loop's cached time: a copy started long
	 * after the loop last woke (after a slow callback, or before the
	 * loop first ran) would otherwise be cut early by that lag. Armed
	 * once per timeout, not per buffer. */
	uv_update_time(t->t.loop);
	uv_timer_start(&t->t, comb_timer_cb, ms, 0);
}

void rill__comb_timer_free(struct rill__comb_timer *t)
{
	if (t == NULL)
		return;
	t->fire = NULL;
	t->owner = NULL;
	uv_close((uv_handle_t *)&t->t, comb_timer_closed);
}
