/*
 * The socket core's listeners: a bound, listening socket of any family,
 * accepted in batches (transport/socket/acceptor.h), and its place in a
 * listener group (rill_listen_opts.join, core/spread.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/core.h"
#include "core/spread.h"
#include "transport/socket/acceptor.h"
#include "transport/socket/socket.h"

struct sock_listener {
	struct rill_listener base;
	struct rill__spread_member spread; /* a group's acceptor */
	const struct rill_socket_family *fam;
	int fd;
	struct rill__acceptor acc;
	char *unlink_path;
};

/* Accepts at most this many connections per wakeup, so a flood of new
 * connections cannot starve the flows already open. */
#define SOCK_ACCEPT_BATCH 64

static void listener_on_accept(struct rill__acceptor *a, int fd, int err)
{
	struct sock_listener *l = a->data;
	if (fd < 0) {
		char msg[128];
		snprintf(msg, sizeof msg, "accept: %s", rill_strerror(err));
		l->base.cb(&l->base, NULL, err, msg, l->base.ud);
		return;
	}
	if (rill__spread_hand(&l->spread, fd))
		return; /* another listener of the group takes it */
	struct rill_flow *f = NULL;
	err = rill__socket_flow_new(l->base.loop, fd, l->fam, &f);
	if (err != 0) {
		l->base.cb(&l->base, NULL, err, "accept: out of memory",
		           l->base.ud);
		return;
	}
	l->base.cb(&l->base, f, 0, NULL, l->base.ud);
}

static void listener_acceptor_closed(struct rill__acceptor *a)
{
	rill_free(a->data);
}

static void listener_close(struct rill_listener *base)
{
	struct sock_listener *l = (struct sock_listener *)base;
	rill__spread_leave(&l->spread);
	rill__acceptor_close(&l->acc, listener_acceptor_closed);
	/* The watch stopped at once: the fd can go now, so that the
	 * address is free again when this returns. */
	close(l->fd);
	l->fd = -1;
	if (l->unlink_path != NULL) {
		unlink(l->unlink_path);
		rill_free(l->unlink_path);
		l->unlink_path = NULL;
	}
}

static int listener_uri(struct rill_listener *base, char *buf, size_t len)
{
	struct sock_listener *l = (struct sock_listener *)base;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	memset(&ss, 0, sizeof ss);
	if (l->fd < 0)
		return RILL_ECLOSED;
	if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) != 0)
		return -errno;
	if (l->fam->format == NULL)
		return -ENOTSUP;
	return l->fam->format((struct sockaddr *)&ss, sl, true, buf, len);
}

static const struct rill_listener_ops listener_ops = {
    .close = listener_close,
    .uri = listener_uri,
};

struct rill__spread_member *
rill__socket_listener_spread(struct rill_listener *base,
                             const struct rill_socket_family **fam)
{
	if (base == NULL || base->ops != &listener_ops)
		return NULL;
	struct sock_listener *l = (struct sock_listener *)base;
	if (l->acc.closing)
		return NULL;
	*fam = l->fam;
	return &l->spread;
}

int rill__socket_listen(uv_loop_t *loop, int fd,
                        const struct rill_socket_family *fam,
                        const char *unlink_path, rill_accept_cb cb, void *ud,
                        struct rill_listener **out)
{
	if (loop == NULL || fd < 0 || fam == NULL || cb == NULL ||
	    out == NULL) {
		if (fd >= 0)
			close(fd);
		return RILL_EINVAL;
	}
	struct sock_listener *l = rill_calloc(1, sizeof *l);
	char *path = unlink_path != NULL ? rill_strdup(unlink_path) : NULL;
	if (l == NULL || (unlink_path != NULL && path == NULL)) {
		rill_free(l);
		rill_free(path);
		close(fd);
		return RILL_ENOMEM;
	}
	int err = rill__socket_set_nonblock(fd, NULL);
	if (err == 0)
		err = rill__spread_open(&l->spread, loop);
	if (err == 0) {
		err = rill__acceptor_init(loop, &l->acc, fd, SOCK_ACCEPT_BATCH,
		                          listener_on_accept);
		if (err != 0)
			rill__spread_leave(&l->spread);
	}
	if (err != 0) {
		rill_free(l);
		rill_free(path);
		close(fd);
		return err;
	}
	l->base.ops = &listener_ops;
	l->base.loop = loop;
	l->base.cb = cb;
	l->base.ud = ud;
	l->fam = fam;
	l->fd = fd;
	l->unlink_path = path;
	l->acc.data = l;
	*out = &l->base;
	return 0;
}

int rill__socket_bind_fd(const struct sockaddr *sa, socklen_t len, int backlog,
                         bool reuseaddr, const char *unlink_path, int *out)
{
	int fd = socket(sa->sa_family,
	                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (reuseaddr)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, sa, len) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (listen(fd, backlog > 0 ? backlog : 511) != 0) {
		int err = -errno;
		close(fd);
		if (unlink_path != NULL)
			unlink(unlink_path);
		return err;
	}
	*out = fd;
	return 0;
}

int rill__socket_bind_listen(uv_loop_t *loop,
                             const struct rill_socket_family *fam,
                             const struct sockaddr *sa, socklen_t len,
                             int backlog, bool reuseaddr,
                             const char *unlink_path, const char *label,
                             rill_accept_cb cb, void *ud,
                             struct rill_listener **out)
{
	if (label == NULL)
		label = fam->name;
	int fd = -1;
	int err =
	    rill__socket_bind_fd(sa, len, backlog, reuseaddr, unlink_path, &fd);
	if (err != 0) {
		rill__set_last_errmsg("listen %s: %s", label, strerror(-err));
		return err;
	}
	err = rill__socket_listen(loop, fd, fam, unlink_path, cb, ud, out);
	if (err != 0) {
		rill__set_last_errmsg("listen %s: %s", label,
		                      rill_strerror(err));
		if (unlink_path != NULL)
			unlink(unlink_path);
	}
	return err;
}
