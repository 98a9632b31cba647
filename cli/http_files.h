/*
 * Serving one regular file over HTTP (rill http serve): its validators
 * (Last-Modified, a strong ETag), the request's conditions and one byte
 * range, as RFC 9110 sections 8.8, 13 and 14 define them; and the
 * Content-Type of a file name. Public API only.
 */
#ifndef RILL_CLI_HTTP_FILES_H
#define RILL_CLI_HTTP_FILES_H

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "rill.h"

/* What a GET or HEAD of one file depends on. */
struct http_file {
	uint64_t size;
	time_t mtime;
	long mtime_ns;
	const char *type;       /* static string */
	char last_modified[40]; /* IMF-fixdate */
	char etag[64];          /* strong, with its quotes */
};

/* The Content-Type for a file name, from its extension (a table of the
 * common types); application/octet-stream when unknown. */
const char *http_file_type(const char *name);

/* Fills hf for the file st describes, served under name. */
void http_file_init(struct http_file *hf, const struct stat *st,
                    const char *name);

#define HTTP_FILE_MAX_HEADERS 6

/* The reply to one GET or HEAD of a file. */
struct http_file_reply {
	int status;              /* 200, 206, 304, 412 or 416 */
	uint64_t offset, length; /* the body: bytes [offset, offset+length) */
	struct rill_http_header headers[HTTP_FILE_MAX_HEADERS];
	size_t nheaders;
	char content_range[80];
};

/*
 * Decides the reply to server exchange ex (a GET or HEAD) for the file
 * hf, in RFC 9110 13.2.2's order: If-Match, else If-Unmodified-Since
 * (412 when it fails); If-None-Match (weak comparison), else
 * If-Modified-Since (304); then, for GET only, Range with If-Range. One
 * byte range is served (206 with Content-Range); an unsatisfiable one is
 * 416 with "Content-Range: bytes *\/SIZE"; several ranges, another unit
 * or a malformed value are ignored (200, the whole file), as RFC 9110 14.2
 * allows. now is the current time: an If-Range date is only trusted for a
 * file modified at least a second earlier (8.8.2.2). The headers point
 * into hf and r, which must outlive their use.
 */
void http_file_reply(struct rill_flow *ex, const struct http_file *hf,
                     time_t now, struct http_file_reply *r);

/*
 * Opens rel (a relative path, already free of NUL) under the directory
 * rootfd with flags (| O_NOFOLLOW | O_CLOEXEC), never leaving it: the
 * policy of openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), walked by
 * hand for kernels without openat2. One component at a time with
 * O_PATH | O_NOFOLLOW; a symbolic link's target is spliced into the rest
 * of the path (an absolute target, a ".." above rootfd or more than 40
 * links fail with EXDEV / EXDEV / ELOOP); ".." pops back to the parent
 * already walked. Returns the fd, or -1 with errno.
 */
int http_path_walk(int rootfd, const char *rel, int flags);

/* The parts, for tests. */

/*
 * Parses a Range value against a representation of size bytes: 1 and
 * [*off, *off + *len) for one satisfiable byte range; -1 when the ranges
 * cannot be satisfied; 0 when the value is to be ignored (another unit,
 * malformed, several ranges).
 */
int http_range_parse(const char *value, uint64_t size, uint64_t *off,
                     uint64_t *len);

/* Whether an If-Match / If-None-Match list matches etag: "*" matches;
 * weak: W/ prefixes are ignored (If-None-Match), else a weak tag never
 * matches (If-Match). A malformed list matches nothing. */
bool http_etag_list_match(const char *list, const char *etag, bool weak);

/* Parses an HTTP-date in any of the three formats of RFC 9110 5.6.7;
 * false when it is none of them. */
bool http_date_parse(const char *s, time_t *out);

#endif
