/*
 * The TLS layer: OpenSSL 3 over any flow (DESIGN.md section 6).
 *
 * OpenSSL talks to the flow below through a BIO of our own (tls_bio_*),
 * not through memory BIOs: a memory BIO would copy every byte once more
 * on each side. Ciphertext moves like this:
 *
 *   in:  inner rill_read buffer --(BIO read: copy into OpenSSL's record
 *        buffer)--> SSL_read_ex decrypts into the buffer handed to the user
 *   out: SSL_write_ex encrypts --(BIO write: append)--> one large pending
 *        buffer --(rill_write, no copy)--> the flow below
 *
 * The BIO never blocks. Reading from it when no ciphertext is buffered
 * reports "retry"; the layer then starts one rill_read on the inner flow
 * and runs OpenSSL again when it completes. Writing to it always succeeds
 * (it appends); the layer bounds the pending output instead: it encrypts
 * more of the user's write only while less than TLS_OUT_HIGH bytes wait,
 * so records are batched into large inner writes (one in flight, one
 * filling) and memory stays bounded.
 *
 * The inner flow is read only when something needs ciphertext: the
 * handshake, or a pending user read. That is the back-pressure: a slow
 * reader of the TLS flow stops the reading of the flow below.
 *
 * A user write completes once its bytes are encrypted into the pending
 * output; a later inner write failure sticks as the write error. A write
 * shutdown flushes, sends close_notify, waits for the inner write to
 * finish and then shuts down the inner flow's write side.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core.h"
#include "tls_internal.h"

/* Pending ciphertext beyond which the layer stops encrypting. */
#define TLS_OUT_HIGH (256u * 1024u)
/* Smallest output buffer allocated (a handshake flight fits). */
#define TLS_OUT_MIN (16u * 1024u)
/* Record overhead reserved per 16 KiB record when pre-sizing output:
 * header, explicit IV, MAC/tag and padding of the worst suites. */
#define TLS_RECORD_SLACK 128u
/* Plaintext buffer sizes handed to the user. */
#define TLS_READ_MIN (16u * 1024u)
#define TLS_READ_MAX (256u * 1024u)

struct rill_tls_config {
	int refs; /* atomic */
	int role;
	SSL_CTX *ctx;
	bool verify;
	bool ca_loaded; /* a CA store is in place (set_ca or the system's) */
	pthread_mutex_t lock;
	uint64_t hs_ms;
	char *host;
	unsigned char *alpn; /* wire format: length-prefixed names */
	size_t alpn_len;
};

enum tls_shut_state {
	SHUT_NONE = 0,
	SHUT_NOTIFY, /* send close_notify */
	SHUT_FLUSH,  /* wait until the output is written */
	SHUT_INNER,  /* inner write shutdown in progress */
	SHUT_DONE,
};

struct tls_flow {
	struct rill_layer layer; /* first: base + inner */
	struct rill_tls_config *cfg;
	SSL *ssl;
	BIO *bio;
	uv_timer_t timer; /* handshake deadline; teardown bound */

	/* handshake */
	rill_tls_attach_cb attach_cb;
	void *attach_ud;
	uint64_t hs_ms; /* handshake deadline */
	bool hs_done;
	bool hs_failed;
	bool cert_requested_none; /* server asked, we had no certificate */
	int verify_err;           /* first X509 error seen, and where */
	int verify_depth;
	char verify_subject[300];
	uint8_t first[16]; /* first bytes from the peer, for NOT_TLS */
	size_t first_n;

	/* ciphertext in */
	struct rill_buf *in;
	size_t in_off;
	bool in_reading;
	int in_status; /* 0, RILL_EOF or the inner read error */

	/* ciphertext out */
	struct rill_buf *out;
	size_t out_len, out_cap;
	bool out_writing;
	int out_err;

	/* the user's write, inside the layer */
	struct rill_buf *const *w_bufs;
	size_t w_n, w_i, w_off;
	bool w_active;
	int shut_state;

	/* the user's read */
	bool r_active;
	struct rill_buf *rbuf; /* plaintext being filled */
	size_t rlen;
	int r_final; /* final status to report once data is delivered */
	char r_final_msg[256];

	bool tearing_down; /* failed attach: flushing an alert, then gone */
	char *alpn_sel;
	char *peer_subject;
	char errmsg[512];
};

static const struct rill_flow_ops tls_ops;
static const struct rill_flow_ops tls_noverify_ops;

static struct tls_flow *tls_of(struct rill_flow *f)
{
	return rill_container_of(f, struct tls_flow, layer.base);
}

static struct rill_flow *tls_inner(struct tls_flow *t)
{
	return t->layer.inner;
}

static void tls_progress(struct tls_flow *t);

/* ---------------------------------------------------------------------- */
/* The BIO over the flow below */

static BIO_METHOD *tls_bio_method;
static CRYPTO_ONCE tls_bio_once = CRYPTO_ONCE_STATIC_INIT;

static int tls_bio_read(BIO *b, char *dst, size_t n, size_t *got)
{
	struct tls_flow *t = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	*got = 0;
	if (t->in != NULL) {
		size_t k = t->in->len - t->in_off;
		if (k > n)
			k = n;
		memcpy(dst, t->in->data + t->in_off, k);
		t->in_off += k;
		if (t->in_off == t->in->len) {
			rill_buf_release(t->in);
			t->in = NULL;
			t->in_off = 0;
		}
		*got = k;
		return 1;
	}
	if (t->in_status == 0)
		BIO_set_retry_read(b); /* the layer will read the inner flow */
	return 0; /* EOF (see ctrl BIO_CTRL_EOF) or error */
}

static int tls_out_reserve(struct tls_flow *t, size_t need)
{
	if (t->out != NULL && t->out_cap - t->out_len >= need)
		return 0;
	size_t cap = t->out_len + need;
	if (cap < TLS_OUT_MIN)
		cap = TLS_OUT_MIN;
	struct rill_buf *nb = rill_buf_new(cap);
	if (nb == NULL)
		return RILL_ENOMEM;
	if (t->out != NULL) {
		/* Rare: the estimate was short. The copy keeps the output in
		 * one buffer, so the inner flow gets one large write. */
		memcpy(nb->data, t->out->data, t->out_len);
		rill_buf_release(t->out);
	}
	t->out = nb;
	t->out_cap = cap;
	return 0;
}

static int tls_bio_write(BIO *b, const char *src, size_t n, size_t *put)
{
	struct tls_flow *t = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	*put = 0;
	if (t->out_err != 0)
		return 0;
	if (tls_out_reserve(t, n) != 0) {
		t->out_err = RILL_ENOMEM;
		return 0;
	}
	memcpy(t->out->data + t->out_len, src, n);
	t->out_len += n;
	*put = n;
	return 1;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)num;
	(void)ptr;
	struct tls_flow *t = BIO_get_data(b);
	switch (cmd) {
	case BIO_CTRL_FLUSH: return 1;
	case BIO_CTRL_EOF:
		/* OpenSSL asks this to tell an EOF from an error: it then
		 * reports "unexpected eof" (our RILL_ETLS_TRUNCATED). */
		return t->in == NULL && t->in_status == RILL_EOF;
	case BIO_CTRL_PENDING:
		return t->in != NULL ? (long)(t->in->len - t->in_off) : 0;
	case BIO_CTRL_WPENDING: return 0;
	default: return 0;
	}
}

static int tls_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void tls_bio_init_method(void)
{
	BIO_METHOD *m =
	    BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rill");
	if (m == NULL)
		return;
	BIO_meth_set_read_ex(m, tls_bio_read);
	BIO_meth_set_write_ex(m, tls_bio_write);
	BIO_meth_set_ctrl(m, tls_bio_ctrl);
	BIO_meth_set_create(m, tls_bio_create);
	tls_bio_method = m;
}

/* ---------------------------------------------------------------------- */
/* Moving ciphertext to and from the inner flow */

static void tls_finish_teardown(struct tls_flow *t);
static void tls_flush(struct tls_flow *t);

static void tls_inner_write_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	struct tls_flow *t = ud;
	t->out_writing = false;
	if (status != 0 && t->out_err == 0)
		t->out_err = status;
	if (t->tearing_down) {
		/* Send the rest (the alert) before closing. */
		tls_flush(t);
		if (!t->out_writing)
			tls_finish_teardown(t);
		return;
	}
	tls_progress(t);
}

/* Hands the pending output to the inner flow, if none is in flight. */
static void tls_flush(struct tls_flow *t)
{
	if (t->out_writing || t->out_len == 0 || t->out_err != 0)
		return;
	struct rill_buf *b = t->out;
	b->len = t->out_len;
	t->out = NULL;
	t->out_len = t->out_cap = 0;
	t->out_writing = true;
	int err = rill_write(tls_inner(t), b, tls_inner_write_cb, t);
	rill_buf_release(b);
	if (err != 0) {
		t->out_writing = false;
		t->out_err = err;
	}
}

static void tls_inner_read_cb(struct rill_flow *inner, int status,
                              struct rill_buf *buf, void *ud)
{
	(void)inner;
	struct tls_flow *t = ud;
	t->in_reading = false;
	if (status == 0) {
		if (!t->hs_done && t->first_n < sizeof t->first) {
			size_t k = sizeof t->first - t->first_n;
			if (k > buf->len)
				k = buf->len;
			memcpy(t->first + t->first_n, buf->data, k);
			t->first_n += k;
		}
		t->in = buf;
		t->in_off = 0;
	} else {
		t->in_status = status;
	}
	tls_progress(t);
}

/* Starts one inner read. Returns false when the read failed at once (the
 * failure is now in_status, so OpenSSL can be run again to see it). */
static bool tls_read_inner(struct tls_flow *t)
{
	if (t->in_reading || t->in != NULL || t->in_status != 0)
		return true;
	t->in_reading = true;
	int err = rill_read(tls_inner(t), tls_inner_read_cb, t);
	if (err != 0) {
		t->in_reading = false;
		t->in_status = err;
		return false;
	}
	return true;
}

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

/*
 * Maps a failed OpenSSL call (ret, with the thread's error queue) to a
 * rill code, and writes what failed to msg. `what` names the operation
 * ("handshake", "read"...). Clears the error queue.
 */
static int tls_map_error(struct tls_flow *t, int ret, const char *what,
                         char *msg, size_t len)
{
	int e = SSL_get_error(t->ssl, ret);
	unsigned long ee = ERR_peek_error();
	int reason = ERR_GET_LIB(ee) == ERR_LIB_SSL ? ERR_GET_REASON(ee) : 0;
	char detail[256] = "";
	if (ee != 0)
		ERR_error_string_n(ee, detail, sizeof detail);
	ERR_clear_error();
	int code;

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
	    (t->verify_err != 0 && !t->hs_done)) {
		int v = t->verify_err != 0 ? t->verify_err
		                           : (int)SSL_get_verify_result(t->ssl);
		code = tls_verify_code(v);
		const char *host = t->cfg->host;
		snprintf(msg, len,
		         "TLS %s: %s certificate verification failed: %s "
		         "(depth %d: %s%s%s%s)",
		         what,
		         t->cfg->role == RILL_TLS_CLIENT ? "server" : "client",
		         X509_verify_cert_error_string(v), t->verify_depth,
		         t->verify_subject,
		         code == RILL_ETLS_HOSTNAME ? "; expected \"" : "",
		         code == RILL_ETLS_HOSTNAME && host ? host : "",
		         code == RILL_ETLS_HOSTNAME ? "\"" : "");
		return code;
	}
	if (t->in == NULL && t->in_status != 0 &&
	    (e == SSL_ERROR_SYSCALL ||
	     reason == SSL_R_UNEXPECTED_EOF_WHILE_READING ||
	     e == SSL_ERROR_SSL)) {
		if (t->in_status == RILL_EOF) {
			snprintf(msg, len,
			         t->hs_done
			             ? "TLS %s: peer closed the connection "
			               "without close_notify (data may be "
			               "truncated)"
			             : "TLS %s: peer closed the connection "
			               "during the handshake",
			         what);
			return RILL_ETLS_TRUNCATED;
		}
		snprintf(msg, len, "TLS %s: reading from the %s flow below: %s",
		         what, rill_flow_kind(tls_inner(t)),
		         rill_strerror(t->in_status));
		return t->in_status;
	}
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
		if (t->cert_requested_none) {
			snprintf(msg, len,
			         "TLS %s: the server requires a client "
			         "certificate and none is configured (%s)",
			         what, detail);
			return RILL_ETLS_NO_CERT;
		}
		break;
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
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
		if (!t->hs_done) {
			snprintf(msg, len,
			         "TLS %s: peer does not speak TLS (%s)", what,
			         detail);
			return RILL_ETLS_NOT_TLS;
		}
		break;
	default: break;
	}
	code = t->hs_done ? RILL_ETLS : RILL_ETLS_HANDSHAKE;
	snprintf(msg, len, "TLS %s failed: %s", what,
	         detail[0] ? detail : "(no detail from OpenSSL)");
	return code;
}

/* ---------------------------------------------------------------------- */
/* Handshake */

static void tls_timer_closed(uv_handle_t *h)
{
	struct tls_flow *t = h->data;
	rill_free(t->alpn_sel);
	rill_free(t->peer_subject);
	if (t->hs_done)
		rill_flow_destroyed(&t->layer.base);
	else
		rill_flow_discard(&t->layer.base);
}

/* Frees everything but the flow itself (freed from the timer's close). */
static void tls_release(struct tls_flow *t)
{
	rill_close(t->layer.inner);
	t->layer.inner = NULL;
	SSL_free(t->ssl); /* frees the BIO too */
	t->ssl = NULL;
	rill_buf_release(t->in);
	t->in = NULL;
	rill_buf_release(t->out);
	t->out = NULL;
	rill_buf_release(t->rbuf);
	t->rbuf = NULL;
	rill_tls_config_free(t->cfg);
	t->cfg = NULL;
	uv_close((uv_handle_t *)&t->timer, tls_timer_closed);
}

static void tls_finish_teardown(struct tls_flow *t)
{
	if (t->ssl == NULL && t->cfg == NULL)
		return; /* already released */
	uv_timer_stop(&t->timer);
	tls_release(t);
}

static void tls_teardown_timeout(uv_timer_t *h)
{
	tls_finish_teardown(h->data);
}

/* The handshake failed: report it, then send what OpenSSL queued (the
 * alert that tells the peer why) before closing the stack. */
static void tls_hs_fail(struct tls_flow *t, int status, const char *msg)
{
	t->hs_failed = true;
	uv_timer_stop(&t->timer);
	rill_tls_attach_cb cb = t->attach_cb;
	void *ud = t->attach_ud;
	t->attach_cb = NULL;
	if (msg != t->errmsg)
		snprintf(t->errmsg, sizeof t->errmsg, "%s", msg);
	t->tearing_down = true;
	if (t->out_err == 0 && t->ssl != NULL)
		tls_flush(t);
	if (t->out_writing)
		uv_timer_start(&t->timer, tls_teardown_timeout, 1000, 0);
	if (cb != NULL)
		cb(NULL, status, t->errmsg, ud);
	if (!t->out_writing)
		tls_finish_teardown(t);
}

static void tls_hs_timeout(uv_timer_t *h)
{
	struct tls_flow *t = h->data;
	if (t->hs_done || t->hs_failed)
		return;
	snprintf(t->errmsg, sizeof t->errmsg,
	         "TLS handshake did not complete within %llu ms",
	         (unsigned long long)t->hs_ms);
	tls_hs_fail(t, RILL_ETIMEDOUT, t->errmsg);
}

static void tls_hs_step(struct tls_flow *t);

static void tls_hs_kick(uv_timer_t *h)
{
	struct tls_flow *t = h->data;
	if (t->hs_ms > 0)
		uv_timer_start(&t->timer, tls_hs_timeout, t->hs_ms, 0);
	tls_hs_step(t);
}

static void tls_hs_step(struct tls_flow *t)
{
	for (;;) {
		if (t->hs_done || t->hs_failed)
			return;
		ERR_clear_error();
		int r = SSL_do_handshake(t->ssl);
		if (r == 1) {
			t->hs_done = true;
			uv_timer_stop(&t->timer);
			tls_flush(t);
			rill_tls_attach_cb cb = t->attach_cb;
			t->attach_cb = NULL;
			cb(&t->layer.base, 0, NULL, t->attach_ud);
			return;
		}
		int e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ && t->out_err == 0) {
			tls_flush(t);
			if (t->out_err == 0) {
				if (tls_read_inner(t))
					return;
				continue; /* OpenSSL sees the failure */
			}
		}
		int code = tls_map_error(t, r, "handshake", t->errmsg,
		                         sizeof t->errmsg);
		if (code == RILL_EOF) {
			code = RILL_ETLS_HANDSHAKE;
			snprintf(t->errmsg, sizeof t->errmsg,
			         "TLS handshake: peer sent close_notify");
		}
		tls_hs_fail(t, code, t->errmsg);
		return;
	}
}

/* ---------------------------------------------------------------------- */
/* Data */

static void tls_write_step(struct tls_flow *t)
{
	struct rill_flow *f = &t->layer.base;
	while (t->w_active) {
		if (t->out_err != 0) {
			t->w_active = false;
			rill_flow_set_errmsg(
			    f,
			    "TLS write: writing to the %s flow "
			    "below: %s",
			    rill_flow_kind(tls_inner(t)),
			    rill_strerror(t->out_err));
			rill_flow_write_done(f, t->out_err);
			return;
		}
		if (t->w_i == t->w_n) {
			t->w_active = false;
			tls_flush(t);
			rill_flow_write_done(f, 0);
			return;
		}
		if (t->out_len >= TLS_OUT_HIGH)
			return; /* resumed when the inner write completes */
		struct rill_buf *b = t->w_bufs[t->w_i];
		size_t k = b->len - t->w_off;
		if (k > TLS_OUT_HIGH - t->out_len)
			k = TLS_OUT_HIGH - t->out_len;
		/* Size the output once for all the records of this slice. */
		if (tls_out_reserve(t, k + (k / 16384 + 1) *
		                               TLS_RECORD_SLACK) != 0) {
			t->out_err = RILL_ENOMEM;
			continue;
		}
		size_t done = 0;
		ERR_clear_error();
		int r = SSL_write_ex(t->ssl, b->data + t->w_off, k, &done);
		if (r != 1) {
			char msg[512];
			int code =
			    tls_map_error(t, r, "write", msg, sizeof msg);
			if (code == RILL_EOF)
				code = RILL_ECLOSED;
			t->w_active = false;
			rill_flow_set_errmsg(f, "%s", msg);
			rill_flow_write_done(f, code);
			return;
		}
		t->w_off += done;
		if (t->w_off == b->len) {
			t->w_i++;
			t->w_off = 0;
		}
		tls_flush(t); /* start sending while encrypting more */
	}
}

static void tls_inner_shutdown_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	struct tls_flow *t = ud;
	t->shut_state = SHUT_DONE;
	rill_flow_shutdown_done(&t->layer.base, status);
}

static void tls_shut_step(struct tls_flow *t)
{
	struct rill_flow *f = &t->layer.base;
	if (t->shut_state == SHUT_NOTIFY) {
		ERR_clear_error();
		int r = SSL_shutdown(t->ssl);
		if (r < 0 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
			/* The connection already failed (the peer's error is
			 * what reads report); there is no close_notify to
			 * send, but the flow below is still told. */
			ERR_clear_error();
		}
		t->shut_state = SHUT_FLUSH;
		tls_flush(t);
	}
	if (t->shut_state == SHUT_FLUSH) {
		if (t->out_err != 0) {
			t->shut_state = SHUT_DONE;
			rill_flow_set_errmsg(f,
			                     "TLS shutdown: writing to the %s "
			                     "flow below: %s",
			                     rill_flow_kind(tls_inner(t)),
			                     rill_strerror(t->out_err));
			rill_flow_shutdown_done(f, t->out_err);
			return;
		}
		if (t->out_writing || t->out_len > 0)
			return;
		t->shut_state = SHUT_INNER;
		int err = rill_shutdown(tls_inner(t), RILL_SHUT_WR,
		                        tls_inner_shutdown_cb, t);
		if (err != 0) {
			t->shut_state = SHUT_DONE;
			rill_flow_shutdown_done(f, err);
		}
	}
}

static size_t tls_read_size(struct tls_flow *t)
{
	/* Plaintext is never larger than the ciphertext it came from, so
	 * size the buffer by what is already here, within bounds. */
	size_t avail = (size_t)SSL_pending(t->ssl);
	if (t->in != NULL)
		avail += t->in->len - t->in_off;
	if (avail < TLS_READ_MIN)
		avail = TLS_READ_MIN;
	if (avail > TLS_READ_MAX)
		avail = TLS_READ_MAX;
	return avail;
}

static void tls_read_deliver(struct tls_flow *t)
{
	struct rill_flow *f = &t->layer.base;
	t->r_active = false;
	if (t->rlen > 0) {
		struct rill_buf *b = t->rbuf;
		b->len = t->rlen;
		t->rbuf = NULL;
		t->rlen = 0;
		rill_flow_read_done(f, 0, b);
		return;
	}
	if (t->r_final != RILL_EOF)
		rill_flow_set_errmsg(f, "%s", t->r_final_msg);
	rill_flow_read_done(f, t->r_final, NULL);
}

static void tls_read_step(struct tls_flow *t)
{
	if (!t->r_active)
		return;
	if (t->r_final != 0) {
		tls_read_deliver(t);
		return;
	}
	for (;;) {
		if (t->rbuf == NULL) {
			t->rbuf = rill_buf_new(tls_read_size(t));
			if (t->rbuf == NULL) {
				t->r_final = RILL_ENOMEM;
				snprintf(t->r_final_msg, sizeof t->r_final_msg,
				         "TLS read: out of memory");
				break;
			}
			t->rlen = 0;
		}
		if (t->rlen == t->rbuf->len)
			break;
		size_t n = 0;
		ERR_clear_error();
		int r = SSL_read_ex(t->ssl, t->rbuf->data + t->rlen,
		                    t->rbuf->len - t->rlen, &n);
		if (r == 1) {
			t->rlen += n;
			continue;
		}
		int e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ) {
			if (t->rlen > 0)
				break;
			tls_flush(t); /* e.g. a KeyUpdate answer */
			if (tls_read_inner(t))
				return;
			continue;
		}
		t->r_final = tls_map_error(t, r, "read", t->r_final_msg,
		                           sizeof t->r_final_msg);
		break;
	}
	tls_flush(t);
	tls_read_deliver(t);
}

/* Runs whatever can make progress after an inner completion. */
static void tls_progress(struct tls_flow *t)
{
	struct rill_flow *f = &t->layer.base;
	if (!t->hs_done) {
		tls_hs_step(t);
		return;
	}
	if (rill_flow_is_closed(f) || t->ssl == NULL)
		return;
	tls_flush(t);
	if (t->w_active) {
		tls_write_step(t);
		if (rill_flow_is_closed(f))
			return;
	}
	if (t->shut_state == SHUT_NOTIFY || t->shut_state == SHUT_FLUSH) {
		tls_shut_step(t);
		if (rill_flow_is_closed(f))
			return;
	}
	if (t->r_active)
		tls_read_step(t);
}

/* ---------------------------------------------------------------------- */
/* Flow operations */

static void tls_read(struct rill_flow *f)
{
	struct tls_flow *t = tls_of(f);
	t->r_active = true;
	tls_read_step(t);
}

static void tls_write(struct rill_flow *f, struct rill_buf *const *bufs,
                      size_t n)
{
	struct tls_flow *t = tls_of(f);
	t->w_bufs = bufs;
	t->w_n = n;
	t->w_i = 0;
	t->w_off = 0;
	t->w_active = true;
	tls_write_step(t);
}

static void tls_shutdown_write(struct rill_flow *f)
{
	struct tls_flow *t = tls_of(f);
	t->shut_state = SHUT_NOTIFY;
	tls_shut_step(t);
}

static void tls_close(struct rill_flow *f)
{
	struct tls_flow *t = tls_of(f);
	/* No close_notify: close does not wait (shutdown is the orderly
	 * way). Closing the inner flow cancels its pending callbacks. */
	tls_release(t);
}

static const struct rill_flow_ops tls_ops = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .shutdown_write = tls_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = tls_close,
    .address = rill_layer_address,
    .set_nodelay = rill_layer_set_nodelay,
    .set_keepalive = rill_layer_set_keepalive,
};

/* The same, under a name that shows the peer was not verified. */
static const struct rill_flow_ops tls_noverify_ops = {
    .name = "tls-noverify",
    .read = tls_read,
    .write = tls_write,
    .shutdown_write = tls_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = tls_close,
    .address = rill_layer_address,
    .set_nodelay = rill_layer_set_nodelay,
    .set_keepalive = rill_layer_set_keepalive,
};

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
	CRYPTO_THREAD_run_once(&tls_bio_once, tls_bio_init_method);
	if (tls_bio_method == NULL || tls_ex_index < 0)
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

void rill_tls_config_free(struct rill_tls_config *c)
{
	if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
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

/* Per-connection setup of the SSL object; returns 0 or sets msg. */
static int tls_setup_ssl(struct tls_flow *t, char *msg, size_t len)
{
	struct rill_tls_config *c = t->cfg;
	if (c->role == RILL_TLS_CLIENT && c->verify) {
		/* The system store (SSL_CERT_FILE / SSL_CERT_DIR honoured),
		 * loaded at the first attach that needs it: loading it costs
		 * milliseconds, wasted when set_ca replaces it. */
		pthread_mutex_lock(&c->lock);
		if (!c->ca_loaded) {
			SSL_CTX_set_default_verify_paths(c->ctx);
			ERR_clear_error();
			c->ca_loaded = true;
		}
		pthread_mutex_unlock(&c->lock);
	}
	t->ssl = SSL_new(c->ctx);
	t->bio = t->ssl != NULL ? BIO_new(tls_bio_method) : NULL;
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

int rill_tls_attach(struct rill_flow *inner, struct rill_tls_config *cfg,
                    rill_tls_attach_cb cb, void *ud)
{
	return rill__tls_attach(inner, cfg, 0, cb, ud);
}

int rill__tls_attach(struct rill_flow *inner, struct rill_tls_config *cfg,
                     uint64_t deadline_ms, rill_tls_attach_cb cb, void *ud)
{
	if (inner == NULL || cfg == NULL || cb == NULL) {
		rill_close(inner);
		rill__set_last_errmsg("rill_tls_attach: NULL argument");
		return RILL_EINVAL;
	}
	const struct rill_flow_ops *ops =
	    cfg->role == RILL_TLS_CLIENT && !cfg->verify ? &tls_noverify_ops
	                                                 : &tls_ops;
	struct rill_layer *l =
	    rill_layer_new(inner, ops, sizeof(struct tls_flow));
	if (l == NULL) {
		rill__set_last_errmsg("TLS: out of memory");
		return RILL_ENOMEM;
	}
	struct tls_flow *t = rill_container_of(l, struct tls_flow, layer);
	rill__tls_config_ref(cfg);
	t->cfg = cfg;
	t->attach_cb = cb;
	t->attach_ud = ud;
	t->hs_ms = deadline_ms > 0 ? deadline_ms : cfg->hs_ms;
	uv_timer_init(l->base.loop, &t->timer);
	t->timer.data = t;
	char msg[256];
	int err = tls_setup_ssl(t, msg, sizeof msg);
	if (err != 0) {
		rill__set_last_errmsg("%s", msg);
		t->hs_failed = true;
		tls_release(t);
		return err;
	}
	/* The handshake starts from the loop (so the callback can never run
	 * inside this call); the timer's first expiry starts it, then it
	 * becomes the handshake deadline. */
	uv_timer_start(&t->timer, tls_hs_kick, 0, 0);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Facts about a flow */

bool rill_flow_is_tls(struct rill_flow *f)
{
	return f != NULL && (f->ops == &tls_ops || f->ops == &tls_noverify_ops);
}

static SSL *tls_ssl_of(struct rill_flow *f)
{
	if (!rill_flow_is_tls(f) || rill_flow_is_closed(f))
		return NULL;
	return tls_of(f)->ssl;
}

const char *rill_tls_version(struct rill_flow *f)
{
	SSL *ssl = tls_ssl_of(f);
	return ssl != NULL ? SSL_get_version(ssl) : NULL;
}

const char *rill_tls_cipher(struct rill_flow *f)
{
	SSL *ssl = tls_ssl_of(f);
	return ssl != NULL ? SSL_get_cipher_name(ssl) : NULL;
}

const char *rill_tls_alpn(struct rill_flow *f)
{
	SSL *ssl = tls_ssl_of(f);
	if (ssl == NULL)
		return NULL;
	struct tls_flow *t = tls_of(f);
	if (t->alpn_sel == NULL) {
		const unsigned char *p = NULL;
		unsigned int n = 0;
		SSL_get0_alpn_selected(ssl, &p, &n);
		if (n == 0)
			return NULL;
		t->alpn_sel = rill_malloc(n + 1);
		if (t->alpn_sel == NULL)
			return NULL;
		memcpy(t->alpn_sel, p, n);
		t->alpn_sel[n] = '\0';
	}
	return t->alpn_sel;
}

const char *rill_tls_peer_subject(struct rill_flow *f)
{
	SSL *ssl = tls_ssl_of(f);
	if (ssl == NULL)
		return NULL;
	struct tls_flow *t = tls_of(f);
	if (t->peer_subject == NULL) {
		X509 *c = SSL_get0_peer_certificate(ssl);
		if (c == NULL)
			return NULL;
		BIO *m = BIO_new(BIO_s_mem());
		if (m == NULL)
			return NULL;
		X509_NAME_print_ex(m, X509_get_subject_name(c), 0,
		                   XN_FLAG_RFC2253);
		char *p = NULL;
		long n = BIO_get_mem_data(m, &p);
		t->peer_subject = rill_malloc((size_t)n + 1);
		if (t->peer_subject != NULL) {
			memcpy(t->peer_subject, p, (size_t)n);
			t->peer_subject[n] = '\0';
		}
		BIO_free(m);
	}
	return t->peer_subject;
}
