/*
 * The socks5 layer scheme: SOCKS5 CONNECT (RFC 1928) with
 * username/password authentication (RFC 1929).
 *
 *   socks5+tcp://proxy:1080?target=example.org:443&user=U&password=P
 *        connect: a flow to example.org:443 through the proxy; the name
 *        is sent to the proxy, which resolves it (curl's socks5h)
 *   socks5+tcp://127.0.0.1:1080?user=U&password=P
 *        listen: answers the greeting and the request; the accepted
 *        flow carries the target (rill_tunnel_target) and the reply
 *        waits for rill_tunnel_reply
 *
 * Only CONNECT is served; BIND and UDP ASSOCIATE get "command not
 * supported" (0x07). The handshake runs under the attach's deadline.
 */
#include <string.h>

#include "layer/tunnel/tunnel.h"

static const char *const socks5_params[] = {"target", "user", "password", NULL};

static const struct rill_flow_ops socks5_ops = TUN_OPS("socks5");

/* An error code as a SOCKS5 reply code (the server side). */
static uint8_t socks5_rep_of(int status)
{
	switch (status) {
	case 0: return RILL__SOCKS5_OK;
	case -EACCES:
	case -EPERM:
	case RILL_EPROXY_DENIED: return RILL__SOCKS5_NOT_ALLOWED;
	case -ENETUNREACH: return RILL__SOCKS5_NET_UNREACH;
	case -EHOSTUNREACH:
	case -ENOENT: return RILL__SOCKS5_HOST_UNREACH;
	case RILL_ECONNREFUSED: return RILL__SOCKS5_REFUSED;
	case RILL_ETIMEDOUT: return RILL__SOCKS5_TTL_EXPIRED;
	default: return RILL__SOCKS5_GENERAL;
	}
}

/* A SOCKS5 reply code as an error code (the client side). */
static int socks5_err_of(uint8_t rep)
{
	switch (rep) {
	case RILL__SOCKS5_NOT_ALLOWED: return RILL_EPROXY_DENIED;
	case RILL__SOCKS5_NET_UNREACH: return -ENETUNREACH;
	case RILL__SOCKS5_HOST_UNREACH: return -EHOSTUNREACH;
	case RILL__SOCKS5_REFUSED: return RILL_ECONNREFUSED;
	case RILL__SOCKS5_TTL_EXPIRED: return RILL_ETIMEDOUT;
	default: return RILL_EPROXY;
	}
}

static size_t socks5_reply(int status, uint8_t *out)
{
	return rill__socks5_build_reply(out, socks5_rep_of(status));
}

static const struct tun_proto socks5_proto = {
    .name = "socks5",
    .reply = socks5_reply,
};

/* ---------------------------------------------------------------------- */
/* Client */

static void socks5_c_reply(struct tun *t)
{
	uint8_t rep = 0;
	const char *why = NULL;
	int r = rill__socks5_parse_reply(t->acc, t->acc_len, &rep, &why);
	if (r == 0) {
		tun_need(t, socks5_c_reply);
	} else if (r < 0) {
		tun_fail(t, RILL_EHANDSHAKE, "malformed reply: %s", why);
	} else if (rep != RILL__SOCKS5_OK) {
		tun_fail(t, socks5_err_of(rep), "proxy said %u (%s) for %s",
		         rep, rill__socks5_rep_name(rep), t->target.host);
	} else {
		tun_consume(t, (size_t)r);
		tun_ready(t);
	}
}

static void socks5_c_request(struct tun *t)
{
	uint8_t req[262];
	size_t n = rill__socks5_build_request(req, &t->target);
	tun_send(t, req, n, socks5_c_reply);
}

static void socks5_c_auth_reply(struct tun *t)
{
	uint8_t st = 0;
	const char *why = NULL;
	int r = rill__socks5_parse_auth_reply(t->acc, t->acc_len, &st, &why);
	if (r == 0) {
		tun_need(t, socks5_c_auth_reply);
	} else if (r < 0) {
		tun_fail(t, RILL_EHANDSHAKE, "malformed reply: %s", why);
	} else if (st != 0) {
		tun_fail(t, RILL_EPROXY_AUTH,
		         "the proxy refused user \"%s\" (status %u)", t->user,
		         st);
	} else {
		tun_consume(t, (size_t)r);
		socks5_c_request(t);
	}
}

static void socks5_c_method(struct tun *t)
{
	uint8_t m = 0;
	const char *why = NULL;
	int r = rill__socks5_parse_method(t->acc, t->acc_len, &m, &why);
	if (r == 0) {
		tun_need(t, socks5_c_method);
		return;
	}
	if (r < 0) {
		tun_fail(t, RILL_EHANDSHAKE, "malformed reply: %s", why);
		return;
	}
	tun_consume(t, (size_t)r);
	if (m == RILL__SOCKS5_NO_AUTH) {
		socks5_c_request(t);
	} else if (m == RILL__SOCKS5_USER_PASS && t->user != NULL) {
		uint8_t a[513];
		size_t n = rill__socks5_build_auth(a, t->user, t->pass);
		tun_send(t, a, n, socks5_c_auth_reply);
	} else if (m == RILL__SOCKS5_USER_PASS) {
		tun_fail(t, RILL_EPROXY_AUTH,
		         "the proxy wants a username and password (user=, "
		         "password=)");
	} else {
		tun_fail(t, RILL_EPROXY_AUTH,
		         "the proxy accepts none of the offered methods "
		         "(answer 0x%02x)",
		         m);
	}
}

static void socks5_c_start(struct tun *t)
{
	uint8_t g[4] = {5, 1, RILL__SOCKS5_NO_AUTH, RILL__SOCKS5_USER_PASS};
	if (t->user != NULL)
		g[1] = 2;
	tun_send(t, g, 2 + (size_t)g[1], socks5_c_method);
}

/* ---------------------------------------------------------------------- */
/* Server */

/* Sends a failure reply (len bytes), then fails with err and why. */
static void socks5_s_refuse_done(struct tun *t)
{
	tun_fail(t, t->state, "refused the client: %s",
	         t->note != NULL ? t->note : rill_strerror(t->state));
}

static void socks5_s_refuse(struct tun *t, const uint8_t *msg, size_t len,
                            int err)
{
	t->state = err;
	tun_send(t, msg, len, socks5_s_refuse_done);
}

static void socks5_s_request(struct tun *t)
{
	uint8_t cmd = 0;
	bool atyp_bad = false;
	const char *why = NULL;
	int r = rill__socks5_parse_request(t->acc, t->acc_len, &cmd, &t->target,
	                                   &atyp_bad, &why);
	uint8_t rep[10];
	if (r == 0) {
		tun_need(t, socks5_s_request);
	} else if (r < 0) {
		rill__socks5_build_reply(
		    rep, atyp_bad ? RILL__SOCKS5_ATYP_UNSUPPORTED
		                  : RILL__SOCKS5_GENERAL);
		t->note = why;
		socks5_s_refuse(t, rep, sizeof rep, RILL_EFRAME);
	} else if (cmd != 1) {
		rill__socks5_build_reply(rep, RILL__SOCKS5_CMD_UNSUPPORTED);
		t->note = "command not supported (only CONNECT is)";
		socks5_s_refuse(t, rep, sizeof rep, -ENOTSUP);
	} else {
		tun_consume(t, (size_t)r);
		t->have_target = true;
		t->reply_pending = true;
		tun_ready(t);
	}
}

static void socks5_s_auth(struct tun *t)
{
	char user[256] = {0}, pass[256] = {0};
	const char *why = NULL;
	int r = rill__socks5_parse_auth(t->acc, t->acc_len, user, pass, &why);
	if (r == 0) {
		tun_need(t, socks5_s_auth);
		return;
	}
	if (r < 0) {
		tun_fail(t, RILL_EFRAME, "malformed authentication: %s", why);
		return;
	}
	tun_consume(t, (size_t)r);
	/* Compare every byte, so the time taken does not tell how much of
	 * the secret a guess got right. */
	size_t ul = strlen(t->user), pl = strlen(t->pass);
	unsigned diff = 0;
	for (size_t i = 0; i < 256; i++) {
		diff |= (unsigned)(uint8_t)(i < ul ? t->user[i] : 0) ^
		        (uint8_t)user[i];
		diff |= (unsigned)(uint8_t)(i < pl ? t->pass[i] : 0) ^
		        (uint8_t)pass[i];
	}
	static const uint8_t ok[2] = {1, 0}, bad[2] = {1, 1};
	if (diff != 0) {
		t->note = "wrong username or password";
		socks5_s_refuse(t, bad, 2, RILL_EPROXY_AUTH);
	} else
		tun_send(t, ok, 2, socks5_s_request);
}

static void socks5_s_greeting(struct tun *t)
{
	unsigned methods = 0;
	const char *why = NULL;
	int r = rill__socks5_parse_greeting(t->acc, t->acc_len, &methods, &why);
	if (r == 0) {
		tun_need(t, socks5_s_greeting);
		return;
	}
	if (r < 0) {
		tun_fail(t, RILL_EFRAME, "malformed greeting: %s", why);
		return;
	}
	tun_consume(t, (size_t)r);
	uint8_t sel[2] = {5, RILL__SOCKS5_NO_METHOD};
	if (t->user != NULL && (methods & (1u << RILL__SOCKS5_USER_PASS))) {
		sel[1] = RILL__SOCKS5_USER_PASS;
		tun_send(t, sel, 2, socks5_s_auth);
	} else if (t->user == NULL && (methods & 1u)) {
		sel[1] = RILL__SOCKS5_NO_AUTH;
		tun_send(t, sel, 2, socks5_s_request);
	} else {
		t->note = "no acceptable authentication method offered";
		socks5_s_refuse(t, sel, 2, RILL_EPROXY_AUTH);
	}
}

/* ---------------------------------------------------------------------- */
/* The scheme */

static int socks5_check(const struct rill_uri *u)
{
	struct rill__tun_target tg;
	if (rill__uri_param(u, "target") != NULL) {
		int err = tun_uri_target(u, &tg);
		if (err != 0)
			return err;
	}
	const char *user = rill__uri_param(u, "user");
	const char *pass = rill__uri_param(u, "password");
	if ((user == NULL) != (pass == NULL))
		return rill__uri_error(u, "user= and password= go together",
		                       user != NULL ? "user" : "password");
	if (user != NULL &&
	    (strlen(user) > 255 || strlen(pass) > 255 || user[0] == '\0'))
		return rill__uri_error(u,
		                       "bad SOCKS5 username or password "
		                       "(1..255 and 0..255 bytes)",
		                       "user");
	return 0;
}

static int socks5_attach(struct rill_flow *inner, const struct rill_uri *u,
                         int role, uint64_t deadline_ms, rill_attach_cb cb,
                         void *ud)
{
	struct tun *t = tun_new(inner, &socks5_proto, &socks5_ops, role,
	                        deadline_ms, cb, ud);
	if (t == NULL)
		return RILL_ENOMEM;
	const char *user = rill__uri_param(u, "user");
	const char *pass = rill__uri_param(u, "password");
	int err = 0;
	if (user != NULL) {
		t->user = rill_strdup(user);
		t->pass = rill_strdup(pass);
		if (t->user == NULL || t->pass == NULL)
			err = RILL_ENOMEM;
	}
	if (err == 0 && role == RILL_ROLE_CONNECT)
		err = tun_uri_target(u, &t->target);
	if (err == 0 && role == RILL_ROLE_ACCEPT &&
	    rill__uri_param(u, "target") != NULL)
		err = rill__uri_error(u, "target= is for connecting, not in",
		                      "target");
	if (err != 0) {
		t->cb = NULL;
		rill_close(&t->l.base);
		return err;
	}
	tun_start(t, role == RILL_ROLE_CONNECT ? socks5_c_start
	                                       : socks5_s_greeting);
	return 0;
}

const struct rill_layer_scheme rill__socks5_scheme = {
    .name = "socks5",
    .params = socks5_params,
    .check = socks5_check,
    .attach = socks5_attach,
};
