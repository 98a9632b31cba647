/*
 * The socket core's connect: every address of a family tried in order
 * (names resolved with uv_getaddrinfo), each attempt non-blocking under
 * one deadline, refused attempts retried until retry_until, and the error
 * of the last attempt reported with the address it was for.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/core.h"
#include "transport/socket/socket.h"

struct sock_connect {
	uv_loop_t *loop;
	const struct rill_socket_family *fam;
	struct rill__sockaddr *addrs;
	size_t n, idx;
	char *label;
	int fd;
	uv_poll_t *poll; /* the attempt in progress, if any */
	uv_timer_t deadline, step;
	uv_getaddrinfo_t gai;
	uint64_t start_ms, timeout_ms, retry_until_ms;
	uint64_t retry_delay;
	rill_connect_cb cb;
	rill__connect_fd_cb fd_cb; /* instead of cb: hand out the fd */
	void *ud;
	int err; /* the last attempt's error */
	char errmsg[384];
	int refs; /* open handles + a pending getaddrinfo */
	bool finished;
};

static void connect_step(struct sock_connect *c);

static void connect_unref(struct sock_connect *c)
{
	if (--c->refs > 0)
		return;
	rill_free(c->addrs);
	rill_free(c->label);
	rill_free(c);
}

static void connect_handle_closed(uv_handle_t *h)
{
	connect_unref(h->data);
}

static void connect_poll_closed(uv_handle_t *h)
{
	struct sock_connect *c = h->data;
	rill_free(h);
	connect_unref(c);
}

/* Ends the current attempt; keeps the fd open when keep_fd. */
static void connect_end_attempt(struct sock_connect *c, bool keep_fd)
{
	if (c->poll != NULL) {
		/* uv_close stops the watcher at once, so the fd is free for
		 * the flow's own poll handle (or for close) right away. */
		uv_close((uv_handle_t *)c->poll, connect_poll_closed);
		c->poll = NULL;
	}
	if (!keep_fd && c->fd >= 0)
		close(c->fd);
	if (!keep_fd)
		c->fd = -1;
}

static void connect_finish(struct sock_connect *c, int status,
                           struct rill_flow *f)
{
	c->finished = true;
	connect_end_attempt(c, false);
	uv_close((uv_handle_t *)&c->deadline, connect_handle_closed);
	uv_close((uv_handle_t *)&c->step, connect_handle_closed);
	if (c->fd_cb != NULL)
		c->fd_cb(-1, status, c->errmsg, c->ud);
	else
		c->cb(f, status, status != 0 ? c->errmsg : NULL, c->ud);
}

static void connect_fail(struct sock_connect *c, int err)
{
	connect_finish(c, err, NULL);
}

static void connect_addr_text(struct sock_connect *c, char *buf, size_t len)
{
	const struct rill__sockaddr *a = &c->addrs[c->idx];
	if (c->fam->format == NULL ||
	    c->fam->format((const struct sockaddr *)&a->ss, a->len, false, buf,
	                   len) != 0)
		snprintf(buf, len, "?");
}

/* Records why the current address failed and moves to the next. */
static void connect_attempt_failed(struct sock_connect *c, int err)
{
	if (c->fam->connect_error != NULL)
		err = c->fam->connect_error(err);
	char addr[256];
	connect_addr_text(c, addr, sizeof addr);
	c->err = err;
	if (strcmp(addr, c->label) == 0)
		snprintf(c->errmsg, sizeof c->errmsg, "connect %s: %s",
		         c->label, rill_strerror(err));
	else
		snprintf(c->errmsg, sizeof c->errmsg, "connect %s (%s): %s",
		         c->label, addr, rill_strerror(err));
	connect_end_attempt(c, false);
	c->idx++;
}

static void connect_succeeded(struct sock_connect *c)
{
	int fd = c->fd;
	connect_end_attempt(c, true);
	c->fd = -1;
	if (c->fd_cb != NULL) {
		c->finished = true;
		uv_close((uv_handle_t *)&c->deadline, connect_handle_closed);
		uv_close((uv_handle_t *)&c->step, connect_handle_closed);
		c->fd_cb(fd, 0, NULL, c->ud);
		return;
	}
	struct rill_flow *f = NULL;
	int err = rill__socket_flow_new(c->loop, fd, c->fam, &f);
	if (err != 0) {
		snprintf(c->errmsg, sizeof c->errmsg, "connect %s: %s",
		         c->label, rill_strerror(err));
		connect_fail(c, err);
		return;
	}
	connect_finish(c, 0, f);
}

static void connect_on_poll(uv_poll_t *h, int status, int events)
{
	struct sock_connect *c = h->data;
	(void)events;
	if (c->finished || h != c->poll)
		return;
	int err = 0;
	socklen_t len = sizeof err;
	/* libuv turns POLLERR into status UV_EBADF; the real reason is the
	 * socket's pending error either way. */
	(void)status;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == 0) {
		connect_succeeded(c);
		return;
	}
	connect_attempt_failed(c, -err);
	connect_step(c);
}

static void connect_on_step(uv_timer_t *t)
{
	struct sock_connect *c = t->data;
	if (!c->finished)
		connect_step(c);
}

static void connect_on_deadline(uv_timer_t *t)
{
	struct sock_connect *c = t->data;
	if (c->finished)
		return;
	snprintf(c->errmsg, sizeof c->errmsg,
	         "connect %s: timed out after %llu ms", c->label,
	         (unsigned long long)c->timeout_ms);
	connect_fail(c, RILL_ETIMEDOUT);
}

static bool connect_retryable(int err)
{
	return err == -ECONNREFUSED || err == -ENOENT || err == -ECONNRESET;
}

/* Tries addresses from idx on until one is in progress or all failed. */
static void connect_step(struct sock_connect *c)
{
	while (c->idx < c->n) {
		const struct rill__sockaddr *a = &c->addrs[c->idx];
		int fd = socket(a->ss.ss_family,
		                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			connect_attempt_failed(c, -errno);
			continue;
		}
		c->fd = fd;
		int r;
		do
			r = connect(fd, (const struct sockaddr *)&a->ss,
			            a->len);
		while (r != 0 && errno == EINTR);
		if (r == 0) {
			connect_succeeded(c);
			return;
		}
		if (errno == EAGAIN) {
			/* A Unix listener with a full backlog: the kernel
			 * cannot tell us when there is room, so try again
			 * shortly, until the deadline. */
			close(fd);
			c->fd = -1;
			c->err = -EAGAIN;
			snprintf(c->errmsg, sizeof c->errmsg,
			         "connect %s: listener backlog full", c->label);
			uv_timer_start(&c->step, connect_on_step, 5, 0);
			return;
		}
		if (errno != EINPROGRESS) {
			connect_attempt_failed(c, -errno);
			continue;
		}
		c->poll = rill_malloc(sizeof *c->poll);
		if (c->poll == NULL) {
			connect_attempt_failed(c, RILL_ENOMEM);
			continue;
		}
		r = uv_poll_init(c->loop, c->poll, fd);
		if (r != 0) {
			rill_free(c->poll);
			c->poll = NULL;
			connect_attempt_failed(c, r);
			continue;
		}
		c->refs++;
		c->poll->data = c;
		uv_poll_start(c->poll, UV_WRITABLE, connect_on_poll);
		return;
	}
	/* Every address failed. */
	uint64_t elapsed = uv_now(c->loop) - c->start_ms;
	if (c->retry_until_ms > 0 && connect_retryable(c->err) &&
	    elapsed < c->retry_until_ms) {
		uint64_t delay = c->retry_delay;
		if (delay > c->retry_until_ms - elapsed)
			delay = c->retry_until_ms - elapsed;
		c->retry_delay =
		    c->retry_delay * 2 > 500 ? 500 : c->retry_delay * 2;
		c->idx = 0;
		uv_timer_start(&c->step, connect_on_step, delay, 0);
		return;
	}
	connect_fail(c, c->err != 0 ? c->err : -EADDRNOTAVAIL);
}

static struct sock_connect *connect_new(uv_loop_t *loop,
                                        const struct rill_socket_family *fam,
                                        const char *label, uint64_t timeout_ms,
                                        uint64_t retry_until_ms,
                                        rill_connect_cb cb, void *ud)
{
	struct sock_connect *c = rill_calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->label = rill_strdup(label != NULL ? label : fam->name);
	if (c->label == NULL) {
		rill_free(c);
		return NULL;
	}
	c->loop = loop;
	c->fam = fam;
	c->fd = -1;
	c->cb = cb;
	c->ud = ud;
	c->timeout_ms = timeout_ms;
	c->retry_until_ms = retry_until_ms;
	c->retry_delay = 10;
	uv_update_time(loop);
	c->start_ms = uv_now(loop);
	uv_timer_init(loop, &c->deadline);
	uv_timer_init(loop, &c->step);
	c->deadline.data = c;
	c->step.data = c;
	c->refs = 2;
	if (timeout_ms > 0)
		uv_timer_start(&c->deadline, connect_on_deadline, timeout_ms,
		               0);
	return c;
}

static int connect_start(uv_loop_t *loop, const struct rill_socket_family *fam,
                         const struct rill__sockaddr *addrs, size_t n,
                         const char *label, uint64_t timeout_ms,
                         uint64_t retry_until_ms, rill_connect_cb cb,
                         rill__connect_fd_cb fd_cb, void *ud)
{
	struct rill__sockaddr *copy = rill_calloc(n, sizeof *copy);
	if (copy == NULL)
		return RILL_ENOMEM;
	memcpy(copy, addrs, n * sizeof *copy);
	struct sock_connect *c =
	    connect_new(loop, fam, label, timeout_ms, retry_until_ms, cb, ud);
	if (c == NULL) {
		rill_free(copy);
		return RILL_ENOMEM;
	}
	c->addrs = copy;
	c->n = n;
	c->fd_cb = fd_cb;
	/* The first attempt runs from the loop: the callback must never
	 * run inside this call, and a Unix connect can succeed at once. */
	uv_timer_start(&c->step, connect_on_step, 0, 0);
	return 0;
}

int rill__socket_connect(uv_loop_t *loop, const struct rill_socket_family *fam,
                         const struct rill__sockaddr *addrs, size_t n,
                         const char *label, uint64_t timeout_ms,
                         uint64_t retry_until_ms, rill_connect_cb cb, void *ud)
{
	if (loop == NULL || fam == NULL || addrs == NULL || n == 0 ||
	    cb == NULL)
		return RILL_EINVAL;
	return connect_start(loop, fam, addrs, n, label, timeout_ms,
	                     retry_until_ms, cb, NULL, ud);
}

int rill__socket_connect_fd(uv_loop_t *loop,
                            const struct rill_socket_family *fam,
                            const struct rill__sockaddr *addrs, size_t n,
                            const char *label, uint64_t timeout_ms,
                            uint64_t retry_until_ms, rill__connect_fd_cb cb,
                            void *ud)
{
	if (loop == NULL || fam == NULL || addrs == NULL || n == 0 ||
	    cb == NULL)
		return RILL_EINVAL;
	return connect_start(loop, fam, addrs, n, label, timeout_ms,
	                     retry_until_ms, NULL, cb, ud);
}

static int connect_gai_error(int status)
{
	switch (status) {
	case UV_EAI_NONAME:
	case UV_EAI_NODATA:
	case UV_EAI_SERVICE:
	case UV_EAI_ADDRFAMILY: return -ENOENT;
	case UV_EAI_AGAIN: return -EAGAIN;
	case UV_EAI_MEMORY: return RILL_ENOMEM;
	case UV_ECANCELED: return RILL_ECANCELED;
	default: return -EIO;
	}
}

static void connect_on_resolved(uv_getaddrinfo_t *req, int status,
                                struct addrinfo *res)
{
	struct sock_connect *c = req->data;
	if (c->finished) {
		uv_freeaddrinfo(res);
		connect_unref(c);
		return;
	}
	c->refs--; /* the request is over; handles still hold c */
	if (status != 0) {
		int err = connect_gai_error(status);
		snprintf(c->errmsg, sizeof c->errmsg,
		         "connect %s: cannot resolve host: %s", c->label,
		         uv_strerror(status));
		uv_freeaddrinfo(res);
		connect_fail(c, err);
		return;
	}
	size_t n = 0;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
		if (ai->ai_addrlen <= sizeof(struct sockaddr_storage))
			n++;
	c->addrs = n > 0 ? rill_calloc(n, sizeof *c->addrs) : NULL;
	if (c->addrs == NULL) {
		uv_freeaddrinfo(res);
		snprintf(c->errmsg, sizeof c->errmsg, "connect %s: %s",
		         c->label,
		         n == 0 ? "host has no address" : "out of memory");
		connect_fail(c, n == 0 ? -ENOENT : RILL_ENOMEM);
		return;
	}
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(struct sockaddr_storage))
			continue;
		memcpy(&c->addrs[c->n].ss, ai->ai_addr, ai->ai_addrlen);
		c->addrs[c->n].len = ai->ai_addrlen;
		c->n++;
	}
	uv_freeaddrinfo(res);
	connect_step(c);
}

int rill__socket_connect_host(uv_loop_t *loop,
                              const struct rill_socket_family *fam,
                              const char *host, const char *port,
                              const char *label, uint64_t timeout_ms,
                              uint64_t retry_until_ms, rill_connect_cb cb,
                              void *ud)
{
	if (loop == NULL || fam == NULL || host == NULL || port == NULL ||
	    cb == NULL)
		return RILL_EINVAL;
	struct sock_connect *c =
	    connect_new(loop, fam, label, timeout_ms, retry_until_ms, cb, ud);
	if (c == NULL)
		return RILL_ENOMEM;
	struct addrinfo hints;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	c->gai.data = c;
	c->refs++;
	int err = uv_getaddrinfo(loop, &c->gai, connect_on_resolved, host, port,
	                         &hints);
	if (err != 0) {
		/* Nothing started: undo without a callback. */
		c->refs--;
		c->finished = true;
		uv_close((uv_handle_t *)&c->deadline, connect_handle_closed);
		uv_close((uv_handle_t *)&c->step, connect_handle_closed);
		rill__set_last_errmsg("connect %s: %s", c->label,
		                      uv_strerror(err));
		return connect_gai_error(err);
	}
	return 0;
}
