/*
 * The conformance suite on exec:/bin/cat. One exec flow is a loop (its
 * bytes come back to itself), so a connected pair is made of two: cat A
 * carries a -> b and cat B carries b -> a.
 *
 *   a.write -> exec A stdin -> /bin/cat -> exec A stdout -> b.read
 *   b.write -> exec B stdin -> /bin/cat -> exec B stdout -> a.read
 *
 * Each end is a small flow over the two exec flows (it writes to one and
 * reads from the other), so every check runs on exec flows only: a
 * shutdown(write) of an end is the exec flow's, and reaches the peer as
 * cat's end of file; a closed end shuts its exec flow's writing (cat sees
 * end of file) and its reading (cat's next write fails and cat ends, so
 * the peer's writes fail with RILL_ECLOSED). An exec flow is closed once
 * both ends that use it are.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "conformance.h"
#include "harness.h"
#include "rill/impl.h"

struct cross;

/* One end: writes go to exec[out], reads come from exec[1 - out]. */
struct cross_side {
	struct cross *x;
	struct rill_flow *end; /* NULL once the end was closed */
	int out;
};

struct cross {
	struct rill_flow *exec[2];
	struct cross_side side[2];
	int ends_open;
};

struct cross_end {
	struct rill_flow base;
	struct cross_side *side;
};

static struct cross_side *side_of(struct rill_flow *f)
{
	return ((struct cross_end *)(void *)f)->side;
}

static struct rill_flow *cross_out(struct cross_side *s)
{
	return s->x->exec[s->out];
}

static struct rill_flow *cross_in(struct cross_side *s)
{
	return s->x->exec[1 - s->out];
}

static void cross_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                          void *ud)
{
	(void)f;
	struct cross_side *s = ud;
	if (s->end == NULL) {
		rill_buf_release(b);
		return;
	}
	rill_flow_read_done(s->end, status, b);
}

static void cross_read(struct rill_flow *f)
{
	struct cross_side *s = side_of(f);
	int err = rill_read(cross_in(s), cross_read_cb, s);
	if (err != 0)
		rill_flow_read_done(f, err, NULL);
}

static void cross_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct cross_side *s = ud;
	if (s->end != NULL)
		rill_flow_write_done(s->end, status);
}

static void cross_write(struct rill_flow *f, struct rill_buf *const *bufs,
                        size_t n)
{
	struct cross_side *s = side_of(f);
	int err = rill_writev(cross_out(s), bufs, n, cross_write_cb, s);
	if (err != 0)
		rill_flow_write_done(f, err);
}

static void cross_shut_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct cross_side *s = ud;
	if (s->end != NULL)
		rill_flow_shutdown_done(s->end, status);
}

static void cross_shutdown_write(struct rill_flow *f)
{
	struct cross_side *s = side_of(f);
	int err = rill_shutdown(cross_out(s), RILL_SHUT_WR, cross_shut_cb, s);
	if (err != 0)
		rill_flow_shutdown_done(f, err);
}

static void cross_shutdown_read(struct rill_flow *f)
{
	struct cross_side *s = side_of(f);
	(void)rill_shutdown(cross_in(s), RILL_SHUT_RD, NULL, NULL);
}

static void cross_close(struct rill_flow *f)
{
	struct cross_side *s = side_of(f);
	struct cross *x = s->x;
	s->end = NULL;
	/* What a closed socket tells its peer: no more data this way (cat
	 * reads end of file), and nobody reads the other way. */
	(void)rill_shutdown(cross_out(s), RILL_SHUT_WR, NULL, NULL);
	(void)rill_shutdown(cross_in(s), RILL_SHUT_RD, NULL, NULL);
	if (--x->ends_open == 0) {
		rill_close(x->exec[0]);
		rill_close(x->exec[1]);
		free(x);
	}
	rill_flow_destroyed(f);
}

static const struct rill_flow_ops cross_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "exec-cross",
    .read = cross_read,
    .write = cross_write,
    .shutdown_write = cross_shutdown_write,
    .shutdown_read = cross_shutdown_read,
    .close = cross_close,
};

static int cross_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                      struct rill_flow **b)
{
	const char *uri = arg;
	struct cross *x = calloc(1, sizeof *x);
	if (x == NULL)
		return RILL_ENOMEM;
	for (int i = 0; i < 2; i++) {
		int err = rill_connect_sync(loop, uri, NULL, &x->exec[i]);
		if (err != 0) {
			fprintf(stderr, "connect %s: %s\n", uri,
			        rill_last_errmsg());
			rill_close(x->exec[0]);
			free(x);
			return err;
		}
	}
	struct rill_flow *ends[2];
	for (int i = 0; i < 2; i++) {
		ends[i] =
		    rill_flow_new(loop, &cross_ops, sizeof(struct cross_end));
		if (ends[i] == NULL)
			TH_FAIL("out of memory");
		x->side[i] = (struct cross_side){x, ends[i], i};
		((struct cross_end *)(void *)ends[i])->side = &x->side[i];
	}
	x->ends_open = 2;
	*a = ends[0];
	*b = ends[1];
	return 0;
}

/* 16 MiB per large transfer: each byte crosses two socket pairs and a cat
 * process each way. */
static const struct conf_factory exec_cat_factory = {
    .name = "exec-cat",
    .make = cross_make,
    .arg = (void *)"exec:/bin/cat",
    .big_bytes = 16u * 1024u * 1024u,
};

__attribute__((constructor)) static void conf_reg_exec(void)
{
	/* As rill cat and rill relay do; the children must not inherit it
	 * (libuv resets their signal dispositions), or cat would not die
	 * when its reader leaves. */
	signal(SIGPIPE, SIG_IGN);
	conf_register(&exec_cat_factory);
}
