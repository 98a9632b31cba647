/*
 * rill_read_into() (rill/impl.h), used from outside the library the way a
 * third-party layer would: the bytes land where the reader's layout says,
 * get and unget are called as documented, and the results follow
 * rill_read's rules. Run over the in-memory pair and a Unix socket (both
 * offer ops->read_into); flows that do not offer it say -ENOTSUP.
 */
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"
#include "rill/impl.h"

/* A reader's layout: `parts` iovecs of the given sizes, side by side in
 * one fresh buffer per attempt. Counts the calls. */
struct layout {
	struct rill_read_into ri;
	size_t sizes[4];
	int parts;
	struct iovec iov[4];
	struct rill_buf *mem; /* the buffer handed out by the last get */
	int gets, ungets;
	bool fail_get;
};

static bool layout_get(struct rill_read_into *ri)
{
	struct layout *l = rill_container_of(ri, struct layout, ri);
	l->gets++;
	if (l->fail_get)
		return false;
	rill_buf_release(l->mem);
	size_t total = 0;
	for (int i = 0; i < l->parts; i++)
		total += l->sizes[i];
	l->mem = rill_buf_new(total);
	TH_NOT_NULL(l->mem);
	memset(l->mem->data, '.', total);
	size_t at = 0;
	for (int i = 0; i < l->parts; i++) {
		l->iov[i] = (struct iovec){l->mem->data + at, l->sizes[i]};
		at += l->sizes[i];
	}
	ri->owner = l->mem;
	ri->iov = l->iov;
	ri->iovcnt = l->parts;
	ri->total = total;
	return true;
}

static void layout_unget(struct rill_read_into *ri)
{
	struct layout *l = rill_container_of(ri, struct layout, ri);
	l->ungets++;
	rill_buf_release(l->mem);
	l->mem = NULL;
}

static void layout_init(struct layout *l, size_t a, size_t b)
{
	memset(l, 0, sizeof *l);
	l->ri.get = layout_get;
	l->ri.unget = layout_unget;
	l->sizes[0] = a;
	l->sizes[1] = b;
	l->parts = b > 0 ? 2 : 1;
}

struct result {
	bool done;
	int status;
	struct rill_buf *buf;
};

static void on_read(struct rill_flow *f, int status, struct rill_buf *buf,
                    void *ud)
{
	(void)f;
	struct result *r = ud;
	r->done = true;
	r->status = status;
	r->buf = buf;
}

static void wait_result(uv_loop_t *loop, struct result *r)
{
	while (!r->done)
		if (uv_run(loop, UV_RUN_ONCE) == 0 && !r->done)
			TH_FAIL(
			    "the loop ran out of work before the read ended");
}

static void on_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	TH_OK(status);
	*(struct rill_flow **)ud = f;
}

/* The two ends: over a Unix socket, or the in-memory pair. */
static void ends(uv_loop_t *loop, bool sock, struct rill_flow **reader,
                 struct rill_flow **writer)
{
	if (!sock) {
		TH_OK(rill_pair(loop, 0, reader, writer));
		return;
	}
	char uri[64];
	snprintf(uri, sizeof uri, "unix:@rill-test-read-into-%d",
	         (int)getpid());
	struct rill_listener *lst;
	*writer = NULL;
	TH_OK(rill_listen(loop, uri, NULL, on_accept, writer, &lst));
	TH_OK(rill_connect_sync(loop, uri, NULL, reader));
	while (*writer == NULL)
		uv_run(loop, UV_RUN_ONCE);
	rill_listener_close(lst);
}

static void finish(uv_loop_t *loop, struct rill_flow *a, struct rill_flow *b,
                   struct layout *l)
{
	rill_close(a);
	rill_close(b);
	uv_run(loop, UV_RUN_DEFAULT);
	rill_buf_release(l->mem);
	l->mem = NULL;
	TH_OK(uv_loop_close(loop));
}

/* Bytes land through both iovecs in order; the result is a slice [0, n)
 * of the owner; what does not fit stays for the next read. */
static void lands_where_the_layout_says(bool sock)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *r, *w;
	ends(&loop, sock, &r, &w);
	TH_OK(rill_write_sync(w, "hello ", 6));
	TH_OK(rill_write_sync(w, "world", 5));
	/* Over the socket, let both writes arrive before the read. */
	for (int i = 0; i < 5; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	struct layout l;
	layout_init(&l, 3, 5);
	struct result res = {0};
	TH_OK(rill_read_into(r, &l.ri, on_read, &res));
	TH_TRUE(!res.done); /* never inside the call */
	wait_result(&loop, &res);
	TH_OK(res.status);
	TH_EQ_U64(res.buf->len, 8);
	TH_TRUE(res.buf->data == l.mem->data);
	TH_EQ_MEM(l.mem->data, "hello wo", 8);
	rill_buf_release(res.buf);
	/* The rest ("rld"), into the first iovec of a new layout. */
	res = (struct result){0};
	TH_OK(rill_read_into(r, &l.ri, on_read, &res));
	wait_result(&loop, &res);
	TH_OK(res.status);
	TH_EQ_U64(res.buf->len, 3);
	TH_EQ_MEM(l.mem->data, "rld.....", 8);
	rill_buf_release(res.buf);
	/* An ordinary read after it works as before. */
	TH_OK(rill_write_sync(w, "!", 1));
	struct rill_buf *b = NULL;
	TH_OK(rill_read_sync(r, &b));
	TH_EQ_U64(b->len, 1);
	TH_EQ_MEM(b->data, "!", 1);
	rill_buf_release(b);
	finish(&loop, r, w, &l);
}

TEST(lands_where_the_layout_says_pair)
{
	lands_where_the_layout_says(false);
}

TEST(lands_where_the_layout_says_unix)
{
	lands_where_the_layout_says(true);
}

/* A read that has to wait holds none of the reader's memory: every get
 * is balanced by an unget or by the completed read; EOF is delivered. */
static void waits_without_memory_then_eof(bool sock)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *r, *w;
	ends(&loop, sock, &r, &w);
	struct layout l;
	layout_init(&l, 16, 0);
	struct result res = {0};
	TH_OK(rill_read_into(r, &l.ri, on_read, &res));
	for (int i = 0; i < 5; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	TH_TRUE(!res.done);
	TH_EQ_INT(l.gets, l.ungets); /* waiting: nothing held */
	TH_TRUE(l.mem == NULL);
	TH_OK(rill_write_sync(w, "abc", 3));
	wait_result(&loop, &res);
	TH_OK(res.status);
	TH_EQ_U64(res.buf->len, 3);
	TH_EQ_MEM(res.buf->data, "abc", 3);
	TH_EQ_INT(l.gets, l.ungets + 1);
	rill_buf_release(res.buf);
	TH_OK(rill_shutdown_sync(w, RILL_SHUT_WR));
	res = (struct result){0};
	TH_OK(rill_read_into(r, &l.ri, on_read, &res));
	wait_result(&loop, &res);
	TH_EQ_ERR(res.status, RILL_EOF);
	TH_TRUE(res.buf == NULL);
	TH_EQ_INT(l.gets, l.ungets + 1); /* the last data read's buffer */
	/* Sticky, like rill_read. */
	res = (struct result){0};
	TH_OK(rill_read_into(r, &l.ri, on_read, &res));
	wait_result(&loop, &res);
	TH_EQ_ERR(res.status, RILL_EOF);
	finish(&loop, r, w, &l);
}

TEST(waits_without_memory_then_eof_pair)
{
	waits_without_memory_then_eof(false);
}

TEST(waits_without_memory_then_eof_unix)
{
	waits_without_memory_then_eof(true);
}

/* get failing is RILL_ENOMEM for the read. */
static void get_failure_is_enomem(bool sock)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *r, *w;
	ends(&loop, sock, &r, &w);
	TH_OK(rill_write_sync(w, "x", 1));
	struct layout l;
	layout_init(&l, 8, 0);
	l.fail_get = true;
	struct result res = {0};
	TH_OK(rill_read_into(r, &l.ri, on_read, &res));
	wait_result(&loop, &res);
	TH_EQ_ERR(res.status, RILL_ENOMEM);
	TH_CMP_INT(l.gets, >=, 1);
	finish(&loop, r, w, &l);
}

TEST(get_failure_is_enomem_pair)
{
	get_failure_is_enomem(false);
}

TEST(get_failure_is_enomem_unix)
{
	get_failure_is_enomem(true);
}

/* Closing with a read into a layout pending: no callback, and the flow
 * lets go of the layout (nothing is called after the close). */
static void close_while_pending(bool sock)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *r, *w;
	ends(&loop, sock, &r, &w);
	struct layout l;
	layout_init(&l, 8, 0);
	struct result res = {0};
	TH_OK(rill_read_into(r, &l.ri, on_read, &res));
	uv_run(&loop, UV_RUN_NOWAIT);
	rill_close(r);
	int gets = l.gets;
	(void)rill_write_sync(w, "late", 4); /* the pair says ECLOSED */
	rill_close(w);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_TRUE(!res.done);
	TH_EQ_INT(l.gets, gets);
	rill_buf_release(l.mem);
	TH_OK(uv_loop_close(&loop));
}

TEST(close_while_pending_pair)
{
	close_while_pending(false);
}

TEST(close_while_pending_unix)
{
	close_while_pending(true);
}

TEST(flows_without_it_say_enotsup)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *s, *a, *b;
	TH_OK(rill_flow_from_strings(&loop, "abc", 3, NULL, 0, NULL, &s));
	struct layout l;
	layout_init(&l, 8, 0);
	struct result res = {0};
	TH_EQ_ERR(rill_read_into(s, &l.ri, on_read, &res), -ENOTSUP);
	/* A layer offers it only if it says so: shut does not. */
	TH_OK(rill_pair(&loop, 0, &a, &b));
	struct rill_flow *shut;
	TH_OK(rill_shut_attach(a, &shut));
	TH_EQ_ERR(rill_read_into(shut, &l.ri, on_read, &res), -ENOTSUP);
	/* The flow is untouched: an ordinary read still works. */
	struct rill_buf *got = NULL;
	TH_OK(rill_read_sync(s, &got));
	TH_EQ_MEM(got->data, "abc", 3);
	rill_buf_release(got);
	TH_EQ_INT(l.gets, 0);
	TH_TRUE(!res.done);
	rill_close(s);
	rill_close(shut);
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(&loop));
}

TEST(bad_arguments)
{
	uv_loop_t loop;
	TH_OK(uv_loop_init(&loop));
	struct rill_flow *a, *b;
	TH_OK(rill_pair(&loop, 0, &a, &b));
	struct layout l;
	layout_init(&l, 8, 0);
	struct result res = {0};
	TH_EQ_ERR(rill_read_into(NULL, &l.ri, on_read, &res), RILL_EINVAL);
	TH_EQ_ERR(rill_read_into(a, NULL, on_read, &res), RILL_EINVAL);
	TH_EQ_ERR(rill_read_into(a, &l.ri, NULL, &res), RILL_EINVAL);
	l.ri.unget = NULL;
	TH_EQ_ERR(rill_read_into(a, &l.ri, on_read, &res), RILL_EINVAL);
	l.ri.unget = layout_unget;
	TH_OK(rill_read_into(a, &l.ri, on_read, &res));
	TH_EQ_ERR(rill_read_into(a, &l.ri, on_read, &res), RILL_EALREADY);
	TH_EQ_ERR(rill_read(a, on_read, &res), RILL_EALREADY);
	rill_close(a);
	TH_EQ_ERR(rill_read_into(a, &l.ri, on_read, &res), RILL_ECLOSED);
	rill_close(b);
	uv_run(&loop, UV_RUN_DEFAULT);
	TH_TRUE(!res.done);
	TH_OK(uv_loop_close(&loop));
}
