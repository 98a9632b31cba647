/* Recycled read buffers of vchan flows (see pool.h). */
#include "core/core.h"
#include "transport/vchan/pool.h"

#define VCHAN_POOL_DEPTH 4

struct rill__vchan_pool {
	unsigned refs; /* the flow's, and one per buffer out */
	bool flow_gone;
	int nfree;
	void *free[VCHAN_POOL_DEPTH];
};

static void vchan_pool_unref(struct rill__vchan_pool *p)
{
	if (--p->refs > 0)
		return;
	for (int i = 0; i < p->nfree; i++)
		rill_free(p->free[i]);
	rill_free(p);
}

static void vchan_pool_give_back(void *ctx, void *mem)
{
	struct rill__vchan_pool *p = ctx;
	if (!p->flow_gone && p->nfree < VCHAN_POOL_DEPTH)
		p->free[p->nfree++] = mem;
	else
		rill_free(mem);
	vchan_pool_unref(p);
}

struct rill_buf *rill__vchan_pool_buf(struct rill__vchan_pool **pool, size_t n)
{
	if (n < RILL__VCHAN_POOL_MIN)
		return rill_buf_new(n);
	if (*pool == NULL) {
		*pool = rill_calloc(1, sizeof **pool);
		if (*pool == NULL)
			return rill_buf_new(n);
		(*pool)->refs = 1; /* the flow's */
	}
	struct rill__vchan_pool *p = *pool;
	void *mem = p->nfree > 0 ? p->free[--p->nfree]
	                         : rill_malloc(RILL__VCHAN_READ_MAX);
	if (mem == NULL)
		return NULL;
	struct rill_buf *b = rill_buf_wrap(mem, n, vchan_pool_give_back, p);
	if (b == NULL) {
		rill_free(mem);
		return NULL;
	}
	p->refs++;
	return b;
}

void rill__vchan_pool_drop(struct rill__vchan_pool **pool)
{
	struct rill__vchan_pool *p = *pool;
	if (p == NULL)
		return;
	p->flow_gone = true;
	for (int i = 0; i < p->nfree; i++)
		rill_free(p->free[i]);
	p->nfree = 0;
	*pool = NULL;
	vchan_pool_unref(p);
}
