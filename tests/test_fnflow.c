/*
 * Flows from functions and strings, with mirage-flow's F semantics: no
 * input: reads report EOF; no output: writes fail closed; a full output:
 * a partial write, then closed.
 */
#include <stdlib.h>

#include "harness.h"
#include "rill.h"

static uv_loop_t loop;

static void open_loop(void)
{
	TH_OK(uv_loop_init(&loop));
}

static void close_flow_and_loop(struct rill_flow *f)
{
	rill_close(f);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&loop));
}

TEST(string_input_then_eof)
{
	open_loop();
	struct rill_flow *f;
	TH_OK(rill_flow_from_strings(&loop, "hello", 5, NULL, 0, NULL, &f));
	struct rill_buf *all;
	TH_OK(rill_read_all_sync(f, 100, &all));
	TH_EQ_INT(all->len, 5);
	TH_EQ_MEM(all->data, "hello", 5);
	rill_buf_release(all);
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(f, &b), RILL_EOF);
	TH_EQ_ERR(rill_read_sync(f, &b), RILL_EOF);
	close_flow_and_loop(f);
}

TEST(no_input_reads_eof)
{
	open_loop();
	struct rill_flow *f;
	TH_OK(rill_flow_from_strings(&loop, NULL, 0, NULL, 0, NULL, &f));
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(f, &b), RILL_EOF);
	TH_TRUE(b == NULL);
	close_flow_and_loop(f);
}

TEST(empty_input_reads_eof)
{
	open_loop();
	struct rill_flow *f;
	TH_OK(rill_flow_from_strings(&loop, "", 0, NULL, 0, NULL, &f));
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(f, &b), RILL_EOF);
	close_flow_and_loop(f);
}

TEST(no_output_writes_fail_closed)
{
	open_loop();
	struct rill_flow *f;
	TH_OK(rill_flow_from_strings(&loop, NULL, 0, NULL, 0, NULL, &f));
	TH_EQ_ERR(rill_write_sync(f, "x", 1), RILL_ECLOSED);
	/* sticky: now refused synchronously */
	TH_EQ_ERR(rill_write_copy(f, "x", 1, NULL, NULL), RILL_ECLOSED);
	close_flow_and_loop(f);
}

TEST(output_collects_writes)
{
	open_loop();
	char out[32];
	size_t len = 99;
	struct rill_flow *f;
	TH_OK(
	    rill_flow_from_strings(&loop, NULL, 0, out, sizeof out, &len, &f));
	TH_EQ_INT(len, 0);
	TH_OK(rill_write_sync(f, "abc", 3));
	struct rill_buf *v[2] = {rill_buf_copy("de", 2), rill_buf_copy("f", 1)};
	TH_OK(rill_writev(f, v, 2, NULL, NULL));
	rill_buf_release(v[0]);
	rill_buf_release(v[1]);
	TH_OK(rill_shutdown_sync(f, RILL_SHUT_WR));
	TH_EQ_INT(len, 6);
	TH_EQ_MEM(out, "abcdef", 6);
	TH_EQ_ERR(rill_write_sync(f, "g", 1), RILL_ECLOSED);
	close_flow_and_loop(f);
}

TEST(full_output_partial_write_then_closed)
{
	open_loop();
	char out[5];
	size_t len;
	struct rill_flow *f;
	TH_OK(
	    rill_flow_from_strings(&loop, NULL, 0, out, sizeof out, &len, &f));
	TH_OK(rill_write_sync(f, "ab", 2));
	TH_EQ_ERR(rill_write_sync(f, "cdefgh", 6), RILL_ECLOSED);
	TH_EQ_INT(len, 5); /* the partial write kept what fit */
	TH_EQ_MEM(out, "abcde", 5);
	TH_EQ_ERR(rill_write_sync(f, "x", 1), RILL_ECLOSED);
	TH_EQ_INT(len, 5);
	close_flow_and_loop(f);
}

TEST(exactly_full_output_then_closed)
{
	open_loop();
	char out[4];
	size_t len;
	struct rill_flow *f;
	TH_OK(
	    rill_flow_from_strings(&loop, NULL, 0, out, sizeof out, &len, &f));
	TH_OK(rill_write_sync(f, "abcd", 4));
	TH_EQ_ERR(rill_write_sync(f, "e", 1), RILL_ECLOSED);
	TH_EQ_INT(len, 4);
	close_flow_and_loop(f);
}

/* Functions */

struct fctx {
	int input_calls;
	long input_ret; /* what input returns after the data */
	const char *data;
	size_t pos, len;
	long output_ret; /* < 0: the error output returns */
	int closes;
	long huge; /* input claims more than cap */
};

static long f_input(void *ctx, void *dst, size_t cap)
{
	struct fctx *c = ctx;
	c->input_calls++;
	if (c->huge)
		return c->huge;
	if (c->pos < c->len) {
		size_t n = c->len - c->pos < cap ? c->len - c->pos : cap;
		if (n > 3)
			n = 3; /* small pieces */
		memcpy(dst, c->data + c->pos, n);
		c->pos += n;
		return (long)n;
	}
	return c->input_ret;
}

static long f_output(void *ctx, const void *src, size_t len)
{
	struct fctx *c = ctx;
	(void)src;
	return c->output_ret < 0 ? c->output_ret : (long)len;
}

static void f_close(void *ctx)
{
	((struct fctx *)ctx)->closes++;
}

static const struct rill_fn_flow_ops fops = {f_input, f_output, f_close};

TEST(functions_input_error_sticks_after_data)
{
	open_loop();
	struct fctx c = {.data = "abcdefg", .len = 7, .input_ret = -EIO};
	struct rill_flow *f;
	TH_OK(rill_flow_from_functions(&loop, &fops, &c, &f));
	size_t got = 0;
	struct rill_buf *b;
	int st;
	while ((st = rill_read_sync(f, &b)) == 0) {
		TH_EQ_MEM(b->data, &"abcdefg"[got], b -> len);
		got += b->len;
		rill_buf_release(b);
	}
	TH_EQ_INT(got, 7); /* data before the error is delivered */
	TH_EQ_ERR(st, -EIO);
	int calls = c.input_calls;
	TH_EQ_ERR(rill_read_sync(f, &b), -EIO);
	TH_EQ_INT(c.input_calls, calls); /* sticky: input not asked again */
	TH_EQ_INT(c.closes, 0);
	close_flow_and_loop(f);
	TH_EQ_INT(c.closes, 1);
}

TEST(functions_output_error_fails_write)
{
	open_loop();
	struct fctx c = {.output_ret = -ENOSPC};
	struct rill_flow *f;
	TH_OK(rill_flow_from_functions(&loop, &fops, &c, &f));
	TH_EQ_ERR(rill_write_sync(f, "abc", 3), -ENOSPC);
	TH_EQ_ERR(rill_write_sync(f, "abc", 3), -ENOSPC);
	close_flow_and_loop(f);
	TH_EQ_INT(c.closes, 1);
}

TEST(functions_misbehaving_input_is_clipped)
{
	open_loop();
	struct fctx c = {.huge = 1L << 40};
	struct rill_flow *f;
	TH_OK(rill_flow_from_functions(&loop, &fops, &c, &f));
	struct rill_buf *b;
	TH_OK(rill_read_sync(f, &b));
	TH_TRUE(b->len > 0 && b->len <= 1024 * 1024);
	rill_buf_release(b);
	close_flow_and_loop(f);
}

TEST(functions_all_null)
{
	open_loop();
	struct rill_fn_flow_ops none = {0};
	struct rill_flow *f;
	TH_OK(rill_flow_from_functions(&loop, &none, NULL, &f));
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(f, &b), RILL_EOF);
	TH_EQ_ERR(rill_write_sync(f, "x", 1), RILL_ECLOSED);
	TH_EQ_STR(rill_flow_kind(f), "functions");
	close_flow_and_loop(f);
}

/* A flow from strings is a pipe in the other direction for copying: a
 * buffer read from one flow is written to another without a copy. */
TEST(forward_buffer_between_flows)
{
	open_loop();
	char out[16];
	size_t len;
	struct rill_flow *src, *dst;
	TH_OK(rill_flow_from_strings(&loop, "forward me", 10, NULL, 0, NULL,
	                             &src));
	TH_OK(rill_flow_from_strings(&loop, NULL, 0, out, sizeof out, &len,
	                             &dst));
	struct rill_buf *b;
	while (rill_read_sync(src, &b) == 0) {
		TH_OK(rill_write(dst, b, NULL, NULL));
		rill_buf_release(b); /* dst holds its own reference */
	}
	TH_OK(rill_shutdown_sync(dst, RILL_SHUT_WR));
	TH_EQ_INT(len, 10);
	TH_EQ_MEM(out, "forward me", 10);
	rill_close(src);
	close_flow_and_loop(dst);
}
