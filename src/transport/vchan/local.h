/*
 * The memfd backend of the vchan flow: two processes of one host share a
 * sealed memfd and two eventfds, handed over a rendezvous Unix socket
 * (doc/vchan-rendezvous.md). Files:
 *   local.c         the shared memory, eventfds, the backend ops
 *                         and the hang-up watch of a connected vchan;
 *   local_server.c  rill_vchan_server and the server's rendezvous;
 *   gate.c          every server's door: credentials, deadline,
 *                         cap, connectors served side by side;
 *   local_client.c  rill_vchan_client;
 *   names.c         (domain, port) -> rendezvous socket path;
 *   uri.c           the vchan: URI scheme and its listener.
 *
 * The rendezvous socket stays open after the rendezvous with no more
 * traffic: its hang-up is how a peer that died without clearing its live
 * byte (killed by SIGKILL) is seen as gone.
 */
#ifndef RILL_TRANSPORT_VCHAN_LOCAL_H
#define RILL_TRANSPORT_VCHAN_LOCAL_H

#include <sys/un.h>

#include "transport/socket/acceptor.h"
#include "transport/vchan/flow.h"
#include "transport/vchan/gate.h"
#include "transport/vchan/rendezvous.h"

#define RILL__VCHAN_SUN_PATH sizeof(((struct sockaddr_un *)0)->sun_path)

enum rill__vchan_local_state {
	RILL__VL_LISTENING,  /* server: waiting for a client's HELLO */
	RILL__VL_SRV_READY,  /* server: OFFER sent, waiting for READY */
	RILL__VL_CONNECTING, /* client: connect() (retrying) */
	RILL__VL_CLI_OFFER,  /* client: HELLO sent, reading the OFFER */
	RILL__VL_CONNECTED,
};

struct rill__vchan_local;

struct rill__vchan_local_server {
	int listen_fd;
	char *path; /* the rendezvous path we bound, to remove */
	struct rill__acceptor acc;
	bool acc_init;
	struct rill__vchan_gate gate; /* connectors in the rendezvous */
	bool gate_init;
	rill_vchan_server_cb cb;
};

struct rill__vchan_local_client {
	struct rill__rdv_offer offer;
	uv_timer_t timer; /* the deadline of the rendezvous */
	bool timer_init;
	uint64_t deadline; /* loop time; 0: none */
	rill_connect_cb cb;
	struct rill__vchan_policy pol; /* who may be our server */
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

/* Server: sends the OFFER of vl's memory on fd (not owned). 0 or
 * -errno. */
int rill__vchan_local_offer(struct rill__vchan_local *vl, int fd);

/* Server: the rendezvous on fd (now owned by vl) is over: watch it for
 * the client's hang-up from now on. 0, or an error (fd closed). */
int rill__vchan_local_adopt(struct rill__vchan_local *vl, int fd);

/* Internal forms of rill_vchan_server and rill_vchan_client with a
 * policy (NULL: the default; see gate.h). */
int rill__vchan_server(uv_loop_t *loop, const char *domain, const char *port,
                       size_t read_size, size_t write_size,
                       const struct rill__vchan_policy *pol,
                       rill_vchan_server_cb cb, void *ud,
                       struct rill_flow **out);
int rill__vchan_client(uv_loop_t *loop, const char *domain, const char *port,
                       const struct rill_connect_opts *opts,
                       const struct rill__vchan_policy *pol, rill_connect_cb cb,
                       void *ud);

/* Server: stops accepting for good (the acceptor closes in the
 * background; the teardown waits for it). */
void rill__vchan_local_close_acceptor(struct rill__vchan_local *vl);

/* Ends a flow that was never handed to the user. */
void rill__vchan_local_discard(struct rill__vchan_local *vl);

/* What a rendezvous path is for: naming only, a client (the default
 * directory is checked if it exists), or a server (the directories are
 * created if missing, and checked). See names.c. */
enum rill__vchan_dir_use {
	RILL__VCHAN_DIR_NAME,
	RILL__VCHAN_DIR_CLIENT,
	RILL__VCHAN_DIR_SERVER,
};

/* The rendezvous socket path of (domain, port) for use. 0, RILL_EINVAL
 * (bad name), -ENAMETOOLONG, -EACCES / -ENOTDIR (a directory that is not
 * safe to use), or -errno from mkdir/open; rill_last_errmsg names the
 * path and says what is wrong. */
int rill__vchan_socket_path(const char *domain, const char *port, char *buf,
                            size_t len, enum rill__vchan_dir_use use);

/* True when s is a vchan port name ([a-zA-Z0-9_-]+, at most 255 bytes),
 * or with allow_dot a domain name (also '.', but not "." or ".."). */
bool rill__vchan_name_ok(const char *s, bool allow_dot);

#endif
