/*
 * Large read buffers that go back to a per-thread cache when their last
 * reference is released, instead of to the allocator.
 *
 * A fast reader takes one buffer of a few hundred KiB per read and
 * releases it a moment later; through malloc that is an mmap/munmap or a
 * heap trim now and then, and cold memory each time. From the cache it is
 * the same warm memory again. The cache is small (RILL__BIGBUF_CACHE
 * buffers per thread), so flows that go idle give their buffers back and
 * cost nothing while idle. A thread's cache is freed when the thread
 * exits.
 */
#include <pthread.h>

#include "core.h"

#define RILL__BIGBUF_CACHE 4

struct bigbuf_cache {
	int n;
	size_t len[RILL__BIGBUF_CACHE];
	void *mem[RILL__BIGBUF_CACHE];
};

static _Thread_local struct bigbuf_cache cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_drop(void *arg)
{
	struct bigbuf_cache *c = arg;
	while (c->n > 0) {
		c->n--;
		rill_free(c->mem[c->n]);
	}
}

static void cache_key_make(void)
{
	(void)pthread_key_create(&cache_key, cache_drop);
}

static void bigbuf_free(void *ctx, void *mem)
{
	size_t len = (size_t)(uintptr_t)ctx;
	struct bigbuf_cache *c = &cache;
	if (c->n < RILL__BIGBUF_CACHE) {
		/* Registering the key makes thread exit free the cache. */
		pthread_once(&cache_once, cache_key_make);
		if (c->n == 0)
			(void)pthread_setspecific(cache_key, c);
		c->mem[c->n] = mem;
		c->len[c->n] = len;
		c->n++;
		return;
	}
	rill_free(mem);
}

struct rill_buf *rill__bigbuf_new(size_t len)
{
	struct bigbuf_cache *c = &cache;
	void *mem = NULL;
	for (int i = c->n - 1; i >= 0; i--) {
		if (c->len[i] == len) {
			mem = c->mem[i];
			c->mem[i] = c->mem[c->n - 1];
			c->len[i] = c->len[c->n - 1];
			c->n--;
			break;
		}
	}
	if (mem == NULL)
		mem = rill_malloc(len);
	if (mem == NULL)
		return NULL;
	struct rill_buf *b =
	    rill_buf_wrap(mem, len, bigbuf_free, (void *)(uintptr_t)len);
	if (b == NULL)
		bigbuf_free((void *)(uintptr_t)len, mem);
	return b;
}
