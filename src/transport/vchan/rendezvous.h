/*
 * The messages of the memfd vchan rendezvous (doc/vchan-rendezvous.md):
 * HELLO, OFFER (with three file descriptors) and READY over a Unix
 * stream socket. Encoding, decoding and the fd passing; no state machine
 * (local_server.c and local_client.c drive them).
 */
#ifndef RILL_TRANSPORT_VCHAN_RENDEZVOUS_H
#define RILL_TRANSPORT_VCHAN_RENDEZVOUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RILL__RDV_VERSION    1
#define RILL__RDV_KIND_HELLO 1
#define RILL__RDV_KIND_OFFER 2
#define RILL__RDV_KIND_READY 3
#define RILL__RDV_HEADER_LEN 8 /* HELLO and READY are just the header */
#define RILL__RDV_OFFER_LEN  32
#define RILL__RDV_NFDS       3

/* The fds of an OFFER, in their order on the wire. */
enum { RILL__RDV_FD_MEM, RILL__RDV_FD_SERVER_EVT, RILL__RDV_FD_CLIENT_EVT };

/* Writes the 8-byte header of a message of `kind` into p. */
void rill__rdv_header(uint8_t *p, uint16_t kind);

/* True when p starts with a version-1 header of `kind`. */
bool rill__rdv_is(const uint8_t *p, uint16_t kind);

/* Sends the 8-byte message of `kind` (HELLO, READY) without blocking:
 * 0, or -errno / -EIO when not sent whole. */
int rill__rdv_send_header(int sock, uint16_t kind);

/* Sends the OFFER and its fds in one sendmsg: 0, or -errno / -EIO. */
int rill__rdv_send_offer(int sock, uint64_t map_len, int left_order,
                         int right_order, const int fds[RILL__RDV_NFDS]);

/* An OFFER being received. Initialise with rill__rdv_offer_init. */
struct rill__rdv_offer {
	uint8_t msg[RILL__RDV_OFFER_LEN];
	size_t len;
	int fds[RILL__RDV_NFDS]; /* -1 until they arrived */
};

void rill__rdv_offer_init(struct rill__rdv_offer *o);

/* Closes the fds still held. */
void rill__rdv_offer_clear(struct rill__rdv_offer *o);

/*
 * Receives what is there of an OFFER: 1 when it is complete (fds in o),
 * 0 when more must come, -EAGAIN when nothing was ready, or an error
 * with *why: RILL_EHANDSHAKE (hang-up, fds missing, late or not 3).
 */
int rill__rdv_recv_offer(int sock, struct rill__rdv_offer *o, const char **why);

/*
 * Checks a complete OFFER: header, nfds, orders (rill__vchan_check_orders)
 * and that map_len is what the orders need. 0 with the fields, or
 * RILL_EHANDSHAKE / RILL_ERING with *why.
 */
int rill__rdv_parse_offer(const struct rill__rdv_offer *o, uint64_t *map_len,
                          int *left_order, int *right_order, const char **why);

#endif
