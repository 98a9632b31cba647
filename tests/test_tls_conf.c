/*
 * The conformance suite (tests/conformance.c) on TLS stacks: tls+pair,
 * tls+tcp, tls+unix, tls+shut+unix, tls+vchan and, only inside a QEMU guest
 * of tests/vm/ (th_in_vm_guest), tls+vsock; a TLS client on one side (a),
 * a TLS server on the other (b), certificates from tls_pki.c.
 */
#include <stdio.h>
#include <unistd.h>

#include "conformance.h"
#include "harness.h"
#include "tls_pki.h"

struct conf_hs {
	struct rill_flow *f;
	int status;
	bool done;
};

static void conf_on_attach(struct rill_flow *f, int status, const char *errmsg,
                           void *ud)
{
	struct conf_hs *h = ud;
	if (status != 0)
		th_note("attach: %s", errmsg);
	h->f = f;
	h->status = status;
	h->done = true;
}

static int make_tls_pair(uv_loop_t *loop, void *arg, struct rill_flow **a,
                         struct rill_flow **b)
{
	(void)arg;
	const struct tls_pki *p = tls_pki();
	struct rill_tls_config *cc = rill_tls_config_new(RILL_TLS_CLIENT);
	struct rill_tls_config *sc = rill_tls_config_new(RILL_TLS_SERVER);
	if (cc == NULL || sc == NULL ||
	    rill_tls_config_set_ca(cc, p->ca, NULL) != 0 ||
	    rill_tls_config_set_hostname(cc, "localhost") != 0 ||
	    rill_tls_config_set_cert(sc, p->server, p->server_key) != 0)
		return RILL_ETLS;
	struct rill_flow *x, *y;
	int err = rill_pair(loop, 0, &x, &y);
	if (err != 0)
		return err;
	struct conf_hs c = {0}, s = {0};
	err = rill_tls_attach(x, cc, conf_on_attach, &c);
	int err2 = rill_tls_attach(y, sc, conf_on_attach, &s);
	rill_tls_config_free(cc);
	rill_tls_config_free(sc);
	if (err != 0 || err2 != 0)
		return err != 0 ? err : err2;
	while (!c.done || !s.done)
		uv_run(loop, UV_RUN_ONCE);
	if (c.status != 0 || s.status != 0) {
		rill_close(c.f);
		rill_close(s.f);
		return c.status != 0 ? c.status : s.status;
	}
	*a = c.f;
	*b = s.f;
	return 0;
}

/* Socket stacks: listen on `listen_uri` + server params, connect to the
 * listener's URI + client params. */
struct conf_sock {
	/* The listening URI; "%d" in it (at most once) becomes the pid, and
	 * "@" at its start the PKI directory. */
	const char *listen_uri;
	const char *client_params;
	struct rill_listener *l;
	struct conf_hs acc;
};

static void conf_on_accept(struct rill_listener *l, struct rill_flow *f,
                           int status, const char *errmsg, void *ud)
{
	(void)l;
	struct conf_sock *cs = ud;
	if (status != 0) {
		th_note("accept: %s", errmsg);
	}
	if (cs->acc.done) {
		rill_close(f);
		return;
	}
	conf_on_attach(f, status, errmsg, &cs->acc);
}

static void conf_on_connect(struct rill_flow *f, int status, const char *errmsg,
                            void *ud)
{
	conf_on_attach(f, status, errmsg, ud);
}

static int make_tls_sock(uv_loop_t *loop, void *arg, struct rill_flow **a,
                         struct rill_flow **b)
{
	struct conf_sock *cs = arg;
	const struct tls_pki *p = tls_pki();
	char uri[1024];
	int n = 0;
	for (const char *q = cs->listen_uri; *q != '\0' && n < 600; q++) {
		if (q[0] == '%' && q[1] == 'd') {
			n += snprintf(uri + n, sizeof uri - (size_t)n, "%d",
			              (int)getpid());
			q++;
		} else if (*q == '@') {
			n += snprintf(uri + n, sizeof uri - (size_t)n, "%s",
			              p->dir);
		} else {
			uri[n++] = *q;
		}
	}
	uri[n] = '\0';
	snprintf(uri + n, sizeof uri - (size_t)n, "?cert=%s&key=%s", p->server,
	         p->server_key);
	int err = rill_listen(loop, uri, NULL, conf_on_accept, cs, &cs->l);
	if (err != 0) {
		th_note("listen %s: %s", uri, rill_last_errmsg());
		return err;
	}
	err = rill_listener_uri(cs->l, uri, sizeof uri);
	if (err != 0)
		return err;
	n = (int)strlen(uri);
	snprintf(uri + n, sizeof uri - (size_t)n, "?ca=%s%s", p->ca,
	         cs->client_params);
	struct conf_hs c = {0};
	memset(&cs->acc, 0, sizeof cs->acc);
	err = rill_connect(loop, uri, NULL, conf_on_connect, &c);
	if (err != 0) {
		th_note("connect %s: %s", uri, rill_last_errmsg());
		return err;
	}
	while (!c.done || !cs->acc.done)
		uv_run(loop, UV_RUN_ONCE);
	/* One connection per check: the listener would keep the loop (and
	 * the suite's teardown) alive. */
	rill_listener_close(cs->l);
	cs->l = NULL;
	if (c.status != 0 || cs->acc.status != 0) {
		rill_close(c.f);
		rill_close(cs->acc.f);
		return c.status != 0 ? c.status : cs->acc.status;
	}
	*a = c.f;
	*b = cs->acc.f;
	return 0;
}

static void cleanup_tls_sock(uv_loop_t *loop, void *arg)
{
	(void)loop;
	struct conf_sock *cs = arg;
	rill_listener_close(cs->l);
	cs->l = NULL;
}

/* No reset hook: closing a TLS flow first sends close_notify (in the
 * background), so the peer sees an orderly end even when the TCP socket
 * below is then reset; the tcp factory covers resets. */

static const struct conf_factory tls_pair_factory = {
    .name = "tls+pair",
    .make = make_tls_pair,
    .big_bytes = 16u << 20,
};
CONF_REGISTER(tls_pair_factory)

static struct conf_sock tls_tcp_arg = {
    .listen_uri = "tls+tcp://127.0.0.1:0",
    .client_params = "",
};
static const struct conf_factory tls_tcp_factory = {
    .name = "tls+tcp",
    .make = make_tls_sock,
    .cleanup = cleanup_tls_sock,
    .arg = &tls_tcp_arg,
    .big_bytes = 16u << 20,
};
CONF_REGISTER(tls_tcp_factory)

static struct conf_sock tls_unix_arg = {
    .listen_uri = "tls+unix:@/conf-%d.sock",
    .client_params = "&sni=localhost",
};
static const struct conf_factory tls_unix_factory = {
    .name = "tls+unix",
    .make = make_tls_sock,
    .cleanup = cleanup_tls_sock,
    .arg = &tls_unix_arg,
    .big_bytes = 16u << 20,
};
CONF_REGISTER(tls_unix_factory)

static struct conf_sock tls_shut_unix_arg = {
    .listen_uri = "tls+shut+unix:@/conf-shut-%d.sock",
    .client_params = "&sni=localhost",
};
static const struct conf_factory tls_shut_unix_factory = {
    .name = "tls+shut+unix",
    .make = make_tls_sock,
    .cleanup = cleanup_tls_sock,
    .arg = &tls_shut_unix_arg,
    .big_bytes = 16u << 20,
};
CONF_REGISTER(tls_shut_unix_factory)

static struct conf_sock tls_vchan_arg = {
    .listen_uri = "tls+vchan:rill-tls-conf-%d",
    .client_params = "&sni=localhost",
};
static const struct conf_factory tls_vchan_factory = {
    .name = "tls+vchan",
    .make = make_tls_sock,
    .cleanup = cleanup_tls_sock,
    .arg = &tls_vchan_arg,
    .big_bytes = 16u << 20,
};
CONF_REGISTER(tls_vchan_factory)

/* AF_VSOCK over the guest kernel's vsock_loopback, on any CID and port:
 * the client connects to what rill_listener_uri says. */
static struct conf_sock tls_vsock_arg = {
    .listen_uri = "tls+vsock://any:any",
    .client_params = "&sni=localhost",
};
static const struct conf_factory tls_vsock_factory = {
    .name = "tls+vsock",
    .make = make_tls_sock,
    .cleanup = cleanup_tls_sock,
    .arg = &tls_vsock_arg,
    .big_bytes = 4u << 20,
    .absorb_bytes = 2u << 20, /* 256 KiB of vsock buffer each way */
};

__attribute__((constructor)) static void conf_reg_tls_vsock(void)
{
	if (th_in_vm_guest())
		conf_register(&tls_vsock_factory);
}
