/*
 * Read chunks: the large buffers a transport reads into and hands out
 * slices of (socket.c). Two things make them cheap to hold and to give
 * back:
 *
 *  - Recycling. A chunk's memory returns to a small per-thread cache when
 *    its last reference goes, and the next chunk comes from there, so a
 *    busy flow that gives its chunk back every time a read has to wait
 *    costs no 256 KiB malloc/free (with glibc's default thresholds each
 *    would be an mmap/munmap pair and fresh page faults). The cache holds
 *    at most CHUNK_CACHE_MAX chunks per thread; it is emptied when the
 *    last chunk user of the process goes (so that once every flow is
 *    closed, nothing rill allocated stays live) and by a pthread key
 *    destructor when its thread exits.
 *
 *  - Parking. An owner whose reads wait (an idle connection) drops its
 *    reference at once, even while the reader still holds slices: the
 *    memory then goes back as soon as the last slice does, without the
 *    owner having to hear about it. Until then the owner keeps a weak
 *    pointer and takes the chunk back on its next read, so its free space
 *    is used as before (a reader that holds many small slices does not
 *    pin one chunk per slice).
 *
 * Like every buffer, a chunk is used by one thread at a time.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "core/core.h"

#define CHUNK_CACHE_MAX 4

struct chunk_cache {
	void *mem[CHUNK_CACHE_MAX];
	int n;
	bool keyed; /* registered with the thread-exit destructor */
};

static _Thread_local struct chunk_cache chunk_cache;
static pthread_once_t chunk_once = PTHREAD_ONCE_INIT;
static pthread_key_t chunk_key;
static bool chunk_key_ok;
/* Chunk users (transport flows) alive in the process. */
static atomic_long chunk_users;

static void chunk_mem_free(void *mem);

static void cache_empty(struct chunk_cache *c)
{
	while (c->n > 0)
		chunk_mem_free(c->mem[--c->n]);
}

static void cache_thread_exit(void *p)
{
	struct chunk_cache *c = p;
	cache_empty(c);
	c->keyed = false;
}

static void cache_key_init(void)
{
	chunk_key_ok = pthread_key_create(&chunk_key, cache_thread_exit) == 0;
}

/* The rill_buf free function of every chunk; ctx is the owner's weak
 * pointer while the chunk is parked. */
static void chunk_gone(void *ctx, void *mem)
{
	if (ctx != NULL)
		*(struct rill_buf **)ctx = NULL;
	struct chunk_cache *c = &chunk_cache;
	if (c->n < CHUNK_CACHE_MAX &&
	    atomic_load_explicit(&chunk_users, memory_order_relaxed) > 0) {
		if (!c->keyed) {
			pthread_once(&chunk_once, cache_key_init);
			c->keyed = chunk_key_ok &&
			           pthread_setspecific(chunk_key, c) == 0;
		}
		if (c->keyed) {
			c->mem[c->n++] = mem;
			return;
		}
	}
	chunk_mem_free(mem);
}

/*
 * Chunk memory starts on a cache-line boundary: reads copy into it, and
 * copy_to_user into a destination 16 bytes off a line (what a large malloc
 * returns) measured ~6 % slower on a Unix socket. The allocation's own
 * address is kept just before the aligned start.
 */
static void *chunk_mem_alloc(void)
{
	uint8_t *raw = rill_malloc(RILL__CHUNK_ALLOC);
	if (raw == NULL)
		return NULL;
	uintptr_t a =
	    ((uintptr_t)raw + sizeof(void *) + RILL__CHUNK_ALIGN - 1) &
	    ~(uintptr_t)(RILL__CHUNK_ALIGN - 1);
	((void **)a)[-1] = raw;
	return (void *)a;
}

static void chunk_mem_free(void *mem)
{
	rill_free(((void **)mem)[-1]);
}

struct rill_buf *rill__chunk_new(void)
{
	struct chunk_cache *c = &chunk_cache;
	void *mem = c->n > 0 ? c->mem[--c->n] : chunk_mem_alloc();
	if (mem == NULL)
		return NULL;
	struct rill_buf *b =
	    rill_buf_wrap(mem, RILL__CHUNK_SIZE, chunk_gone, NULL);
	if (b == NULL)
		chunk_gone(NULL, mem);
	return b;
}

void rill__chunk_park(struct rill_buf **chunk, struct rill_buf **parked)
{
	struct rill_buf *b = *chunk;
	if (b == NULL)
		return;
	*chunk = NULL;
	*parked = b;
	b->free_ctx_ = parked;
	rill_buf_release(b); /* the last reference: chunk_gone clears *parked */
}

struct rill_buf *rill__chunk_unpark(struct rill_buf **parked)
{
	struct rill_buf *b = *parked;
	if (b == NULL)
		return NULL;
	*parked = NULL;
	b->free_ctx_ = NULL;
	return rill_buf_ref(b);
}

void rill__chunk_forget(struct rill_buf **parked)
{
	if (*parked != NULL)
		(*parked)->free_ctx_ = NULL;
	*parked = NULL;
}

void rill__chunk_user_add(void)
{
	atomic_fetch_add_explicit(&chunk_users, 1, memory_order_relaxed);
}

void rill__chunk_user_drop(void)
{
	if (atomic_fetch_sub_explicit(&chunk_users, 1, memory_order_relaxed) ==
	    1)
		cache_empty(&chunk_cache);
}

void rill__chunk_cache_empty(void)
{
	cache_empty(&chunk_cache);
}

size_t rill__chunk_cached(void)
{
	return (size_t)chunk_cache.n;
}
