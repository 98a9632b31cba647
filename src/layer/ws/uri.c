/*
 * The "ws" layer scheme of the URI registry (src/core/scheme.h):
 *
 *   ws+tcp://host:80?path=/x&subprotocol=binary      (connect)
 *   ws+tls+tcp://host:443?path=/x                    (wss)
 *   ws+tcp://0.0.0.0:6080?path=/websockify           (listen)
 *
 * Parameters: path (client: request target, "/" by default; server: the
 * only target accepted), host (client: Host header; by default the
 * host:port of a tcp:// transport, else "localhost"), origin (client:
 * sent; server: required), subprotocol (a comma-separated list: offered,
 * or accepted), ping=SECONDS (keep-alive pings), max_message=BYTES.
 * The handshake deadline is the listener's or connect's.
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "core/scheme.h"
#include "layer/ws/ws_internal.h"

static const char *const ws_params[] = {
    "path", "host", "origin", "subprotocol", "ping", "max_message", NULL,
};

static int ws_check(const struct rill_uri *u)
{
	uint64_t v;
	int err = rill__uri_param_u64(u, "ping", 1, 86400, 0, &v);
	if (err == 0)
		err = rill__uri_param_u64(
		    u, "max_message", 1, (uint64_t)1 << 40, WS_MAX_MESSAGE, &v);
	const char *p = rill__uri_param(u, "path");
	if (err == 0 && p != NULL && p[0] != '/')
		err = rill__uri_error(u, "path must start with \"/\":", p);
	const char *checks[] = {"path", "host", "origin", "subprotocol"};
	for (size_t i = 0; err == 0 && i < 4; i++) {
		const char *s = rill__uri_param(u, checks[i]);
		if (s != NULL && strpbrk(s, "\r\n ") != NULL)
			err = rill__uri_error(u, "bad character in", s);
	}
	return err;
}

/* The host:port of a "//host:port" transport into out, if any. */
static bool ws_uri_authority(const struct rill_uri *u, char *out, size_t len)
{
	if (strcmp(u->scheme, "tcp") != 0 || u->rest == NULL ||
	    strncmp(u->rest, "//", 2) != 0)
		return false;
	const char *r = u->rest + 2;
	size_t n = strcspn(r, "/");
	if (n == 0 || n >= len)
		return false;
	memcpy(out, r, n);
	out[n] = '\0';
	return true;
}

static int ws_attach_uri(struct rill_flow *inner, const struct rill_uri *u,
                         int role, uint64_t deadline_ms, rill_attach_cb cb,
                         void *ud)
{
	char authority[256];
	struct rill_ws_opts o = {
	    .path = rill__uri_param(u, "path"),
	    .host = rill__uri_param(u, "host"),
	    .origin = rill__uri_param(u, "origin"),
	    .subprotocols = rill__uri_param(u, "subprotocol"),
	    .handshake_timeout_ms = deadline_ms,
	};
	if (o.host == NULL && role == RILL_ROLE_CONNECT &&
	    ws_uri_authority(u, authority, sizeof authority))
		o.host = authority;
	uint64_t ping_s = 0;
	rill__uri_param_u64(u, "ping", 1, 86400, 0, &ping_s);
	o.ping_ms = ping_s * 1000;
	rill__uri_param_u64(u, "max_message", 1, (uint64_t)1 << 40,
	                    WS_MAX_MESSAGE, &o.max_message);
	struct ws_conf conf;
	int err = rill__ws_conf_init(&conf, &o);
	if (err != 0) {
		rill_close(inner);
		return err;
	}
	return rill__ws_attach(
	    inner, role == RILL_ROLE_ACCEPT ? RILL_WS_SERVER : RILL_WS_CLIENT,
	    &conf, NULL, false, NULL, cb, ud);
}

const struct rill_layer_scheme rill__ws_scheme = {
    .name = "ws",
    .params = ws_params,
    .check = ws_check,
    .attach = ws_attach_uri,
};
