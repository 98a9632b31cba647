/*
 * rill/metrics.h - counters, gauges and histograms in the Prometheus text
 * exposition format (version 0.0.4).
 * Included by rill.h; do not include directly.
 *
 * A registry (struct rill_metrics) holds metric families. A family has a
 * name, a help text, a type and a fixed list of label names; each list of
 * label values makes one series of it (struct rill_metric). Values are
 * kept in shards (struct rill_metrics_shard), one per thread that counts:
 * a shard has a single writer, so counting is a plain load, add and store
 * (relaxed atomics, no lock, no locked instruction), and rendering sums
 * the shards. Render whenever a scraper asks (rill_metrics_render).
 *
 * Threads: rill_metrics_family, rill_metrics_series, rill_metrics_shard,
 * rill_metrics_callback, rill_metrics_add_process and rill_metrics_render
 * take the registry's lock and may be called from any thread. The
 * counting calls (rill_metric_add, rill_metric_gauge_add,
 * rill_metric_observe) take no lock: each shard must be used by one
 * thread at a time. Every handle lives until rill_metrics_free.
 *
 * Errors are negative, as everywhere in rill: RILL_EINVAL (bad name, bad
 * arguments), RILL_ENOMEM, -EEXIST (a family of that name exists already
 * with another type, labels or buckets), -ENOSPC (the registry's value
 * slots are used up, see rill_metrics_new).
 *
 * Example (error checks left out):
 *
 *   struct rill_metrics *m;
 *   struct rill_metrics_family *reqs;
 *   const struct rill_metric *ok;
 *   struct rill_metrics_shard *s;
 *   const char *labels[] = {"code"}, *values[] = {"2xx"};
 *   rill_metrics_new(0, &m);
 *   rill_metrics_family(m, RILL_METRIC_COUNTER, "app_requests_total",
 *                       "Requests answered.", labels, 1, NULL, 0, &reqs);
 *   rill_metrics_series(reqs, values, &ok);
 *   rill_metrics_shard(m, &s);          (once per thread)
 *   rill_metric_add(s, ok, 1);          (on that thread, lock-free)
 *   struct rill_buf *text;
 *   rill_metrics_render(m, &text);      (any thread; serve it over HTTP)
 */
#ifndef RILL_METRICS_H
#define RILL_METRICS_H

#ifdef __cplusplus
extern "C" {
#endif

struct rill_metrics;
struct rill_metrics_family;
struct rill_metrics_shard;
struct rill_metric;

enum rill_metric_type {
	RILL_METRIC_COUNTER,   /* only goes up; rendered as an integer */
	RILL_METRIC_GAUGE,     /* goes up and down (the shards' sum) */
	RILL_METRIC_HISTOGRAM, /* observations in cumulative buckets */
};

/* The Content-Type of rill_metrics_render's text. */
#define RILL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Bucket bounds (seconds) that suit connection and request durations. */
#define RILL_METRICS_SECONDS_BUCKETS                                        \
	{                                                                   \
		0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, \
		    0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600             \
	}

/*
 * A new empty registry. max_slots bounds the values it can hold (a
 * counter or gauge series takes one slot, a histogram series one per
 * bucket plus two); 0 means 4096. Every shard allocates 8 bytes per slot.
 * Returns 0 and *out, or RILL_ENOMEM.
 */
RILL_EXTERN int rill_metrics_new(size_t max_slots, struct rill_metrics **out);

/* Frees m with every family, series and shard of it. NULL is a no-op. */
RILL_EXTERN void rill_metrics_free(struct rill_metrics *m);

/*
 * Registers a family, or finds the one registered under name with the
 * same type, labels and buckets (then *out is that one).
 * name: [a-zA-Z_:][a-zA-Z0-9_:]*; help: any text (escaped when
 * rendered); labels: nlabels names [a-zA-Z_][a-zA-Z0-9_]*, not starting
 * with "__", not "le" for a histogram (at most 8). bounds: for a
 * histogram, nbounds finite upper bounds in increasing order (at most
 * 64; the +Inf bucket is added); NULL/0 for other types. The strings are
 * copied. Returns 0 and *out, or RILL_EINVAL, -EEXIST, RILL_ENOMEM.
 */
RILL_EXTERN int rill_metrics_family(struct rill_metrics *m,
                                    enum rill_metric_type type,
                                    const char *name, const char *help,
                                    const char *const *labels, size_t nlabels,
                                    const double *bounds, size_t nbounds,
                                    struct rill_metrics_family **out);

/*
 * The series of f for one list of label values (as many as f has label
 * names; NULL when it has none). The same values give the same series.
 * Values are any bytes (they are escaped when rendered; invalid UTF-8
 * is rendered as U+FFFD), but every distinct value costs memory for the
 * registry's life: never use an unbounded, client-chosen string. A
 * series is rendered (with value 0) as soon as it exists.
 * Returns 0 and *out, or RILL_EINVAL, RILL_ENOMEM, -ENOSPC.
 */
RILL_EXTERN int rill_metrics_series(struct rill_metrics_family *f,
                                    const char *const *values,
                                    const struct rill_metric **out);

/*
 * A new shard of m for one thread's counting. It lives (and its counts
 * stay in the sums) until rill_metrics_free. Returns 0 and *out, or
 * RILL_ENOMEM.
 */
RILL_EXTERN int rill_metrics_shard(struct rill_metrics *m,
                                   struct rill_metrics_shard **out);

/*
 * Counting, on the thread that owns s; no lock and no locked
 * instruction. A NULL s or metric is a no-op, so that code can count
 * unconditionally whether metrics are on or not.
 * rill_metric_add: a counter (or gauge) series goes up by n.
 * rill_metric_gauge_add: a gauge series moves by delta.
 * rill_metric_observe: a histogram series records v (a NaN is ignored).
 * Using a series of the wrong type is a no-op.
 */
RILL_EXTERN void rill_metric_add(struct rill_metrics_shard *s,
                                 const struct rill_metric *c, uint64_t n);
RILL_EXTERN void rill_metric_gauge_add(struct rill_metrics_shard *s,
                                       const struct rill_metric *g,
                                       int64_t delta);
RILL_EXTERN void rill_metric_observe(struct rill_metrics_shard *s,
                                     const struct rill_metric *h, double v);

/*
 * A family without labels whose value fn(ud) computes at each render
 * (under the registry's lock; fn must not call back into m). type is
 * RILL_METRIC_COUNTER or RILL_METRIC_GAUGE; the value may have a
 * fraction. ud must stay valid until rill_metrics_free.
 * Returns 0, RILL_EINVAL, -EEXIST or RILL_ENOMEM.
 */
RILL_EXTERN int rill_metrics_callback(struct rill_metrics *m,
                                      enum rill_metric_type type,
                                      const char *name, const char *help,
                                      double (*fn)(void *ud), void *ud);

/*
 * Registers the standard process metrics of Prometheus's client
 * libraries, read from /proc and getrusage(2) at each render:
 * process_cpu_seconds_total, process_open_fds, process_max_fds,
 * process_virtual_memory_bytes, process_resident_memory_bytes and
 * process_start_time_seconds. Returns 0 or an error of
 * rill_metrics_callback.
 */
RILL_EXTERN int rill_metrics_add_process(struct rill_metrics *m);

/*
 * Renders every family of m in the text exposition format, the shards
 * summed, families in the order they were registered and series in the
 * order they were made. Returns 0 and *out (a new buffer the caller
 * releases), or RILL_ENOMEM.
 */
RILL_EXTERN int rill_metrics_render(struct rill_metrics *m,
                                    struct rill_buf **out);

#ifdef __cplusplus
}
#endif

#endif /* RILL_METRICS_H */
