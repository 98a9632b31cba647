#!/usr/bin/env python3
"""rillvm: boot a throw-away Linux guest under QEMU and read back its tests.

The harness behind rill's guest tests (tests/vm/README.md has the whole
story). Four parts, each usable alone:

  fetch_kernel(dir)       Debian's stock kernel, from `apt-get download`
                          and `dpkg-deb -x` into dir (cached there), with a
                          modules.dep made by depmod; never touches /boot.
  Initramfs               a newc cpio archive written in Python (device
                          nodes need no root): busybox-static and its applet
                          links, programs with their ldd closure, kernel
                          modules with their dependencies, the guest /init
                          (tests/vm/init.sh) and a job script.
  boot(...)               qemu-system-x86_64 under a hard timeout: software
                          emulation, no network and no vhost device, one
                          serial port for the console and one for results.
  parse_results / relay   the guest's result protocol (guest_lib.sh) read
                          back and printed as TAP, with run.py's rules per
                          guest program.

Command line (used by scripts/install-deps.sh):
  rillvm.py fetch-kernel DIR    download and unpack the kernel into DIR
"""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Every line of the guest's result protocol starts with this.
MARK = "@rill-vm "
# Where the guest keeps the programs and files it is given from outside
# the host's system directories (the checkout, the builds, temporary
# files): /init mounts tmpfs on /tmp and /run, which would hide a copy
# kept at its host path there (a checkout under /tmp), so nothing the
# harness carries lives at a host path that the guest mounts over.
GUEST_ROOT = "/opt/rill-vm/host"
# Host directories whose files keep their path in the guest: the loader,
# shared libraries and system programs are looked up there by name.
SYSTEM_DIRS = ("/usr/", "/lib/", "/lib64/", "/lib32/", "/bin/", "/sbin/",
               "/etc/")


class Unavailable(Exception):
    """Something the guest needs is missing on this machine (QEMU, the
    kernel, busybox...): the guest tests are then skipped with str(e)."""


# ---------------------------------------------------------------------------
# The kernel

class Kernel:
    """An unpacked Debian kernel package: root/boot/vmlinuz-VERSION and
    root/lib/modules/VERSION (with modules.dep)."""

    def __init__(self, root):
        self.root = root
        boot = os.path.join(root, "boot")
        names = sorted(n for n in os.listdir(boot)
                       if n.startswith("vmlinuz-")) if os.path.isdir(boot) \
            else []
        if not names:
            raise Unavailable("no vmlinuz-* in %s" % boot)
        self.version = names[-1][len("vmlinuz-"):]
        self.vmlinuz = os.path.join(boot, names[-1])
        self.moddir = os.path.join(root, "lib", "modules", self.version)
        self._deps = None
        self._builtin = None

    def _load_deps(self):
        if self._deps is not None:
            return
        self._deps = {}
        with open(os.path.join(self.moddir, "modules.dep")) as f:
            for line in f:
                path, _, rest = line.partition(":")
                self._deps[module_name(path)] = (path, rest.split())
        self._builtin = set()
        p = os.path.join(self.moddir, "modules.builtin")
        if os.path.exists(p):
            with open(p) as f:
                self._builtin = {module_name(l.strip()) for l in f}

    def module_closure(self, names):
        """The module files (relative to moddir) that loading `names`
        needs, dependencies first; built-in modules are left out, an
        unknown name raises Unavailable."""
        self._load_deps()
        order, seen = [], set()

        def visit(name):
            name = name.replace("-", "_")
            if name in seen:
                return
            seen.add(name)
            if name not in self._deps:
                if name in self._builtin:
                    return
                raise Unavailable("kernel %s has no module %s" %
                                  (self.version, name))
            path, deps = self._deps[name]
            for d in deps:
                visit(module_name(d))
            order.append(path)

        for n in names:
            visit(n)
        return order


def module_name(path):
    """"kernel/net/vmw_vsock/vsock.ko.xz" -> "vsock" (dashes as _)."""
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def kernel_package():
    """The versioned image package Debian's linux-image-amd64 points to,
    e.g. "linux-image-6.1.0-57-amd64"."""
    try:
        out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],
                             capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise Unavailable("apt-cache depends linux-image-amd64: %s" % e)
    m = re.search(r"Depends:\s*(linux-image-\S+-amd64)\b", out)
    if not m:
        raise Unavailable("linux-image-amd64 names no kernel package")
    return m.group(1)


def find_kernel(cache):
    """The kernel unpacked in cache by fetch_kernel, or Unavailable."""
    if os.path.isdir(cache):
        for n in sorted(os.listdir(cache), reverse=True):
            root = os.path.join(cache, n)
            if n.startswith("linux-image-") and \
               os.path.exists(os.path.join(root, ".complete")):
                return Kernel(root)
    raise Unavailable("no kernel unpacked in %s (scripts/install-deps.sh "
                      "fetches it: python3 tests/vm/rillvm.py fetch-kernel "
                      "%s)" % (cache, cache))


def fetch_kernel(cache, package=None, log=sys.stderr):
    """Makes sure a kernel is unpacked in cache; returns it. An existing
    one is kept (no download): remove the folder to get a newer one."""
    try:
        return find_kernel(cache)
    except Unavailable:
        pass
    package = package or kernel_package()
    os.makedirs(cache, exist_ok=True)
    root = os.path.join(cache, package)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        print("rillvm: apt-get download %s" % package, file=log)
        # As root, apt would hand the download to its _apt user, who
        # cannot write here (it warns and goes on as root anyway).
        sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 \
            else []
        subprocess.run(["apt-get", "download", "-q"] + sandbox + [package],
                       cwd=tmp,
                       check=True, stdout=subprocess.DEVNULL)
        debs = [n for n in os.listdir(tmp) if n.endswith(".deb")]
        if len(debs) != 1:
            raise Unavailable("apt-get download %s gave %s" %
                              (package, debs))
        if os.path.exists(root):
            shutil.rmtree(root)
        subprocess.run(["dpkg-deb", "-x", os.path.join(tmp, debs[0]), root],
                       check=True)
    k = Kernel(root)
    if not os.path.exists(os.path.join(k.moddir, "modules.dep")):
        # The package leaves modules.dep to its postinst (depmod).
        depmod = shutil.which("depmod") or "/sbin/depmod"
        subprocess.run([depmod, "-b", root, k.version], check=True)
    open(os.path.join(root, ".complete"), "w").close()
    return k


# ---------------------------------------------------------------------------
# The initramfs

class Initramfs:
    """Files for a newc cpio archive, keyed by their absolute guest path.
    Parent directories are made as needed; a later add replaces an earlier
    one at the same path."""

    def __init__(self):
        self.entries = {}  # path -> (mode, data bytes or None, rdev)
        self.modules = []  # guest paths of modules, in load order
        self.dir("/")

    def dir(self, path, mode=0o755):
        path = self._norm(path)
        if path != "/":
            self.dir(os.path.dirname(path))
        self.entries.setdefault(path, (stat.S_IFDIR | mode, None, (0, 0)))

    def data(self, path, data, mode=0o644):
        """A regular file with these bytes (str is UTF-8 encoded)."""
        path = self._norm(path)
        self.dir(os.path.dirname(path))
        if isinstance(data, str):
            data = data.encode()
        self.entries[path] = (stat.S_IFREG | mode, data, (0, 0))

    def file(self, src, path=None, mode=None):
        """A copy of the host file src (symlinks followed) at path
        (default: guest_path(src))."""
        with open(src, "rb") as f:
            data = f.read()
        if mode is None:
            mode = stat.S_IMODE(os.stat(src).st_mode)
        self.data(path or guest_path(src), data, mode)

    def symlink(self, path, target):
        path = self._norm(path)
        self.dir(os.path.dirname(path))
        self.entries[path] = (stat.S_IFLNK | 0o777, target.encode(), (0, 0))

    def chardev(self, path, major, minor, mode=0o600):
        path = self._norm(path)
        self.dir(os.path.dirname(path))
        self.entries[path] = (stat.S_IFCHR | mode, None, (major, minor))

    def program(self, src, path=None):
        """An executable and every shared library ldd lists for it (plus
        libgcc_s.so.1, which glibc loads at run time for unwinding and
        ldd does not list), each at path or guest_path() of its host
        path. Returns the guest path of the program."""
        src = os.path.abspath(src)
        path = path or guest_path(src)
        self.file(src, path)
        for lib in shared_libraries(src) + [find_library("libgcc_s.so.1")]:
            if lib and self._norm(guest_path(lib)) not in self.entries:
                self.file(lib, guest_path(lib))
        return path

    def busybox(self, src=None):
        """busybox-static at /bin/busybox and a link for every applet it
        has (files added before or after at those paths win)."""
        src = src or shutil.which("busybox") or "/bin/busybox"
        if not os.path.exists(src):
            raise Unavailable("no busybox (install busybox-static)")
        if shared_libraries(src):
            raise Unavailable("%s is not statically linked (install "
                              "busybox-static)" % src)
        out = subprocess.run([src, "--list-full"], capture_output=True,
                             text=True, check=True).stdout
        for applet in out.split():
            p = "/" + applet
            if p not in self.entries:
                self.symlink(p, "/bin/busybox")
        self.file(src, "/bin/busybox", 0o755)

    def kernel_modules(self, kernel, names):
        """The modules `names` and their dependencies, loaded in order
        by /init (listed in /etc/rill-vm/modules)."""
        for rel in kernel.module_closure(names):
            src = os.path.join(kernel.moddir, rel)
            dest = "/lib/modules/%s/%s" % (kernel.version, rel)
            with open(src, "rb") as f:
                data = f.read()
            if rel.endswith(".xz"):
                import lzma
                data, dest = lzma.decompress(data), dest[:-3]
            elif rel.endswith(".gz"):
                import gzip
                data, dest = gzip.decompress(data), dest[:-3]
            self.data(dest, data)
            self.modules.append(dest)

    def guest_init(self, job, env=None, results_dev="/dev/ttyS1"):
        """The generic /init (tests/vm/init.sh) and guest_lib.sh, the job
        script (a path or text) that /init runs, and the environment it
        gets: env (a dict) plus VM_RESULTS, where results go."""
        self.file(os.path.join(HERE, "init.sh"), "/init", 0o755)
        self.file(os.path.join(HERE, "guest_lib.sh"),
                  "/etc/rill-vm/guest_lib.sh", 0o644)
        if os.path.exists(job):
            self.file(job, "/etc/rill-vm/job", 0o755)
        else:
            self.data("/etc/rill-vm/job", job, 0o755)
        values = {"VM_RESULTS": results_dev}
        values.update(env or {})
        self.data("/etc/rill-vm/env", "".join(
            "%s=%s\nexport %s\n" % (k, shell_quote(str(v)), k)
            for k, v in sorted(values.items())))
        self.data("/etc/rill-vm/modules",
                  "".join(m + "\n" for m in self.modules))
        for d in ("/proc", "/sys", "/dev", "/tmp", "/run", "/root"):
            self.dir(d)
        self.data("/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
        self.data("/etc/passwd", "root:x:0:0:root:/tmp:/bin/sh\n")
        self.data("/etc/group", "root:x:0:\n")
        self.chardev("/dev/console", 5, 1)
        self.chardev("/dev/null", 1, 3, 0o666)

    def write(self, out):
        """Writes the archive (uncompressed newc) to the file out."""
        with open(out, "wb") as f:
            ino = 1
            for path in sorted(self.entries):
                mode, data, (major, minor) = self.entries[path]
                name = path.lstrip("/") or "."
                self._entry(f, ino, name, mode, data or b"", major, minor)
                ino += 1
            self._entry(f, 0, "TRAILER!!!", 0, b"", 0, 0)

    @staticmethod
    def _entry(f, ino, name, mode, data, major, minor):
        nameb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0,
                  len(data), 0, 0, major, minor, len(nameb), 0]
        hdr = b"070701" + b"".join(b"%08x" % v for v in fields)
        f.write(hdr + nameb + b"\0" * (-(len(hdr) + len(nameb)) % 4))
        f.write(data + b"\0" * (-len(data) % 4))

    @staticmethod
    def _norm(path):
        return "/" + os.path.normpath(path).lstrip("/") if path != "/" \
            else "/"


def guest_path(host_path):
    """Where the guest keeps a copy of the host file host_path: system
    files (SYSTEM_DIRS) at the same path, everything else under
    GUEST_ROOT with the host path's structure kept (an $ORIGIN-relative
    RUNPATH still finds its libraries) and every character that a job
    script might split on or expand (spaces, quotes, $, ...) as "_", so
    that the guest path is safe unquoted in a shell word. Nothing the
    guest mounts over (/tmp, /run, /dev, /proc, /sys) shadows it."""
    p = os.path.normpath(os.path.abspath(host_path))
    if p.startswith(SYSTEM_DIRS):
        return p
    return GUEST_ROOT + re.sub(r"[^A-Za-z0-9._/+@%=-]", "_", p)


def shared_libraries(exe):
    """The absolute paths ldd resolves for exe (the loader included);
    [] for a static executable. A library ldd cannot find raises
    Unavailable."""
    p = subprocess.run(["ldd", exe], capture_output=True, text=True)
    libs = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            raise Unavailable("%s: %s" % (exe, line))
        m = re.match(r"(?:\S+ => )?(/\S+) \(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def find_library(name):
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
              "/lib64", "/usr/lib64", "/lib", "/usr/lib"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


def shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------------------
# Booting

class Boot:
    """What a guest run left: console (the kernel's and /init's serial
    log), results (the result port's text), how it ended (status: "exited"
    or "timeout"), QEMU's exit code and stderr, and the wall time."""

    def __init__(self, console, results, status, code, stderr, seconds):
        self.console, self.results = console, results
        self.status, self.code, self.stderr = status, code, stderr
        self.seconds = seconds


def qemu_binary():
    q = shutil.which("qemu-system-x86_64")
    if q is None:
        raise Unavailable("no qemu-system-x86_64 (install qemu-system-x86)")
    return q


def in_workdir(workdir, path):
    """A name for the file path that QEMU, run in workdir, can take in
    any option: path relative to workdir when it is inside it, else a
    symlink made there. Host paths may hold spaces and commas (a checkout
    in "/tmp/a dir", a TMPDIR of one's own), which QEMU's option syntax
    splits on (a multiboot module list is "FILE ARGS,FILE ARGS")."""
    workdir, path = os.path.abspath(workdir), os.path.abspath(path)
    if os.path.dirname(path) == workdir and \
       re.match(r"^[A-Za-z0-9._-]+$", os.path.basename(path)):
        return os.path.basename(path)
    name = "in-" + re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path))
    link = os.path.join(workdir, name)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(path, link)
    return name


def boot(kernel, initrd, append, workdir, timeout_s, memory_mb=512,
         extra_args=(), serial_ports=2, smp=1):
    """Boots kernel (a path) with initrd (a path, or for a multiboot
    kernel such as Xen "MODULE ARGS,MODULE..." with names made by
    in_workdir) and the command line append, under software emulation
    (RILL_VM_ACCEL=kvm tries KVM instead), with no network card, no vhost
    device and no display. QEMU runs in workdir and is given only names
    relative to it, so no host path reaches its option parser. Serial
    port i goes to workdir/serialI.log: port 0 is the console (ttyS0 /
    com1), port 1 the result port (ttyS1). QEMU is killed after timeout_s
    seconds. The guest ends the run with `poweroff -f`."""
    qemu = qemu_binary()
    accel = os.environ.get("RILL_VM_ACCEL", "tcg")
    if accel == "tcg":
        accel = "tcg,thread=multi,tb-size=256"
    kernel = in_workdir(workdir, kernel)
    if os.path.exists(initrd):
        initrd = in_workdir(workdir, initrd)
    names = ["serial%d.log" % i for i in range(serial_ports)]
    logs = [os.path.join(workdir, n) for n in names]
    for p in logs:
        open(p, "w").close()
    cmd = [qemu, "-accel", accel, "-cpu", "qemu64", "-smp", str(smp),
           "-m", str(memory_mb), "-nodefaults", "-net", "none",
           "-display", "none", "-monitor", "none", "-no-reboot",
           "-kernel", kernel, "-initrd", initrd, "-append", append]
    for n in names:
        cmd += ["-serial", "file:" + n]
    cmd += list(extra_args)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=workdir)
    try:
        _, err = proc.communicate(timeout=timeout_s)
        status = "exited"
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        status = "timeout"
    seconds = time.monotonic() - t0

    def text(p):
        with open(p, "rb") as f:
            return f.read().decode(errors="replace").replace("\r", "")
    texts = [text(p) for p in logs] + ["", ""]
    return Boot(texts[0], texts[1], status, proc.returncode,
                err.decode(errors="replace"), seconds)


def linux_cmdline(extra=""):
    """A kernel command line for a plain guest: console on ttyS0, quiet,
    and a panic ends QEMU (with -no-reboot) at once."""
    return ("console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init "
            "random.trust_cpu=on " + extra).strip()


# ---------------------------------------------------------------------------
# Results

class Program:
    """One guest program's run, as the result protocol told it."""

    def __init__(self, name):
        self.name = name
        self.out, self.err = [], []
        self.rc = None  # None: never ended (guest died or timed out)
        self.seconds = 0.0


def parse_results(text):
    """Reads the result protocol (guest_lib.sh): returns (programs in
    order, setup failures, done, notes). Lines without the mark are
    ignored."""
    programs, failures, done, notes = [], [], False, []
    current = None
    for line in text.splitlines():
        i = line.find(MARK)
        if i < 0:
            continue
        kind, _, rest = line[i + len(MARK):].partition(" ")
        if kind == "begin":
            current = Program(rest.strip())
            programs.append(current)
        elif kind in ("out", "err") and current is not None:
            getattr(current, kind).append(rest)
        elif kind == "end" and current is not None:
            parts = rest.split()
            current.rc = int(parts[1]) if len(parts) > 1 and \
                re.match(r"^-?\d+$", parts[1]) else -1
            if len(parts) > 2:
                current.seconds = float(parts[2])
            current = None
        elif kind == "fail":
            failures.append(rest)
        elif kind == "note":
            notes.append(rest)
        elif kind == "done":
            done = True
    return programs, failures, done, notes


TAP_LINE = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*-?\s*(.*)$")


class Tap:
    """Prints TAP lines numbered in one sequence; the plan comes last."""

    def __init__(self, out=sys.stdout):
        self.out = out
        self.n = self.passed = self.failed = self.skipped = 0

    def line(self, ok, desc):
        self.n += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", self.n, desc),
              file=self.out)
        if not ok:
            self.failed += 1
        elif "# SKIP" in desc:
            self.skipped += 1
        else:
            self.passed += 1

    def note(self, text):
        for l in text.splitlines():
            print("# " + l, file=self.out)

    def finish(self):
        print("1..%d" % self.n, file=self.out)
        self.out.flush()
        return 1 if self.failed else 0


def relay_program(tap, prog, tail=40):
    """Relays one guest program's TAP lines, prefixed with its name, by
    run.py's rules: no plan, a plan its lines do not match, or a non-zero
    exit without a failed test is one more failure."""
    plan, results = None, 0
    failed_any = False
    for l in prog.out:
        if l.startswith("1.."):
            m = re.match(r"^1\.\.(\d+)", l)
            plan = int(m.group(1)) if m else None
            continue
        m = TAP_LINE.match(l)
        if m:
            results += 1
            ok = m.group(1) == "ok"
            failed_any |= not ok
            tap.line(ok, "%s: %s" % (prog.name, m.group(3)))
        elif l.startswith("#"):
            print(l, file=tap.out)
    problem = None
    if prog.rc is None:
        problem = "%s did not finish (the guest stopped first)" % prog.name
    elif plan is None:
        problem = "%s printed no plan (exit status %d)" % (prog.name,
                                                          prog.rc)
    elif plan != results:
        problem = "%s planned %d tests and reported %d" % (prog.name, plan,
                                                          results)
    elif prog.rc != 0 and not failed_any:
        problem = "%s exited with status %d without reporting a failed " \
                  "test" % (prog.name, prog.rc)
    if problem:
        tap.line(False, problem)
    if problem or failed_any:
        tap.note("\n".join("stderr: " + l for l in prog.err[-tail:]))


def relay(tap, boot_result, expect=None):
    """Relays every guest program of a run, then checks the run itself:
    setup failures (/init's "fail" lines), programs in expect (a list of
    names) that never started, and a guest that did not reach "done"."""
    programs, failures, done, notes = parse_results(boot_result.results)
    for n in notes:
        tap.note("guest: " + n)
    for f in failures:
        tap.line(False, "guest setup: " + f)
    for p in programs:
        relay_program(tap, p)
    started = {p.name for p in programs}
    for name in expect or ():
        if name not in started:
            tap.line(False, "%s never started in the guest" % name)
    if not done:
        why = "timed out" if boot_result.status == "timeout" else \
            "stopped (QEMU exit code %s)" % boot_result.code
        tap.line(False, "the guest %s after %.0f s before finishing" %
                 (why, boot_result.seconds))
        tap.note("console (last lines):\n" +
                 "\n".join(boot_result.console.splitlines()[-40:]))
        if boot_result.stderr.strip():
            tap.note("qemu: " + boot_result.stderr.strip())
    return done


def skip_all(name, reason, out=sys.stdout):
    """The TAP of a guest test that cannot run here: one counted skip."""
    print("ok 1 - %s # SKIP %s" % (name, reason), file=out)
    print("1..1", file=out)
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "fetch-kernel":
        try:
            k = fetch_kernel(argv[2])
        except (Unavailable, OSError, subprocess.CalledProcessError) as e:
            print("rillvm: cannot fetch the kernel: %s" % e, file=sys.stderr)
            return 1
        print("rillvm: kernel %s in %s" % (k.version, k.root),
              file=sys.stderr)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
