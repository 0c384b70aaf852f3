"""The case model: what one replay sends and what its recording expects, and what a case
needs that a recording may not hold (input files, names from earlier blocks, a tool).

These are the rules of tests/conformance/test_replay.py (its Case, turn_cases,
single_cases, code_names, per_block, shape, ...), kept with the same names and meanings so
that the test can call into this module; additions are marked as such.
"""

import ast
import builtins
import re
import textwrap

MODULE_GLOBALS = {"__name__", "__doc__", "__builtins__", "__file__", "__spec__", "__loader__",
                  "__package__", "__annotations__", "__cached__"}
BUILTIN_NAMES = set(dir(builtins))

TURNS_FILE = "gemini_turns.jsonl"
SINGLES_FILE = "gemini_recorded.jsonl"

# Names the real service's code sees without defining them when the request offered
# tools (function calling from code, the search bridge). Besides these, the function
# names a recorded request declared count too. (Addition: test_replay files them under
# "uses names it does not define".)
TOOL_BRIDGE_NAMES = {"default_api", "concise_search", "google_search", "browse"}

# The three traceback profiles of the real service (docs/gemini-wire.md), as the header
# X-Pyexecd-Fidelity names them.
FIDELITIES = ("current", "2025", "plain")
FIDELITY_HEADER = "X-Pyexecd-Fidelity"
RUNNER_CURRENT = 'File "/usr/bin/entry/named_interpreters/python/interpreter"'
RUNNER_2025 = 'File "/usr/bin/entry/entry_point"'

# Skip causes (a case that cannot be replayed as it was recorded).
SKIP_INPUT_FILE = "needs an input file the recording lacks"
SKIP_EARLIER_NAMES = "uses names defined by an earlier block not in the recording"
SKIP_TOOL = "needs a tool (function calling) the recording used"
SKIP_UNKNOWN_NAMES = "star import of a module the server lacks (its names are unknown)"
SKIP_ANOMALY = "recorded backend anomaly, not behaviour to emulate"
SKIP_NO_CODE = "no code execution in the recording"
SKIP_UNREADABLE = "unreadable recording"


# A backend anomaly recorded in 2025 (pub-006, pub-007): Python code parsed as shell, the
# output a shell parser's message (mvdan/sh style) and an empty "stderr output:" section.
SHELL_PARSER_ERROR = re.compile(r"^\d+:\d+: .*\n\nstderr output:\n", re.M)


def code_names(code):
    """(bound, loaded, imports) of one code block: the names it binds (in any scope), the
    names it reads, the top-level modules it imports. bound is None when it cannot be known
    (a star import, or code that does not parse)."""
    bound, loaded, imports, stars, ok = _names(code)
    return (None if stars or not ok else bound), loaded, imports


def _names(code):
    """(bound, loaded, imports, star-imported modules, parses)."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except (SyntaxError, ValueError):
        return set(), set(), set(), set(), False
    bound, loaded, imports, stars = set(), set(), set(), set()
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
                    if node.level == 0 and node.module:
                        stars.add(node.module)
                    else:
                        stars.add("")       # a relative star import: unknowable
                else:
                    bound.add(alias.asname or alias.name)
            if node.level == 0 and node.module:
                imports.add(node.module.split(".")[0])
    return bound, loaded, imports, stars, True


def star_modules(code):
    """The modules a block star-imports (from M import *)."""
    return _names(code)[3]


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


def fidelity_of(outputs):
    """The traceback profile the recorded outputs show ('current', '2025', 'plain'), or
    None when no recorded output holds a traceback. (Addition.)"""
    found = None
    for text in outputs:
        if not text:
            continue
        if RUNNER_CURRENT in text:
            return "current"
        if RUNNER_2025 in text:
            return "2025"
        if "Traceback (most recent call last):" in text:
            found = "plain"
    return found


class Case:
    """One replay: an id, the code blocks sent in one request, and per block the expected
    result entries [(outcome, output or None)] and image count.

    Besides test_replay's fields: files, the input files the recording holds
    [(mime, base64)] (a cassette's request), sent as inlineData parts before the code;
    tool_names, the functions the recorded request declared; fidelity; origin, where in
    the file the case is (line or interaction); kind ('turn', 'block', 'response');
    deterministic_source ('recorded', or 'inferred' from the code when the recording
    does not say) and nondeterminism, the inferred reason; skip, a (cause, detail) the
    reader already knows (an unreadable body)."""

    def __init__(self, case_id, source_file, deterministic, transcript, blocks, notes,
                 input_files, input_specs=(), *, files=(), tool_names=(), origin=None,
                 kind="turn", deterministic_source="recorded", recorded_at=None,
                 source=None, skip=None, path=None):
        self.id = case_id
        self.source_file = source_file
        self.deterministic = deterministic
        self.transcript = transcript   # compare with surrounding whitespace stripped
        self.blocks = blocks           # [{"code", "entries", "images"}]
        self.notes = notes or ""
        self.input_files = input_files  # names of the files the user uploaded
        self.input_specs = list(input_specs)  # their descriptions: name, mime, origin
        self.files = list(files)
        self.tool_names = set(tool_names)
        self.origin = origin
        self.kind = kind
        self.deterministic_source = deterministic_source
        self.recorded_at = recorded_at
        self.source = source
        self.skip = skip
        self.path = path or source_file
        self.nondeterminism = None     # why it was inferred non-deterministic, if it was

    @property
    def codes(self):
        return [b["code"] for b in self.blocks]

    def recorded_outputs(self):
        return [out for b in self.blocks for _, out in b["entries"]]

    def recorded_failed_outputs(self):
        return [out for b in self.blocks for outcome, out in b["entries"]
                if outcome != "OUTCOME_OK"]

    @property
    def fidelity(self):
        """The profile to replay under: the one the recorded FAILED outputs show, else
        'current'."""
        return fidelity_of(self.recorded_failed_outputs()) or "current"

    @property
    def fidelity_detected(self):
        return fidelity_of(self.recorded_failed_outputs()) is not None

    def outcome_kind(self):
        """The case's recorded outcome for the summary: the most severe of its blocks
        (DEADLINE_EXCEEDED over FAILED over OK)."""
        outcomes = {o for b in self.blocks for o, _ in b["entries"]}
        for kind in ("OUTCOME_DEADLINE_EXCEEDED", "OUTCOME_FAILED"):
            if kind in outcomes:
                return kind
        return "OUTCOME_OK" if outcomes <= {"OUTCOME_OK"} else "other"

    def input_file_reason(self):
        """(category, detail) when the case needs a file we cannot supply, else None."""
        category = SKIP_INPUT_FILE
        if len(self.input_files) > len(self.files):
            # available: false (not public) or true: no content either way
            return category, self.input_files[len(self.files)]
        for text in self.codes + [self.notes]:
            for m in re.finditer(r"input_file_(\d+)\.\w+", text):
                if int(m.group(1)) >= len(self.files):
                    return category, m.group(0)
        if "FILE INPUT" in self.notes and not self.files:
            return category, "notes: FILE INPUT"
        return None

    def free_names(self, star_names=None):
        """Names the case reads that none of its blocks binds and that are no builtins,
        less those whose NameError is itself the recorded result. None when unknown.
        star_names: {module: its public names} for the modules it star-imports (addition:
        without them a star import makes the names unknowable, as in test_replay). A block
        that does not parse binds and reads nothing (it fails before running)."""
        bound, loaded = set(), set()
        for code in self.codes:
            b, l, _, stars, ok = _names(code)
            if not ok:
                continue
            for module in stars:
                if star_names is None or star_names.get(module) is None:
                    return None
                b = b | set(star_names[module])
            bound |= b
            loaded |= l
        return (loaded - bound - BUILTIN_NAMES - MODULE_GLOBALS
                - recorded_name_errors(self.recorded_outputs()))

    def imports(self):
        return set().union(*(_names(code)[2] for code in self.codes)) if self.codes else set()

    def star_imports(self):
        return set().union(*(star_modules(code) for code in self.codes)) if self.codes else set()

    def skip_reason(self, star_names=None):
        """(cause, detail) when the case cannot be replayed as recorded, else None: the
        exclusion rules of test_replay (input file, undefined names), with names that
        only a tool provides told apart, and recorded anomalies."""
        if self.skip:
            return self.skip
        if not self.blocks:
            return SKIP_NO_CODE, ""
        reason = self.input_file_reason()
        if reason:
            return reason
        free = self.free_names(star_names)
        if free is None:
            return SKIP_UNKNOWN_NAMES, ", ".join(sorted(m for m in self.star_imports()))
        if free:
            tools = free & (TOOL_BRIDGE_NAMES | self.tool_names)
            if tools:
                return SKIP_TOOL, ", ".join(sorted(tools))
            return SKIP_EARLIER_NAMES, ", ".join(sorted(free))
        if "ANOMALY" in self.notes:
            return SKIP_ANOMALY, "its notes say so"
        if any(text and SHELL_PARSER_ERROR.search(text) for text in self.recorded_outputs()):
            # (Addition) the signature of pub-006/pub-007 in a recording without notes.
            return SKIP_ANOMALY, "a shell parser's error for Python code"
        return None


def turn_blocks(row_blocks):
    """The blocks of a corpus turn: result_part false is one OK entry without output,
    result_parts both entries in order."""
    blocks = []
    for b in row_blocks:
        if b.get("result_part") is False:
            # 2025 shape: no result part for a block that printed nothing.
            entries = [("OUTCOME_OK", None)]
        elif "result_parts" in b:
            # A block that printed, then raised: stdout OK, then FAILED.
            entries = [(p["outcome"], p.get("output")) for p in b["result_parts"]]
        else:
            entries = [(b["outcome"], b.get("output"))]
        blocks.append({"code": b["code"], "entries": entries, "images": b.get("images", 0)})
    return blocks


def turn_cases(rows, source_file=TURNS_FILE, path=None):
    """rows: [(line number, record)] or [record] of the turn format."""
    cases = []
    for n, row in _numbered(rows):
        files = [f.get("name", "?") for f in row.get("input_files") or []]
        cases.append(Case(row["turn_id"], source_file, row.get("deterministic", True),
                          row.get("recorded") == "transcript", turn_blocks(row["blocks"]),
                          row.get("notes"), files, row.get("input_files") or [],
                          origin=f"line {n}" if n else None, kind="turn",
                          recorded_at=row.get("recorded_at"), source=row.get("source"),
                          path=path))
    return cases


def single_cases(rows, source_file=SINGLES_FILE, path=None):
    """One case per block; two consecutive entries with the same code, the first OK and the
    second FAILED, are the two result parts of one split execution (pub-086/pub-087) and are
    replayed as one case named "first+second"."""
    rows = list(_numbered(rows))
    cases, i = [], 0
    while i < len(rows):
        n, row = rows[i]
        entries = [(row["outcome"], None if row.get("output_absent") else row.get("output"))]
        case_id, notes = row["id"], row.get("notes") or ""
        nxt = rows[i + 1][1] if i + 1 < len(rows) else None
        if (nxt and nxt["code"] == row["code"] and row["outcome"] == "OUTCOME_OK"
                and nxt["outcome"] == "OUTCOME_FAILED"
                and nxt.get("deterministic", True) == row.get("deterministic", True)):
            entries.append((nxt["outcome"],
                            None if nxt.get("output_absent") else nxt.get("output")))
            case_id += "+" + nxt["id"]
            notes += " " + (nxt.get("notes") or "")
            i += 1
        i += 1
        blocks = [{"code": row["code"], "entries": entries, "images": row.get("images", 0)}]
        # Transcribed from a UI or markdown export: the exporter strips surrounding whitespace.
        transcript = (row.get("wire") or "").startswith("transcribed")
        cases.append(Case(case_id, source_file, row.get("deterministic", True), transcript,
                          blocks, notes, [], origin=f"line {n}" if n else None, kind="block",
                          source=row.get("source"), path=path))
    return cases


def _numbered(rows):
    for item in rows:
        if isinstance(item, tuple):
            yield item
        else:
            yield None, item


# --- what a reply holds ----------------------------------------------------------------

def results(body):
    """The codeExecutionResult objects of a reply, in order."""
    return [p["codeExecutionResult"] for p in body.get("parts", []) if "codeExecutionResult" in p]


def images(body):
    return [p["inlineData"] for p in body.get("parts", []) if "inlineData" in p]


def per_block(body, nblocks):
    """Splits a reply into one part list per code block: each executableCode part starts a
    block; its result(s) and images follow it. Raises ValueError when the reply does not
    hold one code part per block."""
    groups = []
    for part in body.get("parts", []):
        if "executableCode" in part:
            groups.append([])
        elif groups:
            groups[-1].append(part)
    if len(groups) != nblocks:
        raise ValueError(f"reply has {len(groups)} code parts for {nblocks} blocks")
    return [{"entries": [(r.get("outcome"), r.get("output")) for r in results({"parts": g})],
             "images": len(images({"parts": g}))} for g in groups]


def normalise(entries, transcript):
    """Transcript recordings: outputs with surrounding whitespace stripped; one that strips
    to nothing counts as absent (an export shows no section for it)."""
    if not transcript:
        return list(entries)
    out = []
    for outcome, text in entries:
        text = text.strip() if text is not None else None
        out.append((outcome, text or None))   # an empty section shows as no section
    return out


def shape(entries, nimages):
    """(outcome, exception type, output present, images) of one block; the block's outcome
    is that of its last result entry (a split block ends with its FAILED entry)."""
    outcome, last = entries[-1] if entries else (None, None)
    return {"outcome": outcome,
            "exception": exception_type(last) if outcome == "OUTCOME_FAILED" else None,
            "output": any(text for _, text in entries),
            "images": nimages}


# --- non-determinism, inferred (addition) --------------------------------------------------

# Calls whose result differs from run to run: the clock, unseeded randomness, ids, the
# network. Used only for recordings that do not say whether they are deterministic.
NONDETERMINISTIC_CALLS = re.compile(
    r"\b(?:datetime\.(?:datetime\.)?(?:now|today|utcnow)|date\.today|time\.(?:time|"
    r"perf_counter|monotonic|process_time|localtime|ctime)|uuid\.uuid[14]|os\.urandom|"
    r"secrets\.|np\.random\.(?!seed|default_rng\(\s*\d)|numpy\.random\.(?!seed)|"
    r"random\.(?!seed)\w+\(|requests\.|urllib\.request|socket\.|getpid)\b|"
    r"\bnow\(\)|\btoday\(\)")
SEEDED = re.compile(r"\b(?:random\.seed|np\.random\.seed|numpy\.random\.seed|"
                    r"default_rng\(\s*\d)")


def infer_nondeterminism(codes):
    """A short reason when the code reads the clock, unseeded randomness, ids or the
    network; None when it looks deterministic."""
    text = "\n".join(codes)
    m = NONDETERMINISTIC_CALLS.search(text)
    if not m:
        return None
    if m.group(0).startswith(("random.", "np.random", "numpy.random")) and SEEDED.search(text):
        return None
    return f"calls {m.group(0).rstrip('(')}"
