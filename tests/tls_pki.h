/*
 * Test certificates for the TLS tests, generated at run time with the
 * OpenSSL API (no private key is ever committed). The files live in a
 * temporary directory made once by the test program's parent process and
 * removed when it exits.
 */
#ifndef RILL_TEST_TLS_PKI_H
#define RILL_TEST_TLS_PKI_H

#define TLS_PKI_PATH 320

struct tls_pki {
	char dir[256];
	/* CA that signs the good certificates */
	char ca[TLS_PKI_PATH];
	/* CN=localhost, DNS:localhost, IP:127.0.0.1, signed by ca */
	char server[TLS_PKI_PATH], server_key[TLS_PKI_PATH];
	/* the same, but expired yesterday */
	char expired[TLS_PKI_PATH], expired_key[TLS_PKI_PATH];
	/* CN=localhost, self-signed */
	char selfsigned[TLS_PKI_PATH], selfsigned_key[TLS_PKI_PATH];
	/* CN=localhost signed by another CA nobody trusts */
	char unknown[TLS_PKI_PATH], unknown_key[TLS_PKI_PATH];
	/* CN=other.example, DNS:other.example, signed by ca */
	char otherhost[TLS_PKI_PATH], otherhost_key[TLS_PKI_PATH];
	/* CN=rill-client, signed by ca */
	char client[TLS_PKI_PATH], client_key[TLS_PKI_PATH];
};

/* The certificates (generated at program start); aborts the test with a
 * failure if generation failed. */
const struct tls_pki *tls_pki(void);

#endif
