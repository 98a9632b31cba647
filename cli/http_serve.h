/*
 * rill http serve: the state shared by its request handling
 * (http_serve.c) and its command (http_serve_cmd.c: options, the loops,
 * accepting). Public API only.
 */
#ifndef RILL_CLI_HTTP_SERVE_H
#define RILL_CLI_HTTP_SERVE_H

#include <limits.h>
#include <sys/stat.h>

#include "http_files.h"
#include "http_ws.h"
#include "logfmt.h"
#include "metrics.h"
#include "workers.h"

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
	uint64_t failed;     /* failed accepts (handshakes), not yet logged */
	uint64_t failed_ms;  /* when the last such line was written */
	size_t max_conns;    /* this loop's share of --max-conns */
	uv_timer_t trim;     /* gives freed memory back (serve_trim) */
	size_t trim_peak;
	struct rill_http_server *srv;
	struct cli_worker *w;        /* the loop (thread) this one serves on */
	struct cli_metrics *metrics; /* --metrics; NULL: none */
	struct cli_mshard ms;        /* this loop's metrics */
	enum cli_log_format log_format;
	bool listen_tls;
	const struct serve_ws *ws;  /* --ws routes, or NULL */
	struct serve_ws_set ws_set; /* this loop's --ws relays */
	uv_timer_t ws_grace;        /* shutdown: the relays' grace */
};

/* The server's handler (rill_http_handler): answers one request of the
 * loop whose struct serve is ud. */
void cli_serve_handler(struct rill_flow *ex, void *ud);

#endif
