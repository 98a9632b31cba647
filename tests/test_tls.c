/* Unit tests of the TLS layer over in-memory pairs (src/layer/tls/). */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "rill.h"
#include "rill/impl.h"
#include "tls_pki.h"

struct hs {
	struct rill_flow *f;
	int status;
	char msg[512];
	bool done;
};

static void on_attach(struct rill_flow *f, int status, const char *errmsg,
                      void *ud)
{
	struct hs *h = ud;
	h->f = f;
	h->status = status;
	snprintf(h->msg, sizeof h->msg, "%s", errmsg ? errmsg : "");
	h->done = true;
}

static struct rill_tls_config *server_cfg(const char *cert, const char *key)
{
	struct rill_tls_config *c = rill_tls_config_new(RILL_TLS_SERVER);
	TH_NOT_NULL(c);
	TH_OK(rill_tls_config_set_cert(c, cert, key));
	TH_OK(rill_tls_config_set_handshake_timeout(c, 5000));
	return c;
}

static struct rill_tls_config *client_cfg(const char *host)
{
	struct rill_tls_config *c = rill_tls_config_new(RILL_TLS_CLIENT);
	TH_NOT_NULL(c);
	TH_OK(rill_tls_config_set_ca(c, tls_pki()->ca, NULL));
	if (host != NULL)
		TH_OK(rill_tls_config_set_hostname(c, host));
	TH_OK(rill_tls_config_set_handshake_timeout(c, 5000));
	return c;
}

/* Attaches client and server over a pair and runs both handshakes. The
 * configurations are freed. */
static void handshake(uv_loop_t *loop, struct rill_tls_config *cc,
                      struct rill_tls_config *sc, struct hs *c, struct hs *s)
{
	struct rill_flow *a, *b;
	TH_OK(rill_pair(loop, 0, &a, &b));
	memset(c, 0, sizeof *c);
	memset(s, 0, sizeof *s);
	TH_OK(rill_tls_attach(a, cc, on_attach, c));
	TH_OK(rill_tls_attach(b, sc, on_attach, s));
	rill_tls_config_free(cc);
	rill_tls_config_free(sc);
	while (!c->done || !s->done)
		uv_run(loop, UV_RUN_ONCE);
}

static void finish(uv_loop_t *loop, struct hs *c, struct hs *s)
{
	rill_close(c->f);
	rill_close(s->f);
	uv_run(loop, UV_RUN_DEFAULT);
	TH_EQ_INT(uv_loop_close(loop), 0);
}

static void expect_text(struct rill_flow *f, const char *text)
{
	struct rill_buf *b = NULL;
	size_t n = strlen(text), got = 0;
	char acc[256];
	while (got < n) {
		TH_OK(rill_read_sync(f, &b));
		TH_TRUE(got + b->len <= n);
		memcpy(acc + got, b->data, b->len);
		got += b->len;
		rill_buf_release(b);
	}
	TH_EQ_MEM(acc, text, n);
}

static void exchange(struct hs *c, struct hs *s)
{
	TH_OK(rill_write_sync(c->f, "hello server", 12));
	expect_text(s->f, "hello server");
	TH_OK(rill_write_sync(s->f, "hello client", 12));
	expect_text(c->f, "hello client");
}

static void wrote_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	*(int *)ud = status == 0 ? 1 : status;
}

/* Small buffers of one writev (an HTTP head and a small body) are
 * encrypted as one record: the ciphertext below is the plaintext plus
 * one TLS 1.3 record's 22 bytes (5 of header, the inner content type,
 * a 16-byte tag), not 22 per buffer. */
TEST(small_writev_buffers_share_one_record)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct rill_tls_config *cc = client_cfg("localhost");
	struct rill_tls_config *sc = server_cfg(p->server, p->server_key);
	struct rill_flow *a, *b;
	struct hs c = {0}, s = {0};
	TH_OK(rill_pair(&loop, 0, &a, &b));
	TH_OK(rill_tls_attach(a, cc, on_attach, &c));
	TH_OK(rill_tls_attach(b, sc, on_attach, &s));
	rill_tls_config_free(cc);
	rill_tls_config_free(sc);
	while (!c.done || !s.done)
		uv_run(&loop, UV_RUN_ONCE);
	TH_OK(c.status);
	TH_OK(s.status);
	uint64_t w0 = 0, w1 = 0;
	rill_flow_counters(a, NULL, &w0, NULL, NULL);
	struct rill_buf *v[3] = {rill_buf_copy("HTTP/1.1 200 OK\r\n", 17),
	                         rill_buf_copy("Content-Length: 5\r\n\r\n", 21),
	                         rill_buf_copy("hello", 5)};
	int done = 0;
	TH_OK(rill_writev(c.f, v, 3, wrote_cb, &done));
	for (int i = 0; i < 3; i++)
		rill_buf_release(v[i]);
	expect_text(s.f, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
	while (done == 0)
		uv_run(&loop, UV_RUN_ONCE);
	TH_EQ_INT(done, 1);
	rill_flow_counters(a, NULL, &w1, NULL, NULL);
	TH_EQ_INT((long long)(w1 - w0), 43 + 22);
	finish(&loop, &c, &s);
}

TEST(handshake_tls13_alpn_and_facts)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct rill_tls_config *cc = client_cfg("localhost");
	struct rill_tls_config *sc = server_cfg(p->server, p->server_key);
	TH_OK(rill_tls_config_set_alpn(cc, "h2,http/1.1"));
	TH_OK(rill_tls_config_set_alpn(sc, "http/1.1,spdy"));
	struct hs c, s;
	handshake(&loop, cc, sc, &c, &s);
	TH_OK(c.status);
	TH_OK(s.status);
	TH_TRUE(rill_flow_is_tls(c.f));
	TH_EQ_STR(rill_flow_kind(c.f), "tls");
	TH_EQ_STR(rill_tls_version(c.f), "TLSv1.3");
	TH_EQ_STR(rill_tls_alpn(c.f), "http/1.1");
	TH_EQ_STR(rill_tls_alpn(s.f), "http/1.1");
	TH_EQ_STR(rill_tls_peer_subject(c.f), "CN=localhost");
	TH_TRUE(rill_tls_peer_subject(s.f) == NULL);
	TH_NOT_NULL(rill_tls_cipher(c.f));
	exchange(&c, &s);
	finish(&loop, &c, &s);
}

TEST(handshake_tls12)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct rill_tls_config *cc = client_cfg("localhost");
	TH_OK(rill_tls_config_set_versions(cc, 0, RILL_TLS_1_2));
	struct hs c, s;
	handshake(&loop, cc, server_cfg(p->server, p->server_key), &c, &s);
	TH_OK(c.status);
	TH_OK(s.status);
	TH_EQ_STR(rill_tls_version(c.f), "TLSv1.2");
	TH_EQ_STR(rill_tls_version(s.f), "TLSv1.2");
	exchange(&c, &s);
	finish(&loop, &c, &s);
}

TEST(ip_address_verified)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct hs c, s;
	handshake(&loop, client_cfg("127.0.0.1"),
	          server_cfg(p->server, p->server_key), &c, &s);
	TH_OK(c.status);
	TH_OK(s.status);
	finish(&loop, &c, &s);
}

static void half_close(int max_version)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct rill_tls_config *cc = client_cfg("localhost");
	TH_OK(rill_tls_config_set_versions(cc, 0, max_version));
	struct hs c, s;
	handshake(&loop, cc, server_cfg(p->server, p->server_key), &c, &s);
	TH_OK(c.status);
	TH_OK(s.status);
	TH_OK(rill_write_sync(c.f, "last words", 10));
	TH_OK(rill_shutdown_sync(c.f, RILL_SHUT_WR));
	TH_EQ_ERR(rill_write_copy(c.f, "x", 1, NULL, NULL), RILL_ECLOSED);
	expect_text(s.f, "last words");
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(s.f, &b), RILL_EOF);
	TH_EQ_ERR(rill_read_sync(s.f, &b), RILL_EOF);
	/* The other direction still works after the close_notify. */
	TH_OK(rill_write_sync(s.f, "reply after close_notify", 24));
	TH_OK(rill_shutdown_sync(s.f, RILL_SHUT_WR));
	expect_text(c.f, "reply after close_notify");
	TH_EQ_ERR(rill_read_sync(c.f, &b), RILL_EOF);
	finish(&loop, &c, &s);
}

TEST(close_notify_is_eof_half_close_tls13)
{
	half_close(RILL_TLS_1_3);
}

TEST(truncation_is_an_error_not_eof)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct hs c, s;
	handshake(&loop, client_cfg("localhost"),
	          server_cfg(p->server, p->server_key), &c, &s);
	TH_OK(c.status);
	TH_OK(rill_write_sync(s.f, "partial", 7));
	/* EOF below the server's TLS, without close_notify. */
	TH_OK(rill_shutdown_sync(rill_layer_inner(s.f), RILL_SHUT_WR));
	expect_text(c.f, "partial");
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(c.f, &b), RILL_ETLS_TRUNCATED);
	TH_CONTAINS(rill_flow_errmsg(c.f), "close_notify");
	TH_EQ_ERR(rill_read_sync(c.f, &b), RILL_ETLS_TRUNCATED);
	finish(&loop, &c, &s);
}

static void expect_client_failure(const char *cert, const char *key,
                                  const char *host, int code, const char *text)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct hs c, s;
	handshake(&loop, client_cfg(host), server_cfg(cert, key), &c, &s);
	th_note("client: %s", c.msg);
	th_note("server: %s (%s)", s.msg, th_errname(s.status));
	TH_EQ_ERR(c.status, code);
	TH_TRUE(c.f == NULL);
	TH_CONTAINS(c.msg, text);
	TH_TRUE(s.status < 0); /* the server learns it too (an alert) */
	TH_TRUE(s.f == NULL);
	finish(&loop, &c, &s);
}

TEST(fail_self_signed)
{
	const struct tls_pki *p = tls_pki();
	expect_client_failure(p->selfsigned, p->selfsigned_key, "localhost",
	                      RILL_ETLS_SELF_SIGNED, "self-signed");
}

TEST(fail_expired)
{
	const struct tls_pki *p = tls_pki();
	expect_client_failure(p->expired, p->expired_key, "localhost",
	                      RILL_ETLS_CERT_EXPIRED, "expired");
}

TEST(fail_wrong_host_name)
{
	const struct tls_pki *p = tls_pki();
	expect_client_failure(p->server, p->server_key, "wrong.example",
	                      RILL_ETLS_HOSTNAME, "wrong.example");
}

TEST(fail_wrong_host_name_other_cert)
{
	const struct tls_pki *p = tls_pki();
	expect_client_failure(p->otherhost, p->otherhost_key, "localhost",
	                      RILL_ETLS_HOSTNAME, "hostname mismatch");
}

TEST(fail_unknown_ca)
{
	const struct tls_pki *p = tls_pki();
	expect_client_failure(p->unknown, p->unknown_key, "localhost",
	                      RILL_ETLS_UNKNOWN_CA, "unknown test CA");
}

/* The error names the CA file that was trusted (issue 29). */
TEST(fail_unknown_ca_names_ca_file)
{
	const struct tls_pki *p = tls_pki();
	expect_client_failure(p->unknown, p->unknown_key, "localhost",
	                      RILL_ETLS_UNKNOWN_CA, p->ca);
}

static void client_cert_required(int max_version, bool give_cert)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct rill_tls_config *sc = server_cfg(p->server, p->server_key);
	TH_OK(rill_tls_config_set_ca(sc, p->ca, NULL));
	TH_OK(rill_tls_config_set_verify(sc, true));
	struct rill_tls_config *cc = client_cfg("localhost");
	TH_OK(rill_tls_config_set_versions(cc, 0, max_version));
	if (give_cert)
		TH_OK(rill_tls_config_set_cert(cc, p->client, p->client_key));
	struct hs c, s;
	handshake(&loop, cc, sc, &c, &s);
	th_note("client: %s", c.msg);
	th_note("server: %s", s.msg);
	if (give_cert) {
		TH_OK(c.status);
		TH_OK(s.status);
		TH_EQ_STR(rill_tls_peer_subject(s.f), "CN=rill-client");
		exchange(&c, &s);
		finish(&loop, &c, &s);
		return;
	}
	TH_EQ_ERR(s.status, RILL_ETLS_NO_CERT);
	TH_CONTAINS(s.msg, "client certificate");
	if (c.status == 0) {
		/* TLS 1.3: the client's handshake ends before the server
		 * has judged it; the refusal arrives on the first read. */
		TH_EQ_INT(max_version, RILL_TLS_1_3);
		struct rill_buf *b = NULL;
		TH_EQ_ERR(rill_read_sync(c.f, &b), RILL_ETLS_NO_CERT);
		TH_CONTAINS(rill_flow_errmsg(c.f), "client certificate");
	} else {
		TH_EQ_ERR(c.status, RILL_ETLS_NO_CERT);
		TH_CONTAINS(c.msg, "client certificate");
	}
	finish(&loop, &c, &s);
}

TEST(fail_client_cert_missing_tls13)
{
	client_cert_required(RILL_TLS_1_3, false);
}

TEST(fail_client_cert_missing_tls12)
{
	client_cert_required(RILL_TLS_1_2, false);
}

TEST(client_cert_accepted)
{
	client_cert_required(RILL_TLS_1_3, true);
}

TEST(fail_version_mismatch)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct rill_tls_config *cc = client_cfg("localhost");
	TH_OK(rill_tls_config_set_versions(cc, RILL_TLS_1_2, RILL_TLS_1_2));
	struct rill_tls_config *sc = server_cfg(p->server, p->server_key);
	TH_OK(rill_tls_config_set_versions(sc, RILL_TLS_1_3, 0));
	struct hs c, s;
	handshake(&loop, cc, sc, &c, &s);
	th_note("client: %s", c.msg);
	th_note("server: %s", s.msg);
	TH_EQ_ERR(c.status, RILL_ETLS_VERSION);
	TH_EQ_ERR(s.status, RILL_ETLS_VERSION);
	TH_CONTAINS(c.msg, "version");
	finish(&loop, &c, &s);
}

/* One end speaks TLS, the raw other end sends `text` and hangs up. */
static void plain_text_peer(bool tls_is_server, const char *text)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	struct hs h = {0};
	struct rill_tls_config *cfg = tls_is_server
	                                  ? server_cfg(p->server, p->server_key)
	                                  : client_cfg("localhost");
	TH_OK(rill_tls_attach(a, cfg, on_attach, &h));
	rill_tls_config_free(cfg);
	TH_OK(rill_write_sync(b, text, strlen(text)));
	while (!h.done)
		uv_run(&loop, UV_RUN_ONCE);
	th_note("%s", h.msg);
	TH_EQ_ERR(h.status, RILL_ETLS_NOT_TLS);
	TH_CONTAINS(h.msg, "does not speak TLS");
	TH_CONTAINS(h.msg, tls_is_server ? "GET / HTTP" : "SSH-2.0");
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(fail_plain_text_client)
{
	plain_text_peer(true, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
}

TEST(fail_plain_text_server)
{
	plain_text_peer(false, "SSH-2.0-OpenSSH_9.2\r\n");
}

TEST(fail_peer_hangs_up_during_handshake)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	struct hs h = {0};
	struct rill_tls_config *cfg = client_cfg("localhost");
	TH_OK(rill_tls_attach(a, cfg, on_attach, &h));
	rill_tls_config_free(cfg);
	rill_close(b);
	while (!h.done)
		uv_run(&loop, UV_RUN_ONCE);
	TH_EQ_ERR(h.status, RILL_ETLS_TRUNCATED);
	TH_CONTAINS(h.msg, "during the handshake");
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(handshake_deadline)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	struct hs h = {0};
	struct rill_tls_config *cfg = client_cfg("localhost");
	TH_OK(rill_tls_config_set_handshake_timeout(cfg, 100));
	TH_OK(rill_tls_attach(a, cfg, on_attach, &h));
	rill_tls_config_free(cfg);
	while (!h.done)
		uv_run(&loop, UV_RUN_ONCE);
	TH_EQ_ERR(h.status, RILL_ETIMEDOUT);
	TH_CONTAINS(h.msg, "100 ms");
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(verify_off_is_explicit_and_visible)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct rill_tls_config *cc = rill_tls_config_new(RILL_TLS_CLIENT);
	TH_OK(rill_tls_config_set_verify(cc, false));
	struct hs c, s;
	handshake(&loop, cc, server_cfg(p->selfsigned, p->selfsigned_key), &c,
	          &s);
	TH_OK(c.status);
	TH_EQ_STR(rill_flow_kind(c.f), "tls-noverify");
	TH_EQ_STR(rill_flow_kind(s.f), "tls");
	exchange(&c, &s);
	finish(&loop, &c, &s);
}

TEST(client_without_host_name_refused)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	struct rill_tls_config *cc = rill_tls_config_new(RILL_TLS_CLIENT);
	struct hs h = {0};
	TH_EQ_ERR(rill_tls_attach(a, cc, on_attach, &h), RILL_ETLS_HOSTNAME);
	TH_CONTAINS(rill_last_errmsg(), "host name");
	rill_tls_config_free(cc);
	/* a was consumed: b sees EOF. */
	struct rill_buf *buf = NULL;
	TH_EQ_ERR(rill_read_sync(b, &buf), RILL_EOF);
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_TRUE(!h.done);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(server_without_certificate_refused)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	struct rill_tls_config *sc = rill_tls_config_new(RILL_TLS_SERVER);
	struct hs h = {0};
	TH_EQ_ERR(rill_tls_attach(a, sc, on_attach, &h), RILL_EINVAL);
	TH_CONTAINS(rill_last_errmsg(), "no certificate");
	rill_tls_config_free(sc);
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}

TEST(config_errors_say_what)
{
	struct rill_tls_config *c = rill_tls_config_new(RILL_TLS_SERVER);
	TH_EQ_ERR(rill_tls_config_set_ca(c, "/nonexistent/ca.pem", NULL),
	          RILL_ETLS);
	TH_CONTAINS(rill_last_errmsg(), "/nonexistent/ca.pem");
	/* In plain words, not OpenSSL's code (issue 29). */
	TH_CONTAINS(rill_last_errmsg(), "No such file or directory");
	TH_EQ_ERR(rill_tls_config_set_ca(c, NULL, "/nonexistent/dir"),
	          RILL_ETLS);
	TH_CONTAINS(rill_last_errmsg(), "No such file or directory");
	TH_EQ_ERR(rill_tls_config_set_cert(c, "/nonexistent/c.pem", NULL),
	          RILL_ETLS);
	TH_CONTAINS(rill_last_errmsg(), "certificate chain");
	const struct tls_pki *p = tls_pki();
	TH_EQ_ERR(rill_tls_config_set_cert(c, p->server, p->client_key),
	          RILL_ETLS);
	TH_CONTAINS(rill_last_errmsg(), "mismatch");
	TH_EQ_ERR(rill_tls_config_set_alpn(c, "h2,,x"), RILL_EINVAL);
	TH_EQ_ERR(rill_tls_config_set_versions(c, 0x0301, 0), RILL_EINVAL);
	TH_EQ_ERR(rill_tls_config_set_ciphers(c, "NOPE", NULL), RILL_ETLS);
	TH_TRUE(rill_tls_config_new(7) == NULL);
	rill_tls_config_free(c);
	rill_tls_config_free(NULL);
}

/* A bulk transfer with writes of varying sizes, checked byte by byte. */
struct bulk {
	struct rill_flow *w, *r;
	size_t total, sent, got;
	uint32_t seed;
	bool eof;
	int err;
};

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 2654435761u >> 13);
}

static void bulk_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                         void *ud)
{
	struct bulk *x = ud;
	if (status != 0) {
		x->eof = status == RILL_EOF;
		x->err = status == RILL_EOF ? 0 : status;
		return;
	}
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] != pattern(x->got + i) && x->err == 0)
			x->err = -EBADMSG;
	x->got += b->len;
	rill_buf_release(b);
	TH_OK(rill_read(f, bulk_read_cb, x));
}

static void bulk_write_cb(struct rill_flow *f, int status, void *ud);

static void bulk_write_more(struct bulk *x)
{
	if (x->sent == x->total) {
		TH_OK(rill_shutdown(x->w, RILL_SHUT_WR, NULL, NULL));
		return;
	}
	x->seed = x->seed * 1103515245u + 12345u;
	size_t n = 1 + (x->seed >> 8) % (300 * 1024);
	if (n > x->total - x->sent)
		n = x->total - x->sent;
	struct rill_buf *b = rill_buf_new(n);
	for (size_t i = 0; i < n; i++)
		b->data[i] = pattern(x->sent + i);
	x->sent += n;
	TH_OK(rill_write(x->w, b, bulk_write_cb, x));
	rill_buf_release(b);
}

static void bulk_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	TH_OK(status);
	bulk_write_more(ud);
}

TEST(bulk_transfer_checked)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct hs c, s;
	handshake(&loop, client_cfg("localhost"),
	          server_cfg(p->server, p->server_key), &c, &s);
	TH_OK(c.status);
	struct bulk x = {.w = c.f, .r = s.f, .total = 8u << 20, .seed = 7};
	bulk_write_more(&x);
	TH_OK(rill_read(s.f, bulk_read_cb, &x));
	while (!x.eof && x.err == 0)
		uv_run(&loop, UV_RUN_ONCE);
	TH_OK(x.err);
	TH_EQ_U64(x.got, x.total);
	finish(&loop, &c, &s);
}

TEST(close_sends_close_notify_and_tears_down_the_stack)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const struct tls_pki *p = tls_pki();
	struct hs c, s;
	handshake(&loop, client_cfg("localhost"),
	          server_cfg(p->server, p->server_key), &c, &s);
	TH_OK(c.status);
	/* Written data and a close_notify go out in the background, then
	 * the pair end below is closed. */
	TH_OK(rill_write_copy(s.f, "bye", 3, NULL, NULL));
	rill_close(s.f);
	s.f = NULL;
	expect_text(c.f, "bye");
	struct rill_buf *b = NULL;
	TH_EQ_ERR(rill_read_sync(c.f, &b), RILL_EOF);
	/* The pair end below is gone: writes fail (at the latest the one
	 * after the write that found out). */
	int err = 0;
	for (int i = 0; i < 3 && err == 0; i++)
		err = rill_write_sync(c.f, "x", 1);
	TH_EQ_ERR(err, RILL_ECLOSED);
	finish(&loop, &c, &s);
}
