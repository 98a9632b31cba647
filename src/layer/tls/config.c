/*
 * TLS configurations (rill_tls_config_*): the SSL_CTX with certificates,
 * CA stores, verification, ALPN, versions and ciphers; and the
 * per-connection setup of an SSL object from a configuration.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/core.h"
#include "layer/tls/bio.h"
#include "layer/tls/tls_internal.h"

/* ---------------------------------------------------------------------- */
/* Configuration */

static int tls_ex_index = -1;
static CRYPTO_ONCE tls_ex_once = CRYPTO_ONCE_STATIC_INIT;

static void tls_ex_init(void)
{
	tls_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static struct tls_flow *tls_from_ssl(SSL *ssl)
{
	return SSL_get_ex_data(ssl, tls_ex_index);
}

static int tls_verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
	    xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_flow *t = ssl != NULL ? tls_from_ssl(ssl) : NULL;
	if (!ok && t != NULL && t->verify_err == 0) {
		/* Keep the first problem: later ones follow from it. */
		t->verify_err = X509_STORE_CTX_get_error(xs);
		t->verify_depth = X509_STORE_CTX_get_error_depth(xs);
		X509 *c = X509_STORE_CTX_get_current_cert(xs);
		t->verify_subject[0] = '\0';
		if (c != NULL) {
			char sub[128], iss[128];
			X509_NAME_oneline(X509_get_subject_name(c), sub,
			                  sizeof sub);
			X509_NAME_oneline(X509_get_issuer_name(c), iss,
			                  sizeof iss);
			snprintf(t->verify_subject, sizeof t->verify_subject,
			         "%s, issued by %s", sub, iss);
		}
	}
	return ok;
}

static int tls_client_cert_cb(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
	(void)x509;
	(void)pkey;
	struct tls_flow *t = tls_from_ssl(ssl);
	if (t != NULL)
		t->cert_requested_none = true;
	return 0; /* send no certificate */
}

static int tls_alpn_select(SSL *ssl, const unsigned char **out,
                           unsigned char *outlen, const unsigned char *in,
                           unsigned int inlen, void *arg)
{
	(void)ssl;
	struct rill_tls_config *c = arg;
	unsigned char *sel = NULL;
	if (c->alpn == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_select_next_proto(&sel, outlen, c->alpn,
	                          (unsigned int)c->alpn_len, in,
	                          inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static void tls_set_openssl_errmsg(const char *what, const char *file)
{
	char detail[256] = "no detail";
	unsigned long e = ERR_peek_last_error();
	if (e != 0)
		ERR_error_string_n(e, detail, sizeof detail);
	ERR_clear_error();
	rill__set_last_errmsg("TLS: cannot load %s \"%s\": %s", what,
	                      file != NULL ? file : "", detail);
}

/* A CA file or directory that cannot be opened is named in plain words
 * (OpenSSL's own message is a code such as "system library"). Returns
 * true when path is usable as far as the file system says. */
static bool tls_ca_path_ok(const char *what, const char *path, bool dir)
{
	struct stat st;
	const char *why = NULL;
	if (stat(path, &st) != 0)
		why = strerror(errno);
	else if (dir && !S_ISDIR(st.st_mode))
		why = "not a directory";
	else if (!dir && S_ISDIR(st.st_mode))
		why = "is a directory (give it as capath)";
	else if (access(path, R_OK) != 0)
		why = strerror(errno);
	if (why == NULL)
		return true;
	rill__set_last_errmsg("TLS: cannot load %s \"%s\": %s", what, path,
	                      why);
	return false;
}

static void tls_apply_verify(struct rill_tls_config *c)
{
	int mode = SSL_VERIFY_NONE;
	if (c->role == RILL_TLS_CLIENT && c->verify)
		mode = SSL_VERIFY_PEER;
	if (c->role == RILL_TLS_SERVER && c->verify)
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(c->ctx, mode, tls_verify_cb);
}

struct rill_tls_config *rill_tls_config_new(int role)
{
	if (role != RILL_TLS_CLIENT && role != RILL_TLS_SERVER)
		return NULL;
	CRYPTO_THREAD_run_once(&tls_ex_once, tls_ex_init);
	if (!rill__tls_bio_ready() || tls_ex_index < 0)
		return NULL;
	struct rill_tls_config *c = rill_calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->refs = 1;
	c->role = role;
	pthread_mutex_init(&c->lock, NULL);
	c->verify = role == RILL_TLS_CLIENT;
	c->ctx = SSL_CTX_new(role == RILL_TLS_CLIENT ? TLS_client_method()
	                                             : TLS_server_method());
	if (c->ctx == NULL) {
		rill_free(c);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	/* Renegotiation is a TLS 1.2 attack surface we do not need. */
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);
	if (role == RILL_TLS_CLIENT) {
		SSL_CTX_set_client_cert_cb(c->ctx, tls_client_cert_cb);
	} else {
		/* No TLS 1.3 session tickets: rill clients do not resume
		 * sessions, and tickets are data the client never reads, so
		 * a client that closes its socket would send a TCP RST
		 * instead of a FIN, and its close_notify could be lost. */
		SSL_CTX_set_num_tickets(c->ctx, 0);
		/* Needed for session resumption with client certificates. */
		SSL_CTX_set_session_id_context(
		    c->ctx, (const unsigned char *)"rill", 4);
		SSL_CTX_set_alpn_select_cb(c->ctx, tls_alpn_select, c);
	}
	ERR_clear_error();
	tls_apply_verify(c);
	return c;
}

void rill__tls_config_ref(struct rill_tls_config *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void rill__tls_config_set_release(struct rill_tls_config *c,
                                  bool (*release)(struct rill_tls_config *))
{
	c->release = release;
}

int rill__tls_config_unref(struct rill_tls_config *c)
{
	return __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL);
}

void rill_tls_config_free(struct rill_tls_config *c)
{
	if (c == NULL)
		return;
	if (c->release != NULL ? !c->release(c) : rill__tls_config_unref(c) > 0)
		return;
	SSL_CTX_free(c->ctx);
	pthread_mutex_destroy(&c->lock);
	rill_free(c->host);
	rill_free(c->alpn);
	rill_free(c);
}

int rill_tls_config_set_ca(struct rill_tls_config *c, const char *file,
                           const char *dir)
{
	if (c == NULL || (file == NULL && dir == NULL))
		return RILL_EINVAL;
	if ((file != NULL && !tls_ca_path_ok("CA file", file, false)) ||
	    (dir != NULL && !tls_ca_path_ok("CA directory", dir, true)))
		return RILL_ETLS;
	X509_STORE *st = X509_STORE_new();
	if (st == NULL)
		return RILL_ENOMEM;
	if (file != NULL && X509_STORE_load_file(st, file) != 1) {
		tls_set_openssl_errmsg("CA file", file);
		X509_STORE_free(st);
		return RILL_ETLS;
	}
	if (dir != NULL && X509_STORE_load_path(st, dir) != 1) {
		tls_set_openssl_errmsg("CA directory", dir);
		X509_STORE_free(st);
		return RILL_ETLS;
	}
	pthread_mutex_lock(&c->lock);
	SSL_CTX_set_cert_store(c->ctx, st); /* frees the old store */
	c->ca_loaded = true;
	snprintf(c->ca_desc, sizeof c->ca_desc, "%s%s%s%s%s%s",
	         file != NULL ? "CA file \"" : "", file != NULL ? file : "",
	         file != NULL ? "\"" : "",
	         file != NULL && dir != NULL ? " and " : "",
	         dir != NULL ? "CA directory " : "", dir != NULL ? dir : "");
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int rill_tls_config_set_hostname(struct rill_tls_config *c, const char *name)
{
	if (c == NULL || name == NULL || name[0] == '\0')
		return RILL_EINVAL;
	char *s = rill_strdup(name);
	if (s == NULL)
		return RILL_ENOMEM;
	rill_free(c->host);
	c->host = s;
	return 0;
}

int rill_tls_config_set_verify(struct rill_tls_config *c, bool on)
{
	if (c == NULL)
		return RILL_EINVAL;
	c->verify = on;
	tls_apply_verify(c);
	return 0;
}

int rill_tls_config_set_cert(struct rill_tls_config *c, const char *chain_file,
                             const char *key_file)
{
	if (c == NULL || chain_file == NULL)
		return RILL_EINVAL;
	if (key_file == NULL)
		key_file = chain_file;
	if (SSL_CTX_use_certificate_chain_file(c->ctx, chain_file) != 1) {
		tls_set_openssl_errmsg("certificate chain", chain_file);
		return RILL_ETLS;
	}
	if (SSL_CTX_use_PrivateKey_file(c->ctx, key_file, SSL_FILETYPE_PEM) !=
	    1) {
		tls_set_openssl_errmsg("private key", key_file);
		return RILL_ETLS;
	}
	if (SSL_CTX_check_private_key(c->ctx) != 1) {
		tls_set_openssl_errmsg("private key (does not match the "
		                       "certificate)",
		                       key_file);
		return RILL_ETLS;
	}
	return 0;
}

int rill_tls_config_set_alpn(struct rill_tls_config *c, const char *list)
{
	if (c == NULL)
		return RILL_EINVAL;
	unsigned char *wire = NULL;
	size_t len = 0;
	if (list != NULL && list[0] != '\0') {
		size_t n = strlen(list);
		wire = rill_malloc(n + 1);
		if (wire == NULL)
			return RILL_ENOMEM;
		/* "a,bc" -> "\1a\2bc" (RFC 7301 section 3.1). */
		const char *p = list;
		for (;;) {
			const char *comma = strchr(p, ',');
			size_t k = comma ? (size_t)(comma - p) : strlen(p);
			if (k == 0 || k > 255) {
				rill_free(wire);
				return RILL_EINVAL;
			}
			wire[len++] = (unsigned char)k;
			memcpy(wire + len, p, k);
			len += k;
			if (comma == NULL)
				break;
			p = comma + 1;
		}
	}
	if (c->role == RILL_TLS_CLIENT &&
	    SSL_CTX_set_alpn_protos(c->ctx, wire, (unsigned int)len) != 0) {
		rill_free(wire);
		return RILL_ENOMEM;
	}
	rill_free(c->alpn);
	c->alpn = wire;
	c->alpn_len = len;
	return 0;
}

static int tls_version_ok(int v)
{
	return v == 0 || v == RILL_TLS_1_2 || v == RILL_TLS_1_3;
}

int rill_tls_config_set_versions(struct rill_tls_config *c, int min, int max)
{
	if (c == NULL || !tls_version_ok(min) || !tls_version_ok(max) ||
	    (min != 0 && max != 0 && min > max))
		return RILL_EINVAL;
	if (min != 0)
		SSL_CTX_set_min_proto_version(c->ctx, min);
	if (max != 0)
		SSL_CTX_set_max_proto_version(c->ctx, max);
	return 0;
}

int rill_tls_config_set_ciphers(struct rill_tls_config *c, const char *tls13,
                                const char *tls12)
{
	if (c == NULL)
		return RILL_EINVAL;
	if (tls13 != NULL && SSL_CTX_set_ciphersuites(c->ctx, tls13) != 1) {
		tls_set_openssl_errmsg("TLS 1.3 cipher suites", tls13);
		return RILL_ETLS;
	}
	if (tls12 != NULL && SSL_CTX_set_cipher_list(c->ctx, tls12) != 1) {
		tls_set_openssl_errmsg("TLS 1.2 cipher list", tls12);
		return RILL_ETLS;
	}
	return 0;
}

int rill_tls_config_set_handshake_timeout(struct rill_tls_config *c,
                                          uint64_t ms)
{
	if (c == NULL)
		return RILL_EINVAL;
	c->hs_ms = ms;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Attach */

static bool tls_is_ip(const char *s)
{
	unsigned char tmp[16];
	return inet_pton(AF_INET, s, tmp) == 1 ||
	       inet_pton(AF_INET6, s, tmp) == 1;
}

/* The system CA store, loaded once per process and shared by every client
 * configuration that uses it (it costs milliseconds to load). OpenSSL
 * owns its memory; it lives until the process ends. */
static X509_STORE *tls_system_store;
static CRYPTO_ONCE tls_system_once = CRYPTO_ONCE_STATIC_INIT;

static void tls_system_store_load(void)
{
	X509_STORE *st = X509_STORE_new();
	if (st != NULL && X509_STORE_set_default_paths(st) != 1) {
		/* A host without a CA bundle: verification will fail with
		 * "unknown CA", which says what to do (give ca=). */
	}
	ERR_clear_error();
	tls_system_store = st;
}

/* Per-connection setup of the SSL object; returns 0 or sets msg. */
int rill__tls_setup_ssl(struct tls_flow *t, char *msg, size_t len)
{
	struct rill_tls_config *c = t->cfg;
	if (c->role == RILL_TLS_CLIENT && c->verify) {
		/* The system store (SSL_CERT_FILE / SSL_CERT_DIR honoured),
		 * loaded at the first attach that needs it: loading it costs
		 * milliseconds, wasted when set_ca replaces it. */
		pthread_mutex_lock(&c->lock);
		if (!c->ca_loaded) {
			CRYPTO_THREAD_run_once(&tls_system_once,
			                       tls_system_store_load);
			if (tls_system_store != NULL)
				SSL_CTX_set1_cert_store(c->ctx,
				                        tls_system_store);
			c->ca_loaded = true;
		}
		pthread_mutex_unlock(&c->lock);
	}
	t->ssl = SSL_new(c->ctx);
	t->bio = t->ssl != NULL ? rill__tls_bio_new() : NULL;
	if (t->bio == NULL) {
		snprintf(msg, len, "TLS: out of memory");
		return RILL_ENOMEM;
	}
	BIO_set_data(t->bio, t);
	SSL_set_bio(t->ssl, t->bio, t->bio); /* the SSL owns it now */
	SSL_set_ex_data(t->ssl, tls_ex_index, t);
	if (c->role == RILL_TLS_SERVER) {
		if (SSL_get_certificate(t->ssl) == NULL) {
			snprintf(msg, len,
			         "TLS server: no certificate configured "
			         "(cert=FILE&key=FILE)");
			return RILL_EINVAL;
		}
		SSL_set_accept_state(t->ssl);
		return 0;
	}
	SSL_set_connect_state(t->ssl);
	const char *host = c->host;
	if (host != NULL && !tls_is_ip(host) &&
	    SSL_set_tlsext_host_name(t->ssl, host) != 1) {
		snprintf(msg, len, "TLS: bad server name \"%s\" for SNI", host);
		return RILL_EINVAL;
	}
	if (!c->verify)
		return 0;
	if (host == NULL) {
		snprintf(msg, len,
		         "TLS: no host name to verify the server's certificate "
		         "against (give one, e.g. sni=NAME, or turn "
		         "verification off explicitly)");
		return RILL_ETLS_HOSTNAME;
	}
	X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
	int ok = tls_is_ip(host) ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
	                         : SSL_set1_host(t->ssl, host);
	if (ok != 1) {
		snprintf(msg, len, "TLS: bad host name \"%s\"", host);
		return RILL_EINVAL;
	}
	return 0;
}
