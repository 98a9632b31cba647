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

/* One loop's relays, from the upgrade on. An upgraded connection
 * leaves the HTTP server, whose max_connections no longer sees it: n
 * counts them against --max-conns. */
struct serve_bridge;
struct serve_ws_set {
	size_t n;
	struct serve_bridge *list;
	bool stopping; /* no new relay: 503 */
};

/* When ex's target is one of w's paths: upgrades it (or answers the
 * error), relays it to the path's URI in set, closes ex; returns true. */
bool serve_ws_try(const struct serve_ws *w, struct rill_flow *ex,
                  struct serve_ws_set *set);

/* Shutdown: no new relay from now on, and those relaying are closed at
 * once (an upgrade or connect still under way ends when it completes,
 * within the 10 s connect deadline). */
void serve_ws_stop(struct serve_ws_set *set);

#endif
