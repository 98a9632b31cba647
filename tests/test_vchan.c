/* vchan: layout, orders, transfers of every ring size, the u32 wrap, a
 * hostile peer on both the ring and the rendezvous, EOF and peer death. */
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "transport/vchan/vchan.h"
#include "transport/vchan/ring.h"
#include "vchan_util.h"

#if __has_include(<xen/io/libxenvchan.h>)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#include <xen/io/libxenvchan.h>
#pragma GCC diagnostic pop
#define HAVE_XEN_VCHAN 1
#endif

TEST(layout_matches_xen_vchan_interface)
{
#ifdef HAVE_XEN_VCHAN
#define SAME(field)                                              \
	TH_EQ_INT(offsetof(struct rill__vchan_page, field),      \
	          offsetof(struct vchan_interface, field));      \
	TH_EQ_INT(sizeof(((struct rill__vchan_page *)0)->field), \
	          sizeof(((struct vchan_interface *)0)->field))
	SAME(left.cons);
	SAME(left.prod);
	SAME(right.cons);
	SAME(right.prod);
	SAME(left_order);
	SAME(right_order);
	SAME(cli_live);
	SAME(srv_live);
	SAME(cli_notify);
	SAME(srv_notify);
	TH_EQ_INT(offsetof(struct rill__vchan_page, grants),
	          offsetof(struct vchan_interface, grants));
	TH_EQ_INT(sizeof(struct rill__vchan_page),
	          sizeof(struct vchan_interface));
	TH_EQ_INT(RILL__VCHAN_NOTIFY_WRITE, VCHAN_NOTIFY_WRITE);
	TH_EQ_INT(RILL__VCHAN_NOTIFY_READ, VCHAN_NOTIFY_READ);
#undef SAME
#else
	TH_SKIP("xen/io/libxenvchan.h not installed (Debian libxen-dev)");
#endif
}

static void expect_orders(size_t l, size_t r, int lo, int ro)
{
	int a = 0, b = 0;
	TH_OK(rill__vchan_orders(l, r, &a, &b));
	if (a != lo || b != ro)
		TH_FAIL("orders(%zu, %zu) = (%d, %d), want (%d, %d)", l, r, a,
		        b, lo, ro);
}

TEST(orders_as_libxenvchan_picks_them)
{
	expect_orders(1023, 2048, 10, 11);
	expect_orders(1024, 2047, 10, 11);
	expect_orders(2048, 1024, 11, 10);
	expect_orders(1025, 1025, 11, 12); /* one in the page only */
	expect_orders(2047, 4095, 11, 12);
	expect_orders(4096, 2048, 12, 11);
	expect_orders(4096, 4096, 12, 12);
	expect_orders(4097, 8192, 13, 13);
	expect_orders(1 << 20, 1 << 20, 20, 20);
	expect_orders(16 << 20, 1023, 24, 11);
	expect_orders((size_t)1 << 30, 1, 30, 11);
	int a, b;
	TH_EQ_ERR(rill__vchan_orders(0, 1024, &a, &b), -EINVAL);
	TH_EQ_ERR(rill__vchan_orders(((size_t)1 << 30) + 1, 1024, &a, &b),
	          -EINVAL);
	TH_EQ_INT(rill__vchan_map_size(10, 11), 4096);
	TH_EQ_INT(rill__vchan_map_size(12, 11), 8192);
	TH_EQ_INT(rill__vchan_map_size(13, 14), 4096 + 8192 + 16384);
	TH_EQ_ERR(rill__vchan_check_orders(10, 10), RILL_ERING);
	TH_EQ_ERR(rill__vchan_check_orders(11, 11), RILL_ERING);
	TH_EQ_ERR(rill__vchan_check_orders(9, 12), RILL_ERING);
	TH_EQ_ERR(rill__vchan_check_orders(12, 31), RILL_ERING);
	TH_OK(rill__vchan_check_orders(12, 12));
}

/* The ring core against a page a hostile peer wrote. */
TEST(ring_rejects_bad_indices_and_orders)
{
	uint8_t *mem = calloc(1, 4096);
	rill__vchan_init_page(mem, 10, 11, 0);
	struct rill__vchan srv, cli;
	TH_OK(rill__vchan_attach(&srv, mem, 4096, true));
	TH_OK(rill__vchan_attach(&cli, mem, 4096, false));
	uint8_t buf[4096];
	size_t n;
	TH_OK(rill__vchan_write(&cli, "hello", 5, &n));
	TH_EQ_INT(n, 5);
	TH_OK(rill__vchan_read(&srv, buf, sizeof buf, &n));
	TH_EQ_INT(n, 5);
	TH_EQ_MEM(buf, "hello", 5);
	struct rill__vchan_page *p = (void *)mem;
	/* producer claims more than the ring holds */
	atomic_store(&p->left.prod, 5 + 1025);
	TH_EQ_ERR(rill__vchan_read(&srv, buf, sizeof buf, &n), RILL_ERING);
	TH_EQ_INT(n, 0);
	/* producer behind the consumer */
	atomic_store(&p->left.prod, 4);
	TH_EQ_ERR(rill__vchan_read(&srv, buf, sizeof buf, &n), RILL_ERING);
	/* consumer ahead of what the writer produced */
	atomic_store(&p->right.cons, 100);
	TH_EQ_ERR(rill__vchan_write(&srv, "x", 1, &n), RILL_ERING);
	/* orders: both at the same offset, too big, not in the mapping */
	atomic_store(&p->left_order, 11);
	TH_EQ_ERR(rill__vchan_attach(&cli, mem, 4096, false), RILL_ERING);
	atomic_store(&p->left_order, 12);
	TH_EQ_ERR(rill__vchan_attach(&cli, mem, 4096, false), RILL_ERING);
	atomic_store(&p->left_order, 40);
	TH_EQ_ERR(rill__vchan_attach(&cli, mem, 4096, false), RILL_ERING);
	free(mem);
}

/* Ring sizes requested (both directions), as the issue lists them. */
static const size_t vt_sizes[] = {1023, 1024, 1025,     2047,     2048,
                                  4095, 4096, 1u << 20, 16u << 20};

static int expected_order(size_t n)
{
	int o = 12;
	while (((size_t)1 << o) < n)
		o++;
	return o;
}

static void run_sizes(size_t rd, size_t wr, uint64_t bytes)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s = NULL, *c = NULL;
	TH_OK(vt_pair(&loop, "sizes", rd, wr, &s, &c));
	int sr, sw, cr, cw;
	TH_OK(rill__vchan_orders_of(s, &sr, &sw));
	TH_OK(rill__vchan_orders_of(c, &cr, &cw));
	TH_EQ_INT(sr, cw); /* the client's write ring is the server's read */
	TH_EQ_INT(sw, cr);
	int lo, ro;
	TH_OK(rill__vchan_orders(rd, wr, &lo, &ro));
	TH_EQ_INT(sr, lo);
	TH_EQ_INT(sw, ro);
	TH_TRUE(((size_t)1 << sr) >= rd && ((size_t)1 << sw) >= wr);
	vt_transfer(&loop, c, s, bytes, bytes + 777);
	rill_close(s);
	rill_close(c);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

/* Under valgrind (the harness sets TH_TIMEOUT_MULT) move fewer bytes. */
static uint64_t vt_scale(uint64_t bytes)
{
	return getenv("TH_TIMEOUT_MULT") != NULL ? bytes / 16 + 1 : bytes;
}

TEST_TIMEOUT(ring_sizes_both_directions, 120)
{
	vt_private_dir();
	size_t n = sizeof vt_sizes / sizeof vt_sizes[0];
	for (size_t i = 0; i < n; i++) {
		size_t sz = vt_sizes[i];
		/* more than the ring holds, so its end is crossed */
		uint64_t bytes = vt_scale(sz < 65536 ? 200000 : sz + sz / 2);
		/* symmetric, then each size against a small and a mid-size
		 * opposite ring */
		run_sizes(sz, sz, bytes);
		run_sizes(sz, 1024, bytes);
		if (sz <= (1u << 20))
			run_sizes(4096, sz, bytes);
		if (sz > 2048) {
			int lo, ro;
			TH_OK(rill__vchan_orders(sz, sz, &lo, &ro));
			TH_EQ_INT(lo, expected_order(sz));
		}
	}
}

TEST_TIMEOUT(indices_cross_the_u32_wrap, 60)
{
	vt_private_dir();
	const uint32_t starts[] = {0xFFFFFFFFu - 3000, 0xFFFFFFFFu,
	                           0x80000000u - 10};
	for (size_t i = 0; i < 3; i++) {
		rill__vchan_set_start_index(starts[i]);
		run_sizes(1024, 2048, vt_scale(1 << 20));
		run_sizes(4096, 8192, vt_scale(1 << 20));
	}
	rill__vchan_set_start_index(0);
}

TEST(close_gives_eof_after_drain)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s, *c;
	TH_OK(vt_pair(&loop, "eof", 4096, 4096, &s, &c));
	TH_OK(rill_write_sync(s, "last words", 10));
	rill_close(s);
	struct rill_buf *b = NULL;
	TH_OK(rill_read_all_sync(c, 1000, &b));
	TH_EQ_INT(b->len, 10);
	TH_EQ_MEM(b->data, "last words", 10);
	rill_buf_release(b);
	/* the server is gone: writes fail closed (once the hang-up is
	 * seen), never hang */
	int err = 0;
	for (int i = 0; i < 100000 && err == 0; i++)
		err = rill_write_sync(c, "x", 1);
	TH_EQ_ERR(err, RILL_ECLOSED);
	rill_close(c);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(server_writes_before_the_client_arrives)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s;
	struct vt_server sv = {0};
	TH_OK(rill_vchan_server(&loop, "dom0", "early", 4096, 4096,
	                        vt_server_cb, &sv, &s));
	TH_OK(rill_write_copy(s, "early", 5, NULL, NULL));
	rill_shutdown(s, RILL_SHUT_WR, NULL, NULL);
	for (int i = 0; i < 5; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	TH_TRUE(!sv.done);
	struct vt_connect c = {0};
	TH_OK(
	    rill_vchan_client(&loop, "dom0", "early", NULL, vt_connect_cb, &c));
	while (!c.done)
		uv_run(&loop, UV_RUN_ONCE);
	TH_OK(c.status);
	struct rill_buf *b = NULL;
	TH_OK(rill_read_all_sync(c.f, 100, &b));
	TH_EQ_INT(b->len, 5);
	TH_EQ_MEM(b->data, "early", 5);
	TH_TRUE(sv.done);
	rill_buf_release(b);
	rill_close(s);
	rill_close(c.f);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(names_and_paths)
{
	setenv("RILL_VCHAN_DIR", "/run/x", 1);
	char p[200];
	TH_OK(rill_vchan_path(NULL, "port-1_A", p, sizeof p));
	TH_EQ_STR(p, "/run/x/port-1_A");
	TH_OK(rill_vchan_path("7", "p", p, sizeof p));
	TH_EQ_STR(p, "/run/x/7/p");
	TH_OK(rill_vchan_path("/srv/d", "p", p, sizeof p));
	TH_EQ_STR(p, "/srv/d/p");
	TH_EQ_ERR(rill_vchan_path(NULL, "a/b", p, sizeof p), RILL_EINVAL);
	TH_EQ_ERR(rill_vchan_path(NULL, "a.b", p, sizeof p), RILL_EINVAL);
	TH_EQ_ERR(rill_vchan_path(NULL, "", p, sizeof p), RILL_EINVAL);
	TH_EQ_ERR(rill_vchan_path("..", "p", p, sizeof p), RILL_EINVAL);
	char longname[200];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	TH_EQ_ERR(rill_vchan_path(NULL, longname, p, sizeof p), -ENAMETOOLONG);
	TH_EQ_ERR(rill_uri_check("vchan:a*b"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "a*b");
	TH_EQ_ERR(rill_uri_check("vchan:p?read_size=0"), RILL_EURI);
	TH_EQ_ERR(rill_uri_check("vchan:p?colour=red"), RILL_EURI);
	TH_OK(rill_uri_check("vchan:dom/p?read_size=1023&write_size=99999"));
	TH_OK(rill_uri_check("vchan:/tmp/dir/p"));
}

TEST(no_server_and_retry)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vt_connect c = {0};
	TH_OK(
	    rill_vchan_client(&loop, NULL, "nobody", NULL, vt_connect_cb, &c));
	while (!c.done)
		uv_run(&loop, UV_RUN_ONCE);
	TH_EQ_ERR(c.status, -ENOENT);
	TH_CONTAINS(c.msg, "nobody");
	/* with retry, a server that comes later is found */
	struct rill_connect_opts o = {.retry_until_ms = 5000};
	struct vt_connect c2 = {0};
	TH_OK(rill_vchan_client(&loop, NULL, "later", &o, vt_connect_cb, &c2));
	for (int i = 0; i < 3; i++)
		uv_run(&loop, UV_RUN_ONCE);
	struct rill_flow *s;
	TH_OK(rill_vchan_server(&loop, NULL, "later", 1024, 1024, NULL, NULL,
	                        &s));
	while (!c2.done)
		uv_run(&loop, UV_RUN_ONCE);
	TH_OK(c2.status);
	/* a second server on a live name is refused */
	struct rill_flow *s2 = NULL;
	struct rill_flow *s3 = NULL;
	TH_OK(rill_vchan_server(&loop, NULL, "taken", 1024, 1024, NULL, NULL,
	                        &s2));
	TH_EQ_ERR(rill_vchan_server(&loop, NULL, "taken", 1024, 1024, NULL,
	                            NULL, &s3),
	          -EADDRINUSE);
	TH_EQ_ERR(
	    rill_vchan_server(&loop, NULL, "sz", 0, 1024, NULL, NULL, &s3),
	    RILL_EINVAL);
	rill_close(s);
	rill_close(s2);
	rill_close(c2.f);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(stray_connector_does_not_kill_the_server)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s;
	TH_OK(rill_vchan_server(&loop, NULL, "stray", 2048, 1024, NULL, NULL,
	                        &s));
	char path[200];
	TH_OK(rill_vchan_path(NULL, "stray", path, sizeof path));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	for (int k = 0; k < 2; k++) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		TH_OK(connect(fd, (struct sockaddr *)&sa, sizeof sa));
		/* k 0: garbage; k 1: hang up in the middle of HELLO */
		TH_EQ_INT(write(fd, k == 0 ? "GET / HTTP/1.0\r\n" : "RVCH",
		                k == 0 ? 16 : 4),
		          k == 0 ? 16 : 4);
		for (int i = 0; i < 10; i++)
			uv_run(&loop, UV_RUN_NOWAIT);
		close(fd);
		for (int i = 0; i < 10; i++)
			uv_run(&loop, UV_RUN_NOWAIT);
	}
	struct vt_connect c = {0};
	TH_OK(rill_vchan_client(&loop, NULL, "stray", NULL, vt_connect_cb, &c));
	while (!c.done)
		uv_run(&loop, UV_RUN_ONCE);
	TH_OK(c.status);
	vt_transfer(&loop, s, c.f, 100000, 100000);
	rill_close(s);
	rill_close(c.f);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(hostile_indices_on_a_live_flow)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s, *c;
	TH_OK(vt_pair(&loop, "hostile", 4096, 4096, &s, &c));
	struct rill__vchan_page *p = rill__vchan_shared_page(c);
	TH_NOT_NULL(p);
	/* the "client" claims a producer index far ahead */
	atomic_store(&p->left.prod, atomic_load(&p->left.cons) + 5000);
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(s, &b), RILL_ERING);
	TH_EQ_ERR(rill_read_sync(s, &b), RILL_ERING); /* sticky */
	TH_CONTAINS(rill_flow_errmsg(s), "index");
	/* a consumer index the server never produced up to */
	atomic_store(&p->left.cons, atomic_load(&p->left.prod) + 1);
	TH_EQ_ERR(rill_write_sync(c, "x", 1), RILL_ERING);
	rill_close(s);
	rill_close(c);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

/* A fake server that sends an OFFER with memory that is not sealed. */
/* rill_vchan_server (one vchan, one client) with silent connectors
 * ahead of the honest client (issue 23, Why 5): the client is served at
 * once, not after them, and the silent ones are dropped at the
 * deadline. */
TEST_TIMEOUT(silent_connectors_do_not_block_the_server, 60)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s;
	TH_OK(rill_vchan_server(&loop, NULL, "silent", 4096, 4096, NULL, NULL,
	                        &s));
	char path[200];
	TH_OK(rill_vchan_path(NULL, "silent", path, sizeof path));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	int silent[8];
	for (int k = 0; k < 8; k++) {
		silent[k] = socket(AF_UNIX, SOCK_STREAM, 0);
		TH_OK(connect(silent[k], (struct sockaddr *)&sa, sizeof sa));
	}
	for (int i = 0; i < 10; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	uv_update_time(&loop);
	uint64_t t0 = uv_now(&loop);
	struct vt_connect c = {0};
	struct rill_connect_opts o = {.timeout_ms = 3000};
	TH_OK(rill_vchan_client(&loop, NULL, "silent", &o, vt_connect_cb, &c));
	while (!c.done)
		uv_run(&loop, UV_RUN_ONCE);
	TH_OK(c.status);
	uv_update_time(&loop);
	TH_TRUE(uv_now(&loop) - t0 < 1000);
	vt_transfer(&loop, s, c.f, 100000, 100000);
	/* Taken: the others were hung up on. */
	char x;
	for (int k = 0; k < 8; k++) {
		TH_EQ_INT(read(silent[k], &x, 1), 0);
		close(silent[k]);
	}
	rill_close(s);
	rill_close(c.f);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(client_rejects_unsealed_memory_and_bad_offers)
{
	vt_private_dir();
	char path[200];
	TH_OK(rill_vchan_path(NULL, "fake", path, sizeof path));
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	TH_OK(bind(lfd, (struct sockaddr *)&sa, sizeof sa));
	TH_OK(listen(lfd, 4));
	pid_t pid = fork();
	if (pid == 0) {
		for (int k = 0; k < 3; k++) {
			int fd = accept(lfd, NULL, NULL);
			char hello[8];
			if (read(fd, hello, 8) != 8)
				_exit(1);
			uint8_t m[32] = {'R', 'V', 'C', 'H', 1, 0, 2, 0};
			m[8] = 0x00;
			m[9] = 0x10; /* 4096 */
			m[16] = 10;
			m[18] = 11;
			m[20] = 3;
			int mfd = memfd_create("x", 0);
			if (ftruncate(mfd, 4096) != 0)
				_exit(1);
			int fds[3] = {mfd, mfd, mfd};
			if (k == 1)
				m[16] = 11; /* both rings at one offset */
			union {
				struct cmsghdr h;
				char b[CMSG_SPACE(sizeof fds)];
			} ctl;
			memset(&ctl, 0, sizeof ctl);
			struct iovec iov = {m, 32};
			struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
			if (k != 2) {
				mh.msg_control = ctl.b;
				mh.msg_controllen = sizeof ctl.b;
				struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
				cm->cmsg_level = SOL_SOCKET;
				cm->cmsg_type = SCM_RIGHTS;
				cm->cmsg_len = CMSG_LEN(sizeof fds);
				memcpy(CMSG_DATA(cm), fds, sizeof fds);
			}
			if (sendmsg(fd, &mh, 0) != 32)
				_exit(1);
			char x;
			while (read(fd, &x, 1) > 0)
				;
			close(fd);
			close(mfd);
		}
		_exit(0);
	}
	close(lfd);
	uv_loop_t loop;
	uv_loop_init(&loop);
	const int want[3] = {RILL_ERING, RILL_ERING, RILL_EHANDSHAKE};
	const char *why[3] = {"sealed", "orders", "descriptors"};
	for (int k = 0; k < 3; k++) {
		struct vt_connect c = {0};
		TH_OK(rill_vchan_client(&loop, NULL, "fake", NULL,
		                        vt_connect_cb, &c));
		while (!c.done)
			uv_run(&loop, UV_RUN_ONCE);
		TH_EQ_ERR(c.status, want[k]);
		TH_CONTAINS(c.msg, why[k]);
	}
	int st;
	waitpid(pid, &st, 0);
	TH_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	unlink(path);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

/* A client in another process is killed with SIGKILL mid-transfer: the
 * server's reads drain and report EOF, its writes fail closed. */
TEST_TIMEOUT(peer_killed_mid_transfer, 60)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s;
	TH_OK(rill_vchan_server(&loop, NULL, "victim", 65536, 65536, NULL, NULL,
	                        &s));
	pid_t pid = fork();
	if (pid == 0) {
		uv_loop_t cl;
		uv_loop_init(&cl);
		struct vt_connect c = {0};
		rill_vchan_client(&cl, NULL, "victim", NULL, vt_connect_cb, &c);
		while (!c.done)
			uv_run(&cl, UV_RUN_ONCE);
		if (c.status != 0)
			_exit(2);
		static uint8_t chunk[65536];
		for (;;)
			if (rill_write_sync(c.f, chunk, sizeof chunk) != 0)
				_exit(3);
	}
	uint64_t got = 0;
	struct rill_buf *b = NULL;
	while (got < (8u << 20)) {
		TH_OK(rill_read_sync(s, &b));
		got += b->len;
		rill_buf_release(b);
	}
	TH_OK(kill(pid, SIGKILL));
	int st;
	waitpid(pid, &st, 0);
	TH_TRUE(WIFSIGNALED(st));
	int err;
	while ((err = rill_read_sync(s, &b)) == 0)
		rill_buf_release(b);
	TH_EQ_ERR(err, RILL_EOF);
	TH_EQ_ERR(rill_write_sync(s, "x", 1), RILL_ECLOSED);
	rill_close(s);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

/* URI listen serves several clients, each on its own vchan. */
struct vt_accept {
	struct rill_flow *f[4];
	int n;
};

static void vt_accept_cb(struct rill_listener *l, struct rill_flow *f,
                         int status, const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct vt_accept *a = ud;
	if (status == 0 && a->n < 4)
		a->f[a->n++] = f;
	else
		rill_close(f);
}

TEST(uri_listen_and_connect)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vt_accept a = {0};
	struct rill_listener *l;
	TH_OK(rill_listen(&loop, "vchan:d1/svc?read_size=1025&write_size=3000",
	                  NULL, vt_accept_cb, &a, &l));
	char u[200];
	TH_OK(rill_listener_uri(l, u, sizeof u));
	TH_CONTAINS(u, "vchan:d1/svc");
	struct rill_flow *c[2];
	for (int i = 0; i < 2; i++)
		TH_OK(rill_connect_sync(&loop, "vchan:d1/svc", NULL, &c[i]));
	while (a.n < 2)
		uv_run(&loop, UV_RUN_ONCE);
	int r, w;
	TH_OK(rill__vchan_orders_of(a.f[0], &r, &w));
	TH_EQ_INT(r, 11);
	TH_EQ_INT(w, 12);
	vt_transfer(&loop, c[1], a.f[1], 50000, 60000);
	vt_transfer(&loop, c[0], a.f[0], 70000, 10);
	rill_listener_close(l);
	for (int i = 0; i < 2; i++) {
		rill_close(c[i]);
		rill_close(a.f[i]);
	}
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

/* Ping-pong of 1 byte with no spin: every exchange goes through the
 * notify bits and the eventfd, so a lost wake-up hangs (the timeout). */
TEST_TIMEOUT(ping_pong_without_spin, 60)
{
	vt_private_dir();
	setenv("RILL_VCHAN_SPIN_NS", "0", 1);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s;
	TH_OK(rill_vchan_server(&loop, NULL, "pp", 1024, 1024, NULL, NULL, &s));
	pid_t pid = fork();
	if (pid == 0) {
		uv_loop_t cl;
		uv_loop_init(&cl);
		struct vt_connect c = {0};
		rill_vchan_client(&cl, NULL, "pp", NULL, vt_connect_cb, &c);
		while (!c.done)
			uv_run(&cl, UV_RUN_ONCE);
		struct rill_buf *b;
		while (rill_read_sync(c.f, &b) == 0) {
			if (rill_write_sync(c.f, b->data, b->len) != 0)
				_exit(3);
			rill_buf_release(b);
		}
		_exit(0);
	}
	for (int i = 0; i < 3000; i++) {
		uint8_t x = (uint8_t)i;
		TH_OK(rill_write_sync(s, &x, 1));
		struct rill_buf *b;
		TH_OK(rill_read_sync(s, &b));
		TH_EQ_INT(b->len, 1);
		TH_EQ_INT(b->data[0], x);
		rill_buf_release(b);
	}
	TH_OK(rill_shutdown_sync(s, RILL_SHUT_WR));
	int st;
	waitpid(pid, &st, 0);
	TH_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	rill_close(s);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

/* rill-to-rill, shutdown(write) on one side leaves the other direction
 * open (an extension of the Xen protocol, see rill/vchan.h); over
 * shut+vchan the same holds by the shut layer's framing. */
TEST(half_close_rill_to_rill_and_over_shut)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s, *c;
	TH_OK(vt_pair(&loop, "half", 4096, 2048, &s, &c));
	vt_transfer(&loop, c, s, 300000, 0);
	rill_close(s);
	rill_close(c);
	TH_OK(vt_pair(&loop, "half2", 1024, 1 << 20, &s, &c));
	TH_OK(rill_shut_attach(s, &s));
	TH_OK(rill_shut_attach(c, &c));
	vt_transfer(&loop, s, c, 0, 500000);
	rill_close(s);
	rill_close(c);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

/* A big read's buffer comes from the flow's pool: it must stay valid
 * after both flows are closed, and be freed when released (ASan and
 * valgrind check the leak and the use). */
TEST(read_buffer_outlives_the_flow)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s, *c;
	TH_OK(vt_pair(&loop, "pool", 1 << 20, 1 << 20, &s, &c));
	static uint8_t big[200000];
	memset(big, 0x6b, sizeof big);
	TH_OK(rill_write_sync(c, big, sizeof big));
	struct rill_buf *b1 = NULL, *b2 = NULL;
	TH_OK(rill_read_sync(s, &b1));
	TH_CMP_INT(b1->len, >=, 32 * 1024);
	TH_OK(rill_write_sync(c, big, sizeof big));
	TH_OK(rill_read_sync(s, &b2));
	TH_TRUE(b1->data != b2->data); /* never two owners of one block */
	rill_buf_release(b2);
	rill_close(s);
	rill_close(c);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
	TH_EQ_INT(b1->data[0], 0x6b);
	TH_EQ_INT(b1->data[b1->len - 1], 0x6b);
	rill_buf_release(b1);
}

static void vt_flag_cb(uv_timer_t *t)
{
	*(bool *)t->data = true;
	/* A timer run at the start of an iteration would otherwise leave
	 * uv_run(UV_RUN_ONCE) blocked in poll with nothing else to wake it. */
	uv_stop(t->loop);
}

static void vt_noop_read(struct rill_flow *f, int status, struct rill_buf *b,
                         void *ud)
{
	(void)f;
	(void)status;
	(void)ud;
	rill_buf_release(b);
}

/* A read pending on an idle vchan (also under the shut layer) must leave
 * the loop free to run timers. */
TEST(idle_read_lets_timers_run)
{
	vt_private_dir();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s, *c;
	TH_OK(vt_pair(&loop, "idle", 256 * 1024, 256 * 1024, &s, &c));
	TH_OK(rill_shut_attach(s, &s));
	TH_OK(rill_shut_attach(c, &c));
	TH_OK(rill_read(s, vt_noop_read, NULL));
	uv_timer_t t;
	bool done = false;
	uv_timer_init(&loop, &t);
	t.data = &done;
	uv_timer_start(&t, vt_flag_cb, 2, 0);
	for (int i = 0; i < 1000 && !done; i++)
		uv_run(&loop, UV_RUN_ONCE);
	TH_TRUE(done);
	uv_close((uv_handle_t *)&t, NULL);
	rill_close(s);
	rill_close(c);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}
