/*
 * Fuzz target: the SOCKS5 messages a socks5+ listener reads from a client
 * (greeting, RFC 1929 username/password, CONNECT request) and the ones a
 * socks5+ client reads from a proxy (method selection, auth status,
 * reply). Checks that a parsed message lies within the input, that every
 * shorter prefix asks for more bytes, that an accepted target host is a
 * name of the allowed characters or an IP literal, and that a request
 * rebuilt from a parsed target parses to the same target.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layer/tunnel/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const uint8_t *data, size_t size)
{
	uint8_t cmd = 0;
	bool atyp_bad = false;
	const char *why = NULL;
	struct rill__tun_target t;
	int r =
	    rill__socks5_parse_request(data, size, &cmd, &t, &atyp_bad, &why);
	if (r < 0 && why == NULL)
		abort();
	if (r <= 0)
		return;
	if ((size_t)r > size)
		abort();
	for (size_t k = 0; k < (size_t)r; k++) {
		struct rill__tun_target t2;
		if (rill__socks5_parse_request(data, k, &cmd, &t2, &atyp_bad,
		                               &why) != 0)
			abort();
	}
	uint8_t a[16];
	if (!rill__tun_name_ok(t.host, strlen(t.host)) &&
	    inet_pton(AF_INET6, t.host, a) != 1)
		abort();
	uint8_t req[262];
	size_t n = rill__socks5_build_request(req, &t);
	struct rill__tun_target t3;
	if (n == 0 ||
	    rill__socks5_parse_request(req, n, &cmd, &t3, &atyp_bad, &why) !=
	        (int)n ||
	    strcmp(t3.host, t.host) != 0 || t3.port != t.port)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned methods;
	uint8_t b;
	const char *why = NULL;
	char user[256], pass[256];
	int r = rill__socks5_parse_greeting(data, size, &methods, &why);
	if (r > 0 && ((size_t)r > size || (size_t)r != 2u + data[1]))
		abort();
	r = rill__socks5_parse_auth(data, size, user, pass, &why);
	if (r > 0 &&
	    ((size_t)r > size || strlen(user) + strlen(pass) + 3 != (size_t)r))
		abort();
	r = rill__socks5_parse_method(data, size, &b, &why);
	if (r > 0 && size < 2)
		abort();
	r = rill__socks5_parse_auth_reply(data, size, &b, &why);
	r = rill__socks5_parse_reply(data, size, &b, &why);
	if (r > 0 && (size_t)r > size)
		abort();
	check_request(data, size);
	return 0;
}
