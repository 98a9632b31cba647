/*
 * A small TAP test harness. Every test runs in its own forked process with
 * a timeout, so a crash, a hang or a leak in one test cannot hide another.
 * Asserts are typed and print both sides. A test that finishes without
 * running a single assertion FAILS: a test must be able to fail.
 *
 *   TEST(my_test) { TH_EQ_INT(1 + 1, 2); }
 *
 * Tests can also be added at run time with th_add() (the conformance suite
 * does this for every flow kind and check).
 */
#ifndef RILL_TEST_HARNESS_H
#define RILL_TEST_HARNESS_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef void (*th_fn)(void *arg);

/* Registers a test; name is copied. timeout_s 0 selects the default. */
void th_add(const char *name, th_fn fn, void *arg, unsigned timeout_s);

/* Runs the tests selected by argv (substring filters; --list lists). */
int th_main(int argc, char **argv);

/*
 * A mkdtemp(3) template "$TMPDIR/NAME-XXXXXX" in buf. th_main points
 * TMPDIR at a directory of the program's own, removed with everything in
 * it when the program ends, so tests leave nothing in /tmp.
 */
void th_tmp_template(char *buf, size_t len, const char *name);

/* Used by the assertion macros. */
void th_pass_one(void);
_Noreturn void th_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
_Noreturn void th_skip(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void th_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *th_errname(int err);

/* Defines test `name` and registers it at start-up when `when` holds. */
#define TH_DEFINE(name, secs, when)                                  \
	static void name(void);                                      \
	static void th_run_##name(void *arg)                         \
	{                                                            \
		(void)arg;                                           \
		name();                                              \
	}                                                            \
	__attribute__((constructor)) static void th_reg_##name(void) \
	{                                                            \
		if (when)                                            \
			th_add(#name, th_run_##name, NULL, secs);    \
	}                                                            \
	static void name(void)

#define TEST_TIMEOUT(name, secs) TH_DEFINE(name, secs, true)

#define TEST(name) TEST_TIMEOUT(name, 0)

/*
 * True only inside a guest booted by tests/vm/rillvm.py: RILL_VM_GUEST=1
 * is set and /etc/rill-vm/env exists. Tests that bind or connect real
 * AF_VSOCK sockets run only there; on the host they are not registered at
 * all, so `make check` never touches the machine's own vsock.
 */
bool th_in_vm_guest(void);

/* A test registered only inside a rillvm guest (see th_in_vm_guest). */
#define TEST_GUEST(name) TH_DEFINE(name, 0, th_in_vm_guest())

#define TH_SKIP(...) th_skip(__VA_ARGS__)
#define TH_FAIL(...) th_fail(__FILE__, __LINE__, __VA_ARGS__)

#define TH_TRUE(c)                                                            \
	do {                                                                  \
		if (!(c))                                                     \
			th_fail(__FILE__, __LINE__, "expected true: %s", #c); \
		th_pass_one();                                                \
	} while (0)

#define TH_EQ_INT(a, b)                                                       \
	do {                                                                  \
		long long th_a = (long long)(a), th_b = (long long)(b);       \
		if (th_a != th_b)                                             \
			th_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", \
			        #a, #b, th_a, th_b);                          \
		th_pass_one();                                                \
	} while (0)

#define TH_CMP_INT(a, op, b)                                                  \
	do {                                                                  \
		long long th_a = (long long)(a), th_b = (long long)(b);       \
		if (!(th_a op th_b))                                          \
			th_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", \
			        #a, #op, #b, th_a, th_b);                     \
		th_pass_one();                                                \
	} while (0)

#define TH_EQ_U64(a, b)                                                      \
	do {                                                                 \
		uint64_t th_a = (uint64_t)(a), th_b = (uint64_t)(b);         \
		if (th_a != th_b)                                            \
			th_fail(__FILE__, __LINE__,                          \
			        "%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, \
			        th_a, th_b);                                 \
		th_pass_one();                                               \
	} while (0)

/* Error codes: prints symbolic names of both sides. */
#define TH_EQ_ERR(a, b)                                                   \
	do {                                                              \
		int th_a = (int)(a), th_b = (int)(b);                     \
		if (th_a != th_b)                                         \
			th_fail(__FILE__, __LINE__,                       \
			        "%s == %s: %s(%d) != %s(%d)", #a, #b,     \
			        th_errname(th_a), th_a, th_errname(th_b), \
			        th_b);                                    \
		th_pass_one();                                            \
	} while (0)

#define TH_OK(a) TH_EQ_ERR(a, 0)

#define TH_EQ_STR(a, b)                                                      \
	do {                                                                 \
		const char *th_a = (a), *th_b = (b);                         \
		if (th_a == NULL || th_b == NULL || strcmp(th_a, th_b) != 0) \
			th_fail(__FILE__, __LINE__,                          \
			        "%s == %s: \"%s\" != \"%s\"", #a, #b,        \
			        th_a ? th_a : "(null)",                      \
			        th_b ? th_b : "(null)");                     \
		th_pass_one();                                               \
	} while (0)

#define TH_CONTAINS(hay, needle)                                             \
	do {                                                                 \
		const char *th_h = (hay), *th_n = (needle);                  \
		if (th_h == NULL || strstr(th_h, th_n) == NULL)              \
			th_fail(__FILE__, __LINE__,                          \
			        "%s contains %s: \"%s\" lacks \"%s\"", #hay, \
			        #needle, th_h ? th_h : "(null)", th_n);      \
		th_pass_one();                                               \
	} while (0)

#define TH_EQ_MEM(a, b, n)                                               \
	do {                                                             \
		if (memcmp((a), (b), (n)) != 0)                          \
			th_fail(__FILE__, __LINE__,                      \
			        "%s and %s differ in %zu bytes", #a, #b, \
			        (size_t)(n));                            \
		th_pass_one();                                           \
	} while (0)

#define TH_NOT_NULL(p)                                                 \
	do {                                                           \
		if ((p) == NULL)                                       \
			th_fail(__FILE__, __LINE__, "%s is NULL", #p); \
		th_pass_one();                                         \
	} while (0)

#endif
