/*
 * The combinators' options (rill_copy_opts / rill_proxy_opts): the linger
 * after the first direction ended, the idle timeout, abort on the first
 * error, and rill_copy(f, f) as an echo. The cases that matter are the
 * ones that hung before: one side reset and the other peer silent.
 * Each socket case runs on the splice path and on the generic path.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"

static uint64_t ms_now(void)
{
	return uv_hrtime() / 1000000u;
}

struct accepted {
	struct rill_flow *f;
};

static void on_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct accepted *a = ud;
	if (status == 0 && a->f == NULL)
		a->f = f;
	else
		rill_close(f);
}

/*
 * A TCP connection whose client end is a bare socket (*fd, blocking) and
 * whose server end is a flow (*f): the test can reset the bare end with
 * SO_LINGER 0, which no flow API does.
 */
static void tcp_bare_and_flow(uv_loop_t *l, int *fd, struct rill_flow **f)
{
	struct accepted acc = {0};
	struct rill_listener *lst = NULL;
	TH_OK(rill_listen(l, "tcp://127.0.0.1:0", NULL, on_accept, &acc, &lst));
	char uri[128];
	TH_OK(rill_listener_uri(lst, uri, sizeof uri));
	const char *colon = strrchr(uri, ':');
	TH_TRUE(colon != NULL);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	TH_TRUE(*fd >= 0);
	TH_OK(connect(*fd, (struct sockaddr *)&sa, sizeof sa));
	while (acc.f == NULL)
		uv_run(l, UV_RUN_ONCE);
	*f = acc.f;
	rill_listener_close(lst);
}

/* Closes a bare socket with a reset (RST) instead of a FIN. */
static void bare_reset(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	TH_OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
	close(fd);
}

struct proxy_end {
	int calls;
	uint64_t at_ms;
	struct rill_proxy_result res;
	struct rill_flow *a, *b;
};

static void proxy_cb(struct rill_proxy *p, const struct rill_proxy_result *res,
                     void *ud)
{
	(void)p;
	struct proxy_end *pe = ud;
	pe->calls++;
	pe->at_ms = ms_now();
	pe->res = *res;
	/* Harmless after a cut (the proxy closed them already). */
	rill_close(pe->a);
	rill_close(pe->b);
}

static void wake_cb(uv_timer_t *t)
{
	(void)t; /* only wakes uv_run(UV_RUN_ONCE) up */
}

/* Runs l until *calls is set or until deadline_ms (absolute). */
static void run_until(uv_loop_t *l, const int *calls, uint64_t deadline_ms)
{
	uv_timer_t t;
	uv_timer_init(l, &t);
	uv_timer_start(&t, wake_cb, 10, 10);
	while (*calls == 0 && ms_now() < deadline_ms)
		uv_run(l, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(l, UV_RUN_NOWAIT);
}

/*
 * client (bare) <-> a ==proxy== b <-> s (a silent server flow): the
 * client resets its connection; the server never says a word.
 * Returns when the proxy completed or after wait_ms.
 */
static void reset_and_silent(const struct rill_proxy_opts *po, uint64_t wait_ms,
                             struct proxy_end *pe, uint64_t *t_reset)
{
	uv_loop_t l;
	uv_loop_init(&l);
	int cfd, sfd; /* the client, and the silent server (bare ends) */
	struct rill_flow *a, *b;
	tcp_bare_and_flow(&l, &cfd, &a);
	tcp_bare_and_flow(&l, &sfd, &b);
	pe->a = a;
	pe->b = b;
	struct rill_proxy *p = NULL;
	TH_OK(rill_proxy(a, b, po, proxy_cb, pe, &p));
	TH_EQ_INT(write(cfd, "hello", 5), 5);
	for (int i = 0; i < 20; i++)
		uv_run(&l, UV_RUN_NOWAIT);
	*t_reset = ms_now();
	bare_reset(cfd);
	run_until(&l, &pe->calls, *t_reset + wait_ms);
	if (pe->calls == 0) {
		/* Still waiting (what the old proxy did forever). */
		rill_proxy_abort(p);
	}
	char buf[16];
	/* The silent server got the bytes sent before the reset. */
	TH_EQ_INT(recv(sfd, buf, sizeof buf, MSG_DONTWAIT), 5);
	close(sfd);
	uv_run(&l, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&l));
}

static void linger_case(unsigned copy_flags)
{
	struct rill_proxy_opts po = {.flags = RILL_PROXY_LINGER,
	                             .linger_ms = 300};
	po.copy.flags = copy_flags;
	struct proxy_end pe = {0};
	uint64_t t0;
	reset_and_silent(&po, 5000, &pe, &t0);
	TH_EQ_INT(pe.calls, 1);
	TH_EQ_INT(pe.res.cut, RILL_CUT_LINGER);
	TH_TRUE(pe.res.failed & RILL_PROXY_A);
	th_note("ended %" PRIu64 " ms after the reset (linger 300 ms)",
	        pe.at_ms - t0);
	TH_CMP_INT(pe.at_ms - t0, >=, 290);
	TH_CMP_INT(pe.at_ms - t0, <, 2500);
}

/* The acceptance case of issue 29: a reset, a silent peer, a linger. */
TEST(proxy_linger_ends_reset_and_silent_splice)
{
	linger_case(0);
}

TEST(proxy_linger_ends_reset_and_silent_generic)
{
	linger_case(RILL_COPY_NO_SPLICE);
}

/* Without options the proxy still waits for the silent peer: a reply may
 * take as long as it wants (the default is unchanged). */
TEST(proxy_without_linger_still_waits)
{
	struct rill_proxy_opts po = {0};
	struct proxy_end pe = {0};
	uint64_t t0;
	reset_and_silent(&po, 700, &pe, &t0);
	TH_EQ_INT(pe.calls, 0);
}

TEST(proxy_abort_on_error_cuts_at_once)
{
	for (int mode = 0; mode < 2; mode++) {
		struct rill_proxy_opts po = {0};
		po.copy.flags =
		    RILL_COPY_ABORT_ON_ERROR | (mode ? RILL_COPY_NO_SPLICE : 0);
		struct proxy_end pe = {0};
		uint64_t t0;
		reset_and_silent(&po, 5000, &pe, &t0);
		TH_EQ_INT(pe.calls, 1);
		TH_EQ_INT(pe.res.cut, RILL_CUT_ERROR);
		TH_EQ_ERR(pe.res.status, RILL_ECONNRESET);
		TH_CMP_INT(pe.at_ms - t0, <, 2000);
	}
}

TEST(proxy_idle_timeout_cuts_two_silent_peers)
{
	for (int mode = 0; mode < 2; mode++) {
		uv_loop_t l;
		uv_loop_init(&l);
		int cfd, sfd;
		struct rill_flow *a, *b;
		tcp_bare_and_flow(&l, &cfd, &a);
		tcp_bare_and_flow(&l, &sfd, &b);
		struct rill_proxy_opts po = {0};
		po.copy.idle_timeout_ms = 250;
		po.copy.flags = mode ? RILL_COPY_NO_SPLICE : 0;
		struct proxy_end pe = {.a = a, .b = b};
		TH_OK(rill_proxy(a, b, &po, proxy_cb, &pe, NULL));
		/* Bytes that move keep it alive: 4 x 100 ms of traffic. */
		char buf[8];
		uint64_t t0 = 0;
		for (int i = 0; i < 4; i++) {
			t0 = ms_now();
			TH_EQ_INT(write(cfd, "x", 1), 1);
			run_until(&l, &pe.calls, ms_now() + 100);
			TH_EQ_INT(recv(sfd, buf, sizeof buf, 0), 1);
		}
		TH_EQ_INT(pe.calls, 0);
		run_until(&l, &pe.calls, ms_now() + 5000);
		TH_EQ_INT(pe.calls, 1);
		TH_EQ_INT(pe.res.cut, RILL_CUT_IDLE);
		TH_EQ_ERR(pe.res.status, RILL_ETIMEDOUT);
		th_note("cut %" PRIu64 " ms after the last byte (idle 250)",
		        pe.at_ms - t0);
		TH_CMP_INT(pe.at_ms - t0, >=, 240);
		TH_CMP_INT(pe.at_ms - t0, <, 2500);
		/* The cut closed both connections: the peers see the end. */
		TH_EQ_INT(recv(cfd, buf, sizeof buf, 0), 0);
		TH_EQ_INT(recv(sfd, buf, sizeof buf, 0), 0);
		close(cfd);
		close(sfd);
		uv_run(&l, UV_RUN_DEFAULT);
		TH_OK(uv_loop_close(&l));
	}
}

/* ---------------------------------------------------------------------- */
/* rill_copy */

struct copy_end {
	int calls;
	struct rill_copy_result res;
	struct rill_flow *f; /* shut down at the end (echo) */
};

static void copy_cb(struct rill_copy *c, const struct rill_copy_result *res,
                    void *ud)
{
	(void)c;
	struct copy_end *ce = ud;
	ce->calls++;
	ce->res = *res;
	if (ce->f != NULL && res->cut == RILL_CUT_NONE)
		rill_shutdown(ce->f, RILL_SHUT_WR, NULL, NULL);
}

/* rill_copy(f, f): an echo, over a pair and over TCP (splice, generic). */
TEST(copy_same_flow_is_an_echo)
{
	for (int mode = 0; mode < 3; mode++) {
		uv_loop_t l;
		uv_loop_init(&l);
		struct rill_flow *f, *peer;
		if (mode == 0) {
			TH_OK(rill_pair(&l, 0, &f, &peer));
		} else {
			struct accepted acc = {0};
			struct rill_listener *lst;
			TH_OK(rill_listen(&l, "tcp://127.0.0.1:0", NULL,
			                  on_accept, &acc, &lst));
			char uri[128];
			TH_OK(rill_listener_uri(lst, uri, sizeof uri));
			TH_OK(rill_connect_sync(&l, uri, NULL, &peer));
			while (acc.f == NULL)
				uv_run(&l, UV_RUN_ONCE);
			f = acc.f;
			rill_listener_close(lst);
		}
		struct rill_copy_opts o = {
		    .flags = mode == 2 ? RILL_COPY_NO_SPLICE : 0};
		struct copy_end ce = {.f = f};
		TH_OK(rill_copy(f, f, &o, copy_cb, &ce, NULL));
		size_t n = 3 * 1024 * 1024 + 7;
		uint8_t *data = malloc(n);
		for (size_t i = 0; i < n; i++)
			data[i] = (uint8_t)(i * 131u + (i >> 9));
		TH_OK(rill_write_copy(peer, data, n, NULL, NULL));
		TH_OK(rill_shutdown(peer, RILL_SHUT_WR, NULL, NULL));
		struct rill_buf *back = NULL;
		TH_OK(rill_read_all_sync(peer, n + 1, &back));
		TH_EQ_INT(back->len, n);
		TH_EQ_MEM(back->data, data, n);
		TH_EQ_INT(ce.calls, 1);
		TH_OK(ce.res.status);
		TH_EQ_INT(ce.res.spliced, mode == 1);
		TH_EQ_U64(ce.res.stats.write_bytes, n);
		rill_buf_release(back);
		free(data);
		rill_close(f);
		rill_close(peer);
		uv_run(&l, UV_RUN_DEFAULT);
		TH_OK(uv_loop_close(&l));
	}
}

TEST(copy_idle_timeout_cuts_and_closes)
{
	uv_loop_t l;
	uv_loop_init(&l);
	struct rill_flow *a, *pa, *b, *pb;
	TH_OK(rill_pair(&l, 0, &a, &pa));
	TH_OK(rill_pair(&l, 0, &b, &pb));
	struct rill_copy_opts o = {.idle_timeout_ms = 200};
	struct copy_end ce = {0};
	uint64_t t0 = ms_now();
	TH_OK(rill_copy(a, b, &o, copy_cb, &ce, NULL));
	run_until(&l, &ce.calls, t0 + 5000);
	TH_EQ_INT(ce.calls, 1);
	TH_EQ_INT(ce.res.cut, RILL_CUT_IDLE);
	TH_EQ_ERR(ce.res.status, RILL_ETIMEDOUT);
	TH_CMP_INT(ms_now() - t0, >=, 190);
	/* Both flows were closed by the cut: their peers see EOF. */
	struct rill_buf *d = NULL;
	TH_OK(rill_read_all_sync(pb, 16, &d));
	TH_EQ_INT(d->len, 0);
	rill_buf_release(d);
	rill_close(pa);
	rill_close(pb);
	uv_run(&l, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&l));
}

/* dst's peer goes away while src is silent: without the flag the copy
 * waits for src's next read; with it, it is cut at once. */
TEST(copy_abort_on_error_does_not_wait_for_silent_src)
{
	for (int abort_flag = 0; abort_flag < 2; abort_flag++) {
		uv_loop_t l;
		uv_loop_init(&l);
		struct rill_flow *a, *pa, *b, *pb;
		TH_OK(rill_pair(&l, 0, &a, &pa));
		TH_OK(rill_pair(&l, 0, &b, &pb));
		struct rill_copy_opts o = {
		    .flags = abort_flag ? RILL_COPY_ABORT_ON_ERROR : 0};
		struct copy_end ce = {0};
		struct rill_copy *c = NULL;
		TH_OK(rill_copy(a, b, &o, copy_cb, &ce, &c));
		rill_close(pb);
		TH_OK(rill_write_copy(pa, "data", 4, NULL, NULL));
		run_until(&l, &ce.calls, ms_now() + 500);
		TH_EQ_INT(ce.calls, abort_flag);
		if (abort_flag) {
			TH_EQ_INT(ce.res.cut, RILL_CUT_ERROR);
			TH_EQ_ERR(ce.res.status, RILL_ECLOSED);
		} else {
			rill_copy_abort(c); /* what the old copy left to do */
		}
		rill_close(pa);
		uv_run(&l, UV_RUN_DEFAULT);
		TH_OK(uv_loop_close(&l));
	}
}

TEST(proxy_same_flow_is_refused)
{
	uv_loop_t l;
	uv_loop_init(&l);
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&l, 0, &a, &b));
	struct proxy_end pe = {0};
	TH_EQ_ERR(rill_proxy(a, a, NULL, proxy_cb, &pe, NULL), RILL_EINVAL);
	rill_close(a);
	rill_close(b);
	uv_run(&l, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&l));
}
