/*
 * rill http serve --ws PATH=URI: WebSocket upgrades on PATH relayed to a
 * new connection to URI (websockify's job, beside the files).
 */
#ifndef RILL_CLI_HTTP_WS_H
#define RILL_CLI_HTTP_WS_H

#include <stdbool.h>

#include "rill.h"

#define SERVE_WS_MAX 16

struct serve_ws {
	const char *path[SERVE_WS_MAX];
	const char *uri[SERVE_WS_MAX];
	size_t n;
	bool quiet;
};

/* Adds "PATH=URI" (PATH starts with '/'); false when malformed or full. */
bool serve_ws_add(struct serve_ws *w, char *arg);

/* When ex's target is one of w's paths: upgrades it (or answers the
 * error), relays it to the path's URI, closes ex; returns true. *active
 * (the loop's) counts the bridges from then until each ends: an upgraded
 * connection leaves the HTTP server, whose max_connections no longer
 * sees it. */
bool serve_ws_try(const struct serve_ws *w, struct rill_flow *ex,
                  size_t *active);

#endif
