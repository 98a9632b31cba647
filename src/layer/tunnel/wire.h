/*
 * The wire formats of the tunnel layers, as pure code: no loop, no
 * allocation, no system call, so each parser is fuzzed on its own
 * (fuzz/fuzz_socks5_request.c, fuzz_connect_head.c, fuzz_proxy_header.c).
 *
 *   SOCKS5       RFC 1928 (greeting, CONNECT request and reply) and
 *                RFC 1929 (username/password sub-negotiation)
 *   HTTP CONNECT RFC 9110 section 9.3.6 (request and response heads)
 *   PROXY        HAProxy's PROXY protocol, versions 1 and 2
 *                (doc/proxy-protocol.txt in HAProxy's sources)
 *
 * Every parser has one result shape: > 0 the bytes the message took, 0
 * more bytes are needed, < 0 a malformed message (RILL_EFRAME, or
 * -EMSGSIZE when it outgrows its limit) with *why naming what is wrong.
 * A parser never reads past `n`.
 */
#ifndef RILL_TUNNEL_WIRE_H
#define RILL_TUNNEL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A target host: a DNS name (at most 255 bytes), an IPv4 or IPv6 literal
 * (without brackets), NUL-terminated; and a port. */
#define RILL__TUN_HOST_MAX 256
struct rill__tun_target {
	char host[RILL__TUN_HOST_MAX];
	uint16_t port;
};

/*
 * The names a tunnel passes on: letters, digits, '-', '_' and '.', 1 to
 * 255 bytes. Anything else (':', '/', '?', '%', spaces, controls) is
 * refused, so that a requested name can never change the meaning of a
 * URI it is put into (rill relay's {target}).
 */
bool rill__tun_name_ok(const char *s, size_t n);

/* Parses "HOST:PORT" or "[V6]:PORT" (n bytes, port 1..65535, host a
 * name as above or an IP literal). 0, or -1 with *why set. */
int rill__tun_parse_target(const char *s, size_t n, struct rill__tun_target *t,
                           const char **why);

/* Formats t as "HOST:PORT" or "[V6]:PORT"; 0 or -ENOSPC. */
int rill__tun_format_target(const struct rill__tun_target *t, char *buf,
                            size_t len);

/* ------------------------------------------------------------------ */
/* SOCKS5 */

#define RILL__SOCKS5_NO_AUTH   0x00
#define RILL__SOCKS5_USER_PASS 0x02
#define RILL__SOCKS5_NO_METHOD 0xFF

enum {
	RILL__SOCKS5_OK = 0x00,
	RILL__SOCKS5_GENERAL = 0x01,
	RILL__SOCKS5_NOT_ALLOWED = 0x02,
	RILL__SOCKS5_NET_UNREACH = 0x03,
	RILL__SOCKS5_HOST_UNREACH = 0x04,
	RILL__SOCKS5_REFUSED = 0x05,
	RILL__SOCKS5_TTL_EXPIRED = 0x06,
	RILL__SOCKS5_CMD_UNSUPPORTED = 0x07,
	RILL__SOCKS5_ATYP_UNSUPPORTED = 0x08,
};

/* The client's greeting: VER=5 NMETHODS METHODS... The methods offered
 * are a bit set: bit m for method m < 8 (others are ignored). */
int rill__socks5_parse_greeting(const uint8_t *p, size_t n, unsigned *methods,
                                const char **why);

/* The server's method selection: VER=5 METHOD. */
int rill__socks5_parse_method(const uint8_t *p, size_t n, uint8_t *method,
                              const char **why);

/* RFC 1929: VER=1 ULEN UNAME PLEN PASSWD; user and pass get NUL-ended
 * copies (each at most 255 bytes: buffers of 256). */
int rill__socks5_parse_auth(const uint8_t *p, size_t n, char *user, char *pass,
                            const char **why);
/* The auth request for user/pass (each <= 255 bytes) into out (>= 513
 * bytes); returns its length, or 0 when a field is too long. */
size_t rill__socks5_build_auth(uint8_t *out, const char *user,
                               const char *pass);
/* RFC 1929 status reply: VER=1 STATUS. */
int rill__socks5_parse_auth_reply(const uint8_t *p, size_t n, uint8_t *status,
                                  const char **why);

/* The request VER=5 CMD RSV=0 ATYP ADDR PORT. *cmd gets CMD (only 1,
 * CONNECT, is served); an unknown ATYP is an error with *atyp_bad set so
 * that the server can answer 0x08. */
int rill__socks5_parse_request(const uint8_t *p, size_t n, uint8_t *cmd,
                               struct rill__tun_target *t, bool *atyp_bad,
                               const char **why);
/* A CONNECT request for t into out (>= 262 bytes); its length, or 0 when
 * the host is no valid name or literal. */
size_t rill__socks5_build_request(uint8_t *out,
                                  const struct rill__tun_target *t);

/* The reply VER=5 REP RSV ATYP BND.ADDR BND.PORT. */
int rill__socks5_parse_reply(const uint8_t *p, size_t n, uint8_t *rep,
                             const char **why);
/* A reply with code rep and an all-zero IPv4 bound address (10 bytes). */
size_t rill__socks5_build_reply(uint8_t *out, uint8_t rep);

/* A static description of a reply code ("connection refused"...). */
const char *rill__socks5_rep_name(uint8_t rep);

/* ------------------------------------------------------------------ */
/* HTTP CONNECT */

/* Heads larger than this are refused (-EMSGSIZE). */
#define RILL__CONNECT_HEAD_MAX 8192

/*
 * A CONNECT request head: "CONNECT authority HTTP/1.x" CRLF, header
 * fields, CRLF. The authority is HOST:PORT (RFC 9110 section 9.3.6).
 * *is_connect is false for another method (the server answers 405).
 * auth gets the value of Proxy-Authorization (at most auth_len - 1
 * bytes, "" if none).
 */
int rill__connect_parse_request(const uint8_t *p, size_t n, bool *is_connect,
                                struct rill__tun_target *t, char *auth,
                                size_t auth_len, const char **why);

/* A response head: "HTTP/1.x NNN reason" CRLF, fields, CRLF. *status gets
 * NNN, reason its text (at most reason_len - 1 bytes). */
int rill__connect_parse_response(const uint8_t *p, size_t n, int *status,
                                 char *reason, size_t reason_len,
                                 const char **why);

/* Base64 (RFC 4648) of src into out (>= 4 * ((n + 2) / 3) + 1 bytes). */
void rill__base64(const uint8_t *src, size_t n, char *out);

/* ------------------------------------------------------------------ */
/* PROXY protocol */

/* The longest v1 line (HAProxy's doc: 107 bytes with CRLF). */
#define RILL__PP1_MAX 107
/* rill takes v2 headers of at most this many bytes (16 + addresses and
 * TLVs); longer ones are refused. */
#define RILL__PP2_MAX 2048
/* The TLV type that carries AF_VSOCK addresses (in the range
 * 0xE0..0xEF that the spec leaves to applications): value = source CID,
 * source port, destination CID, destination port, each 4 bytes big
 * endian. The header's family is then AF_UNSPEC. */
#define RILL__PP2_TYPE_VSOCK 0xE8

enum rill__pp_family {
	RILL__PP_LOCAL = 0, /* no addresses: use the connection's own */
	RILL__PP_INET,
	RILL__PP_INET6,
	RILL__PP_UNIX,
	RILL__PP_VSOCK,
};

struct rill__pp_addrs {
	enum rill__pp_family family;
	uint8_t src[16], dst[16]; /* IPv4 in the first 4 bytes */
	uint16_t src_port, dst_port;
	uint32_t src_cid, dst_cid, src_vport, dst_vport;
	char src_path[109], dst_path[109];
};

/* Either version, told by the first bytes. */
int rill__pp_parse(const uint8_t *p, size_t n, struct rill__pp_addrs *a,
                   int *version, const char **why);

/* Builds a header of `version` (1 or 2) for a into out (>= RILL__PP2_MAX
 * bytes); returns its length. v1 sends UNKNOWN for LOCAL, UNIX and
 * VSOCK. */
size_t rill__pp_build(int version, const struct rill__pp_addrs *a,
                      uint8_t *out);

/* Parses an address as rill_flow_address prints it ("tcp://1.2.3.4:5",
 * "tcp://[::1]:5", "vsock://3:1024", "unix:/path") into one side of a:
 * side 0 source, 1 destination. Returns the family found, or
 * RILL__PP_LOCAL when the text is none of those. */
enum rill__pp_family rill__pp_parse_address(const char *s,
                                            struct rill__pp_addrs *a, int side);

/* Fills a from the two addresses of the connection being relayed
 * (either may be NULL): both IP (IPv4 ones become IPv4-mapped IPv6 next
 * to an IPv6 one), both vsock or both unix; anything else is LOCAL. */
void rill__pp_addrs_from(const char *src, const char *dst,
                         struct rill__pp_addrs *a);

/* Formats one side of a as rill_flow_address would; 0 or -ENOSPC, or
 * -ENOTSUP for RILL__PP_LOCAL. */
int rill__pp_format_address(const struct rill__pp_addrs *a, int side, char *buf,
                            size_t len);

#endif
