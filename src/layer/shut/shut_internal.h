/*
 * The shut layer's state, shared by shut.c (framing, control messages,
 * the close handshake) and scatter.c (scatter reads). Internal.
 */
#ifndef RILL_SHUT_INTERNAL_H
#define RILL_SHUT_INTERNAL_H

#include "rill/impl.h"
#include "layer/shut/codec.h"

/* Payload bytes and buffers per rill_writev to the inner flow. */
#define SHUT_BATCH_BYTES (256u * 1024u)
#define SHUT_BATCH_ENTS  256u
/* Raw bytes read past data the user has not read, looking for a Close. */
#define SHUT_AHEAD_BYTES (256u * 1024u)
#define SHUT_RAW_MAX     8u
/* Scatter reads: payload room per buffer, frames per read, and the frame
 * lengths they are used for. */
#define SHUT_SG_ROOM      (256u * 1024u)
#define SHUT_SG_MIN_ROOM  (64u * 1024u)
#define SHUT_SG_FRAMES    64u
#define SHUT_SG_MIN_FRAME 1024u
#define SHUT_SG_MAX_FRAME (64u * 1024u)

struct shut {
	struct rill_layer l;
	struct rill__shut_dec dec;

	/* Reading: the inner buffers received and not yet decoded (raw[0]
	 * from rx_off on), and what comes after. */
	struct rill_buf *raw[SHUT_RAW_MAX];
	size_t n_raw;
	size_t rx_off;
	struct rill_buf *ready; /* payload of a scatter read, next in line */
	int rx_end;             /* inner read ended: RILL_EOF or an error */
	int rd_end;             /* our read side ended: RILL_EOF or an error */
	bool inner_reading;     /* a rill_read on the inner flow is pending */
	bool want_read;         /* ops->read awaits a result */

	/* Looking past unread data for a Close or ShutdownRead (shut_scan). */
	struct rill__shut_dec scan_dec;
	size_t scan_idx, scan_off;
	bool scan_valid, scan_done;

	/* Scatter reads (shut_sg_prepare): payload straight into s->pl. */
	bool sg_ok;      /* the inner flow may take them */
	bool sg_pending; /* the inner read in flight is one */
	uint8_t sg_backoff;
	uint32_t sg_flen; /* the frame length expected */
	unsigned sg_frames;
	size_t sg_first;
	struct rill_buf *pl; /* the buffer of the scatter read in flight */
	struct rill_read_into sg_ri;

	/* What the peer told us, and what we told it. */
	bool peer_wr_shut;
	bool peer_rd_shut;
	bool peer_closed;
	bool peer_close_seen; /* a Close found behind unread data */
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

/* Queues a raw (still framed) inner buffer for the decoder. */
static inline void rill__shut_raw_push(struct shut *s, struct rill_buf *b)
{
	s->raw[s->n_raw++] = b;
}

/*
 * Scatter reads (scatter.c). rill__shut_sg_usable: the next inner
 * read can be one. rill__shut_sg_get / _unget: the layout callbacks of
 * s->sg_ri. rill__shut_sg_done: the read brought n bytes (payload into
 * s->ready, whatever breaks the pattern back into the raw queue).
 */
bool rill__shut_sg_usable(const struct shut *s);
bool rill__shut_sg_get(struct rill_read_into *ri);
void rill__shut_sg_unget(struct rill_read_into *ri);
void rill__shut_sg_done(struct shut *s, size_t n);

#endif
