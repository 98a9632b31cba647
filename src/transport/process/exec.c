/*
 * The exec: transport (rill/exec.h): a child process whose standard input
 * and output are the flow.
 *
 * The child gets one Unix socket pair for its standard input and another
 * for its standard output (as libuv's own UV_CREATE_PIPE does, sockets
 * rather than pipes: writes to a child that left then fail with EPIPE,
 * MSG_NOSIGNAL, instead of raising SIGPIPE in the caller). Two pairs, not
 * one, so that the child closing its standard output is an end of file
 * even while its standard input stays open, and a shutdown(write) reaches
 * the child as end of file on standard input only. The parent's ends are a
 * socket flow of the socket core (rill__socket_flow_new_split); the exec
 * flow is a layer over it that adds the process: its exit status, the
 * EOF held until the exit was seen, and the reaping and killing on close.
 *
 * The process is a libuv uv_process_t (uv_spawn): libuv reaps it on
 * SIGCHLD, reports an exec failure synchronously, and resets signal
 * dispositions in the child (an ignored SIGPIPE in rill cat or relay is
 * not inherited). Every fd rill opens is close-on-exec, so the child gets
 * exactly its three standard fds.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "transport/socket/fd.h"
#include "transport/socket/socket.h"

/* How long an EOF waits for the child's exit (see rill/exec.h). */
#define EXEC_EOF_WAIT_MS 1000u
/* After close: SIGTERM this long after, SIGKILL as long again later. */
#define EXEC_KILL_AFTER_MS  2000u
#define EXEC_KILL_AFTER_MAX (24u * 3600u * 1000u)

static const struct rill_flow_ops exec_io_ops = RILL_SOCKET_OPS("exec-io");

/* The parent's two sockets: no address, no TCP options. */
static const struct rill_socket_family exec_io_family = {
    .name = "exec",
    .ops = &exec_io_ops,
    .tcp_options = false,
    .format = NULL,
};

struct exec_flow;

/* The child. It outlives the flow until the process exited and its
 * handles closed: refs counts the flow and the two open handles. */
struct exec_child {
	uv_process_t proc;
	uv_timer_t timer; /* start, EOF wait, then the kill steps */
	struct exec_flow *flow;
	char *label; /* the command as the URI wrote it */
	rill_connect_cb cb;
	void *ud;
	uint64_t kill_after_ms;
	int refs;
	int pid;
	int start_err; /* the spawn failed: 0 or the error for cb */
	char start_msg[320];
	bool exited;
	int exit_status;
	int term_signal;
	int kill_step; /* signals sent after close: 0, 1 (TERM), 2 (KILL) */
};

struct exec_flow {
	struct rill_layer layer;
	struct exec_child *child; /* NULL once closed */
	bool eof_held;
};

static const struct rill_flow_ops exec_ops;

static struct exec_flow *exec_of(struct rill_flow *f)
{
	return rill_container_of(f, struct exec_flow, layer.base);
}

/* ---------------------------------------------------------------------- */
/* The command line: words split at spaces, each percent-decoded. */

struct exec_argv {
	char **words; /* NULL-terminated */
	size_t n;
};

static void exec_argv_free(struct exec_argv *a)
{
	for (size_t i = 0; a->words != NULL && i < a->n; i++)
		rill_free(a->words[i]);
	rill_free(a->words);
	a->words = NULL;
	a->n = 0;
}

static int exec_argv_parse(const struct rill_uri *u, struct exec_argv *a)
{
	const char *p = u->rest;
	size_t words = 0;
	for (const char *q = p; *q != '\0'; q++)
		if (*q != ' ' && (q == p || q[-1] == ' '))
			words++;
	a->n = 0;
	a->words = NULL;
	if (words == 0)
		return rill__uri_error(u, "missing program", u->rest);
	a->words = rill_calloc(words + 1, sizeof *a->words);
	if (a->words == NULL)
		return RILL_ENOMEM;
	while (*p != '\0') {
		if (*p == ' ') {
			p++;
			continue;
		}
		size_t len = strcspn(p, " ");
		char *w = rill_malloc(len + 1);
		if (w == NULL) {
			exec_argv_free(a);
			return RILL_ENOMEM;
		}
		memcpy(w, p, len);
		w[len] = '\0';
		a->words[a->n++] = w;
		if (!rill__uri_pct_decode(w)) {
			memcpy(w, p, len); /* the word as written, for the
			                      message */
			w[len] = '\0';
			int err = rill__uri_error(u, "bad escape in word", w);
			exec_argv_free(a);
			return err;
		}
		p += len;
	}
	return 0;
}

static int exec_check(const struct rill_uri *u)
{
	struct exec_argv a;
	int err = exec_argv_parse(u, &a);
	exec_argv_free(&a);
	uint64_t v;
	if (err == 0)
		err = rill__uri_param_u64(u, "kill_after", 0,
		                          EXEC_KILL_AFTER_MAX, 0, &v);
	return err;
}

/* ---------------------------------------------------------------------- */
/* The child's life */

static void exec_child_unref(struct exec_child *c)
{
	if (--c->refs > 0)
		return;
	rill_free(c->label);
	rill_free(c);
}

static void exec_handle_closed(uv_handle_t *h)
{
	exec_child_unref(h->data);
}

static void exec_deliver_eof(struct exec_flow *e)
{
	e->eof_held = false;
	rill_flow_read_done(&e->layer.base, RILL_EOF, NULL);
}

static void exec_on_exit(uv_process_t *p, int64_t status, int sig)
{
	struct exec_child *c = p->data;
	c->exited = true;
	c->exit_status = (int)status;
	c->term_signal = sig;
	uv_close((uv_handle_t *)&c->proc, exec_handle_closed);
	struct exec_flow *e = c->flow;
	if (e == NULL) {
		/* Closed already: the kill steps are moot. */
		uv_close((uv_handle_t *)&c->timer, exec_handle_closed);
		return;
	}
	/* sigdescr_np, unlike strsignal, is thread-safe (glibc 2.32). */
	const char *what = sig != 0 ? sigdescr_np(sig) : NULL;
	if (sig != 0)
		rill_flow_set_errmsg(
		    &e->layer.base, "exec %s: killed by signal %d (%s)",
		    c->label, sig, what != NULL ? what : "unknown signal");
	else
		rill_flow_set_errmsg(&e->layer.base,
		                     "exec %s: exited with status %d", c->label,
		                     c->exit_status);
	if (e->eof_held) {
		uv_timer_stop(&c->timer);
		exec_deliver_eof(e);
	}
}

static void exec_on_eof_wait(uv_timer_t *t)
{
	struct exec_child *c = t->data;
	/* The child closed its standard output but lives on: the EOF is
	 * the child's to give, the status will come when it comes. */
	if (c->flow != NULL && c->flow->eof_held)
		exec_deliver_eof(c->flow);
}

static void exec_on_kill(uv_timer_t *t)
{
	struct exec_child *c = t->data;
	if (c->exited || c->kill_step >= 2)
		return;
	c->kill_step++;
	uv_process_kill(&c->proc, c->kill_step == 1 ? SIGTERM : SIGKILL);
	if (c->kill_step == 1)
		uv_timer_start(&c->timer, exec_on_kill, c->kill_after_ms, 0);
}

/* The connect completes from the loop, never inside rill_connect. */
static void exec_on_start(uv_timer_t *t)
{
	struct exec_child *c = t->data;
	struct exec_flow *e = c->flow;
	rill_connect_cb cb = c->cb;
	c->cb = NULL;
	if (c->start_err != 0) {
		char msg[sizeof c->start_msg];
		memcpy(msg, c->start_msg, sizeof msg);
		int err = c->start_err;
		void *ud = c->ud;
		rill_close(&e->layer.base); /* may free c */
		cb(NULL, err, msg, ud);
		return;
	}
	cb(&e->layer.base, 0, NULL, c->ud);
}

/* ---------------------------------------------------------------------- */
/* The flow: a layer over the socket flow of the two socket pairs. */

static void exec_read_cb(struct rill_flow *inner, int status,
                         struct rill_buf *buf, void *ud)
{
	struct exec_flow *e = ud;
	struct exec_child *c = e->child;
	if (status == RILL_EOF && c != NULL && !c->exited) {
		e->eof_held = true;
		uv_timer_start(&c->timer, exec_on_eof_wait, EXEC_EOF_WAIT_MS,
		               0);
		return;
	}
	rill_flow_read_done(&e->layer.base, status, buf);
}

static void exec_read(struct rill_flow *f)
{
	int err = rill_read(rill_layer_inner(f), exec_read_cb, exec_of(f));
	if (err != 0)
		rill_flow_read_done(f, err, NULL);
}

static void exec_close(struct rill_flow *f)
{
	struct exec_flow *e = exec_of(f);
	struct exec_child *c = e->child;
	e->child = NULL;
	if (c != NULL) {
		c->flow = NULL;
		uv_timer_stop(&c->timer);
		if (c->exited)
			uv_close((uv_handle_t *)&c->timer, exec_handle_closed);
		else if (c->kill_after_ms > 0)
			uv_timer_start(&c->timer, exec_on_kill,
			               c->kill_after_ms, 0);
		/* else the timer waits, stopped, for the exit. */
		exec_child_unref(c);
	}
	rill_layer_close(f); /* closes the sockets: the child sees EOF */
}

static int exec_address(struct rill_flow *f, int which, char *buf, size_t len)
{
	struct exec_child *c = exec_of(f)->child;
	if (which != RILL_ADDR_PEER || c == NULL)
		return -ENOTSUP;
	int n = snprintf(buf, len, "exec:%s (pid %d)", c->label, c->pid);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct rill_flow_ops exec_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "exec",
    .read = exec_read,
    .write = rill_layer_write,
    .write_file = rill_layer_write_file,
    .shutdown_write = rill_layer_shutdown_write,
    .shutdown_read = rill_layer_shutdown_read,
    .close = exec_close,
    .address = exec_address,
};

int rill_exec_status(struct rill_flow *f, int *value, int *pid)
{
	if (value != NULL)
		*value = 0;
	if (pid != NULL)
		*pid = 0;
	if (f == NULL || f->ops != &exec_ops)
		return RILL_EINVAL;
	struct exec_child *c = exec_of(f)->child;
	if (c == NULL)
		return RILL_EINVAL; /* closed */
	if (pid != NULL)
		*pid = c->pid;
	if (!c->exited)
		return RILL_EXEC_RUNNING;
	if (value != NULL)
		*value = c->term_signal != 0 ? c->term_signal : c->exit_status;
	return c->term_signal != 0 ? RILL_EXEC_SIGNALED : RILL_EXEC_EXITED;
}

/* ---------------------------------------------------------------------- */
/* Connect */

/* The parent's ends of the two socket pairs as one flow, and the exec
 * layer over it. fds: [0] parent writes, [1] child's stdin, [2] parent
 * reads, [3] child's stdout. */
static int exec_make_flow(uv_loop_t *loop, int fds[4], struct exec_flow **out)
{
	for (int i = 0; i < 4; i++)
		fds[i] = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
		return -errno;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds + 2) != 0) {
		int err = -errno;
		close(fds[0]);
		close(fds[1]);
		fds[0] = fds[1] = -1;
		return err;
	}
	/* Each pair carries one direction: the child writing to its stdin
	 * or reading its stdout gets an error, not a silent buffer. */
	shutdown(fds[0], SHUT_RD);
	shutdown(fds[2], SHUT_WR);
	struct rill_flow *inner = NULL;
	int err = rill__socket_flow_new_split(loop, fds[2], fds[0],
	                                      &exec_io_family, &inner);
	fds[0] = fds[2] = -1; /* owned by the flow, or closed */
	if (err != 0)
		return err;
	struct rill_layer *l =
	    rill_layer_new(inner, &exec_ops, sizeof(struct exec_flow));
	if (l == NULL)
		return RILL_ENOMEM; /* inner closed */
	*out = (struct exec_flow *)(void *)l;
	return 0;
}

static void exec_close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static int exec_spawn(uv_loop_t *loop, struct exec_child *c,
                      const struct exec_argv *a, int child_in, int child_out)
{
	uv_stdio_container_t stdio[3];
	stdio[0].flags = UV_INHERIT_FD;
	stdio[0].data.fd = child_in;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = child_out;
	/* Standard error passes through; a closed one becomes /dev/null
	 * (libuv's UV_IGNORE) instead of failing the spawn. */
	if (fcntl(2, F_GETFD) >= 0) {
		stdio[2].flags = UV_INHERIT_FD;
		stdio[2].data.fd = 2;
	} else {
		stdio[2].flags = UV_IGNORE;
	}
	uv_process_options_t o;
	memset(&o, 0, sizeof o);
	o.exit_cb = exec_on_exit;
	o.file = a->words[0];
	o.args = a->words;
	o.stdio_count = 3;
	o.stdio = stdio;
	c->proc.data = c;
	int err = uv_spawn(loop, &c->proc, &o);
	if (err == 0)
		c->pid = c->proc.pid;
	return err;
}

static int exec_connect(uv_loop_t *loop, const struct rill_uri *u,
                        const struct rill_connect_opts *opts,
                        rill_connect_cb cb, void *ud)
{
	struct exec_argv a;
	uint64_t kill_after = 0;
	int err = rill__uri_param_u64(u, "kill_after", 0, EXEC_KILL_AFTER_MAX,
	                              EXEC_KILL_AFTER_MS, &kill_after);
	if (err != 0)
		return err;
	err = exec_argv_parse(u, &a);
	if (err != 0)
		return err;
	/* Inherited sockets of socket activation must not reach the
	 * child. */
	rill__fd_activation_load();
	struct exec_child *c = rill_calloc(1, sizeof *c);
	char *label = rill_strdup(u->rest);
	int fds[4] = {-1, -1, -1, -1};
	struct exec_flow *e = NULL;
	err = c != NULL && label != NULL ? exec_make_flow(loop, fds, &e)
	                                 : RILL_ENOMEM;
	if (err != 0) {
		exec_close_fds(fds, 4);
		exec_argv_free(&a);
		rill_free(label);
		rill_free(c);
		rill__set_last_errmsg("exec %s: %s", u->rest,
		                      rill_strerror(err));
		return err;
	}
	c->label = label;
	c->cb = cb;
	c->ud = ud;
	c->kill_after_ms = kill_after;
	c->flow = e;
	e->child = c;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	c->refs = 3; /* the flow, the process handle, the timer */
	err = exec_spawn(loop, c, &a, fds[1], fds[3]);
	exec_close_fds(fds, 4); /* the child has its own copies */
	if (err != 0) {
		/* libuv initialised the handle even so: it must be closed. */
		uv_close((uv_handle_t *)&c->proc, exec_handle_closed);
		c->exited = true;
		c->exit_status = 127; /* what a shell reports */
		c->start_err = err;
		snprintf(c->start_msg, sizeof c->start_msg,
		         "exec: cannot run \"%s\": %s", a.words[0],
		         rill_strerror(err));
	}
	exec_argv_free(&a);
	uv_timer_start(&c->timer, exec_on_start, 0, 0);
	return 0;
}

static int exec_listen(uv_loop_t *loop, const struct rill_uri *u,
                       const struct rill_listen_opts *opts, rill_accept_cb cb,
                       void *ud, struct rill_listener **out)
{
	rill__set_last_errmsg(
	    "cannot listen with \"%s\": an exec: URI only connects; to run "
	    "a program per connection (inetd mode), give it as the target "
	    "of rill relay",
	    u->text);
	return RILL_EURI;
}

static const char *const exec_params[] = {"kill_after", NULL};

const struct rill_transport_scheme rill__exec_scheme = {
    .name = "exec",
    .params = exec_params,
    .check = exec_check,
    .connect = exec_connect,
    .listen = exec_listen,
};
