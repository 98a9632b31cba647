#!/usr/bin/env python3
"""Interleaved A/B runs of forwarder settings, one loopback stream each.

    bench/relay_ab.py [--build DIR] [--rounds N] [--mib N] CASE...

CASE is NAME=SETTINGS, SETTINGS a comma-separated list of ENV=VALUE pairs
and of options for `rill relay` after a ':' (e.g.
`untuned=RILL_SPLICE_LOCAL=0`, `copy=:--no-splice`, `t1=:--threads=1`).
NAME fwd-threads[...] runs bench/fwd_floor instead, splice-threads[...]
runs `bench/fwd_floor --splice`. Every case is its own process, started
once; each round runs one stream through every case (each round starts
one further along), with bench/relay_ab_stream, and the medians are
printed: throughput, the forwarder's CPU s/GiB, the sender's and the
sink's, their total, and the median of the per-round throughput ratios
against the first case. The load average is printed before and after.
"""
import argparse
import os
import re
import socket
import statistics as st
import subprocess
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(build, name, settings, target):
    env = dict(os.environ)
    envs, _, opts = settings.partition(':')
    for kv in filter(None, envs.split(',')):
        k, _, v = kv.partition('=')
        env[k] = v
    port = free_port()
    if name.startswith('fwd-threads'):
        argv = [build + '/bench/fwd_floor', str(port), str(target)]
    elif name.startswith('splice-threads'):
        argv = [build + '/bench/fwd_floor', '--splice', str(port),
                str(target)]
    else:
        argv = [build + '/rill', 'relay', '--quiet'] + opts.split() + [
            'tcp://127.0.0.1:%d' % port, 'tcp://127.0.0.1:%d' % target]
    proc = subprocess.Popen(argv, env=env)
    for _ in range(100):
        try:
            socket.create_connection(('127.0.0.1', port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return port, proc


LINE = re.compile(r'([\d.]+) Gbit/s fwd ([\d.]+) send ([\d.]+) .*'
                  r'sink ([\d.]+)')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default='build')
    ap.add_argument('--rounds', type=int, default=11)
    ap.add_argument('--mib', type=int, default=256)
    ap.add_argument('cases', nargs='+')
    a = ap.parse_args()
    target = free_port()
    cases = []
    for c in a.cases:
        name, _, settings = c.partition('=')
        port, proc = start(a.build, name, settings, target)
        cases.append((name, port, proc))
    res = {n: [] for n, _, _ in cases}
    # start()'s readiness probe makes each relay connect to the target
    # port, where nothing listens yet; on a loaded machine that connect
    # can be late enough to reach the first stream's sink, which then
    # accepts it instead of the stream's own connection and waits
    # forever. Let those connects fail first.
    time.sleep(3)
    print('load average %.2f' % os.getloadavg()[0])
    try:
        for r in range(a.rounds):
            k = r % len(cases)
            for name, port, proc in cases[k:] + cases[:k]:
                out = subprocess.run(
                    [a.build + '/bench/relay_ab_stream', str(port),
                     str(target), str(a.mib), str(proc.pid)],
                    capture_output=True, text=True, check=True).stdout
                res[name].append([float(x) for x in
                                  LINE.search(out).groups()])
    finally:
        for _, _, proc in cases:
            proc.terminate()
            proc.wait()
    print('load average %.2f' % os.getloadavg()[0])
    print('%-16s %7s %7s %7s %7s %7s %7s' % (
        'case', 'Gbit/s', 'fwd', 'send', 'sink', 'total', 'ratio'))
    base = res[cases[0][0]]
    for name, _, _ in cases:
        v = res[name]
        med = [st.median(x[i] for x in v) for i in range(4)]
        tot = st.median(x[1] + x[2] + x[3] for x in v)
        ratio = st.median(v[i][0] / base[i][0] for i in range(len(v)))
        print('%-16s %7.2f %7.3f %7.3f %7.3f %7.3f %6.2fx   (%s)' % (
            name, med[0], med[1], med[2], med[3], tot, ratio,
            ' '.join('%.1f' % x[0] for x in v)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
