/*
 * rill/tls.h - the TLS layer (OpenSSL 3) over any flow.
 * Included by rill.h; do not include directly.
 *
 * A TLS flow is a layer: it attaches to any connected flow (TCP, Unix,
 * vsock, a shared-memory ring, the shut layer, an in-memory pair...) and
 * knows that flow only through the flow API.
 *
 *   struct rill_tls_config *c = rill_tls_config_new(RILL_TLS_CLIENT);
 *   rill_tls_config_set_hostname(c, "example.org");  // SNI + verification
 *   rill_tls_attach(tcp_flow, c, on_ready, ud);      // consumes tcp_flow
 *   rill_tls_config_free(c);                         // attach keeps a ref
 *
 * Safe by default: a client verifies the peer's certificate chain against
 * the system CA store (or the CA file/directory given) and checks that the
 * certificate names the host; it sends that name as SNI. Turning
 * verification off is one explicit call (rill_tls_config_set_verify) and
 * stays visible: such flows report the kind "tls-noverify".
 *
 * Contract mapping (doc/contract.md):
 *   rill_shutdown(RILL_SHUT_WR)  flushes, sends close_notify, then shuts
 *                                down the write side of the flow below.
 *                                Reading goes on (TLS 1.3 half-close).
 *   peer's close_notify          reads report RILL_EOF.
 *   EOF below, no close_notify   reads report RILL_ETLS_TRUNCATED (never a
 *                                silent EOF: the data may have been cut).
 *   rill_close                   closes the whole stack at once (no
 *                                close_notify: use shutdown to be orderly).
 * Handshake and certificate failures have their own codes (RILL_ETLS_*,
 * see rill.h); the message passed to the attach callback, and
 * rill_flow_errmsg() for later errors, say what failed.
 */
#ifndef RILL_TLS_H
#define RILL_TLS_H

#ifdef __cplusplus
extern "C" {
#endif

struct rill_tls_config;

enum rill_tls_role { RILL_TLS_CLIENT = 0, RILL_TLS_SERVER = 1 };

/* Protocol versions, for rill_tls_config_set_versions (wire values). */
enum rill_tls_version { RILL_TLS_1_2 = 0x0303, RILL_TLS_1_3 = 0x0304 };

/*
 * A new configuration for one role, with the safe defaults: TLS 1.2 to
 * 1.3; a client verifies the server (system CA store, host name); a server
 * does not ask for a client certificate. NULL on ENOMEM. A configuration
 * may be shared by any number of flows (on one or several threads once
 * it is no longer being changed); the flows keep what they need.
 */
RILL_EXTERN struct rill_tls_config *rill_tls_config_new(int role);

/* Drops the caller's reference. Flows attached with it are unaffected.
 * NULL is a no-op. */
RILL_EXTERN void rill_tls_config_free(struct rill_tls_config *c);

/*
 * Trust anchors: a PEM file of CA certificates and/or a hashed directory
 * (c_rehash layout); either may be NULL. Replaces the system store (a
 * client's default). On a server it is what client certificates are
 * checked against. Returns 0, RILL_EINVAL, or RILL_ETLS when a file cannot
 * be loaded (rill_last_errmsg() says why).
 */
RILL_EXTERN int rill_tls_config_set_ca(struct rill_tls_config *c,
                                       const char *file, const char *dir);

/*
 * Client: the name sent as SNI and checked against the certificate. An IP
 * address literal is checked against the certificate's IP addresses and is
 * not sent as SNI (RFC 6066 section 3). Copied. Without a name (and with
 * verification on) the attach fails with RILL_ETLS_HOSTNAME.
 * Returns 0, RILL_EINVAL, RILL_ENOMEM.
 */
RILL_EXTERN int rill_tls_config_set_hostname(struct rill_tls_config *c,
                                             const char *name);

/*
 * Client: on (the default) verifies the server's certificate and name;
 * off accepts any certificate (the flows' kind then reads
 * "tls-noverify"). Server: on requires a certificate from every client,
 * verified against the CA of set_ca; off (the default) asks for none.
 * Returns 0 or RILL_EINVAL.
 */
RILL_EXTERN int rill_tls_config_set_verify(struct rill_tls_config *c, bool on);

/*
 * The certificate chain (PEM: leaf first, then intermediates) and its
 * private key (PEM; NULL: the key is in chain_file). Required for a
 * server; optional for a client (a client certificate). Returns 0,
 * RILL_EINVAL, or RILL_ETLS when a file cannot be loaded or the key does
 * not match (rill_last_errmsg() says which).
 */
RILL_EXTERN int rill_tls_config_set_cert(struct rill_tls_config *c,
                                         const char *chain_file,
                                         const char *key_file);

/*
 * ALPN protocols, comma-separated in order of preference ("h2,http/1.1").
 * A client offers them; a server picks the first of its own list that the
 * client offered (none in common: the handshake goes on without ALPN).
 * NULL or "" clears. Returns 0, RILL_EINVAL (an empty or >255-byte name),
 * RILL_ENOMEM.
 */
RILL_EXTERN int rill_tls_config_set_alpn(struct rill_tls_config *c,
                                         const char *list);

/*
 * Lowest and highest protocol version (RILL_TLS_1_2, RILL_TLS_1_3; 0 keeps
 * the default for that end). Returns 0 or RILL_EINVAL.
 */
RILL_EXTERN int rill_tls_config_set_versions(struct rill_tls_config *c, int min,
                                             int max);

/*
 * Cipher choices in OpenSSL's syntax: `tls13` for TLS 1.3 suites
 * ("TLS_AES_128_GCM_SHA256"), `tls12` for TLS 1.2 cipher lists; NULL
 * keeps the default. Returns 0, RILL_EINVAL or RILL_ETLS (no cipher
 * matched).
 */
RILL_EXTERN int rill_tls_config_set_ciphers(struct rill_tls_config *c,
                                            const char *tls13,
                                            const char *tls12);

/* Deadline for the whole handshake in ms (0: none, the default); expiry
 * fails the attach with RILL_ETIMEDOUT. Returns 0 or RILL_EINVAL. */
RILL_EXTERN int rill_tls_config_set_handshake_timeout(struct rill_tls_config *c,
                                                      uint64_t ms);

/*
 * Attach completion: status 0 and the TLS flow f (owned by the callee, who
 * closes it) once the handshake succeeded; or a negative error with f NULL
 * and errmsg (never NULL, valid during the call) saying what failed:
 * RILL_ETLS_CERT_EXPIRED, RILL_ETLS_HOSTNAME, RILL_ETLS_UNKNOWN_CA,
 * RILL_ETLS_SELF_SIGNED, RILL_ETLS_CERT (other certificate problems),
 * RILL_ETLS_VERSION, RILL_ETLS_NO_CERT (a client certificate was required
 * and not sent), RILL_ETLS_NOT_TLS (the peer speaks something else),
 * RILL_ETLS_HANDSHAKE (anything else in the handshake),
 * RILL_ETLS_TRUNCATED (the peer hung up), RILL_ETIMEDOUT (deadline), or
 * an error of the flow below.
 */
typedef void (*rill_tls_attach_cb)(struct rill_flow *f, int status,
                                   const char *errmsg, void *ud);

/*
 * Starts a TLS handshake over inner in cfg's role. Consumes inner in every
 * case: it becomes part of the TLS flow, or is closed on failure. cfg may
 * be freed as soon as the call returns. cb is called exactly once, later,
 * from the loop, unless this returns an error. Closing the TLS flow closes
 * inner.
 * Returns 0, or synchronously (cb never called, inner closed):
 * RILL_EINVAL (a NULL argument; a server config without certificate),
 * RILL_ENOMEM, RILL_ETLS.
 */
RILL_EXTERN int rill_tls_attach(struct rill_flow *inner,
                                struct rill_tls_config *cfg,
                                rill_tls_attach_cb cb, void *ud);

/* Whether f is a TLS flow made by rill_tls_attach. */
RILL_EXTERN bool rill_flow_is_tls(struct rill_flow *f);

/*
 * Facts about an established TLS flow, as static or flow-owned strings
 * valid until f is closed; NULL when f is not a TLS flow or the fact is
 * absent: the negotiated version ("TLSv1.3"), cipher suite
 * ("TLS_AES_128_GCM_SHA256"), ALPN protocol ("h2"), and the subject of
 * the peer's certificate ("CN=localhost").
 */
RILL_EXTERN const char *rill_tls_version(struct rill_flow *f);
RILL_EXTERN const char *rill_tls_cipher(struct rill_flow *f);
RILL_EXTERN const char *rill_tls_alpn(struct rill_flow *f);
RILL_EXTERN const char *rill_tls_peer_subject(struct rill_flow *f);

#ifdef __cplusplus
}
#endif

#endif /* RILL_TLS_H */
