/*
 * The vchan ring core (see ring.h). Orders, offsets and the notify
 * protocol follow Xen's tools/libs/vchan (init.c, io.c) and the layout of
 * xen/include/public/io/libxenvchan.h; the code is written here.
 */
#include <errno.h>
#include <string.h>

#include "rill.h"
#include "transport/vchan/ring.h"

/* The layout of doc/vchan-rendezvous.md section 3, exactly. */
_Static_assert(offsetof(struct rill__vchan_page, left.cons) == 0, "layout");
_Static_assert(offsetof(struct rill__vchan_page, left.prod) == 4, "layout");
_Static_assert(offsetof(struct rill__vchan_page, right.cons) == 8, "layout");
_Static_assert(offsetof(struct rill__vchan_page, right.prod) == 12, "layout");
_Static_assert(offsetof(struct rill__vchan_page, left_order) == 16, "layout");
_Static_assert(offsetof(struct rill__vchan_page, right_order) == 18, "layout");
_Static_assert(offsetof(struct rill__vchan_page, cli_live) == 20, "layout");
_Static_assert(offsetof(struct rill__vchan_page, srv_live) == 21, "layout");
_Static_assert(offsetof(struct rill__vchan_page, cli_notify) == 22, "layout");
_Static_assert(offsetof(struct rill__vchan_page, srv_notify) == 23, "layout");
_Static_assert(offsetof(struct rill__vchan_page, grants) == 24, "layout");
_Static_assert(sizeof(struct rill__vchan_page) == 24, "layout");
/* The atomics must be plain lock-free words for another process (or
 * another language) to share them. */
_Static_assert(sizeof(_Atomic uint32_t) == 4 && sizeof(_Atomic uint16_t) == 2 &&
                   sizeof(_Atomic uint8_t) == 1,
               "atomic sizes");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_CHAR_LOCK_FREE == 2,
               "lock-free atomics");

#define VCHAN_SMALL_OFFSET 1024u
#define VCHAN_LARGE_OFFSET 2048u

static int vchan_min_order(size_t n)
{
	int o = RILL__VCHAN_PAGE_SHIFT;
	while (o <= RILL__VCHAN_MAX_ORDER && ((size_t)1 << o) < n)
		o++;
	return o;
}

int rill__vchan_orders(size_t left_min, size_t right_min, int *left_order,
                       int *right_order)
{
	const size_t max = (size_t)1 << RILL__VCHAN_MAX_ORDER;
	const size_t small = (size_t)1 << RILL__VCHAN_SMALL_ORDER;
	const size_t large = (size_t)1 << RILL__VCHAN_LARGE_ORDER;
	if (left_min == 0 || right_min == 0 || left_min > max ||
	    right_min > max)
		return -EINVAL;
	int lo = vchan_min_order(left_min);
	int ro = vchan_min_order(right_min);
	/* libxenvchan_server_init: use the free space of the control page
	 * when the rings are small enough. */
	if (left_min <= small && right_min <= large) {
		lo = RILL__VCHAN_SMALL_ORDER;
		ro = RILL__VCHAN_LARGE_ORDER;
	} else if (left_min <= large && right_min <= small) {
		lo = RILL__VCHAN_LARGE_ORDER;
		ro = RILL__VCHAN_SMALL_ORDER;
	} else if (left_min <= large) {
		lo = RILL__VCHAN_LARGE_ORDER;
	} else if (right_min <= large) {
		ro = RILL__VCHAN_LARGE_ORDER;
	}
	*left_order = lo;
	*right_order = ro;
	return 0;
}

static size_t vchan_outside(int order)
{
	return order >= RILL__VCHAN_PAGE_SHIFT ? (size_t)1 << order : 0;
}

size_t rill__vchan_map_size(int left_order, int right_order)
{
	return RILL__VCHAN_PAGE + vchan_outside(left_order) +
	       vchan_outside(right_order);
}

static bool vchan_order_ok(int o)
{
	return o == RILL__VCHAN_SMALL_ORDER || o == RILL__VCHAN_LARGE_ORDER ||
	       (o >= RILL__VCHAN_PAGE_SHIFT && o <= RILL__VCHAN_MAX_ORDER);
}

int rill__vchan_check_orders(int left_order, int right_order)
{
	if (!vchan_order_ok(left_order) || !vchan_order_ok(right_order))
		return RILL_ERING;
	/* Two rings at the same offset in the page would overlap. */
	if (left_order == right_order && left_order < RILL__VCHAN_PAGE_SHIFT)
		return RILL_ERING;
	return 0;
}

void rill__vchan_init_page(void *mem, int left_order, int right_order,
                           uint32_t start_idx)
{
	struct rill__vchan_page *p = mem;
	atomic_store_explicit(&p->left.cons, start_idx, memory_order_relaxed);
	atomic_store_explicit(&p->left.prod, start_idx, memory_order_relaxed);
	atomic_store_explicit(&p->right.cons, start_idx, memory_order_relaxed);
	atomic_store_explicit(&p->right.prod, start_idx, memory_order_relaxed);
	atomic_store_explicit(&p->left_order, (uint16_t)left_order,
	                      memory_order_relaxed);
	atomic_store_explicit(&p->right_order, (uint16_t)right_order,
	                      memory_order_relaxed);
	atomic_store_explicit(&p->cli_notify, 0, memory_order_relaxed);
	atomic_store_explicit(&p->srv_notify, 0, memory_order_relaxed);
	atomic_store_explicit(&p->cli_live, RILL__VCHAN_LIVE_WAITING,
	                      memory_order_relaxed);
	atomic_store_explicit(&p->srv_live, RILL__VCHAN_LIVE_OPEN,
	                      memory_order_release);
}

/* The data of a ring of `order`: inside the page, or `outside`. */
static uint8_t *vchan_ring_data(uint8_t *page, int order, uint8_t *outside)
{
	if (order == RILL__VCHAN_SMALL_ORDER)
		return page + VCHAN_SMALL_OFFSET;
	if (order == RILL__VCHAN_LARGE_ORDER)
		return page + VCHAN_LARGE_OFFSET;
	return outside;
}

void rill__vchan_attach_at(struct rill__vchan *v, void *page, int left_order,
                           int right_order, void *left, void *right,
                           bool server)
{
	struct rill__vchan_page *p = page;
	memset(v, 0, sizeof *v);
	struct rill__vchan_ring lring = {
	    .cons = &p->left.cons,
	    .prod = &p->left.prod,
	    .data = vchan_ring_data(page, left_order, left),
	    .size = (uint32_t)1 << left_order,
	};
	struct rill__vchan_ring rring = {
	    .cons = &p->right.cons,
	    .prod = &p->right.prod,
	    .data = vchan_ring_data(page, right_order, right),
	    .size = (uint32_t)1 << right_order,
	};
	v->page = p;
	v->server = server;
	if (server) {
		v->rd = lring;
		v->wr = rring;
		v->rd_order = left_order;
		v->wr_order = right_order;
		v->my_live = &p->srv_live;
		v->peer_live = &p->cli_live;
		v->my_notify = &p->srv_notify;
		v->peer_notify = &p->cli_notify;
	} else {
		v->rd = rring;
		v->wr = lring;
		v->rd_order = right_order;
		v->wr_order = left_order;
		v->my_live = &p->cli_live;
		v->peer_live = &p->srv_live;
		v->my_notify = &p->cli_notify;
		v->peer_notify = &p->srv_notify;
	}
	v->rd.mine = atomic_load_explicit(v->rd.cons, memory_order_relaxed);
	v->wr.mine = atomic_load_explicit(v->wr.prod, memory_order_relaxed);
}

int rill__vchan_read_orders(const void *page, int *left_order, int *right_order)
{
	const struct rill__vchan_page *p = page;
	/* Read once: the peer may change them later, we never look again. */
	*left_order =
	    atomic_load_explicit(&p->left_order, memory_order_acquire);
	*right_order =
	    atomic_load_explicit(&p->right_order, memory_order_acquire);
	return rill__vchan_check_orders(*left_order, *right_order);
}

int rill__vchan_attach(struct rill__vchan *v, void *mem, size_t len,
                       bool server)
{
	memset(v, 0, sizeof *v);
	if (len < RILL__VCHAN_PAGE)
		return RILL_ERING;
	int lo, ro;
	if (rill__vchan_read_orders(mem, &lo, &ro) != 0 ||
	    rill__vchan_map_size(lo, ro) > len)
		return RILL_ERING;
	/* One mapping: the page, then the left ring if it is outside the
	 * page, then the right ring if it is. */
	uint8_t *left = (uint8_t *)mem + RILL__VCHAN_PAGE;
	uint8_t *right = left + vchan_outside(lo);
	rill__vchan_attach_at(v, mem, lo, ro, left, right, server);
	v->map_len = len;
	return 0;
}

int rill__vchan_readable(struct rill__vchan *v, uint32_t *n)
{
	/* Acquire: the bytes the peer wrote before publishing prod. */
	uint32_t prod = atomic_load_explicit(v->rd.prod, memory_order_acquire);
	uint32_t ready = prod - v->rd.mine;
	if (ready > v->rd.size)
		return RILL_ERING;
	*n = ready;
	return 0;
}

int rill__vchan_writable(struct rill__vchan *v, uint32_t *n)
{
	/* Acquire: the peer finished reading what it released. */
	uint32_t cons = atomic_load_explicit(v->wr.cons, memory_order_acquire);
	uint32_t used = v->wr.mine - cons;
	if (used > v->wr.size)
		return RILL_ERING;
	*n = v->wr.size - used;
	return 0;
}

int rill__vchan_read(struct rill__vchan *v, void *dst, size_t cap, size_t *got)
{
	uint32_t ready;
	*got = 0;
	int err = rill__vchan_readable(v, &ready);
	if (err != 0)
		return err;
	size_t n = ready < cap ? ready : cap;
	if (n == 0)
		return 0;
	uint32_t pos = v->rd.mine & (v->rd.size - 1);
	size_t first = v->rd.size - pos;
	if (first > n)
		first = n;
	memcpy(dst, v->rd.data + pos, first);
	memcpy((uint8_t *)dst + first, v->rd.data, n - first);
	v->rd.mine += (uint32_t)n;
	/* Release: our copy-out is done before the peer may overwrite. */
	atomic_store_explicit(v->rd.cons, v->rd.mine, memory_order_release);
	*got = n;
	return 0;
}

int rill__vchan_write(struct rill__vchan *v, const void *src, size_t len,
                      size_t *put)
{
	uint32_t room;
	*put = 0;
	int err = rill__vchan_writable(v, &room);
	if (err != 0)
		return err;
	size_t n = room < len ? room : len;
	if (n == 0)
		return 0;
	uint32_t pos = v->wr.mine & (v->wr.size - 1);
	size_t first = v->wr.size - pos;
	if (first > n)
		first = n;
	memcpy(v->wr.data + pos, src, first);
	memcpy(v->wr.data, (const uint8_t *)src + first, n - first);
	v->wr.mine += (uint32_t)n;
	/* Release: the bytes are in place before the peer sees prod. */
	atomic_store_explicit(v->wr.prod, v->wr.mine, memory_order_release);
	*put = n;
	return 0;
}

/*
 * The no-lost-wake-up argument (Dekker): the waiter sets its request bit
 * and then re-reads the index; the actor publishes its index and then
 * reads-and-clears the bit. With a seq_cst fence between the two steps on
 * both sides, at least one of them sees the other's first step: either
 * the waiter sees the new index and does not sleep, or the actor sees the
 * bit and signals.
 */
void rill__vchan_request(struct rill__vchan *v, uint8_t bit)
{
	atomic_fetch_or_explicit(v->peer_notify, bit, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
}

bool rill__vchan_take_request(struct rill__vchan *v, uint8_t bit)
{
	atomic_thread_fence(memory_order_seq_cst);
	/* Cheap test first: the common case in a busy stream is "no
	 * request", and a plain load avoids a locked RMW per write. */
	if (!(atomic_load_explicit(v->my_notify, memory_order_seq_cst) & bit))
		return false;
	uint8_t prev = atomic_fetch_and_explicit(v->my_notify, (uint8_t)~bit,
	                                         memory_order_seq_cst);
	return (prev & bit) != 0;
}

void rill__vchan_set_live(struct rill__vchan *v, uint8_t live)
{
	atomic_store_explicit(v->my_live, live, memory_order_seq_cst);
}

uint8_t rill__vchan_peer_live(struct rill__vchan *v)
{
	return atomic_load_explicit(v->peer_live, memory_order_acquire);
}
