/* The shut tests' fixture (shut_fixture.h). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "rill/impl.h"
#include "shut_fixture.h"

enum fx_kind fx_kind;

/* A layer that passes everything through and reads no layouts. */
static const struct rill_flow_ops fx_plain_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "plain",
    .read = rill_layer_read,
    .write = rill_layer_write,
    .shutdown_write = rill_layer_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = rill_layer_close,
};

static void fx_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	TH_OK(status);
	*(struct rill_flow **)ud = f;
}

/* A connected pair of plain Unix socket flows. */
static void unix_flows(uv_loop_t *loop, struct rill_flow **a,
                       struct rill_flow **b)
{
	char uri[64];
	snprintf(uri, sizeof uri, "unix:@rill-test-shut-%d", (int)getpid());
	struct rill_listener *l;
	*b = NULL;
	TH_OK(rill_listen(loop, uri, NULL, fx_accept, b, &l));
	TH_OK(rill_connect_sync(loop, uri, NULL, a));
	while (*b == NULL)
		uv_run(loop, UV_RUN_ONCE);
	rill_listener_close(l);
}

void fx_init(struct fx *x)
{
	struct rill_flow *inner;
	TH_OK(uv_loop_init(&x->loop));
	if (fx_kind == FX_UNIX)
		unix_flows(&x->loop, &inner, &x->raw);
	else
		TH_OK(rill_pair(&x->loop, 0, &inner, &x->raw));
	if (fx_kind == FX_PLAIN)
		inner = &rill_layer_new(inner, &fx_plain_ops,
		                        sizeof(struct rill_layer))
		             ->base;
	TH_OK(rill_shut_attach(inner, &x->shut));
	TH_EQ_STR(rill_flow_kind(x->shut), "shut");
}

void fx_done(struct fx *x)
{
	rill_close(x->shut);
	rill_close(x->raw);
	uv_run(&x->loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&x->loop));
}

void expect_bytes(struct rill_flow *f, const void *want, size_t n)
{
	uint8_t *got = malloc(n + 1);
	size_t have = 0;
	while (have < n) {
		struct rill_buf *b = NULL;
		int err = rill_read_sync(f, &b);
		if (err != 0)
			TH_FAIL("read after %zu of %zu bytes: %s", have, n,
			        rill_err_name(err));
		if (have + b->len > n)
			TH_FAIL("%zu bytes more than expected",
			        have + b->len - n);
		memcpy(got + have, b->data, b->len);
		have += b->len;
		rill_buf_release(b);
	}
	TH_EQ_MEM(got, want, n);
	free(got);
}

void raw_write(struct fx *x, const void *p, size_t n)
{
	TH_OK(rill_write_sync(x->raw, p, n));
}

void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

int read_to_end(struct rill_flow *f, uint8_t *dst, size_t cap, size_t *got)
{
	*got = 0;
	for (;;) {
		struct rill_buf *b = NULL;
		int err = rill_read_sync(f, &b);
		if (err != 0)
			return err;
		if (*got + b->len > cap)
			TH_FAIL("more than %zu bytes", cap);
		memcpy(dst + *got, b->data, b->len);
		*got += b->len;
		rill_buf_release(b);
	}
}

const uint8_t MSG_SHUT_RD[4] = {0xEF, 0xBE, 0xAD, 0xDE};
const uint8_t MSG_SHUT_WR[4] = {0xAD, 0xDE, 0xEF, 0xBE};
const uint8_t MSG_CLOSE[4] = {0xAD, 0xDE, 0xAD, 0xDE};
