/*
 * Fuzz target: the addresses of vsock://, hvsock://, hybrid-vsock: and
 * hyperkit: URIs, and the whole URI parser on the same text. Whatever
 * parses must format back to something that parses to the same address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"
#include "transport/vsock/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	const char *what;
	char buf[160];

	uint32_t cid, port, cid2, port2;
	if (rill__vsock_parse(s, &cid, &port, &what) == 0) {
		if (rill__vsock_format(cid, port, buf, sizeof buf) != 0 ||
		    strncmp(buf, "vsock:", 6) != 0 ||
		    rill__vsock_parse(buf + 6, &cid2, &port2, &what) != 0 ||
		    cid != cid2 || port != port2)
			abort();
	}

	char path[108];
	if (rill__path_port_parse(s, path, sizeof path, &port, &what) == 0) {
		if (path[0] == '\0' || strlen(path) >= sizeof path)
			abort();
	}

	struct rill__guid vm, sv, vm2, sv2;
	if (rill__hvsock_parse(s, &vm, &sv, &what) == 0) {
		if (rill__hvsock_format(&vm, &sv, buf, sizeof buf) != 0 ||
		    strncmp(buf, "hvsock:", 7) != 0 ||
		    rill__hvsock_parse(buf + 7, &vm2, &sv2, &what) != 0 ||
		    !rill__guid_equal(&vm, &vm2) ||
		    !rill__guid_equal(&sv, &sv2))
			abort();
		uint8_t sa[RILL__SOCKADDR_HV_LEN];
		rill__hvsock_sockaddr(&vm, &sv, sa);
	}

	/* The registry's parser on the raw text and with each scheme. */
	(void)rill_uri_check(s);
	static const char *const prefixes[] = {
	    "vsock:", "hvsock:", "hybrid-vsock:", "hyperkit:", "shut+unix:",
	};
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		size_t pl = strlen(prefixes[i]);
		char *u = malloc(pl + size + 1);
		if (u == NULL)
			break;
		memcpy(u, prefixes[i], pl);
		memcpy(u + pl, s, size + 1);
		(void)rill_uri_check(u);
		free(u);
	}
	free(s);
	return 0;
}
