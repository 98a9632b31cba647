/* One hexadecimal digit's value (0-15), or -1: for percent-escapes in
 * URIs (uri_param.c) and GUIDs (transport/vsock/addr.c). No dependencies. */
#ifndef RILL_CORE_HEX_H
#define RILL_CORE_HEX_H

static inline int rill__hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
