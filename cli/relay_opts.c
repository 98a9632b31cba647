/*
 * rill relay's command line: the help text and the options and operands,
 * parsed into struct relay (relay.h).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "relay.h"

void relay_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: rill relay [OPTIONS] LISTEN_URI CONNECT_URI\n"
	    "\n"
	    "Forwards every connection accepted on LISTEN_URI to a new\n"
	    "connection to CONNECT_URI, both directions at once. A\n"
	    "half-close crosses the relay: when one side shuts down its\n"
	    "writing, the other side sees EOF after the last byte, and the\n"
	    "reply direction goes on until its own EOF (a reply is never\n"
	    "cut short unless --linger says so). A side that cannot\n"
	    "half-close (xen-vchan, hybrid-vsock) is not shut down: it\n"
	    "stays open until its peer closes it, so its reply is never\n"
	    "cut short either. Between two plain sockets\n"
	    "the bytes move with splice(2) and never enter user space.\n"
	    "\n"
	    "Options (S: seconds, decimals allowed):\n"
	    "  --allow PATTERN      relay only clients that match a\n"
	    "                       PATTERN (repeatable): an IP address or\n"
	    "                       CIDR network (192.0.2.0/24, ::1) for\n"
	    "                       TCP, a vsock CID or range (3, 3-9),\n"
	    "                       uid=N for Unix sockets (SO_PEERCRED).\n"
	    "                       Others are closed at accept, before any\n"
	    "                       handshake or connect (end=denied).\n"
	    "                       Default: every client\n"
	    "  --max-conns N        relay at most N connections at once;\n"
	    "                       extra ones are accepted and closed at\n"
	    "                       once, with a log line (end=refused)\n"
	    "                       (default 1024; 0: no limit); the\n"
	    "                       handshakes in progress too\n"
	    "  --max-per-source N   at most N connections at once from one\n"
	    "                       address (one IP, CID or uid); extra\n"
	    "                       ones are closed like those over\n"
	    "                       --max-conns (default 0: no limit)\n"
	    "  --connect-timeout S  deadline of each connect to\n"
	    "                       CONNECT_URI (default 10)\n"
	    "  --retry-until S      retry a refused connect until S seconds\n"
	    "                       after the accept: the target may not\n"
	    "                       be listening yet (default 0: once);\n"
	    "                       the connect deadline grows by S too\n"
	    "  --idle-timeout S     close a connection when no byte moved\n"
	    "                       either way for S seconds (default 0:\n"
	    "                       never)\n"
	    "  --linger S           after one direction ended, close the\n"
	    "                       connection if the other has not ended\n"
	    "                       within S seconds (default: wait for\n"
	    "                       both directions, however long)\n"
	    "  --grace S            on SIGINT/SIGTERM stop accepting, give\n"
	    "                       active connections S seconds to end,\n"
	    "                       then close them (default 5); a second\n"
	    "                       signal closes them at once\n"
	    "  --threads N          run N event loops on N threads; the\n"
	    "                       connections are spread over them in\n"
	    "                       turn and each stays on one (default:\n"
	    "                       the number of online CPUs)\n"
	    "  --no-splice          always copy through user space\n"
	    "  --allow-target PAT   with {target} in CONNECT_URI: a target\n"
	    "                       clients may ask for (repeatable; needed,\n"
	    "                       '*' allows all); HOST[:PORT[-PORT]],\n"
	    "                       HOST a name, *.domain, an IP or CIDR\n"
	    "                       block; '!PAT' denies. First match wins;\n"
	    "                       a name's addresses are checked against\n"
	    "                       the '!' patterns too\n"
	    "  --quiet              no log lines\n"
	    "  --metrics URI        serve Prometheus metrics (GET /metrics)\n"
	    "                       over HTTP on the listening URI URI\n"
	    "                       (tcp://127.0.0.1:9464, unix:PATH,\n"
	    "                       vsock://any:9464...)\n"
	    "  --log-format F       text (default) or json: one JSON object\n"
	    "                       per connection, with timestamps\n"
	    "  -h, --help           this text\n"
	    "\n"
	    "");
	fprintf(
	    out,
	    "One line per connection is logged on standard error when it\n"
	    "ends:\n"
	    "  rill relay: #ID CLIENT -> TARGET up=N down=N time=S end=WHY\n"
	    "up counts bytes client->target, down target->client. WHY is\n"
	    "eof, eof(held: ..), client-error(..), target-error(..),\n"
	    "both-error(..), connect-failed(..), denied (--allow),\n"
	    "refused(max-conns N reached), refused(max-per-source N\n"
	    "reached), idle-timeout, linger-timeout or shutdown. With an\n"
	    "exec:\n"
	    "target (one child per connection, inetd style) the line ends\n"
	    "with exit=STATUS, exit=SIGNAME or exit=running.\n"
	    "\n"
	    "\n"
	    "Dynamic targets: behind a socks5+ or connect+ LISTEN_URI,\n"
	    "{target} in CONNECT_URI is replaced by the address of the\n"
	    "HOST:PORT the client asked for (a name is resolved once and\n"
	    "checked); the client gets its success reply once the target is\n"
	    "connected, or the protocol's refusal (end=denied(..)). The log\n"
	    "line's TARGET is then 'HOST:PORT (ADDRESS)'.\n"
	    "\n"
	    "Examples: rill relay tcp://0.0.0.0:8080 unix:/run/app.sock\n"
	    "  rill relay --allow-target '*.example.org:443' \\\n"
	    "      socks5+tcp://127.0.0.1:1080 'tcp://{target}'\n");
}

/* The operands: CONNECT_URI's {target} and --allow-target go together,
 * and both URIs must parse. 0 or the exit status. */
static int relay_parse_uris(struct relay *r, const char *listen_uri,
                            const char *connect_uri)
{
	r->listen_uri = listen_uri;
	r->connect_uri = connect_uri;
	r->dynamic = strstr(r->connect_uri, RELAY_TARGET_MARK) != NULL;
	if (r->dynamic && r->targets.n == 0)
		return cli_usage_error(
		    "relay",
		    "CONNECT_URI has {target}: refusing to run an open proxy "
		    "without --allow-target PATTERN (--allow-target '*' "
		    "allows every target)");
	if (!r->dynamic && r->targets.n > 0)
		return cli_usage_error("relay", "--allow-target needs a "
		                                "CONNECT_URI with {target}");
	char *sample = relay_target_sample(r->connect_uri);
	int bad = sample == NULL || rill_uri_check(sample) != 0;
	free(sample);
	if (bad)
		return cli_usage_error("relay", "%s", rill_last_errmsg());
	r->listen_tls = cli_uri_has_tls(r->listen_uri);
	r->connect_tls = cli_uri_has_tls(r->connect_uri);
	return 0;
}

int relay_parse(int argc, char **argv, struct relay *r, bool *done)
{
	static const struct option longopts[] = {
	    {"max-conns", required_argument, NULL, 'm'},
	    {"max-per-source", required_argument, NULL, 'M'},
	    {"allow", required_argument, NULL, 'a'},
	    {"connect-timeout", required_argument, NULL, 'c'},
	    {"retry-until", required_argument, NULL, 'r'},
	    {"idle-timeout", required_argument, NULL, 'i'},
	    {"linger", required_argument, NULL, 'l'},
	    {"grace", required_argument, NULL, 'g'},
	    {"threads", required_argument, NULL, 't'},
	    {"no-splice", no_argument, NULL, 'S'},
	    {"allow-target", required_argument, NULL, 'A'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"metrics", required_argument, NULL, 'P'},
	    {"log-format", required_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		uint64_t *target = NULL;
		switch (opt) {
		case 'm':
		case 'M': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (end == optarg || *end != '\0' || optarg[0] == '-')
				return cli_usage_error(
				    "relay", "bad --%s '%s'",
				    opt == 'm' ? "max-conns" : "max-per-source",
				    optarg);
			*(opt == 'm' ? &r->max_conns : &r->max_per_source) = v;
			continue;
		}
		case 'a':
			if (cli_allow_add(&r->allow, "relay", optarg) != 0)
				return 2;
			continue;
		case 'c': target = &r->connect_timeout_ms; break;
		case 'r': target = &r->retry_until_ms; break;
		case 'i': target = &r->idle_ms; break;
		case 'l':
			target = &r->linger_ms;
			r->linger_set = true;
			break;
		case 'g': target = &r->grace_ms; break;
		case 't':
			if (!cli_parse_threads(optarg, &r->threads))
				return cli_usage_error(
				    "relay", "bad --threads '%s'", optarg);
			continue;
		case 'S': r->no_splice = true; continue;
		case 'A': {
			const char *why = "";
			if (target_allow_add(&r->targets, optarg, &why) != 0)
				return cli_usage_error(
				    "relay", "bad --allow-target '%s': %s",
				    optarg, why);
			continue;
		}
		case 'q': r->quiet = true; continue;
		case 'P': r->metrics_uri = optarg; continue;
		case 'F':
			if (!cli_log_format_parse(optarg, &r->log_format))
				return cli_usage_error(
				    "relay", "bad --log-format '%s'", optarg);
			continue;
		case 'h':
			relay_usage(stdout);
			*done = true;
			return 0;
		default: return cli_usage_error("relay", "bad option");
		}
		if (!cli_parse_secs(optarg, target))
			return cli_usage_error(
			    "relay", "bad number of seconds '%s'", optarg);
	}
	if (argc - optind != 2)
		return cli_usage_error("relay",
		                       "expected LISTEN_URI and CONNECT_URI");
	return relay_parse_uris(r, argv[optind], argv[optind + 1]);
}
