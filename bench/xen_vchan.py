#!/usr/bin/env python3
"""Xen vchan dom0<->domU: rill beside libxenvchan, in one emulated run.

Boots Xen in QEMU as the Xen guest tests do (tests/xen/test_vm_xen.py
--bench) with the release build's programs and measures, dom0 server and
domU client, 1 MiB rings:
  throughput   the domU client writes BYTES in 64 KiB writes, the dom0
               server reads; time from the first byte to the last
  round trip   ROUNDS ping-pongs of one byte (the client times them)
for libxenvchan (tests/xen/xen_lib_peer.c: non-blocking libxenvchan_read/
write, select on its event channel fd), rill (xen_rill_peer.c, rill's
default 50 us spin) and rill with RILL_VCHAN_SPIN_NS=0. Each measurement
runs --rounds times, the kinds interleaved; the table shows the best and
the median of each, and rill / libxenvchan ratios from the same run.

Under QEMU's software emulation (TCG) on a shared host only the ratios
mean anything: the absolute figures are those of an emulated CPU.

  bench/xen_vchan.py [--build build] [--bytes 16M] [--rtts 2000]
                     [--rounds 3]
"""
import argparse
import os
import re
import statistics
import sys
import tempfile
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "xen"))
sys.path.insert(0, os.path.join(SRC, "tests", "vm"))
import rillvm  # noqa: E402
import test_vm_xen  # noqa: E402

KINDS = ["lib", "rill", "rill-nospin"]
LABEL = {"lib": "libxenvchan", "rill": "rill (spin 50 us)",
         "rill-nospin": "rill (spin 0)"}


def size(s):
    m = re.match(r"^(\d+)([KMG]?)$", s)
    if not m:
        raise argparse.ArgumentTypeError("bad size %s" % s)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)]


def figures(results):
    """{(metric, kind): [value...]}: MB/s for tput, round trips/s for
    rtt."""
    out = {}
    progs = rillvm.parse_results(results)[0]
    for p in progs:
        m = re.match(r"^(?:domU-)?bench-(tput|rtt)-(.+)-\d+$", p.name)
        if not m:
            continue
        for line in p.out:
            b = re.match(r"^# bench (tput|rtt) (\d+) ([\d.]+)$", line)
            if b and float(b.group(3)) > 0:
                n, t = int(b.group(2)), float(b.group(3))
                v = n / t / 1e6 if b.group(1) == "tput" else n / t
                out.setdefault((b.group(1), m.group(2)), []).append(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--bytes", type=size, default=16 << 20)
    ap.add_argument("--rtts", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep")
    b = ap.parse_args()
    a = argparse.Namespace(build=b.build, source=SRC,
                           release_build=b.build, bench=True,
                           bench_bytes=b.bytes, bench_rtts=b.rtts,
                           bench_rounds=b.rounds, conf_bytes=1 << 20,
                           timeout=900)
    work = b.keep or tempfile.mkdtemp(prefix="rill-bench-xen-")
    os.makedirs(work, exist_ok=True)
    try:
        run = test_vm_xen.run(a, work)
    except rillvm.Unavailable as e:
        print("bench xen-vchan: cannot run: %s" % e)
        return 1
    finally:
        pass
    fig = figures(run.results)
    if not b.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("Xen vchan dom0 server <-> domU client, QEMU TCG (%.0f s run)" %
          run.seconds)
    print("%-20s %-18s %12s %12s %8s" % ("metric", "kind", "best",
                                         "median", "vs lib"))
    for metric, unit in (("tput", "MB/s"), ("rtt", "rt/s")):
        base = fig.get((metric, "lib"))
        for kind in KINDS:
            v = fig.get((metric, kind))
            if not v:
                print("%-20s %-18s %12s" % (metric, LABEL[kind], "missing"))
                continue
            ratio = ""
            if base and kind != "lib":
                ratio = "%.2fx" % (statistics.median(v) /
                                   statistics.median(base))
            print("%-20s %-18s %7.2f %4s %7.2f %4s %8s" %
                  ("throughput" if metric == "tput" else "round trip",
                   LABEL[kind], max(v), unit, statistics.median(v), unit,
                   ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
