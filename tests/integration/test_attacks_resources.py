"""Hostile code against the resource limits, the signal rules and the wall deadline, plus
positive controls showing ordinary work still succeeds under the same sandbox.

Each row is one snippet and the exact result the server must give (attack_table.py runs
them, then checks /healthz and that no process of a finished worker is left).

    ResourceAttacks          resources + control rows   --deadline-ms 10000 (headroom for
                                                         the rows that touch ~3 GB on a
                                                         slow 2-core machine)
    SignalAndTimingAttacks   signals + timing rows      --deadline-ms 3000
    ForgedFinalReport        one row each, on a server  --deadline-ms 3000
    GilHeldAfterFinalReport  of its own: both brought the server down when written
    HostCleanup              what a stopped server leaves on the host

The 30 s default deadline is covered by test_deadline.py and not repeated here.

What the sandbox makes of signals: the worker is pid 1 of its own PID namespace, so the
kernel drops every signal at its default action that the worker sends itself or that a
timer or a soft limit raises (SIGALRM, SIGXCPU, ...). What still ends it: faults (SIGSEGV
from a bad access), and SIGKILL/SIGSTOP from outside the namespace or from the kernel (the
server's deadline kill, the OOM killer, the CPU hard limit).

Run: PYEXECD_BIN=build/pyexecd python3 tests/integration/test_attacks_resources.py -v
"""

import base64
import http.client
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import attack_table  # noqa: E402
from attack_table import Row, all_of, deadline, failed_with, ok  # noqa: E402
from harness import Server, images, pid_alive, results, wait_uid_gone  # noqa: E402
from limits import LIMITS  # noqa: E402

CAP = LIMITS["LIMIT_OUTPUT_BYTES"]
NOTE = f"[output truncated: more than {CAP} bytes were written]"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SHORT_DEADLINE = 3.0

# First line of a block whose worker a row follows from outside: the worker's uid on the
# host (it is pid 1 inside its namespace, so the uid is what tells it apart). Unbuffered
# stdout: the line is kept even when the block is killed later.
WHO = ("_m = open('/proc/self/uid_map').read().split()\n"
       "print('uid', _m[1] if _m[2] == '1' else __import__('os').getuid())\n")

# Finds the worker's socket to the server (the only socket it holds when the block starts).
FIND_SOCKET = (
    "import os, stat\n"
    "def _is_sock(fd):\n"
    "    try:\n"
    "        return stat.S_ISSOCK(os.fstat(fd).st_mode)\n"
    "    except OSError:\n"
    "        return False\n"
    "socks = [fd for fd in range(3, 64) if _is_sock(fd)]\n")


# --- expectations beyond attack_table's -------------------------------------------------

def _short(reply):
    """A reply small enough for an assertion message."""
    if not isinstance(reply, dict):
        return str(reply)[:500]
    rs = [{"outcome": r["outcome"], "len": len(r.get("output", "")),
           "head": r.get("output", "")[:300], "tail": r.get("output", "")[-300:]}
          for r in results(reply)]
    return json.dumps({"results": rs, "meta": reply.get("executionMetadata"),
                       "images": [(i.get("mimeType"), len(i.get("data", "")))
                                  for i in images(reply)]})


def limit(name):
    """executionMetadata.limitReached is `name` (None: no limit reported)."""
    def check(test, reply, r):
        got = reply.get("executionMetadata", {}).get("limitReached")
        test.assertEqual(got, name, f"limitReached {got!r}, want {name!r}: {_short(reply)}")
    return check


def outcomes(*expected):
    """The outcomes of all results, in order."""
    def check(test, reply, r):
        test.assertEqual([x["outcome"] for x in results(reply)], list(expected), _short(reply))
    return check


def output_of(i, exact=None, startswith=None, contains=(), max_len=None):
    """Checks result i's output."""
    def check(test, reply, r):
        out = results(reply)[i].get("output", "")
        if exact is not None:
            test.assertEqual(out, exact, _short(reply))
        if startswith is not None:
            test.assertTrue(out.startswith(startswith), _short(reply))
        for f in contains:
            test.assertIn(f, out, _short(reply))
        if max_len is not None:
            test.assertLessEqual(len(out), max_len, f"output of {len(out)} chars: {_short(reply)}")
    return check


def stopped(reason, limit_name):
    """The last result is the server's account of a dead interpreter."""
    return all_of(
        lambda test, reply, r: test.assertEqual(
            results(reply)[-1], {"outcome": "OUTCOME_FAILED",
                                 "output": f"The interpreter process was stopped: {reason}.\n"},
            _short(reply)),
        limit(limit_name))


def reply_size_at_most(n):
    def check(test, reply, r):
        size = len(json.dumps(reply))
        test.assertLessEqual(size, n, f"reply of {size} bytes")
    return check


def no_images(test, reply, r):
    test.assertEqual(images(reply), [], _short(reply))


def custom(fn):
    """A one-off check written inline: fn(test, reply, results)."""
    return lambda test, reply, r: fn(test, reply, results(reply))


# --- before / outside hooks --------------------------------------------------------------

def befores(*fns):
    def before(test, ctx):
        extra = {}
        for fn in fns:
            extra.update(fn(test, dict(ctx, **extra)) or {})
        return extra
    return before


def outsides(*fns):
    def outside(test, ctx, reply):
        for fn in fns:
            fn(test, ctx, reply)
    return outside


def clock(test, ctx):
    return {"t0": time.monotonic()}


def took(lo, hi):
    """The reply came between lo and hi seconds after the request (needs `clock`)."""
    def check(test, ctx, reply):
        elapsed = time.monotonic() - ctx["t0"]
        test.assertTrue(lo <= elapsed <= hi, f"reply after {elapsed:.2f} s, want {lo}..{hi} s")
    return check


def worker_gone(test, ctx, reply):
    """The worker whose uid the block printed (WHO) has no process left."""
    text = "\n".join(r.get("output", "") for r in results(reply))
    m = re.search(r"uid (\d+)\n", text)
    test.assertIsNotNone(m, f"no uid line: {_short(reply)}")
    uid = int(m.group(1))
    test.assertTrue(test.server.uid_base <= uid < test.server.uid_base + 10000, uid)
    test.assertEqual(wait_uid_gone(uid, timeout=5), [], "the worker's processes survived")


def quick_request_works(test, ctx, reply):
    """The next request runs at once and correctly."""
    t0 = time.monotonic()
    after = test.server.run("print(6 * 7)", timeout=30)
    test.assertEqual(results(after), [{"outcome": "OUTCOME_OK", "output": "42\n"}])
    test.assertLess(time.monotonic() - t0, 2.0)


def signal_from_outside(sig, delay=0.3):
    """Starts a thread that finds the worker named $tag (the code sets it with prctl) and,
    `delay` seconds later, sends it `sig` from the host, as an operator or the kernel
    would."""
    def before(test, ctx):
        tag = "pxs" + secrets.token_hex(4)
        sent = {}

        def hunt():
            end = time.time() + 10
            while time.time() < end:
                found = [pid for pid, _, name in test.server.stray_processes() if name == tag]
                if found:
                    pidfd = os.pidfd_open(found[0])   # never a reused pid
                    try:
                        time.sleep(delay)
                        signal.pidfd_send_signal(pidfd, sig)
                        sent["pid"] = found[0]
                    finally:
                        os.close(pidfd)
                    return
                time.sleep(0.01)

        t = threading.Thread(target=hunt, daemon=True)
        t.start()
        return {"tag": tag, "hunter": t, "sent": sent}
    return before


def signal_was_sent(test, ctx, reply):
    ctx["hunter"].join(10)
    pid = ctx["sent"].get("pid")
    test.assertIsNotNone(pid, "the worker was never found by its name")
    end = time.time() + 5
    while pid_alive(pid) and time.time() < end:
        time.sleep(0.05)
    test.assertFalse(pid_alive(pid), f"worker {pid} still alive")


def host_processes_alive(test, ctx, reply):
    for name in ("server_pid", "zygote_pid", "test_pid"):
        test.assertTrue(pid_alive(int(ctx[name])), f"{name} {ctx[name]} died")


SET_NAME = "import ctypes\nctypes.CDLL(None).prctl(15, b'$tag', 0, 0, 0)\n"   # PR_SET_NAME


# --- resources ---------------------------------------------------------------------------

RESOURCE_ROWS = [
    Row("res-fork-bomb", "resources",
        attack="os.fork() in an endless loop",
        code="import os\nwhile True:\n    os.fork()\n",
        expect=all_of(outcomes("OUTCOME_FAILED"),
                      failed_with("PermissionError: [Errno 1] Operation not permitted"),
                      limit(None))),

    Row("res-thread-bomb", "resources",
        attack="start 1000 threads that never end",
        code=("import threading\n"
              "stop = threading.Event()\n"
              "threads = []\n"
              "try:\n"
              "    for i in range(1000):\n"
              "        t = threading.Thread(target=stop.wait, daemon=True)\n"
              "        t.start()\n"
              "        threads.append(t)\n"
              "except RuntimeError:\n"
              "    print('started', len(threads))\n"
              "    raise\n"),
        expect=all_of(outcomes("OUTCOME_OK", "OUTCOME_FAILED"),
                      # at most 63 besides the main thread: 64 tasks
                      custom(lambda t, reply, rs: t.assertTrue(
                          40 <= int(rs[0]["output"].split()[1]) <= 63, rs[0])),
                      failed_with("RuntimeError: can't start new thread"),
                      limit("THREADS"))),

    Row("res-mem-bytearray", "resources",
        attack="bytearray of 2.5 GiB: past the 2 GiB address-space headroom, under the 3 GiB cgroup",
        code="x = bytearray(5 * 2**29)\nprint('allocated')\n",
        expect=all_of(outcomes("OUTCOME_FAILED"), failed_with("\nMemoryError\n"),
                      output_of(0, contains=(), max_len=2000), limit("MEMORY"))),

    Row("res-mem-numpy", "resources",
        attack="np.ones((10**6, 10**5)): 745 GiB of float64",
        code="import numpy as np\nx = np.ones((10**6, 10**5))\n",
        expect=all_of(outcomes("OUTCOME_FAILED"),
                      failed_with("numpy._core._exceptions._ArrayMemoryError: Unable to "
                                  "allocate 745. GiB for an array with shape (1000000, 100000) "
                                  "and data type float64"),
                      limit("MEMORY"))),

    Row("res-mem-bytes-list", "resources",
        attack="a list growing by 10 MB bytes objects until memory runs out",
        code=("chunks = []\n"
              "try:\n"
              "    while True:\n"
              "        chunks.append(bytes(10**7))\n"
              "except MemoryError:\n"
              "    print('chunks', len(chunks))\n"
              "    raise\n"),
        expect=all_of(outcomes("OUTCOME_OK", "OUTCOME_FAILED"),
                      # about 2 GiB of headroom in 10 MB pieces
                      custom(lambda t, reply, rs: t.assertTrue(
                          150 <= int(rs[0]["output"].split()[1]) <= 260, rs[0])),
                      failed_with("\nMemoryError\n"), limit("MEMORY"))),

    Row("res-mem-touch-under-limit", "resources",
        attack="1.9 GB numpy array under the address-space limit, every page written",
        code=("import numpy as np\n"
              "x = np.empty(int(1.9e9), dtype=np.uint8)\n"
              "x.fill(1)\n"
              "print(int(x[::4096].sum()))\n"),
        # Either it fits (it does on a quiet machine) or the memory limit stops it cleanly.
        expect=custom(lambda t, reply, rs: t.assertTrue(
            (rs == [{"outcome": "OUTCOME_OK", "output": "463868\n"}]
             and "executionMetadata" not in reply)
            or (rs[-1]["outcome"] == "OUTCOME_FAILED"
                and reply.get("executionMetadata", {}).get("limitReached") == "MEMORY"),
            _short(reply)))),

    Row("res-memfd-past-cgroup", "resources",
        attack="memfd_create files written without mapping them: past RLIMIT_AS, up to the "
               "3 GiB memory cgroup",
        code=("import os\n"
              "chunk = b'\\1' * (1 << 20)\n"
              "mib = 0\n"
              "while True:\n"
              "    fd = os.memfd_create('bomb')\n"
              "    for _ in range(256):\n"
              "        os.write(fd, chunk)\n"
              "    mib += 256\n"
              "    print(mib)\n"),
        # The kernel's OOM killer ends it (SIGKILL): a MEMORY limit, and the memory is
        # freed with the process (the next rows run normally).
        expect=all_of(outcomes("OUTCOME_OK", "OUTCOME_FAILED"),
                      output_of(0, startswith="256\n512\n768\n1024\n"),
                      custom(lambda t, reply, rs: t.assertLessEqual(
                          int(rs[0]["output"].split()[-1]), 3072, rs[0])),
                      stopped("it ran out of memory (signal 9, SIGKILL)", "MEMORY"))),

    Row("res-disk-fill-workdir", "resources",
        attack="one file in /root written until the disk is full",
        code=("chunk = b'\\0' * (1 << 20)\n"
              "with open('/root/fill.bin', 'wb') as f:\n"
              "    while True:\n"
              "        f.write(chunk)\n"),
        expect=all_of(outcomes("OUTCOME_FAILED"),
                      failed_with("OSError: [Errno 28] No space left on device"),
                      limit("DISK_SPACE"))),

    Row("res-inode-bomb", "resources",
        attack="100000 empty files in /root",
        code=("for i in range(100000):\n"
              "    open(f'/root/f{i}', 'w').close()\n"),
        # 65536 inodes, the directory itself being one of them
        expect=all_of(outcomes("OUTCOME_FAILED"),
                      failed_with("OSError: [Errno 28] No space left on device: '/root/f65535'"),
                      limit("DISK_SPACE"))),

    Row("res-big-file-tmp", "resources",
        attack="one 600 MiB file in /tmp: past RLIMIT_FSIZE (512 MiB), but the 256 MiB tmpfs "
               "fills first",
        code=("chunk = b'\\0' * (1 << 20)\n"
              "with open('/tmp/big.bin', 'wb') as f:\n"
              "    for _ in range(600):\n"
              "        f.write(chunk)\n"),
        expect=all_of(outcomes("OUTCOME_FAILED"),
                      failed_with("OSError: [Errno 28] No space left on device"),
                      limit("DISK_SPACE"))),

    Row("res-devshm-fill", "resources",
        attack="/dev/shm (POSIX shared memory) written until full",
        code=("chunk = b'\\0' * (1 << 20)\n"
              "with open('/dev/shm/fill', 'wb') as f:\n"
              "    while True:\n"
              "        f.write(chunk)\n"),
        expect=all_of(outcomes("OUTCOME_FAILED"),
                      failed_with("OSError: [Errno 28] No space left on device"),
                      limit("DISK_SPACE"))),

    Row("res-sparse-file-past-fsize", "resources",
        attack="a sparse 1 GiB file (truncate): no space used, past RLIMIT_FSIZE",
        code="import os\nopen('/tmp/sparse', 'w').close()\nos.truncate('/tmp/sparse', 1 << 30)\n",
        expect=all_of(outcomes("OUTCOME_FAILED"),
                      failed_with("OSError: [Errno 27] File too large"),
                      limit("FILE_SIZE"))),

    Row("res-print-50mb", "resources",
        attack="print() of 50 MB",
        code="print('x' * (50 * 10**6))\n",
        expect=all_of(outcomes("OUTCOME_OK"),
                      output_of(0, exact="x" * CAP + "\n" + NOTE + "\n"),
                      limit("OUTPUT_BYTES"), reply_size_at_most(CAP + 4096))),

    Row("res-oswrite-600mib", "resources",
        attack="os.write(1, ...) of 600 MiB, behind the runner's stdout cap",
        code=("import os\n"
              "chunk = b'z' * (1 << 20)\n"
              "for _ in range(600):\n"
              "    os.write(1, chunk)\n"
              "print('after')\n"),
        # The capture file stops at RLIMIT_FSIZE (512 MiB): EFBIG, and the reply keeps 1 MiB.
        expect=all_of(outcomes("OUTCOME_OK", "OUTCOME_FAILED"),
                      output_of(0, exact="z" * CAP + "\n" + NOTE + "\n"),
                      failed_with("OSError: [Errno 27] File too large"),
                      output_of(1, max_len=4096),
                      limit("FILE_SIZE"), reply_size_at_most(CAP + 8192))),

    Row("res-stderr-then-exception", "resources",
        attack="5 MB to stderr, then an exception",
        code="import sys\nsys.stderr.write('e' * (5 * 10**6))\nraise ValueError('boom')\n",
        expect=all_of(outcomes("OUTCOME_FAILED"),
                      output_of(0, startswith="e" * CAP + "\n" + NOTE + "\nboom\nTraceback",
                                contains=("ValueError: boom\n",), max_len=CAP + 4096),
                      limit("OUTPUT_BYTES"))),

    Row("res-huge-exception-message", "resources",
        attack="an exception whose message is 50 MB",
        code="raise ValueError('x' * (50 * 10**6))\n",
        # The FAILED text is bounded like any output (--output-bytes), and the cut is
        # reported as the other cuts are.
        expect=all_of(outcomes("OUTCOME_FAILED"),
                      output_of(0, startswith="xxxxxxxx", max_len=CAP + 64 * 1024),
                      limit("OUTPUT_BYTES"))),

    Row("res-deep-recursion", "resources",
        attack="recursion limit 10**6, then a 10**5-deep recursion through repr() (C stack)",
        code=("import sys\n"
              "sys.setrecursionlimit(10**6)\n"
              "class Node:\n"
              "    def __init__(self, child):\n"
              "        self.child = child\n"
              "    def __repr__(self):\n"
              "        return 'N(' + repr(self.child) + ')'\n"
              "n = None\n"
              "for _ in range(10**5):\n"
              "    n = Node(n)\n"
              "print(len(repr(n)))\n"),
        # The C stack overflows (SIGSEGV: a crash, reported as such) unless Python stops it
        # first with a RecursionError.
        expect=custom(lambda t, reply, rs: t.assertTrue(
            (rs[-1] == {"outcome": "OUTCOME_FAILED", "output":
                        "The interpreter process was stopped: segmentation fault "
                        "(signal 11, SIGSEGV).\n"}
             and reply.get("executionMetadata", {}).get("limitReached") == "INTERPRETER_CRASH")
            or (rs[-1]["outcome"] == "OUTCOME_FAILED" and "RecursionError" in rs[-1]["output"]),
            _short(reply)))),

    Row("res-open-files", "resources",
        attack="open /dev/null 10000 times",
        code=("files = []\n"
              "try:\n"
              "    for _ in range(10000):\n"
              "        files.append(open('/dev/null'))\n"
              "except OSError:\n"
              "    print('opened', len(files))\n"
              "    raise\n"),
        expect=all_of(outcomes("OUTCOME_OK", "OUTCOME_FAILED"),
                      custom(lambda t, reply, rs: t.assertTrue(
                          480 <= int(rs[0]["output"].split()[1]) < 512, rs[0])),
                      failed_with("OSError: [Errno 24] Too many open files: '/dev/null'"),
                      limit("OPEN_FILES"))),

    Row("res-many-figures", "resources",
        attack="30 matplotlib figures left open",
        code=("import matplotlib.pyplot as plt\n"
              "for i in range(30):\n"
              "    plt.figure()\n"
              "    plt.plot([0, i])\n"
              "print('made')\n"),
        expect=all_of(ok(exact="made\n"), limit("IMAGES"),
                      custom(lambda t, reply, rs: (
                          t.assertEqual(len(images(reply)), 16),
                          [t.assertTrue(base64.b64decode(i["data"]).startswith(PNG_MAGIC))
                           for i in images(reply)])))),

    Row("res-enormous-image-file", "resources",
        attack="x.png with PNG magic and 20 MB of data, saved in the work dir",
        code=("import os\n"
              "with open('/root/x.png', 'wb') as f:\n"
              "    f.write(b'\\x89PNG\\r\\n\\x1a\\n' + os.urandom(20 * 10**6))\n"
              "print('wrote')\n"),
        expect=all_of(ok(exact="wrote\n"), no_images, limit("IMAGES"),
                      reply_size_at_most(4096))),

    Row("res-core-dump", "resources",
        attack="make itself dumpable again (prctl) and try to raise RLIMIT_CORE, so that a "
               "crash hands its memory to the host's core handler",
        code=("import ctypes, resource\n"
              "print(ctypes.CDLL(None).prctl(4, 1, 0, 0, 0))\n"   # PR_SET_DUMPABLE
              "print(resource.getrlimit(resource.RLIMIT_CORE))\n"
              "try:\n"
              "    resource.setrlimit(resource.RLIMIT_CORE, (1 << 30, 1 << 30))\n"
              "except (ValueError, OSError) as e:\n"
              "    print('refused', type(e).__name__)\n"),
        # 1, not 0: a core_pattern pipe ignores the limit, except that 1 aborts the dump.
        expect=all_of(ok(exact="0\n(1, 1)\nrefused ValueError\n"), limit(None))),

    Row("res-cpu-limit", "resources",
        attack="busy loop past the CPU-time limit (lowered to 1 s so the test is quick; the "
               "policy's 300 s is reached the same way by long multi-block requests)",
        code=("import resource\n"
              "resource.setrlimit(resource.RLIMIT_CPU, (1, 1))\n"
              "print('lowered')\n"
              "while True:\n"
              "    pass\n"),
        # The CPU limit is what stopped it: CPU_TIME, not a memory limit.
        expect=all_of(outcomes("OUTCOME_OK", "OUTCOME_FAILED"),
                      output_of(0, exact="lowered\n"),
                      limit("CPU_TIME"),
                      output_of(1, startswith="The interpreter process was stopped: ",
                                contains=("CPU time",)))),
]


# --- positive controls -------------------------------------------------------------------

def _matmul_sum():
    a = [[i * 100 + j for j in range(100)] for i in range(100)]
    cols = [sum(a[i][k] for i in range(100)) for k in range(100)]
    return sum(cols[k] * sum(a[k]) for k in range(100))


def _one_png(test, reply, rs):
    imgs = images(reply)
    test.assertEqual([i["mimeType"] for i in imgs], ["image/png"], _short(reply))
    for i in imgs:
        data = base64.b64decode(i["data"])
        test.assertTrue(data.startswith(PNG_MAGIC))
        test.assertGreater(len(data), 1000)


CONTROL_ROWS = [
    Row("ctl-numpy-matmul", "control",
        attack="numpy matrix products, exact",
        code=("import numpy as np\n"
              "a = np.arange(6).reshape(2, 3)\n"
              "b = np.arange(6).reshape(3, 2)\n"
              "print(a @ b)\n"
              "m = np.arange(10000, dtype=np.int64).reshape(100, 100)\n"
              "print(int((m @ m).sum()))\n"),
        expect=all_of(ok(exact=f"[[10 13]\n [28 40]]\n{_matmul_sum()}\n"), limit(None))),

    Row("ctl-pandas", "control",
        attack="pandas groupby and describe, exact",
        code=("import pandas as pd\n"
              "df = pd.DataFrame({'g': ['a', 'b', 'a', 'b', 'c'], 'v': [1, 2, 3, 4, 5]})\n"
              "print(df.groupby('g')['v'].sum().to_dict())\n"
              "print(df['v'].describe().to_string())\n"),
        expect=all_of(ok(exact="{'a': 4, 'b': 6, 'c': 5}\n"
                               "count    5.000000\nmean     3.000000\nstd      1.581139\n"
                               "min      1.000000\n25%      2.000000\n50%      3.000000\n"
                               "75%      4.000000\nmax      5.000000\n"),
                      limit(None))),

    Row("ctl-matplotlib-savefig", "control",
        attack="plt.savefig('/root/p.png') with the figure left open",
        code=("import matplotlib.pyplot as plt\n"
              "plt.plot([1, 2, 3], [3, 1, 2])\n"
              "plt.savefig('/root/p.png')\n"
              "print('saved')\n"),
        # the saved file only: a figure saved to a file is not returned again
        expect=all_of(ok(exact="saved\n"), custom(_one_png), limit(None))),

    Row("ctl-threadpool", "control",
        attack="ThreadPoolExecutor(8).map",
        code=("from concurrent.futures import ThreadPoolExecutor\n"
              "with ThreadPoolExecutor(8) as ex:\n"
              "    print(list(ex.map(lambda x: x * x, range(10))))\n"),
        expect=all_of(ok(exact="[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n"), limit(None))),

    Row("ctl-asyncio-gather", "control",
        attack="asyncio.run with gather (socketpair self-pipe)",
        code=("import asyncio\n"
              "async def f(i):\n"
              "    await asyncio.sleep(0.05 * (3 - i))\n"
              "    return i * 10\n"
              "async def main():\n"
              "    return await asyncio.gather(*(f(i) for i in range(3)))\n"
              "print(asyncio.run(main()))\n"),
        expect=all_of(ok(exact="[0, 10, 20]\n"), limit(None))),

    Row("ctl-cv2-blur", "control",
        attack="cv2.GaussianBlur on a numpy image",
        code=("import cv2, numpy as np\n"
              "a = np.zeros((100, 80, 3), np.uint8)\n"
              "a[50, 40] = 255\n"
              "b = cv2.GaussianBlur(a, (5, 5), 0)\n"
              "print(b.shape, b.dtype, int(b[50, 40, 0]), int(b[0, 0, 0]))\n"),
        expect=all_of(ok(exact="(100, 80, 3) uint8 36 0\n"), limit(None))),

    Row("ctl-sklearn-fit", "control",
        attack="sklearn LinearRegression fit",
        code=("from sklearn.linear_model import LinearRegression\n"
              "import numpy as np\n"
              "X = np.arange(10).reshape(-1, 1)\n"
              "y = 3 * X.ravel() + 2\n"
              "m = LinearRegression().fit(X, y)\n"
              "print(round(float(m.coef_[0]), 6), round(float(m.intercept_), 6))\n"),
        expect=all_of(ok(exact="3.0 2.0\n"), limit(None))),

    Row("ctl-tempfile", "control",
        attack="tempfile.NamedTemporaryFile in /tmp",
        code=("import tempfile, os\n"
              "with tempfile.NamedTemporaryFile('w+', dir='/tmp', suffix='.txt') as f:\n"
              "    f.write('hello'); f.flush(); f.seek(0)\n"
              "    print(f.name.startswith('/tmp/'), f.read(), os.path.exists(f.name))\n"
              "print(os.listdir('/tmp'))\n"),
        expect=all_of(ok(exact="True hello True\n[]\n"), limit(None))),

    Row("ctl-multiprocessing-refused", "control",
        attack="multiprocessing.Pool: refused with a catchable PermissionError",
        code=("import multiprocessing as mp\n"
              "try:\n"
              "    with mp.Pool(2) as p:\n"
              "        print(p.map(abs, [-1, -2]))\n"
              "except PermissionError as e:\n"
              "    print('PermissionError', e.errno)\n"
              "print('still here')\n"),
        expect=all_of(ok(exact="PermissionError 1\nstill here\n"), limit(None))),

    Row("ctl-1mb-print-fits", "control",
        attack="a 1 MB print, just under the 1 MiB output limit",
        code="print('y' * 10**6)\n",
        expect=all_of(ok(exact="y" * 10**6 + "\n"), limit(None))),
]


# --- signals -----------------------------------------------------------------------------

SIGNAL_ROWS = [
    Row("sig-kill-self", "signals",
        attack="os.kill(1, SIGKILL) and os.kill(os.getpid(), SIGTERM) from pid 1",
        code=("import os, signal\n"
              "print(os.getpid())\n"
              "os.kill(1, signal.SIGKILL)\n"
              "os.kill(os.getpid(), signal.SIGTERM)\n"
              "print('alive')\n"),
        # pid 1 of a PID namespace: the kernel drops them (default action, sent from inside)
        expect=all_of(ok(exact="1\nalive\n"), limit(None))),

    Row("sig-every-default-to-self", "signals",
        attack="SIGQUIT, SIGSEGV, SIGBUS, SIGUSR1, SIGHUP, SIGSTOP, SIGXCPU sent to "
               "itself, and raise_signal(SIGSEGV) (SIGINT has Python's handler: "
               "KeyboardInterrupt, as in test_semantics; SIGABRT is abort(), see sig-abort)",
        code=("import os, signal\n"
              "for s in ('SIGQUIT', 'SIGSEGV', 'SIGBUS', 'SIGUSR1',\n"
              "          'SIGHUP', 'SIGSTOP', 'SIGXCPU'):\n"
              "    os.kill(1, getattr(signal, s))\n"
              "signal.raise_signal(signal.SIGSEGV)\n"
              "print('alive')\n"),
        expect=all_of(ok(exact="alive\n"), limit(None))),

    Row("sig-pthread-kill", "signals",
        attack="a thread sends SIGKILL to the main thread (tgkill)",
        code=("import signal, threading, time\n"
              "main = threading.main_thread().ident\n"
              "t = threading.Thread(target=signal.pthread_kill, args=(main, signal.SIGKILL))\n"
              "t.start(); t.join()\n"
              "signal.pthread_kill(main, signal.SIGTERM)\n"
              "time.sleep(0.1)\n"
              "print('alive')\n"),
        expect=all_of(ok(exact="alive\n"), limit(None))),

    Row("sig-kill-all", "signals",
        attack="os.kill(-1, SIGKILL): every process it may signal",
        code=("import os\n"
              "try:\n"
              "    os.kill(-1, 9)\n"
              "    print('sent')\n"
              "except OSError as e:\n"
              "    print(type(e).__name__)\n"
              "print('alive')\n"),
        # nothing but itself in its namespace, and kill(-1) skips the caller
        expect=all_of(ok(exact="ProcessLookupError\nalive\n"), limit(None))),

    Row("sig-killpg", "signals",
        attack="os.killpg(0, SIGKILL), os.kill(0, SIGKILL), kill of its parent pid",
        code=("import os\n"
              "print(os.getppid(), os.getpgrp())\n"
              "os.killpg(0, 9)\n"
              "os.kill(0, 9)\n"
              "os.kill(os.getppid(), 9)\n"
              "print('alive')\n"),
        # parent and group are outside the namespace (0): only itself is hit, and dropped
        expect=all_of(ok(exact="0 0\nalive\n"), limit(None))),

    Row("sig-setsid-then-kill", "signals",
        attack="os.setsid(), then kill(0), killpg of its new group and kill(-1), SIGKILL each",
        code=("import os\n"
              "print(os.setsid(), os.getsid(0), os.getpgrp())\n"
              "for what, call in (('kill0', lambda: os.kill(0, 9)),\n"
              "                   ('killpg-own', lambda: os.killpg(os.getpgrp(), 9)),\n"
              "                   ('kill-1', lambda: os.kill(-1, 9))):\n"
              "    try:\n"
              "        call()\n"
              "        print(what, 'sent')\n"
              "    except OSError as e:\n"
              "        print(what, type(e).__name__)\n"
              "print('alive')\n"),
        # Its own session and group (1, itself): kill(0) reaches itself and is dropped.
        expect=all_of(ok(exact="None 1 1\nkill0 sent\nkillpg-own ProcessLookupError\n"
                               "kill-1 ProcessLookupError\nalive\n"),
                      limit(None))),

    Row("sig-host-pids", "signals",
        attack="SIGKILL, SIGTERM, SIGSTOP and signal 0 to the server, the zygote and the test "
               "process by their host pids; pidfd_open of the server",
        code=("import os, signal\n"
              "for name, pid in (('server', $server_pid), ('zygote', $zygote_pid),\n"
              "                  ('test', $test_pid)):\n"
              "    seen = set()\n"
              "    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP, 0):\n"
              "        try:\n"
              "            os.kill(pid, sig)\n"
              "            seen.add('sent')\n"
              "        except OSError as e:\n"
              "            seen.add(type(e).__name__)\n"
              "    print(name, sorted(seen))\n"
              "try:\n"
              "    os.pidfd_open($server_pid)\n"
              "    print('pidfd opened')\n"
              "except OSError as e:\n"
              "    print('pidfd', type(e).__name__)\n"),
        # Host pids name nothing in the worker's PID namespace; pidfd_open is not allowed.
        expect=all_of(ok(exact="server ['ProcessLookupError']\nzygote ['ProcessLookupError']\n"
                               "test ['ProcessLookupError']\npidfd PermissionError\n"),
                      limit(None)),
        outside=host_processes_alive),

    Row("sig-alarm-and-timers", "signals",
        attack="signal.alarm(1) and the three interval timers with no handler, then busy 1.3 s",
        code=("import signal, time\n"
              "signal.setitimer(signal.ITIMER_REAL, 0.05)\n"
              "signal.setitimer(signal.ITIMER_VIRTUAL, 0.05)\n"
              "signal.setitimer(signal.ITIMER_PROF, 0.05)\n"
              "signal.alarm(1)\n"
              "t = time.monotonic()\n"
              "while time.monotonic() - t < 1.3:\n"
              "    pass\n"
              "print('alive')\n"),
        # SIGALRM, SIGVTALRM and SIGPROF at their default action: dropped for pid 1
        expect=all_of(ok(exact="alive\n"), limit(None))),

    Row("sig-abort", "signals",
        attack="os.abort()",
        code="import os\nprint('before')\nos.abort()\n",
        # pid 1 of its PID namespace cannot die of the SIGABRT it sends itself; the
        # worker's handler announces the end and exits, and the result names it.
        expect=all_of(outcomes("OUTCOME_OK", "OUTCOME_FAILED"),
                      output_of(0, exact="before\n"),
                      output_of(1, exact="The interpreter process was stopped: aborted "
                                         "(signal 6, SIGABRT).\n"),
                      limit("INTERPRETER_CRASH"))),

    Row("sig-abort-from-c", "signals",
        attack="libc abort() called through ctypes, from a thread",
        code=("import ctypes, threading, time\n"
              "threading.Thread(target=ctypes.CDLL(None).abort).start()\n"
              "time.sleep(5)\nprint('alive')\n"),
        expect=all_of(custom(lambda t, reply, rs: t.assertEqual(rs[-1]["output"],
                          "The interpreter process was stopped: aborted (signal 6, SIGABRT).\n")),
                      limit("INTERPRETER_CRASH"))),

    Row("sig-exit-status-of-ours", "signals",
        attack="os._exit with the statuses the worker uses for its own ends (72, 73): a "
               "plain status, not a forged 'aborted' or 'runner failed'",
        code="import os\nos._exit(73)\n",
        expect=all_of(custom(lambda t, reply, rs: t.assertEqual(rs[-1]["output"],
                          "The interpreter process exited with status 73.\n")),
                      limit("INTERPRETER_CRASH"))),

    Row("sig-sigkill-from-outside", "signals",
        attack="the worker SIGKILLed from the host while it sleeps",
        code=SET_NAME + "import time\nprint('waiting')\ntime.sleep(2.5)\nprint('after')\n",
        # describe_death: a SIGKILL the server did not send, with no OOM kill counted in
        # the worker's cgroup and no CPU limit reached, came from outside.
        before=befores(signal_from_outside(signal.SIGKILL), clock),
        expect=all_of(outcomes("OUTCOME_OK", "OUTCOME_FAILED"),
                      output_of(0, exact="waiting\n"),
                      stopped("it was killed from outside the sandbox (signal 9, SIGKILL)",
                              "INTERPRETER_CRASH")),
        outside=outsides(signal_was_sent, took(0.2, 2.0), quick_request_works)),

    Row("sig-sigstop-from-outside", "signals",
        attack="the worker SIGSTOPped from the host: the deadline kill still ends it",
        code=SET_NAME + WHO + "import time\nprint('waiting')\ntime.sleep(1)\nprint('after')\n",
        before=befores(signal_from_outside(signal.SIGSTOP), clock),
        expect=all_of(deadline(), output_of(0, startswith="uid ", contains=("waiting\n",)),
                      custom(lambda t, reply, rs: t.assertNotIn("after", rs[0]["output"]))),
        outside=outsides(signal_was_sent, took(SHORT_DEADLINE - 0.05, SHORT_DEADLINE + 1.5),
                         worker_gone, quick_request_works)),

    Row("sig-threads-left-running", "signals",
        attack="busy and sleeping non-daemon threads left running when the block ends",
        code=("import threading, time\n"
              "def busy():\n"
              "    while True:\n"
              "        sum(range(1000))\n"
              "for _ in range(4):\n"
              "    threading.Thread(target=busy).start()\n"
              "threading.Thread(target=time.sleep, args=(100,)).start()\n" + WHO),
        before=clock,
        expect=all_of(outcomes("OUTCOME_OK"), output_of(0, startswith="uid "), limit(None)),
        outside=outsides(took(0, 1.5), worker_gone)),

    Row("sig-daemon-printer", "signals",
        attack="a daemon thread printing forever, during and after the block",
        # Lines of a kilobyte: even a slow machine prints past the cap within the second.
        code=(WHO + "import threading, time\n"
              "def spam():\n"
              "    i = 0\n"
              "    while True:\n"
              "        print('spam', i, 'x' * 1000)\n"
              "        i += 1\n"
              "threading.Thread(target=spam, daemon=True).start()\n"
              "time.sleep(1.0)\n"),
        before=clock,
        expect=all_of(outcomes("OUTCOME_OK"),
                      output_of(0, startswith="uid ",
                                contains=("\nspam 0 " + "x" * 1000 + "\nspam 1 x", NOTE),
                                max_len=CAP + len(NOTE) + 2),
                      limit("OUTPUT_BYTES"),
                      # (JSON doubles each newline's size)
                      reply_size_at_most(2 * CAP + 4096)),
        outside=outsides(took(1.0, 2.5), worker_gone)),
]


# --- timing ------------------------------------------------------------------------------

AFTER_DEADLINE = outsides(took(SHORT_DEADLINE - 0.05, SHORT_DEADLINE + 1.5), worker_gone,
                          quick_request_works)

TIMING_ROWS = [
    Row("time-sleep", "timing",
        attack="print, then sleep 60 s",
        code=WHO + "import time\nprint('before')\ntime.sleep(60)\nprint('after')\n",
        before=clock,
        expect=all_of(deadline(), output_of(0, contains=("before\n",)),
                      custom(lambda t, reply, rs: t.assertNotIn("after", rs[0]["output"]))),
        outside=AFTER_DEADLINE),

    Row("time-busy-python", "timing",
        attack="a pure-Python busy loop",
        code=WHO + "print('spinning')\ni = 0\nwhile True:\n    i += 1\n",
        before=clock,
        expect=all_of(deadline(), output_of(0, contains=("spinning\n",))),
        outside=AFTER_DEADLINE),

    Row("time-numpy-linalg", "timing",
        attack="np.linalg.inv of a 4000x4000 matrix, again and again (BLAS, in C)",
        code=(WHO + "import numpy as np\n"
              "a = np.random.rand(4000, 4000)\n"
              "print('built')\n"
              "for _ in range(100):\n"
              "    np.linalg.inv(a)\n"
              "print('done')\n"),
        before=clock,
        expect=all_of(deadline(), output_of(0, contains=("built\n",)),
                      custom(lambda t, reply, rs: t.assertNotIn("done", rs[0]["output"]))),
        outside=AFTER_DEADLINE),

    Row("time-regex-sub", "timing",
        attack="catastrophic backtracking in re.sub over words",
        code=WHO + "import re\nre.sub(r'(\\w+\\s?)+$$', '', 'word ' * 30 + '!')\nprint('done')\n",
        before=clock,
        expect=all_of(deadline(),
                      custom(lambda t, reply, rs: t.assertNotIn("done", rs[0]["output"]))),
        outside=AFTER_DEADLINE),

    Row("time-signals-blocked-sleep", "timing",
        attack="SIGALRM/SIGINT/SIGTERM/SIGHUP ignored, every signal blocked, then sleep",
        code=(WHO + "import signal, time\n"
              "for s in (signal.SIGALRM, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):\n"
              "    signal.signal(s, signal.SIG_IGN)\n"
              "signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))\n"
              "print('hardened')\n"
              "time.sleep(60)\n"),
        before=clock,
        expect=all_of(deadline(), output_of(0, contains=("hardened\n",))),
        outside=AFTER_DEADLINE),

    Row("time-thread-join", "timing",
        attack="time.sleep(60) in a thread, the main thread in join()",
        code=(WHO + "import threading, time\n"
              "t = threading.Thread(target=time.sleep, args=(60,))\n"
              "t.start()\n"
              "print('joining')\n"
              "t.join()\n"
              "print('joined')\n"),
        before=clock,
        expect=all_of(deadline(), output_of(0, contains=("joining\n",)),
                      custom(lambda t, reply, rs: t.assertNotIn("joined", rs[0]["output"]))),
        outside=AFTER_DEADLINE),

    Row("time-thread-holds-gil", "timing",
        attack="a thread in a C regex that never releases the GIL, the main thread starved",
        code=(WHO + "import threading, re\n"
              "t = threading.Thread(target=re.match, args=(r'(a+)+$$', 'a' * 40 + 'b'))\n"
              "t.start()\n"
              "print('started')\n"
              "t.join()\n"),
        before=clock,
        expect=deadline(),
        outside=AFTER_DEADLINE),

    Row("time-ipc-socket-closed", "timing",
        attack="the code closes its socket to the server, then sleeps",
        code=(WHO + FIND_SOCKET +
              "for fd in socks:\n"
              "    os.close(fd)\n"
              "print('closed', len(socks))\n"
              "import time\n"
              "time.sleep(60)\n"),
        # The server stops waiting for reports, kills the worker and answers: a crash, in
        # bounded time (the exit-status wait, under the deadline).
        before=clock,
        expect=all_of(outcomes("OUTCOME_OK", "OUTCOME_FAILED"),
                      output_of(0, contains=("closed 1\n",)),
                      custom(lambda t, reply, rs: t.assertEqual(
                          rs[1]["output"], "The interpreter process ended unexpectedly.\n")),
                      limit("INTERPRETER_CRASH")),
        outside=outsides(took(0, SHORT_DEADLINE + 1.5), worker_gone, quick_request_works)),
]


# --- the test classes --------------------------------------------------------------------

class ResourceAttacks(attack_table.AttackTestCase):
    SERVER_FLAGS = ("--deadline-ms", "10000")
    ROWS = RESOURCE_ROWS + CONTROL_ROWS

    def ctx(self):
        return {}

    def test_capture_file_full_later_block(self):
        """After a block fills the request's stdout capture file (os.write up to
        RLIMIT_FSIZE), a later block of the same request says its output file is full
        (the documented limit), not that it wrote too much, and the server stays well."""
        fill = ("import os\n"
                "chunk = b'z' * (1 << 20)\n"
                "try:\n"
                "    for _ in range(600):\n"
                "        os.write(1, chunk)\n"
                "except OSError as e:\n"
                "    pass\n")
        reply = self.server.run(fill, "print('second block')", timeout=60)
        rs = results(reply)
        self.assertEqual(len(rs), 2, _short(reply))
        self.assertEqual(rs[0]["output"], "z" * CAP + "\n" + NOTE + "\n")
        self.assertEqual(rs[1], {"outcome": "OUTCOME_OK", "output":
                                 "\n[output truncated: this request's output file is full]\n"})
        self.assertEqual(reply["executionMetadata"], {"limitReached": "OUTPUT_BYTES"})
        self.assertEqual(self.server.run("print('next request')")["parts"][1],
                         {"codeExecutionResult": {"outcome": "OUTCOME_OK",
                                                  "output": "next request\n"}})


class SignalAndTimingAttacks(attack_table.AttackTestCase):
    SERVER_FLAGS = ("--deadline-ms", "3000")
    ROWS = SIGNAL_ROWS + TIMING_ROWS

    def ctx(self):
        return {"server_pid": self.server.proc.pid, "zygote_pid": self.server.zygote_pid(),
                "test_pid": os.getpid()}


# Each of these brought the whole server down when written (glibc abort on heap
# corruption), so each has a server of its own.

FORGED_FINAL_REPORT = Row(
    "time-forged-final-report", "timing",
    attack="the code writes a well-formed BLOCK_DONE for its own (last) block to the server "
           "socket, then sleeps: the deadline then fires with every block reported",
    code=(WHO + FIND_SOCKET +
          "import struct, time\n"
          "payload = struct.pack('=IIIQQI', 0, 0, 0, 0, 0, 0) + struct.pack('=I', 0)\n"
          "for fd in socks:\n"
          "    os.write(fd, struct.pack('=II', 22, len(payload)) + payload)\n"
          "print('forged')\n"
          "time.sleep(60)\n"),
    # Whatever the server makes of the lie, it answers (200, one result), kills the
    # worker at the deadline and stays up.
    before=clock,
    expect=all_of(custom(lambda t, reply, rs: t.assertEqual(len(rs), 1, _short(reply))),
                  custom(lambda t, reply, rs: t.assertIn(
                      rs[0]["outcome"], ("OUTCOME_OK", "OUTCOME_DEADLINE_EXCEEDED",
                                         "OUTCOME_FAILED")))),
    outside=outsides(took(0, SHORT_DEADLINE + 1.5), quick_request_works))

GIL_HELD_AFTER_FINAL_REPORT = Row(
    "time-gil-held-after-final-report", "timing",
    attack="a daemon thread takes the GIL while the runner sends the last block's report "
           "and keeps it (C regex), so the worker never sends JOB_DONE",
    code=(WHO +
          "import sys, threading, re, os\n"
          # an 8 MiB image makes the report's send long enough for the thread to get in
          "with open('/root/big.png', 'wb') as f:\n"
          "    f.write(b'\\x89PNG\\r\\n\\x1a\\n' + os.urandom(8 * 1024 * 1024 - 8))\n"
          "main = threading.main_thread().ident\n"
          "def hog():\n"
          "    while True:\n"
          "        f = sys._current_frames().get(main)\n"
          "        if f is not None and f.f_code.co_name == 'run_job':\n"
          "            break\n"
          "    re.match(r'(a+)+$$', 'a' * 40 + 'b')\n"
          "threading.Thread(target=hog, daemon=True).start()\n"
          "print('block done')\n"),
    # The block finished and was reported: its result is OK with its output and image,
    # the stuck worker is killed, the server stays up.
    before=clock,
    expect=all_of(outcomes("OUTCOME_OK"), output_of(0, contains=("block done\n",)),
                  custom(lambda t, reply, rs: t.assertEqual(len(images(reply)), 1))),
    outside=outsides(took(0, SHORT_DEADLINE + 1.5), worker_gone, quick_request_works))


class HostCleanup(unittest.TestCase):
    """What a server leaves on the host once stopped."""

    def test_cgroups_removed_after_stop(self):
        """A server stopped normally (SIGTERM) removes the per-slot cgroup directories it
        made for its workers (memory and pids, v1 or v2)."""
        s = Server().start()
        try:
            s.run("print(1)", timeout=60)
            # Where they are made (below the server's own group): /healthz says.
            reported = [d for d in s.health()[1]["cgroups"].values() if d]
        finally:
            s.stop()
        base = s.uid_base
        made = reported + [d for d in (f"/sys/fs/cgroup/memory/pyexecd-{base}",
                                       f"/sys/fs/cgroup/pids/pyexecd-{base}",
                                       f"/sys/fs/cgroup/pyexecd-{base}")]
        time.sleep(0.5)
        left = [d for d in made if os.path.isdir(d)]
        self.assertEqual(left, [], "cgroup directories left behind by a stopped server "
                                   "(the zygote is SIGKILLed at shutdown, so its "
                                   "cgroup_cleanup never runs)")


class _OwnServer(attack_table.AttackTestCase):
    """One row on a server of its own; a dead server is reported with its log."""

    SERVER_FLAGS = ("--deadline-ms", "3000")
    WORKERS = 1
    POOL = 1

    def run_row(self, row):
        try:
            super().run_row(row)
        except (OSError, http.client.HTTPException) as e:
            time.sleep(0.5)
            self.fail(f"no reply: {e!r}; server exit status {self.server.proc.poll()}; "
                      f"server log:\n{self.server.log_text()}")

    def wait_settled(self, timeout=10.0):
        if self.server.proc.poll() is not None:
            self.fail(f"the server is dead (exit status {self.server.proc.poll()})")
        return super().wait_settled(timeout)


class ForgedFinalReport(_OwnServer):
    ROWS = [FORGED_FINAL_REPORT]


class GilHeldAfterFinalReport(_OwnServer):
    ROWS = [GIL_HELD_AFTER_FINAL_REPORT]


if __name__ == "__main__":
    unittest.main()
