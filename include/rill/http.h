/*
 * rill/http.h - HTTP/1.1 server and client over any flow.
 * Included by rill.h; do not include directly.
 *
 * The parser is llhttp (Node.js's). One HTTP request/response pair is an
 * *exchange*, and an exchange is itself a flow:
 *
 *   server side   reads deliver the request body, then RILL_EOF;
 *                 writes send the response body (after
 *                 rill_http_respond); rill_shutdown(RILL_SHUT_WR) ends it.
 *   client side   writes send the request body; rill_shutdown(RILL_SHUT_WR)
 *                 ends it; reads deliver the response body, then RILL_EOF.
 *
 * So a body has the back-pressure of any flow: the server reads the
 * connection only while a body reader waits, and a body write completes
 * when the connection below accepted it. Bodies are framed with
 * Content-Length when the length is known up front, chunked otherwise.
 *
 * The owner of an exchange closes it with rill_close() when done. On the
 * server, closing an exchange whose response is complete lets the
 * connection go on with the next (keep-alive, pipelined) request; closing
 * it earlier aborts: a 500 if nothing was sent yet, else the connection
 * closes (the client sees a truncated response).
 */
#ifndef RILL_HTTP_H
#define RILL_HTTP_H

#ifdef __cplusplus
extern "C" {
#endif

/* One header line. Names compare case-insensitively. */
struct rill_http_header {
	const char *name;
	const char *value;
};

/* ------------------------------------------------------------------------
 * Reading the head of an exchange
 *
 * On the server these describe the request; on the client the response
 * (after the response callback). Strings are NUL-terminated and valid
 * until the exchange is closed.
 */

/* Request method ("GET"), or "" on a client exchange. */
RILL_EXTERN const char *rill_http_method(struct rill_flow *ex);
/* Request target as sent ("/a/b?q"), or "" on a client exchange. */
RILL_EXTERN const char *rill_http_target(struct rill_flow *ex);
/* Response status code (client), or 0 on a server exchange. */
RILL_EXTERN int rill_http_status(struct rill_flow *ex);
/* Minor HTTP version of the peer's message (0 or 1). */
RILL_EXTERN int rill_http_version_minor(struct rill_flow *ex);
/* The first value of header `name`, or NULL. */
RILL_EXTERN const char *rill_http_header(struct rill_flow *ex,
                                         const char *name);
/* Number of header lines, and the i-th one (0 or RILL_EINVAL). */
RILL_EXTERN size_t rill_http_header_count(struct rill_flow *ex);
RILL_EXTERN int rill_http_header_at(struct rill_flow *ex, size_t i,
                                    const char **name, const char **value);
/* The length announced by Content-Length, or -1 (chunked, none, or until
 * close). */
RILL_EXTERN int64_t rill_http_content_length(struct rill_flow *ex);

/* ------------------------------------------------------------------------
 * Server
 */

struct rill_http_server;

/* What rill_http_server_opts.conn_done reports of a connection. */
struct rill_http_conn_info {
	double seconds;     /* from rill_http_server_serve to its end */
	uint64_t bytes_in;  /* read from the client: heads and bodies */
	uint64_t bytes_out; /* written to the client (file bodies too) */
	uint64_t requests;  /* requests whose head arrived */
};

struct rill_http_server_opts {
	size_t max_header_bytes;    /* request line + headers; 0: 16 KiB */
	size_t max_headers;         /* header lines; 0: 100 */
	uint64_t max_body;          /* request body bytes; 0: 64 MiB */
	uint64_t header_timeout_ms; /* whole head must arrive; 0: 10 s */
	uint64_t idle_timeout_ms;   /* keep-alive idle; 0: 60 s */
	/* The request body must make progress: while a body read of the
	 * handler waits for the client's bytes, this long without any
	 * answers 408 (or closes the connection once a response began).
	 * It does not run while the handler is not reading (for example
	 * while it waits on its own write): see send_timeout_ms and
	 * handler_timeout_ms for those. 0: 30 s. */
	uint64_t body_timeout_ms;
	size_t max_requests_per_conn; /* 0: unlimited */
	const char *server_name;      /* "Server:" header; NULL: none */
	/*
	 * Send progress: a connection with writes in flight (a response
	 * head, a body write of the handler, a canned error) none of which
	 * the client took for this long is closed; the exchange's pending
	 * writes fail with RILL_ETIMEDOUT. Each completed write restarts the
	 * measure, so a long download that keeps moving never times out,
	 * and a client that stopped reading is let go. Checked every
	 * quarter of the time (so it fires within 1.25 times it). A write
	 * of the handler reaches the connection whole: write a large body
	 * in pieces (rill http serve writes 256 KiB at a time). 0: 30 s;
	 * UINT64_MAX: none.
	 */
	uint64_t send_timeout_ms;
	/*
	 * The handler's own pace: an exchange on which the handler has no
	 * body read and no write in progress for this long (it computes its
	 * answer, or forgot to rill_close the exchange after a complete
	 * response) is reported through log and aborted: a 500 if nothing
	 * was sent yet, else the connection closes; the exchange's calls
	 * then fail with RILL_ETIMEDOUT, and the handler must still close
	 * it. A forgotten rill_close thus costs one connection for this
	 * long and a warning, never a hang of the connection or of a
	 * graceful shutdown. 0: 60 s; UINT64_MAX: none.
	 */
	uint64_t handler_timeout_ms;
	/*
	 * At most this many connections at once. At the limit,
	 * rill_http_server_serve closes the keep-alive connection that has
	 * waited longest for its next request (it served one, nothing of
	 * the next is read, nothing is being written), as nginx does; when
	 * there is none it closes the new connection at once and returns
	 * -EBUSY. 0: unlimited.
	 */
	size_t max_connections;
	/* Warnings of the server (an exchange aborted by
	 * handler_timeout_ms, with its method and target), one line
	 * without a newline, from the loop. NULL: written to stderr
	 * prefixed "rill http: ". */
	void (*log)(void *log_ud, const char *msg);
	void *log_ud;
	/* Called from the loop once for every connection that
	 * rill_http_server_serve took (returned 0 for), when it ends: by
	 * the client, an error, a timeout, shutdown or
	 * rill_http_server_free. For metrics and logs; it must not call
	 * back into the server. NULL: none. */
	void (*conn_done)(void *conn_ud, const struct rill_http_conn_info *ci);
	void *conn_ud;
};

/*
 * Handler: a new request. ex is a new exchange flow the handler owns and
 * must close. The request head is readable at once (rill_http_method...);
 * read the body with rill_read(ex), answer with rill_http_respond or
 * rill_http_respond_buf. Called from the loop.
 */
typedef void (*rill_http_handler)(struct rill_flow *ex, void *ud);

/*
 * A server on loop; opts may be NULL (defaults). Returns 0 and *out, or
 * RILL_EINVAL / RILL_ENOMEM.
 */
RILL_EXTERN int rill_http_server_new(uv_loop_t *loop,
                                     const struct rill_http_server_opts *opts,
                                     rill_http_handler handler, void *ud,
                                     struct rill_http_server **out);

/*
 * Serves HTTP on conn (an accepted flow of any kind); consumes conn even
 * on failure. Returns 0, RILL_ENOMEM, -EBUSY when max_connections are
 * served already (conn is closed at once), or RILL_ECANCELED when the
 * server is shutting down. The connection is closed by the server when
 * the client leaves, on errors (after a 400/408/413/431/505 response
 * where one applies), on timeouts, or at shutdown.
 */
RILL_EXTERN int rill_http_server_serve(struct rill_http_server *s,
                                       struct rill_flow *conn);

/*
 * Graceful shutdown: accepts no new connections, closes idle ones now,
 * lets requests in progress finish (their responses say
 * "Connection: close"), then calls done(ud) once from the loop when no
 * connection is left. done may be NULL.
 */
RILL_EXTERN void rill_http_server_shutdown(struct rill_http_server *s,
                                           void (*done)(void *ud), void *ud);

/* Closes every connection at once and frees s. No callback after. */
RILL_EXTERN void rill_http_server_free(struct rill_http_server *s);

/* Connections currently served. */
RILL_EXTERN size_t rill_http_server_connections(struct rill_http_server *s);

/*
 * Starts the response on server exchange ex: status line and headers.
 * content_length >= 0 frames the body by Content-Length (writes beyond it
 * fail with RILL_EHTTP; a shutdown before it is reached aborts the
 * connection); -1 selects chunked encoding (or, for an HTTP/1.0 client,
 * a body delimited by closing the connection). Date, Content-Length /
 * Transfer-Encoding and Connection are added by the server; do not pass
 * them. The head is sent together with the first body write (one
 * writev), or at the shutdown. For HEAD requests and 204/304 responses
 * body writes are accepted and dropped.
 * Expect: 100-continue: the client waits to be invited before it sends
 * its body. The server sends "100 Continue" when the handler first reads
 * the body, or when it starts a 2xx response with this call before
 * reading (a streaming echo): in either order the body comes at once and
 * the connection stays open. A response of 3xx or more started before any
 * read (rill_http_respond or rill_http_respond_buf) refuses the body: no
 * 100 is sent and the response says "Connection: close" (RFC 9110
 * 10.1.1). rill_http_respond_buf before any read counts as not needing
 * the body, whatever its status.
 * Returns 0, RILL_EINVAL (bad argument, response already started, not a
 * server exchange), RILL_ECLOSED (connection gone), RILL_ENOMEM.
 */
RILL_EXTERN int rill_http_respond(struct rill_flow *ex, int status,
                                  const struct rill_http_header *headers,
                                  size_t nheaders, int64_t content_length);

/*
 * A whole response at once: head and body in one writev, then the
 * response is complete (as after rill_shutdown(ex, RILL_SHUT_WR)). body
 * may be NULL (empty); it is referenced, not copied: do not change its
 * bytes afterwards. Same results as rill_http_respond.
 */
RILL_EXTERN int rill_http_respond_buf(struct rill_flow *ex, int status,
                                      const struct rill_http_header *headers,
                                      size_t nheaders, struct rill_buf *body);

/*
 * A whole response from bytes, in one call: copies body[0..len) (body may
 * be NULL when len is 0), sends it with status and, when content_type is
 * not NULL, that Content-Type, then closes ex. Same as rill_buf_copy,
 * rill_http_respond_buf, rill_buf_release and rill_close. ex is closed in
 * every case (do not use it afterwards). Returns 0, or the error of
 * rill_http_respond_buf (RILL_EINVAL, RILL_ECLOSED, RILL_ENOMEM).
 */
RILL_EXTERN int rill_http_reply(struct rill_flow *ex, int status,
                                const char *content_type, const void *body,
                                size_t len);

/* The standard reason phrase of a status code ("Not Found"), or "". */
RILL_EXTERN const char *rill_http_reason(int status);

/*
 * Takes the connection of server exchange ex out of the HTTP server, to
 * speak another protocol on it after an Upgrade request (RFC 9110 7.8):
 * *conn is the connection flow (the caller owns and closes it), *rest
 * the bytes the client already sent after the request head (NULL if
 * none; the caller releases it). Nothing was answered on it: the
 * caller sends the 101 (or whatever its protocol wants). ex stays the
 * caller's to close; it reads and writes nothing any more. The server
 * no longer counts, times or shuts down that connection.
 * rill_ws_accept (rill/ws.h) does all this for WebSocket.
 * Returns 0, RILL_EINVAL (not a server exchange, response started,
 * closed), -EBUSY (earlier responses on the connection are still being
 * written: retry later or answer normally), RILL_ENOMEM.
 */
RILL_EXTERN int rill_http_take_connection(struct rill_flow *ex,
                                          struct rill_flow **conn,
                                          struct rill_buf **rest);

/* ------------------------------------------------------------------------
 * Client
 */

struct rill_http_client;

struct rill_http_client_opts {
	size_t max_header_bytes; /* response head; 0: 64 KiB */
	size_t max_headers;      /* 0: 200 */
	/* The response head must arrive within this long once the request
	 * (head and body) was sent; else the response callback gets
	 * RILL_ETIMEDOUT and the connection closes. 0: 30 s; UINT64_MAX:
	 * none. */
	uint64_t header_timeout_ms;
};

/*
 * An HTTP client connection over conn (any connected flow), which it
 * consumes even on failure. opts may be NULL. Returns 0 and *out, or
 * RILL_ENOMEM / RILL_EINVAL.
 */
RILL_EXTERN int rill_http_client_new(struct rill_flow *conn,
                                     const struct rill_http_client_opts *opts,
                                     struct rill_http_client **out);

/* Closes the connection and frees c (open exchanges then fail). */
RILL_EXTERN void rill_http_client_free(struct rill_http_client *c);

/*
 * True while the connection can carry another request (keep-alive: the
 * last response was read completely and did not say close).
 */
RILL_EXTERN bool rill_http_client_reusable(struct rill_http_client *c);

/*
 * Response head callback: status 0 and the head is readable on ex
 * (rill_http_status, rill_http_header...), or a negative error (the
 * connection failed, RILL_EHTTP for a malformed response, RILL_ETIMEDOUT).
 * Either way ex stays owned by the caller, who closes it.
 */
typedef void (*rill_http_response_cb)(struct rill_flow *ex, int status,
                                      void *ud);

/*
 * Sends a request on c: method, target ("/path?q"), headers (Host is the
 * caller's to give), and a body of content_length bytes (0: none, -1:
 * chunked), written to the returned exchange flow *ex; end it with
 * rill_shutdown(RILL_SHUT_WR) (required for a chunked body; implied when
 * content_length bytes were written). cb is called once with the
 * response head; then read the response body from *ex.
 * One exchange at a time: returns -EBUSY while the previous one is open,
 * RILL_ECLOSED when the connection is not reusable, RILL_EINVAL,
 * RILL_ENOMEM. On success the caller owns *ex.
 */
RILL_EXTERN int rill_http_request(struct rill_http_client *c,
                                  const char *method, const char *target,
                                  const struct rill_http_header *headers,
                                  size_t nheaders, int64_t content_length,
                                  rill_http_response_cb cb, void *ud,
                                  struct rill_flow **ex);

/*
 * The blocking form, for simple tools (the rules of the blocking API in
 * rill.h apply: it runs c's loop, never from inside one of its
 * callbacks). Sends a request with a body of len bytes (body may be NULL
 * when len is 0; the bytes are copied), and waits for the response
 * head, which is then readable on *ex (rill_http_status...); read the
 * body with rill_read_sync or rill_read_all_sync, then rill_close(*ex).
 * The wait is bounded by the client's header_timeout_ms. Returns 0 and
 * *ex; or an error, and *ex is NULL: those of rill_http_request, of the
 * body write, of the response head (RILL_EHTTP, RILL_ETIMEDOUT, the
 * connection's), or -EDEADLK (see rill.h). The whole body is written
 * before the response body is read: a server that answers while it reads
 * (a streaming echo) must not send more than the connection buffers hold
 * meanwhile; use rill_http_request for that.
 */
RILL_EXTERN int rill_http_request_sync(struct rill_http_client *c,
                                       const char *method, const char *target,
                                       const struct rill_http_header *headers,
                                       size_t nheaders, const void *body,
                                       size_t len, struct rill_flow **ex);

#ifdef __cplusplus
}
#endif

#endif /* RILL_HTTP_H */
