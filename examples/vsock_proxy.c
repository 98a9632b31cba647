/*
 * examples/vsock_proxy.c - a vsock to TCP forwarder in the style of AWS's
 * vsock-proxy, for any pair of rill URIs:
 *
 *   vsock_proxy [-n COUNT] [-l LINGER_MS] [-i IDLE_MS] LISTEN_URI TARGET_URI
 *   vsock_proxy vsock://any:8000 tcp://kms.example:443
 *   vsock_proxy hybrid-vsock:/run/fc/v.sock:8000 tcp://127.0.0.1:80
 *
 * Every connection accepted on LISTEN_URI (a guest connecting to the host)
 * is forwarded to a new connection to TARGET_URI. rill_proxy copies both
 * directions at once and carries half-closes across: when one side shuts
 * down its writing, the other sees EOF after the last byte while the other
 * direction goes on. One stats line per connection goes to stdout:
 *
 *   conn 1: up=5 down=5 status=0 (success) half-closes: guest target
 *
 * A peer that never ends its side cannot pin a connection: once one
 * direction ended, the other gets LINGER_MS (default 10 s) to end too,
 * and a connection where no byte moved for IDLE_MS (default 5 min) is
 * closed. The proxy does both itself (rill_proxy_opts) and then closes
 * both flows; the stats line then ends with "cut=linger" or "cut=idle".
 *
 * With -n COUNT it exits after COUNT connections (used by the test).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rill.h>

struct proxy_conn {
	unsigned id;
	struct rill_flow *guest;  /* accepted on LISTEN_URI */
	struct rill_flow *target; /* connected to TARGET_URI */
	char halves[32];          /* which directions ended, in order */
};

static const char *target_uri;
static struct rill_listener *listener;
static unsigned next_id, remaining; /* remaining 0: serve forever */
static uint64_t linger_ms = 10000, idle_ms = 300000;

/* One direction ended (EOF forwarded as a shutdown, or an error). */
static void on_half(struct rill_proxy *p, bool from_a,
                    const struct rill_copy_result *res, void *ud)
{
	(void)p;
	(void)res;
	struct proxy_conn *c = ud;
	strcat(c->halves, from_a ? " guest" : " target");
}

/* Both directions ended: print the stats, close both flows. */
static void on_done(struct rill_proxy *p, const struct rill_proxy_result *res,
                    void *ud)
{
	struct proxy_conn *c = ud;
	struct rill_copy_stats up, down;
	rill_proxy_stats(p, &up, &down); /* a = guest, b = target */
	static const char *const cuts[] = {"", " cut=idle", " cut=linger",
	                                   " cut=error"};
	printf("conn %u: up=%llu down=%llu status=%d (%s) half-closes:%s%s\n",
	       c->id, (unsigned long long)up.write_bytes,
	       (unsigned long long)down.write_bytes, res->status,
	       res->status == 0 ? "success" : rill_strerror(res->status),
	       c->halves, cuts[res->cut & 3]);
	fflush(stdout);
	/* Ours to close; after a cut the proxy closed them already and
	 * these are no-ops. */
	rill_close(c->guest);
	rill_close(c->target);
	free(c);
	if (remaining > 0 && --remaining == 0)
		rill_listener_close(listener); /* the loop then ends */
}

static void on_target(struct rill_flow *target, int status, const char *errmsg,
                      void *ud)
{
	struct proxy_conn *c = ud;
	if (status != 0) {
		printf("conn %u: target: %s\n", c->id, errmsg);
		rill_close(c->guest);
		free(c);
		return;
	}
	c->target = target;
	/* Both directions at once, half-closes carried across; splice(2)
	 * between two plain sockets, user-space copies otherwise. The linger
	 * and the idle timeout bound how long a silent peer holds on. */
	struct rill_proxy_opts opts = {
	    .copy = {.idle_timeout_ms = idle_ms},
	    .half_cb = on_half,
	    .flags = RILL_PROXY_LINGER,
	    .linger_ms = linger_ms,
	};
	if (rill_proxy(c->guest, target, &opts, on_done, c, NULL) != 0) {
		rill_close(c->guest);
		rill_close(target);
		free(c);
	}
}

static void on_accept(struct rill_listener *l, struct rill_flow *guest,
                      int status, const char *errmsg, void *ud)
{
	(void)l;
	(void)ud;
	if (status != 0) {
		fprintf(stderr, "accept: %s\n", errmsg);
		return;
	}
	struct proxy_conn *c = calloc(1, sizeof *c);
	if (c == NULL) {
		rill_close(guest);
		return;
	}
	c->id = ++next_id;
	c->guest = guest;
	/* Connect with a deadline; the target may be slow to answer. */
	struct rill_connect_opts o = {.timeout_ms = 10000};
	if (rill_connect(rill_flow_loop(guest), target_uri, &o, on_target, c) !=
	    0) {
		printf("conn %u: %s\n", c->id, rill_last_errmsg());
		rill_close(guest);
		free(c);
	}
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "n:l:i:")) != -1) {
		switch (opt) {
		case 'n': remaining = (unsigned)atoi(optarg); break;
		case 'l': linger_ms = strtoull(optarg, NULL, 10); break;
		case 'i': idle_ms = strtoull(optarg, NULL, 10); break;
		default: return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr,
		        "usage: %s [-n COUNT] [-l LINGER_MS] [-i IDLE_MS] "
		        "LISTEN_URI TARGET_URI\n",
		        argv[0]);
		return 2;
	}
	target_uri = argv[optind + 1];
	if (rill_uri_check(target_uri) != 0) {
		fprintf(stderr, "vsock_proxy: %s\n", rill_last_errmsg());
		return 1;
	}
	uv_loop_t *loop = uv_default_loop();
	if (rill_listen(loop, argv[optind], NULL, on_accept, NULL, &listener) !=
	    0) {
		fprintf(stderr, "vsock_proxy: %s\n", rill_last_errmsg());
		return 1;
	}
	char where[512];
	rill_listener_uri(listener, where, sizeof where);
	printf("listening on %s\n", where);
	fflush(stdout);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	return 0;
}
