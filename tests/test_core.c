/* Unit tests of the core: errors, buffers, allocator, API misuse. */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "rill.h"
#include "rill/impl.h"

TEST(error_names_and_messages)
{
	TH_EQ_STR(rill_err_name(RILL_EOF), "RILL_EOF");
	TH_EQ_STR(rill_strerror(RILL_EOF), "end of file");
	TH_EQ_STR(rill_err_name(RILL_ECONNREFUSED), "ECONNREFUSED");
	TH_CONTAINS(rill_strerror(RILL_ECLOSED), "closed");
	TH_EQ_STR(rill_strerror(-123456), "unknown error");
	TH_EQ_STR(rill_strerror(0), "success");
	TH_TRUE(RILL_EOF != RILL_ECONNRESET && RILL_EOF != RILL_ETIMEDOUT);
}

TEST(buffer_slice_shares_memory)
{
	struct rill_buf *b = rill_buf_copy("hello world", 11);
	TH_NOT_NULL(b);
	struct rill_buf *s = rill_buf_slice(b, 6, 5);
	TH_NOT_NULL(s);
	TH_TRUE(s->data == b->data + 6);
	TH_EQ_INT(s->len, 5);
	rill_buf_release(b); /* the slice keeps the parent alive */
	TH_EQ_MEM(s->data, "world", 5);
	struct rill_buf *ss = rill_buf_slice(s, 1, 3);
	TH_EQ_MEM(ss->data, "orl", 3);
	rill_buf_release(s);
	rill_buf_release(ss);
}

TEST(buffer_slice_out_of_range_is_null)
{
	struct rill_buf *b = rill_buf_new(10);
	TH_TRUE(rill_buf_slice(b, 11, 0) == NULL);
	TH_TRUE(rill_buf_slice(b, 5, 6) == NULL);
	TH_TRUE(rill_buf_slice(b, 0, SIZE_MAX) == NULL);
	struct rill_buf *e = rill_buf_slice(b, 10, 0);
	TH_NOT_NULL(e);
	TH_EQ_INT(e->len, 0);
	rill_buf_release(e);
	rill_buf_release(b);
	rill_buf_release(NULL);
}

static int wrap_freed;
static void wrap_free(void *ctx, void *mem)
{
	(void)mem;
	wrap_freed = *(int *)ctx;
}

TEST(buffer_wrap_calls_owner_free)
{
	static char mem[16];
	int tag = 42;
	struct rill_buf *b = rill_buf_wrap(mem, sizeof mem, wrap_free, &tag);
	rill_buf_ref(b);
	rill_buf_release(b);
	TH_EQ_INT(wrap_freed, 0);
	rill_buf_release(b);
	TH_EQ_INT(wrap_freed, 42);
}

/* ---- The ops table's version (rill_flow_new, rill_layer_new) and a
 * flow's own kind name (rill_flow_set_kind). ---- */

static void stub_read(struct rill_flow *f)
{
	rill_flow_read_done(f, RILL_EOF, NULL);
}

static void stub_write(struct rill_flow *f, struct rill_buf *const *bufs,
                       size_t n)
{
	rill_flow_write_done(f, 0);
}

static void stub_shutdown_write(struct rill_flow *f)
{
	rill_flow_shutdown_done(f, 0);
}

static void stub_close(struct rill_flow *f)
{
	rill_flow_destroyed(f);
}

#define STUB_OPS(ver, kind)                                                 \
	{                                                                   \
		.version = (ver), .name = (kind), .read = stub_read,        \
		.write = stub_write, .shutdown_write = stub_shutdown_write, \
		.close = stub_close,                                        \
	}

TEST(flow_ops_version_unknown_is_refused)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	const struct rill_flow_ops unset = STUB_OPS(0, "unset");
	const struct rill_flow_ops newer =
	    STUB_OPS(RILL_FLOW_OPS_VERSION + 1, "newer");
	const struct rill_flow_ops current =
	    STUB_OPS(RILL_FLOW_OPS_VERSION, "current");

	TH_TRUE(rill_flow_new(&loop, &unset, sizeof(struct rill_flow)) == NULL);
	TH_CONTAINS(rill_last_errmsg(), "\"unset\" has version 0");
	TH_CONTAINS(rill_last_errmsg(), ".version = RILL_FLOW_OPS_VERSION");

	TH_TRUE(rill_flow_new(&loop, &newer, sizeof(struct rill_flow)) == NULL);
	char want[64];
	snprintf(want, sizeof want, "\"newer\" has version %d",
	         RILL_FLOW_OPS_VERSION + 1);
	TH_CONTAINS(rill_last_errmsg(), want);

	/* A layer with a refused table consumes its inner flow all the same
	 * (the inner flow's close runs, and the loop ends empty). */
	struct rill_flow *inner =
	    rill_flow_new(&loop, &current, sizeof(struct rill_flow));
	TH_NOT_NULL(inner);
	TH_TRUE(rill_layer_new(inner, &newer, 0) == NULL);
	TH_CONTAINS(rill_last_errmsg(), "\"newer\" has version");

	TH_OK(uv_run(&loop, UV_RUN_DEFAULT));
	TH_OK(uv_loop_close(&loop));
}

TEST(flow_kind_set_by_the_flow)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	const struct rill_flow_ops ops =
	    STUB_OPS(RILL_FLOW_OPS_VERSION, "stub");
	struct rill_flow *a = rill_flow_new(&loop, &ops, sizeof *a);
	struct rill_flow *b = rill_flow_new(&loop, &ops, sizeof *b);
	TH_NOT_NULL(a);
	TH_NOT_NULL(b);
	rill_flow_set_kind(b, "stub-renamed");
	TH_EQ_STR(rill_flow_kind(a), "stub");
	TH_EQ_STR(rill_flow_kind(b), "stub-renamed");
	rill_close(a);
	rill_close(b);
	TH_OK(uv_run(&loop, UV_RUN_DEFAULT));
	TH_OK(uv_loop_close(&loop));
}
