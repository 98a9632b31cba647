/*
 * The conformance suite (tests/conformance.c) on the tunnel layers:
 * socks5+tcp, connect+tcp, proxy+tcp (v1 and v2), socks5+unix and
 * tls+socks5+unix... Each side is rill's: a (the connecting side) is a
 * tunnel client, b the flow a tunnel listener accepted, answered with
 * rill_tunnel_reply(b, 0) as a server does once its onward connection
 * exists. The peers nobody here wrote are in tests/test_tunnel_peers.py.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conformance.h"
#include "core/core.h"
#include "harness.h"

struct conf_tun {
	const char *listen_uri; /* "%d" (at most once): the pid */
	const char *params;     /* the client's query, after the listener's
	                           URI (which has no query) */
	bool reply;             /* socks5+ / connect+: answer the request */
	struct rill_listener *l;
	struct rill_flow *acc, *con;
	int acc_status, con_status;
	bool acc_done, con_done;
};

static void tun_on_accept(struct rill_listener *l, struct rill_flow *f,
                          int status, const char *errmsg, void *ud)
{
	(void)l;
	struct conf_tun *t = ud;
	if (status != 0)
		th_note("accept: %s", errmsg);
	if (t->acc_done) {
		rill_close(f);
		return;
	}
	t->acc = f;
	t->acc_status = status;
	t->acc_done = true;
	if (status == 0 && t->reply) {
		char target[300];
		int err = rill_tunnel_target(f, target, sizeof target);
		if (err != 0 || strcmp(target, "target.test:4242") != 0)
			th_note("target: %d %s", err, err == 0 ? target : "");
		err = rill_tunnel_reply(f, 0, NULL, NULL);
		if (err != 0)
			t->acc_status = err;
	}
}

static void tun_on_connect(struct rill_flow *f, int status, const char *errmsg,
                           void *ud)
{
	struct conf_tun *t = ud;
	if (status != 0)
		th_note("connect: %s", errmsg);
	t->con = f;
	t->con_status = status;
	t->con_done = true;
}

static int make_tun(uv_loop_t *loop, void *arg, struct rill_flow **a,
                    struct rill_flow **b)
{
	struct conf_tun *t = arg;
	char uri[600];
	/* "%d" in the listening URI becomes the pid. */
	const char *pct = strstr(t->listen_uri, "%d");
	if (pct != NULL)
		snprintf(uri, sizeof uri, "%.*s%d%s",
		         (int)(pct - t->listen_uri), t->listen_uri,
		         (int)getpid(), pct + 2);
	else
		snprintf(uri, sizeof uri, "%s", t->listen_uri);
	t->acc_done = t->con_done = false;
	t->acc = t->con = NULL;
	int err = rill_listen(loop, uri, NULL, tun_on_accept, t, &t->l);
	if (err != 0) {
		th_note("listen %s: %s", uri, rill_last_errmsg());
		return err;
	}
	err = rill_listener_uri(t->l, uri, sizeof uri);
	if (err != 0)
		return err;
	size_t n = strlen(uri);
	snprintf(uri + n, sizeof uri - n, "%s", t->params);
	struct rill_connect_opts co = {
	    .proxy_header_src = "tcp://192.0.2.1:5000",
	    .proxy_header_dst = "tcp://198.51.100.2:443",
	};
	err = rill_connect(loop, uri, &co, tun_on_connect, t);
	if (err != 0) {
		th_note("connect %s: %s", uri, rill_last_errmsg());
		return err;
	}
	while (!t->con_done || !t->acc_done)
		uv_run(loop, UV_RUN_ONCE);
	rill_listener_close(t->l);
	t->l = NULL;
	if (t->con_status != 0 || t->acc_status != 0) {
		rill_close(t->con);
		rill_close(t->acc);
		return t->con_status != 0 ? t->con_status : t->acc_status;
	}
	*a = t->con;
	*b = t->acc;
	return 0;
}

/* A reset for the peer: SO_LINGER 0 on the TCP socket under the tunnel
 * layer, then close. */
static int tun_reset(struct rill_flow *f, void *arg)
{
	(void)arg;
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	int fd = rill__flow_fd(rill_layer_inner(f));
	if (fd < 0) {
		rill_close(f);
		return -EBADF;
	}
	int err = setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	rill_close(f);
	return err == 0 ? 0 : -errno;
}

static void cleanup_tun(uv_loop_t *loop, void *arg)
{
	(void)loop;
	struct conf_tun *t = arg;
	rill_listener_close(t->l);
	t->l = NULL;
}

#define TUN_FACTORY(var, fname, luri, cparams, rep, rst) \
	static struct conf_tun var##_arg = {             \
	    .listen_uri = luri,                          \
	    .params = cparams,                           \
	    .reply = rep,                                \
	};                                               \
	static const struct conf_factory var = {         \
	    .name = fname,                               \
	    .make = make_tun,                            \
	    .cleanup = cleanup_tun,                      \
	    .reset = rst,                                \
	    .arg = &var##_arg,                           \
	    .big_bytes = 16u << 20,                      \
	};                                               \
	CONF_REGISTER(var)

TUN_FACTORY(socks5_tcp, "socks5+tcp", "socks5+tcp://127.0.0.1:0",
            "?target=target.test:4242", true, tun_reset)
TUN_FACTORY(socks5_auth_unix, "socks5+unix",
            "socks5+unix:@/rill-conf-socks5-%d?user=u&password=p",
            "?target=target.test:4242&user=u&password=p", true, NULL)
TUN_FACTORY(connect_tcp, "connect+tcp", "connect+tcp://127.0.0.1:0",
            "?target=target.test:4242", true, tun_reset)
TUN_FACTORY(connect_auth_shut, "connect+shut+unix",
            "connect+shut+unix:@/rill-conf-connect-%d?auth=u:p",
            "?target=target.test:4242&auth=u:p", true, NULL)
TUN_FACTORY(proxy_v2, "proxy+tcp", "proxy+tcp://127.0.0.1:0", "", false,
            tun_reset)
TUN_FACTORY(proxy_v1, "proxy+unix", "proxy+unix:@/rill-conf-pp-%d",
            "?version=1", false, NULL)
