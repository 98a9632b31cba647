/*
 * Addresses of the vsock family of transports (doc/uri.md), parsed and
 * formatted without any socket: AF_VSOCK (cid, port), AF_HYPERV GUIDs,
 * hybrid vsock and HyperKit paths, and the hybrid-vsock CONNECT reply.
 * Pure code that never allocates: tested on every platform and fuzzed.
 */
#ifndef RILL_VSOCK_ADDR_H
#define RILL_VSOCK_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Linux AF_VSOCK well-known CIDs (linux/vm_sockets.h). */
#define RILL__VSOCK_CID_ANY        0xFFFFFFFFu
#define RILL__VSOCK_CID_HYPERVISOR 0u
#define RILL__VSOCK_CID_LOCAL      1u
#define RILL__VSOCK_CID_HOST       2u
#define RILL__VSOCK_PORT_ANY       0xFFFFFFFFu

/*
 * Parses "//cid:port" (the part of vsock://cid:port after the scheme).
 * cid is decimal or any, hypervisor, local, host; port is decimal or any.
 * Returns 0, or -1 with *what naming the bad part ("cid", "port",
 * "address").
 */
int rill__vsock_parse(const char *rest, uint32_t *cid, uint32_t *port,
                      const char **what);

/* Writes "vsock://cid:port" (names for the well-known CIDs). 0 or -ENOSPC. */
int rill__vsock_format(uint32_t cid, uint32_t port, char *buf, size_t cap);

/*
 * The CID a peer uses to reach a listener bound to `bound`: bound itself,
 * unless it is any; then `local`, this machine's CID as the kernel tells
 * it (IOCTL_VM_SOCKETS_GET_LOCAL_CID: a guest's own CID, or 2 on a host
 * with vhost_vsock); when the kernel knows none (any: only vsock_loopback
 * is loaded, or no /dev/vsock), local (1), where connections from this
 * machine itself go.
 */
uint32_t rill__vsock_listener_cid(uint32_t bound, uint32_t local);

/*
 * "PATH:PORT" as in hybrid-vsock:/path/v.sock:port and hyperkit:/dir:port:
 * the last ':' separates a non-empty path from a decimal u32 port. The
 * path (NUL-terminated) goes to path[0..cap). Returns 0, or -1 with *what
 * naming the bad part ("path", "port").
 */
int rill__path_port_parse(const char *rest, char *path, size_t cap,
                          uint32_t *port, const char **what);

/* A Windows GUID, in its in-memory (and sockaddr) layout. */
struct rill__guid {
	uint32_t data1;
	uint16_t data2;
	uint16_t data3;
	uint8_t data4[8];
};

#define RILL__GUID_STRLEN 36 /* without braces and NUL */

/* Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", optionally in braces,
 * hex digits in any case, exactly len bytes. 0 or -1. */
int rill__guid_parse(const char *s, size_t len, struct rill__guid *g);

/* Formats g lowercase into buf (>= 37 bytes). */
void rill__guid_format(const struct rill__guid *g, char *buf);

bool rill__guid_equal(const struct rill__guid *a, const struct rill__guid *b);

/* The AF_HYPERV service GUID of a vsock port: %08x-FACB-11E6-BD58-
 * 64006A7986D3 (as ocaml-hvsock and the Linux hv_sock driver map them). */
void rill__hvsock_service_of_port(uint32_t port, struct rill__guid *g);

/* The port of a service GUID of that form: 0 and *port, or -1. */
int rill__hvsock_port_of_service(const struct rill__guid *g, uint32_t *port);

/* The well-known VM ids: "wildcard", "children", "loopback", "parent".
 * Returns 0 and the GUID, or -1 for any other name. */
int rill__hvsock_vm_by_name(const char *name, size_t len, struct rill__guid *g);

/* The name of a well-known VM id, or NULL. */
const char *rill__hvsock_vm_name(const struct rill__guid *g);

/*
 * Parses "//VM/SERVICE" (of hvsock://VM/SERVICE): VM is a GUID or a
 * well-known name; SERVICE a GUID or a decimal port (mapped as above).
 * Returns 0, or -1 with *what naming the bad part ("vm", "service",
 * "address").
 */
int rill__hvsock_parse(const char *rest, struct rill__guid *vm,
                       struct rill__guid *service, const char **what);

/* Writes "hvsock://VM/SERVICE": a well-known VM by name, a mapped
 * service as its port. 0 or -ENOSPC. */
int rill__hvsock_format(const struct rill__guid *vm,
                        const struct rill__guid *service, char *buf,
                        size_t cap);

/*
 * The AF_HYPERV sockaddr (SOCKADDR_HV): u16 family (34), u16 reserved,
 * GUID vm_id, GUID service_id, in host byte order as Windows lays it out
 * (little-endian). Writes 36 bytes.
 */
#define RILL__AF_HYPERV       34
#define RILL__HV_PROTOCOL_RAW 1
#define RILL__SOCKADDR_HV_LEN 36
void rill__hvsock_sockaddr(const struct rill__guid *vm,
                           const struct rill__guid *service, uint8_t *out);

/*
 * The hybrid-vsock reply to "CONNECT <port>\n" (Firecracker, Cloud
 * Hypervisor): "OK <host_port>\n". Looks at buf[0..len):
 *   > 0   a complete OK line; the value is its length (newline included;
 *         bytes after it belong to the stream); *host_port set.
 *   0     no newline yet and nothing wrong so far: read more.
 *   < 0   anything else (-1), or no newline within RILL__HYBRID_REPLY_MAX
 *         bytes (-2).
 */
#define RILL__HYBRID_REPLY_MAX 64
int rill__hybrid_parse_reply(const uint8_t *buf, size_t len,
                             uint32_t *host_port);

/* Writes a printable copy of buf[0..len) (C escapes, at most cap-1
 * chars, "..." when cut) for error messages. */
void rill__escape(const uint8_t *buf, size_t len, char *out, size_t cap);

#endif
