"""Replays executions recorded from the real Gemini code-execution service against pyexecd
and compares what comes back (the corpus in corpus/ next to this file, its fields described
in corpus/README.md and at the end of docs/gemini-wire.md; what is compared and why:
README.md next to this file).

- test_1: every deterministic turn of gemini_turns.jsonl that needs no unavailable input
  file, all its blocks in ONE request (one interpreter): outcome, output and image count of
  every block must be the recorded ones.
- test_2: every deterministic block of gemini_recorded.jsonl that stands alone (uses no name
  that only an earlier block of its turn defined, reads no input file): the same.
- test_3: the non-deterministic cases, by shape only (outcome, exception type, presence of
  output, image count). Differences are reported; only an outcome difference of a case that
  needs no unavailable file, no library or name we lack, fails.
- test_5: the turns whose input files the recordings describe but do not hold (housing
  CSVs, a photo), replayed with stand-ins of the same names, columns and sizes
  (synthetic_inputs.py): the shape of every block must be the recorded one, image counts
  included, except the differences listed in KNOWN_STAND_IN_DIFFERENCES.

One server for the whole file. Each case is a subTest named by its turn_id / id. A summary
table is printed at the end.

Run: PYEXECD_BIN=build/pyexecd python3 tests/conformance/test_replay.py -v
"""

import ast
import base64
import builtins
import json
import os
import re
import sys
import textwrap
import unittest
from collections import defaultdict

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "integration"))

from harness import Server, code_part, images, results  # noqa: E402
from synthetic_inputs import stand_in  # noqa: E402

DATA_DIR = os.path.join(REPO_ROOT, "tests", "conformance", "corpus")
TURNS_FILE = "gemini_turns.jsonl"
SINGLES_FILE = "gemini_recorded.jsonl"

# Deterministic cases that are compared but cannot match, {case_id: reason}. Each entry must
# name the concrete difference observed; test_1/test_2 assert that a listed case still
# differs, so a case that starts matching must be removed from here. Empty: with the
# exclusions below, every compared deterministic case matches exactly.
KNOWN_DIFFERENCES = {}

# Shape differences of turns replayed with stand-in input files (test_5), {"turn block N
# key": reason}. All three are older backends behaving otherwise than current ones (the
# behaviour gemini-wire.md describes and pyexecd follows). A listed difference that stops
# differing fails the test, so the list stays true.
KNOWN_STAND_IN_DIFFERENCES = {
    "t-0061 block 1 output": "2025-02 backend returned stderr warnings on success; current "
                             "recordings do not (gemini-wire.md)",
    "t-0080 block 1 images": "2025-04 backend returned no image for plt.show() (t-0081 too); "
                             "earlier and later ones return the shown figure",
    "t-0081 block 1 images": "2025-04 backend returned no image for plt.show(); earlier and "
                             "later ones return the shown figure",
}

# Per-block deadline of the replay server (see setUpClass).
REPLAY_DEADLINE_MS = 120000

# Seconds per replay request: the slowest recorded turn (t-0162, a sympy session of 11
# blocks) takes about 26 s here; each block has its own 30 s deadline.
REQUEST_TIMEOUT = 600

MODULE_GLOBALS = {"__name__", "__doc__", "__builtins__", "__file__", "__spec__", "__loader__",
                  "__package__", "__annotations__", "__cached__"}
BUILTIN_NAMES = set(dir(builtins))


# --- reading the recordings -------------------------------------------------------------

def load_jsonl(name):
    with open(os.path.join(DATA_DIR, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def code_names(code):
    """(bound, loaded, imports) of one code block: the names it binds (in any scope), the
    names it reads, the top-level modules it imports. bound is None when it cannot be known
    (a star import, or code that does not parse)."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return None, set(), set()
    bound, loaded, imports, star = set(), set(), set(), False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
                imports.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    star = True
                else:
                    bound.add(alias.asname or alias.name)
            if node.level == 0 and node.module:
                imports.add(node.module.split(".")[0])
    return (None if star else bound), loaded, imports


def recorded_name_errors(outputs):
    """Names the recorded outputs say were not defined: those failures are the recording."""
    found = set()
    for text in outputs:
        if text:
            found.update(re.findall(r"NameError: name '(\w+)' is not defined", text))
    return found


def missing_module_in(outputs, module):
    return any(text and f"No module named '{module}'" in text for text in outputs)


def exception_type(text):
    """The exception class named on the last line of a traceback, or None."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return None
    m = re.match(r"([A-Za-z_][\w.]*)(?::|$)", lines[-1])
    return m.group(1) if m else None


class Case:
    """One replay: an id, the code blocks sent in one request, and per block the expected
    result entries [(outcome, output or None)] and image count."""

    def __init__(self, case_id, source_file, deterministic, transcript, blocks, notes,
                 input_files, input_specs=()):
        self.id = case_id
        self.source_file = source_file
        self.deterministic = deterministic
        self.transcript = transcript   # compare with surrounding whitespace stripped
        self.blocks = blocks           # [{"code", "entries", "images"}]
        self.notes = notes or ""
        self.input_files = input_files  # names of the files the user uploaded
        self.input_specs = list(input_specs)  # their descriptions: name, mime, origin

    @property
    def codes(self):
        return [b["code"] for b in self.blocks]

    def recorded_outputs(self):
        return [out for b in self.blocks for _, out in b["entries"]]

    def input_file_reason(self):
        """(category, detail) when the case needs a file we cannot supply, else None."""
        category = "needs a user-uploaded input file the recordings do not hold"
        if self.input_files:   # available: false (not public) or true: no content either way
            return category, self.input_files[0]
        for text in self.codes + [self.notes]:
            m = re.search(r"input_file_\d+\.\w+", text)
            if m:
                return category, m.group(0)
        if "FILE INPUT" in self.notes:
            return category, "notes: FILE INPUT"
        return None

    def free_names(self):
        """Names the case reads that none of its blocks binds and that are no builtins,
        less those whose NameError is itself the recorded result. None when unknown."""
        bound, loaded = set(), set()
        for code in self.codes:
            b, l, _ = code_names(code)
            if b is None:
                return None
            bound |= b
            loaded |= l
        return (loaded - bound - BUILTIN_NAMES - MODULE_GLOBALS
                - recorded_name_errors(self.recorded_outputs()))

    def imports(self):
        return set().union(*(code_names(code)[2] for code in self.codes))


def turn_cases(rows):
    cases = []
    for row in rows:
        blocks = []
        for b in row["blocks"]:
            if b.get("result_part") is False:
                # 2025 shape: no result part for a block that printed nothing.
                entries = [("OUTCOME_OK", None)]
            elif "result_parts" in b:
                # A block that printed, then raised: stdout OK, then FAILED.
                entries = [(p["outcome"], p["output"]) for p in b["result_parts"]]
            else:
                entries = [(b["outcome"], b["output"])]
            blocks.append({"code": b["code"], "entries": entries, "images": b["images"]})
        files = [f.get("name", "?") for f in row["input_files"] or []]
        cases.append(Case(row["turn_id"], TURNS_FILE, row["deterministic"],
                          row["recorded"] == "transcript", blocks, row.get("notes"), files,
                          row["input_files"] or []))
    return cases


def single_cases(rows):
    """One case per block; two consecutive entries with the same code, the first OK and the
    second FAILED, are the two result parts of one split execution (pub-086/pub-087) and are
    replayed as one case named "first+second"."""
    cases, i = [], 0
    while i < len(rows):
        row = rows[i]
        entries = [(row["outcome"], None if row["output_absent"] else row["output"])]
        case_id, notes = row["id"], row.get("notes") or ""
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if (nxt and nxt["code"] == row["code"] and row["outcome"] == "OUTCOME_OK"
                and nxt["outcome"] == "OUTCOME_FAILED"
                and nxt["deterministic"] == row["deterministic"]):
            entries.append((nxt["outcome"], None if nxt["output_absent"] else nxt["output"]))
            case_id += "+" + nxt["id"]
            notes += " " + (nxt.get("notes") or "")
            i += 1
        i += 1
        blocks = [{"code": row["code"], "entries": entries, "images": row.get("images", 0)}]
        # Transcribed from a UI or markdown export: the exporter strips surrounding whitespace.
        transcript = row.get("wire", "").startswith("transcribed")
        cases.append(Case(case_id, SINGLES_FILE, row["deterministic"], transcript, blocks,
                          notes, []))
    return cases


# --- replaying ---------------------------------------------------------------------------

def per_block(body, nblocks):
    """Splits a reply into one part list per code block: each executableCode part starts a
    block; its result(s) and images follow it."""
    groups = []
    for part in body.get("parts", []):
        if "executableCode" in part:
            groups.append([])
        elif groups:
            groups[-1].append(part)
    if len(groups) != nblocks:
        raise AssertionError(f"reply has {len(groups)} code parts for {nblocks} blocks: "
                             f"{json.dumps(body)[:2000]}")
    return [{"entries": [(r.get("outcome"), r.get("output")) for r in results({"parts": g})],
             "images": len(images({"parts": g}))} for g in groups]


def normalise(entries, transcript):
    if not transcript:
        return entries
    out = []
    for outcome, text in entries:
        text = text.strip() if text is not None else None
        out.append((outcome, text or None))   # an empty section shows as no section
    return out


def text_differences(case, got):
    """Human-readable differences between the recorded blocks and ours; [] when equal."""
    diffs = []
    for i, (want, have) in enumerate(zip(case.blocks, got)):
        we = normalise(want["entries"], case.transcript)
        he = normalise(have["entries"], case.transcript)
        if we != he:
            diffs.append(f"block {i}: results differ\n  recorded: {clip(we)}\n"
                         f"  pyexecd:  {clip(he)}")
        if want["images"] != have["images"]:
            diffs.append(f"block {i}: {want['images']} image(s) recorded, "
                         f"{have['images']} from pyexecd")
    return diffs


def shape(entries, nimages):
    """(outcome, exception type, output present, images) of one block; the block's outcome
    is that of its last result entry (a split block ends with its FAILED entry)."""
    outcome, last = entries[-1] if entries else (None, None)
    return {"outcome": outcome,
            "exception": exception_type(last) if outcome == "OUTCOME_FAILED" else None,
            "output": any(text for _, text in entries),
            "images": nimages}


def clip(value, limit=1500):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


class ReplayTest(unittest.TestCase):
    server = None
    stats = None       # {section: {"compared", "matched", "known", "differing", "excluded"}}
    exclusions = None  # {section: {category: ["case id (detail)"]}}
    shape_notes = None  # reported shape differences of non-deterministic cases

    @classmethod
    def setUpClass(cls):
        wanted = (TURNS_FILE, SINGLES_FILE)
        if not all(os.path.isfile(os.path.join(DATA_DIR, f)) for f in wanted):
            raise AssertionError(
                f"conformance data not found: expected {TURNS_FILE} and {SINGLES_FILE} in "
                f"{os.path.normpath(DATA_DIR)} (tests/conformance/corpus/ of the "
                f"repository)")
        cls.turns = turn_cases(load_jsonl(TURNS_FILE))
        cls.singles = single_cases(load_jsonl(SINGLES_FILE))
        cls.stats = defaultdict(lambda: defaultdict(int))
        cls.exclusions = defaultdict(lambda: defaultdict(list))
        cls.shape_notes = []
        # The recordings compare what code prints, not how fast this machine runs it: a
        # deadline of REPLAY_DEADLINE_MS keeps a slower CPU than the real service's (the
        # sympy turn t-0162 needs about 26 s of the 30 on a fast one) from turning a
        # recorded OK into DEADLINE_EXCEEDED. No recording holds a deadline case.
        cls.server = Server(f"--deadline-ms={REPLAY_DEADLINE_MS}").start()
        try:
            cls.available_modules = cls.probe_modules()
        except BaseException:
            cls.server.kill()   # tearDownClass does not run when setUpClass fails
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server:
            cls.server.stop()
        if cls.stats is not None:
            cls.print_summary()

    @classmethod
    def probe_modules(cls):
        """{module: importable in pyexecd's sandbox} for every module a case imports."""
        names = sorted(set().union(*(c.imports() for c in cls.turns + cls.singles)))
        code = ("import importlib.util, json\n"
                f"print(json.dumps({{m: importlib.util.find_spec(m) is not None "
                f"for m in {names!r}}}))\n")
        reply = cls.server.run(code, timeout=REQUEST_TIMEOUT)
        entries = results(reply)
        if len(entries) != 1 or entries[0].get("outcome") != "OUTCOME_OK":
            raise AssertionError(f"module probe failed: {reply}")
        return json.loads(entries[0]["output"])

    def replay(self, case, files=()):
        """Runs the case's blocks in one request, after inlineData parts for `files`
        [(mime, bytes)]; returns per_block's list."""
        parts = [{"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}
                 for mime, data in files]
        parts += [code_part(c) for c in case.codes]
        status, body = self.server.execute({"parts": parts}, timeout=REQUEST_TIMEOUT)
        self.assertEqual(status, 200, f"{case.id}: HTTP {status}: {clip(body)}")
        return per_block(body, len(case.blocks))

    # --- deterministic cases: exact comparison --------------------------------------------

    def exclusion_reason(self, case):
        """(category, detail) when the case cannot be replayed as recorded, else None."""
        reason = case.input_file_reason()
        if reason:
            return reason
        free = case.free_names()
        if free is None:
            return "cannot tell which names it uses (star import or syntax error)", ""
        if free:
            return ("uses names it does not define (an earlier block of its turn, the client "
                    "or a tool bridge did)", ", ".join(sorted(free)))
        return None

    def exclude(self, section, case, reason):
        category, detail = reason
        self.stats[section]["excluded"] += 1
        self.exclusions[section][category].append(f"{case.id} ({detail})" if detail else case.id)

    def compare_deterministic(self, cases, section):
        stats = self.stats[section]
        for case in cases:
            if not case.deterministic:
                continue
            reason = self.exclusion_reason(case)
            if reason:
                self.exclude(section, case, reason)
                with self.subTest(case.id):
                    if case.id in KNOWN_DIFFERENCES:
                        self.fail(f"excluded ({reason[0]}), so it cannot be listed in "
                                  f"KNOWN_DIFFERENCES")
                continue
            with self.subTest(case.id):
                stats["compared"] += 1
                try:
                    diffs = text_differences(case, self.replay(case))
                except AssertionError:
                    stats["differing"] += 1
                    raise
                if case.id in KNOWN_DIFFERENCES:
                    stats["known"] += 1
                    if not diffs:
                        self.fail(f"{case.id} now matches its recording: remove it from "
                                  f"KNOWN_DIFFERENCES ({KNOWN_DIFFERENCES[case.id]})")
                    continue
                if diffs:
                    stats["differing"] += 1
                else:
                    stats["matched"] += 1
                if diffs:
                    self.fail(f"{case.id} ({case.source_file}) differs from its recording:\n"
                              + "\n".join(diffs))

    def test_1_deterministic_turns(self):
        """Each deterministic turn, all blocks in one request, gives the recorded blocks."""
        self.compare_deterministic(self.turns, "turns (deterministic)")

    def test_2_deterministic_single_blocks(self):
        """Each deterministic single block that stands alone gives its recorded result."""
        self.compare_deterministic(self.singles, "single blocks (deterministic)")

    def test_4_known_differences_are_cases(self):
        """Every KNOWN_DIFFERENCES entry names a deterministic case of the recordings."""
        ids = {c.id for c in self.turns + self.singles if c.deterministic}
        for case_id, reason in KNOWN_DIFFERENCES.items():
            with self.subTest(case_id):
                if case_id not in ids:
                    self.fail("listed in KNOWN_DIFFERENCES but not a deterministic case of "
                              "the recordings")
                if not reason.strip():
                    self.fail("a KNOWN_DIFFERENCES entry needs its reason")

    # --- non-deterministic cases: shape only ------------------------------------------

    def shape_exclusion(self, case):
        """(category, detail) when an outcome difference of this non-deterministic case
        must not fail the test, else None."""
        reason = self.exclusion_reason(case)
        if reason:
            return reason
        if "ANOMALY" in case.notes:
            return "recorded backend anomaly, not to be emulated (its notes say so)", ""
        outputs = case.recorded_outputs()
        lacking = sorted(m for m in case.imports()
                         if not self.available_modules.get(m, False)
                         and not missing_module_in(outputs, m))
        if lacking:
            return "imports libraries the recorded sandbox had and pyexecd lacks", \
                ", ".join(lacking)
        return None

    def test_3_nondeterministic_shapes(self):
        """NON-DETERMINISTIC cases, by shape only (outcome, exception type, output presence,
        image count). Differences are reported; only outcome differences of cases that
        need no unavailable file, library or name fail."""
        section = "non-deterministic (shape)"
        stats = self.stats[section]
        for case in self.turns + self.singles:
            if case.deterministic:
                continue
            excluded = self.shape_exclusion(case)
            if excluded:
                self.exclude(section, case, excluded)
            with self.subTest(case.id):
                stats["compared"] += 1
                got = self.replay(case)
                outcome_diffs, notes = [], []
                for i, (want, have) in enumerate(zip(case.blocks, got)):
                    ws = shape(want["entries"], want["images"])
                    hs = shape(have["entries"], have["images"])
                    for key in ws:
                        if ws[key] == hs[key]:
                            continue
                        line = (f"{case.id} block {i}: {key} recorded {ws[key]!r}, "
                                f"pyexecd {hs[key]!r}")
                        if key == "outcome":
                            outcome_diffs.append(line)
                            line += " [outcome not enforced]" if excluded else " [FAILS]"
                        notes.append(line)
                self.shape_notes.extend(notes)
                if notes:
                    stats["differing"] += 1
                else:
                    stats["matched"] += 1
                if outcome_diffs and not excluded:
                    self.fail("outcome differs from the recording:\n" + "\n".join(outcome_diffs))

    # --- recorded turns with stand-in input files: shape, images included -------------

    def test_5_stand_in_inputs(self):
        """Turns whose input files are described but not held, replayed with stand-ins:
        every block's shape (outcome, exception, output present, image count) as recorded,
        but for KNOWN_STAND_IN_DIFFERENCES."""
        section = "stand-in input files (shape)"
        stats = self.stats[section]
        made = {}
        seen_known = set()
        blocks_compared = 0
        for case in self.turns:
            if not case.input_specs:
                continue
            files = []
            for spec in case.input_specs:
                origin = spec.get("origin", "")
                if origin not in made:
                    made[origin] = stand_in(origin, self.server)
                files.append(made[origin])
            if None in files:
                self.exclude(section, case, ("no stand-in for its input file",
                                             case.input_specs[0].get("name", "?")))
                continue
            with self.subTest(case.id):
                stats["compared"] += 1
                for spec, (mime, _) in zip(case.input_specs, files):
                    self.assertEqual(spec.get("mime"), mime, case.id)
                got = self.replay(case, files)
                diffs = []
                for i, (want, have) in enumerate(zip(case.blocks, got)):
                    blocks_compared += 1
                    ws = shape(want["entries"], want["images"])
                    hs = shape(have["entries"], have["images"])
                    for key in ws:
                        name = f"{case.id} block {i} {key}"
                        if ws[key] == hs[key]:
                            if name in KNOWN_STAND_IN_DIFFERENCES:
                                self.fail(f"{name} now matches: remove it from "
                                          f"KNOWN_STAND_IN_DIFFERENCES")
                            continue
                        line = f"{name}: recorded {ws[key]!r}, pyexecd {hs[key]!r}"
                        if name in KNOWN_STAND_IN_DIFFERENCES:
                            seen_known.add(name)
                            self.shape_notes.append(line + " [known: "
                                                    + KNOWN_STAND_IN_DIFFERENCES[name] + "]")
                        else:
                            diffs.append(line)
                if diffs:
                    stats["differing"] += 1
                    self.shape_notes.extend(d + " [FAILS]" for d in diffs)
                    self.fail("shape differs from the recording:\n" + "\n".join(diffs))
                stats["known" if any(k.startswith(case.id + " ") for k in seen_known)
                      else "matched"] += 1
        self.assertEqual(seen_known, set(KNOWN_STAND_IN_DIFFERENCES),
                         "listed stand-in differences that were not seen")
        self.assertGreaterEqual(blocks_compared, 20, "too few blocks compared to mean much")

    # --- the summary ---------------------------------------------------------------------

    @classmethod
    def print_summary(cls):
        out = sys.stderr
        print("\n=== Conformance replay summary ===", file=out)
        header = f"{'':34}{'compared':>9}{'matched':>9}{'known':>7}{'differ':>8}{'excluded':>10}"
        print(header, file=out)
        for section, s in cls.stats.items():
            print(f"{section:34}{s['compared']:9}{s['matched']:9}{s['known']:7}"
                  f"{s['differing']:8}{s['excluded']:10}", file=out)
        print("(non-deterministic cases are all replayed and their shapes reported; there "
              "'excluded'\n counts the cases whose outcome difference does not fail the test)",
              file=out)
        if KNOWN_DIFFERENCES:
            print("Known differences (compared, expected to differ):", file=out)
            for case_id, reason in KNOWN_DIFFERENCES.items():
                print(f"  {case_id}: {reason}", file=out)
        for section, reasons in cls.exclusions.items():
            label = ("Excluded from comparison" if "shape" not in section else
                     "Replayed, outcome not enforced")
            print(f"{label}, {section}:", file=out)
            for category, ids in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
                print(f"  {len(ids):3}  {category}:", file=out)
                print(textwrap.indent(textwrap.fill(", ".join(ids), 86), " " * 7), file=out)
        if cls.shape_notes:
            print("Shape differences of non-deterministic cases (reported):", file=out)
            for line in cls.shape_notes:
                print("  " + line, file=out)


if __name__ == "__main__":
    unittest.main()
