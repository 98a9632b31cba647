/*
 * The Xen vchan API on a machine without Xen (this one; the real thing
 * runs in the Xen guest tests, tests/xen/): addressing, URIs, and the
 * clear error every call gives when the Xen devices are missing.
 */
#include <stdio.h>
#include <unistd.h>

#include "harness.h"
#include "rill.h"

static bool xen_here(void)
{
	return access("/dev/xen/evtchn", F_OK) == 0;
}

TEST(default_paths_as_ocaml_vchan)
{
	char p[64];
	TH_OK(rill_xen_vchan_path(0, 5, "agent", p, sizeof p));
	TH_EQ_STR(p, "/local/domain/0/data/vchan/5/agent");
	TH_OK(rill_xen_vchan_path(12, 0, "a_b-C9", p, sizeof p));
	TH_EQ_STR(p, "/local/domain/12/data/vchan/0/a_b-C9");
	TH_EQ_ERR(rill_xen_vchan_path(0, 5, "bad/port", p, sizeof p),
	          RILL_EINVAL);
	TH_EQ_ERR(rill_xen_vchan_path(0, 5, "", p, sizeof p), RILL_EINVAL);
	TH_EQ_ERR(rill_xen_vchan_path(0x7FF0, 5, "x", p, sizeof p),
	          RILL_EINVAL);
	/* libxenvchan peers cut paths at 49 bytes (64 with /event-channel) */
	TH_EQ_ERR(
	    rill_xen_vchan_path(0, 5, "aaaaaaaaaaaaaaaaaaaaaaaa", p, sizeof p),
	    -ENAMETOOLONG);
	TH_EQ_ERR(rill_xen_vchan_path(0, 5, "agent", p, 10), -ENAMETOOLONG);
}

TEST(uris)
{
	TH_OK(rill_uri_check("xen-vchan:0/agent"));
	TH_OK(
	    rill_uri_check("xen-vchan:17/a?read_size=1024&write_size=1048576"));
	TH_OK(rill_uri_check("xen-vchan:0?path=/local/domain/0/data/proxy"));
	TH_OK(rill_uri_check("xen-vchan:3/p?path=data/vchan/relative"));
	TH_OK(rill_uri_check("shut+xen-vchan:1/agent"));
	TH_OK(rill_uri_check("tls+xen-vchan:1/agent"));
	const char *bad[] = {
	    "xen-vchan:",
	    "xen-vchan:0",
	    "xen-vchan:x/agent",
	    "xen-vchan:32752/agent",
	    "xen-vchan:0/bad!port",
	    "xen-vchan:0/a?read_size=0",
	    "xen-vchan:0/a?write_size=1048577",
	    "xen-vchan:0/a?path=/local//domain",
	    "xen-vchan:0/a?path=/local/domain/0/",
	    "xen-vchan:0/a?path=/has space",
	    "xen-vchan:0/a?bogus=1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int err = rill_uri_check(bad[i]);
		if (err != RILL_EURI)
			TH_FAIL("%s: %s, not RILL_EURI", bad[i],
			        rill_err_name(err));
		TH_TRUE(strstr(rill_last_errmsg(), bad[i]) != NULL);
	}
	/* A path of 50 bytes: one more than libxenvchan peers keep. */
	char uri[128];
	snprintf(uri, sizeof uri, "xen-vchan:0?path=/%049d", 7);
	TH_EQ_ERR(rill_uri_check(uri), RILL_EURI);
	snprintf(uri, sizeof uri, "xen-vchan:0?path=/%048d", 7);
	TH_OK(rill_uri_check(uri));
}

struct xt_connect {
	bool done;
	int status;
};

static void xt_connect_cb(struct rill_flow *f, int status, const char *msg,
                          void *ud)
{
	(void)msg;
	struct xt_connect *c = ud;
	c->done = true;
	c->status = status;
	rill_close(f);
}

static void xt_accept_cb(struct rill_listener *l, struct rill_flow *f,
                         int status, const char *msg, void *ud)
{
	(void)l;
	(void)status;
	(void)msg;
	(void)ud;
	rill_close(f);
}

static void xt_expect_no_xen(int err)
{
#ifndef RILL_HAVE_XEN /* rill built its stand-ins */
	TH_EQ_ERR(err, -ENOTSUP);
	TH_CONTAINS(rill_last_errmsg(), "built without Xen support");
#else
	TH_EQ_ERR(err, -ENODEV);
	TH_CONTAINS(rill_last_errmsg(), "/dev/xen/");
	TH_CONTAINS(rill_last_errmsg(), "not a Xen domain");
#endif
}

TEST(without_xen_every_call_says_so)
{
	if (xen_here())
		TH_SKIP("this machine has /dev/xen/evtchn");
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct rill_flow *f = (struct rill_flow *)&loop;
	xt_expect_no_xen(
	    rill_xen_vchan_server(&loop, 1, "agent", NULL, NULL, NULL, &f));
	TH_TRUE(f == NULL);
	struct xt_connect c = {0};
	xt_expect_no_xen(rill_xen_vchan_client(&loop, 0, "agent", NULL, NULL,
	                                       xt_connect_cb, &c));
	struct rill_listener *l = NULL;
	xt_expect_no_xen(rill_listen(&loop, "xen-vchan:1/agent", NULL,
	                             xt_accept_cb, NULL, &l));
	xt_expect_no_xen(rill_connect(&loop, "shut+xen-vchan:0/agent", NULL,
	                              xt_connect_cb, &c));
	TH_TRUE(!c.done);
	/* Bad arguments come first, Xen or not. */
	TH_EQ_ERR(
	    rill_xen_vchan_server(&loop, 1, "bad/port", NULL, NULL, NULL, &f),
	    RILL_EINVAL);
	struct rill_xen_vchan_opts big = {.read_size = (1u << 20) + 1};
	TH_EQ_ERR(
	    rill_xen_vchan_server(&loop, 1, "agent", &big, NULL, NULL, &f),
	    RILL_EINVAL);
	TH_EQ_ERR(rill_xen_vchan_client(&loop, 0x7FF0, "agent", NULL, NULL,
	                                xt_connect_cb, &c),
	          RILL_EINVAL);
	struct rill_xen_vchan_opts badpath = {.path = "/a//b"};
	TH_EQ_ERR(rill_xen_vchan_client(&loop, 0, NULL, &badpath, NULL,
	                                xt_connect_cb, &c),
	          RILL_EINVAL);
	TH_CONTAINS(rill_last_errmsg(), "/a//b");
	TH_EQ_INT(uv_run(&loop, UV_RUN_NOWAIT), 0);
	TH_EQ_INT(uv_loop_close(&loop), 0);
}
