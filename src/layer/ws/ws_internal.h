/*
 * The WebSocket layer's internals (RFC 6455), shared by the files of
 * src/layer/ws/ and by nothing else:
 *
 *   handshake.c  the HTTP/1.1 Upgrade: the client's request and the
 *                server's answer, head parsing with llhttp, the
 *                Sec-WebSocket-Accept digest (OpenSSL's SHA-1 and base64)
 *   attach.c     the handshake's I/O, the attach, public facts
 *   frames.c     received frames: parsed and checked (why not by
 *                libwslay: see there), payload unmasked for the reader
 *   flow.c       the flow: data frames built and sent, control frames
 *                sent through libwslay, the Close handshake, teardown
 *   uri.c        the "ws" layer scheme (ws+tcp://host:port?path=/x)
 *   accept.c     rill_ws_accept: a server exchange of the HTTP layer
 *                upgraded to a WebSocket
 */
#ifndef RILL_LAYER_WS_INTERNAL_H
#define RILL_LAYER_WS_INTERNAL_H

#include <wslay/wslay.h>

#include "rill/impl.h"

#define WS_HEAD_MAX    8192u               /* handshake head bytes */
#define WS_HS_MS       10000u              /* default handshake deadline */
#define WS_MAX_MESSAGE (64u * 1024 * 1024) /* default max_message */
#define WS_FRAME_MAX   (256u * 1024)       /* payload of a sent frame */
#define WS_CTRL_MAX    (64u * 1024)        /* control bytes waiting */
#define WS_CTRL_COST   64u   /* what one queued control frame is counted as */
#define WS_CLOSE_MS    2000u /* close drain deadline */
#define WS_KEY_LEN     24    /* base64 of 16 bytes */
#define WS_ACCEPT_LEN  28    /* base64 of a SHA-1 */

/* A configuration: the public options with owned strings. */
struct ws_conf {
	char *path, *host, *origin, *protocols;
	uint64_t ping_ms, max_message, hs_ms;
};

int rill__ws_conf_init(struct ws_conf *c, const struct rill_ws_opts *o);
void rill__ws_conf_free(struct ws_conf *c);

/* A parsed handshake head: spans into the caller's bytes. */
#define WS_HDRS_MAX 64
struct ws_head {
	const char *name[WS_HDRS_MAX], *value[WS_HDRS_MAX];
	size_t name_len[WS_HDRS_MAX], value_len[WS_HDRS_MAX];
	size_t n;
	const char *url;
	size_t url_len;
	int status;       /* response */
	bool get;         /* request method is GET */
	int major, minor; /* HTTP version */
	bool too_many;
};

/* The end of a head ("\r\n\r\n") in s[0..len): its length, or 0. */
size_t rill__ws_head_end(const char *s, size_t len);
/* Parses a complete head with llhttp; request true for a request. */
int rill__ws_head_parse(struct ws_head *h, const char *s, size_t len,
                        bool request);
/* The value of header name (first occurrence) into out, or false. */
bool rill__ws_head_get(const struct ws_head *h, const char *name, char *out,
                       size_t outlen);
/* Whether the comma-separated list has token tok (case-insensitively). */
bool rill__ws_list_has(const char *list, const char *tok);

/* Header lookup of a request, from a parsed head or an HTTP exchange. */
typedef const char *(*ws_lookup_fn)(void *ctx, const char *name);

/* The server's verdict on a request. */
struct ws_verdict {
	int status;      /* 101, or the HTTP error to answer */
	const char *why; /* for the error body and message */
	char accept[WS_ACCEPT_LEN + 1];
	char protocol[128]; /* chosen subprotocol, "" if none */
};

/* Checks an Upgrade request (method, target and version given apart). */
void rill__ws_check_request(const struct ws_conf *c, bool get, int minor,
                            const char *target, ws_lookup_fn get_hdr, void *ctx,
                            struct ws_verdict *v);
/* The response for a verdict: a new buffer, or NULL (ENOMEM). */
struct rill_buf *rill__ws_response(const struct ws_verdict *v);
/* The client's request with a fresh key (saved into key). */
struct rill_buf *rill__ws_request(const struct ws_conf *c,
                                  char key[WS_KEY_LEN + 1]);
/* Checks the server's response to key; NULL if fine, else why not.
 * proto receives the chosen subprotocol. */
const char *rill__ws_check_response(const struct ws_conf *c,
                                    const struct ws_head *h, const char *key,
                                    char *proto, size_t protolen);
/* Sec-WebSocket-Accept for key (RFC 6455 section 4.2.2). */
void rill__ws_accept_key(const char *key, size_t len,
                         char out[WS_ACCEPT_LEN + 1]);

/* One WebSocket flow (flow.c moves frames, attach.c runs the opening
 * handshake). */
enum ws_state { WS_HS, WS_REFUSE, WS_OPEN, WS_DEAD };

struct ws_utf8 {
	uint8_t need, lo, hi; /* continuation bytes due, next byte's range */
};

typedef void (*ws_attach_cb)(struct rill_flow *f, int status,
                             const char *errmsg, void *ud);

struct ws_flow {
	struct rill_layer layer;
	int role;
	enum ws_state st;
	struct ws_conf conf;
	wslay_event_context_ptr ctx;
	uv_timer_t timer; /* handshake deadline, then pings, then close */
	ws_attach_cb attach_cb;
	void *attach_ud;
	char why[192];
	char key[WS_KEY_LEN + 1];
	char proto[128];
	struct rill_buf *hs; /* handshake bytes so far */
	bool driving, again;
	/* Input. */
	struct rill_buf *in; /* read from below, not yet parsed */
	size_t in_off;
	/* in's bytes are ours alone (rill__buf_mutable when it came): the
	 * payload is unmasked in place and handed up as slices of it. */
	bool in_private;
	bool inner_reading;
	int in_status;
	struct rill_buf *out; /* payload for the reader */
	size_t out_len;
	bool user_reading, rd_shut;
	int rd_final;
	bool rd_enabled;     /* frames are still read */
	bool close_received; /* the peer's Close arrived */
	bool discard;        /* payload is dropped (shut down, closing) */
	/* The frame being received (frames.c). */
	uint8_t sh[14]; /* its header, while incomplete */
	size_t sh_len;
	bool in_frame, f_fin, f_masked;
	uint8_t f_op, f_key[4];
	uint64_t f_left, f_phase;
	uint8_t msg_op; /* 1 text, 2 binary: a message is in progress */
	uint64_t msg_bytes;
	struct ws_utf8 utf8;
	uint8_t ctl[125]; /* a control frame's payload */
	size_t ctl_len;
	bool refused; /* we failed the peer's input */
	uint16_t close_code;
	/* Output. */
	struct rill_buf *ctrl; /* control frames from wslay */
	size_t ctrl_len;
	bool inner_writing, wr_data;
	struct rill_buf *const *wbufs;
	size_t wn, wi, woff;
	uint64_t wleft;
	bool writing, wfirst, wfin;
	int wr_final;
	bool shut_pending, close_queued, inner_shut, inner_shut_done;
	/* Pings. */
	bool pong_wait, heard;
	/* Teardown. */
	bool closing, gone;
};

/* frames.c: parses ws->in from in_off into ws->out (made here when
 * NULL, unless discard: a new buffer, or a slice of ws->in when
 * in_private, into which the payload is compacted in place), handles
 * control frames; 0 or RILL_ENOMEM.
 * Violations end reading (rd_enabled) with a Close queued. */
int rill__ws_parse(struct ws_flow *ws, bool discard);
/* Fails the peer's input: Close with code, reading ends. */
void rill__ws_refuse(struct ws_flow *ws, uint16_t code, const char *why);
/* True while the control frames waiting to be sent (serialized in
 * ws->ctrl, and still queued in wslay: pongs, each counted at least
 * WS_CTRL_COST bytes) exceed WS_CTRL_MAX: nothing more is parsed, so a
 * peer that sends pings and never reads cannot grow the queue. */
bool rill__ws_ctrl_full(const struct ws_flow *ws);

/* flow.c */
extern const struct rill_flow_ops rill__ws_ops;
/* The handshake is over: starts frames (and pings). 0 or RILL_ENOMEM. */
int rill__ws_start(struct ws_flow *ws);

/* attach.c: attaches over inner in state `open` when the handshake was
 * done elsewhere (rill_ws_accept), else runs it. Consumes inner, rest
 * (input already read, or NULL) and conf's strings (moved). cb gets the
 * flow, a status and a message. */
int rill__ws_attach(struct rill_flow *inner, int role, struct ws_conf *conf,
                    const char *protocol, bool open, struct rill_buf *rest,
                    ws_attach_cb cb, void *ud);

/* The same with the public callback (rill_ws_attach, rill_ws_accept).
 * A protocol (even "") means the handshake was answered already
 * (rill_ws_accept), and rest (consumed; may be NULL) is what the peer
 * sent after it. */
int rill__ws_attach_public(struct rill_flow *inner, int role,
                           struct ws_conf *conf, const char *protocol,
                           struct rill_buf *rest, rill_ws_attach_cb cb,
                           void *ud);

/* frames.c: XORs n bytes of src into dst with the mask key, starting at
 * phase (offset mod 4), eight bytes at a time; masks and unmasks. dst
 * may overlap src if dst <= src (each eight bytes are read before they
 * are written, front to back). */
void rill__ws_mask(uint8_t *dst, const uint8_t *src, size_t n,
                   const uint8_t key[4], size_t phase);

#endif /* RILL_LAYER_WS_INTERNAL_H */
