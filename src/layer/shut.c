/*
 * The shut layer (DESIGN.md 5.3): ocaml-hvsock's Flow_shutdown framing,
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
 * Reading. Inner buffers are decoded by the pure decoder of shut_codec.c;
 * payload is handed up as slices of the inner buffer (no copy). Control
 * messages change state: ShutdownWrite -> reads report EOF; ShutdownRead
 * -> later writes fail closed; Close -> reads report EOF, writes fail
 * closed, and Close is answered at once so the peer's drain can end.
 *
 * Closing. rill_close() sends Close, then keeps reading in the background,
 * discarding data and skipping ShutdownWrite, until the peer's Close,
 * ShutdownRead, EOF, an error or the deadline; only then is the inner flow
 * closed. The core keeps our memory until rill_flow_destroyed().
 */
#include <string.h>

#include "rill/impl.h"
#include "shut_codec.h"
#include "uri.h"

/* Payload bytes and buffers per rill_writev to the inner flow. */
#define SHUT_BATCH_BYTES (256u * 1024u)
#define SHUT_BATCH_ENTS  256u

struct shut {
	struct rill_layer l;
	struct rill__shut_dec dec;

	/* Reading: the inner buffer being decoded, and what comes after. */
	struct rill_buf *rx;
	size_t rx_off;
	int rx_end;         /* inner read ended: RILL_EOF or an error */
	int rd_end;         /* our read side ended: RILL_EOF or an error */
	bool inner_reading; /* a rill_read on the inner flow is pending */
	bool want_read;     /* ops->read awaits a result */

	/* What the peer told us, and what we told it. */
	bool peer_wr_shut;
	bool peer_rd_shut;
	bool peer_closed;
	bool sent_close;
	bool sent_shut_rd;

	/* Writing: the user's request being framed. */
	struct rill_buf *const *w_bufs;
	size_t w_n, w_i, w_off;
	struct rill_buf *hdr_full; /* "00 10 00 00", shared by full frames */
	struct rill_buf *batch[SHUT_BATCH_ENTS];

	/* Closing. */
	bool closing;
	bool drained;         /* the peer answered (or cannot any more) */
	bool close_wr_active; /* our Close message is not yet written */
	bool finishing;
	uint64_t close_timeout_ms;
	uv_timer_t timer;
};

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

static void shut_inner_read_cb(struct rill_flow *inner, int status,
                               struct rill_buf *buf, void *ud)
{
	(void)inner;
	struct shut *s = ud;
	s->inner_reading = false;
	if (status == 0) {
		s->rx = buf;
		s->rx_off = 0;
	} else {
		s->rx_end = status;
	}
	shut_pump(s);
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

/* The drain of a close: discards data, skips ShutdownWrite, ends at the
 * peer's Close, ShutdownRead, a bad header, EOF or an error. */
static void shut_pump_drain(struct shut *s)
{
	while (!s->drained) {
		if (s->rx != NULL && s->rx_off < s->rx->len) {
			size_t used, dlen;
			uint32_t bad;
			int ev = rill__shut_decode(
			    &s->dec, s->rx->data + s->rx_off,
			    s->rx->len - s->rx_off, &used, &dlen, &bad);
			s->rx_off += used;
			if (ev == RILL__SHUT_CLOSE ||
			    ev == RILL__SHUT_SHUTDOWN_READ ||
			    ev == RILL__SHUT_BAD) {
				shut_drained(s);
				return;
			}
			continue;
		}
		rill_buf_release(s->rx);
		s->rx = NULL;
		s->rx_off = 0;
		if (s->rx_end != 0 || s->rd_end != 0) {
			/* EOF or a reset during the drain: the peer can no
			 * longer answer, which is an answer. */
			shut_drained(s);
			return;
		}
		if (s->inner_reading)
			return;
		s->inner_reading = true;
		int err = rill_read(shut_inner(s), shut_inner_read_cb, s);
		if (err != 0) {
			s->inner_reading = false;
			s->rx_end = err;
			continue;
		}
		return; /* shut_inner_read_cb resumes */
	}
}

/*
 * Decodes what there is and reads the inner flow when more is needed.
 *
 * With a user read waiting, the first payload (or the end) is handed up.
 * Without one, the layer still looks ahead: it keeps one inner read
 * outstanding and handles the control messages at the head of the stream,
 * stopping at the first data (kept for the user; so at most one inner
 * buffer is held). That is how a peer's Close or ShutdownRead makes our
 * writes fail even when the user never reads.
 *
 * Every path that hands a result to the core returns right after: the
 * core may run user code from there, which may close us.
 */
static void shut_pump(struct shut *s)
{
	if (s->closing) {
		shut_pump_drain(s);
		return;
	}
	for (;;) {
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
		if (s->rx != NULL && s->rx_off < s->rx->len) {
			size_t used, dlen;
			uint32_t bad = 0;
			struct rill__shut_dec saved = s->dec;
			int ev = rill__shut_decode(
			    &s->dec, s->rx->data + s->rx_off,
			    s->rx->len - s->rx_off, &used, &dlen, &bad);
			if (ev == RILL__SHUT_DATA && !ended && !s->want_read) {
				s->dec = saved; /* keep it for the user */
				return;
			}
			s->rx_off += used;
			if (ev == RILL__SHUT_MORE)
				continue;
			if (ev == RILL__SHUT_DATA) {
				if (ended)
					continue; /* data after EOF: dropped */
				struct rill_buf *b;
				if (dlen == s->rx->len)
					b = rill_buf_ref(s->rx);
				else
					b = rill_buf_slice(
					    s->rx, s->rx_off - dlen, dlen);
				shut_read_result(s, b != NULL ? 0 : RILL_ENOMEM,
				                 b);
				return;
			}
			if (ended && ev == RILL__SHUT_BAD)
				return; /* the stream is dead; reads ended */
			if (ended && ev != RILL__SHUT_SHUTDOWN_READ) {
				if (ev == RILL__SHUT_CLOSE) {
					s->peer_closed = true;
					shut_send_close(s);
				}
				continue;
			}
			shut_control(s, ev, bad);
			continue;
		}
		if (s->rx != NULL) {
			rill_buf_release(s->rx);
			s->rx = NULL;
			s->rx_off = 0;
		}
		if (s->rx_end != 0) {
			if (ended)
				return;
			int st = s->rx_end;
			if (st == RILL_EOF && !rill__shut_dec_idle(&s->dec)) {
				st = RILL_EFRAME;
				rill_flow_set_errmsg(
				    &s->l.base,
				    "shut: the peer hung up inside a frame "
				    "(%u payload bytes missing)",
				    (unsigned)(s->dec.need > 0
				                   ? s->dec.need
				                   : 4u - s->dec.hdr_len));
			}
			s->rd_end = st;
			continue;
		}
		if (s->inner_reading)
			return;
		s->inner_reading = true;
		int err = rill_read(shut_inner(s), shut_inner_read_cb, s);
		if (err != 0) {
			s->inner_reading = false;
			s->rx_end = err;
			continue;
		}
		return; /* shut_inner_read_cb resumes */
	}
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
	if (!s->peer_rd_shut && !s->peer_closed)
		return 0;
	rill_flow_set_errmsg(&s->l.base, "shut: the peer %s",
	                     s->peer_closed ? "closed the flow"
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
	if (s->sent_shut_rd || s->sent_close)
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
	rill_buf_release(s->rx);
	s->rx = NULL;
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
	if (s->close_timeout_ms > 0)
		uv_timer_start(&s->timer, shut_on_deadline, s->close_timeout_ms,
		               0);
	shut_send_close(s);
	if (s->peer_closed || s->peer_rd_shut || s->dec.bad || s->rx_end != 0)
		s->drained = true;
	if (s->drained) {
		shut_maybe_finish(s);
		return;
	}
	shut_pump(s);
}

/* ---------------------------------------------------------------------- */

static const struct rill_flow_ops shut_ops = {
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
