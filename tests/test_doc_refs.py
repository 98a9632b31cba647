#!/usr/bin/env python3
"""Every document the tree cites is in the tree (TAP).

Scans the sources, headers, tests, scripts, build files and documents
(src/, include/, cli/, bench/, tests/, fuzz/ but its corpus, examples/,
scripts/, doc/, .ci/ and the top-level files) for the documents they name:

1. a Markdown file: a name ending in ".md", with or without folders in
   front (the README, the contract under doc/, a name relative to the
   citing file's folder);
2. a path under doc/ (the man pages' folder, doc/man/rill.1).

Each must name a file or folder of the tree, taken from the top of the
repository or from the citing file's own folder. A name after `$` (a
shell variable's folder) and a part of a URL are not references. The
few names that cite another project's documents are listed in EXTERNAL
with the project they belong to.

Usage: test_doc_refs.py [ROOT]. Prints each reference that names
nothing, with the file and line that cites it.
"""
import os
import re
import sys

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), ".."))

# Documents of other projects that the tree cites by their own path.
EXTERNAL = {
    "doc/proxy-protocol.txt": "HAProxy's sources (the PROXY protocol)",
}

SCAN_DIRS = ["src", "include", "cli", "bench", "tests", "fuzz", "examples",
             "scripts", "doc", ".ci"]
SKIP_DIRS = {"fuzz/corpus", ".git"}
TEXT_EXT = (".c", ".h", ".py", ".sh", ".md", ".build", ".txt", ".yml",
            ".yaml", ".1", ".3", ".in", ".json", ".options")
# A name starts after a character that cannot be part of a path (so that
# "$SRC/README.md" and "https://host/x.md" give no reference).
START = r"(?<![\w./$:~-])"
MD_REF = re.compile(START + r"((?:\.\./|\./)*[\w.-]*[\w-](?:/[\w.-]+)*\.md)"
                    r"(?![\w-])")
DOC_REF = re.compile(START + r"((?:\.\./|\./)*doc/[\w./-]*[\w/-])")


def files():
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            yield name
    for d in SCAN_DIRS:
        for dirpath, dirnames, names in os.walk(os.path.join(root, d)):
            rel_dir = os.path.relpath(dirpath, root)
            dirnames[:] = sorted(
                x for x in dirnames
                if not x.startswith("build")
                and os.path.join(rel_dir, x) not in SKIP_DIRS)
            for n in sorted(names):
                rel = os.path.join(rel_dir, n)
                if n.endswith(TEXT_EXT) or n in ("meson.build", "Makefile"):
                    yield rel


def exists(rel, ref):
    ref = ref.rstrip("/")
    for base in ("", os.path.dirname(rel)):
        cand = os.path.normpath(os.path.join(base, ref))
        if not cand.startswith("..") and \
                os.path.exists(os.path.join(root, cand)):
            return True
    return False


problems = []
count = 0
for rel in files():
    try:
        with open(os.path.join(root, rel), encoding="utf-8") as fh:
            text = fh.read()
    except (UnicodeDecodeError, OSError):
        continue
    for i, line in enumerate(text.split("\n"), 1):
        refs = [m.group(1) for m in MD_REF.finditer(line)]
        refs += [m.group(1).rstrip(".") for m in DOC_REF.finditer(line)]
        for ref in refs:
            count += 1
            if ref in EXTERNAL or exists(rel, ref):
                continue
            problems.append("%s:%d: %s" % (rel, i, ref))

print("1..2")
if count > 0:
    print("ok 1 - found %d references to documents" % count)
else:
    print("not ok 1 - found no reference to any document (is %s the "
          "tree?)" % root)
if problems:
    print("not ok 2 - %d references to documents that are not in the tree:"
          % len(problems))
    for p in sorted(set(problems)):
        print("#   " + p)
else:
    print("ok 2 - every document the tree cites is in the tree")
