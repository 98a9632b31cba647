/*
 * rill http: serve a directory over HTTP/1.1 on any listening URI, and
 * fetch a URL over any connecting URI. Public API only.
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
 *
 * Limits a client cannot lift: --max-conns connections at once (default
 * SERVE_MAX_CONNS; beyond it a connection is closed at accept), and
 * --send-timeout (the library's send_timeout_ms): a response the client
 * stops reading is dropped with its connection.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "allow.h"
#include "cli.h"
#include "workers.h"
#include "http_files.h"
#include "logfmt.h"
#include "metrics.h"
#include "http_ws.h"

#define HTTP_GET_MAXHDR 200
#define SERVE_MAX_CONNS 512 /* --max-conns default */

/* ---------------------------------------------------------------------- */
/* serve */

/*
 * Small files are kept in memory, like nginx's open_file_cache: an entry
 * is trusted for SERVE_CACHE_MS, then revalidated (open + fstat: same
 * inode, size and mtime keep it). So a changed file is seen within that
 * time, and a hot small file costs no system call but the writev.
 */
#define SERVE_CACHE_SLOTS 256
#define SERVE_CACHE_MAX   (64u * 1024u)
#define SERVE_CACHE_MS    1000u

struct serve_cached {
	char rel[256];
	struct rill_buf *body;
	struct http_file file;
	ino_t ino;
	dev_t dev;
	uint64_t checked_ms;
};

struct serve {
	struct serve_cached cache[SERVE_CACHE_SLOTS];
	uv_loop_t *loop;
	int dirfd;
	char root[PATH_MAX];
	bool listing;
	bool dotfiles;
	bool quiet;
	uint64_t refused;    /* connections over --max-conns, not yet logged */
	uint64_t refused_ms; /* when the last such line was written */
	size_t max_conns;    /* this loop's share of --max-conns */
	uv_timer_t trim;     /* gives freed memory back (serve_trim) */
	size_t trim_peak;
	struct rill_http_server *srv;
	struct cli_worker *w;        /* the loop (thread) this one serves on */
	struct cli_metrics *metrics; /* --metrics; NULL: none */
	struct cli_mshard ms;        /* this loop's metrics */
	enum cli_log_format log_format;
	bool listen_tls;
	const struct serve_ws *ws; /* --ws routes, or NULL */
};

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

static void serve_handler(struct rill_flow *ex, void *ud)
{
	struct serve *sv = ud;
	if (sv->ws != NULL && serve_ws_try(sv->ws, ex))
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
	if (S_ISDIR(st.st_mode)) {
		size_t rl = strlen(rel);
		if (rl > 0 && rel[rl - 1] != '/') {
			/* Relative links in the listing need the slash. */
			char loc[PATH_MAX + 2];
			snprintf(loc, sizeof loc, "/%s/", rel);
			struct rill_http_header h = {"Location", loc};
			close(fd);
			serve_simple(ex, 301, "moved\n", &h, 1);
			return;
		}
		/* index.html is resolved from the root, as any path: a
		 * symbolic link to it that stays inside DIR is served. */
		char irel[PATH_MAX + 16];
		snprintf(irel, sizeof irel, "%sindex.html", rel);
		int ifd = strlen(irel) < sizeof rel ? serve_open(sv, irel) : -1;
		struct stat ist;
		if (ifd >= 0 &&
		    (fstat(ifd, &ist) != 0 || !S_ISREG(ist.st_mode))) {
			close(ifd);
			close(fd);
			serve_simple(ex, 403, "forbidden: not a regular file\n",
			             NULL, 0);
			return;
		}
		if (ifd >= 0) {
			close(fd);
			fd = ifd;
			st = ist;
			snprintf(rel, sizeof rel, "%s", irel);
		} else if (sv->listing) {
			serve_listing(sv, ex, fd, rel, target);
			return;
		} else {
			close(fd);
			serve_simple(ex, 404, "not found\n", NULL, 0);
			return;
		}
	}
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

static void serve_on_accept(struct rill_listener *l, struct rill_flow *f,
                            int status, const char *errmsg, void *ud)
{
	(void)l;
	struct cli_worker *w = ud;
	struct serve *sv = w->data;
	cli_m_tls(&sv->ms, true, sv->listen_tls, status);
	if (status != 0) {
		if (!sv->quiet)
			cli_error("accept: %s", errmsg);
		return;
	}
	cli_m_accepted(&sv->ms);
	if (rill_http_server_serve(sv->srv, f) != -EBUSY || sv->quiet)
		return;
	/* Over --max-conns: closed at once (a client learns at once
	 * instead of waiting in the backlog). One line a second at most:
	 * a flood must not become a flood of log lines. */
	sv->refused++;
	uint64_t now = uv_now(sv->loop);
	if (sv->refused_ms == 0 || now - sv->refused_ms >= 1000) {
		cli_error("http serve: %" PRIu64 " connection(s) closed at "
		          "accept: --max-conns reached (%zu on this thread)",
		          sv->refused, sv->max_conns);
		sv->refused = 0;
		sv->refused_ms = now ? now : 1;
	}
}

/*
 * glibc keeps freed heap memory for reuse: after a burst of connections
 * (each holds a 256 KiB chunk in flight), RSS would stay at the burst's
 * peak. Once a second, when connections went away since the last look,
 * malloc_trim gives the free pages back, so a flood of clients that
 * --send-timeout dropped leaves no lasting footprint.
 */
static void serve_trim(uv_timer_t *t)
{
	struct serve *sv = t->data;
	size_t n = rill_http_server_connections(sv->srv);
	if (n < sv->trim_peak) {
#ifdef __GLIBC__
		malloc_trim(0);
#endif
		sv->trim_peak = n;
	} else {
		sv->trim_peak = n;
	}
}

static void serve_stopped(void *ud)
{
	struct serve *sv = ud;
	cli_worker_done(sv->w);
}

/* SIGINT/SIGTERM: in-flight requests finish (the listener is closed). */
static void serve_on_stop(struct cli_worker *w)
{
	struct serve *sv = w->data;
	if (w->index == 0)
		cli_metrics_stop(sv->metrics);
	rill_http_server_shutdown(sv->srv, serve_stopped, sv);
}

/* A second signal: stop now. */
static void serve_on_hurry(struct cli_worker *w)
{
	struct serve *sv = w->data;
	rill_http_server_free(sv->srv);
	sv->srv = NULL;
	cli_worker_done(w);
}

static void serve_on_finish(struct cli_worker *w)
{
	struct serve *sv = w->data;
	uv_close((uv_handle_t *)&sv->trim, NULL);
	rill_http_server_free(sv->srv);
	sv->srv = NULL;
	for (size_t i = 0; i < SERVE_CACHE_SLOTS; i++)
		rill_buf_release(sv->cache[i].body);
}

static const struct cli_workers_ops serve_ops = {
    .accept = serve_on_accept,
    .stop = serve_on_stop,
    .hurry = serve_on_hurry,
    .finish = serve_on_finish,
};

/* --allow (cli/allow.h); read only once the loops run. */
static struct cli_allow serve_allow = {.cmd = "http serve"};

/* One struct serve per loop (its own cache and HTTP server), the root
 * shared; then every loop runs. Returns the exit status. */
static int serve_run(struct serve *tmpl, const char *uri, unsigned threads,
                     const struct rill_http_server_opts *tmpl_o,
                     size_t max_conns)
{
	struct cli_workers g;
	/* --max-conns is shared out over the loops (each has its own
	 * server), so the whole process never holds more. */
	if (threads > max_conns)
		threads = (unsigned)max_conns;
	struct serve *svs = calloc(threads, sizeof *svs);
	int err = svs == NULL ? RILL_ENOMEM
	                      : cli_workers_init(&g, threads, &serve_ops, NULL);
	for (unsigned i = 0; err == 0 && i < threads; i++) {
		struct serve *sv = &svs[i];
		sv->loop = &g.w[i].loop;
		sv->dirfd = tmpl->dirfd;
		memcpy(sv->root, tmpl->root, sizeof sv->root);
		sv->listing = tmpl->listing;
		sv->dotfiles = tmpl->dotfiles;
		sv->quiet = tmpl->quiet;
		sv->metrics = tmpl->metrics;
		sv->log_format = tmpl->log_format;
		sv->listen_tls = cli_uri_has_tls(uri);
		sv->ws = tmpl->ws;
		sv->w = &g.w[i];
		g.w[i].data = sv;
		struct rill_http_server_opts o = *tmpl_o;
		o.max_connections =
		    max_conns / threads + (i < max_conns % threads ? 1 : 0);
		sv->max_conns = o.max_connections;
		err = rill_http_server_new(sv->loop, &o, serve_handler, sv,
		                           &sv->srv);
	}
	struct rill_listen_opts lo;
	serve_allow.log = !tmpl->quiet;
	for (unsigned i = 0; err == 0 && i < threads; i++)
		err = cli_mshard_init(&svs[i].ms, tmpl->metrics);
	if (err == 0)
		err = cli_workers_listen(
		    &g, uri, cli_allow_opts(&serve_allow, &lo), tmpl->quiet);
	if (err == 0 && tmpl->metrics != NULL &&
	    cli_metrics_listen(tmpl->metrics, &g.w[0].loop) != 0)
		exit(1); /* said why; the loops hold listeners now */
	if (err != 0) {
		const char *why = rill_last_errmsg();
		cli_error("http serve: %s",
		          why && *why ? why : rill_strerror(err));
		for (unsigned i = 0; svs != NULL && i < threads; i++)
			rill_http_server_free(svs[i].srv);
		if (svs != NULL && g.w != NULL)
			cli_workers_abandon(&g);
		free(svs);
		return 1;
	}
	/* The loops do not run yet: their handles may be made here. */
	for (unsigned i = 0; i < threads; i++) {
		uv_timer_init(svs[i].loop, &svs[i].trim);
		svs[i].trim.data = &svs[i];
		uv_timer_start(&svs[i].trim, serve_trim, 1000, 1000);
		uv_unref((uv_handle_t *)&svs[i].trim);
	}
	cli_workers_run(&g);
	free(svs);
	return 0;
}

static void serve_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: rill http serve [OPTIONS] URI [DIR]\n"
	    "\n"
	    "Serves the files under DIR (default: the current directory)\n"
	    "over HTTP/1.1 on every connection accepted on URI, which may\n"
	    "be any listening URI: tcp://127.0.0.1:8080, unix:/run/s.sock,\n"
	    "vsock://any:80, vchan:web, tls+tcp://...?cert=..&key=..,\n"
	    "shut+unix:... GET and HEAD; keep-alive and pipelining.\n"
	    "\n"
	    "  Content-Type comes from the file extension (a table of the\n"
	    "  common types). Files carry Last-Modified and a strong ETag;\n"
	    "  If-None-Match and If-Modified-Since are answered with 304,\n"
	    "  If-Match and If-Unmodified-Since with 412. One byte range\n"
	    "  (Range: bytes=A-B, A-, -N) gives 206 with Content-Range, an\n"
	    "  unsatisfiable one 416; If-Range is honoured; several ranges\n"
	    "  get the whole file (200). HEAD answers every path with the\n"
	    "  headers GET would send.\n"
	    "  A directory is served as its index.html, else as an HTML\n"
	    "  listing (hidden files omitted), or 404 with --no-listing.\n"
	    "  Paths never leave DIR: \"..\" segments (also encoded as\n"
	    "  %%2e%%2e) and NUL are refused with 404, and files are opened\n"
	    "  with openat2(RESOLVE_BENEATH): symbolic links are followed\n"
	    "  only when they stay inside DIR; others give 404. Names that\n"
	    "  start with a dot (.git, .env) give 404 unless --dotfiles.\n"
	    "  Anything but a regular file or a directory (a FIFO, a\n"
	    "  device) gives 403.\n"
	    "\n"
	    "Options:\n"
	    "  --no-listing          404 for directories without index.html\n"
	    "  --max-header-bytes N  request head limit (default 16384)\n"
	    "  --max-body N          request body limit (default 64 MiB)\n"
	    "  --idle-timeout MS     keep-alive idle timeout (default 60000)\n"
	    "  --header-timeout MS   request head deadline (default 10000)\n"
	    "  --body-timeout MS     request body progress (default 30000)\n"
	    "  --send-timeout MS     close a connection whose response\n"
	    "                        makes no write progress for MS (a\n"
	    "                        client that stopped reading; default\n"
	    "                        30000)\n"
	    "  --max-conns N         serve at most N connections at once;\n"
	    "                        more are closed at accept (default\n"
	    "                        512)\n"
	    "  --dotfiles            serve files and directories whose\n"
	    "                        name starts with a dot (default: 404)\n"
	    "  --threads N           N event loops on N threads, the\n"
	    "                        connections spread over them (default:\n"
	    "                        the number of online CPUs)\n"
	    "  --allow PATTERN       serve only clients that match a PATTERN\n"
	    "                        (repeatable; the syntax of rill relay\n"
	    "                        --allow); others are closed at accept\n"
	    "  --ws PATH=URI         WebSocket upgrades of PATH are relayed\n"
	    "                        to a new connection to URI, both ways\n"
	    "                        (websockify's job; a plain request\n"
	    "                        for PATH gets 426); repeatable\n"
	    "  -q, --quiet           no messages for failed accepts\n"
	    "  --metrics URI         serve Prometheus metrics (GET\n"
	    "                        /metrics) over HTTP on the listening\n"
	    "                        URI URI\n"
	    "  --log-format json     one JSON object per request on stderr\n"
	    "                        (default text: no request log)\n"
	    "  -h, --help            this help\n"
	    "\n"
	    "SIGINT/SIGTERM: graceful shutdown (in-flight requests finish);\n"
	    "a second signal stops at once.\n");
}

static int http_serve(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"no-listing", no_argument, NULL, 'L'},
	    {"max-header-bytes", required_argument, NULL, 'H'},
	    {"max-body", required_argument, NULL, 'B'},
	    {"idle-timeout", required_argument, NULL, 'I'},
	    {"header-timeout", required_argument, NULL, 'T'},
	    {"body-timeout", required_argument, NULL, 'Y'},
	    {"send-timeout", required_argument, NULL, 'S'},
	    {"max-conns", required_argument, NULL, 'M'},
	    {"dotfiles", no_argument, NULL, 'D'},
	    {"threads", required_argument, NULL, 'N'},
	    {"allow", required_argument, NULL, 'a'},
	    {"ws", required_argument, NULL, 'W'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"metrics", required_argument, NULL, 'P'},
	    {"log-format", required_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool listing = true, quiet = false, dotfiles = false;
	uint64_t max_conns = SERVE_MAX_CONNS;
	const char *metrics_uri = NULL;
	enum cli_log_format log_format = CLI_LOG_TEXT;
	unsigned threads = cli_threads_default();
	struct rill_http_server_opts o = {0};
	static struct serve_ws ws;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+qh", lopts, NULL)) != -1) {
		char *end = NULL;
		unsigned long long v = 0;
		if (c == 'a') {
			if (cli_allow_add(&serve_allow, "http serve", optarg))
				return 2;
			continue;
		}
		if (c == 'P') {
			metrics_uri = optarg;
			continue;
		}
		if (c == 'F') {
			if (!cli_log_format_parse(optarg, &log_format))
				return cli_usage_error("http serve",
				                       "bad --log-format '%s'",
				                       optarg);
			continue;
		}
		if (c == 'W') {
			if (!serve_ws_add(&ws, optarg))
				return cli_usage_error(
				    "http serve", "bad --ws '%s' (PATH=URI)",
				    optarg);
			continue;
		}
		if (optarg != NULL) {
			v = strtoull(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v == 0)
				return cli_usage_error(
				    "http serve", "bad number '%s'", optarg);
		}
		switch (c) {
		case 'L': listing = false; break;
		case 'H': o.max_header_bytes = (size_t)v; break;
		case 'B': o.max_body = v; break;
		case 'I': o.idle_timeout_ms = v; break;
		case 'T': o.header_timeout_ms = v; break;
		case 'Y': o.body_timeout_ms = v; break;
		case 'S': o.send_timeout_ms = v; break;
		case 'M':
			if (v > 1000000)
				return cli_usage_error("http serve",
				                       "bad --max-conns '%s'",
				                       optarg);
			max_conns = v;
			break;
		case 'D': dotfiles = true; break;
		case 'N':
			if (v > 1024)
				return cli_usage_error(
				    "http serve", "bad --threads '%s'", optarg);
			threads = (unsigned)v;
			break;
		case 'q': quiet = true; break;
		case 'h': serve_usage(stdout); return 0;
		default: return cli_usage_error("http serve", "bad option");
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		return cli_usage_error("http serve", "expected URI [DIR]");
	const char *uri = argv[optind];
	const char *dir = argc - optind == 2 ? argv[optind + 1] : ".";
	struct serve *svp = calloc(1, sizeof *svp);
	if (svp == NULL)
		return 1;
	svp->listing = listing;
	svp->dotfiles = dotfiles;
	svp->quiet = quiet;
	svp->log_format = log_format;

	ws.quiet = quiet;
	svp->ws = ws.n > 0 ? &ws : NULL;
	if (realpath(dir, svp->root) == NULL) {
		cli_error("http serve: %s: %s", dir, strerror(errno));
		free(svp);
		return 1;
	}
	svp->dirfd = open(svp->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (svp->dirfd < 0) {
		cli_error("http serve: %s: %s", dir, strerror(errno));
		free(svp);
		return 1;
	}
	struct cli_metrics metrics;
	if (metrics_uri != NULL) {
		if (cli_metrics_init(&metrics, metrics_uri, uri,
		                     CLI_METRICS_HTTP) != 0) {
			close(svp->dirfd);
			free(svp);
			return 1;
		}
		svp->metrics = &metrics;
	}
	int code = serve_run(svp, uri, threads, &o, (size_t)max_conns);
	cli_metrics_free(svp->metrics);
	close(svp->dirfd);
	free(svp);
	return code;
}

/* ---------------------------------------------------------------------- */
/* get */

struct get {
	bool head_done;
	int status;
	bool show_headers;
	const char *method;
};

static void get_on_head(struct rill_flow *ex, int status, void *ud)
{
	struct get *g = ud;
	g->head_done = true;
	g->status = status;
	if (status != 0 || !g->show_headers)
		return;
	int code = rill_http_status(ex);
	printf("HTTP/1.%d %d %s\r\n", rill_http_version_minor(ex), code,
	       rill_http_reason(code));
	size_t n = rill_http_header_count(ex);
	for (size_t i = 0; i < n; i++) {
		const char *k, *v;
		if (rill_http_header_at(ex, i, &k, &v) == 0)
			printf("%s: %s\r\n", k, v);
	}
	printf("\r\n");
}

/* Splits http://host[:port]/path into a connect URI, Host and target. */
static bool get_parse_url(const char *url, char *conn, size_t clen, char *host,
                          size_t hlen, const char **target)
{
	const char *p;
	if (strncmp(url, "http://", 7) == 0)
		p = url + 7;
	else
		return false;
	const char *slash = strchr(p, '/');
	size_t auth = slash ? (size_t)(slash - p) : strlen(p);
	if (auth == 0 || auth >= hlen)
		return false;
	memcpy(host, p, auth);
	host[auth] = '\0';
	*target = slash ? slash : "/";
	/* tcp:// needs a port; HTTP's default is 80. */
	const char *colon = strrchr(host, ':');
	const char *rb = strrchr(host, ']');
	bool has_port = colon != NULL && (rb == NULL || colon > rb);
	int n = snprintf(conn, clen, "tcp://%s%s", host, has_port ? "" : ":80");
	return n > 0 && (size_t)n < clen;
}

static void get_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: rill http get [OPTIONS] URL\n"
	    "\n"
	    "Fetches URL (http://host[:port]/path) and writes the response\n"
	    "body to standard output. The connection goes to host:port over\n"
	    "TCP, or over any connecting URI given with --via (unix:/s.sock,\n"
	    "vsock://3:80, vchan:web, tls+tcp://h:443?ca=FILE, shut+...);\n"
	    "the URL then only supplies the Host header and the path.\n"
	    "\n"
	    "Options:\n"
	    "  --via URI          connect through URI instead of the URL's "
	    "host\n"
	    "  -i, --include      print the status line and headers too\n"
	    "  -I, --head         send HEAD instead of GET (implies -i)\n"
	    "  --timeout MS       give up after MS milliseconds (default "
	    "30000)\n"
	    "  -h, --help         this help\n"
	    "\n"
	    "Exit status: 0 for a 1xx-3xx response; 1 with a one-line reason\n"
	    "on stderr for a 4xx/5xx status (the body is still printed), a\n"
	    "connection failure or a malformed response; 2 for bad usage.\n");
}

static int http_get(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"via", required_argument, NULL, 'v'},
	    {"include", no_argument, NULL, 'i'},
	    {"head", no_argument, NULL, 'I'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *via = NULL;
	struct get g = {.method = "GET"};
	uint64_t timeout = 30000;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+iIh", lopts, NULL)) != -1) {
		switch (c) {
		case 'v': via = optarg; break;
		case 'i': g.show_headers = true; break;
		case 'I':
			g.show_headers = true;
			g.method = "HEAD";
			break;
		case 't': {
			char *end;
			timeout = strtoull(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || timeout == 0)
				return cli_usage_error(
				    "http get", "bad timeout '%s'", optarg);
			break;
		}
		case 'h': get_usage(stdout); return 0;
		default: return cli_usage_error("http get", "bad option");
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("http get", "expected one URL");
	const char *url = argv[optind];
	char conn_uri[1024], host[512];
	const char *target;
	if (!get_parse_url(url, conn_uri, sizeof conn_uri, host, sizeof host,
	                   &target))
		return cli_usage_error(
		    "http get",
		    "bad URL '%s' (expected http://host[:port]"
		    "/path)",
		    url);
	uv_loop_t *loop = uv_default_loop();
	struct rill_connect_opts co = {.timeout_ms = timeout};
	struct rill_flow *f = NULL;
	const char *cu = via != NULL ? via : conn_uri;
	int err = rill_connect_sync(loop, cu, &co, &f);
	if (err != 0) {
		const char *why = rill_last_errmsg();
		cli_error("http get %s: %s", url,
		          why && *why ? why : rill_strerror(err));
		return 1;
	}
	rill_set_read_timeout(f, timeout);
	struct rill_http_client *cl;
	err = rill_http_client_new(f, NULL, &cl);
	struct rill_flow *ex = NULL;
	struct rill_http_header h[] = {
	    {"Host", host},
	    {"User-Agent", "rill/" RILL_VERSION_STRING},
	    {"Accept", "*/*"},
	};
	if (err == 0)
		err = rill_http_request(cl, g.method, target, h, 3, 0,
		                        get_on_head, &g, &ex);
	if (err != 0) {
		cli_error("http get %s: %s", url, rill_strerror(err));
		rill_http_client_free(cl);
		cli_wait_closed(loop);
		return 1;
	}
	while (!g.head_done)
		uv_run(loop, UV_RUN_ONCE);
	int rc = 0;
	if (g.status != 0) {
		cli_error("http get %s: %s", url, rill_strerror(g.status));
		rc = 1;
	} else {
		for (;;) {
			struct rill_buf *b;
			err = rill_read_sync(ex, &b);
			if (err != 0)
				break;
			fwrite(b->data, 1, b->len, stdout);
			rill_buf_release(b);
		}
		fflush(stdout);
		int code = rill_http_status(ex);
		if (err != RILL_EOF) {
			cli_error("http get %s: response body: %s", url,
			          rill_strerror(err));
			rc = 1;
		} else if (code >= 400) {
			cli_error("http get %s: %d %s", url, code,
			          rill_http_reason(code));
			rc = 1;
		}
	}
	rill_close(ex);
	rill_http_client_free(cl);
	/* Over shut+, the close handshake must finish before we exit. */
	cli_wait_closed(loop);
	return rc;
}

/* ---------------------------------------------------------------------- */

static void http_usage(FILE *out)
{
	fprintf(out, "Usage: rill http serve [OPTIONS] URI [DIR]\n"
	             "       rill http get [OPTIONS] URL\n"
	             "\n"
	             "HTTP/1.1 over any flow. 'rill http serve --help' and\n"
	             "'rill http get --help' describe each.\n");
}

int cli_http(int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error("http", "expected 'serve' or 'get'");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		http_usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "serve") == 0)
		return http_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "get") == 0)
		return http_get(argc - 1, argv + 1);
	return cli_usage_error("http", "unknown subcommand '%s'", argv[1]);
}
