/*
 * Live connections per source (rill relay --max-per-source): one count
 * per peer address (IP, CID or uid, rill_peer_format), shared by every
 * loop of the process. An entry lives only while its source has a live
 * connection, so the table never holds more entries than connections.
 */
#ifndef RILL_CLI_SOURCES_H
#define RILL_CLI_SOURCES_H

#include <stdbool.h>
#include <stdint.h>

/* Sources are named in at most this many bytes (with the NUL). */
#define CLI_SOURCE_MAX 64

struct cli_sources;

/* NULL on ENOMEM. */
struct cli_sources *cli_sources_new(void);

/* Counts one more connection from key when it has fewer than max;
 * false when it has max already (or on ENOMEM). */
bool cli_sources_take(struct cli_sources *s, const char *key, uint64_t max);

/* One connection from key ended. */
void cli_sources_drop(struct cli_sources *s, const char *key);

void cli_sources_free(struct cli_sources *s);

#endif
