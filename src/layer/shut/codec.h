/*
 * The shut framing codec (doc/shut-framing.md): a pure decoder that never
 * allocates, shared by the shut layer and its fuzz target.
 *
 * Wire format (ocaml-hvsock Flow_shutdown, linuxkit virtsock): a stream of
 * messages, each a 4-byte little-endian u32 header. The three magic values
 * are control messages; any other value n < 2^31 is a data frame of
 * exactly n payload bytes that follow the header.
 */
#ifndef RILL_SHUT_CODEC_H
#define RILL_SHUT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/byteorder.h"

#define RILL__SHUT_MSG_SHUTDOWN_READ  0xdeadbeefu
#define RILL__SHUT_MSG_SHUTDOWN_WRITE 0xbeefdeadu
#define RILL__SHUT_MSG_CLOSE          0xdeaddeadu
#define RILL__SHUT_MAX_FRAME          4096u
/* A data length at or above this that is not a magic value is an error. */
#define RILL__SHUT_BAD_LENGTH 0x80000000u

enum rill__shut_event {
	RILL__SHUT_MORE = 0,       /* all input consumed, need more */
	RILL__SHUT_DATA,           /* payload bytes (see rill__shut_decode) */
	RILL__SHUT_SHUTDOWN_READ,  /* the peer will read no more */
	RILL__SHUT_SHUTDOWN_WRITE, /* the peer will write no more */
	RILL__SHUT_CLOSE,          /* the peer closes */
	RILL__SHUT_BAD,            /* protocol error: length >= 2^31 */
};

struct rill__shut_dec {
	uint32_t need;   /* payload bytes left in the current data frame */
	uint8_t hdr[4];  /* a header split across inputs */
	uint8_t hdr_len; /* bytes of hdr filled */
	uint8_t bad;     /* a bad header was seen: the stream is dead */
};

/*
 * Decodes from in[0..len) and returns the first event found; *used is the
 * number of bytes consumed (the caller resumes at in + *used).
 *   RILL__SHUT_MORE   *used == len; the input ends inside a header or
 *                     between messages (see rill__shut_dec_idle).
 *   RILL__SHUT_DATA   *data_len (>= 1) payload bytes, the last *data_len
 *                     bytes of the consumed range. A frame longer than the
 *                     input arrives in several DATA events.
 *   control events    the 4 header bytes were consumed.
 *   RILL__SHUT_BAD    *bad_value holds the header; every later call
 *                     returns RILL__SHUT_BAD again, consuming nothing.
 * Zero-length data frames are skipped silently. Never reads outside in.
 */
int rill__shut_decode(struct rill__shut_dec *d, const uint8_t *in, size_t len,
                      size_t *used, size_t *data_len, uint32_t *bad_value);

/* True when the decoder stands between two messages (EOF is clean here). */
static inline int rill__shut_dec_idle(const struct rill__shut_dec *d)
{
	return d->need == 0 && d->hdr_len == 0 && !d->bad;
}

/* The little-endian u32 at p[0..4) (core/byteorder.h). */
static inline uint32_t rill__shut_get_le32(const uint8_t *p)
{
	return rill__get_le32(p);
}

/* Stores v little-endian in out[0..4). */
static inline void rill__shut_put_le32(uint8_t *out, uint32_t v)
{
	rill__put_le32(out, v);
}

#endif
