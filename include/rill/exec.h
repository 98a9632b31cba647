/*
 * rill/exec.h - the child process under an exec: flow.
 * Included by rill.h; do not include directly.
 *
 * rill_connect(loop, "exec:PROGRAM ARG...", ...) starts PROGRAM (found in
 * $PATH when it has no '/') without a shell, with the words of the URI as
 * its arguments (split on spaces; %20 is a space inside a word, %25 a
 * '%'). The flow writes to the child's standard input and reads its
 * standard output; standard error is the caller's own (passed through).
 *
 *   rill_shutdown(RILL_SHUT_WR)  closes the child's standard input (it
 *                                reads end of file)
 *   read EOF                     the child closed its standard output
 *                                (usually: it exited). The EOF is held
 *                                until the child's exit was seen, at
 *                                most one second, so that its status is
 *                                known when the EOF arrives.
 *   write RILL_ECLOSED           the child closed its standard input
 *   rill_close                   closes both; a child still running then
 *                                gets SIGTERM after kill_after ms (URI
 *                                parameter, default 2000; 0: never) and
 *                                SIGKILL as long again later. The child
 *                                is always reaped (no zombie): its handle
 *                                keeps the loop alive until it exited.
 *
 * When the child exits, the flow's error message (rill_flow_errmsg) says
 * how: `exec /bin/false: exited with status 1`, `exec x: killed by signal
 * 9 (Killed)`. A program that cannot be started fails the connect (through
 * the callback) with the errno of the failed exec, for instance -ENOENT,
 * and the message `exec: cannot run "x": No such file or directory`.
 */
#ifndef RILL_EXEC_H
#define RILL_EXEC_H

#ifdef __cplusplus
extern "C" {
#endif

enum rill_exec_state {
	RILL_EXEC_RUNNING = 0,  /* no exit seen yet */
	RILL_EXEC_EXITED = 1,   /* exited; the value is its exit status */
	RILL_EXEC_SIGNALED = 2, /* killed; the value is the signal number */
};

/*
 * The state of the child of exec: flow f (the flow rill_connect made,
 * not a layer stacked on it). Stores the exit status or signal number in
 * *value and the child's process id in *pid (either may be NULL; *value
 * is 0 while the child runs). Returns a rill_exec_state, or RILL_EINVAL
 * when f is NULL or not an exec flow. Valid until f is closed.
 */
RILL_EXTERN int rill_exec_status(struct rill_flow *f, int *value, int *pid);

#ifdef __cplusplus
}
#endif

#endif /* RILL_EXEC_H */
