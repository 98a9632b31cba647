/*
 * Standard input and output as one flow (URI "stdio:" or "-"): reads come
 * from fd 0, writes go to fd 1, through the socket core's fd mode.
 */
#include <string.h>

#include "transport/socket/socket.h"

static const struct rill_flow_ops stdio_ops = RILL_SOCKET_OPS("stdio");

const struct rill_socket_family rill__stdio_family = {
    .name = "stdio",
    .ops = &stdio_ops,
    .tcp_options = false,
    .format = NULL,
};

/* ---------------------------------------------------------------------- */
/* The stdio: scheme ("-" is parsed as "stdio:"). Connecting gives the flow
 * over fds 0 and 1; listening "accepts" that one flow once, so servers
 * such as `rill echo -` work on standard input/output too. */

static int stdio_check(const struct rill_uri *u)
{
	if (u->rest[0] != '\0')
		return rill__uri_error(u,
		                       "unexpected text after stdio:", u->rest);
	return 0;
}

/* Completion from the loop: the callback may never run inside the call. */
struct stdio_op {
	uv_timer_t timer;
	rill_connect_cb ccb;
	void *ud;
	struct rill_listener lst; /* for listen */
	bool is_listener;
};

static void stdio_op_free(uv_handle_t *h)
{
	rill_free(h->data);
}

static void stdio_fire(uv_timer_t *t)
{
	struct stdio_op *op = t->data;
	struct rill_flow *f = NULL;
	int err =
	    rill__socket_flow_new_fds(t->loop, 0, 1, &rill__stdio_family, &f);
	if (op->is_listener) {
		if (err != 0)
			op->lst.cb(&op->lst, NULL, err, "stdio: out of memory",
			           op->lst.ud);
		else
			op->lst.cb(&op->lst, f, 0, NULL, op->lst.ud);
		return; /* freed by the listener's close */
	}
	uv_close((uv_handle_t *)&op->timer, stdio_op_free);
	op->ccb(err == 0 ? f : NULL, err,
	        err != 0 ? "stdio: out of memory" : NULL, op->ud);
}

static struct stdio_op *stdio_op_new(uv_loop_t *loop)
{
	struct stdio_op *op = rill_calloc(1, sizeof *op);
	if (op == NULL)
		return NULL;
	uv_timer_init(loop, &op->timer);
	op->timer.data = op;
	uv_timer_start(&op->timer, stdio_fire, 0, 0);
	return op;
}

static int stdio_connect(uv_loop_t *loop, const struct rill_uri *u,
                         const struct rill_connect_opts *opts,
                         rill_connect_cb cb, void *ud)
{
	(void)u;
	(void)opts;
	struct stdio_op *op = stdio_op_new(loop);
	if (op == NULL)
		return RILL_ENOMEM;
	op->ccb = cb;
	op->ud = ud;
	return 0;
}

static void stdio_listener_close(struct rill_listener *l)
{
	struct stdio_op *op = rill_container_of(l, struct stdio_op, lst);
	uv_close((uv_handle_t *)&op->timer, stdio_op_free);
}

static int stdio_listener_uri(struct rill_listener *l, char *buf, size_t len)
{
	(void)l;
	if (len < sizeof "stdio:")
		return -ENOSPC;
	memcpy(buf, "stdio:", sizeof "stdio:");
	return 0;
}

static const struct rill_listener_ops stdio_listener_ops = {
    .close = stdio_listener_close,
    .uri = stdio_listener_uri,
};

static int stdio_listen(uv_loop_t *loop, const struct rill_uri *u,
                        const struct rill_listen_opts *opts, rill_accept_cb cb,
                        void *ud, struct rill_listener **out)
{
	(void)u;
	(void)opts;
	struct stdio_op *op = stdio_op_new(loop);
	if (op == NULL)
		return RILL_ENOMEM;
	op->is_listener = true;
	op->lst.ops = &stdio_listener_ops;
	op->lst.loop = loop;
	op->lst.cb = cb;
	op->lst.ud = ud;
	*out = &op->lst;
	return 0;
}

const struct rill_transport_scheme rill__stdio_scheme = {
    .name = "stdio",
    .params = NULL,
    .check = stdio_check,
    .connect = stdio_connect,
    .listen = stdio_listen,
};
