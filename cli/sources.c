/* Live connections per source (see sources.h): a small hash table under
 * one mutex; taken once per accepted and once per ended connection. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sources.h"

#define SOURCES_BUCKETS 256

struct source {
	struct source *next;
	uint64_t n;
	char key[CLI_SOURCE_MAX];
};

struct cli_sources {
	pthread_mutex_t lock;
	struct source *bucket[SOURCES_BUCKETS];
};

struct cli_sources *cli_sources_new(void)
{
	struct cli_sources *s = calloc(1, sizeof *s);
	if (s != NULL)
		pthread_mutex_init(&s->lock, NULL);
	return s;
}

/* FNV-1a: the keys are the peers' addresses, which they choose only
 * within their own range; the table holds at most the live connections,
 * so a skewed spread costs time, never memory. */
static struct source **sources_slot(struct cli_sources *s, const char *key)
{
	uint32_t h = 2166136261u;
	for (const char *p = key; *p != '\0'; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	struct source **pp = &s->bucket[h % SOURCES_BUCKETS];
	while (*pp != NULL && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

bool cli_sources_take(struct cli_sources *s, const char *key, uint64_t max)
{
	bool ok = false;
	pthread_mutex_lock(&s->lock);
	struct source **pp = sources_slot(s, key);
	if (*pp == NULL && max > 0 && strlen(key) < CLI_SOURCE_MAX) {
		*pp = calloc(1, sizeof **pp);
		if (*pp != NULL)
			memcpy((*pp)->key, key, strlen(key) + 1);
	}
	if (*pp != NULL && (*pp)->n < max) {
		(*pp)->n++;
		ok = true;
	}
	pthread_mutex_unlock(&s->lock);
	return ok;
}

void cli_sources_drop(struct cli_sources *s, const char *key)
{
	pthread_mutex_lock(&s->lock);
	struct source **pp = sources_slot(s, key);
	struct source *e = *pp;
	if (e != NULL && --e->n == 0) {
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&s->lock);
}

void cli_sources_free(struct cli_sources *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < SOURCES_BUCKETS; i++) {
		while (s->bucket[i] != NULL) {
			struct source *e = s->bucket[i];
			s->bucket[i] = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
}
