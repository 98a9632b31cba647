/*
 * AF_VSOCK through rill's API against the Linux kernel's own vsock code,
 * inside a QEMU guest of tests/vm/ (vsock_loopback: CID 1 is this machine).
 * Every test is TEST_GUEST: on the host this program registers nothing and
 * never opens a vsock socket.
 *
 *   listening on any CID and port, and what rill_listener_uri says then
 *   a refused connect (no listener) is RILL_ECONNREFUSED, with or without
 *   retries; a retried connect reaches a listener that starts late
 *   a CID without a transport fails clearly; flow kind and addresses
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"
#include "vsock_fixture.h"

/* A port nobody else in the guest uses: from the pid (each test runs in
 * its own process). */
static unsigned test_port(unsigned salt)
{
	return 20000u + ((unsigned)getpid() * 4u + salt) % 40000u;
}

/* Writes `msg` on a and reads it whole on b. */
static void pass_bytes(struct rill_flow *a, struct rill_flow *b,
                       const char *msg)
{
	TH_OK(rill_write_sync(a, msg, strlen(msg)));
	vfx_expect_read(b, msg);
}

/* Connects to uri, expects the flow accepted into acc, and passes bytes
 * both ways. */
static void connect_and_talk(uv_loop_t *loop, const char *uri,
                             struct vfx_accepted *acc)
{
	struct rill_flow *c = NULL;
	TH_OK(rill_connect_sync(loop, uri, NULL, &c));
	TH_EQ_STR(rill_flow_kind(c), "vsock");
	vfx_run_until_flow(loop, &acc->f);
	pass_bytes(c, acc->f, "to the listener");
	pass_bytes(acc->f, c, "and back");
	rill_close(c);
	rill_close(acc->f);
	acc->f = NULL;
}

/* ---------------------------------------------------------------------- */
/* Listening */

/* Was tests/test_vsock.c vsock_listen_on_any, on the host: it moved here
 * so that `make check` never binds the machine's own vsock. */
TEST_GUEST(vsock_listen_on_any)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vfx_accepted acc = {0};
	struct rill_listener *l = NULL;
	char uri[64];
	unsigned port = test_port(0);
	snprintf(uri, sizeof uri, "vsock://any:%u", port);
	TH_OK(rill_listen(&loop, uri, NULL, vfx_acc_cb, &acc, &l));
	char buf[128];
	TH_OK(rill_listener_uri(l, buf, sizeof buf));
	/* vsock_loopback alone gives no local CID (the ioctl answers
	 * VMADDR_CID_ANY): the URI names CID 1, where this machine's own
	 * connections go. */
	char want[64];
	snprintf(want, sizeof want, "vsock://local:%u", port);
	TH_EQ_STR(buf, want);
	connect_and_talk(&loop, buf, &acc);
	/* A second listener on the same port is refused. */
	struct rill_listener *l2 = NULL;
	TH_EQ_ERR(rill_listen(&loop, uri, NULL, vfx_acc_cb, &acc, &l2),
	          -EADDRINUSE);
	TH_CONTAINS(rill_last_errmsg(), uri + strlen("vsock://"));
	rill_listener_close(l);
	vfx_finish_loop(&loop);
}

TEST_GUEST(vsock_listen_any_port)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vfx_accepted acc = {0};
	struct rill_listener *l = NULL;
	TH_OK(
	    rill_listen(&loop, "vsock://any:any", NULL, vfx_acc_cb, &acc, &l));
	char buf[128];
	TH_OK(rill_listener_uri(l, buf, sizeof buf));
	unsigned port = 0;
	char tail = 0;
	TH_EQ_INT(sscanf(buf, "vsock://local:%u%c", &port, &tail), 1);
	TH_TRUE(port != 0xFFFFFFFFu); /* the kernel's choice, not "any" */
	connect_and_talk(&loop, buf, &acc);
	/* Twice: the listener keeps accepting. */
	connect_and_talk(&loop, buf, &acc);
	rill_listener_close(l);
	vfx_finish_loop(&loop);
}

TEST_GUEST(vsock_listen_cid_local)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vfx_accepted acc = {0};
	struct rill_listener *l = NULL;
	char uri[64], buf[128];
	snprintf(uri, sizeof uri, "vsock://1:%u", test_port(1));
	TH_OK(rill_listen(&loop, uri, NULL, vfx_acc_cb, &acc, &l));
	TH_OK(rill_listener_uri(l, buf, sizeof buf));
	snprintf(uri, sizeof uri, "vsock://local:%u", test_port(1));
	TH_EQ_STR(buf, uri);
	connect_and_talk(&loop, buf, &acc);
	rill_listener_close(l);
	vfx_finish_loop(&loop);
}

/* ---------------------------------------------------------------------- */
/* Connecting */

TEST_GUEST(vsock_addresses)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vfx_accepted acc = {0};
	struct rill_listener *l = NULL;
	char uri[64], buf[128];
	snprintf(uri, sizeof uri, "vsock://any:%u", test_port(0));
	TH_OK(rill_listen(&loop, uri, NULL, vfx_acc_cb, &acc, &l));
	TH_OK(rill_listener_uri(l, buf, sizeof buf));
	struct rill_flow *c = NULL;
	TH_OK(rill_connect_sync(&loop, buf, NULL, &c));
	vfx_run_until_flow(&loop, &acc.f);
	/* The client's peer is the listener's port on CID 1; the accepted
	 * flow's peer is the client's (kernel-chosen) port. */
	char peer[128], local[128], apeer[128], alocal[128];
	TH_OK(rill_flow_address(c, RILL_ADDR_PEER, peer, sizeof peer));
	TH_EQ_STR(peer, buf);
	/* The kernel binds the client to any CID; its port is the one the
	 * accepted flow sees, on CID 1. */
	TH_OK(rill_flow_address(c, RILL_ADDR_LOCAL, local, sizeof local));
	TH_OK(rill_flow_address(acc.f, RILL_ADDR_PEER, apeer, sizeof apeer));
	TH_CONTAINS(apeer, "vsock://local:");
	TH_EQ_STR(strrchr(apeer, ':'), strrchr(local, ':'));
	TH_OK(rill_flow_address(acc.f, RILL_ADDR_LOCAL, alocal, sizeof alocal));
	TH_CONTAINS(alocal, buf + strlen("vsock://local"));
	rill_close(c);
	rill_close(acc.f);
	rill_listener_close(l);
	vfx_finish_loop(&loop);
}

/* The kernel answers a connect to a port without a listener with a reset
 * (ECONNRESET from connect); rill reports it as the refusal it is. */
TEST_GUEST(vsock_connect_refused)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char uri[64];
	snprintf(uri, sizeof uri, "vsock://1:%u", test_port(2));
	struct vfx_conn r = {0};
	TH_OK(rill_connect(&loop, uri, NULL, vfx_conn_cb, &r));
	vfx_run_until(&loop, &r.done);
	TH_EQ_ERR(r.status, RILL_ECONNREFUSED);
	TH_TRUE(r.f == NULL);
	TH_CONTAINS(r.msg, uri);
	TH_CONTAINS(r.msg, "refused");
	vfx_finish_loop(&loop);
}

TEST_GUEST(vsock_connect_refused_sync)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char uri[64];
	snprintf(uri, sizeof uri, "shut+vsock://1:%u", test_port(2));
	struct rill_flow *f = NULL;
	TH_EQ_ERR(rill_connect_sync(&loop, uri, NULL, &f), RILL_ECONNREFUSED);
	TH_CONTAINS(rill_last_errmsg(), "refused");
	TH_TRUE(f == NULL);
	vfx_finish_loop(&loop);
}

/* Retries of a refused connect end refused after retry_until_ms. */
TEST_GUEST(vsock_retry_until_gives_up_refused)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char uri[64];
	snprintf(uri, sizeof uri, "vsock://1:%u", test_port(2));
	struct vfx_conn r = {0};
	struct rill_connect_opts o = {.retry_until_ms = 600};
	uint64_t t0 = uv_hrtime();
	TH_OK(rill_connect(&loop, uri, &o, vfx_conn_cb, &r));
	vfx_run_until(&loop, &r.done);
	uint64_t ms = (uv_hrtime() - t0) / 1000000u;
	TH_EQ_ERR(r.status, RILL_ECONNREFUSED);
	TH_CONTAINS(r.msg, "refused");
	/* It did retry for the whole window, and then stopped. */
	TH_CMP_INT(ms, >=, 550);
	TH_CMP_INT(ms, <, 5000);
	vfx_finish_loop(&loop);
}

struct late {
	uv_loop_t *loop;
	const char *uri;
	struct rill_listener *l;
	struct vfx_accepted acc;
};

static void late_listen(uv_timer_t *t)
{
	struct late *s = t->data;
	if (rill_listen(s->loop, s->uri, NULL, vfx_acc_cb, &s->acc, &s->l) != 0)
		TH_FAIL("late listen %s: %s", s->uri, rill_last_errmsg());
	uv_close((uv_handle_t *)t, NULL);
}

/* A connect with retry_until_ms reaches a listener that starts 400 ms
 * after the first (refused) attempt. */
TEST_GUEST(vsock_retry_until_late_listener)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char luri[64], curi[64];
	snprintf(luri, sizeof luri, "vsock://any:%u", test_port(3));
	snprintf(curi, sizeof curi, "vsock://1:%u", test_port(3));
	struct late s = {.loop = &loop, .uri = luri};
	uv_timer_t t;
	uv_timer_init(&loop, &t);
	t.data = &s;
	uv_timer_start(&t, late_listen, 400, 0);
	struct vfx_conn r = {0};
	struct rill_connect_opts o = {.retry_until_ms = 10000};
	uint64_t t0 = uv_hrtime();
	TH_OK(rill_connect(&loop, curi, &o, vfx_conn_cb, &r));
	vfx_run_until(&loop, &r.done);
	TH_OK(r.status);
	TH_CMP_INT((uv_hrtime() - t0) / 1000000u, >=, 390);
	vfx_run_until_flow(&loop, &s.acc.f);
	pass_bytes(r.f, s.acc.f, "late but there");
	rill_close(r.f);
	rill_close(s.acc.f);
	rill_listener_close(s.l);
	vfx_finish_loop(&loop);
}

/* No transport reaches CID 3 from this guest (vsock_loopback serves 1,
 * and 2 while no guest transport is loaded): a clear error, not a hang,
 * and not mistaken for a refusal. */
TEST_GUEST(vsock_connect_no_transport)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vfx_conn r = {0};
	struct rill_connect_opts o = {.timeout_ms = 5000,
	                              .retry_until_ms = 2000};
	TH_OK(rill_connect(&loop, "vsock://3:1234", &o, vfx_conn_cb, &r));
	vfx_run_until(&loop, &r.done);
	TH_EQ_ERR(r.status, -ENODEV);
	TH_CONTAINS(r.msg, "vsock://3:1234");
	vfx_finish_loop(&loop);
}
