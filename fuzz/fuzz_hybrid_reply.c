/*
 * Fuzz target: the parser of a VMM's reply to hybrid-vsock's
 * "CONNECT <port>\n" (Firecracker, Cloud Hypervisor). Checks that an
 * accepted reply really is "OK <digits>\n", that every shorter prefix of
 * it asks for more bytes, and that error-message escaping stays in
 * bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/vsock/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t port = 0;
	int r = rill__hybrid_parse_reply(data, size, &port);
	if (r > 0) {
		size_t n = (size_t)r;
		if (n > size || n < 5 || memcmp(data, "OK ", 3) != 0 ||
		    data[n - 1] != '\n')
			abort();
		for (size_t k = 0; k < n; k++) {
			uint32_t p2;
			if (rill__hybrid_parse_reply(data, k, &p2) != 0)
				abort();
		}
	} else if (r == 0) {
		if (memchr(data, '\n', size) != NULL ||
		    size >= RILL__HYBRID_REPLY_MAX)
			abort();
	}
	char out[40];
	rill__escape(data, size, out, sizeof out);
	if (strlen(out) >= sizeof out)
		abort();
	return 0;
}
