/*
 * Fuzz target: the whole shut layer (src/layer/shut/shut.c) reading what a
 * hostile peer sends, cut into random pieces: decoding, coalescing frames
 * in place, look-ahead, EOF inside a frame, bad headers, the answer to
 * Close and the close drain. Oracle: the bytes and the end the layer
 * reports must match the pure decoder (src/layer/shut/codec.c) run over the
 * same input: payload up to the first ShutdownWrite, Close or bad header;
 * EFRAME for a bad header or a stream that ends inside a frame.
 *
 * Input: byte 0 picks the piece sizes, whether the peer ends with a
 * hang-up, and whether the layer sits on an in-memory pair or on a Unix
 * socket (where it reads with scatter reads, payload straight into its
 * buffer); the rest is what the peer sends.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "layer/shut/codec.h"
#include "rill.h"
#include "transport/socket/socket.h"

struct run {
	uint8_t *got;
	size_t ngot, cap;
	int end;
	bool done;
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
	if (r->ngot + b->len > r->cap)
		abort(); /* more bytes than the peer sent */
	memcpy(r->got + r->ngot, b->data, b->len);
	r->ngot += b->len;
	rill_buf_release(b);
	if (rill_read(f, on_read, r) != 0)
		abort();
}

/* What the layer must report, by the pure decoder. */
static int expect(const uint8_t *in, size_t len, uint8_t *out, size_t *nout)
{
	struct rill__shut_dec d = {0};
	size_t pos = 0;
	*nout = 0;
	while (pos < len) {
		size_t used, dlen;
		uint32_t bad;
		int ev = rill__shut_decode(&d, in + pos, len - pos, &used,
		                           &dlen, &bad);
		pos += used;
		switch (ev) {
		case RILL__SHUT_DATA:
			memcpy(out + *nout, in + pos - dlen, dlen);
			*nout += dlen;
			break;
		case RILL__SHUT_SHUTDOWN_WRITE:
		case RILL__SHUT_CLOSE: return RILL_EOF;
		case RILL__SHUT_BAD: return RILL_EFRAME;
		default: break;
		}
	}
	return rill__shut_dec_idle(&d) ? RILL_EOF : RILL_EFRAME;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 65536)
		return 0;
	uint8_t cfg = data[0];
	const uint8_t *in = data + 1;
	size_t len = size - 1;
	bool over_socket = (cfg & 0x80) != 0;
	size_t piece = ((size_t)(cfg & 0x3f) + 1) * (over_socket ? 67 : 1);
	bool hangup = (cfg & 0x40) != 0;

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *a, *raw;
	if (over_socket) {
		int fds[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0 ||
		    rill__socket_flow_new(&loop, fds[0], &rill__unix_family,
		                          &a) != 0 ||
		    rill__socket_flow_new(&loop, fds[1], &rill__unix_family,
		                          &raw) != 0)
			abort();
	} else if (rill_pair(&loop, 0, &a, &raw) != 0) {
		abort();
	}
	struct rill_flow *s;
	if (rill_shut_attach(a, &s) != 0)
		abort();
	rill_shut_set_close_timeout(s, 1);
	struct run r = {.cap = len + 1};
	r.got = malloc(r.cap);
	if (rill_read(s, on_read, &r) != 0)
		abort();
	for (size_t off = 0; off < len; off += piece) {
		size_t n = len - off < piece ? len - off : piece;
		/* Failing writes are fine: the layer may have answered. */
		(void)rill_write_copy(raw, in + off, n, NULL, NULL);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	if (hangup) {
		rill_close(raw);
		raw = NULL;
	} else {
		(void)rill_shutdown(raw, RILL_SHUT_WR, NULL, NULL);
	}
	while (!r.done)
		if (uv_run(&loop, UV_RUN_ONCE) == 0)
			break;
	uint8_t *want = malloc(len + 1);
	size_t nwant;
	int end = expect(in, len, want, &nwant);
	if (!r.done || r.end != end || r.ngot != nwant ||
	    memcmp(r.got, want, nwant) != 0)
		abort();
	/* Writes after the end must not crash either. */
	(void)rill_write_copy(s, "x", 1, NULL, NULL);
	rill_close(s);
	rill_close(raw);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		abort();
	free(want);
	free(r.got);
	return 0;
}
