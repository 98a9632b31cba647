/*
 * Fuzz target: the shut frame decoder (doc/shut-framing.md) on hostile
 * input. The input is decoded twice, once whole and once cut into pieces
 * whose sizes come from the input itself; both runs must yield the same
 * events and the same payload bytes, and no DATA event may claim bytes
 * outside its input. ASan catches any read past the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layer/shut/codec.h"

struct trace {
	uint8_t *data; /* payload bytes, concatenated */
	size_t ndata;
	uint8_t ev[4096]; /* control events, in order */
	size_t nev;
	uint32_t bad;
	int end_idle;
};

static void trace_run(const uint8_t *in, size_t len, const size_t *cuts,
                      size_t ncuts, struct trace *t)
{
	struct rill__shut_dec d = {0};
	size_t pos = 0, c = 0;
	while (pos < len) {
		size_t chunk = len - pos;
		if (ncuts > 0) {
			chunk = cuts[c++ % ncuts];
			if (chunk > len - pos)
				chunk = len - pos;
		}
		const uint8_t *p = in + pos;
		size_t left = chunk;
		while (left > 0) {
			size_t used, dlen;
			uint32_t bad = 0;
			int ev =
			    rill__shut_decode(&d, p, left, &used, &dlen, &bad);
			if (used > left)
				abort();
			if (ev == RILL__SHUT_DATA) {
				if (dlen == 0 || dlen > used)
					abort();
				memcpy(t->data + t->ndata, p + used - dlen,
				       dlen);
				t->ndata += dlen;
			} else if (ev == RILL__SHUT_MORE) {
				if (used != left)
					abort();
			} else if (ev == RILL__SHUT_BAD) {
				t->bad = bad;
				if (t->nev < sizeof t->ev)
					t->ev[t->nev++] = (uint8_t)ev;
				t->end_idle = -1;
				return; /* the stream is dead */
			} else if (t->nev < sizeof t->ev) {
				t->ev[t->nev++] = (uint8_t)ev;
			}
			p += used;
			left -= used;
		}
		pos += chunk;
	}
	t->end_idle = rill__shut_dec_idle(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	/* First byte: how to cut the second run (1..16 bytes per piece,
	 * from the next bytes' low bits). */
	size_t ncuts = (size_t)(data[0] % 8) + 1;
	size_t cuts[8];
	for (size_t i = 0; i < ncuts; i++)
		cuts[i] = (size_t)(data[0] >> 3) % 16 + 1 + i;
	const uint8_t *in = data + 1;
	size_t len = size - 1;
	struct trace *a = calloc(1, sizeof *a);
	struct trace *b = calloc(1, sizeof *b);
	a->data = malloc(len + 1);
	b->data = malloc(len + 1);
	trace_run(in, len, NULL, 0, a);
	trace_run(in, len, cuts, ncuts, b);
	if (a->ndata != b->ndata || memcmp(a->data, b->data, a->ndata) != 0 ||
	    a->nev != b->nev || memcmp(a->ev, b->ev, a->nev) != 0 ||
	    a->bad != b->bad || a->end_idle != b->end_idle)
		abort();
	if (a->ndata > len)
		abort();
	free(a->data);
	free(b->data);
	free(a);
	free(b);
	return 0;
}
