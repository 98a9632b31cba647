/* The one replaceable allocator every allocation in rill goes through. */
#include <stdlib.h>
#include <string.h>

#include "rill/impl.h"

static void *(*alloc_malloc)(size_t) = malloc;
static void *(*alloc_realloc)(void *, size_t) = realloc;
static void (*alloc_free)(void *) = free;

int rill_replace_allocator(void *(*malloc_fn)(size_t),
                           void *(*realloc_fn)(void *, size_t),
                           void (*free_fn)(void *))
{
	if (malloc_fn == NULL || realloc_fn == NULL || free_fn == NULL)
		return RILL_EINVAL;
	alloc_malloc = malloc_fn;
	alloc_realloc = realloc_fn;
	alloc_free = free_fn;
	return 0;
}

void *rill_malloc(size_t n)
{
	/* malloc(0) may return NULL legitimately; make 0 a real allocation so
	 * NULL always means "out of memory". */
	return alloc_malloc(n ? n : 1);
}

void *rill_calloc(size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	void *p = rill_malloc(n * size);
	if (p != NULL)
		memset(p, 0, n * size);
	return p;
}

void *rill_realloc(void *p, size_t n)
{
	return alloc_realloc(p, n ? n : 1);
}

void rill_free(void *p)
{
	if (p != NULL)
		alloc_free(p);
}

char *rill_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = rill_malloc(n);
	if (d != NULL)
		memcpy(d, s, n);
	return d;
}
