/*
 * Unit tests of the tunnel layers on in-memory pairs, one side played by
 * the test with raw bytes: PROXY headers in (addresses reported by
 * rill_flow_address, vsock TLV, strictness, deadline) and out (exact
 * bytes), the SOCKS5 and CONNECT replies and their error mapping,
 * rill_tunnel_target / rill_tunnel_reply results, one deadline for a
 * whole handshake however it is trickled, and rill relay's
 * --allow-target rules (cli/target_allow.c).
 */
#include <string.h>

#include "harness.h"
#include "layer/tunnel/wire.h"
#include "core/scheme.h"
#include "schemes.h"
#include "target_allow.h"

struct att {
	struct rill_flow *f;
	int status;
	char msg[512];
	bool done;
};

static void on_att(struct rill_flow *f, int status, const char *errmsg,
                   void *ud)
{
	struct att *a = ud;
	a->f = f;
	a->status = status;
	snprintf(a->msg, sizeof a->msg, "%s", errmsg != NULL ? errmsg : "");
	a->done = true;
}

/* Attaches scheme `l` from `uri` (its parameters) over inner. */
static void attach(uv_loop_t *loop, const struct rill_layer_scheme *l,
                   const char *uri, const struct rill_connect_opts *co,
                   struct rill_flow *inner, int role, uint64_t deadline,
                   struct att *a)
{
	(void)loop;
	struct rill_uri u;
	TH_OK(rill__uri_parse(uri, &u));
	u.connect_opts = co;
	memset(a, 0, sizeof *a);
	TH_OK(l->attach(inner, &u, role, deadline, on_att, a));
	rill__uri_free(&u);
}

static void run_until(uv_loop_t *loop, const bool *done)
{
	while (!*done)
		uv_run(loop, UV_RUN_ONCE);
}

static void read_exact(struct rill_flow *f, const void *want, size_t n)
{
	uint8_t got[4096];
	size_t have = 0;
	while (have < n) {
		struct rill_buf *b;
		TH_OK(rill_read_sync(f, &b));
		TH_CMP_INT(have + b->len, <=, n);
		memcpy(got + have, b->data, b->len);
		have += b->len;
		rill_buf_release(b);
	}
	TH_EQ_MEM(got, want, n);
}

static const uint8_t pp2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

TEST(proxy_listener_reports_a_v2_vsock_header)
{
	uv_loop_t *loop = uv_default_loop();
	struct rill_flow *x, *y;
	TH_OK(rill_pair(loop, 0, &x, &y));
	struct att a;
	attach(loop, &rill__proxy_scheme, "proxy+tcp://h:1", NULL, y,
	       RILL_ROLE_ACCEPT, 5000, &a);
	uint8_t h[16 + 19 + 5] = {0};
	memcpy(h, pp2_sig, 12);
	h[12] = 0x21;
	h[13] = 0x00;
	h[15] = 19;
	/* Type 0xE8, length 16: CIDs 3 -> 2, ports 1024 -> 5000. */
	const uint8_t tlv[19] = {0xE8, 0, 16, 0, 0, 0, 3, 0,    0,   4,
	                         0,    0, 0,  0, 2, 0, 0, 0x13, 0x88};
	memcpy(h + 16, tlv, 19);
	memcpy(h + 35, "hello", 5);
	TH_OK(rill_write_sync(x, h, sizeof h));
	run_until(loop, &a.done);
	TH_OK(a.status);
	char addr[100];
	TH_OK(rill_flow_address(a.f, RILL_ADDR_PEER, addr, sizeof addr));
	TH_EQ_STR(addr, "vsock://3:1024");
	TH_OK(rill_flow_address(a.f, RILL_ADDR_LOCAL, addr, sizeof addr));
	TH_EQ_STR(addr, "vsock://2:5000");
	read_exact(a.f, "hello", 5);
	TH_EQ_STR(rill_flow_kind(a.f), "proxy");
	rill_close(a.f);
	rill_close(x);
}

TEST(proxy_listener_reports_a_v1_header)
{
	uv_loop_t *loop = uv_default_loop();
	struct rill_flow *x, *y;
	TH_OK(rill_pair(loop, 0, &x, &y));
	struct att a;
	attach(loop, &rill__proxy_scheme, "proxy+tcp://h:1", NULL, y,
	       RILL_ROLE_ACCEPT, 5000, &a);
	const char *h = "PROXY TCP6 2001:db8::1 ::1 5000 443\r\nhi";
	/* In two pieces: the header may arrive in any number of reads. */
	TH_OK(rill_write_sync(x, h, 9));
	TH_OK(rill_write_sync(x, h + 9, strlen(h) - 9));
	run_until(loop, &a.done);
	TH_OK(a.status);
	char addr[100];
	TH_OK(rill_flow_address(a.f, RILL_ADDR_PEER, addr, sizeof addr));
	TH_EQ_STR(addr, "tcp://[2001:db8::1]:5000");
	read_exact(a.f, "hi", 2);
	rill_close(a.f);
	rill_close(x);
}

TEST(proxy_listener_refuses_bad_headers_and_silence)
{
	static const char *const bad[] = {
	    "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n",
	    "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
	    "SSH-2.0-OpenSSH\r\n",
	};
	uv_loop_t *loop = uv_default_loop();
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct rill_flow *x, *y;
		TH_OK(rill_pair(loop, 0, &x, &y));
		struct att a;
		attach(loop, &rill__proxy_scheme, "proxy+tcp://h:1", NULL, y,
		       RILL_ROLE_ACCEPT, 5000, &a);
		TH_OK(rill_write_sync(x, bad[i], strlen(bad[i])));
		run_until(loop, &a.done);
		TH_EQ_ERR(a.status, RILL_EFRAME);
		TH_CONTAINS(a.msg, "bad PROXY protocol header");
		rill_close(x);
	}
	/* A silent peer: the deadline. */
	struct rill_flow *x, *y;
	TH_OK(rill_pair(loop, 0, &x, &y));
	struct att a;
	attach(loop, &rill__proxy_scheme, "proxy+tcp://h:1", NULL, y,
	       RILL_ROLE_ACCEPT, 200, &a);
	run_until(loop, &a.done);
	TH_EQ_ERR(a.status, RILL_ETIMEDOUT);
	rill_close(x);
}

TEST(proxy_client_sends_the_relayed_addresses)
{
	uv_loop_t *loop = uv_default_loop();
	struct rill_connect_opts co = {.proxy_header_src = "vsock://3:1024",
	                               .proxy_header_dst = "vsock://host:5000"};
	struct rill_flow *x, *y;
	TH_OK(rill_pair(loop, 0, &x, &y));
	struct att a;
	attach(loop, &rill__proxy_scheme, "proxy+tcp://h:1", &co, x,
	       RILL_ROLE_CONNECT, 0, &a);
	run_until(loop, &a.done);
	TH_OK(a.status);
	uint8_t want[35] = {0};
	memcpy(want, pp2_sig, 12);
	want[12] = 0x21;
	want[15] = 19;
	/* Type 0xE8, length 16: CIDs 3 -> 2, ports 1024 -> 5000. */
	const uint8_t tlv[19] = {0xE8, 0, 16, 0, 0, 0, 3, 0,    0,   4,
	                         0,    0, 0,  0, 2, 0, 0, 0x13, 0x88};
	memcpy(want + 16, tlv, 19);
	read_exact(y, want, sizeof want);
	rill_close(a.f);
	rill_close(y);

	/* v1: TCP4 as HAProxy writes it; vsock is UNKNOWN. */
	co.proxy_header_src = "tcp://192.0.2.1:5000";
	co.proxy_header_dst = "tcp://198.51.100.2:443";
	TH_OK(rill_pair(loop, 0, &x, &y));
	attach(loop, &rill__proxy_scheme, "proxy+tcp://h:1?version=1", &co, x,
	       RILL_ROLE_CONNECT, 0, &a);
	run_until(loop, &a.done);
	const char *v1 = "PROXY TCP4 192.0.2.1 198.51.100.2 5000 443\r\n";
	read_exact(y, v1, strlen(v1));
	rill_close(a.f);
	rill_close(y);
	co.proxy_header_src = "vsock://3:1024";
	TH_OK(rill_pair(loop, 0, &x, &y));
	attach(loop, &rill__proxy_scheme, "proxy+tcp://h:1?version=1", &co, x,
	       RILL_ROLE_CONNECT, 0, &a);
	run_until(loop, &a.done);
	read_exact(y, "PROXY UNKNOWN\r\n", 15);
	rill_close(a.f);
	rill_close(y);
}

/* A socks5+ or connect+ client on x and server on y; the server's
 * accepted flow is *srv once the request was read. */
static void tunnel_pair(uv_loop_t *loop, const struct rill_layer_scheme *l,
                        const char *curi, const char *suri, struct att *c,
                        struct att *s)
{
	struct rill_flow *x, *y;
	TH_OK(rill_pair(loop, 0, &x, &y));
	attach(loop, l, curi, NULL, x, RILL_ROLE_CONNECT, 5000, c);
	attach(loop, l, suri, NULL, y, RILL_ROLE_ACCEPT, 5000, s);
	run_until(loop, &s->done);
	TH_OK(s->status);
}

TEST(socks5_reply_waits_and_maps_errors)
{
	uv_loop_t *loop = uv_default_loop();
	struct att c, s;
	tunnel_pair(loop, &rill__socks5_scheme,
	            "socks5+tcp://h:1?target=example.org:443&user=u&password=p",
	            "socks5+tcp://h:1?user=u&password=p", &c, &s);
	char t[300];
	TH_OK(rill_tunnel_target(s.f, t, sizeof t));
	TH_EQ_STR(t, "example.org:443");
	/* No reply yet: the client is still waiting. */
	for (int i = 0; i < 20; i++)
		uv_run(loop, UV_RUN_NOWAIT);
	TH_TRUE(!c.done);
	TH_OK(rill_tunnel_reply(s.f, RILL_ECONNREFUSED, NULL, NULL));
	TH_EQ_ERR(rill_tunnel_reply(s.f, 0, NULL, NULL), RILL_EALREADY);
	run_until(loop, &c.done);
	TH_EQ_ERR(c.status, RILL_ECONNREFUSED);
	TH_CONTAINS(c.msg, "proxy said 5 (connection refused)");
	rill_close(s.f);

	tunnel_pair(loop, &rill__socks5_scheme,
	            "socks5+tcp://h:1?target=[2001:db8::7]:22",
	            "socks5+tcp://h:1", &c, &s);
	TH_OK(rill_tunnel_target(s.f, t, sizeof t));
	TH_EQ_STR(t, "[2001:db8::7]:22");
	TH_OK(rill_tunnel_reply(s.f, 0, NULL, NULL));
	run_until(loop, &c.done);
	TH_OK(c.status);
	TH_OK(rill_write_sync(c.f, "ping", 4));
	read_exact(s.f, "ping", 4);
	TH_OK(rill_write_sync(s.f, "pong", 4));
	read_exact(c.f, "pong", 4);
	uint64_t wr;
	rill_flow_counters(s.f, NULL, &wr, NULL, NULL);
	TH_EQ_U64(wr, 4); /* the reply is not the flow's data */
	rill_close(s.f);
	rill_close(c.f);
}

TEST(socks5_wrong_password_is_an_auth_error)
{
	uv_loop_t *loop = uv_default_loop();
	struct rill_flow *x, *y;
	TH_OK(rill_pair(loop, 0, &x, &y));
	struct att c, s;
	attach(loop, &rill__socks5_scheme,
	       "socks5+tcp://h:1?target=a.test:1&user=u&password=bad", NULL, x,
	       RILL_ROLE_CONNECT, 5000, &c);
	attach(loop, &rill__socks5_scheme, "socks5+tcp://h:1?user=u&password=p",
	       NULL, y, RILL_ROLE_ACCEPT, 5000, &s);
	run_until(loop, &c.done);
	run_until(loop, &s.done);
	TH_EQ_ERR(c.status, RILL_EPROXY_AUTH);
	TH_EQ_ERR(s.status, RILL_EPROXY_AUTH);
	TH_CONTAINS(s.msg, "wrong username or password");
}

TEST(connect_reply_maps_errors_and_keeps_early_bytes)
{
	uv_loop_t *loop = uv_default_loop();
	struct att c, s;
	tunnel_pair(loop, &rill__connect_scheme,
	            "connect+tcp://h:1?target=a.test:22&auth=u:p",
	            "connect+tcp://h:1?auth=u:p", &c, &s);
	TH_OK(rill_tunnel_reply(s.f, -EACCES, NULL, NULL));
	run_until(loop, &c.done);
	TH_EQ_ERR(c.status, RILL_EPROXY_DENIED);
	TH_CONTAINS(c.msg, "proxy said 403 Forbidden");
	rill_close(s.f);

	/* A server's first bytes right behind its 200 are the flow's. */
	struct rill_flow *x, *y;
	TH_OK(rill_pair(loop, 0, &x, &y));
	attach(loop, &rill__connect_scheme,
	       "connect+tcp://h:1?target=a.test:22", NULL, x, RILL_ROLE_CONNECT,
	       5000, &c);
	const char *r = "HTTP/1.1 200 OK\r\nVia: x\r\n\r\nSSH-2.0-x\r\n";
	TH_OK(rill_write_sync(y, r, strlen(r)));
	run_until(loop, &c.done);
	TH_OK(c.status);
	read_exact(c.f, "SSH-2.0-x\r\n", 11);
	TH_EQ_ERR(rill_tunnel_target(c.f, (char[8]){0}, 8), -ENOTSUP);
	rill_close(c.f);
	rill_close(y);
}

/* A peer that sends `msg` one byte every 40 ms: a slowloris. */
struct trickle {
	uv_timer_t timer;
	struct rill_flow *x;
	const uint8_t *msg;
	size_t len, sent;
};

static void trickle_tick(uv_timer_t *h)
{
	struct trickle *t = h->data;
	if (t->sent < t->len &&
	    rill_write_copy(t->x, t->msg + t->sent, 1, NULL, NULL) == 0)
		t->sent++;
}

/* Attaches l from uri over one end of a pair in `role` with a 400 ms
 * handshake deadline, trickles msg into it from the other end and
 * checks that the deadline ends the handshake: the whole handshake's,
 * not each read's (a byte every 40 ms would keep each read's alive). */
static void trickle_check(const struct rill_layer_scheme *l, const char *uri,
                          int role, const uint8_t *msg, size_t len)
{
	uv_loop_t *loop = uv_default_loop();
	struct rill_flow *x, *y;
	TH_OK(rill_pair(loop, 0, &x, &y));
	struct trickle t = {.x = x, .msg = msg, .len = len};
	uv_timer_init(loop, &t.timer);
	t.timer.data = &t;
	uv_timer_start(&t.timer, trickle_tick, 40, 40);
	struct att a;
	uint64_t t0 = uv_hrtime();
	attach(loop, l, uri, NULL, y, role, 400, &a);
	/* At most 4 s: far past the deadline, far short of the message. */
	while (!a.done && uv_hrtime() - t0 < 4000000000u)
		uv_run(loop, UV_RUN_ONCE);
	double secs = (double)(uv_hrtime() - t0) / 1e9;
	uv_timer_stop(&t.timer);
	uv_close((uv_handle_t *)&t.timer, NULL);
	if (!a.done)
		TH_FAIL("%s: still in the handshake after %.1f s and %zu bytes "
		        "(deadline 0.4 s)",
		        uri, secs, t.sent);
	TH_EQ_ERR(a.status, RILL_ETIMEDOUT);
	TH_CONTAINS(a.msg, "deadline expired");
	/* 0.4 s, with room for a loaded machine. */
	TH_CMP_INT((int)(secs * 1000), <, 2500);
	rill_close(x);
	uv_run(loop, UV_RUN_NOWAIT);
}

TEST(a_trickled_handshake_gets_one_deadline)
{
	static uint8_t m[4096];
	/* PROXY v2 announcing 2000 bytes of TLVs. */
	memcpy(m, pp2_sig, 12);
	m[12] = 0x21;
	m[13] = 0x11;
	m[14] = 2000 >> 8;
	m[15] = 2000 & 0xFF;
	trickle_check(&rill__proxy_scheme, "proxy+tcp://h:1", RILL_ROLE_ACCEPT,
	              m, 16 + 2000);
	/* A SOCKS5 greeting offering 255 methods. */
	m[0] = 5;
	m[1] = 255;
	memset(m + 2, 0x80, 255);
	trickle_check(&rill__socks5_scheme, "socks5+tcp://h:1",
	              RILL_ROLE_ACCEPT, m, 257);
	/* A CONNECT request head, and a proxy's response head, that go on
	 * and on (each under the 8 KiB limit). */
	const char *rq = "CONNECT a.test:1 HTTP/1.1\r\nX: ";
	memset(m, 'a', sizeof m);
	memcpy(m, rq, strlen(rq));
	trickle_check(&rill__connect_scheme, "connect+tcp://h:1",
	              RILL_ROLE_ACCEPT, m, sizeof m);
	const char *rs = "HTTP/1.1 200 OK\r\nX: ";
	memcpy(m, rs, strlen(rs));
	trickle_check(&rill__connect_scheme,
	              "connect+tcp://h:1?target=a.test:1", RILL_ROLE_CONNECT, m,
	              sizeof m);
}

TEST(tunnel_calls_on_other_flows)
{
	uv_loop_t *loop = uv_default_loop();
	struct rill_flow *x, *y;
	TH_OK(rill_pair(loop, 0, &x, &y));
	char t[64];
	TH_EQ_ERR(rill_tunnel_target(x, t, sizeof t), -ENOTSUP);
	TH_EQ_ERR(rill_tunnel_reply(x, 0, NULL, NULL), -ENOTSUP);
	TH_EQ_ERR(rill_tunnel_reply(NULL, 0, NULL, NULL), RILL_EINVAL);
	TH_EQ_ERR(rill_tunnel_target(x, NULL, 0), RILL_EINVAL);
	rill_close(x);
	rill_close(y);
}

TEST(uri_checks_of_the_tunnel_layers)
{
	TH_EQ_ERR(rill_uri_check("socks5+tcp://h:1?target=a/b:1"), RILL_EURI);
	TH_CONTAINS(rill_last_errmsg(), "bad target");
	TH_EQ_ERR(rill_uri_check("socks5+tcp://h:1?target=a:0"), RILL_EURI);
	TH_EQ_ERR(rill_uri_check("socks5+tcp://h:1?user=u"), RILL_EURI);
	TH_EQ_ERR(rill_uri_check("connect+tcp://h:1?auth=nocolon"), RILL_EURI);
	TH_EQ_ERR(rill_uri_check("proxy+tcp://h:1?version=3"), RILL_EURI);
	TH_OK(rill_uri_check("tls+socks5+tcp://h:1?target=[::1]:443"));
	TH_OK(rill_uri_check("connect+tls+tcp://h:1?target=x.test:22"));
}

TEST(allow_target_rules)
{
	struct target_allow a = {0};
	const char *why = "";
	TH_OK(target_allow_add(&a, "!10.0.0.0/8", &why));
	TH_OK(target_allow_add(&a, "*.example.org:443", &why));
	TH_OK(target_allow_add(&a, "git.test:22", &why));
	TH_OK(target_allow_add(&a, "192.0.2.0/24:1000-2000", &why));
	TH_OK(target_allow_add(&a, "[2001:db8::/32]:80", &why));
	TH_OK(target_allow_add(&a, "2001:db8:1::5", &why));
	TH_TRUE(target_allow_request(&a, "www.Example.org", 443));
	TH_TRUE(target_allow_request(&a, "a.b.example.org.", 443));
	TH_TRUE(!target_allow_request(&a, "example.org", 443));
	TH_TRUE(!target_allow_request(&a, "www.example.org", 80));
	TH_TRUE(!target_allow_request(&a, "evilexample.org", 443));
	TH_TRUE(target_allow_request(&a, "git.test", 22));
	TH_TRUE(!target_allow_request(&a, "git.test", 23));
	TH_TRUE(target_allow_request(&a, "192.0.2.9", 1500));
	TH_TRUE(!target_allow_request(&a, "192.0.2.9", 999));
	TH_TRUE(!target_allow_request(&a, "192.0.3.9", 1500));
	TH_TRUE(!target_allow_request(&a, "10.1.2.3", 443));
	TH_TRUE(target_allow_request(&a, "2001:db8:ff::1", 80));
	TH_TRUE(!target_allow_request(&a, "2001:db9::1", 80));
	TH_TRUE(target_allow_request(&a, "2001:db8:1::5", 9));
	/* An IP literal is no name, and a name no address. */
	TH_TRUE(!target_allow_request(&a, "192.0.2.9.example.org", 1500));
	const uint8_t ten[4] = {10, 9, 8, 7}, other[4] = {192, 0, 2, 1};
	TH_TRUE(!target_allow_address(&a, ten, 4, 443));
	TH_TRUE(target_allow_address(&a, other, 4, 443));
	/* The unspecified addresses reach this host: never a target. */
	const uint8_t zero4[4] = {0}, net0[4] = {0, 1, 2, 3}, zero6[16] = {0};
	const uint8_t mapped0[16] = {[10] = 0xFF, [11] = 0xFF};
	TH_TRUE(!target_allow_address(&a, zero4, 4, 443));
	TH_TRUE(!target_allow_address(&a, net0, 4, 443));
	TH_TRUE(!target_allow_address(&a, zero6, 16, 443));
	TH_TRUE(!target_allow_address(&a, mapped0, 16, 443));
	static const char *const bad[] = {"10.0.0.0/33", "a b",    "x:0",
	                                  "x:5-4",       "[::1",   "h/8",
	                                  "*.",          "x:70000"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		TH_EQ_INT(target_allow_add(&a, bad[i], &why), -1);
	target_allow_free(&a);
	struct target_allow all = {0};
	TH_OK(target_allow_add(&all, "*", &why));
	TH_TRUE(target_allow_request(&all, "anything.test", 1));
	TH_TRUE(target_allow_request(&all, "::1", 65535));
	target_allow_free(&all);
}
