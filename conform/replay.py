"""Replaying cases: each case is ONE POST /v1/execute holding its input files (when the
recording holds them) and all its code blocks in order, so the blocks share one
interpreter as they did in the recorded turn. Cases run concurrently (--jobs), the most
expensive first, with a progress line on stderr when stderr is a terminal.
"""

import concurrent.futures
import http.client
import json
import re
import sys
import threading
import time

from conform import cases as C
from conform import compare

# Libraries whose import and use are slow (seconds): a case using them starts early.
HEAVY_IMPORTS = {"sympy": 8, "sklearn": 4, "statsmodels": 4, "tensorflow": 10, "torch": 10,
                 "scipy": 2, "seaborn": 2, "altair": 2, "cv2": 1, "matplotlib": 1,
                 "pandas": 1}


def cost(case):
    """An estimate of how long a case takes, to start the slowest first (the sympy turn
    t-0162 alone takes 30-60 s on two cores)."""
    weight = 1 + sum(HEAVY_IMPORTS.get(m, 0) for m in case.imports())
    loops = sum(len(re.findall(r"\b(?:for|while)\b", c)) for c in case.codes)
    return len(case.blocks) * weight + loops * 0.1 + sum(len(c) for c in case.codes) / 5000


def request_parts(case):
    parts = [{"inlineData": {"mimeType": mime, "data": data}} for mime, data in case.files]
    parts += [{"executableCode": {"language": "PYTHON", "code": code}} for code in case.codes]
    return parts


def replay_one(client, case, env, rules, deadline_s, shape_only=False):
    """The Verdict of one case (replays it unless it is to be skipped)."""
    skip = case.skip_reason(env.get("stars"))
    if skip:
        return compare.Verdict(case, "skip", cause=skip[0], detail=skip[1],
                               fidelity=case.fidelity)
    start = time.monotonic()
    timeout = 60 + deadline_s * len(case.blocks)
    try:
        status, body, _ = client.execute(request_parts(case), fidelity=case.fidelity,
                                         timeout=timeout)
    except (OSError, http.client.HTTPException) as e:
        return compare.Verdict(case, "fail", cause=compare.CAUSE_REPLAY_ERROR,
                               detail=f"{type(e).__name__}: {e}",
                               seconds=time.monotonic() - start, fidelity=case.fidelity)
    seconds = time.monotonic() - start
    if status != 200 or not isinstance(body, dict):
        return compare.Verdict(case, "fail", cause=compare.CAUSE_REPLAY_ERROR,
                               detail=f"HTTP {status}: {json.dumps(body)[:500]}",
                               seconds=seconds, fidelity=case.fidelity)
    try:
        got = C.per_block(body, len(case.blocks))
    except ValueError as e:
        return compare.Verdict(case, "fail", cause=compare.CAUSE_REPLAY_ERROR, detail=str(e),
                               seconds=seconds, fidelity=case.fidelity)
    meta = [body["executionMetadata"]] if isinstance(body.get("executionMetadata"), dict) else []
    v = compare.judge(case, got, env, rules, meta, shape_only=shape_only)
    v.seconds = seconds
    v.fidelity = case.fidelity
    v.got = got
    return v


class Progress:
    """One self-rewriting line on stderr, only when stderr is a terminal."""

    def __init__(self, total, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total = total
        self.done = 0
        self.counts = {"pass": 0, "fail": 0, "skip": 0}
        self.running = {}
        self.lock = threading.Lock()
        self.start = time.monotonic()

    def started(self, case):
        with self.lock:
            self.running[case.id] = time.monotonic()
            self._draw()

    def finished(self, verdict):
        with self.lock:
            self.running.pop(verdict.case.id, None)
            self.done += 1
            self.counts[verdict.verdict] += 1
            self._draw()

    def _draw(self):
        if not self.enabled:
            return
        now = time.monotonic()
        running = ", ".join(f"{cid} {now - t:.0f}s" for cid, t in
                            sorted(self.running.items(), key=lambda kv: kv[1])[:3])
        line = (f"[{self.done}/{self.total}] pass {self.counts['pass']} fail "
                f"{self.counts['fail']} skip {self.counts['skip']}  {now - self.start:.0f}s"
                + (f"  running: {running}" if running else ""))
        self.stream.write("\r\x1b[K" + line[:150])
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def run(client, cases, env, rules, jobs=2, deadline_s=120, shape_only=False, progress=None):
    """Verdicts in the order of `cases`; skipped cases are decided without a request, the
    others replayed `jobs` at a time, the costliest first."""
    verdicts = {}
    todo = []
    for i, case in enumerate(cases):
        skip = case.skip_reason(env.get("stars"))
        if skip:
            v = compare.Verdict(case, "skip", cause=skip[0], detail=skip[1],
                                fidelity=case.fidelity)
            verdicts[i] = v
            if progress:
                progress.finished(v)
        else:
            todo.append(i)
    todo.sort(key=lambda i: -cost(cases[i]))

    def work(i):
        case = cases[i]
        if progress:
            progress.started(case)
        v = replay_one(client, case, env, rules, deadline_s, shape_only)
        if progress:
            progress.finished(v)
        return i, v

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        for i, v in pool.map(work, todo):
            verdicts[i] = v
    except BaseException:
        # Interrupted: drop what has not started; the caller stops the server, which ends
        # the requests in flight.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [verdicts[i] for i in range(len(cases))]
