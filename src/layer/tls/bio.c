/*
 * The TLS layer's BIO: OpenSSL reads ciphertext from the buffer the layer
 * read from the flow below (struct tls_flow's `in`) and appends what it
 * writes to the layer's pending output (`out`). See flow.c for how the
 * layer moves those buffers, and tls_internal.h for the layer's files.
 *
 * The BIO never blocks and calls nothing of the layer: reading with no
 * ciphertext buffered, or while answers pile up unsent
 * (rill__tls_replies_full), reports "retry" (the layer then reads the
 * flow below, or waits for its write), and writing always appends.
 */
#include <string.h>

#include <openssl/bio.h>

#include "layer/tls/bio.h"
#include "layer/tls/tls_internal.h"

static BIO_METHOD *tls_bio_method;
static CRYPTO_ONCE tls_bio_once = CRYPTO_ONCE_STATIC_INIT;

static int tls_bio_read(BIO *b, char *dst, size_t n, size_t *got)
{
	struct tls_flow *t = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	*got = 0;
	if (rill__tls_replies_full(t)) {
		/* Not one more record until the answers waiting have left: a
		 * peer that asks for them and does not read them is held by
		 * the flow control below (tls_read_step waits too). */
		BIO_set_retry_read(b);
		return 0;
	}
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

int rill__tls_out_reserve(struct tls_flow *t, size_t need)
{
	if (t->out != NULL && t->out_cap - t->out_len >= need)
		return 0;
	size_t cap = t->out_len + need;
	if (cap < TLS_OUT_MIN)
		cap = TLS_OUT_MIN;
	/* Growing by what one record needs would copy the whole output for
	 * each small record appended (many KeyUpdate answers): double. */
	if (t->out != NULL && cap < 2 * t->out_cap)
		cap = 2 * t->out_cap;
	struct rill_buf *nb = rill_buf_new(cap);
	if (nb == NULL)
		return RILL_ENOMEM;
	if (t->out != NULL) {
		/* Rare: the estimate was short, or records that no write
		 * asked for (answers) come in a row. The copy keeps the output
		 * in one buffer, so the inner flow gets one large write. */
		memcpy(nb->data, t->out->data, t->out_len);
		rill_buf_release(t->out);
	}
	t->out = nb;
	t->out_cap = cap;
	return 0;
}

bool rill__tls_replies_full(const struct tls_flow *t)
{
	return t->out_writing && t->out_len >= TLS_OUT_REPLY_MAX;
}

static int tls_bio_write(BIO *b, const char *src, size_t n, size_t *put)
{
	struct tls_flow *t = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	*put = 0;
	if (t->out_err != 0)
		return 0;
	if (rill__tls_out_reserve(t, n) != 0) {
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

bool rill__tls_bio_ready(void)
{
	CRYPTO_THREAD_run_once(&tls_bio_once, tls_bio_init_method);
	return tls_bio_method != NULL;
}

BIO *rill__tls_bio_new(void)
{
	return BIO_new(tls_bio_method);
}
