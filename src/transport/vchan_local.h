/*
 * The memfd backend of the vchan flow: two processes of one host share a
 * sealed memfd and two eventfds, handed over a rendezvous Unix socket
 * (doc/vchan-rendezvous.md). Files:
 *   vchan_local.c         the shared memory, eventfds, the backend ops
 *                         and the hang-up watch of a connected vchan;
 *   vchan_local_server.c  rill_vchan_server and the server's rendezvous;
 *   vchan_local_client.c  rill_vchan_client;
 *   vchan_names.c         (domain, port) -> rendezvous socket path;
 *   vchan_uri.c           the vchan: URI scheme and its listener.
 *
 * The rendezvous socket stays open after the rendezvous with no more
 * traffic: its hang-up is how a peer that died without clearing its live
 * byte (killed by SIGKILL) is seen as gone.
 */
#ifndef RILL_TRANSPORT_VCHAN_LOCAL_H
#define RILL_TRANSPORT_VCHAN_LOCAL_H

#include <sys/un.h>

#include "transport/acceptor.h"
#include "transport/vchan_flow.h"
#include "transport/vchan_rendezvous.h"

#define RILL__VCHAN_SUN_PATH sizeof(((struct sockaddr_un *)0)->sun_path)

enum rill__vchan_local_state {
	RILL__VL_LISTENING,  /* server: waiting for a client to connect */
	RILL__VL_SRV_HELLO,  /* server: reading the client's HELLO */
	RILL__VL_SRV_READY,  /* server: OFFER sent, reading READY */
	RILL__VL_CONNECTING, /* client: connect() (retrying) */
	RILL__VL_CLI_OFFER,  /* client: HELLO sent, reading the OFFER */
	RILL__VL_CONNECTED,
};

struct rill__vchan_local;

/* How a server's rendezvous ended, for the one who accepted the client
 * (the URI listener): status 0 (connected) or an error with msg. */
typedef void (*rill__vchan_local_done_cb)(struct rill__vchan_local *vl,
                                          int status, const char *msg);

struct rill__vchan_local_server {
	int listen_fd;
	char *path; /* the rendezvous path we bound, to remove */
	struct rill__acceptor acc;
	bool acc_init;
	uint8_t msg[RILL__RDV_HEADER_LEN]; /* HELLO or READY coming in */
	size_t msg_len;
	rill_vchan_server_cb cb;
	/* Set by a URI listener: it gets the result instead of cb, and a
	 * failed client ends this vchan instead of waiting for the next. */
	rill__vchan_local_done_cb done;
	void *owner;                    /* the listener */
	struct rill__vchan_local *next; /* in the owner's list */
};

struct rill__vchan_local_client {
	struct rill__rdv_offer offer;
	uv_timer_t timer; /* the deadline of the rendezvous */
	bool timer_init;
	uint64_t deadline; /* loop time; 0: none */
	rill_connect_cb cb;
	char sun_path[RILL__VCHAN_SUN_PATH];
};

struct rill__vchan_local {
	struct rill__vchan_flow ring;
	enum rill__vchan_local_state state;
	bool server;
	void *map;
	size_t map_len;
	int left_order, right_order;
	int memfd, my_evt, peer_evt, sock_fd;
	uv_poll_t sock_poll;
	bool sock_init;
	void *ud; /* of the server or client callback */
	struct rill__vchan_local_server srv;
	struct rill__vchan_local_client cli;
};

/* A new memfd-backend flow, not attached, every fd -1. */
struct rill__vchan_local *rill__vchan_local_new(uv_loop_t *loop, bool server);

/* Server: creates the shared memory and the eventfds and attaches the
 * flow (writes can fill the ring at once). rill_last_errmsg on error. */
int rill__vchan_local_setup(struct rill__vchan_local *vl, size_t read_size,
                            size_t write_size);

/* Client: maps the OFFER's memory (fds taken from offer) and attaches,
 * or an error with *why. */
int rill__vchan_local_map_offer(struct rill__vchan_local *vl,
                                struct rill__rdv_offer *offer,
                                const char **why);

/* The rendezvous is over: from now on the socket only tells us when the
 * peer is gone. */
void rill__vchan_local_watch_peer(struct rill__vchan_local *vl);

/* Server: serves the rendezvous on an accepted socket fd (owned). */
void rill__vchan_local_serve(struct rill__vchan_local *vl, int fd);

/* Server: stops accepting for good (the acceptor closes in the
 * background; the teardown waits for it). */
void rill__vchan_local_close_acceptor(struct rill__vchan_local *vl);

/* Ends a flow that was never handed to the user. */
void rill__vchan_local_discard(struct rill__vchan_local *vl);

/* The rendezvous socket path of (domain, port); with create, makes the
 * directories (mode 0700). 0, RILL_EINVAL (bad name), -ENAMETOOLONG, or
 * -errno from mkdir. */
int rill__vchan_socket_path(const char *domain, const char *port, char *buf,
                            size_t len, bool create);

/* True when s is a vchan port name ([a-zA-Z0-9_-]+, at most 255 bytes),
 * or with allow_dot a domain name (also '.', but not "." or ".."). */
bool rill__vchan_name_ok(const char *s, bool allow_dot);

#endif
