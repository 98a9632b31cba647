/*
 * rill relay LISTEN_URI CONNECT_URI: every accepted connection is
 * forwarded to a new connection to CONNECT_URI with rill_proxy, both ways,
 * half-close carried across. Public API only.
 *
 * Timeouts (idle, linger, the shutdown grace period) are checked by one
 * sweep timer per loop over that loop's connections instead of a timer
 * per connection: a held-open idle connection then costs only its flows
 * and a small record.
 *
 * --threads N runs N loops on N threads (cli/workers.c): the listener of
 * loop 0 accepts and hands the connections in turn to every loop, where
 * they stay. Each loop has its own connection list and sweep; the count
 * for --max-conns and the connection ids are shared (atomics).
 */
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "logfmt.h"
#include "metrics.h"
#include "workers.h"

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
	uint64_t id;
	uint64_t t0_ms;      /* accepted at */
	uint64_t active_ms;  /* last time bytes moved (idle timeout) */
	uint64_t last_bytes; /* both directions, at the last sweep */
	uint64_t half_ms;    /* one direction ended at (linger); 0: not */

	uint64_t t0_ns;        /* accepted at, uv_hrtime() (metrics) */
	uint64_t m_up, m_down; /* bytes counted in the metrics so far */
	enum conn_state state;
};

/* What every loop shares: the options (read only once running) and the
 * counters. */
struct relay {
	const char *listen_uri, *connect_uri;
	uint64_t max_conns; /* 0: unlimited */
	uint64_t connect_timeout_ms, retry_until_ms, idle_ms, linger_ms,
	    grace_ms;
	bool linger_set;
	bool no_splice;
	bool quiet;
	unsigned threads;
	uint64_t sweep_ms;
	const char *metrics_uri;        /* --metrics; NULL: none */
	struct cli_metrics metrics;     /* when metrics_uri */
	enum cli_log_format log_format; /* --log-format */
	bool listen_tls, connect_tls;   /* for the TLS handshake counts */
	struct cli_workers workers;
	atomic_uint_fast64_t nconns; /* live connections, every loop */
	atomic_uint_fast64_t next_id;
	/* uv_now() of loop 0 when the grace period ends (every loop's
	 * uv_now() counts from the same monotonic clock). */
	atomic_uint_fast64_t stop_deadline_ms;
	atomic_uint stuck; /* loops left with only connects pending */
	int exit_code;
};

/* One loop (on its own thread) and its connections. */
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
	free(c->client_addr);
	free(c->target_addr);
	free(c);
	relay_maybe_done(rl);
}

/* The peer address of f as a new string; NULL when unknown or ENOMEM.
 * Taken when the flow is new: after both shutdowns a TCP socket may no
 * longer have a peer to report. */
static char *peer_of(struct rill_flow *f)
{
	char buf[160];
	if (f == NULL || rill_flow_address(f, RILL_ADDR_PEER, buf, sizeof buf))
		return NULL;
	return strdup(buf);
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
	fprintf(stderr,
	        "rill relay: #%" PRIu64 " %s -> %s up=%" PRIu64 " down=%" PRIu64
	        " time=%.3fs%s end=%s%s\n",
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
	if (res->status == 0) {
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
	rill_close(c->client);
	rill_close(c->target);
	conn_free(c);
}

static void on_proxy_half(struct rill_proxy *p, bool from_a,
                          const struct rill_copy_result *res, void *ud)
{
	(void)p;
	(void)from_a;
	(void)res;
	struct relay_conn *c = ud;
	if (c->half_ms == 0)
		c->half_ms = now_ms(c->rl);
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
		rill_close(c->client);
		conn_free(c);
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
	struct rill_proxy_opts po = {.half_cb = on_proxy_half};
	if (r->no_splice)
		po.copy.flags |= RILL_COPY_NO_SPLICE;
	int err =
	    rill_proxy(c->client, c->target, &po, on_proxy_done, c, &c->proxy);
	if (err != 0) {
		conn_log(c, 0, 0, "proxy-failed(%s)", rill_strerror(err));
		rill_close(c->client);
		rill_close(c->target);
		conn_free(c);
		return;
	}
	c->state = CONN_PROXYING;
	c->active_ms = now_ms(rl);
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

static void relay_refuse(struct relay_loop *rl, struct rill_flow *f,
                         uint64_t id)
{
	struct relay *r = rl->r;
	cli_m_denied(&rl->ms, "max-conns");
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
		cli_json_str(&j, "detail", "max-conns reached");
		cli_json_end(&j, stderr);
		free(ca);
	} else if (!r->quiet) {
		char *ca = peer_of(f);
		fprintf(
		    stderr,
		    "rill relay: #%" PRIu64 " %s -> %s up=0 down=0 "
		    "time=0.000s end=refused(max-conns %" PRIu64 " reached)\n",
		    id, ca != NULL ? ca : "?", r->connect_uri, r->max_conns);
		free(ca);
	}
	rill_close(f);
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
			fprintf(stderr, "rill relay: accept failed: %s\n",
			        errmsg != NULL ? errmsg
			                       : rill_strerror(status));
		return;
	}
	uint64_t id = atomic_fetch_add(&r->next_id, 1) + 1;
	cli_m_accepted(&rl->ms);
	if (!relay_admit(r)) {
		relay_refuse(rl, f, id);
		return;
	}
	struct relay_conn *c = calloc(1, sizeof *c);
	if (c == NULL) {
		atomic_fetch_sub(&r->nconns, 1);
		rill_close(f);
		return;
	}
	c->r = r;
	c->rl = rl;
	c->client = f;
	c->id = id;
	c->t0_ms = now_ms(rl);
	c->t0_ns = uv_hrtime();
	c->client_addr = peer_of(f);
	conn_link(rl, c);
	/* The core's deadline covers the whole connect, retries included:
	 * extend it so the last retry still gets its full connect time. */
	struct rill_connect_opts co = {
	    .timeout_ms = r->connect_timeout_ms + r->retry_until_ms,
	    .retry_until_ms = r->retry_until_ms,
	};
	int err = rill_connect(rl->loop, r->connect_uri, &co, on_connect, c);
	if (err != 0) {
		conn_log(c, 0, 0, "connect-failed(%s)", rill_last_errmsg());
		rill_close(c->client);
		conn_free(c);
	}
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
		if (grace_over) {
			conn_cut(c, "shutdown");
			c = next;
			continue;
		}
		struct rill_copy_stats ab, ba;
		rill_proxy_stats(c->proxy, &ab, &ba);
		uint64_t bytes = ab.read_bytes + ba.read_bytes;
		if (bytes != c->last_bytes) {
			c->last_bytes = bytes;
			c->active_ms = now;
		}
		if (r->idle_ms > 0 && now - c->active_ms >= r->idle_ms)
			conn_cut(c, "idle-timeout");
		else if (r->linger_set && c->half_ms != 0 &&
		         now - c->half_ms >= r->linger_ms)
			conn_cut(c, "linger-timeout");
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
	if (p > r->sweep_ms)
		p = r->sweep_ms;
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

/* ---------------------------------------------------------------------- */
/* Command line */

static void relay_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: rill relay [OPTIONS] LISTEN_URI CONNECT_URI\n"
	    "\n"
	    "Forwards every connection accepted on LISTEN_URI to a new\n"
	    "connection to CONNECT_URI, both directions at once. A\n"
	    "half-close crosses the relay: when one side shuts down its\n"
	    "writing, the other side sees EOF after the last byte, and the\n"
	    "reply direction goes on until its own EOF (a reply is never\n"
	    "cut short unless --linger says so). Between two plain sockets\n"
	    "the bytes move with splice(2) and never enter user space.\n"
	    "\n"
	    "Options (S: seconds, decimals allowed):\n"
	    "  --max-conns N        relay at most N connections at once;\n"
	    "                       extra ones are accepted and closed at\n"
	    "                       once, with a log line (end=refused)\n"
	    "                       (default 0: no limit)\n"
	    "  --connect-timeout S  deadline of each connect to\n"
	    "                       CONNECT_URI (default 10)\n"
	    "  --retry-until S      retry a refused connect until S seconds\n"
	    "                       after the accept: the target may not\n"
	    "                       be listening yet (default 0: once);\n"
	    "                       the connect deadline grows by S too\n"
	    "  --idle-timeout S     close a connection when no byte moved\n"
	    "                       either way for S seconds (default 0:\n"
	    "                       never)\n"
	    "  --linger S           after one direction ended, close the\n"
	    "                       connection if the other has not ended\n"
	    "                       within S seconds (default: wait for\n"
	    "                       both directions, however long)\n"
	    "  --grace S            on SIGINT/SIGTERM stop accepting, give\n"
	    "                       active connections S seconds to end,\n"
	    "                       then close them (default 5); a second\n"
	    "                       signal closes them at once\n"
	    "  --threads N          run N event loops on N threads; the\n"
	    "                       connections are spread over them in\n"
	    "                       turn and each stays on one (default:\n"
	    "                       the number of online CPUs)\n"
	    "  --no-splice          always copy through user space\n"
	    "  --quiet              no log lines\n"
	    "  --metrics URI        serve Prometheus metrics (GET /metrics)\n"
	    "                       over HTTP on the listening URI URI\n"
	    "                       (tcp://127.0.0.1:9464, unix:PATH,\n"
	    "                       vsock://any:9464...)\n"
	    "  --log-format F       text (default) or json: one JSON object\n"
	    "                       per connection, with timestamps\n"
	    "  -h, --help           this text\n"
	    "\n"
	    "One line per connection is logged on standard error when it\n"
	    "ends:\n"
	    "  rill relay: #ID CLIENT -> TARGET up=N down=N time=S end=WHY\n"
	    "up counts bytes client->target, down target->client. WHY is\n"
	    "eof, client-error(..), target-error(..), both-error(..),\n"
	    "connect-failed(..), refused(max-conns N reached),\n"
	    "idle-timeout, linger-timeout or shutdown. With an exec:\n"
	    "target (one child per connection, inetd style) the line ends\n"
	    "with exit=STATUS, exit=SIGNAME or exit=running.\n"
	    "\n"
	    "Example: rill relay tcp://0.0.0.0:8080 unix:/run/app.sock\n");
}

/* Parses seconds (decimals allowed) into milliseconds. */
static bool parse_secs(const char *s, uint64_t *ms)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || !(v >= 0) || v > 1e9)
		return false;
	*ms = (uint64_t)(v * 1000.0 + 0.5);
	return true;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Parses the options into r; 0 to go on, else the exit status. */
static int relay_parse(int argc, char **argv, struct relay *r, bool *done)
{
	static const struct option longopts[] = {
	    {"max-conns", required_argument, NULL, 'm'},
	    {"connect-timeout", required_argument, NULL, 'c'},
	    {"retry-until", required_argument, NULL, 'r'},
	    {"idle-timeout", required_argument, NULL, 'i'},
	    {"linger", required_argument, NULL, 'l'},
	    {"grace", required_argument, NULL, 'g'},
	    {"threads", required_argument, NULL, 't'},
	    {"no-splice", no_argument, NULL, 'S'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"metrics", required_argument, NULL, 'M'},
	    {"log-format", required_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		uint64_t *target = NULL;
		switch (opt) {
		case 'm': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (end == optarg || *end != '\0' || optarg[0] == '-')
				return cli_usage_error(
				    "relay", "bad --max-conns '%s'", optarg);
			r->max_conns = v;
			continue;
		}
		case 'c': target = &r->connect_timeout_ms; break;
		case 'r': target = &r->retry_until_ms; break;
		case 'i': target = &r->idle_ms; break;
		case 'l':
			target = &r->linger_ms;
			r->linger_set = true;
			break;
		case 'g': target = &r->grace_ms; break;
		case 't':
			if (!cli_parse_threads(optarg, &r->threads))
				return cli_usage_error(
				    "relay", "bad --threads '%s'", optarg);
			continue;
		case 'S': r->no_splice = true; continue;
		case 'q': r->quiet = true; continue;
		case 'M': r->metrics_uri = optarg; continue;
		case 'F':
			if (!cli_log_format_parse(optarg, &r->log_format))
				return cli_usage_error(
				    "relay", "bad --log-format '%s'", optarg);
			continue;
		case 'h':
			relay_usage(stdout);
			*done = true;
			return 0;
		default: return cli_usage_error("relay", "bad option");
		}
		if (!parse_secs(optarg, target))
			return cli_usage_error(
			    "relay", "bad number of seconds '%s'", optarg);
	}
	if (argc - optind != 2)
		return cli_usage_error("relay",
		                       "expected LISTEN_URI and CONNECT_URI");
	r->listen_uri = argv[optind];
	r->connect_uri = argv[optind + 1];
	if (rill_uri_check(r->connect_uri) != 0)
		return cli_usage_error("relay", "%s", rill_last_errmsg());
	r->listen_tls = cli_uri_has_tls(r->listen_uri);
	r->connect_tls = cli_uri_has_tls(r->connect_uri);
	return 0;
}

/* The sweep runs a few times per shortest timeout, at most once a
 * second, and not at all when no timeout is set (until a signal). */
static void relay_sweep_start(struct relay *r, struct relay_loop *rl)
{
	uv_timer_init(rl->loop, &rl->sweep);
	rl->sweep.data = rl;
	if (r->idle_ms > 0 || r->linger_set)
		uv_timer_start(&rl->sweep, on_sweep, r->sweep_ms, r->sweep_ms);
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
	    .connect_timeout_ms = 10000,
	    .grace_ms = 5000,
	    .threads = cli_threads_default(),
	};
	bool done = false;
	int code = relay_parse(argc, argv, &r, &done);
	if (code != 0 || done)
		return code;
	if (r.metrics_uri != NULL &&
	    cli_metrics_init(&r.metrics, r.metrics_uri, r.listen_uri,
	                     CLI_METRICS_CONNECT | CLI_METRICS_CONNS) != 0)
		return 1;
	relay_tune_process();
	r.sweep_ms = 1000;
	uint64_t shortest = r.idle_ms;
	if (r.linger_set && (shortest == 0 || r.linger_ms < shortest))
		shortest = r.linger_ms;
	if (shortest > 0 && shortest / 4 < r.sweep_ms)
		r.sweep_ms = shortest / 4 > 0 ? shortest / 4 : 1;

	struct relay_loop *loops = calloc(r.threads, sizeof *loops);
	int err = loops == NULL
	              ? RILL_ENOMEM
	              : cli_workers_init(&r.workers, r.threads, &relay_ops, &r);
	if (err == 0)
		for (unsigned i = 0; i < r.threads; i++)
			r.workers.w[i].data = &loops[i];
	if (err == 0)
		err =
		    cli_workers_listen(&r.workers, r.listen_uri, NULL, r.quiet);
	if (err != 0) {
		cli_error("relay: listen %s: %s", r.listen_uri,
		          rill_last_errmsg()[0] ? rill_last_errmsg()
		                                : rill_strerror(err));
		if (loops != NULL && r.workers.w != NULL)
			cli_workers_abandon(&r.workers);
		free(loops);
		cli_metrics_free(r.metrics_uri != NULL ? &r.metrics : NULL);
		return 1;
	}
	for (unsigned i = 0; err == 0 && i < r.workers.n; i++) {
		struct relay_loop *rl = &loops[i];
		rl->r = &r;
		rl->w = &r.workers.w[i];
		rl->loop = &r.workers.w[i].loop;
		relay_sweep_start(&r, rl);
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
	cli_metrics_free(r.metrics_uri != NULL ? &r.metrics : NULL);
	if (!r.quiet)
		fprintf(stderr, "rill relay: stopped\n");
	return r.exit_code;
}
