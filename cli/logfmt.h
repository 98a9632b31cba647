/*
 * --log-format json: one JSON object (RFC 8259) per line on stderr, for
 * log shippers. Strings are quoted so that no input can break the line
 * or the object: '"' and '\' are escaped, every control character
 * (U+0000-U+001F, U+007F) becomes \uXXXX (or \n, \t...), U+2028 and
 * U+2029 are escaped too (JavaScript readers), and a byte that does not
 * belong to valid UTF-8 becomes \ufffd, so the line is always valid UTF-8
 * whatever a client sent (HTTP targets and header values are
 * client-chosen).
 */
#ifndef RILL_CLI_LOGFMT_H
#define RILL_CLI_LOGFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

enum cli_log_format { CLI_LOG_TEXT, CLI_LOG_JSON };

/* "text" or "json". */
bool cli_log_format_parse(const char *s, enum cli_log_format *out);

/* One JSON object being built; the first failed allocation drops it. */
struct cli_json {
	char *p;
	size_t len, cap;
	bool oom;
	bool first;
};

/* Appends s[0..n) as a JSON string, quotes included. */
void cli_json_quote(struct cli_json *j, const char *s, size_t n);

/* "{" and the "ts" member (now, UTC, RFC 3339 with microseconds). */
void cli_json_begin(struct cli_json *j, const char *cmd);
/* Members; a NULL string value is written as null. */
void cli_json_str(struct cli_json *j, const char *key, const char *s);
void cli_json_strn(struct cli_json *j, const char *key, const char *s,
                   size_t n);
void cli_json_u64(struct cli_json *j, const char *key, uint64_t v);
void cli_json_secs(struct cli_json *j, const char *key, double secs);
/* A wall-clock time (RFC 3339, UTC, microseconds). */
void cli_json_time(struct cli_json *j, const char *key,
                   const struct timespec *t);
/* "}\n", written with one fwrite (one write(2) on unbuffered stderr, so
 * lines of several threads do not interleave); frees j. */
void cli_json_end(struct cli_json *j, FILE *out);

/* The wall-clock time secs seconds before now. */
void cli_time_ago(double secs, struct timespec *t);

#endif
