/*
 * vchan flows: Xen's vchan rings (vchan_ring.c) between two processes of
 * one host, woken through eventfds watched by libuv, set up through a
 * rendezvous Unix socket (doc/vchan-rendezvous.md).
 *
 * One flow is one side of the vchan. Its life:
 *   server: created bound to the rendezvous path with the shared memory
 *           already mapped (writes can fill the ring at once); accepts a
 *           client, reads its HELLO, sends the OFFER with the fds, waits
 *           for READY; then the path is removed.
 *   client: connects (retrying while allowed), sends HELLO, receives the
 *           OFFER, validates and maps the memory, sets cli_live, sends
 *           READY; only then is the flow handed to the user.
 * The rendezvous socket stays open afterwards with no more traffic: its
 * hang-up is how a peer that died without clearing its live byte (killed
 * by SIGKILL) is seen as gone.
 *
 * Moving bytes (vchan_run): try the pending read and write; when one has
 * to wait, poll the ring for up to spin_ns, then set the notify request
 * bit in the peer's byte, re-check the ring once more (no lost wake-up, see
 * vchan_ring.c), and sleep on the eventfd.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "spread.h"
#include "transport/vchan.h"
#include "vchan_ring.h"

#define VCHAN_PROTO_VERSION 1
#define VCHAN_KIND_HELLO    1
#define VCHAN_KIND_OFFER    2
#define VCHAN_KIND_READY    3
#define VCHAN_HELLO_LEN     8
#define VCHAN_OFFER_LEN     32
#define VCHAN_READY_LEN     8
#define VCHAN_NFDS          3

#define VCHAN_DEFAULT_SPIN_NS 50000u
#define VCHAN_READ_MAX        (256u * 1024u)
/* Work done in one go before letting the loop run other handles. */
#define VCHAN_RUN_BUDGET   64
#define VCHAN_DEFAULT_SIZE (1u << 20)
#define VCHAN_RETRY_MS     20

static const uint8_t vchan_magic[4] = {'R', 'V', 'C', 'H'};

enum vchan_state {
	VS_LISTENING,  /* server: waiting for a client to connect */
	VS_SRV_HELLO,  /* server: reading the client's HELLO */
	VS_SRV_READY,  /* server: OFFER sent, reading READY */
	VS_CONNECTING, /* client: connect() (retrying) */
	VS_CLI_OFFER,  /* client: HELLO sent, reading the OFFER */
	VS_CONNECTED,
	VS_FAILED,
};

struct vchan_listener;

/*
 * Read buffers of VCHAN_READ_MAX bytes, recycled. Big fresh allocations
 * on every read cost more than the copy itself (glibc serves them with
 * mmap or trims its heap after each free: page faults per read), so a
 * big read's memory returns here when the reader releases the buffer,
 * for the next read. Shared by the flow and its outstanding buffers
 * (refs); the last one out frees it. Small reads use plain buffers, so a
 * reader that keeps many small buffers does not pin big blocks.
 */
#define VCHAN_POOL_MIN   (32u * 1024u)
#define VCHAN_POOL_DEPTH 4

struct vchan_pool {
	unsigned refs;
	bool flow_gone;
	int nfree;
	void *free[VCHAN_POOL_DEPTH];
};

struct vchan_flow {
	struct rill_flow base;
	struct rill__vchan v;
	bool attached; /* v is valid */
	void *map;
	size_t map_len;
	int memfd, my_evt, peer_evt, sock_fd, listen_fd;
	char *path; /* server: rendezvous path we bound, to remove */
	enum vchan_state state;
	uint8_t hs[VCHAN_OFFER_LEN];
	size_t hs_len;
	int rd_order, wr_order; /* server: as created; for the OFFER */

	uv_poll_t evt_poll, sock_poll, listen_poll;
	uv_timer_t timer;
	bool evt_init, sock_init, listen_init, timer_init;
	unsigned open_handles;
	bool discard; /* never handed to the user: discard, not destroyed */

	int fail;       /* sticky error of the vchan */
	bool peer_gone; /* rendezvous socket hung up */
	bool reading, writing, wr_shut;
	bool in_run, rerun;
	struct vchan_pool *pool;
	uint64_t spin_ns;   /* the tunable maximum */
	uint64_t spin_cur;  /* adaptive: what the last spins earned */
	unsigned spin_idle; /* sleeps since spinning was abandoned */
	struct rill_buf *const *w_bufs;
	size_t w_n, w_i, w_off;

	/* completion of the rendezvous */
	rill_vchan_server_cb srv_cb;
	rill_connect_cb cli_cb;
	void *cb_ud;
	struct vchan_listener *owner; /* accepted by a URI listener */
	struct vchan_flow *next_hs;   /* owner's list of handshakes */

	/* client connect parameters */
	char sun_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint64_t deadline, retry_until; /* loop time, 0 none */
};

static uint32_t vchan_start_index;

void rill__vchan_set_start_index(uint32_t idx)
{
	vchan_start_index = idx;
}

static const struct rill_flow_ops vchan_ops;

static struct vchan_flow *vchan_of(struct rill_flow *f)
{
	return rill_container_of(f, struct vchan_flow, base);
}

int rill__vchan_orders_of(struct rill_flow *f, int *rd_order, int *wr_order)
{
	if (f == NULL || f->ops != &vchan_ops || !vchan_of(f)->attached)
		return -EINVAL;
	*rd_order = vchan_of(f)->v.rd_order;
	*wr_order = vchan_of(f)->v.wr_order;
	return 0;
}

void *rill__vchan_shared_page(struct rill_flow *f)
{
	if (f == NULL || f->ops != &vchan_ops || !vchan_of(f)->attached)
		return NULL;
	return vchan_of(f)->map;
}

/* ---------------------------------------------------------------------- */
/* Little-endian fields of the rendezvous messages. */

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	put_u16(p, (uint16_t)v);
	put_u16(p + 2, (uint16_t)(v >> 16));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
	return get_u16(p) | ((uint32_t)get_u16(p + 2) << 16);
}

static uint64_t get_u64(const uint8_t *p)
{
	return get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

static void vchan_msg_header(uint8_t *p, uint16_t kind)
{
	memcpy(p, vchan_magic, 4);
	put_u16(p + 4, VCHAN_PROTO_VERSION);
	put_u16(p + 6, kind);
}

static bool vchan_msg_is(const uint8_t *p, uint16_t kind)
{
	return memcmp(p, vchan_magic, 4) == 0 &&
	       get_u16(p + 4) == VCHAN_PROTO_VERSION && get_u16(p + 6) == kind;
}

/* ---------------------------------------------------------------------- */
/* Names */

static bool vchan_name_ok(const char *s, bool allow_dot)
{
	if (s == NULL || *s == '\0' || strlen(s) > 255)
		return false;
	if (allow_dot && (strcmp(s, ".") == 0 || strcmp(s, "..") == 0))
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		          (allow_dot && c == '.');
		if (!ok)
			return false;
	}
	return true;
}

static int vchan_default_dir(char *buf, size_t len)
{
	const char *d = getenv("RILL_VCHAN_DIR");
	int n;
	if (d != NULL && *d != '\0')
		n = snprintf(buf, len, "%s", d);
	else if ((d = getenv("XDG_RUNTIME_DIR")) != NULL && *d != '\0')
		n = snprintf(buf, len, "%s/rill-vchan", d);
	else
		n = snprintf(buf, len, "/tmp/rill-vchan-%u",
		             (unsigned)getuid());
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The directory of domain into buf; with create, makes the default
 * directory (mode 0700) and the domain's own directory if missing. */
static int vchan_dir(const char *domain, char *buf, size_t len, bool create)
{
	if (domain != NULL && strchr(domain, '/') != NULL) {
		int n = snprintf(buf, len, "%s", domain);
		if (n < 0 || (size_t)n >= len)
			return -ENAMETOOLONG;
		if (create && mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -errno;
		return 0;
	}
	if (domain != NULL && *domain != '\0' && !vchan_name_ok(domain, true))
		return RILL_EINVAL;
	int err = vchan_default_dir(buf, len);
	if (err != 0)
		return err;
	if (create && mkdir(buf, 0700) != 0 && errno != EEXIST)
		return -errno;
	if (domain == NULL || *domain == '\0')
		return 0;
	size_t l = strlen(buf);
	int n = snprintf(buf + l, len - l, "/%s", domain);
	if (n < 0 || (size_t)n >= len - l)
		return -ENAMETOOLONG;
	if (create && mkdir(buf, 0700) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int vchan_path(const char *domain, const char *port, char *buf,
                      size_t len, bool create)
{
	if (!vchan_name_ok(port, false))
		return RILL_EINVAL;
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int err = vchan_dir(domain, dir, sizeof dir, create);
	if (err != 0)
		return err;
	int n = snprintf(buf, len, "%s/%s", dir, port);
	if (n < 0 || (size_t)n >= len ||
	    (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int rill_vchan_path(const char *domain, const char *port, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return RILL_EINVAL;
	return vchan_path(domain, port, buf, len, false);
}

/* ---------------------------------------------------------------------- */
/* Event fds. A hostile peer shares the file descriptions: it may clear
 * O_NONBLOCK or drain or fill the counter behind our back, so every
 * access asks the kernel not to block for this call alone (RWF_NOWAIT)
 * where the kernel supports it. */

static void vchan_evt_signal(int fd)
{
	uint64_t one = 1;
	struct iovec iov = {&one, sizeof one};
	ssize_t r = pwritev2(fd, &iov, 1, -1, RWF_NOWAIT);
	if (r < 0 && (errno == EOPNOTSUPP || errno == EINVAL)) {
		/* Linux has no RWF_NOWAIT for eventfd writes (6.x): make sure
		 * a write cannot block now (a peer that cleared O_NONBLOCK
		 * and filled the counter). A peer racing this check could
		 * still stall us; that residual risk is documented. */
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		if (poll(&p, 1, 0) == 1 && (p.revents & POLLOUT))
			r = write(fd, &one, sizeof one);
	}
	(void)r; /* EAGAIN: a wake-up is pending anyway */
}

static void vchan_evt_drain(int fd)
{
	uint64_t v;
	struct iovec iov = {&v, sizeof v};
	ssize_t r = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
	if (r < 0 && (errno == EOPNOTSUPP || errno == EINVAL))
		r = read(fd, &v, sizeof v);
	(void)r;
}

static uint64_t vchan_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void vchan_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

/* ---------------------------------------------------------------------- */
/* Teardown */

static void vchan_pool_unref(struct vchan_pool *p);

static void vchan_release_resources(struct vchan_flow *vf)
{
	if (vf->pool != NULL) {
		vf->pool->flow_gone = true;
		for (int i = 0; i < vf->pool->nfree; i++)
			rill_free(vf->pool->free[i]);
		vf->pool->nfree = 0;
		vchan_pool_unref(vf->pool);
		vf->pool = NULL;
	}
	if (vf->map != NULL)
		munmap(vf->map, vf->map_len);
	vf->map = NULL;
	vf->attached = false;
	int *fds[] = {&vf->memfd, &vf->my_evt, &vf->peer_evt, &vf->sock_fd,
	              &vf->listen_fd};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	if (vf->path != NULL) {
		unlink(vf->path);
		rill_free(vf->path);
		vf->path = NULL;
	}
}

static void vchan_finish_teardown(struct vchan_flow *vf)
{
	vchan_release_resources(vf);
	if (vf->discard)
		rill_flow_discard(&vf->base);
	else
		rill_flow_destroyed(&vf->base);
}

static void vchan_handle_closed(uv_handle_t *h)
{
	struct vchan_flow *vf = h->data;
	if (--vf->open_handles == 0)
		vchan_finish_teardown(vf);
}

/* Closes every handle, then the fds and the mapping. */
static void vchan_teardown(struct vchan_flow *vf)
{
	vf->state = VS_FAILED;
	vf->reading = vf->writing = false;
	uv_handle_t *hs[4];
	size_t n = 0;
	if (vf->evt_init)
		hs[n++] = (uv_handle_t *)&vf->evt_poll;
	if (vf->sock_init)
		hs[n++] = (uv_handle_t *)&vf->sock_poll;
	if (vf->listen_init)
		hs[n++] = (uv_handle_t *)&vf->listen_poll;
	if (vf->timer_init)
		hs[n++] = (uv_handle_t *)&vf->timer;
	vf->evt_init = vf->sock_init = vf->listen_init = vf->timer_init = false;
	if (n == 0) {
		vchan_finish_teardown(vf);
		return;
	}
	vf->open_handles = (unsigned)n;
	for (size_t i = 0; i < n; i++)
		uv_close(hs[i], vchan_handle_closed);
}

/* ---------------------------------------------------------------------- */
/* Moving bytes */

static void vchan_fail(struct vchan_flow *vf, int err, const char *what)
{
	if (vf->fail == 0) {
		vf->fail = err;
		rill_flow_set_errmsg(&vf->base, "vchan: %s", what);
	}
}

static void vchan_pool_unref(struct vchan_pool *p)
{
	if (--p->refs > 0)
		return;
	for (int i = 0; i < p->nfree; i++)
		rill_free(p->free[i]);
	rill_free(p);
}

static void vchan_pool_give_back(void *ctx, void *mem)
{
	struct vchan_pool *p = ctx;
	if (!p->flow_gone && p->nfree < VCHAN_POOL_DEPTH)
		p->free[p->nfree++] = mem;
	else
		rill_free(mem);
	vchan_pool_unref(p);
}

/* A buffer for n bytes of a read. */
static struct rill_buf *vchan_read_buf(struct vchan_flow *vf, size_t n)
{
	if (n < VCHAN_POOL_MIN)
		return rill_buf_new(n);
	if (vf->pool == NULL) {
		vf->pool = rill_calloc(1, sizeof *vf->pool);
		if (vf->pool == NULL)
			return rill_buf_new(n);
		vf->pool->refs = 1; /* the flow's */
	}
	struct vchan_pool *p = vf->pool;
	void *mem =
	    p->nfree > 0 ? p->free[--p->nfree] : rill_malloc(VCHAN_READ_MAX);
	if (mem == NULL)
		return NULL;
	struct rill_buf *b = rill_buf_wrap(mem, n, vchan_pool_give_back, p);
	if (b == NULL) {
		rill_free(mem);
		return NULL;
	}
	p->refs++;
	return b;
}

/* Completes the pending read if it can; true when it did. */
static bool vchan_try_read(struct vchan_flow *vf)
{
	if (!vf->reading)
		return false;
	if (vf->fail != 0) {
		vf->reading = false;
		rill_flow_read_done(&vf->base, vf->fail, NULL);
		return true;
	}
	if (!vf->attached)
		return false;
	uint32_t ready;
	int err = rill__vchan_readable(&vf->v, &ready);
	if (err == 0 && ready == 0) {
		/* EOF only when the peer is gone and the ring stays empty
		 * after we saw that (its last bytes precede its live 0). */
		bool gone = vf->peer_gone || rill__vchan_peer_live(&vf->v) ==
		                                 RILL__VCHAN_LIVE_CLOSED;
		if (!gone)
			return false;
		err = rill__vchan_readable(&vf->v, &ready);
		if (err == 0 && ready == 0) {
			vf->reading = false;
			rill_flow_read_done(&vf->base, RILL_EOF, NULL);
			return true;
		}
	}
	if (err != 0) {
		vchan_fail(vf, err,
		           "the peer wrote a producer index out of range");
		vf->reading = false;
		rill_flow_read_done(&vf->base, err, NULL);
		return true;
	}
	size_t n = ready < VCHAN_READ_MAX ? ready : VCHAN_READ_MAX;
	struct rill_buf *b = vchan_read_buf(vf, n);
	if (b == NULL) {
		vf->reading = false;
		rill_flow_read_done(&vf->base, RILL_ENOMEM, NULL);
		return true;
	}
	size_t got;
	err = rill__vchan_read(&vf->v, b->data, n, &got);
	if (err != 0 || got == 0) {
		/* Cannot happen with an honest peer: ready was checked. */
		rill_buf_release(b);
		vchan_fail(vf, RILL_ERING, "the ring index went backwards");
		vf->reading = false;
		rill_flow_read_done(&vf->base, RILL_ERING, NULL);
		return true;
	}
	b->len = got;
	if (rill__vchan_take_request(&vf->v, RILL__VCHAN_NOTIFY_READ))
		vchan_evt_signal(vf->peer_evt);
	vf->reading = false;
	rill_flow_read_done(&vf->base, 0, b);
	return true;
}

static void vchan_write_done(struct vchan_flow *vf, int status)
{
	vf->writing = false;
	vf->w_bufs = NULL;
	rill_flow_write_done(&vf->base, status);
}

/* Moves what fits of the pending write; true when anything happened. */
static bool vchan_try_write(struct vchan_flow *vf)
{
	if (!vf->writing)
		return false;
	if (vf->fail != 0) {
		vchan_write_done(vf, vf->fail);
		return true;
	}
	if (vf->peer_gone) {
		rill_flow_set_errmsg(&vf->base, "vchan: the peer is gone");
		vchan_write_done(vf, RILL_ECLOSED);
		return true;
	}
	if (!vf->attached)
		return false;
	bool moved = false;
	while (vf->w_i < vf->w_n) {
		struct rill_buf *b = vf->w_bufs[vf->w_i];
		size_t put;
		int err = rill__vchan_write(&vf->v, b->data + vf->w_off,
		                            b->len - vf->w_off, &put);
		if (err != 0) {
			vchan_fail(vf, err,
			           "the peer wrote a consumer index out of "
			           "range");
			vchan_write_done(vf, err);
			return true;
		}
		if (put == 0)
			break;
		moved = true;
		vf->w_off += put;
		if (vf->w_off == b->len) {
			vf->w_i++;
			vf->w_off = 0;
		}
	}
	if (moved && rill__vchan_take_request(&vf->v, RILL__VCHAN_NOTIFY_WRITE))
		vchan_evt_signal(vf->peer_evt);
	if (vf->w_i == vf->w_n) {
		vchan_write_done(vf, 0);
		return true;
	}
	return moved;
}

/* True when a waiting operation could proceed now (for the spin). */
static bool vchan_ready_now(struct vchan_flow *vf)
{
	uint32_t n;
	if (vf->reading && (rill__vchan_readable(&vf->v, &n) != 0 || n > 0 ||
	                    rill__vchan_peer_live(&vf->v) == 0))
		return true;
	if (vf->writing && (rill__vchan_writable(&vf->v, &n) != 0 || n > 0))
		return true;
	return false;
}

/*
 * Polls the ring for up to spin_cur ns. The spin adapts: it doubles
 * (up to spin_ns) when it saw the peer act, halves when it did not, and
 * stops when that is all it does - the peer may run on this very loop,
 * or be idle - trying again after a number of sleeps.
 */
static void vchan_spin(struct vchan_flow *vf)
{
	if (vf->spin_ns == 0)
		return;
	if (vf->spin_cur == 0) {
		if (++vf->spin_idle < 256)
			return;
		vf->spin_idle = 0;
		vf->spin_cur = vf->spin_ns / 8 + 1;
	}
	uint64_t start = vchan_now_ns();
	uint64_t end = start + vf->spin_cur;
	unsigned i = 0;
	bool ready;
	while (!(ready = vchan_ready_now(vf))) {
		vchan_cpu_relax();
		if ((++i & 63) == 0 && vchan_now_ns() >= end)
			break;
	}
	if (ready) {
		uint64_t c = vf->spin_cur * 2;
		vf->spin_cur = c > vf->spin_ns ? vf->spin_ns : c;
	} else {
		vf->spin_cur /= 2;
		if (vf->spin_cur < 500)
			vf->spin_cur = 0;
	}
}

static void vchan_run(struct vchan_flow *vf)
{
	if (vf->in_run) {
		vf->rerun = true;
		return;
	}
	vf->in_run = true;
	bool spun = false, requested = false;
	int budget = VCHAN_RUN_BUDGET;
	for (;;) {
		vf->rerun = false;
		bool prog = vchan_try_read(vf);
		prog |= vchan_try_write(vf);
		if (rill_flow_is_closed(&vf->base) || vf->state == VS_FAILED)
			break;
		if (!vf->reading && !vf->writing && !vf->rerun)
			break;
		if (!vf->attached)
			break; /* the rendezvous wakes us */
		if (prog || vf->rerun) {
			if (--budget == 0) {
				/* Let other handles run; our own eventfd
				 * brings us back on the next iteration. */
				vchan_evt_signal(vf->my_evt);
				break;
			}
			spun = requested = false;
			continue;
		}
		if (!spun) {
			spun = true;
			vchan_spin(vf);
			continue;
		}
		if (!requested) {
			requested = true;
			if (vf->reading)
				rill__vchan_request(&vf->v,
				                    RILL__VCHAN_NOTIFY_WRITE);
			if (vf->writing)
				rill__vchan_request(&vf->v,
				                    RILL__VCHAN_NOTIFY_READ);
			continue; /* re-check before sleeping */
		}
		break; /* sleep until the eventfd fires */
	}
	vf->in_run = false;
}

static void vchan_on_evt(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct vchan_flow *vf = h->data;
	vchan_evt_drain(vf->my_evt);
	vchan_run(vf);
}

static int vchan_start_evt(struct vchan_flow *vf)
{
	int err = uv_poll_init(vf->base.loop, &vf->evt_poll, vf->my_evt);
	if (err != 0)
		return err;
	vf->evt_init = true;
	vf->evt_poll.data = vf;
	return uv_poll_start(&vf->evt_poll, UV_READABLE, vchan_on_evt);
}

/* After the rendezvous: the socket only tells us when the peer is gone. */
static void vchan_on_sock_connected(uv_poll_t *h, int status, int events)
{
	struct vchan_flow *vf = h->data;
	(void)events;
	uint8_t scratch[256];
	ssize_t r = status < 0 ? -1
	                       : recv(vf->sock_fd, scratch, sizeof scratch,
	                              MSG_DONTWAIT);
	if (r > 0)
		return; /* reserved for later versions: ignored */
	if (r < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR))
		return;
	vf->peer_gone = true;
	uv_poll_stop(h);
	vchan_run(vf);
}

/* ---------------------------------------------------------------------- */
/* Flow ops */

static void vchan_read(struct rill_flow *f)
{
	struct vchan_flow *vf = vchan_of(f);
	vf->reading = true;
	vchan_run(vf);
}

static void vchan_write(struct rill_flow *f, struct rill_buf *const *bufs,
                        size_t n)
{
	struct vchan_flow *vf = vchan_of(f);
	vf->w_bufs = bufs;
	vf->w_n = n;
	vf->w_i = 0;
	vf->w_off = 0;
	vf->writing = true;
	vchan_run(vf);
}

static void vchan_set_my_live(struct vchan_flow *vf, uint8_t live)
{
	if (!vf->attached)
		return;
	rill__vchan_set_live(&vf->v, live);
	/* Unconditional, as libxenvchan_close does: a sleeping peer must
	 * re-check the live byte. */
	vchan_evt_signal(vf->peer_evt);
}

static void vchan_shutdown_write(struct rill_flow *f)
{
	struct vchan_flow *vf = vchan_of(f);
	vf->wr_shut = true;
	vchan_set_my_live(vf, RILL__VCHAN_LIVE_CLOSED);
	rill_flow_shutdown_done(f, 0);
}

static void vchan_close(struct rill_flow *f)
{
	struct vchan_flow *vf = vchan_of(f);
	vchan_set_my_live(vf, RILL__VCHAN_LIVE_CLOSED);
	vchan_teardown(vf);
}

static int vchan_address(struct rill_flow *f, int which, char *buf, size_t len)
{
	(void)f;
	(void)which;
	int n = snprintf(buf, len, "vchan:");
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct rill_flow_ops vchan_ops = {
    .name = "vchan",
    .read = vchan_read,
    .write = vchan_write,
    .shutdown_write = vchan_shutdown_write,
    .close = vchan_close,
    .address = vchan_address,
};

int rill_vchan_set_spin(struct rill_flow *f, uint64_t ns)
{
	if (f == NULL || f->ops != &vchan_ops)
		return RILL_EINVAL;
	vchan_of(f)->spin_ns = ns;
	vchan_of(f)->spin_cur = ns;
	return 0;
}

static struct vchan_flow *vchan_flow_new(uv_loop_t *loop)
{
	struct vchan_flow *vf = (struct vchan_flow *)(void *)rill_flow_new(
	    loop, &vchan_ops, sizeof(struct vchan_flow));
	if (vf == NULL)
		return NULL;
	vf->memfd = vf->my_evt = vf->peer_evt = vf->sock_fd = vf->listen_fd =
	    -1;
	vf->spin_ns = VCHAN_DEFAULT_SPIN_NS;
	const char *s = getenv("RILL_VCHAN_SPIN_NS");
	if (s != NULL && *s != '\0')
		vf->spin_ns = strtoull(s, NULL, 10);
	vf->spin_cur = vf->spin_ns;
	return vf;
}

/* ---------------------------------------------------------------------- */
/* Server */

struct vchan_listener {
	struct rill_listener base;
	struct rill__spread_member spread; /* listener group (see spread.h) */
	bool member;                       /* joined: no socket of its own */
	uv_poll_t poll;
	int fd;
	char *path;
	char *uri;
	size_t read_size, write_size;
	struct vchan_flow *handshakes; /* accepted, not yet handed out */
};

static void vchan_srv_on_sock(uv_poll_t *h, int status, int events);
static void vchan_srv_on_listen(uv_poll_t *h, int status, int events);
static void vchan_srv_accept(struct vchan_flow *vf, int fd);
static void vchan_listener_handshake_done(struct vchan_listener *l,
                                          struct vchan_flow *vf, int status,
                                          const char *msg);

/* Creates the shared memory and the eventfds of a new server side. */
static int vchan_srv_setup(struct vchan_flow *vf, size_t read_size,
                           size_t write_size)
{
	int lo, ro;
	if (rill__vchan_orders(read_size, write_size, &lo, &ro) != 0) {
		rill__set_last_errmsg("vchan: ring sizes must be 1..%zu bytes",
		                      (size_t)1 << RILL__VCHAN_MAX_ORDER);
		return RILL_EINVAL;
	}
	vf->rd_order = lo;
	vf->wr_order = ro;
	vf->map_len = rill__vchan_map_size(lo, ro);
	vf->memfd = memfd_create("rill-vchan", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (vf->memfd < 0)
		goto sys_err;
	if (ftruncate(vf->memfd, (off_t)vf->map_len) != 0)
		goto sys_err;
	/* Sealed, so the client cannot shrink the file under our mapping
	 * (a SIGBUS), and can check that we cannot shrink it either. */
	if (fcntl(vf->memfd, F_ADD_SEALS,
	          F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
		goto sys_err;
	vf->map = mmap(NULL, vf->map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
	               vf->memfd, 0);
	if (vf->map == MAP_FAILED) {
		vf->map = NULL;
		goto sys_err;
	}
	rill__vchan_init_page(vf->map, lo, ro, vchan_start_index);
	if (rill__vchan_attach(&vf->v, vf->map, vf->map_len, true) != 0) {
		rill__set_last_errmsg("vchan: internal layout error");
		return RILL_ERING;
	}
	vf->attached = true;
	vf->my_evt = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vf->peer_evt = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vf->my_evt < 0 || vf->peer_evt < 0)
		goto sys_err;
	int err = vchan_start_evt(vf);
	if (err != 0) {
		rill__set_last_errmsg("vchan: %s", uv_strerror(err));
		return err;
	}
	return 0;
sys_err:
	err = -errno;
	rill__set_last_errmsg("vchan: creating shared memory: %s",
	                      strerror(errno));
	return err;
}

/* Binds and listens on path; a stale socket file (nobody listening) is
 * replaced. */
static int vchan_bind(const char *path, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		if (e == EADDRINUSE) {
			int probe =
			    socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			bool live =
			    probe >= 0 && connect(probe, (struct sockaddr *)&sa,
			                          sizeof sa) == 0;
			e = errno;
			if (probe >= 0)
				close(probe);
			if (!live && e == ECONNREFUSED && unlink(path) == 0 &&
			    bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
				goto bound;
			e = EADDRINUSE;
		}
		close(fd);
		return -e;
	}
bound:
	if (listen(fd, 16) != 0) {
		int e = errno;
		close(fd);
		unlink(path);
		return -e;
	}
	*out = fd;
	return 0;
}

/* The rendezvous with one accepted client failed: forget that client. */
static void vchan_srv_drop_client(struct vchan_flow *vf, int status,
                                  const char *msg)
{
	if (vf->owner != NULL) {
		vchan_listener_handshake_done(vf->owner, vf, status, msg);
		return;
	}
	/* A stray or broken connector must not kill a waiting server: hang
	 * it up and wait for the next client. The poll handle stays (stopped)
	 * and the next connection takes over its fd number. */
	if (vf->sock_init)
		uv_poll_stop(&vf->sock_poll);
	shutdown(vf->sock_fd, SHUT_RDWR);
	vf->hs_len = 0;
	vf->state = VS_LISTENING;
	if (vf->listen_init)
		uv_poll_start(&vf->listen_poll, UV_READABLE,
		              vchan_srv_on_listen);
}

static void vchan_srv_connected(struct vchan_flow *vf)
{
	vf->state = VS_CONNECTED;
	uv_poll_start(&vf->sock_poll, UV_READABLE | UV_DISCONNECT,
	              vchan_on_sock_connected);
	if (vf->listen_init) {
		uv_close((uv_handle_t *)&vf->listen_poll, NULL);
		vf->listen_init = false;
	}
	if (vf->listen_fd >= 0)
		close(vf->listen_fd);
	vf->listen_fd = -1;
	if (vf->path != NULL) {
		unlink(vf->path);
		rill_free(vf->path);
		vf->path = NULL;
	}
	if (vf->owner != NULL) {
		vchan_listener_handshake_done(vf->owner, vf, 0, NULL);
		return;
	}
	vchan_run(vf);
	if (vf->srv_cb != NULL && !rill_flow_is_closed(&vf->base))
		vf->srv_cb(&vf->base, 0, vf->cb_ud);
}

static int vchan_srv_send_offer(struct vchan_flow *vf)
{
	uint8_t msg[VCHAN_OFFER_LEN] = {0};
	vchan_msg_header(msg, VCHAN_KIND_OFFER);
	put_u64(msg + 8, vf->map_len);
	put_u16(msg + 16, (uint16_t)vf->rd_order);
	put_u16(msg + 18, (uint16_t)vf->wr_order);
	put_u32(msg + 20, VCHAN_NFDS);
	/* fds: the memory, the server's eventfd (the client signals it),
	 * the client's eventfd (the client waits on it). */
	int fds[VCHAN_NFDS] = {vf->memfd, vf->my_evt, vf->peer_evt};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof fds)];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = {msg, sizeof msg};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = ctl.buf,
	                    .msg_controllen = sizeof ctl.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof fds);
	memcpy(CMSG_DATA(c), fds, sizeof fds);
	/* 32 bytes into a fresh socket's empty buffer: sent whole. */
	ssize_t r = sendmsg(vf->sock_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (r != (ssize_t)sizeof msg)
		return r < 0 ? -errno : -EIO;
	return 0;
}

static void vchan_srv_on_sock(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct vchan_flow *vf = h->data;
	size_t want =
	    vf->state == VS_SRV_HELLO ? VCHAN_HELLO_LEN : VCHAN_READY_LEN;
	ssize_t r = status < 0 ? -1
	                       : recv(vf->sock_fd, vf->hs + vf->hs_len,
	                              want - vf->hs_len, MSG_DONTWAIT);
	if (r < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		vchan_srv_drop_client(vf, RILL_EHANDSHAKE,
		                      "vchan: client hung up during the "
		                      "rendezvous");
		return;
	}
	vf->hs_len += (size_t)r;
	if (vf->hs_len < want)
		return;
	vf->hs_len = 0;
	if (vf->state == VS_SRV_HELLO) {
		if (!vchan_msg_is(vf->hs, VCHAN_KIND_HELLO)) {
			vchan_srv_drop_client(vf, RILL_EHANDSHAKE,
			                      "vchan: bad HELLO from client");
			return;
		}
		int err = vchan_srv_send_offer(vf);
		if (err != 0) {
			vchan_srv_drop_client(
			    vf, err, "vchan: sending the OFFER failed");
			return;
		}
		vf->state = VS_SRV_READY;
		return;
	}
	if (!vchan_msg_is(vf->hs, VCHAN_KIND_READY)) {
		vchan_srv_drop_client(vf, RILL_EHANDSHAKE,
		                      "vchan: bad READY from client");
		return;
	}
	vchan_srv_connected(vf);
}

static void vchan_srv_accept(struct vchan_flow *vf, int fd)
{
	vf->state = VS_SRV_HELLO;
	vf->hs_len = 0;
	if (vf->sock_init) {
		/* A previous connector failed: reuse its fd number, so the
		 * poll handle (bound to the number) serves the new one. */
		int r = dup3(fd, vf->sock_fd, O_CLOEXEC);
		close(fd);
		if (r < 0) {
			vchan_srv_drop_client(vf, -errno, "vchan: dup3");
			return;
		}
	} else {
		vf->sock_fd = fd;
		if (uv_poll_init(vf->base.loop, &vf->sock_poll, fd) != 0) {
			close(fd);
			vf->sock_fd = -1;
			return;
		}
		vf->sock_init = true;
		vf->sock_poll.data = vf;
	}
	uv_poll_start(&vf->sock_poll, UV_READABLE, vchan_srv_on_sock);
}

static void vchan_srv_on_listen(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct vchan_flow *vf = h->data;
	if (status < 0 || vf->state != VS_LISTENING)
		return;
	int fd =
	    accept4(vf->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	/* One rendezvous at a time; others wait in the backlog. */
	uv_poll_stop(h);
	vchan_srv_accept(vf, fd);
}

int rill_vchan_server(uv_loop_t *loop, const char *domain, const char *port,
                      size_t read_size, size_t write_size,
                      rill_vchan_server_cb cb, void *ud, struct rill_flow **out)
{
	rill__set_last_errmsg("%s", "");
	if (loop == NULL || out == NULL)
		return RILL_EINVAL;
	*out = NULL;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int err = vchan_path(domain, port, path, sizeof path, true);
	if (err != 0) {
		rill__set_last_errmsg("vchan: bad or too long name %s/%s: %s",
		                      domain != NULL ? domain : "",
		                      port != NULL ? port : "(null)",
		                      rill_strerror(err));
		return err;
	}
	struct vchan_flow *vf = vchan_flow_new(loop);
	if (vf == NULL)
		return RILL_ENOMEM;
	vf->srv_cb = cb;
	vf->cb_ud = ud;
	vf->state = VS_LISTENING;
	err = vchan_srv_setup(vf, read_size, write_size);
	if (err == 0) {
		err = vchan_bind(path, &vf->listen_fd);
		if (err != 0)
			rill__set_last_errmsg("vchan: cannot listen on %s: %s",
			                      path, rill_strerror(err));
	}
	if (err == 0) {
		vf->path = rill_strdup(path);
		if (vf->path == NULL)
			err = RILL_ENOMEM;
	}
	if (err == 0)
		err = uv_poll_init(loop, &vf->listen_poll, vf->listen_fd);
	if (err == 0) {
		vf->listen_init = true;
		vf->listen_poll.data = vf;
		err = uv_poll_start(&vf->listen_poll, UV_READABLE,
		                    vchan_srv_on_listen);
	}
	if (err != 0) {
		vf->discard = true;
		vchan_teardown(vf);
		return err;
	}
	*out = &vf->base;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Client */

static void vchan_cli_finish(struct vchan_flow *vf, int status, const char *msg)
{
	rill_connect_cb cb = vf->cli_cb;
	vf->cli_cb = NULL;
	if (status == 0) {
		vf->state = VS_CONNECTED;
		uv_timer_stop(&vf->timer);
		cb(&vf->base, 0, NULL, vf->cb_ud);
		return;
	}
	char text[256];
	snprintf(text, sizeof text, "vchan connect %s: %s", vf->sun_path, msg);
	vf->discard = true;
	vchan_teardown(vf);
	cb(NULL, status, text, vf->cb_ud);
}

static int vchan_cli_take_offer(struct vchan_flow *vf, int *fds, int nfds,
                                const char **why)
{
	const uint8_t *m = vf->hs;
	if (!vchan_msg_is(m, VCHAN_KIND_OFFER)) {
		*why = "the server sent no valid OFFER (magic, version, kind)";
		return RILL_EHANDSHAKE;
	}
	if (nfds != VCHAN_NFDS || get_u32(m + 20) != VCHAN_NFDS) {
		*why = "the OFFER did not carry exactly 3 file descriptors";
		return RILL_EHANDSHAKE;
	}
	uint64_t len = get_u64(m + 8);
	int lo = get_u16(m + 16), ro = get_u16(m + 18);
	if (rill__vchan_check_orders(lo, ro) != 0 ||
	    rill__vchan_map_size(lo, ro) != len) {
		*why = "the OFFER has bad ring orders or size";
		return RILL_ERING;
	}
	/* The memory must be sealed against shrinking: a server that
	 * truncated it under our mapping would crash us with SIGBUS. */
	int seals = fcntl(fds[0], F_GET_SEALS);
	struct stat st;
	if (seals < 0 || !(seals & F_SEAL_SHRINK) || fstat(fds[0], &st) != 0 ||
	    (uint64_t)st.st_size < len) {
		*why = "the shared memory is not a memfd sealed against "
		       "shrinking, of the offered size";
		return RILL_ERING;
	}
	void *map = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED,
	                 fds[0], 0);
	if (map == MAP_FAILED) {
		*why = "cannot map the shared memory";
		return -errno;
	}
	vf->map = map;
	vf->map_len = (size_t)len;
	vf->memfd = fds[0];
	vf->peer_evt = fds[1];
	vf->my_evt = fds[2];
	fds[0] = fds[1] = fds[2] = -1;
	int err = rill__vchan_attach(&vf->v, map, vf->map_len, false);
	if (err == 0 && (vf->v.rd_order != ro || vf->v.wr_order != lo))
		err = RILL_ERING;
	if (err != 0) {
		*why = "the shared page has bad ring orders";
		return err;
	}
	vf->attached = true;
	err = vchan_start_evt(vf);
	if (err != 0) {
		*why = "cannot watch the eventfd";
		return err;
	}
	rill__vchan_set_live(&vf->v, RILL__VCHAN_LIVE_OPEN);
	uint8_t ready[VCHAN_READY_LEN];
	vchan_msg_header(ready, VCHAN_KIND_READY);
	if (send(vf->sock_fd, ready, sizeof ready,
	         MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof ready) {
		*why = "sending READY failed";
		return RILL_EHANDSHAKE;
	}
	vchan_evt_signal(vf->peer_evt);
	return 0;
}

static void vchan_cli_on_sock(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct vchan_flow *vf = h->data;
	int fds[8];
	int nfds = 0;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof fds)];
	} ctl;
	struct iovec iov = {vf->hs + vf->hs_len, VCHAN_OFFER_LEN - vf->hs_len};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = ctl.buf,
	                    .msg_controllen = sizeof ctl.buf};
	ssize_t r = status < 0 ? -1
	                       : recvmsg(vf->sock_fd, &mh,
	                                 MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (r < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r > 0) {
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
		     c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k && nfds < 8; i++)
				memcpy(&fds[nfds++],
				       CMSG_DATA(c) + i * sizeof(int),
				       sizeof(int));
		}
	}
	const char *why = NULL;
	int err = 0;
	if (r <= 0) {
		err = RILL_EHANDSHAKE;
		why = "the server hung up before its OFFER";
	} else if ((mh.msg_flags & MSG_CTRUNC) ||
	           (nfds > 0 && vf->hs_len > 0) ||
	           (nfds == 0 && vf->hs_len == 0)) {
		err = RILL_EHANDSHAKE;
		why = "the file descriptors must come with the OFFER's first "
		      "byte";
	} else {
		vf->hs_len += (size_t)r;
	}
	/* Stash the fds in the flow while the OFFER is incomplete. */
	if (err == 0 && nfds > 0) {
		if (nfds != VCHAN_NFDS) {
			err = RILL_EHANDSHAKE;
			why = "the OFFER did not carry exactly 3 file "
			      "descriptors";
		} else {
			vf->memfd = fds[0];
			vf->peer_evt = fds[1];
			vf->my_evt = fds[2];
			nfds = 0;
		}
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (err == 0 && vf->hs_len < VCHAN_OFFER_LEN)
		return;
	if (err == 0) {
		int got[VCHAN_NFDS] = {vf->memfd, vf->peer_evt, vf->my_evt};
		vf->memfd = vf->peer_evt = vf->my_evt = -1;
		err = vchan_cli_take_offer(vf, got, VCHAN_NFDS, &why);
		for (int i = 0; i < VCHAN_NFDS; i++)
			if (got[i] >= 0)
				close(got[i]);
	}
	if (err != 0) {
		vchan_cli_finish(vf, err, why);
		return;
	}
	uv_poll_start(&vf->sock_poll, UV_READABLE | UV_DISCONNECT,
	              vchan_on_sock_connected);
	vchan_cli_finish(vf, 0, NULL);
}

static void vchan_cli_try(struct vchan_flow *vf);

static void vchan_cli_on_timer(uv_timer_t *t)
{
	struct vchan_flow *vf = t->data;
	if (vf->state == VS_CONNECTING) {
		vchan_cli_try(vf);
		return;
	}
	vchan_cli_finish(vf, RILL_ETIMEDOUT, "timed out in the rendezvous");
}

static void vchan_cli_try(struct vchan_flow *vf)
{
	uv_loop_t *loop = vf->base.loop;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		vchan_cli_finish(vf, -errno, strerror(errno));
		return;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, vf->sun_path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		close(fd);
		uv_update_time(loop);
		uint64_t now = uv_now(loop);
		if ((e == ENOENT || e == ECONNREFUSED || e == EAGAIN) &&
		    vf->retry_until > now) {
			uint64_t wait = VCHAN_RETRY_MS;
			if (vf->deadline != 0 && vf->deadline <= now + wait)
				wait =
				    vf->deadline > now ? vf->deadline - now : 0;
			uv_timer_start(&vf->timer, vchan_cli_on_timer, wait, 0);
			if (vf->deadline != 0 && vf->deadline <= now) {
				vchan_cli_finish(
				    vf, RILL_ETIMEDOUT,
				    "no server before the deadline");
			}
			return;
		}
		vchan_cli_finish(vf, -e, strerror(e));
		return;
	}
	vf->sock_fd = fd;
	vf->state = VS_CLI_OFFER;
	uint8_t hello[VCHAN_HELLO_LEN];
	vchan_msg_header(hello, VCHAN_KIND_HELLO);
	if (send(fd, hello, sizeof hello, MSG_NOSIGNAL | MSG_DONTWAIT) !=
	    (ssize_t)sizeof hello) {
		vchan_cli_finish(vf, RILL_EHANDSHAKE, "cannot send HELLO");
		return;
	}
	if (uv_poll_init(loop, &vf->sock_poll, fd) != 0) {
		vchan_cli_finish(vf, RILL_ENOMEM, "uv_poll_init failed");
		return;
	}
	vf->sock_init = true;
	vf->sock_poll.data = vf;
	uv_poll_start(&vf->sock_poll, UV_READABLE, vchan_cli_on_sock);
	if (vf->deadline != 0) {
		uv_update_time(loop);
		uint64_t now = uv_now(loop);
		uv_timer_start(&vf->timer, vchan_cli_on_timer,
		               vf->deadline > now ? vf->deadline - now : 0, 0);
	}
}

int rill_vchan_client(uv_loop_t *loop, const char *domain, const char *port,
                      const struct rill_connect_opts *opts, rill_connect_cb cb,
                      void *ud)
{
	rill__set_last_errmsg("%s", "");
	if (loop == NULL || cb == NULL)
		return RILL_EINVAL;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int err = vchan_path(domain, port, path, sizeof path, false);
	if (err != 0) {
		rill__set_last_errmsg("vchan: bad or too long name %s/%s",
		                      domain != NULL ? domain : "",
		                      port != NULL ? port : "(null)");
		return err == -ENAMETOOLONG ? err : RILL_EINVAL;
	}
	struct vchan_flow *vf = vchan_flow_new(loop);
	if (vf == NULL)
		return RILL_ENOMEM;
	strcpy(vf->sun_path, path);
	vf->cli_cb = cb;
	vf->cb_ud = ud;
	vf->state = VS_CONNECTING;
	uv_timer_init(loop, &vf->timer);
	vf->timer_init = true;
	vf->timer.data = vf;
	uv_update_time(loop);
	uint64_t now = uv_now(loop);
	if (opts != NULL && opts->timeout_ms > 0)
		vf->deadline = now + opts->timeout_ms;
	if (opts != NULL && opts->retry_until_ms > 0)
		vf->retry_until = now + opts->retry_until_ms;
	/* Start from the loop, so cb never runs inside this call. */
	uv_timer_start(&vf->timer, vchan_cli_on_timer, 0, 0);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* URI scheme: vchan:[domain/]port?read_size=N&write_size=N. Listening
 * serves any number of clients, one fresh vchan each (each accepted
 * connection gets its own shared memory); connecting is a client. */

static void vchan_listener_unlink(struct vchan_listener *l,
                                  struct vchan_flow *vf)
{
	for (struct vchan_flow **p = &l->handshakes; *p != NULL;
	     p = &(*p)->next_hs) {
		if (*p == vf) {
			*p = vf->next_hs;
			break;
		}
	}
	vf->owner = NULL;
	vf->next_hs = NULL;
}

static void vchan_listener_handshake_done(struct vchan_listener *l,
                                          struct vchan_flow *vf, int status,
                                          const char *msg)
{
	vchan_listener_unlink(l, vf);
	if (status != 0) {
		vf->discard = true;
		vchan_teardown(vf);
		l->base.cb(&l->base, NULL, status, msg, l->base.ud);
		return;
	}
	l->base.cb(&l->base, &vf->base, 0, NULL, l->base.ud);
}

/* A connection to the listening socket: the vchan handshake, on l's
 * loop. */
static void vchan_listener_take(struct vchan_listener *l, int fd)
{
	struct vchan_flow *vf = vchan_flow_new(l->base.loop);
	int err = vf == NULL ? RILL_ENOMEM : 0;
	if (err == 0) {
		vf->state = VS_SRV_HELLO;
		err = vchan_srv_setup(vf, l->read_size, l->write_size);
	}
	if (err != 0) {
		close(fd);
		if (vf != NULL) {
			vf->discard = true;
			vchan_teardown(vf);
		}
		l->base.cb(&l->base, NULL, err, rill_last_errmsg(), l->base.ud);
		return;
	}
	vf->owner = l;
	vf->next_hs = l->handshakes;
	l->handshakes = vf;
	vchan_srv_accept(vf, fd);
}

static void vchan_listener_on_accept(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct vchan_listener *l = h->data;
	if (status < 0)
		return;
	int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (!rill__spread_hand(&l->spread, fd))
		vchan_listener_take(l, fd);
}

static void vchan_member_take(struct rill__spread_member *m, int fd)
{
	vchan_listener_take(rill_container_of(m, struct vchan_listener, spread),
	                    fd);
}

static void vchan_listener_destroy(struct vchan_listener *l)
{
	rill_free(l->path);
	rill_free(l->uri);
	rill_free(l);
}

static void vchan_listener_free(uv_handle_t *h)
{
	vchan_listener_destroy(h->data);
}

static void vchan_member_left(struct rill__spread_member *m)
{
	vchan_listener_destroy(
	    rill_container_of(m, struct vchan_listener, spread));
}

static void vchan_listener_close(struct rill_listener *base)
{
	struct vchan_listener *l = (struct vchan_listener *)(void *)base;
	while (l->handshakes != NULL) {
		struct vchan_flow *vf = l->handshakes;
		vchan_listener_unlink(l, vf);
		vf->discard = true;
		vchan_teardown(vf);
	}
	rill__spread_leave(&l->spread); /* a member is freed after this */
	if (l->member)
		return;
	uv_close((uv_handle_t *)&l->poll, vchan_listener_free);
	close(l->fd);
	unlink(l->path);
}

static int vchan_listener_uri(struct rill_listener *base, char *buf, size_t len)
{
	struct vchan_listener *l = (struct vchan_listener *)(void *)base;
	int n = snprintf(buf, len, "%s", l->uri);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static const struct rill_listener_ops vchan_listener_ops = {
    .close = vchan_listener_close,
    .uri = vchan_listener_uri,
};

/* Splits u->rest into domain (NULL when absent) and port, in buf. */
static int vchan_uri_split(const struct rill_uri *u, char *buf, size_t len,
                           const char **domain, const char **port)
{
	int n = snprintf(buf, len, "%s", u->rest);
	if (n < 0 || (size_t)n >= len)
		return rill__uri_error(u, "vchan name too long", u->rest);
	char *slash = strrchr(buf, '/');
	if (slash == NULL) {
		*domain = NULL;
		*port = buf;
	} else {
		*slash = '\0';
		*domain = buf;
		*port = slash + 1;
		if (slash == buf)
			*domain = "/";
	}
	if (!vchan_name_ok(*port, false))
		return rill__uri_error(
		    u, "bad vchan port (want [a-zA-Z0-9_-]+)", *port);
	if (*domain != NULL && strchr(*domain, '/') == NULL &&
	    !vchan_name_ok(*domain, true))
		return rill__uri_error(u, "bad vchan domain", *domain);
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	if (vchan_path(*domain, *port, path, sizeof path, false) != 0)
		return rill__uri_error(u, "vchan socket path too long",
		                       u->rest);
	return 0;
}

static int vchan_uri_sizes(const struct rill_uri *u, uint64_t *rd, uint64_t *wr)
{
	uint64_t max = (uint64_t)1 << RILL__VCHAN_MAX_ORDER;
	int err =
	    rill__uri_param_u64(u, "read_size", 1, max, VCHAN_DEFAULT_SIZE, rd);
	if (err == 0)
		err = rill__uri_param_u64(u, "write_size", 1, max,
		                          VCHAN_DEFAULT_SIZE, wr);
	return err;
}

static int vchan_uri_check(const struct rill_uri *u)
{
	char buf[512];
	const char *d = NULL, *p = NULL;
	uint64_t rd, wr;
	int err = vchan_uri_split(u, buf, sizeof buf, &d, &p);
	return err != 0 ? err : vchan_uri_sizes(u, &rd, &wr);
}

static int vchan_uri_connect(uv_loop_t *loop, const struct rill_uri *u,
                             const struct rill_connect_opts *opts,
                             rill_connect_cb cb, void *ud)
{
	char buf[512];
	const char *d = NULL, *p = NULL;
	int err = vchan_uri_split(u, buf, sizeof buf, &d, &p);
	if (err != 0)
		return err;
	return rill_vchan_client(loop, d, p, opts, cb, ud);
}

static int vchan_uri_listen(uv_loop_t *loop, const struct rill_uri *u,
                            const struct rill_listen_opts *opts,
                            rill_accept_cb cb, void *ud,
                            struct rill_listener **out)
{
	(void)opts;
	char buf[512];
	const char *d = NULL, *p = NULL;
	uint64_t rd, wr;
	int err = vchan_uri_split(u, buf, sizeof buf, &d, &p);
	if (err == 0)
		err = vchan_uri_sizes(u, &rd, &wr);
	if (err != 0)
		return err;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	err = vchan_path(d, p, path, sizeof path, true);
	if (err != 0) {
		rill__set_last_errmsg("vchan: cannot create the directory of "
		                      "%s: %s",
		                      u->rest, rill_strerror(err));
		return err;
	}
	struct vchan_listener *l = rill_calloc(1, sizeof *l);
	if (l == NULL)
		return RILL_ENOMEM;
	l->fd = -1;
	l->read_size = (size_t)rd;
	l->write_size = (size_t)wr;
	l->path = rill_strdup(path);
	size_t ulen = strlen(u->rest) + 80;
	l->uri = rill_malloc(ulen);
	if (l->path == NULL || l->uri == NULL) {
		rill_free(l->path);
		rill_free(l->uri);
		rill_free(l);
		return RILL_ENOMEM;
	}
	snprintf(l->uri, ulen, "vchan:%s", u->rest);
	err = vchan_bind(path, &l->fd);
	if (err == 0)
		err = rill__spread_open(&l->spread, loop);
	if (err == 0) {
		err = uv_poll_init(loop, &l->poll, l->fd);
		if (err != 0)
			rill__spread_leave(&l->spread);
	}
	if (err != 0) {
		rill__set_last_errmsg("vchan: cannot listen on %s: %s", path,
		                      rill_strerror(err));
		if (l->fd >= 0) {
			close(l->fd);
			unlink(path);
		}
		rill_free(l->path);
		rill_free(l->uri);
		rill_free(l);
		return err;
	}
	l->base.ops = &vchan_listener_ops;
	l->base.loop = loop;
	l->base.cb = cb;
	l->base.ud = ud;
	l->poll.data = l;
	uv_poll_start(&l->poll, UV_READABLE, vchan_listener_on_accept);
	*out = &l->base;
	return 0;
}

/* rill_listen_opts.join: a listener without a socket that takes its
 * share of the acceptor's connections (handshakes on its own loop). */
static int vchan_uri_join(uv_loop_t *loop, const struct rill_uri *u,
                          struct rill_listener *acceptor, rill_accept_cb cb,
                          void *ud, struct rill_listener **out)
{
	uint64_t rd, wr;
	int err = vchan_uri_sizes(u, &rd, &wr);
	if (err != 0)
		return err;
	if (acceptor->ops != &vchan_listener_ops ||
	    ((struct vchan_listener *)(void *)acceptor)->member) {
		rill__set_last_errmsg("vchan: the listener to join is not a "
		                      "vchan listener");
		return RILL_EINVAL;
	}
	struct vchan_listener *a = (struct vchan_listener *)(void *)acceptor;
	struct vchan_listener *l = rill_calloc(1, sizeof *l);
	if (l == NULL)
		return RILL_ENOMEM;
	l->fd = -1;
	l->member = true;
	l->read_size = (size_t)rd;
	l->write_size = (size_t)wr;
	l->uri = rill_strdup(a->uri);
	if (l->uri == NULL) {
		rill_free(l);
		return RILL_ENOMEM;
	}
	l->base.ops = &vchan_listener_ops;
	l->base.loop = loop;
	l->base.cb = cb;
	l->base.ud = ud;
	err = rill__spread_join(&l->spread, &a->spread, loop, vchan_member_take,
	                        vchan_member_left);
	if (err != 0) {
		vchan_listener_destroy(l);
		return err;
	}
	*out = &l->base;
	return 0;
}

static const char *const vchan_uri_params[] = {"read_size", "write_size", NULL};

const struct rill_transport_scheme rill__vchan_scheme = {
    .name = "vchan",
    .params = vchan_uri_params,
    .check = vchan_uri_check,
    .connect = vchan_uri_connect,
    .listen = vchan_uri_listen,
    .join = vchan_uri_join,
};
