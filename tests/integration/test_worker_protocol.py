"""What a worker may send the server, and what one request may make the server hold.

The worker's socket to the server is reachable by the code it runs (descriptor 3, the
report channel: the code sees 0, 1, 2 and it, nothing else), so the code can write
anything there. These tests play that hostile code: frames larger than a worker may send,
bytes from a worker that has no job, a forged set-up failure with text aimed at the
server's log, well-formed forged reports that may change their own request's result and
nothing else. Then the per-request output budget:
many blocks each printing their full cap must not make a reply of hundreds of MiB.
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import ServerTestCase, code_part, results  # noqa: E402
from limits import LIMITS  # noqa: E402

IPC_W_SETUP_FAILED = 21
IPC_W_BLOCK_DONE = 22
IPC_W_JOB_DONE = 23
IPC_W_JOB_REFUSED = 24

# The code finds its socket to the server: the one socket among its descriptors.
FIND_SOCKET = (
    "import os, struct, time\n"
    "def _link(n):\n"
    "    try:\n        return os.readlink(f'/proc/self/fd/{n}')\n"
    "    except OSError:\n        return ''\n"
    "fd = [int(n) for n in os.listdir('/proc/self/fd') if _link(n).startswith('socket:')][0]\n")


def wait_logged(server, text, timeout=5.0):
    """Waits for a server log line containing text (the log is read by another thread)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(text in line for line in server.log):
            return
        time.sleep(0.05)
    raise AssertionError(f"no log line with {text!r}:\n" + server.log_text())


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class FrameLimitTest(ServerTestCase):
    SERVER_FLAGS = ("--deadline-ms", "4000")
    WORKERS = 1
    POOL = 1

    def busy_limit(self):
        # busy_frame_limit() in server/executor_workers.c, with the default output cap.
        return (LIMITS["LIMIT_IMAGE_BYTES_PER_REQUEST"] + 2 * LIMITS["LIMIT_OUTPUT_BYTES"]
                + 1024 * 1024)

    def announce(self, length):
        """Runs code that sends a BLOCK_DONE header announcing `length` payload bytes, then
        a little of it, then waits: (reply, seconds)."""
        code = (FIND_SOCKET + f"os.write(fd, struct.pack('=II', {IPC_W_BLOCK_DONE}, {length}))\n"
                "os.write(fd, b'A' * 4096)\nprint('sent', flush=True)\ntime.sleep(10)\n")
        start = time.monotonic()
        status, body = self.server.execute(code_part(code))
        self.assertEqual(status, 200, body)
        return body, time.monotonic() - start

    def test_frame_at_limit_is_awaited(self):
        """A frame announcing exactly the busy limit is awaited (the block runs to its deadline)."""
        body, took = self.announce(self.busy_limit())
        self.assertEqual(results(body)[0]["outcome"], "OUTCOME_DEADLINE_EXCEEDED", body)
        self.assertGreaterEqual(took, 3.5)

    def test_frame_past_limit_ends_worker_at_once(self):
        """A frame announcing one byte more ends the worker at once, as a crash."""
        body, took = self.announce(self.busy_limit() + 1)
        res = results(body)
        self.assertEqual(res[-1]["outcome"], "OUTCOME_FAILED", body)
        self.assertLess(took, 3.0)
        wait_logged(self.server, "oversized frame")
        status, _ = self.server.health()
        self.assertEqual(status, 200)

    def test_large_partial_frame_not_held_past_limit(self):
        """The old worst case (a frame of 16 images at 8 MiB plus twice 64 MiB of text, sent
        almost whole) no longer makes the server buffer it: its RSS stays far below that."""
        announced = 16 * 8 * 2**20 + 2 * 64 * 2**20 + 2**20
        before = rss_kib(self.server.proc.pid)
        code = (FIND_SOCKET + f"os.write(fd, struct.pack('=II', {IPC_W_BLOCK_DONE}, {announced}))\n"
                "chunk = b'A' * (16 << 20)\nsent = 0\n"
                "try:\n    while sent < 200 << 20:\n        sent += os.write(fd, chunk)\n"
                "except OSError as e:\n    print('write failed:', e.errno, flush=True)\n"
                "time.sleep(10)\n")
        status, body = self.server.execute(code_part(code))
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[-1]["outcome"], "OUTCOME_FAILED", body)
        self.assertLess(rss_kib(self.server.proc.pid) - before, 64 * 1024)

    def test_forged_setup_failure_neither_logged_raw_nor_counted(self):
        """A busy worker claiming its set-up failed is ended as a protocol breach: the
        counter does not move, and its text never reaches the log as a line of its own."""
        _, h = self.server.health()
        failures = h["counters"]["workerSetupFailures"]
        msg = "ok\\npyexecd: zygote 1 died: FORGED\\n\\x1b[31mred"
        code = (FIND_SOCKET + f"m = '{msg}'.encode()\n"
                f"os.write(fd, struct.pack('=II', {IPC_W_SETUP_FAILED}, len(m)) + m)\n"
                "time.sleep(5)\n")
        status, body = self.server.execute(code_part(code))
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[-1]["outcome"], "OUTCOME_FAILED", body)
        _, h = self.server.health()
        self.assertEqual(h["counters"]["workerSetupFailures"], failures)
        self.assertFalse(any(line.startswith("pyexecd: zygote 1 died: FORGED")
                             for line in self.server.log), self.server.log_text())
        self.assertFalse(any("\x1b" in line for line in self.server.log))


class ReportChannelTest(ServerTestCase):
    """The descriptors the code sees, and well-formed frames it forges on its channel."""
    SERVER_FLAGS = ("--deadline-ms", "6000")
    WORKERS = 2
    POOL = 2

    def test_only_four_descriptors(self):
        """The code has 0 (/dev/null), 1 and 2 (the capture files) and 3 (the report socket): no other."""
        code = ("import os, stat\nopen_fds = []\n"
                "for n in range(4096):\n"
                "    try:\n        st = os.fstat(n)\n    except OSError:\n        continue\n"
                "    open_fds.append(n)\n"
                "print(open_fds)\n"
                "print(os.readlink('/proc/self/fd/0'))\n"
                "print([os.readlink(f'/proc/self/fd/{n}').split(' ')[0] for n in (1, 2)])\n"
                "print(stat.S_ISSOCK(os.fstat(3).st_mode))\n")
        status, body = self.server.execute(code_part(code))
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "output":
            "[0, 1, 2, 3]\n/dev/null\n['/memfd:pyexecd-stdout', '/memfd:pyexecd-stderr']\nTrue\n"}], body)

    def forged_report(self, out_end=1 << 40):
        """Code that prints, then forges a report that block 0 ended well (with a huge
        stdout end and an image) and that the job is done, then goes on."""
        return ("import os, struct, time\nprint('before', flush=True)\n"
                "img = b'\\x89PNG\\r\\n\\x1a\\nforged'\n"
                f"body = struct.pack('=IIIQQ', 0, 0, 0, {out_end}, 0) + struct.pack('=I', 0)\n"
                "body += struct.pack('=I', 1) + struct.pack('=I', 9) + b'image/png'\n"
                "body += struct.pack('=I', len(img)) + img\n"
                f"os.write(3, struct.pack('=II', {IPC_W_BLOCK_DONE}, len(body)) + body)\n"
                f"os.write(3, struct.pack('=II', {IPC_W_JOB_DONE}, 0))\n"
                "time.sleep(3)\nprint('after')\n")

    def test_forged_report_changes_only_its_own_result(self):
        """A request forging 'block done' and 'job done' ends early with what it printed; a request
        running beside it gets its own result; the server stays healthy and leaks nothing."""
        other = {}

        def run_other():
            other["reply"] = self.server.execute(code_part(
                "import time\ntime.sleep(1.5)\nprint(sum(range(10)))"))

        t = threading.Thread(target=run_other)
        t.start()
        start = time.monotonic()
        status, body = self.server.execute(code_part(self.forged_report()))
        took = time.monotonic() - start
        t.join()
        self.assertEqual(status, 200, body)
        res = results(body)
        self.assertEqual(res, [{"outcome": "OUTCOME_OK", "output": "before\n"}], body)
        self.assertLess(took, 2.5, "the forged end was not believed")
        self.assertEqual(other["reply"][0], 200, other)
        self.assertEqual(results(other["reply"][1]),
                         [{"outcome": "OUTCOME_OK", "output": "45\n"}], other)
        status, h = self.server.health()
        self.assertEqual(status, 200, h)
        end = time.monotonic() + 10
        while len(self.server.stray_processes()) > h["pool"]["ready"] + h["pool"]["starting"]:
            self.assertLess(time.monotonic(), end, self.server.stray_processes())
            time.sleep(0.1)
            _, h = self.server.health()

    def test_forged_report_in_a_session_ends_only_that_session(self):
        """In a session the forged end answers its call early; the real reports that follow
        arrive while it waits, which ends it. Another session keeps its state."""
        sids = []
        for _ in range(2):
            status, body, _ = self.server.request("POST", "/v1/sessions", {})
            self.assertEqual(status, 200, body)
            sids.append(body["name"].split("/")[1])
            self.addCleanup(self.server.request, "DELETE", f"/v1/sessions/{sids[-1]}")
        status, body, _ = self.server.request(
            "POST", f"/v1/sessions/{sids[1]}:execute", {"parts": [code_part("x = 5")]})
        self.assertEqual(status, 200, body)
        status, body, _ = self.server.request(
            "POST", f"/v1/sessions/{sids[0]}:execute",
            {"parts": [code_part(self.forged_report())]})
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "output": "before\n"}], body)
        end = time.monotonic() + 10
        while True:
            status, body, _ = self.server.request("GET", f"/v1/sessions/{sids[0]}")
            if status == 404 or time.monotonic() > end:
                break
            time.sleep(0.1)
        self.assertEqual(status, 404, body)
        status, body, _ = self.server.request(
            "POST", f"/v1/sessions/{sids[1]}:execute", {"parts": [code_part("print(x)")]})
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "output": "5\n"}], body)

    def test_forged_refusal_without_input_files_is_a_breach(self):
        """'Could not write input file 0' from a call that sent none is not believed: the
        worker is ended as a protocol breach and its call fails."""
        code = ("import os, struct, time\n"
                f"os.write(3, struct.pack('=IIII', {IPC_W_JOB_REFUSED}, 8, 0, 17))\n"
                "time.sleep(3)\n")
        status, body = self.server.execute(code_part(code))
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[-1]["outcome"], "OUTCOME_FAILED", body)
        wait_logged(self.server, "JOB_REFUSED names no input file")

    def test_forged_refusal_with_input_files_is_a_400_for_that_call(self):
        """With an input file the same forgery is believable: its own call gets the 400
        (the message built from the server's own names); the server serves on."""
        code = ("import os, struct, time\n"
                f"os.write(3, struct.pack('=IIII', {IPC_W_JOB_REFUSED}, 8, 0, 17))\n"
                "time.sleep(3)\n")
        body = {"parts": [{"inlineData": {"mimeType": "text/plain", "data": "eA=="}},
                          code_part(code)]}
        status, reply = self.server.execute(body)
        self.assertEqual(status, 400, reply)
        self.assertIn("input_file_0.txt", reply["error"]["message"])
        status, reply = self.server.execute(code_part("print(1)"))
        self.assertEqual(results(reply), [{"outcome": "OUTCOME_OK", "output": "1\n"}], reply)


# A native thread that sleeps, writes a buffer to a descriptor, then sleeps for ever: it
# runs while the interpreter waits between session calls (Python threads do not: the
# worker waits for its next job holding the GIL). x86-64 machine code; its argument is
# {tv_sec, tv_nsec, fd, buf, len}.
NATIVE_WRITER = bytes.fromhex(
    "4889fb"          # mov rbx, rdi            the argument block
    "488d3b31f6"      # lea rdi, [rbx]; xor esi, esi
    "b8230000000f05"  # nanosleep(&arg->ts, NULL)
    "8b7b10"          # mov edi, [rbx+16]       fd
    "488b7318"        # mov rsi, [rbx+24]       buf
    "488b5320"        # mov rdx, [rbx+32]       len
    "b8010000000f05"  # write(fd, buf, len)
    "488d3b31f6"      # again: lea rdi, [rbx]; xor esi, esi
    "b8230000000f05"  # nanosleep(&arg->ts, NULL)
    "ebf2")           # jmp again

NATIVE_THREAD_CODE = FIND_SOCKET + (
    "import ctypes, mmap, builtins\n"
    f"stub = bytes.fromhex('{NATIVE_WRITER.hex()}')\n"
    "m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
    "m.write(stub)\n"
    "data = ctypes.create_string_buffer(PAYLOAD)\n"
    "arg = (ctypes.c_uint64 * 5)(0, 500_000_000, fd, ctypes.addressof(data), len(PAYLOAD))\n"
    "tid = ctypes.c_ulong()\n"
    "fn = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(m)))\n"
    "print(ctypes.CDLL(None).pthread_create(ctypes.byref(tid), None, fn, arg))\n"
    "builtins._keep = (m, data, arg, tid)\n")


@unittest.skipUnless(os.uname().machine == "x86_64",
                     "skipped: the native writer thread is x86-64 machine code")
class IdleSessionTest(ServerTestCase):
    WORKERS = 1
    POOL = 1

    def test_frame_from_idle_session_ends_it(self):
        """A native thread sending a frame header after its call returned ends the session
        at once: an idle worker may send frames of no size at all."""
        self.idle_write("struct.pack('=II', 22, 1 << 20) + b'A' * 65536", "oversized frame")

    def test_bytes_from_idle_session_end_it(self):
        """Even a few bytes (less than a frame header) from an idle session end it."""
        self.idle_write("b'junk'", "sent data while waiting for a job")

    def idle_write(self, payload, logged):
        status, body, _ = self.server.request("POST", "/v1/sessions", {})
        self.assertEqual(status, 200, body)
        sid = body["name"].split("/")[1]
        code = f"import struct\nPAYLOAD = {payload}\n" + NATIVE_THREAD_CODE
        status, body, _ = self.server.request(
            "POST", f"/v1/sessions/{sid}:execute", {"parts": [code_part(code)]})
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "output": "0\n"}])
        # The thread writes 0.5 s later, while the session waits for its next call.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, body, _ = self.server.request("GET", f"/v1/sessions/{sid}")
            if status == 404:
                break
            time.sleep(0.1)
        self.assertEqual(status, 404, body)
        wait_logged(self.server, logged)
        status, _ = self.server.health()
        self.assertEqual(status, 200)


class OutputBudgetTest(ServerTestCase):
    WORKERS = 1
    POOL = 1

    def blocks_printing(self, sizes):
        return [code_part(f"import sys\nsys.stdout.write('x' * {n})") for n in sizes]

    def test_request_output_budget(self):
        """Blocks may print LIMIT_OUTPUT_BYTES_PER_REQUEST in all; past it each keeps
        LIMIT_OUTPUT_BYTES_FLOOR bytes, cut with a marker, and the limit is reported."""
        budget = LIMITS["LIMIT_OUTPUT_BYTES_PER_REQUEST"]
        cap = LIMITS["LIMIT_OUTPUT_BYTES"]
        floor = LIMITS["LIMIT_OUTPUT_BYTES_FLOOR"]
        full = [cap] * (budget // cap)
        self.assertEqual(sum(full), budget)
        # At the limit: every block's output whole, then a block within the floor.
        status, body = self.server.execute({"parts": self.blocks_printing(full + [floor])})
        self.assertEqual(status, 200)
        res = results(body)
        self.assertEqual([len(r["output"]) for r in res], full + [floor])
        self.assertNotIn("executionMetadata", body)
        # One byte past the floor: that block's output is cut, and says so.
        status, body = self.server.execute({"parts": self.blocks_printing(full + [floor + 1])})
        self.assertEqual(status, 200)
        res = results(body)
        self.assertEqual([len(r["output"]) for r in res[:-1]], full)
        self.assertTrue(res[-1]["output"].startswith("x" * 100), res[-1]["output"][:200])
        self.assertIn("output truncated", res[-1]["output"])
        self.assertLess(len(res[-1]["output"]), floor + 200)
        self.assertEqual(body["executionMetadata"]["limitReached"], "OUTPUT_BYTES")

    def test_many_blocks_of_escaped_output_stay_bounded(self):
        """64 blocks each writing 1 MiB of control characters to stdout and stderr and
        raising with a 1 MiB message: the reply stays a few tens of MiB, not a GiB."""
        code = ("import os\nos.write(1, b'\\x01' * (1 << 20))\nos.write(2, b'\\x01' * (1 << 20))\n"
                "raise Exception('\\x01' * (1 << 20))")
        parts = [code_part(code) for _ in range(LIMITS["LIMIT_PARTS"])]
        status, raw, _ = self.server.request("POST", "/v1/execute", {"parts": parts},
                                             timeout=300)
        self.assertEqual(status, 200)
        res = results(raw)
        self.assertEqual(len(res), 2 * LIMITS["LIMIT_PARTS"])   # split: OK stdout, FAILED
        text = sum(len(r.get("output", "")) for r in res)
        budget = LIMITS["LIMIT_OUTPUT_BYTES_PER_REQUEST"]
        floor_total = 3 * LIMITS["LIMIT_OUTPUT_BYTES_FLOOR"] * LIMITS["LIMIT_PARTS"]
        self.assertLess(text, budget + floor_total + 200 * 3 * LIMITS["LIMIT_PARTS"])
        self.assertEqual(raw["executionMetadata"]["limitReached"], "OUTPUT_BYTES")


if __name__ == "__main__":
    unittest.main()
