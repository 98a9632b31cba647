#!/usr/bin/env python3
"""AF_VSOCK against the real Linux kernel, in a QEMU guest (tests/vm/).

Boots Debian's stock kernel with vsock, vmw_vsock_virtio_transport_common
and vsock_loopback (CID 1: real AF_VSOCK connections inside the guest) and
runs there (vsock_job.sh):

  api        tests/vm/vsock_api.c: listening on any CID/port and the
             listener's URI, refused connects (RILL_ECONNREFUSED), retries
             and a late listener, a CID without transport
  cli        tests/vm/vsock_cli.sh: rill cat/echo/relay/http and socat over
             vsock
  conf-*     the conformance suite on vsock, shut+vsock and tls+vsock, both
             directions (test_conf_socket, test_tls_conf)

vsock_api and the plain vsock conformance run come from this build
(ASan+UBSan: every AF_VSOCK-specific path); shut+vsock, tls+vsock and the
CLI's rill from the release build when run.py names one
(RILL_RELEASE_BUILD), else from this one. Under emulation every second
counts (the sanitized TLS suite alone took two minutes, 36 s optimized);
the shut and TLS layers run sanitized on the host over Unix and TCP; and
memory bounds are measured on the optimized rill.

Prints one TAP stream: a host-side check that those programs register no
AF_VSOCK test outside the guest, every guest test, and a failure for
anything that went wrong around them. Where QEMU, busybox or the kernel
are missing the guest is one skipped test with the reason (the kernel: see RILL_VM_KERNEL_DIR in tests/vm/README.md).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rillvm  # noqa: E402

NAME = "vm_vsock"
HERE = os.path.dirname(os.path.abspath(__file__))
# Guest programs, in the order vsock_job.sh runs them.
PROGRAMS = ["api", "cli", "conf-vsock", "conf-shut+vsock", "conf-tls+vsock"]


def kernel_dir(source):
    return os.environ.get("RILL_VM_KERNEL_DIR") or \
        os.path.join(source, "build", "vm-kernel")


def guest_programs(a):
    """The test programs that run in the guest: (variable, host path)."""
    tests = os.path.join(a.build, "tests")
    opt = os.path.join(a.opt_build, "tests")
    return [("VSOCK_API", os.path.join(tests, "vm", "vsock_api")),
            ("CONF_SOCKET", os.path.join(tests, "test_conf_socket")),
            ("CONF_SOCKET_OPT", os.path.join(opt, "test_conf_socket")),
            ("TLS_CONF", os.path.join(opt, "test_tls_conf"))]


def host_registers_no_vsock(tap, a):
    """On the host the guest programs register no AF_VSOCK test at all
    (TEST_GUEST, th_in_vm_guest), not even with RILL_VM_GUEST=1 set: the
    host's own vsock reaches the real hypervisor and is never touched."""
    found, missing = [], []
    env = dict(os.environ, RILL_VM_GUEST="1")
    for _, path in guest_programs(a):
        if not os.path.exists(path):
            missing.append(path)
            continue
        p = subprocess.run([path, "--list"], env=env, capture_output=True,
                           text=True, timeout=120)
        found += ["%s: %s" % (os.path.basename(path), l)
                  for l in p.stdout.splitlines() if "vsock" in l]
    if missing:
        tap.line(False, "host: not built: " + ", ".join(missing))
    tap.line(not found, "host: the guest programs register no AF_VSOCK "
             "test outside the guest")
    if found:
        tap.note("\n".join(found[:20]))


def build_initramfs(a, kernel, out):
    fs = rillvm.Initramfs()
    fs.busybox()
    fs.kernel_modules(kernel, ["vsock", "vmw_vsock_virtio_transport_common",
                               "vsock_loopback"])
    env = {
        "RILL_VM_GUEST": "1",
        "TMPDIR": "/tmp",
        "HOME": "/tmp",
        "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS",
                                       "detect_leaks=1:abort_on_error=0"),
        "UBSAN_OPTIONS": os.environ.get("UBSAN_OPTIONS",
                                        "halt_on_error=1:print_stacktrace=1"),
        # The guest emulates its CPU (about 10 MB/s): large transfers in
        # the MiB range.
        "CONF_BIG_BYTES": str(a.big_bytes),
        "CONF_TIME_SCALE": "2",
        # A check that hangs fails after 45 s (the longest pass in
        # about 8 s here, 25 s on a badly overloaded host), not after
        # the suite's two minutes.
        "TH_TIMEOUT": "45",
    }
    for var, path in guest_programs(a):
        if not os.path.exists(path):
            raise rillvm.Unavailable("%s is not built" % path)
        env[var] = fs.program(path)
    env["RILL"] = fs.program(a.rill)
    env["RILL_BUILD_KIND"] = a.rill_kind
    socat = shutil.which("socat")
    if socat:
        env["SOCAT"] = fs.program(socat)
    fs.file(os.path.join(a.source, "tests", "tap_lib.sh"),
            "/etc/rill-vm/tap_lib.sh", 0o644)
    fs.file(os.path.join(HERE, "vsock_cli.sh"), "/etc/rill-vm/vsock_cli.sh",
            0o755)
    fs.guest_init(os.path.join(HERE, "vsock_job.sh"), env)
    fs.write(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="the (sanitizer) build")
    ap.add_argument("--source", required=True)
    ap.add_argument("--timeout", type=int, default=660,
                    help="hard limit of the whole guest run, seconds "
                    "(vsock_job.sh's limits add up to 570 per lane)")
    ap.add_argument("--big-bytes", type=int, default=1 << 20)
    ap.add_argument("--keep", help="keep the initramfs and logs here")
    a = ap.parse_args()
    release = os.environ.get("RILL_RELEASE_BUILD")
    if release and os.path.exists(os.path.join(release, "rill")):
        a.rill, a.rill_kind = os.path.join(release, "rill"), "release"
        a.opt_build = release
    else:
        a.rill, a.rill_kind = os.path.join(a.build, "rill"), "sanitizer"
        a.opt_build = a.build

    tap = rillvm.Tap()
    host_registers_no_vsock(tap, a)
    work = a.keep or tempfile.mkdtemp(prefix="rill-vm-")
    try:
        try:
            qemu = rillvm.qemu_binary()
            kernel = rillvm.find_kernel(kernel_dir(a.source))
            initrd = os.path.join(work, "initrd.cpio")
            build_initramfs(a, kernel, initrd)
        except rillvm.Unavailable as e:
            tap.line(True, "%s: the guest # SKIP %s" % (NAME, e))
            return tap.finish()
        b = rillvm.boot(kernel.vmlinuz, initrd, rillvm.linux_cmdline(),
                        work, a.timeout, memory_mb=768)
        tap.note("guest: %s, kernel %s, initramfs %.1f MiB, CLI from the "
                 "%s build, %.1f s" %
                 (os.path.basename(qemu), kernel.version,
                  os.path.getsize(initrd) / 1048576.0, a.rill_kind,
                  b.seconds))
        rillvm.relay(tap, b, expect=PROGRAMS)
        return tap.finish()
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
