/*
 * Listener groups: the acceptor hands each accepted fd to the next member
 * in turn (round robin, the acceptor included), through a queue under the
 * group's lock and a uv_async_t that wakes the member's loop. See
 * spread.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "core/spread.h"

struct rill__spread {
	pthread_mutex_t lock;
	struct rill__spread_member *members; /* the ring the turns go round */
	struct rill__spread_member *turn;    /* next to get a connection */
	unsigned refs;                       /* members, the acceptor's too */
	bool acceptor_left;
};

static void spread_free(struct rill__spread *g)
{
	pthread_mutex_destroy(&g->lock);
	rill_free(g);
}

int rill__spread_open(struct rill__spread_member *m, uv_loop_t *loop)
{
	memset(m, 0, sizeof *m);
	struct rill__spread *g = rill_calloc(1, sizeof *g);
	if (g == NULL)
		return RILL_ENOMEM;
	pthread_mutex_init(&g->lock, NULL);
	g->members = g->turn = m;
	g->refs = 1;
	m->group = g;
	m->loop = loop;
	return 0;
}

/* Takes the fds queued for m (on m's loop). */
static void spread_on_async(uv_async_t *h)
{
	struct rill__spread_member *m = h->data;
	if (m->group == NULL)
		return;
	pthread_mutex_lock(&m->group->lock);
	int *fds = m->fds;
	size_t n = m->nfds;
	m->fds = NULL;
	m->nfds = m->cap = 0;
	pthread_mutex_unlock(&m->group->lock);
	for (size_t i = 0; i < n; i++) {
		if (m->group != NULL)
			m->take(m, fds[i]); /* may leave the group */
		else
			close(fds[i]);
	}
	rill_free(fds);
}

int rill__spread_join(struct rill__spread_member *m,
                      struct rill__spread_member *acceptor, uv_loop_t *loop,
                      void (*take)(struct rill__spread_member *m, int fd),
                      void (*left)(struct rill__spread_member *m))
{
	memset(m, 0, sizeof *m);
	struct rill__spread *g = acceptor->group;
	if (g == NULL)
		return RILL_ECLOSED;
	int err = uv_async_init(loop, &m->async, spread_on_async);
	if (err != 0)
		return err;
	m->async.data = m;
	m->loop = loop;
	m->take = take;
	m->left = left;
	m->joined = true;
	pthread_mutex_lock(&g->lock);
	if (g->acceptor_left) {
		pthread_mutex_unlock(&g->lock);
		uv_close((uv_handle_t *)&m->async, NULL);
		return RILL_ECLOSED;
	}
	m->group = g;
	m->next = g->members;
	g->members = m;
	g->refs++;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

bool rill__spread_hand(struct rill__spread_member *acceptor, int fd)
{
	struct rill__spread *g = acceptor->group;
	pthread_mutex_lock(&g->lock);
	struct rill__spread_member *m = g->turn;
	g->turn = m->next != NULL ? m->next : g->members;
	if (m == acceptor) {
		pthread_mutex_unlock(&g->lock);
		return false;
	}
	if (m->nfds == m->cap) {
		size_t cap = m->cap > 0 ? m->cap * 2 : 16;
		int *fds = rill_realloc(m->fds, cap * sizeof *fds);
		if (fds == NULL) {
			pthread_mutex_unlock(&g->lock);
			return false; /* the acceptor takes it after all */
		}
		m->fds = fds;
		m->cap = cap;
	}
	m->fds[m->nfds++] = fd;
	uv_async_send(&m->async);
	pthread_mutex_unlock(&g->lock);
	return true;
}

static void spread_async_closed(uv_handle_t *h)
{
	struct rill__spread_member *m = h->data;
	if (m->left != NULL)
		m->left(m);
}

void rill__spread_leave(struct rill__spread_member *m)
{
	struct rill__spread *g = m->group;
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->lock);
	struct rill__spread_member **p = &g->members;
	while (*p != NULL && *p != m)
		p = &(*p)->next;
	if (*p == m)
		*p = m->next;
	if (g->turn == m)
		g->turn = m->next != NULL ? m->next : g->members;
	if (!m->joined)
		g->acceptor_left = true;
	int *fds = m->fds;
	size_t n = m->nfds;
	m->fds = NULL;
	m->nfds = m->cap = 0;
	bool free_it = --g->refs == 0;
	pthread_mutex_unlock(&g->lock);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	rill_free(fds);
	m->group = NULL;
	m->next = NULL;
	if (free_it)
		spread_free(g);
	if (m->joined)
		uv_close((uv_handle_t *)&m->async, spread_async_closed);
}
