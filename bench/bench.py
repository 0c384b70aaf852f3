#!/usr/bin/env python3
"""pyexecd's benchmark: a load generator driving the server over HTTP on loopback, with
its peers measured in the same run.

    make bench                   # about 12 minutes; or: python3 bench/bench.py
    make bench ARGS=--quick      # a smoke run of about 4 minutes
    python3 bench/bench.py --breakdown   # where a trivial execution's time goes (perf)

What it measures (bench/README.md says how and why):
- pyexecd with the default pre-fork pool and with --pool 0, each snippet at 1, 2, 4 and 16
  concurrent clients (one thread and one keep-alive http.client connection per client):
  p50/p90/p99/max latency, throughput, errors, server CPU per execution (server + zygote
  + reaped workers, from /proc/<pid>/stat), peak PSS of server + zygote + workers;
- the idle footprint (PSS of server + zygote + pool) and the private memory of a worker
  while it runs a snippet;
- peers on the same snippets: a cold interpreter per execution with the zygote's imports,
  one Jupyter kernel (ipykernel through jupyter_client, bench/setup_bench.sh installs it),
  and the same code run warm in one process;
- the client's own floor: GET /healthz round trips on the same kind of connection.

Writes a Markdown report and a latency-versus-concurrency plot to bench/results/
(latest.md and latency.png; a --quick run writes quick.md and quick-latency.png).
The machine has 2 cores and the client shares them with the server: compare within one
run, not across runs.
"""

import argparse
import http.client
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import UID_RANGE, Server, code_part, processes_with_uid_in  # noqa: E402

VENV_PYTHON = os.environ.get("PYEXECD_VENV_PYTHON", "/opt/pyexecd/venv/bin/python")
BENCH_PYTHON = os.environ.get("PYEXECD_BENCH_PYTHON", "/opt/pyexecd/bench-venv/bin/python")
RESULTS_DIR = os.path.join(ROOT, "bench", "results")
CONCURRENCY = (1, 2, 4, 16)
PACE_S = 0.02    # the pause between requests of the low-load runs
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1e6   # reported sizes are in MB of 10^6 bytes; /proc gives KiB

# What the zygote imports (sandbox/pyembed.c warm_modules): a cold process must import the
# same to offer the same libraries.
COLD_IMPORTS = ("altair, chess, chess.pgn, cv2, matplotlib, matplotlib.pyplot, mpmath, numpy, "
                "pandas, pdfminer.high_level, pdfminer.layout, reportlab.pdfgen.canvas, "
                "reportlab.lib.pagesizes, reportlab.platypus, seaborn, sklearn, "
                "sklearn.linear_model, sklearn.model_selection, sklearn.metrics, "
                "sklearn.preprocessing, sklearn.cluster, sklearn.ensemble, sklearn.tree, "
                "sklearn.datasets, statsmodels.api, statsmodels.formula.api, "
                "striprtf.striprtf, sympy, tabulate, scipy.stats, scipy.optimize, "
                "scipy.integrate, scipy.signal, PIL.Image, PIL.ImageDraw")
PEER_ENV = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1", "HOME": "/tmp", "LANG": "C.UTF-8"}
HEADERS = {"Content-Type": "application/json"}

# --- the snippets ------------------------------------------------------------------------

PANDAS = """\
import numpy as np
import pandas as pd
df = pd.DataFrame(np.random.default_rng(0).normal(size=(100, 4)), columns=list("abcd"))
print(df.describe())
"""
PLOT_BODY = """\
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot(range(100), [i * i for i in range(100)], label="squares")
ax.set_title("bench")
ax.legend()
"""
# pyexecd returns shown figures as 100-dpi PNG parts (sandbox/runner.py); the peers do the
# same work by hand: Agg, savefig to memory, close.
PLOT_PYEXECD = PLOT_BODY + "plt.show()\n"
PLOT_PEER = ("import io\nimport matplotlib\nmatplotlib.use('Agg')\n" + PLOT_BODY
             + "buf = io.BytesIO()\nfig.savefig(buf, format='png', dpi=100)\nplt.close(fig)\n"
             + "print(len(buf.getvalue()) > 1000)\n")
SYMPY = """\
import sympy as sp
x = sp.symbols("x")
print(sp.solve(x**3 - 6*x**2 + 11*x - 6, x))
"""
BIG = "print('x' * 1_000_000)\n"


class Snippet:
    def __init__(self, name, title, code, expect, peer_code=None, peer_expect=None,
                 session=False):
        self.name = name
        self.title = title
        self.code = code
        self.expect = expect            # bytes the JSON reply must hold
        self.peer_code = peer_code or code
        self.peer_expect = peer_expect  # text a peer's stdout must hold
        self.session = session

    def check(self, data):
        return (b'"OUTCOME_OK"' in data and b"OUTCOME_FAILED" not in data
                and b"limitReached" not in data and self.expect in data)


SNIPPETS = [
    Snippet("trivial", "`print(1+1)`", "print(1+1)\n", b'"output":"2\\n"', peer_expect="2\n"),
    Snippet("pandas", "pandas `describe()`, 100 rows", PANDAS, b"count  100.0",
            peer_expect="count  100.0"),
    Snippet("plot", "matplotlib plot as PNG", PLOT_PYEXECD, b'"mimeType":"image/png"',
            peer_code=PLOT_PEER, peer_expect="True\n"),
    Snippet("sympy", "sympy `solve`", SYMPY, b"[1, 2, 3]", peer_expect="[1, 2, 3]"),
    Snippet("1mb", "1 MB of output", BIG, b"xxxxxxxxxx\\n\"", peer_expect="x" * 1000),
    Snippet("session", "`print(1+1)` in a session", "print(1+1)\n", b'"output":"2\\n"',
            peer_expect="2\n", session=True),
]
BY_NAME = {s.name: s for s in SNIPPETS}
PEER_SNIPPETS = [s for s in SNIPPETS if not s.session]   # a peer's every call is one


# --- statistics --------------------------------------------------------------------------

def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summary(samples_ms):
    if not samples_ms:
        return {"n": 0, "p50": float("nan"), "p90": float("nan"), "p99": float("nan"),
                "max": float("nan"), "mean": float("nan")}
    return {"n": len(samples_ms), "p50": percentile(samples_ms, 50),
            "p90": percentile(samples_ms, 90), "p99": percentile(samples_ms, 99),
            "max": max(samples_ms), "mean": statistics.fmean(samples_ms)}


# --- /proc -------------------------------------------------------------------------------

def proc_cpu(pid):
    """(utime+stime, cutime+cstime) of pid in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return own, children


def cpu_snapshot(server_pid, zygote_pid):
    server, _ = proc_cpu(server_pid)
    zygote, workers = proc_cpu(zygote_pid)
    return {"server": server, "zygote": zygote, "workers": workers}


def machine_busy():
    """CPU seconds the whole machine has spent busy (all but idle and iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def own_cpu(sampler):
    """CPU seconds of this benchmark process and of its memory sampler."""
    t = os.times()
    total = t.user + t.system
    if sampler:
        try:
            total += proc_cpu(sampler.p.pid)[0]
        except OSError:
            pass
    return total


def smaps_rollup(pid):
    """{field: KiB} of /proc/pid/smaps_rollup, or None when the process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    out[key] = int(parts[0])
    except OSError:
        return None
    return out


def worker_pids(server, zygote_pid=None):
    """Processes in the server's uid range, and the zygote's children (a worker runs as
    root until it drops to its uid)."""
    pids = {pid for pid, _, _ in processes_with_uid_in(server.uid_base,
                                                        server.uid_base + server.uid_range)}
    if zygote_pid:
        try:
            with open(f"/proc/{zygote_pid}/task/{zygote_pid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except (OSError, ValueError):
            pass
    return sorted(pids)


def footprint(server, zygote_pid):
    """PSS and RSS of server, zygote and every worker, now."""
    rows = [("server", server.proc.pid), ("zygote", zygote_pid)]
    rows += [("worker", pid) for pid in worker_pids(server, zygote_pid)]
    out = []
    for kind, pid in rows:
        r = smaps_rollup(pid)
        if r:
            out.append({"kind": kind, "pid": pid, "pss_kb": r.get("Pss", 0),
                        "rss_kb": r.get("Rss", 0),
                        "private_kb": r.get("Private_Clean", 0) + r.get("Private_Dirty", 0)})
    return out


# The memory sampler: a separate process at nice 19 (it costs about 1 ms of CPU per
# process it reads, which the load generator must not pay on its own threads). Every
# `interval` seconds between "begin" and "end" it sums the PSS of the server, the zygote
# and the workers: every process in the harness's uid range, and the zygote's children
# (a worker runs as root until it drops to its uid). A worker that is exiting has no
# readable memory map any more, yet its pages still divide the others' PSS: a sample
# taken then reads low, so the figure kept is the peak.
SAMPLER = r"""
import json, os, select, sys, time
server, zygote, lo, hi = map(int, sys.argv[1:5])
interval = float(sys.argv[5])

# The number after `prefix` on the first line of path starting with it, or None.
def first_number(path, prefix):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None

def uid_of(pid):
    return first_number(f"/proc/{pid}/status", "Uid:")

def pss(pid):
    return first_number(f"/proc/{pid}/smaps_rollup", "Pss:")

def sample():
    pids = {server, zygote}
    for name in os.listdir("/proc"):
        if name.isdigit():
            u = uid_of(name)
            if u is not None and lo <= u < hi:
                pids.add(int(name))
    # Workers still setting themselves up run as root for a few milliseconds: the
    # zygote's children (it is single-threaded, so one children file lists them all).
    try:
        with open(f"/proc/{zygote}/task/{zygote}/children") as f:
            pids.update(int(p) for p in f.read().split())
    except (OSError, ValueError):
        pass
    total, n = 0, 0
    for pid in pids:
        v = pss(pid)
        if v is not None:
            total += v
            n += 1
    return total, n

active, peak, peak_n, count, cpu0, buf = False, 0, 0, 0, 0.0, b""
while True:
    ready, _, _ = select.select([0], [], [], interval if active else None)
    if ready:
        chunk = os.read(0, 4096)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd = line.decode().strip()
            if cmd == "begin":
                active, peak, peak_n, count, cpu0 = True, 0, 0, 0, time.process_time()
            elif cmd == "end" and active:
                active = False
                print(json.dumps({"peak_pss_kb": peak, "procs_at_peak": peak_n,
                                  "samples": count,
                                  "sampler_cpu_s": time.process_time() - cpu0}), flush=True)
            elif cmd == "quit":
                sys.exit(0)
        if not active:
            continue
    if active:
        total, n = sample()
        count += 1
        if total > peak:
            peak, peak_n = total, n
"""


class MemSampler:
    def __init__(self, server, zygote_pid, interval=0.05):
        self.p = subprocess.Popen(
            [sys.executable, "-c", SAMPLER, str(server.proc.pid), str(zygote_pid),
             str(server.uid_base), str(server.uid_base + server.uid_range), str(interval)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            preexec_fn=lambda: os.nice(19))

    def begin(self):
        self.p.stdin.write("begin\n")
        self.p.stdin.flush()

    def end(self):
        self.p.stdin.write("end\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
        except OSError:
            pass
        self.p.wait(10)


# --- the load generator ------------------------------------------------------------------

class Client:
    """One client: a thread's own keep-alive connection."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.first_error = None

    def call(self, method, path, body=None, check=None):
        """Returns (milliseconds, ok, body)."""
        t = time.perf_counter()
        try:
            self.conn.request(method, path, body, HEADERS if body is not None else {})
            resp = self.conn.getresponse()
            data = resp.read()
            ok = resp.status == 200 and (check is None or check(data))
            if not ok and self.first_error is None:
                self.first_error = f"HTTP {resp.status}: {data[:300]!r}"
        except (OSError, http.client.HTTPException) as e:
            data, ok = b"", False
            if self.first_error is None:
                self.first_error = f"{type(e).__name__}: {e}"
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        return (time.perf_counter() - t) * 1000, ok, data

    def close(self):
        self.conn.close()


def run_load(server, zygote_pid, sampler, snippet, concurrency, max_requests, max_seconds,
             warmup=2, pause=0.0):
    """Drives `concurrency` clients for max_requests requests in all or max_seconds, after
    `warmup` untimed requests each; with `pause`, each client waits that long between its
    requests (an open loop at low load rather than back-to-back). Returns the run's
    figures."""
    body = json.dumps(code_part(snippet.code)).encode()
    lock = threading.Lock()
    state = {"issued": 0}
    lat = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    first_errors = []
    marks = {}

    def start():   # the barrier's action: runs once, when every client is ready
        marks["cpu0"] = cpu_snapshot(server.proc.pid, zygote_pid)
        marks["client_cpu0"] = time.process_time()
        marks["busy0"], marks["own0"] = machine_busy(), own_cpu(sampler)
        if sampler:
            sampler.begin()
        marks["t0"] = time.perf_counter()
        marks["deadline"] = marks["t0"] + max_seconds

    barrier = threading.Barrier(concurrency, action=start)

    def client(i):
        c = Client(server.port)
        path = "/v1/execute"
        session = None
        try:
            if snippet.session:
                _, ok, data = c.call("POST", "/v1/sessions", b"{}")
                if not ok:
                    raise RuntimeError(f"session create failed: {c.first_error}")
                session = json.loads(data)["name"]
                path = f"/v1/{session}:execute"
            for _ in range(warmup):
                c.call("POST", path, body, snippet.check)
            c.first_error = None
            barrier.wait()
            while True:
                with lock:
                    if (state["issued"] >= max_requests
                            or time.perf_counter() >= marks["deadline"]):
                        break
                    state["issued"] += 1
                ms, ok, _ = c.call("POST", path, body, snippet.check)
                lat[i].append(ms)
                errors[i] += not ok
                if pause:
                    time.sleep(pause)
            marks.setdefault("ends", []).append(time.perf_counter())
            if c.first_error:
                first_errors.append(c.first_error)
        except threading.BrokenBarrierError:
            pass
        except Exception as e:  # a client that cannot start breaks the run loudly
            first_errors.append(f"client {i}: {e}")
            barrier.abort()
        finally:
            if session:
                c.call("DELETE", f"/v1/{session}")
            c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if "t0" not in marks or not marks.get("ends"):
        # A client could not even start (session creation refused, say): a failed run.
        if sampler and "t0" in marks:
            sampler.end()
        res = summary([])
        res.update({"snippet": snippet.name, "concurrency": concurrency,
                    "errors": max(1, len(first_errors)), "first_error": "; ".join(first_errors),
                    "throughput": float("nan"), "wall_s": 0.0, "cpu_ms": float("nan"),
                    "cpu_split_ms": {"server": float("nan"), "zygote": float("nan"),
                                     "workers": float("nan")},
                    "client_cpu_ms": float("nan"), "peak_pss_mb": None, "mem_samples": 0,
                    "sampler_cpu_pct": None, "pause_ms": pause * 1000,
                    "other_cpu_pct": float("nan")})
        return res
    wall = max(marks["ends"]) - marks["t0"]
    client_cpu = time.process_time() - marks["client_cpu0"]
    mem = sampler.end() if sampler else None
    time.sleep(0.3)   # let the zygote reap the last workers, so their CPU counts
    cpu1 = cpu_snapshot(server.proc.pid, zygote_pid)
    busy1, own1 = machine_busy(), own_cpu(sampler)
    samples = [x for per in lat for x in per]
    n = len(samples)
    cpu = {k: (cpu1[k] - marks["cpu0"][k]) * 1000 / max(n, 1) for k in cpu1}
    res = summary(samples)
    res.update({
        "snippet": snippet.name, "concurrency": concurrency, "errors": sum(errors),
        "first_error": first_errors[0] if first_errors else None,
        "throughput": n / wall if wall > 0 else float("nan"), "wall_s": wall,
        "cpu_ms": sum(cpu.values()), "cpu_split_ms": cpu,
        "client_cpu_ms": client_cpu * 1000 / max(n, 1),
        "peak_pss_mb": mem["peak_pss_kb"] * 1024 / MB if mem else None,
        "mem_samples": mem["samples"] if mem else 0,
        "sampler_cpu_pct": (100 * mem["sampler_cpu_s"] / wall) if mem and wall else None,
        "pause_ms": pause * 1000,
        # Everything else the machine did meanwhile, in % of one core: kernel threads
        # (some of it freeing our workers' memory) and other processes. High: noise.
        "other_cpu_pct": 100 * ((busy1 - marks["busy0"]) - (own1 - marks["own0"])
                                - sum(cpu1[k] - marks["cpu0"][k] for k in cpu1))
                         / (wall + 0.3),
    })
    return res


# The pause before each request of the generateContent pairs: long enough for the pool's
# refill (a fork and a sandbox set-up, 10-20 ms of CPU on a slow 2-core machine) to be
# over, so that neither request of a pair competes with it for a core.
GEN_PACE_S = 0.06


def gen_overhead(server, pairs):
    """generateContent's cost over /v1/execute: the same `print(1+1)` run through each,
    one client, alternating request by request (so both see the same machine), pausing
    GEN_PACE_S before each so that the pool is full and idle every time. The echo model's
    turn takes a pooled worker as an internal session, runs the block, and ends it."""
    c = Client(server.port)
    exe = json.dumps(code_part("print(1+1)\n")).encode()
    gen = json.dumps({"contents": [{"role": "user", "parts": [
        {"text": "```python\nprint(1+1)\n```"}]}], "tools": [{"codeExecution": {}}]}).encode()
    gen_path = "/v1beta/models/echo:generateContent"
    lat = {"execute": [], "generate": []}
    errors = 0
    try:
        for i in range(pairs + 2):
            for kind, path, body in (("execute", "/v1/execute", exe),
                                     ("generate", gen_path, gen)):
                time.sleep(GEN_PACE_S)
                ms, ok, data = c.call("POST", path, body)
                ok = ok and b'"output":"2\\n"' in data
                if i >= 2:   # two untimed pairs first
                    lat[kind].append(ms)
                    errors += not ok
    finally:
        c.close()
    out = {k: summary(v) for k, v in lat.items()}
    out["errors"] = errors
    out["first_error"] = c.first_error
    # The overhead of each pair, then its median: robust to a slow request of either kind.
    diffs = sorted(g - e for g, e in zip(lat["generate"], lat["execute"]))
    out["overhead_p50"] = diffs[len(diffs) // 2] if diffs else float("nan")
    return out


def healthz_rtt(server, requests):
    """The client's and the HTTP layer's floor: GET /healthz, one keep-alive connection."""
    c = Client(server.port)
    for _ in range(20):
        c.call("GET", "/healthz")
    t = time.process_time()
    samples = [c.call("GET", "/healthz")[0] for _ in range(requests)]
    cpu = (time.process_time() - t) * 1000 / requests
    c.close()
    res = summary(samples)
    res["client_cpu_ms"] = cpu
    return res


def worker_private_memory(server, snippet_code, label):
    """Private memory (Private_Clean + Private_Dirty) of the worker running snippet_code
    followed by a one-second sleep, read during the sleep; and of the idle pool workers
    beside it. The busy worker is the one in clock_nanosleep (/proc/<pid>/syscall)."""
    code = snippet_code + "import time\ntime.sleep(1)\n"
    result = {}

    def request():
        c = Client(server.port)
        result["reply"] = c.call("POST", "/v1/execute", json.dumps(code_part(code)).encode())
        c.close()

    t = threading.Thread(target=request)
    t.start()
    busy, idle = None, []
    deadline = time.time() + 30
    while time.time() < deadline and t.is_alive():
        for pid in worker_pids(server):
            try:
                with open(f"/proc/{pid}/syscall") as f:
                    nr = f.read().split()[0]
            except (OSError, IndexError):
                continue
            if nr == "230":   # clock_nanosleep: the snippet's sleep
                busy = pid
        if busy:
            break
        time.sleep(0.01)
    out = {"label": label}
    if busy:
        time.sleep(0.3)   # well inside the sleep
        r = smaps_rollup(busy)
        if r:
            out.update(private_kb=r.get("Private_Clean", 0) + r.get("Private_Dirty", 0),
                       pss_kb=r.get("Pss", 0), rss_kb=r.get("Rss", 0))
        for pid in worker_pids(server):
            if pid != busy:
                r = smaps_rollup(pid)
                if r:
                    idle.append(r.get("Private_Clean", 0) + r.get("Private_Dirty", 0))
        out["idle_private_kb"] = idle
    t.join()
    out["ok"] = bool(result.get("reply") and result["reply"][1])
    return out


# --- peers -------------------------------------------------------------------------------

def peer_items(reps, max_seconds):
    return [{"name": s.name, "code": s.peer_code, "expect": s.peer_expect,
             "reps": reps.get(s.name, reps["default"]), "max_seconds": max_seconds}
            for s in PEER_SNIPPETS]


def run_cold(runs):
    """Wall time of a fresh interpreter importing what the zygote holds, then the snippet."""
    out = {}
    for s in PEER_SNIPPETS:
        code = f"import {COLD_IMPORTS}\n{s.peer_code}"
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            p = subprocess.run([VENV_PYTHON, "-c", code], env=PEER_ENV, capture_output=True,
                               text=True)
            samples.append((time.perf_counter() - t) * 1000)
            if p.returncode != 0 or s.peer_expect not in p.stdout:
                raise RuntimeError(f"cold {s.name} failed: {p.stderr[-500:]}")
        out[s.name] = summary(samples)
        log(f"cold {s.name}: p50 {out[s.name]['p50']:.0f} ms over {runs}")
    return out


# Runs in the sandbox's venv: each snippet once to warm up, then in a loop, timing exec with
# stdout captured to memory.
INPROCESS = r"""
import contextlib, io, json, sys, time
res = {}
for item in json.load(sys.stdin):
    code = compile(item["code"], "<bench>", "exec")
    scope = {"__name__": "__main__"}
    def once():
        buf = io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            exec(code, scope)
        return (time.perf_counter() - t) * 1000, buf.getvalue()
    first, out = once()
    if item["expect"] not in out:
        sys.exit(f"{item['name']}: unexpected output {out[:200]!r}")
    samples, end = [], time.perf_counter() + item["max_seconds"]
    while len(samples) < item["reps"] and time.perf_counter() < end:
        samples.append(once()[0])
    res[item["name"]] = {"first_ms": first, "samples": samples}
print(json.dumps(res))
"""

# Runs in the bench venv: one ipykernel, its round trips timed through execute_interactive.
JUPYTER = r"""
import json, os, shutil, sys, tempfile, time
from jupyter_client import KernelManager
spec = json.load(sys.stdin)
tmp = tempfile.mkdtemp(prefix="pyexecd-bench-jupyter-")
env = dict(spec["env"], JUPYTER_RUNTIME_DIR=tmp, IPYTHONDIR=tmp, HOME=tmp)
t = time.perf_counter()
km = KernelManager(kernel_name="python3")
km.start_kernel(env=env)
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=120)
startup = (time.perf_counter() - t) * 1000

def run(code):
    out = []
    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("ERROR " + msg["content"]["ename"])
    t = time.perf_counter()
    reply = kc.execute_interactive(code, output_hook=hook, timeout=120)
    ms = (time.perf_counter() - t) * 1000
    return ms, reply["content"]["status"] == "ok", "".join(out)

res = {"startup_ms": startup, "snippets": {}}
try:
    for item in spec["items"]:
        first, ok, out = run(item["code"])
        if not ok or item["expect"] not in out:
            sys.exit(f"{item['name']}: failed: {out[:300]!r}")
        samples, errors, end = [], 0, time.perf_counter() + item["max_seconds"]
        while len(samples) < item["reps"] and time.perf_counter() < end:
            ms, ok, out = run(item["code"])
            samples.append(ms)
            errors += not ok or item["expect"] not in out
            if item.get("pause"):
                time.sleep(item["pause"])
        res["snippets"][item["name"]] = {"first_ms": first, "samples": samples,
                                         "errors": errors}
    pid = km.provisioner.process.pid
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Pss:", "Rss:")):
                res[line.split(":")[0].lower() + "_kb"] = int(line.split()[1])
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    shutil.rmtree(tmp, ignore_errors=True)
print(json.dumps(res))
"""


def run_subprocess_json(python, script, stdin_obj, timeout):
    p = subprocess.run([python, "-c", script], input=json.dumps(stdin_obj), text=True,
                       capture_output=True, env=PEER_ENV, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{python}: {p.stderr[-1500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_inprocess(reps, max_seconds):
    raw = run_subprocess_json(VENV_PYTHON, INPROCESS, peer_items(reps, max_seconds), 600)
    out = {}
    for name, r in raw.items():
        out[name] = summary(r["samples"])
        out[name]["first_ms"] = r["first_ms"]
        log(f"warm in-process {name}: p50 {out[name]['p50']:.3f} ms")
    return out


def run_jupyter(reps, max_seconds, plan):
    """Every peer snippet back-to-back, then each again pausing PACE_S between calls
    (named "<snippet>-paced"), as many calls and as long as pyexecd's paced runs."""
    items = peer_items(reps, max_seconds)
    for s in PEER_SNIPPETS:
        items.append({"name": f"{s.name}-paced", "code": s.peer_code, "expect": s.peer_expect,
                      "reps": plan["paced"], "max_seconds": paced_seconds(plan, s),
                      "pause": PACE_S})
    spec = {"env": PEER_ENV, "items": items}
    raw = run_subprocess_json(BENCH_PYTHON, JUPYTER, spec, 600)
    out = {"startup_ms": raw["startup_ms"], "pss_kb": raw.get("pss_kb"),
           "rss_kb": raw.get("rss_kb"), "snippets": {}}
    for name, r in raw["snippets"].items():
        s = summary(r["samples"])
        s.update(first_ms=r["first_ms"], errors=r["errors"])
        out["snippets"][name] = s
        log(f"jupyter {name}: p50 {s['p50']:.2f} ms")
    return out


# --- one server --------------------------------------------------------------------------

def paced_seconds(plan, snippet):
    """The time limit of a paced run: plan["paced"] requests of a trivial snippet fit in
    it; a slower snippet (pandas, plot) gets plan["paced_seconds"] and may stop short."""
    base = plan["paced"] * (PACE_S + 0.05)
    return base if snippet.name == "trivial" else max(base, plan.get("paced_seconds", base))


def bench_server(label, pool, plan, measure_memory):
    log(f"starting pyexecd ({label})")
    out = {"label": label, "pool": pool, "runs": []}
    with Server(workers=os.cpu_count() or 1, pool=pool) as server:
        zygote = server.zygote_pid()
        time.sleep(1.0)   # the pool is sandboxed and idle
        idle = footprint(server, zygote)
        out["idle"] = idle
        out["idle_pss_mb"] = sum(p["pss_kb"] for p in idle) * 1024 / MB
        out["idle_rss_mb"] = sum(p["rss_kb"] for p in idle) * 1024 / MB
        log(f"idle footprint ({label}): PSS {out['idle_pss_mb']:.0f} MB over "
            f"{len(idle)} processes")
        if measure_memory:
            out["healthz"] = healthz_rtt(server, plan["healthz"])
            log(f"GET /healthz: p50 {out['healthz']['p50']:.3f} ms")
            g = out["generate"] = gen_overhead(server, plan["generate"])
            log(f"generateContent (echo) vs /v1/execute, paced: p50 {g['generate']['p50']:.2f} "
                f"vs {g['execute']['p50']:.2f} ms, overhead p50 {g['overhead_p50']:.2f} ms, "
                f"errors {g['errors']}")
            out["private"] = []
            for name, code in (("trivial", "print(1)\n"), ("pandas", PANDAS),
                               ("plot", PLOT_PYEXECD)):
                m = worker_private_memory(server, code, name)
                out["private"].append(m)
                log(f"worker private memory ({name}): {m.get('private_kb', 0) / 1024:.1f} MiB")
                time.sleep(0.3)
        sampler = MemSampler(server, zygote)
        try:
            # Low load: one client pausing between requests, so that the pool is full
            # when each request arrives (an agent thinks for seconds between blocks).
            # Every peer snippet on the pool server (issue 14's first target), trivial
            # only with --pool 0.
            out["paced_runs"] = []
            for s in (PEER_SNIPPETS if plan.get("paced_all") else [BY_NAME["trivial"]]):
                r = run_load(server, zygote, sampler, s, 1, plan["paced"],
                             paced_seconds(plan, s), pause=PACE_S)
                out["paced_runs"].append(r)
                log(f"{label} {s.name}, 1 client pausing {PACE_S * 1000:.0f} ms: n={r['n']} "
                    f"p50 {r['p50']:.2f} p99 {r['p99']:.2f} ms, errors {r['errors']}")
            out["paced"] = out["paced_runs"][0]
            for s in SNIPPETS:
                for c in CONCURRENCY:
                    r = run_load(server, zygote, sampler, s, c,
                                 plan["requests"], plan["seconds"])
                    out["runs"].append(r)
                    why = f" ({r['first_error']})" if r["first_error"] else ""
                    log(f"{label} {s.name} c={c}: n={r['n']} p50 {r['p50']:.2f} "
                        f"p99 {r['p99']:.2f} ms, {r['throughput']:.0f}/s, "
                        f"cpu {r['cpu_ms']:.1f} ms/exec, "
                        f"peak PSS {r['peak_pss_mb'] or 0:.0f} MB, "
                        f"other CPU {r['other_cpu_pct']:.0f}%, errors {r['errors']}{why}")
        finally:
            sampler.close()
        out["health_after"] = server.health()[1]
    return out


# --- sessions at scale --------------------------------------------------------------------

SESSION_THREADS = 4            # clients creating, warming and deleting the sessions
SESSION_IDLE_MS = 3_600_000    # --session-idle-ms: no session may expire during the phase
TRIVIAL_BODY = json.dumps(code_part("print(1+1)\n")).encode()


# The sessions phase stops creating sessions when the machine's MemAvailable falls under
# this share of its memory: thousands of sandboxed interpreters at several MB each could
# otherwise push the machine (and whatever else runs on it) into the OOM killer. Warming
# them (one print each) adds little, and stops under a lower floor, so that sessions
# created up to the first one can all be warmed.
MEM_FLOOR_SHARE = 0.25
MEM_FLOOR_SHARE_WARM = 0.15


def mem_available_mb():
    """(MemAvailable, MemTotal) in MB of 10^6 bytes."""
    got = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("MemAvailable", "MemTotal"):
                got[key] = int(rest.split()[0]) * 1024 / MB
    return got["MemAvailable"], got["MemTotal"]


class MemGuard:
    """Tells a loop to stop once MemAvailable is under `share` of the machine's memory;
    reads /proc/meminfo every `every` calls."""

    def __init__(self, share=MEM_FLOOR_SHARE, every=25):
        self.share, self.every, self.calls, self.tripped = share, every, 0, None
        self.lock = threading.Lock()

    def low(self):
        with self.lock:
            if self.tripped:
                return True
            self.calls += 1
            if self.calls % self.every:
                return False
            avail, total = mem_available_mb()
            if avail < self.share * total:
                self.tripped = (f"MemAvailable {avail:.0f} MB, under "
                                f"{self.share:.0%} of {total:.0f} MB")
            return bool(self.tripped)


def sessions_cap():
    """LIMIT_SESSIONS_MAX of this tree's common/limits.h (the most --max-sessions a server
    built from it takes), or None."""
    import re
    try:
        with open(os.path.join(ROOT, "common", "limits.h")) as f:
            m = re.search(r"^#define\s+LIMIT_SESSIONS_MAX\s+(\d+)", f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def pss_sum(server, zygote):
    """(MB of PSS, processes) of server + zygote + every worker, and the seconds it took."""
    t = time.perf_counter()
    rows = footprint(server, zygote)
    return (sum(r["pss_kb"] for r in rows) * 1024 / MB, len(rows),
            time.perf_counter() - t)


def parallel(port, items, fn, threads, budget_s=None, guard=None):
    """Calls fn(client, item) for each item from `threads` clients, each with its own
    keep-alive connection; stops taking items after budget_s seconds, or once guard (a
    MemGuard) says memory is low. Returns (results in item order, None for items not
    done; wall seconds)."""
    out = [None] * len(items)
    lock = threading.Lock()
    state = {"next": 0}
    t0 = time.perf_counter()

    def worker():
        c = Client(port)
        try:
            while True:
                with lock:
                    i = state["next"]
                    if i >= len(items) or (budget_s and time.perf_counter() - t0 > budget_s):
                        return
                    if guard and guard.low():
                        return
                    state["next"] += 1
                out[i] = fn(c, items[i])
        finally:
            c.close()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out, time.perf_counter() - t0



def paced_calls(port, paths, body, check):
    """One client, one call per path in order, pausing PACE_S after each: the latencies
    of the calls, their errors and the first error."""
    c = Client(port)
    lat, errors = [], 0
    try:
        for path in paths:
            ms, ok, _ = c.call("POST", path, body, check)
            lat.append(ms)
            errors += not ok
            time.sleep(PACE_S)
    finally:
        c.close()
    r = summary(lat)
    r.update(errors=errors, first_error=c.first_error)
    return r


def start_sessions_server(n):
    """A pool server with --max-sessions n and a uid range wide enough for it. A server
    that refuses the value (past its LIMIT_SESSIONS_MAX) is started again with this
    tree's cap, if smaller. Returns (server or None, the --max-sessions it runs with,
    why the asked-for value was refused or None, why no server started or None)."""
    refused = None
    tries = [n]
    cap = sessions_cap()
    if cap and cap < n:
        tries.append(cap)
    workers = os.cpu_count() or 1
    for m in tries:
        slots = 2 * (2 + workers + m) + 9   # sandbox/zygote.h zygote_slots, and the probe
        uid_range = -(-slots // UID_RANGE) * UID_RANGE
        # --prefault-mib 0: what the README tells a deployment with many sessions (a
        # session made from a pooled worker keeps the pages it pre-faulted, ~6 MB).
        server = Server("--max-sessions", str(m), "--session-idle-ms", str(SESSION_IDLE_MS),
                        "--session-lifetime-ms", str(2 * SESSION_IDLE_MS),
                        "--prefault-mib", "0",
                        workers=workers, pool=2, uid_range=uid_range)
        try:
            server.start()
            return server, m, refused, None
        except RuntimeError as e:
            server.kill()   # one that started but was never ready is still running
            # The harness's first line, and the server's last lines but its request logs.
            first, *lines = str(e).splitlines()
            lines = [x for x in lines if x.strip() and '"msg":"request"' not in x]
            why = "; ".join([first.rstrip(":")] + lines[-3:])
            log(f"sessions: the server did not start with --max-sessions {m}: {why}")
            if "--max-sessions" not in why:   # not the value: no point in another
                return None, None, refused, why
            if refused is None:
                refused = why
    return None, None, refused, refused


def bench_sessions(n, plan):
    """Issue 14's sessions at scale: /v1/execute before any session, n sessions created
    from SESSION_THREADS clients, one execute in each, the PSS they add, a warm session's
    latency, /v1/execute again beside them, then their deletion. Never raises: what could
    not be measured is absent, and out["error"] says why."""
    out = {"asked": n, "threads": SESSION_THREADS}
    avail, total = mem_available_mb()
    if avail < MEM_FLOOR_SHARE * total:
        out["error"] = (f"not run: MemAvailable {avail:.0f} MB, already under "
                        f"{MEM_FLOOR_SHARE:.0%} of {total:.0f} MB")
        log(f"sessions: {out['error']}")
        return out
    log(f"sessions: starting pyexecd for {n} sessions")
    t = time.perf_counter()
    server, m, refused, failed = start_sessions_server(n)
    out["start_s"] = time.perf_counter() - t
    out["max_sessions_flag"] = m
    out["flag_refused"] = refused
    if server is None:
        out["error"] = f"the server did not start: {failed}"
        return out
    try:
        bench_sessions_on(server, n, plan, out)
    except Exception as e:   # a failed phase is reported, not the end of the benchmark
        out["error"] = f"{type(e).__name__}: {e}"
        log(f"sessions: phase failed: {out['error']}")
    try:
        server.stop()
    except Exception as e:
        out.setdefault("error", f"stop: {e}")
        log(f"sessions: stopping the server: {e}")
        server.kill()
    return out


def bench_sessions_on(server, n, plan, out):
    import random
    zygote = server.zygote_pid()
    time.sleep(1.0)   # the pool is sandboxed and idle
    trivial = BY_NAME["trivial"]
    ex = ["/v1/execute"] * plan["session_exec"]
    paced_calls(server.port, ex[:5], TRIVIAL_BODY, trivial.check)   # untimed
    r = out["execute_before"] = paced_calls(server.port, ex, TRIVIAL_BODY, trivial.check)
    log(f"sessions: /v1/execute paced before any session: p50 {r['p50']:.2f} ms, "
        f"errors {r['errors']}")
    out["pss_before_mb"], out["procs_before"], _ = pss_sum(server, zygote)

    # Creation.
    attempts = list(range(n))
    refusals = {"n": 0, "first": None}
    lock = threading.Lock()

    def create(c, _):
        ms, ok, data = c.call("POST", "/v1/sessions", b"{}")
        if ok:
            try:
                return json.loads(data)["name"]
            except (ValueError, KeyError):
                ok = False
        with lock:
            refusals["n"] += 1
            if refusals["first"] is None:
                refusals["first"] = c.first_error or f"unreadable reply {data[:200]!r}"
        c.first_error = None
        return None

    guard = MemGuard()
    got, wall = parallel(server.port, attempts, create, SESSION_THREADS, guard=guard)
    names = [x for x in got if x]
    out.update(created=len(names), refused=refusals["n"], first_refusal=refusals["first"],
               create_wall_s=wall, create_rate=len(names) / wall if wall else float("nan"),
               attempted=sum(1 for x in got if x is not None) + refusals["n"],
               memory_stop=guard.tripped)
    log(f"sessions: created {len(names)} of {n} in {wall:.1f} s "
        f"({out['create_rate']:.0f}/s), refused {refusals['n']}"
        + (f": first {refusals['first']}" if refusals["first"] else "")
        + (f"; stopped: {guard.tripped}" if guard.tripped else ""))
    status, body = server.health()
    out["health_with"] = body.get("sessions") if status == 200 else f"HTTP {status}"
    if not names:
        raise RuntimeError("no session was created")

    # One execute in each (or as many as plan["warm_budget_s"] allows): warm sessions.

    def warm(c, name):
        return c.call("POST", f"/v1/{name}:execute", TRIVIAL_BODY, trivial.check)[1]

    guard = MemGuard(MEM_FLOOR_SHARE_WARM)
    done, wall = parallel(server.port, names, warm, SESSION_THREADS, plan["warm_budget_s"],
                          guard)
    warmed = [nm for nm, ok in zip(names, done) if ok]
    out.update(warmed=len(warmed), warm_failed=sum(1 for ok in done if ok is False),
               warm_wall_s=wall, warm_memory_stop=guard.tripped)
    log(f"sessions: one execute in {len(warmed)} of {len(names)} sessions in {wall:.1f} s, "
        f"{out['warm_failed']} failed")

    time.sleep(1.0)
    out["pss_with_mb"], out["procs_with"], out["pss_read_s"] = pss_sum(server, zygote)
    out["pss_per_session_mb"] = (out["pss_with_mb"] - out["pss_before_mb"]) / len(names)
    log(f"sessions: PSS {out['pss_before_mb']:.0f} MB -> {out['pss_with_mb']:.0f} MB over "
        f"{out['procs_with']} processes (read in {out['pss_read_s']:.1f} s): "
        f"{out['pss_per_session_mb']:.2f} MB per session")

    rng = random.Random(14)
    pool = warmed or names
    paths = [f"/v1/{rng.choice(pool)}:execute" for _ in range(plan["session_calls"])]
    paced_calls(server.port, paths[:5], TRIVIAL_BODY, trivial.check)   # untimed
    r = out["session_exec"] = paced_calls(server.port, paths, TRIVIAL_BODY, trivial.check)
    log(f"sessions: warm session execute, paced, random sessions: p50 {r['p50']:.3f} ms, "
        f"p99 {r['p99']:.2f} ms, errors {r['errors']}")
    r = out["execute_with"] = paced_calls(server.port, ex, TRIVIAL_BODY, trivial.check)
    out["execute_ratio"] = r["p50"] / out["execute_before"]["p50"]
    log(f"sessions: /v1/execute paced with {len(names)} sessions: p50 {r['p50']:.2f} ms "
        f"({out['execute_ratio']:.2f}x), errors {r['errors']}")

    # Deletion.
    def delete(c, name):
        return c.call("DELETE", f"/v1/{name}")[1]

    gone, wall = parallel(server.port, names, delete, SESSION_THREADS)
    out.update(deleted=sum(1 for ok in gone if ok), delete_wall_s=wall,
               delete_rate=len(names) / wall if wall else float("nan"))
    deadline = time.time() + 60
    while True:
        status, body = server.health()
        active = body.get("sessions", {}).get("active") if status == 200 else None
        if active == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    r = paced_calls(server.port, ex[:20], TRIVIAL_BODY, trivial.check)
    out["healthy_after"] = status == 200 and active == 0 and r["errors"] == 0
    out["health_after"] = {"status": status, "sessions": body.get("sessions"),
                           "executes_after": r["n"], "execute_errors_after": r["errors"]}
    log(f"sessions: deleted {out['deleted']} in {wall:.1f} s ({out['delete_rate']:.0f}/s); "
        f"healthy after: {out['healthy_after']} ({out['health_after']})")


# --- report ------------------------------------------------------------------------------

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def find(runs, snippet, concurrency):
    for r in runs:
        if r["snippet"] == snippet and r["concurrency"] == concurrency:
            return r
    return None


def fmt(v, digits=2):
    if v is None or v != v:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}" if digits > 1 else f"{v:.0f}"
    return f"{v:.{digits}f}"


def background():
    """What else runs here: the load average and the pyexecd processes of other servers
    (this benchmark's own are gone between its sections)."""
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    others = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    others += f.read().startswith("pyexecd")
            except OSError:
                pass
    return {"loadavg": load, "other_pyexecd": others}


def code_line():
    """Which server this measured: the binary, and the source tree's commit with any
    uncommitted change to the server's sources."""
    from harness import BINARY
    binary = os.path.relpath(os.path.abspath(BINARY), ROOT)
    if binary.startswith(".."):
        binary = os.path.abspath(BINARY)

    def git(*a):
        p = subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True)
        return p.stdout.rstrip("\n") if p.returncode == 0 else ""
    sha = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--", "server", "sandbox", "common", "policies",
                "CMakeLists.txt", "cmake").splitlines()
    files = ", ".join(line[3:] for line in dirty)
    tree = (f"commit {sha}" + (f" with uncommitted changes in {files}" if files else
                               ", no uncommitted change to the server's sources"))
    if binary.startswith("/"):   # PYEXECD_BIN: a build from elsewhere
        return f"binary `{binary}` (PYEXECD_BIN, not this tree's build); this tree: {tree}"
    return f"binary `{binary}`, built by `make bench` from {tree}"


def wait_for_quiet(limit_s=90, busy_pct=25):
    """Waits (at most limit_s) until the machine spends under busy_pct % of one core over
    a second: a test suite running beside the benchmark would skew every figure."""
    start = time.time()
    while True:
        b0 = machine_busy()
        time.sleep(1.0)
        busy = 100 * (machine_busy() - b0)
        if busy < busy_pct or time.time() - start > limit_s:
            if time.time() - start > 1.5:
                log(f"waited {time.time() - start:.0f} s for the machine to quieten "
                    f"(now {busy:.0f}% of a core busy)")
            return busy
        log(f"the machine is busy ({busy:.0f}% of a core): waiting")


def machine_line():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError):
        pass
    return (f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem} RAM, "
            f"Linux {platform.release()}")


def command_line(argv):
    args = " ".join(shlex.quote(a) for a in argv)
    direct = f"`python3 bench/bench.py{' ' + args if args else ''}`"
    if os.environ.get("MAKELEVEL"):
        return (f"`make bench{' ARGS=' + shlex.quote(args) if args else ''}` "
                f"(build, bench/setup_bench.sh, then {direct})")
    return direct


def matrix_table(runs):
    lines = ["| snippet | clients | n | p50 ms | p90 ms | p99 ms | max ms | exec/s | errors "
             "| server CPU ms/exec (srv+zyg+wrk) | peak PSS MB | client CPU ms/req "
             "| other CPU % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in runs:
        s = r["cpu_split_ms"]
        lines.append(
            f"| {r['snippet']} | {r['concurrency']} | {r['n']} | {fmt(r['p50'])} | "
            f"{fmt(r['p90'])} | {fmt(r['p99'])} | {fmt(r['max'])} | {fmt(r['throughput'], 1)} "
            f"| {r['errors']} | {fmt(r['cpu_ms'])} ({fmt(s['server'])}+{fmt(s['zygote'])}+"
            f"{fmt(s['workers'])}) | {fmt(r['peak_pss_mb'], 0)} | {fmt(r['client_cpu_ms'])} "
            f"| {fmt(max(0.0, r['other_cpu_pct']), 0)} |")
    return lines


def ratio(a, b):
    return a / b if a and b and a == a and b == b else float("nan")


def ok_num(v):
    return v is not None and v == v


def paced_run(server_res, name):
    return next((r for r in server_res.get("paced_runs", []) if r["snippet"] == name), None)


def cpu_flatness(runs, name):
    """(CPU ms per execution at each of CONCURRENCY, or None where not measured; max/min
    of the measured ones) of one snippet's matrix runs."""
    cpus = []
    for c in CONCURRENCY:
        r = find(runs, name, c)
        cpus.append(r["cpu_ms"] if r and r["n"] and ok_num(r["cpu_ms"]) else None)
    have = [x for x in cpus if x]
    spread = max(have) / min(have) if len(have) == len(CONCURRENCY) else float("nan")
    return cpus, spread


def target_rows(res):
    """Issue 14's targets and the earlier ones still meaningful: rows of (group, target,
    wanted, measured, PASS or MISS); a figure not measured reads n/a, and MISS."""
    main = res["main"]
    cold, jup, inproc = res.get("cold"), res.get("jupyter"), res.get("inprocess")
    t1 = find(main["runs"], "trivial", 1)
    sat = find(main["runs"], "trivial", 16)
    priv = next((m for m in main.get("private", []) if m["label"] == "trivial"), {})
    jsn = jup["snippets"] if jup else {}
    rows, earlier = [], []

    def f(v, unit=" ms", digits=2):
        return f"{fmt(v, digits)}{unit}" if ok_num(v) else "n/a"

    def add(out, group, what, want, measured, ok):
        out.append((group, what, want, measured, "PASS" if ok else "MISS"))

    g = "1. paused"
    for s in PEER_SNIPPETS:
        a, j = paced_run(main, s.name), jsn.get(f"{s.name}-paced")
        pa, pj = (a or {}).get("p50"), (j or {}).get("p50")
        add(rows, g, f"{s.name} p50, 1 client pausing {PACE_S * 1000:.0f} ms: fresh sandboxed "
            "interpreter vs the Jupyter kernel, paced alike", "pyexecd faster",
            f"{f(pa)} vs {f(pj)} ({fmt(ratio(pa, pj))}x)" if ok_num(pj) else f"{f(pa)} vs n/a",
            ok_num(pa) and ok_num(pj) and pa < pj)
    for name in ("pandas", "sympy"):
        a, ip = paced_run(main, name), (inproc or {}).get(name)
        pa, pi = (a or {}).get("p50"), (ip or {}).get("p50")
        rr = ratio(pa, pi)
        add(rows, g, f"{name} p50 paused / warm in-process", "<= 1.5x",
            f"{fmt(rr)}x ({f(pa)} / {f(pi, digits=3)})" if ok_num(rr) else "n/a",
            ok_num(rr) and rr <= 1.5)
    tp = paced_run(main, "trivial") or {}
    add(rows, g, "trivial p50, paused", "<= 1.5 ms", f(tp.get("p50")),
        ok_num(tp.get("p50")) and tp["p50"] <= 1.5)
    add(rows, g, "trivial p99, paused", "<= 5 ms", f(tp.get("p99")),
        ok_num(tp.get("p99")) and tp["p99"] <= 5)

    g = "2. back-to-back"
    cpu = t1["cpu_ms"] if t1 else None
    add(rows, g, "CPU per trivial execution, 1 client (server + zygote + workers)", "<= 4 ms",
        f(cpu), ok_num(cpu) and cpu <= 4)
    thr = sat["throughput"] if sat else None
    add(rows, g, "saturated trivial throughput, 16 clients", ">= 400/s",
        f"{fmt(thr, 0)}/s" if ok_num(thr) else "n/a", ok_num(thr) and thr >= 400)
    p = t1["p50"] if t1 else None
    add(rows, g, "trivial p50, 1 client", "<= 2.5 ms", f(p), ok_num(p) and p <= 2.5)
    jt = (jsn.get("trivial") or {}).get("p50")
    add(rows, g, "trivial p50, 1 client, vs the Jupyter kernel back-to-back", "pyexecd faster",
        f"{f(p)} vs {f(jt)}", ok_num(p) and ok_num(jt) and p < jt)

    g = "3. sessions"
    se = res.get("sessions")
    skipped = se is None
    se = se or {}
    n, got = se.get("asked"), se.get("created")
    why = ["--no-sessions"] if skipped else []
    if se.get("flag_refused"):
        why.append(f"--max-sessions {n} refused"
                   + (f", ran with {se['max_sessions_flag']}" if se.get("max_sessions_flag")
                      else ""))
    if se.get("refused"):
        why.append(f"{se['refused']} creations refused")
    if se.get("memory_stop"):
        why.append(f"stopped: {se['memory_stop']}")
    if se.get("error"):
        why.append(se["error"][:120].replace("|", "/"))
    na = "n/a (--no-sessions)" if skipped else "n/a"
    add(rows, g, f"{n or 'N'} sessions held at once", f"all {n or 'N'} created",
        (f"{got} of {n}" if got is not None else "n/a") + (f" ({'; '.join(why)})" if why else ""),
        got is not None and got == n)
    v = se.get("pss_per_session_mb")
    add(rows, g, "PSS per idle session (after one execute each)", "<= 2 MB",
        f(v, " MB") if ok_num(v) else na, ok_num(v) and v <= 2)
    v = (se.get("session_exec") or {}).get("p50")
    add(rows, g, "warm session execute p50, paced, random sessions", "<= 0.5 ms",
        f(v, digits=3) if ok_num(v) else na, ok_num(v) and v <= 0.5)
    v = se.get("execute_ratio")
    b = (se.get("execute_before") or {}).get("p50")
    w = (se.get("execute_with") or {}).get("p50")
    add(rows, g, "/v1/execute p50 paced, with the sessions / without", "<= 1.5x",
        f"{fmt(v)}x ({f(w)} / {f(b)})" if ok_num(v) else na, ok_num(v) and v <= 1.5)
    v = se.get("create_rate")
    add(rows, g, f"session creation, {se.get('threads', SESSION_THREADS)} clients", ">= 300/s",
        f"{fmt(v, 0)}/s" if ok_num(v) else na, ok_num(v) and v >= 300)

    g = "4. cost flat in load"
    for s in PEER_SNIPPETS:   # the session rows count whole session workers: see the table
        cpus, spread = cpu_flatness(main["runs"], s.name)
        add(rows, g, f"{s.name}: CPU per execution at {', '.join(map(str, CONCURRENCY))} "
            "clients, max / min", "<= 1.10",
            f"{fmt(spread, 3)} ({' / '.join(fmt(c) if c else 'n/a' for c in cpus)} ms)",
            ok_num(spread) and spread <= 1.10)

    # Earlier targets, those the issue 14 ones do not supersede.
    if cold and t1:
        rc = ratio(cold["trivial"]["p50"], t1["p50"])
        add(earlier, "", "trivial p50: cold process / pyexecd, 1 client", ">= 1000x",
            f"{fmt(rc, 0)}x ({fmt(cold['trivial']['p50'], 0)} ms / {f(t1['p50'])})",
            ok_num(rc) and rc >= 1000)
    else:
        add(earlier, "", "trivial p50: cold process / pyexecd, 1 client", ">= 1000x", "n/a",
            False)
    add(earlier, "", "idle footprint (PSS: server + zygote + pool)", "<= 500 MB",
        f(main.get("idle_pss_mb"), " MB", 0),
        ok_num(main.get("idle_pss_mb")) and main["idle_pss_mb"] <= 500)
    gen = main.get("generate")
    add(earlier, "", "generateContent (echo) overhead over /v1/execute, p50 of paired "
        "requests", "< 1 ms",
        f"{f(gen['overhead_p50'])} ({fmt(gen['generate']['p50'])} vs "
        f"{fmt(gen['execute']['p50'])} ms)" if gen else "n/a",
        bool(gen) and ok_num(gen["overhead_p50"]) and gen["overhead_p50"] < 1)
    pk = priv.get("private_kb")
    add(earlier, "", "private memory of a worker running the trivial snippet", "<= 5 MB",
        f"{pk * 1024 / MB:.1f} MB" if pk is not None else "n/a",
        pk is not None and pk * 1024 / MB <= 5)
    return rows, earlier


def targets_tables(rows, earlier):
    """The targets as Markdown lines: issue 14's, then the earlier ones."""
    passed = sum(r[4] == "PASS" for r in rows)
    L = ["## Targets (issue 14)", "", f"{passed} of {len(rows)} pass.", "",
         "| group | target | wanted | measured | |", "|---|---|---|---|---|"]
    L += [f"| {g} | {a} | {b} | {c} | **{d}** |" for g, a, b, c, d in rows]
    L += ["", "### Earlier targets", "", "| target | wanted | measured | |",
          "|---|---|---|---|"]
    L += [f"| {a} | {b} | {c} | **{d}** |" for _, a, b, c, d in earlier]
    return L


def sessions_section(se):
    """The report's "Sessions at scale" lines."""
    L = ["", "## Sessions at scale", ""]
    if se is None:
        return L + ["Not run (`--no-sessions`)."]
    L.append(f"A server of its own, `--max-sessions {se.get('max_sessions_flag') or se['asked']}"
             f" --session-idle-ms {SESSION_IDLE_MS}`"
             + (f" (started in {se['start_s']:.1f} s)" if se.get("max_sessions_flag") else "")
             + f", asked for {se['asked']} sessions from {se['threads']} clients.")
    if se.get("flag_refused"):
        L.append(f"The server refused `--max-sessions {se['asked']}`: `{se['flag_refused']}`"
                 + (f"; it ran with `--max-sessions {se['max_sessions_flag']}` (this tree's "
                    "LIMIT_SESSIONS_MAX)." if se.get("max_sessions_flag") else "."))
    if se.get("error"):
        L.append(f"The phase stopped early: `{se['error']}`.")
    L += ["", "| what | figure |", "|---|---|"]

    def row(what, v):
        L.append(f"| {what} | {v} |")

    def lat(r):
        return (f"p50 {fmt(r['p50'], 3)} ms, p90 {fmt(r['p90'])}, p99 {fmt(r['p99'])} "
                f"(n={r['n']}, errors {r['errors']})") if r else "n/a"
    row(f"`/v1/execute` trivial, paced {PACE_S * 1000:.0f} ms, no session yet",
        lat(se.get("execute_before")))
    if "created" in se:
        row("sessions created", f"{se['created']} of {se['asked']} in "
            f"{se['create_wall_s']:.1f} s: **{fmt(se['create_rate'], 0)}/s**")
        row("creations refused", f"{se['refused']}" + (f", the first: `{se['first_refusal']}`"
                                                       if se.get("first_refusal") else ""))
        if se.get("memory_stop"):
            row("creation stopped early", f"after {se['attempted']} attempts: "
                f"{se['memory_stop']} (the machine's safety floor)")
    if "warmed" in se:
        part = ("every session" if se["warmed"] + se["warm_failed"] >= se["created"]
                else f"a sample of {se['warmed'] + se['warm_failed']} ("
                + (se.get("warm_memory_stop") or "the time budget ran out") + ")")
        row("one execute in each, to warm them", f"{part}: {se['warmed']} ok, "
            f"{se['warm_failed']} failed, in {se['warm_wall_s']:.1f} s")
    if "pss_with_mb" in se:
        row("PSS, server + zygote + workers", f"{se['pss_before_mb']:.0f} MB "
            f"({se['procs_before']} processes) before, {se['pss_with_mb']:.0f} MB "
            f"({se['procs_with']} processes) with the sessions idle (read in "
            f"{se['pss_read_s']:.1f} s)")
        row("PSS per idle session", f"**{se['pss_per_session_mb']:.2f} MB**")
    if "session_exec" in se:
        row("warm session execute, 1 client paced, random sessions", lat(se["session_exec"]))
    if "execute_with" in se:
        row("`/v1/execute` trivial, paced, with the sessions alive",
            lat(se["execute_with"]) + f": **{fmt(se['execute_ratio'])}x** the figure without")
    if "deleted" in se:
        row("sessions deleted", f"{se['deleted']} in {se['delete_wall_s']:.1f} s "
            f"({fmt(se['delete_rate'], 0)}/s)")
        row("healthy after", f"{'yes' if se['healthy_after'] else '**no**'}: "
            f"/healthz {se['health_after']['status']}, sessions "
            f"{se['health_after']['sessions']}, {se['health_after']['executes_after']} "
            f"executes with {se['health_after']['execute_errors_after']} errors")
    return L


def build_report(res, argv, elapsed):
    main, nopool = res["main"], res["nopool"]
    cold, jup, inproc = res.get("cold"), res.get("jupyter"), res.get("inprocess")
    t1 = find(main["runs"], "trivial", 1)
    sess = find(main["runs"], "session", 1)
    jt = jup["snippets"].get("trivial") if jup else None
    jp = jup["snippets"].get("trivial-paced") if jup else None
    g = main.get("generate")

    def ms(r, key="p50", digits=2):
        return fmt(r[key], digits) if r else "n/a"

    targets, earlier = target_rows(res)

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(res["started"]))
    iso = main["health_after"].get("isolation", {})
    off = [k for k, v in iso.items() if not v]
    layers = "all on" if iso and not off else "off: " + ", ".join(off)
    b0, b1 = res["background_start"], res["background_end"]
    L = [f"# pyexecd benchmark{' (quick smoke run)' if res['quick'] else ''}", "",
         f"- date: {when}; took {elapsed / 60:.1f} min",
         f"- machine: {machine_line()}; load average {b0['loadavg']} at the start, "
         f"{b1['loadavg']} at the end; other pyexecd processes running: {b0['other_pyexecd']} "
         f"at the start, {b1['other_pyexecd']} at the end",
         f"- command: {command_line(argv)}",
         f"- code: {res.get('code', 'n/a')}",
         f"- server: `build/pyexecd --workers {os.cpu_count()}` (one per core) with the default "
         f"`--pool {main['pool']}`, and with `--pool 0`; embedded Python "
         f"{main['health_after'].get('python')}; isolation layers {layers}",
         f"- load: stdlib `http.client`, one thread and one keep-alive connection per client, "
         f"back-to-back requests on loopback; a run is {res['plan']['requests']} requests or "
         f"{res['plan']['seconds']:g} s (`--pool 0`: {res['plan_nopool']['requests']} or "
         f"{res['plan_nopool']['seconds']:g} s), after 2 untimed requests per client. The "
         "client runs on the same 2 cores as the server.", "",
         ""]
    L += targets_tables(targets, earlier)
    nopool_runs = nopool["runs"] + nopool.get("paced_runs", [])
    disturbed = [f"{'--pool 0 ' if any(r is x for x in nopool_runs) else ''}"
                 f"{r['snippet']}{', paused,' if r.get('pause_ms') else ''} at "
                 f"{r['concurrency']} ({r['other_cpu_pct']:.0f}%)"
                 for r in main["runs"] + nopool["runs"] + main.get("paced_runs", [])
                 + nopool.get("paced_runs", [])
                 if r and r["other_cpu_pct"] == r["other_cpu_pct"] and r["other_cpu_pct"] > 30]
    L += ["", "Runs disturbed by other work on the machine (other CPU over 30% of a core): "
          + (", ".join(disturbed) + ": re-run before trusting them." if disturbed else "none.")]

    paced, paced0 = main.get("paced"), nopool.get("paced")
    t0 = find(nopool["runs"], "trivial", 1)
    h = main.get("healthz")
    L += ["", "## Where the time of a trivial execution goes (1 client)", "",
          "| what | p50 ms | p90 ms | p99 ms |", "|---|---:|---:|---:|"]
    rows = [("`GET /healthz`: HTTP and client only", h),
            ("session execute: warm interpreter, no fork", sess),
            (f"pool worker, client pausing {PACE_S * 1000:.0f} ms between requests "
             "(a full pool: a fresh interpreter, no wait)", paced),
            ("pool worker, back-to-back (the target's figure: the pool refills as fast as "
             "requests come)", t1),
            (f"`--pool 0`, pausing {PACE_S * 1000:.0f} ms (fork and sandbox set-up on the "
             "request's path)", paced0),
            ("`--pool 0`, back-to-back", t0),
            (f"Jupyter kernel, pausing {PACE_S * 1000:.0f} ms", jp),
            ("Jupyter kernel, back-to-back", jt)]
    if g:
        rows += [(f"`/v1/execute`, pausing {GEN_PACE_S * 1000:.0f} ms, paired with the next row",
                  g["execute"]),
                 (f"generateContent with the echo model, the same block, paired", g["generate"])]
    for what, r in rows:
        if r:
            L.append(f"| {what} | {ms(r)} | {ms(r, 'p90')} | {ms(r, 'p99')} |")
    split = t1["cpu_split_ms"]
    L += ["", f"CPU per trivial execution, back-to-back: {t1['cpu_ms']:.1f} ms (server "
          f"{split['server']:.1f}, zygote {split['zygote']:.1f}: its forks, workers "
          f"{split['workers']:.1f}: sandbox set-up, the job, exit), and "
          f"{t1['client_cpu_ms']:.2f} ms in the client: two cores allow at most "
          f"{2000 / (t1['cpu_ms'] + t1['client_cpu_ms']):.0f} executions/s. Every execution "
          "takes a fresh worker, and a worker needs several milliseconds from its fork to "
          "READY (a few of CPU, the rest waiting for a core or blocked in the kernel), so "
          "one client sending back-to-back drains the pool and its requests wait for the "
          "next worker: the back-to-back figure measures how fast the pool refills, the "
          "paused one the path of one request. `python3 bench/bench.py --breakdown` times "
          "each step with perf (bench/results/breakdown.md)."]

    L += ["", f"## One client pausing {PACE_S * 1000:.0f} ms between requests, beside "
          "back-to-back (p50 ms, p99 in brackets)", "",
          "| snippet | pyexecd paused | pyexecd back-to-back | Jupyter paused "
          "| Jupyter back-to-back | warm in-process | pyexecd paused / Jupyter paused "
          "| pyexecd paused / in-process |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in PEER_SNIPPETS:
        a, b = paced_run(main, s.name), find(main["runs"], s.name, 1)
        j = jup["snippets"].get(f"{s.name}-paced") if jup else None
        jb = jup["snippets"].get(s.name) if jup else None
        ip = inproc.get(s.name) if inproc else None

        def both(r):
            return f"{ms(r)} ({ms(r, 'p99')})" if r else "n/a"
        L.append(f"| {s.title} | {both(a)}{' n=' + str(a['n']) if a else ''} | {both(b)} "
                 f"| {both(j)} | {both(jb)} | {fmt(ip['p50'], 3) if ip else 'n/a'} "
                 f"| {fmt(ratio(a and a['p50'], j and j['p50'])) + 'x' if j else 'n/a'} "
                 f"| {fmt(ratio(a and a['p50'], ip and ip['p50'])) + 'x' if ip else 'n/a'} |")
    L += ["", "Paused: one client waits "
          f"{PACE_S * 1000:.0f} ms after each reply, so each request finds a full pool (each "
          "still runs in a fresh sandboxed interpreter); the Jupyter kernel is paced the same "
          "way, in one stateful, unsandboxed interpreter. A paused run is "
          f"{res['plan']['paced']} requests or {res['plan'].get('paced_seconds', 0):g} s "
          "(trivial: all of them), after 2 untimed ones."]

    L += ["", "## Peers, 1 client, back-to-back (p50 ms, p99 in brackets)", "",
          "| snippet | pyexecd | pyexecd `--pool 0` | Jupyter kernel | warm in-process "
          "| cold process | cold / pyexecd | pyexecd / Jupyter | pyexecd / in-process |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in PEER_SNIPPETS:
        a = find(main["runs"], s.name, 1)
        b = find(nopool["runs"], s.name, 1)
        j = jup["snippets"].get(s.name) if jup else None
        ip = inproc.get(s.name) if inproc else None
        c = cold.get(s.name) if cold else None
        L.append(
            f"| {s.title} | {ms(a)} ({ms(a, 'p99')}) | {ms(b)} ({ms(b, 'p99')}) "
            f"| {ms(j) + ' (' + ms(j, 'p99') + ')' if j else 'n/a'} "
            f"| {fmt(ip['p50'], 3) if ip else 'n/a'} "
            f"| {fmt(c['p50'], 0) + ' (n=' + str(c['n']) + ')' if c else 'n/a'} "
            f"| {fmt(ratio(c['p50'], a['p50']), 0) + 'x' if c else 'n/a'} "
            f"| {fmt(ratio(a['p50'], j['p50'])) + 'x' if j else 'n/a'} "
            f"| {fmt(ratio(a['p50'], ip['p50']), 1) + 'x' if ip else 'n/a'} |")
    L += ["", f"pyexecd session execute of `print(1+1)`: p50 {ms(sess)} ms, p99 "
          f"{ms(sess, 'p99')} ms: like a Jupyter or in-process call, it reuses one interpreter.",
          "",
          "Jupyter: one ipykernel " + (f"(ready in {jup['startup_ms']:.0f} ms; PSS "
          f"{jup['pss_kb'] * 1024 / MB:.0f} MB after the runs) " if jup and jup.get("pss_kb")
          else "") + "driven by `jupyter_client`'s `execute_interactive`, each snippet's first "
          "call untimed (it imports); stateful and unsandboxed. Warm in-process: the sandbox "
          "venv's python `exec`-ing the snippet in a loop after one untimed call, stdout to "
          "memory. Cold: `/opt/pyexecd/venv/bin/python -c` importing the zygote's libraries, "
          "then the snippet. The plot peers save a 100-dpi PNG to memory, as pyexecd's "
          "`plt.show()` does."]
    if jup:
        bad = {k: v["errors"] for k, v in jup["snippets"].items() if v.get("errors")}
        if bad:
            L += ["", f"Jupyter calls that failed or printed the wrong thing: {bad}."]

    L += ["", "## Memory", "",
          f"- idle footprint, PSS of server + zygote + "
          f"{sum(1 for p in main['idle'] if p['kind'] == 'worker')} pool workers: "
          f"**{main['idle_pss_mb']:.0f} MB** (RSS {main['idle_rss_mb']:.0f} MB): "
          + ", ".join(f"{p['kind']} {p['pss_kb'] * 1024 / MB:.1f}" for p in main["idle"]) + " MB",
          f"- with `--pool 0`: PSS {nopool['idle_pss_mb']:.0f} MB (server + zygote)"]
    for m in main.get("private", []):
        if "private_kb" in m:
            L.append(f"- a worker running {m['label']} (read during a sleep after it): private "
                     f"{m['private_kb'] * 1024 / MB:.1f} MB, PSS {m['pss_kb'] * 1024 / MB:.0f} MB,"
                     f" RSS {m['rss_kb'] * 1024 / MB:.0f} MB; idle pool workers beside it: "
                     "private " + ", ".join(f"{k * 1024 / MB:.1f}" for k in m["idle_private_kb"])
                     + " MB")
    sampler_cpu = [r["sampler_cpu_pct"] for r in main["runs"] if r["sampler_cpu_pct"] is not None]
    L += ["- peak PSS of each run: in the tables below. A process at nice 19 sums the "
          "`smaps_rollup` Pss of the server, the zygote and every worker (the server's uid "
          "range, and the zygote's children) every 50 ms; it used "
          f"{statistics.fmean(sampler_cpu) if sampler_cpu else float('nan'):.0f}% of a core "
          "on average. An exiting worker's pages still count in the others' PSS while its "
          "own map is gone, so single samples read low; the peak is what is reported."]

    L += sessions_section(res.get("sessions"))

    L += ["", "## CPU per execution versus load (ms, pool server, back-to-back)", "",
          "| snippet | " + " | ".join(f"{c} client{'s' if c > 1 else ''}" for c in CONCURRENCY)
          + " | max / min |", "|---|" + "---:|" * (len(CONCURRENCY) + 1)]
    for s in SNIPPETS:
        cpus, spread = cpu_flatness(main["runs"], s.name)
        L.append(f"| {s.name} | " + " | ".join(fmt(c) if c else "n/a" for c in cpus)
                 + f" | {fmt(spread, 3)} |")
    L += ["", "From the matrix runs below: server + zygote + reaped workers, in 10 ms clock "
          "ticks over each run. The targets take the five fresh-interpreter snippets: a "
          "session's worker is reaped (its whole life's CPU counted) when the run deletes "
          "the session, one per client, so the session row grows with the clients by "
          "construction."]

    if h:
        L += ["", "## Client overhead", "",
              f"`GET /healthz` on the same kind of connection, 1 client, n={h['n']}: p50 "
              f"{h['p50']:.3f} ms, p90 {h['p90']:.3f} ms, p99 {h['p99']:.3f} ms; the client "
              f"spends {h['client_cpu_ms']:.3f} ms of CPU per request, and "
              f"{t1['client_cpu_ms']:.3f} ms per trivial execute (the 1 MB reply: "
              f"{find(main['runs'], '1mb', 1)['client_cpu_ms']:.2f} ms). Python's client does "
              "not distort the millisecond figures."]

    L += ["", f"## pyexecd, `--pool {main['pool']}` (default)", ""] + matrix_table(main["runs"])
    L += ["", "## pyexecd, `--pool 0` (forks on demand)", ""] + matrix_table(nopool["runs"])
    L += ["", "exec/s: executions over the run's wall time. Server CPU per execution: utime + "
          "stime of the server and of the zygote, plus the zygote's cutime + cstime (its reaped "
          "workers), read before and after each run, divided by its executions (10 ms clock "
          "ticks: coarse for short runs). A session's worker is reaped when its client deletes "
          "the session at the end of the run: its set-up and untimed requests are spread "
          "over the run's executions. Other CPU: what the rest of the machine used "
          "during the run (all busy CPU time from /proc/stat, less the server's, the "
          "zygote's, the reaped workers', the client's and the sampler's), in % of one core: "
          "kernel threads, some of them freeing the workers' memory, and any other process. "
          "Far above the usual few tens of %: the run was disturbed.", "",
          "![latency versus concurrency](" + res["png_name"] + ")", ""]
    return "\n".join(L) + "\n", targets_tables(targets, earlier)


PLOT = r"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
d = json.load(sys.stdin)
fig, axes = plt.subplots(1, 3, figsize=(16, 5.8))
colors = {}
for label, runs, style in (("pool", d["main"], "-"), ("--pool 0", d["nopool"], ":")):
    for name in d["snippets"]:
        rs = sorted((r for r in runs if r["snippet"] == name), key=lambda r: r["concurrency"])
        if not rs:
            continue
        xs = [r["concurrency"] for r in rs]
        kw = {"linestyle": style, "marker": "o", "markersize": 3}
        if name in colors:
            kw["color"] = colors[name]
        line, = axes[0].plot(xs, [r["p50"] for r in rs],
                             label=f"{name}" + (" --pool 0" if style == ":" else ""), **kw)
        colors[name] = line.get_color()
        kw["color"] = colors[name]
        axes[1].plot(xs, [r["p99"] for r in rs], **kw)
        axes[2].plot(xs, [r["throughput"] for r in rs], **kw)
for ax, title, ylabel in ((axes[0], "p50 latency", "ms"), (axes[1], "p99 latency", "ms"),
                          (axes[2], "throughput", "executions/s")):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks([1, 2, 4, 16])
    ax.set_xticklabels(["1", "2", "4", "16"])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
if d.get("jupyter_trivial"):
    axes[0].axhline(d["jupyter_trivial"], color="gray", linestyle="--", linewidth=1)
    axes[0].annotate("Jupyter trivial p50", (1, d["jupyter_trivial"]), fontsize=8, color="gray")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8, frameon=False)
fig.suptitle(d["title"], fontsize=10)
fig.tight_layout(rect=(0, 0.1, 1, 0.97))
fig.savefig(d["out"], dpi=100)
"""


def draw_plot(res, path):
    data = {"main": res["main"]["runs"], "nopool": res["nopool"]["runs"],
            "snippets": [s.name for s in SNIPPETS], "out": path,
            "title": f"pyexecd latency and throughput vs concurrency "
                     f"(solid: --pool {res['main']['pool']}, dotted: --pool 0), "
                     f"{time.strftime('%Y-%m-%d', time.gmtime(res['started']))}, "
                     f"{os.cpu_count()} cores",
            "jupyter_trivial": (res["jupyter"]["snippets"]["trivial"]["p50"]
                                if res.get("jupyter") else None)}
    p = subprocess.run([VENV_PYTHON, "-c", PLOT], input=json.dumps(data), text=True,
                       capture_output=True, env=PEER_ENV)
    if p.returncode != 0:
        log(f"could not draw the plot: {p.stderr[-500:]}")
        return False
    return True


# --- --breakdown: where one trivial execution's time and CPU go, measured with perf ------

# Tracepoints marking each step (CLOCK_MONOTONIC, the clock of the client's timestamps),
# and CPU samples with kernel call chains.
TRACE_EVENTS = [
    ("sched:sched_process_fork", None),      # the zygote forks a worker
    ("syscalls:sys_enter_clone", None),      # ... and how long its fork() takes
    ("syscalls:sys_exit_clone", None),
    ("syscalls:sys_enter_sendmsg", None),    # worker: READY, BLOCK_DONE, JOB_DONE; HTTP reply
    ("syscalls:sys_exit_read", "ret == 8"),  # worker: a frame header arrives (its job)
    ("syscalls:sys_exit_recvfrom", None),    # HTTP thread: the request arrives
    ("syscalls:sys_enter_write", "fd == 1"), # worker: the snippet prints
    ("sched:sched_switch/call-graph=fp/", None),  # where a worker setting itself up waits
]


STEP_ORDER = [
    "1. client sends -> server has the request",
    "2. server has it -> a worker has the job",
    "   of which: waiting for a worker to finish its set-up",
    "3. worker: job received -> JOB_DONE sent",
    "3a. worker: job received -> the snippet prints",
    "4. JOB_DONE -> HTTP reply sent",
    "5. HTTP reply sent -> client has it",
    "whole request (client)",
    "(its worker: forked -> READY, sandboxed)",
    "(the zygote's fork() call)",
]


def perf_trace(server, zygote, code, n, pause):
    """Runs n requests of `code` from one client under `perf record -a`; returns the
    parsed events and the client's (t0, t1) per request."""
    body = json.dumps(code_part(code)).encode()
    c = Client(server.port)
    for _ in range(20):
        c.call("POST", "/v1/execute", body)
    data = tempfile.mktemp(prefix="pyexecd-bench-", suffix=".perf")
    cmd = ["perf", "record", "-a", "-q", "-m", "8192", "-k", "CLOCK_MONOTONIC",
           "-o", data, "-e", "cpu-clock/freq=4000,call-graph=fp/"]
    for ev, flt in TRACE_EVENTS:
        cmd += ["-e", ev] + (["--filter", flt] if flt else [])
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    if p.poll() is not None:
        raise RuntimeError(f"perf record failed: {p.stderr.read()[-500:]}")
    reqs = []
    for _ in range(n):
        t0 = time.monotonic()
        _, ok, _ = c.call("POST", "/v1/execute", body)
        reqs.append((t0, time.monotonic(), ok))
        if pause:
            time.sleep(pause)
    time.sleep(0.3)
    p.send_signal(2)
    p.wait(60)
    c.close()
    threads = {}
    for tid in os.listdir(f"/proc/{server.proc.pid}/task"):
        with open(f"/proc/{server.proc.pid}/task/{tid}/comm") as f:
            threads[int(tid)] = f.read().strip()
    text = subprocess.run(["perf", "script", "-i", data, "-F",
                           "comm,pid,tid,time,event,trace,ip,sym,dso"],
                          capture_output=True, text=True).stdout
    os.unlink(data)
    return parse_perf_script(text), reqs, threads


def parse_perf_script(text):
    import re
    hdr = re.compile(r"^\s*(\S.*?)\s+(\d+)/(\d+)\s+([\d.]+):\s+(?:\d+\s+)?(\S+):\s?(.*)$")
    events, cur = [], None
    for line in text.splitlines():
        if line.startswith("\t"):
            if cur is not None and line.strip():
                cur["stack"].append(line.strip())
            continue
        m = hdr.match(line)
        if not m:
            continue
        ev = m.group(5)
        cur = {"comm": m.group(1).strip(), "pid": int(m.group(2)), "tid": int(m.group(3)),
               "t": float(m.group(4)), "ev": "cpu-clock" if ev.startswith("cpu-clock") else ev,
               "args": m.group(6), "stack": []}
        events.append(cur)
    events.sort(key=lambda e: e["t"])
    return events


def classify_worker_sample(stack):
    """What a worker's CPU sample was doing, from its kernel call chain and the first
    user-space frame."""
    joined = " ".join(stack)
    user = [f for f in stack if "kallsyms" not in f]
    where = "libpython" if user and "libpython" in user[0] else "libc or pyexecd"
    if "asm_exc_page_fault" in joined:
        return f"page faults (copy-on-write), faulting in {where}"
    if any(k in joined for k in ("seccomp_set_mode_filter", "prctl_set_seccomp",
                                 "do_seccomp")):
        return "seccomp filter load"
    if "__seccomp_filter" in joined:
        return "seccomp filter checks"
    if "__x64_sys_unshare" in joined:
        return "unshare (namespaces)"
    if any(k in joined for k in ("path_mount", "__x64_sys_mount", "__x64_sys_umount",
                                 "mount_setattr", "move_mount")):
        return "mounts"
    if any(k in joined for k in ("cgroup1_procs_write", "cgroup_procs_write",
                                 "cgroup_attach")):
        return "cgroup join"
    if "landlock" in joined:
        return "Landlock"
    if "entry_SYSCALL" in joined:
        return "other system calls"
    if stack and "kallsyms" in stack[0]:
        return "other kernel"
    return "user space, " + ("libpython" if where == "libpython" else "libc or pyexecd")


def analyze_trace(events, reqs, threads, server_pid, zygote_pid):
    import bisect
    import collections
    forks, clones, workers = {}, [], collections.defaultdict(lambda: {"ev": [], "cpu": []})
    http_in, http_out = [], []
    other_cpu = collections.Counter()
    clone_start = None
    for e in events:
        ev, pid = e["ev"], e["pid"]
        if pid == zygote_pid:
            if ev == "sched:sched_process_fork":
                forks[int(e["args"].split("child_pid=")[1].split()[0])] = e["t"]
            elif ev == "syscalls:sys_enter_clone":
                clone_start = e["t"]
            elif ev == "syscalls:sys_exit_clone" and clone_start is not None:
                clones.append((e["t"] - clone_start) * 1000)
                clone_start = None
            elif ev == "cpu-clock":
                j = " ".join(e["stack"])
                other_cpu["zygote: fork()" if "copy_process" in j else "zygote: other"] += 1
        elif pid == server_pid:
            name = threads.get(e["tid"], "?")
            if ev == "cpu-clock":
                other_cpu["server: HTTP threads" if name.startswith("MHD") else
                          "server: executor and main"] += 1
            elif name.startswith("MHD") and ev == "syscalls:sys_exit_recvfrom":
                if not e["args"].split()[0].startswith("0xf"):   # not an error
                    http_in.append(e["t"])
            elif name.startswith("MHD") and ev == "syscalls:sys_enter_sendmsg":
                http_out.append(e["t"])
        elif e["comm"].startswith("pyexecd"):
            workers[pid]["cpu" if ev == "cpu-clock" else "ev"].append(e)
        elif ev == "cpu-clock":
            other_cpu["idle" if e["comm"] == "swapper" else
                      "client (this benchmark)" if pid == os.getpid() else
                      "kernel threads" if e["comm"].startswith(("kworker", "ksoftirqd", "rcu"))
                      else "other processes"] += 1
    marks = {}
    for pid, d in workers.items():
        m = {"fork": forks.get(pid)}
        sends = [e["t"] for e in d["ev"] if e["ev"] == "syscalls:sys_enter_sendmsg"]
        if sends:
            m["ready"] = sends[0]
            reads = [e["t"] for e in d["ev"] if e["ev"] == "syscalls:sys_exit_read"
                     and e["t"] > sends[0]]
            if reads:
                m["job"] = reads[0]
                after = [t for t in sends if t > m["job"]]
                if len(after) >= 2:
                    m["job_done"] = after[1]
                prints = [e["t"] for e in d["ev"] if e["ev"] == "syscalls:sys_enter_write"
                          and e["t"] > m["job"]]
                if prints:
                    m["print"] = prints[0]
        marks[pid] = m
    jobs = sorted((m["job"], pid) for pid, m in marks.items() if "job" in m)
    job_times = [t for t, _ in jobs]
    steps = collections.defaultdict(list)
    for t0, t1, ok in reqs:
        i = bisect.bisect_left(job_times, t0)
        if i >= len(jobs) or jobs[i][0] > t1:
            continue
        m = marks[jobs[i][1]]
        hin = [t for t in http_in if t0 <= t <= m["job"]]
        steps["whole request (client)"].append((t1 - t0) * 1000)
        if not hin or "job_done" not in m:
            continue
        out = [t for t in http_out if m["job_done"] <= t <= t1]
        steps["1. client sends -> server has the request"].append((hin[0] - t0) * 1000)
        steps["2. server has it -> a worker has the job"].append((m["job"] - hin[0]) * 1000)
        if m.get("ready"):
            steps["   of which: waiting for a worker to finish its set-up"].append(
                max(0.0, m["ready"] - hin[0]) * 1000)
        if "print" in m:
            steps["3a. worker: job received -> the snippet prints"].append(
                (m["print"] - m["job"]) * 1000)
        steps["3. worker: job received -> JOB_DONE sent"].append(
            (m["job_done"] - m["job"]) * 1000)
        if out:
            steps["4. JOB_DONE -> HTTP reply sent"].append((out[0] - m["job_done"]) * 1000)
            steps["5. HTTP reply sent -> client has it"].append((t1 - out[0]) * 1000)
        if m.get("fork") and m.get("ready"):
            steps["(its worker: forked -> READY, sandboxed)"].append(
                (m["ready"] - m["fork"]) * 1000)
    if clones:
        steps["(the zygote's fork() call)"] = clones
    # Worker CPU by phase.
    period = 0.25   # ms: cpu-clock at 4000 Hz
    phase = collections.Counter()
    used = 0
    for pid, d in workers.items():
        m = marks[pid]
        if "job_done" not in m:
            continue
        used += 1
        for s in d["cpu"]:
            j = " ".join(s["stack"])
            if "do_exit" in j or "do_group_exit" in j:
                ph = "exit"
            elif s["t"] <= m["ready"]:
                ph = "set-up (fork -> READY)"
            elif m["job"] <= s["t"] <= m["job_done"]:
                ph = "job"
            else:
                ph = "between"
            phase[(ph, "exit (memory teardown)" if ph == "exit"
                   else classify_worker_sample(s["stack"]))] += 1
    n = len(reqs)
    waits = setup_waits([e for e in events if e["ev"] == "sched:sched_switch"], marks)
    return steps, phase, used, other_cpu, n, period, waits


def setup_waits(switches, marks):
    """How each worker spends its set-up (fork -> READY): on a CPU, waiting for one
    (preempted), or blocked in the kernel, with the call chains it blocked in."""
    import collections
    import re
    pat = re.compile(r"prev_pid=(\d+).*prev_state=(\S+) ==> .*next_pid=(\d+)")
    skip = ("__traceiter", "perf_trace", "__perf", "__schedule", "schedule",
            "preempt_schedule", "io_schedule")
    window = {pid: (m["fork"], m["ready"]) for pid, m in marks.items()
              if m.get("fork") and m.get("ready")}
    on, state = collections.Counter(), collections.Counter()
    chains = collections.Counter()
    last_in, last_out = {}, {}
    for e in switches:
        m = pat.search(e["args"])
        if not m:
            continue
        prev, st, nxt, t = int(m.group(1)), m.group(2), int(m.group(3)), e["t"]
        if prev in window and window[prev][0] <= t <= window[prev][1]:
            if prev in last_in:
                on["cpu"] += t - last_in.pop(prev)
            frames = [f.split()[1] for f in e["stack"] if len(f.split()) > 1
                      and "kallsyms" in f]
            frames = [f for f in frames if not f.startswith(skip)]
            last_out[prev] = (t, st[:1], " < ".join(frames[:6]))
        if nxt in window and window[nxt][0] <= t <= window[nxt][1] + 0.001:
            if nxt in last_out:
                t0, st, chain = last_out.pop(nxt)
                state["waiting for a CPU (preempted)" if st == "R" else
                      "blocked in the kernel"] += t - t0
                if st != "R":
                    chains[chain] += t - t0
            last_in[nxt] = t
    n = max(len(window), 1)
    walls = [w[1] - w[0] for w in window.values()]
    return {"workers": len(window), "wall_ms": 1000 * sum(walls) / n,
            "on_cpu_ms": 1000 * on["cpu"] / n,
            "states": {k: 1000 * v / n for k, v in state.items()},
            "chains": [(c, 1000 * v / n) for c, v in chains.most_common(6)]}


def breakdown(out_dir):
    import shutil
    if not shutil.which("perf"):
        sys.exit("--breakdown needs perf (Debian: apt-get install linux-perf)")
    L = ["# pyexecd: where a trivial execution's time goes", "",
         f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
         f"- machine: {machine_line()}; load average {background()['loadavg']}",
         "- command: `python3 bench/bench.py --breakdown`: one client sends `print(1+1)` 300 "
         "times to pyexecd `--pool 2 --workers 2` under `perf record -a` (tracepoints "
         "on the steps, CPU samples at 4 kHz with kernel call chains)",
         f"- code: {code_line()}", ""]
    with Server(workers=os.cpu_count() or 1, pool=2) as server:
        zygote = server.zygote_pid()
        time.sleep(1.0)
        for label, pause in (("back-to-back", 0.0),
                             (f"pausing {PACE_S * 1000:.0f} ms between requests", PACE_S)):
            log(f"breakdown: {label}")
            events, reqs, threads = perf_trace(server, zygote, BY_NAME["trivial"].code, 300,
                                               pause)
            steps, phase, used, other, n, period, waits = analyze_trace(
                events, reqs, threads, server.proc.pid, zygote)
            L += [f"## One client, {label}", "",
                  "| step | n | p50 ms | mean ms | p90 ms |", "|---|---:|---:|---:|---:|"]
            for k in STEP_ORDER:
                v = steps.get(k)
                if not v:
                    continue
                L.append(f"| {k} | {len(v)} | {percentile(v, 50):.3f} | "
                         f"{statistics.fmean(v):.3f} | {percentile(v, 90):.3f} |")
            L += ["", f"CPU per execution (ms; {used} workers traced from fork to exit):", "",
                  "| who | what | ms |", "|---|---|---:|"]
            for (ph, what), v in sorted(phase.items(), key=lambda kv: (kv[0][0], -kv[1])):
                L.append(f"| worker {ph} | {what} | {v * period / max(used, 1):.3f} |")
            for k, v in other.most_common():
                L.append(f"| {k} | | {v * period / n:.3f} |")
            L += ["", f"A worker's set-up, fork -> READY ({waits['workers']} workers, mean "
                  f"{waits['wall_ms']:.2f} ms): on a CPU {waits['on_cpu_ms']:.2f} ms"]
            for k, v in waits["states"].items():
                L[-1] += f", {k} {v:.2f} ms"
            L[-1] += ". Where it blocked (mean ms per worker; kernel call chain, innermost "
            L[-1] += "first):"
            L += ["", "| ms | call chain |", "|---:|---|"]
            L += [f"| {v:.3f} | `{c}` |" for c, v in waits["chains"]]
            L.append("")
    text = "\n".join(L) + "\n"
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "breakdown.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short smoke run (about 4 minutes)")
    ap.add_argument("--out-dir", default=RESULTS_DIR)
    ap.add_argument("--no-peers", action="store_true",
                    help="skip the cold, Jupyter and in-process peers")
    ap.add_argument("--sessions", type=int, metavar="N", default=None,
                    help="sessions the sessions-at-scale phase creates (default 5000; "
                         "--quick: 300)")
    ap.add_argument("--no-sessions", action="store_true",
                    help="skip the sessions-at-scale phase")
    ap.add_argument("--breakdown", action="store_true",
                    help="only trace where a trivial execution's time and CPU go (needs "
                         "perf); writes breakdown.md")
    args = ap.parse_args()
    if args.breakdown:
        return breakdown(args.out_dir)

    started = time.time()
    if args.quick:
        plan = {"requests": 100, "seconds": 1.0, "healthz": 200, "paced": 30, "generate": 60,
                "paced_all": True, "paced_seconds": 3.0, "session_exec": 100,
                "session_calls": 300, "warm_budget_s": 60.0}
        plan_nopool = {"requests": 50, "seconds": 1.0, "healthz": 0, "paced": 30}
        cold_runs, peer_seconds = 1, 1.0
        reps = {"default": 20, "trivial": 100}
    else:
        plan = {"requests": 1000, "seconds": 6.0, "healthz": 1000, "paced": 200,
                "generate": 300, "paced_all": True, "paced_seconds": 15.0,
                "session_exec": 100, "session_calls": 300, "warm_budget_s": 300.0}
        plan_nopool = {"requests": 500, "seconds": 3.0, "healthz": 0, "paced": 100}
        cold_runs, peer_seconds = 5, 4.0
        reps = {"default": 200, "trivial": 1000}

    res = {"started": started, "quick": args.quick, "plan": plan, "plan_nopool": plan_nopool,
           "busy_before_pct": wait_for_quiet(), "background_start": background(),
           "code": code_line()}
    res["main"] = bench_server("pool 2", 2, plan, measure_memory=True)
    res["nopool"] = bench_server("pool 0", 0, plan_nopool, measure_memory=False)
    if not args.no_sessions:
        n = args.sessions if args.sessions is not None else (300 if args.quick else 5000)
        res["sessions"] = bench_sessions(n, plan)
    if not args.no_peers:
        res["inprocess"] = run_inprocess(reps, peer_seconds)
        res["jupyter"] = run_jupyter(reps, peer_seconds, plan)
        res["cold"] = run_cold(cold_runs)
    res["background_end"] = background()

    os.makedirs(args.out_dir, exist_ok=True)
    stem = "quick" if args.quick else "latest"
    res["png_name"] = "quick-latency.png" if args.quick else "latency.png"
    # The figures first: a report that cannot be built still leaves them.
    with open(os.path.join(args.out_dir, stem + ".json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    draw_plot(res, os.path.join(args.out_dir, res["png_name"]))
    text, targets = build_report(res, sys.argv[1:], time.time() - started)
    with open(os.path.join(args.out_dir, stem + ".md"), "w") as f:
        f.write(text)
    print(text)
    # The targets once more, last, on their own: PASS and MISS at the end of the output.
    print("\n".join(targets) + "\n")
    errors = sum(r["errors"] for r in res["main"]["runs"] + res["nopool"]["runs"]
                 + res["main"]["paced_runs"] + res["nopool"]["paced_runs"]
                 + [res["main"]["generate"]])
    if errors:
        log(f"{errors} requests failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
