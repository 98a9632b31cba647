/*
 * The Prometheus text exposition format, version 0.0.4
 * (prometheus.io/docs/instrumenting/exposition_formats): per family a
 * "# HELP" and a "# TYPE" line, then one line per sample,
 * `name{label="value",...} value`. In label values a backslash, a
 * double quote and a line feed are escaped (\\, \", \n); in help texts
 * the backslash and the line feed. The format is UTF-8: a byte sequence
 * that is not valid UTF-8 is written as U+FFFD, so that a hostile value
 * cannot make the whole scrape unparsable.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_internal.h"

struct metrics_text {
	char *p;
	size_t len, cap;
	bool oom;
};

static void text_put(struct metrics_text *t, const char *s, size_t n)
{
	if (t->oom)
		return;
	if (t->cap - t->len < n) {
		size_t cap = t->cap > 0 ? t->cap : 4096;
		while (cap - t->len < n)
			cap *= 2;
		char *p = rill_realloc(t->p, cap);
		if (p == NULL) {
			t->oom = true;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
}

static void text_str(struct metrics_text *t, const char *s)
{
	text_put(t, s, strlen(s));
}

static void text_fmt(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void text_fmt(struct metrics_text *t, const char *fmt, ...)
{
	char buf[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0)
		text_put(t, buf,
		         (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* The length of the valid UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* s escaped; quote: a label value (also escape '"'), else a help text. */
static void text_escaped(struct metrics_text *t, const char *s, bool quote)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);
	while (left > 0) {
		size_t n = utf8_seq(p, left);
		if (n == 0) {
			text_put(t, "\xef\xbf\xbd", 3); /* U+FFFD */
			n = 1;
		} else if (*p == '\\') {
			text_put(t, "\\\\", 2);
		} else if (*p == '\n') {
			text_put(t, "\\n", 2);
		} else if (*p == '"' && quote) {
			text_put(t, "\\\"", 2);
		} else {
			text_put(t, (const char *)p, n);
		}
		p += n;
		left -= n;
	}
}

/* A float the way Go's strconv.FormatFloat(v, 'g', -1, 64) writes it
 * (what Prometheus's own clients send): the fewest digits that read back
 * as the same value, in plain notation unless the exponent is below -4
 * or 21 and over ("0.0005", "1800", "253071360", "1e-05"). */
static void text_double(struct metrics_text *t, double v)
{
	if (isnan(v)) {
		text_str(t, "NaN");
		return;
	}
	if (isinf(v)) {
		text_str(t, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	char buf[48];
	int prec = 0;
	for (; prec < 17; prec++) {
		snprintf(buf, sizeof buf, "%.*e", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	const char *e = strchr(buf, 'e');
	int exp = e != NULL ? atoi(e + 1) : 0;
	if (exp >= -4 && exp < 21) {
		int decimals = prec - exp > 0 ? prec - exp : 0;
		snprintf(buf, sizeof buf, "%.*f", decimals, v);
	}
	text_str(t, buf);
}

/* `name{l1="v1",...,extra}` (extra: "le=\"..\"" or NULL). */
static void text_sample_name(struct metrics_text *t,
                             const struct rill_metrics_family *f,
                             const struct rill_metric *s, const char *suffix,
                             const char *extra)
{
	text_str(t, f->name);
	text_str(t, suffix);
	if (f->nlabels == 0 && extra == NULL)
		return;
	text_put(t, "{", 1);
	for (size_t i = 0; i < f->nlabels; i++) {
		if (i > 0)
			text_put(t, ",", 1);
		text_str(t, f->labels[i]);
		text_put(t, "=\"", 2);
		text_escaped(t, s->values[i], true);
		text_put(t, "\"", 1);
	}
	if (extra != NULL) {
		if (f->nlabels > 0)
			text_put(t, ",", 1);
		text_str(t, extra);
	}
	text_put(t, "}", 1);
}

static void render_histogram(struct metrics_text *t, struct rill_metrics *m,
                             const struct rill_metrics_family *f,
                             const struct rill_metric *s)
{
	uint64_t cum = 0;
	for (size_t b = 0; b <= f->nbounds; b++) {
		cum += rill__metrics_sum(m, s->slot + b);
		char le[48];
		if (b == f->nbounds) {
			snprintf(le, sizeof le, "le=\"+Inf\"");
		} else {
			struct metrics_text lt = {0};
			text_double(&lt, f->bounds[b]);
			snprintf(le, sizeof le, "le=\"%.*s\"",
			         lt.oom ? 0 : (int)lt.len, lt.p ? lt.p : "");
			rill_free(lt.p);
		}
		text_sample_name(t, f, s, "_bucket", le);
		text_fmt(t, " %" PRIu64 "\n", cum);
	}
	text_sample_name(t, f, s, "_sum", NULL);
	text_put(t, " ", 1);
	text_double(t, rill__metrics_sum_double(m, s->slot + f->nbounds + 1));
	text_put(t, "\n", 1);
	text_sample_name(t, f, s, "_count", NULL);
	text_fmt(t, " %" PRIu64 "\n", cum);
}

static void render_family(struct metrics_text *t, struct rill_metrics *m,
                          const struct rill_metrics_family *f)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	text_str(t, "# HELP ");
	text_str(t, f->name);
	text_put(t, " ", 1);
	text_escaped(t, f->help, false);
	text_str(t, "\n# TYPE ");
	text_str(t, f->name);
	text_put(t, " ", 1);
	text_str(t, types[f->type]);
	text_put(t, "\n", 1);
	if (f->fn != NULL) {
		text_str(t, f->name);
		text_put(t, " ", 1);
		text_double(t, f->fn(f->ud));
		text_put(t, "\n", 1);
		return;
	}
	for (const struct rill_metric *s = f->series; s != NULL; s = s->next) {
		if (f->type == RILL_METRIC_HISTOGRAM) {
			render_histogram(t, m, f, s);
			continue;
		}
		text_sample_name(t, f, s, "", NULL);
		uint64_t v = rill__metrics_sum(m, s->slot);
		if (f->type == RILL_METRIC_GAUGE)
			text_fmt(t, " %" PRId64 "\n", (int64_t)v);
		else
			text_fmt(t, " %" PRIu64 "\n", v);
	}
}

int rill_metrics_render(struct rill_metrics *m, struct rill_buf **out)
{
	if (out != NULL)
		*out = NULL;
	if (m == NULL || out == NULL)
		return RILL_EINVAL;
	struct metrics_text t = {0};
	pthread_mutex_lock(&m->lock);
	for (const struct rill_metrics_family *f = m->families; f != NULL;
	     f = f->next)
		render_family(&t, m, f);
	pthread_mutex_unlock(&m->lock);
	struct rill_buf *b = t.oom ? NULL : rill_buf_copy(t.p, t.len);
	rill_free(t.p);
	if (b == NULL)
		return RILL_ENOMEM;
	*out = b;
	return 0;
}
