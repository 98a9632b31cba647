/*
 * The shut layer's close handshake through the rill command, against the
 * peer of shut_peer.c (upstream Flow_shutdown behaviour, not rill): over
 * Unix sockets and TCP, 20 repetitions of each case,
 *
 *   cat/connect, cat/listen   rill cat as client and as listener, for
 *                             every ordering that cat can produce (it
 *                             always half-closes, then closes at once)
 *   echo                      rill echo: the peer half-closes first, echo
 *                             writes its last bytes and closes right
 *                             after; then SIGTERM arrives while a close
 *                             handshake is still going on
 *   relay                     rill relay to a shut+ target; then SIGTERM,
 *                             the grace period ends, and the relay's close
 *                             meets a peer that is slow to answer
 *
 * The peer must see no EPIPE or ECONNRESET; every byte is checked by hash
 * on both ends; each rill process must exit 0, and only once its close
 * handshakes are over (an early exit shows up at the peer as EPIPE or a
 * reset). The rill program is $RILL_EXE.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "shut_peer.h"

#define REPS       20
#define CLOSE_TO   "close_timeout=4000"
#define SPAWN_WAIT 10000 /* ms: connect retries, exits */

/* ---------------------------------------------------------------------- */
/* A rill process with pipes on its standard streams */

struct proc {
	pid_t pid;
	int in, out, err; /* our ends; -1 when not piped */
};

static const char *rill_exe(void)
{
	const char *exe = getenv("RILL_EXE");
	if (exe == NULL || access(exe, X_OK) != 0)
		TH_SKIP("RILL_EXE is not set to the rill program");
	return exe;
}

static void proc_spawn(struct proc *p, char *const argv[], bool pipes)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2];
	if (pipes)
		TH_TRUE(pipe2(in, O_CLOEXEC) == 0 &&
		        pipe2(out, O_CLOEXEC) == 0);
	TH_TRUE(pipe2(err, O_CLOEXEC) == 0);
	p->pid = fork();
	TH_CMP_INT(p->pid, >=, 0);
	if (p->pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		dup2(pipes ? in[0] : devnull, 0);
		dup2(pipes ? out[1] : devnull, 1);
		dup2(err[1], 2);
		execv(argv[0], argv);
		_exit(127);
	}
	if (pipes) {
		close(in[0]);
		close(out[1]);
	}
	close(err[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
}

/* Reads the child's stderr until a line with "listening on"; returns the
 * number after the URI's last ':' (a TCP port), or 0. */
static int proc_listening(struct proc *p)
{
	char line[512];
	size_t n = 0;
	for (;;) {
		struct pollfd pfd = {.fd = p->err, .events = POLLIN};
		if (poll(&pfd, 1, SPAWN_WAIT) <= 0)
			TH_FAIL("rill did not say where it listens");
		char c;
		if (read(p->err, &c, 1) != 1)
			TH_FAIL("rill exited before listening");
		if (c != '\n' && n + 1 < sizeof line) {
			line[n++] = c;
			continue;
		}
		line[n] = '\0';
		char *at = strstr(line, "listening on ");
		if (at == NULL) {
			n = 0;
			continue;
		}
		char *q = strchr(at, '?');
		if (q != NULL)
			*q = '\0';
		char *colon = strrchr(at, ':');
		return colon != NULL ? atoi(colon + 1) : 0;
	}
}

/* Waits for the exit; fails unless it is status 0. */
static void proc_expect_exit0(struct proc *p, const char *what)
{
	int st = 0;
	pid_t r = 0;
	for (int ms = 0; ms < SPAWN_WAIT && r == 0; ms += 2) {
		r = waitpid(p->pid, &st, WNOHANG);
		if (r == 0)
			usleep(2000);
	}
	if (r == 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &st, 0);
		TH_FAIL("%s did not exit", what);
	}
	char msg[512] = "";
	ssize_t n = read(p->err, msg, sizeof msg - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(p->err);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		TH_FAIL("%s: status 0x%x, stderr: %s", what, (unsigned)st, msg);
	th_pass_one();
}

/* ---------------------------------------------------------------------- */
/* Standard input and output of rill cat */

struct stdio_job {
	struct proc *p;
	/* stdin: what rill sends; written after stdout's EOF if gated */
	size_t in_len;
	uint64_t in_seed;
	bool gated;
	/* stdout: what rill received */
	uint64_t hash;
	size_t got;
	bool out_eof;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t tin, tout;
};

static void *stdout_thread(void *arg)
{
	struct stdio_job *j = arg;
	uint8_t buf[65536];
	uint64_t h = PEER_HASH_INIT;
	ssize_t n;
	while ((n = read(j->p->out, buf, sizeof buf)) > 0) {
		h = peer_hash_update(h, buf, (size_t)n);
		j->got += (size_t)n;
	}
	close(j->p->out);
	pthread_mutex_lock(&j->lock);
	j->hash = h;
	j->out_eof = true;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

static void *stdin_thread(void *arg)
{
	struct stdio_job *j = arg;
	if (j->gated) {
		pthread_mutex_lock(&j->lock);
		while (!j->out_eof)
			pthread_cond_wait(&j->cond, &j->lock);
		pthread_mutex_unlock(&j->lock);
	}
	uint8_t buf[65536];
	for (size_t off = 0; off < j->in_len;) {
		size_t n =
		    j->in_len - off < sizeof buf ? j->in_len - off : sizeof buf;
		peer_fill(j->in_seed, off, buf, n);
		if (write(j->p->in, buf, n) != (ssize_t)n)
			break; /* rill failed: its exit status says why */
		off += n;
	}
	close(j->p->in);
	return NULL;
}

/* ---------------------------------------------------------------------- */

struct cli_case {
	const char *cmd; /* "cat/connect", "cat/listen", "echo", "relay" */
	bool tcp;
	enum peer_order order;
};

static void uri_for(char *uri, size_t len, bool tcp, int port, const char *name)
{
	if (tcp)
		snprintf(uri, len, "shut+tcp://127.0.0.1:%d?" CLOSE_TO, port);
	else
		snprintf(uri, len, "shut+unix:@%s-%d?" CLOSE_TO, name,
		         (int)getpid());
}

/* Connects to rill's listener, which may not be there yet. */
static int connect_retry(bool tcp, int port, const char *name)
{
	char path[108];
	snprintf(path, sizeof path, "@%s-%d", name, (int)getpid());
	for (int ms = 0; ms < SPAWN_WAIT; ms += 2) {
		int fd = tcp ? peer_connect_tcp(port) : peer_connect_unix(path);
		if (fd >= 0)
			return fd;
		usleep(2000);
	}
	TH_FAIL("cannot connect to rill");
}

static void plan_rep(struct peer_plan *pl, enum peer_order order, unsigned rep)
{
	*pl = (struct peer_plan){
	    .order = order,
	    .send_len = peer_rep_len(rep, 0),
	    .send_seed = peer_rep_seed(rep, 0, order),
	    .recv_len = peer_rep_len(rep, 1),
	    .recv_seed = peer_rep_seed(rep, 1, order),
	};
}

static void expect_peer_ok(const struct peer_result *res, unsigned rep,
                           const char *what)
{
	if (!res->ok)
		TH_FAIL("%s, rep %u: the peer saw: %s", what, rep, res->why);
	TH_TRUE(res->saw_close);
}

static void cat_rep(const struct cli_case *c, unsigned rep)
{
	bool listen = strcmp(c->cmd, "cat/listen") == 0;
	struct peer_plan pl;
	plan_rep(&pl, c->order, rep);
	int lfd = -1, port = 0;
	if (!listen) {
		char path[108];
		snprintf(path, sizeof path, "@rill-cli-cat-%d", (int)getpid());
		lfd = c->tcp ? peer_listen_tcp(&port) : peer_listen_unix(path);
		TH_CMP_INT(lfd, >=, 0);
	}
	char uri[200];
	uri_for(uri, sizeof uri, c->tcp, port, "rill-cli-cat");
	if (listen && c->tcp)
		snprintf(uri, sizeof uri, "shut+tcp://127.0.0.1:0?" CLOSE_TO);
	char *listen_argv[] = {
	    (char *)rill_exe(), "cat", "-l", "-v", uri, NULL};
	char *connect_argv[] = {(char *)rill_exe(), "cat", uri, NULL};
	struct proc p;
	proc_spawn(&p, listen ? listen_argv : connect_argv, true);
	if (listen)
		port = proc_listening(&p);
	/* rill sends what the peer expects; it writes only after the
	 * peer's half-close when the peer goes first. */
	struct stdio_job j = {.p = &p,
	                      .in_len = pl.recv_len,
	                      .in_seed = pl.recv_seed,
	                      .gated = c->order == ORDER_PEER_HALF_CLOSES_FIRST,
	                      .lock = PTHREAD_MUTEX_INITIALIZER,
	                      .cond = PTHREAD_COND_INITIALIZER};
	pthread_create(&j.tout, NULL, stdout_thread, &j);
	pthread_create(&j.tin, NULL, stdin_thread, &j);
	int fd = listen ? connect_retry(c->tcp, port, "rill-cli-cat")
	                : peer_accept(lfd, SPAWN_WAIT);
	TH_CMP_INT(fd, >=, 0);
	struct peer_result res;
	peer_run(fd, &pl, &res);
	pthread_join(j.tin, NULL);
	pthread_join(j.tout, NULL);
	if (lfd >= 0)
		close(lfd);
	proc_expect_exit0(&p, "rill cat");
	expect_peer_ok(&res, rep, c->cmd);
	TH_EQ_U64(j.got, pl.send_len);
	TH_EQ_U64(j.hash, peer_expected_hash(pl.send_seed, pl.send_len));
}

/* ---------------------------------------------------------------------- */

struct signal_later {
	pid_t pid;
	unsigned wait_ms;
};

/* rill must still run: its close handshake waits for our answer. */
static void expect_alive(void *ud)
{
	struct signal_later *s = ud;
	int st;
	if (waitpid(s->pid, &st, WNOHANG) != 0)
		TH_FAIL("rill exited (status 0x%x) before its close handshake "
		        "was over",
		        (unsigned)st);
	th_pass_one();
}

/* Before the peer's Close: SIGTERM, and give rill time to exit early. */
static void sigterm_then_wait(void *ud)
{
	struct signal_later *s = ud;
	kill(s->pid, SIGTERM);
	usleep(s->wait_ms * 1000u);
	expect_alive(s);
}

static void echo_case(const struct cli_case *c)
{
	char uri[200];
	uri_for(uri, sizeof uri, c->tcp, 0, "rill-cli-echo");
	char *argv[] = {(char *)rill_exe(), "echo", "-v", uri, NULL};
	struct proc p;
	proc_spawn(&p, argv, false);
	int port = proc_listening(&p);
	for (unsigned rep = 0; rep <= REPS; rep++) {
		struct peer_plan pl;
		plan_rep(&pl, ORDER_RILL_CLOSES_AFTER_WRITE, rep);
		pl.recv_len = pl.send_len; /* the echo */
		pl.recv_seed = pl.send_seed;
		/* The last one: SIGTERM while echo waits for our Close. */
		struct signal_later sl = {.pid = p.pid, .wait_ms = 200};
		if (rep == REPS) {
			pl.before_close = sigterm_then_wait;
			pl.ud = &sl;
		}
		int fd = connect_retry(c->tcp, port, "rill-cli-echo");
		struct peer_result res;
		peer_run(fd, &pl, &res);
		expect_peer_ok(&res, rep, "echo");
	}
	proc_expect_exit0(&p, "rill echo after SIGTERM");
}

/* ---------------------------------------------------------------------- */

struct client_job {
	const char *path;
	size_t send_len, recv_len;
	uint64_t send_seed, recv_seed;
	bool idle; /* send nothing, read until the relay cuts us */
	bool ok;
	char why[128];
};

/* The relay's plain client: writes, half-closes, reads to EOF. */
static void *client_thread(void *arg)
{
	struct client_job *j = arg;
	int fd = -1;
	for (int ms = 0; ms < SPAWN_WAIT && fd < 0; ms += 2) {
		fd = peer_connect_unix(j->path);
		if (fd < 0)
			usleep(2000);
	}
	if (fd < 0) {
		snprintf(j->why, sizeof j->why, "no connection to the relay");
		return NULL;
	}
	uint8_t buf[65536];
	bool ok = true;
	for (size_t off = 0; ok && off < j->send_len;) {
		size_t n = j->send_len - off < sizeof buf ? j->send_len - off
		                                          : sizeof buf;
		peer_fill(j->send_seed, off, buf, n);
		ok = send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n;
		off += n;
	}
	if (!j->idle)
		shutdown(fd, SHUT_WR);
	uint64_t h = PEER_HASH_INIT;
	size_t got = 0;
	ssize_t n;
	while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
		h = peer_hash_update(h, buf, (size_t)n);
		got += (size_t)n;
	}
	close(fd);
	if (j->idle)
		ok = true; /* cut by the relay: how does not matter here */
	else if (!ok || n < 0 || got != j->recv_len ||
	         h != peer_expected_hash(j->recv_seed, j->recv_len))
		snprintf(j->why, sizeof j->why, "client got %zu of %zu bytes",
		         got, j->recv_len);
	j->ok = ok && j->why[0] == '\0';
	return NULL;
}

static void relay_case(const struct cli_case *c)
{
	char front[108], target[200], path[108];
	snprintf(front, sizeof front, "@rill-cli-relay-front-%d",
	         (int)getpid());
	snprintf(path, sizeof path, "@rill-cli-relay-back-%d", (int)getpid());
	int port = 0;
	int lfd = c->tcp ? peer_listen_tcp(&port) : peer_listen_unix(path);
	TH_CMP_INT(lfd, >=, 0);
	uri_for(target, sizeof target, c->tcp, port, "rill-cli-relay-back");
	char listen_uri[128];
	snprintf(listen_uri, sizeof listen_uri, "unix:%s", front);
	char *argv[] = {(char *)rill_exe(), "relay", "--grace", "0.2",
	                listen_uri,         target,  NULL};
	struct proc p;
	proc_spawn(&p, argv, false);
	proc_listening(&p);
	for (unsigned rep = 0; rep <= REPS; rep++) {
		/* The relay half-closes towards the peer first (it carries
		 * the client's half-close); the peer answers. The last one:
		 * an idle connection that SIGTERM's grace ends, cut by the
		 * relay, and a peer slow to answer the relay's Close. */
		bool last = rep == REPS;
		struct peer_plan pl;
		plan_rep(&pl, ORDER_RILL_HALF_CLOSES_FIRST, rep);
		struct signal_later sl = {.pid = p.pid};
		if (last) {
			pl.send_len = pl.recv_len = 0;
			pl.answer_delay_ms = 300;
			pl.before_answer = expect_alive;
			pl.ud = &sl;
		}
		struct client_job cj = {.path = front,
		                        .send_len = pl.recv_len,
		                        .send_seed = pl.recv_seed,
		                        .recv_len = pl.send_len,
		                        .recv_seed = pl.send_seed,
		                        .idle = last};
		pthread_t t;
		pthread_create(&t, NULL, client_thread, &cj);
		int fd = peer_accept(lfd, SPAWN_WAIT);
		TH_CMP_INT(fd, >=, 0);
		if (last)
			kill(p.pid, SIGTERM);
		struct peer_result res;
		peer_run(fd, &pl, &res);
		pthread_join(t, NULL);
		expect_peer_ok(&res, rep, "relay");
		if (!cj.ok)
			TH_FAIL("relay, rep %u: %s", rep, cj.why);
	}
	close(lfd);
	proc_expect_exit0(&p, "rill relay after SIGTERM");
}

/* ---------------------------------------------------------------------- */

static void run_case(void *arg)
{
	const struct cli_case *c = arg;
	signal(SIGPIPE, SIG_IGN);
	rill_exe();
	if (strcmp(c->cmd, "echo") == 0) {
		echo_case(c);
	} else if (strcmp(c->cmd, "relay") == 0) {
		relay_case(c);
	} else {
		for (unsigned rep = 0; rep < REPS; rep++)
			cat_rep(c, rep);
	}
}

__attribute__((constructor)) static void register_cases(void)
{
	/* cat cannot close right after a write without a half-close
	 * before it, so that ordering is echo's (and the library's). */
	static const enum peer_order cat_orders[] = {
	    ORDER_PEER_HALF_CLOSES_FIRST, ORDER_RILL_HALF_CLOSES_FIRST,
	    ORDER_BOTH_AT_ONCE, ORDER_PEER_CLOSES_AFTER_WRITE};
	static struct cli_case cases[2 * (2 * 4 + 2)];
	size_t n = 0;
	for (int t = 0; t < 2; t++) {
		const char *tr = t == 1 ? "tcp" : "unix";
		for (int m = 0; m < 2; m++) {
			for (int o = 0; o < 4; o++) {
				cases[n] = (struct cli_case){
				    m == 0 ? "cat/connect" : "cat/listen",
				    t == 1, cat_orders[o]};
				char name[160];
				snprintf(name, sizeof name, "%s/%s/%s",
				         cases[n].cmd, tr,
				         peer_order_names[cat_orders[o]]);
				th_add(name, run_case, &cases[n++], 120);
			}
		}
		cases[n] = (struct cli_case){"echo", t == 1,
		                             ORDER_RILL_CLOSES_AFTER_WRITE};
		char name[160];
		snprintf(name, sizeof name, "echo/%s/%s", tr,
		         peer_order_names[ORDER_RILL_CLOSES_AFTER_WRITE]);
		th_add(name, run_case, &cases[n++], 120);
		cases[n] = (struct cli_case){"relay", t == 1,
		                             ORDER_RILL_HALF_CLOSES_FIRST};
		snprintf(name, sizeof name, "relay/%s/after_sigterm_grace", tr);
		th_add(name, run_case, &cases[n++], 120);
	}
}
