/*
 * Fuzz target: the Prometheus text rendering (src/metrics/render.c) of
 * label values, which may hold anything a program puts there. The input,
 * split at NUL bytes, gives the label values of series of a counter and
 * a histogram (two labels each), and a help text. Whatever they hold,
 * the rendered text must be valid UTF-8 and every line must parse as a
 * comment or as a sample `name{label="value",...} number` whose label
 * values contain only the escapes \\ \" \n; and there must be exactly
 * one sample line per counter series.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_utf8.h"
#include "rill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fz_name_char(uint8_t c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       c == ':' || (!first && c >= '0' && c <= '9');
}

/* Checks one sample line p[0..n); aborts when malformed. */
static void fz_sample(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n && fz_name_char(p[i], i == 0))
		i++;
	if (i == 0)
		abort();
	if (i < n && p[i] == '{') {
		i++;
		for (;;) {
			size_t s = i;
			while (i < n && fz_name_char(p[i], i == s) &&
			       p[i] != ':')
				i++;
			if (i == s || i + 2 > n || p[i] != '=' ||
			    p[i + 1] != '"')
				abort();
			i += 2;
			while (i < n && p[i] != '"') {
				if (p[i] == '\\') {
					if (i + 1 >= n ||
					    strchr("\\\"n", p[i + 1]) == NULL)
						abort();
					i++;
				}
				i++;
			}
			if (i >= n)
				abort();
			i++;
			if (i < n && p[i] == ',') {
				i++;
				continue;
			}
			if (i >= n || p[i] != '}')
				abort();
			i++;
			break;
		}
	}
	if (i >= n || p[i] != ' ' || i + 1 >= n)
		abort();
	char num[64];
	size_t l = n - i - 1;
	if (l >= sizeof num)
		abort();
	memcpy(num, p + i + 1, l);
	num[l] = '\0';
	char *end;
	strtod(num, &end);
	if (*end != '\0')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	const char *vals[64];
	size_t nv = 0;
	for (char *p = copy; nv < 64 && p <= copy + size; p += strlen(p) + 1)
		vals[nv++] = p;
	struct rill_metrics *m;
	struct rill_metrics_family *c, *h;
	struct rill_metrics_shard *sh;
	const char *labels[] = {"a", "b"};
	const double bounds[] = {0.5, 1};
	if (rill_metrics_new(0, &m) != 0) {
		free(copy);
		return 0;
	}
	if (rill_metrics_family(m, RILL_METRIC_COUNTER, "c_total", vals[0],
	                        labels, 2, NULL, 0, &c) != 0 ||
	    rill_metrics_family(m, RILL_METRIC_HISTOGRAM, "h", "", labels, 2,
	                        bounds, 2, &h) != 0 ||
	    rill_metrics_shard(m, &sh) != 0)
		abort();
	size_t series = 0;
	for (size_t i = 1; i + 1 < nv; i += 2) {
		const struct rill_metric *s, *t;
		if (rill_metrics_series(c, vals + i, &s) != 0 ||
		    rill_metrics_series(h, vals + i, &t) != 0)
			abort();
		rill_metric_add(sh, s, i);
		rill_metric_observe(sh, t, (double)strlen(vals[i]) / 4);
	}
	{
		struct rill_buf *b;
		if (rill_metrics_render(m, &b) != 0)
			abort();
		const uint8_t *t = b->data;
		size_t n = b->len;
		if (n == 0 || t[n - 1] != '\n')
			abort();
		for (size_t i = 0; i < n;) {
			size_t l = fz_utf8(t + i, n - i);
			if (l == 0)
				abort();
			i += l;
		}
		for (size_t i = 0; i < n;) {
			const uint8_t *nl = memchr(t + i, '\n', n - i);
			size_t len = (size_t)(nl - (t + i));
			if (t[i] != '#')
				fz_sample(t + i, len);
			if (len > 8 && memcmp(t + i, "c_total{", 8) == 0)
				series++;
			i += len + 1;
		}
		rill_buf_release(b);
	}
	/* One line per distinct pair: the same values give the same
	 * series. */
	size_t want = 0;
	for (size_t i = 1; i + 1 < nv; i += 2) {
		bool seen = false;
		for (size_t k = 1; k < i && !seen; k += 2)
			seen = strcmp(vals[k], vals[i]) == 0 &&
			       strcmp(vals[k + 1], vals[i + 1]) == 0;
		want += !seen;
	}
	if (series != want)
		abort();
	rill_metrics_free(m);
	free(copy);
	return 0;
}
