/* rill: the command-line tool. Uses only the public API. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
    {"bench", cli_bench, "measure every flow kind beside its baselines"},
    {"cat", cli_cat, "standard input/output to a flow, with half-close"},
    {"echo", cli_echo, "echo server: every connection, concurrently"},
    {"http", cli_http, "HTTP/1.1 over any flow: serve a directory, get a URL"},
    {"relay", cli_relay, "forward every accepted connection to a URI"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void cli_closed(uv_loop_t *loop, void *ud)
{
	(void)loop;
	*(bool *)ud = true;
}

void cli_wait_closed(uv_loop_t *loop)
{
	/* Not on the stack: a waiter left behind (the loop ran out of work
	 * first) stays valid. Per thread: the relay runs a loop on each. */
	static _Thread_local bool done;
	done = false;
	if (rill_when_flows_closed(loop, cli_closed, &done) != 0)
		return; /* out of memory: nothing better to do */
	while (!done && uv_run(loop, UV_RUN_ONCE) != 0)
		;
}

bool cli_parse_secs(const char *s, uint64_t *ms)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || !(v >= 0) || v > 1e9)
		return false;
	*ms = (uint64_t)(v * 1000.0 + 0.5);
	return true;
}

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("rill: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("rill: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	if (cmd != NULL)
		fprintf(stderr, "Try 'rill %s --help'.\n", cmd);
	else
		fprintf(stderr, "Try 'rill --help'.\n");
	return 2;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: rill COMMAND [OPTIONS] [ARGS]\n"
	        "       rill --help | --version\n"
	        "\n"
	        "rill moves bytes reliably over TCP, Unix sockets, vsock,\n"
	        "shared-memory rings and in-memory pairs, with shut, TLS and\n"
	        "HTTP layers stacked on any of them.\n"
	        "\n"
	        "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name,
		        commands[i].summary);
	fprintf(out,
	        "\n'rill COMMAND --help' describes a command.\n"
	        "Exit status: 0 success, 1 failure, 2 bad command line.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error(NULL, "no command given");
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		printf("rill %s (libuv %s)\n", rill_version(),
		       uv_version_string());
		return 0;
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
