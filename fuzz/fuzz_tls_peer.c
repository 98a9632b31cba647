/*
 * Fuzz target: arbitrary bytes from the peer into the TLS layer's glue
 * (src/layer/tls/), in either role. The expected outcome is a clean
 * error (or EOF) on the attach or the reads: no crash, no hang, no leak.
 *
 * Input: byte 0 selects the case, the rest is what the peer sends.
 *   bit 0     0: rill is the client; 1: rill is the server
 *   bit 1     0: TLS 1.2..1.3; 1: TLS 1.2 only
 *   bits 2-7  delivery chunk size: 0 all at once, else n * 7 bytes (the
 *             BIO then sees records split everywhere)
 * The peer's bytes go through an in-memory pair; after the last one the
 * peer shuts down its write side (an EOF below the TLS layer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rill.h"

static struct rill_tls_config *fz_client, *fz_client12, *fz_server,
    *fz_server12;
static char fz_dir[4096], fz_cert[4200], fz_key[4200];

static void fz_cleanup(void)
{
	rill_tls_config_free(fz_client);
	rill_tls_config_free(fz_client12);
	rill_tls_config_free(fz_server);
	rill_tls_config_free(fz_server12);
}

/* The certificate files are only read while the configurations are
 * made: they go at once, so a killed run leaves nothing behind. */
static void fz_remove_cert(void)
{
	unlink(fz_cert);
	unlink(fz_key);
	rmdir(fz_dir);
}

/* A self-signed P-256 certificate for "localhost" in two files in a new
 * directory under $TMPDIR (or /tmp). */
static int fz_make_cert(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	if (k == NULL || x == NULL)
		return -1;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	                           (const unsigned char *)"localhost", -1, -1,
	                           0);
	X509_set_issuer_name(x, n);
	X509_set_pubkey(x, k);
	X509_sign(x, k, EVP_sha256());
	const char *tmp = getenv("TMPDIR");
	snprintf(fz_dir, sizeof fz_dir, "%s/rill-fuzz-tls-XXXXXX",
	         tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(fz_dir) == NULL)
		return -1;
	snprintf(fz_cert, sizeof fz_cert, "%s/c.pem", fz_dir);
	snprintf(fz_key, sizeof fz_key, "%s/k.pem", fz_dir);
	FILE *f = fopen(fz_cert, "w");
	FILE *g = fopen(fz_key, "w");
	int ok = f != NULL && g != NULL && PEM_write_X509(f, x) == 1 &&
	         PEM_write_PrivateKey(g, k, NULL, NULL, 0, NULL, NULL) == 1;
	if (f != NULL)
		fclose(f);
	if (g != NULL)
		fclose(g);
	X509_free(x);
	EVP_PKEY_free(k);
	return ok ? 0 : -1;
}

static struct rill_tls_config *fz_config(int role, bool only12)
{
	struct rill_tls_config *c = rill_tls_config_new(role);
	if (c == NULL)
		abort();
	if (role == RILL_TLS_SERVER) {
		if (rill_tls_config_set_cert(c, fz_cert, fz_key) != 0)
			abort();
	} else {
		if (rill_tls_config_set_ca(c, fz_cert, NULL) != 0 ||
		    rill_tls_config_set_hostname(c, "localhost") != 0)
			abort();
	}
	rill_tls_config_set_alpn(c, "h2,http/1.1");
	if (only12)
		rill_tls_config_set_versions(c, RILL_TLS_1_2, RILL_TLS_1_2);
	return c;
}

static void fz_init(void)
{
	if (fz_server != NULL)
		return;
	if (fz_make_cert() != 0)
		abort();
	fz_client = fz_config(RILL_TLS_CLIENT, false);
	fz_client12 = fz_config(RILL_TLS_CLIENT, true);
	fz_server = fz_config(RILL_TLS_SERVER, false);
	fz_server12 = fz_config(RILL_TLS_SERVER, true);
	fz_remove_cert();
	atexit(fz_cleanup);
}

struct fz_state {
	struct rill_flow *tls;
	bool done;
	bool ended;
	int status;
};

static void fz_attach_cb(struct rill_flow *f, int status, const char *errmsg,
                         void *ud)
{
	struct fz_state *s = ud;
	s->done = true;
	s->status = status;
	s->tls = f;
	/* The contract: an error always comes with a message. */
	if (status != 0 && (errmsg == NULL || errmsg[0] == '\0'))
		abort();
	if (status == 0 && f == NULL)
		abort();
}

static void fz_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                       void *ud)
{
	struct fz_state *s = ud;
	if (status != 0) {
		s->ended = true;
		return;
	}
	rill_buf_release(b);
	if (rill_read(f, fz_read_cb, s) != 0)
		s->ended = true;
}

/* Drains what the TLS side sends to the peer, so it never blocks. */
static void fz_drain_cb(struct rill_flow *f, int status, struct rill_buf *b,
                        void *ud)
{
	(void)ud;
	if (status != 0)
		return;
	rill_buf_release(b);
	rill_read(f, fz_drain_cb, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	fz_init();
	uint8_t mode = data[0];
	data++;
	size--;
	bool server = mode & 1;
	bool only12 = (mode >> 1) & 1;
	size_t chunk = (size_t)(mode >> 2) * 7;
	if (chunk == 0)
		chunk = size > 0 ? size : 1;

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *peer;
	if (rill_pair(&loop, 0, &a, &peer) != 0)
		abort();
	struct rill_tls_config *cfg = server
	                                  ? (only12 ? fz_server12 : fz_server)
	                                  : (only12 ? fz_client12 : fz_client);
	struct fz_state st = {0};
	if (rill_tls_attach(a, cfg, fz_attach_cb, &st) != 0)
		abort();
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (rill_write_copy(peer, data + off, n, NULL, NULL) != 0)
			break;
	}
	rill_shutdown(peer, RILL_SHUT_WR, NULL, NULL);
	rill_read(peer, fz_drain_cb, NULL);
	while (!st.done)
		if (uv_run(&loop, UV_RUN_ONCE) == 0 && !st.done)
			abort(); /* a hang: nothing left to finish the attach */
	if (st.status == 0) {
		rill_write_copy(st.tls, "ping", 4, NULL, NULL);
		if (rill_read(st.tls, fz_read_cb, &st) == 0)
			while (!st.ended && uv_run(&loop, UV_RUN_ONCE) != 0)
				;
		if (!st.ended)
			abort(); /* a read that never ends after the peer's EOF
			          */
	}
	rill_close(st.tls);
	rill_close(peer);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		abort(); /* a handle left open: a leak */
	return 0;
}
