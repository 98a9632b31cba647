/*
 * Test fixtures shared by the vsock-family tests: a private temporary
 * directory, the VMM emulator (tests/vmm_emulator.c) run as a child
 * process, opening a connected pair of flows through URIs, and callbacks
 * that record connects and accepts.
 */
#ifndef RILL_TEST_VSOCK_FIXTURE_H
#define RILL_TEST_VSOCK_FIXTURE_H

#include <sys/types.h>

#include "rill.h"

struct vfx {
	char dir[64];   /* private temporary directory */
	char guest[96]; /* dir/guest: where "guest" listeners live */
	char uds[96];   /* dir/v.sock: the emulated VMM's socket */
	pid_t emu;      /* emulator process, or 0 */
};

/* Makes the directory (and dir/guest). Fails the test on error. */
void vfx_init(struct vfx *v);

/* Starts the emulator in mode "firecracker" or "hyperkit" (on dir for
 * hyperkit, on uds for firecracker); extra may be NULL or "--propagate".
 * Returns when it listens. */
void vfx_start_emulator(struct vfx *v, const char *mode, const char *extra);

/* Stops the emulator and removes the directory. */
void vfx_cleanup(struct vfx *v);

/*
 * Listens on listen_uri, connects to connect_uri and runs loop until both
 * ends exist: *a is the connecting side, *b the accepted one. The listener
 * is closed before returning. Returns 0 or the first error (the message
 * goes to the test log).
 */
int vfx_open_pair(uv_loop_t *loop, const char *listen_uri,
                  const char *connect_uri, struct rill_flow **a,
                  struct rill_flow **b);

/* The outcome of rill_connect, filled by vfx_conn_cb (ud: the struct). */
struct vfx_conn {
	bool done;
	int status;
	struct rill_flow *f;
	char msg[512];
};

void vfx_conn_cb(struct rill_flow *f, int status, const char *errmsg, void *ud);

/* The first flow a listener accepted (vfx_acc_cb, ud: the struct); later
 * ones and failed accepts are closed. */
struct vfx_accepted {
	struct rill_flow *f;
};

void vfx_acc_cb(struct rill_listener *l, struct rill_flow *f, int status,
                const char *errmsg, void *ud);

/* Run loop until *flag / *f is set; fail the test if the loop runs dry. */
void vfx_run_until(uv_loop_t *loop, bool *flag);
void vfx_run_until_flow(uv_loop_t *loop, struct rill_flow **f);

/* Reads exactly strlen(want) bytes from f (synchronously) and compares. */
void vfx_expect_read(struct rill_flow *f, const char *want);

/* Runs loop until it has nothing left, and closes it (the test fails if a
 * handle stayed open). */
void vfx_finish_loop(uv_loop_t *loop);

#endif
