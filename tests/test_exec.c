/*
 * The exec: transport (a child's standard input and output as a flow) and
 * the fd: transport (inherited sockets, socket activation), against the
 * real programs and the kernel: sh, cat, wc, printf, sleep, /proc.
 */
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"

static uv_loop_t *loop(void)
{
	return uv_default_loop();
}

static struct rill_flow *open_ok(const char *uri)
{
	struct rill_flow *f = NULL;
	int err = rill_connect_sync(loop(), uri, NULL, &f);
	if (err != 0)
		TH_FAIL("connect %s: %s (%s)", uri, th_errname(err),
		        rill_last_errmsg());
	TH_TRUE(f != NULL);
	return f;
}

/* Reads until EOF into buf (NUL-terminated); returns the final status. */
static int read_text(struct rill_flow *f, char *buf, size_t cap)
{
	struct rill_buf *b = NULL;
	int err = rill_read_all_sync(f, cap - 1, &b);
	buf[0] = '\0';
	if (b != NULL) {
		memcpy(buf, b->data, b->len);
		buf[b->len] = '\0';
		rill_buf_release(b);
	}
	return err;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the loop until it has nothing left (every child reaped). */
static void drain(void)
{
	uv_run(loop(), UV_RUN_DEFAULT);
}

/* Waits (running the loop) until the child of f exited. */
static int wait_exit(struct rill_flow *f, int *value)
{
	double t0 = now_s();
	int st;
	while ((st = rill_exec_status(f, value, NULL)) == RILL_EXEC_RUNNING) {
		if (now_s() - t0 > 10)
			TH_FAIL("the child did not exit within 10 s");
		uv_run(loop(), UV_RUN_NOWAIT);
		usleep(1000);
	}
	return st;
}

static void expect_no_children(void)
{
	int status;
	errno = 0;
	TH_EQ_INT(waitpid(-1, &status, WNOHANG), -1);
	TH_EQ_INT(errno, ECHILD);
}

/* ---------------------------------------------------------------------- */
/* exec: the command line */

TEST(exec_words_and_escapes)
{
	/* Words split at spaces; %20 is a space inside a word, %25 a '%'. */
	struct rill_flow *f = open_ok("exec:/usr/bin/printf %25s| a%20b  c");
	char out[64];
	TH_EQ_ERR(read_text(f, out, sizeof out), 0);
	TH_EQ_STR(out, "a b|c|");
	TH_EQ_STR(rill_flow_kind(f), "exec");
	rill_close(f);
	drain();
}

TEST(exec_program_from_path)
{
	struct rill_flow *f = open_ok("exec:cat");
	TH_OK(rill_write_sync(f, "via PATH", 8));
	TH_OK(rill_shutdown_sync(f, RILL_SHUT_WR));
	char out[64];
	TH_EQ_ERR(read_text(f, out, sizeof out), 0);
	TH_EQ_STR(out, "via PATH");
	rill_close(f);
	drain();
}

TEST(exec_uri_errors)
{
	TH_EQ_ERR(rill_uri_check("exec:"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "missing program");
	TH_EQ_ERR(rill_uri_check("exec:   "), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "missing program");
	TH_EQ_ERR(rill_uri_check("exec:/bin/cat a%zz"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "bad escape in word \"a%zz\"");
	TH_EQ_ERR(rill_uri_check("exec:/bin/cat a%00b"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "bad escape");
	TH_EQ_ERR(rill_uri_check("exec:/bin/cat?kill_after=x"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "kill_after");
	TH_EQ_ERR(rill_uri_check("exec:/bin/cat?bogus=1"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "unknown parameter");
	TH_OK(rill_uri_check("shut+exec:/bin/cat?kill_after=10"));
	struct rill_listener *l = NULL;
	TH_EQ_ERR(rill_listen(loop(), "exec:/bin/cat", NULL,
	                      (rill_accept_cb)(void (*)(void))abort, NULL, &l),
	          RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "inetd");
	TH_TRUE(l == NULL);
}

struct connect_result {
	bool done;
	int status;
	char msg[400];
};

static void on_connect(struct rill_flow *f, int status, const char *errmsg,
                       void *ud)
{
	struct connect_result *r = ud;
	r->done = true;
	r->status = status;
	snprintf(r->msg, sizeof r->msg, "%s", errmsg != NULL ? errmsg : "");
	rill_close(f);
}

static void connect_expect_fail(const char *uri, int want, const char *name)
{
	struct connect_result r = {0};
	/* A program that cannot run is a connect error through the
	 * callback, never inside the call. */
	TH_OK(rill_connect(loop(), uri, NULL, on_connect, &r));
	TH_TRUE(!r.done);
	while (!r.done)
		uv_run(loop(), UV_RUN_ONCE);
	TH_EQ_ERR(r.status, want);
	TH_CONTAINS(r.msg, name);
	TH_CONTAINS(r.msg, "cannot run");
}

TEST(exec_cannot_run)
{
	connect_expect_fail("exec:/nonexistent/rill-prog --x", -ENOENT,
	                    "\"/nonexistent/rill-prog\"");
	connect_expect_fail("exec:rill-no-such-program-anywhere", -ENOENT,
	                    "\"rill-no-such-program-anywhere\"");
	char dir[256];
	th_tmp_template(dir, sizeof dir, "rill-exec");
	TH_TRUE(mkdtemp(dir) != NULL);
	char path[300], uri[320];
	snprintf(path, sizeof path, "%s/noexec", dir);
	FILE *fp = fopen(path, "w");
	TH_TRUE(fp != NULL);
	fputs("#!/bin/sh\necho hi\n", fp);
	fclose(fp);
	chmod(path, 0644);
	snprintf(uri, sizeof uri, "exec:%s", path);
	/* root may execute anything with an x bit, but not this. */
	connect_expect_fail(uri, -EACCES, path);
	unlink(path);
	rmdir(dir);
	/* The blocking connect says the same. */
	struct rill_flow *f = NULL;
	TH_EQ_ERR(rill_connect_sync(loop(), "exec:/nonexistent/x", NULL, &f),
	          -ENOENT);
	TH_CONTAINS(rill_last_errmsg(), "cannot run \"/nonexistent/x\"");
	drain();
	expect_no_children();
}

/* ---------------------------------------------------------------------- */
/* exec: the stream and the child's end */

TEST(exec_shutdown_closes_stdin)
{
	/* wc prints the count only at the end of its input. */
	struct rill_flow *f = open_ok("exec:/usr/bin/wc -c");
	char *data = malloc(300000);
	memset(data, 'x', 300000);
	TH_OK(rill_write_sync(f, data, 300000));
	free(data);
	TH_OK(rill_shutdown_sync(f, RILL_SHUT_WR));
	char out[64];
	TH_EQ_ERR(read_text(f, out, sizeof out), 0);
	TH_EQ_STR(out, "300000\n");
	int v = -1;
	TH_EQ_INT(rill_exec_status(f, &v, NULL), RILL_EXEC_EXITED);
	TH_EQ_INT(v, 0);
	TH_EQ_ERR(rill_write_copy(f, "x", 1, NULL, NULL), RILL_ECLOSED);
	rill_close(f);
	drain();
	expect_no_children();
}

TEST(exec_exit_status)
{
	struct rill_flow *f = open_ok("exec:/bin/sh -c echo%20bye;exit%203");
	char out[64];
	/* The EOF waits for the exit: the status is known with it. */
	TH_EQ_ERR(read_text(f, out, sizeof out), 0);
	TH_EQ_STR(out, "bye\n");
	int v = -1, pid = 0;
	TH_EQ_INT(rill_exec_status(f, &v, &pid), RILL_EXEC_EXITED);
	TH_EQ_INT(v, 3);
	TH_CMP_INT(pid, >, 1);
	TH_CONTAINS(rill_flow_errmsg(f), "exited with status 3");
	TH_CONTAINS(rill_flow_errmsg(f), "/bin/sh -c");
	/* Writes to a child that left fail as to any closed peer. */
	TH_EQ_ERR(rill_write_sync(f, "late", 4), RILL_ECLOSED);
	rill_close(f);
	drain();
	expect_no_children();
}

TEST(exec_killed_by_signal)
{
	struct rill_flow *f = open_ok("exec:/bin/sh -c kill%20-9%20$$");
	char out[16];
	TH_EQ_ERR(read_text(f, out, sizeof out), 0);
	int v = -1;
	TH_EQ_INT(rill_exec_status(f, &v, NULL), RILL_EXEC_SIGNALED);
	TH_EQ_INT(v, SIGKILL);
	TH_CONTAINS(rill_flow_errmsg(f), "killed by signal 9");
	rill_close(f);
	drain();
	expect_no_children();
}

TEST(exec_eof_is_stdout_closed)
{
	/* The child closes its standard output and waits on its input: the
	 * flow's EOF comes while the child still runs. */
	struct rill_flow *f =
	    open_ok("exec:/bin/sh -c exec%20>&-;read%20x;exit%205");
	double t0 = now_s();
	char out[16];
	TH_EQ_ERR(read_text(f, out, sizeof out), 0);
	TH_EQ_STR(out, "");
	TH_CMP_INT((now_s() - t0) * 1000, <, 5000);
	int v = -1;
	TH_EQ_INT(rill_exec_status(f, &v, NULL), RILL_EXEC_RUNNING);
	TH_OK(rill_write_sync(f, "go\n", 3));
	TH_EQ_INT(wait_exit(f, &v), RILL_EXEC_EXITED);
	TH_EQ_INT(v, 5);
	rill_close(f);
	drain();
	expect_no_children();
}

TEST(exec_stderr_passes_through)
{
	int p[2];
	TH_OK(pipe(p));
	int saved = dup(2);
	TH_TRUE(saved >= 0);
	dup2(p[1], 2);
	close(p[1]);
	struct rill_flow *f = open_ok("exec:/bin/sh -c echo%20oops%20>&2");
	dup2(saved, 2);
	close(saved);
	char out[16], err[64] = "";
	TH_EQ_ERR(read_text(f, out, sizeof out), 0);
	TH_EQ_STR(out, "");
	rill_close(f);
	drain();
	ssize_t n = read(p[0], err, sizeof err - 1);
	close(p[0]);
	TH_EQ_INT(n, 5);
	err[n] = '\0';
	TH_EQ_STR(err, "oops\n");
}

static bool pid_gone(int pid)
{
	return kill(pid, 0) != 0 && errno == ESRCH;
}

TEST(exec_close_terminates_child)
{
	/* sleep ignores its closed input: close sends SIGTERM after
	 * kill_after ms, and the child is reaped. */
	struct rill_flow *f = open_ok("exec:/bin/sleep 30?kill_after=50");
	int pid = 0;
	TH_EQ_INT(rill_exec_status(f, NULL, &pid), RILL_EXEC_RUNNING);
	TH_TRUE(!pid_gone(pid));
	double t0 = now_s();
	rill_close(f);
	drain();
	TH_CMP_INT((now_s() - t0) * 1000, <, 5000);
	TH_TRUE(pid_gone(pid));
	expect_no_children();
	/* A child that ignores SIGTERM gets SIGKILL as long again later. */
	if (access("/usr/bin/perl", X_OK) != 0)
		TH_SKIP("no /usr/bin/perl to ignore SIGTERM with");
	f = open_ok("exec:/usr/bin/perl -e $SIG{TERM}=%22IGNORE%22;"
	            "print%20%22ready%22;close(STDOUT);sleep%2030"
	            "?kill_after=50");
	TH_EQ_INT(rill_exec_status(f, NULL, &pid), RILL_EXEC_RUNNING);
	char ready[16];
	TH_EQ_ERR(read_text(f, ready, sizeof ready), 0); /* trap is set */
	TH_EQ_STR(ready, "ready");
	t0 = now_s();
	rill_close(f);
	drain();
	TH_CMP_INT((now_s() - t0) * 1000, >=, 90);
	TH_TRUE(pid_gone(pid));
	expect_no_children();
}

TEST(exec_many_children_reaped)
{
	struct rill_flow *f[24];
	for (int i = 0; i < 24; i++)
		f[i] = open_ok(i % 2 ? "exec:/bin/true" : "exec:/bin/false");
	for (int i = 0; i < 24; i++) {
		char out[8];
		TH_EQ_ERR(read_text(f[i], out, sizeof out), 0);
		int v = -1;
		TH_EQ_INT(rill_exec_status(f[i], &v, NULL), RILL_EXEC_EXITED);
		TH_EQ_INT(v, i % 2 ? 0 : 1);
		rill_close(f[i]);
	}
	drain();
	expect_no_children();
}

/* The fds of this process that a child would inherit. */
static bool fd_inheritable(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	return fl >= 0 && !(fl & FD_CLOEXEC);
}

TEST(exec_child_gets_only_stdio)
{
	bool before[256] = {false};
	for (int fd = 3; fd < 256; fd++)
		before[fd] = fd_inheritable(fd);
	/* Open a few of rill's own descriptors first. */
	struct rill_listener *l = NULL;
	TH_OK(rill_listen(loop(), "tcp://127.0.0.1:0", NULL,
	                  (rill_accept_cb)(void (*)(void))abort, NULL, &l));
	struct rill_flow *a, *b;
	TH_OK(rill_pair(loop(), 0, &a, &b));
	struct rill_flow *other = open_ok("exec:/bin/cat");
	/* Everything rill opened is close-on-exec. */
	for (int fd = 3; fd < 256; fd++)
		if (!before[fd] && fd_inheritable(fd))
			TH_FAIL("fd %d is inheritable", fd);
	/* And the child's descriptors are its three plus whatever this
	 * process itself inherited without close-on-exec. */
	/* ls, a child of sh, lists the shell's descriptors (sh is not
	 * reading a directory then, and does not exec ls: more follows). */
	struct rill_flow *f =
	    open_ok("exec:/bin/sh -c ls%20/proc/$$/fd;exit%200");
	char out[512];
	TH_EQ_ERR(read_text(f, out, sizeof out), 0);
	int seen = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		int fd = atoi(line);
		if (fd > 2 && (fd >= 256 || !before[fd]))
			TH_FAIL("the child inherited fd %d", fd);
		seen += fd <= 2;
	}
	TH_EQ_INT(seen, 3);
	rill_close(f);
	rill_close(other);
	rill_close(a);
	rill_close(b);
	rill_listener_close(l);
	drain();
}

TEST(exec_child_signals_default)
{
	/* This test process ignores SIGPIPE (as rill cat and relay do); the
	 * child must not inherit that, or it could not die of it. */
	TH_TRUE(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
	struct rill_flow *f =
	    open_ok("exec:/bin/grep ^SigIgn /proc/self/status");
	char out[128];
	TH_EQ_ERR(read_text(f, out, sizeof out), 0);
	unsigned long long mask = strtoull(out + strlen("SigIgn:"), NULL, 16);
	TH_EQ_U64(mask & (1ull << (SIGPIPE - 1)), 0);
	rill_close(f);
	drain();
}

TEST(exec_address_and_status_api)
{
	struct rill_flow *f = open_ok("exec:/bin/cat");
	int pid = 0;
	TH_EQ_INT(rill_exec_status(f, NULL, &pid), RILL_EXEC_RUNNING);
	char want[64], got[64];
	snprintf(want, sizeof want, "exec:/bin/cat (pid %d)", pid);
	TH_OK(rill_flow_address(f, RILL_ADDR_PEER, got, sizeof got));
	TH_EQ_STR(got, want);
	TH_EQ_ERR(rill_flow_address(f, RILL_ADDR_LOCAL, got, sizeof got),
	          -ENOTSUP);
	TH_EQ_ERR(rill_flow_address(f, RILL_ADDR_PEER, got, 8), -ENOSPC);
	struct rill_flow *a, *b;
	TH_OK(rill_pair(loop(), 0, &a, &b));
	TH_EQ_ERR(rill_exec_status(a, NULL, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_exec_status(NULL, NULL, NULL), RILL_EINVAL);
	rill_close(a);
	rill_close(b);
	rill_close(f);
	drain();
	expect_no_children();
}

/* ---------------------------------------------------------------------- */
/* fd: inherited sockets */

TEST(fd_connected_socket)
{
	int sv[2];
	TH_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	char uri[32];
	snprintf(uri, sizeof uri, "fd:%d", sv[0]);
	struct rill_flow *f = open_ok(uri);
	TH_EQ_STR(rill_flow_kind(f), "unix");
	TH_TRUE(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	TH_OK(rill_write_sync(f, "ping", 4));
	char buf[8];
	TH_EQ_INT(read(sv[1], buf, sizeof buf), 4);
	TH_EQ_MEM(buf, "ping", 4);
	TH_EQ_INT(write(sv[1], "pong", 4), 4);
	shutdown(sv[1], SHUT_WR);
	char out[16];
	TH_EQ_ERR(read_text(f, out, sizeof out), 0);
	TH_EQ_STR(out, "pong");
	/* One descriptor, one use: its number may be reused later. */
	struct connect_result r = {0};
	TH_OK(rill_connect(loop(), uri, NULL, on_connect, &r));
	while (!r.done)
		uv_run(loop(), UV_RUN_ONCE);
	TH_EQ_ERR(r.status, -EBUSY);
	TH_CONTAINS(r.msg, "already used");
	rill_close(f);
	close(sv[1]);
	drain();
}

struct accept_state {
	struct rill_flow *f;
	int n;
};

static void on_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct accept_state *a = ud;
	if (status == 0) {
		a->f = f;
		a->n++;
	}
}

static int tcp_listening_socket(int *port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    listen(s, 8) != 0 ||
	    getsockname(s, (struct sockaddr *)&sa, &len) != 0)
		TH_FAIL("listening socket: %s", strerror(errno));
	*port = ntohs(sa.sin_port);
	return s;
}

static void listen_and_serve_one(const char *uri, int port)
{
	struct accept_state a = {0};
	struct rill_listener *l = NULL;
	TH_OK(rill_listen(loop(), uri, NULL, on_accept, &a, &l));
	char luri[64], want[64];
	TH_OK(rill_listener_uri(l, luri, sizeof luri));
	snprintf(want, sizeof want, "tcp://127.0.0.1:%d", port);
	TH_EQ_STR(luri, want);
	struct rill_flow *c = open_ok(luri);
	while (a.f == NULL)
		uv_run(loop(), UV_RUN_ONCE);
	TH_EQ_STR(rill_flow_kind(a.f), "tcp");
	TH_OK(rill_write_sync(c, "hello", 5));
	TH_OK(rill_shutdown_sync(c, RILL_SHUT_WR));
	char out[16];
	TH_EQ_ERR(read_text(a.f, out, sizeof out), 0);
	TH_EQ_STR(out, "hello");
	rill_close(c);
	rill_close(a.f);
	rill_listener_close(l);
	drain();
}

TEST(fd_listening_socket)
{
	int port;
	int s = tcp_listening_socket(&port);
	TH_TRUE(fd_inheritable(s));
	char uri[32];
	snprintf(uri, sizeof uri, "fd:%d", s);
	listen_and_serve_one(uri, port);
	/* Closed with the listener. */
	TH_TRUE(fcntl(s, F_GETFD) < 0);
}

TEST(fd_errors)
{
	TH_EQ_ERR(rill_uri_check("fd:"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "missing descriptor");
	TH_EQ_ERR(rill_uri_check("fd:web"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "no socket activation");
	TH_EQ_ERR(rill_uri_check("fd:a b"), RILL_EURI);
	TH_EQ_ERR(rill_uri_check("fd:3?x=1"), RILL_EURI);
	struct connect_result r = {0};
	TH_OK(rill_connect(loop(), "fd:200", NULL, on_connect, &r));
	while (!r.done)
		uv_run(loop(), UV_RUN_ONCE);
	TH_EQ_ERR(r.status, -EBADF);
	TH_CONTAINS(r.msg, "fd:200: no such open file descriptor");
	int p[2];
	TH_OK(pipe(p));
	char uri[32];
	snprintf(uri, sizeof uri, "fd:%d", p[0]);
	struct rill_listener *l = NULL;
	TH_EQ_ERR(rill_listen(loop(), uri, NULL, on_accept, NULL, &l),
	          -ENOTSOCK);
	TH_CONTAINS(rill_last_errmsg(), "not a socket");
	close(p[0]);
	close(p[1]);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	snprintf(uri, sizeof uri, "fd:%d", u);
	TH_EQ_ERR(rill_listen(loop(), uri, NULL, on_accept, NULL, &l),
	          -ESOCKTNOSUPPORT);
	TH_CONTAINS(rill_last_errmsg(), "not a stream socket");
	close(u);
	/* Listening wants a listening socket, connecting a connected one. */
	int sv[2];
	TH_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	snprintf(uri, sizeof uri, "fd:%d", sv[0]);
	TH_EQ_ERR(rill_listen(loop(), uri, NULL, on_accept, NULL, &l),
	          RILL_EINVAL);
	TH_CONTAINS(rill_last_errmsg(), "not a listening socket");
	int port;
	int s = tcp_listening_socket(&port);
	snprintf(uri, sizeof uri, "fd:%d", s);
	memset(&r, 0, sizeof r);
	TH_OK(rill_connect(loop(), uri, NULL, on_connect, &r));
	while (!r.done)
		uv_run(loop(), UV_RUN_ONCE);
	TH_EQ_ERR(r.status, RILL_EINVAL);
	TH_CONTAINS(r.msg, "is a listening socket");
	/* Failed attempts do not use the descriptor up. */
	listen_and_serve_one(uri, port);
	close(sv[0]);
	close(sv[1]);
	drain();
}

TEST(fd_socket_activation)
{
	/* sd_listen_fds(3): LISTEN_PID is us, LISTEN_FDS from fd 3 on. */
	if (fcntl(3, F_GETFD) >= 0)
		TH_SKIP("fd 3 is taken in this test process");
	int port;
	int s = tcp_listening_socket(&port);
	if (s != 3) {
		TH_EQ_INT(dup2(s, 3), 3);
		close(s);
	}
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_FDNAMES", "web", 1);
	TH_TRUE(fd_inheritable(3));
	TH_EQ_ERR(rill_uri_check("fd:other"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "named \"other\"");
	/* Reading the environment made the passed socket close-on-exec. */
	TH_TRUE(!fd_inheritable(3));
	listen_and_serve_one("fd:web", port);
}
