#!/usr/bin/env python3
"""Two builds side by side: the trivial execution's figures, measured in one run.

    python3 bench/ab.py OLD_BINARY NEW_BINARY [--rounds 6] [--out FILE]

Both servers run at once (an idle one costs no CPU) and the rounds alternate between
them, A then B, then B then A, so the machine's drift lands on both alike. Each round
measures, per build: the trivial snippet from one client pausing between requests (the
pool is full when each arrives: the latency an agent sees) and back-to-back (each
request waits for the pool's refill, so a worker's set-up cost shows), with the CPU per
execution of the server, the zygote and the workers. The report gives each figure's
median over the rounds and the ratio B / A.

A change that should cost nothing per request (the minimal root, built once in the
zygote) shows ratios near 1; this is how its README figure was measured.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import harness  # noqa: E402  (bench put tests/integration on the path)

PACED_N = 40        # requests per paced batch
PACED_PAUSE_S = 0.05
BACK_N = 100        # requests per back-to-back batch


def start(binary):
    harness.BINARY = binary   # read by Server.start
    server = harness.Server(workers=os.cpu_count() or 1, pool=2).start()
    time.sleep(1.0)           # the pool is sandboxed and idle
    return server


def measure(server, zygote):
    trivial = bench.BY_NAME["trivial"]
    paced = bench.run_load(server, zygote, None, trivial, 1, PACED_N, 60, pause=PACED_PAUSE_S)
    back = bench.run_load(server, zygote, None, trivial, 1, BACK_N, 60)
    return {"paced_p50": paced["p50"], "back_p50": back["p50"],
            "back_throughput": back["throughput"], "back_cpu_ms": back["cpu_ms"],
            "zygote_cpu_ms": back["cpu_split_ms"]["zygote"],
            "errors": paced["errors"] + back["errors"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("a", help="the build before (A)")
    ap.add_argument("b", help="the build after (B)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", help="also write the Markdown table here")
    args = ap.parse_args()

    servers = {"A": start(os.path.abspath(args.a)), "B": start(os.path.abspath(args.b))}
    zygotes = {k: s.zygote_pid() for k, s in servers.items()}
    rows = {"A": [], "B": []}
    try:
        for r in range(args.rounds):
            order = ("A", "B") if r % 2 == 0 else ("B", "A")
            for k in order:
                m = measure(servers[k], zygotes[k])
                rows[k].append(m)
                print(f"round {r + 1} {k}: paced p50 {m['paced_p50']:.2f} ms, back-to-back "
                      f"p50 {m['back_p50']:.2f} ms, {m['back_throughput']:.0f}/s, "
                      f"{m['back_cpu_ms']:.1f} ms CPU/exec (zygote "
                      f"{m['zygote_cpu_ms']:.1f}), errors {m['errors']}", flush=True)
    finally:
        for s in servers.values():
            s.stop()

    def med(k, field):
        return statistics.median(x[field] for x in rows[k])

    lines = [f"A: `{args.a}`  ", f"B: `{args.b}`  ",
             f"{args.rounds} alternating rounds, {bench.machine_line()}", "",
             "| trivial execution | A | B | B / A |", "|---|---|---|---|"]
    for field, label, unit in (("paced_p50", "p50, 1 client pausing 50 ms", "ms"),
                               ("back_p50", "p50, 1 client back-to-back", "ms"),
                               ("back_throughput", "throughput, back-to-back", "/s"),
                               ("back_cpu_ms", "CPU per execution (all processes)", "ms"),
                               ("zygote_cpu_ms", "of which the zygote (fork, set-up)", "ms")):
        a, b = med("A", field), med("B", field)
        lines.append(f"| {label} | {a:.2f} {unit} | {b:.2f} {unit} | {b / a:.2f} |")
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
