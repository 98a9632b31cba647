/*
 * The URI scheme vchan:[domain/]port?read_size=N&write_size=N&allow_uid=
 * N,M&handshake_timeout=MS&max_handshakes=N. Listening serves any number
 * of clients, one fresh vchan each (each client that says HELLO gets its
 * own shared memory; the gate, gate.c, checks them first);
 * connecting is a client.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/spread.h"
#include "transport/socket/socket.h"
#include "transport/vchan/vchan.h"
#include "transport/vchan/local.h"

#define VCHAN_DEFAULT_SIZE (1u << 20)

struct vchan_listener {
	struct rill_listener base;
	struct rill__spread_member spread; /* listener group (see spread.h) */
	bool member;                       /* joined: no socket of its own */
	struct rill__acceptor acc;
	int fd;
	char *path;
	char *uri;
	size_t read_size, write_size;
	bool no_half_close; /* half_close=0: libxenvchan's close rules */
	struct rill__vchan_gate gate; /* connections in the rendezvous */
};

static struct vchan_listener *vchan_listener_of(struct rill__vchan_gate *g)
{
	return g->data;
}

/* The gate's hooks: each client that says HELLO gets a vchan of its own,
 * allocated only then. */

static int vchan_listener_offer(struct rill__vchan_gate *g, int fd, void **mem,
                                const char **why)
{
	struct vchan_listener *l = vchan_listener_of(g);
	struct rill__vchan_local *vl =
	    rill__vchan_local_new(l->base.loop, true);
	if (vl == NULL) {
		*why = "vchan: out of memory for a client";
		return RILL_ENOMEM;
	}
	vl->state = RILL__VL_SRV_READY;
	int err = rill__vchan_local_setup(vl, l->read_size, l->write_size);
	if (err == 0) {
		err = rill__vchan_local_offer(vl, fd);
		if (err != 0)
			rill__set_last_errmsg("vchan: sending the OFFER "
			                      "failed: %s",
			                      rill_strerror(err));
	}
	if (err != 0) {
		rill__vchan_local_discard(vl);
		*why = rill_last_errmsg();
		return err;
	}
	*mem = vl;
	return 0;
}

static void vchan_listener_ready(struct rill__vchan_gate *g, int fd, void *mem)
{
	struct vchan_listener *l = vchan_listener_of(g);
	struct rill__vchan_local *vl = mem;
	int err = rill__vchan_local_adopt(vl, fd);
	if (err != 0) {
		rill__vchan_local_discard(vl);
		l->base.cb(&l->base, NULL, err, "vchan: uv_poll_init failed",
		           l->base.ud);
		return;
	}
	if (l->no_half_close)
		rill__vchan_flow_no_half_close(&vl->ring);
	l->base.cb(&l->base, &vl->ring.base, 0, NULL, l->base.ud);
}

static void vchan_listener_dropped(struct rill__vchan_gate *g, void *mem,
                                   int err, const char *why)
{
	struct vchan_listener *l = vchan_listener_of(g);
	if (mem != NULL)
		rill__vchan_local_discard(mem);
	if (err != RILL_ECANCELED)
		l->base.cb(&l->base, NULL, err, why, l->base.ud);
}

static const struct rill__vchan_gate_hooks vchan_listener_hooks = {
    .offer = vchan_listener_offer,
    .ready = vchan_listener_ready,
    .dropped = vchan_listener_dropped,
};

/* A connection to the listening socket: the rendezvous, on l's loop. */
static void vchan_listener_take(struct vchan_listener *l, int fd)
{
	rill__vchan_gate_add(&l->gate, fd);
}

static void vchan_listener_on_accept(struct rill__acceptor *a, int fd, int err)
{
	struct vchan_listener *l = a->data;
	if (fd < 0) {
		char msg[128];
		snprintf(msg, sizeof msg, "vchan: accept: %s",
		         rill_strerror(err));
		l->base.cb(&l->base, NULL, err, msg, l->base.ud);
		return;
	}
	if (!rill__spread_hand(&l->spread, fd))
		vchan_listener_take(l, fd);
}

static void vchan_member_take(struct rill__spread_member *m, int fd)
{
	vchan_listener_take(rill_container_of(m, struct vchan_listener, spread),
	                    fd);
}

static void vchan_listener_destroy(struct vchan_listener *l)
{
	rill_free(l->path);
	rill_free(l->uri);
	rill_free(l);
}

static void vchan_listener_free(struct rill__acceptor *a)
{
	vchan_listener_destroy(a->data);
}

static void vchan_member_left(struct rill__spread_member *m)
{
	vchan_listener_destroy(
	    rill_container_of(m, struct vchan_listener, spread));
}

static void vchan_listener_close(struct rill_listener *base)
{
	struct vchan_listener *l = (struct vchan_listener *)(void *)base;
	rill__vchan_gate_close(&l->gate);
	rill__spread_leave(&l->spread); /* a member is freed after this */
	if (l->member)
		return;
	rill__acceptor_close(&l->acc, vchan_listener_free);
	close(l->fd);
	unlink(l->path);
}

static int vchan_listener_uri(struct rill_listener *base, char *buf, size_t len)
{
	struct vchan_listener *l = (struct vchan_listener *)(void *)base;
	int n = snprintf(buf, len, "%s", l->uri);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct rill_listener_ops vchan_listener_ops = {
    .close = vchan_listener_close,
    .uri = vchan_listener_uri,
};

/* Splits u->rest into domain (NULL when absent) and port, in buf. */
static int vchan_uri_split(const struct rill_uri *u, char *buf, size_t len,
                           const char **domain, const char **port)
{
	int n = snprintf(buf, len, "%s", u->rest);
	if (n < 0 || (size_t)n >= len)
		return rill__uri_error(u, "vchan name too long", u->rest);
	char *slash = strrchr(buf, '/');
	if (slash == NULL) {
		*domain = NULL;
		*port = buf;
	} else {
		*slash = '\0';
		*domain = buf;
		*port = slash + 1;
		if (slash == buf)
			*domain = "/";
	}
	if (!rill__vchan_name_ok(*port, false))
		return rill__uri_error(
		    u, "bad vchan port (want [a-zA-Z0-9_-]+)", *port);
	if (*domain != NULL && strchr(*domain, '/') == NULL &&
	    !rill__vchan_name_ok(*domain, true))
		return rill__uri_error(u, "bad vchan domain", *domain);
	char path[RILL__VCHAN_SUN_PATH];
	if (rill__vchan_socket_path(*domain, *port, path, sizeof path,
	                            RILL__VCHAN_DIR_NAME) != 0)
		return rill__uri_error(u, "vchan socket path too long",
		                       u->rest);
	return 0;
}

static int vchan_uri_sizes(const struct rill_uri *u, uint64_t *rd, uint64_t *wr)
{
	uint64_t max = (uint64_t)1 << RILL__VCHAN_MAX_ORDER;
	int err =
	    rill__uri_param_u64(u, "read_size", 1, max, VCHAN_DEFAULT_SIZE, rd);
	if (err == 0)
		err = rill__uri_param_u64(u, "write_size", 1, max,
		                          VCHAN_DEFAULT_SIZE, wr);
	return err;
}

/* half_close=0 (default 1): the peer follows libxenvchan, where live 0
 * ends the vchan both ways; *no is true then. */
static int vchan_uri_half_close(const struct rill_uri *u, bool *no)
{
	uint64_t v;
	int err = rill__uri_param_u64(u, "half_close", 0, 1, 1, &v);
	*no = v == 0;
	return err;
}

/* The rendezvous policy of u: allow_uid=N[,N...], handshake_timeout=MS,
 * max_handshakes=N (gate.h). */
static int vchan_uri_policy(const struct rill_uri *u,
                            struct rill__vchan_policy *pol)
{
	rill__vchan_policy_default(pol);
	const char *allow = rill__uri_param(u, "allow_uid");
	if (allow != NULL && rill__vchan_policy_allow(pol, allow) != 0)
		return rill__uri_error(u,
		                       "bad allow_uid (want N or N,M,... "
		                       "with at most 16 uids):",
		                       allow);
	uint64_t ms, max;
	int err = rill__uri_param_u64(u, "handshake_timeout", 1, 3600000,
	                              RILL__VCHAN_HANDSHAKE_MS, &ms);
	if (err == 0)
		err = rill__uri_param_u64(u, "max_handshakes", 1, 65536,
		                          RILL__VCHAN_PENDING_MAX, &max);
	if (err != 0)
		return err;
	pol->timeout_ms = ms;
	pol->max_pending = (unsigned)max;
	return 0;
}

/* What a vchan URI says: the name (when asked for), the ring sizes (when
 * asked for), the rendezvous policy and half_close. */
struct vchan_uri_parts {
	char buf[512]; /* holds domain and port */
	const char *domain, *port;
	uint64_t rd, wr;
	struct rill__vchan_policy pol;
	bool no_half_close;
};

static int vchan_uri_parse(const struct rill_uri *u, bool name, bool sizes,
                           struct vchan_uri_parts *v)
{
	v->domain = v->port = NULL;
	int err = name ? vchan_uri_split(u, v->buf, sizeof v->buf, &v->domain,
	                                 &v->port)
	               : 0;
	if (err == 0 && sizes)
		err = vchan_uri_sizes(u, &v->rd, &v->wr);
	if (err == 0)
		err = vchan_uri_policy(u, &v->pol);
	if (err == 0)
		err = vchan_uri_half_close(u, &v->no_half_close);
	return err;
}

static int vchan_uri_check(const struct rill_uri *u)
{
	struct vchan_uri_parts v;
	return vchan_uri_parse(u, true, true, &v);
}

/* A client with half_close=0: the flow is marked on arrival. */
struct vchan_nohc_connect {
	rill_connect_cb cb;
	void *ud;
};

static void vchan_nohc_connected(struct rill_flow *f, int status,
                                 const char *errmsg, void *ud)
{
	struct vchan_nohc_connect w = *(struct vchan_nohc_connect *)ud;
	rill_free(ud);
	if (status == 0)
		rill__vchan_flow_no_half_close(
		    rill_container_of(f, struct rill__vchan_flow, base));
	w.cb(f, status, errmsg, w.ud);
}

static int vchan_uri_connect(uv_loop_t *loop, const struct rill_uri *u,
                             const struct rill_connect_opts *opts,
                             rill_connect_cb cb, void *ud)
{
	struct vchan_uri_parts v;
	int err = vchan_uri_parse(u, true, false, &v);
	if (err != 0)
		return err;
	const char *d = v.domain, *p = v.port;
	if (!v.no_half_close)
		return rill__vchan_client(loop, d, p, opts, &v.pol, cb, ud);
	struct vchan_nohc_connect *w = rill_malloc(sizeof *w);
	if (w == NULL)
		return RILL_ENOMEM;
	*w = (struct vchan_nohc_connect){.cb = cb, .ud = ud};
	err = rill__vchan_client(loop, d, p, opts, &v.pol, vchan_nohc_connected,
	                         w);
	if (err != 0)
		rill_free(w);
	return err;
}

static struct vchan_listener *vchan_listener_new(const struct rill_uri *u,
                                                 const char *path)
{
	struct vchan_listener *l = rill_calloc(1, sizeof *l);
	if (l == NULL)
		return NULL;
	l->fd = -1;
	l->path = rill_strdup(path);
	size_t ulen = strlen(u->rest) + 80;
	l->uri = rill_malloc(ulen);
	if (l->path == NULL || l->uri == NULL) {
		rill_free(l->path);
		rill_free(l->uri);
		rill_free(l);
		return NULL;
	}
	snprintf(l->uri, ulen, "vchan:%s", u->rest);
	return l;
}

static int vchan_listener_start(uv_loop_t *loop, struct vchan_listener *l)
{
	const char *why = NULL;
	int err = rill__unix_bind_fd(l->path, 128, &l->fd, &why);
	/* Other uids named by allow_uid must be able to connect (a Unix
	 * socket needs write access): the gate checks who they are. */
	if (err == 0 && l->gate.pol.nallow > 0 && chmod(l->path, 0666) != 0)
		err = -errno;
	if (err == 0)
		err = rill__spread_open(&l->spread, loop);
	if (err == 0) {
		err = rill__acceptor_init(loop, &l->acc, l->fd, 16,
		                          vchan_listener_on_accept);
		if (err != 0)
			rill__spread_leave(&l->spread);
	}
	if (err != 0 && l->fd >= 0) {
		close(l->fd);
		unlink(l->path);
	}
	if (err != 0)
		rill__set_last_errmsg("vchan: cannot listen on %s: %s", l->path,
		                      why != NULL ? why : rill_strerror(err));
	return err;
}

static int vchan_uri_listen(uv_loop_t *loop, const struct rill_uri *u,
                            const struct rill_listen_opts *opts,
                            rill_accept_cb cb, void *ud,
                            struct rill_listener **out)
{
	(void)opts;
	struct vchan_uri_parts v;
	int err = vchan_uri_parse(u, true, true, &v);
	if (err != 0)
		return err;
	char path[RILL__VCHAN_SUN_PATH];
	err = rill__vchan_socket_path(v.domain, v.port, path, sizeof path,
	                              RILL__VCHAN_DIR_SERVER);
	if (err != 0)
		return err; /* the message names the path and the reason */
	struct vchan_listener *l = vchan_listener_new(u, path);
	if (l == NULL)
		return RILL_ENOMEM;
	l->read_size = (size_t)v.rd;
	l->write_size = (size_t)v.wr;
	l->no_half_close = v.no_half_close;
	rill__vchan_gate_init(&l->gate, loop, &vchan_listener_hooks, &v.pol, l);
	err = vchan_listener_start(loop, l);
	if (err != 0) {
		rill_free(l->path);
		rill_free(l->uri);
		rill_free(l);
		return err;
	}
	l->base.ops = &vchan_listener_ops;
	l->base.loop = loop;
	l->base.cb = cb;
	l->base.ud = ud;
	l->acc.data = l;
	*out = &l->base;
	return 0;
}

/* rill_listen_opts.join: a listener without a socket that takes its
 * share of the acceptor's connections (handshakes on its own loop). */
static int vchan_uri_join(uv_loop_t *loop, const struct rill_uri *u,
                          struct rill_listener *acceptor, rill_accept_cb cb,
                          void *ud, struct rill_listener **out)
{
	struct vchan_uri_parts v;
	int err = vchan_uri_parse(u, false, true, &v);
	if (err != 0)
		return err;
	if (acceptor->ops != &vchan_listener_ops ||
	    ((struct vchan_listener *)(void *)acceptor)->member) {
		rill__set_last_errmsg("vchan: the listener to join is not a "
		                      "vchan listener");
		return RILL_EINVAL;
	}
	struct vchan_listener *a = (struct vchan_listener *)(void *)acceptor;
	struct vchan_listener *l = rill_calloc(1, sizeof *l);
	if (l == NULL)
		return RILL_ENOMEM;
	l->fd = -1;
	l->member = true;
	l->read_size = (size_t)v.rd;
	l->write_size = (size_t)v.wr;
	l->no_half_close = v.no_half_close;
	l->uri = rill_strdup(a->uri);
	if (l->uri == NULL) {
		rill_free(l);
		return RILL_ENOMEM;
	}
	l->base.ops = &vchan_listener_ops;
	l->base.loop = loop;
	l->base.cb = cb;
	l->base.ud = ud;
	rill__vchan_gate_init(&l->gate, loop, &vchan_listener_hooks, &v.pol, l);
	err = rill__spread_join(&l->spread, &a->spread, loop, vchan_member_take,
	                        vchan_member_left);
	if (err != 0) {
		vchan_listener_destroy(l);
		return err;
	}
	*out = &l->base;
	return 0;
}

static const char *const vchan_uri_params[] = {
    "read_size",      "write_size", "allow_uid", "handshake_timeout",
    "max_handshakes", "half_close", NULL};

const struct rill_transport_scheme rill__vchan_scheme = {
    .name = "vchan",
    .params = vchan_uri_params,
    .check = vchan_uri_check,
    .connect = vchan_uri_connect,
    .listen = vchan_uri_listen,
    .join = vchan_uri_join,
};
