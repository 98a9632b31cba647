/* See vsock_fixture.h. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vsock_fixture.h"

void vfx_init(struct vfx *v)
{
	memset(v, 0, sizeof *v);
	th_tmp_template(v->dir, sizeof v->dir, "rill-vsock");
	if (mkdtemp(v->dir) == NULL)
		TH_FAIL("mkdtemp: %s", strerror(errno));
	snprintf(v->guest, sizeof v->guest, "%s/guest", v->dir);
	snprintf(v->uds, sizeof v->uds, "%s/v.sock", v->dir);
	if (mkdir(v->guest, 0700) != 0)
		TH_FAIL("mkdir %s: %s", v->guest, strerror(errno));
}

/* The emulator is built next to the test programs. */
static void vfx_emulator_path(char *buf, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		TH_FAIL("readlink /proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(buf, cap, "%s/vmm_emulator", self);
}

void vfx_start_emulator(struct vfx *v, const char *mode, const char *extra)
{
	char exe[PATH_MAX + 32];
	vfx_emulator_path(exe, sizeof exe);
	int p[2];
	if (pipe(p) != 0)
		TH_FAIL("pipe: %s", strerror(errno));
	const char *where = strcmp(mode, "hyperkit") == 0 ? v->dir : v->uds;
	pid_t pid = fork();
	if (pid < 0)
		TH_FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(exe, exe, mode, where, v->guest, extra, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char line[16] = {0};
	ssize_t n = read(p[0], line, sizeof line - 1);
	close(p[0]);
	v->emu = pid;
	if (n <= 0 || strncmp(line, "ready", 5) != 0)
		TH_FAIL("the VMM emulator %s did not start", exe);
}

static void vfx_rm_tree(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		th_note("could not remove %s", dir);
}

void vfx_cleanup(struct vfx *v)
{
	if (v->emu > 0) {
		kill(v->emu, SIGKILL);
		waitpid(v->emu, NULL, 0);
		v->emu = 0;
	}
	if (v->dir[0] != '\0')
		vfx_rm_tree(v->dir);
}

struct vfx_open {
	struct rill_flow *a, *b;
	int err;
	bool connected;
};

static void vfx_accept_cb(struct rill_listener *l, struct rill_flow *f,
                          int status, const char *errmsg, void *ud)
{
	(void)l;
	struct vfx_open *o = ud;
	if (status != 0) {
		th_note("accept: %s", errmsg);
		if (o->err == 0)
			o->err = status;
		return;
	}
	if (o->b != NULL)
		rill_close(f); /* one is enough */
	else
		o->b = f;
}

static void vfx_connect_cb(struct rill_flow *f, int status, const char *errmsg,
                           void *ud)
{
	struct vfx_open *o = ud;
	o->connected = true;
	if (status != 0) {
		th_note("connect: %s", errmsg);
		if (o->err == 0)
			o->err = status;
		return;
	}
	o->a = f;
}

int vfx_open_pair(uv_loop_t *loop, const char *listen_uri,
                  const char *connect_uri, struct rill_flow **a,
                  struct rill_flow **b)
{
	struct vfx_open o = {0};
	struct rill_listener *l;
	int err = rill_listen(loop, listen_uri, NULL, vfx_accept_cb, &o, &l);
	if (err != 0) {
		th_note("listen %s: %s", listen_uri, rill_last_errmsg());
		return err;
	}
	struct rill_connect_opts co = {.timeout_ms = 5000};
	err = rill_connect(loop, connect_uri, &co, vfx_connect_cb, &o);
	if (err != 0) {
		th_note("connect %s: %s", connect_uri, rill_last_errmsg());
		rill_listener_close(l);
		return err;
	}
	while (o.err == 0 && (o.a == NULL || o.b == NULL))
		if (uv_run(loop, UV_RUN_ONCE) == 0)
			break;
	while (!o.connected)
		uv_run(loop, UV_RUN_ONCE);
	rill_listener_close(l);
	if (o.err != 0 || o.a == NULL || o.b == NULL) {
		rill_close(o.a);
		rill_close(o.b);
		return o.err != 0 ? o.err : -EIO;
	}
	*a = o.a;
	*b = o.b;
	return 0;
}

void vfx_conn_cb(struct rill_flow *f, int status, const char *errmsg, void *ud)
{
	struct vfx_conn *r = ud;
	r->done = true;
	r->status = status;
	r->f = f;
	snprintf(r->msg, sizeof r->msg, "%s", errmsg != NULL ? errmsg : "");
}

void vfx_acc_cb(struct rill_listener *l, struct rill_flow *f, int status,
                const char *errmsg, void *ud)
{
	(void)l;
	(void)errmsg;
	struct vfx_accepted *r = ud;
	if (status == 0 && r->f == NULL)
		r->f = f;
	else
		rill_close(f);
}

void vfx_run_until(uv_loop_t *loop, bool *flag)
{
	while (!*flag)
		if (uv_run(loop, UV_RUN_ONCE) == 0 && !*flag)
			TH_FAIL("the loop ran dry");
}

void vfx_run_until_flow(uv_loop_t *loop, struct rill_flow **f)
{
	while (*f == NULL)
		if (uv_run(loop, UV_RUN_ONCE) == 0 && *f == NULL)
			TH_FAIL("the loop ran dry");
}

void vfx_expect_read(struct rill_flow *f, const char *want)
{
	size_t n = strlen(want), have = 0;
	char got[256];
	while (have < n) {
		struct rill_buf *b = NULL;
		int err = rill_read_sync(f, &b);
		if (err != 0)
			TH_FAIL("read after %zu bytes: %s", have,
			        rill_err_name(err));
		if (have + b->len > n || have + b->len > sizeof got)
			TH_FAIL("more bytes than expected");
		memcpy(got + have, b->data, b->len);
		have += b->len;
		rill_buf_release(b);
	}
	TH_EQ_MEM(got, want, n);
}

void vfx_finish_loop(uv_loop_t *loop)
{
	uv_run(loop, UV_RUN_DEFAULT);
	TH_OK(uv_loop_close(loop));
}
