/*
 * Socket transports: tcp4, tcp6, unix (paths and abstract names), stdio;
 * connect errors (refused, deadline, DNS, retry), listen errors (address
 * in use, permission denied, not a directory), addresses, options, and
 * every malformed URI form.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"
#include "transport/socket/socket.h"

/* ---------------------------------------------------------------------- */
/* Helpers */

struct accept_state {
	struct rill_flow *f;
	int status;
	int count;
};

static void on_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct accept_state *a = ud;
	a->count++;
	a->status = status;
	if (a->f != NULL)
		rill_close(f);
	else
		a->f = f;
}

struct connect_state {
	bool done;
	struct rill_flow *f;
	int status;
	char msg[512];
};

static void on_connect(struct rill_flow *f, int status, const char *errmsg,
                       void *ud)
{
	struct connect_state *c = ud;
	c->done = true;
	c->f = f;
	c->status = status;
	snprintf(c->msg, sizeof c->msg, "%s", errmsg != NULL ? errmsg : "");
}

static void run_until(uv_loop_t *loop, bool *flag)
{
	while (!*flag)
		uv_run(loop, UV_RUN_ONCE);
}

static void drain(uv_loop_t *loop)
{
	while (uv_run(loop, UV_RUN_NOWAIT) != 0)
		;
	TH_OK(uv_loop_close(loop));
}

/* Listens on uri, connects to the listener's URI; both flows returned. */
static void open_pair(uv_loop_t *loop, const char *uri,
                      struct rill_listener **l, struct rill_flow **a,
                      struct rill_flow **b, char *luri, size_t luri_len)
{
	static struct accept_state acc;
	memset(&acc, 0, sizeof acc);
	TH_OK(rill_listen(loop, uri, NULL, on_accept, &acc, l));
	TH_OK(rill_listener_uri(*l, luri, luri_len));
	struct connect_state c = {0};
	TH_OK(rill_connect(loop, luri, NULL, on_connect, &c));
	run_until(loop, &c.done);
	TH_OK(c.status);
	while (acc.f == NULL)
		uv_run(loop, UV_RUN_ONCE);
	*a = c.f;
	*b = acc.f;
}

/* Sends msg a -> b with half-close and checks b reads it then EOF, then
 * b -> a the same way. */
static void ping_both_ways(uv_loop_t *loop, struct rill_flow *a,
                           struct rill_flow *b)
{
	(void)loop;
	TH_OK(rill_write_sync(a, "hello", 5));
	TH_OK(rill_shutdown_sync(a, RILL_SHUT_WR));
	struct rill_buf *got = NULL;
	TH_OK(rill_read_all_sync(b, 1024, &got));
	TH_EQ_INT(got->len, 5);
	TH_EQ_MEM(got->data, "hello", 5);
	rill_buf_release(got);
	/* The other direction still works after a's half-close. */
	TH_OK(rill_write_sync(b, "world!", 6));
	TH_OK(rill_shutdown_sync(b, RILL_SHUT_WR));
	TH_OK(rill_read_all_sync(a, 1024, &got));
	TH_EQ_INT(got->len, 6);
	TH_EQ_MEM(got->data, "world!", 6);
	rill_buf_release(got);
	/* Write after shutdown fails with "closed". */
	TH_EQ_ERR(rill_write_copy(a, "x", 1, NULL, NULL), RILL_ECLOSED);
}

static int connect_err(uv_loop_t *loop, const char *uri, uint64_t timeout_ms,
                       uint64_t retry_ms, char *msg, size_t msg_len)
{
	struct connect_state c = {0};
	struct rill_connect_opts o = {.timeout_ms = timeout_ms,
	                              .retry_until_ms = retry_ms};
	int err = rill_connect(loop, uri, &o, on_connect, &c);
	if (err != 0) {
		snprintf(msg, msg_len, "%s", rill_last_errmsg());
		return err;
	}
	run_until(loop, &c.done);
	snprintf(msg, msg_len, "%s", c.msg);
	rill_close(c.f);
	return c.status;
}

static void tmpdir(char *buf, size_t len)
{
	th_tmp_template(buf, len, "rill-sock");
	if (mkdtemp(buf) == NULL)
		TH_FAIL("mkdtemp: %s", strerror(errno));
}

/* ---------------------------------------------------------------------- */
/* Connect, accept, half-close, addresses */

TEST(tcp4_listen_connect_addresses)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_listener *l;
	struct rill_flow *a, *b;
	char luri[128];
	open_pair(&loop, "tcp://127.0.0.1:0", &l, &a, &b, luri, sizeof luri);
	TH_TRUE(strncmp(luri, "tcp://127.0.0.1:", 16) == 0);
	TH_EQ_STR(rill_flow_kind(a), "tcp");
	char la[128], pa[128], lb[128], pb[128];
	TH_OK(rill_flow_address(a, RILL_ADDR_LOCAL, la, sizeof la));
	TH_OK(rill_flow_address(a, RILL_ADDR_PEER, pa, sizeof pa));
	TH_OK(rill_flow_address(b, RILL_ADDR_LOCAL, lb, sizeof lb));
	TH_OK(rill_flow_address(b, RILL_ADDR_PEER, pb, sizeof pb));
	TH_EQ_STR(pa, luri);
	TH_EQ_STR(lb, luri);
	TH_EQ_STR(la, pb);
	TH_EQ_ERR(rill_flow_address(a, RILL_ADDR_LOCAL, la, 8), -ENOSPC);
	TH_OK(rill_flow_set_nodelay(a, true));
	TH_OK(rill_flow_set_keepalive(a, true, 30, 5, 3));
	TH_OK(rill_flow_set_keepalive(b, false, 0, 0, 0));
	int fd = rill__socket_fd(a), v = 0;
	socklen_t vl = sizeof v;
	getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl);
	TH_EQ_INT(v, 1);
	getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl);
	TH_EQ_INT(v, 30);
	ping_both_ways(&loop, a, b);
	rill_close(a);
	rill_close(b);
	rill_listener_close(l);
	drain(&loop);
}

TEST(tcp6_listen_connect_addresses)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_listener *l;
	struct rill_flow *a, *b;
	char luri[128];
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6,
	                          .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	if (probe < 0 || bind(probe, (struct sockaddr *)&s6, sizeof s6) != 0)
		TH_SKIP("no IPv6 loopback here: %s", strerror(errno));
	close(probe);
	open_pair(&loop, "tcp://[::1]:0", &l, &a, &b, luri, sizeof luri);
	TH_TRUE(strncmp(luri, "tcp://[::1]:", 12) == 0);
	char pa[128];
	TH_OK(rill_flow_address(a, RILL_ADDR_PEER, pa, sizeof pa));
	TH_EQ_STR(pa, luri);
	ping_both_ways(&loop, a, b);
	rill_close(a);
	rill_close(b);
	rill_listener_close(l);
	drain(&loop);
}

TEST(tcp_wildcard_listener_uri_is_connectable)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_listener *l;
	struct rill_flow *a, *b;
	char luri[128];
	open_pair(&loop, "tcp://:0", &l, &a, &b, luri, sizeof luri);
	TH_TRUE(strstr(luri, "[::1]") != NULL ||
	        strstr(luri, "127.0.0.1") != NULL);
	ping_both_ways(&loop, a, b);
	rill_close(a);
	rill_close(b);
	rill_listener_close(l);
	drain(&loop);
}

TEST(tcp_name_resolved_and_every_address_tried)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_listener *l;
	struct accept_state acc = {0};
	TH_OK(
	    rill_listen(&loop, "tcp://127.0.0.1:0", NULL, on_accept, &acc, &l));
	char luri[128], uri[160];
	TH_OK(rill_listener_uri(l, luri, sizeof luri));
	snprintf(uri, sizeof uri, "tcp://localhost:%s", strrchr(luri, ':') + 1);
	struct connect_state c = {0};
	TH_OK(rill_connect(&loop, uri, NULL, on_connect, &c));
	run_until(&loop, &c.done);
	TH_OK(c.status);
	char pa[128];
	TH_OK(rill_flow_address(c.f, RILL_ADDR_PEER, pa, sizeof pa));
	TH_EQ_STR(pa, luri);
	/* Every address in order: one that refuses, then one that works. */
	struct rill__sockaddr addrs[2];
	memset(addrs, 0, sizeof addrs);
	struct sockaddr_in *s0 = (struct sockaddr_in *)&addrs[0].ss;
	int dead = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in any = {.sin_family = AF_INET,
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	TH_OK(bind(dead, (struct sockaddr *)&any, sizeof any));
	socklen_t sl = sizeof *s0;
	getsockname(dead, (struct sockaddr *)s0, &sl);
	addrs[0].len = sl;
	close(dead); /* nobody listens there now: refused */
	struct sockaddr_in *s1 = (struct sockaddr_in *)&addrs[1].ss;
	s1->sin_family = AF_INET;
	s1->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s1->sin_port = htons((uint16_t)atoi(strrchr(luri, ':') + 1));
	addrs[1].len = sizeof *s1;
	struct connect_state c2 = {0};
	TH_OK(rill__socket_connect(&loop, &rill__tcp_family, addrs, 2, "two", 0,
	                           0, on_connect, &c2));
	run_until(&loop, &c2.done);
	TH_OK(c2.status);
	rill_close(c2.f);
	rill_close(c.f);
	rill_close(acc.f);
	rill_listener_close(l);
	drain(&loop);
}

TEST(unix_path_listener_unlinks_on_close)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char dir[64], uri[160], path[96];
	tmpdir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/s.sock", dir);
	snprintf(uri, sizeof uri, "unix:%s", path);
	struct rill_listener *l;
	struct rill_flow *a, *b;
	char luri[128];
	open_pair(&loop, uri, &l, &a, &b, luri, sizeof luri);
	TH_EQ_STR(luri, uri);
	TH_EQ_STR(rill_flow_kind(a), "unix");
	char pa[128], lb[128];
	TH_OK(rill_flow_address(a, RILL_ADDR_PEER, pa, sizeof pa));
	TH_EQ_STR(pa, uri);
	TH_OK(rill_flow_address(b, RILL_ADDR_LOCAL, lb, sizeof lb));
	TH_EQ_STR(lb, uri);
	TH_EQ_ERR(rill_flow_set_nodelay(a, true), -ENOTSUP);
	TH_EQ_ERR(rill_flow_set_keepalive(a, true, 1, 1, 1), -ENOTSUP);
	ping_both_ways(&loop, a, b);
	struct stat st;
	TH_OK(stat(path, &st));
	rill_listener_close(l);
	TH_EQ_INT(stat(path, &st), -1);
	/* keep_unix_path leaves it. */
	struct rill_listen_opts lo = {.keep_unix_path = true};
	struct accept_state acc = {0};
	TH_OK(rill_listen(&loop, uri, &lo, on_accept, &acc, &l));
	rill_listener_close(l);
	TH_OK(stat(path, &st));
	unlink(path);
	rmdir(dir);
	rill_close(a);
	rill_close(b);
	drain(&loop);
}

TEST(unix_triple_slash_and_relative_paths)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char dir[64], uri[128];
	tmpdir(dir, sizeof dir);
	snprintf(uri, sizeof uri, "unix://%s/t.sock", dir);
	struct rill_listener *l;
	struct rill_flow *a, *b;
	char luri[128];
	open_pair(&loop, uri, &l, &a, &b, luri, sizeof luri);
	ping_both_ways(&loop, a, b);
	rill_close(a);
	rill_close(b);
	rill_listener_close(l);
	TH_OK(chdir(dir));
	open_pair(&loop, "unix:rel.sock", &l, &a, &b, luri, sizeof luri);
	TH_EQ_STR(luri, "unix:rel.sock");
	rill_close(a);
	rill_close(b);
	rill_listener_close(l);
	rmdir(dir);
	drain(&loop);
}

TEST(unix_abstract_name)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char uri[128];
	snprintf(uri, sizeof uri, "unix:@rill-test-%d", (int)getpid());
	struct rill_listener *l;
	struct rill_flow *a, *b;
	char luri[128];
	open_pair(&loop, uri, &l, &a, &b, luri, sizeof luri);
	TH_EQ_STR(luri, uri);
	char pa[128];
	TH_OK(rill_flow_address(a, RILL_ADDR_PEER, pa, sizeof pa));
	TH_EQ_STR(pa, uri);
	ping_both_ways(&loop, a, b);
	rill_close(a);
	rill_close(b);
	rill_listener_close(l);
	/* Closed: the name is free again. */
	struct accept_state acc = {0};
	TH_OK(rill_listen(&loop, uri, NULL, on_accept, &acc, &l));
	rill_listener_close(l);
	drain(&loop);
}

/* ---------------------------------------------------------------------- */
/* Connect errors */

static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(fd, (struct sockaddr *)&a, sizeof a);
	socklen_t l = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

TEST(connect_refused)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char uri[160], msg[512];
	snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", closed_port());
	TH_EQ_ERR(connect_err(&loop, uri, 0, 0, msg, sizeof msg),
	          RILL_ECONNREFUSED);
	TH_CONTAINS(msg, uri);
	TH_CONTAINS(msg, "refused");
	char dir[64];
	tmpdir(dir, sizeof dir);
	/* A Unix socket file nobody listens on: refused too. */
	char path[96];
	snprintf(path, sizeof path, "%s/dead.sock", dir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	TH_OK(bind(fd, (struct sockaddr *)&sa, sizeof sa));
	close(fd);
	snprintf(uri, sizeof uri, "unix:%s", path);
	TH_EQ_ERR(connect_err(&loop, uri, 0, 0, msg, sizeof msg),
	          RILL_ECONNREFUSED);
	unlink(path);
	/* A missing path: its own error. */
	TH_EQ_ERR(connect_err(&loop, uri, 0, 0, msg, sizeof msg), -ENOENT);
	TH_CONTAINS(msg, path);
	rmdir(dir);
	drain(&loop);
}

TEST(connect_deadline_on_full_backlog)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	/* A listener that never accepts, with the smallest backlog: once
	 * its queue is full, Linux drops further SYNs, so a connect hangs. */
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	TH_OK(bind(lfd, (struct sockaddr *)&a, sizeof a));
	TH_OK(listen(lfd, 0));
	socklen_t sl = sizeof a;
	getsockname(lfd, (struct sockaddr *)&a, &sl);
	int fillers[8];
	for (int i = 0; i < 8; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fillers[i], (struct sockaddr *)&a, sizeof a);
	}
	char uri[160], msg[512];
	snprintf(uri, sizeof uri, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
	uint64_t t0 = uv_hrtime();
	TH_EQ_ERR(connect_err(&loop, uri, 300, 0, msg, sizeof msg),
	          RILL_ETIMEDOUT);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	TH_CMP_INT(ms, >=, 290);
	TH_CONTAINS(msg, "timed out");
	for (int i = 0; i < 8; i++)
		close(fillers[i]);
	close(lfd);
	drain(&loop);
}

TEST(connect_deadline_on_full_unix_backlog)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char dir[64], path[96], uri[160], msg[512];
	tmpdir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/full.sock", dir);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	TH_OK(bind(lfd, (struct sockaddr *)&sa, sizeof sa));
	TH_OK(listen(lfd, 0));
	int fillers[4];
	for (int i = 0; i < 4; i++) {
		fillers[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fillers[i], (struct sockaddr *)&sa, sizeof sa);
	}
	snprintf(uri, sizeof uri, "unix:%s", path);
	TH_EQ_ERR(connect_err(&loop, uri, 200, 0, msg, sizeof msg),
	          RILL_ETIMEDOUT);
	for (int i = 0; i < 4; i++)
		close(fillers[i]);
	close(lfd);
	unlink(path);
	rmdir(dir);
	drain(&loop);
}

TEST(connect_dns_failure)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char msg[512];
	/* RFC 2606: .invalid never resolves. */
	TH_EQ_ERR(connect_err(&loop, "tcp://no-such-host.invalid:80", 5000, 0,
	                      msg, sizeof msg),
	          -ENOENT);
	TH_CONTAINS(msg, "cannot resolve");
	TH_CONTAINS(msg, "no-such-host.invalid");
	drain(&loop);
}

TEST(connect_unreachable_network)
{
	/* A network namespace of this test process alone, where not even
	 * the loopback interface is up: no route anywhere. */
	if (unshare(CLONE_NEWNET) != 0)
		TH_SKIP("cannot create a network namespace (needs root or "
		        "user namespaces): %s",
		        strerror(errno));
	uv_loop_t loop;
	uv_loop_init(&loop);
	char msg[512];
	TH_EQ_ERR(
	    connect_err(&loop, "tcp://10.9.8.7:9", 2000, 0, msg, sizeof msg),
	    -ENETUNREACH);
	TH_CONTAINS(msg, "10.9.8.7");
	TH_CONTAINS(msg, "unreachable");
	drain(&loop);
}

static void start_listener_cb(uv_timer_t *t)
{
	void **slot = t->data;
	struct rill_listener *l = NULL;
	TH_OK(rill_listen(t->loop, slot[1], NULL, on_accept, slot[2], &l));
	slot[0] = l;
}

TEST(connect_retry_until_listener_appears)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char dir[64], uri[160], msg[512];
	tmpdir(dir, sizeof dir);
	snprintf(uri, sizeof uri, "unix:%s/late.sock", dir);
	/* slot[0]: the listener, slot[1]: its URI, slot[2]: accept state. */
	struct accept_state acc = {0};
	void *slot[3] = {NULL, uri, &acc};
	uv_timer_t t;
	uv_timer_init(&loop, &t);
	t.data = slot;
	uv_timer_start(&t, start_listener_cb, 200, 0);
	TH_OK(connect_err(&loop, uri, 5000, 3000, msg, sizeof msg));
	TH_NOT_NULL(slot[0]);
	while (acc.f == NULL)
		uv_run(&loop, UV_RUN_ONCE);
	rill_close(acc.f);
	rill_listener_close(slot[0]);
	/* Without a listener, retrying ends with the last error. */
	uint64_t t0 = uv_hrtime();
	TH_EQ_ERR(connect_err(&loop, uri, 0, 300, msg, sizeof msg), -ENOENT);
	TH_CMP_INT((uv_hrtime() - t0) / 1000000, >=, 250);
	uv_close((uv_handle_t *)&t, NULL);
	rmdir(dir);
	drain(&loop);
}

/* ---------------------------------------------------------------------- */
/* Listen errors */

TEST(listen_address_in_use)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct accept_state acc = {0};
	struct rill_listener *l, *l2 = NULL;
	TH_OK(
	    rill_listen(&loop, "tcp://127.0.0.1:0", NULL, on_accept, &acc, &l));
	char luri[128];
	TH_OK(rill_listener_uri(l, luri, sizeof luri));
	TH_EQ_ERR(rill_listen(&loop, luri, NULL, on_accept, &acc, &l2),
	          -EADDRINUSE);
	TH_CONTAINS(rill_last_errmsg(), luri + 4);
	TH_CONTAINS(rill_last_errmsg(), "in use");
	rill_listener_close(l);
	/* SO_REUSEADDR: the port is free again at once. */
	TH_OK(rill_listen(&loop, luri, NULL, on_accept, &acc, &l2));
	rill_listener_close(l2);
	char dir[64], uri[128];
	tmpdir(dir, sizeof dir);
	snprintf(uri, sizeof uri, "unix:%s/u.sock", dir);
	TH_OK(rill_listen(&loop, uri, NULL, on_accept, &acc, &l));
	TH_EQ_ERR(rill_listen(&loop, uri, NULL, on_accept, &acc, &l2),
	          -EADDRINUSE);
	/* The failed listen must not remove the live listener's file. */
	struct stat st;
	snprintf(uri, sizeof uri, "%s/u.sock", dir);
	TH_OK(stat(uri, &st));
	rill_listener_close(l);
	rmdir(dir);
	drain(&loop);
}

TEST(listen_unix_permission_denied)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct accept_state acc = {0};
	struct rill_listener *l = NULL;
	char dir[64], sub[96], uri[160];
	tmpdir(dir, sizeof dir);
	snprintf(sub, sizeof sub, "%s/locked", dir);
	TH_OK(mkdir(sub, 0700));
	TH_OK(chmod(dir, 0755));
	/* Root ignores directory permissions: as root, this test process
	 * (forked for this test only) drops to an unprivileged user. */
	if (geteuid() == 0) {
		TH_OK(chown(sub, 0, 0));
		if (setgid(65534) != 0 || setuid(65534) != 0)
			TH_SKIP("cannot drop root privileges: %s",
			        strerror(errno));
	}
	snprintf(uri, sizeof uri, "unix:%s/s.sock", sub);
	TH_EQ_ERR(rill_listen(&loop, uri, NULL, on_accept, &acc, &l), -EACCES);
	TH_CONTAINS(rill_last_errmsg(), "ermission denied");
	TH_CONTAINS(rill_last_errmsg(), sub);
	TH_TRUE(l == NULL);
	drain(&loop);
}

TEST(listen_unix_path_under_a_file)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct accept_state acc = {0};
	struct rill_listener *l = NULL;
	char dir[64], file[96], uri[160], msg[512];
	tmpdir(dir, sizeof dir);
	snprintf(file, sizeof file, "%s/plain", dir);
	int fd = open(file, O_CREAT | O_WRONLY, 0600);
	close(fd);
	snprintf(uri, sizeof uri, "unix:%s/s.sock", file);
	TH_EQ_ERR(rill_listen(&loop, uri, NULL, on_accept, &acc, &l), -ENOTDIR);
	TH_CONTAINS(rill_last_errmsg(), "Not a directory");
	TH_EQ_ERR(connect_err(&loop, uri, 0, 0, msg, sizeof msg), -ENOTDIR);
	unlink(file);
	rmdir(dir);
	drain(&loop);
}

/* ---------------------------------------------------------------------- */
/* Malformed URIs: every form is refused, naming the wrong part. */

TEST(malformed_uris_name_the_wrong_part)
{
	static const struct {
		const char *uri;
		const char *msg;
	} cases[] = {
	    {"tcp://h:70000", "bad port \"70000\" in \"tcp://h:70000\""},
	    {"tcp://h:", "missing port after \"h:\""},
	    {"tcp://h", "missing :port after host \"h\""},
	    {"tcp://h:8x", "bad port \"8x\""},
	    {"tcp://h:-1", "bad port \"-1\""},
	    {"tcp://h:123456", "bad port \"123456\""},
	    {"tcp://h:80/path", "bad port \"80/path\""},
	    {"tcp:h:80", "expected tcp://host:port, not \"h:80\""},
	    {"tcp://[::1:80", "missing ] after IPv6 address"},
	    {"tcp://[zz]:80", "bad IPv6 address \"zz\""},
	    {"tcp://[]:80", "bad IPv6 address"},
	    {"tcp://[::1]80", "expected :port after"},
	    {"tcp://::1:80", "IPv6 address needs [brackets]: \"::1\""},
	    {"tcp://h@x:80", "bad host \"h@x\""},
	    {"tcp://h:80?nodelay=2", "bad value for nodelay: \"2\""},
	    {"tcp://h:80?bogus=1", "unknown parameter \"bogus\""},
	    {"unix:", "missing socket path"},
	    {"unix://", "missing socket path"},
	    {"unix:@", "empty abstract socket name"},
	    {"unix:/"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "a"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	     "socket path too long"},
	    {"unix:@"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "a"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	     "abstract socket name too long"},
	    {"unix:/tmp/x?y=1", "unknown parameter \"y\""},
	    {"stdio:x", "unexpected text after stdio: \"x\""},
	    {"tcpx://h:1", "unknown scheme \"tcpx\""},
	    {"", "empty URI"},
	    {"h:80", "unknown scheme \"h\""},
	    {"/tmp/x", "missing or bad scheme"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		th_note("%s", cases[i].uri);
		TH_EQ_ERR(rill_uri_check(cases[i].uri), RILL_EURI);
		TH_CONTAINS(rill_last_errmsg(), cases[i].msg);
	}
	/* Connecting one is refused synchronously, with the same message. */
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct connect_state c = {0};
	TH_EQ_ERR(rill_connect(&loop, "tcp://h:70000", NULL, on_connect, &c),
	          RILL_EURI);
	TH_EQ_STR(rill_last_errmsg(),
	          "bad port \"70000\" in \"tcp://h:70000\"");
	TH_EQ_ERR(rill_connect(&loop, "tcp://:80", NULL, on_connect, &c),
	          RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "missing host");
	TH_EQ_ERR(rill_connect(&loop, "tcp://h:0", NULL, on_connect, &c),
	          RILL_EURI);
	TH_TRUE(!c.done);
	/* And the good forms pass. */
	TH_OK(rill_uri_check("tcp://h:1"));
	TH_OK(rill_uri_check("tcp://[::1]:65535"));
	TH_OK(rill_uri_check("tcp://:0"));
	TH_OK(rill_uri_check("tcp://h:80?nodelay=1"));
	TH_OK(rill_uri_check("unix:/x"));
	TH_OK(rill_uri_check("unix:@x"));
	TH_OK(rill_uri_check("stdio:"));
	TH_OK(rill_uri_check("-"));
	drain(&loop);
}

/* ---------------------------------------------------------------------- */
/* Resets, and writes to a peer that left */

TEST(tcp_reset_reads_econnreset_and_writes_fail_closed)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_listener *l;
	struct rill_flow *a, *b;
	char luri[128];
	open_pair(&loop, "tcp://127.0.0.1:0", &l, &a, &b, luri, sizeof luri);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	TH_OK(setsockopt(rill__socket_fd(b), SOL_SOCKET, SO_LINGER, &lg,
	                 sizeof lg));
	rill_close(b);
	struct rill_buf *got = NULL;
	TH_EQ_ERR(rill_read_sync(a, &got), RILL_ECONNRESET);
	TH_EQ_ERR(rill_read_sync(a, &got), RILL_ECONNRESET); /* sticky */
	int err = 0;
	for (int i = 0; i < 100 && err == 0; i++)
		err = rill_write_sync(a, "x", 1);
	TH_EQ_ERR(err, RILL_ECLOSED);
	rill_close(a);
	rill_listener_close(l);
	drain(&loop);
}

TEST(unix_write_after_peer_closed_fails_closed)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_listener *l;
	struct rill_flow *a, *b;
	char luri[128];
	char uri[64];
	snprintf(uri, sizeof uri, "unix:@rill-wc-%d", (int)getpid());
	open_pair(&loop, uri, &l, &a, &b, luri, sizeof luri);
	rill_close(b);
	int err = 0;
	for (int i = 0; i < 100 && err == 0; i++)
		err = rill_write_sync(a, "x", 1);
	TH_EQ_ERR(err, RILL_ECLOSED);
	struct rill_buf *got = NULL;
	err = rill_read_sync(a, &got);
	TH_TRUE(err == RILL_EOF || err == RILL_ECONNRESET);
	rill_close(a);
	rill_listener_close(l);
	drain(&loop);
}

/* ---------------------------------------------------------------------- */
/* Large writev with partial writes: bytes arrive in order */

struct big_state {
	struct rill_flow *r;
	size_t got;
	uint32_t sum;
	bool eof;
	int err;
};

static void big_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                        void *ud)
{
	struct big_state *s = ud;
	if (status != 0) {
		s->eof = status == RILL_EOF;
		s->err = status == RILL_EOF ? 0 : status;
		if (status != RILL_EOF)
			s->eof = true;
		return;
	}
	for (size_t i = 0; i < b->len; i++)
		s->sum = s->sum * 31u + b->data[i];
	s->got += b->len;
	rill_buf_release(b);
	rill_read(f, big_read_cb, s);
}

TEST(writev_many_buffers_partial_writes_in_order)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_listener *l;
	struct rill_flow *a, *b;
	char luri[128];
	open_pair(&loop, "tcp://127.0.0.1:0", &l, &a, &b, luri, sizeof luri);
	/* 200 buffers of odd sizes (more than one sendmsg's iovec worth),
	 * about 8 MiB: far more than the socket buffers hold. */
	enum { N = 200 };
	struct rill_buf *bufs[N];
	uint32_t want = 0;
	size_t total = 0;
	unsigned seed = 7;
	for (int i = 0; i < N; i++) {
		size_t len = 1 + (size_t)(rand_r(&seed) % 80000);
		bufs[i] = rill_buf_new(len);
		for (size_t k = 0; k < len; k++) {
			bufs[i]->data[k] = (uint8_t)rand_r(&seed);
			want = want * 31u + bufs[i]->data[k];
		}
		total += len;
	}
	int wstatus = 1;
	struct big_state s = {.r = b};
	TH_OK(rill_writev(a, bufs, N, NULL, NULL));
	TH_OK(rill_shutdown(a, RILL_SHUT_WR, NULL, NULL));
	(void)wstatus;
	for (int i = 0; i < N; i++)
		rill_buf_release(bufs[i]);
	TH_OK(rill_read(b, big_read_cb, &s));
	run_until(&loop, &s.eof);
	TH_OK(s.err);
	TH_EQ_U64(s.got, total);
	TH_EQ_INT(s.sum, want);
	rill_close(a);
	rill_close(b);
	rill_listener_close(l);
	drain(&loop);
}

/* ---------------------------------------------------------------------- */
/* stdio-style flows over pipes and regular files */

TEST(fd_flow_over_pipe_and_regular_file)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char dir[64], path[128];
	tmpdir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/in.txt", dir);
	int in = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	TH_EQ_INT(write(in, "from a file", 11), 11);
	lseek(in, 0, SEEK_SET);
	int p[2];
	TH_OK(pipe(p));
	struct rill_flow *f;
	TH_OK(rill__socket_flow_new_fds(&loop, in, p[1], &rill__stdio_family,
	                                &f));
	TH_EQ_STR(rill_flow_kind(f), "stdio");
	struct rill_buf *got = NULL;
	TH_OK(rill_read_all_sync(f, 1024, &got));
	TH_EQ_INT(got->len, 11);
	TH_EQ_MEM(got->data, "from a file", 11);
	rill_buf_release(got);
	TH_OK(rill_write_sync(f, "to a pipe", 9));
	/* The pipe's reader sees EOF after shutdown(write). */
	TH_OK(rill_shutdown_sync(f, RILL_SHUT_WR));
	char buf[64];
	ssize_t n = read(p[0], buf, sizeof buf);
	TH_EQ_INT(n, 9);
	TH_EQ_MEM(buf, "to a pipe", 9);
	TH_EQ_INT(read(p[0], buf, sizeof buf), 0);
	char addr[64];
	TH_EQ_ERR(rill_flow_address(f, RILL_ADDR_LOCAL, addr, sizeof addr),
	          -ENOTSUP);
	rill_close(f);
	drain(&loop);
	/* The fds are not the flow's: still open, flags restored. */
	TH_CMP_INT(fcntl(p[0], F_GETFD), >=, 0);
	TH_EQ_INT(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
	close(in);
	close(p[0]);
	close(p[1]);
	unlink(path);
	rmdir(dir);
}

TEST(fd_flow_pipe_reads_wait_for_data)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	int p[2], q[2];
	TH_OK(pipe(p));
	TH_OK(pipe(q));
	struct rill_flow *f;
	TH_OK(rill__socket_flow_new_fds(&loop, p[0], q[1], &rill__stdio_family,
	                                &f));
	TH_CMP_INT(fcntl(p[0], F_GETFL) & O_NONBLOCK, !=, 0);
	struct big_state s = {.r = f};
	TH_OK(rill_read(f, big_read_cb, &s));
	uv_run(&loop, UV_RUN_NOWAIT);
	TH_EQ_INT(s.got, 0);
	TH_EQ_INT(write(p[1], "abc", 3), 3);
	close(p[1]);
	run_until(&loop, &s.eof);
	TH_EQ_INT(s.got, 3);
	TH_OK(s.err);
	rill_close(f);
	drain(&loop);
	close(p[0]);
	close(q[0]);
	close(q[1]);
}
