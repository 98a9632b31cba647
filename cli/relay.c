/*
 * rill relay LISTEN_URI CONNECT_URI: every accepted connection is
 * forwarded to a new connection to CONNECT_URI with rill_proxy, both ways,
 * half-close carried across. Public API only.
 *
 * The idle timeout and the linger are the proxy's own options
 * (rill_proxy_opts). The shutdown grace period is checked by one sweep
 * timer per loop over that loop's connections, started by the signal.
 *
 * Access control: --allow patterns are checked by the listener's accept
 * filter, before any layer's handshake and before any connect to the
 * target; --max-conns (finite by default) and --max-per-source when the
 * connection is accepted, also before the connect; --max-conns also
 * bounds the handshakes in progress (rill_listen_opts.max_handshakes).
 *
 * --threads N runs N loops on N threads (cli/workers.c): the listener of
 * loop 0 accepts and hands the connections in turn to every loop, where
 * they stay. Each loop has its own connection list and sweep; the count
 * for --max-conns and the connection ids are shared (atomics).
 */
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "relay.h"

/* --max-conns when not given: enough for a busy host, finite so that a
 * flood (one child per connection with an exec: target) stays bounded. */
#define RELAY_DEFAULT_MAX_CONNS 1024

enum conn_state { CONN_CONNECTING, CONN_PROXYING };

struct relay;
struct relay_loop;

struct relay_conn {
	struct relay *r;
	struct relay_loop *rl;
	struct relay_conn *prev, *next;
	struct rill_flow *client, *target;
	struct rill_proxy *proxy;
	char *client_addr, *target_addr; /* for the log line */
	char *local_addr;                /* where the client came in */
	char *requested;                 /* a dynamic target's HOST:PORT */
	uint64_t id;
	uint64_t t0_ms;              /* accepted at */
	char source[CLI_SOURCE_MAX]; /* counted for --max-per-source; "" */
	uint64_t t0_ns;              /* accepted at, uv_hrtime() (metrics) */
	uint64_t m_up, m_down;       /* bytes counted in the metrics so far */
	enum conn_state state;
};

struct relay_loop {
	struct relay *r;
	struct cli_worker *w;
	uv_loop_t *loop;
	struct relay_conn *conns; /* every live connection of this loop */
	uint64_t nconns;
	uv_timer_t sweep;
	struct cli_mshard ms; /* this thread's metrics */
	uv_timer_t mflush;    /* adds live connections' bytes (metrics) */
	bool stopping;
	bool stuck;
};

static uint64_t now_ms(struct relay_loop *rl)
{
	return uv_now(rl->loop);
}

/* ---------------------------------------------------------------------- */
/* Connection records and the log line */

static void conn_link(struct relay_loop *rl, struct relay_conn *c)
{
	c->next = rl->conns;
	if (rl->conns != NULL)
		rl->conns->prev = c;
	rl->conns = c;
	rl->nconns++;
	cli_m_active(&rl->ms, 1);
}

static void relay_maybe_done(struct relay_loop *rl);

static void conn_free(struct relay_conn *c)
{
	struct relay_loop *rl = c->rl;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		rl->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	rl->nconns--;
	cli_m_active(&rl->ms, -1);
	atomic_fetch_sub(&rl->r->nconns, 1);
	if (c->source[0] != '\0')
		cli_sources_drop(rl->r->sources, c->source);
	free(c->client_addr);
	free(c->target_addr);
	free(c->local_addr);
	free(c->requested);
	free(c);
	relay_maybe_done(rl);
}

/* The peer address of f as a new string; NULL when unknown or ENOMEM.
 * Taken when the flow is new: after both shutdowns a TCP socket may no
 * longer have a peer to report. */
static char *address_of(struct rill_flow *f, int which)
{
	char buf[160];
	if (f == NULL || rill_flow_address(f, which, buf, sizeof buf))
		return NULL;
	return strdup(buf);
}

static char *peer_of(struct rill_flow *f)
{
	return address_of(f, RILL_ADDR_PEER);
}

/* For an exec: target, how its child ended: " exit=STATUS",
 * " exit=SIGNAME" or " exit=running"; "" for other targets. */
static void child_note(struct rill_flow *target, char *buf, size_t len)
{
	int v = 0;
	const char *sig;
	switch (rill_exec_status(target, &v, NULL)) {
	case RILL_EXEC_RUNNING: snprintf(buf, len, " exit=running"); break;
	case RILL_EXEC_EXITED: snprintf(buf, len, " exit=%d", v); break;
	case RILL_EXEC_SIGNALED:
		sig = sigabbrev_np(v);
		if (sig != NULL)
			snprintf(buf, len, " exit=SIG%s", sig);
		else
			snprintf(buf, len, " exit=signal-%d", v);
		break;
	default: buf[0] = '\0';
	}
}

/* A text log line (without its newline), written with one fwrite.
 * Client addresses are not the relay's to choose: a Unix socket
 * client's path, or the one a PROXY v2 header gives, may hold any byte
 * but NUL. Control characters are written as \xHH so that no client
 * can end a line and forge the next one. */
static void relay_log_text(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void relay_log_text(const char *fmt, ...)
{
	char line[2048], out[4 * sizeof line + 1];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t k = 0;
	for (size_t i = 0; line[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch < 0x20 || ch == 0x7f)
			k += (size_t)snprintf(out + k, sizeof out - k,
			                      "\\x%02x", ch);
		else
			out[k++] = (char)ch;
	}
	out[k++] = '\n';
	fwrite(out, 1, k, stderr);
}

/* One line per connection, on stderr, when it ends:
 *   rill relay: #ID CLIENT -> TARGET up=BYTES down=BYTES time=S end=WHY
 * up is client->target, down target->client; an exec: target adds how
 * its child ended (child_note). */
static void conn_log(struct relay_conn *c, uint64_t up, uint64_t down,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same record as one JSON object (--log-format json): WHY is split
 * into end (the word) and detail (what the parentheses held). */
static void conn_log_json(struct relay_conn *c, const char *ca, const char *ta,
                          uint64_t up, uint64_t down, double secs,
                          const char *via, char *why, const char *child)
{
	struct cli_json j;
	struct timespec start;
	cli_time_ago(secs, &start);
	char *paren = strchr(why, '(');
	size_t wl = strlen(why);
	if (paren != NULL && wl > 0 && why[wl - 1] == ')') {
		*paren++ = '\0';
		why[wl - 1] = '\0';
	} else {
		paren = NULL;
	}
	cli_json_begin(&j, "relay");
	cli_json_u64(&j, "id", c->id);
	cli_json_time(&j, "start", &start);
	cli_json_str(&j, "client", ca);
	cli_json_str(&j, "target", ta);
	cli_json_u64(&j, "up", up);
	cli_json_u64(&j, "down", down);
	cli_json_secs(&j, "time", secs);
	cli_json_str(&j, "via", via[0] != '\0' ? via + 5 : NULL);
	cli_json_str(&j, "end", why);
	if (paren != NULL)
		cli_json_str(&j, "detail", paren);
	if (child[0] != '\0')
		cli_json_str(&j, "exit", child + 6);
	cli_json_end(&j, stderr);
}

static void conn_log(struct relay_conn *c, uint64_t up, uint64_t down,
                     const char *fmt, ...)
{
	/* Every connection ends here once, logged or not: its metrics. */
	cli_m_bytes(&c->rl->ms, up - c->m_up, down - c->m_down);
	c->m_up = up;
	c->m_down = down;
	cli_m_conn_time(&c->rl->ms, cli_secs_since(c->t0_ns));
	if (c->r->quiet)
		return;
	char why[400];
	const char *ca = c->client_addr != NULL ? c->client_addr : "?";
	const char *ta =
	    c->target_addr != NULL ? c->target_addr : c->r->connect_uri;
	char dyn[480];
	if (c->requested != NULL) {
		/* The requested target first, then where it led. */
		snprintf(dyn, sizeof dyn, "%s (%s)", c->requested,
		         c->target_addr != NULL ? c->target_addr : "-");
		ta = dyn;
	}
	const char *via = c->proxy == NULL               ? ""
	                  : rill_proxy_spliced(c->proxy) ? " via=splice"
	                                                 : " via=copy";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	double secs = cli_secs_since(c->t0_ns);
	char child[48];
	child_note(c->target, child, sizeof child);
	if (c->r->log_format == CLI_LOG_JSON) {
		conn_log_json(c, ca, ta, up, down, secs, via, why, child);
		return;
	}
	relay_log_text("rill relay: #%" PRIu64 " %s -> %s up=%" PRIu64
	               " down=%" PRIu64 " time=%.3fs%s end=%s%s",
	               c->id, ca, ta, up, down, secs, via, why, child);
}

/* Ends a proxying connection now (timeout, shutdown): log, then abort the
 * proxy, which closes both flows. */
static void conn_cut(struct relay_conn *c, const char *why)
{
	struct rill_copy_stats ab, ba;
	rill_proxy_stats(c->proxy, &ab, &ba);
	conn_log(c, ab.write_bytes, ba.write_bytes, "%s", why);
	rill_proxy_abort(c->proxy);
	conn_free(c);
}

/* ---------------------------------------------------------------------- */
/* Proxying */

static const char *side_name(unsigned failed)
{
	switch (failed) {
	case RILL_PROXY_A: return "client-error";
	case RILL_PROXY_B: return "target-error";
	default: return "both-error";
	}
}

static void on_proxy_done(struct rill_proxy *p,
                          const struct rill_proxy_result *res, void *ud)
{
	(void)p;
	struct relay_conn *c = ud;
	uint64_t up = res->ab.stats.write_bytes;
	uint64_t down = res->ba.stats.write_bytes;
	if (res->cut == RILL_CUT_IDLE) {
		conn_log(c, up, down, "idle-timeout");
	} else if (res->cut == RILL_CUT_LINGER) {
		conn_log(c, up, down, "linger-timeout");
	} else if (res->status == 0 && (res->ab.eof_held || res->ba.eof_held)) {
		/* One side cannot half-close: its EOF waited for the other
		 * side's end instead of crossing the relay. */
		conn_log(c, up, down, "eof(held: %s cannot half-close)",
		         res->ab.eof_held ? "target" : "client");
	} else if (res->status == 0) {
		conn_log(c, up, down, "eof");
	} else {
		/* Name the first error of each failing side. */
		int ea =
		    res->ab.read_err ? res->ab.read_err : res->ba.write_err;
		int eb =
		    res->ba.read_err ? res->ba.read_err : res->ab.write_err;
		if (res->failed == (RILL_PROXY_A | RILL_PROXY_B))
			conn_log(c, up, down,
			         "both-error(client: %s; target: %s)",
			         rill_strerror(ea), rill_strerror(eb));
		else
			conn_log(c, up, down, "%s(%s)", side_name(res->failed),
			         rill_strerror(
			             res->failed == RILL_PROXY_A ? ea : eb));
	}
	/* After a cut (idle, linger) the proxy closed them already: these
	 * are no-ops then. */
	rill_close(c->client);
	rill_close(c->target);
	conn_free(c);
}

static void close_after_reply(struct rill_flow *f, int status, void *ud)
{
	(void)status;
	(void)ud;
	rill_close(f);
}

/* Ends a connection that never reached its target: a socks5+ or
 * connect+ client gets the protocol's refusal (SOCKS5 code, HTTP status)
 * first; rill_tunnel_reply fails on other flows, which just close. */
static void conn_refuse(struct relay_conn *c, int status)
{
	if (rill_tunnel_reply(c->client, status, close_after_reply, NULL) != 0)
		rill_close(c->client);
	conn_free(c);
}

static void on_connect(struct rill_flow *f, int status, const char *errmsg,
                       void *ud)
{
	struct relay_conn *c = ud;
	struct relay *r = c->r;
	struct relay_loop *rl = c->rl;
	cli_m_tls(&rl->ms, false, r->connect_tls, status);
	if (status != 0) {
		cli_m_connect_failed(&rl->ms, status);
		conn_log(c, 0, 0, "connect-failed(%s)", errmsg);
		conn_refuse(c, status);
		return;
	}
	c->target = f;
	c->target_addr = peer_of(f);
	cli_m_connect_time(&rl->ms, cli_secs_since(c->t0_ns));
	if (rl->stopping && now_ms(rl) >= atomic_load(&r->stop_deadline_ms)) {
		conn_log(c, 0, 0, "shutdown");
		rill_close(c->client);
		rill_close(c->target);
		conn_free(c);
		return;
	}
	struct rill_proxy_opts po = {0};
	if (r->no_splice)
		po.copy.flags |= RILL_COPY_NO_SPLICE;
	po.copy.idle_timeout_ms = r->idle_ms;
	if (r->linger_set) {
		po.flags |= RILL_PROXY_LINGER;
		po.linger_ms = r->linger_ms;
	}
	/* The client learns of success only now that the target is there;
	 * the reply is queued before anything the proxy writes. */
	int err = rill_tunnel_reply(c->client, 0, NULL, NULL);
	if (err == -ENOTSUP)
		err = 0; /* not a socks5+ or connect+ client */
	if (err == 0)
		err = rill_proxy(c->client, c->target, &po, on_proxy_done, c,
		                 &c->proxy);
	if (err != 0) {
		conn_log(c, 0, 0, "proxy-failed(%s)", rill_strerror(err));
		rill_close(c->client);
		rill_close(c->target);
		conn_free(c);
		return;
	}
	c->state = CONN_PROXYING;
}

/* Counts a new connection against --max-conns (every loop's); false
 * when the limit is reached. */
static bool relay_admit(struct relay *r)
{
	uint64_t n = atomic_fetch_add(&r->nconns, 1);
	if (r->max_conns > 0 && n >= r->max_conns) {
		atomic_fetch_sub(&r->nconns, 1);
		return false;
	}
	return true;
}

/* The log line of a connection refused before any connect. */
static void relay_log_refused(struct relay *r, const char *client, uint64_t id,
                              const char *why)
{
	if (!r->quiet)
		relay_log_text("rill relay: #%" PRIu64 " %s -> %s up=0 down=0 "
		               "time=0.000s end=%s",
		               id, client, r->connect_uri, why);
}

static void relay_refuse(struct relay_loop *rl, struct rill_flow *f,
                         uint64_t id, const char *what, uint64_t max)
{
	struct relay *r = rl->r;
	cli_m_denied(&rl->ms, what);
	/* Documented: extra connections are accepted and closed at once, so
	 * a client learns at once instead of hanging in the backlog. */
	if (!r->quiet && r->log_format == CLI_LOG_JSON) {
		char *ca = peer_of(f);
		struct cli_json j;
		cli_json_begin(&j, "relay");
		cli_json_u64(&j, "id", id);
		cli_json_str(&j, "client", ca);
		cli_json_str(&j, "target", r->connect_uri);
		cli_json_u64(&j, "up", 0);
		cli_json_u64(&j, "down", 0);
		cli_json_secs(&j, "time", 0);
		cli_json_str(&j, "end", "refused");
		char detail[64];
		snprintf(detail, sizeof detail, "%s %" PRIu64 " reached", what,
		         max);
		cli_json_str(&j, "detail", detail);
		cli_json_end(&j, stderr);
		free(ca);
	} else if (!r->quiet) {
		char *ca = peer_of(f);
		char why[96];
		snprintf(why, sizeof why, "refused(%s %" PRIu64 " reached)",
		         what, max);
		relay_log_refused(r, ca != NULL ? ca : "?", id, why);
		free(ca);
	}
	rill_close(f);
}

static void conn_connect(struct relay_conn *c, const char *uri)
{
	struct relay *r = c->r;
	/* The core's deadline covers the whole connect, retries included:
	 * extend it so the last retry still gets its full connect time.
	 * The client's addresses go along for a proxy+ target (PROXY
	 * protocol header); other targets ignore them. */
	struct rill_connect_opts co = {
	    .timeout_ms = r->connect_timeout_ms + r->retry_until_ms,
	    .retry_until_ms = r->retry_until_ms,
	    .proxy_header_src = c->client_addr,
	    .proxy_header_dst = c->local_addr,
	};
	int err = rill_connect(c->rl->loop, uri, &co, on_connect, c);
	if (err != 0) {
		conn_log(c, 0, 0, "connect-failed(%s)", rill_last_errmsg());
		conn_refuse(c, err);
	}
}

/* A dynamic target was checked (relay_target.c). */
static void on_target(void *ud, int status, const char *requested,
                      const char *uri, const char *why)
{
	struct relay_conn *c = ud;
	c->requested = strdup(requested);
	if (status != 0) {
		conn_log(c, 0, 0, "%s(%s)",
		         status == RILL_EPROXY_DENIED ? "denied"
		                                      : "target-failed",
		         why);
		conn_refuse(c, status);
		return;
	}
	conn_connect(c, uri);
}

/* The listener's accept filter: --allow, before any layer's handshake
 * and any connect to the target. */
static bool relay_filter(struct rill_listener *l, const struct rill_peer *peer,
                         void *ud)
{
	(void)l;
	struct relay *r = ud;
	if (cli_allow_match(&r->allow, peer))
		return true;
	if (!r->quiet) {
		char who[128];
		cli_peer_text(peer, who, sizeof who);
		relay_log_refused(r, who, atomic_fetch_add(&r->next_id, 1) + 1,
		                  "denied");
	}
	return false;
}

/* Counts f against --max-per-source into c->source; false when its
 * source has that many connections already. */
static bool relay_admit_source(struct relay *r, struct relay_conn *c,
                               struct rill_flow *f)
{
	if (r->max_per_source == 0)
		return true;
	struct rill_peer peer;
	char key[CLI_SOURCE_MAX];
	if (rill_flow_peer(f, &peer) != 0)
		memset(&peer, 0, sizeof peer); /* "unknown": one source */
	if (rill_peer_format(&peer, key, sizeof key) != 0 ||
	    !cli_sources_take(r->sources, key, r->max_per_source))
		return false;
	memcpy(c->source, key, sizeof key);
	return true;
}

static void on_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	struct cli_worker *w = ud;
	struct relay_loop *rl = w->data;
	struct relay *r = rl->r;
	cli_m_tls(&rl->ms, true, r->listen_tls, status);
	if (status != 0) {
		if (!r->quiet)
			relay_log_text("rill relay: accept failed: %s",
			               errmsg != NULL ? errmsg
			                              : rill_strerror(status));
		return;
	}
	uint64_t id = atomic_fetch_add(&r->next_id, 1) + 1;
	cli_m_accepted(&rl->ms);
	if (!relay_admit(r)) {
		relay_refuse(rl, f, id, "max-conns", r->max_conns);
		return;
	}
	struct relay_conn *c = calloc(1, sizeof *c);
	if (c == NULL) {
		atomic_fetch_sub(&r->nconns, 1);
		rill_close(f);
		return;
	}
	if (!relay_admit_source(r, c, f)) {
		free(c);
		atomic_fetch_sub(&r->nconns, 1);
		relay_refuse(rl, f, id, "max-per-source", r->max_per_source);
		return;
	}
	c->r = r;
	c->rl = rl;
	c->client = f;
	c->id = id;
	c->t0_ms = now_ms(rl);
	c->t0_ns = uv_hrtime();
	c->client_addr = peer_of(f);
	c->local_addr = address_of(f, RILL_ADDR_LOCAL);
	conn_link(rl, c);
	if (r->dynamic)
		relay_target_start(rl->loop, &r->targets, r->connect_uri, f,
		                   on_target, c);
	else
		conn_connect(c, r->connect_uri);
}

/* ---------------------------------------------------------------------- */
/* Timeouts and shutdown */

/* The close handshakes (shut+) of the flows closed so far, on every
 * loop, end before the process does: each is bounded by its deadline. */
static void relay_exit_when_closed(uv_timer_t *t)
{
	struct relay *r = t->data;
	size_t closing = 0;
	for (unsigned i = 0; i < r->workers.n; i++)
		closing += rill_closing_flows(&r->workers.w[i].loop);
	if (closing == 0)
		exit(r->exit_code);
}

/* When every loop that is not done is stuck (see relay_stuck), the
 * process exits, once no loop has a close handshake going on. */
static void relay_check_exit_on(struct relay_loop *rl)
{
	static uv_timer_t exit_timer;
	static atomic_bool exiting;
	struct relay *r = rl->r;
	unsigned stuck = atomic_load(&r->stuck);
	if (stuck == 0 || stuck < atomic_load(&r->workers.live) ||
	    atomic_exchange(&exiting, true))
		return;
	if (!r->quiet)
		fprintf(stderr,
		        "rill relay: exiting with %" PRIu64
		        " connect(s) still pending\n",
		        (uint64_t)atomic_load(&r->nconns));
	uv_timer_init(rl->loop, &exit_timer);
	exit_timer.data = r;
	uv_timer_start(&exit_timer, relay_exit_when_closed, 0, 10);
}

static void relay_maybe_done(struct relay_loop *rl)
{
	if (rl->stopping && rl->nconns == 0 &&
	    !uv_is_closing((uv_handle_t *)&rl->sweep)) {
		uv_close((uv_handle_t *)&rl->sweep, NULL);
		if (rl->r->metrics_uri != NULL)
			uv_close((uv_handle_t *)&rl->mflush, NULL);
		cli_worker_done(rl->w);
		relay_check_exit_on(rl);
	}
}

/* After the grace period only connects are left on rl: they cannot be
 * cancelled through the API. */
static void relay_stuck(struct relay_loop *rl)
{
	if (rl->stuck)
		return;
	rl->stuck = true;
	atomic_fetch_add(&rl->r->stuck, 1);
	relay_check_exit_on(rl);
}

static void on_sweep(uv_timer_t *t)
{
	struct relay_loop *rl = t->data;
	struct relay *r = rl->r;
	uint64_t now = now_ms(rl);
	bool grace_over =
	    rl->stopping && now >= atomic_load(&r->stop_deadline_ms);
	struct relay_conn *c = rl->conns;
	while (c != NULL) {
		struct relay_conn *next = c->next;
		if (c->state != CONN_PROXYING) {
			c = next; /* the connect has its own deadline */
			continue;
		}
		if (grace_over)
			conn_cut(c, "shutdown");
		c = next;
	}
	if (grace_over && rl->nconns > 0)
		relay_stuck(rl);
}

/* First signal, on rl's thread (its listener is closed already). */
static void relay_on_stop(struct cli_worker *w)
{
	struct relay_loop *rl = w->data;
	struct relay *r = rl->r;
	if (w->index == 0 && r->metrics_uri != NULL)
		cli_metrics_stop(&r->metrics);
	rl->stopping = true;
	relay_maybe_done(rl);
	if (uv_is_closing((uv_handle_t *)&rl->sweep))
		return;
	/* Sweep often enough to honour the grace deadline. */
	uint64_t p = r->grace_ms / 4;
	if (p > 250)
		p = 250;
	if (p == 0)
		p = 1;
	uv_timer_start(&rl->sweep, on_sweep, p, p);
}

/* A second signal: no more grace. */
static void relay_on_hurry(struct cli_worker *w)
{
	struct relay_loop *rl = w->data;
	if (!uv_is_closing((uv_handle_t *)&rl->sweep))
		on_sweep(&rl->sweep);
}

/* On loop 0's thread: set the deadline and say so. */
static void relay_on_signal(struct cli_workers *g, int signum, bool first)
{
	struct relay *r = g->ud;
	uv_loop_t *l0 = &g->w[0].loop;
	uv_update_time(l0);
	if (!first) {
		atomic_store(&r->stop_deadline_ms, uv_now(l0));
		return;
	}
	atomic_store(&r->stop_deadline_ms, uv_now(l0) + r->grace_ms);
	if (!r->quiet)
		fprintf(stderr,
		        "rill relay: %s: stopped accepting; %" PRIu64
		        " connection(s) get %.3f s to finish\n",
		        strsignal(signum), (uint64_t)atomic_load(&r->nconns),
		        (double)r->grace_ms / 1000.0);
}

static const struct cli_workers_ops relay_ops = {
    .accept = on_accept,
    .stop = relay_on_stop,
    .hurry = relay_on_hurry,
    .signalled = relay_on_signal,
};

/* The sweep runs only after a signal, for the grace period. */
static void relay_sweep_start(struct relay_loop *rl)
{
	uv_timer_init(rl->loop, &rl->sweep);
	rl->sweep.data = rl;
}

/* Once a second, the bytes live connections moved since the last time
 * go into this loop's metrics shard: a long connection shows in the
 * byte counters while it lasts, and the data path counts nothing. */
static void on_metrics_flush(uv_timer_t *t)
{
	struct relay_loop *rl = t->data;
	for (struct relay_conn *c = rl->conns; c != NULL; c = c->next) {
		if (c->state != CONN_PROXYING)
			continue;
		struct rill_copy_stats ab, ba;
		rill_proxy_stats(c->proxy, &ab, &ba);
		cli_m_bytes(&rl->ms, ab.write_bytes - c->m_up,
		            ba.write_bytes - c->m_down);
		c->m_up = ab.write_bytes;
		c->m_down = ba.write_bytes;
	}
}

/* This loop's metrics shard and flush timer (not keeping it alive). */
static int relay_metrics_start(struct relay *r, struct relay_loop *rl)
{
	if (r->metrics_uri == NULL)
		return 0;
	int err = cli_mshard_init(&rl->ms, &r->metrics);
	if (err != 0) {
		cli_error("relay: metrics: %s", rill_strerror(err));
		return err;
	}
	uv_timer_init(rl->loop, &rl->mflush);
	rl->mflush.data = rl;
	uv_timer_start(&rl->mflush, on_metrics_flush, 1000, 1000);
	uv_unref((uv_handle_t *)&rl->mflush);
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void relay_tune_process(void)
{
	/* On the generic path every buffer read is held until the write
	 * completes, so read chunks are allocated and freed all the time;
	 * glibc's default trimming gives the memory back to the kernel
	 * and faults it in again on every chunk (measured: 0.9 Gbit/s
	 * instead of 3.3 with iperf3 through the relay). Keep freed memory. */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	/* Splicing into a socket whose peer left raises SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
}

int cli_relay(int argc, char **argv)
{
	struct relay r = {
	    .max_conns = RELAY_DEFAULT_MAX_CONNS,
	    .connect_timeout_ms = 10000,
	    .grace_ms = 5000,
	    .threads = cli_threads_default(),
	};
	bool done = false;
	int code = relay_parse(argc, argv, &r, &done);
	if (code != 0 || done) {
		cli_allow_free(&r.allow);
		target_allow_free(&r.targets);
		return code;
	}
	if (r.metrics_uri != NULL &&
	    cli_metrics_init(&r.metrics, r.metrics_uri, r.listen_uri,
	                     CLI_METRICS_CONNECT | CLI_METRICS_CONNS) != 0)
		return 1;
	relay_tune_process();

	struct relay_loop *loops = calloc(r.threads, sizeof *loops);
	int err = loops == NULL
	              ? RILL_ENOMEM
	              : cli_workers_init(&r.workers, r.threads, &relay_ops, &r);
	if (err == 0 && r.max_per_source > 0 &&
	    (r.sources = cli_sources_new()) == NULL)
		err = RILL_ENOMEM;
	if (err == 0)
		for (unsigned i = 0; i < r.threads; i++)
			r.workers.w[i].data = &loops[i];
	struct rill_listen_opts lo = {0};
	/* --max-conns counts a connection once its layers' handshake
	 * (TLS, SOCKS5, CONNECT, PROXY header) is over; the handshakes in
	 * progress get the same bound, shared out over the loops, so that
	 * clients that never finish one cannot hold every descriptor. */
	uint64_t per_loop = (r.max_conns + r.threads - 1) / r.threads;
	lo.max_handshakes = r.max_conns == 0 ? SIZE_MAX : (size_t)per_loop;
	if (r.allow.n > 0) {
		lo.filter = relay_filter;
		lo.filter_ud = &r;
	}
	if (err == 0)
		err =
		    cli_workers_listen(&r.workers, r.listen_uri, &lo, r.quiet);
	if (err != 0) {
		cli_error("relay: listen %s: %s", r.listen_uri,
		          rill_last_errmsg()[0] ? rill_last_errmsg()
		                                : rill_strerror(err));
		if (loops != NULL && r.workers.w != NULL)
			cli_workers_abandon(&r.workers);
		free(loops);
		cli_sources_free(r.sources);
		cli_allow_free(&r.allow);
		target_allow_free(&r.targets);
		cli_metrics_free(r.metrics_uri != NULL ? &r.metrics : NULL);
		return 1;
	}
	for (unsigned i = 0; err == 0 && i < r.workers.n; i++) {
		struct relay_loop *rl = &loops[i];
		rl->r = &r;
		rl->w = &r.workers.w[i];
		rl->loop = &r.workers.w[i].loop;
		relay_sweep_start(rl);
		err = relay_metrics_start(&r, rl);
	}
	if (err == 0 && r.metrics_uri != NULL)
		err = cli_metrics_listen(&r.metrics, loops[0].loop);
	if (err != 0)
		exit(1); /* said why; the loops hold listeners now */
	if (!r.quiet) {
		char buf[256];
		if (rill_listener_uri(r.workers.w[0].listener, buf,
		                      sizeof buf) != 0)
			snprintf(buf, sizeof buf, "%s", r.listen_uri);
		fprintf(stderr,
		        "rill relay: listening on %s, forwarding to %s (%u "
		        "thread%s)\n",
		        buf, r.connect_uri, r.workers.n,
		        r.workers.n == 1 ? "" : "s");
	}
	cli_workers_run(&r.workers);
	free(loops);
	target_allow_free(&r.targets);
	cli_sources_free(r.sources);
	cli_allow_free(&r.allow);
	cli_metrics_free(r.metrics_uri != NULL ? &r.metrics : NULL);
	if (!r.quiet)
		fprintf(stderr, "rill relay: stopped\n");
	return r.exit_code;
}
