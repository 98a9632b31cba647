/*
 * Fuzz target: rill's HTTP client reading the fuzz input as the server's
 * answer. The first byte picks GET or HEAD and whether to try a second
 * request on the same connection (keep-alive with leftover bytes).
 */
#include <stdlib.h>
#include <string.h>

#include "rill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	int heads;
	int done;
};

static void fz_read(struct rill_flow *ex, int st, struct rill_buf *b, void *ud)
{
	struct fz *z = ud;
	if (st == 0) {
		rill_buf_release(b);
		if (rill_read(ex, fz_read, z) == 0)
			return;
	}
	z->done = 1;
}

static void fz_head(struct rill_flow *ex, int st, void *ud)
{
	struct fz *z = ud;
	z->heads++;
	if (st != 0) {
		z->done = 1;
		return;
	}
	(void)rill_http_status(ex);
	(void)rill_http_header(ex, "Content-Type");
	size_t n = rill_http_header_count(ex);
	for (size_t i = 0; i < n; i++) {
		const char *k, *v;
		rill_http_header_at(ex, i, &k, &v);
	}
	if (rill_read(ex, fz_read, z) != 0)
		z->done = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uv_loop_t loop;
	static int init;
	static char out[4096];
	if (!init) {
		uv_loop_init(&loop);
		init = 1;
	}
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	size_t out_len = 0;
	struct rill_flow *f;
	if (rill_flow_from_strings(&loop, data + 1, size - 1, out, sizeof out,
	                           &out_len, &f) != 0)
		return 0;
	struct rill_http_client_opts o = {.max_header_bytes = 2048,
	                                  .max_headers = 32};
	struct rill_http_client *c;
	if (rill_http_client_new(f, &o, &c) != 0) {
		uv_run(&loop, UV_RUN_DEFAULT);
		return 0;
	}
	for (int round = 0; round < ((mode & 2) ? 2 : 1); round++) {
		struct fz z = {0};
		struct rill_flow *ex;
		struct rill_http_header h = {"Host", "fuzz"};
		if (rill_http_request(c, (mode & 1) ? "HEAD" : "GET", "/", &h,
		                      1, 0, fz_head, &z, &ex) != 0)
			break;
		while (!z.done && uv_run(&loop, UV_RUN_ONCE) != 0)
			;
		rill_close(ex);
		uv_run(&loop, UV_RUN_NOWAIT);
		if (!rill_http_client_reusable(c))
			break;
	}
	rill_http_client_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	return 0;
}
