/*
 * vchan accept paths out of file descriptors (EMFILE): the connection
 * stays queued and the listening fd keeps polling readable, so a server
 * that returned from its poll callback with the poll still armed would
 * spin. Both the single server (rill_vchan_server) and the URI listener
 * must wait instead, and serve clients once fds are free again.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vchan_util.h"

#define ACCEPT_MAX_FDS 4096

struct accept_spin {
	unsigned iterations;
	bool stop;
};

static void accept_on_prepare(uv_prepare_t *p)
{
	((struct accept_spin *)p->data)->iterations++;
}

static void accept_on_timer(uv_timer_t *t)
{
	((struct accept_spin *)t->data)->stop = true;
}

/* Loop iterations in ms of loop time. */
static unsigned accept_count_iterations(uv_loop_t *loop, unsigned ms)
{
	struct accept_spin s = {0};
	uv_prepare_t p;
	uv_timer_t t;
	uv_prepare_init(loop, &p);
	uv_timer_init(loop, &t);
	p.data = t.data = &s;
	uv_prepare_start(&p, accept_on_prepare);
	uv_timer_start(&t, accept_on_timer, ms, 0);
	while (!s.stop)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&p, NULL);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return s.iterations;
}

/* A raw connection to the rendezvous socket of (NULL, port): it waits in
 * the backlog until the server accepts it. */
static int accept_connect_raw(const char *port)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	TH_OK(rill_vchan_path(NULL, port, sa.sun_path, sizeof sa.sun_path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	TH_TRUE(fd >= 0);
	TH_OK(connect(fd, (struct sockaddr *)&sa, sizeof sa));
	return fd;
}

/* Takes every free fd (dups of 0); returns how many, in fds. */
static int accept_exhaust(int *fds)
{
	int n = 0;
	while (n < ACCEPT_MAX_FDS) {
		int fd = fcntl(0, F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			TH_EQ_INT(errno, EMFILE);
			break;
		}
		fds[n++] = fd;
	}
	TH_TRUE(n < ACCEPT_MAX_FDS);
	return n;
}

static void accept_release(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* A low fd limit, so that exhausting it is quick. */
static void accept_low_limit(void)
{
	struct rlimit rl;
	TH_OK(getrlimit(RLIMIT_NOFILE, &rl));
	rl.rlim_cur = 256;
	TH_OK(setrlimit(RLIMIT_NOFILE, &rl));
}

/* The test's rendezvous directory (vt_private_dir) goes with it: the
 * sockets in it were removed when their listeners closed. */
static void accept_remove_dir(void)
{
	const char *dir = getenv("RILL_VCHAN_DIR");
	TH_OK(dir != NULL ? rmdir(dir) : -1);
}

static void accept_check_client(uv_loop_t *loop, const char *uri,
                                struct rill_flow *srv, struct rill_flow **acc)
{
	struct rill_flow *c = NULL;
	struct rill_connect_opts o = {.timeout_ms = 5000};
	TH_OK(rill_connect_sync(loop, uri, &o, &c));
	if (srv == NULL) {
		while (*acc == NULL)
			uv_run(loop, UV_RUN_ONCE);
		srv = *acc;
	}
	vt_transfer(loop, srv, c, 30000, 20000);
	rill_close(c);
}

TEST_TIMEOUT(server_accept_emfile_waits, 60)
{
	vt_private_dir();
	accept_low_limit();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *s;
	TH_OK(
	    rill_vchan_server(&loop, NULL, "emf", 4096, 4096, NULL, NULL, &s));
	int raw = accept_connect_raw("emf");
	static int fds[ACCEPT_MAX_FDS];
	int n = accept_exhaust(fds);
	unsigned it = accept_count_iterations(&loop, 300);
	accept_release(fds, n);
	/* A spinning accept runs thousands of iterations in 300 ms; a pause
	 * of 100 ms between tries a handful. */
	th_note("loop iterations in 300 ms out of fds: %u", it);
	TH_TRUE(it < 50);
	close(raw); /* a stray: the server drops it and waits on */
	accept_check_client(&loop, "vchan:emf", s, NULL);
	rill_close(s);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
	accept_remove_dir();
}

struct accept_listen {
	struct rill_flow *f;
	int errors, last_err;
};

static void accept_listen_cb(struct rill_listener *l, struct rill_flow *f,
                             int status, const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct accept_listen *a = ud;
	if (status != 0) {
		a->errors++;
		a->last_err = status;
		return;
	}
	if (a->f == NULL)
		a->f = f;
	else
		rill_close(f);
}

TEST_TIMEOUT(listener_accept_emfile_waits, 60)
{
	vt_private_dir();
	accept_low_limit();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct accept_listen a = {0};
	struct rill_listener *l;
	TH_OK(rill_listen(&loop, "vchan:emfl", NULL, accept_listen_cb, &a, &l));
	int raw = accept_connect_raw("emfl");
	static int fds[ACCEPT_MAX_FDS];
	int n = accept_exhaust(fds);
	unsigned it = accept_count_iterations(&loop, 300);
	accept_release(fds, n);
	th_note("loop iterations in 300 ms out of fds: %u, errors %d", it,
	        a.errors);
	TH_TRUE(it < 50);
	/* Each failed try is reported, one per pause. */
	TH_TRUE(a.errors >= 1 && a.errors < 10);
	TH_EQ_ERR(a.last_err, -EMFILE);
	close(raw);
	accept_check_client(&loop, "vchan:emfl", NULL, &a.f);
	rill_close(a.f);
	rill_listener_close(l);
	vt_drain(&loop);
	TH_EQ_INT(uv_loop_close(&loop), 0);
	accept_remove_dir();
}
