/*
 * URI schemes (doc/uri.md): what a transport or layer implements
 * to be reachable by URI, and the parsed URI it is handed. This sits low
 * (core): transports and layers include it. The registry that lists every
 * scheme and composes connect / listen sits high, in src/uri.c (with
 * src/schemes.h); nothing here knows any transport or layer.
 *
 * A URI is  [layer+]*transport-part[?key=value&...]
 *   layers     "tls", "shut"... (outermost first)
 *   transport  "tcp://host:port", "unix:/path", "vsock://cid:port", "-"...
 * Every query parameter must be claimed by the transport or one of the
 * layers (their `params` lists); anything else is a clear error.
 *
 * Adding a scheme: implement a struct rill_transport_scheme (or
 * rill_layer_scheme) in your module, declare it in src/schemes.h and list
 * it in the tables in src/uri.c.
 */
#ifndef RILL_SCHEME_H
#define RILL_SCHEME_H

#include "rill/impl.h"

#define RILL_URI_MAX_LAYERS 8

struct rill_uri_param {
	char *key;
	char *value; /* "" when the URI said just "key" */
};

struct rill_uri {
	char *text;                        /* the whole URI, for messages */
	char *layers[RILL_URI_MAX_LAYERS]; /* outermost first */
	size_t nlayers;
	char *scheme; /* transport: "tcp", "unix"... */
	char *rest;   /* after "scheme:" (a "//" prefix kept), no query */
	struct rill_uri_param *params;
	size_t nparams;
	/* rill_connect's options while a connect runs (NULL when listening):
	 * what a layer takes from the caller besides the URI (proxy+). */
	const struct rill_connect_opts *connect_opts;
};

/* src/uri.c: parses text; 0 or RILL_EURI with rill_last_errmsg() set. Unknown
 * scheme names, unknown parameters and each scheme's own checks are errors. */
int rill__uri_parse(const char *text, struct rill_uri *out);
void rill__uri_free(struct rill_uri *u);

/* Decodes %XX escapes of s in place; false on a malformed escape or an
 * encoded NUL (s is then partly decoded). */
bool rill__uri_pct_decode(char *s);

/* The value of a query parameter, or NULL. */
const char *rill__uri_param(const struct rill_uri *u, const char *key);

/* Parses a decimal unsigned value of a parameter within [min, max];
 * missing -> *out = dflt. RILL_EURI (with message) when malformed. */
int rill__uri_param_u64(const struct rill_uri *u, const char *key, uint64_t min,
                        uint64_t max, uint64_t dflt, uint64_t *out);

/* Sets rill_last_errmsg to `<what> "<part>" in "<uri>"` and returns
 * RILL_EURI: the one shape of every URI error message. */
int rill__uri_error(const struct rill_uri *u, const char *what,
                    const char *part);

/* The one interface every transport listener implements. */
struct rill_listener_ops {
	void (*close)(struct rill_listener *l); /* free l, no callbacks after */
	int (*uri)(struct rill_listener *l, char *buf, size_t len);
};

struct rill_listener {
	const struct rill_listener_ops *ops;
	uv_loop_t *loop;
	rill_accept_cb cb;
	void *ud;
};

struct rill_transport_scheme {
	const char *name;          /* "tcp" */
	const char *const *params; /* accepted query keys, NULL-ended */
	/* Validates u->rest and params (message via rill__uri_error). */
	int (*check)(const struct rill_uri *u);
	/* Connects; completion through cb exactly once unless it returns
	 * an error. opts is never NULL. */
	int (*connect)(uv_loop_t *loop, const struct rill_uri *u,
	               const struct rill_connect_opts *opts, rill_connect_cb cb,
	               void *ud);
	/* Listens; NULL when the scheme cannot listen. opts never NULL. */
	int (*listen)(uv_loop_t *loop, const struct rill_uri *u,
	              const struct rill_listen_opts *opts, rill_accept_cb cb,
	              void *ud, struct rill_listener **out);
	/* Joins the group of acceptor, a listener this scheme's listen
	 * made (see rill_listen_opts.join); NULL when the scheme cannot. */
	int (*join)(uv_loop_t *loop, const struct rill_uri *u,
	            struct rill_listener *acceptor, rill_accept_cb cb, void *ud,
	            struct rill_listener **out);
};

enum rill_layer_role { RILL_ROLE_CONNECT = 0, RILL_ROLE_ACCEPT = 1 };

/* Completion of an attach: the layered flow (owned by the callee), or an
 * error with f NULL (inner already closed) and a message. */
typedef void (*rill_attach_cb)(struct rill_flow *f, int status,
                               const char *errmsg, void *ud);

struct rill_layer_scheme {
	const char *name;          /* "tls" */
	const char *const *params; /* accepted query keys, NULL-ended */
	int (*check)(const struct rill_uri *u); /* may be NULL */
	/*
	 * Attaches over inner, consuming it even on failure. role says which
	 * side of the connection this is (a TLS client or server...).
	 * deadline_ms (0: none) bounds any handshake. Completes through cb
	 * exactly once unless it returns an error (inner then closed).
	 */
	int (*attach)(struct rill_flow *inner, const struct rill_uri *u,
	              int role, uint64_t deadline_ms, rill_attach_cb cb,
	              void *ud);
};

#endif
