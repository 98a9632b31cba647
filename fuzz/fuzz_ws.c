/*
 * Fuzz target: the ws layer (src/layer/ws/) reading what a hostile peer
 * sends, cut into pieces: the opening handshake (request or answer head,
 * parsed by llhttp and checked here), then frames (parsed and checked
 * by frames.c), the answers to pings and Close (sent through libwslay),
 * and the close drain.
 *
 * Each input runs twice: over an in-memory pair, whose buffers are never
 * private, so the payload is copied out of them, and over a Unix
 * socketpair, whose read buffers are private (rill__buf_mutable), so the
 * payload is unmasked in place and moved over the frame headers before
 * it (ws->in_private in frames.c). Oracle: no crash, no leak, no
 * sanitizer report, never more payload bytes than the peer sent, the
 * read ends once the peer's input ends, and both runs deliver the same
 * payload bytes and end the same way (EOF or the same error).
 *
 * Input: byte 0: bits 0-1 the mode: 0 the layer is a server and the rest
 * is the request head and frames; 1 a server after a fixed valid
 * request head; 2 a client after a valid 101 answer (computed from its
 * key); 3 a client and the rest is the answer head and frames. Bits 2-7
 * the piece size.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "layer/ws/ws_internal.h"
#include "rill.h"
#include "transport/socket/socket.h"

struct run {
	struct rill_flow *ws, *raw;
	uint8_t *got;
	size_t ngot, cap;
	int end;
	bool attached, done, head_seen;
	char req[8192];
	size_t nreq;
};

static void on_read(struct rill_flow *f, int status, struct rill_buf *b,
                    void *ud)
{
	struct run *r = ud;
	if (status != 0) {
		r->end = status;
		r->done = true;
		return;
	}
	if (b->len > r->cap - r->ngot)
		abort(); /* more payload than the peer sent */
	memcpy(r->got + r->ngot, b->data, b->len);
	r->ngot += b->len;
	rill_buf_release(b);
	if (rill_read(f, on_read, r) != 0)
		abort();
}

static void on_attach(struct rill_flow *f, int status, void *ud)
{
	struct run *r = ud;
	r->attached = true;
	if (status != 0) {
		r->end = status;
		r->done = true;
		return;
	}
	r->ws = f;
	if (rill_read(f, on_read, r) != 0)
		abort();
}

static void send_pieces(struct run *r, const uint8_t *p, size_t len,
                        size_t piece, uv_loop_t *loop)
{
	for (size_t off = 0; off < len; off += piece) {
		size_t n = len - off < piece ? len - off : piece;
		(void)rill_write_copy(r->raw, p + off, n, NULL, NULL);
		uv_run(loop, UV_RUN_NOWAIT);
	}
}

/* The peer reads what the layer sends (and, as a server for mode 2,
 * keeps the request head to answer it). */
static void on_raw_read(struct rill_flow *f, int status, struct rill_buf *b,
                        void *ud)
{
	struct run *r = ud;
	if (status != 0)
		return;
	if (!r->head_seen) {
		size_t n = b->len < sizeof r->req - 1 - r->nreq
		               ? b->len
		               : sizeof r->req - 1 - r->nreq;
		memcpy(r->req + r->nreq, b->data, n);
		r->nreq += n;
		r->req[r->nreq] = '\0';
		if (strstr(r->req, "\r\n\r\n") != NULL)
			r->head_seen = true;
	}
	rill_buf_release(b);
	(void)rill_read(f, on_raw_read, r);
}

static const char valid_req[] =
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/* The 101 for the client's request in r->req (mode 2). */
static void answer_client(struct run *r, uv_loop_t *loop)
{
	while (!r->head_seen)
		if (uv_run(loop, UV_RUN_ONCE) == 0)
			abort();
	const char *k = strstr(r->req, "Sec-WebSocket-Key: ");
	if (k == NULL)
		abort();
	k += strlen("Sec-WebSocket-Key: ");
	char acc[WS_ACCEPT_LEN + 1];
	rill__ws_accept_key(k, WS_KEY_LEN, acc);
	char head[256];
	int n = snprintf(head, sizeof head,
	                 "HTTP/1.1 101 Switching Protocols\r\n"
	                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	                 "Sec-WebSocket-Accept: %s\r\n\r\n",
	                 acc);
	send_pieces(r, (const uint8_t *)head, (size_t)n, 4096, loop);
}

/* One run of the input over a pair (private false) or a socketpair. */
static void run_once(struct run *r, const uint8_t *data, size_t size,
                     bool private_bufs)
{
	int mode = data[0] & 3;
	const uint8_t *in = data + 1;
	size_t len = size - 1;
	size_t piece = ((size_t)(data[0] >> 2) + 1) * 7;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a;
	if (private_bufs) {
		int fds[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0 ||
		    rill__socket_flow_new(&loop, fds[0], &rill__unix_family,
		                          &a) != 0 ||
		    rill__socket_flow_new(&loop, fds[1], &rill__unix_family,
		                          &r->raw) != 0)
			abort();
	} else if (rill_pair(&loop, 0, &a, &r->raw) != 0) {
		abort();
	}
	struct rill_ws_opts o = {.max_message = 4096,
	                         .handshake_timeout_ms = 5000};
	int role = mode < 2 ? RILL_WS_SERVER : RILL_WS_CLIENT;
	if (rill_ws_attach(a, role, &o, on_attach, r) != 0)
		abort();
	if (rill_read(r->raw, on_raw_read, r) != 0)
		abort();
	if (mode == 1)
		send_pieces(r, (const uint8_t *)valid_req, sizeof valid_req - 1,
		            4096, &loop);
	else if (mode == 2)
		answer_client(r, &loop);
	send_pieces(r, in, len, piece, &loop);
	(void)rill_shutdown(r->raw, RILL_SHUT_WR, NULL, NULL);
	while (!r->done)
		if (uv_run(&loop, UV_RUN_ONCE) == 0)
			break;
	if (!r->done)
		abort(); /* the read never ended */
	/* Writes after the end must not crash either. */
	if (r->ws != NULL)
		(void)rill_write_copy(r->ws, "x", 1, NULL, NULL);
	rill_close(r->ws);
	rill_close(r->raw);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 65536)
		return 0;
	static struct run copied, in_place;
	memset(&copied, 0, sizeof copied);
	memset(&in_place, 0, sizeof in_place);
	copied.cap = in_place.cap = size - 1;
	copied.got = malloc(size);
	in_place.got = malloc(size);
	if (copied.got == NULL || in_place.got == NULL)
		abort();
	run_once(&copied, data, size, false);
	run_once(&in_place, data, size, true);
	/* Unmasking in place changes nothing the reader sees. */
	if (copied.ngot != in_place.ngot ||
	    memcmp(copied.got, in_place.got, copied.ngot) != 0 ||
	    copied.end != in_place.end)
		abort();
	free(copied.got);
	free(in_place.got);
	return 0;
}
