/*
 * Peer identities (rill_flow_peer), peer patterns (rill_peer_pattern_parse,
 * rill_peer_match: the syntax of rill relay --allow) and the listeners'
 * accept filter (rill_listen_opts.filter), which refuses a peer before any
 * layer's handshake.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"

static struct rill_peer ip_peer(const char *text)
{
	struct rill_peer p = {.kind = RILL_PEER_IP};
	if (inet_pton(AF_INET, text, p.addr) != 1) {
		p.ipv6 = true;
		if (inet_pton(AF_INET6, text, p.addr) != 1)
			TH_FAIL("bad test address %s", text);
	}
	return p;
}

static bool allows(const char *pattern, const char *addr)
{
	struct rill_peer_pattern pat;
	if (rill_peer_pattern_parse(pattern, &pat) != 0)
		TH_FAIL("%s: %s", pattern, rill_last_errmsg());
	struct rill_peer p = ip_peer(addr);
	return rill_peer_match(&pat, &p);
}

TEST(patterns_ip_and_cidr)
{
	TH_TRUE(allows("192.0.2.7", "192.0.2.7"));
	TH_TRUE(!allows("192.0.2.7", "192.0.2.8"));
	TH_TRUE(allows("192.0.2.0/24", "192.0.2.255"));
	TH_TRUE(!allows("192.0.2.0/24", "192.0.3.0"));
	TH_TRUE(allows("192.0.2.77/24", "192.0.2.1")); /* host bits ignored */
	TH_TRUE(allows("10.0.0.0/9", "10.127.255.255"));
	TH_TRUE(!allows("10.0.0.0/9", "10.128.0.0"));
	TH_TRUE(allows("0.0.0.0/0", "203.0.113.9"));
	TH_TRUE(!allows("0.0.0.0/0", "::1")); /* families never mix */
	TH_TRUE(allows("::1", "::1"));
	TH_TRUE(allows("[::1]", "::1"));
	TH_TRUE(allows("2001:db8::/32", "2001:db8:ffff::1"));
	TH_TRUE(!allows("2001:db8::/32", "2001:db9::1"));
	TH_TRUE(allows("2001:db8::/33", "2001:db8:7fff::"));
	TH_TRUE(!allows("2001:db8::/33", "2001:db8:8000::"));
	/* An IPv4-mapped pattern is the IPv4 network. */
	TH_TRUE(allows("::ffff:10.0.0.0/104", "10.1.2.3"));
	TH_TRUE(!allows("::ffff:10.0.0.0/104", "11.1.2.3"));
}

TEST(patterns_cid_uid_and_errors)
{
	struct rill_peer_pattern pat;
	TH_OK(rill_peer_pattern_parse("3-9", &pat));
	TH_EQ_INT(pat.kind, RILL_PEER_VSOCK);
	struct rill_peer v = {.kind = RILL_PEER_VSOCK, .cid = 9};
	TH_TRUE(rill_peer_match(&pat, &v));
	v.cid = 10;
	TH_TRUE(!rill_peer_match(&pat, &v));
	v.cid = 2;
	TH_TRUE(!rill_peer_match(&pat, &v));
	TH_OK(rill_peer_pattern_parse("3", &pat));
	v.cid = 3;
	TH_TRUE(rill_peer_match(&pat, &v));
	/* A uid pattern never matches a CID with the same number. */
	TH_OK(rill_peer_pattern_parse("uid=3", &pat));
	TH_TRUE(!rill_peer_match(&pat, &v));
	struct rill_peer u = {.kind = RILL_PEER_UNIX, .uid = 3};
	TH_TRUE(rill_peer_match(&pat, &u));
	u.uid = 0;
	TH_TRUE(!rill_peer_match(&pat, &u));
	static const char *const bad[] = {
	    "",
	    "9-3",
	    "1.2.3.4/33",
	    "::1/129",
	    "uid=",
	    "uid=-1",
	    "uid=4294967295",
	    "-3",
	    "3-",
	    "+3",
	    "1.2.3",
	    "1.2.3.4/",
	    "1.2.3.4/-1",
	    "fe80::1%eth0",
	    "4294967296",
	    "[1.2.3.4",
	    "01.2.3.4",
	    "any",
	    "3 ",
	    "1.2.3.4/8/8",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int err = rill_peer_pattern_parse(bad[i], &pat);
		if (err != RILL_EINVAL)
			TH_FAIL("\"%s\" parsed (%d)", bad[i], err);
		TH_TRUE(strstr(rill_last_errmsg(), "bad peer pattern") != NULL);
	}
	char buf[64];
	TH_OK(rill_peer_format(&u, buf, sizeof buf));
	TH_TRUE(strcmp(buf, "uid=0") == 0);
	TH_EQ_ERR(rill_peer_format(&u, buf, 3), -ENOSPC);
}

/* ---------------------------------------------------------------------- */
/* rill_flow_peer over real sockets, and the accept filter */

struct srv {
	int accepted;
	int filtered;
	bool allow;
	struct rill_peer seen;
	struct rill_flow *f;
};

static bool filter_cb(struct rill_listener *l, const struct rill_peer *peer,
                      void *ud)
{
	(void)l;
	struct srv *s = ud;
	s->filtered++;
	s->seen = *peer;
	return s->allow;
}

static void accept_cb(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct srv *s = ud;
	if (status != 0)
		return;
	s->accepted++;
	if (s->f == NULL)
		s->f = f;
	else
		rill_close(f);
}

/* Listens on uri with the filter, connects once; returns the client. */
static struct rill_flow *connect_one(uv_loop_t *l, const char *uri,
                                     struct srv *s, struct rill_listener **lst)
{
	struct rill_listen_opts o = {.filter = filter_cb, .filter_ud = s};
	TH_OK(rill_listen(l, uri, &o, accept_cb, s, lst));
	char where[256];
	TH_OK(rill_listener_uri(*lst, where, sizeof where));
	struct rill_flow *c = NULL;
	if (s->allow) {
		TH_OK(rill_connect_sync(l, where, NULL, &c));
		while (s->f == NULL)
			uv_run(l, UV_RUN_ONCE);
	} else {
		/* A refused shut+ client may fail its own handshake: only
		 * the socket connect is needed here. */
		const char *plus = strchr(where, '+');
		TH_OK(rill_connect_sync(l, plus != NULL ? plus + 1 : where,
		                        NULL, &c));
		while (s->filtered == 0)
			uv_run(l, UV_RUN_ONCE);
	}
	return c;
}

TEST(flow_peer_tcp_through_a_layer)
{
	uv_loop_t l;
	uv_loop_init(&l);
	struct srv s = {.allow = true};
	struct rill_listener *lst;
	struct rill_flow *c =
	    connect_one(&l, "shut+tcp://127.0.0.1:0", &s, &lst);
	TH_EQ_INT(s.filtered, 1);
	TH_EQ_INT(s.seen.kind, RILL_PEER_IP);
	TH_TRUE(!s.seen.ipv6);
	TH_TRUE(memcmp(s.seen.addr, "\x7f\0\0\1", 4) == 0);
	/* The accepted flow is a shut layer: the peer is its socket's. */
	struct rill_peer p;
	TH_OK(rill_flow_peer(s.f, &p));
	TH_EQ_INT(p.kind, RILL_PEER_IP);
	TH_EQ_INT(p.port, s.seen.port);
	char buf[64];
	TH_OK(rill_peer_format(&p, buf, sizeof buf));
	TH_TRUE(strcmp(buf, "127.0.0.1") == 0);
	rill_close(c);
	rill_close(s.f);
	rill_listener_close(lst);
	uv_run(&l, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&l));
}

TEST(flow_peer_unix_credentials_and_pair_unknown)
{
	uv_loop_t l;
	uv_loop_init(&l);
	struct srv s = {.allow = true};
	struct rill_listener *lst;
	char uri[64];
	snprintf(uri, sizeof uri, "unix:@rill-peer-test-%d", (int)getpid());
	struct rill_flow *c = connect_one(&l, uri, &s, &lst);
	TH_EQ_INT(s.seen.kind, RILL_PEER_UNIX);
	TH_EQ_INT(s.seen.uid, getuid());
	TH_EQ_INT(s.seen.gid, getgid());
	TH_EQ_INT(s.seen.pid, getpid());
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&l, 0, &a, &b));
	struct rill_peer p;
	TH_OK(rill_flow_peer(a, &p));
	TH_EQ_INT(p.kind, RILL_PEER_UNKNOWN);
	TH_EQ_ERR(rill_flow_peer(NULL, &p), RILL_EINVAL);
	rill_close(a);
	rill_close(b);
	rill_close(c);
	rill_close(s.f);
	rill_listener_close(lst);
	uv_run(&l, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&l));
}

/* A refused peer never reaches the accept callback nor the layer's
 * handshake; the client sees its connection end. */
TEST(filter_refuses_before_the_handshake)
{
	uv_loop_t l;
	uv_loop_init(&l);
	struct srv s = {.allow = false};
	struct rill_listener *lst;
	struct rill_flow *c =
	    connect_one(&l, "shut+tcp://127.0.0.1:0", &s, &lst);
	struct rill_buf *got = NULL;
	int err = rill_read_all_sync(c, 64, &got);
	TH_TRUE(err == 0 || err == RILL_ECONNRESET);
	TH_TRUE(got == NULL || got->len == 0);
	rill_buf_release(got);
	for (int i = 0; i < 20; i++)
		uv_run(&l, UV_RUN_NOWAIT);
	TH_EQ_INT(s.filtered, 1);
	TH_EQ_INT(s.accepted, 0);
	rill_close(c);
	rill_listener_close(lst);
	uv_run(&l, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&l));
}
