/*
 * OpenSSL failures of a TLS flow mapped to rill codes (include/rill.h)
 * with a message that says what failed and, where it can, why.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/core.h"
#include "layer/tls/tls_internal.h"

/* ---------------------------------------------------------------------- */
/* Errors */

static bool tls_looks_like_tls(const struct tls_flow *t)
{
	/* A TLS record starts with its content type (20..23; a peer's
	 * first record is a handshake or an alert) and the major version 3
	 * (RFC 8446 section 5.1, RFC 5246 section 6.2.1). */
	if (t->first_n < 1)
		return true;
	if (t->first[0] < 20 || t->first[0] > 23)
		return false;
	return t->first_n < 2 || t->first[1] == 3;
}

static void tls_escape_first(const struct tls_flow *t, char *dst, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < t->first_n && o + 5 < len; i++) {
		uint8_t c = t->first[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			dst[o++] = (char)c;
		else
			o += (size_t)snprintf(dst + o, len - o, "\\x%02x", c);
	}
	dst[o < len ? o : len - 1] = '\0';
}

static int tls_verify_code(int v)
{
	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED: return RILL_ETLS_CERT_EXPIRED;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH: return RILL_ETLS_HOSTNAME;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return RILL_ETLS_SELF_SIGNED;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return RILL_ETLS_UNKNOWN_CA;
	default: return RILL_ETLS_CERT;
	}
}

/* Certificate verification failed (ours of the peer's certificate). */
static int tls_error_verify(struct tls_flow *t, const char *what, char *msg,
                            size_t len)
{
	int v = t->verify_err != 0 ? t->verify_err
	                           : (int)SSL_get_verify_result(t->ssl);
	int code = tls_verify_code(v);
	const char *host = t->cfg->host;
	bool name = code == RILL_ETLS_HOSTNAME;
	/* Which CAs were trusted: the first question after a wrong-CA
	 * failure. */
	char cas[600];
	pthread_mutex_lock(&t->cfg->lock);
	if (t->cfg->ca_desc[0] != '\0')
		snprintf(cas, sizeof cas, "%s", t->cfg->ca_desc);
	else
		snprintf(cas, sizeof cas,
		         "the system CA store (%s, or SSL_CERT_FILE / "
		         "SSL_CERT_DIR)",
		         X509_get_default_cert_file());
	pthread_mutex_unlock(&t->cfg->lock);
	snprintf(msg, len,
	         "TLS %s: %s certificate verification failed: %s "
	         "(depth %d: %s%s%s%s; trusted CAs: %s)",
	         what, t->cfg->role == RILL_TLS_CLIENT ? "server" : "client",
	         X509_verify_cert_error_string(v), t->verify_depth,
	         t->verify_subject, name ? "; expected \"" : "",
	         name && host ? host : "", name ? "\"" : "", cas);
	return code;
}

/* The flow below ended or failed while OpenSSL wanted more ciphertext. */
static int tls_error_inner_read(struct tls_flow *t, const char *what, char *msg,
                                size_t len)
{
	if (t->in_status == RILL_EOF) {
		snprintf(msg, len,
		         t->hs_done ? "TLS %s: peer closed the connection "
		                      "without close_notify (data may be "
		                      "truncated)"
		                    : "TLS %s: peer closed the connection "
		                      "during the handshake",
		         what);
		return RILL_ETLS_TRUNCATED;
	}
	snprintf(msg, len, "TLS %s: reading from the %s flow below: %s", what,
	         rill_flow_kind(tls_inner(t)), rill_strerror(t->in_status));
	return t->in_status;
}

/* Failures about certificates that OpenSSL names by their reason code.
 * Returns 0 when the reason is none of them. */
static int tls_error_cert_reason(struct tls_flow *t, int reason,
                                 const char *what, const char *detail,
                                 char *msg, size_t len)
{
	switch (reason) {
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		snprintf(msg, len,
		         "TLS %s: a client certificate is required and the "
		         "client sent none",
		         what);
		return RILL_ETLS_NO_CERT;
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		snprintf(
		    msg, len,
		    "TLS %s: the server requires a client certificate%s", what,
		    t->cert_requested_none ? " and none is configured" : "");
		return RILL_ETLS_NO_CERT;
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
		if (!t->cert_requested_none)
			return 0;
		snprintf(msg, len,
		         "TLS %s: the server requires a client certificate "
		         "and none is configured (%s)",
		         what, detail);
		return RILL_ETLS_NO_CERT;
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		snprintf(msg, len,
		         "TLS %s: the peer rejected our certificate: issued "
		         "by a CA it does not know",
		         what);
		return RILL_ETLS_UNKNOWN_CA;
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
		snprintf(msg, len,
		         "TLS %s: the peer rejected our certificate as "
		         "expired",
		         what);
		return RILL_ETLS_CERT_EXPIRED;
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
		snprintf(msg, len,
		         "TLS %s: the peer rejected our certificate (%s)", what,
		         detail);
		return RILL_ETLS_CERT;
	default: return 0;
	}
}

/* Failures that OpenSSL names by their reason code (versions, a peer
 * that is not TLS, certificates). Returns 0 when the reason is none of
 * them. */
static int tls_error_reason(struct tls_flow *t, int reason, const char *what,
                            const char *detail, char *msg, size_t len)
{
	switch (reason) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_VERSION_TOO_HIGH:
	case SSL_R_VERSION_TOO_LOW:
		snprintf(msg, len,
		         "TLS %s: no protocol version in common with the peer "
		         "(%s)",
		         what, detail);
		return RILL_ETLS_VERSION;
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
		if (t->hs_done)
			return 0;
		snprintf(msg, len, "TLS %s: peer does not speak TLS (%s)", what,
		         detail);
		return RILL_ETLS_NOT_TLS;
	default:
		return tls_error_cert_reason(t, reason, what, detail, msg, len);
	}
}

int rill__tls_map_error(struct tls_flow *t, int ret, const char *what,
                        char *msg, size_t len)
{
	int e = SSL_get_error(t->ssl, ret);
	unsigned long ee = ERR_peek_error();
	int reason = ERR_GET_LIB(ee) == ERR_LIB_SSL ? ERR_GET_REASON(ee) : 0;
	char detail[256] = "";
	if (ee != 0)
		ERR_error_string_n(ee, detail, sizeof detail);
	ERR_clear_error();

	if (e == SSL_ERROR_ZERO_RETURN) {
		snprintf(msg, len, "peer sent close_notify");
		return RILL_EOF;
	}
	if (t->out_err != 0) {
		snprintf(msg, len, "TLS %s: writing to the %s flow below: %s",
		         what, rill_flow_kind(tls_inner(t)),
		         rill_strerror(t->out_err));
		return t->out_err;
	}
	if (!tls_looks_like_tls(t)) {
		char first[80];
		tls_escape_first(t, first, sizeof first);
		snprintf(msg, len,
		         "TLS %s: peer does not speak TLS (it sent \"%s\")",
		         what, first);
		return RILL_ETLS_NOT_TLS;
	}
	if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED ||
	    (t->verify_err != 0 && !t->hs_done))
		return tls_error_verify(t, what, msg, len);
	if (t->in == NULL && t->in_status != 0 &&
	    (e == SSL_ERROR_SYSCALL ||
	     reason == SSL_R_UNEXPECTED_EOF_WHILE_READING ||
	     e == SSL_ERROR_SSL))
		return tls_error_inner_read(t, what, msg, len);
	int code = tls_error_reason(t, reason, what, detail, msg, len);
	if (code != 0)
		return code;
	snprintf(msg, len, "TLS %s failed: %s", what,
	         detail[0] ? detail : "(no detail from OpenSSL)");
	return t->hs_done ? RILL_ETLS : RILL_ETLS_HANDSHAKE;
}
