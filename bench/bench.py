#!/usr/bin/env python3
"""pyexecd's latency benchmark: what an execution costs over HTTP against what a cold
`python3 -c` with the same imports costs, measured side by side in one run.

    make bench                      # or: python3 bench/bench.py [--requests N] [--cold N]

Starts its own server (build/pyexecd, a free loopback port), sends a trivial snippet
N times from one client over a keep-alive connection, then times a cold interpreter
importing the same libraries the zygote holds. Prints a Markdown table and writes it to
bench/results/latest.md. Numbers from this 2-core machine are noisy: compare the ratio
within one run, not absolute figures across runs.
"""

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Server, code_part  # noqa: E402

VENV_PYTHON = os.environ.get("PYEXECD_VENV_PYTHON", "/opt/pyexecd/venv/bin/python")

# What the zygote imports (sandbox/pyembed.c warm_modules, the user's fifteen libraries
# and the submodules used first); a cold process must import the same to run the same code.
COLD_IMPORTS = ("altair, chess, cv2, matplotlib, matplotlib.pyplot, mpmath, numpy, pandas, "
                "pdfminer.high_level, reportlab.pdfgen.canvas, seaborn, sklearn, "
                "sklearn.linear_model, statsmodels.api, striprtf.striprtf, sympy, tabulate, "
                "scipy.stats")
COLD_ENV = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1", "HOME": "/tmp", "LANG": "C.UTF-8"}


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summary(samples_ms):
    return {"n": len(samples_ms), "p50": percentile(samples_ms, 50),
            "p90": percentile(samples_ms, 90), "p99": percentile(samples_ms, 99),
            "max": max(samples_ms), "mean": statistics.fmean(samples_ms)}


def bench_http(server, code, requests, warmup=20):
    """Latency of POST /v1/execute from one client on one keep-alive connection."""
    body = json.dumps(code_part(code)).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    samples, errors = [], 0
    for i in range(warmup + requests):
        t = time.perf_counter()
        conn.request("POST", "/v1/execute", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        dt = (time.perf_counter() - t) * 1000
        ok = resp.status == 200 and b'"OUTCOME_OK"' in data
        if i >= warmup:
            samples.append(dt)
            errors += not ok
    conn.close()
    return summary(samples), errors


def bench_cold(runs):
    """Wall time of a fresh interpreter importing the same libraries and printing."""
    code = f"import {COLD_IMPORTS}; print(1+1)"
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run([VENV_PYTHON, "-c", code], env=COLD_ENV, capture_output=True)
        samples.append((time.perf_counter() - t) * 1000)
        if out.returncode != 0 or out.stdout != b"2\n":
            raise RuntimeError(f"cold run failed: {out.stderr.decode()[-500:]}")
    return summary(samples)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--cold", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "latest.md"))
    args = ap.parse_args()

    with Server(workers=os.cpu_count() or 1, pool=2) as server:
        trivial, errors = bench_http(server, "print(1+1)", args.requests)
    cold = bench_cold(args.cold)

    ratio = cold["p50"] / trivial["p50"]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}"
    lines = [
        f"Run {when} on {machine}: `make bench` (`python3 bench/bench.py "
        f"--requests {args.requests} --cold {args.cold}`).",
        "",
        "| what | n | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
        f"| pyexecd, `print(1+1)` over HTTP, 1 client | {trivial['n']} | {trivial['p50']:.2f} | "
        f"{trivial['p90']:.2f} | {trivial['p99']:.2f} | {trivial['max']:.2f} |",
        f"| cold `python3 -c` with the same imports | {cold['n']} | {cold['p50']:.0f} | "
        f"{cold['p90']:.0f} | {cold['p99']:.0f} | {cold['max']:.0f} |",
        "",
        f"Cold process p50 / pyexecd p50 = **{ratio:.0f}x**. HTTP errors: {errors}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
