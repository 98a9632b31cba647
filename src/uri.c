/*
 * URI addressing: parse "[layer+]*scheme:rest[?k=v&...]", find the
 * transport and layers in the tables below, and compose connect / listen:
 * the transport opens the flow, then each layer attaches over it from the
 * innermost to the outermost.
 *
 * Errors name the wrong part, always in one shape:
 *   bad port "70000" in "tcp://h:70000"
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/core.h"
#include "core/scheme.h"
#include "schemes.h"

/* The registries: the scheme objects of every module (schemes.h), in
 * the order they are tried (NULL-terminated). */
/* One scheme per line keeps merges of this table easy. */
/* clang-format off */
static const struct rill_transport_scheme *const uri_transports[] = {
    &rill__tcp_scheme,
    &rill__unix_scheme,
    &rill__stdio_scheme,
    &rill__exec_scheme,
    &rill__fd_scheme,
    &rill__vsock_scheme,
    &rill__hvsock_scheme,
    &rill__hybrid_vsock_scheme,
    &rill__hyperkit_scheme,
    &rill__vchan_scheme,
    &rill__xen_vchan_scheme,
    NULL,
};
/* clang-format on */

static const struct rill_layer_scheme *const uri_layers[] = {
    &rill__shut_scheme,
    &rill__tls_scheme,
    &rill__socks5_scheme,
    &rill__connect_scheme,
    &rill__proxy_scheme,
    &rill__ws_scheme,
    NULL,
};

#define URI_DEFAULT_HANDSHAKE_MS   10000u
#define URI_DEFAULT_MAX_HANDSHAKES 1024u

/* ---------------------------------------------------------------------- */
/* Parsing */

static const struct rill_transport_scheme *uri_find_transport(const char *n)
{
	for (size_t i = 0; uri_transports[i] != NULL; i++)
		if (strcmp(uri_transports[i]->name, n) == 0)
			return uri_transports[i];
	return NULL;
}

static const struct rill_layer_scheme *uri_find_layer(const char *n)
{
	for (size_t i = 0; uri_layers[i] != NULL; i++)
		if (strcmp(uri_layers[i]->name, n) == 0)
			return uri_layers[i];
	return NULL;
}

static bool uri_list_has(const char *const *list, const char *key)
{
	for (size_t i = 0; list != NULL && list[i] != NULL; i++)
		if (strcmp(list[i], key) == 0)
			return true;
	return false;
}

static int uri_parse_query(struct rill_uri *u, char *q)
{
	size_t n = 1;
	for (char *p = q; *p != '\0'; p++)
		if (*p == '&')
			n++;
	u->params = rill_calloc(n, sizeof *u->params);
	if (u->params == NULL)
		return RILL_ENOMEM;
	char *save = NULL;
	for (char *tok = strtok_r(q, "&", &save); tok != NULL;
	     tok = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(tok, '=');
		char *val = "";
		if (eq != NULL) {
			*eq = '\0';
			val = eq + 1;
		}
		if (*tok == '\0')
			return rill__uri_error(u, "empty parameter name", tok);
		for (size_t i = 0; i < u->nparams; i++)
			if (strcmp(u->params[i].key, tok) == 0)
				return rill__uri_error(u, "repeated parameter",
				                       tok);
		struct rill_uri_param *p = &u->params[u->nparams];
		p->key = rill_strdup(tok);
		p->value = rill_strdup(val);
		if (p->key == NULL || p->value == NULL) {
			rill_free(p->key);
			rill_free(p->value);
			return RILL_ENOMEM;
		}
		u->nparams++;
		if (!rill__uri_pct_decode(p->value))
			return rill__uri_error(u, "bad escape in parameter",
			                       p->key);
	}
	return 0;
}

void rill__uri_free(struct rill_uri *u)
{
	if (u == NULL)
		return;
	rill_free(u->text);
	for (size_t i = 0; i < u->nlayers; i++)
		rill_free(u->layers[i]);
	rill_free(u->scheme);
	rill_free(u->rest);
	for (size_t i = 0; i < u->nparams; i++) {
		rill_free(u->params[i].key);
		rill_free(u->params[i].value);
	}
	rill_free(u->params);
	memset(u, 0, sizeof *u);
}

static bool uri_scheme_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '+';
}

static int uri_parse_inner(const char *text, struct rill_uri *u)
{
	u->text = rill_strdup(text);
	if (u->text == NULL)
		return RILL_ENOMEM;
	if (*text == '\0') {
		rill__set_last_errmsg("empty URI");
		return RILL_EURI;
	}
	/* "-" is standard input/output. */
	const char *spec = strcmp(text, "-") == 0 ? "stdio:" : text;
	char *copy = rill_strdup(spec);
	if (copy == NULL)
		return RILL_ENOMEM;
	int err = 0;
	char *q = strchr(copy, '?');
	if (q != NULL)
		*q++ = '\0';
	char *colon = strchr(copy, ':');
	size_t plen = colon != NULL ? (size_t)(colon - copy) : 0;
	for (size_t i = 0; i < plen && err == 0; i++)
		if (!uri_scheme_char(copy[i]))
			plen = 0;
	if (colon == NULL || plen == 0) {
		rill__set_last_errmsg("missing or bad scheme in \"%s\" "
		                      "(expected e.g. tcp://host:port, "
		                      "unix:/path or -)",
		                      text);
		rill_free(copy);
		return RILL_EURI;
	}
	*colon = '\0';
	u->rest = rill_strdup(colon + 1);
	if (u->rest == NULL) {
		rill_free(copy);
		return RILL_ENOMEM;
	}
	/* The scheme chain: layers '+' ... '+' transport. */
	char *chain = copy;
	for (;;) {
		char *plus = strchr(chain, '+');
		if (plus != NULL)
			*plus = '\0';
		if (*chain == '\0') {
			err = rill__uri_error(u, "empty scheme name before",
			                      plus != NULL ? "+" : ":");
			break;
		}
		if (plus == NULL) {
			u->scheme = rill_strdup(chain);
			if (u->scheme == NULL)
				err = RILL_ENOMEM;
			break;
		}
		if (u->nlayers == RILL_URI_MAX_LAYERS) {
			err = rill__uri_error(u, "too many layers at", chain);
			break;
		}
		u->layers[u->nlayers] = rill_strdup(chain);
		if (u->layers[u->nlayers] == NULL) {
			err = RILL_ENOMEM;
			break;
		}
		u->nlayers++;
		chain = plus + 1;
	}
	if (err == 0 && q != NULL)
		err = uri_parse_query(u, q);
	rill_free(copy);
	return err;
}

/* Finds the schemes, checks every parameter is claimed, runs the checks. */
static int uri_resolve(struct rill_uri *u,
                       const struct rill_transport_scheme **tp,
                       const struct rill_layer_scheme **lp)
{
	const struct rill_transport_scheme *t = uri_find_transport(u->scheme);
	if (t == NULL) {
		if (uri_find_layer(u->scheme) != NULL)
			return rill__uri_error(u, "layer without a transport",
			                       u->scheme);
		return rill__uri_error(u, "unknown scheme", u->scheme);
	}
	for (size_t i = 0; i < u->nlayers; i++) {
		lp[i] = uri_find_layer(u->layers[i]);
		if (lp[i] == NULL)
			return rill__uri_error(u, "unknown layer",
			                       u->layers[i]);
	}
	for (size_t k = 0; k < u->nparams; k++) {
		bool claimed = uri_list_has(t->params, u->params[k].key);
		for (size_t i = 0; i < u->nlayers && !claimed; i++)
			claimed = uri_list_has(lp[i]->params, u->params[k].key);
		if (!claimed)
			return rill__uri_error(u, "unknown parameter",
			                       u->params[k].key);
	}
	int err = t->check != NULL ? t->check(u) : 0;
	for (size_t i = 0; i < u->nlayers && err == 0; i++)
		if (lp[i]->check != NULL)
			err = lp[i]->check(u);
	*tp = t;
	return err;
}

int rill__uri_parse(const char *text, struct rill_uri *out)
{
	if (text == NULL || out == NULL)
		return RILL_EINVAL;
	memset(out, 0, sizeof *out);
	rill__set_last_errmsg("%s", "");
	int err = uri_parse_inner(text, out);
	if (err == 0) {
		const struct rill_transport_scheme *t;
		const struct rill_layer_scheme *l[RILL_URI_MAX_LAYERS];
		err = uri_resolve(out, &t, l);
	}
	if (err != 0) {
		if (err == RILL_ENOMEM)
			rill__set_last_errmsg("out of memory parsing \"%s\"",
			                      text);
		rill__uri_free(out);
	}
	return err;
}

int rill_uri_check(const char *uri)
{
	struct rill_uri u;
	int err = rill__uri_parse(uri, &u);
	rill__uri_free(&u);
	return err;
}

/* ---------------------------------------------------------------------- */
/* Connect: transport, then layers from the innermost out. */

struct uri_connect {
	struct rill_uri u;
	const struct rill_layer_scheme *layers[RILL_URI_MAX_LAYERS];
	size_t next_layer; /* counts down: layers[next_layer - 1] is next */
	rill_connect_cb cb;
	void *ud;
	uint64_t deadline; /* uv_now() based; 0: none */
	uv_loop_t *loop;
	struct rill_connect_opts opts; /* the caller's, strings copied */
};

static void uri_connect_free(struct uri_connect *c)
{
	rill__uri_free(&c->u);
	rill_free((char *)c->opts.proxy_header_src);
	rill_free((char *)c->opts.proxy_header_dst);
	rill_free(c);
}

/* Copies opts into c (the strings too); false on ENOMEM. */
static bool uri_connect_keep_opts(struct uri_connect *c,
                                  const struct rill_connect_opts *opts)
{
	c->opts = *opts;
	c->opts.proxy_header_src = NULL;
	c->opts.proxy_header_dst = NULL;
	if (opts->proxy_header_src != NULL &&
	    (c->opts.proxy_header_src = rill_strdup(opts->proxy_header_src)) ==
	        NULL)
		return false;
	if (opts->proxy_header_dst != NULL &&
	    (c->opts.proxy_header_dst = rill_strdup(opts->proxy_header_dst)) ==
	        NULL)
		return false;
	c->u.connect_opts = &c->opts;
	return true;
}

static void uri_connect_finish(struct uri_connect *c, struct rill_flow *f,
                               int status, const char *errmsg)
{
	rill_connect_cb cb = c->cb;
	void *ud = c->ud;
	uri_connect_free(c);
	cb(f, status,
	   status != 0 && errmsg == NULL ? rill_strerror(status) : errmsg, ud);
}

static uint64_t uri_remaining(uv_loop_t *loop, uint64_t deadline, uint64_t dflt)
{
	if (deadline == 0)
		return dflt;
	uint64_t now = uv_now(loop);
	return deadline > now ? deadline - now : 1;
}

static void uri_connect_step(struct rill_flow *f, int status,
                             const char *errmsg, void *ud)
{
	struct uri_connect *c = ud;
	if (status != 0 || c->next_layer == 0) {
		uri_connect_finish(c, status == 0 ? f : NULL, status, errmsg);
		return;
	}
	c->next_layer--;
	const struct rill_layer_scheme *l = c->layers[c->next_layer];
	int err = l->attach(f, &c->u, RILL_ROLE_CONNECT,
	                    uri_remaining(c->loop, c->deadline, 0),
	                    uri_connect_step, c);
	if (err != 0) {
		char msg[600];
		snprintf(msg, sizeof msg, "%s layer: %s", l->name,
		         rill_last_errmsg()[0] ? rill_last_errmsg()
		                               : rill_strerror(err));
		uri_connect_finish(c, NULL, err, msg);
	}
}

int rill_connect(uv_loop_t *loop, const char *uri,
                 const struct rill_connect_opts *opts, rill_connect_cb cb,
                 void *ud)
{
	if (loop == NULL || uri == NULL || cb == NULL) {
		rill__set_last_errmsg("rill_connect: NULL argument");
		return RILL_EINVAL;
	}
	struct rill_connect_opts dflt = {0};
	if (opts == NULL)
		opts = &dflt;
	struct uri_connect *c = rill_calloc(1, sizeof *c);
	if (c == NULL)
		return RILL_ENOMEM;
	int err = rill__uri_parse(uri, &c->u);
	const struct rill_transport_scheme *t = NULL;
	if (err == 0)
		err = uri_resolve(&c->u, &t, c->layers);
	if (err == 0 && t->connect == NULL)
		err = rill__uri_error(&c->u, "cannot connect with scheme",
		                      c->u.scheme);
	if (err == 0 && !uri_connect_keep_opts(c, opts))
		err = RILL_ENOMEM;
	if (err != 0) {
		uri_connect_free(c);
		return err;
	}
	c->cb = cb;
	c->ud = ud;
	c->loop = loop;
	c->next_layer = c->u.nlayers;
	if (opts->timeout_ms > 0) {
		uv_update_time(loop);
		c->deadline = uv_now(loop) + opts->timeout_ms;
	}
	err = t->connect(loop, &c->u, opts, uri_connect_step, c);
	if (err != 0)
		uri_connect_free(c);
	return err;
}

/* ---------------------------------------------------------------------- */
/* Listen: every accepted flow gets the layers attached, then goes to the
 * user. The wrapper counts the attaches in flight, so that closing the
 * listener while a handshake runs frees it only when that one ends, and
 * so that at most max_handshakes run at once: each holds a descriptor
 * and the layers' buffers until its deadline, and a client that opens
 * connections and never completes one must not take them all. */

struct uri_listener {
	struct rill_listener base;
	struct rill_listener *inner;
	const struct rill_transport_scheme *t;
	struct rill_uri u;
	const struct rill_layer_scheme *layers[RILL_URI_MAX_LAYERS];
	uint64_t handshake_ms;
	rill_accept_filter filter;
	void *filter_ud;
	unsigned refs;
	bool closed;
	/* Handshakes in flight, oldest first (opts->max_handshakes). */
	struct uri_accept *hs_head, *hs_tail;
	size_t nhs, max_hs;
};

struct uri_accept {
	struct uri_listener *l;
	size_t next_layer;
	uint64_t deadline;
	struct rill_flow *raw; /* the transport's flow, below the layers */
	struct uri_accept *prev, *next;
	bool listed;
	bool cut; /* by uri_accept_room */
};

static void uri_accept_unlist(struct uri_accept *a)
{
	struct uri_listener *l = a->l;
	if (!a->listed)
		return;
	if (a->prev != NULL)
		a->prev->next = a->next;
	else
		l->hs_head = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	else
		l->hs_tail = a->prev;
	a->listed = false;
	l->nhs--;
}

/*
 * Room for one more handshake: when max_handshakes are in flight, the
 * oldest is cut. Its socket is shut down, so its layer's next read sees
 * the end and the handshake fails the ordinary way (cb hears of it
 * within this loop turn); an honest client answers at once, so it is
 * never the oldest for long. false when the oldest has no socket to shut
 * (then the new connection is refused instead).
 */
static bool uri_accept_room(struct uri_listener *l)
{
	if (l->nhs < l->max_hs)
		return true;
	struct uri_accept *old = l->hs_head;
	int fd = rill__flow_fd(old->raw);
	if (fd < 0)
		return false;
	shutdown(fd, SHUT_RDWR);
	uri_accept_unlist(old);
	old->cut = true;
	return true;
}

static void uri_listener_unref(struct uri_listener *l)
{
	if (--l->refs > 0)
		return;
	rill__uri_free(&l->u);
	rill_free(l);
}

static void uri_accept_step(struct rill_flow *f, int status, const char *errmsg,
                            void *ud)
{
	struct uri_accept *a = ud;
	struct uri_listener *l = a->l;
	if (status == 0 && a->next_layer > 0 && !l->closed) {
		a->next_layer--;
		const struct rill_layer_scheme *ls = l->layers[a->next_layer];
		int err =
		    ls->attach(f, &l->u, RILL_ROLE_ACCEPT,
		               uri_remaining(l->base.loop, a->deadline, 0),
		               uri_accept_step, a);
		if (err == 0)
			return;
		status = err;
		f = NULL;
		errmsg = rill_last_errmsg();
	}
	uri_accept_unlist(a);
	if (a->cut && status != 0) {
		status = -EBUSY;
		errmsg = "handshake cut: too many in flight (the oldest goes)";
	}
	rill_free(a);
	if (l->closed) {
		rill_close(f);
	} else if (status != 0) {
		l->base.cb(&l->base, NULL, status,
		           errmsg != NULL ? errmsg : rill_strerror(status),
		           l->base.ud);
	} else {
		l->base.cb(&l->base, f, 0, NULL, l->base.ud);
	}
	uri_listener_unref(l);
}

static void uri_inner_accept(struct rill_listener *inner, struct rill_flow *f,
                             int status, const char *errmsg, void *ud)
{
	(void)inner;
	struct uri_listener *l = ud;
	if (l->closed) {
		rill_close(f);
		return;
	}
	if (status == 0 && l->filter != NULL) {
		/* Before any layer's handshake: a refused peer costs no
		 * TLS work and reaches nothing. */
		struct rill_peer peer;
		if (rill_flow_peer(f, &peer) != 0)
			memset(&peer, 0, sizeof peer); /* RILL_PEER_UNKNOWN */
		if (!l->filter(&l->base, &peer, l->filter_ud)) {
			rill_close(f);
			return;
		}
	}
	if (status != 0 || l->u.nlayers == 0) {
		l->base.cb(&l->base, f, status, errmsg, l->base.ud);
		return;
	}
	if (!uri_accept_room(l)) {
		rill_close(f);
		l->base.cb(&l->base, NULL, -EBUSY,
		           "too many handshakes in flight", l->base.ud);
		return;
	}
	struct uri_accept *a = rill_calloc(1, sizeof *a);
	if (a == NULL) {
		rill_close(f);
		l->base.cb(&l->base, NULL, RILL_ENOMEM,
		           "out of memory accepting a connection", l->base.ud);
		return;
	}
	a->l = l;
	a->raw = f;
	a->prev = l->hs_tail;
	if (l->hs_tail != NULL)
		l->hs_tail->next = a;
	else
		l->hs_head = a;
	l->hs_tail = a;
	a->listed = true;
	l->nhs++;
	a->next_layer = l->u.nlayers;
	uv_update_time(l->base.loop);
	a->deadline = uv_now(l->base.loop) + l->handshake_ms;
	l->refs++;
	uri_accept_step(f, 0, NULL, a);
}

static void uri_listener_close(struct rill_listener *base)
{
	struct uri_listener *l = (struct uri_listener *)(void *)base;
	l->closed = true;
	l->inner->ops->close(l->inner);
	l->inner = NULL;
	uri_listener_unref(l);
}

static int uri_listener_uri(struct rill_listener *base, char *buf, size_t len)
{
	struct uri_listener *l = (struct uri_listener *)(void *)base;
	size_t off = 0;
	for (size_t i = 0; i < l->u.nlayers; i++) {
		int n = snprintf(buf + off, len - off, "%s+", l->u.layers[i]);
		if (n < 0 || (size_t)n >= len - off)
			return -ENOSPC;
		off += (size_t)n;
	}
	return l->inner->ops->uri(l->inner, buf + off, len - off);
}

static const struct rill_listener_ops uri_listener_ops = {
    .close = uri_listener_close,
    .uri = uri_listener_uri,
};

/* rill_listen with opts->join: l joins the group of acceptor. */
static int uri_join(struct uri_listener *l, struct rill_listener *acceptor)
{
	if (acceptor->ops != &uri_listener_ops) {
		rill__set_last_errmsg("listen %s: join: not a listener from "
		                      "rill_listen",
		                      l->u.text);
		return RILL_EINVAL;
	}
	struct uri_listener *a = (struct uri_listener *)(void *)acceptor;
	if (a->t != l->t) {
		rill__set_last_errmsg("listen %s: join: the listener to join "
		                      "is a %s listener",
		                      l->u.text, a->t->name);
		return RILL_EINVAL;
	}
	if (l->t->join == NULL) {
		rill__set_last_errmsg("listen %s: scheme %s cannot spread its "
		                      "connections over listeners",
		                      l->u.text, l->t->name);
		return -ENOTSUP;
	}
	if (a->inner == NULL || a->closed)
		return RILL_ECLOSED;
	return l->t->join(l->base.loop, &l->u, a->inner, uri_inner_accept, l,
	                  &l->inner);
}

int rill_listen(uv_loop_t *loop, const char *uri,
                const struct rill_listen_opts *opts, rill_accept_cb cb,
                void *ud, struct rill_listener **out)
{
	if (loop == NULL || uri == NULL || cb == NULL || out == NULL) {
		rill__set_last_errmsg("rill_listen: NULL argument");
		return RILL_EINVAL;
	}
	*out = NULL;
	struct rill_listen_opts dflt = {0};
	if (opts == NULL)
		opts = &dflt;
	struct uri_listener *l = rill_calloc(1, sizeof *l);
	if (l == NULL)
		return RILL_ENOMEM;
	int err = rill__uri_parse(uri, &l->u);
	const struct rill_transport_scheme *t = NULL;
	if (err == 0)
		err = uri_resolve(&l->u, &t, l->layers);
	if (err == 0 && t->listen == NULL)
		err = rill__uri_error(&l->u, "cannot listen with scheme",
		                      l->u.scheme);
	if (err == 0) {
		l->base.ops = &uri_listener_ops;
		l->base.loop = loop;
		l->base.cb = cb;
		l->base.ud = ud;
		l->refs = 1;
		l->handshake_ms = opts->handshake_timeout_ms > 0
		                      ? opts->handshake_timeout_ms
		                      : URI_DEFAULT_HANDSHAKE_MS;
		l->max_hs = opts->max_handshakes > 0
		                ? opts->max_handshakes
		                : URI_DEFAULT_MAX_HANDSHAKES;
		l->t = t;
		l->filter = opts->filter;
		l->filter_ud = opts->filter_ud;
		if (opts->join != NULL)
			err = uri_join(l, opts->join);
		else
			err = t->listen(loop, &l->u, opts, uri_inner_accept, l,
			                &l->inner);
	}
	if (err != 0) {
		rill__uri_free(&l->u);
		rill_free(l);
		return err;
	}
	*out = &l->base;
	return 0;
}

void rill_listener_close(struct rill_listener *l)
{
	if (l != NULL)
		l->ops->close(l);
}

int rill_listener_uri(struct rill_listener *l, char *buf, size_t len)
{
	if (l == NULL || buf == NULL || len == 0)
		return RILL_EINVAL;
	return l->ops->uri(l, buf, len);
}

/* ---------------------------------------------------------------------- */
/* Blocking connect */

struct uri_sync {
	uv_loop_t *loop;
	bool done;
	bool abandoned;
	int status;
	struct rill_flow *f;
};

static void uri_sync_cb(struct rill_flow *f, int status, const char *errmsg,
                        void *ud)
{
	struct uri_sync *s = ud;
	if (s->abandoned) {
		rill_close(f);
		rill_free(s);
		return;
	}
	if (status != 0)
		rill__set_last_errmsg("%s", errmsg);
	s->done = true;
	s->status = status;
	s->f = f;
	/* Do not let the waiting uv_run(UV_RUN_ONCE) block for I/O after a
	 * completion that came from a timer (see sync.c). */
	uv_stop(s->loop);
}

int rill_connect_sync(uv_loop_t *loop, const char *uri,
                      const struct rill_connect_opts *opts,
                      struct rill_flow **out)
{
	if (out == NULL)
		return RILL_EINVAL;
	*out = NULL;
	if (rill__callback_depth() > 0)
		return -EDEADLK;
	struct uri_sync *s = rill_calloc(1, sizeof *s);
	if (s == NULL)
		return RILL_ENOMEM;
	s->loop = loop;
	int err = rill_connect(loop, uri, opts, uri_sync_cb, s);
	if (err != 0) {
		rill_free(s);
		return err;
	}
	while (!s->done) {
		if (uv_run(loop, UV_RUN_ONCE) == 0 && !s->done) {
			s->abandoned = true;
			rill__set_last_errmsg("connect %s: loop ran dry", uri);
			return -EDEADLK;
		}
	}
	err = s->status;
	*out = s->f;
	rill_free(s);
	return err;
}
