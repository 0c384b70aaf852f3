"""The report: text on stdout, --json FILE (one entry per case, the totals, the server and
policy that ran) and --junit FILE (JUnit XML: one testcase per case, failures carrying
the diff, skips their reason).
"""

import json
import os
import re
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict

from conform.compare import DOCUMENTED_LIST_NAMES as LIST_NAMES

VERDICTS = ("pass", "fail", "skip")
OUTCOME_KINDS = ("OUTCOME_OK", "OUTCOME_FAILED", "OUTCOME_DEADLINE_EXCEEDED", "other")


def totals(verdicts):
    c = Counter(v.verdict for v in verdicts)
    passed, failed = c["pass"], c["fail"]
    match = Counter(v.match for v in verdicts if v.verdict == "pass")
    return {"cases": len(verdicts), "pass": passed, "fail": failed, "skip": c["skip"],
            "compared": passed + failed,
            "pass_rate": round(passed / (passed + failed), 4) if passed + failed else None,
            "exact": match["exact"], "normalized": match["normalized"],
            "shape": match["shape"]}


def by_outcome_kind(verdicts):
    table = {k: {v: 0 for v in VERDICTS} for k in OUTCOME_KINDS}
    for v in verdicts:
        table[v.case.outcome_kind()][v.verdict] += 1
    return {k: row for k, row in table.items() if sum(row.values())}


def by_cause(verdicts):
    out = {"fail": defaultdict(list), "skip": defaultdict(list)}
    for v in verdicts:
        if v.verdict in out:
            out[v.verdict][v.cause or "(no cause)"].append(v)
    return out


def _label(v):
    return f"{v.case.id} ({v.detail})" if v.detail else v.case.id


def _clip_diff(diff, limit):
    lines = diff.splitlines()
    if limit and len(lines) > limit:
        return "\n".join(lines[:limit]) + f"\n... ({len(lines) - limit} more diff lines)"
    return "\n".join(lines)


def text(run, verdicts, verbosity=1, diff_lines=80):
    """The human report as one string."""
    out = []
    w = out.append
    n_files = len(run["inputs"])
    w(f"pyexecd conform: {len(verdicts)} cases from {n_files} file{'s' * (n_files != 1)}")
    for f in run["inputs"]:
        sel = f.get("selected", f["cases"])
        w(f"  {f['path']}: {f['format']}, {f['cases']} case{'s' * (f['cases'] != 1)}"
          + (f" ({sel} selected)" if sel != f["cases"] else ""))
    srv = run["server"]
    started = f" (started from {srv['binary']})" if srv.get("binary") else " (given with --url)"
    w(f"server:    {srv['url']}{started}, Python {srv.get('python') or '?'}")
    note = f" [{srv['policy_note']}]" if srv.get("policy_note") else ""
    w(f"policy:    {run['policy'] or '?'}{note}")
    env = srv.get("environment") or {}
    lists = [f"{doc['present']}/{doc.get('libraries', '?')} of {LIST_NAMES.get(name, name)} list"
             for name, doc in (env.get("documentedLists") or {}).items()
             if isinstance(doc, dict) and "present" in doc]
    if lists:
        w("libraries: " + ", ".join(lists) + " (the missing ones: --json)")
    w(f"deadline:  {run['deadline']}")
    w(f"normalize: {', '.join(run['normalize']) or 'none (exact comparison)'}")
    w("")
    for v in verdicts:
        if v.verdict == "fail":
            w(f"FAIL  {v.case.id}  [{v.cause}] {v.detail}".rstrip())
            if verbosity >= 1 and v.diffs:
                w(textwrap.indent(_clip_diff(v.diff, diff_lines), "      "))
        elif v.verdict == "pass" and verbosity >= 2:
            how = v.match + (f" ({', '.join(v.rules_needed)})" if v.rules_needed else "")
            w(f"pass  {v.case.id}  {how}")
        elif v.verdict == "skip" and verbosity >= 2:
            w(f"skip  {v.case.id}  [{v.cause}] {v.detail}".rstrip())
    t = totals(verdicts)
    if out[-1] != "":
        w("")
    w(f"{'recorded outcome':28}{'pass':>6}{'fail':>6}{'skip':>6}{'total':>7}")
    for kind, row in by_outcome_kind(verdicts).items():
        w(f"{kind:28}{row['pass']:6}{row['fail']:6}{row['skip']:6}{sum(row.values()):7}")
    w(f"{'total':28}{t['pass']:6}{t['fail']:6}{t['skip']:6}{t['cases']:7}")
    rate = f"{100 * t['pass_rate']:.1f}%" if t["pass_rate"] is not None else "n/a"
    w(f"pass rate {rate}: {t['pass']} passed / {t['compared']} compared "
      f"({t['exact']} exact, {t['normalized']} normalized, {t['shape']} by shape); "
      f"{t['skip']} skipped, not counted")
    causes = by_cause(verdicts)
    for verdict, label in (("fail", "fails by cause"), ("skip", "skips by cause")):
        groups = causes[verdict]
        if not groups:
            continue
        w(f"{label}:")
        for cause, vs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            w(f"  {len(vs):4}  {cause}:")
            w(textwrap.indent(textwrap.fill(", ".join(_label(v) for v in vs), 84), " " * 8))
    w(f"wall time {run['wall_seconds']:.1f} s")
    return "\n".join(out) + "\n"


def case_entry(v):
    c = v.case
    entry = {"id": c.id, "file": c.path, "origin": c.origin, "kind": c.kind,
             "verdict": v.verdict, "cause": v.cause, "detail": v.detail or None,
             "match": v.match, "rules_needed": v.rules_needed,
             "deterministic": c.deterministic,
             "deterministic_source": c.deterministic_source,
             "recorded_outcome": c.outcome_kind(), "blocks": len(c.blocks),
             "fidelity": v.fidelity, "fidelity_detected": c.fidelity_detected,
             "input_files": len(c.files), "seconds": round(v.seconds, 3) if v.seconds else None,
             "diff": v.diff or None}
    if v.metadata:
        entry["execution_metadata"] = v.metadata
    return entry


def json_report(run, verdicts):
    causes = by_cause(verdicts)
    return {
        "tool": "pyexecd conform",
        "policy": run["policy"],
        "server": run["server"],
        "deadline": run["deadline"],
        "deadline_ms": run.get("deadline_ms"),
        "normalize": run["normalize"],
        "inputs": run["inputs"],
        "wall_seconds": round(run["wall_seconds"], 2),
        "totals": totals(verdicts),
        "by_outcome_kind": by_outcome_kind(verdicts),
        "by_cause": {verdict: {cause: len(vs) for cause, vs in groups.items()}
                     for verdict, groups in causes.items()},
        "cases": [case_entry(v) for v in verdicts],
    }


def write_json(path, run, verdicts):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(json_report(run, verdicts), f, indent=1, ensure_ascii=False)
        f.write("\n")


# XML 1.0 allows tab, newline, carriage return and most of the BMP; outputs may hold
# other control characters (ANSI escapes), shown as \xNN.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(s):
    return _XML_BAD.sub(lambda m: f"\\x{ord(m.group(0)):02x}", s or "")


def junit(run, verdicts):
    """An ElementTree of JUnit XML: a testsuite per input file."""
    t = totals(verdicts)
    root = ET.Element("testsuites", name="pyexecd conform", tests=str(t["cases"]),
                      failures=str(t["fail"]), skipped=str(t["skip"]), errors="0",
                      time=f"{run['wall_seconds']:.3f}")
    by_file = defaultdict(list)
    for v in verdicts:
        by_file[v.case.path].append(v)
    for path, vs in by_file.items():
        ft = totals(vs)
        suite = ET.SubElement(root, "testsuite", name=os.path.basename(path),
                              tests=str(ft["cases"]), failures=str(ft["fail"]),
                              skipped=str(ft["skip"]), errors="0",
                              time=f"{sum(v.seconds or 0 for v in vs):.3f}")
        props = ET.SubElement(suite, "properties")
        for name, value in (("policy", run["policy"]), ("server", run["server"]["url"]),
                            ("deadline", run["deadline"]),
                            ("normalize", ",".join(run["normalize"])), ("file", path)):
            ET.SubElement(props, "property", name=name, value=_xml_text(str(value)))
        classname = "conform." + re.sub(r"[^\w]+", "_", os.path.basename(path))
        for v in vs:
            tc = ET.SubElement(suite, "testcase", classname=classname, name=v.case.id,
                               time=f"{v.seconds or 0:.3f}")
            if v.verdict == "fail":
                msg = v.cause + (f": {v.detail}" if v.detail else "")
                el = ET.SubElement(tc, "failure", message=_xml_text(msg), type=v.cause)
                el.text = _xml_text(v.diff or msg)
            elif v.verdict == "skip":
                msg = v.cause + (f": {v.detail}" if v.detail else "")
                ET.SubElement(tc, "skipped", message=_xml_text(msg))
            elif v.match == "normalized":
                out = ET.SubElement(tc, "system-out")
                out.text = "matched after normalization: " + ", ".join(v.rules_needed)
    return ET.ElementTree(root)


def write_junit(path, run, verdicts):
    tree = junit(run, verdicts)
    ET.indent(tree, space=" ")
    tree.write(path, encoding="utf-8", xml_declaration=True)
