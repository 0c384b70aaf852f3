"""Faults from outside, with the real server, zygote, kernel and interpreter: what breaks
is broken for real (SIGKILL from the host, a read-only cgroup hierarchy in a mount
namespace of the server's own, a descriptor limit, a thousand sockets).

  ZygoteUnderLoadTest     the zygote killed while four clients keep sending: a request
                          that was running gets 503 UNAVAILABLE, every other reply is a
                          right 200, and requests succeed again within RECOVERY_S.
  WorkersKilledTest       running workers SIGKILLed at random from the host: each victim's
                          request gets a FAILED result naming the kill, the others finish
                          right; a session whose worker is killed ends with the same
                          result and its id then answers 404.
  WorkAreaFullTest        a work area of 1 MiB (a policy): code that fills it reads ENOSPC
                          and the next request starts empty; an input file that does not
                          fit is refused with a 400 naming it, and the server serves on.
  CgroupUnwritableTest    the server started with /sys/fs/cgroup/{memory,pids} read-only:
                          it starts, reports cgroupMemory and cgroupPids false in
                          /healthz, and serves (a memory hog still gets its result).
  Pid1ReapsOrphansTest    the server as PID 1 of a PID namespace (a container's first
                          process): the zygote SIGKILLed, its pool workers die orphaned
                          and become the server's children; the server reaps them (no
                          zombie is left) and serves on with a new zygote.
  IdleConnectionsTest     1,000 connections held open (half idle, half dribbling a
                          request a byte a second), under a soft descriptor limit of 1024
                          the server must raise itself: a client is served within its
                          normal latency; past LIMIT_HTTP_CONNECTIONS a new connection
                          waits in the listen queue and is served once the others go.

Clients that disconnect mid-execution are test_bad_input.py's test_8.

Run: PYEXECD_BIN=build/pyexecd python3 -u tests/integration/test_faults.py -v
"""

import base64
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (OUTSIDE_UID_CODE, SANITIZED, Server, ServerTestCase,  # noqa: E402
                     code_part, pid_alive, read_until_closed, results, wait_for,
                     wait_uid_gone)
from limits import LIMITS  # noqa: E402

# Requests succeed again this soon after the zygote is killed. A new zygote imports every
# library (2-4 s here when the machine is idle, 5-6 s measured with the suite's other
# servers busy on the same 2 cores); a sanitized build's zygote is several times slower.
RECOVERY_S = 8.0 * (4 if SANITIZED else 1)
# How a worker killed from the host is named (server/job_results.c).
KILLED = "The interpreter process was stopped: it was killed from outside the sandbox " \
         "(signal 9, SIGKILL).\n"


class ZygoteUnderLoadTest(ServerTestCase):
    WORKERS = 2
    POOL = 2

    def test_zygote_killed_under_load(self):
        s = self.server
        old_zygote = s.zygote_pid()
        stop = threading.Event()
        replies = []   # (sent_at, replied_at, status, body, i)
        lock = threading.Lock()

        def client(k):
            i = 0
            while not stop.is_set():
                i += 1
                tag = f"{k}-{i}"
                sent = time.monotonic()
                try:
                    status, body = s.execute({"parts": [code_part(f"print('{tag}')")]},
                                             timeout=60)
                except Exception as e:  # a dropped connection is a failure of the test
                    status, body = None, repr(e)
                with lock:
                    replies.append((sent, time.monotonic(), status, body, tag))

        # One long request, certain to be running when the zygote dies.
        long_reply = {}

        def long_call():
            long_reply["r"] = s.execute(
                {"parts": [code_part("import time; time.sleep(4); print('done')")]},
                timeout=60)

        lt = threading.Thread(target=long_call, daemon=True)
        lt.start()
        wait_for(lambda: s.health()[1]["workers"]["running"] >= 1, 10, "the long request")
        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(old_zygote, signal.SIGKILL)
        time.sleep(RECOVERY_S + 3)
        stop.set()
        for t in threads:
            t.join(60)
        lt.join(60)

        status, body = long_reply["r"]
        self.assertEqual(status, 503, body)
        self.assertEqual(body["error"]["status"], "UNAVAILABLE", body)
        unavailable = 0
        for sent, _, status, body, tag in replies:
            if status == 503:
                self.assertEqual(body["error"]["status"], "UNAVAILABLE", body)
                unavailable += 1
                continue
            self.assertEqual(status, 200, body)
            self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "output": f"{tag}\n"}])
        before = [r for r in replies if r[1] < killed_at]
        after = [r for r in replies if r[0] > killed_at and r[2] == 200]
        self.assertTrue(before and all(r[2] == 200 for r in before), "no load before the kill")
        self.assertTrue(after, "nothing succeeded after the kill")
        back = min(r[1] for r in after) - killed_at
        print(f"\n  zygote killed under load: {len(replies)} requests, {unavailable} got 503, "
              f"first success {back:.2f} s after the kill", file=sys.stderr)
        self.assertLess(back, RECOVERY_S, f"service came back {back:.2f} s after the kill")
        self.assertNotEqual(s.zygote_pid(), old_zygote)
        self.assertFalse(pid_alive(old_zygote))


class WorkersKilledTest(ServerTestCase):
    """Pool 0: the only worker processes are the running ones, so a random pick among the
    server's worker uids is always a running job's worker."""
    WORKERS = 3
    POOL = 0

    def running_workers(self, n):
        s = self.server
        wait_for(lambda: s.health()[1]["workers"]["running"] == n, 15, f"{n} running")
        # Pid 1 of each worker's namespace (a running job's worker has no children).
        return wait_for(lambda: (lambda p: p if len(p) == n else None)(
            sorted(p for p, _, _ in s.stray_processes())), 10, f"{n} worker processes")

    def test_workers_killed_at_random(self):
        s = self.server
        crashes_before = s.health()[1]["counters"]["workerCrashes"]
        rng = random.Random(12)
        for round_no in range(3):
            calls = [{} for _ in range(3)]

            def call(box, k):
                box["r"] = s.execute({"parts": [code_part(
                    f"import time\nprint('start {k}', flush=True)\ntime.sleep(3)\n"
                    f"print('end {k}')")]}, timeout=60)

            ts = [threading.Thread(target=call, args=(calls[k], k), daemon=True)
                  for k in range(3)]
            for t in ts:
                t.start()
            pids = self.running_workers(3)
            victim = rng.choice(pids)
            os.kill(victim, signal.SIGKILL)
            for t in ts:
                t.join(60)
            outcomes = []
            for k, box in enumerate(calls):
                status, body = box["r"]
                self.assertEqual(status, 200, body)
                rs = results(body)
                outcomes.append(rs[-1]["outcome"])
                if rs[-1]["outcome"] == "OUTCOME_OK":
                    self.assertEqual(rs, [{"outcome": "OUTCOME_OK",
                                           "output": f"start {k}\nend {k}\n"}])
                else:
                    # What it printed before the kill (an OK result, as the real service
                    # splits a failed block's stdout), then the kill named.
                    self.assertEqual(rs, [{"outcome": "OUTCOME_OK", "output": f"start {k}\n"},
                                          {"outcome": "OUTCOME_FAILED", "output": KILLED}])
            self.assertEqual(sorted(outcomes), ["OUTCOME_FAILED", "OUTCOME_OK", "OUTCOME_OK"],
                             f"round {round_no}")
        self.assertEqual(s.run("print('after')")["parts"][-1]["codeExecutionResult"],
                         {"outcome": "OUTCOME_OK", "output": "after\n"})
        status, h = s.health()
        self.assertEqual((status, h["status"]), (200, "ok"), h)
        self.assertEqual(h["counters"]["workerCrashes"], crashes_before + 3, h)

    def test_session_worker_killed(self):
        s = self.server
        status, body, _ = s.request("POST", "/v1/sessions", {})
        self.assertEqual(status, 200, body)
        sid = body["name"].split("/")[-1]
        path = f"/v1/sessions/{sid}:execute"
        status, body, _ = s.request("POST", path, {"parts": [code_part(OUTSIDE_UID_CODE)]})
        self.assertEqual(status, 200, body)
        uid = int(results(body)[0]["output"])
        box = {}

        def call():
            box["r"] = s.request("POST", path, {"parts": [code_part(
                "import time\nprint('in', flush=True)\ntime.sleep(5)")]}, timeout=60)

        t = threading.Thread(target=call, daemon=True)
        t.start()
        # A session's call is not counted in workers.running: give it time to print.
        time.sleep(1.5)
        for pid, _, _ in s.stray_processes():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        t.join(60)
        status, body, _ = box["r"]
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "output": "in\n"},
                                         {"outcome": "OUTCOME_FAILED", "output": KILLED}])
        self.assertEqual(wait_uid_gone(uid), [])
        status, body, _ = s.request("POST", path, {"parts": [code_part("print(1)")]})
        self.assertEqual(status, 404, body)
        self.assertEqual(body["error"]["status"], "NOT_FOUND", body)


# Input files of the small-work-area policy: two do not fit in its 1 MiB.
INPUT_FILE_BYTES = 700 * 1024


class WorkAreaFullTest(unittest.TestCase):
    """A policy with workdir_mib 1: the work area is a 1 MiB tmpfs."""

    @classmethod
    def setUpClass(cls):
        here = os.path.dirname(os.path.abspath(__file__))
        base = os.path.join(here, "..", "..", "policies", "default.policy")
        cls.tmp = tempfile.mkdtemp(prefix="pyexecd-faults-")
        cls.policy = os.path.join(cls.tmp, "small-workdir.policy")
        # One input file may fill at most the whole work area (the policy parser checks).
        small = {"workdir_mib": "1", "input_file_bytes": str(INPUT_FILE_BYTES)}
        with open(base) as f, open(cls.policy, "w") as out:
            for line in f:
                words = line.split()
                if words[:1] == ["limit"] and words[1] in small:
                    line = f"limit {words[1]} {small[words[1]]}\n"
                out.write(line)
        cls.server = Server("--policy", cls.policy).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_code_fills_the_work_area(self):
        fill = ("import errno\n"
                "try:\n"
                "    with open('/root/fill.bin', 'wb') as f:\n"
                "        while True:\n"
                "            f.write(b'x' * 65536)\n"
                "            f.flush()\n"
                "except OSError as e:\n"
                "    print(errno.errorcode[e.errno])\n")
        reply = self.server.run(fill)
        self.assertEqual(results(reply), [{"outcome": "OUTCOME_OK", "output": "ENOSPC\n"}])
        # The next request's work area is its own, empty, with the whole 1 MiB.
        reply = self.server.run("import os\nprint(os.listdir('/root'))\n"
                                "open('/root/a', 'wb').write(b'y' * 900000)\nprint('ok')")
        self.assertEqual(results(reply), [{"outcome": "OUTCOME_OK", "output": "[]\nok\n"}])

    def test_input_files_at_and_past_the_work_area(self):
        # Input files are bounded per request by input_file_bytes, which the policy parser
        # keeps within the work area: two files that would overfill it are refused before
        # any worker is touched (a session's full work area: test_sessions.py).
        big = base64.b64encode(b'q' * INPUT_FILE_BYTES).decode()
        status, body = self.server.execute({"parts": [
            {"inlineData": {"mimeType": "text/plain", "data": big}},
            {"inlineData": {"mimeType": "text/plain", "data": big}},
            code_part("print(1)")]})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["status"], "INVALID_ARGUMENT", body)
        self.assertIn(f"total more than {INPUT_FILE_BYTES} bytes", body["error"]["message"])
        # One at the limit fits, and runs.
        small = base64.b64encode(b"z" * INPUT_FILE_BYTES).decode()
        status, body = self.server.execute({"parts": [
            {"inlineData": {"mimeType": "text/plain", "data": small}},
            code_part("import os; print(os.path.getsize('input_file_0.txt'))")]})
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK",
                                          "output": f"{INPUT_FILE_BYTES}\n"}])
        status, h = self.server.health()
        self.assertEqual((status, h["status"], h["counters"]["workerCrashes"]),
                         (200, "ok", 0), h)


def readonly_cgroup_wrapper():
    """(wrapper argv, None), or (None, why the fault cannot be made here)."""
    if not shutil.which("unshare"):
        return None, "no unshare(1) on PATH"
    if os.geteuid() != 0:
        return None, "needs root to remount the cgroup hierarchy in a mount namespace"
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    dirs = [d for d in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids")
            if f" {d} " in mounts]
    if not dirs:
        return None, "no cgroup v1 memory or pids hierarchy mounted here"
    script = "".join(f"mount -o remount,bind,ro {d} && " for d in dirs) + 'exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", script, "sh"], None


class CgroupUnwritableTest(unittest.TestCase):

    def test_serves_without_cgroups(self):
        wrapper, why = readonly_cgroup_wrapper()
        if wrapper is None:
            self.skipTest(why)
        # With the hierarchy writable the layers are there (else there is nothing to lose).
        with Server(workers=1, pool=1) as normal:
            iso = normal.health()[1]["isolation"]
        if not (iso["cgroupMemory"] and iso["cgroupPids"]):
            self.skipTest(f"the cgroup layers are missing even when writable: {iso}")
        with Server(workers=1, pool=1, wrapper=wrapper) as s:
            status, h = s.health()
            self.assertEqual(status, 200, h)
            self.assertIs(h["isolation"]["cgroupMemory"], False, h)
            self.assertIs(h["isolation"]["cgroupPids"], False, h)
            self.assertTrue(any("cgroupMemory is not available" in line for line in s.log),
                            s.log_text())
            reply = s.run("print(sum(range(10)))")
            self.assertEqual(results(reply), [{"outcome": "OUTCOME_OK", "output": "45\n"}])
            # Memory is still bounded without the memory group (the address-space limit).
            reply = s.run("x = bytearray(8 << 30)")
            rs = results(reply)
            self.assertEqual(rs[-1]["outcome"], "OUTCOME_FAILED", rs)
            self.assertIn("MemoryError", rs[-1]["output"], rs)
            self.assertEqual(s.health()[1]["status"], "ok")


def children_of(pid):
    """[(child pid, its State line)] of pid's children, as the host sees them."""
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            for child in f.read().split():
                try:
                    with open(f"/proc/{child}/status") as st:
                        state = next(line for line in st if line.startswith("State:"))
                except (OSError, StopIteration):
                    continue
                found.append((int(child), state.split(None, 1)[1].strip()))
    return found


class Pid1ReapsOrphansTest(unittest.TestCase):

    def test_orphaned_workers_are_reaped(self):
        if not shutil.which("unshare") or os.geteuid() != 0:
            self.skipTest("needs root and unshare(1) for a PID namespace")
        # unshare forks the server as PID 1 of a new PID namespace (with its own /proc);
        # it ignores SIGTERM itself, and its death kills the server (--kill-child).
        s = Server(workers=1, pool=2, wrapper=["unshare", "--pid", "--fork", "--mount-proc",
                                               "--kill-child"])
        s.start()
        self.addCleanup(s.kill)
        server = wait_for(lambda: [c for c, _ in children_of(s.proc.pid)], 5,
                          "the server under unshare")[0]
        with open(f"/proc/{server}/status") as f:
            self.assertRegex(f.read(), r"NSpid:\s+\d+\s+1\n", "the server is not PID 1")
        zygote = [c for c, _ in children_of(server)]
        self.assertEqual(len(zygote), 1, zygote)
        # Ready means one pooled worker; the second may still be setting up (as root,
        # before its uid is dropped): wait for both.
        wait_for(lambda: len(s.stray_processes()) >= 2, 30, "the pool's two workers")
        workers = [pid for pid, _, _ in s.stray_processes()]
        os.kill(zygote[0], signal.SIGKILL)
        wait_for(lambda: s.health()[1]["zygote"]["restarts"] >= 1, 30, "a new zygote")
        s.wait_ready()
        # The old workers died with their zygote and were handed to PID 1: reaped, not
        # zombies; the only child left is the new zygote.
        wait_for(lambda: len(children_of(server)) == 1, 10,
                 f"the orphans to be reaped: {children_of(server)}")
        (child, state), = children_of(server)
        self.assertNotEqual(child, zygote[0])
        self.assertFalse(state.startswith("Z"), state)
        self.assertFalse(any(pid_alive(p) for p in workers))
        self.assertTrue(any("reaped 2 orphaned processes" in line or
                            "reaped 1 orphaned processes" in line for line in s.log),
                        s.log_text())
        self.assertEqual(results(s.run("print(6 * 7)")),
                         [{"outcome": "OUTCOME_OK", "output": "42\n"}])
        os.kill(server, signal.SIGTERM)   # the drain, then unshare exits with it
        self.assertEqual(s.proc.wait(30), 0, s.log_text())
        s.stop()


class IdleConnectionsTest(unittest.TestCase):
    HELD = 1000

    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = LIMITS["LIMIT_HTTP_CONNECTIONS"] + 300
        if hard != resource.RLIM_INFINITY and hard < need:
            raise unittest.SkipTest(f"the hard descriptor limit ({hard}) is below {need}")
        cls.saved = (soft, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
        # The server starts under the usual soft limit of 1024 and must raise it itself.
        cls.server = Server(workers=2, pool=2,
                            wrapper=["prlimit", f"--nofile=1024:{hard}", "--"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, cls.saved)

    def latencies(self, n=20):
        out = []
        for i in range(n):
            t0 = time.monotonic()
            reply = self.server.run(f"print({i})")
            out.append((time.monotonic() - t0) * 1000)
            self.assertEqual(results(reply), [{"outcome": "OUTCOME_OK", "output": f"{i}\n"}])
        return out

    def open_connections(self, n):
        socks = []
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
            socks.append(c)
        return socks

    def test_thousand_idle_and_slow_connections(self):
        s = self.server
        self.latencies(5)   # warm-up
        base = statistics.median(self.latencies())
        socks = self.open_connections(self.HELD)
        slow = socks[::2]
        for c in slow:
            c.sendall(b"POST /v1/execute HTTP/1.1\r\nHost: x\r\n")
        stop = threading.Event()

        def dribble():
            while not stop.wait(1.0):
                for c in slow:
                    try:
                        c.sendall(b"X")
                    except OSError:
                        pass

        d = threading.Thread(target=dribble, daemon=True)
        d.start()
        try:
            time.sleep(1.0)
            held = statistics.median(self.latencies())
            # Every one of them is still open (none refused or dropped).
            for c in socks:
                c.setblocking(False)
                try:
                    self.assertNotEqual(c.recv(1, socket.MSG_PEEK), b"", "a held socket closed")
                except BlockingIOError:
                    pass
            print(f"\n  {self.HELD} held connections: execute p50 {base:.1f} ms before, "
                  f"{held:.1f} ms while held", file=sys.stderr)
            bound = max(2 * base, base + 20) if not SANITIZED else 10 * base
            self.assertLess(held, bound, f"p50 {held:.1f} ms while held, {base:.1f} ms before")

            # Past the limit a connection waits in the kernel's listen queue (the server
            # stops accepting at LIMIT_HTTP_CONNECTIONS): its request is not read while the
            # others are held, and is answered once they go.
            extra = self.open_connections(LIMITS["LIMIT_HTTP_CONNECTIONS"] - self.HELD + 20)
            waiting = extra[-5:]
            for c in waiting:
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            for c in waiting:
                self.assertIsNone(read_until_closed(c, timeout=1),
                                  "a connection past the limit was served while full")
            stop.set()
            for c in socks + extra[:-5]:
                c.close()
            for c in waiting:
                reply = read_until_closed(c, timeout=10)
                self.assertIsNotNone(reply, "a queued connection was never served")
                self.assertTrue(reply.startswith(b"HTTP/1.1 200 "), reply[:200])
                c.close()
        finally:
            stop.set()
            d.join(5)
            for c in socks:
                c.close()
        # The server frees them and serves on.
        wait_for(lambda: s.health()[0] == 200, 10, "the server to answer again")
        after = statistics.median(self.latencies())
        self.assertLess(after, max(2 * base, base + 20) if not SANITIZED else 10 * base)
        with open(f"/proc/{s.proc.pid}/limits") as f:
            line = next(x for x in f if x.startswith("Max open files"))
        self.assertGreater(int(line.split()[3]), 1024, line)


if __name__ == "__main__":
    unittest.main()
