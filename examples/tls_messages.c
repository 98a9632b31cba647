/*
 * examples/tls_messages.c - a user-written layer stacked on TLS.
 *
 * The "msg" layer turns a byte stream into a message stream: every write
 * becomes one message (a 4-byte big-endian length, then the bytes), every
 * read delivers one whole message. It is written against rill/impl.h only,
 * like any layer of rill itself, and it works over any flow; here it runs
 * over TLS over TCP on 127.0.0.1:
 *
 *      msg            (this file)
 *      tls            rill_connect / rill_listen "tls+tcp://..."
 *      tcp
 *
 * Usage: tls_messages CERT KEY CA   (PEM files; the test makes them with
 * the openssl CLI). The server echoes every message back prefixed with
 * "echo: "; the client (sync API, same loop) checks the replies.
 * Exits 0 on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rill/impl.h>

/* ---------------------------------------------------------------------- */
/* The layer */

#define MSG_MAX (16u << 20) /* refuse absurd lengths from the peer */

struct msg_flow {
	struct rill_layer l; /* first: rill_layer_new allocates the struct */
	uint8_t *acc;        /* bytes received but not yet delivered */
	size_t acc_len, acc_cap;
};

static struct msg_flow *msg_of(struct rill_flow *f)
{
	return rill_container_of(f, struct msg_flow, l.base);
}

/* A complete message at the front of acc: 1 and *out, 0 if more bytes are
 * needed, or a negative error for a bad length. */
static int msg_take(struct msg_flow *m, struct rill_buf **out)
{
	while (m->acc_len >= 4) {
		uint32_t n = (uint32_t)m->acc[0] << 24 |
		             (uint32_t)m->acc[1] << 16 |
		             (uint32_t)m->acc[2] << 8 | m->acc[3];
		if (n > MSG_MAX)
			return RILL_EFRAME;
		if (m->acc_len < 4 + (size_t)n)
			return 0;
		struct rill_buf *b =
		    n > 0 ? rill_buf_copy(m->acc + 4, n) : NULL;
		if (n > 0 && b == NULL)
			return RILL_ENOMEM;
		memmove(m->acc, m->acc + 4 + n, m->acc_len - 4 - n);
		m->acc_len -= 4 + (size_t)n;
		if (b != NULL) { /* a read result holds >= 1 byte: skip empty */
			*out = b;
			return 1;
		}
	}
	return 0;
}

static void msg_read(struct rill_flow *f);

static void msg_inner_read_cb(struct rill_flow *inner, int status,
                              struct rill_buf *buf, void *ud)
{
	(void)inner;
	struct rill_flow *f = ud;
	struct msg_flow *m = msg_of(f);
	if (status == RILL_EOF && m->acc_len > 0) {
		/* Never turn a cut-off message into a clean end. */
		rill_flow_set_errmsg(f, "msg: peer hung up inside a message");
		rill_flow_read_done(f, RILL_EFRAME, NULL);
		return;
	}
	if (status != 0) { /* EOF or error of the flow below: pass it up */
		rill_flow_read_done(f, status, NULL);
		return;
	}
	if (m->acc_len + buf->len > m->acc_cap) {
		size_t cap = (m->acc_len + buf->len) * 2;
		uint8_t *p = rill_realloc(m->acc, cap);
		if (p == NULL) {
			rill_buf_release(buf);
			rill_flow_read_done(f, RILL_ENOMEM, NULL);
			return;
		}
		m->acc = p;
		m->acc_cap = cap;
	}
	memcpy(m->acc + m->acc_len, buf->data, buf->len);
	m->acc_len += buf->len;
	rill_buf_release(buf);
	msg_read(f); /* deliver, or read more */
}

/* ops->read: the core calls it with no other read pending. */
static void msg_read(struct rill_flow *f)
{
	struct rill_buf *b = NULL;
	int r = msg_take(msg_of(f), &b);
	if (r < 0) {
		rill_flow_set_errmsg(f, "msg: bad message length from peer");
		rill_flow_read_done(f, r, NULL);
	} else if (r == 1) {
		rill_flow_read_done(f, 0, b); /* ownership passes to the core */
	} else {
		int err = rill_read(rill_layer_inner(f), msg_inner_read_cb, f);
		if (err != 0)
			rill_flow_read_done(f, err, NULL);
	}
}

/* ops->write: one user write = one message. The header and the body go
 * down as two writes; the flow below keeps them in order, and the layer's
 * write completes when the body was accepted (rill_layer_write). */
static void msg_write(struct rill_flow *f, struct rill_buf *const *bufs,
                      size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += bufs[i]->len;
	if (total > MSG_MAX) {
		rill_flow_write_done(f, -EMSGSIZE);
		return;
	}
	uint8_t hdr[4] = {(uint8_t)(total >> 24), (uint8_t)(total >> 16),
	                  (uint8_t)(total >> 8), (uint8_t)total};
	int err =
	    rill_write_copy(rill_layer_inner(f), hdr, sizeof hdr, NULL, NULL);
	if (err != 0) {
		rill_flow_write_done(f, err);
		return;
	}
	rill_layer_write(f, bufs, n);
}

static void msg_close(struct rill_flow *f)
{
	struct msg_flow *m = msg_of(f);
	rill_free(m->acc);
	m->acc = NULL;
	rill_layer_close(f); /* closes the stack below, then destroyed */
}

static const struct rill_flow_ops msg_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "msg",
    .read = msg_read,
    .write = msg_write,
    .shutdown_write = rill_layer_shutdown_write, /* no trailer needed */
    .shutdown_read = rill_layer_shutdown_read,
    .close = msg_close,
    .address = rill_layer_address,
};

/* Attaches the msg layer over inner (consumed, even on failure). */
static struct rill_flow *msg_attach(struct rill_flow *inner)
{
	struct rill_layer *l =
	    rill_layer_new(inner, &msg_ops, sizeof(struct msg_flow));
	return l != NULL ? &l->base : NULL;
}

/* ---------------------------------------------------------------------- */
/* The demo: an echo server (callbacks) and a client (sync API) */

static void srv_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                        void *ud);

static void srv_read_next(struct rill_flow *f)
{
	if (rill_read(f, srv_read_cb, NULL) != 0)
		rill_close(f);
}

static void srv_shut_cb(struct rill_flow *f, int status, void *ud)
{
	(void)status;
	(void)ud;
	rill_close(f);
}

static void srv_read_cb(struct rill_flow *f, int status, struct rill_buf *b,
                        void *ud)
{
	(void)ud;
	if (status == RILL_EOF) { /* client done: flush, close_notify, close */
		if (rill_shutdown(f, RILL_SHUT_WR, srv_shut_cb, NULL) != 0)
			rill_close(f);
		return;
	}
	if (status != 0) {
		fprintf(stderr, "server: %s\n", rill_flow_errmsg(f));
		rill_close(f);
		return;
	}
	/* One reply message made of two buffers: one write, one message. */
	struct rill_buf *parts[2] = {rill_buf_copy("echo: ", 6), b};
	if (parts[0] == NULL || rill_writev(f, parts, 2, NULL, NULL) != 0) {
		rill_buf_release(parts[0]);
		rill_buf_release(b);
		rill_close(f);
		return;
	}
	rill_buf_release(parts[0]); /* the flow holds its own references */
	rill_buf_release(b);
	srv_read_next(f);
}

static void on_accept(struct rill_listener *l, struct rill_flow *f, int status,
                      const char *errmsg, void *ud)
{
	(void)l;
	(void)ud;
	if (status != 0) {
		fprintf(stderr, "accept: %s\n", errmsg);
		return;
	}
	struct rill_flow *m = msg_attach(f); /* over the accepted TLS flow */
	if (m != NULL)
		srv_read_next(m);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s CERT KEY CA\n", argv[0]);
		return 2;
	}
	uv_loop_t *loop = uv_default_loop();
	char uri[1024], curi[1400], laddr[1400];
	snprintf(uri, sizeof uri, "tls+tcp://127.0.0.1:0?cert=%s&key=%s",
	         argv[1], argv[2]);
	struct rill_listener *l;
	if (rill_listen(loop, uri, NULL, on_accept, NULL, &l) != 0) {
		fprintf(stderr, "listen: %s\n", rill_last_errmsg());
		return 1;
	}
	/* "tls+tcp://127.0.0.1:PORT?..." -> the port the kernel chose. */
	rill_listener_uri(l, laddr, sizeof laddr);
	const char *p = strstr(laddr, "127.0.0.1:");
	int port = p != NULL ? atoi(p + 10) : 0;
	snprintf(curi, sizeof curi,
	         "tls+tcp://127.0.0.1:%d?ca=%s&sni=localhost", port, argv[3]);

	struct rill_flow *tls;
	if (rill_connect_sync(loop, curi, NULL, &tls) != 0) {
		fprintf(stderr, "connect %s: %s\n", curi, rill_last_errmsg());
		return 1;
	}
	printf("connected: %s %s\n", rill_tls_version(tls),
	       rill_tls_cipher(tls));
	struct rill_flow *c = msg_attach(tls);

	const char *msgs[] = {"hello", "a longer message, still one read",
	                      "bye"};
	int bad = 0;
	for (size_t i = 0; i < 3; i++)
		bad |= rill_write_sync(c, msgs[i], strlen(msgs[i])) != 0;
	rill_shutdown_sync(c, RILL_SHUT_WR);
	for (size_t i = 0; i < 3 && !bad; i++) {
		struct rill_buf *b;
		char want[128];
		snprintf(want, sizeof want, "echo: %s", msgs[i]);
		int r = rill_read_sync(c, &b);
		if (r != 0) {
			fprintf(stderr, "read: %s\n", rill_strerror(r));
			bad = 1;
			break;
		}
		printf("message %zu: %.*s\n", i, (int)b->len, (char *)b->data);
		bad |= b->len != strlen(want) || memcmp(b->data, want, b->len);
		rill_buf_release(b);
	}
	struct rill_buf *b = NULL;
	int end = rill_read_sync(c, &b); /* the server's close_notify */
	if (!bad && end != RILL_EOF) {
		fprintf(stderr, "expected EOF, got %s\n", rill_strerror(end));
		bad = 1;
	}
	rill_buf_release(b);
	rill_close(c); /* closes msg, TLS and TCP */
	rill_listener_close(l);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	puts(bad ? "FAILED" : "ok");
	return bad;
}
