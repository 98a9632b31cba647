/*
 * The shut layer's close handshake through the library API, against a
 * peer that is not rill (shut_peer.c: upstream's Flow_shutdown behaviour,
 * on a thread of its own with blocking sockets). For each ordering of
 * half-closes and closes, over Unix sockets and TCP, 20 repetitions:
 * rill listens in the even ones and connects in the odd ones. The peer
 * must never see EPIPE or ECONNRESET, both sides check every byte by
 * hash, and the program waits with rill_when_flows_closed() until the
 * teardown is over before it looks at the peer's verdict.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"
#include "shut_peer.h"

#define REPS        20
#define CHUNK       (64u * 1024u)
#define MAX_WRITES  4
#define CLOSE_TO_MS 4000

/* The rill side of one repetition. */
struct side {
	uv_loop_t *loop;
	struct rill_flow *f;
	enum peer_order order;
	/* rill -> peer */
	size_t send_len, sent;
	uint64_t send_seed;
	int writes;
	bool shut_asked, shut_done;
	/* peer -> rill */
	size_t recv_len, received;
	uint64_t recv_seed, hash;
	bool reading, eof;
	int err;
	const char *err_what;
	bool closed, teardown_over;
};

static void side_fail(struct side *s, const char *what, int err)
{
	if (s->err == 0) {
		s->err = err;
		s->err_what = what;
	}
}

static void side_close(struct side *s);
static void side_pump_writes(struct side *s);
static void side_read(struct side *s);

static void on_teardown_over(uv_loop_t *loop, void *ud)
{
	(void)loop;
	((struct side *)ud)->teardown_over = true;
}

static void side_close(struct side *s)
{
	if (s->closed)
		return;
	s->closed = true;
	rill_close(s->f);
	TH_OK(rill_when_flows_closed(s->loop, on_teardown_over, s));
}

/* Closes once both directions are done, as each ordering says. */
static void side_maybe_close(struct side *s)
{
	if (s->closed || s->err != 0)
		return;
	if (s->order == ORDER_RILL_CLOSES_AFTER_WRITE) {
		/* Right after the last write completed, without a
		 * ShutdownWrite (or at once after EOF with nothing to send).
		 */
		if (s->eof && s->sent == s->send_len && s->writes == 0)
			side_close(s);
		return;
	}
	if (s->eof && s->shut_done)
		side_close(s);
}

static void on_shutdown(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct side *s = ud;
	if (status != 0)
		side_fail(s, "shutdown", status);
	s->shut_done = true;
	side_maybe_close(s);
}

static void on_write(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct side *s = ud;
	s->writes--;
	if (status != 0) {
		side_fail(s, "write", status);
		return;
	}
	side_pump_writes(s);
	side_maybe_close(s);
}

static void side_pump_writes(struct side *s)
{
	if (s->closed)
		return;
	while (s->sent < s->send_len && s->writes < MAX_WRITES) {
		size_t n = s->send_len - s->sent;
		if (n > CHUNK)
			n = CHUNK;
		struct rill_buf *b = rill_buf_new(n);
		TH_NOT_NULL(b);
		peer_fill(s->send_seed, s->sent, b->data, n);
		int err = rill_write(s->f, b, on_write, s);
		rill_buf_release(b);
		if (err != 0) {
			side_fail(s, "write", err);
			return;
		}
		s->sent += n;
		s->writes++;
	}
	if (s->sent == s->send_len && s->writes == 0 && !s->shut_asked &&
	    s->order != ORDER_RILL_CLOSES_AFTER_WRITE) {
		s->shut_asked = true;
		int err = rill_shutdown(s->f, RILL_SHUT_WR, on_shutdown, s);
		if (err != 0)
			side_fail(s, "shutdown", err);
	}
}

static void on_read(struct rill_flow *f, int status, struct rill_buf *b,
                    void *ud)
{
	(void)f;
	struct side *s = ud;
	s->reading = false;
	if (status == RILL_EOF) {
		s->eof = true;
		/* The orderings where rill writes only after the peer's
		 * half-close start writing now. */
		side_pump_writes(s);
		side_maybe_close(s);
		return;
	}
	if (status != 0) {
		side_fail(s, "read", status);
		return;
	}
	s->hash = peer_hash_update(s->hash, b->data, b->len);
	s->received += b->len;
	rill_buf_release(b);
	side_read(s);
}

static void side_read(struct side *s)
{
	s->reading = true;
	int err = rill_read(s->f, on_read, s);
	if (err != 0) {
		s->reading = false;
		side_fail(s, "read", err);
	}
}

static void side_start(struct side *s)
{
	s->hash = PEER_HASH_INIT;
	side_read(s);
	/* Peer first / rill closes after its write: rill writes after EOF. */
	bool after_eof = s->order == ORDER_PEER_HALF_CLOSES_FIRST ||
	                 s->order == ORDER_RILL_CLOSES_AFTER_WRITE;
	if (!after_eof)
		side_pump_writes(s);
}

/* ---------------------------------------------------------------------- */

struct peer_job {
	pthread_t thread;
	int lfd;        /* the peer listens (rill connects), or -1 */
	int port;       /* TCP port to connect to when rill listens */
	char path[108]; /* Unix name to connect to when rill listens */
	bool tcp;
	struct peer_plan plan;
	struct peer_result res;
};

static void *peer_thread(void *arg)
{
	struct peer_job *j = arg;
	int fd;
	if (j->lfd >= 0)
		fd = peer_accept(j->lfd, 10000);
	else
		fd = j->tcp ? peer_connect_tcp(j->port)
		            : peer_connect_unix(j->path);
	if (fd < 0) {
		snprintf(j->res.why, sizeof j->res.why, "peer: no connection");
		j->res.ok = false;
		return NULL;
	}
	peer_run(fd, &j->plan, &j->res);
	return NULL;
}

static void on_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	if (status != 0)
		TH_FAIL("accept: %s", errmsg);
	*(struct rill_flow **)ud = f;
}

static void on_connect(struct rill_flow *f, int status, const char *errmsg,
                       void *ud)
{
	if (status != 0)
		TH_FAIL("connect: %s", errmsg);
	*(struct rill_flow **)ud = f;
}

static int port_of(struct rill_listener *l)
{
	char uri[128];
	TH_OK(rill_listener_uri(l, uri, sizeof uri));
	const char *colon = strrchr(uri, ':');
	TH_NOT_NULL(colon);
	return atoi(colon + 1);
}

static void one_rep(uv_loop_t *loop, bool tcp, enum peer_order order,
                    unsigned rep)
{
	struct peer_job j = {.lfd = -1, .tcp = tcp};
	j.plan = (struct peer_plan){
	    .order = order,
	    .send_len = peer_rep_len(rep, 0),
	    .send_seed = peer_rep_seed(rep, 0, order),
	    .recv_len = peer_rep_len(rep, 1),
	    .recv_seed = peer_rep_seed(rep, 1, order),
	};
	struct side s = {.loop = loop, .order = order};
	s.send_len = j.plan.recv_len;
	s.send_seed = j.plan.recv_seed;
	s.recv_len = j.plan.send_len;
	s.recv_seed = j.plan.send_seed;
	char uri[200];
	bool rill_listens = rep % 2 == 0;
	struct rill_listener *lst = NULL;
	if (tcp) {
		if (rill_listens) {
			TH_OK(rill_listen(
			    loop, "shut+tcp://127.0.0.1:0?close_timeout=4000",
			    NULL, on_accept, &s.f, &lst));
			j.port = port_of(lst);
		} else {
			j.lfd = peer_listen_tcp(&j.port);
			TH_CMP_INT(j.lfd, >=, 0);
			snprintf(uri, sizeof uri,
			         "shut+tcp://127.0.0.1:%d?close_timeout=%d",
			         j.port, CLOSE_TO_MS);
		}
	} else {
		snprintf(j.path, sizeof j.path, "@rill-shut-peer-%d-%u",
		         (int)getpid(), rep);
		snprintf(uri, sizeof uri, "shut+unix:%s?close_timeout=%d",
		         j.path, CLOSE_TO_MS);
		if (rill_listens) {
			TH_OK(rill_listen(loop, uri, NULL, on_accept, &s.f,
			                  &lst));
		} else {
			j.lfd = peer_listen_unix(j.path);
			TH_CMP_INT(j.lfd, >=, 0);
		}
	}
	TH_EQ_INT(pthread_create(&j.thread, NULL, peer_thread, &j), 0);
	if (!rill_listens)
		TH_OK(rill_connect(loop, uri, NULL, on_connect, &s.f));
	while (s.f == NULL)
		uv_run(loop, UV_RUN_ONCE);
	rill_listener_close(lst);
	side_start(&s);
	while (!s.teardown_over && s.err == 0)
		uv_run(loop, UV_RUN_ONCE);
	if (s.err != 0) {
		rill_close(s.f);
		uv_run(loop, UV_RUN_DEFAULT);
	}
	pthread_join(j.thread, NULL);
	if (j.lfd >= 0)
		close(j.lfd);
	if (s.err != 0)
		TH_FAIL("rep %u: rill %s: %s (peer: %s)", rep, s.err_what,
		        rill_strerror(s.err), j.res.ok ? "ok" : j.res.why);
	if (!j.res.ok)
		TH_FAIL(
		    "rep %u (%zu bytes each way, rill %s): the peer saw: %s",
		    rep, j.plan.send_len,
		    rill_listens ? "listening" : "connecting", j.res.why);
	TH_TRUE(j.res.saw_close);
	TH_EQ_U64(s.received, s.recv_len);
	TH_EQ_U64(s.hash, peer_expected_hash(s.recv_seed, s.recv_len));
	TH_EQ_U64(rill_closing_flows(loop), 0);
}

struct combo {
	bool tcp;
	enum peer_order order;
};

static void run_combo(void *arg)
{
	const struct combo *c = arg;
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	for (unsigned rep = 0; rep < REPS; rep++)
		one_rep(&loop, c->tcp, c->order, rep);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&loop));
}

__attribute__((constructor)) static void register_combos(void)
{
	static struct combo combos[2 * ORDER_COUNT];
	for (int t = 0; t < 2; t++) {
		for (int o = 0; o < ORDER_COUNT; o++) {
			struct combo *c = &combos[t * ORDER_COUNT + o];
			c->tcp = t == 1;
			c->order = (enum peer_order)o;
			char name[128];
			snprintf(name, sizeof name, "%s/%s",
			         t == 1 ? "tcp" : "unix", peer_order_names[o]);
			th_add(name, run_combo, c, 120);
		}
	}
}
