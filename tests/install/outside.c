/*
 * An "outside" program: built by tests/test_install.sh against an installed
 * rill with nothing but `pkg-config --cflags --libs rill`. It moves a few
 * bytes through an in-memory pair and checks them.
 */
#include <stdio.h>
#include <string.h>

#include <rill.h>

int main(void)
{
	uv_loop_t loop;
	struct rill_flow *a, *b;
	struct rill_buf *got = NULL;

	uv_loop_init(&loop);
	if (rill_pair(&loop, 0, &a, &b) != 0)
		return 1;
	int err = rill_write_sync(a, "installed", 9);
	if (err == 0)
		err = rill_shutdown_sync(a, RILL_SHUT_WR);
	if (err == 0)
		err = rill_read_all_sync(b, 1024, &got);
	int ok =
	    err == 0 && got->len == 9 && memcmp(got->data, "installed", 9) == 0;
	printf("rill %s: %s\n", rill_version(), ok ? "ok" : rill_strerror(err));
	rill_buf_release(got);
	rill_close(a);
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return ok ? 0 : 1;
}
