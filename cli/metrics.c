/* --metrics: see metrics.h. */
#include <ctype.h>
#include <string.h>

#include "metrics.h"

static const char *const metrics_methods[CLI_HTTP_METHODS] = {
    "GET",     "HEAD",    "POST",  "PUT",   "DELETE",
    "OPTIONS", "CONNECT", "TRACE", "PATCH", "other"};

bool cli_uri_has_tls(const char *uri)
{
	/* The layers are the '+'-separated words before the scheme's ':'. */
	const char *end = strchr(uri, ':');
	for (const char *p = uri; end != NULL && p < end;) {
		const char *plus = memchr(p, '+', (size_t)(end - p));
		size_t n = (size_t)((plus != NULL ? plus : end) - p);
		if (n == 3 && strncmp(p, "tls", 3) == 0 && plus != NULL)
			return true;
		p = plus != NULL ? plus + 1 : end;
	}
	return false;
}

double cli_secs_since(uint64_t t0_ns)
{
	return (double)(uv_hrtime() - t0_ns) / 1e9;
}

/* A series of family f with the listener label and up to two more. */
static int metrics_series(struct cli_metrics *cm, struct rill_metrics_family *f,
                          const char *v1, const char *v2,
                          const struct rill_metric **out)
{
	const char *v[3] = {cm->listener, v1, v2};
	return rill_metrics_series(f, v, out);
}

static int metrics_family(struct cli_metrics *cm, enum rill_metric_type type,
                          const char *name, const char *help, const char *l1,
                          const char *l2, struct rill_metrics_family **out)
{
	static const double secs[] = RILL_METRICS_SECONDS_BUCKETS;
	const char *labels[3] = {"listener", l1, l2};
	size_t n = l1 == NULL ? 1 : l2 == NULL ? 2 : 3;
	bool h = type == RILL_METRIC_HISTOGRAM;
	return rill_metrics_family(cm->reg, type, name, help, labels, n,
	                           h ? secs : NULL,
	                           h ? sizeof secs / sizeof secs[0] : 0, out);
}

/* A family with the listener label only, and its one series. */
static int metrics_one(struct cli_metrics *cm, enum rill_metric_type type,
                       const char *name, const char *help,
                       const struct rill_metric **out)
{
	struct rill_metrics_family *f;
	int err = metrics_family(cm, type, name, help, NULL, NULL, &f);
	return err != 0 ? err : metrics_series(cm, f, NULL, NULL, out);
}

static int metrics_register(struct cli_metrics *cm, unsigned what)
{
	enum rill_metric_type C = RILL_METRIC_COUNTER, G = RILL_METRIC_GAUGE,
	                      H = RILL_METRIC_HISTOGRAM;
	struct rill_metrics_family *bytes;
	int err = rill_metrics_add_process(cm->reg);
#define TRY(call)                     \
	do {                          \
		if (err == 0)         \
			err = (call); \
	} while (0)
	TRY(metrics_one(cm, C, "rill_connections_accepted_total",
	                "Connections accepted.", &cm->accepted));
	TRY(metrics_family(
	    cm, C, "rill_connections_denied_total",
	    "Connections accepted and closed at once, by reason.", "reason",
	    NULL, &cm->denied));
	if (what & CLI_METRICS_CONNS) {
		TRY(metrics_one(cm, G, "rill_connections_active",
		                "Connections open now.", &cm->active));
		TRY(metrics_one(cm, H, "rill_connection_duration_seconds",
		                "How long connections lasted, accept to close.",
		                &cm->duration));
		TRY(metrics_family(
		    cm, C, "rill_bytes_total",
		    "Bytes moved: up from clients, down to clients.",
		    "direction", NULL, &bytes));
		TRY(metrics_series(cm, bytes, "up", NULL, &cm->up));
		TRY(metrics_series(cm, bytes, "down", NULL, &cm->down));
	}
	TRY(metrics_family(cm, C, "rill_tls_handshakes_total",
	                   "TLS handshakes, by side and result.", "side",
	                   "result", &cm->tls));
	if (what & CLI_METRICS_CONNECT) {
		TRY(metrics_family(cm, C, "rill_connect_failures_total",
		                   "Failed connects to the target, by reason.",
		                   "reason", NULL, &cm->connect_failures));
		TRY(metrics_one(
		    cm, H, "rill_connect_duration_seconds",
		    "Time to connect the target, its layers' handshakes "
		    "included, from the accept.",
		    &cm->connect_duration));
	}
	if (what & CLI_METRICS_HTTP) {
		TRY(metrics_family(cm, C, "rill_http_requests_total",
		                   "HTTP requests answered, by method and "
		                   "status class.",
		                   "method", "code", &cm->http));
		TRY(metrics_one(cm, H, "rill_http_request_duration_seconds",
		                "HTTP request duration, head received to "
		                "response sent.",
		                &cm->http_duration));
	}
#undef TRY
	return err;
}

int cli_metrics_init(struct cli_metrics *cm, const char *metrics_uri,
                     const char *listen_uri, unsigned what)
{
	memset(cm, 0, sizeof *cm);
	cm->uri = metrics_uri;
	/* The listener label: the URI without its query, which may name
	 * key files. */
	size_t n = strcspn(listen_uri, "?");
	if (n >= sizeof cm->listener)
		n = sizeof cm->listener - 1;
	memcpy(cm->listener, listen_uri, n);
	cm->tls_listener = cli_uri_has_tls(listen_uri);
	int err = rill_metrics_new(0, &cm->reg);
	if (err == 0)
		err = metrics_register(cm, what);
	if (err != 0) {
		cli_error("metrics: %s", rill_strerror(err));
		rill_metrics_free(cm->reg);
		cm->reg = NULL;
	}
	return err;
}

/* ---------------------------------------------------------------------- */
/* Serving the scrapes */

static void metrics_reply(struct rill_flow *ex, int status, const char *ctype,
                          struct rill_buf *body)
{
	struct rill_http_header h[] = {{"Content-Type", ctype}};
	rill_http_respond_buf(ex, status, h, 1, body);
	rill_buf_release(body);
	rill_close(ex);
}

static void metrics_handler(struct rill_flow *ex, void *ud)
{
	struct cli_metrics *cm = ud;
	const char *m = rill_http_method(ex);
	const char *t = rill_http_target(ex);
	const char *plain = "text/plain; charset=utf-8";
	size_t pl = strcspn(t, "?");
	bool head = strcmp(m, "HEAD") == 0;
	if (!head && strcmp(m, "GET") != 0) {
		metrics_reply(ex, 405, plain, rill_buf_copy("GET only\n", 9));
		return;
	}
	if (pl != 8 || strncmp(t, "/metrics", 8) != 0) {
		const char *msg = "rill metrics: see /metrics\n";
		metrics_reply(ex, 404, plain, rill_buf_copy(msg, strlen(msg)));
		return;
	}
	struct rill_buf *text = NULL;
	int err = rill_metrics_render(cm->reg, &text);
	if (err != 0) {
		metrics_reply(ex, 500, plain, rill_buf_copy("error\n", 6));
		return;
	}
	metrics_reply(ex, 200, RILL_METRICS_CONTENT_TYPE, text);
}

static void metrics_on_accept(struct rill_listener *l, struct rill_flow *f,
                              int status, const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct cli_metrics *cm = ud;
	if (status != 0 || cm->srv == NULL) {
		rill_close(f);
		return;
	}
	/* The listener's limits: at most CLI_METRICS_ACCEPTS_PER_S new
	 * connections a second and CLI_METRICS_MAX_CONNS at once (the
	 * server's max_connections); the rest are closed at once. The
	 * timeouts alone bound nothing: a client that asks again within
	 * the idle timeout keeps its connection. A scraper needs one. */
	uint64_t now = uv_now(cm->loop);
	if (now - cm->window_ms >= 1000) {
		cm->window_ms = now;
		cm->window_accepts = 0;
	}
	if (++cm->window_accepts > CLI_METRICS_ACCEPTS_PER_S) {
		rill_close(f);
		return;
	}
	rill_http_server_serve(cm->srv, f);
}

int cli_metrics_listen(struct cli_metrics *cm, uv_loop_t *loop)
{
	/* A scrape is small: tight limits, short timeouts, a few
	 * connections' worth of everything. */
	struct rill_http_server_opts o = {
	    .max_header_bytes = 8192,
	    .max_body = 1,
	    .header_timeout_ms = 5000,
	    .idle_timeout_ms = 10000,
	    .body_timeout_ms = 5000,
	    .max_connections = CLI_METRICS_MAX_CONNS,
	};
	cm->loop = loop;
	int err = rill_http_server_new(loop, &o, metrics_handler, cm, &cm->srv);
	if (err == 0)
		err = rill_listen(loop, cm->uri,
		                  &(struct rill_listen_opts){
		                      .max_handshakes = CLI_METRICS_MAX_CONNS},
		                  metrics_on_accept, cm, &cm->l);
	if (err != 0) {
		const char *why = rill_last_errmsg();
		cli_error("metrics: listen %s: %s", cm->uri,
		          why != NULL && *why ? why : rill_strerror(err));
		rill_http_server_free(cm->srv);
		cm->srv = NULL;
	}
	return err;
}

void cli_metrics_stop(struct cli_metrics *cm)
{
	if (cm == NULL)
		return;
	rill_listener_close(cm->l);
	cm->l = NULL;
	rill_http_server_free(cm->srv);
	cm->srv = NULL;
}

void cli_metrics_free(struct cli_metrics *cm)
{
	if (cm == NULL)
		return;
	cli_metrics_stop(cm);
	rill_metrics_free(cm->reg);
	cm->reg = NULL;
}

/* ---------------------------------------------------------------------- */
/* Counting */

int cli_mshard_init(struct cli_mshard *ms, struct cli_metrics *cm)
{
	memset(ms, 0, sizeof *ms);
	if (cm == NULL || cm->reg == NULL)
		return 0;
	ms->cm = cm;
	return rill_metrics_shard(cm->reg, &ms->s);
}

void cli_m_accepted(struct cli_mshard *ms)
{
	if (ms->cm != NULL)
		rill_metric_add(ms->s, ms->cm->accepted, 1);
}

void cli_m_active(struct cli_mshard *ms, int delta)
{
	if (ms->cm != NULL)
		rill_metric_gauge_add(ms->s, ms->cm->active, delta);
}

/* "econnrefused", "etls_cert": an error's name as a label value, from
 * the bounded set of rill's names. */
static void metrics_reason(int err, char *buf, size_t len)
{
	const char *name = rill_err_name(err);
	if (strncmp(name, "RILL_", 5) == 0)
		name += 5;
	size_t i = 0;
	for (; name[i] != '\0' && i + 1 < len; i++)
		buf[i] = (char)tolower((unsigned char)name[i]);
	buf[i] = '\0';
}

/* Adds 1 to the series (v1, v2) of f, made on first use (under the
 * registry's lock: these are rare events, not per buffer). */
static void metrics_count(struct cli_mshard *ms, struct rill_metrics_family *f,
                          const char *v1, const char *v2)
{
	const struct rill_metric *s = NULL;
	if (ms->cm == NULL || f == NULL ||
	    metrics_series(ms->cm, f, v1, v2, &s) != 0)
		return;
	rill_metric_add(ms->s, s, 1);
}

void cli_m_denied(struct cli_mshard *ms, const char *reason)
{
	if (ms->cm != NULL)
		metrics_count(ms, ms->cm->denied, reason, NULL);
}

void cli_m_connect_failed(struct cli_mshard *ms, int err)
{
	char reason[48];
	if (ms->cm == NULL)
		return;
	metrics_reason(err, reason, sizeof reason);
	metrics_count(ms, ms->cm->connect_failures, reason, NULL);
}

void cli_m_connect_time(struct cli_mshard *ms, double secs)
{
	if (ms->cm != NULL)
		rill_metric_observe(ms->s, ms->cm->connect_duration, secs);
}

void cli_m_bytes(struct cli_mshard *ms, uint64_t up, uint64_t down)
{
	if (ms->cm == NULL)
		return;
	if (up > 0)
		rill_metric_add(ms->s, ms->cm->up, up);
	if (down > 0)
		rill_metric_add(ms->s, ms->cm->down, down);
}

void cli_m_conn_time(struct cli_mshard *ms, double secs)
{
	if (ms->cm != NULL)
		rill_metric_observe(ms->s, ms->cm->duration, secs);
}

void cli_m_tls(struct cli_mshard *ms, bool accept_side, bool has_tls,
               int status)
{
	const char *side = accept_side ? "accept" : "connect";
	if (ms->cm == NULL || !has_tls)
		return;
	/* A failure below TLS (a refused connect, a failed accept) is no
	 * handshake: only the TLS codes count (RILL_ETLS...ETLS_NOT_TLS). */
	if (status != 0 && (status > RILL_ETLS || status < RILL_ETLS_NOT_TLS))
		return;
	if (status != 0) {
		char reason[48];
		metrics_reason(status, reason, sizeof reason);
		metrics_count(ms, ms->cm->tls, side, reason);
		return;
	}
	const struct rill_metric **ok = &ms->tls_ok[accept_side];
	if (*ok == NULL && metrics_series(ms->cm, ms->cm->tls, side, "ok", ok))
		return;
	rill_metric_add(ms->s, *ok, 1);
}

void cli_m_http(struct cli_mshard *ms, const char *method, int status,
                double secs)
{
	if (ms->cm == NULL || ms->cm->http == NULL)
		return;
	size_t mi = 0;
	while (mi + 1 < CLI_HTTP_METHODS &&
	       strcmp(method, metrics_methods[mi]) != 0)
		mi++;
	int ci = status >= 100 && status < 600 ? status / 100 : 0;
	static const char *const classes[6] = {"other", "1xx", "2xx",
	                                       "3xx",   "4xx", "5xx"};
	const struct rill_metric **s = &ms->http[mi][ci];
	if (*s == NULL && metrics_series(ms->cm, ms->cm->http,
	                                 metrics_methods[mi], classes[ci], s))
		return;
	rill_metric_add(ms->s, *s, 1);
	rill_metric_observe(ms->s, ms->cm->http_duration, secs);
}
