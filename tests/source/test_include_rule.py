"""The include rule (README, "Tour of the source"): the folders are the processes, and each
library has one owner.

- exactly one file includes each of microhttpd.h, seccomp.h, Python.h and curl.h, and
  cJSON.h is included by exactly its three wire-format files, one per format (the owners
  in OWNERS);
- server/ (the HTTP server process) includes nothing from sandbox/, and neither Python.h
  nor seccomp.h;
- sandbox/ (the zygote and its workers) includes nothing from server/, and neither
  microhttpd.h nor cJSON.h;
- common/ (what both processes read) includes nothing from either.

The checker is run on the real tree, and on small trees made here that break each rule
(so a checker that finds nothing cannot pass).

Run: python3 tests/source/test_include_rule.py -v
"""

import os
import re
import tempfile
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Library header -> the files (relative to the repository) that may include it, and
# must. cJSON has one owner per wire format: pyexecd's own API, the generateContent
# surface, and the chat completions the openai model speaks upstream.
OWNERS = {
    "microhttpd.h": ["server/http_server.c"],
    "cJSON.h": ["server/gemini_wire.c", "server/openai_wire.c", "server/wire.c"],
    "seccomp.h": ["sandbox/seccomp_filter.c"],
    "Python.h": ["sandbox/pyembed.c"],
    "curl.h": ["server/http_client.c"],
}
# The folders whose code is built into the binary (main.c at the top picks the role).
SOURCE_DIRS = ("server", "sandbox", "common")
FORBIDDEN = {
    # folder: (folders it must not include from, library headers it must not include)
    "server": ({"sandbox"}, {"Python.h", "seccomp.h"}),
    "sandbox": ({"server"}, {"microhttpd.h", "cJSON.h", "curl.h"}),
    "common": ({"server", "sandbox"}, {"microhttpd.h", "cJSON.h", "Python.h", "seccomp.h",
                                       "curl.h"}),
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def source_files(root):
    """Paths (relative to root) of the C files built into the binary."""
    found = [p for p in ("main.c",) if os.path.exists(os.path.join(root, p))]
    for d in SOURCE_DIRS:
        for dirpath, _, names in os.walk(os.path.join(root, d)):
            for n in names:
                if n.endswith((".c", ".h")):
                    found.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(found)


def includes(root, rel):
    """(kind, target) for each #include of a file: ("lib", basename) for <...>, ("file",
    path relative to root) for a quoted include that resolves inside the tree, ("lib",
    basename) for a quoted one that does not (a generated header)."""
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        text = f.read()
    out = []
    for delim, name in INCLUDE.findall(text):
        if delim == "<":
            out.append(("lib", os.path.basename(name)))
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(rel), name))
        if os.path.exists(os.path.join(root, path)):
            out.append(("file", path))
        else:
            out.append(("lib", os.path.basename(name)))
    return out


def violations(root):
    """Every breach of the rule in the tree at root, as readable strings."""
    problems = []
    users = {lib: [] for lib in OWNERS}
    for rel in source_files(root):
        folder = rel.split(os.sep)[0] if os.sep in rel else None
        banned_dirs, banned_libs = FORBIDDEN.get(folder, (set(), set()))
        for kind, target in includes(root, rel):
            if kind == "lib" and target in users:
                users[target].append(rel)
            if kind == "lib" and target in banned_libs:
                problems.append(f"{rel} includes {target}, which {folder}/ must not")
            if kind == "file" and target.split(os.sep)[0] in banned_dirs:
                problems.append(f"{rel} includes {target}: {folder}/ must not include "
                                f"from {target.split(os.sep)[0]}/")
    for lib, files in users.items():
        if sorted(files) != OWNERS[lib]:
            problems.append(f"{lib} must be included by exactly {', '.join(OWNERS[lib])}; "
                            f"included by {files or 'nobody'}")
    return problems


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class IncludeRuleTest(unittest.TestCase):
    def test_the_tree_keeps_the_rule(self):
        self.assertEqual(violations(REPO_ROOT), [])

    def test_the_owners_are_found(self):
        # The checker sees each owner's include, so "nobody includes it" cannot pass.
        for lib, owners in OWNERS.items():
            for owner in owners:
                self.assertIn(("lib", lib), includes(REPO_ROOT, owner), owner)

    def make_tree(self, root):
        """A tree that keeps the rule: each owner, a header in common/ both use."""
        write(root, "common/limits.h", "#define X 1\n")
        write(root, "server/http_server.c", '#include <microhttpd.h>\n#include "../common/limits.h"\n')
        for owner in OWNERS["cJSON.h"]:
            write(root, owner, "#include <cjson/cJSON.h>\n")
        write(root, "server/http_client.c", "#include <curl/curl.h>\n")
        write(root, "sandbox/seccomp_filter.c", "#include <seccomp.h>\n")
        write(root, "sandbox/pyembed.c", '#define PY_SSIZE_T_CLEAN\n#include <Python.h>\n')
        write(root, "main.c", '#include "server/wire.h"\n')

    def test_a_clean_tree_passes(self):
        with tempfile.TemporaryDirectory() as root:
            self.make_tree(root)
            self.assertEqual(violations(root), [])

    def test_each_breach_is_found(self):
        breaches = {
            "server/routes.c": '#include "../sandbox/policy.h"\n',
            "server/exec.c": "#include <Python.h>\n",
            "sandbox/zygote.c": '#include "../server/wire.h"\n',
            "sandbox/json.c": "#include <cjson/cJSON.h>\n",
            "server/model_echo.c": "#include <cjson/cJSON.h>\n",
            "sandbox/fetch.c": "#include <curl/curl.h>\n",
            "common/ipc.c": '#include "../server/http_server.h"\n',
        }
        for rel, text in breaches.items():
            with self.subTest(rel), tempfile.TemporaryDirectory() as root:
                self.make_tree(root)
                write(root, "server/wire.h", "\n")
                write(root, "sandbox/policy.h", "\n")
                write(root, "server/http_server.h", "\n")
                write(root, rel, text)
                found = violations(root)
                self.assertTrue(any(rel in p for p in found), found)

    def test_a_missing_owner_is_found(self):
        with tempfile.TemporaryDirectory() as root:
            self.make_tree(root)
            os.remove(os.path.join(root, "sandbox/seccomp_filter.c"))
            self.assertIn("seccomp.h must be included by exactly sandbox/seccomp_filter.c; "
                          "included by nobody", violations(root))


if __name__ == "__main__":
    unittest.main()
