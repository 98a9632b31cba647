/*
 * The WebSocket flow (RFC 6455): the opening handshake over the flow
 * below, then frames both ways, then the Close handshake.
 *
 * Received frames are parsed and checked in frames.c (why not by
 * libwslay: see there), straight from the one buffer read from the flow
 * below into the reader's buffer. Control frames to send (pongs, the
 * Close and its answer, pings) are queued in libwslay's event API,
 * which has no I/O of its own: its send callback collects them into a
 * buffer this file writes down, between data frames; wslay keeps the
 * Close state of the sending side.
 *
 * Data frames are built here rather than by wslay, because wslay would
 * copy every byte into its 4 KiB send buffer, frame by frame, and
 * cannot tell when a message it was given has left: a server's frames
 * are a header plus slices of the writer's own buffers (no copy at all),
 * a client's are masked into one new buffer per frame. Frames of one
 * message are at most WS_FRAME_MAX bytes, and control frames go out
 * between them.
 *
 * Buffering is bounded: at most one read of the flow below and the
 * payload taken from it wait for a slow reader (the flow below is not
 * read meanwhile), and at most WS_CTRL_MAX bytes of control frames wait
 * to be sent, counted in ws->ctrl and in wslay's queue (parsing stops
 * while more do, even in the middle of a read: see rill__ws_ctrl_full).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <wslay/wslay.h>

#include "core/core.h"
#include "layer/ws/ws_internal.h"

static void ws_drive(struct ws_flow *ws);

static struct ws_flow *ws_of(struct rill_flow *f)
{
	return rill_container_of(f, struct ws_flow, layer.base);
}

/* ---------------------------------------------------------------------- */
/* wslay callbacks */

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                          size_t len, int flags, void *ud)
{
	(void)flags;
	struct ws_flow *ws = ud;
	size_t need = ws->ctrl_len + len;
	if (ws->ctrl == NULL || need > ws->ctrl->len) {
		struct rill_buf *b = rill_buf_new(need < 256 ? 256 : need * 2);
		if (b == NULL) {
			wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
			return -1;
		}
		if (ws->ctrl_len > 0)
			memcpy(b->data, ws->ctrl->data, ws->ctrl_len);
		rill_buf_release(ws->ctrl);
		ws->ctrl = b;
	}
	memcpy(ws->ctrl->data + ws->ctrl_len, data, len);
	ws->ctrl_len += len;
	return (ssize_t)len;
}

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                         void *ud)
{
	(void)ctx;
	(void)ud;
	return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

/* wslay only sends control frames (frames.c parses what arrives). */
static const struct wslay_event_callbacks ws_callbacks = {
    .send_callback = ws_send_cb,
    .genmask_callback = ws_genmask_cb,
};

/* ---------------------------------------------------------------------- */
/* Input */

/* Reading from the peer ended: decide what the reader gets after the
 * payload already taken. */
static void ws_read_ended(struct ws_flow *ws)
{
	if (ws->rd_final != 0)
		return;
	if (ws->close_received) {
		uint16_t code = ws->close_code;
		if (code == 1000 || code == 1001 || code == 1005) {
			ws->rd_final = RILL_EOF;
		} else {
			ws->rd_final = RILL_EWS;
			rill_flow_set_errmsg(&ws->layer.base,
			                     "WebSocket: the peer closed with "
			                     "status %u",
			                     code);
		}
		return;
	}
	ws->rd_final = RILL_EWS;
	if (!ws->refused)
		rill_flow_set_errmsg(&ws->layer.base,
		                     "WebSocket: protocol error from the peer");
}

static void ws_in_cb(struct rill_flow *inner, int status, struct rill_buf *buf,
                     void *ud)
{
	(void)inner;
	struct ws_flow *ws = ud;
	ws->inner_reading = false;
	if (status != 0) {
		ws->in_status = status;
		if (ws->ctx != NULL && ws->rd_enabled) {
			ws->rd_enabled = false;
			if (status == RILL_EOF) {
				ws->rd_final = RILL_EWS;
				ws->close_code = 1006;
				rill_flow_set_errmsg(
				    &ws->layer.base,
				    "WebSocket: the connection "
				    "ended without a Close (1006)");
			} else if (ws->rd_final == 0) {
				ws->rd_final = status;
			}
		}
	} else {
		ws->in_private = rill__buf_mutable(buf);
		ws->in = buf;
		ws->in_off = 0;
	}
	ws_drive(ws);
}

/* Parses the input, while the reader keeps up. True if it ran. */
static bool ws_feed(struct ws_flow *ws)
{
	if (ws->in == NULL || ws->ctx == NULL)
		return false;
	if (!ws->rd_enabled) {
		rill_buf_release(ws->in);
		ws->in = NULL;
		return false;
	}
	bool discard = ws->rd_shut || ws->closing;
	if ((ws->out != NULL && !discard) || rill__ws_ctrl_full(ws))
		return false;
	int err = rill__ws_parse(ws, discard);
	if (err != 0) {
		ws->rd_enabled = false;
		if (ws->rd_final == 0)
			ws->rd_final = err;
	}
	if (ws->in != NULL && ws->in_off == ws->in->len) {
		rill_buf_release(ws->in);
		ws->in = NULL;
		ws->in_off = 0;
	}
	if (!ws->rd_enabled)
		ws_read_ended(ws);
	if (ws->out != NULL && ws->out_len == 0) {
		rill_buf_release(ws->out);
		ws->out = NULL;
	}
	return true;
}

static void ws_read_inner(struct ws_flow *ws)
{
	if (ws->inner_reading || ws->in != NULL || ws->in_status != 0 ||
	    ws->out != NULL || rill__ws_ctrl_full(ws) || ws->gone ||
	    !ws->rd_enabled)
		return;
	ws->inner_reading = true;
	int err = rill_read(ws->layer.inner, ws_in_cb, ws);
	if (err != 0) {
		ws->inner_reading = false;
		ws->in_status = err;
		ws->rd_enabled = false;
		if (ws->rd_final == 0)
			ws->rd_final = err;
	}
}

static void ws_deliver(struct ws_flow *ws)
{
	if (!ws->user_reading)
		return;
	if (ws->out != NULL && ws->out_len > 0 && !ws->rd_shut) {
		struct rill_buf *b = ws->out;
		b->len = ws->out_len;
		ws->out = NULL;
		ws->out_len = 0;
		ws->user_reading = false;
		rill_flow_read_done(&ws->layer.base, 0, b);
		return;
	}
	if (ws->rd_final != 0 && ws->out == NULL) {
		ws->user_reading = false;
		rill_flow_read_done(&ws->layer.base, ws->rd_final, NULL);
	}
}

/* ---------------------------------------------------------------------- */
/* Output */

static void ws_fail_writes(struct ws_flow *ws, int err)
{
	if (ws->wr_final == 0)
		ws->wr_final = err;
	if (ws->writing) {
		ws->writing = false;
		rill_flow_write_done(&ws->layer.base, ws->wr_final);
	}
	if (ws->shut_pending) {
		ws->shut_pending = false;
		rill_flow_shutdown_done(&ws->layer.base, ws->wr_final);
	}
}

static void ws_wrote_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	struct ws_flow *ws = ud;
	ws->inner_writing = false;
	if (status != 0) {
		ws_fail_writes(ws, status);
	} else if (ws->wr_data && ws->wfin && ws->writing) {
		ws->writing = false;
		rill_flow_write_done(&ws->layer.base, 0);
	}
	ws_drive(ws);
}

static void ws_inner_shut_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	(void)status;
	struct ws_flow *ws = ud;
	ws->inner_shut_done = true;
	ws_drive(ws);
}

/* A frame header into h; returns its length. */
static size_t ws_header(uint8_t *h, bool fin, uint8_t op, uint64_t len,
                        const uint8_t *mask)
{
	size_t n = 2;
	h[0] = (uint8_t)((fin ? 0x80 : 0) | op);
	uint8_t m = mask != NULL ? 0x80 : 0;
	if (len < 126) {
		h[1] = (uint8_t)(m | len);
	} else if (len <= 0xffff) {
		h[1] = m | 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		n = 4;
	} else {
		h[1] = m | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	if (mask != NULL) {
		memcpy(h + n, mask, 4);
		n += 4;
	}
	return n;
}

#define WS_PIECES 16

/* Sends the next frame of the message being written. */
static void ws_send_frame(struct ws_flow *ws)
{
	struct rill_buf *pieces[WS_PIECES + 1];
	size_t k = 1;
	uint64_t pay = 0;
	size_t wi = ws->wi, woff = ws->woff;
	/* Which slices of the writer's buffers go in this frame. */
	while (wi < ws->wn && pay < WS_FRAME_MAX && k <= WS_PIECES) {
		struct rill_buf *b = ws->wbufs[wi];
		size_t take = b->len - woff;
		if (take > WS_FRAME_MAX - pay)
			take = (size_t)(WS_FRAME_MAX - pay);
		if (take > 0) {
			pieces[k] = NULL;
			if (ws->role == RILL_WS_SERVER) {
				pieces[k] = rill_buf_slice(b, woff, take);
				if (pieces[k] == NULL)
					break;
			}
			k++;
			pay += take;
		}
		woff += take;
		if (woff == b->len) {
			wi++;
			woff = 0;
		}
	}
	bool fin = pay == ws->wleft;
	uint8_t key[4], h[14];
	bool client = ws->role == RILL_WS_CLIENT;
	if (client && getrandom(key, 4, 0) != 4) {
		ws_fail_writes(ws, RILL_ENOMEM);
		return;
	}
	size_t hl = ws_header(
	    h, fin, ws->wfirst ? WSLAY_CONTINUATION_FRAME : WSLAY_BINARY_FRAME,
	    pay, client ? key : NULL);
	size_t n = k;
	if (client) {
		pieces[0] = rill_buf_new(hl + pay);
		if (pieces[0] != NULL) {
			memcpy(pieces[0]->data, h, hl);
			/* Mask the same slices into the new buffer. */
			size_t off = 0, i = ws->wi, o = ws->woff;
			while (off < pay) {
				struct rill_buf *b = ws->wbufs[i];
				size_t take = b->len - o;
				if (take > pay - off)
					take = (size_t)(pay - off);
				rill__ws_mask(pieces[0]->data + hl + off,
				              b->data + o, take, key, off & 3);
				off += take;
				o += take;
				if (o == b->len) {
					i++;
					o = 0;
				}
			}
		}
		n = 1;
	} else {
		pieces[0] = rill_buf_copy(h, hl);
	}
	bool ok = pieces[0] != NULL;
	for (size_t i = 1; i < k && !client; i++)
		ok = ok && pieces[i] != NULL;
	if (!ok) {
		for (size_t i = 0; i < n; i++)
			rill_buf_release(pieces[i]);
		ws_fail_writes(ws, RILL_ENOMEM);
		return;
	}
	ws->wi = wi;
	ws->woff = woff;
	ws->wleft -= pay;
	ws->wfirst = true;
	ws->wfin = fin;
	ws->wr_data = true;
	ws->inner_writing = true;
	int err = rill_writev(ws->layer.inner, pieces, n, ws_wrote_cb, ws);
	for (size_t i = 0; i < n; i++)
		rill_buf_release(pieces[i]);
	if (err != 0) {
		ws->inner_writing = false;
		ws_fail_writes(ws, err);
	}
}

/* Writes the control frames wslay produced; true if a write started. */
static bool ws_send_ctrl(struct ws_flow *ws)
{
	/* Having received a Close, finish the message being written before
	 * answering (RFC 6455 section 5.5.1 allows it). */
	bool hold = ws->close_received &&
	            !wslay_event_get_close_sent(ws->ctx) && ws->writing &&
	            !ws->closing && ws->wr_final == 0;
	if (!hold && wslay_event_want_write(ws->ctx) &&
	    wslay_event_send(ws->ctx) != 0)
		ws_fail_writes(ws, RILL_ENOMEM);
	if (ws->ctrl_len == 0)
		return false;
	struct rill_buf *b = ws->ctrl;
	b->len = ws->ctrl_len;
	ws->ctrl = NULL;
	ws->ctrl_len = 0;
	ws->wr_data = false;
	ws->inner_writing = true;
	int err = rill_write(ws->layer.inner, b, ws_wrote_cb, ws);
	rill_buf_release(b);
	if (err != 0) {
		ws->inner_writing = false;
		ws_fail_writes(ws, err);
		return false;
	}
	if (ws->refused && wslay_event_get_close_sent(ws->ctx))
		rill_flow_set_errmsg(
		    &ws->layer.base,
		    "WebSocket: protocol error from the peer (Close %u sent)",
		    wslay_event_get_status_code_sent(ws->ctx));
	return true;
}

static void ws_flush(struct ws_flow *ws)
{
	if (ws->inner_writing || ws->gone)
		return;
	for (;;) {
		if (ws_send_ctrl(ws))
			return;
		if (ws->wr_final != 0) {
			ws_fail_writes(ws, ws->wr_final);
			return;
		}
		if (wslay_event_get_close_sent(ws->ctx)) {
			/* No data after our Close: a message cut short by
			 * a close fails. */
			if (ws->writing) {
				ws->writing = false;
				rill_flow_write_done(&ws->layer.base,
				                     RILL_ECLOSED);
			}
			if (!ws->inner_shut) {
				ws->inner_shut = true;
				if (rill_shutdown(ws->layer.inner, RILL_SHUT_WR,
				                  ws_inner_shut_cb, ws) != 0)
					ws->inner_shut_done = true;
			}
			return;
		}
		if (ws->writing && !ws->closing) {
			ws_send_frame(ws);
			return;
		}
		if ((ws->shut_pending || ws->closing) && !ws->close_queued) {
			ws->close_queued = true;
			wslay_event_queue_close(ws->ctx, 1000, NULL, 0);
			continue;
		}
		return;
	}
}

/* ---------------------------------------------------------------------- */
/* Teardown */

static void ws_timer_closed(uv_handle_t *h)
{
	struct ws_flow *ws = h->data;
	if (ws->ctx != NULL)
		wslay_event_context_free(ws->ctx);
	rill_buf_release(ws->hs);
	rill_buf_release(ws->in);
	rill_buf_release(ws->out);
	rill_buf_release(ws->ctrl);
	rill__ws_conf_free(&ws->conf);
	rill_close(ws->layer.inner);
	rill_flow_destroyed(&ws->layer.base);
}

static void ws_teardown(struct ws_flow *ws)
{
	if (ws->gone)
		return;
	ws->gone = true;
	ws->st = WS_DEAD;
	uv_close((uv_handle_t *)&ws->timer, ws_timer_closed);
}

/* Closing: done once our Close left and the peer's arrived (or the
 * connection ended). */
static bool ws_close_done(struct ws_flow *ws)
{
	if (ws->st != WS_OPEN)
		return true;
	if (ws->inner_writing)
		return false;
	if (ws->wr_final != 0 || ws->in_status != 0)
		return true;
	return wslay_event_get_close_sent(ws->ctx) && !ws->rd_enabled;
}

static void ws_drive(struct ws_flow *ws)
{
	if (ws->gone)
		return;
	if (ws->driving) {
		ws->again = true;
		return;
	}
	ws->driving = true;
	do {
		ws->again = false;
		ws_deliver(ws);
		if (ws_feed(ws))
			ws->again = true;
		ws_flush(ws);
		if (ws->shut_pending && ws->inner_shut_done) {
			ws->shut_pending = false;
			rill_flow_shutdown_done(&ws->layer.base, 0);
		}
		ws_read_inner(ws);
		if (ws->closing && ws_close_done(ws)) {
			ws->driving = false;
			ws_teardown(ws);
			return;
		}
	} while (ws->again);
	ws->driving = false;
}

/* ---------------------------------------------------------------------- */
/* Flow ops */

static void ws_read(struct rill_flow *f)
{
	struct ws_flow *ws = ws_of(f);
	ws->user_reading = true;
	ws_drive(ws);
}

static void ws_write(struct rill_flow *f, struct rill_buf *const *bufs,
                     size_t n)
{
	struct ws_flow *ws = ws_of(f);
	if (ws->wr_final != 0 || ws->close_queued || ws->close_received ||
	    wslay_event_get_close_sent(ws->ctx)) {
		rill_flow_write_done(f, ws->wr_final ? ws->wr_final
		                                     : RILL_ECLOSED);
		return;
	}
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += bufs[i]->len;
	ws->wbufs = bufs;
	ws->wn = n;
	ws->wi = 0;
	ws->woff = 0;
	ws->wleft = total;
	ws->wfirst = false;
	ws->wfin = false;
	ws->writing = true;
	ws_drive(ws);
}

static void ws_shutdown_write(struct rill_flow *f)
{
	struct ws_flow *ws = ws_of(f);
	if (ws->wr_final != 0) {
		rill_flow_shutdown_done(f, ws->wr_final);
		return;
	}
	ws->shut_pending = true;
	ws_drive(ws);
}

static void ws_shutdown_read(struct rill_flow *f)
{
	struct ws_flow *ws = ws_of(f);
	ws->rd_shut = true;
	ws->user_reading = false;
	ws_drive(ws);
}

static void ws_timer_cb(uv_timer_t *t);

static void ws_close(struct rill_flow *f)
{
	struct ws_flow *ws = ws_of(f);
	ws->closing = true;
	ws->user_reading = false;
	ws->writing = false;
	ws->shut_pending = false;
	if (ws->st != WS_OPEN || ws->gone) {
		ws_teardown(ws);
		return;
	}
	rill_buf_release(ws->out);
	ws->out = NULL;
	ws->out_len = 0;
	uv_timer_start(&ws->timer, ws_timer_cb, WS_CLOSE_MS, 0);
	ws_drive(ws);
}

const struct rill_flow_ops rill__ws_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "ws",
    .read = ws_read,
    .write = ws_write,
    .shutdown_write = ws_shutdown_write,
    .shutdown_read = ws_shutdown_read,
    .close = ws_close,
    .address = rill_layer_address,
    .set_nodelay = rill_layer_set_nodelay,
    .set_keepalive = rill_layer_set_keepalive,
};

/* ---------------------------------------------------------------------- */
/* Timer: handshake deadline, pings, close deadline */

static void ws_ping(struct ws_flow *ws)
{
	if (ws->pong_wait && !ws->heard && ws->out == NULL) {
		rill_flow_set_errmsg(&ws->layer.base,
		                     "WebSocket: no answer to a ping within "
		                     "%llu ms",
		                     (unsigned long long)ws->conf.ping_ms);
		if (ws->rd_final == 0)
			ws->rd_final = RILL_ETIMEDOUT;
		ws->rd_enabled = false;
		ws_fail_writes(ws, RILL_ETIMEDOUT);
		uv_timer_stop(&ws->timer);
		ws_drive(ws);
		return;
	}
	ws->heard = false;
	ws->pong_wait = true;
	static const uint8_t body[] = "rill";
	struct wslay_event_msg m = {WSLAY_PING, body, 4};
	wslay_event_queue_msg(ws->ctx, &m);
	ws_drive(ws);
}

static void ws_timer_cb(uv_timer_t *t)
{
	struct ws_flow *ws = t->data;
	if (ws->closing) {
		ws_teardown(ws);
		return;
	}
	if (ws->st == WS_OPEN && ws->conf.ping_ms > 0)
		ws_ping(ws);
}

/* The handshake is over: frames from now on. */
int rill__ws_start(struct ws_flow *ws)
{
	int r =
	    ws->role == RILL_WS_SERVER
	        ? wslay_event_context_server_init(&ws->ctx, &ws_callbacks, ws)
	        : wslay_event_context_client_init(&ws->ctx, &ws_callbacks, ws);
	if (r != 0) {
		ws->ctx = NULL;
		return RILL_ENOMEM;
	}
	ws->rd_enabled = true;
	ws->st = WS_OPEN;
	uv_timer_stop(&ws->timer);
	if (ws->conf.ping_ms > 0)
		uv_timer_start(&ws->timer, ws_timer_cb, ws->conf.ping_ms,
		               ws->conf.ping_ms);
	return 0;
}
