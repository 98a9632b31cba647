/*
 * The connect layer scheme: HTTP CONNECT (RFC 9110 section 9.3.6), with
 * Basic authentication (RFC 7617) to the proxy.
 *
 *   connect+tcp://proxy:3128?target=host:22&auth=USER:PASS   (connect)
 *   connect+tls+tcp://proxy:443?target=host:22               (HTTPS proxy)
 *   connect+tcp://127.0.0.1:3128?auth=USER:PASS               (listen)
 *
 * The client sends the request and reads the response head; a 2xx ends
 * the handshake and whatever follows the head is the flow's first bytes.
 * The server reads the request head; the accepted flow carries the
 * target and the response waits for rill_tunnel_reply: 200 on success,
 * 403 when not allowed, 504 on a timeout, 502 otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "layer/tunnel/tunnel.h"

static const char *const connect_params[] = {"target", "auth", NULL};

static const struct rill_flow_ops connect_ops = TUN_OPS("connect");

static size_t connect_reply(int status, uint8_t *out)
{
	const char *line;
	switch (status) {
	case 0: line = "200 Connection established"; break;
	case -EACCES:
	case -EPERM:
	case RILL_EPROXY_DENIED: line = "403 Forbidden"; break;
	case RILL_ETIMEDOUT: line = "504 Gateway Timeout"; break;
	default: line = "502 Bad Gateway"; break;
	}
	int n = snprintf((char *)out, 256,
	                 status == 0 ? "HTTP/1.1 %s\r\n\r\n"
	                             : "HTTP/1.1 %s\r\nContent-Length: 0\r\n"
	                               "Connection: close\r\n\r\n",
	                 line);
	return (size_t)n;
}

static const struct tun_proto connect_proto = {
    .name = "connect",
    .reply = connect_reply,
};

/* ---------------------------------------------------------------------- */
/* Client */

static int connect_err_of(int status)
{
	switch (status) {
	case 403: return RILL_EPROXY_DENIED;
	case 407: return RILL_EPROXY_AUTH;
	case 504: return RILL_ETIMEDOUT;
	default: return RILL_EPROXY;
	}
}

static void connect_c_response(struct tun *t)
{
	int status = 0;
	char reason[80];
	const char *why = NULL;
	int r = rill__connect_parse_response(t->acc, t->acc_len, &status,
	                                     reason, sizeof reason, &why);
	if (r == 0) {
		tun_need(t, connect_c_response);
	} else if (r < 0) {
		tun_fail(t, RILL_EHANDSHAKE, "malformed response: %s", why);
	} else if (status < 200 || status > 299) {
		tun_fail(t, connect_err_of(status), "proxy said %d %s for %s",
		         status, reason, t->target.host);
	} else {
		tun_consume(t, (size_t)r);
		tun_ready(t);
	}
}

static int connect_c_request(struct tun *t, const char *auth, char *out,
                             size_t len)
{
	char tg[RILL__TUN_HOST_MAX + 8];
	rill__tun_format_target(&t->target, tg, sizeof tg);
	int n =
	    snprintf(out, len, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", tg, tg);
	if (auth != NULL) {
		char b64[4 * ((512 + 2) / 3) + 1];
		size_t al = strlen(auth);
		if (al > 512)
			return -1;
		rill__base64((const uint8_t *)auth, al, b64);
		n += snprintf(out + n, len - (size_t)n,
		              "Proxy-Authorization: Basic %s\r\n", b64);
	}
	n += snprintf(out + n, len - (size_t)n, "\r\n");
	return n;
}

/* ---------------------------------------------------------------------- */
/* Server */

static void connect_s_refuse_done(struct tun *t)
{
	tun_fail(t, t->state, "refused the client: %s", t->note);
}

static void connect_s_refuse(struct tun *t, const char *status, int err,
                             const char *note)
{
	char msg[200];
	int n = snprintf(msg, sizeof msg,
	                 "HTTP/1.1 %s\r\n%sContent-Length: 0\r\n"
	                 "Connection: close\r\n\r\n",
	                 status,
	                 err == RILL_EPROXY_AUTH
	                     ? "Proxy-Authenticate: Basic realm=\"rill\"\r\n"
	                     : "");
	t->state = err;
	t->note = note;
	tun_send(t, msg, (size_t)n, connect_s_refuse_done);
}

static void connect_s_request(struct tun *t)
{
	bool is_connect = false;
	char auth[700];
	const char *why = NULL;
	int r =
	    rill__connect_parse_request(t->acc, t->acc_len, &is_connect,
	                                &t->target, auth, sizeof auth, &why);
	if (r == 0) {
		tun_need(t, connect_s_request);
		return;
	}
	if (r < 0) {
		connect_s_refuse(t,
		                 r == -EMSGSIZE
		                     ? "431 Request Header Fields Too "
		                       "Large"
		                     : "400 Bad Request",
		                 r, why);
		return;
	}
	if (!is_connect) {
		connect_s_refuse(t, "405 Method Not Allowed", -ENOTSUP,
		                 "not a CONNECT request");
		return;
	}
	if (t->user != NULL) {
		/* t->user holds "Basic " + base64(USER:PASS). Every byte is
		 * compared, whatever the first difference. */
		size_t el = strlen(t->user), gl = strlen(auth);
		unsigned diff = el != gl;
		for (size_t i = 0; i < el; i++)
			diff |= (unsigned)(uint8_t)t->user[i] ^
			        (uint8_t)(i < gl ? auth[i] : 0);
		if (diff != 0) {
			connect_s_refuse(t, "407 Proxy Authentication Required",
			                 RILL_EPROXY_AUTH,
			                 auth[0] != '\0' ? "wrong credentials"
			                                 : "no credentials");
			return;
		}
	}
	tun_consume(t, (size_t)r);
	t->have_target = true;
	t->reply_pending = true;
	tun_ready(t);
}

/* ---------------------------------------------------------------------- */
/* The scheme */

static int connect_check(const struct rill_uri *u)
{
	struct rill__tun_target tg;
	if (rill__uri_param(u, "target") != NULL) {
		int err = tun_uri_target(u, &tg);
		if (err != 0)
			return err;
	}
	const char *auth = rill__uri_param(u, "auth");
	if (auth != NULL && (strchr(auth, ':') == NULL || strlen(auth) > 512 ||
	                     strpbrk(auth, "\r\n") != NULL))
		return rill__uri_error(u, "bad auth (want USER:PASS)", "auth");
	return 0;
}

static int connect_attach(struct rill_flow *inner, const struct rill_uri *u,
                          int role, uint64_t deadline_ms, rill_attach_cb cb,
                          void *ud)
{
	struct tun *t = tun_new(inner, &connect_proto, &connect_ops, role,
	                        deadline_ms, cb, ud);
	if (t == NULL)
		return RILL_ENOMEM;
	const char *auth = rill__uri_param(u, "auth");
	int err = 0;
	if (role == RILL_ROLE_CONNECT) {
		err = tun_uri_target(u, &t->target);
		char req[1400];
		int n =
		    err == 0 ? connect_c_request(t, auth, req, sizeof req) : 0;
		if (err == 0 && n > 0) {
			tun_send(t, req, (size_t)n, connect_c_response);
			return 0;
		}
	} else if (rill__uri_param(u, "target") != NULL) {
		err = rill__uri_error(u, "target= is for connecting, not in",
		                      "target");
	} else {
		if (auth != NULL) {
			size_t al = strlen(auth);
			t->user = rill_malloc(6 + 4 * ((al + 2) / 3) + 1);
			if (t->user == NULL) {
				err = RILL_ENOMEM;
			} else {
				memcpy(t->user, "Basic ", 6);
				rill__base64((const uint8_t *)auth, al,
				             t->user + 6);
			}
		}
		if (err == 0) {
			tun_start(t, connect_s_request);
			return 0;
		}
	}
	t->cb = NULL;
	rill_close(&t->l.base);
	return err != 0 ? err : RILL_EURI;
}

const struct rill_layer_scheme rill__connect_scheme = {
    .name = "connect",
    .params = connect_params,
    .check = connect_check,
    .attach = connect_attach,
};
