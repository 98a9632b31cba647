/*
 * The conformance suite on vchan between rill peers (a write shutdown is
 * a half-close: live 0 is EOF and rill keeps accepting the other
 * direction), on vchan opened with half_close=0 (libxenvchan's rules:
 * no half-close, rill_flow_can_half_close false, RILL_SHUT_WR alone
 * refused), and on shut+vchan (every check: the shut layer adds the
 * half-close).
 */
#include "conformance.h"
#include "vchan_util.h"

static int vchan_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                      struct rill_flow **b)
{
	(void)arg;
	static int seq;
	static bool dir;
	if (!dir) {
		vt_private_dir();
		dir = true;
	}
	char port[32];
	snprintf(port, sizeof port, "conf%d", seq++);
	/* a: the connecting side (client), b: the accepted side (server) */
	return vt_pair(loop, port, 256 * 1024, 256 * 1024, b, a);
}

static const struct conf_factory vchan_factory = {
    .name = "vchan",
    .make = vchan_make,
};
CONF_REGISTER(vchan_factory)

/* half_close=0 on both ends, through URIs. */
struct nohc_pair {
	struct rill_flow *acc, *con;
	int acc_st, con_st;
	bool acc_done, con_done;
};

static void nohc_accepted(struct rill_listener *l, struct rill_flow *f,
                          int status, const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct nohc_pair *p = ud;
	if (p->acc_done) {
		rill_close(f);
		return;
	}
	p->acc = f;
	p->acc_st = status;
	p->acc_done = true;
}

static void nohc_connected(struct rill_flow *f, int status, const char *errmsg,
                           void *ud)
{
	(void)errmsg;
	struct nohc_pair *p = ud;
	p->con = f;
	p->con_st = status;
	p->con_done = true;
}

static int vchan_nohc_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                           struct rill_flow **b)
{
	(void)arg;
	static int seq;
	if (seq == 0)
		vt_private_dir();
	char uri[64];
	snprintf(uri, sizeof uri, "vchan:nohc%d?half_close=0", seq++);
	struct nohc_pair p = {0};
	struct rill_listener *l = NULL;
	int err = rill_listen(loop, uri, NULL, nohc_accepted, &p, &l);
	if (err == 0)
		err = rill_connect(loop, uri, NULL, nohc_connected, &p);
	if (err != 0) {
		rill_listener_close(l);
		return err;
	}
	while (!p.con_done || (p.con_st == 0 && !p.acc_done))
		uv_run(loop, UV_RUN_ONCE);
	rill_listener_close(l);
	if (p.con_st != 0 || p.acc_st != 0) {
		rill_close(p.con);
		rill_close(p.acc);
		return p.con_st != 0 ? p.con_st : p.acc_st;
	}
	*a = p.con;
	*b = p.acc;
	return 0;
}

static const struct conf_factory vchan_nohc_factory = {
    .name = "vchan-nohc",
    .make = vchan_nohc_make,
    .caps_missing = CONF_NO_HALF_CLOSE,
    .why_missing = "half_close=0: the peer follows libxenvchan, where live "
                   "0 ends both directions; use shut+vchan",
};
CONF_REGISTER(vchan_nohc_factory)

static int shut_vchan_make(uv_loop_t *loop, void *arg, struct rill_flow **a,
                           struct rill_flow **b)
{
	int err = vchan_make(loop, arg, a, b);
	if (err != 0)
		return err;
	err = rill_shut_attach(*a, a);
	if (err != 0) {
		rill_close(*b);
		return err;
	}
	return rill_shut_attach(*b, b);
}

static const struct conf_factory shut_vchan_factory = {
    .name = "shut+vchan",
    .make = shut_vchan_make,
};
CONF_REGISTER(shut_vchan_factory)
