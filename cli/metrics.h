/*
 * --metrics URI of rill relay, rill http serve and rill echo: the
 * commands' counters in a rill_metrics registry (include/rill/metrics.h),
 * served as Prometheus text over HTTP on any listening URI (GET
 * /metrics).
 *
 * Each thread counts into its own shard (struct cli_mshard), with no lock
 * and no atomic read-modify-write; the scrape sums the shards. Every
 * counting call is a no-op on a shard whose command has no --metrics, so
 * the commands call them unconditionally. Label values come from
 * bounded sets only (error names, HTTP methods llhttp knows, status
 * classes), never from what a client sent.
 */
#ifndef RILL_CLI_METRICS_H
#define RILL_CLI_METRICS_H

#include "cli.h"

#define CLI_HTTP_METHODS 10 /* GET HEAD POST PUT DELETE ... other */

/* New connections the metrics listener serves per second. */
#define CLI_METRICS_ACCEPTS_PER_S 16
/* Connections it holds at once: a keep-alive scraper that asks again
 * within the idle timeout is never cut, so the rate above alone would
 * let them pile up without end. */
#define CLI_METRICS_MAX_CONNS 16

struct cli_metrics {
	struct rill_metrics *reg;
	const char *uri; /* --metrics URI */
	char listener[256];
	uv_loop_t *loop;
	struct rill_http_server *srv;
	struct rill_listener *l;
	bool tls_listener;       /* the served URI has a tls layer */
	uint64_t window_ms;      /* the current second of accepts */
	unsigned window_accepts; /* accepted in it */
	struct rill_metrics_family *denied, *connect_failures, *tls, *http;
	const struct rill_metric *accepted, *active, *up, *down, *duration,
	    *connect_duration, *http_duration;
};

/* One thread's counting. */
struct cli_mshard {
	struct cli_metrics *cm; /* NULL: no --metrics */
	struct rill_metrics_shard *s;
	const struct rill_metric *http[CLI_HTTP_METHODS][6];
	const struct rill_metric *tls_ok[2]; /* connect, accept side */
};

enum {
	CLI_METRICS_CONNECT = 1, /* relay: connects, their failures */
	CLI_METRICS_HTTP = 2,    /* http serve: requests */
	CLI_METRICS_CONNS = 4,   /* connections' life and bytes */
};

/*
 * Registers the families of a command serving listen_uri; what: the
 * CLI_METRICS_* it also has. 0 or a negative error (message printed).
 */
int cli_metrics_init(struct cli_metrics *cm, const char *metrics_uri,
                     const char *listen_uri, unsigned what);

/* Listens on cm->uri on loop and serves the scrapes there. 0 or an error
 * (message printed). */
int cli_metrics_listen(struct cli_metrics *cm, uv_loop_t *loop);

/* On cm's loop: stops serving (the first signal). */
void cli_metrics_stop(struct cli_metrics *cm);

/* Frees the registry with its shards (every thread has ended). */
void cli_metrics_free(struct cli_metrics *cm);

/* A shard for the calling thread; cm NULL gives a no-op one. */
int cli_mshard_init(struct cli_mshard *ms, struct cli_metrics *cm);

void cli_m_accepted(struct cli_mshard *ms);
void cli_m_active(struct cli_mshard *ms, int delta);
/* reason: a fixed string ("max-conns"). */
void cli_m_denied(struct cli_mshard *ms, const char *reason);
/* A failed connect: err names the reason. */
void cli_m_connect_failed(struct cli_mshard *ms, int err);
void cli_m_connect_time(struct cli_mshard *ms, double secs);
void cli_m_bytes(struct cli_mshard *ms, uint64_t up, uint64_t down);
void cli_m_conn_time(struct cli_mshard *ms, double secs);
/* A TLS handshake ended with status on the accept (or connect) side;
 * counted only when that side's URI has a tls layer (has_tls), and for
 * a failure only when status is a TLS error (RILL_ETLS*). */
void cli_m_tls(struct cli_mshard *ms, bool accept_side, bool has_tls,
               int status);
void cli_m_http(struct cli_mshard *ms, const char *method, int status,
                double secs);

/* Whether a URI's layers include tls ("tls+tcp://..."). */
bool cli_uri_has_tls(const char *uri);

/* Seconds since an earlier uv_hrtime(). */
double cli_secs_since(uint64_t t0_ns);

#endif
