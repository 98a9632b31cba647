/*
 * The metrics registry: families, series, shards, and counting. See
 * metrics_internal.h for how values are laid out and why counting needs
 * no lock.
 */
#include <math.h>
#include <string.h>

#include "metrics/metrics_internal.h"

int rill_metrics_new(size_t max_slots, struct rill_metrics **out)
{
	if (out == NULL)
		return RILL_EINVAL;
	*out = NULL;
	struct rill_metrics *m = rill_calloc(1, sizeof *m);
	if (m == NULL)
		return RILL_ENOMEM;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		rill_free(m);
		return RILL_ENOMEM;
	}
	m->max_slots = max_slots > 0 ? max_slots : METRICS_SLOTS_DEFAULT;
	*out = m;
	return 0;
}

static void metrics_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		rill_free(v[i]);
	rill_free(v);
}

static void metrics_family_free(struct rill_metrics_family *f)
{
	struct rill_metric *s = f->series;
	while (s != NULL) {
		struct rill_metric *next = s->next;
		metrics_strv_free(s->values, f->nlabels);
		rill_free(s);
		s = next;
	}
	metrics_strv_free(f->labels, f->nlabels);
	rill_free(f->bounds);
	rill_free(f->name);
	rill_free(f->help);
	rill_free(f);
}

void rill_metrics_free(struct rill_metrics *m)
{
	if (m == NULL)
		return;
	struct rill_metrics_family *f = m->families;
	while (f != NULL) {
		struct rill_metrics_family *next = f->next;
		metrics_family_free(f);
		f = next;
	}
	struct rill_metrics_shard *s = m->shards;
	while (s != NULL) {
		struct rill_metrics_shard *next = s->next;
		rill_free(s->cells);
		rill_free(s);
		s = next;
	}
	pthread_mutex_destroy(&m->lock);
	rill_free(m);
}

/* Prometheus's data model: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * names [a-zA-Z_][a-zA-Z0-9_]* (prometheus.io/docs/concepts/data_model). */
static bool metrics_name_ok(const char *s, bool colon)
{
	if (s == NULL || *s == '\0')
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		             c == '_' || (colon && c == ':');
		if (!alpha && !(p > s && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool metrics_labels_ok(enum rill_metric_type type,
                              const char *const *labels, size_t n)
{
	if (n > METRICS_MAX_LABELS || (n > 0 && labels == NULL))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!metrics_name_ok(labels[i], false) ||
		    strncmp(labels[i], "__", 2) == 0 ||
		    (type == RILL_METRIC_HISTOGRAM &&
		     strcmp(labels[i], "le") == 0))
			return false;
		for (size_t k = 0; k < i; k++)
			if (strcmp(labels[i], labels[k]) == 0)
				return false;
	}
	return true;
}

static bool metrics_bounds_ok(enum rill_metric_type type, const double *b,
                              size_t n)
{
	if (type != RILL_METRIC_HISTOGRAM)
		return n == 0;
	if (n > METRICS_MAX_BOUNDS || (n > 0 && b == NULL))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
			return false;
	return true;
}

static struct rill_metrics_family *metrics_find(struct rill_metrics *m,
                                                const char *name)
{
	for (struct rill_metrics_family *f = m->families; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* Whether an existing family f is the one described. */
static bool metrics_same(const struct rill_metrics_family *f,
                         enum rill_metric_type type, const char *const *labels,
                         size_t nlabels, const double *bounds, size_t nbounds)
{
	if (f->fn != NULL || f->type != type || f->nlabels != nlabels ||
	    f->nbounds != nbounds)
		return false;
	for (size_t i = 0; i < nlabels; i++)
		if (strcmp(f->labels[i], labels[i]) != 0)
			return false;
	return nbounds == 0 ||
	       memcmp(f->bounds, bounds, nbounds * sizeof *bounds) == 0;
}

static char **metrics_strv_dup(const char *const *v, size_t n)
{
	char **out = rill_calloc(n > 0 ? n : 1, sizeof *out);
	for (size_t i = 0; out != NULL && i < n; i++) {
		out[i] = rill_strdup(v[i]);
		if (out[i] == NULL) {
			metrics_strv_free(out, i);
			return NULL;
		}
	}
	return out;
}

/* A new family, not yet linked. */
static struct rill_metrics_family *
metrics_family_make(enum rill_metric_type type, const char *name,
                    const char *help, const char *const *labels, size_t nlabels,
                    const double *bounds, size_t nbounds)
{
	struct rill_metrics_family *f = rill_calloc(1, sizeof *f);
	if (f == NULL)
		return NULL;
	f->type = type;
	f->nlabels = nlabels;
	f->nbounds = nbounds;
	f->name = rill_strdup(name);
	f->help = rill_strdup(help != NULL ? help : "");
	f->labels = metrics_strv_dup(labels, nlabels);
	f->bounds = rill_calloc(nbounds > 0 ? nbounds : 1, sizeof *f->bounds);
	if (f->name == NULL || f->help == NULL || f->labels == NULL ||
	    f->bounds == NULL) {
		metrics_family_free(f);
		return NULL;
	}
	if (nbounds > 0)
		memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
	return f;
}

static void metrics_link(struct rill_metrics *m, struct rill_metrics_family *f)
{
	f->m = m;
	if (m->last != NULL)
		m->last->next = f;
	else
		m->families = f;
	m->last = f;
}

int rill_metrics_family(struct rill_metrics *m, enum rill_metric_type type,
                        const char *name, const char *help,
                        const char *const *labels, size_t nlabels,
                        const double *bounds, size_t nbounds,
                        struct rill_metrics_family **out)
{
	if (out != NULL)
		*out = NULL;
	if (m == NULL || out == NULL || type > RILL_METRIC_HISTOGRAM ||
	    !metrics_name_ok(name, true) ||
	    !metrics_labels_ok(type, labels, nlabels) ||
	    !metrics_bounds_ok(type, bounds, nbounds))
		return RILL_EINVAL;
	pthread_mutex_lock(&m->lock);
	int err = 0;
	struct rill_metrics_family *f = metrics_find(m, name);
	if (f != NULL) {
		if (!metrics_same(f, type, labels, nlabels, bounds, nbounds))
			err = -EEXIST;
	} else {
		f = metrics_family_make(type, name, help, labels, nlabels,
		                        bounds, nbounds);
		if (f == NULL)
			err = RILL_ENOMEM;
		else
			metrics_link(m, f);
	}
	pthread_mutex_unlock(&m->lock);
	if (err == 0)
		*out = f;
	return err;
}

int rill_metrics_callback(struct rill_metrics *m, enum rill_metric_type type,
                          const char *name, const char *help,
                          double (*fn)(void *ud), void *ud)
{
	if (m == NULL || fn == NULL ||
	    (type != RILL_METRIC_COUNTER && type != RILL_METRIC_GAUGE) ||
	    !metrics_name_ok(name, true))
		return RILL_EINVAL;
	pthread_mutex_lock(&m->lock);
	int err = 0;
	if (metrics_find(m, name) != NULL) {
		err = -EEXIST;
	} else {
		struct rill_metrics_family *f =
		    metrics_family_make(type, name, help, NULL, 0, NULL, 0);
		if (f == NULL) {
			err = RILL_ENOMEM;
		} else {
			f->fn = fn;
			f->ud = ud;
			metrics_link(m, f);
		}
	}
	pthread_mutex_unlock(&m->lock);
	return err;
}

size_t rill__metrics_series_slots(const struct rill_metrics_family *f)
{
	return f->type == RILL_METRIC_HISTOGRAM ? f->nbounds + 2 : 1;
}

static struct rill_metric *metrics_series_find(struct rill_metrics_family *f,
                                               const char *const *values)
{
	for (struct rill_metric *s = f->series; s != NULL; s = s->next) {
		size_t i = 0;
		while (i < f->nlabels && strcmp(s->values[i], values[i]) == 0)
			i++;
		if (i == f->nlabels)
			return s;
	}
	return NULL;
}

int rill_metrics_series(struct rill_metrics_family *f,
                        const char *const *values,
                        const struct rill_metric **out)
{
	if (out != NULL)
		*out = NULL;
	if (f == NULL || out == NULL || f->fn != NULL ||
	    (f->nlabels > 0 && values == NULL))
		return RILL_EINVAL;
	for (size_t i = 0; i < f->nlabels; i++)
		if (values[i] == NULL)
			return RILL_EINVAL;
	struct rill_metrics *m = f->m;
	pthread_mutex_lock(&m->lock);
	int err = 0;
	struct rill_metric *s = metrics_series_find(f, values);
	size_t need = rill__metrics_series_slots(f);
	if (s == NULL && m->max_slots - m->used_slots < need) {
		err = -ENOSPC;
	} else if (s == NULL) {
		s = rill_calloc(1, sizeof *s);
		if (s != NULL)
			s->values = metrics_strv_dup(values, f->nlabels);
		if (s == NULL || s->values == NULL) {
			rill_free(s);
			s = NULL;
			err = RILL_ENOMEM;
		} else {
			s->family = f;
			s->slot = (uint32_t)m->used_slots;
			m->used_slots += need;
			if (f->last != NULL)
				f->last->next = s;
			else
				f->series = s;
			f->last = s;
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (err == 0)
		*out = s;
	return err;
}

int rill_metrics_shard(struct rill_metrics *m, struct rill_metrics_shard **out)
{
	if (out != NULL)
		*out = NULL;
	if (m == NULL || out == NULL)
		return RILL_EINVAL;
	struct rill_metrics_shard *s = rill_calloc(1, sizeof *s);
	if (s != NULL)
		s->cells = rill_calloc(m->max_slots, sizeof *s->cells);
	if (s == NULL || s->cells == NULL) {
		rill_free(s);
		return RILL_ENOMEM;
	}
	for (size_t i = 0; i < m->max_slots; i++)
		atomic_init(&s->cells[i], 0);
	pthread_mutex_lock(&m->lock);
	s->next = m->shards;
	m->shards = s;
	pthread_mutex_unlock(&m->lock);
	*out = s;
	return 0;
}

/* The one writer's update: a relaxed load and store, no locked
 * read-modify-write (see metrics_internal.h). */
static inline void metrics_cell_add(_Atomic uint64_t *cell, uint64_t n)
{
	uint64_t v = atomic_load_explicit(cell, memory_order_relaxed);
	atomic_store_explicit(cell, v + n, memory_order_relaxed);
}

void rill_metric_add(struct rill_metrics_shard *s, const struct rill_metric *c,
                     uint64_t n)
{
	if (s == NULL || c == NULL || c->family->type == RILL_METRIC_HISTOGRAM)
		return;
	metrics_cell_add(&s->cells[c->slot], n);
}

void rill_metric_gauge_add(struct rill_metrics_shard *s,
                           const struct rill_metric *g, int64_t delta)
{
	if (s == NULL || g == NULL || g->family->type != RILL_METRIC_GAUGE)
		return;
	/* Two's complement: the shards' sum, read back as int64_t, is the
	 * sum of the deltas. */
	metrics_cell_add(&s->cells[g->slot], (uint64_t)delta);
}

void rill_metric_observe(struct rill_metrics_shard *s,
                         const struct rill_metric *h, double v)
{
	if (s == NULL || h == NULL ||
	    h->family->type != RILL_METRIC_HISTOGRAM || isnan(v))
		return;
	const struct rill_metrics_family *f = h->family;
	size_t b = 0;
	while (b < f->nbounds && v > f->bounds[b])
		b++;
	metrics_cell_add(&s->cells[h->slot + b], 1);
	_Atomic uint64_t *sum = &s->cells[h->slot + f->nbounds + 1];
	uint64_t bits = atomic_load_explicit(sum, memory_order_relaxed);
	double d;
	memcpy(&d, &bits, sizeof d);
	d += v;
	memcpy(&bits, &d, sizeof bits);
	atomic_store_explicit(sum, bits, memory_order_relaxed);
}

uint64_t rill__metrics_sum(struct rill_metrics *m, size_t slot)
{
	uint64_t sum = 0;
	for (struct rill_metrics_shard *s = m->shards; s != NULL; s = s->next)
		sum +=
		    atomic_load_explicit(&s->cells[slot], memory_order_relaxed);
	return sum;
}

double rill__metrics_sum_double(struct rill_metrics *m, size_t slot)
{
	double sum = 0;
	for (struct rill_metrics_shard *s = m->shards; s != NULL; s = s->next) {
		uint64_t bits =
		    atomic_load_explicit(&s->cells[slot], memory_order_relaxed);
		double d;
		memcpy(&d, &bits, sizeof d);
		sum += d;
	}
	return sum;
}
