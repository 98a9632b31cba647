#!/usr/bin/env python3
"""The guest harness does not depend on where the checkout lives.

A checkout under /tmp (or /run), or in a folder whose name holds a space
or a comma, once gave a guest whose programs could not start: the
initramfs kept each program at its host path, and the guest's /init
mounts tmpfs on /tmp and /run over them; and QEMU's option syntax splits
a multiboot module list on spaces and commas. This test builds a guest
from copies of the CLI placed exactly there:

  /tmp/vmpaths-XXXX/a dir/x,y/rill   under /tmp, a space and a comma
  /run/vmpaths-XXXX/rill             under /run
  a data file beside the first       (rillvm's file(), default path)

with QEMU run from a work folder whose name holds a space and a comma,
and runs in the guest, for each copy: `rill --version`, and a 256 KiB
transfer through `rill echo unix:` and `rill cat`, checked by sha256.
It needs only QEMU, busybox-static and the guest kernel (no vsock
modules). Both folders are removed at the end.
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rillvm  # noqa: E402

NAME = "vm_paths"
PROGRAMS = ["tmp-space-comma", "run"]

JOB = r'''. /etc/rill-vm/guest_lib.sh
# One program per copy: TAP of its own, run by vm_run.
cat >/etc/rill-vm/leg.sh <<'LEG'
R=$1
n=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
"$R" --version >/dev/null 2>&1; t $? "rill --version runs from $R"
sock=$(mktemp -u /tmp/echo.XXXXXX)
"$R" echo "unix:$sock" 2>/tmp/echo.err &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
out=$(mktemp)
"$R" cat "unix:$sock" <"$DATA" >"$out" 2>/tmp/cat.err
t $? "rill cat through rill echo exits 0"
want=$(sha256sum "$DATA" | cut -d' ' -f1)
got=$(sha256sum "$out" | cut -d' ' -f1)
[ "$want" = "$got" ]; t $? "the data comes back whole (sha256 $got, $(wc -c <"$out") bytes)"
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
cat /tmp/echo.err /tmp/cat.err >&2
rm -f "$out" "$sock"
echo "1..$n"
LEG
vm_run tmp-space-comma 60 sh /etc/rill-vm/leg.sh "$RILL_TMP"
vm_run run 60 sh /etc/rill-vm/leg.sh "$RILL_RUN"
'''


def kernel_dir(source):
    return os.environ.get("RILL_VM_KERNEL_DIR") or \
        os.path.join(source, "build", "vm-kernel")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--timeout", type=int, default=240)
    a = ap.parse_args()
    release = os.environ.get("RILL_RELEASE_BUILD")
    rill = os.path.join(release, "rill") if release else ""
    if not os.path.exists(rill):
        rill = os.path.join(a.build, "rill")

    tap = rillvm.Tap()
    made = []
    try:
        try:
            rillvm.qemu_binary()
            kernel = rillvm.find_kernel(kernel_dir(a.source))
        except rillvm.Unavailable as e:
            tap.line(True, "%s: the guest # SKIP %s" % (NAME, e))
            return tap.finish()
        top_tmp = tempfile.mkdtemp(prefix="vmpaths-", dir="/tmp")
        made.append(top_tmp)
        top_run = tempfile.mkdtemp(prefix="vmpaths-", dir="/run")
        made.append(top_run)
        work = tempfile.mkdtemp(prefix="vm paths, work-")
        made.append(work)
        d_tmp = os.path.join(top_tmp, "a dir", "x,y")
        os.makedirs(d_tmp)
        copies = {"RILL_TMP": os.path.join(d_tmp, "rill"),
                  "RILL_RUN": os.path.join(top_run, "rill")}
        for path in copies.values():
            shutil.copy2(rill, path)
        data = os.path.join(d_tmp, "data file")
        with open(data, "wb") as f:
            f.write(os.urandom(256 << 10))

        fs = rillvm.Initramfs()
        fs.busybox()
        env = {"TMPDIR": "/tmp", "HOME": "/tmp"}
        for var, path in copies.items():
            env[var] = fs.program(path)
        fs.file(data)
        env["DATA"] = rillvm.guest_path(data)
        fs.guest_init(JOB, env)
        initrd = os.path.join(work, "initrd.cpio")
        fs.write(initrd)
        tap.note("host copies: %s; guest paths: %s" %
                 (", ".join(copies.values()),
                  ", ".join(env[v] for v in copies)))
        b = rillvm.boot(kernel.vmlinuz, initrd, rillvm.linux_cmdline(),
                        work, a.timeout, memory_mb=512)
        rillvm.relay(tap, b, expect=PROGRAMS)
        return tap.finish()
    finally:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
