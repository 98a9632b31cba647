/*
 * The "tls" layer scheme of the URI registry (src/core/scheme.h):
 *
 *   tls+tcp://host:443?ca=FILE&sni=NAME&alpn=h2,http/1.1     (connect)
 *   tls+unix:/path?cert=FILE&key=FILE                        (listen)
 *
 * Connect (a TLS client) takes ca, capath, sni, verify=none, alpn, cert and
 * key (a client certificate), min/max (1.2, 1.3) and ciphers (TLS 1.3
 * suites, e.g. TLS_AES_128_GCM_SHA256). The name checked and sent as SNI
 * is sni=, else the host of the target= of a socks5+ or connect+ layer
 * beneath (the TLS peer is then the target), else the host of a tcp://
 * transport. Accept (a TLS server)
 * takes cert, key, ca/capath and verify-client (require a client
 * certificate), alpn, min/max and ciphers.
 *
 * Configurations are shared by the flows made from the same parameters
 * while any of them is alive (a listener attaches one per accepted
 * connection, and loading certificates costs more than a handshake); the
 * system CA store is loaded once per process. A changed certificate file
 * is picked up once no flow uses the old configuration.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "layer/tls/tls_internal.h"
#include "core/scheme.h"

static const char *const tls_params[] = {
    "ca",   "capath", "sni", "verify", "verify-client", "alpn",
    "cert", "key",    "min", "max",    "ciphers",       NULL,
};

static int tls_parse_version(const struct rill_uri *u, const char *key,
                             int *out)
{
	const char *v = rill__uri_param(u, key);
	*out = 0;
	if (v == NULL)
		return 0;
	if (strcmp(v, "1.2") == 0)
		*out = RILL_TLS_1_2;
	else if (strcmp(v, "1.3") == 0)
		*out = RILL_TLS_1_3;
	else
		return rill__uri_error(u,
		                       key[1] == 'i' ? "bad TLS min version"
		                                     : "bad TLS max version",
		                       v);
	return 0;
}

static bool tls_flag(const char *v, bool *out)
{
	if (strcmp(v, "") == 0 || strcmp(v, "1") == 0 ||
	    strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
	    strcmp(v, "require") == 0 || strcmp(v, "peer") == 0) {
		*out = true;
		return true;
	}
	if (strcmp(v, "0") == 0 || strcmp(v, "no") == 0 ||
	    strcmp(v, "false") == 0 || strcmp(v, "none") == 0) {
		*out = false;
		return true;
	}
	return false;
}

static int tls_check(const struct rill_uri *u)
{
	int v;
	int err = tls_parse_version(u, "min", &v);
	if (err == 0)
		err = tls_parse_version(u, "max", &v);
	bool b;
	const char *s = rill__uri_param(u, "verify");
	if (err == 0 && s != NULL && !tls_flag(s, &b))
		err = rill__uri_error(u, "bad verify value (none or peer)", s);
	s = rill__uri_param(u, "verify-client");
	if (err == 0 && s != NULL && !tls_flag(s, &b))
		err = rill__uri_error(u, "bad verify-client value", s);
	s = rill__uri_param(u, "alpn");
	if (err == 0 && s != NULL) {
		/* Validate the list shape once here, not at each attach. */
		struct rill_tls_config *c =
		    rill_tls_config_new(RILL_TLS_CLIENT);
		if (c == NULL)
			return RILL_ENOMEM;
		if (rill_tls_config_set_alpn(c, s) != 0)
			err = rill__uri_error(u, "bad ALPN list", s);
		rill_tls_config_free(c);
	}
	return err;
}

/*
 * True when TLS runs through a tunnel to `target=` (a socks5+ or connect+
 * layer beneath tls in the URI, as in tls+socks5+tcp://proxy?target=h:443):
 * the TLS peer is then the target, not the proxy.
 */
static bool tls_through_tunnel(const struct rill_uri *u)
{
	bool below = false;
	for (size_t i = 0; i < u->nlayers; i++) {
		if (strcmp(u->layers[i], "tls") == 0)
			below = true;
		else if (below && (strcmp(u->layers[i], "socks5") == 0 ||
		                   strcmp(u->layers[i], "connect") == 0))
			return rill__uri_param(u, "target") != NULL;
	}
	return false;
}

/* The host of "//host:port" or "//[v6]:port" (of the tunnel's target=
 * "host:port" when there is one) into out; false if none. */
static bool tls_uri_host(const struct rill_uri *u, char *out, size_t len)
{
	const char *r = u->rest;
	char tg[300];
	if (tls_through_tunnel(u)) {
		snprintf(tg, sizeof tg, "//%s", rill__uri_param(u, "target"));
		r = tg;
	}
	if (r == NULL || strncmp(r, "//", 2) != 0)
		return false;
	r += 2;
	size_t n;
	if (*r == '[') {
		const char *end = strchr(r, ']');
		if (end == NULL)
			return false;
		r++;
		n = (size_t)(end - r);
	} else {
		const char *end = r + strcspn(r, "/");
		const char *colon = NULL;
		for (const char *p = r; p < end; p++)
			if (*p == ':')
				colon = p;
		n = (size_t)((colon != NULL ? colon : end) - r);
	}
	if (n == 0 || n >= len)
		return false;
	memcpy(out, r, n);
	out[n] = '\0';
	return true;
}

/* Builds a configuration from the URI; NULL with rill_last_errmsg set. */
static struct rill_tls_config *tls_config_from_uri(const struct rill_uri *u,
                                                   int role, const char *host,
                                                   int *errp)
{
	struct rill_tls_config *c = rill_tls_config_new(role);
	int err = c == NULL ? RILL_ENOMEM : 0;
	const char *ca = rill__uri_param(u, "ca");
	const char *capath = rill__uri_param(u, "capath");
	const char *cert = rill__uri_param(u, "cert");
	const char *key = rill__uri_param(u, "key");
	const char *alpn = rill__uri_param(u, "alpn");
	const char *ciphers = rill__uri_param(u, "ciphers");
	const char *verify = rill__uri_param(
	    u, role == RILL_TLS_CLIENT ? "verify" : "verify-client");
	int min = 0, max = 0;
	bool on = role == RILL_TLS_CLIENT;
	if (verify != NULL)
		tls_flag(verify, &on);
	if (err == 0 && (ca != NULL || capath != NULL))
		err = rill_tls_config_set_ca(c, ca, capath);
	if (err == 0 && cert != NULL)
		err = rill_tls_config_set_cert(c, cert, key);
	if (err == 0 && cert == NULL && key != NULL) {
		rill__set_last_errmsg("TLS: key= without cert=");
		err = RILL_EINVAL;
	}
	if (err == 0 && role == RILL_TLS_SERVER && cert == NULL) {
		rill__set_last_errmsg("TLS server: no certificate; give "
		                      "cert=FILE (and key=FILE)");
		err = RILL_EINVAL;
	}
	if (err == 0 && alpn != NULL)
		err = rill_tls_config_set_alpn(c, alpn);
	if (err == 0)
		err = rill_tls_config_set_verify(c, on);
	if (err == 0 && host != NULL)
		err = rill_tls_config_set_hostname(c, host);
	if (err == 0)
		err = tls_parse_version(u, "min", &min);
	if (err == 0)
		err = tls_parse_version(u, "max", &max);
	if (err == 0 && rill_tls_config_set_versions(c, min, max) != 0) {
		rill__set_last_errmsg("TLS: min version above max version");
		err = RILL_EINVAL;
	}
	if (err == 0 && ciphers != NULL)
		err = rill_tls_config_set_ciphers(c, ciphers, NULL);
	if (err != 0) {
		rill_tls_config_free(c);
		*errp = err;
		return NULL;
	}
	return c;
}

/* ---------------------------------------------------------------------- */
/* The cache: key -> configuration, without holding a reference. A
 * configuration stays listed while some flow (or attach) uses it, and is
 * unlisted by its last release, so nothing outlives the flows. (The
 * costly part for clients, the system CA store, is shared separately.) */

#define TLS_CACHE_SLOTS 32

struct tls_cache_slot {
	char *key;
	struct rill_tls_config *cfg;
};

static pthread_mutex_t tls_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_cache_slot tls_cache[TLS_CACHE_SLOTS];

static char *tls_cache_key(const struct rill_uri *u, int role, const char *host)
{
	size_t len = 16 + (host ? strlen(host) : 0);
	for (size_t i = 0; tls_params[i] != NULL; i++) {
		const char *v = rill__uri_param(u, tls_params[i]);
		len += strlen(tls_params[i]) + 2 + (v ? strlen(v) : 0);
	}
	char *k = rill_malloc(len);
	if (k == NULL)
		return NULL;
	size_t o = (size_t)snprintf(k, len, "%d\n%s\n", role, host ? host : "");
	for (size_t i = 0; tls_params[i] != NULL; i++) {
		const char *v = rill__uri_param(u, tls_params[i]);
		if (v != NULL)
			o += (size_t)snprintf(k + o, len - o, "%s=%s\n",
			                      tls_params[i], v);
	}
	return k;
}

/* The release hook of cached configurations. */
static bool tls_cache_release(struct rill_tls_config *c)
{
	pthread_mutex_lock(&tls_cache_lock);
	bool last = rill__tls_config_unref(c) == 0;
	if (last) {
		for (size_t i = 0; i < TLS_CACHE_SLOTS; i++) {
			if (tls_cache[i].cfg == c) {
				rill_free(tls_cache[i].key);
				tls_cache[i].key = NULL;
				tls_cache[i].cfg = NULL;
			}
		}
	}
	pthread_mutex_unlock(&tls_cache_lock);
	return last;
}

/* A configuration for (u, role, host), with a reference for the caller. */
static struct rill_tls_config *
tls_config_get(const struct rill_uri *u, int role, const char *host, int *errp)
{
	char *key = tls_cache_key(u, role, host);
	if (key == NULL) {
		*errp = RILL_ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&tls_cache_lock);
	for (size_t i = 0; i < TLS_CACHE_SLOTS; i++) {
		struct tls_cache_slot *s = &tls_cache[i];
		if (s->key != NULL && strcmp(s->key, key) == 0) {
			struct rill_tls_config *c = s->cfg;
			rill__tls_config_ref(c);
			pthread_mutex_unlock(&tls_cache_lock);
			rill_free(key);
			return c;
		}
	}
	pthread_mutex_unlock(&tls_cache_lock);
	/* Built outside the lock: it reads files. Two threads may build the
	 * same one; then only the first is listed. */
	struct rill_tls_config *c = tls_config_from_uri(u, role, host, errp);
	if (c == NULL) {
		rill_free(key);
		return NULL;
	}
	pthread_mutex_lock(&tls_cache_lock);
	struct tls_cache_slot *free_slot = NULL;
	for (size_t i = 0; i < TLS_CACHE_SLOTS; i++) {
		if (tls_cache[i].key == NULL) {
			free_slot = &tls_cache[i];
			break;
		}
		if (strcmp(tls_cache[i].key, key) == 0)
			break; /* another thread listed one meanwhile */
	}
	if (free_slot != NULL) {
		free_slot->key = key;
		free_slot->cfg = c;
		rill__tls_config_set_release(c, tls_cache_release);
		key = NULL;
	}
	pthread_mutex_unlock(&tls_cache_lock);
	rill_free(key);
	return c;
}

static int tls_attach_uri(struct rill_flow *inner, const struct rill_uri *u,
                          int role, uint64_t deadline_ms, rill_attach_cb cb,
                          void *ud)
{
	int tls_role =
	    role == RILL_ROLE_ACCEPT ? RILL_TLS_SERVER : RILL_TLS_CLIENT;
	char hostbuf[256];
	const char *host = NULL;
	if (tls_role == RILL_TLS_CLIENT) {
		host = rill__uri_param(u, "sni");
		if (host == NULL && tls_uri_host(u, hostbuf, sizeof hostbuf))
			host = hostbuf;
	}
	int err = 0;
	struct rill_tls_config *c = tls_config_get(u, tls_role, host, &err);
	if (c == NULL) {
		rill_close(inner);
		return err;
	}
	err = rill__tls_attach(inner, c, deadline_ms, cb, ud);
	rill_tls_config_free(c);
	return err;
}

const struct rill_layer_scheme rill__tls_scheme = {
    .name = "tls",
    .params = tls_params,
    .check = tls_check,
    .attach = tls_attach_uri,
};
