/*
 * rill http serve: answering a request (the server's handler), from a
 * cache of small files, a file, a directory listing or an error. The
 * command (options, loops, accepting) is http_serve_cmd.c. Public API
 * only.
 *
 * Path safety of `serve`: the target is percent-decoded, a decoded NUL or
 * a ".." segment is refused (404), so is a segment that starts with a dot
 * (dotfiles such as .git/config) unless --dotfiles, and the file is opened
 * relative to the served directory with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS): the kernel refuses any resolution that leaves
 * DIR, so a symbolic link is followed only when it stays inside DIR (an
 * absolute link, or one that climbs out, gives 404). Kernels without
 * openat2 get the same policy from a walk one component at a time
 * (http_path_walk), never from a plain open. Files are opened with
 * O_NONBLOCK, and anything but a regular file or a directory (a FIFO, a
 * device, a socket) gets 403 before a byte is read: a FIFO would
 * otherwise block the serving loop in open or read.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "http_serve.h"

/* A request being answered, when it is counted or logged: the exchange's
 * user data (rill_flow_set_data). */
struct serve_req {
	struct serve *sv;
	uint64_t t0_ns;
	const struct serve_ws *ws; /* --ws routes, or NULL */
};

/* One JSON object per request (--log-format json). The target and the
 * header values are the client's bytes: cli_json_str quotes anything. */
static void serve_log_json(struct rill_flow *ex, int status, double secs)
{
	char peer[160];
	struct cli_json j;
	struct timespec start;
	cli_time_ago(secs, &start);
	cli_json_begin(&j, "http");
	cli_json_time(&j, "start", &start);
	cli_json_str(&j, "client",
	             rill_flow_address(ex, RILL_ADDR_PEER, peer, sizeof peer) ==
	                     0
	                 ? peer
	                 : NULL);
	cli_json_str(&j, "method", rill_http_method(ex));
	cli_json_str(&j, "target", rill_http_target(ex));
	cli_json_u64(&j, "status", (uint64_t)status);
	cli_json_secs(&j, "time", secs);
	cli_json_str(&j, "host", rill_http_header(ex, "Host"));
	cli_json_str(&j, "user_agent", rill_http_header(ex, "User-Agent"));
	cli_json_str(&j, "referer", rill_http_header(ex, "Referer"));
	cli_json_end(&j, stderr);
}

/* Every request ends here: counted, logged, then the exchange closed. */
static void serve_end(struct rill_flow *ex, int status)
{
	struct serve_req *rq = rill_flow_data(ex);
	if (rq != NULL) {
		double secs = cli_secs_since(rq->t0_ns);
		cli_m_http(&rq->sv->ms, rill_http_method(ex), status, secs);
		if (rq->sv->log_format == CLI_LOG_JSON)
			serve_log_json(ex, status, secs);
		rill_flow_set_data(ex, NULL);
		free(rq);
	}
	rill_close(ex);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes target's path into out ("" for the root, no leading '/').
 * Returns false for anything that must not reach the file system. */
static bool serve_decode(const char *target, char *out, size_t cap)
{
	if (target[0] != '/')
		return false;
	size_t k = 0;
	for (const char *p = target + 1; *p && *p != '?' && *p != '#'; p++) {
		int ch = (unsigned char)*p;
		if (ch == '%') {
			int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
			if (lo < 0)
				return false;
			ch = hi * 16 + lo;
			p += 2;
			if (ch == 0)
				return false;
		}
		if (k + 1 >= cap)
			return false;
		out[k++] = (char)ch;
	}
	out[k] = '\0';
	/* No ".." segment, whichever way it was spelled. */
	for (char *s = out; s != NULL;) {
		char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return false;
		s = slash ? slash + 1 : NULL;
	}
	return out[0] != '/';
}

/* Whether a segment of rel starts with a dot (.git/config, .env). */
static bool serve_has_dotfile(const char *rel)
{
	for (const char *s = rel; s != NULL;) {
		if (s[0] == '.')
			return true;
		const char *slash = strchr(s, '/');
		s = slash ? slash + 1 : NULL;
	}
	return false;
}

/* Opens rel beneath the served directory (see the top of this file).
 * O_NONBLOCK: opening a FIFO must not wait for a writer. */
static int serve_open(struct serve *sv, const char *rel)
{
	int flags = O_RDONLY | O_NOCTTY | O_NONBLOCK;
	if (rel[0] == '\0')
		rel = ".";
#ifdef SYS_openat2
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, sv->dirfd, rel, &how, sizeof how);
	if (fd >= 0 || errno != ENOSYS)
		return fd;
#endif
	return http_path_walk(sv->dirfd, rel, flags);
}

static void serve_simple(struct rill_flow *ex, int status, const char *text,
                         const struct rill_http_header *extra, size_t nextra)
{
	struct rill_http_header h[4];
	size_t n = 0;
	h[n++] = (struct rill_http_header){"Content-Type",
	                                   "text/plain; charset=utf-8"};
	for (size_t i = 0; i < nextra && n < 4; i++)
		h[n++] = extra[i];
	struct rill_buf *b = rill_buf_copy(text, strlen(text));
	rill_http_respond_buf(ex, status, h, n, b);
	rill_buf_release(b);
	serve_end(ex, status);
}

/* A streamed large file. */
struct serve_stream {
	struct rill_flow *ex;
	int status;
	int fd;
	uint64_t off, left;
};

static void serve_stream_next(struct serve_stream *st);

static void serve_stream_done(struct serve_stream *st)
{
	close(st->fd);
	serve_end(st->ex, st->status);
	free(st);
}

static void serve_stream_shut(struct rill_flow *ex, int status, void *ud)
{
	(void)ex;
	(void)status;
	serve_stream_done(ud);
}

static void serve_stream_wrote(struct rill_flow *ex, int status, void *ud)
{
	struct serve_stream *st = ud;
	/* A failed write (the file shrank: -ENODATA; the client went)
	 * cannot complete the response: closing the exchange aborts the
	 * connection. */
	if (status < 0 ||
	    rill_shutdown(ex, RILL_SHUT_WR, serve_stream_shut, st) != 0)
		serve_stream_done(st);
}

/* The body is the file range itself: rill_write_file hands it to the
 * kernel (sendfile) on a plain connection, or steps through it (TLS). */
static void serve_stream_next(struct serve_stream *st)
{
	if (rill_write_file(st->ex, st->fd, st->off, st->left,
	                    serve_stream_wrote, st) != 0)
		serve_stream_done(st);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Escapes &<>" for HTML. */
static void html_esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

static void url_esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || strchr("-._~/", c))
			fputc(c, f);
		else
			fprintf(f, "%%%02X", c);
	}
}

static void serve_listing(struct serve *sv, struct rill_flow *ex, int fd,
                          const char *rel, const char *target)
{
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		serve_simple(ex, 500, "cannot list directory\n", NULL, 0);
		return;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' &&
		    (!sv->dotfiles || strcmp(e->d_name, ".") == 0 ||
		     strcmp(e->d_name, "..") == 0))
			continue; /* hidden files (served with --dotfiles) */
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof *names);
			if (nn == NULL)
				break;
			names = nn;
		}
		bool isdir = e->d_type == DT_DIR;
		size_t l = strlen(e->d_name);
		names[n] = malloc(l + 2);
		if (names[n] == NULL)
			break;
		memcpy(names[n], e->d_name, l);
		names[n][l] = isdir ? '/' : '\0';
		names[n][l + 1] = '\0';
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_names);
	char *html = NULL;
	size_t hlen = 0;
	FILE *f = open_memstream(&html, &hlen);
	fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
	      "Index of /",
	      f);
	html_esc(f, rel);
	fputs("</title></head>\n<body><h1>Index of /", f);
	html_esc(f, rel);
	fputs("</h1>\n<ul>\n", f);
	for (size_t i = 0; i < n; i++) {
		fputs("<li><a href=\"", f);
		url_esc(f, names[i]);
		fputs("\">", f);
		html_esc(f, names[i]);
		fputs("</a></li>\n", f);
		free(names[i]);
	}
	free(names);
	fputs("</ul></body></html>\n", f);
	fclose(f);
	(void)target;
	struct rill_http_header h[] = {
	    {"Content-Type", "text/html; charset=utf-8"}};
	struct rill_buf *b = rill_buf_copy(html, hlen);
	free(html);
	rill_http_respond_buf(ex, 200, h, 1, b);
	rill_buf_release(b);
	serve_end(ex, 200);
}

static struct serve_cached *serve_slot(struct serve *sv, const char *rel)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *p = rel; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return &sv->cache[h % SERVE_CACHE_SLOTS];
}

/*
 * Answers a GET or HEAD of one regular file (http_files.c decides the
 * status and the byte range): from body when the file is cached (fd -1),
 * else from fd, which this closes.
 */
static void serve_file(struct rill_flow *ex, int fd, const struct http_file *hf,
                       struct rill_buf *body, bool head)
{
	struct http_file_reply r;
	http_file_reply(ex, hf, time(NULL), &r);
	if ((r.status != 200 && r.status != 206) || head) {
		if (fd >= 0)
			close(fd);
		if (r.status == 200 || r.status == 206)
			rill_http_respond(ex, r.status, r.headers, r.nheaders,
			                  (int64_t)r.length);
		else
			rill_http_respond_buf(ex, r.status, r.headers,
			                      r.nheaders, NULL);
		serve_end(ex, r.status);
		return;
	}
	if (body != NULL) {
		body = rill_buf_slice(body, (size_t)r.offset, (size_t)r.length);
		if (body == NULL) {
			serve_simple(ex, 500, "out of memory\n", NULL, 0);
			return;
		}
	}
	if (fd < 0) {
		rill_http_respond_buf(ex, r.status, r.headers, r.nheaders,
		                      body);
		rill_buf_release(body);
		serve_end(ex, r.status);
		return;
	}
	struct serve_stream *s = calloc(1, sizeof *s);
	if (s == NULL || rill_http_respond(ex, r.status, r.headers, r.nheaders,
	                                   (int64_t)r.length) != 0) {
		free(s);
		close(fd);
		serve_end(ex, 500); /* the exchange's close answers 500 */
		return;
	}
	s->ex = ex;
	s->status = r.status;
	s->fd = fd;
	s->off = r.offset;
	s->left = r.length;
	serve_stream_next(s);
}

/* Reads a small file whole into its cache slot. */
static bool serve_cache_fill(struct serve_cached *ce, const char *key, int fd,
                             const struct stat *st, const struct http_file *hf,
                             uint64_t now)
{
	struct rill_buf *b = rill_buf_new((size_t)st->st_size);
	ssize_t got = b ? pread(fd, b->data, (size_t)st->st_size, 0) : -1;
	if (got != (ssize_t)st->st_size) {
		rill_buf_release(b);
		return false;
	}
	rill_buf_release(ce->body);
	snprintf(ce->rel, sizeof ce->rel, "%s", key);
	ce->body = b;
	ce->file = *hf;
	ce->ino = st->st_ino;
	ce->dev = st->st_dev;
	ce->checked_ms = now;
	return true;
}

/*
 * A directory (fd, rel ends with a slash or gets a 301): its index.html
 * replaces it (*fd, *st and rel become the index's), else it is served
 * as a listing, or 404. rel holds PATH_MAX bytes. Returns true when the
 * request was answered here (fd closed or handed over).
 */
static bool serve_dir(struct serve *sv, struct rill_flow *ex, int *fd,
                      struct stat *st, char *rel, const char *target)
{
	size_t rl = strlen(rel);
	if (rl > 0 && rel[rl - 1] != '/') {
		/* Relative links in the listing need the slash. */
		char loc[PATH_MAX + 2];
		snprintf(loc, sizeof loc, "/%s/", rel);
		struct rill_http_header h = {"Location", loc};
		close(*fd);
		serve_simple(ex, 301, "moved\n", &h, 1);
		return true;
	}
	/* index.html is resolved from the root, as any path: a symbolic
	 * link to it that stays inside DIR is served. */
	char irel[PATH_MAX + 16];
	snprintf(irel, sizeof irel, "%sindex.html", rel);
	int ifd = strlen(irel) < PATH_MAX ? serve_open(sv, irel) : -1;
	struct stat ist;
	if (ifd >= 0 && (fstat(ifd, &ist) != 0 || !S_ISREG(ist.st_mode))) {
		close(ifd);
		close(*fd);
		serve_simple(ex, 403, "forbidden: not a regular file\n", NULL,
		             0);
		return true;
	}
	if (ifd >= 0) {
		close(*fd);
		*fd = ifd;
		*st = ist;
		snprintf(rel, PATH_MAX, "%s", irel);
		return false;
	}
	if (sv->listing) {
		serve_listing(sv, ex, *fd, rel, target);
		return true;
	}
	close(*fd);
	serve_simple(ex, 404, "not found\n", NULL, 0);
	return true;
}

/*
 * The path rel (PATH_MAX bytes), opened as fd: anything but a file or a
 * directory is refused; a cached copy that is still the same file is
 * served; a directory goes to serve_dir; a small file is cached, a large
 * one served from fd. ce: rel's cache slot, or NULL.
 */
static void serve_opened(struct serve *sv, struct rill_flow *ex, int fd,
                         char *rel, struct serve_cached *ce, uint64_t now,
                         bool head)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		serve_simple(ex, 500, "cannot stat\n", NULL, 0);
		return;
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		/* A FIFO, device or socket: never read from the loop. */
		close(fd);
		serve_simple(ex, 403, "forbidden: not a regular file\n", NULL,
		             0);
		return;
	}
	if (ce != NULL && ce->body != NULL && strcmp(ce->rel, rel) == 0 &&
	    S_ISREG(st.st_mode) && st.st_ino == ce->ino &&
	    st.st_dev == ce->dev && (uint64_t)st.st_size == ce->file.size &&
	    st.st_mtim.tv_sec == ce->file.mtime &&
	    st.st_mtim.tv_nsec == ce->file.mtime_ns) {
		close(fd);
		ce->checked_ms = now;
		serve_file(ex, -1, &ce->file, ce->body, head);
		return;
	}
	char key[sizeof ce->rel];
	snprintf(key, sizeof key, "%s", rel);
	if (S_ISDIR(st.st_mode) &&
	    serve_dir(sv, ex, &fd, &st, rel, rill_http_target(ex)))
		return;
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		serve_simple(ex, 404, "not found\n", NULL, 0);
		return;
	}
	struct http_file hf;
	http_file_init(&hf, &st, rel);
	if (ce != NULL && (uint64_t)st.st_size <= SERVE_CACHE_MAX) {
		bool filled = serve_cache_fill(ce, key, fd, &st, &hf, now);
		close(fd);
		if (!filled)
			serve_simple(ex, 500, "read error\n", NULL, 0);
		else
			serve_file(ex, -1, &ce->file, ce->body, head);
		return;
	}
	serve_file(ex, fd, &hf, NULL, head);
}

void cli_serve_handler(struct rill_flow *ex, void *ud)
{
	struct serve *sv = ud;
	if (sv->ws != NULL && serve_ws_try(sv->ws, ex, &sv->ws_set))
		return;
	if (sv->metrics != NULL || sv->log_format == CLI_LOG_JSON) {
		struct serve_req *rq = malloc(sizeof *rq);
		if (rq != NULL) {
			rq->sv = sv;
			rq->t0_ns = uv_hrtime();
			rill_flow_set_data(ex, rq);
		}
	}
	const char *m = rill_http_method(ex);
	bool head = strcmp(m, "HEAD") == 0;
	if (!head && strcmp(m, "GET") != 0) {
		struct rill_http_header allow = {"Allow", "GET, HEAD"};
		serve_simple(ex, 405, "method not allowed\n", &allow, 1);
		return;
	}
	char rel[PATH_MAX];
	const char *target = rill_http_target(ex);
	if (!serve_decode(target, rel, sizeof rel) ||
	    (!sv->dotfiles && serve_has_dotfile(rel))) {
		serve_simple(ex, 404, "not found\n", NULL, 0);
		return;
	}
	struct serve_cached *ce = NULL;
	uint64_t now = uv_now(sv->loop);
	if (strlen(rel) < sizeof ce->rel) {
		ce = serve_slot(sv, rel);
		if (ce->body != NULL && strcmp(ce->rel, rel) == 0 &&
		    now - ce->checked_ms < SERVE_CACHE_MS) {
			serve_file(ex, -1, &ce->file, ce->body, head);
			return;
		}
	}
	int fd = serve_open(sv, rel);
	if (fd < 0) {
		serve_simple(ex, 404, "not found\n", NULL, 0);
		return;
	}
	serve_opened(sv, ex, fd, rel, ce, now, head);
}
