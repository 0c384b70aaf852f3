"""The normalization rules: differences between a recording and a replay that say nothing
about the emulation, each one switchable (--no-normalize RULE, --normalize RULE).

A rule takes the recorded text and the replayed text and returns both rewritten; most
rewrite each side on its own, float-noise looks at both. Rules are applied in the order of
RULES to the `output` of each result entry; outcomes and image counts are never
normalized.
"""

import re

# --- addresses -------------------------------------------------------------------------

# A 64-bit object address as repr() prints it (`<Foo object at 0x7f3a9c2b1d50>`): 0x and
# 9 to 16 hex digits. Shorter hex numbers (0xff, 0xdeadbeef) are left alone.
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{9,16}\b")


def _addresses(text):
    return ADDRESS.sub("0x…", text)


# --- trailing whitespace ---------------------------------------------------------------

TRAILING = re.compile(r"[ \t]+(?=\r?\n|$)")


def _trailing_whitespace(text):
    return TRAILING.sub("", text)


# --- the runner frame's line number ----------------------------------------------------

# The real service's runner frames all live under /usr/bin/entry/ (the current
# named_interpreters/python/interpreter, the 2025 entry_point); their line number changed
# from build to build (entry_point: 109, then 117).
RUNNER_LINE = re.compile(r'(File "/usr/bin/entry/[^"]*", line )\d+')


def _runner_line(text):
    return RUNNER_LINE.sub(r"\1N", text)


# --- library paths and versions in tracebacks ------------------------------------------

# Where libraries live differs by installation and Python version:
# /usr/local/lib/python3.12/site-packages/ there, /opt/pyexecd/venv/lib/python3.11/
# site-packages/ here; the standard library under /usr/local/lib/python3.12/ or
# /usr/lib/python3.11/.
SITE_PACKAGES = re.compile(r"(?:/[^\s\"':,()]+)?/(?:site|dist)-packages/")
STDLIB = re.compile(r"(?:/[^\s\"':,()]+)?/lib(?:64)?/python3(?:\.\d+)?/")
# A frame in a library (after the prefixes above were replaced) or in a compiled
# extension's source (pandas/_libs/index.pyx), whose line numbers change with the
# library's version.
LIBRARY_FRAME = re.compile(
    r'^(\s*File "(?:<site-packages>|<stdlib>)/[^"]*"|\s*File "[^"<>/][^"]*\.(?:pyx|pxi|pxd)"),'
    r" line \d+")
# A warning printed with its library file and line: `.../seaborn/_base.py:948: FutureWarning`.
LIBRARY_WARNING = re.compile(r"((?:<site-packages>|<stdlib>)/[^\s:]+\.py):\d+:")
CARETS = re.compile(r"^\s*[\^~]+\s*$")
VERSION_DIR = re.compile(r"\bpython3\.\d+\b")


def _library_paths(text):
    text = SITE_PACKAGES.sub("<site-packages>/", text)
    text = STDLIB.sub("<stdlib>/", text)
    text = VERSION_DIR.sub("python3.X", text)
    text = LIBRARY_WARNING.sub(r"\1:N:", text)
    out, in_library_frame, after_source = [], False, False
    for line in text.split("\n"):
        m = LIBRARY_FRAME.match(line)
        if m:
            out.append(m.group(1) + ", line N" + line[m.end():])
            in_library_frame, after_source = True, False
            continue
        if in_library_frame and not after_source and line.startswith("    "):
            out.append(line)        # the frame's source line
            after_source = True
            continue
        if in_library_frame and after_source and CARETS.match(line):
            continue                # 3.11 and 3.12 mark different spans under library lines
        in_library_frame = after_source = False
        out.append(line)
    return "\n".join(out)


# --- float noise -----------------------------------------------------------------------

FLOAT = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
                   r"|\d+[eE][-+]?\d+)(?![\w]|\.\d)")
# Two printed floats are the same number when they differ by at most this much relative to
# the larger (the last few of 17 significant digits), or both are this close to zero.
FLOAT_REL = 1e-9
FLOAT_ABS = 1e-12


def _same_float(a, b):
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if x == y:
        return True
    return abs(x - y) <= max(FLOAT_REL * max(abs(x), abs(y)), FLOAT_ABS)


def _float_line(want, have):
    """have rewritten to want when the two lines differ only in float noise."""
    wp, hp = FLOAT.split(want), FLOAT.split(have)
    wf, hf = FLOAT.findall(want), FLOAT.findall(have)
    if len(wf) != len(hf) or wp != hp or not wf:
        return have
    if all(_same_float(a, b) for a, b in zip(wf, hf)):
        return want
    return have


def _float_noise(want, have):
    if want == have:
        return want, have
    wl, hl = want.split("\n"), have.split("\n")
    if len(wl) != len(hl):
        return want, have
    return want, "\n".join(w if w == h else _float_line(w, h) for w, h in zip(wl, hl))


def _each(fn):
    return lambda want, have: (fn(want), fn(have))


# name -> (function (recorded, replayed) -> (recorded, replayed), one-line description)
RULES = {
    "library-paths": (_each(_library_paths),
                      "library and standard-library paths in tracebacks and warnings "
                      "(site-packages, /usr/local/lib/python3.12/ vs /usr/lib/python3.11/), "
                      "the python3.N in them, the line numbers of library frames and the "
                      "caret lines under library source lines"),
    "runner-line": (_each(_runner_line),
                    "the line number of the service's runner frame "
                    "(File \"/usr/bin/entry/...\", line 98 / 109 / 117)"),
    "addresses": (_each(_addresses),
                  "object addresses (at 0x7f3a9c2b1d50: 0x and 9-16 hex digits)"),
    "trailing-whitespace": (_each(_trailing_whitespace),
                            "spaces and tabs at the end of a line"),
    "float-noise": (_float_noise,
                    "floats that differ only in their last digits (relative difference "
                    f"at most {FLOAT_REL:g}, or both within {FLOAT_ABS:g} of zero), line by "
                    "line where the rest of the line is equal"),
}
ALL = tuple(RULES)


def apply(rules, want, have):
    """(recorded, replayed) texts with the given rules applied, in RULES order. None (no
    output field) stays None."""
    if want is None or have is None:
        return want, have
    for name in ALL:
        if name in rules:
            want, have = RULES[name][0](want, have)
    return want, have


def describe():
    """Lines for --help and the README: each rule and what it ignores."""
    return [f"{name}: {desc}" for name, (_, desc) in RULES.items()]
