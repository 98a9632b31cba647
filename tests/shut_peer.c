/*
 * The close-handshake peer (shut_peer.h): the shut framing of
 * doc/shut-framing.md spoken over a blocking socket, the way
 * ocaml-hvsock's Flow_shutdown speaks it, with no rill code. One thread,
 * one connection, in program order: what upstream's read, write,
 * shutdown_write and close do.
 */
#include "shut_peer.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#define MSG_SHUTDOWN_READ  0xdeadbeefu
#define MSG_SHUTDOWN_WRITE 0xbeefdeadu
#define MSG_CLOSE          0xdeaddeadu
#define MAX_FRAME          4096u

const char *const peer_order_names[ORDER_COUNT] = {
    "peer_half_closes_first",
    "rill_half_closes_first",
    "both_at_once",
    "peer_closes_right_after_its_last_write",
    "rill_closes_right_after_its_last_write",
};

enum { EV_DATA, EV_SHUT_WR, EV_SHUT_RD, EV_CLOSE, EV_EOF, EV_ERROR };

struct peer {
	int fd;
	const struct peer_plan *plan;
	struct peer_result *res;
	bool sent_close, got_close, got_shut_wr;
	/* Receive buffer and the frame decoder's state. */
	uint8_t in[65536];
	size_t in_len, in_off;
	uint8_t hdr[4];
	size_t hdr_len;
	uint32_t need;
	uint64_t hash;
};

static void peer_fail(struct peer *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void peer_fail(struct peer *p, const char *fmt, ...)
{
	if (!p->res->ok)
		return; /* keep the first reason */
	p->res->ok = false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->res->why, sizeof p->res->why, fmt, ap);
	va_end(ap);
}

static const char *peer_errno_name(int e)
{
	switch (e) {
	case EPIPE: return "EPIPE";
	case ECONNRESET: return "ECONNRESET";
	case EAGAIN: return "a timeout";
	default: return strerror(e);
	}
}

/* ---------------------------------------------------------------------- */
/* Test bytes */

static uint64_t peer_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void peer_fill(uint64_t seed, uint64_t offset, uint8_t *dst, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t at = offset + i;
		dst[i] =
		    (uint8_t)(peer_mix(seed ^ (at >> 3)) >> ((at & 7) * 8));
	}
}

uint64_t peer_hash_update(uint64_t h, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t peer_expected_hash(uint64_t seed, size_t len)
{
	uint8_t buf[4096];
	uint64_t h = PEER_HASH_INIT;
	for (size_t off = 0; off < len; off += sizeof buf) {
		size_t n = len - off < sizeof buf ? len - off : sizeof buf;
		peer_fill(seed, off, buf, n);
		h = peer_hash_update(h, buf, n);
	}
	return h;
}

size_t peer_rep_len(unsigned rep, unsigned which)
{
	static const size_t fixed[][2] = {
	    {0, 1}, {1, 0}, {4096, 4095}, {4097, 8192}, {0, 0}};
	if (rep < sizeof fixed / sizeof fixed[0])
		return fixed[rep][which & 1];
	return (size_t)(peer_mix(rep * 2u + which) % (300u * 1024u));
}

uint64_t peer_rep_seed(unsigned rep, unsigned which, enum peer_order order)
{
	return peer_mix(((uint64_t)order << 40) ^ ((uint64_t)rep << 8) ^ which);
}

/* ---------------------------------------------------------------------- */
/* Sending */

static bool peer_send(struct peer *p, const uint8_t *buf, size_t len,
                      const char *what)
{
	while (len > 0) {
		ssize_t n = send(p->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			peer_fail(p, "%s: write failed with %s", what,
			          peer_errno_name(errno));
			return false;
		}
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static bool peer_send_msg(struct peer *p, uint32_t msg, const char *what)
{
	uint8_t h[4] = {(uint8_t)msg, (uint8_t)(msg >> 8), (uint8_t)(msg >> 16),
	                (uint8_t)(msg >> 24)};
	return peer_send(p, h, 4, what);
}

static void peer_send_close(struct peer *p, const char *what)
{
	p->sent_close = true;
	peer_send_msg(p, MSG_CLOSE, what);
}

/* Upstream's write: frames of at most 4096 payload bytes, each header
 * and payload sent together. Frame sizes vary with the seed. */
static bool peer_write(struct peer *p, uint64_t seed, size_t len)
{
	uint8_t frame[4 + MAX_FRAME];
	size_t off = 0;
	unsigned k = 0;
	while (off < len) {
		size_t flen = MAX_FRAME;
		if (seed & 1)
			flen = 1 + (size_t)(peer_mix(seed + k++) % MAX_FRAME);
		if (flen > len - off)
			flen = len - off;
		frame[0] = (uint8_t)flen;
		frame[1] = (uint8_t)(flen >> 8);
		frame[2] = frame[3] = 0;
		peer_fill(seed, off, frame + 4, flen);
		if (!peer_send(p, frame, 4 + flen, "data"))
			return false;
		off += flen;
	}
	return true;
}

/* ---------------------------------------------------------------------- */
/* Receiving */

/* The next message; for EV_DATA, [*data, *data + *len) is payload (part
 * of a frame). */
static int peer_next(struct peer *p, const uint8_t **data, size_t *len)
{
	for (;;) {
		if (p->in_off == p->in_len) {
			ssize_t n = recv(p->fd, p->in, sizeof p->in, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				peer_fail(p, "read failed with %s",
				          peer_errno_name(errno));
				return EV_ERROR;
			}
			if (n == 0) {
				if (p->need > 0 || p->hdr_len > 0)
					peer_fail(p, "hang-up inside a frame");
				return EV_EOF;
			}
			p->in_len = (size_t)n;
			p->in_off = 0;
		}
		if (p->need > 0) {
			size_t take = p->in_len - p->in_off;
			if (take > p->need)
				take = p->need;
			*data = p->in + p->in_off;
			*len = take;
			p->in_off += take;
			p->need -= (uint32_t)take;
			return EV_DATA;
		}
		while (p->hdr_len < 4 && p->in_off < p->in_len)
			p->hdr[p->hdr_len++] = p->in[p->in_off++];
		if (p->hdr_len < 4)
			continue;
		p->hdr_len = 0;
		uint32_t v = (uint32_t)p->hdr[0] | (uint32_t)p->hdr[1] << 8 |
		             (uint32_t)p->hdr[2] << 16 |
		             (uint32_t)p->hdr[3] << 24;
		if (v == MSG_SHUTDOWN_WRITE)
			return EV_SHUT_WR;
		if (v == MSG_SHUTDOWN_READ)
			return EV_SHUT_RD;
		if (v == MSG_CLOSE)
			return EV_CLOSE;
		if (v >= 0x80000000u) {
			peer_fail(p, "bad frame header 0x%08x", (unsigned)v);
			return EV_ERROR;
		}
		if (v > MAX_FRAME) {
			peer_fail(p, "a data frame of %u bytes (> 4096)",
			          (unsigned)v);
			return EV_ERROR;
		}
		p->need = v; /* a zero-length frame is skipped */
	}
}

/* Upstream's read until end of file: data is hashed; ShutdownWrite and
 * Close end it (a Close is answered with Close at once). */
static bool peer_read_all(struct peer *p)
{
	p->hash = PEER_HASH_INIT;
	for (;;) {
		const uint8_t *d;
		size_t n;
		switch (peer_next(p, &d, &n)) {
		case EV_DATA:
			p->hash = peer_hash_update(p->hash, d, n);
			p->res->received += n;
			continue;
		case EV_SHUT_WR: p->got_shut_wr = true; return true;
		case EV_SHUT_RD: continue;
		case EV_CLOSE:
			p->got_close = true;
			if (p->plan->answer_delay_ms > 0)
				usleep(p->plan->answer_delay_ms * 1000u);
			if (p->plan->before_answer != NULL)
				p->plan->before_answer(p->plan->ud);
			if (!p->sent_close)
				peer_send_close(p, "Close (the answer)");
			return true;
		case EV_EOF:
			peer_fail(p, "the connection ended before the other "
			             "side's ShutdownWrite or Close");
			return false;
		default: return false;
		}
	}
}

/*
 * Upstream's close: Close, then read on until the other side's Close (or
 * ShutdownRead), discarding data and skipping ShutdownWrite. Then, beyond
 * upstream, wait for the hang-up the other side owes us now, so that a
 * reset it causes is seen.
 */
static void peer_close(struct peer *p)
{
	if (!p->sent_close)
		peer_send_close(p, "Close");
	bool ended = p->got_close, by_shut_rd = false;
	while (!ended && p->res->ok) {
		const uint8_t *d;
		size_t n;
		switch (peer_next(p, &d, &n)) {
		case EV_DATA: continue;
		case EV_SHUT_WR: continue;
		case EV_CLOSE:
			p->got_close = true;
			ended = true;
			break;
		case EV_SHUT_RD: ended = by_shut_rd = true; break;
		case EV_EOF:
			peer_fail(p, "hang-up before the other side's Close");
			ended = true;
			break;
		default: ended = true; break;
		}
	}
	/* After a Close nothing may follow; after a ShutdownRead, the rest
	 * of the stream up to its Close may (upstream would have hung up
	 * already, and never see it). */
	while (p->res->ok) {
		const uint8_t *d;
		size_t n;
		int ev = peer_next(p, &d, &n);
		static const char *const names[] = {"data", "ShutdownWrite",
		                                    "ShutdownRead", "Close"};
		if (ev == EV_EOF || ev == EV_ERROR)
			break;
		if (!by_shut_rd || p->got_close) {
			peer_fail(p, "%s after the other side's %s", names[ev],
			          by_shut_rd ? "ShutdownRead and Close"
			                     : "Close");
			break;
		}
		if (ev == EV_CLOSE)
			p->got_close = true;
	}
	p->res->saw_close = p->got_close;
}

void peer_run(int fd, const struct peer_plan *plan, struct peer_result *res)
{
	memset(res, 0, sizeof *res);
	res->ok = true;
	static _Thread_local struct peer p;
	memset(&p, 0, sizeof p);
	p.fd = fd;
	p.plan = plan;
	p.res = res;
	unsigned ms = plan->timeout_ms != 0 ? plan->timeout_ms : 10000;
	struct timeval tv = {.tv_sec = ms / 1000,
	                     .tv_usec = (ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	bool ok = true;
	switch (plan->order) {
	case ORDER_RILL_HALF_CLOSES_FIRST:
		/* After the other side's Close (answered), the flow is
		 * closed: upstream writes nothing more. */
		ok = peer_read_all(&p) &&
		     (p.sent_close ||
		      (peer_write(&p, plan->send_seed, plan->send_len) &&
		       peer_send_msg(&p, MSG_SHUTDOWN_WRITE, "ShutdownWrite")));
		break;
	case ORDER_PEER_CLOSES_AFTER_WRITE:
		ok = peer_read_all(&p) &&
		     (p.sent_close ||
		      peer_write(&p, plan->send_seed, plan->send_len));
		break;
	default:
		ok = peer_write(&p, plan->send_seed, plan->send_len) &&
		     peer_send_msg(&p, MSG_SHUTDOWN_WRITE, "ShutdownWrite") &&
		     peer_read_all(&p);
		break;
	}
	if (ok && plan->before_close != NULL)
		plan->before_close(plan->ud);
	if (ok)
		peer_close(&p);
	close(fd);
	if (res->ok &&
	    (res->received != plan->recv_len ||
	     p.hash != peer_expected_hash(plan->recv_seed, plan->recv_len)))
		peer_fail(&p, "received %zu bytes, expected %zu%s",
		          res->received, plan->recv_len,
		          res->received == plan->recv_len ? " (bad hash)" : "");
}

/* ---------------------------------------------------------------------- */
/* Sockets */

static socklen_t peer_unix_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	size_t n = strlen(path);
	if (n >= sizeof a->sun_path)
		n = sizeof a->sun_path - 1;
	memcpy(a->sun_path, path, n);
	if (path[0] == '@') /* Linux abstract namespace */
		a->sun_path[0] = '\0';
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	                   (path[0] == '@' ? 0 : 1));
}

int peer_listen_unix(const char *path)
{
	struct sockaddr_un a;
	socklen_t len = peer_unix_addr(&a, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 8) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int peer_listen_tcp(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int peer_connect_unix(const char *path)
{
	struct sockaddr_un a;
	socklen_t len = peer_unix_addr(&a, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, len) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int peer_connect_tcp(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	return fd;
}

int peer_accept(int lfd, unsigned timeout_ms)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	int r;
	do
		r = poll(&pfd, 1, (int)timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		errno = r == 0 ? ETIMEDOUT : errno;
		return -1;
	}
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}
