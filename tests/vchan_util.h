/* Helpers shared by the vchan tests: a private rendezvous directory, a
 * connected (server, client) pair on one loop, and a two-way checked
 * transfer. */
#ifndef RILL_TEST_VCHAN_UTIL_H
#define RILL_TEST_VCHAN_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"

/* Each test process gets its own rendezvous directory. */
static inline void vt_private_dir(void)
{
	static char dir[256];
	th_tmp_template(dir, sizeof dir, "rill-vchan-test");
	if (mkdtemp(dir) == NULL)
		TH_FAIL("mkdtemp");
	setenv("RILL_VCHAN_DIR", dir, 1);
}

struct vt_connect {
	struct rill_flow *f;
	int status;
	bool done;
	char msg[256];
};

static inline void vt_connect_cb(struct rill_flow *f, int status,
                                 const char *errmsg, void *ud)
{
	struct vt_connect *c = ud;
	c->f = f;
	c->status = status;
	c->done = true;
	if (errmsg != NULL)
		snprintf(c->msg, sizeof c->msg, "%s", errmsg);
}

struct vt_server {
	bool done;
	int status;
};

static inline void vt_server_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct vt_server *s = ud;
	s->done = true;
	s->status = status;
}

/* A connected pair on loop: *srv (server) and *cli (client). */
static inline int vt_pair(uv_loop_t *loop, const char *port, size_t rd,
                          size_t wr, struct rill_flow **srv,
                          struct rill_flow **cli)
{
	static struct vt_server s;
	s.done = false;
	int err =
	    rill_vchan_server(loop, NULL, port, rd, wr, vt_server_cb, &s, srv);
	if (err != 0)
		return err;
	struct vt_connect c = {0};
	err = rill_vchan_client(loop, NULL, port, NULL, vt_connect_cb, &c);
	if (err != 0)
		return err;
	while (!c.done || (c.status == 0 && !s.done))
		uv_run(loop, UV_RUN_ONCE);
	if (c.status != 0)
		return c.status;
	*cli = c.f;
	return s.status;
}

static inline uint8_t vt_byte(uint64_t i, uint8_t salt)
{
	uint64_t x = (i >> 8) * 0x9E3779B97F4A7C15ull + salt;
	return (uint8_t)(i ^ (x >> 56));
}

/* One direction of a checked transfer: random write sizes and iovec
 * splits, content verified byte by byte, then shutdown(write). */
struct vt_dir {
	struct rill_flow *w, *r;
	uint64_t total, sent, recvd;
	uint8_t salt;
	int inflight;
	bool shut, eof;
	int err;
	uint32_t rnd;
};

static inline uint32_t vt_rand(struct vt_dir *d)
{
	d->rnd = d->rnd * 1103515245u + 12345u;
	return d->rnd >> 8;
}

static void vt_write_more(struct vt_dir *d);

static inline void vt_write_cb(struct rill_flow *f, int status, void *ud)
{
	(void)f;
	struct vt_dir *d = ud;
	d->inflight--;
	if (status != 0 && d->err == 0)
		d->err = status;
	vt_write_more(d);
}

static void vt_write_more(struct vt_dir *d)
{
	while (d->err == 0 && d->inflight < 2 && d->sent < d->total) {
		uint64_t left = d->total - d->sent;
		size_t n = 1 + vt_rand(d) % 100000;
		if (n > left)
			n = (size_t)left;
		struct rill_buf *b[3];
		size_t nb = 1 + vt_rand(d) % 3;
		if (nb > n)
			nb = n;
		size_t off = 0;
		for (size_t k = 0; k < nb; k++) {
			size_t len = k + 1 == nb ? n - off : (n - off) / 2;
			if (len == 0)
				len = 1;
			b[k] = rill_buf_new(len);
			for (size_t i = 0; i < len; i++)
				b[k]->data[i] =
				    vt_byte(d->sent + off + i, d->salt);
			off += len;
		}
		int err = rill_writev(d->w, b, nb, vt_write_cb, d);
		for (size_t k = 0; k < nb; k++)
			rill_buf_release(b[k]);
		if (err != 0) {
			d->err = err;
			return;
		}
		d->sent += n;
		d->inflight++;
	}
	if (d->err == 0 && d->sent == d->total && d->inflight == 0 &&
	    !d->shut) {
		d->shut = true;
		rill_shutdown(d->w, RILL_SHUT_WR, NULL, NULL);
	}
}

static inline void vt_read_cb(struct rill_flow *f, int status,
                              struct rill_buf *b, void *ud)
{
	struct vt_dir *d = ud;
	if (status == RILL_EOF) {
		d->eof = true;
		return;
	}
	if (status != 0) {
		if (d->err == 0)
			d->err = status;
		return;
	}
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] != vt_byte(d->recvd + i, d->salt)) {
			if (d->err == 0)
				d->err = -EBADMSG;
			break;
		}
	}
	d->recvd += b->len;
	rill_buf_release(b);
	if (d->err == 0)
		rill_read(f, vt_read_cb, d);
}

/* Sends a->b and b->a at once, checks everything arrived, then EOF. */
static inline void vt_transfer(uv_loop_t *loop, struct rill_flow *a,
                               struct rill_flow *b, uint64_t ab, uint64_t ba)
{
	struct vt_dir x = {.w = a, .r = b, .total = ab, .salt = 1, .rnd = 7};
	struct vt_dir y = {.w = b, .r = a, .total = ba, .salt = 2, .rnd = 9};
	rill_read(b, vt_read_cb, &x);
	rill_read(a, vt_read_cb, &y);
	vt_write_more(&x);
	vt_write_more(&y);
	while (x.err == 0 && y.err == 0 && !(x.eof && y.eof))
		uv_run(loop, UV_RUN_ONCE);
	TH_OK(x.err);
	TH_OK(y.err);
	TH_EQ_U64(x.recvd, ab);
	TH_EQ_U64(y.recvd, ba);
}

static inline void vt_drain(uv_loop_t *loop)
{
	for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT) != 0; i++)
		;
}

#endif
