/*
 * The conformance suite on socket flows: tcp4, tcp6 and unix; and, only
 * inside a QEMU guest of tests/vm/ (th_in_vm_guest), vsock and shut+vsock
 * over the kernel's vsock_loopback. Each factory listens, connects to the
 * listener's URI and returns the connecting side as a and the accepted
 * side as b; the suite runs every check both ways.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conformance.h"
#include "harness.h"
#include "transport/socket/socket.h"

struct sock_conf {
	const char *listen_uri;
	struct rill_listener *l;
	struct rill_flow *accepted;
	struct rill_flow *connected;
	int status;
	bool connect_done;
};

static void conf_on_accept(struct rill_listener *l, struct rill_flow *f,
                           int status, const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct sock_conf *c = ud;
	if (status != 0 || c->accepted != NULL) {
		rill_close(f);
		return;
	}
	c->accepted = f;
}

static void conf_on_connect(struct rill_flow *f, int status, const char *errmsg,
                            void *ud)
{
	(void)errmsg;
	struct sock_conf *c = ud;
	c->connect_done = true;
	c->status = status;
	c->connected = f;
}

static int conf_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                     struct rill_flow **b)
{
	struct sock_conf *c = arg;
	char uri[160];
	c->accepted = c->connected = NULL;
	c->connect_done = false;
	int err =
	    rill_listen(loop, c->listen_uri, NULL, conf_on_accept, c, &c->l);
	if (err != 0)
		return err;
	err = rill_listener_uri(c->l, uri, sizeof uri);
	if (err == 0)
		err = rill_connect(loop, uri, NULL, conf_on_connect, c);
	if (err != 0)
		return err;
	while (!c->connect_done || (c->status == 0 && c->accepted == NULL))
		uv_run(loop, UV_RUN_ONCE);
	if (c->status != 0)
		return c->status;
	/* One connection per check: no need to keep listening. */
	rill_listener_close(c->l);
	c->l = NULL;
	*a = c->connected;
	*b = c->accepted;
	return 0;
}

static void conf_cleanup(uv_loop_t *loop, void *arg)
{
	(void)loop;
	struct sock_conf *c = arg;
	rill_listener_close(c->l);
	c->l = NULL;
}

/* TCP: SO_LINGER with a zero timeout makes close send an RST. */
static int conf_reset(struct rill_flow *f, void *arg)
{
	(void)arg;
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	int fd = rill__socket_fd(f);
	int err = setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	rill_close(f);
	return err == 0 ? 0 : -errno;
}

/* Three kinds, both orientations: 16 MiB per large transfer keeps the
 * whole program near a minute under ASan; the 64 MiB transfers over
 * sockets are in test_cli_socket.py (real peers, optimized build). */
#define CONF_SOCKET_BIG (16u * 1024u * 1024u)

static struct sock_conf tcp4_arg = {.listen_uri = "tcp://127.0.0.1:0"};
static struct sock_conf tcp6_arg = {.listen_uri = "tcp://[::1]:0"};
static struct sock_conf unix_arg;
static char unix_uri[64];

static const struct conf_factory tcp4_factory = {
    .name = "tcp4",
    .make = conf_make,
    .cleanup = conf_cleanup,
    .reset = conf_reset,
    .arg = &tcp4_arg,
    .big_bytes = CONF_SOCKET_BIG,
};

static const struct conf_factory tcp6_factory = {
    .name = "tcp6",
    .make = conf_make,
    .cleanup = conf_cleanup,
    .reset = conf_reset,
    .arg = &tcp6_arg,
    .big_bytes = CONF_SOCKET_BIG,
};

/* Unix sockets have no RST: a peer sees ECONNRESET only when a socket
 * is closed with unread data queued, which the factory cannot arrange
 * for an arbitrary check; so no reset hook. */
static const struct conf_factory unix_factory = {
    .name = "unix",
    .make = conf_make,
    .cleanup = conf_cleanup,
    .arg = &unix_arg,
    .big_bytes = CONF_SOCKET_BIG,
};

/* AF_VSOCK, in a guest: listening on any CID and any port, so every
 * check also connects to what rill_listener_uri made of that. The guest
 * emulates its CPU: a few MiB per large transfer. No reset hook: a vsock
 * close sends an orderly shutdown whatever SO_LINGER says. */
#define CONF_VSOCK_BIG (4u * 1024u * 1024u)
/* A vsock socket buffers 256 KiB (SO_VM_SOCKETS_BUFFER_SIZE) each way:
 * 2 MiB is a bound that a flow without back-pressure exceeds. */
#define CONF_VSOCK_ABSORB (2u * 1024u * 1024u)

static struct sock_conf vsock_arg = {.listen_uri = "vsock://any:any"};
static struct sock_conf shut_vsock_arg = {.listen_uri = "shut+vsock://any:any"};

static const struct conf_factory vsock_factory = {
    .name = "vsock",
    .make = conf_make,
    .cleanup = conf_cleanup,
    .arg = &vsock_arg,
    .big_bytes = CONF_VSOCK_BIG,
    .absorb_bytes = CONF_VSOCK_ABSORB,
};

static const struct conf_factory shut_vsock_factory = {
    .name = "shut+vsock",
    .make = conf_make,
    .cleanup = conf_cleanup,
    .arg = &shut_vsock_arg,
    .big_bytes = CONF_VSOCK_BIG,
    .absorb_bytes = CONF_VSOCK_ABSORB,
};

__attribute__((constructor)) static void conf_reg_sockets(void)
{
	if (th_in_vm_guest()) {
		conf_register(&vsock_factory);
		conf_register(&shut_vsock_factory);
	}
	/* An abstract name per process: checks run in parallel. */
	snprintf(unix_uri, sizeof unix_uri, "unix:@rill-conf-%d",
	         (int)getpid());
	unix_arg.listen_uri = unix_uri;
	conf_register(&tcp4_factory);
	/* Under valgrind (tests/run.py sets TH_TIMEOUT_MULT there) the three
	 * kinds would take about five minutes; they share every line of the
	 * socket code but the address family, so tcp4 (which also has the
	 * reset check) stands for them there. ASan runs all three. */
	if (getenv("TH_TIMEOUT_MULT") != NULL)
		return;
	conf_register(&tcp6_factory);
	conf_register(&unix_factory);
}
