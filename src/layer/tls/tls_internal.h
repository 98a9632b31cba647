/*
 * The TLS layer's internals (include/rill/tls.h), shared by the files of
 * src/layer/tls/ and by nothing else:
 *
 *   uri.c     the "tls" layer scheme: URI parameters to configurations
 *   flow.c    the record path: handshake, encrypting writes, decrypting
 *             reads, close_notify, teardown
 *   config.c  configurations (certificates, CAs, verification, ALPN,
 *             versions) and the per-connection SSL setup
 *   error.c   OpenSSL failures mapped to rill codes with a message
 *   bio.c     the BIO between OpenSSL and the flow below (bio.h)
 *
 * Calls between the files point one way, down this list: uri.c calls
 * flow.c and config.c; flow.c calls config.c, error.c and bio.c;
 * config.c calls bio.c; error.c and bio.c call none of the others.
 */
#ifndef RILL_TLS_INTERNAL_H
#define RILL_TLS_INTERNAL_H

#include <pthread.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "rill/impl.h"

/* Pending ciphertext beyond which the layer stops encrypting. */
#define TLS_OUT_HIGH (128u * 1024u)
/* Pending ciphertext beyond which the layer stops reading the flow below:
 * more than writes ever leave (TLS_OUT_HIGH and the records' overhead),
 * so only answers to what the peer sent get there (KeyUpdate with
 * update_requested, RFC 8446 4.6.3), from a peer that does not read
 * them. */
#define TLS_OUT_REPLY_MAX (TLS_OUT_HIGH + 64u * 1024u)
/* Consecutive write buffers that fit one record's plaintext (16 KiB,
 * RFC 8446 5.1) together are gathered and encrypted as one record. */
#define TLS_COALESCE_MAX 16384u
/* How long a close may spend sending the last output and close_notify. */
#define TLS_CLOSE_FLUSH_MS 5000u
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
	/* Where the CAs come from, for error messages: "CA file \"x\"",
	 * or empty for the system store. Written under lock. */
	char ca_desc[512];
	pthread_mutex_t lock;
	/* Drops a reference for a cache that lists c; true when it was the
	 * last (see rill__tls_config_set_release). */
	bool (*release)(struct rill_tls_config *c);
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

	bool tearing_down; /* closing: flushing the last output, then gone */
	bool rd_shut;      /* reads shut down locally */
	char *alpn_sel;
	char *peer_subject;
	char errmsg[1024];
};

/* Takes one more reference to a configuration (rill_tls_config_free
 * drops one). */
void rill__tls_config_ref(struct rill_tls_config *c);

/* Drops one reference; returns how many are left (the caller frees
 * nothing: for release hooks). */
int rill__tls_config_unref(struct rill_tls_config *c);

/*
 * Makes rill_tls_config_free(c) call release(c) instead of dropping the
 * reference itself: release drops it (rill__tls_config_unref) under the
 * lock of a cache that lists c, unlists c when it was the last, and
 * returns true then (c is freed).
 */
void rill__tls_config_set_release(struct rill_tls_config *c,
                                  bool (*release)(struct rill_tls_config *));

/*
 * rill_tls_attach with a handshake deadline that overrides the
 * configuration's (0: keep the configuration's).
 */
int rill__tls_attach(struct rill_flow *inner, struct rill_tls_config *cfg,
                     uint64_t deadline_ms, rill_tls_attach_cb cb, void *ud);

static inline struct tls_flow *tls_of(struct rill_flow *f)
{
	return rill_container_of(f, struct tls_flow, layer.base);
}

static inline struct rill_flow *tls_inner(struct tls_flow *t)
{
	return t->layer.inner;
}

/* config.c: per-connection setup of t->ssl and t->bio from t->cfg;
 * returns 0, or an error with msg set. */
int rill__tls_setup_ssl(struct tls_flow *t, char *msg, size_t len);

/*
 * error.c: maps a failed OpenSSL call (ret, with the thread's error
 * queue) to a rill code, and writes what failed to msg. `what` names the
 * operation ("handshake", "read"...). Clears the error queue.
 */
int rill__tls_map_error(struct tls_flow *t, int ret, const char *what,
                        char *msg, size_t len);

#endif
