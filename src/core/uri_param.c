/*
 * What every scheme needs of a parsed URI (scheme.h): its query
 * parameters, percent-decoding, and the one shape of URI errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hex.h"
#include "core/core.h"
#include "core/scheme.h"

int rill__uri_error(const struct rill_uri *u, const char *what,
                    const char *part)
{
	rill__set_last_errmsg("%s \"%s\" in \"%s\"", what, part,
	                      u != NULL && u->text != NULL ? u->text : "");
	return RILL_EURI;
}

bool rill__uri_pct_decode(char *s)
{
	char *w = s;
	for (char *r = s; *r != '\0'; r++) {
		if (*r != '%') {
			*w++ = *r;
			continue;
		}
		int hi = rill__hex_digit(r[1]);
		int lo = hi >= 0 ? rill__hex_digit(r[2]) : -1;
		if (lo < 0 || (hi == 0 && lo == 0))
			return false;
		*w++ = (char)(hi * 16 + lo);
		r += 2;
	}
	*w = '\0';
	return true;
}

const char *rill__uri_param(const struct rill_uri *u, const char *key)
{
	for (size_t i = 0; i < u->nparams; i++)
		if (strcmp(u->params[i].key, key) == 0)
			return u->params[i].value;
	return NULL;
}

int rill__uri_param_u64(const struct rill_uri *u, const char *key, uint64_t min,
                        uint64_t max, uint64_t dflt, uint64_t *out)
{
	const char *v = rill__uri_param(u, key);
	if (v == NULL) {
		*out = dflt;
		return 0;
	}
	char what[96];
	snprintf(what, sizeof what, "bad value for %s:", key);
	if (*v < '0' || *v > '9')
		return rill__uri_error(u, what, v);
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return rill__uri_error(u, what, v);
	*out = n;
	return 0;
}
