/*
 * proxy: forward a <-> b both ways (mirage-flow-combinators' Proxy), with
 * the half-close carried across: when a->b ends, a's reads and b's writes
 * are shut down, so b's peer sees EOF exactly after the last byte, while
 * b->a goes on for as long as b's peer keeps talking (a reply is never cut
 * short). On the splice path both directions share one poller per socket.
 *
 * Its deadlines (idle, linger) share one timer, armed for the nearer one;
 * the copies only note when bytes last moved (active_ms), so a busy
 * proxy costs no timer work per byte.
 */
#include "rill/impl.h"
#include "core/core.h"
#include "combinator/combinator.h"

struct rill_proxy {
	struct rill_copy ab, ba;
	struct rill__splice_ep *ep_a, *ep_b;
	rill_proxy_cb cb;
	void *ud;
	rill_proxy_half_cb half_cb;
	struct rill__comb_timer *timer; /* idle / linger; NULL: neither */
	uint64_t idle_ms;
	uint64_t linger_ms;
	uint64_t half_ms; /* uv_now() when the first direction ended */
	bool linger;      /* RILL_PROXY_LINGER */
	bool half;        /* a direction ended: half_ms is set */
	int shut_pending; /* write shutdowns not yet completed */
	int half_depth;   /* inside half_cb */
	bool aborted;     /* rill_proxy_abort ran inside half_cb */
	bool completed;   /* the completion callback ran / is running */
};

static void proxy_free(struct rill_proxy *p)
{
	rill__splice_ep_free(p->ep_a);
	rill__splice_ep_free(p->ep_b);
	rill__comb_timer_free(p->timer);
	rill_free(p);
}

/* Calls back with the result (status: the first error, else `status`)
 * and frees p. */
static void proxy_complete(struct rill_proxy *p, int cut, int status)
{
	p->completed = true;
	struct rill_proxy_result res = {.ab = p->ab.res, .ba = p->ba.res};
	res.cut = cut;
	res.status = res.ab.status != 0   ? res.ab.status
	             : res.ba.status != 0 ? res.ba.status
	                                  : status;
	if (res.ab.read_err != 0 || res.ba.write_err != 0)
		res.failed |= RILL_PROXY_A;
	if (res.ab.write_err != 0 || res.ba.read_err != 0)
		res.failed |= RILL_PROXY_B;
	/* The pollers go before the callback: the user will close the flows
	 * (and their fds) in it. */
	rill__splice_ep_free(p->ep_a);
	rill__splice_ep_free(p->ep_b);
	p->ep_a = p->ep_b = NULL;
	rill__comb_timer_free(p->timer);
	p->timer = NULL;
	p->cb(p, &res, p->ud);
	rill_free(p);
}

static void proxy_check(struct rill_proxy *p)
{
	if (p->completed || !p->ab.done || !p->ba.done || p->shut_pending > 0)
		return;
	proxy_complete(p, RILL_CUT_NONE, 0);
}

/*
 * Ends the proxy early (enum rill_cut_reason): stops both directions,
 * closes both flows (which drops every callback they still owe us), then
 * calls back. Never inside half_cb (cuts come from copy events and the
 * timer).
 */
static void proxy_cut(struct rill_proxy *p, int reason, int status)
{
	if (p->completed)
		return;
	uint64_t now = uv_hrtime();
	struct rill_copy *cs[2] = {&p->ab, &p->ba};
	for (int i = 0; i < 2; i++) {
		if (cs[i]->done)
			continue;
		rill__copy_stop(cs[i]);
		cs[i]->res.stats.duration_ns = now - cs[i]->t0;
	}
	rill_close(p->ab.src);
	rill_close(p->ab.dst);
	proxy_complete(p, reason, status);
}

static void proxy_failed(struct rill_copy *c)
{
	proxy_cut(c->owner, RILL_CUT_ERROR, c->res.status);
}

/* The deadline that comes first (RILL_CUT_LINGER or RILL_CUT_IDLE; none:
 * RILL_CUT_NONE), and in *left how many ms remain until it (0: passed). */
static int proxy_next_deadline(struct rill_proxy *p, uint64_t *left)
{
	uint64_t now = uv_now(p->ab.src->loop);
	int which = RILL_CUT_NONE;
	*left = UINT64_MAX;
	if (p->idle_ms > 0) {
		uint64_t active = p->ab.active_ms > p->ba.active_ms
		                      ? p->ab.active_ms
		                      : p->ba.active_ms;
		uint64_t end = active + p->idle_ms;
		*left = end > now ? end - now : 0;
		which = RILL_CUT_IDLE;
	}
	if (p->linger && p->half) {
		uint64_t end = p->half_ms + p->linger_ms;
		uint64_t l = end > now ? end - now : 0;
		if (l <= *left) {
			*left = l;
			which = RILL_CUT_LINGER;
		}
	}
	return which;
}

/* The timer fired: cut when a deadline passed, else wait for the next. */
static void proxy_deadlines(void *owner)
{
	struct rill_proxy *p = owner;
	uint64_t left;
	int which = proxy_next_deadline(p, &left);
	if (which == RILL_CUT_NONE)
		return;
	if (left == 0)
		proxy_cut(p, which, RILL_ETIMEDOUT);
	else
		rill__comb_timer_arm(p->timer, left);
}

static void proxy_shut_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct rill_copy *c = ud;
	struct rill_proxy *p = c->owner;
	p->shut_pending--;
	/* The EOF could not be delivered to dst's peer: a write failure. */
	if (status != 0 && c->res.write_err == 0) {
		c->res.write_err = status;
		if (c->res.status == 0)
			c->res.status = status;
	}
	if (status != 0 && (c->flags & RILL_COPY_ABORT_ON_ERROR)) {
		proxy_cut(p, RILL_CUT_ERROR, status);
		return;
	}
	proxy_check(p);
}

/* No more data will go src -> dst: carry the half-close across. */
static void proxy_ending(struct rill_copy *c)
{
	struct rill_proxy *p = c->owner;
	/* Shutting src's reads also ends a read still pending there (after a
	 * write error), so the direction finishes promptly. */
	rill_shutdown(c->src, RILL_SHUT_RD, NULL, NULL);
	/* Queued behind every forwarded byte: the peer sees EOF last. */
	int err = rill_shutdown(c->dst, RILL_SHUT_WR, proxy_shut_cb, c);
	if (err == 0) {
		p->shut_pending++;
	} else if (err == RILL_ENOHALFCLOSE) {
		/* dst would end both ways: keep it open for the reply; the
		 * other direction ends the proxy. */
		c->res.eof_held = true;
	} else if (c->res.write_err == 0) {
		c->res.write_err = err;
		if (c->res.status == 0)
			c->res.status = err;
	}
}

static void proxy_finished(struct rill_copy *c)
{
	struct rill_proxy *p = c->owner;
	if (!p->half) {
		p->half = true;
		p->half_ms = uv_now(c->src->loop);
		uint64_t left;
		/* Only arms: a cut comes from the loop, never from here. */
		if (p->linger && proxy_next_deadline(p, &left) != RILL_CUT_NONE)
			rill__comb_timer_arm(p->timer, left);
	}
	if (p->half_cb != NULL) {
		p->half_depth++;
		p->half_cb(p, c == &p->ab, &c->res, p->ud);
		p->half_depth--;
		if (p->aborted) {
			proxy_free(p);
			return;
		}
	}
	proxy_check(p);
}

int rill_proxy(struct rill_flow *a, struct rill_flow *b,
               const struct rill_proxy_opts *opts, rill_proxy_cb cb, void *ud,
               struct rill_proxy **out)
{
	if (cb == NULL || a == b)
		return RILL_EINVAL;
	int err = rill__copy_check(a, b);
	if (err == 0)
		err = rill__copy_check(b, a);
	if (err != 0)
		return err;
	struct rill_proxy *p = rill_calloc(1, sizeof *p);
	if (p == NULL)
		return RILL_ENOMEM;
	const struct rill_copy_opts *copts = opts != NULL ? &opts->copy : NULL;
	rill__copy_init(&p->ab, a, b, copts);
	rill__copy_init(&p->ba, b, a, copts);
	p->cb = cb;
	p->ud = ud;
	p->half_cb = opts != NULL ? opts->half_cb : NULL;
	if (opts != NULL) {
		p->idle_ms = opts->copy.idle_timeout_ms;
		p->linger = (opts->flags & RILL_PROXY_LINGER) != 0;
		p->linger_ms = opts->linger_ms;
	}
	if (p->idle_ms > 0 || p->linger) {
		p->timer = rill__comb_timer_new(a->loop, proxy_deadlines, p);
		if (p->timer == NULL) {
			rill_free(p);
			return RILL_ENOMEM;
		}
		if (p->idle_ms > 0)
			rill__comb_timer_arm(p->timer, p->idle_ms);
	}
	struct rill_copy *cs[2] = {&p->ab, &p->ba};
	for (int i = 0; i < 2; i++) {
		cs[i]->owner = p;
		cs[i]->ending = proxy_ending;
		cs[i]->finished = proxy_finished;
		cs[i]->failed = proxy_failed;
	}
	if (out != NULL)
		*out = p;
	if (rill__splice_possible(a, b, copts) &&
	    rill__splice_possible(b, a, copts)) {
		p->ep_a = rill__splice_ep_new(a);
		p->ep_b = p->ep_a != NULL ? rill__splice_ep_new(b) : NULL;
		if (p->ep_b != NULL) {
			rill__copy_start_splice(&p->ab, p->ep_a, p->ep_b);
			rill__copy_start_splice(&p->ba, p->ep_b, p->ep_a);
			return 0;
		}
		rill__splice_ep_free(p->ep_a);
		p->ep_a = NULL;
	}
	rill__copy_start_generic(&p->ab);
	rill__copy_start_generic(&p->ba);
	return 0;
}

void rill_proxy_stats(struct rill_proxy *p, struct rill_copy_stats *ab,
                      struct rill_copy_stats *ba)
{
	if (p == NULL)
		return;
	if (ab != NULL)
		rill__copy_stats_now(&p->ab, ab);
	if (ba != NULL)
		rill__copy_stats_now(&p->ba, ba);
}

bool rill_proxy_ended(struct rill_proxy *p, bool from_a)
{
	if (p == NULL)
		return false;
	return from_a ? p->ab.done : p->ba.done;
}

bool rill_proxy_spliced(struct rill_proxy *p)
{
	return p != NULL && p->ab.res.spliced;
}

void rill_proxy_abort(struct rill_proxy *p)
{
	if (p == NULL || p->aborted)
		return;
	struct rill_flow *a = p->ab.src, *b = p->ab.dst;
	if (p->completed) {
		rill_close(a);
		rill_close(b);
		return;
	}
	if (!p->ab.done)
		rill__copy_stop(&p->ab);
	if (!p->ba.done)
		rill__copy_stop(&p->ba);
	p->completed = true; /* no completion callback any more */
	/* Closing drops every callback the flows still owe us. */
	rill_close(a);
	rill_close(b);
	if (p->half_depth > 0) {
		p->aborted = true; /* freed when half_cb returns */
		return;
	}
	proxy_free(p);
}
