/*
 * proxy: forward a <-> b both ways (mirage-flow-combinators' Proxy), with
 * the half-close carried across: when a->b ends, a's reads and b's writes
 * are shut down, so b's peer sees EOF exactly after the last byte, while
 * b->a goes on for as long as b's peer keeps talking (a reply is never cut
 * short). On the splice path both directions share one poller per socket.
 */
#include "rill/impl.h"
#include "core.h"
#include "combinator.h"

struct rill_proxy {
	struct rill_copy ab, ba;
	struct rill__splice_ep *ep_a, *ep_b;
	rill_proxy_cb cb;
	void *ud;
	rill_proxy_half_cb half_cb;
	int shut_pending; /* write shutdowns not yet completed */
	int half_depth;   /* inside half_cb */
	bool aborted;     /* rill_proxy_abort ran inside half_cb */
	bool completed;   /* the completion callback ran / is running */
};

static void proxy_free(struct rill_proxy *p)
{
	rill__splice_ep_free(p->ep_a);
	rill__splice_ep_free(p->ep_b);
	rill_free(p);
}

static void proxy_check(struct rill_proxy *p)
{
	if (p->completed || !p->ab.done || !p->ba.done || p->shut_pending > 0)
		return;
	p->completed = true;
	struct rill_proxy_result res = {.ab = p->ab.res, .ba = p->ba.res};
	res.status = res.ab.status != 0 ? res.ab.status : res.ba.status;
	if (res.ab.read_err != 0 || res.ba.write_err != 0)
		res.failed |= RILL_PROXY_A;
	if (res.ab.write_err != 0 || res.ba.read_err != 0)
		res.failed |= RILL_PROXY_B;
	/* The pollers go before the callback: the user will close the flows
	 * (and their fds) in it. */
	rill__splice_ep_free(p->ep_a);
	rill__splice_ep_free(p->ep_b);
	p->ep_a = p->ep_b = NULL;
	p->cb(p, &res, p->ud);
	rill_free(p);
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
	if (cb == NULL)
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
	struct rill_copy *cs[2] = {&p->ab, &p->ba};
	for (int i = 0; i < 2; i++) {
		cs[i]->owner = p;
		cs[i]->ending = proxy_ending;
		cs[i]->finished = proxy_finished;
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
