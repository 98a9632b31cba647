/* The rill command-line tool: shared declarations of its subcommands. */
#ifndef RILL_CLI_H
#define RILL_CLI_H

#include <stdio.h>

#include "rill.h"

/* Every subcommand: argc/argv start at the subcommand's name. Returns the
 * process exit status: 0 success, 1 runtime failure, 2 bad command line. */
int cli_bench(int argc, char **argv);
int cli_cat(int argc, char **argv);
int cli_echo(int argc, char **argv);
int cli_http(int argc, char **argv);
int cli_relay(int argc, char **argv);

/*
 * Runs loop until every flow closed on it has finished its teardown
 * (rill_when_flows_closed), so that a command does not cut a close
 * handshake short (the shut layer's) by exiting. Each teardown is bounded
 * by its close deadline. Call it before uv_loop_close() and exit.
 */
void cli_wait_closed(uv_loop_t *loop);

/* Parses seconds (decimals allowed, 0..1e9) into milliseconds; false
 * when s is not such a number. */
bool cli_parse_secs(const char *s, uint64_t *ms);

/* Prints "rill: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints a usage error and a pointer to help; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
