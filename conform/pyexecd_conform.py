#!/usr/bin/env python3
"""pyexecd conform: replays recorded Gemini code executions through pyexecd and says, case
by case, whether pyexecd gives what the real service gave (conform/README.md).

`pyexecd conform ARGS...` runs this file with PYEXECD_BIN set to the pyexecd binary.
"""

import argparse
import fnmatch
import os
import signal
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = REPO_ROOT          # import the package as conform.*, not its modules bare
elif REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from conform import cases as C            # noqa: E402
from conform import normalize             # noqa: E402
from conform import recordings            # noqa: E402
from conform import record as recorder    # noqa: E402
from conform import replay                # noqa: E402
from conform import report                # noqa: E402
from conform import server as S           # noqa: E402

DEFAULT_DEADLINE_MS = 120000
EXIT_OK, EXIT_BELOW_MIN_PASS, EXIT_USAGE, EXIT_SERVER = 0, 1, 2, 3

DESCRIPTION = """\
Replays recorded executions of the Gemini code-execution tool through pyexecd and compares
outcome, output and image count, case by case: pass, fail (with a diff and a cause) or skip
(with the reason the recording cannot be replayed as it was recorded).

Each FILE is read by its content: the corpus JSONL (whole turns and single blocks, as in
tests/conformance/corpus/), a generateContent response body, a streamGenerateContent stream
(a JSON array, or SSE `data:` events), or a VCR / pytest-recording cassette (YAML or JSON;
`body: {string: ...}`, gzip and base64 bodies, or pydantic-ai's `parsed_body`). Each model
turn is replayed as ONE POST /v1/execute holding all its code blocks (and the user's
inlineData files when the recording holds them), so its blocks share one interpreter."""


def epilog():
    rules = "\n".join("  " + line for line in normalize.describe())
    return f"""\
normalization rules (all on by default; --no-normalize RULE switches one off,
--no-normalize all then --normalize RULE keeps only some; --exact compares exactly):
{rules}
  Deterministic cases pass when they match exactly or after the enabled rules;
  non-deterministic ones (the recording says so, or, for recordings that do not say,
  the code reads the clock or unseeded randomness) are compared by shape: outcome,
  exception type, output present, image count. Transcript recordings are compared
  with surrounding whitespace stripped, as they were recorded.

server: --url URL replays through a running pyexecd; without it conform starts one from
  PYEXECD_BIN (else build/pyexecd, else pyexecd on PATH) on 127.0.0.1 port 0, with
  --policy parity when the binary accepts it (else its default policy) and a per-block
  deadline of {DEFAULT_DEADLINE_MS} ms: replays compare what code prints, not this
  machine's speed. Each request carries X-Pyexecd-Fidelity (current, 2025 or plain), the
  traceback profile the case's recorded failures show (default current).

recording: --record URL --prompts FILE --out FILE [--model M] [--key-file F] posts each
  prompt of FILE (JSONL of {{"id", "prompt", optional "model"}}) to
  URL/v1beta/models/M:generateContent with the codeExecution tool and writes one corpus
  line per response. The real API (https://generativelanguage.googleapis.com, the key's
  first line sent as x-goog-api-key) cannot be tested by this repository (no network,
  no key); its tests record from pyexecd's echo model.

exit status: 0 when the pass rate (passed / (passed + failed); skips do not count) is at
  least --min-pass (default 1.0), 1 when it is under it (or --record could not record
  every prompt), 2 for a usage or input error, 3 when no server could be started or
  reached."""


class _RuleAction(argparse.Action):
    """--normalize / --no-normalize, kept in command-line order in one list."""

    def __call__(self, parser, ns, values, option_string=None):
        ops = list(getattr(ns, "rule_ops", None) or [])
        sign = "-" if option_string.startswith("--no-") else "+"
        for name in values.split(","):
            name = name.strip()
            if name != "all" and name not in normalize.RULES:
                parser.error(f"unknown normalization rule {name!r} (rules: "
                             f"{', '.join(normalize.ALL)}, all)")
            ops.append((sign, name))
        ns.rule_ops = ops


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="pyexecd conform", description=DESCRIPTION, epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", metavar="FILE", help="recordings to replay")
    g = p.add_argument_group("replaying")
    g.add_argument("--url", help="a running pyexecd to replay through (default: start one)")
    g.add_argument("--jobs", "-j", type=int, default=2, metavar="N",
                   help="cases replayed at once (default 2)")
    g.add_argument("--json", metavar="FILE", help="write the report as JSON")
    g.add_argument("--junit", metavar="FILE", help="write the report as JUnit XML")
    g.add_argument("--min-pass", type=float, default=1.0, metavar="RATE",
                   help="exit 1 when passed / (passed + failed) is under RATE (default 1.0)")
    g.add_argument("--normalize", action=_RuleAction, metavar="RULE",
                   help="switch a normalization rule on (comma-separated, or all)")
    g.add_argument("--no-normalize", action=_RuleAction, metavar="RULE",
                   help="switch a normalization rule off (comma-separated, or all)")
    g.add_argument("--exact", action="store_true", help="no normalization rule at all")
    g.add_argument("--shape-only", action="store_true",
                   help="compare every case by shape, deterministic ones too")
    g.add_argument("--case", action="append", metavar="PATTERN",
                   help="only the cases whose id matches (fnmatch; repeatable)")
    g.add_argument("--input-dir", metavar="DIR",
                   help="input files the recordings describe but do not hold: DIR/<case "
                        "id>/input_file_0.csv or DIR/input_file_0.csv")
    g.add_argument("--list", action="store_true",
                   help="list the cases read and what would be skipped, replay nothing")
    g.add_argument("--deadline-ms", type=int, default=DEFAULT_DEADLINE_MS, metavar="MS",
                   help=f"per-block deadline of the server conform starts (default "
                        f"{DEFAULT_DEADLINE_MS})")
    g.add_argument("--policy", default="parity", metavar="NAME|FILE",
                   help="policy of the server conform starts (default parity, falling back "
                        "to the binary's default when it refuses; 'default' for that)")
    g.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="an extra flag for the server conform starts (repeatable)")
    g.add_argument("-v", "--verbose", action="count", default=1,
                   help="also list every pass and skip")
    g.add_argument("-q", "--quiet", action="store_true", help="summary only, no diffs")
    g.add_argument("--diff-lines", type=int, default=80, metavar="N",
                   help="lines of each diff shown on stdout (0: all; reports hold all)")
    r = p.add_argument_group("recording")
    r.add_argument("--record", metavar="URL",
                   help="record new cases from the Gemini-compatible endpoint at URL")
    r.add_argument("--prompts", metavar="FILE", help='JSONL of {"id", "prompt", "model"?}')
    r.add_argument("--out", metavar="FILE", help="the corpus JSONL to write")
    r.add_argument("--model", default="gemini-2.5-flash",
                   help="model for prompts that name none (default gemini-2.5-flash)")
    r.add_argument("--key-file", metavar="F", help="API key: the first line of F")
    r.add_argument("--nondeterministic", action="store_true",
                   help="mark the recorded cases deterministic: false (compared by shape)")
    args = p.parse_args(argv)
    if args.record:
        if not args.prompts or not args.out:
            p.error("--record needs --prompts FILE and --out FILE")
        if args.files:
            p.error("--record takes no FILE arguments")
    elif not args.files:
        p.error("give the recordings to replay (FILE...), or --record")
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    if not 0 <= args.min_pass <= 1:
        p.error("--min-pass is a rate between 0 and 1")
    return args


class _IdSet:
    """Membership by identity (cases are not hashable by value)."""

    def __init__(self, items):
        self.ids = {id(x) for x in items}

    def __contains__(self, item):
        return id(item) in self.ids


def documented(env_doc):
    """{library name: the documented lists naming it} from GET /v1/environment."""
    out = {}
    for lib in (env_doc or {}).get("libraries") or []:
        if isinstance(lib, dict) and lib.get("name"):
            out[lib["name"].lower().replace("_", "-")] = list(lib.get("documentedIn") or [])
    return out


def enabled_rules(args):
    rules = list(normalize.ALL)
    if args.exact:
        rules = []
    for sign, name in getattr(args, "rule_ops", None) or []:
        names = normalize.ALL if name == "all" else (name,)
        if sign == "-":
            rules = [r for r in rules if r not in names]
        else:
            rules += [r for r in names if r not in rules]
    return [r for r in normalize.ALL if r in rules]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.record:
        return do_record(args)
    return do_replay(args)


def do_record(args):
    try:
        written, errors = recorder.record(args.record, args.prompts, args.out, args.model,
                                          args.key_file, not args.nondeterministic)
    except (OSError, ValueError) as e:
        print(f"pyexecd conform: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"recorded {written} case{'s' * (written != 1)} into {args.out}"
          + (f"; {len(errors)} prompt(s) failed" if errors else ""))
    return EXIT_BELOW_MIN_PASS if errors else EXIT_OK


def do_replay(args):
    t0 = time.monotonic()
    try:
        files, cases = recordings.read_all(args.files)
    except (OSError, recordings.FormatError) as e:
        print(f"pyexecd conform: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.case:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.id, pat) for pat in args.case)]
        if not cases:
            print("pyexecd conform: no case matches --case", file=sys.stderr)
            return EXIT_USAGE
    if args.input_dir:
        if not os.path.isdir(args.input_dir):
            print(f"pyexecd conform: --input-dir {args.input_dir}: not a directory",
                  file=sys.stderr)
            return EXIT_USAGE
        recordings.supply_inputs(cases, args.input_dir)
    rules = enabled_rules(args)
    selected = _IdSet(cases)
    if args.list:
        for c in cases:
            skip = c.skip_reason()
            if skip and skip[0] == C.SKIP_UNKNOWN_NAMES:
                skip = None      # the server says which names a star import brings
            how = ("skip: " + skip[0] + (f" ({skip[1]})" if skip[1] else "")) if skip else \
                ("exact" if c.deterministic and not args.shape_only else "shape")
            print(f"{c.id}\t{c.path}\t{c.origin or ''}\t{len(c.blocks)} block(s)\t"
                  f"fidelity {c.fidelity}\t{how}")
        return EXIT_OK

    own = None
    try:
        if args.url:
            client = S.Client(args.url)
            try:
                client.wait_ready(timeout=120, unreachable_after=3)
            except S.ServerError as e:
                print(f"pyexecd conform: {e}", file=sys.stderr)
                return EXIT_SERVER
            binary = None
        else:
            binary = S.find_binary(REPO_ROOT)
            if not binary:
                print("pyexecd conform: no pyexecd binary: set PYEXECD_BIN, build "
                      "build/pyexecd, or give --url", file=sys.stderr)
                return EXIT_SERVER
            flags = [f"--deadline-ms={args.deadline_ms}"] + args.server_arg
            own = S.OwnServer(binary, flags, workers=max(2, args.jobs), pool=2,
                              policy=args.policy)
            try:
                own.start()
            except (S.ServerError, OSError) as e:
                print(f"pyexecd conform: {e}", file=sys.stderr)
                return EXIT_SERVER
            client = own.client
        status, health = client.health()
        env_doc = client.environment()
        deadline_ms = (health.get("limits") or {}).get("deadlineMs")
        if own:
            deadline = (f"{deadline_ms or args.deadline_ms} ms per block (replays compare what "
                        "code prints, not this machine's speed)")
        else:
            deadline = (f"{deadline_ms} ms per block (the server's)" if deadline_ms else
                        "the server's")
        modules = set().union(*(c.imports() for c in cases)) if cases else set()
        stars = set().union(*(c.star_imports() for c in cases)) if cases else set()
        found, star_names = S.probe_modules(client, modules, stars)
        env = {"modules": found, "stars": star_names, "documented": documented(env_doc)}
        progress = replay.Progress(len(cases))
        try:
            verdicts = replay.run(client, cases, env, rules, jobs=args.jobs,
                                  deadline_s=(deadline_ms or args.deadline_ms) / 1000,
                                  shape_only=args.shape_only, progress=progress)
        finally:
            progress.close()
        run = {
            "inputs": [{"path": path, "format": fmt, "cases": len(cs),
                        "selected": sum(c in selected for c in cs)}
                       for path, fmt, cs in files],
            "server": {"url": client.url, "binary": binary,
                       "policy_note": own.policy_note if own else "",
                       "python": health.get("python"), "libraries": health.get("libraries"),
                       "limits": health.get("limits"), "environment": env_doc},
            "policy": health.get("policy"),
            "deadline": deadline,
            "deadline_ms": deadline_ms or (args.deadline_ms if own else None),
            "normalize": rules,
            "wall_seconds": time.monotonic() - t0,
        }
    finally:
        if own:
            own.stop()
    verbosity = 0 if args.quiet else args.verbose
    sys.stdout.write(report.text(run, verdicts, verbosity, args.diff_lines))
    sys.stdout.flush()
    if args.json:
        report.write_json(args.json, run, verdicts)
    if args.junit:
        report.write_junit(args.junit, run, verdicts)
    t = report.totals(verdicts)
    rate = t["pass_rate"]
    if rate is None:
        if args.min_pass > 0:
            print("pyexecd conform: no case could be compared (all skipped)", file=sys.stderr)
            return EXIT_BELOW_MIN_PASS
        return EXIT_OK
    if rate < args.min_pass:
        print(f"pyexecd conform: pass rate {rate:.4f} is under --min-pass {args.min_pass}",
              file=sys.stderr)
        return EXIT_BELOW_MIN_PASS
    return EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
