#!/usr/bin/env python3
"""Two builds side by side: the trivial execution's figures, measured in one run.

    python3 bench/ab.py OLD_BINARY NEW_BINARY [--rounds 6] [--out FILE]
        [--snippets trivial,pandas,sympy,plot] [--pause-ms 50] [--a-flags F] [--b-flags F]

Both servers run at once (an idle one costs no CPU) and the rounds alternate between
them, A then B, then B then A, so the machine's drift lands on both alike. Each round
measures, per build: the trivial snippet from one client pausing between requests (the
pool is full when each arrives: the latency an agent sees) and back-to-back (each
request waits for the pool's refill, so a worker's set-up cost shows), with the CPU per
execution of the server, the zygote and the workers. The report gives each figure's
median over the rounds and the ratio B / A.

--snippets adds other snippets of bench.py, paced only (their latency when the pool is
full: what pre-faulting changes); --a-flags/--b-flags give one server flags of its own
(the same binary twice with a setting on and off). The report also gives the private
memory of each server's idle pooled workers, measured once the pool has been idle.

A change that should cost nothing per request (the minimal root, built once in the
zygote) shows ratios near 1; this is how its README figure was measured.
"""

import argparse
import os
import shlex
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import harness  # noqa: E402  (bench put tests/integration on the path)

PACED_N = 40        # requests per paced batch
PACED_PAUSE_S = 0.05
BACK_N = 100        # requests per back-to-back batch


def start(binary, flags):
    harness.BINARY = binary   # read by Server.start
    server = harness.Server(*flags, workers=os.cpu_count() or 1, pool=2).start()
    time.sleep(1.0)           # the pool is sandboxed and idle
    return server


def pool_private_mb(server):
    """Mean Private_Dirty + Private_Clean (MB) of the server's idle pooled workers."""
    time.sleep(1.0)
    sizes = []
    for pid, _, name in server.stray_processes():
        r = bench.smaps_rollup(pid) if name == "pyexecd-worker" else None
        if r:
            sizes.append((r.get("Private_Dirty", 0) + r.get("Private_Clean", 0)) * 1024 / bench.MB)
    return statistics.mean(sizes) if sizes else float("nan")


def measure(server, zygote, snippets, pause):
    trivial = bench.BY_NAME["trivial"]
    paced = bench.run_load(server, zygote, None, trivial, 1, PACED_N, 60, pause=pause)
    back = bench.run_load(server, zygote, None, trivial, 1, BACK_N, 60)
    m = {"paced_p50": paced["p50"], "back_p50": back["p50"],
         "back_throughput": back["throughput"], "back_cpu_ms": back["cpu_ms"],
         "zygote_cpu_ms": back["cpu_split_ms"]["zygote"],
         "errors": paced["errors"] + back["errors"]}
    for name in snippets:
        if name == "trivial":
            continue
        r = bench.run_load(server, zygote, None, bench.BY_NAME[name], 1, PACED_N, 120,
                           pause=pause)
        m[f"{name}_p50"] = r["p50"]
        m[f"{name}_cpu_ms"] = r["cpu_ms"]
        m["errors"] += r["errors"]
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("a", help="the build before (A)")
    ap.add_argument("b", help="the build after (B)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", help="also write the Markdown table here")
    ap.add_argument("--snippets", default="trivial",
                    help="comma-separated bench.py snippets; those but trivial paced only")
    ap.add_argument("--pause-ms", type=float, default=PACED_PAUSE_S * 1000)
    ap.add_argument("--a-flags", default="", help="server flags for A")
    ap.add_argument("--b-flags", default="", help="server flags for B")
    args = ap.parse_args()
    snippets = [x for x in args.snippets.split(",") if x]
    pause = args.pause_ms / 1000

    servers = {"A": start(os.path.abspath(args.a), shlex.split(args.a_flags)),
               "B": start(os.path.abspath(args.b), shlex.split(args.b_flags))}
    zygotes = {k: s.zygote_pid() for k, s in servers.items()}
    memory = {k: pool_private_mb(s) for k, s in servers.items()}
    rows = {"A": [], "B": []}
    try:
        for r in range(args.rounds):
            order = ("A", "B") if r % 2 == 0 else ("B", "A")
            for k in order:
                m = measure(servers[k], zygotes[k], snippets, pause)
                rows[k].append(m)
                more = "".join(f", {n} {m[n + '_p50']:.2f} ms" for n in snippets
                               if n != "trivial")
                print(f"round {r + 1} {k}: paced p50 {m['paced_p50']:.2f} ms, back-to-back "
                      f"p50 {m['back_p50']:.2f} ms, {m['back_throughput']:.0f}/s, "
                      f"{m['back_cpu_ms']:.1f} ms CPU/exec (zygote "
                      f"{m['zygote_cpu_ms']:.1f}){more}, errors {m['errors']}", flush=True)
    finally:
        for s in servers.values():
            s.stop()

    def med(k, field):
        return statistics.median(x[field] for x in rows[k])

    lines = [f"A: `{args.a}` {args.a_flags}  ", f"B: `{args.b}` {args.b_flags}  ",
             f"{args.rounds} alternating rounds, {bench.machine_line()}", "",
             "| execution | A | B | B / A |", "|---|---|---|---|"]
    fields = [("paced_p50", f"trivial p50, 1 client pausing {args.pause_ms:g} ms", "ms"),
              ("back_p50", "trivial p50, 1 client back-to-back", "ms"),
              ("back_throughput", "trivial throughput, back-to-back", "/s"),
              ("back_cpu_ms", "trivial CPU per execution (all processes)", "ms"),
              ("zygote_cpu_ms", "of which the zygote (fork, set-up)", "ms")]
    for n in snippets:
        if n != "trivial":
            fields += [(f"{n}_p50", f"{n} p50, pausing {args.pause_ms:g} ms", "ms"),
                       (f"{n}_cpu_ms", f"{n} CPU per execution, paced", "ms")]
    for field, label, unit in fields:
        a, b = med("A", field), med("B", field)
        lines.append(f"| {label} | {a:.2f} {unit} | {b:.2f} {unit} | {b / a:.2f} |")
    lines.append(f"| private memory per idle pooled worker | {memory['A']:.1f} MB | "
                 f"{memory['B']:.1f} MB | {memory['B'] / memory['A']:.2f} |")
    errors = sum(x["errors"] for k in rows for x in rows[k])
    lines.append(f"\nerrors: {errors}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
