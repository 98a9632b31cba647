/* --log-format json: see logfmt.h. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "logfmt.h"

bool cli_log_format_parse(const char *s, enum cli_log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = CLI_LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = CLI_LOG_JSON;
	else
		return false;
	return true;
}

static void json_put(struct cli_json *j, const char *s, size_t n)
{
	if (j->oom)
		return;
	if (j->cap - j->len < n) {
		size_t cap = j->cap > 0 ? j->cap : 512;
		while (cap - j->len < n)
			cap *= 2;
		char *p = realloc(j->p, cap);
		if (p == NULL) {
			j->oom = true;
			return;
		}
		j->p = p;
		j->cap = cap;
	}
	memcpy(j->p + j->len, s, n);
	j->len += n;
}

/* The code point of the valid UTF-8 sequence at s and its length, or 0
 * (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF). */
static size_t json_utf8(const unsigned char *s, size_t left, uint32_t *cp)
{
	static const struct {
		unsigned char lo, hi, mask;
		uint32_t min;
	} lead[] = {{0xc2, 0xdf, 0x1f, 0x80},
	            {0xe0, 0xef, 0x0f, 0x800},
	            {0xf0, 0xf4, 0x07, 0x10000}};
	for (size_t k = 0; k < 3; k++) {
		if (s[0] < lead[k].lo || s[0] > lead[k].hi)
			continue;
		size_t n = k + 2;
		if (left < n)
			return 0;
		uint32_t v = s[0] & lead[k].mask;
		for (size_t i = 1; i < n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			v = v << 6 | (s[i] & 0x3fu);
		}
		if (v < lead[k].min || (v >= 0xd800 && v <= 0xdfff) ||
		    v > 0x10ffff)
			return 0;
		*cp = v;
		return n;
	}
	return 0;
}

void cli_json_quote(struct cli_json *j, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	json_put(j, "\"", 1);
	while (n > 0) {
		unsigned char c = *p;
		size_t step = 1;
		char esc[8];
		uint32_t cp = c;
		if (c >= 0x80) {
			step = json_utf8(p, n, &cp);
			if (step == 0) {
				json_put(j, "\\ufffd", 6);
				step = 1;
			} else if (cp == 0x2028 || cp == 0x2029) {
				snprintf(esc, sizeof esc, "\\u%04" PRIx32, cp);
				json_put(j, esc, 6);
			} else {
				json_put(j, (const char *)p, step);
			}
		} else if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			json_put(j, esc, 2);
		} else if (c == '\n') {
			json_put(j, "\\n", 2);
		} else if (c == '\r') {
			json_put(j, "\\r", 2);
		} else if (c == '\t') {
			json_put(j, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			json_put(j, esc, 6);
		} else {
			json_put(j, (const char *)p, 1);
		}
		p += step;
		n -= step;
	}
	json_put(j, "\"", 1);
}

static void json_key(struct cli_json *j, const char *key)
{
	if (!j->first)
		json_put(j, ",", 1);
	j->first = false;
	cli_json_quote(j, key, strlen(key));
	json_put(j, ":", 1);
}

void cli_json_time(struct cli_json *j, const char *key,
                   const struct timespec *t)
{
	struct tm tm;
	char buf[64];
	time_t sec = t->tv_sec;
	gmtime_r(&sec, &tm);
	size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof buf - n, ".%06ldZ", t->tv_nsec / 1000);
	cli_json_str(j, key, buf);
}

void cli_json_begin(struct cli_json *j, const char *cmd)
{
	memset(j, 0, sizeof *j);
	j->first = true;
	json_put(j, "{", 1);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	cli_json_time(j, "ts", &now);
	cli_json_str(j, "cmd", cmd);
}

void cli_json_str(struct cli_json *j, const char *key, const char *s)
{
	json_key(j, key);
	if (s == NULL)
		json_put(j, "null", 4);
	else
		cli_json_quote(j, s, strlen(s));
}

void cli_json_strn(struct cli_json *j, const char *key, const char *s, size_t n)
{
	json_key(j, key);
	cli_json_quote(j, s, n);
}

void cli_json_u64(struct cli_json *j, const char *key, uint64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof buf, "%" PRIu64, v);
	json_key(j, key);
	json_put(j, buf, (size_t)n);
}

void cli_json_secs(struct cli_json *j, const char *key, double secs)
{
	char buf[40];
	int n = snprintf(buf, sizeof buf, "%.6f", secs >= 0 ? secs : 0.0);
	json_key(j, key);
	json_put(j, buf, (size_t)n);
}

void cli_json_end(struct cli_json *j, FILE *out)
{
	json_put(j, "}\n", 2);
	if (!j->oom)
		fwrite(j->p, 1, j->len, out);
	free(j->p);
	j->p = NULL;
}

void cli_time_ago(double secs, struct timespec *t)
{
	clock_gettime(CLOCK_REALTIME, t);
	int64_t ns = (int64_t)t->tv_sec * 1000000000 + t->tv_nsec -
	             (int64_t)(secs * 1e9);
	t->tv_sec = (time_t)(ns / 1000000000);
	t->tv_nsec = (long)(ns % 1000000000);
}
