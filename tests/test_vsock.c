/*
 * The vsock family through rill_connect / rill_listen: hybrid vsock and
 * HyperKit against hand-made VMMs and the emulator, the half-close
 * demonstration, AF_VSOCK URIs (never a socket: those tests run in a QEMU
 * guest, tests/vm/), AF_HYPERV's clear refusal on Linux. Never binds or
 * connects any real hypervisor endpoint.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vsock_fixture.h"

/* A hand-made VMM: a plain Unix listener at uds; connects through it with
 * hybrid-vsock and returns both ends (the client's connect pending). */
struct fake_vmm {
	struct vfx v;
	uv_loop_t loop;
	struct rill_listener *l;
	struct vfx_accepted acc;
	struct vfx_conn conn;
};

static void fake_vmm_start(struct fake_vmm *m, const char *scheme,
                           const char *target_suffix, uint64_t timeout_ms)
{
	vfx_init(&m->v);
	TH_OK(uv_loop_init(&m->loop));
	char luri[160], curi[200];
	const char *where = m->v.uds;
	if (strcmp(scheme, "hyperkit") == 0) {
		snprintf(luri, sizeof luri, "unix:%s/connect", m->v.dir);
		where = m->v.dir;
	} else {
		snprintf(luri, sizeof luri, "unix:%s", m->v.uds);
	}
	TH_OK(rill_listen(&m->loop, luri, NULL, vfx_acc_cb, &m->acc, &m->l));
	snprintf(curi, sizeof curi, "%s:%s%s", scheme, where, target_suffix);
	struct rill_connect_opts o = {.timeout_ms = timeout_ms};
	TH_OK(rill_connect(&m->loop, curi, &o, vfx_conn_cb, &m->conn));
	vfx_run_until_flow(&m->loop, &m->acc.f);
}

static void fake_vmm_done(struct fake_vmm *m)
{
	rill_close(m->acc.f);
	rill_close(m->conn.f);
	rill_listener_close(m->l);
	vfx_finish_loop(&m->loop);
	vfx_cleanup(&m->v);
}

/* ---------------------------------------------------------------------- */
/* hybrid-vsock handshake, byte by byte */

TEST(hybrid_sends_connect_and_accepts_ok)
{
	struct fake_vmm m = {0};
	fake_vmm_start(&m, "hybrid-vsock", ":52", 5000);
	vfx_expect_read(m.acc.f, "CONNECT 52\n");
	TH_TRUE(!m.conn.done); /* no flow before the reply */
	/* The reply and the first stream bytes in one write: the bytes
	 * after the line must reach the reader first. */
	TH_OK(rill_write_sync(m.acc.f, "OK 1073741824\nHELLO", 19));
	vfx_run_until(&m.loop, &m.conn.done);
	TH_OK(m.conn.status);
	TH_EQ_STR(rill_flow_kind(m.conn.f), "hybrid-vsock");
	vfx_expect_read(m.conn.f, "HELLO");
	TH_OK(rill_write_sync(m.conn.f, "ping", 4));
	vfx_expect_read(m.acc.f, "ping");
	fake_vmm_done(&m);
}

TEST(hybrid_refusal_says_what_came_back)
{
	struct fake_vmm m = {0};
	fake_vmm_start(&m, "hybrid-vsock", ":7", 5000);
	vfx_expect_read(m.acc.f, "CONNECT 7\n");
	TH_OK(rill_write_sync(m.acc.f, "FAILURE\n", 8));
	vfx_run_until(&m.loop, &m.conn.done);
	TH_EQ_ERR(m.conn.status, RILL_EHANDSHAKE);
	TH_TRUE(m.conn.f == NULL);
	TH_CONTAINS(m.conn.msg, "FAILURE\\n");
	TH_CONTAINS(m.conn.msg, "CONNECT 7");
	fake_vmm_done(&m);
}

TEST(hybrid_hangup_is_handshake_error)
{
	struct fake_vmm m = {0};
	fake_vmm_start(&m, "hybrid-vsock", ":9", 5000);
	vfx_expect_read(m.acc.f, "CONNECT 9\n");
	TH_OK(rill_write_sync(m.acc.f, "OK", 2));
	rill_close(m.acc.f);
	m.acc.f = NULL;
	vfx_run_until(&m.loop, &m.conn.done);
	TH_EQ_ERR(m.conn.status, RILL_EHANDSHAKE);
	TH_CONTAINS(m.conn.msg, "hung up");
	TH_CONTAINS(m.conn.msg, "\"OK\"");
	fake_vmm_done(&m);
}

TEST(hybrid_no_reply_hits_deadline)
{
	struct fake_vmm m = {0};
	fake_vmm_start(&m, "hybrid-vsock", ":9", 300);
	vfx_expect_read(m.acc.f, "CONNECT 9\n");
	vfx_run_until(&m.loop, &m.conn.done);
	TH_EQ_ERR(m.conn.status, RILL_ETIMEDOUT);
	TH_CONTAINS(m.conn.msg, "no reply to CONNECT 9");
	fake_vmm_done(&m);
}

TEST(hybrid_garbage_reply_fails_without_newline)
{
	struct fake_vmm m = {0};
	fake_vmm_start(&m, "hybrid-vsock", ":9", 5000);
	vfx_expect_read(m.acc.f, "CONNECT 9\n");
	TH_OK(rill_write_sync(m.acc.f, "HTTP/1.1 400", 12));
	vfx_run_until(&m.loop, &m.conn.done);
	TH_EQ_ERR(m.conn.status, RILL_EHANDSHAKE);
	TH_CONTAINS(m.conn.msg, "HTTP/1.1 400");
	fake_vmm_done(&m);
}

TEST(hybrid_connect_to_missing_vmm_fails)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vfx_conn r = {0};
	TH_OK(rill_connect(&loop, "hybrid-vsock:/nonexistent/rill/v.sock:5",
	                   NULL, vfx_conn_cb, &r));
	vfx_run_until(&loop, &r.done);
	TH_TRUE(r.status != 0);
	TH_CONTAINS(r.msg, "/nonexistent/rill/v.sock");
	vfx_finish_loop(&loop);
}

TEST(hybrid_listen_binds_path_underscore_port)
{
	struct vfx v;
	vfx_init(&v);
	uv_loop_t loop;
	uv_loop_init(&loop);
	char uri[160], direct[160];
	snprintf(uri, sizeof uri, "hybrid-vsock:%s:52", v.uds);
	struct vfx_accepted acc = {0};
	struct rill_listener *l;
	TH_OK(rill_listen(&loop, uri, NULL, vfx_acc_cb, &acc, &l));
	/* Where Firecracker connects for a guest's connection to port 52 */
	snprintf(direct, sizeof direct, "unix:%s_52", v.uds);
	struct rill_flow *c;
	TH_OK(rill_connect_sync(&loop, direct, NULL, &c));
	vfx_run_until_flow(&loop, &acc.f);
	TH_OK(rill_write_sync(c, "guest", 5));
	vfx_expect_read(acc.f, "guest");
	rill_close(c);
	rill_close(acc.f);
	rill_listener_close(l);
	vfx_finish_loop(&loop);
	vfx_cleanup(&v);
}

TEST(hybrid_guest_initiated_through_emulator)
{
	struct vfx v;
	vfx_init(&v);
	vfx_start_emulator(&v, "firecracker", NULL);
	uv_loop_t loop;
	uv_loop_init(&loop);
	char uri[160], gconn[160];
	snprintf(uri, sizeof uri, "hybrid-vsock:%s:1024", v.uds);
	struct vfx_accepted acc = {0};
	struct rill_listener *l;
	TH_OK(rill_listen(&loop, uri, NULL, vfx_acc_cb, &acc, &l));
	/* The "guest" asks the emulator for host port 1024. */
	snprintf(gconn, sizeof gconn, "unix:%s/connect", v.guest);
	struct rill_flow *g;
	TH_OK(rill_connect_sync(&loop, gconn, NULL, &g));
	TH_OK(rill_write_sync(g, "1024\nfrom guest", 15));
	vfx_run_until_flow(&loop, &acc.f);
	vfx_expect_read(acc.f, "from guest");
	rill_close(g);
	rill_close(acc.f);
	rill_listener_close(l);
	vfx_finish_loop(&loop);
	vfx_cleanup(&v);
}

/* ---------------------------------------------------------------------- */
/* HyperKit */

TEST(hyperkit_sends_cid_port_line)
{
	struct fake_vmm m = {0};
	fake_vmm_start(&m, "hyperkit", ":52", 5000);
	vfx_run_until(&m.loop, &m.conn.done);
	TH_OK(m.conn.status);
	TH_EQ_STR(rill_flow_kind(m.conn.f), "hyperkit");
	TH_OK(rill_write_sync(m.conn.f, "data", 4));
	vfx_expect_read(m.acc.f, "00000003.00000034\ndata");
	fake_vmm_done(&m);
}

TEST(hyperkit_cid_parameter)
{
	struct fake_vmm m = {0};
	fake_vmm_start(&m, "hyperkit", ":4096?cid=255", 5000);
	vfx_run_until(&m.loop, &m.conn.done);
	TH_OK(m.conn.status);
	vfx_expect_read(m.acc.f, "000000ff.00001000\n");
	fake_vmm_done(&m);
}

TEST(hyperkit_through_emulator_both_ways)
{
	struct vfx v;
	vfx_init(&v);
	vfx_start_emulator(&v, "hyperkit", "--propagate");
	uv_loop_t loop;
	uv_loop_init(&loop);
	char guri[160], curi[160];
	snprintf(guri, sizeof guri, "unix:%s/52", v.guest);
	snprintf(curi, sizeof curi, "hyperkit:%s:52", v.dir);
	struct rill_flow *a, *b;
	TH_OK(vfx_open_pair(&loop, guri, curi, &a, &b));
	TH_OK(rill_write_sync(a, "to guest", 8));
	vfx_expect_read(b, "to guest");
	TH_OK(rill_write_sync(b, "to host", 7));
	vfx_expect_read(a, "to host");
	rill_close(a);
	rill_close(b);
	/* Guest-initiated: HyperKit connects to <dir>/00000002.<port>. */
	char luri[160], gconn[160];
	snprintf(luri, sizeof luri, "hyperkit:%s:4660", v.dir);
	struct vfx_accepted acc = {0};
	struct rill_listener *l;
	TH_OK(rill_listen(&loop, luri, NULL, vfx_acc_cb, &acc, &l));
	char bound[160];
	snprintf(bound, sizeof bound, "%s/00000002.00001234", v.dir);
	TH_OK(access(bound, F_OK));
	snprintf(gconn, sizeof gconn, "unix:%s/connect", v.guest);
	struct rill_flow *g;
	TH_OK(rill_connect_sync(&loop, gconn, NULL, &g));
	TH_OK(rill_write_sync(g, "4660\nhk", 7));
	vfx_run_until_flow(&loop, &acc.f);
	vfx_expect_read(acc.f, "hk");
	rill_close(g);
	rill_close(acc.f);
	rill_listener_close(l);
	vfx_finish_loop(&loop);
	vfx_cleanup(&v);
}

/* ---------------------------------------------------------------------- */
/* The half-close demonstration (issue 5, acceptance): a request, a
 * half-close, a response of 1 MiB. Through the Firecracker-like muxer the
 * plain transport loses the response; shut+ on both ends keeps it. */

#define DEMO_RESPONSE (1024u * 1024u)

static uint64_t fnv1a(const uint8_t *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

struct demo {
	uv_loop_t *loop;
	struct rill_flow *client, *server;
	uint8_t *response;
	size_t req_got;
	bool server_done;
	uint64_t got_hash;
	size_t got_bytes;
	int client_end; /* RILL_EOF or the error that ended the response */
	bool client_done;
};

static void demo_server_read(struct rill_flow *f, int status,
                             struct rill_buf *b, void *ud)
{
	struct demo *d = ud;
	if (status == 0) {
		d->req_got += b->len;
		rill_buf_release(b);
		rill_read(f, demo_server_read, d);
		return;
	}
	/* The request ended (EOF): answer, then half-close. */
	d->server_done = true;
	if (status != RILL_EOF)
		return;
	struct rill_buf *r = rill_buf_copy(d->response, DEMO_RESPONSE);
	rill_write(f, r, NULL, NULL);
	rill_buf_release(r);
	rill_shutdown(f, RILL_SHUT_WR, NULL, NULL);
}

static void demo_client_read(struct rill_flow *f, int status,
                             struct rill_buf *b, void *ud)
{
	struct demo *d = ud;
	if (status == 0) {
		d->got_hash = fnv1a(b->data, b->len, d->got_hash);
		d->got_bytes += b->len;
		rill_buf_release(b);
		rill_read(f, demo_client_read, d);
		return;
	}
	d->client_end = status;
	d->client_done = true;
}

/* Runs the exchange; returns whether the response arrived intact. */
static bool demo_run(const char *layer, struct demo *d)
{
	struct vfx v;
	vfx_init(&v);
	vfx_start_emulator(&v, "firecracker", NULL);
	uv_loop_t loop;
	uv_loop_init(&loop);
	char guri[160], curi[160];
	snprintf(guri, sizeof guri, "%sunix:%s/80", layer, v.guest);
	snprintf(curi, sizeof curi, "%shybrid-vsock:%s:80", layer, v.uds);
	TH_OK(vfx_open_pair(&loop, guri, curi, &d->client, &d->server));
	d->response = malloc(DEMO_RESPONSE);
	for (size_t i = 0; i < DEMO_RESPONSE; i++)
		d->response[i] = (uint8_t)(i * 2654435761u >> 13);
	d->got_hash = 0xcbf29ce484222325ull;
	TH_OK(rill_read(d->server, demo_server_read, d));
	TH_OK(rill_read(d->client, demo_client_read, d));
	TH_OK(rill_write_copy(d->client, "GET /big\n", 9, NULL, NULL));
	int se = rill_shutdown(d->client, RILL_SHUT_WR, NULL, NULL);
	if (layer[0] == '\0') {
		/* The VMM would turn the write shutdown into the end of both
		 * directions: refused, and nothing changes. */
		TH_EQ_ERR(se, RILL_ENOHALFCLOSE);
		TH_TRUE(!rill_flow_can_half_close(d->client));
		while (d->req_got < 9)
			if (uv_run(&loop, UV_RUN_ONCE) == 0)
				break;
	} else {
		TH_OK(se);
		TH_TRUE(rill_flow_can_half_close(d->client));
	}
	while (!d->client_done && layer[0] != '\0')
		if (uv_run(&loop, UV_RUN_ONCE) == 0)
			break;
	uint64_t want =
	    fnv1a(d->response, DEMO_RESPONSE, 0xcbf29ce484222325ull);
	th_note("%s: request %zu bytes seen, response %zu of %u bytes, "
	        "ended by %s",
	        layer[0] ? layer : "plain", d->req_got, d->got_bytes,
	        DEMO_RESPONSE, rill_err_name(d->client_end));
	bool intact = d->client_end == RILL_EOF &&
	              d->got_bytes == DEMO_RESPONSE && d->got_hash == want;
	rill_close(d->client);
	rill_close(d->server);
	vfx_finish_loop(&loop);
	free(d->response);
	vfx_cleanup(&v);
	return intact;
}

/* Plain hybrid-vsock cannot half-close: the VMM's muxer would end the
 * guest's connection both ways, and the guest's reply would be lost
 * (what happened before the flow said so). The shutdown is refused and
 * the connection stays whole: the request arrives, no EOF does. */
TEST(half_close_through_vmm_refused_when_plain)
{
	struct demo d = {0};
	TH_TRUE(!demo_run("", &d));
	TH_EQ_U64(d.req_got, 9); /* the request did arrive */
	TH_TRUE(!d.server_done); /* and no false end of it */
	TH_EQ_U64(d.got_bytes, 0);
}

TEST(half_close_through_vmm_with_shut_keeps_reply)
{
	struct demo d = {0};
	TH_TRUE(demo_run("shut+", &d));
	TH_EQ_U64(d.req_got, 9);
	TH_EQ_U64(d.got_bytes, DEMO_RESPONSE);
}

/* ---------------------------------------------------------------------- */
/* AF_VSOCK and AF_HYPERV */

TEST(vsock_uri_check)
{
	TH_OK(rill_uri_check("vsock://any:5000"));
	TH_OK(rill_uri_check("vsock://host:22"));
	TH_OK(rill_uri_check("vsock://3:1024"));
	TH_OK(rill_uri_check("shut+vsock://hypervisor:1"));
	TH_EQ_ERR(rill_uri_check("vsock://guest:5"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "cid");
	TH_CONTAINS(rill_last_errmsg(), "vsock://guest:5");
	TH_EQ_ERR(rill_uri_check("vsock://3:99999999999"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "port");
	TH_EQ_ERR(rill_uri_check("vsock:3:5"), RILL_EURI);
	TH_EQ_ERR(rill_uri_check("vsock://3:5?bogus=1"), RILL_EURI);
	TH_EQ_ERR(rill_uri_check("hybrid-vsock:/tmp/v.sock"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "port");
	TH_OK(rill_uri_check("hybrid-vsock:/tmp/v.sock:52"));
	TH_OK(rill_uri_check("shut+hybrid-vsock:/tmp/v.sock:52"));
	TH_OK(rill_uri_check("hyperkit:/tmp/hk:52?cid=3"));
	TH_EQ_ERR(rill_uri_check("hyperkit:/tmp/hk:52?cid=x"), RILL_EURI);
	TH_OK(rill_uri_check("shut+unix:/tmp/s?close_timeout=100"));
	TH_EQ_ERR(rill_uri_check("shut+unix:/tmp/s?close_timeout=-1"),
	          RILL_EURI);
}

/* Listening and connecting on real AF_VSOCK sockets happens only inside a
 * QEMU guest (tests/vm/vsock_api.c): the host's own vsock reaches the real
 * hypervisor and is never touched here. */

TEST(hvsock_refused_clearly_on_linux)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vfx_conn r = {0};
	TH_OK(rill_uri_check("hvsock://parent/5000"));
	TH_OK(rill_uri_check("hvsock://wildcard/"
	                     "3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
	TH_EQ_ERR(
	    rill_connect(&loop, "hvsock://parent/5000", NULL, vfx_conn_cb, &r),
	    RILL_ENOTSUP_PLATFORM);
	TH_CONTAINS(rill_last_errmsg(),
	            "AF_HYPERV sockets exist only on Windows");
	struct rill_listener *l = NULL;
	TH_EQ_ERR(rill_listen(&loop, "hvsock://wildcard/80", NULL, vfx_acc_cb,
	                      NULL, &l),
	          RILL_ENOTSUP_PLATFORM);
	TH_CONTAINS(rill_last_errmsg(), "only on Windows");
	TH_EQ_ERR(rill_uri_check("hvsock://nowhere/80"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "VM");
	TH_EQ_ERR(rill_uri_check("hvsock://parent/port"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "service");
	TH_TRUE(!r.done);
	vfx_finish_loop(&loop);
}

/* ---------------------------------------------------------------------- */
/* The shut layer over a real socket: a reset during the close drain. */

TEST(shut_drain_absorbs_reset)
{
	struct vfx v;
	vfx_init(&v);
	uv_loop_t loop;
	uv_loop_init(&loop);
	char luri[160], curi[160];
	snprintf(luri, sizeof luri, "unix:%s/r", v.dir);
	snprintf(curi, sizeof curi, "shut+unix:%s/r", v.dir);
	struct rill_flow *a, *b;
	TH_OK(vfx_open_pair(&loop, luri, curi, &a, &b));
	/* Bytes the raw peer never reads: closing it then resets the
	 * connection (a Unix socket closed with unread data). */
	static uint8_t junk[100000];
	TH_OK(rill_write_sync(a, junk, sizeof junk));
	uint64_t t0 = uv_hrtime();
	rill_close(a); /* Close sent; the drain waits for an answer */
	uv_run(&loop, UV_RUN_NOWAIT);
	rill_close(b); /* ...which is a reset */
	uv_run(&loop, UV_RUN_DEFAULT);
	/* Well before the 5 s deadline: the reset ended the drain. */
	TH_CMP_INT((uv_hrtime() - t0) / 1000000, <, 3000);
	TH_OK(uv_loop_close(&loop));
	vfx_cleanup(&v);
}
