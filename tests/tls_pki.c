/* Generates the test PKI of tls_pki.h with the OpenSSL API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "harness.h"
#include "tls_pki.h"

static struct tls_pki pki;
static bool pki_ok;
static pid_t pki_owner;

struct pki_cert {
	EVP_PKEY *key;
	X509 *x;
};

static bool pki_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (e == NULL)
		return false;
	bool ok = X509_add_ext(x, e, -1) == 1;
	X509_EXTENSION_free(e);
	return ok;
}

/* A certificate for cn, valid [from, to] seconds from now, signed by
 * issuer (NULL: self-signed). san may be NULL. */
static bool pki_make(struct pki_cert *out, const char *cn, const char *san,
                     bool ca, long from, long to, const struct pki_cert *issuer)
{
	static long serial = 1;
	out->key = EVP_EC_gen("P-256");
	out->x = X509_new();
	if (out->key == NULL || out->x == NULL)
		return false;
	X509 *x = out->x;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                           (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x,
	                     issuer ? X509_get_subject_name(issuer->x) : name);
	X509_set_pubkey(x, out->key);
	X509 *ix = issuer ? issuer->x : x;
	if (ca) {
		if (!pki_ext(x, ix, NID_basic_constraints,
		             "critical,CA:TRUE") ||
		    !pki_ext(x, ix, NID_key_usage,
		             "critical,keyCertSign,cRLSign"))
			return false;
	} else {
		if (!pki_ext(x, ix, NID_basic_constraints, "CA:FALSE"))
			return false;
	}
	if (!pki_ext(x, ix, NID_subject_key_identifier, "hash"))
		return false;
	if (issuer != NULL &&
	    !pki_ext(x, ix, NID_authority_key_identifier, "keyid:always"))
		return false;
	if (san != NULL && !pki_ext(x, ix, NID_subject_alt_name, san))
		return false;
	return X509_sign(x, issuer ? issuer->key : out->key, EVP_sha256()) > 0;
}

static bool pki_write(const struct pki_cert *c, char *cert_path, char *key_path,
                      const char *stem)
{
	snprintf(cert_path, TLS_PKI_PATH, "%s/%s.pem", pki.dir, stem);
	FILE *f = fopen(cert_path, "w");
	if (f == NULL)
		return false;
	bool ok = PEM_write_X509(f, c->x) == 1;
	fclose(f);
	if (!ok || key_path == NULL)
		return ok;
	snprintf(key_path, TLS_PKI_PATH, "%s/%s.key", pki.dir, stem);
	f = fopen(key_path, "w");
	if (f == NULL)
		return false;
	ok = PEM_write_PrivateKey(f, c->key, NULL, NULL, 0, NULL, NULL) == 1;
	fclose(f);
	return ok;
}

static void pki_free(struct pki_cert *c)
{
	EVP_PKEY_free(c->key);
	X509_free(c->x);
}

#define DAY (24L * 3600L)

__attribute__((constructor)) static void pki_generate(void)
{
	th_tmp_template(pki.dir, sizeof pki.dir, "rill-tls-test");
	if (mkdtemp(pki.dir) == NULL)
		return;
	pki_owner = getpid();
	struct pki_cert ca = {0}, other_ca = {0}, srv = {0}, exp = {0},
	                ss = {0}, unk = {0}, oh = {0}, cli = {0};
	const char *lh = "DNS:localhost,IP:127.0.0.1,IP:::1";
	pki_ok =
	    pki_make(&ca, "rill test CA", NULL, true, -DAY, 30 * DAY, NULL) &&
	    pki_make(&other_ca, "unknown test CA", NULL, true, -DAY, 30 * DAY,
	             NULL) &&
	    pki_make(&srv, "localhost", lh, false, -DAY, 30 * DAY, &ca) &&
	    pki_make(&exp, "localhost", lh, false, -3 * DAY, -DAY, &ca) &&
	    pki_make(&ss, "localhost", lh, false, -DAY, 30 * DAY, NULL) &&
	    pki_make(&unk, "localhost", lh, false, -DAY, 30 * DAY, &other_ca) &&
	    pki_make(&oh, "other.example", "DNS:other.example", false, -DAY,
	             30 * DAY, &ca) &&
	    pki_make(&cli, "rill-client", NULL, false, -DAY, 30 * DAY, &ca) &&
	    pki_write(&ca, pki.ca, NULL, "ca") &&
	    pki_write(&srv, pki.server, pki.server_key, "server") &&
	    pki_write(&exp, pki.expired, pki.expired_key, "expired") &&
	    pki_write(&ss, pki.selfsigned, pki.selfsigned_key, "selfsigned") &&
	    pki_write(&unk, pki.unknown, pki.unknown_key, "unknown") &&
	    pki_write(&oh, pki.otherhost, pki.otherhost_key, "otherhost") &&
	    pki_write(&cli, pki.client, pki.client_key, "client");
	pki_free(&ca);
	pki_free(&other_ca);
	pki_free(&srv);
	pki_free(&exp);
	pki_free(&ss);
	pki_free(&unk);
	pki_free(&oh);
	pki_free(&cli);
}

__attribute__((destructor)) static void pki_remove(void)
{
	if (pki_owner != getpid() || pki.dir[0] == '\0')
		return;
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", pki.dir);
}

const struct tls_pki *tls_pki(void)
{
	if (!pki_ok)
		TH_FAIL("generating the test certificates failed");
	return &pki;
}
