#!/usr/bin/env python3
"""Runs every rill test program and prints one summary line.

Test programs are the ones meson knows (`meson introspect --tests`). Each
speaks TAP; every "ok" / "not ok" line counts as one test. A program that
crashes or prints no plan counts as one failure. Programs run in parallel
(-j), each one's output is printed whole when it finishes.

With --release-build, the tests in the 'valgrind' suite also run under
valgrind on that (unsanitized) build, and the tests in the 'release' suite
(heavy transfers, too slow under ASan) run only there.

With --exclude NAME (repeatable), that test is left out and counted as one
skipped test: to measure what one test adds to the run's wall clock.

With --suite NAME, only the tests in that meson suite run (from either
build): `make check-vm` runs the 'vm' suite (the QEMU guest tests,
tests/vm/).

The last line is always: "N passed, N failed, N skipped".
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import tempfile
import sys
import time

TAP_LINE = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*-?\s*(.*)$")


def introspect(build):
    out = subprocess.run(["meson", "introspect", "--tests", build],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def has_suite(t, name):
    return any(s == name or s.endswith(":" + name)
               for s in (t.get("suite") or []))


def run_program(name, cmd, env, timeout, cwd):
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True,
                           text=True, errors="replace", timeout=timeout)
        out, code = p.stdout, p.returncode
        err = p.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = "program timed out after %d s" % timeout
        code = -1
    passed = failed = skipped = 0
    lines = []
    plan = False
    for line in out.splitlines():
        if line.startswith("1.."):
            plan = True
        m = TAP_LINE.match(line)
        if m:
            if m.group(1) == "not ok":
                failed += 1
            elif "# SKIP" in line:
                skipped += 1
            else:
                passed += 1
        lines.append(line)
    if not plan or (code != 0 and failed == 0):
        failed += 1
        lines.append("not ok - %s exited with status %s without reporting "
                     "a failed test" % (name, code))
        if err:
            lines.extend("# " + l for l in err.splitlines()[-40:])
    elif failed and err:
        lines.extend("# stderr: " + l for l in err.splitlines()[-40:])
    return name, passed, failed, skipped, lines, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-check")
    ap.add_argument("--release-build", default=None)
    ap.add_argument("-j", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--suite", default=None,
                    help="run only the tests of this meson suite")
    ap.add_argument("--exclude", action="append", default=[],
                    help="leave out the tests with this name (to measure "
                    "what one test adds to the run's wall clock)")
    ap.add_argument("filter", nargs="*")
    a = ap.parse_args()

    left_out = []

    def wanted(t):
        if a.suite and not has_suite(t, a.suite):
            return False
        if t["name"] in a.exclude:
            left_out.append(t["name"])
            return False
        return not a.filter or any(f in t["name"] for f in a.filter)

    # Every test program gets TMPDIR inside one directory of this run's,
    # checked for leftovers and removed at the end (tmp_check below).
    run_tmp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    tmp_before = tmp_rill_entries()

    jobs = []
    for t in introspect(a.build):
        if not wanted(t):
            continue
        if has_suite(t, "release"):
            continue  # run below, from the optimized build
        env = dict(os.environ)
        env.update(t.get("env") or {})
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        if a.release_build:
            # The guest tests (tests/vm/) take the CLI from there.
            env["RILL_RELEASE_BUILD"] = os.path.abspath(a.release_build)
        jobs.append((t["name"], t["cmd"], env, t.get("timeout") or 600,
                     t.get("workdir")))
    if a.release_build:
        for t in introspect(a.release_build):
            if not wanted(t):
                continue
            if has_suite(t, "release"):
                env = dict(os.environ)
                env.update(t.get("env") or {})
                jobs.append(("release:" + t["name"], t["cmd"], env,
                             t.get("timeout") or 600, t.get("workdir")))
                continue
            if not has_suite(t, "valgrind"):
                continue
            env = dict(os.environ)
            env.update(t.get("env") or {})
            env["TH_TIMEOUT_MULT"] = "10"
            # The conformance suite's large transfers, smaller under
            # valgrind (they are checked at full size in the ASan run).
            env.setdefault("CONF_BIG_BYTES", str(8 << 20))
            cmd = ["valgrind", "-q", "--error-exitcode=99",
                   "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                   "--show-leak-kinds=definite,indirect"] + t["cmd"]
            jobs.append(("valgrind:" + t["name"], cmd, env,
                         (t.get("timeout") or 600) * 4, t.get("workdir")))

    for j in jobs:
        j[2]["TMPDIR"] = run_tmp
        # vchan's default rendezvous directory is /tmp/rill-vchan-UID:
        # tests that do not choose one use the run's.
        j[2].setdefault("RILL_VCHAN_DIR", os.path.join(run_tmp, "vchan"))

    tp = tf = ts = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.j)) as ex:
        futs = [ex.submit(run_program, *j) for j in jobs]
        for fut in concurrent.futures.as_completed(futs):
            name, p, f, s, lines, dt = fut.result()
            print("=== %s: %d passed, %d failed, %d skipped (%.1fs)" %
                  (name, p, f, s, dt))
            for l in lines:
                if f or l.startswith("not ok") or "# SKIP" in l or \
                   os.environ.get("VERBOSE"):
                    print("    " + l)
            sys.stdout.flush()
            tp, tf, ts = tp + p, tf + f, ts + s
    for name in left_out:
        # Counted as skipped: a test left out did not pass.
        print("=== %s: 0 passed, 0 failed, 1 skipped (left out by "
              "--exclude)" % name)
        ts += 1
    ok, lines = tmp_check(run_tmp, tmp_before)
    print("=== tmp_clean: %d passed, %d failed, 0 skipped" %
          (1 if ok else 0, 0 if ok else 1))
    for l in lines:
        print("    " + l)
    tp, tf = tp + (1 if ok else 0), tf + (0 if ok else 1)
    print("%d passed, %d failed, %d skipped" % (tp, tf, ts))
    return 1 if tf else 0


def tmp_rill_entries():
    """The rill* entries of /tmp, as (name, inode) pairs."""
    got = set()
    for n in os.listdir("/tmp"):
        if n.startswith("rill"):
            try:
                got.add((n, os.lstat(os.path.join("/tmp", n)).st_ino))
            except OSError:
                pass
    return got


def tmp_check(run_tmp, tmp_before):
    """The tests left nothing behind: not in this run's TMPDIR, and no
    rill* entry in /tmp that was not there when the run started (a test
    that ignores TMPDIR). Entries that were there already, e.g. a clone
    in /tmp/rill that the build writes into, are not counted, however
    their times change. Removes run_tmp. Returns (ok, TAP lines)."""
    left = []
    for root, dirs, files in os.walk(run_tmp):
        for n in dirs + files:
            rel = os.path.relpath(os.path.join(root, n), run_tmp)
            if rel != "vchan":  # the run's own RILL_VCHAN_DIR (below)
                left.append(rel)
    shutil.rmtree(run_tmp, ignore_errors=True)
    stray = [n for n, ino in tmp_rill_entries() - tmp_before]
    ok = not left and not stray
    lines = ["%s - tests left nothing in TMPDIR or /tmp" %
             ("ok 1" if ok else "not ok 1")]
    lines += ["# left in TMPDIR: " + x for x in sorted(left)[:20]]
    lines += ["# made in /tmp: " + x for x in sorted(stray)[:20]]
    return ok, lines


if __name__ == "__main__":
    sys.exit(main())
