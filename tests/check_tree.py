#!/usr/bin/env python3
"""The shape of the tree, checked (TAP): what doc/architecture.md promises.

- no source file in src/ over 1,000 lines, no function in src/ over 100;
- no include cycle between the project's files;
- the CLI (cli/, and bench/ for `rill bench`) includes only the public
  headers (include/) and its own (the build enforces it too: the rill
  executable links the shared library, which exports only the public API);
- no layer (src/layer/) includes a transport's header;
- src/uri.c (the scheme registry) includes no transport's or layer's
  header, and src/core/ nothing outside itself and include/;
- none of strcpy, strcat, sprintf, vsprintf, gets in src/ or cli/.

Usage: check_tree.py [ROOT]. Each check prints what broke it.
"""
import os
import re
import sys

MAX_FILE_LINES = 1000
MAX_FUNC_LINES = 100
BANNED = re.compile(r"\b(strcpy|strcat|sprintf|vsprintf|gets)\s*\(")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# A function definition in the house style starts with "{" alone in
# column 0 after its signature and ends with "}" alone in column 0.
SIGNATURE_NAME = re.compile(r"([A-Za-z_]\w*)\s*\(")

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), ".."))
results = []


def check(name, problems):
    results.append((name, problems))


def sources(*dirs, exts=(".c", ".h")):
    for d in dirs:
        for dirpath, dirnames, files in os.walk(os.path.join(root, d)):
            dirnames[:] = [x for x in dirnames if not x.startswith("build")]
            for f in sorted(files):
                if f.endswith(exts):
                    yield os.path.relpath(os.path.join(dirpath, f), root)


def read(rel):
    with open(os.path.join(root, rel), errors="replace") as fh:
        return fh.read()


def strip_comments(text):
    """Blanks comments and string literals, keeping the line breaks."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|'
                  r"'(?:\\.|[^'\\\n])*'", blank, text, flags=re.S)


def functions(text):
    """Yields (name, first line, number of lines) of each definition."""
    lines = text.split("\n")
    start = None
    for i, line in enumerate(lines):
        if line == "{":
            start = i
        elif start is not None and line in ("}", "};"):
            sig = " ".join(lines[max(0, start - 4):start])
            names = SIGNATURE_NAME.findall(sig)
            name = names[0] if names else "?"
            yield name, start + 1, i - start + 1
            start = None


# 1. File and function sizes in src/.
big_files, big_funcs = [], []
for rel in sources("src"):
    text = read(rel)
    n = text.count("\n")
    if n > MAX_FILE_LINES:
        big_files.append("%s: %d lines" % (rel, n))
    for name, line, size in functions(text):
        if size > MAX_FUNC_LINES:
            big_funcs.append("%s:%d: %s() has %d lines" %
                             (rel, line, name, size))
check("no source file in src/ over %d lines" % MAX_FILE_LINES, big_files)
check("no function in src/ over %d lines" % MAX_FUNC_LINES, big_funcs)

# 2. Include graph over every project file.
INCLUDE_DIRS = ["include", "src"]
all_files = list(sources("src", "include", "cli", "bench", "tests",
                         "examples", "fuzz"))
known = set(all_files)


def resolve(rel, name):
    here = os.path.dirname(rel)
    for d in [here] + INCLUDE_DIRS:
        cand = os.path.normpath(os.path.join(d, name))
        if cand in known:
            return cand
    return None


graph = {}
for rel in all_files:
    text = read(rel)
    graph[rel] = [r for r in (resolve(rel, m) for m in INCLUDE.findall(text))
                  if r is not None]

cycles = []
state = {}


def visit(node, stack):
    state[node] = 1
    stack.append(node)
    for nxt in graph.get(node, []):
        if state.get(nxt) == 1:
            cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
        elif nxt not in state:
            visit(nxt, stack)
    stack.pop()
    state[node] = 2


for f in sorted(graph):
    if f not in state:
        visit(f, [])
check("no include cycle between files", cycles)

# 3. The CLI sees only the public headers and its own.
cli_bad = []
for rel in list(sources("cli")) + list(sources("bench")):
    for target in graph.get(rel, []):
        if not target.startswith(("include/", "cli/", "bench/")):
            cli_bad.append("%s includes %s" % (rel, target))
check("the CLI and rill bench include only public headers (include/) "
      "and their own", cli_bad)

# 4. Layers point down only through the flow API.
layer_bad = []
for rel in sources("src/layer"):
    for target in graph.get(rel, []):
        if target.startswith("src/transport/"):
            layer_bad.append("%s includes %s" % (rel, target))
check("no layer includes a transport header", layer_bad)

# 5. Addressing points one way: the registry above the schemes, and the
# scheme interface (core) below them.
uri_bad = []
for rel in ["src/uri.c", "src/schemes.h"]:
    for target in graph.get(rel, []):
        if target.startswith(("src/transport/", "src/layer/")):
            uri_bad.append("%s includes %s" % (rel, target))
for rel in sources("src/core"):
    for target in graph.get(rel, []):
        if not target.startswith(("src/core/", "include/")):
            uri_bad.append("%s (core) includes %s" % (rel, target))
check("the URI registry includes no transport or layer header, and the "
      "core nothing above it", uri_bad)

# 6. Unbounded string functions.
banned = []
for rel in sources("src", "cli"):
    code = strip_comments(read(rel))
    for i, line in enumerate(code.split("\n")):
        m = BANNED.search(line)
        if m:
            banned.append("%s:%d: %s" % (rel, i + 1, m.group(1)))
check("no strcpy, strcat, sprintf, vsprintf or gets in src/ and cli/",
      banned)

print("1..%d" % len(results))
for i, (name, problems) in enumerate(results, 1):
    print("%s %d - %s" % ("not ok" if problems else "ok", i, name))
    for p in problems:
        print("#   " + p)
sys.exit(0)
