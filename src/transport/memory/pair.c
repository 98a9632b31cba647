/*
 * The in-memory pair: two connected flows in one process.
 *
 * Each end owns the queue of bytes its peer wrote to it, bounded by `cap`.
 * A write copies the writer's bytes into that queue (the writer may reuse
 * its buffer as soon as the write completes, so the queue cannot alias
 * it) and waits while the queue is full: that is the back-pressure. A read
 * hands out queued chunks whole, without a second copy.
 *
 * An end never completes its peer's operations directly: it wakes the peer
 * through the peer's own idle handle, so no callback of one end runs
 * inside an operation of the other.
 *
 * A read into the reader's layout (ops->read_into) copies queued bytes
 * straight to where the reader wants them, possibly ending inside a
 * chunk: in_off says how much of the first one was taken.
 */
#include <string.h>
#include <sys/uio.h>

#include "rill/impl.h"

#define PAIR_DEFAULT_CAP (256u * 1024u)
#define PAIR_MAX_CHUNK   (64u * 1024u)

struct pair_node {
	struct pair_node *next;
	struct rill_buf *buf;
};

struct pair_end {
	struct rill_flow base;
	struct pair_end *peer; /* NULL once the peer closed */
	uv_idle_t kick;
	size_t cap;
	struct pair_node *in_head, *in_tail;
	size_t in_bytes;
	size_t in_off; /* bytes of in_head already read */
	bool in_eof;   /* the peer will send no more */
	bool reading;  /* ops->read or ops->read_into outstanding */
	struct rill_read_into *into; /* the layout of this read, if any */
	bool rd_shut; /* reads shut down: the peer's writes fail */
	struct rill_buf *const *w_bufs;
	size_t w_n, w_i, w_off;
	bool writing; /* ops->write outstanding */
};

static struct pair_end *pair_of(struct rill_flow *f)
{
	return rill_container_of(f, struct pair_end, base);
}

static void pair_try_read(struct pair_end *e);
static void pair_try_write(struct pair_end *e);

static void pair_on_kick(uv_idle_t *h)
{
	struct pair_end *e = h->data;
	uv_idle_stop(h);
	pair_try_read(e);
	pair_try_write(e);
}

static void pair_wake(struct pair_end *e)
{
	if (e != NULL && !uv_is_closing((uv_handle_t *)&e->kick))
		uv_idle_start(&e->kick, pair_on_kick);
}

static void pair_drop_queue(struct pair_end *e)
{
	while (e->in_head != NULL) {
		struct pair_node *n = e->in_head;
		e->in_head = n->next;
		rill_buf_release(n->buf);
		rill_free(n);
	}
	e->in_tail = NULL;
	e->in_bytes = 0;
	e->in_off = 0;
}

/* Takes the first queued chunk off the queue; returns its buffer. */
static struct rill_buf *pair_pop(struct pair_end *e)
{
	struct pair_node *n = e->in_head;
	e->in_head = n->next;
	if (e->in_head == NULL)
		e->in_tail = NULL;
	struct rill_buf *b = n->buf;
	rill_free(n);
	e->in_off = 0;
	return b;
}

/* Copies queued bytes through ri's iovecs; returns how many. */
static size_t pair_copy_into(struct pair_end *e, struct rill_read_into *ri)
{
	size_t n = 0, at = 0;
	int i = 0;
	while (e->in_head != NULL && i < ri->iovcnt) {
		struct rill_buf *src = e->in_head->buf;
		size_t take = src->len - e->in_off;
		if (take > ri->iov[i].iov_len - at)
			take = ri->iov[i].iov_len - at;
		memcpy((uint8_t *)ri->iov[i].iov_base + at,
		       src->data + e->in_off, take);
		n += take;
		at += take;
		e->in_off += take;
		e->in_bytes -= take;
		if (at == ri->iov[i].iov_len) {
			i++;
			at = 0;
		}
		if (e->in_off == src->len)
			rill_buf_release(pair_pop(e));
	}
	return n;
}

static void pair_read_done(struct pair_end *e, int status, struct rill_buf *b)
{
	e->reading = false;
	e->into = NULL;
	rill_flow_read_done(&e->base, status, b);
}

static void pair_try_read(struct pair_end *e)
{
	if (!e->reading)
		return;
	if (e->in_head == NULL) {
		if (e->in_eof)
			pair_read_done(e, RILL_EOF, NULL);
		return; /* waits: the reader's memory was never taken */
	}
	struct rill_read_into *ri = e->into;
	struct rill_buf *b;
	if (ri != NULL) {
		if (!ri->get(ri)) {
			pair_read_done(e, RILL_ENOMEM, NULL);
			return;
		}
		b = rill_buf_slice(ri->owner, 0, pair_copy_into(e, ri));
		if (b == NULL)
			ri->unget(ri);
	} else if (e->in_off > 0) {
		struct rill_buf *src = e->in_head->buf;
		e->in_bytes -= src->len - e->in_off;
		b = rill_buf_slice(src, e->in_off, src->len - e->in_off);
		rill_buf_release(pair_pop(e));
	} else {
		e->in_bytes -= e->in_head->buf->len;
		b = pair_pop(e);
	}
	pair_wake(e->peer); /* room for a blocked writer */
	pair_read_done(e, b != NULL ? 0 : RILL_ENOMEM, b);
}

static void pair_try_write(struct pair_end *e)
{
	if (!e->writing)
		return;
	struct pair_end *p = e->peer;
	if (p == NULL || p->rd_shut) {
		e->writing = false;
		rill_flow_write_done(&e->base, RILL_ECLOSED);
		return;
	}
	bool woke = false;
	while (e->w_i < e->w_n) {
		struct rill_buf *src = e->w_bufs[e->w_i];
		if (p->in_bytes >= p->cap)
			break; /* full: wait for the reader */
		size_t take = src->len - e->w_off;
		if (take > p->cap - p->in_bytes)
			take = p->cap - p->in_bytes;
		if (take > PAIR_MAX_CHUNK)
			take = PAIR_MAX_CHUNK;
		struct pair_node *n = rill_malloc(sizeof *n);
		struct rill_buf *b = rill_buf_copy(src->data + e->w_off, take);
		if (n == NULL || b == NULL) {
			rill_free(n);
			rill_buf_release(b);
			e->writing = false;
			rill_flow_write_done(&e->base, RILL_ENOMEM);
			return;
		}
		n->next = NULL;
		n->buf = b;
		if (p->in_tail != NULL)
			p->in_tail->next = n;
		else
			p->in_head = n;
		p->in_tail = n;
		p->in_bytes += take;
		woke = true;
		e->w_off += take;
		if (e->w_off == src->len) {
			e->w_i++;
			e->w_off = 0;
		}
	}
	if (woke)
		pair_wake(p);
	if (e->w_i == e->w_n) {
		e->writing = false;
		rill_flow_write_done(&e->base, 0);
	}
}

static void pair_read(struct rill_flow *f)
{
	struct pair_end *e = pair_of(f);
	e->reading = true;
	e->into = NULL;
	pair_try_read(e);
}

static void pair_read_into(struct rill_flow *f, struct rill_read_into *ri)
{
	struct pair_end *e = pair_of(f);
	e->reading = true;
	e->into = ri;
	pair_try_read(e);
}

static void pair_write(struct rill_flow *f, struct rill_buf *const *bufs,
                       size_t n)
{
	struct pair_end *e = pair_of(f);
	e->w_bufs = bufs;
	e->w_n = n;
	e->w_i = 0;
	e->w_off = 0;
	e->writing = true;
	pair_try_write(e);
}

static void pair_shutdown_write(struct rill_flow *f)
{
	struct pair_end *e = pair_of(f);
	if (e->peer != NULL) {
		e->peer->in_eof = true;
		pair_wake(e->peer);
	}
	rill_flow_shutdown_done(f, 0);
}

static void pair_shutdown_read(struct rill_flow *f)
{
	struct pair_end *e = pair_of(f);
	e->rd_shut = true;
	pair_drop_queue(e);
	pair_wake(e->peer); /* a blocked writer now fails */
}

static void pair_kick_closed(uv_handle_t *h)
{
	struct pair_end *e = h->data;
	rill_flow_destroyed(&e->base);
}

static void pair_close(struct rill_flow *f)
{
	struct pair_end *e = pair_of(f);
	if (e->peer != NULL) {
		e->peer->in_eof = true;
		e->peer->peer = NULL;
		pair_wake(e->peer);
		e->peer = NULL;
	}
	e->reading = false;
	e->into = NULL;
	e->writing = false;
	pair_drop_queue(e);
	uv_close((uv_handle_t *)&e->kick, pair_kick_closed);
}

static int pair_address(struct rill_flow *f, int which, char *buf, size_t len)
{
	(void)f;
	(void)which;
	if (len < sizeof "pair:")
		return -ENOSPC;
	memcpy(buf, "pair:", sizeof "pair:");
	return 0;
}

static const struct rill_flow_ops pair_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "pair",
    .read = pair_read,
    .write = pair_write,
    .shutdown_write = pair_shutdown_write,
    .shutdown_read = pair_shutdown_read,
    .close = pair_close,
    .address = pair_address,
    .read_into = pair_read_into,
};

static struct pair_end *pair_end_new(uv_loop_t *loop, size_t cap)
{
	struct pair_end *e = (struct pair_end *)(void *)rill_flow_new(
	    loop, &pair_ops, sizeof(struct pair_end));
	if (e == NULL)
		return NULL;
	e->cap = cap;
	uv_idle_init(loop, &e->kick);
	e->kick.data = e;
	return e;
}

int rill_pair(uv_loop_t *loop, size_t capacity, struct rill_flow **a,
              struct rill_flow **b)
{
	if (loop == NULL || a == NULL || b == NULL)
		return RILL_EINVAL;
	if (capacity == 0)
		capacity = PAIR_DEFAULT_CAP;
	struct pair_end *x = pair_end_new(loop, capacity);
	struct pair_end *y = x != NULL ? pair_end_new(loop, capacity) : NULL;
	if (y == NULL) {
		if (x != NULL)
			rill_close(&x->base);
		return RILL_ENOMEM;
	}
	x->peer = y;
	y->peer = x;
	*a = &x->base;
	*b = &y->base;
	return 0;
}
