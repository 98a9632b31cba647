/*
 * Buffers, and allocation failure: every allocation rill makes goes
 * through the replaceable allocator, so these tests fail the Nth one, for
 * every N over a small pair transfer, and require no crash, no leak, and a
 * clean error (SQLite's technique).
 */
#include <stdlib.h>

#include "harness.h"
#include "rill.h"

/* A counting allocator that fails allocation number fail_at (1-based;
 * 0: never). Sizes are kept in a header so live bytes can be tracked. */
#define HDR 16u
static size_t live_bytes;
static unsigned long nallocs;
static unsigned long fail_at;

static void *t_malloc(size_t n)
{
	if (++nallocs == fail_at)
		return NULL;
	size_t *p = malloc(n + HDR);
	if (p == NULL)
		return NULL;
	p[0] = n;
	live_bytes += n;
	return (char *)p + HDR;
}

static void t_free(void *q)
{
	if (q == NULL)
		return;
	size_t *p = (size_t *)(void *)((char *)q - HDR);
	live_bytes -= p[0];
	free(p);
}

static void *t_realloc(void *q, size_t n)
{
	if (q == NULL)
		return t_malloc(n);
	if (++nallocs == fail_at)
		return NULL;
	size_t *p = (size_t *)(void *)((char *)q - HDR);
	size_t old = p[0];
	size_t *np = realloc(p, n + HDR);
	if (np == NULL)
		return NULL;
	live_bytes = live_bytes - old + n;
	np[0] = n;
	return (char *)np + HDR;
}

static void install(void)
{
	TH_OK(rill_replace_allocator(t_malloc, t_realloc, t_free));
}

/* ---------------------------------------------------------------------- */
/* Buffers */

TEST(buf_new_zero_and_copy)
{
	install();
	struct rill_buf *z = rill_buf_new(0);
	TH_NOT_NULL(z);
	TH_EQ_INT(z->len, 0);
	struct rill_buf *c = rill_buf_copy(NULL, 0);
	TH_NOT_NULL(c);
	struct rill_buf *d = rill_buf_copy("abc", 3);
	TH_EQ_MEM(d->data, "abc", 3);
	rill_buf_release(z);
	rill_buf_release(c);
	rill_buf_release(d);
	TH_EQ_INT(live_bytes, 0);
}

TEST(buf_huge_is_null)
{
	install();
	TH_TRUE(rill_buf_new(SIZE_MAX) == NULL);
	TH_TRUE(rill_buf_new(SIZE_MAX - 8) == NULL);
	TH_TRUE(rill_buf_slice(NULL, 0, 0) == NULL);
	TH_EQ_INT(live_bytes, 0);
}

TEST(buf_refs_keep_memory)
{
	install();
	struct rill_buf *b = rill_buf_copy("refcounted", 10);
	TH_TRUE(rill_buf_ref(b) == b);
	rill_buf_ref(b);
	rill_buf_release(b);
	rill_buf_release(b);
	TH_EQ_MEM(b->data, "refcounted", 10); /* one reference left */
	rill_buf_release(b);
	TH_EQ_INT(live_bytes, 0);
}

TEST(buf_slice_chain_keeps_root_alive)
{
	install();
	struct rill_buf *root = rill_buf_copy("0123456789", 10);
	struct rill_buf *s1 = rill_buf_slice(root, 2, 6); /* 234567 */
	struct rill_buf *s2 = rill_buf_slice(s1, 1, 3);   /* 345 */
	struct rill_buf *s3 = rill_buf_slice(s2, 3, 0);   /* empty, at end */
	rill_buf_release(root);
	rill_buf_release(s1);
	TH_EQ_MEM(s2->data, "345", 3);
	TH_TRUE(s2->data == s1->data + 1);
	TH_EQ_INT(s3->len, 0);
	rill_buf_release(s2);
	TH_TRUE(live_bytes > 0); /* s3 still holds the chain */
	rill_buf_release(s3);
	TH_EQ_INT(live_bytes, 0);
}

static int wrap_calls;
static void wrap_free(void *ctx, void *mem)
{
	wrap_calls++;
	TH_TRUE(ctx == mem);
}

TEST(buf_wrap_and_slices)
{
	install();
	static char mem[8] = "wrapped";
	struct rill_buf *w = rill_buf_wrap(mem, 7, wrap_free, mem);
	struct rill_buf *s = rill_buf_slice(w, 0, 4);
	rill_buf_release(w);
	TH_EQ_INT(wrap_calls, 0);
	TH_EQ_MEM(s->data, "wrap", 4);
	rill_buf_release(s);
	TH_EQ_INT(wrap_calls, 1);
	struct rill_buf *st = rill_buf_wrap(mem, 7, NULL, NULL);
	rill_buf_release(st); /* static memory: nothing to free */
	TH_EQ_INT(live_bytes, 0);
}

TEST(buf_allocation_failures)
{
	install();
	struct rill_buf *b = rill_buf_copy("abc", 3);
	fail_at = nallocs + 1;
	TH_TRUE(rill_buf_new(10) == NULL);
	fail_at = nallocs + 1;
	TH_TRUE(rill_buf_copy("x", 1) == NULL);
	fail_at = nallocs + 1;
	TH_TRUE(rill_buf_slice(b, 0, 1) == NULL);
	fail_at = nallocs + 1;
	wrap_calls = 0;
	static char mem[4];
	TH_TRUE(rill_buf_wrap(mem, 4, wrap_free, mem) == NULL);
	TH_EQ_INT(wrap_calls, 0); /* documented: free_fn NOT called */
	fail_at = 0;
	rill_buf_release(b); /* the failed slice took no reference */
	TH_EQ_INT(live_bytes, 0);
}

/* ---------------------------------------------------------------------- */
/* Failing the Nth allocation over a pair transfer */

struct xfer {
	int first_err; /* first error any operation reported */
	bool wdone, rdone, sdone;
	size_t got;
	bool bad;
	struct rill_flow *b;
};

static const char pattern[] = "the quick brown fox jumps over the lazy dog";
#define XFER_LEN (50u * 1024u)

static void note_err(struct xfer *x, int err)
{
	if (err != 0 && x->first_err == 0)
		x->first_err = err;
}

static void x_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	note_err(ud, status);
	((struct xfer *)ud)->wdone = true;
}

static void x_shut_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	note_err(ud, status);
	((struct xfer *)ud)->sdone = true;
}

static void x_read_cb(struct rill_flow *f, int status, struct rill_buf *buf,
                      void *ud)
{
	struct xfer *x = ud;
	if (status != 0) {
		if (status != RILL_EOF)
			note_err(x, status);
		x->rdone = true;
		return;
	}
	for (size_t i = 0; i < buf->len; i++)
		if (buf->data[i] !=
		    (uint8_t)pattern[(x->got + i) % (sizeof pattern - 1)])
			x->bad = true;
	x->got += buf->len;
	rill_buf_release(buf);
	int err = rill_read(f, x_read_cb, x);
	if (err != 0) {
		note_err(x, err);
		x->rdone = true;
	}
}

/* One transfer with allocation number n failing; returns the first error
 * (0: everything worked). Leaves no allocation behind. */
static int transfer_failing_at(unsigned long n)
{
	nallocs = 0;
	fail_at = n;
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *a = NULL, *b = NULL;
	struct xfer x = {0};
	int err = rill_pair(&loop, 8 * 1024, &a, &b);
	if (err != 0) {
		TH_TRUE(a == NULL || b == NULL);
		note_err(&x, err);
		goto out;
	}
	note_err(&x, rill_set_read_timeout(b, 5000));
	note_err(&x, rill_set_write_timeout(a, 5000));
	struct rill_buf *data = rill_buf_new(XFER_LEN);
	if (data == NULL) {
		note_err(&x, RILL_ENOMEM);
		goto out;
	}
	for (size_t i = 0; i < XFER_LEN; i++)
		data->data[i] = (uint8_t)pattern[i % (sizeof pattern - 1)];
	/* Several buffers, one writev: the request array allocation too. */
	struct rill_buf *v[6];
	size_t nv = 0;
	for (size_t off = 0; off < XFER_LEN; off += XFER_LEN / 6 + 1) {
		size_t len = XFER_LEN - off < XFER_LEN / 6 + 1
		                 ? XFER_LEN - off
		                 : XFER_LEN / 6 + 1;
		v[nv] = rill_buf_slice(data, off, len);
		if (v[nv] == NULL)
			break;
		nv++;
	}
	if (nv < 6 && nv * (XFER_LEN / 6 + 1) < XFER_LEN) {
		note_err(&x, RILL_ENOMEM);
	} else {
		err = rill_writev(a, v, nv, x_write_cb, &x);
		note_err(&x, err);
		if (err == 0) {
			err = rill_shutdown(a, RILL_SHUT_WR, x_shut_cb, &x);
			note_err(&x, err);
		}
		err = rill_read(b, x_read_cb, &x);
		note_err(&x, err);
		/* Run until everything ends or nothing more can happen;
		 * a failed step leaves the other side waiting, and closing
		 * must clean that up. */
		while (!(x.rdone && x.wdone && x.sdone) &&
		       uv_run(&loop, UV_RUN_ONCE) != 0) {
			if (x.first_err != 0)
				break;
		}
	}
	for (size_t i = 0; i < nv; i++)
		rill_buf_release(v[i]);
	rill_buf_release(data);
out:
	rill_close(a);
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&loop));
	if (x.first_err == 0) {
		TH_TRUE(!x.bad);
		TH_EQ_INT(x.got, XFER_LEN);
	} else {
		TH_TRUE(!x.bad); /* a prefix, never wrong bytes */
	}
	if (live_bytes != 0)
		TH_FAIL("failing allocation %lu: %zu bytes leaked", n,
		        live_bytes);
	fail_at = 0;
	return x.first_err;
}

TEST(pair_transfer_fails_cleanly_at_every_allocation)
{
	install();
	/* A dry run counts the allocations of a full transfer. */
	TH_OK(transfer_failing_at(0));
	unsigned long total = nallocs;
	th_note("a transfer makes %lu allocations", total);
	TH_CMP_INT(total, >, 10);
	unsigned long failed = 0;
	for (unsigned long n = 1; n <= total; n++) {
		int err = transfer_failing_at(n);
		if (err != 0) {
			failed++;
			if (err != RILL_ENOMEM)
				TH_FAIL("failing allocation %lu gave %s, "
				        "expected ENOMEM",
				        n, th_errname(err));
		}
	}
	th_note("%lu of %lu failure points reported ENOMEM", failed, total);
	TH_CMP_INT(failed, >, 0);
	/* Past the last allocation, everything works again. */
	TH_OK(transfer_failing_at(total + 1));
}

/* Failing allocations inside the blocking API and error messages. */
TEST(sync_api_fails_cleanly_at_every_allocation)
{
	install();
	for (unsigned long n = 1; n < 60; n++) {
		nallocs = 0;
		fail_at = n;
		uv_loop_t loop;
		TH_OK(uv_loop_init(&loop));
		struct rill_flow *a = NULL, *b = NULL;
		if (rill_pair(&loop, 0, &a, &b) == 0) {
			int e1 = rill_write_sync(a, "hello", 5);
			int e2 = rill_shutdown_sync(a, RILL_SHUT_WR);
			struct rill_buf *all = NULL;
			int e3 = rill_read_all_sync(b, 100, &all);
			TH_TRUE(e1 == 0 || e1 == RILL_ENOMEM);
			TH_TRUE(e2 == 0 || e2 == RILL_ENOMEM ||
			        e2 == RILL_ECLOSED);
			/* Without the shutdown no EOF can come: the wait
			 * gives up rather than hang. */
			if (!(e3 == 0 || e3 == RILL_ENOMEM ||
			      (e2 != 0 && e3 == -EDEADLK)))
				TH_FAIL("failing allocation %lu: read_all "
				        "gave %s",
				        n, th_errname(e3));
			if (e1 == 0 && e2 == 0 && e3 == 0) {
				TH_EQ_INT(all->len, 5);
				TH_EQ_MEM(all->data, "hello", 5);
			}
			rill_buf_release(all);
		}
		rill_close(a);
		rill_close(b);
		uv_run(&loop, UV_RUN_DEFAULT);
		TH_OK(uv_loop_close(&loop));
		fail_at = 0;
		if (live_bytes != 0)
			TH_FAIL("failing allocation %lu: %zu bytes leaked", n,
			        live_bytes);
	}
}
