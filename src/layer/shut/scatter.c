/*
 * The shut layer's scatter reads (see shut.c): when the flow below reads
 * into a layout (rill_read_into: sockets with one readv, the in-memory
 * pair), the layer lays out the next read so that the payloads of frames
 * of the expected length land side by side in one buffer, and the 4-byte
 * headers elsewhere. The reader then gets the payload without a copy in
 * user space.
 */
#include <string.h>
#include <sys/uio.h>

#include "layer/shut/shut_internal.h"

/*
 * The payload buffer of scatter reads: payload room first, then the
 * header slots and the iovec array of the read in flight (the reader's
 * slices never reach past the room).
 */
#define SG_HDRS_OFF SHUT_SG_ROOM
#define SG_IOV_OFF  (SHUT_SG_ROOM + 4u * SHUT_SG_FRAMES)
#define SG_BUF_LEN \
	(SG_IOV_OFF + (2u * SHUT_SG_FRAMES + 1u) * sizeof(struct iovec))

bool rill__shut_sg_usable(const struct shut *s)
{
	return s->sg_ok && s->sg_backoff == 0 &&
	       s->sg_flen >= SHUT_SG_MIN_FRAME &&
	       s->sg_flen <= SHUT_SG_MAX_FRAME && s->want_read &&
	       s->ready == NULL && s->n_raw == 0 && s->dec.hdr_len == 0 &&
	       !s->dec.bad;
}

/*
 * Lays out the next read (the flow below calls this right before it reads;
 * a socket with one readv): the rest of the current frame's payload, then
 * (header slot, sg_flen payload bytes) pairs, all payload contiguous in a
 * fresh s->pl. A frame of another length breaks the pattern; sg_done
 * then rebuilds the raw bytes from that point (rare: a sender's last frame
 * of a write, a control message).
 */
/* Where the payload of s->pl starts: its first cache-line boundary (the
 * kernel copies into it; a misaligned destination measured slower). */
static size_t shut_sg_start(const struct shut *s)
{
	return (64u - ((uintptr_t)s->pl->data & 63u)) & 63u;
}

bool rill__shut_sg_get(struct rill_read_into *ri)
{
	struct shut *s = rill_container_of(ri, struct shut, sg_ri);
	rill_buf_release(s->pl);
	s->pl = rill_buf_new(SG_BUF_LEN + 64); /* + room to align */
	if (s->pl == NULL)
		return false;
	uint8_t *room = s->pl->data + shut_sg_start(s);
	size_t left = SHUT_SG_ROOM;
	uint8_t *hdrs = room + SG_HDRS_OFF;
	struct iovec *iov = (struct iovec *)(void *)(room + SG_IOV_OFF);
	int n = 0;
	size_t pos = s->dec.need < left ? s->dec.need : left;
	size_t total = pos;
	s->sg_first = pos;
	if (pos > 0)
		iov[n++] = (struct iovec){room, pos};
	unsigned k = 0;
	while (k < SHUT_SG_FRAMES && pos + s->sg_flen <= left) {
		iov[n++] = (struct iovec){hdrs + 4u * k, 4};
		iov[n++] = (struct iovec){room + pos, s->sg_flen};
		pos += s->sg_flen;
		total += 4u + s->sg_flen;
		k++;
	}
	s->sg_frames = k;
	ri->owner = s->pl;
	ri->iov = iov;
	ri->iovcnt = n;
	ri->total = total;
	return true;
}

/* The read found nothing: a flow waiting for data holds no buffer. */
void rill__shut_sg_unget(struct rill_read_into *ri)
{
	struct shut *s = rill_container_of(ri, struct shut, sg_ri);
	rill_buf_release(s->pl);
	s->pl = NULL;
}

/*
 * A scatter read brought n bytes: payload lands in s->ready; from the
 * first header that is not a data frame of sg_flen bytes on, the bytes
 * are put back together into one raw buffer for the ordinary decoder.
 */
void rill__shut_sg_done(struct shut *s, size_t n)
{
	uint8_t *room = s->pl->data + shut_sg_start(s);
	const uint8_t *hdrs = room + SG_HDRS_OFF;
	size_t flen = s->sg_flen, payload = 0, rem = n;
	size_t take = rem < s->sg_first ? rem : s->sg_first;
	payload += take;
	rem -= take;
	s->dec.need -= (uint32_t)take;
	for (unsigned k = 0; rem > 0 && k < s->sg_frames; k++) {
		const uint8_t *h = hdrs + 4u * k;
		if (rem < 4) { /* the stream ends inside a header */
			memcpy(s->dec.hdr, h, rem);
			s->dec.hdr_len = (uint8_t)rem;
			rem = 0;
			break;
		}
		uint32_t v = rill__shut_get_le32(h);
		if (v != flen) {
			/* Rebuild [header k][region k][header k+1]... */
			struct rill_buf *raw = rill_buf_new(rem);
			if (raw == NULL) {
				s->rx_end = RILL_ENOMEM;
				break;
			}
			size_t o = 0;
			for (unsigned j = k; o < rem; j++) {
				size_t c = rem - o < 4 ? rem - o : 4;
				memcpy(raw->data + o, hdrs + 4u * j, c);
				o += c;
				c = rem - o < flen ? rem - o : flen;
				memcpy(raw->data + o,
				       room + payload + (j - k) * flen, c);
				o += c;
			}
			rill__shut_raw_push(s, raw);
			s->sg_backoff = 1;
			rem = 0;
			break;
		}
		rem -= 4;
		take = rem < flen ? rem : flen;
		payload += take;
		rem -= take;
		s->dec.need = (uint32_t)(flen - take);
	}
	if (payload > 0) {
		s->ready = rill_buf_slice(s->pl, shut_sg_start(s), payload);
		if (s->ready == NULL)
			s->rx_end = RILL_ENOMEM;
	}
	/* The payload keeps the buffer alive as long as the user holds it. */
	rill_buf_release(s->pl);
	s->pl = NULL;
}
