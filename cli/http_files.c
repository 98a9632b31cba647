/*
 * Conditional and range requests for rill http serve: see http_files.h.
 * The rules are RFC 9110's; section numbers are cited where they apply.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http_files.h"

/* ---------------------------------------------------------------------- */
/* Content types */

static const struct {
	const char *ext, *type;
} files_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"c", "text/plain; charset=utf-8"},
    {"h", "text/plain; charset=utf-8"},
    {"log", "text/plain; charset=utf-8"},
    {"css", "text/css"},
    {"js", "text/javascript"},
    {"mjs", "text/javascript"},
    {"ics", "text/calendar"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"xml", "application/xml"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},
    {"epub", "application/epub+zip"},
    {"gz", "application/gzip"},
    {"tgz", "application/gzip"},
    {"bz2", "application/x-bzip2"},
    {"xz", "application/x-xz"},
    {"zst", "application/zstd"},
    {"tar", "application/x-tar"},
    {"zip", "application/zip"},
    {"7z", "application/x-7z-compressed"},
    {"deb", "application/vnd.debian.binary-package"},
    {"iso", "application/x-iso9660-image"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"apng", "image/apng"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"ico", "image/x-icon"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"opus", "audio/ogg"},
    {"flac", "audio/flac"},
    {"wav", "audio/wav"},
    {"m4a", "audio/mp4"},
    {"mp4", "video/mp4"},
    {"m4v", "video/mp4"},
    {"webm", "video/webm"},
    {"mkv", "video/x-matroska"},
    {"mov", "video/quicktime"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
};

const char *http_file_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	const char *slash = strrchr(name, '/');
	if (dot != NULL && (slash == NULL || dot > slash))
		for (size_t i = 0; i < sizeof files_types / sizeof *files_types;
		     i++)
			if (strcasecmp(dot + 1, files_types[i].ext) == 0)
				return files_types[i].type;
	return "application/octet-stream";
}

void http_file_init(struct http_file *hf, const struct stat *st,
                    const char *name)
{
	hf->size = (uint64_t)st->st_size;
	hf->mtime = st->st_mtim.tv_sec;
	hf->mtime_ns = st->st_mtim.tv_nsec;
	hf->type = http_file_type(name);
	struct tm tm;
	gmtime_r(&hf->mtime, &tm);
	strftime(hf->last_modified, sizeof hf->last_modified,
	         "%a, %d %b %Y %H:%M:%S GMT", &tm);
	/* Modification time to the nanosecond and size, as nginx builds
	 * its ETag from the time and size: a changed file gets a new tag
	 * even within one second. */
	snprintf(hf->etag, sizeof hf->etag, "\"%" PRIx64 ".%lx-%" PRIx64 "\"",
	         (uint64_t)hf->mtime, (unsigned long)hf->mtime_ns, hf->size);
}

/* ---------------------------------------------------------------------- */
/* Opening beneath a directory without openat2 */

#define WALK_DEPTH 64 /* directories deep */
#define WALK_LINKS 40 /* symbolic links followed, as the kernel's limit */

struct walk {
	int root;
	int dirs[WALK_DEPTH]; /* open O_PATH fds below root, innermost last */
	int depth;
	char todo[PATH_MAX * 2]; /* what is left to resolve */
	size_t pos;
	int links;
};

static int walk_cur(const struct walk *w)
{
	return w->depth > 0 ? w->dirs[w->depth - 1] : w->root;
}

/* The next component into name: 1, 0 at the end, or -ENAMETOOLONG.
 * *last: none after it; *dir: a slash follows it (it must be a
 * directory, as "file.txt/" is ENOTDIR for the kernel too). */
static int walk_next(struct walk *w, char *name, bool *last, bool *dir)
{
	while (w->todo[w->pos] == '/')
		w->pos++;
	if (w->todo[w->pos] == '\0')
		return 0;
	size_t e = w->pos;
	while (w->todo[e] != '\0' && w->todo[e] != '/')
		e++;
	size_t n = e - w->pos;
	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(name, w->todo + w->pos, n);
	name[n] = '\0';
	w->pos = e;
	*dir = w->todo[e] == '/';
	size_t k = e;
	while (w->todo[k] == '/')
		k++;
	*last = w->todo[k] == '\0';
	return 1;
}

/* fd is a symbolic link: its target replaces it in what is left. */
static int walk_link(struct walk *w, int fd)
{
	char target[PATH_MAX];
	ssize_t k = readlinkat(fd, "", target, sizeof target - 1);
	if (k <= 0)
		return errno != 0 ? errno : ENOENT;
	target[k] = '\0';
	if (target[0] == '/')
		return EXDEV; /* RESOLVE_BENEATH refuses absolute links too */
	if (++w->links > WALK_LINKS)
		return ELOOP;
	/* What is left starts with its separator, or is empty: a link
	 * last in the path stays last (no slash that would ask for a
	 * directory). */
	char rest[sizeof w->todo];
	int n = snprintf(rest, sizeof rest, "%s%s", target, w->todo + w->pos);
	if (n < 0 || (size_t)n >= sizeof rest)
		return ENAMETOOLONG;
	memcpy(w->todo, rest, (size_t)n + 1);
	w->pos = 0;
	return 0;
}

/* One component: returns 0 (walked on), or an errno; *fd_out the final
 * object when it was the last one. */
static int walk_step(struct walk *w, const char *name, bool last, bool dir,
                     int flags, int *fd_out)
{
	if (strcmp(name, ".") == 0)
		return 0;
	if (strcmp(name, "..") == 0) {
		if (w->depth == 0)
			return EXDEV;
		close(w->dirs[--w->depth]);
		return 0;
	}
	int fd = openat(walk_cur(w), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return e;
	}
	if (S_ISLNK(st.st_mode)) {
		int e = walk_link(w, fd);
		close(fd);
		return e;
	}
	if (!last) {
		if (!S_ISDIR(st.st_mode) || w->depth == WALK_DEPTH) {
			close(fd);
			return S_ISDIR(st.st_mode) ? ELOOP : ENOTDIR;
		}
		w->dirs[w->depth++] = fd;
		return 0;
	}
	close(fd);
	/* The last component, not a link: open it for real, refusing a
	 * link that replaced it meanwhile. */
	*fd_out =
	    openat(walk_cur(w), name,
	           flags | O_NOFOLLOW | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
	return *fd_out < 0 ? errno : 0;
}

int http_path_walk(int rootfd, const char *rel, int flags)
{
	struct walk *w = calloc(1, sizeof *w);
	if (w == NULL)
		return -1;
	w->root = rootfd;
	int n = snprintf(w->todo, sizeof w->todo, "%s", rel);
	int err = n < 0 || (size_t)n >= sizeof w->todo ? ENAMETOOLONG : 0;
	int fd = -1;
	char name[NAME_MAX + 1];
	bool last, dir;
	while (err == 0 && fd < 0) {
		int got = walk_next(w, name, &last, &dir);
		if (got <= 0) {
			err = -got;
			break;
		}
		err = walk_step(w, name, last, dir, flags, &fd);
	}
	/* Nothing left but directories walked (or nothing at all): the
	 * last one is the object. */
	if (err == 0 && fd < 0) {
		fd = openat(walk_cur(w), ".", flags | O_CLOEXEC);
		if (fd < 0)
			err = errno;
	}
	while (w->depth > 0)
		close(w->dirs[--w->depth]);
	free(w);
	if (err != 0) {
		if (fd >= 0)
			close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* ---------------------------------------------------------------------- */
/* Parsing */

static const char *files_ows(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* Decimal digits at *s, saturating at UINT64_MAX; false if none. */
static bool files_digits(const char **s, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*s = p;
	*out = v;
	return true;
}

/* One byte-range-spec (14.1.1) from p to end: 1, 0 or -1 as in
 * http_range_parse. */
static int files_range_spec(const char *p, const char *end, uint64_t size,
                            uint64_t *off, uint64_t *len)
{
	uint64_t first, last;
	if (*p == '-') {
		/* suffix-range: the last N bytes; none of an empty file
		 * (14.1.3), nor a zero-length suffix. */
		p++;
		if (!files_digits(&p, &last) || files_ows(p) != end)
			return 0;
		if (last == 0 || size == 0)
			return -1;
		*len = last < size ? last : size;
		*off = size - *len;
		return 1;
	}
	if (!files_digits(&p, &first) || *p++ != '-')
		return 0;
	bool has_last = files_digits(&p, &last);
	if (files_ows(p) != end)
		return 0;
	/* "A byte-range-spec is invalid if the last-pos value is present
	 * and less than the first-pos" (14.1.1): the field is ignored. */
	if (has_last && last < first)
		return 0;
	if (first >= size)
		return -1;
	if (!has_last || last >= size)
		last = size - 1;
	*off = first;
	*len = last - first + 1;
	return 1;
}

int http_range_parse(const char *value, uint64_t size, uint64_t *off,
                     uint64_t *len)
{
	const char *p = files_ows(value);
	/* Range units are case-insensitive (14.1). */
	if (strncasecmp(p, "bytes", 5) != 0)
		return 0;
	p = files_ows(p + 5);
	if (*p != '=')
		return 0;
	p++;
	/* A list: empty elements are ignored (5.6.1); one range only. */
	const char *spec = NULL, *spec_end = NULL;
	while (*p != '\0') {
		p = files_ows(p);
		const char *e = strchr(p, ',');
		if (e == NULL)
			e = p + strlen(p);
		if (files_ows(p) != e) {
			if (spec != NULL)
				return 0; /* several ranges: send it all */
			spec = p;
			spec_end = e;
		}
		p = *e == ',' ? e + 1 : e;
	}
	if (spec == NULL)
		return 0;
	/* Trailing OWS of the element is allowed; find where it starts. */
	while (spec_end > spec && (spec_end[-1] == ' ' || spec_end[-1] == '\t'))
		spec_end--;
	char one[96];
	size_t n = (size_t)(spec_end - spec);
	if (n >= sizeof one)
		return 0;
	memcpy(one, spec, n);
	one[n] = '\0';
	return files_range_spec(one, one + n, size, off, len);
}

/* The next entity-tag of a list at *s (8.8.3): its opaque-tag (with
 * quotes) in [*tag, *tag + *tlen), weak or not. false at the end or on a
 * malformed element. */
static bool files_next_etag(const char **s, const char **tag, size_t *tlen,
                            bool *weak)
{
	const char *p = *s;
	while (*p == ' ' || *p == '\t' || *p == ',')
		p++;
	if (*p == '\0')
		return false;
	*weak = p[0] == 'W' && p[1] == '/';
	if (*weak)
		p += 2;
	if (*p != '"')
		return false;
	const char *q = strchr(p + 1, '"');
	if (q == NULL)
		return false;
	*tag = p;
	*tlen = (size_t)(q + 1 - p);
	p = files_ows(q + 1);
	if (*p != ',' && *p != '\0')
		return false;
	*s = p;
	return true;
}

bool http_etag_list_match(const char *list, const char *etag, bool weak)
{
	const char *p = files_ows(list);
	if (p[0] == '*' && *files_ows(p + 1) == '\0')
		return true;
	const char *tag;
	size_t tlen;
	bool is_weak;
	size_t elen = strlen(etag);
	while (files_next_etag(&p, &tag, &tlen, &is_weak)) {
		if (is_weak && !weak)
			continue; /* strong comparison (8.8.3.2) */
		if (tlen == elen && memcmp(tag, etag, elen) == 0)
			return true;
	}
	return false;
}

bool http_date_parse(const char *s, time_t *out)
{
	/* IMF-fixdate, then the obsolete RFC 850 and asctime forms, which a
	 * recipient must accept too (5.6.7). */
	static const char *const formats[] = {
	    "%a, %d %b %Y %H:%M:%S GMT",
	    "%A, %d-%b-%y %H:%M:%S GMT",
	    "%a %b %e %H:%M:%S %Y",
	};
	s = files_ows(s);
	for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
		struct tm tm;
		memset(&tm, 0, sizeof tm);
		const char *end = strptime(s, formats[i], &tm);
		if (end != NULL && *files_ows(end) == '\0') {
			*out = timegm(&tm);
			return true;
		}
	}
	return false;
}

/* ---------------------------------------------------------------------- */
/* The decision */

/* Whether any line of header name matches (If-Match / If-None-Match may
 * come as several lines, which make one list: 5.3). */
static bool files_header_match(struct rill_flow *ex, const char *name,
                               const char *etag, bool weak, bool *present)
{
	size_t n = rill_http_header_count(ex);
	*present = false;
	for (size_t i = 0; i < n; i++) {
		const char *k, *v;
		if (rill_http_header_at(ex, i, &k, &v) != 0 ||
		    strcasecmp(k, name) != 0)
			continue;
		*present = true;
		if (http_etag_list_match(v, etag, weak))
			return true;
	}
	return false;
}

/* If-Range (13.1.5): an entity-tag must match strongly; a date must be
 * exactly the file's Last-Modified, and that a strong validator. */
static bool files_if_range_holds(const char *v, const struct http_file *hf,
                                 time_t now)
{
	v = files_ows(v);
	if (v[0] == '"' || (v[0] == 'W' && v[1] == '/')) {
		size_t el = strlen(hf->etag);
		return strncmp(v, hf->etag, el) == 0 &&
		       *files_ows(v + el) == '\0';
	}
	time_t t;
	return http_date_parse(v, &t) && t == hf->mtime && hf->mtime < now;
}

static void files_add(struct http_file_reply *r, const char *name,
                      const char *value)
{
	if (r->nheaders < HTTP_FILE_MAX_HEADERS)
		r->headers[r->nheaders++] =
		    (struct rill_http_header){name, value};
}

/* The status the preconditions give (13.2.2 steps 1 to 4), or 0 when
 * they all pass. */
static int files_preconditions(struct rill_flow *ex, const struct http_file *hf)
{
	bool present;
	time_t t;
	bool match =
	    files_header_match(ex, "If-Match", hf->etag, false, &present);
	if (present && !match)
		return 412;
	const char *ius = rill_http_header(ex, "If-Unmodified-Since");
	if (!present && ius != NULL && http_date_parse(ius, &t) &&
	    hf->mtime > t)
		return 412;
	match =
	    files_header_match(ex, "If-None-Match", hf->etag, true, &present);
	if (present)
		return match ? 304 : 0;
	const char *ims = rill_http_header(ex, "If-Modified-Since");
	if (ims != NULL && http_date_parse(ims, &t) && hf->mtime <= t)
		return 304;
	return 0;
}

void http_file_reply(struct rill_flow *ex, const struct http_file *hf,
                     time_t now, struct http_file_reply *r)
{
	memset(r, 0, sizeof *r);
	r->status = files_preconditions(ex, hf);
	if (r->status == 304) {
		/* 15.4.5: the validators a 200 would have carried. */
		files_add(r, "ETag", hf->etag);
		files_add(r, "Last-Modified", hf->last_modified);
		return;
	}
	if (r->status == 412)
		return;
	r->status = 200;
	r->length = hf->size;
	/* Range is defined for GET only (14.2). */
	const char *range = rill_http_header(ex, "Range");
	const char *if_range = rill_http_header(ex, "If-Range");
	if (range != NULL && strcmp(rill_http_method(ex), "GET") == 0 &&
	    (if_range == NULL || files_if_range_holds(if_range, hf, now))) {
		uint64_t off = 0, len = 0;
		int got = http_range_parse(range, hf->size, &off, &len);
		if (got < 0) {
			r->status = 416;
			r->length = 0;
			snprintf(r->content_range, sizeof r->content_range,
			         "bytes */%" PRIu64, hf->size);
			files_add(r, "Content-Range", r->content_range);
			files_add(r, "Accept-Ranges", "bytes");
			return;
		}
		if (got > 0) {
			r->status = 206;
			r->offset = off;
			r->length = len;
			snprintf(r->content_range, sizeof r->content_range,
			         "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off,
			         off + len - 1, hf->size);
			files_add(r, "Content-Range", r->content_range);
		}
	}
	files_add(r, "Content-Type", hf->type);
	files_add(r, "Last-Modified", hf->last_modified);
	files_add(r, "ETag", hf->etag);
	files_add(r, "Accept-Ranges", "bytes");
}
