/*
 * The fixture of the shut layer's byte-level tests (test_shut,
 * test_shut_close): a shut layer over one end of a connection whose other
 * end, the raw flow, is a hand-made peer that writes and reads frames
 * byte by byte. TEST_BOTH runs a test three times, over three kinds of
 * connection, one per way the layer reads the flow below it:
 *
 *   name         a pair, read into the layer's own layout (a copy)
 *   name_unix    a Unix socket, read into the layout with readv(2)
 *   name_plain   a pair behind a pass-through layer that offers no
 *                read_into: the layer's ordinary reads and decoding
 */
#ifndef RILL_TEST_SHUT_FIXTURE_H
#define RILL_TEST_SHUT_FIXTURE_H

#include "harness.h"
#include "rill.h"

enum fx_kind { FX_PAIR, FX_UNIX, FX_PLAIN };
extern enum fx_kind fx_kind;

#define TEST_BOTH(name)                                                      \
	static void name(void);                                              \
	static void th_both_##name(void *arg)                                \
	{                                                                    \
		fx_kind = (enum fx_kind)(intptr_t)arg;                       \
		name();                                                      \
	}                                                                    \
	__attribute__((constructor)) static void th_reg_##name(void)         \
	{                                                                    \
		th_add(#name, th_both_##name, (void *)FX_PAIR, 0);           \
		th_add(#name "_unix", th_both_##name, (void *)FX_UNIX, 0);   \
		th_add(#name "_plain", th_both_##name, (void *)FX_PLAIN, 0); \
	}                                                                    \
	static void name(void)

struct fx {
	uv_loop_t loop;
	struct rill_flow *shut; /* shut layer over one end */
	struct rill_flow *raw;  /* the other end: the hand-made peer */
};

void fx_init(struct fx *x);
/* Closes what is left and checks that every handle went away. */
void fx_done(struct fx *x);

/* Reads exactly n bytes from f and compares them with want. */
void expect_bytes(struct rill_flow *f, const void *want, size_t n);
void raw_write(struct fx *x, const void *p, size_t n);
void put32(uint8_t *p, uint32_t v);
/* Reads from f until EOF or an error; returns the status, bytes in *got. */
int read_to_end(struct rill_flow *f, uint8_t *dst, size_t cap, size_t *got);

extern const uint8_t MSG_SHUT_RD[4];
extern const uint8_t MSG_SHUT_WR[4];
extern const uint8_t MSG_CLOSE[4];

#endif
