/*
 * rill http serve --ws PATH=URI: a request for PATH is upgraded to a
 * WebSocket with rill_ws_accept (a plain request there gets 426), then
 * relayed both ways to a new connection to URI, as `rill relay
 * ws+tcp://... URI --linger 5` would. Public API only.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "http_ws.h"

#define SERVE_WS_CONNECT_MS 10000
/* Once one side ended (its EOF, error or Close), the other has this long
 * to end too: a WebSocket cannot stay half-closed, and without it a
 * client gone from a silent target (or a target gone from a client that
 * never sends its Close) would hold the relay for ever. */
#define SERVE_WS_LINGER_MS 5000

/* One relay, from the upgrade on: in its loop's set until it ends. */
struct serve_bridge {
	struct serve_bridge *prev, *next;
	struct serve_ws_set *set;
	struct rill_flow *ws, *target;
	struct rill_proxy *proxy; /* while relaying */
	const char *uri;
	bool quiet;
};

/* Every bridge ends here: it no longer counts against --max-conns. */
static void bridge_free(struct serve_bridge *b)
{
	struct serve_ws_set *set = b->set;
	if (b->prev != NULL)
		b->prev->next = b->next;
	else
		set->list = b->next;
	if (b->next != NULL)
		b->next->prev = b->prev;
	set->n--;
	free(b);
}

bool serve_ws_add(struct serve_ws *w, char *arg)
{
	char *eq = strchr(arg, '=');
	if (eq == NULL || arg[0] != '/' || eq[1] == '\0' ||
	    w->n == SERVE_WS_MAX)
		return false;
	*eq = '\0';
	w->path[w->n] = arg;
	w->uri[w->n] = eq + 1;
	w->n++;
	return true;
}

static void bridge_proxy_done(struct rill_proxy *p,
                              const struct rill_proxy_result *res, void *ud)
{
	(void)p;
	(void)res;
	struct serve_bridge *b = ud;
	rill_close(b->ws);
	rill_close(b->target);
	bridge_free(b);
}

static void bridge_connected(struct rill_flow *f, int status,
                             const char *errmsg, void *ud)
{
	struct serve_bridge *b = ud;
	if (status != 0) {
		if (!b->quiet)
			cli_error("http serve: --ws connect %s: %s", b->uri,
			          errmsg && *errmsg ? errmsg
			                            : rill_strerror(status));
		rill_close(b->ws);
		bridge_free(b);
		return;
	}
	b->target = f;
	struct rill_proxy_opts po = {
	    .flags = RILL_PROXY_LINGER,
	    .linger_ms = SERVE_WS_LINGER_MS,
	};
	if (b->set->stopping ||
	    rill_proxy(b->ws, f, &po, bridge_proxy_done, b, &b->proxy) != 0) {
		rill_close(b->ws);
		rill_close(f);
		bridge_free(b);
	}
}

static void bridge_upgraded(struct rill_flow *f, int status, void *ud)
{
	struct serve_bridge *b = ud;
	if (status != 0) {
		bridge_free(b);
		return;
	}
	b->ws = f;
	if (b->set->stopping) {
		rill_close(f);
		bridge_free(b);
		return;
	}
	struct rill_connect_opts co = {.timeout_ms = SERVE_WS_CONNECT_MS};
	int err =
	    rill_connect(rill_flow_loop(f), b->uri, &co, bridge_connected, b);
	if (err != 0) {
		if (!b->quiet)
			cli_error("http serve: --ws connect %s: %s", b->uri,
			          rill_last_errmsg());
		rill_close(f);
		bridge_free(b);
	}
}

bool serve_ws_try(const struct serve_ws *w, struct rill_flow *ex,
                  struct serve_ws_set *set)
{
	const char *t = rill_http_target(ex);
	size_t plen = strcspn(t, "?");
	size_t i = 0;
	while (i < w->n && (strlen(w->path[i]) != plen ||
	                    strncmp(w->path[i], t, plen) != 0))
		i++;
	if (i == w->n)
		return false;
	if (set->stopping) {
		/* Shutting down: no new relay (it would hold the loop). */
		rill_http_respond_buf(ex, 503, NULL, 0, NULL);
		rill_close(ex);
		return true;
	}
	struct serve_bridge *b = calloc(1, sizeof *b);
	if (b == NULL) {
		rill_close(ex); /* a 500 */
		return true;
	}
	b->uri = w->uri[i];
	b->quiet = w->quiet;
	b->set = set;
	b->next = set->list;
	if (set->list != NULL)
		set->list->prev = b;
	set->list = b;
	set->n++;
	/* A refused upgrade was answered (400, 426...) by rill_ws_accept. */
	if (rill_ws_accept(ex, NULL, bridge_upgraded, b) != 0)
		bridge_free(b);
	rill_close(ex);
	return true;
}

void serve_ws_stop(struct serve_ws_set *set)
{
	set->stopping = true;
	struct serve_bridge *b = set->list, *next;
	for (; b != NULL; b = next) {
		next = b->next;
		if (b->proxy != NULL) {
			rill_proxy_abort(b->proxy); /* closes both flows */
			bridge_free(b);
		}
	}
}
