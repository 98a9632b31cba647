/*
 * The Xen backend of the vchan flow (include/rill/xen_vchan.h): grant
 * tables, event channels and xenstore, byte-compatible with libxenvchan
 * 4.17 (Xen's tools/libs/vchan, and its header libxenvchan.h). Files,
 * each calling only the ones listed before it:
 *   parse.c     the server's xenstore values and control page, parsed
 *               (pure, needs no Xen);
 *   names.c     paths and names (needs no Xen);
 *   store.c     xenstore: our domid, keys and permissions (store.h, a
 *               leaf: it knows nothing of the flow);
 *   backend.c   the backend ops, the devices, the logger;
 *   server.c    rill_xen_vchan_server: share, publish;
 *   client.c    rill_xen_vchan_client: look up, map, bind;
 *   listen.c    the listener behind xen-vchan: URIs;
 *   none.c      stand-ins for store.c to listen.c when rill is built
 *               without Xen;
 *   api.c       the public calls: arguments checked (no Xen);
 *   uri.c       the xen-vchan: URI scheme (needs no Xen).
 */
#ifndef RILL_TRANSPORT_VCHAN_XEN_H
#define RILL_TRANSPORT_VCHAN_XEN_H

#include "transport/vchan/flow.h"
#include "transport/vchan/xen/store.h"

#define RILL__XEN_DEFAULT_RING 65536u
/* Grant references that fit in the page after the 24-byte header. */
#define RILL__XEN_MAX_GRANTS                                    \
	((RILL__VCHAN_PAGE - sizeof(struct rill__vchan_page)) / \
	 sizeof(uint32_t))

/* The libraries' handle types, without their headers. */
struct xenevtchn_handle;
struct xengntdev_handle;

struct rill__xen_vchan;

/* A listener's hook: the client of a server it made attached. */
typedef void (*rill__xen_arrived_cb)(struct rill__xen_vchan *xv);

struct rill__xen_vchan {
	struct rill__vchan_flow ring;
	bool server;
	unsigned peer_domid;
	struct xenevtchn_handle *evtchn;
	uint32_t port; /* our end of the event channel */
	bool port_bound;
	struct xengntdev_handle *gnt; /* gntshr (server) or gnttab (client) */
	void *page;                   /* the control page */
	void *left, *right;           /* ring pages outside the page */
	uint32_t left_pages, right_pages;
	char path[RILL__XEN_PATH_BUF];
	bool owns_keys; /* remove path from xenstore on close */
	/* server */
	bool arrived;
	rill_vchan_server_cb srv_cb;
	rill__xen_arrived_cb arrived_cb; /* set by a listener */
	void *owner;
	/* client */
	uv_timer_t timer;
	bool timer_init;
	uint64_t deadline, retry_until, busy_until; /* loop time; 0: none */
	uint64_t retry_ms;
	rill_connect_cb cli_cb;
	void *ud;
};

/* ---- backend.c ---- */

/* A new Xen vchan flow (not attached). NULL on ENOMEM. */
struct rill__xen_vchan *rill__xen_vchan_new(uv_loop_t *loop, bool server,
                                            unsigned peer_domid);

/* Ends a flow that was never handed to the user. */
void rill__xen_vchan_discard(struct rill__xen_vchan *xv);

/* -ENODEV with a message unless the device nodes this side needs exist
 * (/dev/xen/evtchn, and gntalloc for a server or gntdev for a client). */
int rill__xen_check_devices(bool server);

/* Opens the event channel handle (non-blocking fd): 0 or -errno. */
int rill__xen_open_evtchn(struct rill__xen_vchan *xv);

/* After the rings are mapped: attach the flow to them and watch the
 * event channel. 0 or a libuv error. */
int rill__xen_attach(struct rill__xen_vchan *xv, int left_order,
                     int right_order);

/* The message the Xen libraries logged last on this thread ("" if none),
 * and the logger that records it (a struct xentoollog_logger). */
const char *rill__xen_lib_error(void);
void *rill__xen_logger(void);

/* ---- server.c ---- */

/*
 * A server vchan for domain domid at path (checked), rings of at least
 * rd and wr bytes (checked): shared, bound and published in xenstore.
 * The flow does not remove the keys on close (set owns_keys for that).
 * 0 and *out, or an error with rill_last_errmsg set.
 */
int rill__xen_server_create(uv_loop_t *loop, unsigned domid, const char *path,
                            size_t rd, size_t wr, struct rill__xen_vchan **out);

/* ---- store.c: see store.h ---- */

/* ---- names.c ---- */

/* Checks a port name ([a-zA-Z0-9_-]+). */
bool rill__xen_port_ok(const char *port);

/* Checks a full path: [a-zA-Z0-9_@/-], no "//", no trailing '/', at
 * most RILL__XEN_PATH_MAX bytes. */
bool rill__xen_path_ok(const char *path);

/*
 * The path of a vchan: opts_path when set (checked), else the default
 * path of (server, client, port). RILL_EINVAL or -ENAMETOOLONG with
 * rill_last_errmsg set.
 */
int rill__xen_vchan_path_of(const char *opts_path, unsigned server,
                            unsigned client, const char *port, char *buf,
                            size_t len);

/* Checks the sizes of opts (1 .. 1 MiB, 0 default) into rd, wr. */
int rill__xen_sizes(const struct rill_xen_vchan_opts *opts, size_t *rd,
                    size_t *wr);

/* ---- server.c, client.c, listen.c (or
 * none.c): behind the public calls of api.c, which
 * checked every argument's syntax. ---- */

int rill__xen_server_open(uv_loop_t *loop, unsigned domid, const char *port,
                          const struct rill_xen_vchan_opts *opts, size_t rd,
                          size_t wr, rill_vchan_server_cb cb, void *ud,
                          struct rill_flow **out);

int rill__xen_client_open(uv_loop_t *loop, unsigned domid, const char *port,
                          const struct rill_xen_vchan_opts *opts,
                          const struct rill_connect_opts *copts,
                          rill_connect_cb cb, void *ud);

/* A listener serving clients of domain domid one after the other, each
 * on a fresh vchan at the same path. */
int rill__xen_vchan_listen(uv_loop_t *loop, unsigned domid, const char *port,
                           const struct rill_xen_vchan_opts *opts,
                           const char *uri, rill_accept_cb cb, void *ud,
                           struct rill_listener **out);

/* rill__xen_parse_u32 (parse.c): see store.h. */

/*
 * The server's control page (RILL__VCHAN_PAGE bytes), as a client reads
 * it before mapping anything: the ring orders, read once and checked
 * against Xen's limits, and a copy of the n grant references of the
 * rings outside the page into refs (left ring's first). 0, or RILL_ERING
 * with nothing in refs. Pure.
 */
int rill__xen_page_grants(const void *page, int *lo, int *ro,
                          uint32_t refs[RILL__XEN_MAX_GRANTS], uint32_t *n);

#endif
