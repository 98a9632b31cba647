/* The accept loop (see acceptor.h). */
#include <errno.h>
#include <sys/socket.h>

#include "transport/socket/acceptor.h"

static void acceptor_on_poll(uv_poll_t *h, int status, int events);

static void acceptor_watch(struct rill__acceptor *a)
{
	if (!a->watching && !a->closing &&
	    uv_poll_start(&a->poll, UV_READABLE, acceptor_on_poll) == 0)
		a->watching = true;
}

static void acceptor_on_pause(uv_timer_t *t)
{
	acceptor_watch(t->data);
}

/* Errors after which accept would fail again at once. */
static bool acceptor_must_pause(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

static void acceptor_pause(struct rill__acceptor *a)
{
	rill__acceptor_stop(a);
	uv_timer_start(&a->pause, acceptor_on_pause, RILL__ACCEPT_PAUSE_MS, 0);
}

static void acceptor_on_poll(uv_poll_t *h, int status, int events)
{
	struct rill__acceptor *a = h->data;
	(void)events;
	if (status < 0) {
		/* A broken watch would report the same at once again. */
		acceptor_pause(a);
		a->cb(a, -1, status);
		return;
	}
	for (unsigned i = 0; i < a->batch && a->watching && !a->closing; i++) {
		int fd =
		    accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			a->cb(a, fd, 0);
			continue;
		}
		int e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK)
			return;
		if (e == EINTR || e == ECONNABORTED || e == EPROTO)
			continue;
		if (acceptor_must_pause(e))
			acceptor_pause(a);
		a->cb(a, -1, -e);
		return;
	}
}

int rill__acceptor_init(uv_loop_t *loop, struct rill__acceptor *a, int fd,
                        unsigned batch, rill__accept_cb cb)
{
	int err = uv_poll_init(loop, &a->poll, fd);
	if (err != 0)
		return err;
	uv_timer_init(loop, &a->pause);
	a->poll.data = a;
	a->pause.data = a;
	a->fd = fd;
	a->batch = batch > 0 ? batch : 1;
	a->cb = cb;
	a->closed_cb = NULL;
	a->handles_open = 2;
	a->watching = a->closing = false;
	acceptor_watch(a);
	return 0;
}

void rill__acceptor_stop(struct rill__acceptor *a)
{
	if (a->watching)
		uv_poll_stop(&a->poll);
	a->watching = false;
	uv_timer_stop(&a->pause);
}

void rill__acceptor_start(struct rill__acceptor *a)
{
	if (!uv_is_active((uv_handle_t *)&a->pause))
		acceptor_watch(a);
}

static void acceptor_handle_closed(uv_handle_t *h)
{
	struct rill__acceptor *a = h->data;
	if (--a->handles_open == 0 && a->closed_cb != NULL)
		a->closed_cb(a);
}

void rill__acceptor_close(struct rill__acceptor *a,
                          void (*closed_cb)(struct rill__acceptor *a))
{
	a->closing = true;
	a->watching = false;
	a->closed_cb = closed_cb;
	uv_close((uv_handle_t *)&a->poll, acceptor_handle_closed);
	uv_close((uv_handle_t *)&a->pause, acceptor_handle_closed);
}
