"""Comparing a replay with its recording, and naming the cause of a difference.

Deterministic cases: per block, the list of result entries [(outcome, output)] and the
image count must equal the recorded ones, first exactly, then with the enabled
normalization rules applied to both sides' outputs. Transcript recordings compare outputs
with surrounding whitespace stripped (an output that strips to nothing is absent), which
is how they were recorded, not a rule. Non-deterministic cases compare by shape: outcome,
exception type, output present, image count.
"""

import difflib
import re

from conform import cases as C
from conform import normalize as N

# Fail causes, most specific first (README: "Causes").
CAUSE_REPLAY_ERROR = "replay error"
CAUSE_DEADLINE = "deadline"
CAUSE_LIMIT = "resource limit"
CAUSE_MISSING_LIBRARY = "missing library"
CAUSE_CHILD_PROCESS = "child process"
CAUSE_NETWORK = "network"
CAUSE_FIDELITY = "traceback fidelity"
CAUSE_PYTHON = "Python version"
CAUSE_LIBRARY_VERSION = "library version"
CAUSE_OLDER_BACKEND = "older backend behaviour"
CAUSE_NONDETERMINISM = "nondeterminism"
CAUSE_UNDOCUMENTED = "undocumented behaviour"

CHILD_PROCESS_CODE = re.compile(
    r"\b(?:subprocess\.|os\.system|os\.popen|os\.exec\w*|os\.spawn\w*|os\.fork|"
    r"pty\.spawn|multiprocessing|shutil\.which|Popen|check_output|getoutput)|^\s*!",
    re.M)
CHILD_PROCESS_ERROR = re.compile(
    r"_fork_exec|_execute_child|posix_spawn|"
    r"PermissionError: \[Errno 1\] Operation not permitted|"
    r"BlockingIOError: \[Errno 11\] Resource temporarily unavailable")
NETWORK_ERROR = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"No address associated with hostname|getaddrinfo failed|urlopen error|"
    r"Failed to establish a new connection|ConnectionError|gaierror")
MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")
LIBRARY_LINE = re.compile(r"site-packages|dist-packages|<site-packages>|\.pyx\"|Warning:")
PYTHON_VERSION_LINE = re.compile(r"python3\.\d+|Python 3\.\d+|/lib/python3")
LIBRARY_REPRS = re.compile(r"\bnp\.(?:float|int|bool|str)\w*\(|\bnp\.True_|\bnp\.False_")
VERSION_NOTE = re.compile(
    r"\b(?:numpy|pandas|matplotlib|sympy|scipy|sklearn|scikit-learn|seaborn|statsmodels|"
    r"pillow|PIL|altair)\s*(?:[<>=]=?|\d)|\bversion\b|numpy>=2|deprecat", re.I)
PYTHON_NOTE = re.compile(r"Python 3\.\d+|python3\.\d+", re.I)


def entries_text(entries, nimages):
    """A block as lines for a diff: each result entry's outcome and output, then the image
    count."""
    lines = []
    for outcome, output in entries:
        if output is None:
            lines.append(f"[{outcome}] (no output field)")
        else:
            lines.append(f"[{outcome}]")
            text = output.split("\n")
            if output.endswith("\n"):
                text.pop()
            else:
                text.append("\\ no newline at end of output")
            lines.extend(text)
    lines.append(f"[images: {nimages}]")
    return lines


def unified(want_lines, have_lines, case_id, block):
    return "".join(difflib.unified_diff(
        [l + "\n" for l in want_lines], [l + "\n" for l in have_lines],
        fromfile=f"recorded {case_id} block {block}",
        tofile=f"pyexecd {case_id} block {block}", n=3))


def _normalized_entries(want, have, rules):
    """Both entry lists with the rules applied pairwise where the outcomes line up."""
    w2, h2 = [], []
    for i in range(max(len(want), len(have))):
        wo, wt = want[i] if i < len(want) else (None, None)
        ho, ht = have[i] if i < len(have) else (None, None)
        wt, ht = N.apply(rules, wt, ht)
        if i < len(want):
            w2.append((wo, wt))
        if i < len(have):
            h2.append((ho, ht))
    return w2, h2


class Verdict:
    """The result of one case: verdict 'pass' / 'fail' / 'skip', how it matched
    ('exact', 'normalized', 'shape'), the rules a normalized match needed, a cause and
    detail for fails and skips, and one unified diff per differing block."""

    def __init__(self, case, verdict, match=None, cause=None, detail="", diffs=(),
                 rules_needed=(), seconds=None, fidelity=None, metadata=None):
        self.case = case
        self.verdict = verdict
        self.match = match
        self.cause = cause
        self.detail = detail
        self.diffs = list(diffs)
        self.rules_needed = list(rules_needed)
        self.seconds = seconds
        self.fidelity = fidelity
        self.metadata = metadata or []

    @property
    def diff(self):
        return "".join(self.diffs)


def compare_exact(case, got, rules):
    """(matched, [diff per differing block], rules needed) for a deterministic case."""
    def match_with(rs):
        for want, have in zip(case.blocks, got):
            we = C.normalise(want["entries"], case.transcript)
            he = C.normalise(have["entries"], case.transcript)
            we, he = _normalized_entries(we, he, rs)
            if we != he or want["images"] != have["images"]:
                return False
        return True

    if match_with(()):
        return True, [], []
    if rules and match_with(rules):
        needed = [r for r in rules if not match_with([x for x in rules if x != r])]
        return True, [], needed or list(rules)
    diffs = []
    for i, (want, have) in enumerate(zip(case.blocks, got)):
        we = C.normalise(want["entries"], case.transcript)
        he = C.normalise(have["entries"], case.transcript)
        we, he = _normalized_entries(we, he, rules)
        if we == he and want["images"] == have["images"]:
            continue
        diffs.append(unified(entries_text(we, want["images"]),
                             entries_text(he, have["images"]), case.id, i))
    return False, diffs, []


def shape_lines(s):
    return [f"outcome: {s['outcome']}", f"exception: {s['exception']}",
            f"output present: {s['output']}", f"images: {s['images']}"]


def compare_shape(case, got):
    """(matched, [diff per differing block]) by shape."""
    diffs = []
    for i, (want, have) in enumerate(zip(case.blocks, got)):
        ws = C.shape(C.normalise(want["entries"], case.transcript), want["images"])
        hs = C.shape(C.normalise(have["entries"], case.transcript), have["images"])
        if ws != hs:
            diffs.append(unified(shape_lines(ws), shape_lines(hs), case.id, i))
    return not diffs, diffs


def changed_lines(case, got, rules):
    """(recorded lines, replayed lines) that differ, after normalization."""
    removed, added = [], []
    for want, have in zip(case.blocks, got):
        we, he = _normalized_entries(C.normalise(want["entries"], case.transcript),
                                     C.normalise(have["entries"], case.transcript), rules)
        a = entries_text(we, want["images"])
        b = entries_text(he, have["images"])
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b).get_opcodes():
            if tag != "equal":
                removed.extend(a[i1:i2])
                added.extend(b[j1:j2])
    return removed, added


# Import names whose distribution (as /v1/environment lists libraries) is named otherwise.
DIST_OF_MODULE = {"cv2": "opencv-python-headless", "sklearn": "scikit-learn", "PIL": "pillow",
                  "pdfminer": "pdfminer.six", "docx": "python-docx", "pptx": "python-pptx",
                  "PyPDF2": "pypdf2", "fpdf": "fpdf2", "dateutil": "python-dateutil",
                  "yaml": "pyyaml", "google": "protobuf", "pylatex": "pylatex"}
DOCUMENTED_LIST_NAMES = {"vertex": "Vertex AI's", "geminiApi": "the Gemini API's"}


def _library_note(module, env):
    """'openpyxl (on the Gemini API's documented list)' when the server's GET
    /v1/environment documents the module's library, else the module name."""
    documented = (env or {}).get("documented")
    if not documented:
        return module
    top = module.split(".")[0]
    dist = DIST_OF_MODULE.get(top, top).lower().replace("_", "-")
    lists = documented.get(dist)
    if not lists:
        return f"{module} (on no documented list)"
    return f"{module} (on {' and '.join(DOCUMENTED_LIST_NAMES.get(l, l) for l in lists)} " \
           f"documented list{'s' * (len(lists) > 1)})"


# Backends before this date behaved otherwise in ways gemini-wire.md records: warnings in a
# successful block's output (2025-02), no image for plt.show() (2025-04).
OLDER_BACKEND_BEFORE = "2025-06"


def _older_backend(case, got):
    """A reason when the recording predates OLDER_BACKEND_BEFORE and every difference is
    an image count or the presence of output in a block that succeeded on both sides."""
    if not case.recorded_at or str(case.recorded_at)[:7] >= OLDER_BACKEND_BEFORE:
        return None
    kinds = set()
    for want, have in zip(case.blocks, got):
        ws = C.shape(C.normalise(want["entries"], case.transcript), want["images"])
        hs = C.shape(C.normalise(have["entries"], case.transcript), have["images"])
        for key in ws:
            if ws[key] != hs[key]:
                if key not in ("images", "output") or ws["outcome"] != "OUTCOME_OK" \
                        or hs["outcome"] != "OUTCOME_OK":
                    return None
                kinds.add(key)
    if not kinds:
        return None
    what = " and ".join(sorted({"images": "the image count", "output": "output presence"}[k]
                                for k in kinds))
    return (f"recorded {case.recorded_at}: {what} as backends before "
            f"{OLDER_BACKEND_BEFORE} gave (gemini-wire.md)")


def cause_of(case, got, env, rules, metadata=()):
    """(cause, detail) of a difference between a replay and its recording.
    env: {"modules": {module: importable here}} from the server probe (may be empty)."""
    codes = "\n".join(case.codes)
    recorded = "\n".join(t for t in case.recorded_outputs() if t)
    ours_entries = [e for b in got for e in b["entries"]]
    ours = "\n".join(t for _, t in ours_entries if t)
    limits = [m.get("limitReached") for m in metadata if m.get("limitReached")]
    if any(o == "OUTCOME_DEADLINE_EXCEEDED" for o, _ in ours_entries) or "DEADLINE" in limits:
        if "OUTCOME_DEADLINE_EXCEEDED" not in {o for b in case.blocks for o, _ in b["entries"]}:
            return CAUSE_DEADLINE, "a block hit the per-block deadline"
    if limits:
        return CAUSE_LIMIT, ", ".join(limits)
    modules = (env or {}).get("modules") or {}
    lacking = sorted(m for m in case.imports()
                     if modules.get(m) is False and not C.missing_module_in(
                         case.recorded_outputs(), m))
    ours_missing = sorted(set(MISSING_MODULE.findall(ours)) - set(MISSING_MODULE.findall(recorded)))
    if lacking or ours_missing:
        return CAUSE_MISSING_LIBRARY, ", ".join(
            _library_note(m, env) for m in (lacking or ours_missing))
    if CHILD_PROCESS_CODE.search(codes) and CHILD_PROCESS_ERROR.search(ours) \
            and not CHILD_PROCESS_ERROR.search(recorded):
        call = re.search(r"\b(?:subprocess|os|pty|shutil)\.\w+|multiprocessing|^\s*!\S*",
                         codes, re.M)
        return CAUSE_CHILD_PROCESS, (call.group(0).strip() if call else "") + \
            ": the policy forbids starting programs (the parity policy allows them)"
    if NETWORK_ERROR.search(ours) and not NETWORK_ERROR.search(recorded):
        return CAUSE_NETWORK, NETWORK_ERROR.search(ours).group(0) + ": the sandbox has no network"
    recorded_profile = C.fidelity_of(case.recorded_failed_outputs())
    our_profile = C.fidelity_of([t for o, t in ours_entries if o != "OUTCOME_OK"])
    if recorded_profile and our_profile and recorded_profile != our_profile:
        return CAUSE_FIDELITY, (f"recorded profile {recorded_profile}, the server answered "
                                f"{our_profile}: it did not honour {C.FIDELITY_HEADER}: "
                                f"{case.fidelity}")
    removed, added = changed_lines(case, got, rules)
    changed = removed + added
    if changed and all("/usr/bin/entry/" in l or "exec(code, exec_scope)" in l
                       or re.fullmatch(r"\s*\^+\s*", l) for l in changed):
        return CAUSE_FIDELITY, "the runner frame differs"
    if "SyntaxError" in ours and "SyntaxError" not in recorded:
        m = re.search(r"SyntaxError: (.*)", ours)
        return CAUSE_PYTHON, ("does not compile with this Python 3.11"
                              + (f" ({m.group(1).strip()})" if m else "")
                              + "; newer syntax (PEP 701 f-strings, 3.12)?")
    if any(PYTHON_VERSION_LINE.search(l) for l in changed) or PYTHON_NOTE.search(case.notes):
        return CAUSE_PYTHON, "traceback or message of another Python version"
    older = _older_backend(case, got)
    if older:
        return CAUSE_OLDER_BACKEND, older
    if any(LIBRARY_REPRS.search(l) for l in removed) != any(LIBRARY_REPRS.search(l)
                                                           for l in added):
        return CAUSE_LIBRARY_VERSION, ("numpy scalar reprs: np.float64(...) is numpy 2's, "
                                       "a bare number numpy 1's")
    if any(LIBRARY_LINE.search(l) for l in changed):
        return CAUSE_LIBRARY_VERSION, "library frames or warnings differ"
    if VERSION_NOTE.search(case.notes):
        return CAUSE_LIBRARY_VERSION, "the recording's notes name a library version"
    if not case.deterministic:
        return CAUSE_NONDETERMINISM, ("recorded as non-deterministic" if
                                      case.deterministic_source == "recorded" else
                                      case.nondeterminism or "inferred")
    reason = C.infer_nondeterminism(case.codes)
    if reason:
        return CAUSE_NONDETERMINISM, reason
    return CAUSE_UNDOCUMENTED, ""


def judge(case, got, env, rules, metadata=(), shape_only=False):
    """The Verdict of a replayed case. got: per_block's list."""
    if case.deterministic and not shape_only:
        ok, diffs, needed = compare_exact(case, got, rules)
        if ok:
            return Verdict(case, "pass", "normalized" if needed else "exact",
                           rules_needed=needed, metadata=metadata)
    else:
        ok, diffs = compare_shape(case, got)
        if ok:
            return Verdict(case, "pass", "shape", metadata=metadata)
    cause, detail = cause_of(case, got, env, rules, metadata)
    if case.deterministic and not shape_only and set(rules) != set(N.ALL):
        ok_all, _, needed = compare_exact(case, got, N.ALL)
        if ok_all:
            off = [r for r in needed if r not in rules]
            detail = ((detail + "; ") if detail else "") + \
                f"would pass with --normalize {','.join(off)}"
    return Verdict(case, "fail", "shape" if (not case.deterministic or shape_only) else "exact",
                   cause=cause, detail=detail, diffs=diffs, metadata=metadata)
