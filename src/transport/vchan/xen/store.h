/*
 * Xenstore for Xen vchans (store.c), a leaf of the Xen backend: it knows
 * nothing of the flow (xen.h). It reads and writes xenstore keys; the
 * flow part (backend.c, server.c, client.c, listen.c) calls it, never the
 * other way round. Xen's limits on domain ids and key paths live here,
 * since the keys are where they come from.
 */
#ifndef RILL_TRANSPORT_VCHAN_XEN_STORE_H
#define RILL_TRANSPORT_VCHAN_XEN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Xen's limits: DOMID_FIRST_RESERVED (xen/xen.h), libxenvchan's 64-byte
 * key buffer minus "/event-channel" and the NUL. */
#define RILL__XEN_DOMID_MAX 0x7FEFu
#define RILL__XEN_PATH_MAX  49
#define RILL__XEN_PATH_BUF  64

/* This domain's id (xenstore's "domid"). 0 or -errno with a message. */
int rill__xen_store_self(unsigned *domid);

/* Writes path/ring-ref and path/event-channel in one transaction,
 * owned by this domain, readable by reader only. 0 or -errno. */
int rill__xen_store_publish(const char *path, unsigned reader,
                            uint32_t ring_ref, uint32_t port);

/* Reads both keys: 0, RILL_ECONNREFUSED (a key is missing or empty),
 * RILL_EHANDSHAKE (not a number, or 0), -errno (xenstore). */
int rill__xen_store_lookup(const char *path, uint32_t *ring_ref,
                           uint32_t *port);

/* Removes path and everything under it (best effort). */
void rill__xen_store_remove(const char *path);

/* A decimal u32 of len bytes with nothing else (xenstore values are
 * not NUL-terminated): true with *out, false for anything else. Pure
 * (parse.c). */
bool rill__xen_parse_u32(const char *s, size_t len, uint32_t *out);

#endif
