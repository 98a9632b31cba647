/*
 * The TLS layer: OpenSSL 3 over any flow (include/rill/tls.h).
 *
 * OpenSSL talks to the flow below through a BIO of our own (bio.c),
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

#include "core/core.h"
#include "layer/tls/bio.h"
#include "layer/tls/tls_internal.h"

static const struct rill_flow_ops tls_ops;

static void tls_progress(struct tls_flow *t);

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
	if (t->rd_shut && t->hs_done) {
		rill_buf_release(buf);
		return;
	}
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
		int code = rill__tls_map_error(t, r, "handshake", t->errmsg,
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
		/* Small pieces in a row (an HTTP head and a small body) go
		 * out as one record, not one record each. */
		uint8_t small[TLS_COALESCE_MAX];
		const uint8_t *src = b->data + t->w_off;
		size_t whole = 0; /* buffers after b taken whole */
		if (k == b->len - t->w_off && t->w_i + 1 < t->w_n &&
		    k + t->w_bufs[t->w_i + 1]->len <= sizeof small &&
		    t->out_len + sizeof small <= TLS_OUT_HIGH) {
			memcpy(small, src, k);
			while (t->w_i + 1 + whole < t->w_n) {
				const struct rill_buf *nb =
				    t->w_bufs[t->w_i + 1 + whole];
				if (k + nb->len > sizeof small)
					break;
				memcpy(small + k, nb->data, nb->len);
				k += nb->len;
				whole++;
			}
			src = small;
		}
		/* Size the output once for all the records of this slice. */
		if (rill__tls_out_reserve(t, k + (k / 16384 + 1) *
		                                     TLS_RECORD_SLACK) != 0) {
			t->out_err = RILL_ENOMEM;
			continue;
		}
		size_t done = 0;
		ERR_clear_error();
		int r = SSL_write_ex(t->ssl, src, k, &done);
		if (r != 1) {
			char msg[512];
			int code =
			    rill__tls_map_error(t, r, "write", msg, sizeof msg);
			if (code == RILL_EOF)
				code = RILL_ECLOSED;
			t->w_active = false;
			rill_flow_set_errmsg(f, "%s", msg);
			rill_flow_write_done(f, code);
			return;
		}
		if (whole > 0) {
			/* All or nothing: the BIO takes every record. */
			t->w_i += 1 + whole;
			t->w_off = 0;
		} else {
			t->w_off += done;
			if (t->w_off == b->len) {
				t->w_i++;
				t->w_off = 0;
			}
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
		if (err == RILL_ENOHALFCLOSE) {
			/* The flow below cannot end one direction alone
			 * (reads of it are still open): close_notify said it
			 * in band; the flow below ends at close. */
			t->shut_state = SHUT_DONE;
			rill_flow_shutdown_done(f, 0);
		} else if (err != 0) {
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
	if (!t->r_active || t->rd_shut)
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
			/* Answers pile up: the peer asks and does not read.
			 * Read on once the inner write completes
			 * (tls_progress). */
			if (rill__tls_replies_full(t))
				return;
			if (tls_read_inner(t))
				return;
			continue;
		}
		t->r_final = rill__tls_map_error(t, r, "read", t->r_final_msg,
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
	/*
	 * Close does not wait for the peer, but it ends the stream properly
	 * where it can: what was already encrypted, then a close_notify, are
	 * sent in the background (bounded by TLS_CLOSE_FLUSH_MS) before the
	 * stack below is closed. So a peer sees EOF after a close, and
	 * RILL_ETLS_TRUNCATED keeps meaning "cut off by something else".
	 */
	if (t->ssl != NULL && t->out_err == 0 && t->shut_state == SHUT_NONE &&
	    !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
		ERR_clear_error();
		SSL_shutdown(t->ssl);
		ERR_clear_error();
	}
	t->r_active = false;
	t->w_active = false;
	if (t->ssl != NULL && t->out_err == 0 &&
	    (t->out_len > 0 || t->out_writing)) {
		t->tearing_down = true;
		tls_flush(t);
		if (t->out_writing) {
			uv_timer_start(&t->timer, tls_teardown_timeout,
			               TLS_CLOSE_FLUSH_MS, 0);
			return;
		}
	}
	tls_release(t);
}

static void tls_shutdown_read(struct rill_flow *f)
{
	struct tls_flow *t = tls_of(f);
	/* Reads are over: what arrives below is dropped, and the end of the
	 * stream below (the inner read shut down too) is not a truncation
	 * that would fail the TLS connection's writes. */
	t->rd_shut = true;
	t->r_active = false;
	rill_layer_shutdown_read(f);
}

static const struct rill_flow_ops tls_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .shutdown_write = tls_shutdown_write,
    .shutdown_read = tls_shutdown_read,
    .close = tls_close,
    .address = rill_layer_address,
    .set_nodelay = rill_layer_set_nodelay,
    .set_keepalive = rill_layer_set_keepalive,
};

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
	struct rill_layer *l =
	    rill_layer_new(inner, &tls_ops, sizeof(struct tls_flow));
	if (l == NULL) {
		rill__set_last_errmsg("TLS: out of memory");
		return RILL_ENOMEM;
	}
	/* A name that shows the peer was not verified. */
	if (cfg->role == RILL_TLS_CLIENT && !cfg->verify)
		rill_flow_set_kind(&l->base, "tls-noverify");
	struct tls_flow *t = rill_container_of(l, struct tls_flow, layer);
	rill__tls_config_ref(cfg);
	t->cfg = cfg;
	t->attach_cb = cb;
	t->attach_ud = ud;
	t->hs_ms = deadline_ms > 0 ? deadline_ms : cfg->hs_ms;
	uv_timer_init(l->base.loop, &t->timer);
	t->timer.data = t;
	char msg[256];
	int err = rill__tls_setup_ssl(t, msg, sizeof msg);
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
	return f != NULL && f->ops == &tls_ops;
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
