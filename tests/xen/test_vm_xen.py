#!/usr/bin/env python3
"""rill's Xen vchan backend in an emulated Xen (tests/vm/ harness).

Boots Xen 4.17 (Debian's xen-hypervisor-4.17-amd64) under QEMU with
Debian's stock kernel as dom0; dom0 starts Xen's user space (xenstored,
xen-init-dom0, xenconsoled) and later a PV domU (`xl create`, the same
kernel, 160 MiB, no disk, no network). Inside (xen_dom0.sh, xen_domu.sh):

  dom0<->dom0   rill server <-> libxenvchan client, libxenvchan server <->
                rill client, rill <-> rill; ring sizes 1 KiB .. 1 MiB in
                both roles; a peer killed with SIGKILL seen as EOF within
                5 s (libxenvchan and rill, each role); a hostile
                libxenvchan peer writing bad indices (RILL_ERING); Xen's
                vchan-socket-proxy in server and client mode; rill cat,
                echo and relay with xen-vchan URIs; the conformance suite
                on xen-vchan (test_conf_xen)
  dom0<->domU   both interop roles with rill on either side, rill <-> rill
                on the default xenstore paths, the smallest and the
                largest ring

The libxenvchan peer (xen_lib_peer.c) is built on Xen's own library, not
on rill. The peers come from this build (the sanitizer build in `make
check`); the conformance suite and the CLI from the release build when
run.py names one (see programs()). Prints one
TAP stream; where QEMU, Xen, the kernel or the Xen programs are missing it
is one skipped test with the reason.

  test_vm_xen.py --build DIR --source DIR [--bench] [--keep DIR]

--bench runs the dom0<->domU throughput and round trip of libxenvchan
and rill instead (bench/xen_vchan.py prints them as a table).
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
import rillvm  # noqa: E402

NAME = "vm_xen"
XEN_BIN = "/usr/lib/xen-4.17/bin"
XEN_TOOLS = ["xenstored", "xen-init-dom0", "xl", "xenconsoled",
             "vchan-socket-proxy"]
MODULES_DOM0 = ["xen_privcmd", "xenfs", "xen_evtchn", "xen_gntdev",
                "xen_gntalloc"]
MODULES_DOMU = ["xen_evtchn", "xen_gntdev", "xen_gntalloc"]
XEN_CMDLINE = ("console=com1 com1=115200,8n1 dom0_mem=512M,max:512M "
               "dom0_max_vcpus=1 bootscrub=0")
DOM0_CMDLINE = "console=hvc0 earlyprintk=xen quiet loglevel=3 rdinit=/init " \
               "panic=-1"
# The guest programs that must start (a guest that stops early misses
# them and fails).
EXPECT = ["rs-lc", "lc-rs", "ls-rc", "rc-ls", "nohc-cat", "nohc-relay",
          "conf-xen-vchan", "du-rs",
          "domU-lc"]


def kernel_dir(source):
    return os.environ.get("RILL_VM_KERNEL_DIR") or \
        os.path.join(source, "build", "vm-kernel")


def find_xen():
    found = sorted(glob.glob("/boot/xen-4.17*.gz"))
    if not found:
        raise rillvm.Unavailable("no /boot/xen-4.17*.gz (install "
                                 "xen-hypervisor-4.17-amd64)")
    for t in XEN_TOOLS:
        if not os.path.exists(os.path.join(XEN_BIN, t)):
            raise rillvm.Unavailable("no %s/%s (install xen-utils-4.17)" %
                                     (XEN_BIN, t))
    if not shutil.which("xenstore-read"):
        raise rillvm.Unavailable("no xenstore-read (install "
                                 "xenstore-utils)")
    return found[-1]


def programs(fs, a):
    """The guest programs, into fs; their guest paths by variable. The
    peers come from --build (the sanitizer build: rill's Xen backend runs
    under ASan and UBSan in every leg); the conformance suite and the CLI
    from the release build when there is one (the suite's 64 checks take
    75 s under ASan in the emulated guest, 25 s optimized; the flow code
    they check runs under the sanitizers on the host, on memfd vchans)."""
    tests = os.path.join(a.build, "tests", "xen")
    fast = os.path.join(a.release_build or a.build, "tests", "xen")
    env = {}
    for var, name, where in (("LIBP", "xen_lib_peer", tests),
                             ("RILLP", "xen_rill_peer", tests),
                             ("CONF", "test_conf_xen", fast)):
        path = os.path.join(where, name)
        if not os.path.exists(path):
            path = os.path.join(tests, name)
        if not os.path.exists(path):
            raise rillvm.Unavailable(
                "%s is not built (rill without its Xen backend, or no "
                "libxenvchan: install libxen-dev)" % path)
        env[var] = fs.program(path)
    rill = os.path.join(a.release_build or a.build, "rill")
    if not os.path.exists(rill):
        rill = os.path.join(a.build, "rill")
    env["RILL"] = fs.program(rill)
    return env


def guest_env(a):
    return {
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "XEN_MODE": "bench" if a.bench else "test",
        "BENCH_BYTES": str(a.bench_bytes),
        "BENCH_RTTS": str(a.bench_rtts),
        "BENCH_ROUNDS": str(a.bench_rounds),
        "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS",
                                       "detect_leaks=1:abort_on_error=0"),
        "UBSAN_OPTIONS": os.environ.get(
            "UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"),
        # The emulated CPU moves about 10 MB/s: MiB-range transfers.
        "CONF_BIG_BYTES": str(a.conf_bytes),
        "CONF_TIME_SCALE": "2",
    }


def domu_initramfs(a, kernel, out):
    fs = rillvm.Initramfs()
    fs.busybox()
    fs.kernel_modules(kernel, MODULES_DOMU)
    env = guest_env(a)
    env.update(programs(fs, a))
    fs.program(shutil.which("xenstore-read"), "/bin/xenstore-read")
    fs.file(os.path.join(HERE, "xen_lib.sh"), "/etc/rill-vm/xen_lib.sh",
            0o644)
    fs.guest_init(os.path.join(HERE, "xen_domu.sh"), env,
                  results_dev="/dev/hvc0")
    fs.write(out)


def dom0_initramfs(a, kernel, domu_img, out):
    fs = rillvm.Initramfs()
    fs.busybox()
    fs.kernel_modules(kernel, MODULES_DOM0)
    env = guest_env(a)
    env.update(programs(fs, a))
    for t in XEN_TOOLS:
        fs.program(os.path.join(XEN_BIN, t))
    for t in ("xenstore-read", "xenstore-ls"):
        if shutil.which(t):
            fs.program(shutil.which(t), "/bin/" + t)
    env["PROXY"] = os.path.join(XEN_BIN, "vchan-socket-proxy")
    fs.data("/etc/xen/xl.conf", "")
    fs.file(kernel.vmlinuz, "/boot/domu-vmlinuz", 0o644)
    fs.file(domu_img, "/boot/domu.img", 0o644)
    env["DOMU_KERNEL"] = "/boot/domu-vmlinuz"
    env["DOMU_INITRD"] = "/boot/domu.img"
    fs.file(os.path.join(HERE, "xen_lib.sh"), "/etc/rill-vm/xen_lib.sh",
            0o644)
    fs.guest_init(os.path.join(HERE, "xen_dom0.sh"), env)
    fs.write(out)


def run(a, work):
    kernel = rillvm.find_kernel(kernel_dir(a.source))
    xen_gz = find_xen()
    rillvm.qemu_binary()
    xen = os.path.join(work, "xen")
    with open(xen, "wb") as f:
        # QEMU's multiboot loader does not gunzip: Xen's ELF itself.
        subprocess.run(["zcat", xen_gz], stdout=f, check=True)
    domu_img = os.path.join(work, "domu.img")
    domu_initramfs(a, kernel, domu_img)
    dom0_img = os.path.join(work, "dom0.img")
    dom0_initramfs(a, kernel, domu_img, dom0_img)
    modules = "%s %s,%s" % (rillvm.in_workdir(work, kernel.vmlinuz),
                             DOM0_CMDLINE, rillvm.in_workdir(work, dom0_img))
    return rillvm.boot(xen, modules, XEN_CMDLINE, work, a.timeout,
                       memory_mb=1024)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--release-build",
                    default=os.environ.get("RILL_RELEASE_BUILD"))
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--bench-bytes", type=int, default=16 << 20)
    ap.add_argument("--bench-rtts", type=int, default=2000)
    ap.add_argument("--bench-rounds", type=int, default=3)
    ap.add_argument("--conf-bytes", type=int, default=1 << 20)
    ap.add_argument("--timeout", type=int, default=280)
    ap.add_argument("--keep", help="keep the work files in this folder")
    a = ap.parse_args()
    if a.release_build and not os.path.exists(
            os.path.join(a.release_build, "rill")):
        a.release_build = None
    work = a.keep or tempfile.mkdtemp(prefix="rill-vm-xen-")
    os.makedirs(work, exist_ok=True)
    try:
        try:
            b = run(a, work)
        except rillvm.Unavailable as e:
            return rillvm.skip_all(NAME, str(e))
        tap = rillvm.Tap()
        rillvm.relay(tap, b, expect=[] if a.bench else EXPECT)
        tap.note("guest run: %.0f s (%s)" % (b.seconds, b.status))
        return tap.finish()
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
