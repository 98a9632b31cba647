/*
 * The metrics registry (include/rill/metrics.h): families and series,
 * counting in shards on several threads summed at render, histograms,
 * the exposition text's escaping of hostile label values (quotes,
 * backslashes, line feeds, invalid UTF-8), and every error.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "rill.h"

/* The rendered text of m as a NUL-terminated string (free it). */
static char *render(struct rill_metrics *m)
{
	struct rill_buf *b = NULL;
	TH_OK(rill_metrics_render(m, &b));
	char *s = malloc(b->len + 1);
	memcpy(s, b->data, b->len);
	s[b->len] = '\0';
	rill_buf_release(b);
	return s;
}

TEST(counter_gauge_render)
{
	struct rill_metrics *m;
	struct rill_metrics_family *reqs, *temp;
	const struct rill_metric *ok, *bad, *ok2, *t;
	struct rill_metrics_shard *s;
	const char *labels[] = {"code", "path"};
	const char *v_ok[] = {"2xx", "/"}, *v_bad[] = {"5xx", "/"};
	TH_OK(rill_metrics_new(0, &m));
	TH_OK(rill_metrics_family(m, RILL_METRIC_COUNTER, "app_requests_total",
	                          "Requests.\nSecond line \\ here.", labels, 2,
	                          NULL, 0, &reqs));
	TH_OK(rill_metrics_series(reqs, v_ok, &ok));
	TH_OK(rill_metrics_series(reqs, v_bad, &bad));
	TH_OK(rill_metrics_series(reqs, v_ok, &ok2));
	TH_TRUE(ok == ok2);
	TH_TRUE(ok != bad);
	TH_OK(rill_metrics_family(m, RILL_METRIC_GAUGE, "app_temp", "T", NULL,
	                          0, NULL, 0, &temp));
	TH_OK(rill_metrics_series(temp, NULL, &t));
	TH_OK(rill_metrics_shard(m, &s));
	rill_metric_add(s, ok, 41);
	rill_metric_add(s, ok, 1);
	rill_metric_gauge_add(s, t, 5);
	rill_metric_gauge_add(s, t, -12);
	/* No-ops: NULL shard or series, wrong type. */
	rill_metric_add(NULL, ok, 1);
	rill_metric_add(s, NULL, 1);
	rill_metric_gauge_add(s, ok, 100);
	rill_metric_observe(s, ok, 1.0);
	char *text = render(m);
	TH_EQ_STR(text,
	          "# HELP app_requests_total Requests.\\nSecond line \\\\ "
	          "here.\n"
	          "# TYPE app_requests_total counter\n"
	          "app_requests_total{code=\"2xx\",path=\"/\"} 42\n"
	          "app_requests_total{code=\"5xx\",path=\"/\"} 0\n"
	          "# HELP app_temp T\n"
	          "# TYPE app_temp gauge\n"
	          "app_temp -7\n");
	free(text);
	rill_metrics_free(m);
}

TEST(hostile_label_values)
{
	struct rill_metrics *m;
	struct rill_metrics_family *f;
	const struct rill_metric *s;
	const char *labels[] = {"target"};
	/* A quote, a backslash, a line feed, a lone continuation byte, a
	 * truncated sequence, an overlong '/', a surrogate, and a valid
	 * two-byte character. */
	const char *v[] = {"a\"b\\c\nd\x80"
	                   "e\xc3"
	                   "f\xc0\xaf"
	                   "g\xed\xa0\x80"
	                   "h\xc3\xa9"};
	TH_OK(rill_metrics_new(0, &m));
	TH_OK(rill_metrics_family(m, RILL_METRIC_COUNTER, "x_total", "", labels,
	                          1, NULL, 0, &f));
	TH_OK(rill_metrics_series(f, v, &s));
	char *text = render(m);
	TH_CONTAINS(text, "x_total{target=\"a\\\"b\\\\c\\nd\xef\xbf\xbd"
	                  "e\xef\xbf\xbd"
	                  "f\xef\xbf\xbd\xef\xbf\xbd"
	                  "g\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	                  "h\xc3\xa9\"} 0\n");
	free(text);
	rill_metrics_free(m);
}

TEST(histogram_cumulative)
{
	struct rill_metrics *m;
	struct rill_metrics_family *f;
	const struct rill_metric *h;
	struct rill_metrics_shard *s;
	const double bounds[] = {0.5, 1, 10};
	TH_OK(rill_metrics_new(0, &m));
	TH_OK(rill_metrics_family(m, RILL_METRIC_HISTOGRAM, "lat_seconds",
	                          "Latency.", NULL, 0, bounds, 3, &f));
	TH_OK(rill_metrics_series(f, NULL, &h));
	TH_OK(rill_metrics_shard(m, &s));
	rill_metric_observe(s, h, 0.25);
	rill_metric_observe(s, h, 0.5); /* le is inclusive */
	rill_metric_observe(s, h, 2);
	rill_metric_observe(s, h, 100);
	rill_metric_observe(s, h, NAN); /* ignored */
	char *text = render(m);
	TH_EQ_STR(text, "# HELP lat_seconds Latency.\n"
	                "# TYPE lat_seconds histogram\n"
	                "lat_seconds_bucket{le=\"0.5\"} 2\n"
	                "lat_seconds_bucket{le=\"1\"} 2\n"
	                "lat_seconds_bucket{le=\"10\"} 3\n"
	                "lat_seconds_bucket{le=\"+Inf\"} 4\n"
	                "lat_seconds_sum 102.75\n"
	                "lat_seconds_count 4\n");
	free(text);
	rill_metrics_free(m);
}

struct counting {
	struct rill_metrics *m;
	const struct rill_metric *c, *h;
	unsigned n;
};

static void *count_thread(void *arg)
{
	struct counting *k = arg;
	struct rill_metrics_shard *s;
	if (rill_metrics_shard(k->m, &s) != 0)
		return NULL;
	for (unsigned i = 0; i < k->n; i++) {
		rill_metric_add(s, k->c, 3);
		rill_metric_observe(s, k->h, 1.0);
	}
	return NULL;
}

/* Four threads count into their own shards while this one renders: the
 * final sums are exact. */
TEST_TIMEOUT(shards_on_threads, 120)
{
	struct rill_metrics *m;
	struct rill_metrics_family *fc, *fh;
	const double b[] = {1};
	struct counting k = {.n = 200000};
	TH_OK(rill_metrics_new(0, &m));
	k.m = m;
	TH_OK(rill_metrics_family(m, RILL_METRIC_COUNTER, "c_total", "c", NULL,
	                          0, NULL, 0, &fc));
	TH_OK(rill_metrics_family(m, RILL_METRIC_HISTOGRAM, "h", "h", NULL, 0,
	                          b, 1, &fh));
	TH_OK(rill_metrics_series(fc, NULL, &k.c));
	TH_OK(rill_metrics_series(fh, NULL, &k.h));
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		TH_EQ_INT(pthread_create(&t[i], NULL, count_thread, &k), 0);
	for (int i = 0; i < 20; i++)
		free(render(m)); /* concurrent scrapes */
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	char *text = render(m);
	TH_CONTAINS(text, "\nc_total 2400000\n");
	TH_CONTAINS(text, "\nh_bucket{le=\"1\"} 800000\n");
	TH_CONTAINS(text, "\nh_sum 800000\n");
	TH_CONTAINS(text, "\nh_count 800000\n");
	free(text);
	rill_metrics_free(m);
}

TEST(errors)
{
	struct rill_metrics *m;
	struct rill_metrics_family *f, *f2;
	const struct rill_metric *s;
	const char *le[] = {"le"}, *dunder[] = {"__x"}, *dup[] = {"a", "a"};
	const char *one[] = {"a"}, *v[] = {"x"}, *nullv[] = {NULL};
	const double unsorted[] = {2, 1}, inf[] = {INFINITY};
	TH_OK(rill_metrics_new(4, &m));
	TH_EQ_ERR(rill_metrics_family(m, RILL_METRIC_COUNTER, "9bad", "", NULL,
	                              0, NULL, 0, &f),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_metrics_family(m, RILL_METRIC_COUNTER, "a-b", "", NULL,
	                              0, NULL, 0, &f),
	          RILL_EINVAL);
	TH_TRUE(f == NULL);
	TH_EQ_ERR(rill_metrics_family(m, RILL_METRIC_HISTOGRAM, "h", "", le, 1,
	                              NULL, 0, &f),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_metrics_family(m, RILL_METRIC_COUNTER, "c", "", dunder,
	                              1, NULL, 0, &f),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_metrics_family(m, RILL_METRIC_COUNTER, "c", "", dup, 2,
	                              NULL, 0, &f),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_metrics_family(m, RILL_METRIC_HISTOGRAM, "h", "", NULL,
	                              0, unsorted, 2, &f),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_metrics_family(m, RILL_METRIC_HISTOGRAM, "h", "", NULL,
	                              0, inf, 1, &f),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_metrics_family(m, RILL_METRIC_COUNTER, "c", "", NULL, 0,
	                              unsorted, 2, &f),
	          RILL_EINVAL);
	/* The same family again is the same; another shape is -EEXIST. */
	TH_OK(rill_metrics_family(m, RILL_METRIC_COUNTER, "c", "", one, 1, NULL,
	                          0, &f));
	TH_OK(rill_metrics_family(m, RILL_METRIC_COUNTER, "c", "other help",
	                          one, 1, NULL, 0, &f2));
	TH_TRUE(f == f2);
	TH_EQ_ERR(rill_metrics_family(m, RILL_METRIC_GAUGE, "c", "", one, 1,
	                              NULL, 0, &f2),
	          -EEXIST);
	TH_EQ_ERR(rill_metrics_series(f, NULL, &s), RILL_EINVAL);
	TH_EQ_ERR(rill_metrics_series(f, nullv, &s), RILL_EINVAL);
	/* Four slots: four series of one slot, then -ENOSPC. */
	for (int i = 0; i < 4; i++) {
		char val[8];
		snprintf(val, sizeof val, "%d", i);
		v[0] = val;
		TH_OK(rill_metrics_series(f, v, &s));
	}
	v[0] = "more";
	TH_EQ_ERR(rill_metrics_series(f, v, &s), -ENOSPC);
	TH_TRUE(s == NULL);
	TH_EQ_ERR(rill_metrics_callback(m, RILL_METRIC_HISTOGRAM, "cb", "",
	                                NULL, NULL),
	          RILL_EINVAL);
	rill_metrics_free(m);
	rill_metrics_free(NULL);
}

/* process_* metrics are there, with values that make sense. */
TEST(process_metrics)
{
	struct rill_metrics *m;
	TH_OK(rill_metrics_new(0, &m));
	TH_OK(rill_metrics_add_process(m));
	TH_EQ_ERR(rill_metrics_add_process(m), -EEXIST);
	char *text = render(m);
	const char *names[] = {"process_cpu_seconds_total ",
	                       "process_open_fds ",
	                       "process_max_fds ",
	                       "process_virtual_memory_bytes ",
	                       "process_resident_memory_bytes ",
	                       "process_start_time_seconds "};
	for (size_t i = 0; i < 6; i++) {
		char key[64];
		snprintf(key, sizeof key, "\n%s", names[i]);
		const char *p = strstr(text, key);
		TH_TRUE(p != NULL);
		double v = strtod(p + strlen(key), NULL);
		TH_TRUE(v >= 0 && !isnan(v));
		if (i == 5) /* started within the last day */
			TH_CMP_INT((long long)v, >,
			           (long long)time(NULL) - 86400);
		if (i == 1)
			TH_CMP_INT((long long)v, >=, 3);
	}
	TH_TRUE(strstr(text, "NaN") == NULL);
	free(text);
	rill_metrics_free(m);
}
