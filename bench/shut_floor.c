/*
 * bench/shut_floor: what the shut framing costs at the system-call level,
 * with no rill code at all, to put the `rill bench shut+unix` ratio in
 * perspective.
 *
 * One thread moves N MiB over a Unix socketpair, both ends non-blocking,
 * writer and reader alternating (the shape of `rill bench`), three ways:
 *   plain    write(2) of 64 KiB, read(2) of up to 256 KiB;
 *   framed   the shut wire format as rill sends it: writev(2) of 16
 *            frames (4-byte header + 4096 bytes of payload, 32 iovecs),
 *            readv(2) laid out so that payload lands contiguous and the
 *            headers apart (rill's scatter reads, up to 64 frames);
 *   copy     the same frames read with read(2) into one buffer, then the
 *            payloads moved down over the headers (rill's path over
 *            flows that are not sockets).
 * Each mode runs ROUNDS times, interleaved; the best of each is printed
 * with its ratio to plain. Usage: shut_floor [MiB] (default 1024).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS  5
#define FRAME   4096u
#define WFRAMES 16u
#define RFRAMES 64u

enum { PLAIN, FRAMED, COPY, NMODES };
static const char *const names[NMODES] = {"plain", "framed", "copy"};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint8_t src[WFRAMES * FRAME];
static uint8_t dst[RFRAMES * FRAME + 4 * RFRAMES + 64];
static uint8_t hdrs[RFRAMES][4];
static const uint8_t full_hdr[4] = {0x00, 0x10, 0x00, 0x00}; /* 4096 LE */

/* Reader state for the framed modes: payload bytes left in the current
 * frame (0: a header comes next) and header bytes already read. */
struct rd {
	size_t need;
	size_t hdr_have;
};

/* One framed read with a scatter layout; returns payload bytes or <= 0. */
static ssize_t read_framed(int fd, struct rd *r)
{
	struct iovec iov[2 * RFRAMES + 2];
	int n = 0;
	size_t pos = 0;
	if (r->hdr_have > 0) { /* finish a split header first */
		iov[n++] =
		    (struct iovec){hdrs[0] + r->hdr_have, 4 - r->hdr_have};
		r->need = 0;
	} else if (r->need > 0) {
		iov[n++] = (struct iovec){dst, r->need};
		pos = r->need;
	}
	size_t first = pos, split = r->hdr_have;
	unsigned k = 0;
	for (; k < RFRAMES - 1; k++) {
		if (k > 0 || split == 0)
			iov[n++] = (struct iovec){hdrs[k + 1], 4};
		iov[n++] = (struct iovec){dst + pos, FRAME};
		pos += FRAME;
	}
	ssize_t got = readv(fd, iov, n);
	if (got <= 0)
		return got;
	/* Where did it stop? Every header is a full-frame header here. */
	size_t left = (size_t)got, payload = 0;
	if (split > 0) {
		size_t h = 4 - split < left ? 4 - split : left;
		left -= h;
		r->hdr_have = split + h == 4 ? 0 : split + h;
		if (r->hdr_have > 0)
			return 0;
		r->need = FRAME;
	} else {
		size_t t = first < left ? first : left;
		payload += t;
		left -= t;
		r->need -= t;
	}
	while (left > 0) {
		if (r->need == 0) {
			if (left < 4) {
				r->hdr_have = left;
				return (ssize_t)payload;
			}
			left -= 4;
			r->need = FRAME;
		}
		size_t t = r->need < left ? r->need : left;
		payload += t;
		left -= t;
		r->need -= t;
	}
	return (ssize_t)payload;
}

/* One framed read into one buffer, payloads moved over the headers. */
static ssize_t read_copy(int fd, struct rd *r)
{
	ssize_t got = read(fd, dst, sizeof dst);
	if (got <= 0)
		return got;
	size_t in = 0, out = 0, len = (size_t)got;
	while (in < len) {
		if (r->need == 0) {
			size_t h = 4 - r->hdr_have < len - in ? 4 - r->hdr_have
			                                      : len - in;
			r->hdr_have += h;
			in += h;
			if (r->hdr_have < 4)
				break;
			r->hdr_have = 0;
			r->need = FRAME;
			continue;
		}
		size_t t = r->need < len - in ? r->need : len - in;
		memmove(dst + out, dst + in, t);
		out += t;
		in += t;
		r->need -= t;
	}
	return (ssize_t)out;
}

static double run(int mode, uint64_t bytes)
{
	int fd[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0) {
		perror("socketpair");
		exit(1);
	}
	fcntl(fd[0], F_SETFL, O_NONBLOCK);
	fcntl(fd[1], F_SETFL, O_NONBLOCK);
	struct iovec wiov[2 * WFRAMES];
	for (unsigned k = 0; k < WFRAMES; k++) {
		wiov[2 * k] = (struct iovec){(void *)full_hdr, 4};
		wiov[2 * k + 1] = (struct iovec){src + k * FRAME, FRAME};
	}
	uint64_t wire = mode == PLAIN ? bytes : bytes / FRAME * (FRAME + 4);
	uint64_t sent = 0, got = 0;
	struct rd r = {0};
	double t0 = now();
	while (got < bytes) {
		int progress = 0;
		while (sent < wire) {
			ssize_t n;
			if (mode == PLAIN) {
				n = write(fd[0], src, sizeof src);
			} else {
				/* Resume inside the batch after a short write.
				 */
				size_t off =
				    (size_t)(sent % (WFRAMES * (FRAME + 4)));
				struct iovec v[2 * WFRAMES];
				int c = 0;
				for (unsigned i = 0; i < 2 * WFRAMES; i++) {
					if (off >= wiov[i].iov_len) {
						off -= wiov[i].iov_len;
						continue;
					}
					v[c++] = (struct iovec){
					    (uint8_t *)wiov[i].iov_base + off,
					    wiov[i].iov_len - off};
					off = 0;
				}
				n = writev(fd[0], v, c);
			}
			if (n <= 0)
				break;
			sent += (uint64_t)n;
			progress = 1;
		}
		for (;;) {
			ssize_t n = mode == PLAIN ? read(fd[1], dst, 256 * 1024)
			            : mode == FRAMED ? read_framed(fd[1], &r)
			                             : read_copy(fd[1], &r);
			if (n < 0 && errno != EAGAIN) {
				perror("read");
				exit(1);
			}
			if (n < 0)
				break;
			got += (uint64_t)n;
			progress = 1;
		}
		if (!progress) {
			struct pollfd p = {fd[1], POLLIN, 0};
			poll(&p, 1, 100);
		}
	}
	double t = now() - t0;
	close(fd[0]);
	close(fd[1]);
	return (double)bytes / t / 1e6;
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
	uint64_t bytes = mib << 20;
	double best[NMODES] = {0};
	for (int round = 0; round < ROUNDS; round++)
		for (int m = 0; m < NMODES; m++) {
			double v = run(m, bytes);
			if (v > best[m])
				best[m] = v;
		}
	printf("%-8s %10s %8s\n", "mode", "MB/s", "vs plain");
	for (int m = 0; m < NMODES; m++)
		printf("%-8s %10.1f %7.2fx\n", names[m], best[m],
		       best[m] / best[PLAIN]);
	return 0;
}
