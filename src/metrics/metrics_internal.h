/*
 * The metrics registry's internals, shared by src/metrics/ only:
 *
 *   registry.c  families, series, shards, and the counting calls
 *   render.c    the text exposition format: sums over the shards, escapes
 *   process.c   the process_* metrics from /proc and getrusage(2)
 *
 * Every value of every series has a slot number; each shard holds one
 * 64-bit cell per slot of the registry (allocated whole when the shard is
 * made, so a series made later needs no change to any shard). A cell has
 * one writer, the shard's thread, which updates it with a relaxed load
 * and a relaxed store: on x86-64 and arm64 these are plain moves, and
 * the renderer's relaxed loads on another thread see a whole value
 * (never a torn one) without any data race in C11's sense. A counter or
 * gauge series has one slot; a histogram series has one slot per bucket
 * (non-cumulative counts; +Inf last) and one for the sum (a double's
 * bits). Its count is the sum of its buckets, so the rendered _count
 * always equals the +Inf bucket.
 */
#ifndef RILL_METRICS_INTERNAL_H
#define RILL_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "rill/impl.h"

#define METRICS_MAX_LABELS    8
#define METRICS_MAX_BOUNDS    64
#define METRICS_SLOTS_DEFAULT 4096

struct rill_metric {
	struct rill_metrics_family *family;
	struct rill_metric *next; /* the family's series, in order */
	uint32_t slot;            /* the first slot */
	char **values;            /* one per label name */
};

struct rill_metrics_family {
	struct rill_metrics *m;
	struct rill_metrics_family *next; /* the registry's, in order */
	enum rill_metric_type type;
	char *name, *help;
	char **labels;
	size_t nlabels;
	double *bounds;
	size_t nbounds;
	struct rill_metric *series, *last;
	/* A callback family (rill_metrics_callback): no series. */
	double (*fn)(void *ud);
	void *ud;
};

struct rill_metrics_shard {
	struct rill_metrics_shard *next;
	_Atomic uint64_t *cells; /* max_slots of them */
};

struct rill_metrics {
	pthread_mutex_t lock;
	size_t max_slots, used_slots;
	struct rill_metrics_family *families, *last;
	struct rill_metrics_shard *shards;
};

/* Slots one series of f takes. */
size_t rill__metrics_series_slots(const struct rill_metrics_family *f);

/* The shards' sum of one cell (under the registry's lock). */
uint64_t rill__metrics_sum(struct rill_metrics *m, size_t slot);

/* The sum of a histogram's sum cell over the shards. */
double rill__metrics_sum_double(struct rill_metrics *m, size_t slot);

#endif /* RILL_METRICS_INTERNAL_H */
