#!/usr/bin/env python3
"""pyexecd's soak test: thousands of mixed requests against one server, then a check that
nothing leaked.

    make soak                              # 10,000 requests at concurrency 8: minutes
    make soak ARGS="--requests 1000"       # a short run
    python3 bench/soak.py --bin /tmp/build-soak/pyexecd --requests 2000 --concurrency 4

It starts its own server on loopback (a free port, a fresh state dir, a uid range of its
own, as tests/integration/harness.py does) with short limits so that the hostile cases
are cheap: --deadline-ms 2000 (a deadline hit costs 2 s of a worker, not 30) and
--session-idle-ms 3000 (abandoned sessions expire before the end); --workers 4 on any
machine, since deadline hits sleep rather than compute. Then --concurrency client threads
(each with one keep-alive http.client connection) send --requests HTTP requests drawn
from the mix below, the first --warmup of them as a warm-up phase.

The mix: each client draws an operation by weight; most are one request, a session flow
is several (create, 1-4 executes, sometimes a GET, then DELETE, abandon or a deadline).
Weights, per operation drawn:

    trivial      28   print(1+1), a nonce echoed back, globals across 3 blocks, no output
    exception    10   ZeroDivisionError, print-then-raise (OK + FAILED), SyntaxError, a
                      failed block between two that run
    deadline      1.5 sleep past the deadline after printing (partial output kept), a
                      busy loop, a deadline in the second of three blocks
    memory        3   bytearray of 2.5 GiB, a 745 GiB numpy array (both refused by
                      RLIMIT_AS), 10 MB pieces until MemoryError (touches ~2 GiB)
    fork          3   os.fork() in a loop, subprocess.run, os.system, multiprocessing,
                      1000 threads (seccomp, the policy's thread limit)
    output        4   1.5 MB printed (past --output-bytes: cut, with the note), a 2 MB
                      stderr flood then a raise, 21k lines of 64 bytes, just under the limit,
                      5 blocks of 1.1 MB (the request's 4 MiB total), invalid UTF-8
    image         5   matplotlib plt.show(), two figures, savefig to a file
    input         6   inlineData CSV read by pandas, CSV + text file, the work dir listed
    session       5   POST /v1/sessions, executes with state kept (input files too), GET;
                      then DELETE (40%, sometimes a call after it: 404), abandon (40%),
                      a deadline that ends it (10%: sessionEnded, then 404) or a second
                      call while one runs (10%: 409 or 200)
    generate      6   generateContent with the echo model: unary (a block, a failing
                      block, an input file), streamGenerateContent?alt=sse, countTokens
    bad          10   malformed JSON, wrong types, unknown fields, bad base64, bad MIME,
                      no code, too many parts, NUL, not UTF-8, deep nesting, 404, 405,
                      unknown session and model, bad generateContent; over raw sockets:
                      a 40 MB Content-Length (413), Content-Length twice (400)
    disconnect    1.5 the client goes away: mid-execution, mid-body, mid-stream

Every reply is checked: its status is in the set expected for its kind (a 429 or 503
with a proper error body counts as "shed", not as an anomaly; any other unexpected
status, 5xx included, is one), its body parses, and its shape is right: parts in order,
each code part followed by its results, outcomes among OUTCOME_OK / OUTCOME_FAILED /
OUTCOME_DEADLINE_EXCEEDED, the output the code must give, images that are PNGs, error
bodies {"error": {"code", "message", "status"}} with code equal to the HTTP status.

Measured at three quiet points (at start, after the warm-up, at the end; each once the
server is idle, the pool full and every session gone): the server's VmRSS, threads and
open descriptors, the zygote's descriptors and RSS, the mount table lines of both, the
cgroup directories under the server's pyexecd-<uid base> groups and the tasks in them,
the processes in the worker uid range and the zygote's children (beyond the pool: a
leak), the entries under the state dir's work/ and root/, and /healthz (zygote pid and
restarts, crash counters, deadline kills, sessions). Then SIGTERM: the server must exit
with status 0 and leave no process, zygote or cgroup directory behind.

Criteria (the exit status is 1 if any fails): no anomaly; the server alive at the end;
the same zygote, no restart; no worker crash or set-up failure; the server's deadline
kills equal to the deadlines the clients saw; no process beyond the pool; descriptors
and mounts no more at the end than after the warm-up; cgroup directories unchanged,
none holding a task but the pool's; no work dir left; no session left; the server's RSS
at the end at most 10% above its level after the warm-up; a clean SIGTERM exit; no
sanitizer report in the server's log.

An asan build (--bin build-asan/pyexecd, ASAN_OPTIONS=detect_leaks=1) adds
LeakSanitizer's report at the server's exit: the way to tell a leak from the allocator
keeping freed memory, which RSS alone cannot. There ASan's allocator ends the memory
bombs (worker crashes) and everything runs slower, so leave `memory` out (--mix) and give
a longer --deadline-ms. --mix KIND=WEIGHT,... runs a mix of chosen kinds (to find which
one grows the RSS); --server-log FILE keeps the server's whole stderr.

Prints the figures and writes them to bench/results/soak.md (--out to change). Stdlib
only; loopback only.
"""

import argparse
import base64
import collections
import http.client
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import (UID_RANGE, fd_count, follow_stderr,  # noqa: E402
                     processes_with_uid_in)
try:
    from harness import SANITIZER_MARKS  # noqa: E402
except ImportError:
    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

OUTCOMES = {"OUTCOME_OK", "OUTCOME_FAILED", "OUTCOME_DEADLINE_EXCEEDED"}
LIMITS = {"DEADLINE", "OUTPUT_BYTES", "IMAGES", "MEMORY", "DISK_SPACE", "FILE_SIZE",
          "THREADS", "OPEN_FILES", "CPU_TIME", "FORBIDDEN_SYSCALL", "INTERPRETER_CRASH"}
GRPC = {"INVALID_ARGUMENT", "NOT_FOUND", "ABORTED", "RESOURCE_EXHAUSTED", "UNAVAILABLE",
        "INTERNAL", "FAILED_PRECONDITION", "PERMISSION_DENIED", "UNAUTHENTICATED",
        "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "OUT_OF_RANGE", "ALREADY_EXISTS",
        "CANCELLED", "UNKNOWN", "DATA_LOSS"}
PART_KEYS = {"executableCode", "codeExecutionResult", "inlineData", "text"}
NOT_RUN = "This code block did not run"
GEN_KEYS = {"candidates", "usageMetadata", "modelVersion", "responseId", "createTime"}
SESSION_ID = re.compile(r"^sessions/((?:[a-z0-9-]{1,63}\.)?[0-9a-f]{32})$")
TOOLS = [{"codeExecution": {}}]
REQUEST_OUTPUT_BYTES = 4 << 20      # common/limits.h: output text per request


def code_part(code, **extra):
    return {"executableCode": {"language": "PYTHON", "code": code, **extra}}


def inline(mime, data):
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


def fenced(*blocks):
    return "Please run this.\n" + "".join(f"```python\n{b}\n```\n" for b in blocks)


# --- /proc and /sys -----------------------------------------------------------------------

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def status_kib(pid, field):
    text = read(f"/proc/{pid}/status") or ""
    m = re.search(rf"^{field}:\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else None


def mount_count(pid):
    text = read(f"/proc/{pid}/mountinfo")
    return None if text is None else len(text.splitlines())


def children_of(ppid):
    """pids whose parent is ppid (zombies included)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            text = read(f"/proc/{pid}/stat")
            if text:
                fields = text.rsplit(")", 1)[-1].split()
                if len(fields) > 1 and int(fields[1]) == ppid:
                    found.append(int(pid))
    return found


def cgroup_bases(server):
    """The server's workers' cgroup directories that exist: those its /healthz reported
    (sandbox/cgroup.c makes them below the server's own group, wherever that is), read
    once while it serves and remembered, so they can be looked for after it stopped."""
    if getattr(server, "cgroup_paths", None) is None:
        h = server.health()
        if not h:
            return []
        server.cgroup_paths = [d for d in (h.get("cgroups") or {}).values() if d]
    return [d for d in server.cgroup_paths if os.path.isdir(d)]


def cgroup_figures(server):
    """(directories, tasks) under the server's cgroups."""
    dirs = tasks = 0
    for base in cgroup_bases(server):
        for here, subdirs, files in os.walk(base):
            dirs += 1
            if "cgroup.procs" in files:
                tasks += len((read(os.path.join(here, "cgroup.procs")) or "").split())
    return dirs, tasks


def count_entries(path):
    try:
        return len(os.listdir(path))
    except OSError:
        return 0


def _descends_from(pid, ancestor):
    """Whether pid is ancestor or below it (walking PPid up to init)."""
    for _ in range(64):
        if pid == ancestor:
            return True
        m = re.search(r"^PPid:\s+(\d+)", read(f"/proc/{pid}/status") or "", re.M)
        if not m or int(m.group(1)) <= 1:
            return False
        pid = int(m.group(1))
    return False


def machine_busy_line(server_pid=None):
    """The load average, and the pyexecd processes that are not this run's server's."""
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    others = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit() and (read(f"/proc/{pid}/comm") or "").startswith("pyexecd"):
            others += not (server_pid and _descends_from(int(pid), server_pid))
    return load, others


def machine_line():
    cpu = "?"
    for line in (read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    m = re.search(r"MemTotal:\s+(\d+)", read("/proc/meminfo") or "")
    if m:
        mem = f"{int(m.group(1)) / 1024 / 1024:.0f} GiB"
    return (f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem} RAM, "
            f"Linux {platform.release()}")


def code_line(binary):
    def git(*a):
        p = subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True)
        return p.stdout.rstrip("\n") if p.returncode == 0 else ""
    sha = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--", "server", "sandbox", "common", "policies",
                "main.c", "CMakeLists.txt", "cmake").splitlines()
    files = ", ".join(line[3:] for line in dirty)
    return sha, (f"commit {sha}" + (f" with uncommitted changes in {files}" if files else
                                    ", no uncommitted change to the server's sources")
                 + f"; binary `{binary}`")


# --- the server ---------------------------------------------------------------------------

class Server:
    def __init__(self, binary, flags, workers, pool):
        self.binary = binary
        self.flags = list(flags)
        self.workers = workers
        self.pool = pool
        self.uid_base = 2100000000 + random.randrange(0, 100000) * UID_RANGE
        self.state_dir = tempfile.mkdtemp(prefix="pyexecd-soak-")
        self.log = []
        self.log_lock = threading.Lock()
        self.proc = None
        self.port = None

    def args(self):
        return [self.binary, "--listen", "127.0.0.1:0", "--state-dir", self.state_dir,
                "--worker-uid-base", str(self.uid_base), "--workers", str(self.workers),
                "--pool", str(self.pool)] + self.flags

    def start(self):
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace")

        def keep(line):
            with self.log_lock:
                self.log.append((time.time(), line))

        self.drainer, self.port = follow_stderr(self.proc, keep, 30)
        if self.port is None:
            self.kill()
            raise SystemExit("pyexecd did not start:\n" + self.log_text())
        end = time.time() + 180
        while time.time() < end:
            if self.proc.poll() is not None:
                raise SystemExit("pyexecd exited:\n" + self.log_text())
            # Ready (/readyz: the zygote is up), then a pool worker (/healthz).
            h = self.ready() and self.health()
            if h and h["pool"]["ready"] >= min(self.pool, 1):
                return
            time.sleep(0.1)
        self.kill()
        raise SystemExit("pyexecd not ready in 180 s:\n" + self.log_text())

    def ready(self):
        """Whether /readyz answers 200."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
            return status == 200
        except (OSError, http.client.HTTPException):
            return False

    def health(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            body = json.loads(resp.read())
            conn.close()
            return body
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def workers_left(self):
        return processes_with_uid_in(self.uid_base, self.uid_base + UID_RANGE)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self, n=60):
        with self.log_lock:
            return "\n".join(line for _, line in self.log[-n:])


# --- HTTP ---------------------------------------------------------------------------------

class Reply:
    def __init__(self, status, headers, raw, seconds):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.seconds = seconds
        self.json = None


class Client:
    """One keep-alive connection. A request that finds a reused connection closed by the
    server before any reply retries once on a new one (what every HTTP client does);
    retries are counted."""

    def __init__(self, port, timeout, stats):
        self.port = port
        self.timeout = timeout
        self.stats = stats
        self.conn = None
        self.used = False

    def close(self):
        if self.conn:
            self.conn.close()
        self.conn = None
        self.used = False

    def request(self, method, path, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
                self.used = False
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                stale = self.used
                self.close()
                if stale and attempt == 0:
                    self.stats.count("stale-connection retries")
                    continue
                raise
            except BaseException:
                self.close()
                raise
            seconds = time.perf_counter() - t0
            self.used = True
            reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw,
                          seconds)
            if resp.will_close:
                self.close()
            return reply


def raw_exchange(port, data, timeout=20, read_reply=True, shut_wr=False):
    """Sends bytes on a fresh socket; returns (status or None, headers, body, seconds)
    of the reply (None when the server closed without one)."""
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        if not read_reply:
            return None, {}, b"", time.perf_counter() - t0
        got = b""
        while True:
            head, sep, rest = got.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
            try:
                chunk = s.recv(65536)
            except ConnectionError:
                chunk = b""
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    seconds = time.perf_counter() - t0
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return None, {}, got, seconds
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = None
    return status, headers, body, seconds


# --- statistics ---------------------------------------------------------------------------

class Stats:
    def __init__(self, total):
        self.lock = threading.Lock()
        self.total = total
        self.running = 0
        self.done = 0
        self.kinds = collections.defaultdict(lambda: {
            "n": 0, "statuses": collections.Counter(), "anomalies": 0, "shed": 0,
            "latencies": []})
        self.examples = collections.defaultdict(list)
        self.counters = collections.Counter()

    def claim(self, limit):
        """Starts an operation unless the requests done and the operations running (each
        makes one or more) reach `limit`: a run ends a few requests past it at most (the
        rest of the session flows under way)."""
        with self.lock:
            if self.done + self.running >= limit:
                return False
            self.running += 1
            return True

    def release(self):
        with self.lock:
            self.running -= 1

    def count(self, name, n=1):
        with self.lock:
            self.counters[name] += n

    def record(self, kind, status, seconds, problems, what, shed=False):
        with self.lock:
            k = self.kinds[kind]
            k["n"] += 1
            k["statuses"][status if status is not None else "-"] += 1
            if seconds is not None:
                k["latencies"].append(seconds)
            if shed:
                k["shed"] += 1
            if problems:
                k["anomalies"] += 1
                if len(self.examples[kind]) < 5:
                    self.examples[kind].append((what, status, "; ".join(problems)[:600]))
            self.done += 1

    def anomalies(self):
        with self.lock:
            return sum(k["anomalies"] for k in self.kinds.values())


# --- reply checks: each returns a list of problems ----------------------------------------

def check_error_body(r, expect_grpc=None):
    p = []
    try:
        body = json.loads(r.raw)
    except ValueError:
        return [f"error body is not JSON: {r.raw[:120]!r}"]
    if not r.headers.get("content-type", "").startswith("application/json"):
        p.append(f"error Content-Type {r.headers.get('content-type')!r}")
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return p + [f"not a Google error body: {str(body)[:200]}"]
    err = body["error"]
    if not {"code", "message", "status"} <= set(err) <= {"code", "message", "status", "details"}:
        p.append(f"error fields {sorted(err)}")
    if err.get("code") != r.status:
        p.append(f"error code {err.get('code')} under HTTP {r.status}")
    if not isinstance(err.get("message"), str) or not err.get("message"):
        p.append("empty error message")
    if err.get("status") not in GRPC:
        p.append(f"error status {err.get('status')!r}")
    if expect_grpc and err.get("status") != expect_grpc:
        p.append(f"error status {err.get('status')}, expected {expect_grpc}")
    r.json = body
    return p


def b64_ok(data):
    try:
        base64.b64decode(data, validate=True)
        return True
    except (ValueError, TypeError):
        return False


def check_parts(parts, ncode, where="parts"):
    """The Gemini parts of an execute reply or a model turn: known kinds, results well
    formed and right after their code."""
    p = []
    if not isinstance(parts, list):
        return [f"{where} is not a list"]
    seen_code = 0
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or not part:
            p.append(f"{where}[{i}] is not an object")
            continue
        kinds = set(part) & PART_KEYS
        if len(kinds) != 1 or set(part) - PART_KEYS - {"thoughtSignature", "thought"}:
            p.append(f"{where}[{i}] keys {sorted(part)}")
            continue
        kind = kinds.pop()
        v = part[kind]
        if kind == "executableCode":
            seen_code += 1
            if not isinstance(v, dict) or v.get("language") != "PYTHON" or \
                    not isinstance(v.get("code"), str):
                p.append(f"{where}[{i}] bad executableCode")
            if i + 1 >= len(parts) or "codeExecutionResult" not in parts[i + 1]:
                p.append(f"{where}[{i}] code not followed by its result")
        elif kind == "codeExecutionResult":
            if not isinstance(v, dict) or not set(v) <= {"outcome", "output", "id"}:
                p.append(f"{where}[{i}] result keys {sorted(v) if isinstance(v, dict) else v}")
            elif v.get("outcome") not in OUTCOMES:
                p.append(f"{where}[{i}] outcome {v.get('outcome')!r}")
            elif "output" in v and (not isinstance(v["output"], str) or not v["output"]):
                p.append(f"{where}[{i}] output present but empty or not a string")
            if i == 0 or not ({"executableCode", "codeExecutionResult"} & set(parts[i - 1])):
                p.append(f"{where}[{i}] result not after code")
        elif kind == "inlineData":
            if not isinstance(v, dict) or not isinstance(v.get("mimeType"), str) or \
                    not isinstance(v.get("data"), str) or not b64_ok(v["data"]):
                p.append(f"{where}[{i}] bad inlineData")
        elif kind == "text" and not isinstance(v, str):
            p.append(f"{where}[{i}] text not a string")
    if seen_code != ncode:
        p.append(f"{seen_code} code parts in the reply, {ncode} sent")
    return p


def results_of(parts):
    return [x["codeExecutionResult"] for x in parts
            if isinstance(x, dict) and "codeExecutionResult" in x]


def images_after_code(parts):
    out, after = [], False
    for x in parts:
        if "executableCode" in x:
            after = True
        elif after and "inlineData" in x:
            out.append(x["inlineData"])
    return out


def exec_check(ncode, expect=None, cap=None):
    """A check for an execute-style reply: shape, then expect(body, results) -> problems.
    cap: the --output-bytes figure, bounding every output."""
    def check(r):
        try:
            body = json.loads(r.raw)
        except ValueError:
            return [f"body is not JSON: {r.raw[:120]!r}"]
        r.json = body
        if not isinstance(body, dict) or not set(body) <= {"parts", "executionMetadata"} \
                or "parts" not in body:
            return [f"top-level keys {sorted(body) if isinstance(body, dict) else type(body)}"]
        p = check_parts(body["parts"], ncode)
        meta = body.get("executionMetadata")
        if meta is not None:
            if not isinstance(meta, dict) or not meta or \
                    not set(meta) <= {"limitReached", "sessionEnded"}:
                p.append(f"executionMetadata {meta}")
            elif "limitReached" in meta and meta["limitReached"] not in LIMITS:
                p.append(f"limitReached {meta['limitReached']!r}")
            elif "sessionEnded" in meta and meta["sessionEnded"] is not True:
                p.append(f"sessionEnded {meta['sessionEnded']!r}")
        if p:
            return p
        rs = results_of(body["parts"])
        if cap is not None:
            total = 0
            for x in rs:
                n = len(x.get("output", "").encode())
                total += n
                if n > 2 * cap + 4096:
                    p.append(f"an output of {n} bytes, over twice the cap of {cap}")
            if total > REQUEST_OUTPUT_BYTES + 64 * 1024:
                p.append(f"{total} output bytes in one reply")
        if expect:
            p += expect(body, rs) or []
        return p
    return check


def limit_of(body):
    return (body.get("executionMetadata") or {}).get("limitReached")


def outcomes(rs):
    return [x["outcome"] for x in rs]


def expect_outputs(*want, limit=None):
    """Each result OK with exactly this output (None: no output field)."""
    def f(body, rs):
        got = [(x["outcome"], x.get("output")) for x in rs]
        exp = [("OUTCOME_OK", w) for w in want]
        p = [] if got == exp else [f"results {str(got)[:300]}, expected {str(exp)[:200]}"]
        if limit_of(body) != limit:
            p.append(f"limitReached {limit_of(body)}, expected {limit}")
        return p
    return f


def expect_last(outcome, contains=(), limit="any", ok_outcomes=None):
    """The last result has this outcome (or one of ok_outcomes) and its output holds each
    of contains; limit: the limitReached wanted ("any": not checked)."""
    def f(body, rs):
        if not rs:
            return ["no result"]
        last = rs[-1]
        allowed = ok_outcomes or {outcome}
        p = []
        if last["outcome"] not in allowed:
            p.append(f"last outcome {last['outcome']}, expected {sorted(allowed)}: "
                     f"{last.get('output', '')[:200]!r}")
        for c in contains:
            if c not in last.get("output", ""):
                p.append(f"{c!r} not in the output {last.get('output', '')[:200]!r}")
        wanted = limit if isinstance(limit, tuple) else (limit,)
        if limit != "any" and limit_of(body) not in wanted:
            p.append(f"limitReached {limit_of(body)}, expected {limit}")
        return p
    return f


def all_of(*fs):
    return lambda body, rs: [x for f in fs for x in (f(body, rs) or [])]


def custom(pred, what):
    return lambda body, rs: [] if pred(body, rs) else [f"{what}: {str(rs)[:300]}"]


def png_images(n):
    def f(body, rs):
        imgs = images_after_code(body["parts"])
        p = []
        if len(imgs) != n:
            p.append(f"{len(imgs)} images, expected {n}")
        for im in imgs:
            if im.get("mimeType") != "image/png" or \
                    not base64.b64decode(im["data"]).startswith(b"\x89PNG\r\n\x1a\n"):
                p.append(f"an image that is not a PNG ({im.get('mimeType')})")
        return p
    return f


# --- the operations -----------------------------------------------------------------------

class Op:
    """What one client thread does for one drawn operation: its requests, each checked
    and recorded."""

    def __init__(self, client, rng, stats, cfg, port):
        self.client = client
        self.rng = rng
        self.stats = stats
        self.cfg = cfg
        self.port = port

    def call(self, kind, method, path, body=None, expect=(200,), check=None, grpc=None,
             headers=None):
        """One request through the client's connection; returns the Reply (with .json
        when it parsed) or None when it failed."""
        shown = "" if body is None else body if isinstance(body, (str, bytes)) else json.dumps(body)
        what = f"{method} {path} {shown!s:.300}"
        try:
            r = self.client.request(method, path, body, headers)
        except Exception as e:   # noqa: BLE001 - every failure is a finding
            self.stats.record(kind, None, None, [f"no reply: {type(e).__name__}: {e}"], what)
            return None
        return self.judge(kind, r, expect, check, grpc, what)

    def judge(self, kind, r, expect, check, grpc, what):
        problems, shed = [], False
        if r.status not in expect and r.status in (429, 503):
            shed = True
            problems = check_error_body(r)
        elif r.status not in expect:
            problems = [f"HTTP {r.status}, expected {sorted(expect)}: {r.raw[:300]!r}"]
        elif r.status >= 400:
            problems = check_error_body(r, grpc)
        elif check:
            try:
                problems = check(r)
            except Exception as e:   # noqa: BLE001 - a reply the checks did not foresee
                problems = [f"check raised {type(e).__name__}: {e}"]
        if r.status >= 500 and not shed:
            problems.append(f"server error {r.status}")
        self.stats.record(kind, r.status, r.seconds, problems, what, shed)
        if r.json is None:
            try:
                r.json = json.loads(r.raw)
            except ValueError:
                pass
        r.ok = r.status in expect and not problems
        r.shed = shed
        return r

    def execute(self, kind, parts, expect, ncode=None, path="/v1/execute", status=(200,)):
        body = {"parts": parts}
        n = ncode if ncode is not None else sum("executableCode" in x for x in parts)
        r = self.call(kind, "POST", path, body, expect=status,
                      check=exec_check(n, expect, self.cfg.output_bytes))
        if r is not None and r.json and r.status == 200:
            for x in results_of(r.json.get("parts", [])):
                if x.get("outcome") == "OUTCOME_DEADLINE_EXCEEDED":
                    self.stats.count("deadlines seen")
        return r

    def run(self, kind, *codes, expect=None, path="/v1/execute"):
        return self.execute(kind, [code_part(c) for c in codes], expect, path=path)

    # -- trivial ---------------------------------------------------------------------------

    def trivial(self):
        v = self.rng.random()
        if v < 0.4:
            self.run("trivial", "print(1+1)", expect=expect_outputs("2\n"))
        elif v < 0.7:
            nonce = self.rng.getrandbits(60)
            self.run("trivial", f"print({nonce})", expect=expect_outputs(f"{nonce}\n"))
        elif v < 0.9:
            x = self.rng.randrange(1000)
            self.run("trivial", f"x = {x}", "x += 1", "print(x)",
                     expect=expect_outputs(None, None, f"{x + 1}\n"))
        else:
            self.run("trivial", "y = 1", expect=expect_outputs(None))

    # -- exceptions ------------------------------------------------------------------------

    def exception(self):
        v = self.rng.randrange(4)
        if v == 0:
            self.run("exception", "1/0", expect=expect_last(
                "OUTCOME_FAILED", ("division by zero\nTraceback (most recent call last):",
                                   "ZeroDivisionError: division by zero"), limit=None))
        elif v == 1:
            self.run("exception", "print('before')\n{}['k']", expect=all_of(
                custom(lambda b, rs: outcomes(rs) == ["OUTCOME_OK", "OUTCOME_FAILED"] and
                       rs[0].get("output") == "before\n", "print then raise: OK + FAILED"),
                expect_last("OUTCOME_FAILED", ("KeyError: 'k'",), limit=None)))
        elif v == 2:
            self.run("exception", "def f(:\n    pass", expect=expect_last(
                "OUTCOME_FAILED", ("SyntaxError",), limit=None))
        else:
            self.run("exception", "a = 5", "raise ValueError('mid')", "print(a * 2)",
                     expect=custom(lambda b, rs: outcomes(rs) == [
                         "OUTCOME_OK", "OUTCOME_FAILED", "OUTCOME_OK"] and
                         "ValueError: mid" in rs[1].get("output", "") and
                         rs[2].get("output") == "10\n", "globals kept after a failed block"))

    # -- deadlines -------------------------------------------------------------------------

    def deadline(self):
        v = self.rng.random()
        if v < 0.6:
            self.run("deadline", "print('before', flush=True)\nimport time\ntime.sleep(60)",
                     expect=custom(lambda b, rs: rs == [{
                         "outcome": "OUTCOME_DEADLINE_EXCEEDED", "output": "before\n"}] and
                         limit_of(b) == "DEADLINE", "partial output at the deadline"))
        elif v < 0.8:
            self.run("deadline", "while True:\n    pass",
                     expect=custom(lambda b, rs: rs == [{
                         "outcome": "OUTCOME_DEADLINE_EXCEEDED"}] and
                         limit_of(b) == "DEADLINE", "a busy loop at the deadline"))
        else:
            self.run("deadline", "print('a')", "import time\ntime.sleep(60)", "print('c')",
                     expect=custom(lambda b, rs: outcomes(rs) == [
                         "OUTCOME_OK", "OUTCOME_DEADLINE_EXCEEDED", "OUTCOME_FAILED"] and
                         NOT_RUN in rs[2].get("output", "") and
                         limit_of(b) == "DEADLINE", "the block after a deadline did not run"))

    # -- memory bombs ----------------------------------------------------------------------

    def memory(self):
        v = self.rng.random()
        if v < 0.45:
            self.run("memory", "x = bytearray(5 * 2**29)\nprint('allocated')",
                     expect=expect_last("OUTCOME_FAILED", ("\nMemoryError\n",),
                                        limit="MEMORY"))
        elif v < 0.8:
            self.run("memory", "import numpy as np\nx = np.ones((10**6, 10**5))",
                     expect=expect_last("OUTCOME_FAILED", ("_ArrayMemoryError",),
                                        limit="MEMORY"))
        else:
            self.run("memory", "chunks = []\ntry:\n    while True:\n"
                     "        chunks.append(bytes(10**7))\nexcept MemoryError:\n"
                     "    print('chunks', len(chunks))\n    raise",
                     expect=all_of(
                         expect_last("OUTCOME_FAILED", ("MemoryError",), limit="MEMORY"),
                         custom(lambda b, rs: rs[0].get("output", "").startswith("chunks "),
                                "the count before MemoryError")))

    # -- fork bombs and other children -------------------------------------------------------

    def fork(self):
        v = self.rng.randrange(5)
        if v == 0:
            self.run("fork", "import os\nwhile True:\n    os.fork()",
                     expect=expect_last("OUTCOME_FAILED",
                                        ("PermissionError: [Errno 1] Operation not permitted",),
                                        limit=None))
        elif v == 1:
            self.run("fork", "import subprocess\nsubprocess.run(['ls', '/'])",
                     expect=expect_last("OUTCOME_FAILED", ("PermissionError",), limit=None))
        elif v == 2:
            # Whatever system() makes of a refused clone, the reply must be well formed.
            self.run("fork", "import os\nprint(os.system('echo hi'))",
                     expect=expect_last("OUTCOME_OK", ok_outcomes={"OUTCOME_OK", "OUTCOME_FAILED"}))
        elif v == 3:
            self.run("fork", "import multiprocessing as mp\n"
                     "with mp.Pool(4) as p:\n    print(p.map(abs, [-1, -2]))",
                     expect=expect_last("OUTCOME_FAILED", ok_outcomes=OUTCOMES))
        else:
            self.run("fork", "import threading\nstop = threading.Event()\nthreads = []\n"
                     "try:\n    for i in range(1000):\n"
                     "        t = threading.Thread(target=stop.wait, daemon=True)\n"
                     "        t.start()\n        threads.append(t)\n"
                     "except RuntimeError:\n    print('started', len(threads))\n    raise",
                     expect=expect_last("OUTCOME_FAILED", ("can't start new thread",),
                                        limit="THREADS"))

    # -- large outputs ---------------------------------------------------------------------

    def output(self):
        cap = self.cfg.output_bytes
        note = f"[output truncated: more than {cap} bytes were written]"
        v = self.rng.randrange(6)

        def cut_ok(b, rs):
            out = rs[0].get("output", "")
            return (rs[0]["outcome"] == "OUTCOME_OK" and out.startswith("x" * 1000) and
                    out.rstrip("\n").endswith(note) and
                    len(out.encode()) <= cap + 200 and limit_of(b) == "OUTPUT_BYTES")
        if v == 0:
            self.run("output", f"print('x' * {cap + cap // 2})",
                     expect=custom(cut_ok, "stdout cut at the cap with the note"))
        elif v == 1:
            self.run("output", f"import sys\nsys.stderr.write('e' * {2 * cap})\n"
                     "raise ValueError('after the flood')",
                     expect=expect_last("OUTCOME_FAILED", ("ValueError: after the flood",),
                                        limit="OUTPUT_BYTES"))
        elif v == 2:
            self.run("output", f"for i in range({cap // 50}):\n    print('x' * 60, i)",
                     expect=custom(lambda b, rs: rs[0]["outcome"] == "OUTCOME_OK" and
                                   note in rs[0].get("output", "") and
                                   limit_of(b) == "OUTPUT_BYTES", "many lines cut"))
        elif v == 3:
            n = cap - 1000
            self.run("output", f"print('y' * {n})", expect=expect_outputs("y" * n + "\n"))
        elif v == 4:
            blocks = [f"print('z' * {cap + 100})"] * 5
            self.run("output", *blocks, expect=custom(
                lambda b, rs: len(rs) == 5 and all(x["outcome"] == "OUTCOME_OK" for x in rs)
                and limit_of(b) == "OUTPUT_BYTES", "five blocks past the cap"))
        else:
            self.run("output", "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe\\xc3 end\\n')",
                     expect=custom(lambda b, rs: rs[0]["outcome"] == "OUTCOME_OK" and
                                   rs[0].get("output", "").startswith("ok \ufffd") and
                                   rs[0]["output"].endswith(" end\n"), "invalid UTF-8 repaired"))

    # -- images ----------------------------------------------------------------------------

    def image(self):
        v = self.rng.randrange(3)
        if v == 0:
            self.run("image", "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\n"
                     "plt.title('soak')\nplt.show()\nprint('shown')",
                     expect=all_of(expect_outputs("shown\n"), png_images(1)))
        elif v == 1:
            self.run("image", "import matplotlib.pyplot as plt\nfor k in range(2):\n"
                     "    plt.figure()\n    plt.bar([1, 2], [k, k + 1])\n    plt.show()",
                     expect=all_of(expect_outputs(None), png_images(2)))
        else:
            self.run("image", "import matplotlib.pyplot as plt\nplt.scatter([1, 2], [2, 1])\n"
                     "plt.savefig('out.png')",
                     expect=all_of(expect_outputs(None), png_images(1)))

    # -- input files -----------------------------------------------------------------------

    def input(self):
        rows = [(self.rng.randrange(100), self.rng.randrange(100))
                for _ in range(self.rng.randrange(1, 200))]
        csv = ("a,b\n" + "".join(f"{a},{b}\n" for a, b in rows)).encode()
        total = sum(a for a, _ in rows)
        v = self.rng.randrange(3)
        if v == 0:
            self.execute("input", [inline("text/csv", csv), code_part(
                "import pandas as pd\ndf = pd.read_csv('input_file_0.csv')\nprint(df.a.sum())")],
                expect=expect_outputs(f"{total}\n"))
        elif v == 1:
            note = f"note {self.rng.getrandbits(32)}"
            self.execute("input", [inline("text/csv", csv), inline("text/plain", note.encode()),
                                   code_part("print(open('input_file_1.txt').read())\n"
                                             "print(len(open('input_file_0.csv').read()))")],
                         expect=expect_outputs(f"{note}\n{len(csv)}\n"))
        else:
            self.execute("input", [inline("text/csv", csv), inline("text/x-python", b"x = 1\n"),
                                   code_part("import os\nprint(sorted(os.listdir('.')))")],
                         expect=expect_outputs("['input_file_0.csv', 'input_file_1.py']\n"))

    # -- sessions --------------------------------------------------------------------------

    def session(self):
        r = self.call("session.create", "POST", "/v1/sessions", {}, check=check_session_info)
        if r is not None and r.shed:
            time.sleep(0.2)      # the session limit: back off as a client would
        if r is None or not r.ok or r.status != 200:
            return
        sid = SESSION_ID.match(r.json["name"]).group(1)
        base = f"/v1/sessions/{sid}"
        nfiles = 0
        for i in range(1, self.rng.randint(1, 4) + 1):
            parts = []
            if self.rng.random() < 0.25:
                parts.append(inline("text/plain", f"file {nfiles}".encode()))
                parts.append(code_part("n = globals().get('n', 0) + 1\n"
                                       f"print(n, open('input_file_{nfiles}.txt').read())"))
                want = f"{i} file {nfiles}\n"
                nfiles += 1
            else:
                parts.append(code_part("n = globals().get('n', 0) + 1\nprint(n)"))
                want = f"{i}\n"
            r = self.execute("session.execute", parts, expect_outputs(want),
                             path=f"{base}:execute")
            if r is None or not r.ok:
                return
        if self.rng.random() < 0.3:
            self.call("session.get", "GET", base, check=lambda r: check_session_info(
                r, executions=i))
        v = self.rng.random()
        if v < 0.4:
            self.call("session.delete", "DELETE", base, check=lambda r: (
                [] if json.loads(r.raw) == {} else [f"DELETE body {r.raw[:100]!r}"]))
            if self.rng.random() < 0.4:
                self.call("session.ended", "POST", f"{base}:execute",
                          {"parts": [code_part("print(n)")]}, expect=(404,), grpc="NOT_FOUND")
        elif v < 0.8:
            self.stats.count("sessions abandoned")
        elif v < 0.9:
            r = self.execute("session.execute", [code_part(
                "print('before', flush=True)\nimport time\ntime.sleep(60)")],
                custom(lambda b, rs: rs == [{"outcome": "OUTCOME_DEADLINE_EXCEEDED",
                                             "output": "before\n"}] and
                       b.get("executionMetadata") == {"limitReached": "DEADLINE",
                                                      "sessionEnded": True},
                       "a deadline ends the session"), path=f"{base}:execute")
            self.call("session.ended", "GET", base, expect=(404,), grpc="NOT_FOUND")
        else:
            # A second call while one runs: 409 ABORTED (or 200 if it got there first).
            slow = "import time\ntime.sleep(0.5)\nprint('slow')"
            body = json.dumps({"parts": [code_part(slow)]})
            a = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.cfg.timeout)
            what = f"POST {base}:execute (slow, then a second call)"
            try:
                t0 = time.perf_counter()
                a.request("POST", f"{base}:execute", body=body,
                          headers={"Content-Type": "application/json"})
                time.sleep(0.1)
                self.call("session.busy", "POST", f"{base}:execute",
                          {"parts": [code_part("print('second')")]}, expect=(200, 409),
                          grpc="ABORTED", check=exec_check(1, custom(
                              lambda b, rs: rs[0]["outcome"] == "OUTCOME_OK", "second call")))
                resp = a.getresponse()
                r = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                          resp.read(), time.perf_counter() - t0)
                self.judge("session.execute", r, (200,), exec_check(1, expect_outputs("slow\n")),
                           None, what)
            except Exception as e:   # noqa: BLE001
                self.stats.record("session.execute", None, None,
                                  [f"no reply: {type(e).__name__}: {e}"], what)
            finally:
                a.close()
            self.call("session.delete", "DELETE", base)

    # -- generateContent -------------------------------------------------------------------

    def generate(self):
        v = self.rng.randrange(6)
        path = "/v1beta/models/echo:generateContent"
        if v == 0:
            k = self.rng.randrange(10**6)
            self.call("generate", "POST", path, {
                "contents": [{"role": "user", "parts": [{"text": fenced(f"print({k} * 2)")}]}],
                "tools": TOOLS}, check=gen_check([("OUTCOME_OK", f"{2 * k}\n")]))
        elif v == 1:
            self.call("generate", "POST", path, {
                "contents": [{"role": "user",
                              "parts": [{"text": fenced("v = 3", "print(v / 0)")}]}],
                "tools": TOOLS}, check=gen_check([("OUTCOME_OK", None),
                                                  ("OUTCOME_FAILED", "ZeroDivisionError")]))
        elif v == 2:
            self.call("generate", "POST", path, {
                "contents": [{"role": "user", "parts": [
                    inline("text/csv", b"q\n4\n5\n"),
                    {"text": fenced("print(open('input_file_0.csv').read().split()[1:])")}]}],
                "tools": TOOLS}, check=gen_check([("OUTCOME_OK", "['4', '5']\n")]))
        elif v == 3:
            self.call("generate", "POST", path, {
                "contents": [{"role": "user", "parts": [{"text": "hello, no code here"}]}],
                "tools": TOOLS}, check=gen_check([]))
        elif v == 4:
            k = self.rng.randrange(10**6)
            self.call("generate.stream", "POST",
                      "/v1beta/models/echo:streamGenerateContent?alt=sse", {
                          "contents": [{"role": "user",
                                        "parts": [{"text": fenced(f"print({k})")}]}],
                          "tools": TOOLS}, check=sse_check([("OUTCOME_OK", f"{k}\n")]))
        else:
            self.call("generate", "POST", "/v1beta/models/echo:countTokens",
                      {"contents": [{"role": "user", "parts": [{"text": "abcdefgh"}]}]},
                      check=lambda r: [] if isinstance(json.loads(r.raw).get("totalTokens"), int)
                      else [f"countTokens {r.raw[:100]!r}"])

    # -- bad requests ----------------------------------------------------------------------

    BAD = [
        # (method, path, body, status, grpc)
        ("POST", "/v1/execute", b'{"executableCode": {"language": "PYTHON", "code": ',
         400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", {"executableCode": {"language": "PYTHON", "code": 5}},
         400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", {"executableCode": {"language": "RUST", "code": "x"}},
         400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", {"executableCode": {"language": "PYTHON", "code": "1",
                                                    "flavour": "x"}}, 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", {"executableCode": {"language": "PYTHON", "code": ""}},
         400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", {"parts": [{"inlineData": {"mimeType": "text/csv",
                                                           "data": "***"}},
                                           code_part("1")]}, 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", {"parts": [{"inlineData": {"mimeType": "application/x-foo",
                                                           "data": "eA=="}},
                                           code_part("1")]}, 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", {"parts": []}, 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", {"parts": [code_part("1")] * 65}, 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", b'{"executableCode": {"language": "PYTHON", "code": "\\u0000"}}',
         400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", b'{"executableCode": {"language": "PYTHON", "code": "\xff\xfe"}}',
         400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", b"[" * 20000, 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", [1, 2, 3], 400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", {"parts": [{"codeExecutionResult": {"outcome": "OUTCOME_OK"}}]},
         400, "INVALID_ARGUMENT"),
        ("POST", "/v1/execute", b"", 400, "INVALID_ARGUMENT"),
        ("GET", "/v1/execute", None, 405, "INVALID_ARGUMENT"),
        ("POST", "/v1/nothing-here", {}, 404, "NOT_FOUND"),
        ("POST", "/v1/sessions/0123456789abcdef0123456789abcdef:execute",
         {"parts": [code_part("1")]}, 404, "NOT_FOUND"),
        ("DELETE", "/v1/sessions/not-an-id", None, 404, "NOT_FOUND"),
        ("POST", "/v1beta/models/echo:generateContent", {"contents": []}, 400, "INVALID_ARGUMENT"),
        ("POST", "/v1beta/models/echo:generateContent", b"{not json", 400, "INVALID_ARGUMENT"),
        ("POST", "/v1beta/models/echo:generateContent",
         {"contents": [{"role": "user", "parts": [{"text": 7}]}]}, 400, "INVALID_ARGUMENT"),
        ("POST", "/v1beta/models/no-such-model:generateContent",
         {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, 404, "NOT_FOUND"),
    ]

    def bad(self):
        if self.rng.random() < 0.15:
            return self.bad_raw()
        method, path, body, status, grpc = self.rng.choice(self.BAD)
        self.call("bad", method, path, body, expect=(status,), grpc=grpc)

    def bad_raw(self):
        """Framing the server refuses before reading a body: a declared length over the
        28 MiB limit (413), Content-Length twice (400); the connection is closed after."""
        if self.rng.random() < 0.5:
            data = (b"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 40000000\r\n\r\n")
            want = 413
        else:
            data = (b"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                    b"Content-Length: 2\r\n\r\n{}")
            want = 400
        what = data.decode().split("\r\n\r\n")[0].replace("\r\n", " | ")
        try:
            status, headers, body, seconds = raw_exchange(self.port, data)
        except Exception as e:   # noqa: BLE001
            self.stats.record("bad.raw", None, None, [f"no reply: {type(e).__name__}: {e}"], what)
            return
        if status is None:
            self.stats.record("bad.raw", None, seconds, [f"no HTTP reply: {body[:100]!r}"], what)
            return
        self.judge("bad.raw", Reply(status, headers, body, seconds), (want,), None,
                   "INVALID_ARGUMENT", what)

    # -- clients that go away ----------------------------------------------------------------

    def disconnect(self):
        v = self.rng.randrange(3)
        if v == 0:
            body = json.dumps({"parts": [code_part("import time\ntime.sleep(0.3)\nprint(1)")]})
            data = (f"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
            what = "execute, closed at once"
        elif v == 1:
            data = (b"POST /v1/execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n"
                    + b'{"executableCode": {"language": "PYTHON", "code": "' + b"x" * 500)
            what = "body cut short, closed"
        else:
            body = json.dumps({"contents": [{"role": "user", "parts": [{"text": fenced(
                "import time\ntime.sleep(0.2)\nprint(1)", "print(2)")}]}], "tools": TOOLS})
            data = (f"POST /v1beta/models/echo:streamGenerateContent?alt=sse HTTP/1.1\r\n"
                    f"Host: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
            what = "stream, closed after its first bytes"
        t0 = time.perf_counter()
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=20)
            try:
                s.sendall(data)
                if v == 2:
                    s.recv(64)
                else:
                    time.sleep(0.02)
            finally:
                s.close()
        except Exception as e:   # noqa: BLE001
            self.stats.record("disconnect", None, None, [f"{type(e).__name__}: {e}"], what)
            return
        self.stats.record("disconnect", None, time.perf_counter() - t0, [], what)


def check_session_info(r, executions=0):
    body = json.loads(r.raw)
    r.json = body
    p = []
    want = {"name", "state", "createTime", "lastUseTime", "expireTime", "executions",
            "memoryBytes"}
    if not isinstance(body, dict) or set(body) != want:
        return [f"session fields {sorted(body) if isinstance(body, dict) else body}"]
    if not SESSION_ID.match(body["name"]):
        p.append(f"session name {body['name']!r}")
    if body["state"] not in ("ACTIVE", "RUNNING"):
        p.append(f"session state {body['state']!r}")
    if body["executions"] != executions:
        p.append(f"executions {body['executions']}, expected {executions}")
    return p


def gen_parts_check(parts, want):
    """The model turn's parts: well formed, and the results as wanted (outcome, output
    or a fragment of it, None for no output)."""
    p = check_parts(parts, len(want), "candidates[0].content.parts")
    rs = results_of(parts)
    got = [(x["outcome"], x.get("output")) for x in rs]
    if len(got) != len(want):
        p.append(f"results {str(got)[:200]}, expected {want}")
    else:
        for (go, gout), (wo, wout) in zip(got, want):
            if go != wo or (wout is None and gout is not None) or \
                    (wout is not None and (gout is None or wout not in gout)):
                p.append(f"results {str(got)[:200]}, expected {want}")
                break
    return p


def gen_check(want):
    def check(r):
        body = json.loads(r.raw)
        r.json = body
        if not isinstance(body, dict) or set(body) != GEN_KEYS:
            return [f"response keys {sorted(body) if isinstance(body, dict) else body}"]
        cand = body["candidates"]
        if len(cand) != 1 or cand[0].get("finishReason") != "STOP" or \
                cand[0].get("content", {}).get("role") != "model":
            return [f"candidate {str(cand)[:200]}"]
        return gen_parts_check(cand[0]["content"].get("parts"), want)
    return check


def sse_check(want):
    def check(r):
        if r.headers.get("content-type") != "text/event-stream":
            return [f"stream Content-Type {r.headers.get('content-type')!r}"]
        rest, events = r.raw, []
        while rest:
            if not rest.startswith(b"data: "):
                return [f"not an event: {rest[:80]!r}"]
            end = rest.find(b"\r\n\r\n")
            if end < 0:
                return [f"an event without its blank line: {rest[:80]!r}"]
            events.append(json.loads(rest[6:end]))
            rest = rest[end + 4:]
        if not events:
            return ["an empty stream"]
        parts = []
        for e in events:
            if "error" in e:
                return [f"an error event: {str(e)[:200]}"]
            parts += e["candidates"][0]["content"].get("parts", [])
        p = gen_parts_check(parts, want)
        if events[-1]["candidates"][0].get("finishReason") != "STOP" or \
                any("finishReason" in e["candidates"][0] for e in events[:-1]):
            p.append("finishReason not on the last event alone")
        return p
    return check


# --- the mix ------------------------------------------------------------------------------

MIX = [("trivial", 28), ("exception", 10), ("deadline", 1.5), ("memory", 3), ("fork", 3),
       ("output", 4), ("image", 5), ("input", 6), ("session", 5), ("generate", 6),
       ("bad", 10), ("disconnect", 1.5)]


def run_phase(name, limit, cfg, server, stats, progress):
    """Runs clients until `limit` requests in all have been issued; each client closes
    its connection when it stops."""
    names = [n for n, _ in cfg.mix]
    weights = [w for _, w in cfg.mix]
    errors = []

    def client_main(idx):
        rng = random.Random(f"{cfg.seed}-{name}-{idx}")
        client = Client(server.port, cfg.timeout, stats)
        op = Op(client, rng, stats, cfg, server.port)
        try:
            while stats.claim(limit):
                try:
                    kind = rng.choices(names, weights)[0]
                    stats.count(f"op {kind}")
                    getattr(op, kind)()
                finally:
                    stats.release()
        except BaseException as e:   # noqa: BLE001 - a bug of this script: report it
            errors.append(f"client {idx}: {type(e).__name__}: {e}")
        finally:
            client.close()

    threads = [threading.Thread(target=client_main, args=(i,), daemon=True)
               for i in range(cfg.concurrency)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        progress(name)
        time.sleep(0.5)
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("soak.py failed:\n" + "\n".join(errors))


# --- quiet points -------------------------------------------------------------------------

def quiesce(server, timeout):
    """Waits until the server is idle: nothing running or queued, the pool full, no
    session, and no process in the uid range beyond the pool. Returns (health, seconds
    waited, whether it got there)."""
    t0 = time.time()
    h = None
    while time.time() - t0 < timeout:
        h = server.health()
        if h and h["workers"]["running"] == 0 and h["queue"]["depth"] == 0 and \
                h["sessions"]["active"] == 0 and h["pool"]["ready"] == h["pool"]["target"] \
                and h["pool"]["starting"] == 0 and \
                len(server.workers_left()) == h["pool"]["target"]:
            time.sleep(1.0)      # settle: then measure
            return server.health(), time.time() - t0, True
        time.sleep(0.2)
    return h, time.time() - t0, False


def snapshot(server, timeout):
    h, waited, quiet = quiesce(server, timeout)
    pid = server.proc.pid
    zpid = h["zygote"]["pid"] if h else None
    dirs, tasks = cgroup_figures(server)
    workers = server.workers_left()
    return {
        "quiet": quiet, "waited_s": waited, "health": h,
        "rss_kib": status_kib(pid, "VmRSS"), "threads": status_kib(pid, "Threads"),
        "rss_anon_kib": status_kib(pid, "RssAnon"), "rss_file_kib": status_kib(pid, "RssFile"),
        "fds": fd_count(pid), "mounts": mount_count(pid),
        "zygote_pid": zpid, "zygote_rss_kib": status_kib(zpid, "VmRSS") if zpid else None,
        "zygote_fds": fd_count(zpid) if zpid else None,
        "zygote_mounts": mount_count(zpid) if zpid else None,
        "zygote_children": len(children_of(zpid)) if zpid else None,
        "uid_processes": len(workers), "pool_ready": h["pool"]["ready"] if h else None,
        "cgroup_dirs": dirs, "cgroup_tasks": tasks,
        "cgroup_hierarchies": len(cgroup_bases(server)),
        "work_dirs": count_entries(os.path.join(server.state_dir, "work")) +
                     count_entries(os.path.join(server.state_dir, "root")),
        "sessions": h["sessions"]["active"] if h else None,
        "counters": dict(h["counters"]) if h else {},
        "zygote_restarts": h["zygote"]["restarts"] if h else None,
    }


def stop(server):
    """SIGTERM; returns (exit status or None, seconds, processes left, zygote left,
    cgroup directories left)."""
    h = server.health()
    zpid = h["zygote"]["pid"] if h else None
    t0 = time.time()
    server.proc.send_signal(signal.SIGTERM)
    try:
        rc = server.proc.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
        server.kill()
    seconds = time.time() - t0
    server.drainer.join(10)     # the rest of its log (a sanitizer's report at exit)
    end = time.time() + 5
    while True:
        left = server.workers_left()
        zleft = bool(zpid) and (read(f"/proc/{zpid}/status") or "State:\tZ").find("State:\tZ") < 0
        cg = cgroup_bases(server)
        if (not left and not zleft and not cg) or time.time() > end:
            break
        time.sleep(0.1)
    return rc, seconds, left, zleft, cg


# --- report -------------------------------------------------------------------------------

def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def ms(x):
    return "" if x is None else f"{x * 1000:.0f}" if x >= 0.1 else f"{x * 1000:.1f}"


def mib(kib):
    return "?" if kib is None else f"{kib / 1024:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("PYEXECD_BIN") or
                    os.path.join(ROOT, "build", "pyexecd"), help="the server binary")
    ap.add_argument("--requests", type=int, default=10000, help="HTTP requests in all")
    ap.add_argument("--concurrency", type=int, default=8, help="client threads")
    ap.add_argument("--warmup", type=int, default=500,
                    help="requests of the warm-up phase (counted in --requests)")
    ap.add_argument("--workers", type=int, default=4, help="the server's --workers")
    ap.add_argument("--pool", type=int, default=2, help="the server's --pool")
    ap.add_argument("--deadline-ms", type=int, default=2000)
    ap.add_argument("--session-idle-ms", type=int, default=3000)
    ap.add_argument("--output-bytes", type=int, default=1048576)
    ap.add_argument("--timeout", type=float, default=120, help="client timeout per request, s")
    ap.add_argument("--seed", default=None, help="the mix's seed (default: random)")
    ap.add_argument("--mix", dest="mix_spec", default=None,
                    help="other weights, e.g. trivial=1,output=1 (kinds left out: 0); to "
                         "find which kind a leak comes from")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "soak.md"))
    ap.add_argument("--server-log", default=None, help="write the server's whole stderr here")
    cfg = ap.parse_args()
    cfg.mix = MIX
    if cfg.mix_spec:
        known = dict(MIX)
        try:
            cfg.mix = [(k, float(w)) for k, w in
                       (item.split("=") for item in cfg.mix_spec.split(","))]
        except ValueError:
            raise SystemExit(f"--mix: KIND=WEIGHT,... (kinds: {', '.join(known)})")
        unknown = [k for k, _ in cfg.mix if k not in known]
        if unknown or not any(w > 0 for _, w in cfg.mix):
            raise SystemExit(f"--mix: unknown kind {unknown} or no weight (kinds: "
                             f"{', '.join(known)})")
    cfg.seed = cfg.seed or str(random.randrange(10**9))
    cfg.warmup = min(cfg.warmup, cfg.requests)
    binary = os.path.abspath(cfg.bin)
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"no server binary at {binary} (make, or --bin)")

    flags = ["--deadline-ms", str(cfg.deadline_ms), "--session-idle-ms",
             str(cfg.session_idle_ms), "--output-bytes", str(cfg.output_bytes)]
    server = Server(binary, flags, cfg.workers, cfg.pool)
    started_at = time.time()
    load0, others0 = machine_busy_line()
    tty = sys.stderr.isatty()
    stats = Stats(cfg.requests)
    rss_trace = []          # (requests done, server VmRSS KiB), every second

    def log(msg):
        if tty:
            sys.stderr.write("\r\033[K")
        print(f"soak: {msg}", file=sys.stderr, flush=True)

    last = [0.0, 0, time.time()]

    def progress(phase):
        now = time.time()
        if now - last[0] >= 1.0:
            rss = status_kib(server.proc.pid, "VmRSS")
            rss_trace.append((stats.done, rss))
            last[0] = now
        if tty:
            el = now - t_main0[0]
            rate = stats.done / el if el > 0 else 0
            sys.stderr.write(f"\r\033[Ksoak: {phase} {stats.done}/{cfg.requests} requests, "
                             f"{rate:.1f}/s, anomalies {stats.anomalies()}, "
                             f"RSS {mib(rss_trace[-1][1] if rss_trace else None)} MiB")
            sys.stderr.flush()

    t_main0 = [time.time()]
    log(f"starting {binary} ({' '.join(flags)}, --workers {cfg.workers}, --pool {cfg.pool}); "
        f"seed {cfg.seed}")
    server.start()
    log(f"serving on 127.0.0.1:{server.port}, uid base {server.uid_base}, "
        f"state dir {server.state_dir}")
    try:
        snaps = {"start": snapshot(server, 60)}
        t_main0[0] = time.time()
        run_phase("warm-up", cfg.warmup, cfg, server, stats, progress)
        warm_s = time.time() - t_main0[0]
        warm_n = stats.done
        log(f"warm-up: {stats.done} requests in {warm_s:.0f} s; waiting for quiet")
        snaps["warm-up"] = snapshot(server, cfg.session_idle_ms / 1000 + 60)
        t1 = time.time()
        run_phase("main", cfg.requests, cfg, server, stats, progress)
        main_s = time.time() - t1
        log(f"main: {stats.done - cfg.warmup} requests in {main_s:.0f} s; waiting for "
            f"sessions to expire and the server to go quiet")
        alive_end = server.alive()
        snaps["end"] = snapshot(server, cfg.session_idle_ms / 1000 + 60)
        alive_end = alive_end and server.alive()
        load1, others1 = machine_busy_line(server.proc.pid)
        rc, stop_s, left, zleft, cg_left = stop(server)
    except BaseException:
        server.kill()
        raise
    finally:
        shutil.rmtree(server.state_dir, ignore_errors=True)
    wall = time.time() - started_at

    # --- criteria ---
    W, E = snaps["warm-up"], snaps["end"]
    total_anom = stats.anomalies()
    deadlines_seen = stats.counters["deadlines seen"]
    crit = []

    def criterion(name, ok, figure):
        crit.append((name, bool(ok), figure))

    criterion("no anomaly: every reply expected and well formed", total_anom == 0,
              f"{total_anom} of {stats.done}")
    criterion("server alive at the end", alive_end, "alive" if alive_end else "DEAD")
    criterion("same zygote, no restart",
              snaps["start"]["zygote_pid"] == E["zygote_pid"] and E["zygote_restarts"] == 0,
              f"pid {snaps['start']['zygote_pid']} -> {E['zygote_pid']}, "
              f"restarts {E['zygote_restarts']}")
    crashes = E["counters"].get("workerCrashes")
    setup_f = E["counters"].get("workerSetupFailures")
    criterion("no worker crash or set-up failure", crashes == 0 and setup_f == 0,
              f"workerCrashes {crashes}, workerSetupFailures {setup_f}")
    kills = E["counters"].get("deadlineKills")
    criterion("deadline kills = deadlines the clients saw", kills == deadlines_seen,
              f"{kills} kills, {deadlines_seen} seen")
    criterion("every quiet point reached (idle, pool full, no session)",
              all(s["quiet"] for s in snaps.values()),
              ", ".join(f"{k} {s['waited_s']:.1f} s" for k, s in snaps.items()))
    criterion("no process beyond the pool",
              E["uid_processes"] == E["pool_ready"] and E["zygote_children"] == E["pool_ready"],
              f"{E['uid_processes']} in the uid range, {E['zygote_children']} zygote children, "
              f"pool {E['pool_ready']}")
    criterion("descriptors: end <= after warm-up",
              E["fds"] is not None and E["fds"] <= W["fds"] and E["zygote_fds"] <= W["zygote_fds"],
              f"server {W['fds']} -> {E['fds']}, zygote {W['zygote_fds']} -> {E['zygote_fds']}")
    criterion("mounts: end <= after warm-up",
              E["mounts"] is not None and E["mounts"] <= W["mounts"] and
              E["zygote_mounts"] <= W["zygote_mounts"],
              f"server {W['mounts']} -> {E['mounts']}, zygote {W['zygote_mounts']} -> "
              f"{E['zygote_mounts']}")
    criterion("cgroups: directories unchanged, tasks only the pool's",
              E["cgroup_dirs"] == snaps["start"]["cgroup_dirs"] and
              E["cgroup_tasks"] <= E["pool_ready"] * E["cgroup_hierarchies"],
              f"{snaps['start']['cgroup_dirs']} -> {E['cgroup_dirs']} directories, "
              f"{E['cgroup_tasks']} tasks (pool {E['pool_ready']} x "
              f"{E['cgroup_hierarchies']} hierarchies)")
    criterion("no work dir left", E["work_dirs"] == 0, f"{E['work_dirs']} entries")
    criterion("no session left", E["sessions"] == 0, f"{E['sessions']} active")
    growth = ((E["rss_kib"] - W["rss_kib"]) / W["rss_kib"]
              if W["rss_kib"] and E["rss_kib"] else None)
    criterion("server RSS at the end <= after warm-up + 10%",
              growth is not None and growth <= 0.10,
              f"{mib(W['rss_kib'])} -> {mib(E['rss_kib'])} MiB "
              f"({'?' if growth is None else f'{100 * growth:+.1f}%'})")
    criterion("SIGTERM: exit status 0, nothing left",
              rc == 0 and not left and not zleft and not cg_left,
              f"status {rc} in {stop_s:.1f} s, {len(left)} processes, zygote "
              f"{'left' if zleft else 'gone'}, {len(cg_left)} cgroup dirs left")
    with server.log_lock:
        log_lines = [line for _, line in server.log]
    sanitizer = [line for line in log_lines if any(m in line for m in SANITIZER_MARKS)]
    if cfg.server_log:
        with open(cfg.server_log, "w") as f:
            f.write("\n".join(log_lines) + "\n")
    criterion("no sanitizer report in the server's log (asan builds)", not sanitizer,
              f"{len(sanitizer)} reports" + (f": {sanitizer[0][:150]}" if sanitizer else ""))
    passed = all(ok for _, ok, _ in crit)

    # --- report ---
    sha, tree = code_line(binary)
    retries = stats.counters["stale-connection retries"]
    shed = sum(k["shed"] for k in stats.kinds.values())
    lines = [
        "# pyexecd soak run",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started_at))}; "
        f"wall time {wall:.0f} s (warm-up {warm_s:.0f} s, main {main_s:.0f} s)",
        f"- Code: {tree}",
        f"- Machine: {machine_line()}; load average {load0} at start, {load1} at end; "
        f"other pyexecd processes {others0} at start, {others1} at end (this run's "
        f"server, zygote and workers excluded)",
        f"- Command: `{command_line()}`",
        f"- Parameters: {stats.done} requests ({warm_n} of them warm-up) at concurrency "
        f"{cfg.concurrency}, seed {cfg.seed}; server `--workers {cfg.workers} --pool "
        f"{cfg.pool} {' '.join(flags)}`",
        f"- Result: **{'PASS' if passed else 'FAIL'}**; {total_anom} anomalies, {shed} shed "
        f"(429/503 with a proper body), {retries} stale-connection retries, "
        f"{stats.counters['sessions abandoned']} sessions abandoned, "
        f"{deadlines_seen} deadlines",
        "",
        "## Criteria",
        "",
        "| criterion | figure | |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {f} | {'pass' if ok else '**FAIL**'} |" for n, ok, f in crit]
    lines += ["", "## Resources at the quiet points", "",
              "| measure | start | after warm-up | end |", "|---|---:|---:|---:|"]
    S = snaps["start"]
    rows = [("server VmRSS MiB", lambda s: mib(s["rss_kib"])),
            ("server RssAnon / RssFile MiB",
             lambda s: f"{mib(s['rss_anon_kib'])} / {mib(s['rss_file_kib'])}"),
            ("server threads", lambda s: s["threads"]),
            ("server open fds", lambda s: s["fds"]),
            ("server mountinfo lines", lambda s: s["mounts"]),
            ("zygote pid", lambda s: s["zygote_pid"]),
            ("zygote VmRSS MiB", lambda s: mib(s["zygote_rss_kib"])),
            ("zygote open fds", lambda s: s["zygote_fds"]),
            ("zygote mountinfo lines", lambda s: s["zygote_mounts"]),
            ("zygote children", lambda s: s["zygote_children"]),
            ("processes in the worker uid range", lambda s: s["uid_processes"]),
            ("pool ready", lambda s: s["pool_ready"]),
            ("cgroup directories / tasks", lambda s: f"{s['cgroup_dirs']} / {s['cgroup_tasks']}"),
            ("work dir entries", lambda s: s["work_dirs"]),
            ("sessions active", lambda s: s["sessions"]),
            ("counters: executions", lambda s: s["counters"].get("executions")),
            ("counters: deadlineKills", lambda s: s["counters"].get("deadlineKills")),
            ("counters: workerCrashes", lambda s: s["counters"].get("workerCrashes")),
            ("counters: workerSetupFailures", lambda s: s["counters"].get("workerSetupFailures")),
            ("seconds waited for quiet", lambda s: f"{s['waited_s']:.1f}")]
    lines += [f"| {name} | {f(S)} | {f(W)} | {f(E)} |" for name, f in rows]
    peak = max((r for _, r in rss_trace if r), default=None)
    if rss_trace:
        step = max(1, len(rss_trace) // 10)
        trace = ", ".join(f"{d}: {mib(r)}" for d, r in rss_trace[::step])
        lines += ["", f"Server VmRSS under load (MiB, by requests done): {trace}; peak "
                      f"{mib(peak)}."]
    lines += ["", "## Requests by kind", "",
              "| kind | requests | HTTP statuses | shed | anomalies | p50 ms | p99 ms | max ms |",
              "|---|---:|---|---:|---:|---:|---:|---:|"]
    for kind in sorted(stats.kinds):
        k = stats.kinds[kind]
        st = ", ".join(f"{s}: {n}" for s, n in sorted(k["statuses"].items(), key=str))
        lat = k["latencies"]
        lines.append(f"| {kind} | {k['n']} | {st} | {k['shed']} | {k['anomalies']} | "
                     f"{ms(pct(lat, 0.5))} | {ms(pct(lat, 0.99))} | "
                     f"{ms(max(lat) if lat else None)} |")
    ops = ", ".join(f"{n} {stats.counters['op ' + n]}" for n, _ in cfg.mix)
    weights = ", ".join(f"{n} {w:g}" for n, w in cfg.mix)
    lines += ["", f"Operations drawn: {ops} (weights: {weights}; bench/soak.py says what "
                  f"each kind sends)."]
    if stats.examples:
        lines += ["", "## Anomalies (first 5 of each kind)", ""]
        for kind, exs in sorted(stats.examples.items()):
            for what, status, why in exs:
                lines.append(f"- `{kind}` HTTP {status}: `{what[:200]}`: {why}")
    # The request log's lines (one JSON object per request) are counted, not listed.
    request_lines = sum(1 for line in log_lines
                        if line.startswith("{") and '"msg":"request"' in line)
    notable = collections.Counter(
        re.sub(r"\d+", "N", line) for line in log_lines
        if not line.startswith("Fontconfig error") and "listening on" not in line and
        not re.search(r"zygote \d+ ready after", line) and
        not (line.startswith("{") and '"msg":"request"' in line))
    lines += ["", "## Server log", "",
              f"{len(log_lines)} lines on stderr, {request_lines} of them request lines; "
              f"besides those, the start-up lines and fontconfig's cache warnings: "
              f"{sum(notable.values())}."]
    for text, n in notable.most_common(20):
        lines.append(f"- {n} x `{text[:200]}`")
    if sanitizer:
        first = next(i for i, line in enumerate(log_lines)
                     if any(m in line for m in SANITIZER_MARKS))
        lines += ["", "The first sanitizer report:", "", "```"] + \
            [line[:300] for line in log_lines[first:first + 80]] + ["```"]
    report = "\n".join(lines) + "\n"

    if tty:
        sys.stderr.write("\r\033[K")
    print(report)
    os.makedirs(os.path.dirname(os.path.abspath(cfg.out)), exist_ok=True)
    with open(cfg.out, "w") as f:
        f.write(report)
    log(f"{'PASS' if passed else 'FAIL'}; written to {os.path.relpath(cfg.out, os.getcwd())}")
    return 0 if passed else 1


def command_line():
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    if os.environ.get("MAKELEVEL"):
        return f"make soak (python3 bench/soak.py {args})"
    return f"python3 bench/soak.py {args}".rstrip()


if __name__ == "__main__":
    sys.exit(main())
