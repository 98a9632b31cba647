/* The shut frame decoder; see codec.h for the wire format. */
#include "layer/shut/codec.h"

int rill__shut_decode(struct rill__shut_dec *d, const uint8_t *in, size_t len,
                      size_t *used, size_t *data_len, uint32_t *bad_value)
{
	size_t i = 0;
	*data_len = 0;
	if (d->bad) {
		*used = 0;
		*bad_value = rill__shut_get_le32(d->hdr);
		return RILL__SHUT_BAD;
	}
	for (;;) {
		if (d->need > 0) {
			size_t k = len - i;
			if (k == 0) {
				*used = i;
				return RILL__SHUT_MORE;
			}
			if (k > d->need)
				k = d->need;
			d->need -= (uint32_t)k;
			i += k;
			*used = i;
			*data_len = k;
			return RILL__SHUT_DATA;
		}
		while (d->hdr_len < 4 && i < len)
			d->hdr[d->hdr_len++] = in[i++];
		if (d->hdr_len < 4) {
			*used = i;
			return RILL__SHUT_MORE;
		}
		uint32_t v = rill__shut_get_le32(d->hdr);
		*used = i;
		switch (v) {
		case RILL__SHUT_MSG_SHUTDOWN_READ:
			d->hdr_len = 0;
			return RILL__SHUT_SHUTDOWN_READ;
		case RILL__SHUT_MSG_SHUTDOWN_WRITE:
			d->hdr_len = 0;
			return RILL__SHUT_SHUTDOWN_WRITE;
		case RILL__SHUT_MSG_CLOSE:
			d->hdr_len = 0;
			return RILL__SHUT_CLOSE;
		default: break;
		}
		if (v >= RILL__SHUT_BAD_LENGTH) {
			/* hdr keeps the bad header for later calls. */
			d->bad = 1;
			*bad_value = v;
			return RILL__SHUT_BAD;
		}
		d->hdr_len = 0;
		d->need = v; /* 0: an empty frame, skipped by looping on */
	}
}
