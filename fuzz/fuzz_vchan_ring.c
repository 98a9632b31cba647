/*
 * Fuzz target: the vchan ring core against a hostile peer. The input is
 * the shared memory a peer controls: the first 24 bytes become the
 * control page header (indices, orders, live and notify bytes), one byte
 * picks the size of the mapping, and the rest is a script that
 * interleaves our reads and writes with the peer rewriting any shared
 * index between them. The ring must never touch memory outside the
 * mapping (ASan: the mapping is a heap block of exactly its size), never
 * report more bytes than the ring or the caller's buffer holds, and turn
 * every bad index into RILL_ERING.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"
/* Through its internal header: the libFuzzer binary compiles the ring
 * core's source beside this file (fuzz_cover in fuzz/meson.build), so
 * that libFuzzer's coverage instrumentation sees it (the library is built
 * without it); the replay program links it from the static library. */
#include "transport/vchan/ring.h"

#define FUZZ_CHECK(c)                     \
	do {                              \
		if (!(c))                 \
			__builtin_trap(); \
	} while (0)

static uint32_t fuzz_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 26)
		return 0;
	/* Mapping sizes that fit orders 10..14 in various combinations,
	 * and some that are one byte short. */
	static const size_t lens[] = {
	    4096,         4096 + 4096,        4096 + 8192, 4096 + 4096 + 4096,
	    4096 + 16384, 4096 + 8192 + 8192, 4095,        4096 + 4096 + 4095,
	    4096 + 32768, 4096 + 16384 + 4096};
	size_t len = lens[data[24] % (sizeof lens / sizeof lens[0])];
	bool server = data[25] & 1;
	uint8_t *mem = calloc(1, len);
	if (mem == NULL)
		return 0;
	memcpy(mem, data, len < 24 ? len : 24);
	data += 26;
	size -= 26;
	struct rill__vchan v;
	if (rill__vchan_attach(&v, mem, len, server) != 0) {
		free(mem);
		return 0;
	}
	FUZZ_CHECK(v.rd.size >= 1024 && v.wr.size >= 1024);
	uint8_t buf[70000];
	memset(buf, 0x5a, sizeof buf);
	struct rill__vchan_page *page = (void *)mem;
	_Atomic uint32_t *idx[4] = {&page->left.cons, &page->left.prod,
	                            &page->right.cons, &page->right.prod};
	while (size >= 2) {
		uint8_t op = data[0], arg = data[1];
		data += 2;
		size -= 2;
		size_t n = (size_t)arg * 263;
		size_t got;
		uint32_t avail;
		int err;
		switch (op % 7) {
		case 0:
			err = rill__vchan_read(&v, buf, n, &got);
			FUZZ_CHECK(err == 0 || err == RILL_ERING);
			FUZZ_CHECK(got <= n && got <= v.rd.size);
			break;
		case 1:
			err = rill__vchan_write(&v, buf, n, &got);
			FUZZ_CHECK(err == 0 || err == RILL_ERING);
			FUZZ_CHECK(got <= n && got <= v.wr.size);
			break;
		case 2: /* the peer rewrites a shared index */
			if (size >= 4) {
				atomic_store(idx[arg & 3], fuzz_u32(data));
				data += 4;
				size -= 4;
			}
			break;
		case 3:
			err = rill__vchan_readable(&v, &avail);
			FUZZ_CHECK(err == RILL_ERING ||
			           (err == 0 && avail <= v.rd.size));
			break;
		case 4:
			err = rill__vchan_writable(&v, &avail);
			FUZZ_CHECK(err == RILL_ERING ||
			           (err == 0 && avail <= v.wr.size));
			break;
		case 5:
			rill__vchan_request(&v, arg & 3);
			(void)rill__vchan_take_request(&v, (arg >> 2) & 3);
			break;
		case 6: /* the peer rewrites orders/live/notify: ignored */
			mem[16 + (arg & 7)] = (uint8_t)(arg * 31);
			(void)rill__vchan_peer_live(&v);
			break;
		}
	}
	free(mem);
	return 0;
}
