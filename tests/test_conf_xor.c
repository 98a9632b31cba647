/*
 * The example third-party layer (examples/xor_layer.c, written only
 * against rill/impl.h) through the whole conformance suite, stacked on the
 * pair, plus checks that the bytes beneath really are transformed.
 */
#include "conformance.h"
#include "harness.h"
#include "xor_layer.h"

static int xor_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                    struct rill_flow **b)
{
	(void)arg;
	struct rill_flow *pa, *pb;
	int err = rill_pair(loop, 0, &pa, &pb);
	if (err != 0)
		return err;
	err = xor_layer_attach(pa, 0xC0FFEE, a);
	if (err != 0) {
		rill_close(pb);
		return err;
	}
	err = xor_layer_attach(pb, 0xC0FFEE, b);
	if (err != 0) {
		rill_close(*a);
		return err;
	}
	return 0;
}

static const struct conf_factory xor_factory = {
    .name = "xor+pair",
    .make = xor_make,
    /* The example transforms byte by byte, unoptimized in the sanitizer
     * build: 16 MiB keeps the run short and still spans many windows. */
    .big_bytes = 16u * 1024 * 1024,
};
CONF_REGISTER(xor_factory)

/* The bytes on the pair beneath are scrambled; the top reads them back
 * plain. */
TEST(xor_scrambles_below_and_restores_above)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *pa, *pb, *top;
	TH_OK(rill_pair(&loop, 0, &pa, &pb));
	TH_OK(xor_layer_attach(pa, 7, &top));
	TH_EQ_STR(rill_flow_kind(top), "xor");
	static const char msg[] = "plain text, plainly";
	TH_OK(rill_write_sync(top, msg, sizeof msg));
	struct rill_buf *raw;
	TH_OK(rill_read_sync(pb, &raw));
	TH_EQ_INT(raw->len, sizeof msg);
	TH_TRUE(memcmp(raw->data, msg, sizeof msg) != 0);
	/* Send the scrambled bytes back up through a second XOR layer. */
	struct rill_flow *qa, *qb, *top2;
	TH_OK(rill_pair(&loop, 0, &qa, &qb));
	TH_OK(xor_layer_attach(qb, 7, &top2));
	TH_OK(rill_write_sync(qa, raw->data, raw->len));
	rill_buf_release(raw);
	struct rill_buf *back;
	TH_OK(rill_read_sync(top2, &back));
	TH_EQ_INT(back->len, sizeof msg);
	TH_EQ_MEM(back->data, msg, sizeof msg);
	rill_buf_release(back);
	rill_close(top);
	rill_close(pb);
	rill_close(qa);
	rill_close(top2);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&loop));
}

/* Attach consumes the inner flow, even on failure. */
TEST(xor_attach_bad_arguments)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *pa, *pb, *top = (struct rill_flow *)&loop;
	TH_EQ_ERR(xor_layer_attach(NULL, 1, &top), RILL_EINVAL);
	TH_TRUE(top == NULL);
	TH_OK(rill_pair(&loop, 0, &pa, &pb));
	TH_EQ_ERR(xor_layer_attach(pa, 1, NULL), RILL_EINVAL);
	/* pa was closed by the failed attach: pb sees EOF. */
	struct rill_buf *b;
	TH_EQ_ERR(rill_read_sync(pb, &b), RILL_EOF);
	rill_close(pb);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&loop));
}
