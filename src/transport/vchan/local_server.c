/*
 * The server of a memfd vchan: rill_vchan_server, and the server's side
 * of the rendezvous (doc/vchan-rendezvous.md). Connectors go through the
 * gate (gate.c: credentials, deadline, cap), any number at once;
 * the first valid HELLO gets the OFFER of this vchan's memory, and the
 * first READY makes it the client; then the path is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/socket/socket.h"
#include "transport/vchan/local.h"

int rill__vchan_local_offer(struct rill__vchan_local *vl, int fd)
{
	/* fds: the memory, the server's eventfd (the client signals it),
	 * the client's eventfd (the client waits on it). */
	int fds[RILL__RDV_NFDS] = {vl->memfd, vl->my_evt, vl->peer_evt};
	return rill__rdv_send_offer(fd, vl->map_len, vl->left_order,
	                            vl->right_order, fds);
}

int rill__vchan_local_adopt(struct rill__vchan_local *vl, int fd)
{
	vl->sock_fd = fd;
	if (uv_poll_init(vl->ring.base.loop, &vl->sock_poll, fd) != 0) {
		close(fd);
		vl->sock_fd = -1;
		return RILL_ENOMEM;
	}
	vl->sock_init = true;
	vl->sock_poll.data = vl;
	rill__vchan_local_watch_peer(vl);
	return 0;
}

static struct rill__vchan_local *vchan_server_of(struct rill__vchan_gate *g)
{
	return g->data;
}

/* The gate's hooks for rill_vchan_server: one memory, offered to one
 * connector at a time. */

static int vchan_server_offer(struct rill__vchan_gate *g, int fd, void **mem,
                              const char **why)
{
	struct rill__vchan_local *vl = vchan_server_of(g);
	if (vl->state != RILL__VL_LISTENING)
		return -EBUSY;
	int err = rill__vchan_local_offer(vl, fd);
	if (err != 0) {
		*why = "vchan: sending the OFFER failed";
		return err;
	}
	/* Marks the one connection that holds our OFFER. */
	*mem = vl;
	vl->state = RILL__VL_SRV_READY;
	return 0;
}

static void vchan_server_dropped(struct rill__vchan_gate *g, void *mem, int err,
                                 const char *why)
{
	(void)err;
	(void)why;
	struct rill__vchan_local *vl = vchan_server_of(g);
	/* The client that had our OFFER failed: wait for the next one. It
	 * keeps the fds it got; only a peer the policy allows gets them. */
	if (mem != NULL && vl->state == RILL__VL_SRV_READY)
		vl->state = RILL__VL_LISTENING;
}

static void vchan_server_ready(struct rill__vchan_gate *g, int fd, void *mem)
{
	(void)mem;
	struct rill__vchan_local *vl = vchan_server_of(g);
	rill__vchan_local_close_acceptor(vl);
	if (vl->srv.listen_fd >= 0)
		close(vl->srv.listen_fd);
	vl->srv.listen_fd = -1;
	if (vl->srv.path != NULL) {
		unlink(vl->srv.path);
		rill_free(vl->srv.path);
		vl->srv.path = NULL;
	}
	/* Others still in the rendezvous: this vchan is taken. */
	rill__vchan_gate_close(&vl->srv.gate);
	struct rill_flow *f = &vl->ring.base;
	int err = rill__vchan_local_adopt(vl, fd);
	if (err != 0) {
		vl->ring.peer_gone = true;
		rill__vchan_flow_run(&vl->ring);
		if (vl->srv.cb != NULL && !rill_flow_is_closed(f))
			vl->srv.cb(f, err, vl->ud);
		return;
	}
	rill__vchan_flow_run(&vl->ring);
	if (vl->srv.cb != NULL && !rill_flow_is_closed(f))
		vl->srv.cb(f, 0, vl->ud);
}

static const struct rill__vchan_gate_hooks vchan_server_hooks = {
    .offer = vchan_server_offer,
    .ready = vchan_server_ready,
    .dropped = vchan_server_dropped,
};

static void vchan_server_on_accept(struct rill__acceptor *a, int fd, int err)
{
	struct rill__vchan_local *vl = a->data;
	/* Errors: the acceptor paused itself where they can repeat; the
	 * server keeps waiting for a client. */
	(void)err;
	if (fd < 0)
		return;
	if (vl->state == RILL__VL_CONNECTED) {
		close(fd);
		return;
	}
	rill__vchan_gate_add(&vl->srv.gate, fd);
}

/* Binds the rendezvous path and starts accepting. */
static int vchan_server_listen(struct rill__vchan_local *vl, const char *path,
                               const struct rill__vchan_policy *pol)
{
	const char *why = NULL;
	int err = rill__unix_bind_fd(path, 128, &vl->srv.listen_fd, &why);
	if (err != 0) {
		rill__set_last_errmsg("vchan: cannot listen on %s: %s", path,
		                      why != NULL ? why : rill_strerror(err));
		return err;
	}
	vl->srv.path = rill_strdup(path);
	if (vl->srv.path == NULL)
		return RILL_ENOMEM;
	rill__vchan_gate_init(&vl->srv.gate, vl->ring.base.loop,
	                      &vchan_server_hooks, pol, vl);
	vl->srv.gate_init = true;
	err =
	    rill__acceptor_init(vl->ring.base.loop, &vl->srv.acc,
	                        vl->srv.listen_fd, 16, vchan_server_on_accept);
	if (err != 0)
		return err;
	vl->srv.acc_init = true;
	vl->srv.acc.data = vl;
	return 0;
}

int rill__vchan_server(uv_loop_t *loop, const char *domain, const char *port,
                       size_t read_size, size_t write_size,
                       const struct rill__vchan_policy *pol,
                       rill_vchan_server_cb cb, void *ud,
                       struct rill_flow **out)
{
	rill__set_last_errmsg("%s", "");
	if (loop == NULL || out == NULL)
		return RILL_EINVAL;
	*out = NULL;
	char path[RILL__VCHAN_SUN_PATH];
	int err = rill__vchan_socket_path(domain, port, path, sizeof path,
	                                  RILL__VCHAN_DIR_SERVER);
	if (err != 0)
		return err; /* the message names the path and the reason */
	struct rill__vchan_local *vl = rill__vchan_local_new(loop, true);
	if (vl == NULL)
		return RILL_ENOMEM;
	vl->srv.cb = cb;
	vl->ud = ud;
	vl->state = RILL__VL_LISTENING;
	err = rill__vchan_local_setup(vl, read_size, write_size);
	if (err == 0)
		err = vchan_server_listen(vl, path, pol);
	if (err != 0) {
		rill__vchan_local_discard(vl);
		return err;
	}
	*out = &vl->ring.base;
	return 0;
}

int rill_vchan_server(uv_loop_t *loop, const char *domain, const char *port,
                      size_t read_size, size_t write_size,
                      rill_vchan_server_cb cb, void *ud, struct rill_flow **out)
{
	return rill__vchan_server(loop, domain, port, read_size, write_size,
	                          NULL, cb, ud, out);
}
