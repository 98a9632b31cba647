#!/usr/bin/env python3
"""The shape of the tree, checked (TAP): what doc/architecture.md promises.

- no source file in src/, cli/ or bench/ over 1,000 lines, no function
  there over 100;
- no include cycle between the project's files;
- no call circle between two files of src/: when a.c uses a function
  b.c defines (internal rill__ or public rill_), b.c uses none that a.c
  defines;
- the CLI (cli/, and bench/ for `rill bench`) includes only the public
  headers (include/) and its own, bench/ not cli/'s (the build enforces
  it too: the rill executable links the shared library, which exports
  only the public API);
- no layer (src/layer/) includes a transport's header;
- src/uri.c (the scheme registry) includes no transport's or layer's
  header, and src/core/ nothing outside itself and include/;
- none of strcpy, strcat, sprintf, vsprintf, gets in src/ or cli/;
- no file includes a .c file (a fuzz target links the library, or
  compiles the sources it covers beside itself: fuzz/meson.build);
- no code outside src/core/ reads or writes a private field of struct
  rill_flow (the ones include/rill/impl.h marks "private").

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


# 1. File and function sizes in src/, cli/ and bench/.
big_files, big_funcs = [], []
for rel in sources("src", "cli", "bench"):
    text = read(rel)
    n = text.count("\n")
    if n > MAX_FILE_LINES:
        big_files.append("%s: %d lines" % (rel, n))
    for name, line, size in functions(text):
        if size > MAX_FUNC_LINES:
            big_funcs.append("%s:%d: %s() has %d lines" %
                             (rel, line, name, size))
check("no source file in src/, cli/ or bench/ over %d lines" %
      MAX_FILE_LINES, big_files)
check("no function in src/, cli/ or bench/ over %d lines" % MAX_FUNC_LINES,
      big_funcs)

# 2. Include graph over every project file.
# The library's include roots, then the rill executable's (meson.build:
# cli/ and bench/ are both on its path, so bench/ could reach cli.h).
INCLUDE_DIRS = ["include", "src", "cli", "bench"]
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

# 2b. Call circles between two files: a.c uses (calls, or takes the
# address of) a non-static rill__ or rill_ function that b.c defines, and
# b.c one that a.c defines (a struct tag of the same name is not a use). Functions in one folder call each other one way too:
# a driver that calls up into its user gets a role table instead.
DEFINITION = re.compile(r"^(?!static\b)[A-Za-z_][\w\s*]*?\b(rill_\w+)\s*"
                        r"\([^;{}]*?\)\s*\n\{", re.M)
RILL_NAME = re.compile(r"(?<!struct )\b(rill_\w+)\b")
c_code = {rel: strip_comments(read(rel)) for rel in sources("src",
                                                             exts=(".c",))}
defined_in = {}
for rel, code in c_code.items():
    for name in DEFINITION.findall(code):
        defined_in[name] = rel
uses = {}
for rel, code in c_code.items():
    uses[rel] = {}
    for name in RILL_NAME.findall(code):
        home = defined_in.get(name)
        if home is not None and home != rel:
            uses[rel].setdefault(home, name)
circles = []
for a in sorted(uses):
    for b, name in sorted(uses[a].items()):
        if a < b and a in uses.get(b, {}):
            circles.append("%s uses %s() of %s, which uses %s() of %s" %
                           (a, name, b, uses[b][a], a))
check("no call circle between two files in src/", circles)

# 3. The CLI sees only the public headers and its own.
cli_bad = []
for rel in list(sources("cli")) + list(sources("bench")):
    own = rel.split("/")[0] + "/"
    for target in graph.get(rel, []):
        if not target.startswith(("include/", own)):
            cli_bad.append("%s includes %s" % (rel, target))
check("the CLI and rill bench include only public headers (include/) "
      "and their own (bench/ not the CLI's either)", cli_bad)

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

# 6b. Sources are compiled, not included: a fuzz target reaches the code
# it tests through its header (fuzz_cover in fuzz/meson.build compiles
# the source beside the target for libFuzzer's coverage).
c_includes = []
for rel in all_files:
    for i, line in enumerate(read(rel).split("\n")):
        m = INCLUDE.match(line)
        if m and m.group(1).endswith(".c"):
            c_includes.append("%s:%d: includes %s" % (rel, i + 1, m.group(1)))
check("no file includes a .c file (fuzz targets included)", c_includes)

# 7. The core's private fields of struct rill_flow stay in src/core/.
# impl.h lists them after a comment that says "private"; an access is
# NAME->field or NAME.field where NAME was declared in the file, or in a
# header it includes, as a `struct rill_flow *` (parameter, variable,
# member) or as an embedded `struct rill_flow` (a flow's base).


def private_fields():
    text = read("include/rill/impl.h")
    m = re.search(r"struct rill_flow \{(.*?)\n\};", text, re.S)
    body = m.group(1) if m else ""
    at = body.find("private")
    names = set()
    for decl in body[at:].split(";") if at >= 0 else []:
        decl = re.sub(r"/\*.*?\*/", " ", decl, flags=re.S)
        names.update(re.findall(r"(\w+)\s*(?:\[[^]]*\]\s*)?(?:,|$)",
                                decl.strip()))
    return names


# "struct rill_flow *a" and the names after it in a list ("*a, *b").
PTR_DECL = re.compile(r"\bstruct\s+rill_flow\s*\*\s*(?:const\s+)?(\w+)"
                      r"((?:\s*(?:\[[^]]*\])?\s*,\s*\*\s*(?:const\s+)?\w+)*)")
PTR_MORE = re.compile(r",\s*\*\s*(?:const\s+)?(\w+)")


def pointer_names(code):
    names = set()
    for first, more in PTR_DECL.findall(code):
        names.add(first)
        names.update(PTR_MORE.findall(more))
    return names
BASE_DECL = re.compile(r"\bstruct\s+rill_flow\s+(\w+)\s*[;,)]")


_direct_names = {}


def direct_flow_names(rel):
    if rel not in _direct_names:
        code = strip_comments(read(rel))
        _direct_names[rel] = (pointer_names(code),
                              set(BASE_DECL.findall(code)))
    return _direct_names[rel]


def flow_names(rel):
    """Names declared as flow pointers and as embedded flows in rel and
    in the headers it includes."""
    ptrs, bases, seen, todo = set(), set(), set(), [rel]
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.add(cur)
        p, b = direct_flow_names(cur)
        ptrs |= p
        bases |= b
        todo.extend(graph.get(cur, []))
    return ptrs, bases


PRIVATE = private_fields()
private_bad = []
if not PRIVATE:
    private_bad.append("include/rill/impl.h: no private field of struct "
                       "rill_flow found (has the comment moved?)")
access = re.compile(r"\b(\w+)\s*(->|\.)\s*(%s)\b" %
                    "|".join(sorted(PRIVATE)))
for rel in all_files:
    if rel.startswith("src/core/") or rel == "include/rill/impl.h":
        continue
    code = strip_comments(read(rel))
    ptrs, bases = flow_names(rel)
    for i, line in enumerate(code.split("\n")):
        for m in access.finditer(line):
            name, op, field = m.groups()
            if (op == "->" and name in ptrs) or (op == "." and name in bases):
                private_bad.append("%s:%d: %s%s%s" %
                                   (rel, i + 1, name, op, field))
check("no access to a core-private field of struct rill_flow outside "
      "src/core/", private_bad)

print("1..%d" % len(results))
for i, (name, problems) in enumerate(results, 1):
    print("%s %d - %s" % ("not ok" if problems else "ok", i, name))
    for p in problems:
        print("#   " + p)
sys.exit(0)
