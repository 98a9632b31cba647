/*
 * The server of a memfd vchan: rill_vchan_server, and the server's side
 * of the rendezvous (doc/vchan-rendezvous.md): accept a client, read its
 * HELLO, send the OFFER with the fds, wait for READY; then the path is
 * removed. One rendezvous at a time: other connectors wait in the
 * backlog.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/socket.h"
#include "transport/vchan_local.h"

static void vchan_server_on_accept(struct rill__acceptor *a, int fd, int err);

/* The rendezvous with one accepted client failed: forget that client. */
static void vchan_server_drop_client(struct rill__vchan_local *vl, int status,
                                     const char *msg)
{
	if (vl->srv.done != NULL) {
		vl->srv.done(vl, status, msg);
		return;
	}
	/* A stray or broken connector must not kill a waiting server: hang
	 * it up and wait for the next client. The poll handle stays (stopped)
	 * and the next connection takes over its fd number. */
	if (vl->sock_init)
		uv_poll_stop(&vl->sock_poll);
	shutdown(vl->sock_fd, SHUT_RDWR);
	vl->srv.msg_len = 0;
	vl->state = RILL__VL_LISTENING;
	if (vl->srv.acc_init)
		rill__acceptor_start(&vl->srv.acc);
}

static void vchan_server_connected(struct rill__vchan_local *vl)
{
	rill__vchan_local_watch_peer(vl);
	rill__vchan_local_close_acceptor(vl);
	if (vl->srv.listen_fd >= 0)
		close(vl->srv.listen_fd);
	vl->srv.listen_fd = -1;
	if (vl->srv.path != NULL) {
		unlink(vl->srv.path);
		rill_free(vl->srv.path);
		vl->srv.path = NULL;
	}
	if (vl->srv.done != NULL) {
		vl->srv.done(vl, 0, NULL);
		return;
	}
	struct rill_flow *f = &vl->ring.base;
	rill__vchan_flow_run(&vl->ring);
	if (vl->srv.cb != NULL && !rill_flow_is_closed(f))
		vl->srv.cb(f, 0, vl->ud);
}

static int vchan_server_send_offer(struct rill__vchan_local *vl)
{
	/* fds: the memory, the server's eventfd (the client signals it),
	 * the client's eventfd (the client waits on it). */
	int fds[RILL__RDV_NFDS] = {vl->memfd, vl->my_evt, vl->peer_evt};
	return rill__rdv_send_offer(vl->sock_fd, vl->map_len, vl->left_order,
	                            vl->right_order, fds);
}

/* A whole HELLO or READY is in vl->srv.msg: act on it. */
static void vchan_server_message(struct rill__vchan_local *vl)
{
	const uint8_t *m = vl->srv.msg;
	vl->srv.msg_len = 0;
	if (vl->state == RILL__VL_SRV_HELLO) {
		if (!rill__rdv_is(m, RILL__RDV_KIND_HELLO)) {
			vchan_server_drop_client(
			    vl, RILL_EHANDSHAKE,
			    "vchan: bad HELLO from client");
			return;
		}
		int err = vchan_server_send_offer(vl);
		if (err != 0) {
			vchan_server_drop_client(
			    vl, err, "vchan: sending the OFFER failed");
			return;
		}
		vl->state = RILL__VL_SRV_READY;
		return;
	}
	if (!rill__rdv_is(m, RILL__RDV_KIND_READY)) {
		vchan_server_drop_client(vl, RILL_EHANDSHAKE,
		                         "vchan: bad READY from client");
		return;
	}
	vchan_server_connected(vl);
}

static void vchan_server_on_sock(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct rill__vchan_local *vl = h->data;
	size_t want = RILL__RDV_HEADER_LEN;
	ssize_t r = status < 0
	                ? -1
	                : recv(vl->sock_fd, vl->srv.msg + vl->srv.msg_len,
	                       want - vl->srv.msg_len, MSG_DONTWAIT);
	if (r < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		vchan_server_drop_client(vl, RILL_EHANDSHAKE,
		                         "vchan: client hung up during the "
		                         "rendezvous");
		return;
	}
	vl->srv.msg_len += (size_t)r;
	if (vl->srv.msg_len == want)
		vchan_server_message(vl);
}

void rill__vchan_local_serve(struct rill__vchan_local *vl, int fd)
{
	vl->state = RILL__VL_SRV_HELLO;
	vl->srv.msg_len = 0;
	if (vl->sock_init) {
		/* A previous connector failed: reuse its fd number, so the
		 * poll handle (bound to the number) serves the new one. */
		int r = dup3(fd, vl->sock_fd, O_CLOEXEC);
		int e = errno;
		close(fd);
		if (r < 0) {
			vchan_server_drop_client(vl, -e, "vchan: dup3");
			return;
		}
	} else {
		vl->sock_fd = fd;
		if (uv_poll_init(vl->ring.base.loop, &vl->sock_poll, fd) != 0) {
			close(fd);
			vl->sock_fd = -1;
			vchan_server_drop_client(vl, RILL_ENOMEM,
			                         "vchan: uv_poll_init failed");
			return;
		}
		vl->sock_init = true;
		vl->sock_poll.data = vl;
	}
	uv_poll_start(&vl->sock_poll, UV_READABLE, vchan_server_on_sock);
}

static void vchan_server_on_accept(struct rill__acceptor *a, int fd, int err)
{
	struct rill__vchan_local *vl = a->data;
	/* Errors: the acceptor paused itself where they can repeat; the
	 * server keeps waiting for a client. */
	(void)err;
	if (fd < 0 || vl->state != RILL__VL_LISTENING) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* One rendezvous at a time; others wait in the backlog. */
	rill__acceptor_stop(a);
	rill__vchan_local_serve(vl, fd);
}

/* Binds the rendezvous path and starts accepting. */
static int vchan_server_listen(struct rill__vchan_local *vl, const char *path)
{
	int err = rill__unix_bind_fd(path, 16, &vl->srv.listen_fd);
	if (err != 0) {
		rill__set_last_errmsg("vchan: cannot listen on %s: %s", path,
		                      rill_strerror(err));
		return err;
	}
	vl->srv.path = rill_strdup(path);
	if (vl->srv.path == NULL)
		return RILL_ENOMEM;
	err = rill__acceptor_init(vl->ring.base.loop, &vl->srv.acc,
	                          vl->srv.listen_fd, 1, vchan_server_on_accept);
	if (err != 0)
		return err;
	vl->srv.acc_init = true;
	vl->srv.acc.data = vl;
	return 0;
}

int rill_vchan_server(uv_loop_t *loop, const char *domain, const char *port,
                      size_t read_size, size_t write_size,
                      rill_vchan_server_cb cb, void *ud, struct rill_flow **out)
{
	rill__set_last_errmsg("%s", "");
	if (loop == NULL || out == NULL)
		return RILL_EINVAL;
	*out = NULL;
	char path[RILL__VCHAN_SUN_PATH];
	int err =
	    rill__vchan_socket_path(domain, port, path, sizeof path, true);
	if (err != 0) {
		rill__set_last_errmsg("vchan: bad or too long name %s/%s: %s",
		                      domain != NULL ? domain : "",
		                      port != NULL ? port : "(null)",
		                      rill_strerror(err));
		return err;
	}
	struct rill__vchan_local *vl = rill__vchan_local_new(loop, true);
	if (vl == NULL)
		return RILL_ENOMEM;
	vl->srv.cb = cb;
	vl->ud = ud;
	vl->state = RILL__VL_LISTENING;
	err = rill__vchan_local_setup(vl, read_size, write_size);
	if (err == 0)
		err = vchan_server_listen(vl, path);
	if (err != 0) {
		rill__vchan_local_discard(vl);
		return err;
	}
	*out = &vl->ring.base;
	return 0;
}
