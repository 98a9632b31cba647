/*
 * The vsock family of transports (doc/uri.md), all on the socket core:
 *
 *   vsock://cid:port               Linux AF_VSOCK
 *   hvsock://VM/SERVICE            Windows AF_HYPERV (addressing only here)
 *   hybrid-vsock:/path/v.sock:port Firecracker / Cloud Hypervisor muxer
 *   hyperkit:/dir:port             HyperKit's virtio-vsock backend
 *
 * Addresses are parsed by addr.c (pure, fuzzed). The hybrid-vsock
 * and HyperKit connects are Unix-socket connects followed by a one-line
 * handshake. A hybrid-vsock connect returns a thin layer over the socket:
 * the reply line may arrive together with the first bytes of the stream,
 * which the layer hands out first, and the handshake stays out of the
 * flow's counters.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "core/core.h"
#include "transport/socket/socket.h"
#include "transport/vsock/vsock.h"
#include "transport/vsock/addr.h"

/* Deadline of the hybrid-vsock reply when the caller gave none. */
#define HYBRID_REPLY_DEFAULT_MS 10000u
/* The guest CID written on a HyperKit connect unless ?cid= says else:
 * HyperKit gives its guest CID 3. */
#define HYPERKIT_DEFAULT_CID 3u

/* ---------------------------------------------------------------------- */
/* AF_VSOCK */

/* This machine's CID as the kernel tells it through /dev/vsock, or
 * VMADDR_CID_ANY when it knows none. */
static uint32_t vsock_local_cid(void)
{
	uint32_t cid = VMADDR_CID_ANY;
	int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return VMADDR_CID_ANY;
	if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) != 0)
		cid = VMADDR_CID_ANY;
	close(fd);
	return cid;
}

/* A listener on any CID is shown with the CID a peer can use: this
 * machine's (see rill__vsock_listener_cid). */
static int vsock_format(const struct sockaddr *sa, socklen_t len, bool listener,
                        char *buf, size_t cap)
{
	(void)len;
	if (sa->sa_family != AF_VSOCK)
		return -EAFNOSUPPORT;
	const struct sockaddr_vm *vm = (const struct sockaddr_vm *)sa;
	uint32_t cid = vm->svm_cid;
	if (listener && cid == VMADDR_CID_ANY)
		cid = rill__vsock_listener_cid(cid, vsock_local_cid());
	return rill__vsock_format(cid, vm->svm_port, buf, cap);
}

/* The kernel answers a connect to a port nobody listens on with a reset
 * (virtio transports, vsock_loopback): connect fails with ECONNRESET,
 * which before a connection exists can only be that refusal. */
static int vsock_connect_error(int err)
{
	return err == -ECONNRESET ? RILL_ECONNREFUSED : err;
}

static const struct rill_flow_ops vsock_ops = RILL_SOCKET_OPS("vsock");

const struct rill_socket_family rill__vsock_family = {
    .name = "vsock",
    .ops = &vsock_ops,
    .tcp_options = false,
    .format = vsock_format,
    .connect_error = vsock_connect_error,
};

static int vsock_parse(const struct rill_uri *u, struct sockaddr_vm *sa)
{
	uint32_t cid, port;
	const char *what;
	if (rill__vsock_parse(u->rest, &cid, &port, &what) != 0)
		return rill__uri_error(
		    u,
		    strcmp(what, "cid") == 0
		        ? "bad vsock cid (a number, any, hypervisor, local or "
		          "host) in"
		    : strcmp(what, "port") == 0
		        ? "bad vsock port (0..4294967295 or any) in"
		        : "bad vsock address (expected vsock://cid:port) in",
		    u->rest);
	memset(sa, 0, sizeof *sa);
	sa->svm_family = AF_VSOCK;
	sa->svm_cid = cid;
	sa->svm_port = port;
	return 0;
}

static int vsock_check(const struct rill_uri *u)
{
	struct sockaddr_vm sa;
	return vsock_parse(u, &sa);
}

/* Says plainly when the kernel has no AF_VSOCK at all. */
static int vsock_probe(const char *uri)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	int err = -errno;
	if (err == -EAFNOSUPPORT)
		rill__set_last_errmsg(
		    "%s: this kernel has no AF_VSOCK sockets (load the vsock "
		    "modules: vmw_vsock_virtio_transport in a guest, "
		    "vhost_vsock on a host, vsock_loopback for local tests)",
		    uri);
	else
		rill__set_last_errmsg("%s: socket(AF_VSOCK): %s", uri,
		                      rill_strerror(err));
	return err;
}

static int vsock_connect(uv_loop_t *loop, const struct rill_uri *u,
                         const struct rill_connect_opts *opts,
                         rill_connect_cb cb, void *ud)
{
	struct rill__sockaddr a;
	memset(&a, 0, sizeof a);
	int err = vsock_parse(u, (struct sockaddr_vm *)&a.ss);
	if (err != 0)
		return err;
	a.len = sizeof(struct sockaddr_vm);
	err = vsock_probe(u->text);
	if (err != 0)
		return err;
	char label[160];
	snprintf(label, sizeof label, "vsock:%s", u->rest);
	return rill__socket_connect(loop, &rill__vsock_family, &a, 1, label,
	                            opts->timeout_ms, opts->retry_until_ms, cb,
	                            ud);
}

static int vsock_listen(uv_loop_t *loop, const struct rill_uri *u,
                        const struct rill_listen_opts *opts, rill_accept_cb cb,
                        void *ud, struct rill_listener **out)
{
	struct sockaddr_vm sa;
	int err = vsock_parse(u, &sa);
	if (err != 0)
		return err;
	err = vsock_probe(u->text);
	if (err != 0)
		return err;
	char label[160];
	snprintf(label, sizeof label, "vsock:%s", u->rest);
	return rill__socket_bind_listen(
	    loop, &rill__vsock_family, (struct sockaddr *)&sa, sizeof sa,
	    opts->backlog, false, NULL, label, cb, ud, out);
}

static const char *const vsock_params[] = {NULL};

const struct rill_transport_scheme rill__vsock_scheme = {
    .name = "vsock",
    .params = vsock_params,
    .check = vsock_check,
    .connect = vsock_connect,
    .listen = vsock_listen,
    .join = rill__socket_join,
};

/* ---------------------------------------------------------------------- */
/* AF_HYPERV: addresses everywhere, sockets only on Windows. */

static int hvsock_check(const struct rill_uri *u)
{
	struct rill__guid vm, sv;
	const char *what;
	if (rill__hvsock_parse(u->rest, &vm, &sv, &what) == 0)
		return 0;
	return rill__uri_error(
	    u,
	    strcmp(what, "vm") == 0
	        ? "bad hvsock VM (a GUID or wildcard, children, loopback, "
	          "parent) in"
	    : strcmp(what, "service") == 0
	        ? "bad hvsock service (a GUID or a port number) in"
	        : "bad hvsock address (expected hvsock://VM/SERVICE) in",
	    u->rest);
}

static int hvsock_unsupported(const struct rill_uri *u)
{
	int err = hvsock_check(u);
	if (err != 0)
		return err;
	rill__set_last_errmsg("%s: AF_HYPERV sockets exist only on Windows",
	                      u->text);
	return RILL_ENOTSUP_PLATFORM;
}

static int hvsock_connect(uv_loop_t *loop, const struct rill_uri *u,
                          const struct rill_connect_opts *opts,
                          rill_connect_cb cb, void *ud)
{
	(void)loop;
	(void)opts;
	(void)cb;
	(void)ud;
	return hvsock_unsupported(u);
}

static int hvsock_listen(uv_loop_t *loop, const struct rill_uri *u,
                         const struct rill_listen_opts *opts, rill_accept_cb cb,
                         void *ud, struct rill_listener **out)
{
	(void)loop;
	(void)opts;
	(void)cb;
	(void)ud;
	(void)out;
	return hvsock_unsupported(u);
}

const struct rill_transport_scheme rill__hvsock_scheme = {
    .name = "hvsock",
    .params = vsock_params,
    .check = hvsock_check,
    .connect = hvsock_connect,
    .listen = hvsock_listen,
};

/* ---------------------------------------------------------------------- */
/* Unix-socket based: hybrid vsock and HyperKit */

/* Addresses are Unix paths. A listener's (on "<path>_<port>") is shown as
 * its plain unix: path: the VMM, not a client, connects there. */
static int hybrid_format(const struct sockaddr *sa, socklen_t len,
                         bool listener, char *buf, size_t cap)
{
	return rill__unix_family.format(sa, len, listener, buf, cap);
}

/* Firecracker's, Cloud Hypervisor's and vhost-device's muxers turn the
 * host's shutdown(SHUT_WR) into a full shutdown of the guest's connection
 * (doc/shut-framing.md): no half-close. HyperKit forwards it as a vsock
 * SHUTDOWN of the send side only, so its flows keep theirs. */
const struct rill_socket_family rill__hybrid_vsock_family = {
    .name = "hybrid-vsock",
    .ops = &vsock_ops,
    .kind = "hybrid-vsock",
    .tcp_options = false,
    .no_half_close = true,
    .format = hybrid_format,
};

const struct rill_socket_family rill__hyperkit_family = {
    .name = "hyperkit",
    .ops = &vsock_ops,
    .kind = "hyperkit",
    .tcp_options = false,
    .format = hybrid_format,
};

static int hybrid_parse(const struct rill_uri *u, char *path, size_t cap,
                        uint32_t *port)
{
	const char *what;
	if (rill__path_port_parse(u->rest, path, cap, port, &what) == 0)
		return 0;
	return rill__uri_error(
	    u,
	    strcmp(what, "port") == 0
	        ? "missing or bad port (expected PATH:PORT, port "
	          "0..4294967295) in"
	        : "missing or too long socket path (expected PATH:PORT) in",
	    u->rest);
}

static int hybrid_sockaddr(const struct rill_uri *u, const char *path,
                           struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(path);
	if (n >= sizeof sa->sun_path)
		return rill__uri_error(u,
		                       "socket path too long (max 107):", path);
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

static int hybrid_check(const struct rill_uri *u)
{
	char path[sizeof((struct sockaddr_un *)0)->sun_path];
	uint32_t port;
	return hybrid_parse(u, path, sizeof path, &port);
}

static int hyperkit_check(const struct rill_uri *u)
{
	int err = hybrid_check(u);
	uint64_t cid;
	if (err == 0)
		err = rill__uri_param_u64(u, "cid", 0, UINT32_MAX,
		                          HYPERKIT_DEFAULT_CID, &cid);
	return err;
}

/* -- the prefix layer: bytes that came with the reply line, read first */

struct prefix {
	struct rill_layer l;
	struct rill_buf *pre;
};

static void prefix_read(struct rill_flow *f)
{
	struct prefix *p = rill_container_of(f, struct prefix, l.base);
	if (p->pre != NULL) {
		struct rill_buf *b = p->pre;
		p->pre = NULL;
		rill_flow_read_done(f, 0, b);
		return;
	}
	rill_layer_read(f);
}

static void prefix_close(struct rill_flow *f)
{
	struct prefix *p = rill_container_of(f, struct prefix, l.base);
	rill_buf_release(p->pre);
	p->pre = NULL;
	rill_layer_close(f);
}

/* The socket under it, for the splice(2) fast path, once nothing is
 * left to hand out first (the bytes are not transformed). */
static int prefix_fd(struct rill_flow *f)
{
	struct prefix *p = rill_container_of(f, struct prefix, l.base);
	return p->pre != NULL ? -1 : rill__flow_fd(rill_layer_inner(f));
}

/* The hybrid-vsock and hyperkit layers (hyperkit's named so after
 * rill_layer_new). */
static const struct rill_flow_ops prefix_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "hybrid-vsock",
    .read = prefix_read,
    .write = rill_layer_write,
    .shutdown_write = rill_layer_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = prefix_close,
    .address = rill_layer_address,
    .fd = prefix_fd,
};

/* -- hybrid-vsock connect: Unix connect, "CONNECT <port>\n", "OK <n>\n" */

struct hybrid_conn {
	rill_connect_cb cb;
	void *ud;
	uint32_t port;
	uint64_t reply_ms;
	struct rill_flow *f;
	uint8_t reply[RILL__HYBRID_REPLY_MAX];
	size_t rlen;
	char label[200];
};

static void hybrid_fail(struct hybrid_conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void hybrid_fail(struct hybrid_conn *c, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	rill_close(c->f);
	rill_connect_cb cb = c->cb;
	void *ud = c->ud;
	rill_free(c);
	cb(NULL, status, msg, ud);
}

static void hybrid_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                           void *ud)
{
	struct hybrid_conn *c = ud;
	char got[RILL__HYBRID_REPLY_MAX * 4 + 8];
	if (status != 0) {
		rill__escape(c->reply, c->rlen, got, sizeof got);
		if (status == RILL_ETIMEDOUT)
			hybrid_fail(
			    c, RILL_ETIMEDOUT,
			    "connect %s: no reply to CONNECT %u within %llu "
			    "ms (got \"%s\")",
			    c->label, (unsigned)c->port,
			    (unsigned long long)c->reply_ms, got);
		else if (status == RILL_EOF)
			hybrid_fail(
			    c, RILL_EHANDSHAKE,
			    "connect %s: the VMM hung up after CONNECT %u "
			    "(got \"%s\"; is a guest listening on port "
			    "%u?)",
			    c->label, (unsigned)c->port, got,
			    (unsigned)c->port);
		else
			hybrid_fail(
			    c, status,
			    "connect %s: reading the reply to CONNECT %u: "
			    "%s (got \"%s\")",
			    c->label, (unsigned)c->port, rill_strerror(status),
			    got);
		return;
	}
	size_t take = b->len;
	if (take > sizeof c->reply - c->rlen)
		take = sizeof c->reply - c->rlen;
	memcpy(c->reply + c->rlen, b->data, take);
	size_t before = c->rlen;
	c->rlen += take;
	uint32_t host_port;
	int r = rill__hybrid_parse_reply(c->reply, c->rlen, &host_port);
	if (r == 0) {
		rill_buf_release(b);
		int err = rill_read(f, hybrid_read_cb, c);
		if (err != 0)
			hybrid_read_cb(f, err, NULL, c);
		return;
	}
	if (r < 0) {
		/* Show what came, up to the first newline. */
		size_t show = c->rlen;
		uint8_t *nl = memchr(c->reply, '\n', c->rlen);
		if (nl != NULL)
			show = (size_t)(nl - c->reply) + 1;
		rill__escape(c->reply, show, got, sizeof got);
		rill_buf_release(b);
		hybrid_fail(c, RILL_EHANDSHAKE,
		            "connect %s: the VMM replied \"%s\" to CONNECT %u "
		            "(expected \"OK <port>\\n\")",
		            c->label, got, (unsigned)c->port);
		return;
	}
	/* Bytes of this buffer past the reply line belong to the stream. */
	size_t used = (size_t)r - before;
	struct rill_buf *rest = NULL;
	if (used < b->len) {
		rest = rill_buf_slice(b, used, b->len - used);
		if (rest == NULL) {
			rill_buf_release(b);
			hybrid_fail(c, RILL_ENOMEM, "connect %s: out of memory",
			            c->label);
			return;
		}
	}
	rill_buf_release(b);
	rill_set_read_timeout(f, 0);
	/* The user's flow is a thin layer over the socket: it hands out
	 * the bytes that came with the reply first, and its counters and
	 * deadlines start after the handshake. */
	c->f = NULL;
	struct prefix *p = (struct prefix *)(void *)rill_layer_new(
	    f, &prefix_ops, sizeof(struct prefix));
	if (p == NULL) {
		rill_buf_release(rest);
		hybrid_fail(c, RILL_ENOMEM, "connect %s: out of memory",
		            c->label);
		return;
	}
	p->pre = rest;
	struct rill_flow *out = &p->l.base;
	rill_connect_cb cb = c->cb;
	void *cud = c->ud;
	rill_free(c);
	cb(out, 0, NULL, cud);
}

static void hybrid_connected(struct rill_flow *f, int status,
                             const char *errmsg, void *ud)
{
	struct hybrid_conn *c = ud;
	if (status != 0) {
		rill_connect_cb cb = c->cb;
		void *cud = c->ud;
		rill_free(c);
		cb(NULL, status, errmsg, cud);
		return;
	}
	c->f = f;
	char line[32];
	int n = snprintf(line, sizeof line, "CONNECT %u\n", (unsigned)c->port);
	int err = rill_write_copy(f, line, (size_t)n, NULL, NULL);
	if (err == 0)
		err = rill_set_read_timeout(f, c->reply_ms);
	if (err == 0)
		err = rill_read(f, hybrid_read_cb, c);
	if (err != 0)
		hybrid_fail(c, err, "connect %s: sending CONNECT %u: %s",
		            c->label, (unsigned)c->port, rill_strerror(err));
}

static int hybrid_connect(uv_loop_t *loop, const struct rill_uri *u,
                          const struct rill_connect_opts *opts,
                          rill_connect_cb cb, void *ud)
{
	char path[sizeof((struct sockaddr_un *)0)->sun_path];
	uint32_t port;
	int err = hybrid_parse(u, path, sizeof path, &port);
	if (err != 0)
		return err;
	struct rill__sockaddr a;
	memset(&a, 0, sizeof a);
	err = hybrid_sockaddr(u, path, (struct sockaddr_un *)&a.ss, &a.len);
	if (err != 0)
		return err;
	struct hybrid_conn *c = rill_calloc(1, sizeof *c);
	if (c == NULL)
		return RILL_ENOMEM;
	c->cb = cb;
	c->ud = ud;
	c->port = port;
	/* The reply shares the caller's deadline; the transport connect
	 * spends little of it on a local socket. */
	c->reply_ms =
	    opts->timeout_ms > 0 ? opts->timeout_ms : HYBRID_REPLY_DEFAULT_MS;
	snprintf(c->label, sizeof c->label, "hybrid-vsock:%s", u->rest);
	err = rill__socket_connect(loop, &rill__hybrid_vsock_family, &a, 1,
	                           c->label, opts->timeout_ms,
	                           opts->retry_until_ms, hybrid_connected, c);
	if (err != 0)
		rill_free(c);
	return err;
}

static int hybrid_listen_at(uv_loop_t *loop, const struct rill_uri *u,
                            const struct rill_socket_family *fam,
                            const char *path,
                            const struct rill_listen_opts *opts,
                            rill_accept_cb cb, void *ud,
                            struct rill_listener **out)
{
	struct sockaddr_un sa;
	socklen_t len = 0;
	int err = hybrid_sockaddr(u, path, &sa, &len);
	if (err != 0)
		return err;
	char label[200];
	snprintf(label, sizeof label, "%s:%s (%s)", fam->name, u->rest, path);
	return rill__socket_bind_listen(
	    loop, fam, (struct sockaddr *)&sa, len, opts->backlog, false,
	    opts->keep_unix_path ? NULL : sa.sun_path, label, cb, ud, out);
}

static int hybrid_listen(uv_loop_t *loop, const struct rill_uri *u,
                         const struct rill_listen_opts *opts, rill_accept_cb cb,
                         void *ud, struct rill_listener **out)
{
	char path[sizeof((struct sockaddr_un *)0)->sun_path];
	uint32_t port;
	int err = hybrid_parse(u, path, sizeof path, &port);
	if (err != 0)
		return err;
	/* Firecracker connects to "<uds_path>_<port>" for a guest's
	 * connection to host port <port>. */
	char bound[sizeof path + 16];
	snprintf(bound, sizeof bound, "%s_%u", path, (unsigned)port);
	return hybrid_listen_at(loop, u, &rill__hybrid_vsock_family, bound,
	                        opts, cb, ud, out);
}

static const char *const hybrid_params[] = {NULL};

const struct rill_transport_scheme rill__hybrid_vsock_scheme = {
    .name = "hybrid-vsock",
    .params = hybrid_params,
    .check = hybrid_check,
    .connect = hybrid_connect,
    .listen = hybrid_listen,
    .join = rill__socket_join,
};

/* -- HyperKit: connect to <dir>/connect, write "%08x.%08x\n" */

struct hyperkit_conn {
	rill_connect_cb cb;
	void *ud;
	uint32_t cid, port;
};

static void hyperkit_connected(struct rill_flow *f, int status,
                               const char *errmsg, void *ud)
{
	struct hyperkit_conn *c = ud;
	rill_connect_cb cb = c->cb;
	void *cud = c->ud;
	if (status == 0) {
		/* HyperKit answers nothing: the stream starts after the
		 * line, and the flow keeps writes in order. */
		char line[32];
		int n = snprintf(line, sizeof line, "%08x.%08x\n",
		                 (unsigned)c->cid, (unsigned)c->port);
		int err = rill_write_copy(f, line, (size_t)n, NULL, NULL);
		if (err != 0) {
			rill_close(f);
			f = NULL;
			status = err;
			errmsg = "hyperkit: sending the connect line failed";
		} else {
			/* A thin layer keeps the line out of the user's
			 * counters (it consumes f even on failure). */
			struct rill_layer *l = rill_layer_new(
			    f, &prefix_ops, sizeof(struct prefix));
			f = l != NULL ? &l->base : NULL;
			if (l == NULL) {
				status = RILL_ENOMEM;
				errmsg = "hyperkit: out of memory";
			} else {
				rill_flow_set_kind(f, "hyperkit");
			}
		}
	}
	rill_free(c);
	cb(f, status, errmsg, cud);
}

static int hyperkit_connect(uv_loop_t *loop, const struct rill_uri *u,
                            const struct rill_connect_opts *opts,
                            rill_connect_cb cb, void *ud)
{
	char dir[sizeof((struct sockaddr_un *)0)->sun_path];
	uint32_t port;
	uint64_t cid;
	int err = hybrid_parse(u, dir, sizeof dir, &port);
	if (err == 0)
		err = rill__uri_param_u64(u, "cid", 0, UINT32_MAX,
		                          HYPERKIT_DEFAULT_CID, &cid);
	if (err != 0)
		return err;
	char path[sizeof dir + 16];
	snprintf(path, sizeof path, "%s/connect", dir);
	struct rill__sockaddr a;
	memset(&a, 0, sizeof a);
	err = hybrid_sockaddr(u, path, (struct sockaddr_un *)&a.ss, &a.len);
	if (err != 0)
		return err;
	struct hyperkit_conn *c = rill_calloc(1, sizeof *c);
	if (c == NULL)
		return RILL_ENOMEM;
	c->cb = cb;
	c->ud = ud;
	c->cid = (uint32_t)cid;
	c->port = port;
	char label[200];
	snprintf(label, sizeof label, "hyperkit:%s", u->rest);
	err = rill__socket_connect(loop, &rill__hyperkit_family, &a, 1, label,
	                           opts->timeout_ms, opts->retry_until_ms,
	                           hyperkit_connected, c);
	if (err != 0)
		rill_free(c);
	return err;
}

static int hyperkit_listen(uv_loop_t *loop, const struct rill_uri *u,
                           const struct rill_listen_opts *opts,
                           rill_accept_cb cb, void *ud,
                           struct rill_listener **out)
{
	char dir[sizeof((struct sockaddr_un *)0)->sun_path];
	uint32_t port;
	int err = hybrid_parse(u, dir, sizeof dir, &port);
	if (err != 0)
		return err;
	/* HyperKit connects to <dir>/00000002.<port in hex> for a guest's
	 * connection to host (CID 2) port <port>. */
	char bound[sizeof dir + 24];
	snprintf(bound, sizeof bound, "%s/00000002.%08x", dir, (unsigned)port);
	return hybrid_listen_at(loop, u, &rill__hyperkit_family, bound, opts,
	                        cb, ud, out);
}

static const char *const hyperkit_params[] = {"cid", NULL};

const struct rill_transport_scheme rill__hyperkit_scheme = {
    .name = "hyperkit",
    .params = hyperkit_params,
    .check = hyperkit_check,
    .connect = hyperkit_connect,
    .listen = hyperkit_listen,
    .join = rill__socket_join,
};
