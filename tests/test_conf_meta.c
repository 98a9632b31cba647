/*
 * The meta-test: the conformance suite must be able to fail. Deliberately
 * broken flows, written only against rill/impl.h as layers over the pair,
 * are run through every check of the suite (each check in its own child
 * process); each broken flow must be caught by at least one check, and by
 * the check that targets its fault.
 *
 * As a control, a correct pass-through layer (only the rill_layer_* ops)
 * is registered with the suite as an ordinary flow kind and must pass it.
 */
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conformance.h"
#include "harness.h"
#include "rill/impl.h"

/* ---------------------------------------------------------------------- */
/* A correct pass-through layer (the control). */

static const struct rill_flow_ops ident_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "identity",
    .read = rill_layer_read,
    .write = rill_layer_write,
    .shutdown_write = rill_layer_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = rill_layer_close,
    .address = rill_layer_address,
};

/* ---------------------------------------------------------------------- */
/* Broken 1: drops the last bytes before EOF. It holds back the last buffer
 * of every write until the next write, and forgets it at shutdown. */

struct droptail {
	struct rill_layer l;
	struct rill_buf *held;
};

static void droptail_write_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	rill_flow_write_done(ud, status);
}

static void droptail_write(struct rill_flow *f, struct rill_buf *const *bufs,
                           size_t n)
{
	struct droptail *d = rill_container_of(f, struct droptail, l.base);
	struct rill_buf **v = rill_calloc(n + 1, sizeof *v);
	size_t k = 0;
	if (d->held != NULL)
		v[k++] = d->held;
	for (size_t i = 0; i + 1 < n; i++)
		v[k++] = bufs[i];
	struct rill_buf *old = d->held;
	d->held = rill_buf_ref(bufs[n - 1]);
	if (k == 0) {
		rill_free(v);
		rill_flow_write_done(f, 0);
		return;
	}
	int err = rill_writev(rill_layer_inner(f), v, k, droptail_write_cb, f);
	rill_buf_release(old);
	rill_free(v);
	if (err != 0)
		rill_flow_write_done(f, err);
}

static void droptail_shutdown_write(struct rill_flow *f)
{
	struct droptail *d = rill_container_of(f, struct droptail, l.base);
	rill_buf_release(d->held); /* the bug */
	d->held = NULL;
	rill_layer_shutdown_write(f);
}

static void droptail_close(struct rill_flow *f)
{
	struct droptail *d = rill_container_of(f, struct droptail, l.base);
	rill_buf_release(d->held);
	d->held = NULL;
	rill_layer_close(f);
}

static const struct rill_flow_ops droptail_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "droptail",
    .read = rill_layer_read,
    .write = droptail_write,
    .shutdown_write = droptail_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = droptail_close,
};

/* ---------------------------------------------------------------------- */
/* Broken 2: reports EOF early, once 64 KiB were read. */

struct early {
	struct rill_layer l;
	uint64_t seen;
};

static void early_read_cb(struct rill_flow *inner, int status,
                          struct rill_buf *buf, void *ud)
{
	(void)inner;
	struct rill_flow *f = ud;
	struct early *e = rill_container_of(f, struct early, l.base);
	if (status == 0 && e->seen + buf->len > 64 * 1024) {
		rill_buf_release(buf);
		rill_flow_read_done(f, RILL_EOF, NULL); /* the bug */
		return;
	}
	if (status == 0)
		e->seen += buf->len;
	rill_flow_read_done(f, status, buf);
}

static void early_read(struct rill_flow *f)
{
	int err = rill_read(rill_layer_inner(f), early_read_cb, f);
	if (err != 0)
		rill_flow_read_done(f, err, NULL);
}

static const struct rill_flow_ops early_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "early-eof",
    .read = early_read,
    .write = rill_layer_write,
    .shutdown_write = rill_layer_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = rill_layer_close,
};

/* ---------------------------------------------------------------------- */
/* Broken 3: every fourth read delivers a buffer of 0 bytes (the real one
 * is kept for the next read). The core turns that into -EPROTO. */

struct zerobuf {
	struct rill_layer l;
	unsigned reads;
	struct rill_buf *kept;
};

static void zerobuf_read_cb(struct rill_flow *inner, int status,
                            struct rill_buf *buf, void *ud)
{
	(void)inner;
	struct rill_flow *f = ud;
	struct zerobuf *z = rill_container_of(f, struct zerobuf, l.base);
	if (status == 0 && ++z->reads % 4 == 0) {
		z->kept = buf;
		rill_flow_read_done(f, 0, rill_buf_new(0)); /* the bug */
		return;
	}
	rill_flow_read_done(f, status, buf);
}

static void zerobuf_read(struct rill_flow *f)
{
	struct zerobuf *z = rill_container_of(f, struct zerobuf, l.base);
	if (z->kept != NULL) {
		struct rill_buf *b = z->kept;
		z->kept = NULL;
		rill_flow_read_done(f, 0, b);
		return;
	}
	int err = rill_read(rill_layer_inner(f), zerobuf_read_cb, f);
	if (err != 0)
		rill_flow_read_done(f, err, NULL);
}

static void zerobuf_close(struct rill_flow *f)
{
	struct zerobuf *z = rill_container_of(f, struct zerobuf, l.base);
	rill_buf_release(z->kept);
	z->kept = NULL;
	rill_layer_close(f);
}

static const struct rill_flow_ops zerobuf_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "zero-buf",
    .read = zerobuf_read,
    .write = rill_layer_write,
    .shutdown_write = rill_layer_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = zerobuf_close,
};

/* ---------------------------------------------------------------------- */
/* Broken 4: no back-pressure. Every write completes at once; the bytes
 * pile up in the inner flow's queue however slowly the peer reads. */

static void nobp_write(struct rill_flow *f, struct rill_buf *const *bufs,
                       size_t n)
{
	int err = rill_writev(rill_layer_inner(f), bufs, n, NULL, NULL);
	rill_flow_write_done(f, err); /* the bug: before the inner accepted */
}

static const struct rill_flow_ops nobp_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "no-backpressure",
    .read = rill_layer_read,
    .write = nobp_write,
    .shutdown_write = rill_layer_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = rill_layer_close,
};

/* ---------------------------------------------------------------------- */
/* Broken 5: corrupts one byte at stream offset 300000 on the way in. */

struct corrupt {
	struct rill_layer l;
	uint64_t seen;
};

static void corrupt_read_cb(struct rill_flow *inner, int status,
                            struct rill_buf *buf, void *ud)
{
	(void)inner;
	struct rill_flow *f = ud;
	struct corrupt *c = rill_container_of(f, struct corrupt, l.base);
	if (status == 0) {
		const uint64_t at = 300000;
		if (c->seen <= at && at < c->seen + buf->len) {
			/* Copy first: the buffer may share memory. */
			struct rill_buf *nb =
			    rill_buf_copy(buf->data, buf->len);
			rill_buf_release(buf);
			buf = nb;
			if (buf != NULL)
				buf->data[at - c->seen] ^= 0x20; /* the bug */
		}
		if (buf != NULL)
			c->seen += buf->len;
		else
			status = RILL_ENOMEM;
	}
	rill_flow_read_done(f, status, buf);
}

static void corrupt_read(struct rill_flow *f)
{
	int err = rill_read(rill_layer_inner(f), corrupt_read_cb, f);
	if (err != 0)
		rill_flow_read_done(f, err, NULL);
}

static const struct rill_flow_ops corrupt_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "corrupt",
    .read = corrupt_read,
    .write = rill_layer_write,
    .shutdown_write = rill_layer_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = rill_layer_close,
};

/* ---------------------------------------------------------------------- */
/* Factories: the layer on both ends of a pair. */

struct layer_kind {
	const struct rill_flow_ops *ops;
	size_t size;
};

static int layer_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                      struct rill_flow **b)
{
	const struct layer_kind *k = arg;
	struct rill_flow *pa, *pb;
	int err = rill_pair(loop, 0, &pa, &pb);
	if (err != 0)
		return err;
	struct rill_layer *la = rill_layer_new(pa, k->ops, k->size);
	struct rill_layer *lb = rill_layer_new(pb, k->ops, k->size);
	if (la == NULL || lb == NULL) {
		rill_close(la != NULL ? &la->base : NULL);
		rill_close(lb != NULL ? &lb->base : NULL);
		return RILL_ENOMEM;
	}
	*a = &la->base;
	*b = &lb->base;
	return 0;
}

static const struct layer_kind ident_kind = {&ident_ops,
                                             sizeof(struct rill_layer)};
static const struct conf_factory ident_factory = {
    .name = "identity+pair",
    .make = layer_make,
    .arg = (void *)&ident_kind,
    .big_bytes = 8u * 1024 * 1024,
};
CONF_REGISTER(ident_factory)

#define BROKEN(id, opsname, type)                                            \
	static const struct layer_kind id##_kind = {&opsname, sizeof(type)}; \
	static const struct conf_factory id##_factory = {                    \
	    .name = #id,                                                     \
	    .make = layer_make,                                              \
	    .arg = (void *)&id##_kind,                                       \
	    .big_bytes = 4u * 1024 * 1024,                                   \
	    .timeout_s = 15,                                                 \
	}

BROKEN(droptail, droptail_ops, struct droptail);
BROKEN(early, early_ops, struct early);
BROKEN(zerobuf, zerobuf_ops, struct zerobuf);
BROKEN(nobp, nobp_ops, struct rill_layer);
BROKEN(corrupt, corrupt_ops, struct corrupt);

/* ---------------------------------------------------------------------- */
/* The driver */

/* Runs check i on f in a child; returns 0 passed, 1 caught, 2 skipped. */
static int run_child(const struct conf_factory *f, size_t i)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		TH_FAIL("fork failed");
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		alarm(60);
		conf_run_check(f, i, false);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		TH_FAIL("waitpid failed");
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
		return 2;
	return 1;
}

static void expect_caught(const struct conf_factory *f, const char *must)
{
	char caught[2048] = "";
	size_t ncaught = 0;
	bool must_seen = false;
	for (size_t i = 0; i < conf_check_count(); i++) {
		if (run_child(f, i) != 1)
			continue;
		ncaught++;
		const char *name = conf_check_name(i);
		if (strcmp(name, must) == 0)
			must_seen = true;
		size_t len = strlen(caught);
		snprintf(caught + len, sizeof caught - len, "%s%s",
		         len ? ", " : "", name);
	}
	th_note("%s caught by %zu of %zu checks: %s", f->name, ncaught,
	        conf_check_count(), caught);
	TH_CMP_INT(ncaught, >=, 1);
	if (!must_seen)
		TH_FAIL("%s was not caught by %s", f->name, must);
	TH_TRUE(must_seen);
}

TEST_TIMEOUT(meta_drop_tail_caught, 600)
{
	expect_caught(&droptail_factory, "data_before_eof");
}

TEST_TIMEOUT(meta_early_eof_caught, 600)
{
	expect_caught(&early_factory, "big_one_way");
}

TEST_TIMEOUT(meta_zero_length_buffer_caught, 600)
{
	expect_caught(&zerobuf_factory, "big_one_way");
}

TEST_TIMEOUT(meta_no_backpressure_caught, 600)
{
	expect_caught(&nobp_factory, "slow_reader");
}

TEST_TIMEOUT(meta_corruption_caught, 600)
{
	expect_caught(&corrupt_factory, "big_one_way");
}

/* The driver itself: a correct flow is caught by nothing. */
TEST_TIMEOUT(meta_correct_layer_not_caught, 600)
{
	size_t bad = 0;
	for (size_t i = 0; i < conf_check_count(); i++) {
		if (run_child(&ident_factory, i) == 1) {
			th_note("identity+pair failed %s", conf_check_name(i));
			bad++;
		}
	}
	TH_EQ_INT(bad, 0);
}
