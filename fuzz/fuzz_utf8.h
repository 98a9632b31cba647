/*
 * A UTF-8 check of the fuzz targets' own (Unicode 15, table 3-7, "well-
 * formed byte sequences"), written independently of the code under test.
 */
#ifndef RILL_FUZZ_UTF8_H
#define RILL_FUZZ_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s (Unicode 15, table 3-7), 0 if
 * none. */
static inline size_t fz_utf8(const uint8_t *s, size_t n)
{
	if (s[0] < 0x80)
		return 1;
	uint8_t lo = 0x80, hi = 0xbf;
	size_t len;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

#endif
