/*
 * The README's example: two connected in-memory flows on one libuv loop.
 * One end writes a greeting and shuts its write side down; the other reads
 * until end-of-file. `make check` builds and runs this program and checks
 * its output (tests/meson.build, test 'readme_example').
 */
#include <stdio.h>
#include <string.h>

#include <rill.h>

static void on_read(struct rill_flow *f, int status, struct rill_buf *buf,
                    void *ud)
{
	(void)ud;
	if (status == RILL_EOF) {
		printf("end of stream\n");
		rill_close(f); /* safe inside the flow's own callback */
		return;
	}
	if (status < 0) {
		fprintf(stderr, "read: %s\n", rill_strerror(status));
		rill_close(f);
		return;
	}
	printf("read %zu bytes: %.*s\n", buf->len, (int)buf->len,
	       (const char *)buf->data);
	rill_buf_release(buf);       /* the reader owns what it read */
	rill_read(f, on_read, NULL); /* pull the next buffer */
}

static void on_written(struct rill_flow *f, int status, void *ud)
{
	(void)ud;
	printf("write done: %s\n", rill_strerror(status));
	/* Flush, then tell the peer "no more data"; close when that is done
	 * (NULL callback: nothing more to do here). */
	rill_shutdown(f, RILL_SHUT_WR, NULL, NULL);
}

int main(void)
{
	uv_loop_t *loop = uv_default_loop();
	struct rill_flow *a, *b;
	int err = rill_pair(loop, 0, &a, &b);
	if (err < 0) {
		fprintf(stderr, "rill_pair: %s\n", rill_strerror(err));
		return 1;
	}
	const char *msg = "hello, flow";
	err = rill_write_copy(a, msg, strlen(msg), on_written, NULL);
	if (err == 0)
		err = rill_read(b, on_read, NULL);
	if (err < 0) {
		fprintf(stderr, "%s\n", rill_strerror(err));
		return 1;
	}
	uv_run(loop, UV_RUN_DEFAULT); /* until both sides are done */
	rill_close(a);
	uv_run(loop, UV_RUN_DEFAULT); /* let the close finish */
	return uv_loop_close(loop) == 0 ? 0 : 1;
}
