/* Unit tests of the core: errors, buffers, allocator, API misuse. */
#include <stdlib.h>

#include "harness.h"
#include "rill.h"

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
