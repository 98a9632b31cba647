/*
 * The shut layer (doc/shut-framing.md): ocaml-hvsock's Flow_shutdown framing,
 * wire-compatible with it and with linuxkit/virtsock, over any flow.
 *
 *   user --> [ shut: frames, control messages, close handshake ] --> inner
 *
 * Writing. A user write becomes data frames of at most 4096 bytes. Each
 * frame is a 4-byte header buffer followed by slices of the user's buffers
 * (no copy), and many frames go down in one rill_writev on the inner flow,
 * so a socket below sends them with one writev(2). A frame never spans two
 * inner writes, and the inner flow completes writes in order, so a control
 * message written in between can never land inside a frame.
 *
 * Reading. Inner buffers are decoded by the pure decoder of codec.c;
 * payload is handed up as slices of the inner buffer (no copy). Control
 * messages change state: ShutdownWrite -> reads report EOF; ShutdownRead
 * -> later writes fail closed; Close -> reads report EOF, writes fail
 * closed, and Close is answered at once so the peer's drain can end.
 *
 * Closing. rill_close() sends Close, then keeps reading in the background,
 * discarding data and skipping ShutdownWrite, until the peer's Close,
 * ShutdownRead, EOF, an error or the deadline; only then is the inner flow
 * closed. That holds in every state: a ShutdownWrite (an EOF our reader
 * saw) that came before does not end the drain. The core keeps our memory
 * until rill_flow_destroyed(), and counts the teardown in
 * rill_closing_flows().
 */
#include <string.h>

#include "layer/shut/shut_internal.h"
#include "core/scheme.h"

static const struct rill_flow_ops shut_ops;

static struct shut *shut_of(struct rill_flow *f)
{
	return rill_container_of(f, struct shut, l.base);
}

static struct rill_flow *shut_inner(struct shut *s)
{
	return s->l.inner;
}

static void shut_pump(struct shut *s);
static void shut_finish(struct shut *s);

/* ---------------------------------------------------------------------- */
/* Control messages */

static int shut_send_ctl(struct shut *s, uint32_t msg, rill_write_cb cb)
{
	uint8_t h[4];
	rill__shut_put_le32(h, msg);
	return rill_write_copy(shut_inner(s), h, sizeof h, cb, s);
}

static void shut_maybe_finish(struct shut *s)
{
	if (s->closing && s->drained && !s->close_wr_active)
		shut_finish(s);
}

static void shut_close_sent_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	struct shut *s = ud;
	s->close_wr_active = false;
	if (status != 0)
		s->drained = true; /* the peer is gone: nothing to wait for */
	shut_maybe_finish(s);
}

/* Sends Close once; the write is tracked so the inner flow is closed only
 * after the message went out. */
static void shut_send_close(struct shut *s)
{
	if (s->sent_close)
		return;
	s->sent_close = true;
	s->close_wr_active = true;
	if (shut_send_ctl(s, RILL__SHUT_MSG_CLOSE, shut_close_sent_cb) != 0) {
		s->close_wr_active = false;
		s->drained = true;
	}
}

/* ---------------------------------------------------------------------- */
/* Reading */

/* The raw (still framed) inner buffers: raw[0] is decoded from rx_off. */
static void shut_raw_pop(struct shut *s)
{
	rill_buf_release(s->raw[0]);
	memmove(&s->raw[0], &s->raw[1], (s->n_raw - 1) * sizeof s->raw[0]);
	s->raw[--s->n_raw] = NULL;
	s->rx_off = 0;
	s->scan_valid = false;
}

/*
 * Merges raw[1..] into one buffer when the queue is full of small pieces
 * (a peer writing a few bytes at a time while the user does not read), so
 * that the look-ahead is bounded by bytes, not by the peer's write sizes.
 */
static bool shut_raw_merge(struct shut *s)
{
	if (s->n_raw < 3)
		return false;
	size_t len = 0;
	for (size_t i = 1; i < s->n_raw; i++)
		len += s->raw[i]->len;
	struct rill_buf *m = rill_buf_new(len);
	if (m == NULL)
		return false;
	size_t o = 0, scan_at = 0;
	for (size_t i = 1; i < s->n_raw; i++) {
		if (s->scan_valid && s->scan_idx == i)
			scan_at = o + s->scan_off;
		memcpy(m->data + o, s->raw[i]->data, s->raw[i]->len);
		o += s->raw[i]->len;
		rill_buf_release(s->raw[i]);
		s->raw[i] = NULL;
	}
	if (s->scan_valid && s->scan_idx >= 1) {
		if (s->scan_idx >= s->n_raw)
			scan_at = len;
		s->scan_idx = 1;
		s->scan_off = scan_at;
	}
	s->raw[1] = m;
	s->n_raw = 2;
	return true;
}

/* Raw bytes received and not yet decoded. */
static size_t shut_raw_bytes(const struct shut *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n_raw; i++)
		n += s->raw[i]->len;
	return n - s->rx_off;
}

static void shut_release_rx(struct shut *s)
{
	while (s->n_raw > 0)
		shut_raw_pop(s);
	rill_buf_release(s->ready);
	s->ready = NULL;
	rill_buf_release(s->pl);
	s->pl = NULL;
}

/* Remembers the length of a data frame whose header was just decoded: the
 * scatter reads expect the next frames to be as long. */
static void shut_note_frame(struct shut *s, size_t used, size_t dlen)
{
	if (used > dlen)
		s->sg_flen = (uint32_t)(dlen + s->dec.need);
}

static void shut_inner_read_cb(struct rill_flow *inner, int status,
                               struct rill_buf *buf, void *ud)
{
	(void)inner;
	struct shut *s = ud;
	bool sg = s->sg_pending;
	s->inner_reading = false;
	s->sg_pending = false;
	if (status != 0) {
		s->rx_end = status;
	} else if (sg) {
		size_t n = buf->len;
		rill_buf_release(buf); /* a token: the bytes are in s->pl */
		rill__shut_sg_done(s, n);
	} else {
		rill__shut_raw_push(s, buf);
	}
	if (s->sg_backoff > 0 && !sg)
		s->sg_backoff--;
	shut_pump(s);
}

/* Starts a read on the inner flow (a scatter read where it can be). */
static void shut_inner_read(struct shut *s)
{
	int err;
	s->inner_reading = true;
	if (rill__shut_sg_usable(s)) {
		s->sg_pending = true;
		err = rill_read_into(shut_inner(s), &s->sg_ri,
		                     shut_inner_read_cb, s);
		if (err == 0)
			return;
		s->sg_pending = false;
		if (err == -ENOTSUP)
			s->sg_ok = false;
		else
			goto fail;
	}
	err = rill_read(shut_inner(s), shut_inner_read_cb, s);
	if (err == 0)
		return;
fail:
	s->inner_reading = false;
	s->rx_end = err;
}

static void shut_read_result(struct shut *s, int status, struct rill_buf *b)
{
	s->want_read = false;
	rill_flow_read_done(&s->l.base, status, b);
}

/* The drain of a close ended: the peer answered or cannot any more. */
static void shut_drained(struct shut *s)
{
	s->drained = true;
	shut_maybe_finish(s);
}

/*
 * Handles one control message (or a bad header). Returns true when it ends
 * the read side: the result is then in s->rd_end.
 */
static bool shut_control(struct shut *s, int ev, uint32_t bad)
{
	switch (ev) {
	case RILL__SHUT_SHUTDOWN_WRITE:
		s->peer_wr_shut = true;
		s->rd_end = RILL_EOF;
		return true;
	case RILL__SHUT_SHUTDOWN_READ: s->peer_rd_shut = true; return false;
	case RILL__SHUT_CLOSE:
		s->peer_closed = true;
		/* Answer at once: the peer drains until it hears from us,
		 * and it will send no more. */
		shut_send_close(s);
		s->rd_end = RILL_EOF;
		return true;
	default: /* RILL__SHUT_BAD */
		rill_flow_set_errmsg(&s->l.base,
		                     "shut: bad frame header 0x%08x from the "
		                     "peer (a length >= 2^31 that is not a "
		                     "control message)",
		                     (unsigned)bad);
		s->rd_end = RILL_EFRAME;
		return true;
	}
}

/*
 * The drain of a close: discards data, skips ShutdownWrite, ends at the
 * peer's Close, ShutdownRead, a bad header, or EOF or an error of the flow
 * below. A ShutdownWrite decoded before our close (the EOF our reader
 * saw) does not end it: the peer is still going to close, and its Close
 * must find the flow below open, or its write fails (EPIPE), or the Close
 * arrives after we closed and the kernel resets the connection.
 */
static void shut_pump_drain(struct shut *s)
{
	rill_buf_release(s->ready);
	s->ready = NULL;
	while (!s->drained) {
		if (s->n_raw > 0 && s->rx_off < s->raw[0]->len) {
			size_t used, dlen;
			uint32_t bad;
			int ev = rill__shut_decode(
			    &s->dec, s->raw[0]->data + s->rx_off,
			    s->raw[0]->len - s->rx_off, &used, &dlen, &bad);
			s->rx_off += used;
			if (ev == RILL__SHUT_CLOSE ||
			    ev == RILL__SHUT_SHUTDOWN_READ ||
			    ev == RILL__SHUT_BAD) {
				shut_drained(s);
				return;
			}
			continue;
		}
		if (s->n_raw > 0) {
			shut_raw_pop(s);
			continue;
		}
		if (s->rx_end != 0) {
			/* EOF or a reset of the flow below: the peer can no
			 * longer answer, which is an answer. */
			shut_drained(s);
			return;
		}
		if (s->inner_reading)
			return;
		shut_inner_read(s);
		if (s->inner_reading)
			return; /* shut_inner_read_cb resumes */
	}
}

/*
 * After a payload ending at raw[0][end], pulls the payloads of the data
 * frames that follow in the same inner buffer down over their headers, so
 * that one read hands out many frames: a peer sends at most 4096 bytes
 * per frame, and a callback per frame would cost more than the move. The
 * inner buffer is ours alone (the flow contract: a read buffer belongs to
 * the reader). Stops before anything that is not data; returns the number
 * of bytes appended after raw[0][end].
 */
static size_t shut_coalesce(struct shut *s, size_t end)
{
	struct rill_buf *rx = s->raw[0];
	uint8_t *p = rx->data;
	size_t added = 0;
	while (s->rx_off < rx->len) {
		struct rill__shut_dec saved = s->dec;
		size_t used, dlen;
		uint32_t bad;
		int ev =
		    rill__shut_decode(&s->dec, p + s->rx_off,
		                      rx->len - s->rx_off, &used, &dlen, &bad);
		if (ev != RILL__SHUT_DATA) {
			s->dec = saved; /* handled by the next pump */
			break;
		}
		shut_note_frame(s, used, dlen);
		memmove(p + end + added, p + s->rx_off + used - dlen, dlen);
		added += dlen;
		s->rx_off += used;
	}
	return added;
}

/*
 * Looks past data the user has not read yet, through everything received,
 * for the peer's Close or ShutdownRead: both make our writes fail at once
 * (and a Close is answered at once, so the peer's drain ends), even while
 * unread data stands before them. Returns true when it would look further
 * with more bytes.
 */
static bool shut_scan(struct shut *s)
{
	if (!s->scan_valid) {
		s->scan_dec = s->dec;
		s->scan_idx = 0;
		s->scan_off = s->rx_off;
		s->scan_valid = true;
	}
	if (s->scan_done)
		return false;
	while (s->scan_idx < s->n_raw) {
		struct rill_buf *b = s->raw[s->scan_idx];
		if (s->scan_off >= b->len) {
			s->scan_idx++;
			s->scan_off = 0;
			continue;
		}
		size_t used, dlen;
		uint32_t bad;
		int ev =
		    rill__shut_decode(&s->scan_dec, b->data + s->scan_off,
		                      b->len - s->scan_off, &used, &dlen, &bad);
		s->scan_off += used;
		if (ev == RILL__SHUT_SHUTDOWN_READ) {
			s->peer_rd_shut = true;
		} else if (ev == RILL__SHUT_CLOSE) {
			s->peer_close_seen = true;
			shut_send_close(s);
			s->scan_done = true; /* the peer sends nothing after */
			return false;
		} else if (ev == RILL__SHUT_BAD) {
			s->scan_done = true;
			return false;
		}
	}
	return true;
}

/*
 * Decodes what there is and reads the inner flow when more is needed.
 *
 * With a user read waiting, the first payload (or the end) is handed up.
 * Without one, the layer still looks ahead: it keeps one inner read
 * outstanding and handles the control messages at the head of the stream;
 * behind data the user has not read it keeps reading, up to
 * SHUT_AHEAD_BYTES, only to find a Close or ShutdownRead (shut_scan). That
 * is how a peer's Close or ShutdownRead makes our writes fail even when
 * the user never reads.
 *
 * Every path that hands a result to the core returns right after: the
 * core may run user code from there, which may close us.
 */
/* What one step of the pump leaves it to do. */
enum shut_step {
	SHUT_STEP_AGAIN, /* go on pumping */
	SHUT_STEP_DONE,  /* stop: a result was delivered, or nothing to do */
	SHUT_STEP_HELD,  /* data waits for the user: look behind it */
};

/* A data frame of raw[0] ends at rx_off: hand it (and the frames that
 * follow it contiguously) to the user's read. */
static void shut_pump_deliver(struct shut *s, struct rill_buf *rx, size_t used,
                              size_t dlen)
{
	shut_note_frame(s, used, dlen);
	size_t start = s->rx_off - dlen;
	size_t total = dlen + shut_coalesce(s, start + dlen);
	struct rill_buf *b;
	if (start == 0 && total == rx->len)
		b = rill_buf_ref(rx);
	else
		b = rill_buf_slice(rx, start, total);
	shut_read_result(s, b != NULL ? 0 : RILL_ENOMEM, b);
}

/* Decodes the next message of raw[0] (which has unread bytes). ended:
 * reads already ended, so only control messages still matter. */
static enum shut_step shut_pump_decode(struct shut *s, bool ended)
{
	struct rill_buf *rx = s->raw[0];
	size_t used, dlen;
	uint32_t bad = 0;
	struct rill__shut_dec saved = s->dec;
	int ev = rill__shut_decode(&s->dec, rx->data + s->rx_off,
	                           rx->len - s->rx_off, &used, &dlen, &bad);
	if (ev == RILL__SHUT_DATA && !ended && !s->want_read) {
		s->dec = saved; /* keep it for the user */
		return SHUT_STEP_HELD;
	}
	s->rx_off += used;
	s->scan_valid = false;
	if (ev == RILL__SHUT_MORE)
		return SHUT_STEP_AGAIN;
	if (ev == RILL__SHUT_DATA) {
		if (ended)
			return SHUT_STEP_AGAIN; /* data after EOF: dropped */
		shut_pump_deliver(s, rx, used, dlen);
		return SHUT_STEP_DONE;
	}
	if (ended && ev == RILL__SHUT_BAD)
		return SHUT_STEP_DONE; /* the stream is dead; reads ended */
	if (ended && ev != RILL__SHUT_SHUTDOWN_READ) {
		if (ev == RILL__SHUT_CLOSE) {
			s->peer_closed = true;
			shut_send_close(s);
		}
		return SHUT_STEP_AGAIN;
	}
	shut_control(s, ev, bad);
	return SHUT_STEP_AGAIN;
}

/* The flow below ended (rx_end) and every raw byte was decoded. */
static enum shut_step shut_pump_input_end(struct shut *s, bool ended)
{
	if (ended)
		return SHUT_STEP_DONE;
	int st = s->rx_end;
	if (st == RILL_EOF && !rill__shut_dec_idle(&s->dec)) {
		st = RILL_EFRAME;
		rill_flow_set_errmsg(&s->l.base,
		                     "shut: the peer hung up inside a frame "
		                     "(%u payload bytes missing)",
		                     (unsigned)(s->dec.need > 0
		                                    ? s->dec.need
		                                    : 4u - s->dec.hdr_len));
	}
	s->rd_end = st;
	return SHUT_STEP_AGAIN;
}

/* Data waits for the user: look behind it, within the budget. */
static void shut_pump_held(struct shut *s)
{
	if (!shut_scan(s) || s->inner_reading || s->rx_end != 0 ||
	    shut_raw_bytes(s) >= SHUT_AHEAD_BYTES)
		return;
	if (s->n_raw < SHUT_RAW_MAX || shut_raw_merge(s))
		shut_inner_read(s);
}

/* Moves the receive side on: delivers what the user waits for, decodes
 * control messages, reads from the flow below when it needs input. */
static void shut_pump(struct shut *s)
{
	if (s->closing) {
		shut_pump_drain(s);
		return;
	}
	for (;;) {
		if (s->ready != NULL) {
			if (!s->want_read)
				break;
			struct rill_buf *b = s->ready;
			s->ready = NULL;
			s->scan_valid = false;
			shut_read_result(s, 0, b);
			return;
		}
		bool ended = s->rd_end != 0;
		if (ended && s->want_read) {
			shut_read_result(s, s->rd_end, NULL);
			return;
		}
		/* After the peer's ShutdownWrite, keep looking for its Close
		 * or ShutdownRead (which make our writes fail). */
		if (ended &&
		    !(s->peer_wr_shut && !s->peer_closed && !s->peer_rd_shut &&
		      s->rx_end == 0 && !s->dec.bad))
			return;
		enum shut_step step;
		if (s->n_raw > 0 && s->rx_off < s->raw[0]->len) {
			step = shut_pump_decode(s, ended);
		} else if (s->n_raw > 0) {
			shut_raw_pop(s);
			continue;
		} else if (s->rx_end != 0) {
			step = shut_pump_input_end(s, ended);
		} else {
			if (s->inner_reading)
				return;
			shut_inner_read(s);
			if (s->inner_reading)
				return; /* shut_inner_read_cb resumes */
			continue;
		}
		if (step == SHUT_STEP_DONE)
			return;
		if (step == SHUT_STEP_HELD)
			break;
	}
	shut_pump_held(s);
}

static void shut_read(struct rill_flow *f)
{
	struct shut *s = shut_of(f);
	s->want_read = true;
	shut_pump(s);
}

/* ---------------------------------------------------------------------- */
/* Writing */

static void shut_batch_cb(struct rill_flow *inner, int status, void *ud);

static void shut_batch_release(struct shut *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		rill_buf_release(s->batch[i]);
		s->batch[i] = NULL;
	}
}

/* Frames the next part of the user's request and writes it down. */
static void shut_write_batch(struct shut *s)
{
	size_t ents = 0, bytes = 0;
	int err = 0;
	while (s->w_i < s->w_n && bytes < SHUT_BATCH_BYTES &&
	       ents + 2 <= SHUT_BATCH_ENTS) {
		/* Measure the frame first: its header comes before it. */
		size_t room = SHUT_BATCH_ENTS - ents - 1;
		size_t flen = 0, parts = 0, j = s->w_i, o = s->w_off;
		while (j < s->w_n && flen < RILL__SHUT_MAX_FRAME &&
		       parts < room) {
			size_t take = s->w_bufs[j]->len - o;
			if (take > RILL__SHUT_MAX_FRAME - flen)
				take = RILL__SHUT_MAX_FRAME - flen;
			flen += take;
			parts++;
			o += take;
			if (o == s->w_bufs[j]->len) {
				j++;
				o = 0;
			}
		}
		struct rill_buf *h;
		if (flen == RILL__SHUT_MAX_FRAME) {
			h = rill_buf_ref(s->hdr_full);
		} else {
			h = rill_buf_new(4);
			if (h != NULL)
				rill__shut_put_le32(h->data, (uint32_t)flen);
		}
		if (h == NULL) {
			err = RILL_ENOMEM;
			break;
		}
		s->batch[ents++] = h;
		/* Now the payload, as slices of the user's buffers. */
		size_t left = flen;
		while (left > 0) {
			struct rill_buf *src = s->w_bufs[s->w_i];
			size_t take = src->len - s->w_off;
			if (take > left)
				take = left;
			struct rill_buf *p;
			if (s->w_off == 0 && take == src->len)
				p = rill_buf_ref(src);
			else
				p = rill_buf_slice(src, s->w_off, take);
			if (p == NULL) {
				err = RILL_ENOMEM;
				break;
			}
			s->batch[ents++] = p;
			left -= take;
			s->w_off += take;
			if (s->w_off == src->len) {
				s->w_i++;
				s->w_off = 0;
			}
		}
		if (err != 0)
			break;
		bytes += flen;
	}
	if (err == 0)
		err = rill_writev(shut_inner(s), s->batch, ents, shut_batch_cb,
		                  s);
	/* The inner flow holds its own references now. */
	shut_batch_release(s, ents);
	if (err != 0)
		rill_flow_write_done(&s->l.base, err);
}

static int shut_write_refused(struct shut *s)
{
	bool closed = s->peer_closed || s->peer_close_seen;
	if (!s->peer_rd_shut && !closed)
		return 0;
	rill_flow_set_errmsg(&s->l.base, "shut: the peer %s",
	                     closed ? "closed the flow"
	                            : "shut down its reads");
	return RILL_ECLOSED;
}

static void shut_batch_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	struct shut *s = ud;
	if (s->closing)
		return; /* the core dropped the request */
	if (status == 0 && s->w_i < s->w_n)
		status = shut_write_refused(s);
	if (status != 0 || s->w_i == s->w_n) {
		rill_flow_write_done(&s->l.base, status);
		return;
	}
	shut_write_batch(s);
}

static void shut_write(struct rill_flow *f, struct rill_buf *const *bufs,
                       size_t n)
{
	struct shut *s = shut_of(f);
	if (!s->want_read)
		shut_pump(s); /* look ahead for a Close or ShutdownRead */
	int err = shut_write_refused(s);
	if (err != 0) {
		rill_flow_write_done(f, err);
		return;
	}
	s->w_bufs = bufs;
	s->w_n = n;
	s->w_i = 0;
	s->w_off = 0;
	shut_write_batch(s);
}

static void shut_shutdown_sent_cb(struct rill_flow *inner, int status, void *ud)
{
	(void)inner;
	struct shut *s = ud;
	if (!s->closing)
		rill_flow_shutdown_done(&s->l.base, status);
}

static void shut_shutdown_write(struct rill_flow *f)
{
	struct shut *s = shut_of(f);
	if (s->sent_close) {
		/* Our Close (the answer to the peer's) already ended the
		 * stream: there is nobody left to tell. */
		rill_flow_shutdown_done(f, 0);
		return;
	}
	int err = shut_send_ctl(s, RILL__SHUT_MSG_SHUTDOWN_WRITE,
	                        shut_shutdown_sent_cb);
	if (err != 0)
		rill_flow_shutdown_done(f, err);
}

static void shut_shutdown_read(struct rill_flow *f)
{
	struct shut *s = shut_of(f);
	/* After the peer's ShutdownWrite or Close the message says nothing
	 * the peer needs (it sends no more data), and a peer that is
	 * draining its close takes a ShutdownRead as the end of the drain:
	 * it would hang up while our Close is on its way. */
	if (s->sent_shut_rd || s->sent_close || s->peer_wr_shut ||
	    s->peer_closed || s->peer_close_seen)
		return;
	s->sent_shut_rd = true;
	/* Best effort: a failure shows up on the next write anyway. */
	(void)shut_send_ctl(s, RILL__SHUT_MSG_SHUTDOWN_READ, NULL);
}

/* ---------------------------------------------------------------------- */
/* Closing */

static void shut_timer_closed(uv_handle_t *h)
{
	struct shut *s = h->data;
	rill_flow_destroyed(&s->l.base);
}

static void shut_finish(struct shut *s)
{
	if (s->finishing)
		return;
	s->finishing = true;
	uv_timer_stop(&s->timer);
	shut_release_rx(s);
	rill_buf_release(s->hdr_full);
	s->hdr_full = NULL;
	/* No callback of the inner flow runs after this. */
	rill_close(s->l.inner);
	s->l.inner = NULL;
	uv_close((uv_handle_t *)&s->timer, shut_timer_closed);
}

static void shut_on_deadline(uv_timer_t *t)
{
	shut_finish(t->data);
}

static void shut_close(struct rill_flow *f)
{
	struct shut *s = shut_of(f);
	s->closing = true;
	s->want_read = false;
	s->w_n = s->w_i = 0;
	if (s->close_timeout_ms > 0) {
		/* rill_close may run outside a loop callback, where the loop's
		 * cached clock is stale: the deadline would come early. */
		uv_update_time(f->loop);
		uv_timer_start(&s->timer, shut_on_deadline, s->close_timeout_ms,
		               0);
	}
	shut_send_close(s);
	/* The peer's Close already came: it sends nothing more and waits
	 * for ours. A ShutdownRead that came before our close does not end
	 * the drain (the peer may still write its Close); one the drain
	 * decodes does. */
	if (s->peer_closed || s->peer_close_seen || s->dec.bad ||
	    s->rx_end != 0)
		s->drained = true;
	if (s->drained) {
		shut_maybe_finish(s);
		return;
	}
	shut_pump(s);
}

/* ---------------------------------------------------------------------- */

static const struct rill_flow_ops shut_ops = {
    .version = RILL_FLOW_OPS_VERSION,
    .name = "shut",
    .read = shut_read,
    .write = shut_write,
    .shutdown_write = shut_shutdown_write,
    .shutdown_read = shut_shutdown_read,
    .close = shut_close,
    .address = rill_layer_address,
    .set_nodelay = rill_layer_set_nodelay,
    .set_keepalive = rill_layer_set_keepalive,
};

int rill_shut_attach(struct rill_flow *inner, struct rill_flow **out)
{
	if (out == NULL || inner == NULL) {
		rill_close(inner);
		return RILL_EINVAL;
	}
	*out = NULL;
	struct shut *s = (struct shut *)(void *)rill_layer_new(
	    inner, &shut_ops, sizeof(struct shut));
	if (s == NULL)
		return RILL_ENOMEM;
	/* ShutdownWrite travels in band and leaves the flow below open: a
	 * real half-close over any transport. */
	rill_flow_set_half_close(&s->l.base, true);
	s->hdr_full = rill_buf_new(4);
	if (s->hdr_full == NULL) {
		rill_close(inner);
		rill_flow_discard(&s->l.base);
		return RILL_ENOMEM;
	}
	rill__shut_put_le32(s->hdr_full->data, RILL__SHUT_MAX_FRAME);
	uv_timer_init(inner->loop, &s->timer);
	s->timer.data = s;
	s->close_timeout_ms = RILL_SHUT_CLOSE_TIMEOUT_MS;
	s->sg_ok = true;
	s->sg_flen = RILL__SHUT_MAX_FRAME;
	s->sg_ri.get = rill__shut_sg_get;
	s->sg_ri.unget = rill__shut_sg_unget;
	*out = &s->l.base;
	shut_pump(s); /* start looking ahead */
	return 0;
}

int rill_shut_set_close_timeout(struct rill_flow *f, uint64_t ms)
{
	if (f == NULL || f->ops != &shut_ops)
		return RILL_EINVAL;
	if (rill_flow_is_closed(f))
		return RILL_ECLOSED;
	shut_of(f)->close_timeout_ms = ms;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The "shut+" URI layer: shut+unix:/path?close_timeout=MS */

static const char *const shut_uri_params[] = {"close_timeout", NULL};

static int shut_uri_check(const struct rill_uri *u)
{
	uint64_t ms;
	return rill__uri_param_u64(u, "close_timeout", 0, UINT32_MAX,
	                           RILL_SHUT_CLOSE_TIMEOUT_MS, &ms);
}

static int shut_uri_attach(struct rill_flow *inner, const struct rill_uri *u,
                           int role, uint64_t deadline_ms, rill_attach_cb cb,
                           void *ud)
{
	(void)role;        /* the protocol is symmetric */
	(void)deadline_ms; /* no handshake when attaching */
	uint64_t ms;
	int err = rill__uri_param_u64(u, "close_timeout", 0, UINT32_MAX,
	                              RILL_SHUT_CLOSE_TIMEOUT_MS, &ms);
	if (err != 0) {
		rill_close(inner);
		return err;
	}
	struct rill_flow *f;
	err = rill_shut_attach(inner, &f);
	if (err != 0)
		return err;
	shut_of(f)->close_timeout_ms = ms;
	cb(f, 0, NULL, ud);
	return 0;
}

const struct rill_layer_scheme rill__shut_scheme = {
    .name = "shut",
    .params = shut_uri_params,
    .check = shut_uri_check,
    .attach = shut_uri_attach,
};
