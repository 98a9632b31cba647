/*
 * rill bench: TLS over TCP beside socat (bench/bench_tls.h).
 *
 * Both sides use TLS 1.3 with TLS_AES_128_GCM_SHA256 and the same P-256
 * certificate (made with `openssl req` at run time): rill through the URI
 * parameters, socat through an OPENSSL_CONF file (socat 1.7 has no option
 * for TLS 1.3 suites). rill runs sender and receiver on two threads, one
 * loop each; socat runs two processes: both use two cores. socat gets
 * -b 131072 (its default 8 KiB buffer would make it look worse than it
 * is); rill writes 256 KiB buffers.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_tls.h"

#define BT_CIPHER "TLS_AES_128_GCM_SHA256"
#define BT_CHUNK  (256u * 1024u)

static double bench_tls_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct bench_tls_files {
	char dir[64];
	char cert[128], key[128], conf[128];
};

static int bench_tls_files_make(struct bench_tls_files *f)
{
	snprintf(f->dir, sizeof f->dir, "/tmp/rill-bench-tls-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -errno;
	snprintf(f->cert, sizeof f->cert, "%s/cert.pem", f->dir);
	snprintf(f->key, sizeof f->key, "%s/key.pem", f->dir);
	snprintf(f->conf, sizeof f->conf, "%s/openssl.cnf", f->dir);
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
	         "openssl req -x509 -newkey ec -pkeyopt "
	         "ec_paramgen_curve:P-256 -nodes -keyout %s -out %s -subj "
	         "/CN=localhost -addext "
	         "subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 "
	         ">/dev/null 2>&1",
	         f->key, f->cert);
	if (system(cmd) != 0) {
		bench_error("bench tls: `openssl req` failed");
		return -EIO;
	}
	FILE *c = fopen(f->conf, "w");
	if (c == NULL)
		return -EIO;
	fprintf(c, "openssl_conf = default_conf\n"
	           "[default_conf]\nssl_conf = ssl_sect\n"
	           "[ssl_sect]\nsystem_default = tls_sect\n"
	           "[tls_sect]\nMinProtocol = TLSv1.3\n"
	           "Ciphersuites = " BT_CIPHER "\n");
	fclose(c);
	return 0;
}

static void bench_tls_files_remove(struct bench_tls_files *f)
{
	unlink(f->cert);
	unlink(f->key);
	unlink(f->conf);
	rmdir(f->dir);
}

/* ---------------------------------------------------------------------- */
/* rill: a receiver thread and a sender thread */

struct bench_tls_run {
	const struct bench_tls_files *files;
	uint64_t bytes;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char uri[512]; /* the listener's, once ready */
	bool ready;
	int err;
	/* receiver */
	struct rill_listener *l;
	uint64_t received;
	double t_end;
	/* sender */
	double t_start;
	/* handshakes */
	bool hs_mode;
	uv_async_t stop; /* from another thread: close the listener */
	uint64_t handshakes;
};

static void bench_tls_fail(struct bench_tls_run *r, int err, const char *what,
                           const char *msg)
{
	pthread_mutex_lock(&r->mu);
	if (r->err == 0) {
		r->err = err;
		bench_error("bench tls: %s: %s", what,
		            msg != NULL ? msg : rill_strerror(err));
	}
	r->ready = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

struct bench_tls_conn {
	struct bench_tls_run *r;
	struct rill_flow *f;
};

static void bench_tls_recv_cb(struct rill_flow *f, int status,
                              struct rill_buf *b, void *ud)
{
	struct bench_tls_conn *c = ud;
	struct bench_tls_run *r = c->r;
	if (status == 0) {
		r->received += b->len;
		rill_buf_release(b);
		if (rill_read(f, bench_tls_recv_cb, c) == 0)
			return;
		status = -EIO;
	}
	if (!r->hs_mode) {
		r->t_end = bench_tls_now();
		if (status != RILL_EOF)
			bench_tls_fail(r, status, "receiver",
			               rill_flow_errmsg(f));
		rill_listener_close(r->l);
		r->l = NULL;
	}
	rill_close(f);
	free(c);
}

static void bench_tls_accept_cb(struct rill_listener *l, struct rill_flow *f,
                                int status, const char *errmsg, void *ud)
{
	(void)l;
	struct bench_tls_run *r = ud;
	if (status != 0) {
		if (!r->hs_mode)
			bench_tls_fail(r, status, "accept", errmsg);
		return;
	}
	struct bench_tls_conn *c = calloc(1, sizeof *c);
	c->r = r;
	c->f = f;
	if (r->hs_mode) {
		/* The handshake is the work measured. */
		rill_close(f);
		free(c);
		return;
	}
	rill_read(f, bench_tls_recv_cb, c);
}

static void bench_tls_stop_cb(uv_async_t *h)
{
	struct bench_tls_run *r = h->data;
	rill_listener_close(r->l);
	r->l = NULL;
	uv_close((uv_handle_t *)h, NULL);
}

static void *bench_tls_receiver(void *arg)
{
	struct bench_tls_run *r = arg;
	uv_loop_t loop;
	uv_loop_init(&loop);
	char uri[512];
	snprintf(
	    uri, sizeof uri,
	    "tls+tcp://127.0.0.1:0?cert=%s&key=%s&min=1.3&ciphers=" BT_CIPHER,
	    r->files->cert, r->files->key);
	struct rill_listen_opts lo = {.backlog = 1024};
	int err = rill_listen(&loop, uri, &lo, bench_tls_accept_cb, r, &r->l);
	if (err != 0) {
		bench_tls_fail(r, err, "listen", rill_last_errmsg());
		uv_loop_close(&loop);
		return NULL;
	}
	uv_async_init(&loop, &r->stop, bench_tls_stop_cb);
	r->stop.data = r;
	if (!r->hs_mode)
		uv_unref((uv_handle_t *)&r->stop);
	pthread_mutex_lock(&r->mu);
	rill_listener_uri(r->l, r->uri, sizeof r->uri);
	r->ready = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (!uv_is_closing((uv_handle_t *)&r->stop)) {
		uv_close((uv_handle_t *)&r->stop, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	uv_loop_close(&loop);
	return NULL;
}

/* The sender: a window of writes of one shared 256 KiB buffer. */
struct bench_tls_send {
	struct bench_tls_run *r;
	struct rill_flow *f;
	struct rill_buf *chunk;
	uint64_t sent;
	int inflight;
	bool shut;
	bool shut_done; /* the write shutdown completed (or failed) */
};

static void bench_tls_send_more(struct bench_tls_send *s);

/* A TLS write completes once its bytes are encrypted, not sent: only the
 * write shutdown's completion says everything reached the socket. */
static void bench_tls_shut_cb(struct rill_flow *f, int status, void *ud)
{
	struct bench_tls_send *s = ud;
	s->shut_done = true;
	if (status != 0)
		bench_tls_fail(s->r, status, "sender shutdown",
		               rill_flow_errmsg(f));
}

static void bench_tls_sent_cb(struct rill_flow *f, int status, void *ud)
{
	struct bench_tls_send *s = ud;
	s->inflight--;
	if (status != 0) {
		bench_tls_fail(s->r, status, "sender", rill_flow_errmsg(f));
		return;
	}
	bench_tls_send_more(s);
}

static void bench_tls_send_more(struct bench_tls_send *s)
{
	while (s->inflight < 4 && s->sent < s->r->bytes) {
		uint64_t left = s->r->bytes - s->sent;
		struct rill_buf *b =
		    left < s->chunk->len
		        ? rill_buf_slice(s->chunk, 0, (size_t)left)
		        : rill_buf_ref(s->chunk);
		s->sent += b->len;
		int err = rill_write(s->f, b, bench_tls_sent_cb, s);
		rill_buf_release(b);
		if (err != 0) {
			bench_tls_fail(s->r, err, "sender", NULL);
			return;
		}
		s->inflight++;
	}
	if (s->sent == s->r->bytes && s->inflight == 0 && !s->shut) {
		s->shut = true;
		int err =
		    rill_shutdown(s->f, RILL_SHUT_WR, bench_tls_shut_cb, s);
		if (err != 0) {
			s->shut_done = true;
			bench_tls_fail(s->r, err, "sender shutdown", NULL);
		}
	}
}

static int bench_tls_wait_ready(struct bench_tls_run *r)
{
	pthread_mutex_lock(&r->mu);
	while (!r->ready)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	return r->err;
}

static int bench_tls_rill_throughput(const struct bench_tls_files *files,
                                     uint64_t bytes, double *mbs)
{
	struct bench_tls_run r = {.files = files, .bytes = bytes};
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	pthread_t th;
	pthread_create(&th, NULL, bench_tls_receiver, &r);
	int err = bench_tls_wait_ready(&r);
	if (err == 0) {
		uv_loop_t loop;
		uv_loop_init(&loop);
		char uri[1024];
		snprintf(uri, sizeof uri, "%s?ca=%s&ciphers=" BT_CIPHER, r.uri,
		         files->cert);
		struct bench_tls_send s = {.r = &r};
		err = rill_connect_sync(&loop, uri, NULL, &s.f);
		if (err != 0) {
			bench_tls_fail(&r, err, "connect", rill_last_errmsg());
			/* Nothing will arrive: stop the receiver. */
			uv_async_send(&r.stop);
		} else {
			s.chunk = rill_buf_new(BT_CHUNK);
			memset(s.chunk->data, 0x5a, BT_CHUNK);
			r.t_start = bench_tls_now();
			bench_tls_send_more(&s);
			/* Until the shutdown completed: the receiver
			 * waits for its close_notify, and the last
			 * ciphertext may still be queued before it. */
			while (r.err == 0 && !s.shut_done &&
			       uv_run(&loop, UV_RUN_ONCE) != 0)
				;
			rill_buf_release(s.chunk);
		}
		pthread_join(th, NULL);
		rill_close(s.f);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		err = r.err;
	} else {
		pthread_join(th, NULL);
	}
	if (err == 0 && r.received != bytes) {
		bench_error("bench tls: received %llu of %llu bytes",
		            (unsigned long long)r.received,
		            (unsigned long long)bytes);
		err = -EIO;
	}
	if (err == 0)
		*mbs = (double)bytes / (r.t_end - r.t_start) / 1e6;
	pthread_mutex_destroy(&r.mu);
	pthread_cond_destroy(&r.cv);
	return err;
}

/* ---------------------------------------------------------------------- */
/* socat */

static pid_t bench_tls_spawn(const struct bench_tls_files *files,
                             char *const argv[])
{
	pid_t pid = fork();
	if (pid == 0) {
		setenv("OPENSSL_CONF", files->conf, 1);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		if (getenv("RILL_BENCH_DEBUG") == NULL)
			dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int bench_tls_free_port(void)
{
	/* A port below the ephemeral range (32768+), so busy loopback
	 * traffic elsewhere does not take it. */
	return 20000 +
	       (int)(((unsigned)getpid() * 7919u + (unsigned)time(NULL)) %
	             10000u);
}

static int bench_tls_reap(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -ECHILD;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static int bench_tls_socat_throughput(const struct bench_tls_files *files,
                                      uint64_t bytes, double *mbs)
{
	int port = bench_tls_free_port();
	char listen[512], connect[256], zero[64];
	snprintf(listen, sizeof listen,
	         "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,cert=%s,key=%s,"
	         "verify=0",
	         port, files->cert, files->key);
	snprintf(connect, sizeof connect, "OPENSSL:127.0.0.1:%d,verify=0",
	         port);
	snprintf(zero, sizeof zero, "OPEN:/dev/zero,readbytes=%llu",
	         (unsigned long long)bytes);
	char *rargv[] = {"socat",  "-u",   "-b",
	                 "131072", listen, "OPEN:/dev/null,wronly",
	                 NULL};
	char *sargv[] = {"socat", "-u", "-b", "131072", zero, connect, NULL};
	pid_t rp = bench_tls_spawn(files, rargv);
	if (!bench_wait_listen(port, 0)) {
		kill(rp, SIGKILL);
		waitpid(rp, NULL, 0);
		bench_error("bench tls: socat did not listen on port %d", port);
		return -EIO;
	}
	double t0 = bench_tls_now();
	pid_t sp = bench_tls_spawn(files, sargv);
	int e1 = bench_tls_reap(sp);
	int e2 = bench_tls_reap(rp);
	double t1 = bench_tls_now();
	if (e1 != 0 || e2 != 0) {
		bench_error(
		    "bench tls: socat failed (set RILL_BENCH_DEBUG=1 to "
		    "see why)");
		return -EIO;
	}
	*mbs = (double)bytes / (t1 - t0) / 1e6;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Handshakes per second: one rill client, sequential connections */

static int bench_tls_client_handshakes(const char *uri, double secs,
                                       double *rate)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	uint64_t n = 0;
	int err = 0;
	double t0 = bench_tls_now(), t1 = t0;
	struct rill_connect_opts co = {.timeout_ms = 5000};
	while (t1 - t0 < secs) {
		struct rill_flow *f = NULL;
		err = rill_connect_sync(&loop, uri, &co, &f);
		if (err != 0) {
			bench_error("bench tls: connect: %s",
			            rill_last_errmsg());
			break;
		}
		err = 0;
		rill_close(f);
		n++;
		t1 = bench_tls_now();
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	*rate = (double)n / (t1 - t0);
	return err;
}

int bench_tls_handshakes(int peer, double *rill_hs, double *base_hs)
{
	struct bench_tls_files files = {0};
	int err = bench_tls_files_make(&files);
	if (err != 0)
		return err;
	char uri[1024];
	/* rill server thread */
	struct bench_tls_run r = {.files = &files, .hs_mode = true};
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	pthread_t th;
	pthread_create(&th, NULL, bench_tls_receiver, &r);
	err = bench_tls_wait_ready(&r);
	if (err == 0) {
		snprintf(uri, sizeof uri, "%s?ca=%s&ciphers=" BT_CIPHER, r.uri,
		         files.cert);
		err = bench_tls_client_handshakes(uri, 2.0, rill_hs);
	}
	if (r.err == 0)
		uv_async_send(&r.stop);
	pthread_join(th, NULL);
	pthread_mutex_destroy(&r.mu);
	pthread_cond_destroy(&r.cv);
	/* The baseline server, with the same client. */
	if (err == 0) {
		int port = bench_tls_free_port() + 1;
		char listen[512], portarg[32];
		snprintf(listen, sizeof listen,
		         "OPENSSL-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,"
		         "backlog=1024,cert=%s,key=%s,verify=0",
		         port, files.cert, files.key);
		snprintf(portarg, sizeof portarg, "127.0.0.1:%d", port);
		char *socat_argv[] = {"socat", listen, "OPEN:/dev/null", NULL};
		char *s_server_argv[] = {
		    "openssl",  "s_server", "-accept", portarg,  "-cert",
		    files.cert, "-key",     files.key, "-quiet", NULL};
		pid_t pid = bench_tls_spawn(&files, peer == BENCH_TLS_PEER_SOCAT
		                                        ? socat_argv
		                                        : s_server_argv);
		if (!bench_wait_listen(port, 0)) {
			bench_error("bench tls: %s did not listen",
			            peer == BENCH_TLS_PEER_SOCAT ? "socat"
			                                         : "s_server");
			err = -EIO;
		} else {
			snprintf(
			    uri, sizeof uri,
			    "tls+tcp://127.0.0.1:%d?ca=%s&ciphers=" BT_CIPHER,
			    port, files.cert);
			err = bench_tls_client_handshakes(uri, 2.0, base_hs);
		}
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	bench_tls_files_remove(&files);
	return err;
}

int bench_tls_throughput(uint64_t bytes, double *rill_mbs, double *socat_mbs)
{
	struct bench_tls_files files = {0};
	int err = bench_tls_files_make(&files);
	if (err != 0)
		return err;
	/* Interleaved, best of two each: the machine may be busy with
	 * other work, and a burst of it should not decide the ratio. */
	*rill_mbs = *socat_mbs = 0;
	for (int i = 0; i < 2 && err == 0; i++) {
		double v = 0;
		err = bench_tls_rill_throughput(&files, bytes, &v);
		if (v > *rill_mbs)
			*rill_mbs = v;
		v = 0;
		if (err == 0)
			err = bench_tls_socat_throughput(&files, bytes, &v);
		if (v > *socat_mbs)
			*socat_mbs = v;
	}
	bench_tls_files_remove(&files);
	return err;
}
