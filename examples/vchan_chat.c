/*
 * examples/vchan_chat.c - two processes exchanging messages over vchan
 * (shared-memory rings in Xen's vchan layout, met through a Unix socket).
 *
 * The parent is the server (rill_vchan_server); a forked child is the
 * client (rill_connect "vchan:PORT", retrying until the server is there).
 * The client sends lines, then shuts down its write side; the server
 * answers each line in upper case, and ends its side at the client's EOF.
 *
 * Usage: vchan_chat DIR  (the rendezvous directory, $RILL_VCHAN_DIR).
 * Exits 0 when the client got every answer and the child exited 0.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rill.h>

static const char lines[] = "hello over vchan\nsecond line\nbye\n";

/* The client: its own process, its own loop, the sync API. */
static int client(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_connect_opts o = {.timeout_ms = 10000,
	                              .retry_until_ms = 10000};
	struct rill_flow *f;
	if (rill_connect_sync(&loop, "vchan:chat", &o, &f) != 0) {
		fprintf(stderr, "client: %s\n", rill_last_errmsg());
		return 1;
	}
	/* Send everything, then EOF: the server answers and ends too. */
	if (rill_write_sync(f, lines, strlen(lines)) != 0 ||
	    rill_shutdown_sync(f, RILL_SHUT_WR) != 0)
		return 1;
	struct rill_buf *all;
	if (rill_read_all_sync(f, 4096, &all) != 0)
		return 1;
	printf("client got:\n%.*s", (int)all->len, (char *)all->data);
	int bad = all->len != strlen(lines);
	for (size_t i = 0; !bad && i < all->len; i++)
		bad = all->data[i] != (uint8_t)toupper((unsigned char)lines[i]);
	rill_buf_release(all);
	rill_close(f);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return bad;
}

/* The server: callbacks on the parent's loop. */
static void on_shut(struct rill_flow *f, int status, void *ud)
{
	(void)status;
	(void)ud;
	rill_close(f);
}

static void on_read(struct rill_flow *f, int status, struct rill_buf *b,
                    void *ud)
{
	(void)ud;
	if (status == RILL_EOF) {
		rill_shutdown(f, RILL_SHUT_WR, on_shut, NULL);
		return;
	}
	if (status != 0) {
		fprintf(stderr, "server: %s\n", rill_flow_errmsg(f));
		rill_close(f);
		return;
	}
	/* Reads hand out fresh buffers (copied out of the shared ring), so
	 * the server may change them and write them back. */
	for (size_t i = 0; i < b->len; i++)
		b->data[i] = (uint8_t)toupper(b->data[i]);
	rill_write(f, b, NULL, NULL);
	rill_buf_release(b);
	rill_read(f, on_read, NULL);
}

static void on_client(struct rill_flow *f, int status, void *ud)
{
	(void)ud;
	if (status != 0)
		fprintf(stderr, "server: vchan failed: %s\n",
		        rill_strerror(status));
	else
		printf("server: client attached\n");
	(void)f;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	setenv("RILL_VCHAN_DIR", argv[1], 1);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int r = client();
		fflush(stdout); /* _exit does not flush */
		_exit(r);
	}

	uv_loop_t *loop = uv_default_loop();
	struct rill_flow *f;
	/* 64 KiB rings each way; the flow is usable at once. */
	if (rill_vchan_server(loop, NULL, "chat", 65536, 65536, on_client, NULL,
	                      &f) != 0) {
		fprintf(stderr, "server: %s\n", rill_last_errmsg());
		kill(pid, SIGTERM);
		return 1;
	}
	rill_read(f, on_read, NULL);
	uv_run(loop, UV_RUN_DEFAULT); /* ends when the flow is closed */
	uv_loop_close(loop);
	int st;
	waitpid(pid, &st, 0);
	int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	puts(ok ? "ok" : "FAILED");
	return !ok;
}
