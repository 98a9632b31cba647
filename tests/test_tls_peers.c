/*
 * The TLS layer against real peers: `openssl s_server` and `openssl
 * s_client` (OpenSSL's own test tools) with rill in both roles, TLS 1.2
 * and 1.3, transfers checked by SHA-256, and the failures a real peer
 * causes (a killed server: truncation; a plain-text server).
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "harness.h"
#include "rill.h"
#include "tls_pki.h"

#define DATA_BYTES (4u << 20)

static void sha256(const void *p, size_t n, unsigned char out[32])
{
	unsigned int len = 32;
	TH_TRUE(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1);
}

/* Random data in <pki dir>/<name>; returns a malloc'd copy. */
static unsigned char *make_data(const char *name, size_t n, char *path,
                                size_t plen)
{
	unsigned char *d = malloc(n);
	TH_NOT_NULL(d);
	TH_TRUE(RAND_bytes(d, (int)n) == 1);
	snprintf(path, plen, "%s/%s-%d", tls_pki()->dir, name, (int)getpid());
	FILE *f = fopen(path, "wb");
	TH_NOT_NULL(f);
	TH_EQ_INT(fwrite(d, 1, n, f), n);
	fclose(f);
	return d;
}

static unsigned char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	TH_NOT_NULL(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *d = malloc((size_t)len + 1);
	TH_EQ_INT(fread(d, 1, (size_t)len, f), len);
	fclose(f);
	*n = (size_t)len;
	return d;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	TH_EQ_INT(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	TH_EQ_INT(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* Starts argv with stdin/stdout on the given fds (-1: /dev/null),
 * stderr to <pki dir>/<pid>.err. */
static pid_t spawn(char *const argv[], int in_fd, int out_fd)
{
	char err_path[400];
	snprintf(err_path, sizeof err_path, "%s/peer-%d.err", tls_pki()->dir,
	         (int)getpid());
	pid_t pid = fork();
	TH_TRUE(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(in_fd >= 0 ? in_fd : null, 0);
		dup2(out_fd >= 0 ? out_fd : null, 1);
		dup2(err >= 0 ? err : null, 2);
		if (chdir(tls_pki()->dir) != 0)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void show_peer_errors(void)
{
	char err_path[400];
	snprintf(err_path, sizeof err_path, "%s/peer-%d.err", tls_pki()->dir,
	         (int)getpid());
	FILE *f = fopen(err_path, "r");
	char line[512];
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		th_note("peer: %s", strtok(line, "\n"));
	if (f != NULL)
		fclose(f);
}

/* Waits for pid to exit (at most `secs`); returns its exit status. */
static int reap(pid_t pid, int secs)
{
	for (int i = 0; i < secs * 100; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	show_peer_errors();
	TH_FAIL("peer process did not exit");
}

static const char *version_flag(int v)
{
	return v == RILL_TLS_1_2 ? "-tls1_2" : "-tls1_3";
}

static const char *version_name(int v)
{
	return v == RILL_TLS_1_2 ? "TLSv1.2" : "TLSv1.3";
}

/* Connects to a local s_server (retrying while it starts). */
static struct rill_flow *connect_to(uv_loop_t *loop, int port,
                                    const char *extra)
{
	char uri[800];
	snprintf(uri, sizeof uri, "tls+tcp://127.0.0.1:%d?ca=%s%s", port,
	         tls_pki()->ca, extra);
	struct rill_connect_opts o = {.timeout_ms = 10000,
	                              .retry_until_ms = 8000};
	struct rill_flow *f = NULL;
	int err = rill_connect_sync(loop, uri, &o, &f);
	if (err != 0) {
		show_peer_errors();
		TH_FAIL("connect %s: %s", uri, rill_last_errmsg());
	}
	return f;
}

static size_t read_all(struct rill_flow *f, unsigned char *dst, size_t cap,
                       int *status)
{
	size_t got = 0;
	for (;;) {
		struct rill_buf *b = NULL;
		int err = rill_read_sync(f, &b);
		if (err != 0) {
			*status = err;
			return got;
		}
		TH_TRUE(got + b->len <= cap);
		memcpy(dst + got, b->data, b->len);
		got += b->len;
		rill_buf_release(b);
	}
}

static void close_loop(uv_loop_t *loop)
{
	uv_run(loop, UV_RUN_DEFAULT);
	TH_EQ_INT(uv_loop_close(loop), 0);
}

/* rill client uploads to s_server (-quiet: received bytes to stdout). */
static void client_upload(int version)
{
	const struct tls_pki *p = tls_pki();
	char data_path[400], out_path[400];
	unsigned char *data =
	    make_data("up", DATA_BYTES, data_path, sizeof data_path);
	snprintf(out_path, sizeof out_path, "%s/recv-%d", p->dir,
	         (int)getpid());
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int hold[2];
	TH_EQ_INT(pipe(hold), 0); /* s_server quits at stdin EOF */
	int port = free_port();
	char portarg[16];
	snprintf(portarg, sizeof portarg, "127.0.0.1:%d", port);
	char *argv[] = {"openssl",  "s_server",
	                "-accept",  portarg,
	                "-cert",    (char *)p->server,
	                "-key",     (char *)p->server_key,
	                "-naccept", "1",
	                "-quiet",   (char *)version_flag(version),
	                NULL};
	pid_t pid = spawn(argv, hold[0], out);
	close(hold[0]);
	close(out);

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *f = connect_to(&loop, port, "");
	TH_EQ_STR(rill_tls_version(f), version_name(version));
	for (size_t off = 0; off < DATA_BYTES; off += 100000) {
		size_t n =
		    DATA_BYTES - off < 100000 ? DATA_BYTES - off : 100000;
		TH_OK(rill_write_sync(f, data + off, n));
	}
	TH_OK(rill_shutdown_sync(f, RILL_SHUT_WR)); /* close_notify */
	unsigned char junk[64];
	int st = 0;
	TH_EQ_INT(read_all(f, junk, sizeof junk, &st), 0);
	/* s_server answers our close_notify with its own. */
	TH_EQ_ERR(st, RILL_EOF);
	rill_close(f);
	close_loop(&loop);
	close(hold[1]);
	TH_EQ_INT(reap(pid, 20), 0);

	size_t n;
	unsigned char *got = read_file(out_path, &n);
	TH_EQ_U64(n, DATA_BYTES);
	unsigned char h1[32], h2[32];
	sha256(data, DATA_BYTES, h1);
	sha256(got, n, h2);
	TH_EQ_MEM(h1, h2, 32);
	free(got);
	free(data);
}

TEST_TIMEOUT(s_server_upload_tls13, 60)
{
	client_upload(RILL_TLS_1_3);
}

TEST_TIMEOUT(s_server_upload_tls12, 60)
{
	client_upload(RILL_TLS_1_2);
}

/* rill client downloads a file from s_server -WWW. */
static void client_download(int version)
{
	const struct tls_pki *p = tls_pki();
	char data_path[400];
	unsigned char *data =
	    make_data("dl", DATA_BYTES, data_path, sizeof data_path);
	int port = free_port();
	char portarg[16];
	snprintf(portarg, sizeof portarg, "127.0.0.1:%d", port);
	int hold[2];
	TH_EQ_INT(pipe(hold), 0);
	char *argv[] = {"openssl",  "s_server",
	                "-accept",  portarg,
	                "-cert",    (char *)p->server,
	                "-key",     (char *)p->server_key,
	                "-naccept", "1",
	                "-WWW",     (char *)version_flag(version),
	                NULL};
	pid_t pid = spawn(argv, hold[0], -1);
	close(hold[0]);

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *f = connect_to(&loop, port, "&alpn=http/1.0");
	char req[200];
	const char *base = strrchr(data_path, '/') + 1;
	snprintf(req, sizeof req, "GET /%s HTTP/1.0\r\n\r\n", base);
	TH_OK(rill_write_sync(f, req, strlen(req)));
	size_t cap = DATA_BYTES + 4096;
	unsigned char *got = malloc(cap);
	int st = 0;
	size_t n = read_all(f, got, cap, &st);
	TH_EQ_ERR(st, RILL_EOF); /* s_server ends with close_notify */
	rill_close(f);
	close_loop(&loop);
	close(hold[1]);
	TH_EQ_INT(reap(pid, 20), 0);

	const char *hdr_end = "\r\n\r\n";
	unsigned char *body = NULL;
	for (size_t i = 0; i + 4 <= n && i < 4096; i++)
		if (memcmp(got + i, hdr_end, 4) == 0) {
			body = got + i + 4;
			break;
		}
	TH_NOT_NULL(body);
	TH_TRUE(memcmp(got, "HTTP/1.0 200", 12) == 0);
	TH_EQ_U64(n - (size_t)(body - got), DATA_BYTES);
	unsigned char h1[32], h2[32];
	sha256(data, DATA_BYTES, h1);
	sha256(body, DATA_BYTES, h2);
	TH_EQ_MEM(h1, h2, 32);
	free(got);
	free(data);
}

TEST_TIMEOUT(s_server_download_tls13, 60)
{
	client_download(RILL_TLS_1_3);
}

TEST_TIMEOUT(s_server_download_tls12, 60)
{
	client_download(RILL_TLS_1_2);
}

/* ---------------------------------------------------------------------- */
/* rill as the server, s_client as the client */

struct srv {
	struct rill_listener *l;
	struct rill_flow *f;
	int status;
	char msg[512];
	bool done;
};

static void srv_accept(struct rill_listener *l, struct rill_flow *f, int status,
                       const char *errmsg, void *ud)
{
	(void)l;
	struct srv *s = ud;
	if (s->done) {
		rill_close(f);
		return;
	}
	s->f = f;
	s->status = status;
	snprintf(s->msg, sizeof s->msg, "%s", errmsg ? errmsg : "");
	s->done = true;
}

static int srv_listen(uv_loop_t *loop, struct srv *s, const char *extra)
{
	const struct tls_pki *p = tls_pki();
	char uri[800];
	snprintf(uri, sizeof uri, "tls+tcp://127.0.0.1:0?cert=%s&key=%s%s",
	         p->server, p->server_key, extra);
	memset(s, 0, sizeof *s);
	if (rill_listen(loop, uri, NULL, srv_accept, s, &s->l) != 0)
		TH_FAIL("listen %s: %s", uri, rill_last_errmsg());
	TH_OK(rill_listener_uri(s->l, uri, sizeof uri));
	const char *colon = strrchr(uri, ':');
	return atoi(colon + 1);
}

static void srv_wait(uv_loop_t *loop, struct srv *s)
{
	time_t end = time(NULL) + 20;
	while (!s->done && time(NULL) < end)
		uv_run(loop, UV_RUN_ONCE);
	TH_TRUE(s->done);
}

/* s_client uploads its stdin (a file); rill reads and checks. */
static void server_upload(int version)
{
	const struct tls_pki *p = tls_pki();
	char data_path[400];
	unsigned char *data =
	    make_data("sup", DATA_BYTES, data_path, sizeof data_path);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct srv s;
	int port = srv_listen(&loop, &s, "");
	char target[32];
	snprintf(target, sizeof target, "127.0.0.1:%d", port);
	int in = open(data_path, O_RDONLY);
	char *argv[] = {
	    "openssl",     "s_client",    "-connect",
	    target,        "-CAfile",     (char *)p->ca,
	    "-servername", "localhost",   "-verify_return_error",
	    "-no_ign_eof", "-nocommands", (char *)version_flag(version),
	    NULL};
	pid_t pid = spawn(argv, in, -1);
	close(in);
	srv_wait(&loop, &s);
	TH_OK(s.status);
	TH_EQ_STR(rill_tls_version(s.f), version_name(version));
	unsigned char *got = malloc(DATA_BYTES + 1);
	int st = 0;
	size_t n = read_all(s.f, got, DATA_BYTES + 1, &st);
	th_note("upload ended with %s", rill_err_name(st));
	/* s_client sends close_notify at its stdin EOF. */
	TH_EQ_ERR(st, RILL_EOF);
	TH_EQ_U64(n, DATA_BYTES);
	unsigned char h1[32], h2[32];
	sha256(data, DATA_BYTES, h1);
	sha256(got, n, h2);
	TH_EQ_MEM(h1, h2, 32);
	rill_close(s.f);
	rill_listener_close(s.l);
	close_loop(&loop);
	TH_EQ_INT(reap(pid, 20), 0);
	free(got);
	free(data);
}

TEST_TIMEOUT(s_client_upload_tls13, 60)
{
	server_upload(RILL_TLS_1_3);
}

TEST_TIMEOUT(s_client_upload_tls12, 60)
{
	server_upload(RILL_TLS_1_2);
}

/* rill sends a file and close_notify; s_client (-quiet) writes it out. */
static void server_download(int version)
{
	const struct tls_pki *p = tls_pki();
	char data_path[400], out_path[400];
	unsigned char *data =
	    make_data("sdl", DATA_BYTES, data_path, sizeof data_path);
	snprintf(out_path, sizeof out_path, "%s/srecv-%d", p->dir,
	         (int)getpid());
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct srv s;
	int port = srv_listen(&loop, &s, "");
	char target[32];
	snprintf(target, sizeof target, "127.0.0.1:%d", port);
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int hold[2];
	TH_EQ_INT(pipe(hold), 0); /* keeps s_client's stdin open */
	char *argv[] = {"openssl",
	                "s_client",
	                "-connect",
	                target,
	                "-CAfile",
	                (char *)p->ca,
	                "-servername",
	                "localhost",
	                "-verify_return_error",
	                "-quiet",
	                (char *)version_flag(version),
	                NULL};
	pid_t pid = spawn(argv, hold[0], out);
	close(hold[0]);
	close(out);
	srv_wait(&loop, &s);
	TH_OK(s.status);
	for (size_t off = 0; off < DATA_BYTES; off += 65536)
		TH_OK(rill_write_sync(s.f, data + off, 65536));
	TH_OK(rill_shutdown_sync(s.f, RILL_SHUT_WR));
	/* s_client exits at our close_notify. */
	TH_EQ_INT(reap(pid, 20), 0);
	close(hold[1]);
	rill_close(s.f);
	rill_listener_close(s.l);
	close_loop(&loop);
	size_t n;
	unsigned char *got = read_file(out_path, &n);
	TH_EQ_U64(n, DATA_BYTES);
	unsigned char h1[32], h2[32];
	sha256(data, DATA_BYTES, h1);
	sha256(got, n, h2);
	TH_EQ_MEM(h1, h2, 32);
	free(got);
	free(data);
}

TEST_TIMEOUT(s_client_download_tls13, 60)
{
	server_download(RILL_TLS_1_3);
}

TEST_TIMEOUT(s_client_download_tls12, 60)
{
	server_download(RILL_TLS_1_2);
}

TEST_TIMEOUT(s_client_without_required_cert_refused, 60)
{
	const struct tls_pki *p = tls_pki();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct srv s;
	char extra[400];
	snprintf(extra, sizeof extra, "&ca=%s&verify-client=require", p->ca);
	int port = srv_listen(&loop, &s, extra);
	char target[32];
	snprintf(target, sizeof target, "127.0.0.1:%d", port);
	int hold[2];
	TH_EQ_INT(pipe(hold), 0);
	char *argv[] = {"openssl", "s_client",    "-connect", target,
	                "-CAfile", (char *)p->ca, "-quiet",   NULL};
	pid_t pid = spawn(argv, hold[0], -1);
	close(hold[0]);
	srv_wait(&loop, &s);
	th_note("%s", s.msg);
	TH_EQ_ERR(s.status, RILL_ETLS_NO_CERT);
	TH_CONTAINS(s.msg, "client certificate");
	rill_listener_close(s.l);
	close_loop(&loop);
	close(hold[1]);
	reap(pid, 20);
}

TEST_TIMEOUT(s_client_with_cert_accepted, 60)
{
	const struct tls_pki *p = tls_pki();
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct srv s;
	char extra[400];
	snprintf(extra, sizeof extra, "&ca=%s&verify-client=require", p->ca);
	int port = srv_listen(&loop, &s, extra);
	char target[32];
	snprintf(target, sizeof target, "127.0.0.1:%d", port);
	int hold[2];
	TH_EQ_INT(pipe(hold), 0);
	char *argv[] = {"openssl",  "s_client",
	                "-connect", target,
	                "-CAfile",  (char *)p->ca,
	                "-cert",    (char *)p->client,
	                "-key",     (char *)p->client_key,
	                "-quiet",   NULL};
	pid_t pid = spawn(argv, hold[0], -1);
	close(hold[0]);
	srv_wait(&loop, &s);
	TH_OK(s.status);
	TH_EQ_STR(rill_tls_peer_subject(s.f), "CN=rill-client");
	rill_close(s.f);
	rill_listener_close(s.l);
	close_loop(&loop);
	close(hold[1]);
	reap(pid, 20);
}

/* ---------------------------------------------------------------------- */
/* Failures caused by real peers */

TEST_TIMEOUT(killed_s_server_is_truncation, 60)
{
	const struct tls_pki *p = tls_pki();
	int port = free_port();
	char portarg[16];
	snprintf(portarg, sizeof portarg, "127.0.0.1:%d", port);
	int hold[2];
	TH_EQ_INT(pipe(hold), 0);
	char *argv[] = {"openssl",  "s_server",
	                "-accept",  portarg,
	                "-cert",    (char *)p->server,
	                "-key",     (char *)p->server_key,
	                "-naccept", "1",
	                "-quiet",   NULL};
	pid_t pid = spawn(argv, hold[0], -1);
	close(hold[0]);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *f = connect_to(&loop, port, "");
	/* s_server sends what arrives on its stdin, then dies: the
	 * kernel closes the TCP connection, no close_notify. */
	TH_EQ_INT(write(hold[1], "some data\n", 10), 10);
	unsigned char buf[64];
	int st = 0;
	size_t n = 0;
	while (n < 10) {
		struct rill_buf *b = NULL;
		TH_OK(rill_read_sync(f, &b));
		memcpy(buf + n, b->data, b->len);
		n += b->len;
		rill_buf_release(b);
	}
	TH_EQ_MEM(buf, "some data\n", 10);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	n = read_all(f, buf, sizeof buf, &st);
	TH_EQ_INT(n, 0);
	TH_EQ_ERR(st, RILL_ETLS_TRUNCATED);
	TH_CONTAINS(rill_flow_errmsg(f), "without close_notify");
	rill_close(f);
	close(hold[1]);
	close_loop(&loop);
}

static void plain_accept(struct rill_listener *l, struct rill_flow *f,
                         int status, const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	if (status == 0) {
		rill_write_copy(f, "220 mail.example ESMTP ready\r\n", 30, NULL,
		                NULL);
		*(struct rill_flow **)ud = f;
	}
}

TEST_TIMEOUT(plain_tcp_server_is_not_tls, 60)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_listener *l;
	struct rill_flow *plain = NULL;
	TH_OK(rill_listen(&loop, "tcp://127.0.0.1:0", NULL, plain_accept,
	                  &plain, &l));
	char uri[600];
	TH_OK(rill_listener_uri(l, uri, sizeof uri));
	char full[1200];
	snprintf(full, sizeof full, "tls+%s?ca=%s", uri, tls_pki()->ca);
	struct rill_flow *f = NULL;
	int err = rill_connect_sync(&loop, full, NULL, &f);
	th_note("%s", rill_last_errmsg());
	TH_EQ_ERR(err, RILL_ETLS_NOT_TLS);
	TH_CONTAINS(rill_last_errmsg(), "220 mail.example");
	rill_close(plain);
	rill_listener_close(l);
	close_loop(&loop);
}
