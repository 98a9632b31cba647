/*
 * Fuzz target: HTTP CONNECT heads, the request a connect+ listener reads
 * and the response a connect+ client reads. Checks that a parsed head
 * ends with its empty line within the input and the size limit, that no
 * shorter prefix parses, and that an accepted target host is a name of
 * the allowed characters or an IPv6 literal.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layer/tunnel/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_end(const uint8_t *data, size_t size, int r)
{
	if ((size_t)r > size || r > RILL__CONNECT_HEAD_MAX || r < 4 ||
	    memcmp(data + r - 4, "\r\n\r\n", 4) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool is_connect = false;
	struct rill__tun_target t;
	char auth[300];
	const char *why = NULL;
	int r = rill__connect_parse_request(data, size, &is_connect, &t, auth,
	                                    sizeof auth, &why);
	if (r < 0 && why == NULL)
		abort();
	if (r > 0) {
		check_end(data, size, r);
		if (rill__connect_parse_request(data, (size_t)r - 1,
		                                &is_connect, &t, auth,
		                                sizeof auth, &why) != 0)
			abort();
		uint8_t a[16];
		if (is_connect && !rill__tun_name_ok(t.host, strlen(t.host)) &&
		    inet_pton(AF_INET6, t.host, a) != 1)
			abort();
		if (strlen(auth) >= sizeof auth)
			abort();
	}
	int status = 0;
	char reason[64];
	r = rill__connect_parse_response(data, size, &status, reason,
	                                 sizeof reason, &why);
	if (r > 0) {
		check_end(data, size, r);
		if (status < 100 || status > 599 || strlen(reason) >= 64)
			abort();
		if (rill__connect_parse_response(data, (size_t)r - 1, &status,
		                                 reason, sizeof reason,
		                                 &why) != 0)
			abort();
	}
	return 0;
}
