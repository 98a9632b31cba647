/*
 * The memfd backend of the vchan flow (see local.h): the shared
 * memory, the eventfds that wake each side, and the hang-up watch.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "transport/vchan/vchan.h"
#include "transport/vchan/local.h"

static uint32_t vchan_start_index;

void rill__vchan_set_start_index(uint32_t idx)
{
	vchan_start_index = idx;
}

int rill__vchan_orders_of(struct rill_flow *f, int *rd_order, int *wr_order)
{
	struct rill__vchan_flow *vf = rill__vchan_flow_of(f);
	if (vf == NULL || !vf->attached)
		return -EINVAL;
	*rd_order = vf->v.rd_order;
	*wr_order = vf->v.wr_order;
	return 0;
}

void *rill__vchan_shared_page(struct rill_flow *f)
{
	struct rill__vchan_flow *vf = rill__vchan_flow_of(f);
	if (vf == NULL || !vf->attached)
		return NULL;
	return vf->v.page;
}

static struct rill__vchan_local *vchan_local_of(struct rill__vchan_flow *vf)
{
	return rill_container_of(vf, struct rill__vchan_local, ring);
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

/* ---------------------------------------------------------------------- */
/* Backend ops */

static void local_signal(struct rill__vchan_flow *vf)
{
	vchan_evt_signal(vchan_local_of(vf)->peer_evt);
}

static void local_drain(struct rill__vchan_flow *vf)
{
	vchan_evt_drain(vchan_local_of(vf)->my_evt);
}

static void local_acceptor_closed(struct rill__acceptor *a)
{
	struct rill__vchan_local *vl =
	    rill_container_of(a, struct rill__vchan_local, srv.acc);
	rill__vchan_flow_unhold(&vl->ring);
}

void rill__vchan_local_close_acceptor(struct rill__vchan_local *vl)
{
	if (!vl->srv.acc_init)
		return;
	vl->srv.acc_init = false;
	rill__vchan_flow_hold(&vl->ring);
	rill__acceptor_close(&vl->srv.acc, local_acceptor_closed);
}

static void local_close_handles(struct rill__vchan_flow *vf)
{
	struct rill__vchan_local *vl = vchan_local_of(vf);
	if (vl->sock_init)
		rill__vchan_flow_close_handle(vf,
		                              (uv_handle_t *)&vl->sock_poll);
	vl->sock_init = false;
	if (vl->srv.gate_init)
		rill__vchan_gate_close(&vl->srv.gate);
	vl->srv.gate_init = false;
	rill__vchan_local_close_acceptor(vl);
	if (vl->cli.timer_init)
		rill__vchan_flow_close_handle(vf,
		                              (uv_handle_t *)&vl->cli.timer);
	vl->cli.timer_init = false;
}

static void local_release(struct rill__vchan_flow *vf)
{
	struct rill__vchan_local *vl = vchan_local_of(vf);
	if (vl->map != NULL)
		munmap(vl->map, vl->map_len);
	vl->map = NULL;
	rill__rdv_offer_clear(&vl->cli.offer);
	int *fds[] = {&vl->memfd, &vl->my_evt, &vl->peer_evt, &vl->sock_fd,
	              &vl->srv.listen_fd};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	if (vl->srv.path != NULL) {
		unlink(vl->srv.path);
		rill_free(vl->srv.path);
		vl->srv.path = NULL;
	}
}

static const struct rill__vchan_backend vchan_local_backend = {
    .signal = local_signal,
    .drain = local_drain,
    .close_handles = local_close_handles,
    .release = local_release,
};

static const struct rill_flow_ops vchan_local_ops =
    RILL__VCHAN_FLOW_OPS("vchan");

struct rill__vchan_local *rill__vchan_local_new(uv_loop_t *loop, bool server)
{
	struct rill__vchan_flow *vf =
	    rill__vchan_flow_new(loop, &vchan_local_ops, &vchan_local_backend,
	                         sizeof(struct rill__vchan_local));
	if (vf == NULL)
		return NULL;
	struct rill__vchan_local *vl = vchan_local_of(vf);
	vl->server = server;
	vl->memfd = vl->my_evt = vl->peer_evt = vl->sock_fd = -1;
	vl->srv.listen_fd = -1;
	rill__rdv_offer_init(&vl->cli.offer);
	return vl;
}

void rill__vchan_local_discard(struct rill__vchan_local *vl)
{
	vl->ring.discard = true;
	rill__vchan_flow_teardown(&vl->ring);
}

/* ---------------------------------------------------------------------- */
/* Shared memory */

static int vchan_local_sys_err(const char *what)
{
	int err = -errno;
	rill__set_last_errmsg("vchan: %s: %s", what, strerror(errno));
	return err;
}

/* A sealed memfd of len bytes, mapped: 0, or -errno with the message. */
static int vchan_local_memfd(struct rill__vchan_local *vl, size_t len)
{
	vl->map_len = len;
	vl->memfd = memfd_create("rill-vchan", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (vl->memfd < 0 || ftruncate(vl->memfd, (off_t)len) != 0)
		return vchan_local_sys_err("creating shared memory");
	/* Sealed, so the client cannot shrink the file under our mapping
	 * (a SIGBUS), and can check that we cannot shrink it either. */
	if (fcntl(vl->memfd, F_ADD_SEALS,
	          F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
		return vchan_local_sys_err("sealing shared memory");
	void *map =
	    mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, vl->memfd, 0);
	if (map == MAP_FAILED)
		return vchan_local_sys_err("mapping shared memory");
	vl->map = map;
	return 0;
}

int rill__vchan_local_setup(struct rill__vchan_local *vl, size_t read_size,
                            size_t write_size)
{
	int lo, ro;
	if (rill__vchan_orders(read_size, write_size, &lo, &ro) != 0) {
		rill__set_last_errmsg("vchan: ring sizes must be 1..%zu bytes",
		                      (size_t)1 << RILL__VCHAN_MAX_ORDER);
		return RILL_EINVAL;
	}
	vl->left_order = lo;
	vl->right_order = ro;
	int err = vchan_local_memfd(vl, rill__vchan_map_size(lo, ro));
	if (err != 0)
		return err;
	rill__vchan_init_page(vl->map, lo, ro, vchan_start_index);
	if (rill__vchan_attach(&vl->ring.v, vl->map, vl->map_len, true) != 0) {
		rill__set_last_errmsg("vchan: internal layout error");
		return RILL_ERING;
	}
	vl->my_evt = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vl->peer_evt = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vl->my_evt < 0 || vl->peer_evt < 0)
		return vchan_local_sys_err("creating eventfds");
	err = rill__vchan_flow_attach(&vl->ring, vl->my_evt);
	if (err != 0) {
		rill__set_last_errmsg("vchan: %s", uv_strerror(err));
		return err;
	}
	return 0;
}

/* What /proc says fd is ("anon_inode:[eventfd]", "/memfd:rill-vchan
 * (deleted)"...), into buf: false when it cannot tell. */
static bool vchan_local_fd_kind(int fd, char *buf, size_t len)
{
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, len - 1);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* The memory must be a memfd sealed against shrinking, of len bytes: a
 * server that truncated it under our mapping would crash us (SIGBUS). A
 * regular file or a device in its place is refused too. */
static bool vchan_local_sealed(int fd, uint64_t len)
{
	char kind[128];
	int seals = fcntl(fd, F_GET_SEALS);
	struct stat st;
	return vchan_local_fd_kind(fd, kind, sizeof kind) &&
	       strncmp(kind, "/memfd:", 7) == 0 && seals >= 0 &&
	       (seals & F_SEAL_SHRINK) && fstat(fd, &st) == 0 &&
	       S_ISREG(st.st_mode) && (uint64_t)st.st_size >= len;
}

/* An eventfd, nothing else: a pipe, socket or file in its place could
 * block us or feed us anything. */
static bool vchan_local_is_eventfd(int fd)
{
	char kind[128];
	return vchan_local_fd_kind(fd, kind, sizeof kind) &&
	       strcmp(kind, "anon_inode:[eventfd]") == 0;
}

int rill__vchan_local_map_offer(struct rill__vchan_local *vl,
                                struct rill__rdv_offer *offer, const char **why)
{
	uint64_t len;
	int lo, ro;
	int err = rill__rdv_parse_offer(offer, &len, &lo, &ro, why);
	if (err != 0)
		return err;
	if (!vchan_local_sealed(offer->fds[RILL__RDV_FD_MEM], len)) {
		*why = "the shared memory is not a memfd sealed against "
		       "shrinking, of the offered size";
		return RILL_ERING;
	}
	if (!vchan_local_is_eventfd(offer->fds[RILL__RDV_FD_SERVER_EVT]) ||
	    !vchan_local_is_eventfd(offer->fds[RILL__RDV_FD_CLIENT_EVT])) {
		*why = "the OFFER's second and third descriptors are not both "
		       "eventfds";
		return RILL_EHANDSHAKE;
	}
	void *map = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED,
	                 offer->fds[RILL__RDV_FD_MEM], 0);
	if (map == MAP_FAILED) {
		*why = "cannot map the shared memory";
		return -errno;
	}
	vl->map = map;
	vl->map_len = (size_t)len;
	vl->memfd = offer->fds[RILL__RDV_FD_MEM];
	vl->peer_evt = offer->fds[RILL__RDV_FD_SERVER_EVT];
	vl->my_evt = offer->fds[RILL__RDV_FD_CLIENT_EVT];
	for (int i = 0; i < RILL__RDV_NFDS; i++)
		offer->fds[i] = -1;
	struct rill__vchan *v = &vl->ring.v;
	err = rill__vchan_attach(v, map, vl->map_len, false);
	if (err == 0 && (v->rd_order != ro || v->wr_order != lo))
		err = RILL_ERING;
	if (err != 0) {
		*why = "the shared page has bad ring orders";
		return err;
	}
	err = rill__vchan_flow_attach(&vl->ring, vl->my_evt);
	if (err != 0)
		*why = "cannot watch the eventfd";
	return err;
}

/* ---------------------------------------------------------------------- */
/* After the rendezvous */

static void vchan_local_on_hangup(uv_poll_t *h, int status, int events)
{
	struct rill__vchan_local *vl = h->data;
	(void)events;
	uint8_t scratch[256];
	ssize_t r = status < 0 ? -1
	                       : recv(vl->sock_fd, scratch, sizeof scratch,
	                              MSG_DONTWAIT);
	if (r > 0)
		return; /* reserved for later versions: ignored */
	if (r < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR))
		return;
	vl->ring.peer_gone = true;
	uv_poll_stop(h);
	rill__vchan_flow_run(&vl->ring);
}

void rill__vchan_local_watch_peer(struct rill__vchan_local *vl)
{
	vl->state = RILL__VL_CONNECTED;
	uv_poll_start(&vl->sock_poll, UV_READABLE | UV_DISCONNECT,
	              vchan_local_on_hangup);
}
