/* Error codes: one table for rill's own range, glibc's for errno values;
 * and the thread's last error message (rill_last_errmsg). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

struct err_entry {
	int code;
	const char *name;
	const char *msg;
};

static const struct err_entry err_table[] = {
#define ERR_ROW(name, value, msg) {value, "RILL_" #name, msg},
    RILL_OWN_ERRORS(ERR_ROW)
#undef ERR_ROW
};

static const struct err_entry *err_find(int err)
{
	for (size_t i = 0; i < sizeof err_table / sizeof err_table[0]; i++)
		if (err_table[i].code == err)
			return &err_table[i];
	return NULL;
}

const char *rill_strerror(int err)
{
	const struct err_entry *e = err_find(err);
	if (e != NULL)
		return e->msg;
	if (err == 0)
		return "success";
	/* The contract gives EPIPE a meaning of its own: "closed". */
	if (err == RILL_ECLOSED)
		return "flow closed (write after shutdown or close, or peer "
		       "stopped reading)";
	if (err < 0) {
		const char *s = strerrordesc_np(-err);
		if (s != NULL)
			return s;
	}
	return "unknown error";
}

const char *rill_err_name(int err)
{
	const struct err_entry *e = err_find(err);
	if (e != NULL)
		return e->name;
	if (err == 0)
		return "OK";
	if (err < 0) {
		const char *s = strerrorname_np(-err);
		if (s != NULL)
			return s;
	}
	return "UNKNOWN";
}

const char *rill_version(void)
{
	return RILL_VERSION_STRING;
}

static _Thread_local char last_errmsg[512];

void rill__set_last_errmsg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_errmsg, sizeof last_errmsg, fmt, ap);
	va_end(ap);
}

const char *rill_last_errmsg(void)
{
	return last_errmsg;
}
