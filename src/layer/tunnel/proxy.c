/*
 * The proxy layer scheme: HAProxy's PROXY protocol, versions 1 and 2.
 *
 *   proxy+tcp://backend:80?version=1     connect: send the header first
 *   proxy+tcp://0.0.0.0:8080             listen: require one on every
 *                                        connection (v1 or v2)
 *
 * Connecting, the header carries rill_connect_opts.proxy_header_src and
 * proxy_header_dst (rill relay passes the accepted connection's peer and
 * local addresses); without them it says LOCAL (v2) or UNKNOWN (v1).
 * vsock addresses go as v2 with the TLV RILL__PP2_TYPE_VSOCK (wire.h),
 * and as UNKNOWN in v1.
 *
 * Listening, the header must arrive within the handshake deadline and
 * parse strictly; rill_flow_address of the accepted flow then reports its
 * addresses (the real connection's for LOCAL and UNKNOWN).
 */
#include <string.h>

#include "layer/tunnel/tunnel.h"

static const char *const proxy_params[] = {"version", NULL};

static const struct rill_flow_ops proxy_ops = TUN_OPS("proxy");

static const struct tun_proto proxy_proto = {
    .name = "proxy",
};

static void proxy_s_header(struct tun *t)
{
	int version = 0;
	const char *why = NULL;
	int r = rill__pp_parse(t->acc, t->acc_len, &t->pp, &version, &why);
	if (r == 0) {
		tun_need(t, proxy_s_header);
		return;
	}
	if (r < 0) {
		memset(&t->pp, 0, sizeof t->pp);
		tun_fail(t, r == -EMSGSIZE ? r : RILL_EFRAME,
		         "bad PROXY protocol header: %s", why);
		return;
	}
	tun_consume(t, (size_t)r);
	tun_ready(t);
}

static void proxy_c_sent(struct tun *t)
{
	tun_ready(t);
}

static int proxy_check(const struct rill_uri *u)
{
	uint64_t v;
	return rill__uri_param_u64(u, "version", 1, 2, 2, &v);
}

static int proxy_attach(struct rill_flow *inner, const struct rill_uri *u,
                        int role, uint64_t deadline_ms, rill_attach_cb cb,
                        void *ud)
{
	struct tun *t =
	    tun_new(inner, &proxy_proto, &proxy_ops, role, deadline_ms, cb, ud);
	if (t == NULL)
		return RILL_ENOMEM;
	if (role == RILL_ROLE_ACCEPT) {
		tun_start(t, proxy_s_header);
		return 0;
	}
	uint64_t version = 2;
	rill__uri_param_u64(u, "version", 1, 2, 2, &version);
	const struct rill_connect_opts *o = u->connect_opts;
	struct rill__pp_addrs a;
	rill__pp_addrs_from(o != NULL ? o->proxy_header_src : NULL,
	                    o != NULL ? o->proxy_header_dst : NULL, &a);
	uint8_t hdr[RILL__PP2_MAX];
	size_t n = rill__pp_build((int)version, &a, hdr);
	tun_send(t, hdr, n, proxy_c_sent);
	return 0;
}

const struct rill_layer_scheme rill__proxy_scheme = {
    .name = "proxy",
    .params = proxy_params,
    .check = proxy_check,
    .attach = proxy_attach,
};
