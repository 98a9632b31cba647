/*
 * rill http: serve a directory over HTTP/1.1 on any listening URI
 * (http_serve_cmd.c, http_serve.c), and fetch a URL over any connecting
 * URI (http_get.c). Public API only.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "http_cmd.h"

static void http_usage(FILE *out)
{
	fprintf(out, "Usage: rill http serve [OPTIONS] URI [DIR]\n"
	             "       rill http get [OPTIONS] URL\n"
	             "\n"
	             "HTTP/1.1 over any flow. 'rill http serve --help' and\n"
	             "'rill http get --help' describe each.\n");
}

int cli_http(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error("http", "expected 'serve' or 'get'");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		http_usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "serve") == 0)
		return cli_http_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "get") == 0)
		return cli_http_get(argc - 1, argv + 1);
	return cli_usage_error("http", "unknown subcommand '%s'", argv[1]);
}
