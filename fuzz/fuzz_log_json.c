/*
 * Fuzz target: the JSON quoting of --log-format json (cli/logfmt.c),
 * which writes client-chosen bytes (HTTP targets, header values) into the
 * log. Whatever the input, the quoted string must be a valid JSON string
 * (RFC 8259 section 7) made of printable ASCII and valid UTF-8 only, with
 * no raw control character, U+2028 or U+2029; and decoding it must give
 * back the input with every byte that is not part of a valid UTF-8
 * sequence replaced by U+FFFD. The decoder and the UTF-8 check here are
 * written independently of logfmt.c's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_utf8.h"
#include "logfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fz_hex(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Appends code point cp as UTF-8. */
static size_t fz_put(uint8_t *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uint8_t)(0xc0 | cp >> 6);
		out[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	out[0] = (uint8_t)(0xe0 | cp >> 12);
	out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
	out[2] = (uint8_t)(0x80 | (cp & 0x3f));
	return 3;
}

/* Decodes the JSON string q[0..n) (quotes included) into out; returns
 * its length, or aborts when q is not a valid, safe JSON string. */
static size_t fz_decode(const uint8_t *q, size_t n, uint8_t *out)
{
	if (n < 2 || q[0] != '"' || q[n - 1] != '"')
		abort();
	size_t k = 0;
	for (size_t i = 1; i < n - 1;) {
		uint8_t c = q[i];
		if (c < 0x20 || c == 0x7f || c == '"')
			abort(); /* raw control character or quote */
		if (c != '\\') {
			size_t l = fz_utf8(q + i, n - 1 - i);
			if (l == 0)
				abort(); /* invalid UTF-8 written out */
			if (l == 3 && q[i] == 0xe2 && q[i + 1] == 0x80 &&
			    (q[i + 2] == 0xa8 || q[i + 2] == 0xa9))
				abort(); /* raw U+2028 / U+2029 */
			memcpy(out + k, q + i, l);
			k += l;
			i += l;
			continue;
		}
		if (i + 1 >= n - 1)
			abort();
		uint8_t e = q[i + 1];
		const char *simple = strchr("\"\\/bfnrt", e);
		if (simple != NULL && e != '\0') {
			static const char map[] = "\"\\/\b\f\n\r\t";
			out[k++] = (uint8_t)map[simple - "\"\\/bfnrt"];
			i += 2;
			continue;
		}
		if (e != 'u' || i + 6 > n - 1)
			abort();
		uint32_t cp = 0;
		for (int d = 0; d < 4; d++) {
			int h = fz_hex(q[i + 2 + d]);
			if (h < 0)
				abort();
			cp = cp << 4 | (uint32_t)h;
		}
		if (cp >= 0xd800 && cp <= 0xdfff)
			abort(); /* never written: no surrogate pairs needed */
		k += fz_put(out + k, cp);
		i += 6;
	}
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cli_json j = {.first = true};
	cli_json_quote(&j, (const char *)data, size);
	if (j.oom) {
		free(j.p);
		return 0;
	}
	/* What the decoding must give: the input, invalid bytes as
	 * U+FFFD. */
	uint8_t *want = malloc(size * 3 + 1), *got = malloc(j.len + 1);
	size_t w = 0;
	for (size_t i = 0; i < size;) {
		size_t l = fz_utf8(data + i, size - i);
		if (l == 0) {
			w += fz_put(want + w, 0xfffd);
			i++;
		} else {
			memcpy(want + w, data + i, l);
			w += l;
			i += l;
		}
	}
	size_t g = fz_decode((const uint8_t *)j.p, j.len, got);
	if (g != w || memcmp(got, want, w) != 0)
		abort();
	free(want);
	free(got);
	free(j.p);
	return 0;
}
