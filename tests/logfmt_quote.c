/*
 * A helper of tests/test_metrics_cli.py: reads stdin whole and writes it
 * to stdout as one --log-format json line (cli/logfmt.c) whose member
 * "s" holds the bytes, so that the test can parse the result with a
 * standard JSON parser for every byte value and sequence.
 */
#include <stdio.h>
#include <stdlib.h>

#include "logfmt.h"

int main(void)
{
	size_t cap = 1 << 16, n = 0, got;
	char *buf = malloc(cap);
	while (buf != NULL && (got = fread(buf + n, 1, cap - n, stdin)) > 0) {
		n += got;
		if (n == cap) {
			char *more = realloc(buf, cap * 2);
			if (more == NULL)
				break;
			buf = more;
			cap *= 2;
		}
	}
	if (buf == NULL)
		return 1;
	struct cli_json j;
	cli_json_begin(&j, "quote");
	cli_json_strn(&j, "s", buf, n);
	cli_json_end(&j, stdout);
	free(buf);
	return 0;
}
