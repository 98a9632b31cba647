/* The plain shared-memory ring baseline (see shm_ring.h). */
#include "shm_ring.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct shm_ring {
	_Atomic uint32_t prod;
	char pad1[60];
	_Atomic uint32_t cons;
	char pad2[60];
	_Atomic uint32_t want_data, want_room;
	int evt_data, evt_room; /* reader sleeps on data, writer on room */
	uint32_t size;
	/* the bytes start on their own page, as a vchan ring does */
	_Alignas(4096) uint8_t data[];
};

static double shm_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void shm_sleep(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	poll(&p, 1, -1);
	uint64_t v;
	if (read(fd, &v, sizeof v) < 0) {
	}
}

static void shm_wake(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, sizeof one) < 0) {
	}
}

static struct shm_ring *shm_ring_new(size_t size)
{
	struct shm_ring *r =
	    mmap(NULL, sizeof *r + size, PROT_READ | PROT_WRITE,
	         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return NULL;
	r->size = (uint32_t)size;
	r->evt_data = eventfd(0, 0);
	r->evt_room = eventfd(0, 0);
	return r;
}

static void shm_ring_free(struct shm_ring *r)
{
	close(r->evt_data);
	close(r->evt_room);
	munmap(r, sizeof *r + r->size);
}

/*
 * Polls *idx until it differs from not_equal, for up to the current spin
 * budget. The budget adapts exactly as vchan's does (src/transport/
 * src/transport/vchan/flow.c, vchan_spin): doubling up to spin_ns on success,
 * halving on failure, off after repeated failures and retried after 256 sleeps,
 * so that both sides of the comparison spin by the same rule.
 */
static uint64_t shm_spin_cur = UINT64_MAX;
static unsigned shm_spin_idle;

static bool shm_spin_until(_Atomic uint32_t *idx, uint32_t not_equal,
                           uint64_t spin_ns)
{
	if (spin_ns == 0)
		return false;
	if (shm_spin_cur > spin_ns)
		shm_spin_cur = spin_ns;
	if (shm_spin_cur == 0) {
		if (++shm_spin_idle < 256)
			return false;
		shm_spin_idle = 0;
		shm_spin_cur = spin_ns / 8 + 1;
	}
	double end = shm_now() + (double)shm_spin_cur / 1e9;
	for (unsigned i = 0;; i++) {
		if (atomic_load_explicit(idx, memory_order_acquire) !=
		    not_equal) {
			shm_spin_cur *= 2;
			return true;
		}
		if ((i & 63) == 0 && shm_now() > end)
			break;
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	}
	shm_spin_cur /= 2;
	if (shm_spin_cur < 500)
		shm_spin_cur = 0;
	return false;
}

static void shm_write(struct shm_ring *r, const uint8_t *src, size_t n,
                      uint64_t spin_ns)
{
	uint32_t prod = atomic_load_explicit(&r->prod, memory_order_relaxed);
	while (n > 0) {
		uint32_t cons =
		    atomic_load_explicit(&r->cons, memory_order_acquire);
		uint32_t room = r->size - (prod - cons);
		if (room == 0) {
			if (shm_spin_until(&r->cons, cons, spin_ns))
				continue;
			atomic_store(&r->want_room, 1);
			if (atomic_load(&r->cons) == cons)
				shm_sleep(r->evt_room);
			continue;
		}
		size_t k = n < room ? n : room;
		uint32_t pos = prod & (r->size - 1);
		size_t first = r->size - pos < k ? r->size - pos : k;
		memcpy(r->data + pos, src, first);
		memcpy(r->data, src + first, k - first);
		prod += (uint32_t)k;
		atomic_store_explicit(&r->prod, prod, memory_order_release);
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&r->want_data, memory_order_relaxed) &&
		    atomic_exchange(&r->want_data, 0))
			shm_wake(r->evt_data);
		src += k;
		n -= k;
	}
}

/* Reads up to cap bytes (at least 1). */
static size_t shm_read(struct shm_ring *r, uint8_t *dst, size_t cap,
                       uint64_t spin_ns)
{
	uint32_t cons = atomic_load_explicit(&r->cons, memory_order_relaxed);
	for (;;) {
		uint32_t prod =
		    atomic_load_explicit(&r->prod, memory_order_acquire);
		uint32_t ready = prod - cons;
		if (ready == 0) {
			if (shm_spin_until(&r->prod, prod, spin_ns))
				continue;
			atomic_store(&r->want_data, 1);
			if (atomic_load(&r->prod) == prod)
				shm_sleep(r->evt_data);
			continue;
		}
		size_t k = ready < cap ? ready : cap;
		uint32_t pos = cons & (r->size - 1);
		size_t first = r->size - pos < k ? r->size - pos : k;
		memcpy(dst, r->data + pos, first);
		memcpy(dst + first, r->data, k - first);
		atomic_store_explicit(&r->cons, cons + (uint32_t)k,
		                      memory_order_release);
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&r->want_room, memory_order_relaxed) &&
		    atomic_exchange(&r->want_room, 0))
			shm_wake(r->evt_room);
		return k;
	}
}

double bench_median(double *v, int n)
{
	for (int i = 1; i < n; i++) {
		double x = v[i];
		int j = i - 1;
		while (j >= 0 && v[j] > x) {
			v[j + 1] = v[j];
			j--;
		}
		v[j + 1] = x;
	}
	return n > 0 ? v[n / 2] : 0;
}

double shm_ring_throughput(uint64_t bytes, size_t ring_size, size_t chunk)
{
	struct shm_ring *r = shm_ring_new(ring_size);
	int done[2];
	if (r == NULL || pipe(done) != 0)
		return -ENOMEM;
	pid_t pid = fork();
	if (pid == 0) {
		/* The reader copies out into a private buffer, as a vchan
		 * read must (no aliasing of shared memory). */
		static uint8_t buf[256 * 1024];
		uint64_t got = 0;
		while (got < bytes)
			got += shm_read(r, buf, sizeof buf, 50000);
		char c = 1;
		if (write(done[1], &c, 1) < 0) {
		}
		_exit(0);
	}
	uint8_t *src = malloc(chunk);
	memset(src, 0xa5, chunk);
	double t0 = shm_now();
	for (uint64_t sent = 0; sent < bytes;) {
		size_t k =
		    bytes - sent < chunk ? (size_t)(bytes - sent) : chunk;
		shm_write(r, src, k, 50000);
		sent += k;
	}
	char c;
	if (read(done[0], &c, 1) != 1) {
	}
	double dt = shm_now() - t0;
	waitpid(pid, NULL, 0);
	free(src);
	close(done[0]);
	close(done[1]);
	shm_ring_free(r);
	return (double)bytes / dt / 1e6;
}

double shm_ring_pingpong_us(int iters, uint64_t spin_ns)
{
	struct shm_ring *a = shm_ring_new(1024), *b = shm_ring_new(1024);
	if (a == NULL || b == NULL)
		return -ENOMEM;
	pid_t pid = fork();
	if (pid == 0) {
		uint8_t x;
		for (int i = 0; i < iters; i++) {
			shm_read(a, &x, 1, spin_ns);
			shm_write(b, &x, 1, spin_ns);
		}
		_exit(0);
	}
	double *rtt = malloc(sizeof(double) * (size_t)iters);
	for (int i = 0; i < iters; i++) {
		uint8_t x = (uint8_t)i, y;
		double t0 = shm_now();
		shm_write(a, &x, 1, spin_ns);
		shm_read(b, &y, 1, spin_ns);
		rtt[i] = (shm_now() - t0) * 1e6;
	}
	waitpid(pid, NULL, 0);
	double m = bench_median(rtt, iters);
	free(rtt);
	shm_ring_free(a);
	shm_ring_free(b);
	return m;
}

static int fd_pair(bool unix_socket, int ab[2], int ba[2])
{
	if (unix_socket) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
			return -errno;
		ab[0] = sv[1]; /* child reads */
		ab[1] = sv[0]; /* parent writes */
		ba[0] = dup(sv[0]);
		ba[1] = dup(sv[1]);
		return 0;
	}
	if (pipe(ab) != 0 || pipe(ba) != 0)
		return -errno;
	return 0;
}

double fd_throughput(uint64_t bytes, size_t chunk, bool unix_socket)
{
	int ab[2], ba[2];
	int err = fd_pair(unix_socket, ab, ba);
	if (err != 0)
		return err;
	pid_t pid = fork();
	if (pid == 0) {
		static uint8_t buf[256 * 1024];
		uint64_t got = 0;
		while (got < bytes) {
			ssize_t k = read(ab[0], buf, sizeof buf);
			if (k <= 0)
				_exit(1);
			got += (uint64_t)k;
		}
		char c = 1;
		if (write(ba[1], &c, 1) < 0) {
		}
		_exit(0);
	}
	uint8_t *src = malloc(chunk);
	memset(src, 0xa5, chunk);
	double t0 = shm_now();
	for (uint64_t sent = 0; sent < bytes;) {
		size_t k =
		    bytes - sent < chunk ? (size_t)(bytes - sent) : chunk;
		ssize_t w = write(ab[1], src, k);
		if (w <= 0)
			break;
		sent += (uint64_t)w;
	}
	char c;
	if (read(ba[0], &c, 1) != 1) {
	}
	double dt = shm_now() - t0;
	waitpid(pid, NULL, 0);
	free(src);
	close(ab[0]);
	close(ab[1]);
	close(ba[0]);
	close(ba[1]);
	return (double)bytes / dt / 1e6;
}

double fd_pingpong_us(int iters, bool unix_socket)
{
	int ab[2], ba[2];
	int err = fd_pair(unix_socket, ab, ba);
	if (err != 0)
		return err;
	pid_t pid = fork();
	if (pid == 0) {
		uint8_t x;
		for (int i = 0; i < iters; i++) {
			if (read(ab[0], &x, 1) != 1 || write(ba[1], &x, 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	double *rtt = malloc(sizeof(double) * (size_t)iters);
	for (int i = 0; i < iters; i++) {
		uint8_t x = (uint8_t)i, y;
		double t0 = shm_now();
		if (write(ab[1], &x, 1) != 1 || read(ba[0], &y, 1) != 1)
			break;
		rtt[i] = (shm_now() - t0) * 1e6;
	}
	waitpid(pid, NULL, 0);
	double m = bench_median(rtt, iters);
	free(rtt);
	close(ab[0]);
	close(ab[1]);
	close(ba[0]);
	close(ba[1]);
	return m;
}
