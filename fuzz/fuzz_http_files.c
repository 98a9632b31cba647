/*
 * Fuzz target: the request header parsers of rill http serve
 * (cli/http_files.c), which read what a remote client sends: Range,
 * If-Match / If-None-Match entity-tag lists, HTTP dates. The first 8
 * bytes are the representation's size; the rest is the header value.
 * A satisfiable range must lie inside the representation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t rep = 0;
	size_t n = size < 8 ? size : 8;
	memcpy(&rep, data, n);
	/* Small sizes are the interesting ones half of the time. */
	if (n > 0 && (data[0] & 1))
		rep &= 0xffff;
	char *s = malloc(size - n + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data + n, size - n);
	s[size - n] = '\0';
	uint64_t off = 0, len = 0;
	int r = http_range_parse(s, rep, &off, &len);
	if (r == 1 && (len == 0 || off >= rep || len > rep - off))
		abort();
	if (r < -1 || r > 1)
		abort();
	(void)http_etag_list_match(s, "\"5f.1a-10\"", true);
	(void)http_etag_list_match(s, "\"5f.1a-10\"", false);
	time_t t;
	(void)http_date_parse(s, &t);
	(void)http_file_type(s);
	free(s);
	return 0;
}
