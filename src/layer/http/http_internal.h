/*
 * The HTTP/1.1 layer's internals (doc/architecture.md), shared by the
 * files of src/layer/http/ and by nothing else:
 *
 *   server.c    the server object; a request head's arrival
 *   client.c    the client object and requests; a response head's
 *               arrival
 *   upgrade.c   handing a server connection over to another protocol
 *   respond.c   the server's responses (rill_http_respond...)
 *   exchange.c  one request/response exchange as a flow (struct http_ex):
 *               body reads and framed body writes; head accessors
 *   conn.c      the connection: timers, the write queue, input, teardown,
 *               and the driver (rill__http_conn_drive) whose step
 *               functions decide what a connection does next
 *   message.c   message heads built as buffers: reason phrases, Date,
 *               header and token checks, request and response heads
 *   parse.c     llhttp callbacks collecting a message head into the
 *               connection's arena; running the parser
 *
 * Calls between the files point one way, down this list: server.c,
 * client.c and upgrade.c are the connection's users; respond.c calls
 * exchange.c, conn.c and message.c; exchange.c calls conn.c, message.c
 * and parse.c; conn.c calls message.c and parse.c, which call none of
 * the others. The connection reaches up to its user (server or client)
 * only through the role table its user installed (struct
 * http_conn_user): a head arrived, the connection is gone, a warning.
 * The exchange's state is shared data (struct http_ex below): the
 * connection reads and sets it, and hands the exchange its results
 * through the flow core (rill_flow_read_done...), never through
 * exchange.c.
 *
 * The parser is llhttp (Node.js's), compiled from Debian's node-llhttp
 * sources. rill never parses HTTP syntax itself: it collects llhttp's
 * spans into a per-connection arena and frames what it sends.
 *
 * One connection (struct http_conn) carries one exchange at a time
 * (struct http_ex, a flow). The parser is paused at every point where the
 * connection must wait for its user: at the end of a head (the handler or
 * the response callback runs), after every body span (one span is one
 * read result of the exchange: that is the body's back-pressure), and at
 * the end of a message. llhttp callbacks only record; everything that can
 * reach user code happens after llhttp_execute() returned, in
 * rill__http_conn_drive(), so no user callback ever runs inside the
 * parser.
 *
 * Pipelined requests wait in the input buffer (the parser stays paused)
 * until the exchange before them was closed by its handler, so responses
 * leave in order. All writes to the connection go through its own write
 * queue in order too; the connection keeps a small FIFO saying whom each
 * completion belongs to, because an exchange may be closed while its
 * write is still in flight.
 */
#ifndef RILL_LAYER_HTTP_INTERNAL_H
#define RILL_LAYER_HTTP_INTERNAL_H

#include "llhttp.h"
#include "rill/impl.h"

/* Canned responses of the server's own errors (RFC 9110 section 15). */
#define HTTP_CANNED(code, reason)                                \
	"HTTP/1.1 " #code " " reason "\r\nContent-Length: 0\r\n" \
	"Connection: close\r\n\r\n"

#define HTTP_WRQ_MAX    32 /* io writes in flight per connection */
#define HTTP_PIPE_MAX   8  /* stop reading pipelined requests beyond this */
#define HTTP_LINGER_MS  2000
#define HTTP_LINGER_MAX (1024u * 1024u) /* bytes discarded at most */

enum { ROLE_SERVER = 0, ROLE_CLIENT = 1 };

enum conn_state {
	ST_HEAD,     /* waiting for / parsing a message head */
	ST_EXCHANGE, /* a head was delivered; body and response in progress */
	ST_IDLE,     /* client: no request outstanding */
	ST_LINGER,   /* server: closing; draining input until EOF or timeout */
	ST_DEAD,
};

enum timer_kind { TM_NONE, TM_IDLE, TM_HEADER, TM_BODY, TM_LINGER };

struct http_hdr {
	uint32_t name, name_len, value, value_len;
};

/* One parsed head, strings in the connection's arena. */
struct http_head {
	char *arena;
	size_t cap, used;
	struct http_hdr *hdrs;
	size_t max, n;
	uint32_t url, url_len;
	bool in_value;
	bool overflow; /* a limit was hit: 431 */
	bool complete;
	size_t raw; /* raw head bytes fed to the parser */
};

struct http_ex;
struct http_conn;

/*
 * What a connection's user (the server or the client) does for it: the
 * role table the user installs at rill__http_conn_init. The connection
 * calls up through it only, so no file below calls the server or the
 * client.
 *   head  a message head is complete (c->head, c->parser): a request
 *         (server) or the response of c->ex (client). It may deliver
 *         the head to user code, which may close the exchange or tear
 *         the connection down.
 *   gone  the connection was torn down (rill__http_conn_destroy): the
 *         user lets go of it. Called once.
 *   log   a warning about the connection (server only; may be NULL
 *         for a client).
 */
struct http_conn_user {
	void (*head)(struct http_conn *c);
	void (*gone)(struct http_conn *c);
	void (*log)(struct http_conn *c, const char *msg);
};

struct http_wrq {
	struct http_ex *ex; /* NULL: a response write nobody waits for */
	uint8_t kind;       /* WR_PLAIN, WR_EX_WRITE, WR_EX_SHUT */
};

enum { WR_PLAIN, WR_EX_WRITE, WR_EX_SHUT };

struct rill_http_server {
	uv_loop_t *loop;
	struct rill_http_server_opts o;
	rill_http_handler handler;
	void *ud;
	struct http_conn *conns;
	size_t nconns;
	bool shutting_down;
	void (*done)(void *ud);
	void *done_ud;
	uv_idle_t done_idle;
	bool freeing;
	/* Send progress (send_timeout_ms): one timer per server, running
	 * while it has connections, looks at each connection's writes every
	 * quarter of the timeout. Cheaper than a timer restarted with every
	 * write, which cost about 8% of a small request's CPU. */
	uv_timer_t sweep;
	unsigned open_handles;
};

struct http_conn {
	llhttp_t parser;
	struct http_head head;
	int role;
	const struct http_conn_user *user;
	enum conn_state st;
	struct rill_http_server *srv;
	struct http_conn *next, *prev; /* server's list */
	struct rill_http_client *client;
	struct rill_flow *io;
	uv_timer_t timer;
	enum timer_kind tkind;
	/* Server: runs while the exchange waits on its handler (no body
	 * read, no write in progress): handler_timeout_ms. */
	uv_timer_t htimer;
	unsigned open_handles; /* timers not yet closed */
	/* When a write to io last completed, or started from none in
	 * flight (loop time): the send timeout's measure. */
	uint64_t wr_progress_ms;
	struct rill_buf *in; /* unparsed input */
	size_t in_off;
	bool reading;
	int io_status; /* 0, RILL_EOF or the io read error */
	struct http_ex *ex;
	/* Results recorded by llhttp callbacks for rill__http_conn_drive. */
	bool ev_head, ev_msg_end;
	struct rill_buf *ev_body;
	int ev_status; /* server error status to send (400, 413...) */
	bool body_done;
	bool keep_alive;
	bool driving, again;
	uint64_t body_bytes;
	uint64_t nreq;
	/* Server: when it was taken (uv_hrtime), and io's byte counters
	 * read just before io was closed (for conn_done). */
	uint64_t t0_ns, io_in, io_out;
	struct http_wrq wrq[HTTP_WRQ_MAX];
	unsigned wrq_head, wrq_n;
	unsigned pending_resp; /* plain response writes in flight */
	bool head_seen;        /* bytes of the current head arrived */
	bool drain_ok;         /* an unread request body may be skipped */
	bool kick;             /* the parser paused: run it again */
	bool finished;         /* llhttp_finish was called */
	uint64_t linger_bytes; /* discarded while lingering */
};

struct http_ex {
	struct rill_flow base;
	struct http_conn *conn; /* NULL once detached */
	int err;                /* reported after detach */
	int role;
	/* Head fields copied from the parser at the end of the head. */
	uint8_t method;
	uint8_t minor;
	uint16_t status;
	int64_t clen;
	/* Body input. */
	bool reading;
	bool expect_continue;
	/* Output framing. */
	struct rill_buf *out_head; /* not yet sent */
	bool out_started;          /* respond called (server) */
	bool out_chunked;
	bool out_discard; /* HEAD / 204 / 304: drop body bytes */
	bool out_until_close;
	bool out_done;
	int64_t out_left; /* Content-Length bytes still due, or -1 */
	bool head_request;
	rill_http_response_cb resp_cb;
	void *resp_ud;
};

struct rill_http_client {
	struct http_conn *conn;
	struct rill_http_client_opts o;
	bool broken;
};
/* parse.c */
extern const llhttp_settings_t rill__http_settings;
void rill__http_head_reset(struct http_head *h);
const char *rill__http_head_get(const struct http_head *h, const char *name);
/* Runs the parser over the unparsed input until it pauses or needs more.
 * Returns 0, or an llhttp error (not HPE_PAUSED). */
llhttp_errno_t rill__http_parse(struct http_conn *c);
/* Maps an llhttp failure to the status the server answers with. */
int rill__http_error_status(struct http_conn *c, llhttp_errno_t e);

/* conn.c */
int rill__http_conn_init(struct http_conn *c, uv_loop_t *loop,
                         struct rill_flow *io, int role,
                         const struct http_conn_user *user, size_t hbytes,
                         size_t nhdrs);
/* Runs the connection's step functions until none has more to do. */
void rill__http_conn_drive(struct http_conn *c);
/* Tears the connection down at once; err goes to an open exchange. The
 * memory stays valid until the loop runs again. */
void rill__http_conn_destroy(struct http_conn *c, int err);
/* Server: answers with one of our canned errors and closes. */
void rill__http_conn_send_error(struct http_conn *c, int status);
/* Writes bufs to the connection; whom == NULL for plain writes. Takes
 * over the caller's references to bufs (released here in every case).
 * Returns 0 or an error (then nobody is notified). */
int rill__http_conn_write(struct http_conn *c, struct rill_buf **bufs, size_t n,
                          struct http_ex *whom, int kind);
void rill__http_conn_timer(struct http_conn *c, enum timer_kind k, uint64_t ms);
/* Server: starts the handler timer when the exchange waits on its
 * handler, stops it otherwise. Called after anything that may change
 * that. */
void rill__http_conn_watch(struct http_conn *c);
/* Server: sends "100 Continue" if the exchange's client waits for it.
 * Returns 0 or an error (the connection is then destroyed). */
int rill__http_conn_continue(struct http_conn *c, struct http_ex *ex);
/* rill_write_file of a body range to the connection, for whom (a
 * WR_EX_WRITE). Returns 0 or an error (then nobody is notified). */
int rill__http_conn_write_file(struct http_conn *c, int fd, uint64_t offset,
                               uint64_t length, struct http_ex *whom);
/* The message body of ex was sent in full. */
void rill__http_conn_output_done(struct http_ex *ex);

/* exchange.c */
/* The exchange behind f, or NULL when f is not an HTTP exchange. */
struct http_ex *rill__http_ex_of(struct rill_flow *f);
struct http_ex *rill__http_ex_new(struct http_conn *c, int role);
/* Copies the head fields the exchange keeps from the parser. */
void rill__http_ex_fill_head(struct http_ex *ex, struct http_conn *c);

/* message.c */
/* A buffer over static bytes (no copy; never freed). */
struct rill_buf *rill__http_static_buf(const char *s, size_t len);
/* Header names must be tokens and values must not contain CR or LF. */
bool rill__http_header_ok(const struct rill_http_header *h);
/* A header a response handler may set: rill__http_header_ok, and not
 * one of the framing headers the layer writes itself. */
bool rill__http_response_header_ok(const struct rill_http_header *h);
/* A method token (target false) or a request target (target true). */
bool rill__http_token_ok(const char *s, bool target);

/* What a response head says. */
struct http_resp_head {
	uv_loop_t *loop; /* for the Date header's clock */
	int status;
	const char *server_name;             /* Server header, or NULL */
	const struct rill_http_header *hdrs; /* checked by the caller */
	size_t n;
	int64_t clen;    /* Content-Length, or -1 */
	bool chunked;    /* Transfer-Encoding: chunked (when clen < 0) */
	bool keep_alive; /* false: Connection: close */
	bool http10;     /* keep-alive answering HTTP/1.0: say so */
};
/* The response head as one buffer, or NULL on ENOMEM. */
struct rill_buf *rill__http_response_head(const struct http_resp_head *h);
/* The request head as one buffer, or NULL on ENOMEM. The method, target
 * and headers were checked by the caller; clen > 0 announces a
 * Content-Length, clen < 0 a chunked body. */
struct rill_buf *rill__http_request_head(const char *method, const char *target,
                                         const struct rill_http_header *hdrs,
                                         size_t n, int64_t clen);

#endif /* RILL_LAYER_HTTP_INTERNAL_H */
