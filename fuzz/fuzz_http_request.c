/*
 * Fuzz target: rill's HTTP server over a flow whose peer sends the fuzz
 * input and then half-closes. The handler streams the request body back
 * as a chunked response ("/e..."), closes without answering ("/c..."), or
 * answers at once, so heads, bodies, pipelining, limits and the error
 * responses are all reached. Runs the loop to completion each time.
 */
#include <stdlib.h>
#include <string.h>

#include "rill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_read(struct rill_flow *ex, int st, struct rill_buf *b, void *ud);

static void fz_wrote(struct rill_flow *ex, int st, void *ud)
{
	if (st != 0 || rill_read(ex, fz_read, ud) != 0)
		rill_close(ex);
}

static void fz_shut(struct rill_flow *ex, int st, void *ud)
{
	(void)st;
	(void)ud;
	rill_close(ex);
}

static void fz_read(struct rill_flow *ex, int st, struct rill_buf *b, void *ud)
{
	if (st == 0) {
		int err = rill_write(ex, b, fz_wrote, ud);
		rill_buf_release(b);
		if (err != 0)
			rill_close(ex);
		return;
	}
	if (st != RILL_EOF ||
	    rill_shutdown(ex, RILL_SHUT_WR, fz_shut, NULL) != 0)
		rill_close(ex);
}

static void fz_handler(struct rill_flow *ex, void *ud)
{
	(void)ud;
	const char *t = rill_http_target(ex);
	(void)rill_http_header(ex, "Host");
	(void)rill_http_method(ex);
	if (strncmp(t, "/e", 2) == 0) {
		struct rill_http_header h = {"X-Echo", "1"};
		if (rill_http_respond(ex, 200, &h, 1, -1) != 0 ||
		    rill_read(ex, fz_read, NULL) != 0)
			rill_close(ex);
		return;
	}
	if (strncmp(t, "/c", 2) == 0) {
		rill_close(ex);
		return;
	}
	struct rill_buf *b = rill_buf_copy("ok\n", 3);
	rill_http_respond_buf(ex, 200, NULL, 0, b);
	rill_buf_release(b);
	rill_close(ex);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uv_loop_t loop;
	static int init;
	static char out[256 * 1024];
	if (!init) {
		uv_loop_init(&loop);
		init = 1;
	}
	size_t out_len = 0;
	struct rill_flow *f;
	if (rill_flow_from_strings(&loop, data, size, out, sizeof out, &out_len,
	                           &f) != 0)
		return 0;
	struct rill_http_server_opts o = {
	    .max_header_bytes = 2048,
	    .max_headers = 32,
	    .max_body = 65536,
	    .header_timeout_ms = 1000,
	    .idle_timeout_ms = 1000,
	    .body_timeout_ms = 1000,
	};
	struct rill_http_server *s;
	if (rill_http_server_new(&loop, &o, fz_handler, NULL, &s) != 0) {
		rill_close(f);
		uv_run(&loop, UV_RUN_DEFAULT);
		return 0;
	}
	rill_http_server_serve(s, f);
	uv_run(&loop, UV_RUN_DEFAULT);
	rill_http_server_free(s);
	uv_run(&loop, UV_RUN_DEFAULT);
	return 0;
}
