/*
 * The TLS layer's BIO over the flow below (bio.c), a leaf of
 * src/layer/tls/: config.c makes one per connection, flow.c grows the
 * pending output through it.
 */
#ifndef RILL_LAYER_TLS_BIO_H
#define RILL_LAYER_TLS_BIO_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/bio.h>

struct tls_flow;

/* The BIO method exists (made once per process). */
bool rill__tls_bio_ready(void);
/* A new BIO of the method (NULL on failure); its data is the tls_flow,
 * set by the caller with BIO_set_data. */
BIO *rill__tls_bio_new(void);
/* Makes room for need more bytes of pending output in t->out (one
 * buffer, so the flow below gets one large write). 0 or RILL_ENOMEM. */
int rill__tls_out_reserve(struct tls_flow *t, size_t need);
/* True while more output waits than writes ever leave (TLS_OUT_REPLY_MAX)
 * behind an inner write in flight: answers to what the peer sent
 * (KeyUpdate with update_requested) that it does not read. The layer
 * then reads nothing more until that write completes. */
bool rill__tls_replies_full(const struct tls_flow *t);

#endif
