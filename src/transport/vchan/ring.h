/*
 * The vchan ring core: Xen's vchan_interface page layout
 * (doc/vchan-rendezvous.md section 3, xen/include/public/io/libxenvchan.h)
 * and the index and notify protocol, with no event loop and no system
 * calls, so that the fuzzer, the TSan test and the flow (flow.c) all
 * drive the same code.
 *
 * The peer is untrusted: every shared index is loaded once per operation
 * and validated against the ring size before it is used, the orders are
 * read once at attach time and validated, and the index this side owns is
 * kept in private memory (the peer may scribble on the shared copy; we
 * only ever store to it). Bytes are copied in and out: nothing outside
 * this file holds a pointer into shared memory.
 */
#ifndef RILL_VCHAN_RING_H
#define RILL_VCHAN_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RILL__VCHAN_PAGE        4096u
#define RILL__VCHAN_PAGE_SHIFT  12
#define RILL__VCHAN_SMALL_ORDER 10 /* ring at page offset 1024 */
#define RILL__VCHAN_LARGE_ORDER 11 /* ring at page offset 2048 */
#define RILL__VCHAN_XEN_MAX     20 /* Xen's cap: 1 MiB of grants */
#define RILL__VCHAN_MAX_ORDER   30 /* one host: rings up to 1 GiB */

#define RILL__VCHAN_NOTIFY_WRITE 0x1
#define RILL__VCHAN_NOTIFY_READ  0x2

#define RILL__VCHAN_LIVE_CLOSED  0
#define RILL__VCHAN_LIVE_OPEN    1
#define RILL__VCHAN_LIVE_WAITING 2

struct rill__vchan_ring_shared {
	_Atomic uint32_t cons, prod;
};

/* The shared control page, byte for byte Xen's struct vchan_interface. */
struct rill__vchan_page {
	struct rill__vchan_ring_shared left;  /* client writes, server reads */
	struct rill__vchan_ring_shared right; /* server writes, client reads */
	_Atomic uint16_t left_order, right_order;
	_Atomic uint8_t cli_live, srv_live;
	_Atomic uint8_t cli_notify, srv_notify;
	uint32_t grants[]; /* Xen grant references; unused on one host */
};

/* One direction as seen by one side. */
struct rill__vchan_ring {
	_Atomic uint32_t *cons, *prod; /* in shared memory */
	uint8_t *data;                 /* in shared memory */
	uint32_t size;                 /* power of two */
	uint32_t mine; /* private copy of the index this side owns */
};

struct rill__vchan {
	struct rill__vchan_page *page;
	size_t map_len;
	bool server;
	int rd_order, wr_order;
	struct rill__vchan_ring rd, wr;
	_Atomic uint8_t *my_live, *peer_live;
	/* Requests the peer made of us (we clear bits, then signal). */
	_Atomic uint8_t *my_notify;
	/* Requests we make of the peer (we set bits). */
	_Atomic uint8_t *peer_notify;
};

/*
 * The orders libxenvchan's server picks for rings of at least left_min
 * (client -> server) and right_min bytes: both in the page when one fits
 * in 1024 and the other in 2048 bytes, one in the page when it fits in
 * 2048, otherwise the smallest power of two >= 4096. Returns 0 or -EINVAL
 * (0 bytes, or more than 2^RILL__VCHAN_MAX_ORDER).
 */
int rill__vchan_orders(size_t left_min, size_t right_min, int *left_order,
                       int *right_order);

/* Bytes of shared memory the layout takes: the page, then the left ring
 * if it is outside the page, then the right ring if it is. */
size_t rill__vchan_map_size(int left_order, int right_order);

/* Checks a pair of orders from the peer; 0 or RILL_ERING. */
int rill__vchan_check_orders(int left_order, int right_order);

/*
 * Server side: lays out a fresh page in mem (map_size bytes, zeroed):
 * orders, both rings' indices at start_idx (a test hook; 0 normally),
 * srv_live 1 and cli_live 2 (waiting for the client).
 */
void rill__vchan_init_page(void *mem, int left_order, int right_order,
                           uint32_t start_idx);

/*
 * Reads the orders of the page once and checks them (rill__vchan_check_
 * orders): 0, or RILL_ERING (the values are still stored).
 */
int rill__vchan_read_orders(const void *page, int *left_order,
                            int *right_order);

/*
 * Attaches v to a control page and rings mapped apart (Xen grants), as
 * server or client, with orders the caller read once and checked: a ring
 * of order 10 or 11 is inside the page, a bigger one at left / right
 * (2^order bytes each; unused otherwise). Takes private copies of the
 * indices this side owns.
 */
void rill__vchan_attach_at(struct rill__vchan *v, void *page, int left_order,
                           int right_order, void *left, void *right,
                           bool server);

/*
 * Attaches v to the shared memory mem of len bytes, as server or client:
 * reads the orders once, validates them and the length (RILL_ERING
 * otherwise), and takes private copies of the indices this side owns.
 */
int rill__vchan_attach(struct rill__vchan *v, void *mem, size_t len,
                       bool server);

/* Bytes ready to read / room to write, or RILL_ERING for a bad index. */
int rill__vchan_readable(struct rill__vchan *v, uint32_t *n);
int rill__vchan_writable(struct rill__vchan *v, uint32_t *n);

/* Copies up to cap bytes out of the ring into dst (*got, possibly 0), or
 * RILL_ERING. */
int rill__vchan_read(struct rill__vchan *v, void *dst, size_t cap, size_t *got);

/* Copies up to len bytes from src into the ring (*put), or RILL_ERING. */
int rill__vchan_write(struct rill__vchan *v, const void *src, size_t len,
                      size_t *put);

/* Asks the peer to signal us when it does `bit` (WRITE: wrote data; READ:
 * consumed data). The caller must re-check the ring afterwards. */
void rill__vchan_request(struct rill__vchan *v, uint8_t bit);

/* After acting (`bit`): clears the peer's request; true when it was set,
 * and the caller must then signal the peer. */
bool rill__vchan_take_request(struct rill__vchan *v, uint8_t bit);

/* This side's live byte; the peer's live byte (read with acquire). */
void rill__vchan_set_live(struct rill__vchan *v, uint8_t live);
uint8_t rill__vchan_peer_live(struct rill__vchan *v);

#endif
