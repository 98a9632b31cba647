/* The vchan rendezvous messages (see rendezvous.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/byteorder.h"
#include "rill.h"
#include "transport/vchan/rendezvous.h"
#include "transport/vchan/ring.h"

static const uint8_t rdv_magic[4] = {'R', 'V', 'C', 'H'};

void rill__rdv_header(uint8_t *p, uint16_t kind)
{
	memcpy(p, rdv_magic, 4);
	rill__put_le16(p + 4, RILL__RDV_VERSION);
	rill__put_le16(p + 6, kind);
}

bool rill__rdv_is(const uint8_t *p, uint16_t kind)
{
	return memcmp(p, rdv_magic, 4) == 0 &&
	       rill__get_le16(p + 4) == RILL__RDV_VERSION &&
	       rill__get_le16(p + 6) == kind;
}

int rill__rdv_send_header(int sock, uint16_t kind)
{
	uint8_t m[RILL__RDV_HEADER_LEN];
	rill__rdv_header(m, kind);
	/* 8 bytes into a fresh socket's empty buffer: sent whole. */
	ssize_t r = send(sock, m, sizeof m, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (r != (ssize_t)sizeof m)
		return r < 0 ? -errno : -EIO;
	return 0;
}

int rill__rdv_send_offer(int sock, uint64_t map_len, int left_order,
                         int right_order, const int fds[RILL__RDV_NFDS])
{
	uint8_t msg[RILL__RDV_OFFER_LEN] = {0};
	rill__rdv_header(msg, RILL__RDV_KIND_OFFER);
	rill__put_le64(msg + 8, map_len);
	rill__put_le16(msg + 16, (uint16_t)left_order);
	rill__put_le16(msg + 18, (uint16_t)right_order);
	rill__put_le32(msg + 20, RILL__RDV_NFDS);
	const size_t fds_len = RILL__RDV_NFDS * sizeof(int);
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(RILL__RDV_NFDS * sizeof(int))];
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
	c->cmsg_len = CMSG_LEN(fds_len);
	memcpy(CMSG_DATA(c), fds, fds_len);
	/* 32 bytes into a fresh socket's empty buffer: sent whole. */
	ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (r != (ssize_t)sizeof msg)
		return r < 0 ? -errno : -EIO;
	return 0;
}

void rill__rdv_offer_init(struct rill__rdv_offer *o)
{
	memset(o, 0, sizeof *o);
	for (int i = 0; i < RILL__RDV_NFDS; i++)
		o->fds[i] = -1;
}

void rill__rdv_offer_clear(struct rill__rdv_offer *o)
{
	for (int i = 0; i < RILL__RDV_NFDS; i++) {
		if (o->fds[i] >= 0)
			close(o->fds[i]);
		o->fds[i] = -1;
	}
}

#define RDV_MAX_FDS 8

/* The fds of every SCM_RIGHTS message in mh, into fds[0..*n). */
static void rdv_collect_fds(struct msghdr *mh, int *fds, int *n)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL;
	     c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && *n < RDV_MAX_FDS; i++)
			memcpy(&fds[(*n)++], CMSG_DATA(c) + i * sizeof(int),
			       sizeof(int));
	}
}

/* Takes the fds that came with a read of r bytes into o; or *why. */
static int rdv_take_fds(struct rill__rdv_offer *o, struct msghdr *mh, int *fds,
                        int nfds, const char **why)
{
	if ((mh->msg_flags & MSG_CTRUNC) || (nfds > 0 && o->len > 0) ||
	    (nfds == 0 && o->len == 0)) {
		*why = "the file descriptors must come with the OFFER's first "
		       "byte";
		return RILL_EHANDSHAKE;
	}
	if (nfds == 0)
		return 0;
	if (nfds != RILL__RDV_NFDS) {
		*why = "the OFFER did not carry exactly 3 file descriptors";
		return RILL_EHANDSHAKE;
	}
	memcpy(o->fds, fds, sizeof o->fds);
	return 0;
}

int rill__rdv_recv_offer(int sock, struct rill__rdv_offer *o, const char **why)
{
	int fds[RDV_MAX_FDS];
	int nfds = 0;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof fds)];
	} ctl;
	struct iovec iov = {o->msg + o->len, RILL__RDV_OFFER_LEN - o->len};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = ctl.buf,
	                    .msg_controllen = sizeof ctl.buf};
	ssize_t r = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return -EAGAIN;
	if (r <= 0) {
		*why = "the server hung up before its OFFER";
		return RILL_EHANDSHAKE;
	}
	rdv_collect_fds(&mh, fds, &nfds);
	int err = rdv_take_fds(o, &mh, fds, nfds, why);
	if (err != 0) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return err;
	}
	o->len += (size_t)r;
	return o->len == RILL__RDV_OFFER_LEN ? 1 : 0;
}

int rill__rdv_parse_offer(const struct rill__rdv_offer *o, uint64_t *map_len,
                          int *left_order, int *right_order, const char **why)
{
	const uint8_t *m = o->msg;
	if (!rill__rdv_is(m, RILL__RDV_KIND_OFFER)) {
		*why = "the server sent no valid OFFER (magic, version, kind)";
		return RILL_EHANDSHAKE;
	}
	if (rill__get_le32(m + 20) != RILL__RDV_NFDS) {
		*why = "the OFFER did not carry exactly 3 file descriptors";
		return RILL_EHANDSHAKE;
	}
	*map_len = rill__get_le64(m + 8);
	*left_order = rill__get_le16(m + 16);
	*right_order = rill__get_le16(m + 18);
	if (rill__vchan_check_orders(*left_order, *right_order) != 0 ||
	    rill__vchan_map_size(*left_order, *right_order) != *map_len) {
		*why = "the OFFER has bad ring orders or size";
		return RILL_ERING;
	}
	return 0;
}
