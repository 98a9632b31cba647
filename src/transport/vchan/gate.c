/* The server's door of the vchan rendezvous (see gate.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "transport/vchan/gate.h"

enum vchan_gate_state { GATE_HELLO, GATE_READY };

struct rill__vchan_gate_conn {
	struct rill__vchan_gate *gate; /* NULL once dropped */
	struct rill__vchan_gate_conn *older, *newer;
	int fd;
	enum vchan_gate_state state;
	uint8_t msg[RILL__RDV_HEADER_LEN];
	size_t msg_len;
	void *mem; /* the owner's, from offer */
	uv_poll_t poll;
	uv_timer_t timer;
	int handles_open;
};

void rill__vchan_policy_default(struct rill__vchan_policy *p)
{
	memset(p, 0, sizeof *p);
	p->timeout_ms = RILL__VCHAN_HANDSHAKE_MS;
	p->max_pending = RILL__VCHAN_PENDING_MAX;
}

bool rill__vchan_uid_allowed(const struct rill__vchan_policy *p, uid_t uid)
{
	if (uid == 0 || uid == geteuid())
		return true;
	for (unsigned i = 0; p != NULL && i < p->nallow; i++)
		if (p->allow[i] == uid)
			return true;
	return false;
}

int rill__vchan_policy_allow(struct rill__vchan_policy *p, const char *list)
{
	const char *s = list;
	if (s == NULL || *s == '\0')
		return RILL_EINVAL;
	for (;;) {
		size_t n = strspn(s, "0123456789");
		if (n == 0 || n > 10 || (s[n] != ',' && s[n] != '\0') ||
		    p->nallow >= RILL__VCHAN_ALLOW_MAX)
			return RILL_EINVAL;
		unsigned long long v = strtoull(s, NULL, 10);
		/* (uid_t)-1 is "no uid" to the kernel (setresuid). */
		if (v >= UINT32_MAX)
			return RILL_EINVAL;
		p->allow[p->nallow++] = (uid_t)v;
		if (s[n] == '\0')
			return 0;
		s += n + 1;
	}
}

int rill__vchan_peer_uid(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -errno;
	if (len != sizeof cred)
		return -EPROTO;
	*uid = cred.uid;
	return 0;
}

void rill__vchan_gate_init(struct rill__vchan_gate *g, uv_loop_t *loop,
                           const struct rill__vchan_gate_hooks *hooks,
                           const struct rill__vchan_policy *pol, void *data)
{
	memset(g, 0, sizeof *g);
	g->loop = loop;
	g->hooks = hooks;
	g->data = data;
	if (pol != NULL)
		g->pol = *pol;
	else
		rill__vchan_policy_default(&g->pol);
	if (g->pol.timeout_ms == 0)
		g->pol.timeout_ms = RILL__VCHAN_HANDSHAKE_MS;
	if (g->pol.max_pending == 0)
		g->pol.max_pending = RILL__VCHAN_PENDING_MAX;
}

/* ---------------------------------------------------------------------- */
/* One connection */

static void gate_conn_on_close(uv_handle_t *h)
{
	struct rill__vchan_gate_conn *c = h->data;
	if (--c->handles_open == 0)
		rill_free(c);
}

/* Takes c out of its gate and closes its handles (its fd stays open:
 * the caller closes it or hands it on). The memory goes when the
 * handles are closed. */
static void gate_conn_detach(struct rill__vchan_gate_conn *c)
{
	struct rill__vchan_gate *g = c->gate;
	if (c->older != NULL)
		c->older->newer = c->newer;
	else
		g->oldest = c->newer;
	if (c->newer != NULL)
		c->newer->older = c->older;
	else
		g->newest = c->older;
	g->n--;
	c->gate = NULL;
	/* Closing the poll handle first takes the fd out of the loop's
	 * epoll set at once, so that a new owner may watch the same fd. */
	uv_close((uv_handle_t *)&c->poll, gate_conn_on_close);
	uv_close((uv_handle_t *)&c->timer, gate_conn_on_close);
}

static void gate_conn_drop(struct rill__vchan_gate_conn *c, int err,
                           const char *why)
{
	struct rill__vchan_gate *g = c->gate;
	void *mem = c->mem;
	gate_conn_detach(c);
	close(c->fd);
	c->fd = -1;
	if (g->hooks->dropped != NULL)
		g->hooks->dropped(g, mem, err, why);
}

/* A whole HELLO or READY is in c->msg. */
static void gate_conn_message(struct rill__vchan_gate_conn *c)
{
	struct rill__vchan_gate *g = c->gate;
	c->msg_len = 0;
	if (c->state == GATE_HELLO) {
		if (!rill__rdv_is(c->msg, RILL__RDV_KIND_HELLO)) {
			gate_conn_drop(c, RILL_EHANDSHAKE,
			               "vchan: bad HELLO from client");
			return;
		}
		const char *why = "vchan: sending the OFFER failed";
		int err = g->hooks->offer(g, c->fd, &c->mem, &why);
		if (err != 0) {
			gate_conn_drop(c, err,
			               err == -EBUSY
			                   ? "vchan: busy with another client"
			                   : why);
			return;
		}
		c->state = GATE_READY;
		return;
	}
	if (!rill__rdv_is(c->msg, RILL__RDV_KIND_READY)) {
		gate_conn_drop(c, RILL_EHANDSHAKE,
		               "vchan: bad READY from client");
		return;
	}
	int fd = c->fd;
	void *mem = c->mem;
	gate_conn_detach(c);
	g->hooks->ready(g, fd, mem);
}

static void gate_conn_on_poll(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct rill__vchan_gate_conn *c = h->data;
	if (c->gate == NULL)
		return;
	ssize_t r = status < 0 ? -1
	                       : recv(c->fd, c->msg + c->msg_len,
	                              sizeof c->msg - c->msg_len, MSG_DONTWAIT);
	if (r < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0 && c->state == GATE_HELLO && c->msg_len == 0) {
		/* Not an error of anyone's: a liveness probe (a second
		 * server trying the path) connects and leaves at once. */
		gate_conn_drop(c, RILL_ECANCELED,
		               "vchan: client left before its HELLO");
		return;
	}
	if (r <= 0) {
		gate_conn_drop(c, RILL_EHANDSHAKE,
		               "vchan: client hung up during the rendezvous");
		return;
	}
	c->msg_len += (size_t)r;
	if (c->msg_len == sizeof c->msg)
		gate_conn_message(c);
}

static void gate_conn_on_timer(uv_timer_t *t)
{
	struct rill__vchan_gate_conn *c = t->data;
	if (c->gate != NULL)
		gate_conn_drop(c, RILL_ETIMEDOUT,
		               "vchan: client silent past the rendezvous "
		               "deadline");
}

void rill__vchan_gate_add(struct rill__vchan_gate *g, int fd)
{
	if (g->closed) {
		close(fd);
		return;
	}
	uid_t uid = (uid_t)-1;
	int err = rill__vchan_peer_uid(fd, &uid);
	if (err != 0 || !rill__vchan_uid_allowed(&g->pol, uid)) {
		char why[128];
		if (err != 0)
			snprintf(why, sizeof why,
			         "vchan: cannot read the client's "
			         "credentials (SO_PEERCRED): %s",
			         strerror(-err));
		else
			snprintf(why, sizeof why,
			         "vchan: refused a client running as uid %u "
			         "(not ours, not root, not in allow_uid)",
			         (unsigned)uid);
		close(fd);
		if (g->hooks->dropped != NULL)
			g->hooks->dropped(g, NULL, -EACCES, why);
		return;
	}
	/* Full: the oldest goes. An honest client sends its HELLO the
	 * moment it connects, so it is never the oldest for long. */
	if (g->n >= g->pol.max_pending && g->oldest != NULL)
		gate_conn_drop(g->oldest, RILL_ETIMEDOUT,
		               "vchan: too many clients in the rendezvous; "
		               "dropped the oldest");
	if (g->closed) {
		/* The owner closed the gate from that drop's callback. */
		close(fd);
		return;
	}
	struct rill__vchan_gate_conn *c = rill_calloc(1, sizeof *c);
	if (c == NULL || uv_poll_init(g->loop, &c->poll, fd) != 0) {
		rill_free(c);
		close(fd);
		if (g->hooks->dropped != NULL)
			g->hooks->dropped(g, NULL, RILL_ENOMEM,
			                  "vchan: out of memory for a client");
		return;
	}
	uv_timer_init(g->loop, &c->timer);
	c->poll.data = c;
	c->timer.data = c;
	c->handles_open = 2;
	c->fd = fd;
	c->gate = g;
	c->state = GATE_HELLO;
	c->older = g->newest;
	if (g->newest != NULL)
		g->newest->newer = c;
	else
		g->oldest = c;
	g->newest = c;
	g->n++;
	uv_timer_start(&c->timer, gate_conn_on_timer, g->pol.timeout_ms, 0);
	uv_poll_start(&c->poll, UV_READABLE, gate_conn_on_poll);
}

void rill__vchan_gate_close(struct rill__vchan_gate *g)
{
	g->closed = true;
	while (g->oldest != NULL)
		gate_conn_drop(g->oldest, RILL_ECANCELED,
		               "vchan: the server closed");
}
