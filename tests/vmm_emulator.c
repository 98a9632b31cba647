/*
 * vmm_emulator: a stand-in for a hypervisor's vsock muxer, for tests.
 *
 *   vmm_emulator firecracker UDS GUEST_DIR [--propagate]
 *   vmm_emulator hyperkit DIR GUEST_DIR [--propagate]
 *
 * firecracker: listens on the Unix socket UDS like Firecracker's (and
 * Cloud Hypervisor's) hybrid-vsock muxer. A host client sends
 * "CONNECT <port>\n"; the emulator connects to the "guest" listener, the
 * Unix socket GUEST_DIR/<port>, replies "OK <n>\n" (n: a made-up host-side
 * port, as Firecracker allocates one) and forwards bytes both ways. A bad
 * request or a missing guest listener closes the connection without a
 * reply, as Firecracker does.
 * Guest-initiated connections: a client of GUEST_DIR/connect writing
 * "<port>\n" is connected to UDS_<port> (where the VMM would connect for a
 * guest's connection to host port <port>); in hyperkit mode to
 * DIR/00000002.<port as %08x>.
 *
 * hyperkit: listens on DIR/connect like HyperKit's virtio-vsock backend; a
 * client writes "%08x.%08x\n" (guest cid, port in hex) and is forwarded to
 * GUEST_DIR/<port> (decimal); no reply.
 *
 * Half-close: like Firecracker, an end of stream from either side shuts
 * the whole connection down (both directions, both sockets), so data still
 * travelling the other way is lost. --propagate forwards a half-close
 * faithfully instead (shutdown(SHUT_WR) on the other socket).
 *
 * Prints "ready" on stdout once listening; runs until killed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static bool propagate;
static bool hyperkit;
static const char *guest_dir;
static const char *uds;
static unsigned next_host_port = 1073741824u;
static pthread_mutex_t port_lock = PTHREAD_MUTEX_INITIALIZER;

struct link {
	int from, to;
	struct conn *c;
};

struct conn {
	int a, b;
	int refs;
	pthread_mutex_t lock;
	bool down;
	struct link ab, ba;
};

static int unix_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return -1;
	strcpy(sa.sun_path, path);
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    listen(fd, 64) != 0) {
		perror(path);
		exit(1);
	}
	return fd;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return -1;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one line of at most cap-1 bytes, byte by byte so that nothing
 * after the newline is consumed. Returns its length without '\n', or -1. */
static int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (c == '\n') {
			buf[n] = '\0';
			return (int)n;
		}
		buf[n++] = c;
	}
	return -1;
}

static void conn_unref(struct conn *c)
{
	pthread_mutex_lock(&c->lock);
	int left = --c->refs;
	pthread_mutex_unlock(&c->lock);
	if (left == 0) {
		close(c->a);
		close(c->b);
		free(c);
	}
}

static void *pump(void *arg)
{
	struct link *l = arg;
	struct conn *c = l->c;
	char buf[65536];
	for (;;) {
		ssize_t r = read(l->from, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (write_all(l->to, buf, (size_t)r) != 0)
			break;
	}
	pthread_mutex_lock(&c->lock);
	if (propagate && !c->down) {
		shutdown(l->to, SHUT_WR);
	} else if (!c->down) {
		/* Firecracker's muxer: the first end of stream (or error) in
		 * either direction kills the connection both ways. */
		c->down = true;
		shutdown(c->a, SHUT_RDWR);
		shutdown(c->b, SHUT_RDWR);
	}
	pthread_mutex_unlock(&c->lock);
	conn_unref(c);
	return NULL;
}

static void splice_both(int a, int b)
{
	struct conn *c = calloc(1, sizeof *c);
	c->a = a;
	c->b = b;
	c->refs = 2;
	pthread_mutex_init(&c->lock, NULL);
	c->ab = (struct link){a, b, c};
	c->ba = (struct link){b, a, c};
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_create(&t, &attr, pump, &c->ab);
	pthread_create(&t, &attr, pump, &c->ba);
	pthread_attr_destroy(&attr);
}

static int guest_connect(unsigned long port)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%lu", guest_dir, port);
	return unix_connect(path);
}

/* A host-initiated connection on the muxer socket. */
static void *host_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char line[128];
	int n = read_line(fd, line, sizeof line);
	unsigned long port;
	char *end;
	if (hyperkit) {
		unsigned long cid;
		if (n != 17 || line[8] != '.') {
			close(fd);
			return NULL;
		}
		line[8] = '\0';
		cid = strtoul(line, &end, 16);
		port = strtoul(line + 9, &end, 16);
		(void)cid;
		if (*end != '\0') {
			close(fd);
			return NULL;
		}
	} else {
		if (n < 9 || strncmp(line, "CONNECT ", 8) != 0) {
			close(fd);
			return NULL;
		}
		port = strtoul(line + 8, &end, 10);
		if (*end != '\0' || end == line + 8) {
			close(fd);
			return NULL;
		}
	}
	int g = guest_connect(port);
	if (g < 0) {
		close(fd);
		return NULL;
	}
	if (!hyperkit) {
		pthread_mutex_lock(&port_lock);
		unsigned hp = next_host_port++;
		pthread_mutex_unlock(&port_lock);
		char ok[32];
		int l = snprintf(ok, sizeof ok, "OK %u\n", hp);
		if (write_all(fd, ok, (size_t)l) != 0) {
			close(fd);
			close(g);
			return NULL;
		}
	}
	splice_both(fd, g);
	return NULL;
}

/* A guest-initiated connection: "<port>\n", then to UDS_<port>. */
static void *guest_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char line[64];
	char *end;
	if (read_line(fd, line, sizeof line) <= 0) {
		close(fd);
		return NULL;
	}
	unsigned long port = strtoul(line, &end, 10);
	char path[4096];
	if (hyperkit) /* HyperKit connects to <dir>/00000002.<port> */
		snprintf(path, sizeof path, "%s/00000002.%08lx", uds, port);
	else /* Firecracker connects to <uds>_<port> */
		snprintf(path, sizeof path, "%s_%lu", uds, port);
	int h = *end == '\0' ? unix_connect(path) : -1;
	if (h < 0) {
		close(fd);
		return NULL;
	}
	splice_both(fd, h);
	return NULL;
}

struct acceptor {
	int fd;
	void *(*fn)(void *);
};

static void *accept_loop(void *arg)
{
	struct acceptor *a = arg;
	for (;;) {
		int c = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("accept");
			exit(1);
		}
		pthread_t t;
		pthread_create(&t, NULL, a->fn, (void *)(intptr_t)c);
		pthread_detach(t);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr,
		        "usage: %s firecracker|hyperkit PATH GUEST_DIR "
		        "[--propagate]\n",
		        argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	hyperkit = strcmp(argv[1], "hyperkit") == 0;
	guest_dir = argv[3];
	for (int i = 4; i < argc; i++)
		if (strcmp(argv[i], "--propagate") == 0)
			propagate = true;
	char path[4096];
	static struct acceptor host, guest;
	uds = argv[2];
	if (hyperkit) {
		snprintf(path, sizeof path, "%s/connect", argv[2]);
		host.fd = unix_listen(path);
	} else {
		host.fd = unix_listen(uds);
	}
	{
		snprintf(path, sizeof path, "%s/connect", guest_dir);
		guest.fd = unix_listen(path);
		guest.fn = guest_conn;
		pthread_t t;
		pthread_create(&t, NULL, accept_loop, &guest);
		pthread_detach(t);
	}
	host.fn = host_conn;
	printf("ready\n");
	fflush(stdout);
	accept_loop(&host);
	return 0;
}
