/*
 * The client of a memfd vchan: rill_vchan_client. It connects to the
 * rendezvous socket (the socket core's connect, retrying while allowed),
 * sends HELLO, receives the OFFER, validates and maps the memory, sets
 * cli_live and sends READY; only then is the flow handed to the user.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/socket/socket.h"
#include "transport/vchan/local.h"

static void vchan_client_finish(struct rill__vchan_local *vl, int status,
                                const char *msg)
{
	rill_connect_cb cb = vl->cli.cb;
	vl->cli.cb = NULL;
	if (cb == NULL)
		return;
	if (status == 0) {
		uv_timer_stop(&vl->cli.timer);
		cb(&vl->ring.base, 0, NULL, vl->ud);
		return;
	}
	char text[384];
	snprintf(text, sizeof text, "vchan connect %s: %s", vl->cli.sun_path,
	         msg);
	void *ud = vl->ud;
	rill__vchan_local_discard(vl);
	cb(NULL, status, text, ud);
}

/* The whole OFFER is in: map it, say READY. */
static int vchan_client_accept_offer(struct rill__vchan_local *vl,
                                     const char **why)
{
	int err = rill__vchan_local_map_offer(vl, &vl->cli.offer, why);
	if (err != 0)
		return err;
	rill__vchan_set_live(&vl->ring.v, RILL__VCHAN_LIVE_OPEN);
	if (rill__rdv_send_header(vl->sock_fd, RILL__RDV_KIND_READY) != 0) {
		*why = "sending READY failed";
		return RILL_EHANDSHAKE;
	}
	vl->ring.backend->signal(&vl->ring);
	return 0;
}

static void vchan_client_on_sock(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct rill__vchan_local *vl = h->data;
	const char *why = "the server hung up before its OFFER";
	int r = status < 0
	            ? RILL_EHANDSHAKE
	            : rill__rdv_recv_offer(vl->sock_fd, &vl->cli.offer, &why);
	if (r == -EAGAIN || r == 0)
		return;
	if (r == 1)
		r = vchan_client_accept_offer(vl, &why);
	if (r != 0) {
		vchan_client_finish(vl, r, why);
		return;
	}
	rill__vchan_local_watch_peer(vl);
	vchan_client_finish(vl, 0, NULL);
}

static void vchan_client_on_timer(uv_timer_t *t)
{
	vchan_client_finish(t->data, RILL_ETIMEDOUT,
	                    "timed out in the rendezvous");
}

static void vchan_client_on_connect(int fd, int status, const char *errmsg,
                                    void *ud)
{
	struct rill__vchan_local *vl = ud;
	if (fd < 0) {
		/* The socket core's message names the path and the reason. */
		rill_connect_cb cb = vl->cli.cb;
		void *cb_ud = vl->ud;
		char text[384];
		snprintf(text, sizeof text, "vchan: %s", errmsg);
		rill__vchan_local_discard(vl);
		cb(NULL, status, text, cb_ud);
		return;
	}
	vl->sock_fd = fd;
	vl->state = RILL__VL_CLI_OFFER;
	/* Our bytes go only to a server the policy allows: whoever listens
	 * on the path may be someone else (doc/security.md). */
	uid_t uid = (uid_t)-1;
	int err = rill__vchan_peer_uid(fd, &uid);
	if (err != 0 || !rill__vchan_uid_allowed(&vl->cli.pol, uid)) {
		char why[160];
		if (err != 0)
			snprintf(why, sizeof why,
			         "cannot read the server's credentials "
			         "(SO_PEERCRED): %s",
			         strerror(-err));
		else
			snprintf(why, sizeof why,
			         "refusing a server running as uid %u (not us, "
			         "not root, not in allow_uid)",
			         (unsigned)uid);
		vchan_client_finish(vl, -EACCES, why);
		return;
	}
	if (rill__rdv_send_header(fd, RILL__RDV_KIND_HELLO) != 0) {
		vchan_client_finish(vl, RILL_EHANDSHAKE, "cannot send HELLO");
		return;
	}
	if (uv_poll_init(vl->ring.base.loop, &vl->sock_poll, fd) != 0) {
		vchan_client_finish(vl, RILL_ENOMEM, "uv_poll_init failed");
		return;
	}
	vl->sock_init = true;
	vl->sock_poll.data = vl;
	uv_poll_start(&vl->sock_poll, UV_READABLE, vchan_client_on_sock);
	/* The rendezvous itself has a deadline too: a server that never
	 * sends its OFFER must not hold us. */
	uv_loop_t *loop = vl->ring.base.loop;
	uv_update_time(loop);
	uint64_t now = uv_now(loop);
	uint64_t left = vl->cli.pol.timeout_ms;
	if (vl->cli.deadline != 0 && vl->cli.deadline - now < left)
		left = vl->cli.deadline > now ? vl->cli.deadline - now : 0;
	uv_timer_start(&vl->cli.timer, vchan_client_on_timer, left, 0);
}

int rill__vchan_client(uv_loop_t *loop, const char *domain, const char *port,
                       const struct rill_connect_opts *opts,
                       const struct rill__vchan_policy *pol, rill_connect_cb cb,
                       void *ud)
{
	rill__set_last_errmsg("%s", "");
	if (loop == NULL || cb == NULL)
		return RILL_EINVAL;
	struct rill__sockaddr addr;
	memset(&addr, 0, sizeof addr);
	struct sockaddr_un *sa = (struct sockaddr_un *)&addr.ss;
	sa->sun_family = AF_UNIX;
	if (port == NULL) {
		rill__set_last_errmsg("vchan: no port name");
		return RILL_EINVAL;
	}
	int err = rill__vchan_socket_path(domain, port, sa->sun_path,
	                                  sizeof sa->sun_path,
	                                  RILL__VCHAN_DIR_CLIENT);
	if (err != 0)
		return err; /* the message names the path and the reason */
	addr.len = (socklen_t)sizeof *sa;
	struct rill__vchan_local *vl = rill__vchan_local_new(loop, false);
	if (vl == NULL)
		return RILL_ENOMEM;
	memcpy(vl->cli.sun_path, sa->sun_path, sizeof vl->cli.sun_path);
	vl->cli.cb = cb;
	vl->ud = ud;
	if (pol != NULL)
		vl->cli.pol = *pol;
	else
		rill__vchan_policy_default(&vl->cli.pol);
	if (vl->cli.pol.timeout_ms == 0)
		vl->cli.pol.timeout_ms = RILL__VCHAN_HANDSHAKE_MS;
	vl->state = RILL__VL_CONNECTING;
	uv_timer_init(loop, &vl->cli.timer);
	vl->cli.timer_init = true;
	vl->cli.timer.data = vl;
	uint64_t timeout = opts != NULL ? opts->timeout_ms : 0;
	uint64_t retry = opts != NULL ? opts->retry_until_ms : 0;
	uv_update_time(loop);
	if (timeout > 0)
		vl->cli.deadline = uv_now(loop) + timeout;
	char label[RILL__VCHAN_SUN_PATH + 16];
	snprintf(label, sizeof label, "unix:%s", vl->cli.sun_path);
	/* Completes from the loop, so cb never runs inside this call. */
	err = rill__socket_connect_fd(loop, &rill__unix_family, &addr, 1, label,
	                              timeout, retry, vchan_client_on_connect,
	                              vl);
	if (err != 0)
		rill__vchan_local_discard(vl);
	return err;
}

int rill_vchan_client(uv_loop_t *loop, const char *domain, const char *port,
                      const struct rill_connect_opts *opts, rill_connect_cb cb,
                      void *ud)
{
	return rill__vchan_client(loop, domain, port, opts, NULL, cb, ud);
}
