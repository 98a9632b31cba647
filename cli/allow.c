/* --allow PATTERN (see allow.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "allow.h"

int cli_allow_add(struct cli_allow *a, const char *cmd, const char *text)
{
	struct rill_peer_pattern p;
	if (rill_peer_pattern_parse(text, &p) != 0)
		return cli_usage_error(cmd, "--allow: %s", rill_last_errmsg());
	if (a->n >= CLI_ALLOW_MAX)
		return cli_usage_error(cmd, "more than %d --allow patterns",
		                       CLI_ALLOW_MAX);
	struct rill_peer_pattern *np =
	    realloc(a->pats, (a->n + 1) * sizeof *np);
	if (np == NULL)
		return cli_usage_error(cmd, "out of memory");
	np[a->n++] = p;
	a->pats = np;
	return 0;
}

bool cli_allow_match(const struct cli_allow *a, const struct rill_peer *peer)
{
	if (a->n == 0)
		return true;
	for (size_t i = 0; i < a->n; i++)
		if (rill_peer_match(&a->pats[i], peer))
			return true;
	return false;
}

void cli_peer_text(const struct rill_peer *p, char *buf, size_t len)
{
	char host[64];
	if (rill_peer_format(p, host, sizeof host) != 0)
		snprintf(host, sizeof host, "?");
	switch (p->kind) {
	case RILL_PEER_IP:
		snprintf(buf, len,
		         p->ipv6 ? "tcp://[%s]:%" PRIu32 : "tcp://%s:%" PRIu32,
		         host, p->port);
		break;
	case RILL_PEER_VSOCK:
		snprintf(buf, len, "vsock://%" PRIu32 ":%" PRIu32, p->cid,
		         p->port);
		break;
	case RILL_PEER_UNIX:
		snprintf(buf, len, "unix uid=%" PRIu32 " pid=%" PRId32, p->uid,
		         p->pid);
		break;
	default: snprintf(buf, len, "%s", host);
	}
}

bool cli_allow_filter(struct rill_listener *l, const struct rill_peer *peer,
                      void *ud)
{
	(void)l;
	const struct cli_allow *a = ud;
	if (cli_allow_match(a, peer))
		return true;
	if (a->log) {
		char who[128];
		cli_peer_text(peer, who, sizeof who);
		fprintf(stderr, "rill %s: %s end=denied\n", a->cmd, who);
	}
	return false;
}

const struct rill_listen_opts *cli_allow_opts(struct cli_allow *a,
                                              struct rill_listen_opts *o)
{
	if (a->n == 0)
		return NULL;
	memset(o, 0, sizeof *o);
	o->filter = cli_allow_filter;
	o->filter_ud = a;
	return o;
}

void cli_allow_free(struct cli_allow *a)
{
	free(a->pats);
	a->pats = NULL;
	a->n = 0;
}
