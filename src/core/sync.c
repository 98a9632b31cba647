/*
 * The blocking convenience API: start an operation, then run the loop one
 * iteration at a time until its callback has run. The state lives on the
 * heap so that a wait given up (-EDEADLK) cannot leave a callback pointing
 * into a dead stack frame.
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"

struct sync_state {
	uv_loop_t *loop;
	bool done;
	bool abandoned;
	int status;
	struct rill_buf *buf;
};

static void sync_drop_read(rill_read_cb cb, void *ud);
static void sync_drop_status(rill_write_cb cb, void *ud);

/* The core tells this of the callbacks rill_close drops (core.h). */
static const struct rill__drop_observer sync_observer = {
    .read = sync_drop_read,
    .status = sync_drop_status,
};

static struct sync_state *sync_new(struct rill_flow *f)
{
	/* Before the first operation that could be dropped. */
	rill__observe_drops(&sync_observer);
	struct sync_state *st = rill_calloc(1, sizeof(struct sync_state));
	if (st != NULL)
		st->loop = f->loop;
	return st;
}

static void sync_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                         void *ud);
static void sync_status_cb(struct rill_flow *f, int status, void *ud);

/* Marks completion; frees the state if the waiter already gave up. */
static void sync_finish(struct sync_state *st, int status, struct rill_buf *b)
{
	if (st->abandoned) {
		rill_buf_release(b);
		rill_free(st);
		return;
	}
	st->done = true;
	st->status = status;
	st->buf = b;
	/* The waiting uv_run(UV_RUN_ONCE) must not go on to block for I/O
	 * in this iteration: a completion that came from a timer or an idle
	 * handle would otherwise wait for some unrelated event. */
	uv_stop(st->loop);
}

/* Runs the loop until st is done. Returns 0, or -EDEADLK when the loop has
 * nothing left that could complete the operation (st is then abandoned). */
static int sync_wait(uv_loop_t *loop, struct sync_state *st)
{
	while (!st->done) {
		if (uv_run(loop, UV_RUN_ONCE) == 0 && !st->done) {
			st->abandoned = true;
			return -EDEADLK;
		}
	}
	return 0;
}

static void sync_drop_read(rill_read_cb cb, void *ud)
{
	if (cb == sync_read_cb)
		sync_finish(ud, RILL_ECLOSED, NULL);
}

static void sync_drop_status(rill_write_cb cb, void *ud)
{
	if (cb == sync_status_cb)
		sync_finish(ud, RILL_ECLOSED, NULL);
}

static int sync_guard(struct rill_flow *f)
{
	if (f == NULL)
		return RILL_EINVAL;
	if (rill__callback_depth() > 0)
		return -EDEADLK;
	return 0;
}

static void sync_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                         void *ud)
{
	(void)f;
	sync_finish(ud, status, b);
}

int rill_read_sync(struct rill_flow *f, struct rill_buf **out)
{
	if (out == NULL)
		return RILL_EINVAL;
	*out = NULL;
	int err = sync_guard(f);
	if (err != 0)
		return err;
	struct sync_state *st = sync_new(f);
	if (st == NULL)
		return RILL_ENOMEM;
	err = rill_read(f, sync_read_cb, st);
	if (err == 0)
		err = sync_wait(f->loop, st);
	if (err != 0) {
		if (!st->abandoned)
			rill_free(st);
		return err;
	}
	*out = st->buf;
	err = st->status;
	rill_free(st);
	return err;
}

static void sync_status_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	sync_finish(ud, status, NULL);
}

static int sync_status_finish(struct rill_flow *f, struct sync_state *st,
                              int err)
{
	if (err == 0)
		err = sync_wait(f->loop, st);
	if (err != 0) {
		if (!st->abandoned)
			rill_free(st);
		return err;
	}
	err = st->status;
	rill_free(st);
	return err;
}

int rill_write_sync(struct rill_flow *f, const void *data, size_t len)
{
	int err = sync_guard(f);
	if (err != 0)
		return err;
	struct sync_state *st = sync_new(f);
	if (st == NULL)
		return RILL_ENOMEM;
	return sync_status_finish(
	    f, st, rill_write_copy(f, data, len, sync_status_cb, st));
}

int rill_shutdown_sync(struct rill_flow *f, int mode)
{
	int err = sync_guard(f);
	if (err != 0)
		return err;
	struct sync_state *st = sync_new(f);
	if (st == NULL)
		return RILL_ENOMEM;
	return sync_status_finish(f, st,
	                          rill_shutdown(f, mode, sync_status_cb, st));
}

int rill_read_all_sync(struct rill_flow *f, size_t max, struct rill_buf **out)
{
	if (out == NULL)
		return RILL_EINVAL;
	*out = NULL;
	size_t cap = 4096, len = 0;
	struct rill_buf *acc = rill_buf_new(cap);
	if (acc == NULL)
		return RILL_ENOMEM;
	int err = 0;
	for (;;) {
		struct rill_buf *b;
		err = rill_read_sync(f, &b);
		if (err != 0)
			break;
		/* Beyond max: keep what fits, then report it. */
		size_t take = b->len;
		if (take > max - len) {
			take = max - len;
			err = -EMSGSIZE;
		}
		if (len + take > cap) {
			while (len + take > cap)
				cap *= 2;
			struct rill_buf *n = rill_buf_new(cap);
			if (n == NULL) {
				rill_buf_release(b);
				err = RILL_ENOMEM;
				break;
			}
			memcpy(n->data, acc->data, len);
			rill_buf_release(acc);
			acc = n;
		}
		memcpy(acc->data + len, b->data, take);
		len += take;
		rill_buf_release(b);
		if (err != 0)
			break;
	}
	acc->len = len;
	/* The bytes that arrived before an error are the caller's too (a
	 * TLS peer that closes without close_notify sent them all). */
	if (err == RILL_EOF) {
		err = 0;
	} else if (err != 0 && len == 0) {
		rill_buf_release(acc);
		acc = NULL;
	}
	*out = acc;
	return err;
}
