/*
 * A socket listener that joins another's group (rill_listen_opts.join):
 * it has no socket of its own; the acceptor hands it accepted fds, which
 * become flows on this listener's loop. See core/spread.h.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "core/spread.h"
#include "transport/socket/socket.h"

struct sock_member {
	struct rill_listener base;
	struct rill__spread_member spread;
	const struct rill_socket_family *fam;
	char uri[256]; /* the acceptor's, when this one joined */
};

static void member_take(struct rill__spread_member *m, int fd)
{
	struct sock_member *s =
	    rill_container_of(m, struct sock_member, spread);
	struct rill_flow *f = NULL;
	int err = rill__socket_flow_new(s->base.loop, fd, s->fam, &f);
	if (err != 0) {
		s->base.cb(&s->base, NULL, err, "accept: out of memory",
		           s->base.ud);
		return;
	}
	s->base.cb(&s->base, f, 0, NULL, s->base.ud);
}

static void member_left(struct rill__spread_member *m)
{
	rill_free(rill_container_of(m, struct sock_member, spread));
}

static void member_close(struct rill_listener *base)
{
	struct sock_member *s = (struct sock_member *)(void *)base;
	rill__spread_leave(&s->spread);
}

static int member_uri(struct rill_listener *base, char *buf, size_t len)
{
	struct sock_member *s = (struct sock_member *)(void *)base;
	if (s->uri[0] == '\0')
		return -ENOTSUP;
	int n = snprintf(buf, len, "%s", s->uri);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct rill_listener_ops member_ops = {
    .close = member_close,
    .uri = member_uri,
};

int rill__socket_join(uv_loop_t *loop, const struct rill_uri *u,
                      struct rill_listener *acceptor, rill_accept_cb cb,
                      void *ud, struct rill_listener **out)
{
	(void)u;
	const struct rill_socket_family *fam = NULL;
	struct rill__spread_member *acc =
	    rill__socket_listener_spread(acceptor, &fam);
	if (acc == NULL) {
		rill__set_last_errmsg("listen: the listener to join is not an "
		                      "open socket listener");
		return RILL_EINVAL;
	}
	struct sock_member *s = rill_calloc(1, sizeof *s);
	if (s == NULL)
		return RILL_ENOMEM;
	s->base.ops = &member_ops;
	s->base.loop = loop;
	s->base.cb = cb;
	s->base.ud = ud;
	s->fam = fam;
	if (acceptor->ops->uri(acceptor, s->uri, sizeof s->uri) != 0)
		s->uri[0] = '\0';
	int err =
	    rill__spread_join(&s->spread, acc, loop, member_take, member_left);
	if (err != 0) {
		rill__set_last_errmsg("listen: cannot join the listener: %s",
		                      rill_strerror(err));
		rill_free(s);
		return err;
	}
	*out = &s->base;
	return 0;
}
