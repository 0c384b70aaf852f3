"""Server life cycle: zygote death and restart, the admission queue (429), the bound on
concurrent executions, on-demand forking, graceful stop, and a burst of load that leaves
nothing behind.
"""

import os
import queue
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import ExecuteCall as Call  # noqa: E402
from harness import Server, ServerTestCase, code_part, pid_alive, results, wait_for  # noqa: E402


def health_when(server, cond):
    """The /healthz body if it answers 200 and cond(body) holds, else None."""
    status, h = server.health()
    return h if status == 200 and cond(h) else None


class ZygoteDeathTest(ServerTestCase):
    """SIGKILL to the zygote mid-request."""

    def test_zygote_killed_mid_request(self):
        """In-flight request gets a prompt 503 UNAVAILABLE; a new zygote takes over; no old worker survives."""
        s = self.server
        status, h = s.health()
        self.assertEqual(status, 200)
        old_zygote, restarts_before = h["zygote"]["pid"], h["zygote"]["restarts"]
        self.assertTrue(pid_alive(old_zygote))

        call = Call(s, "import time; time.sleep(5); print('finished')")
        call.start()
        wait_for(lambda: health_when(s, lambda h: h["workers"]["running"] == 1), 10,
                 "the request to start running")
        old_workers = [pid for pid, _, _ in s.stray_processes()]
        self.assertTrue(old_workers, "no worker processes found before the kill")

        killed_at = time.monotonic()
        os.kill(old_zygote, signal.SIGKILL)
        call.join(15)
        self.assertFalse(call.is_alive(), "the in-flight request got no reply")
        self.assertIsNone(call.error)
        latency = call.replied_at - killed_at
        self.assertEqual(call.status, 503, call.body)
        self.assertEqual(call.body["error"]["status"], "UNAVAILABLE", call.body)
        self.assertEqual(call.body["error"]["code"], 503)
        self.assertLess(latency, 2.0, f"503 came {latency:.2f} s after the kill")

        h = wait_for(lambda: health_when(
            s, lambda h: h["zygote"]["pid"] != old_zygote and h["zygote"]["state"] == "ready"
            and h["pool"]["ready"] >= 1), 90, "a new zygote")
        self.assertEqual(h["status"], "ok")
        self.assertGreaterEqual(h["zygote"]["restarts"], restarts_before + 1)
        self.assertTrue(pid_alive(h["zygote"]["pid"]))

        # The old zygote and every worker it had forked are gone.
        wait_for(lambda: not pid_alive(old_zygote) and
                 not any(pid_alive(p) for p in old_workers), 5, "old processes to die")
        current = {pid for pid, _, _ in s.stray_processes()}
        self.assertFalse(current & set(old_workers),
                         f"workers of the old zygote still listed: {current & set(old_workers)}")

        reply = s.run("print('after restart')")
        self.assertEqual(results(reply), [{"outcome": "OUTCOME_OK",
                                           "output": "after restart\n"}])


class QueueOneTest(ServerTestCase):
    """--workers 1 --queue 1 --pool 1: two requests admitted, the third refused."""
    SERVER_FLAGS = ("--queue", "1",)
    WORKERS = 1
    POOL = 1

    def test_third_request_past_queue_gets_429(self):
        """One running + one queued (at the limit) both succeed; a third gets 429 at once."""
        s = self.server
        slow = [Call(s, f"import time; time.sleep(3); print('slow {i}')") for i in range(2)]
        for c in slow:
            c.start()
        h = wait_for(lambda: health_when(s, lambda h: h["workers"]["running"] == 1 and
                                         h["queue"]["depth"] == 1), 10,
                     "one running and one queued request")
        self.assertEqual(h["queue"]["max"], 1)

        t0 = time.monotonic()
        status, body = s.execute({"parts": [code_part("print('third')")]}, timeout=10)
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 429, body)
        self.assertEqual(body["error"]["status"], "RESOURCE_EXHAUSTED", body)
        self.assertEqual(body["error"]["code"], 429)
        self.assertLess(elapsed, 1.0, f"429 took {elapsed:.2f} s")

        for i, c in enumerate(slow):
            c.join(30)
            self.assertFalse(c.is_alive())
            self.assertIsNone(c.error)
            self.assertEqual(c.status, 200, c.body)
            self.assertEqual(results(c.body),
                             [{"outcome": "OUTCOME_OK", "output": f"slow {i}\n"}])

        # The queue drained: admission works again.
        reply = s.run("print('again')")
        self.assertEqual(results(reply), [{"outcome": "OUTCOME_OK", "output": "again\n"}])


class QueueZeroTest(ServerTestCase):
    """--workers 1 --queue 0: nothing may wait."""
    SERVER_FLAGS = ("--queue", "0",)
    WORKERS = 1
    POOL = 1

    def test_second_concurrent_request_gets_429(self):
        """With no queue, the running request (at the limit) succeeds and a second gets 429."""
        s = self.server
        slow = Call(s, "import time; time.sleep(2); print('slow')")
        slow.start()
        wait_for(lambda: health_when(s, lambda h: h["workers"]["running"] == 1), 10,
                 "the first request to run")

        t0 = time.monotonic()
        status, body = s.execute({"parts": [code_part("print('second')")]}, timeout=10)
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 429, body)
        self.assertEqual(body["error"]["status"], "RESOURCE_EXHAUSTED", body)
        self.assertLess(elapsed, 1.0)

        slow.join(30)
        self.assertEqual(slow.status, 200, slow.body)
        self.assertEqual(results(slow.body), [{"outcome": "OUTCOME_OK", "output": "slow\n"}])
        reply = s.run("print('second, later')")
        self.assertEqual(results(reply),
                         [{"outcome": "OUTCOME_OK", "output": "second, later\n"}])


class ConcurrencyBoundTest(ServerTestCase):
    """--workers 2: never more than two executions at once."""

    def test_four_requests_two_at_a_time(self):
        """Four 1 s requests all complete; running never exceeds 2, and their runs overlap at most pairwise."""
        s = self.server
        samples = []
        done = threading.Event()

        def sample():
            while not done.is_set():
                try:
                    status, h = s.health()
                    if status == 200:
                        samples.append(h["workers"]["running"])
                except Exception:
                    pass
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = "import time; t0 = time.time(); time.sleep(1); print(t0, time.time())"
        calls = [Call(s, code) for _ in range(4)]
        t0 = time.monotonic()
        for c in calls:
            c.start()
        for c in calls:
            c.join(30)
        elapsed = time.monotonic() - t0
        done.set()
        sampler.join(5)

        spans = []
        for c in calls:
            self.assertIsNone(c.error)
            self.assertEqual(c.status, 200, c.body)
            res = results(c.body)
            self.assertEqual(res[0]["outcome"], "OUTCOME_OK", res)
            start, end = map(float, res[0]["output"].split())
            spans.append((start, end))

        self.assertGreater(len(samples), 20, "too few /healthz samples")
        self.assertLessEqual(max(samples), 2, samples)
        self.assertEqual(max(samples), 2, "never saw two executions at once")
        # From the code's own clocks: at no instant were more than two blocks running.
        for start, _ in spans:
            overlapping = sum(1 for s0, e0 in spans if s0 <= start < e0)
            self.assertLessEqual(overlapping, 2, spans)
        self.assertGreaterEqual(elapsed, 2.0, "four 1 s runs on two workers took < 2 s")


class NoPoolTest(ServerTestCase):
    """--pool 0: workers are forked on demand."""
    WORKERS = 1
    POOL = 0

    def test_executes_without_pool(self):
        """With no pre-forked workers requests still run, and no worker idles afterwards."""
        s = self.server
        status, h = s.health()
        self.assertEqual(status, 200)
        self.assertEqual(h["pool"]["target"], 0)
        self.assertEqual(h["pool"]["ready"], 0)
        for i in range(3):
            reply = s.run(f"print(sum(range({i + 10})))")
            self.assertEqual(results(reply),
                             [{"outcome": "OUTCOME_OK", "output": f"{sum(range(i + 10))}\n"}])
        wait_for(lambda: not s.stray_processes(), 5, "on-demand workers to exit")
        h = wait_for(lambda: health_when(s, lambda h: h["workers"]["running"] == 0), 5,
                     "idle server")
        self.assertEqual(h["pool"]["ready"], 0)
        self.assertEqual(h["counters"]["executions"], 3)


class GracefulStopTest(ServerTestCase):
    """SIGTERM while a request runs."""

    def test_sigterm_during_request(self):
        """The running request finishes (SIGTERM drains), the server exits 0 within 10 s, nothing is left."""
        s = self.server
        zygote = s.zygote_pid()
        call = Call(s, "import time; time.sleep(5); print('done')", timeout=30)
        call.start()
        wait_for(lambda: health_when(s, lambda h: h["workers"]["running"] == 1), 10,
                 "the request to start running")
        workers = s.stray_processes()
        proc = s.proc
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)   # raises TimeoutExpired if it does not stop in time
        self.assertEqual(proc.returncode, 0)
        self.assertLess(time.monotonic() - t0, 10)
        call.join(10)
        self.assertIsNone(call.error)
        self.assertEqual(call.status, 200, call.body)
        self.assertEqual(results(call.body), [{"outcome": "OUTCOME_OK", "output": "done\n"}])
        self.assertTrue(workers, "no worker was running")
        wait_for(lambda: not pid_alive(zygote) and not s.stray_processes(), 5,
                 "the zygote and every worker to exit")


def cgroup_dirs(server):
    """The workers' cgroup directories the running server's /healthz reports (they sit
    below the server's own group, wherever that is: sandbox/cgroup.c)."""
    return [d for d in server.health()[1]["cgroups"].values() if d]


def existing_dirs(dirs):
    return [d for d in dirs if os.path.isdir(d)]


class ServerKilledTest(unittest.TestCase):
    """SIGKILL to the server while a request runs: nothing of it may stay behind."""

    def test_sigkill_server_leaves_nothing(self):
        """The zygote ends its workers, removes its cgroups and exits."""
        s = Server(workers=1, pool=1).start()
        self.addCleanup(s.kill)
        _, h = s.health()
        if not (h["isolation"]["cgroupMemory"] or h["isolation"]["cgroupPids"]):
            self.skipTest("skipped: no cgroup on this kernel, so none to remove")
        groups = cgroup_dirs(s)
        self.assertTrue(existing_dirs(groups), "the server made no cgroup directory")
        zygote = s.zygote_pid()
        call = Call(s, "import time; time.sleep(20)", timeout=30)
        call.start()
        wait_for(lambda: health_when(s, lambda h: h["workers"]["running"] == 1), 10,
                 "the request to start running")
        self.assertTrue(s.stray_processes(), "no worker was running")
        s.proc.kill()
        s.proc.wait(10)
        wait_for(lambda: not pid_alive(zygote) and not s.stray_processes(), 10,
                 "the zygote and every worker to exit")
        wait_for(lambda: not existing_dirs(groups), 5, "the cgroups to be removed")
        call.join(10)


    def test_workers_die_with_zygote_without_server(self):
        """With the server unable to act (stopped), a SIGKILL to the zygote still ends
        every worker, the one running a job included: each dies with its zygote."""
        s = Server(workers=1, pool=1).start()
        self.addCleanup(s.kill)
        groups = cgroup_dirs(s)
        zygote = s.zygote_pid()
        call = Call(s, "while True:\n    pass", timeout=30)
        call.start()
        wait_for(lambda: health_when(s, lambda h: h["workers"]["running"] == 1), 10,
                 "the request to start running")
        # The pool refills asynchronously (a fork of the zygote): wait for the new one.
        wait_for(lambda: len(s.stray_processes()) >= 2, 10,
                 "the running worker and a pooled one")
        workers = s.stray_processes()
        self.assertGreaterEqual(len(workers), 2, "want the running worker and a pooled one")
        s.proc.send_signal(signal.SIGSTOP)
        try:
            os.kill(zygote, signal.SIGKILL)
            wait_for(lambda: not any(pid_alive(pid) for pid, _, _ in workers), 5,
                     "the workers to die with the zygote")
        finally:
            s.proc.send_signal(signal.SIGCONT)
        call.join(15)
        # The server starts a new zygote, which takes over the cgroups of the old one (the
        # same directories) and removes them when the server stops.
        wait_for(lambda: health_when(s, lambda h: h["zygote"]["pid"] != zygote and
                                     h["zygote"]["state"] == "ready"), 30,
                 "a new zygote, ready (/healthz is 200 before: it is liveness)")
        s.stop()
        self.assertEqual(existing_dirs(groups), [])


class ZygoteKilledThenStopTest(unittest.TestCase):

    def test_stop_while_the_new_zygote_starts_leaves_no_cgroup(self):
        """The zygote is SIGKILLed (it cannot remove its workers' cgroups) and the server
        is stopped before the new one is ready: the server removes the groups, the ones
        /healthz reported, itself."""
        s = Server(workers=1, pool=1).start()
        self.addCleanup(s.kill)
        health = s.health()[1]
        reported = cgroup_dirs(s)
        if not reported:
            self.skipTest("skipped: the kernel gave the sandbox no cgroup layer here")
        self.assertEqual(existing_dirs(reported), reported)
        os.kill(health["zygote"]["pid"], signal.SIGKILL)
        wait_for(lambda: health_when(s, lambda h: h["zygote"]["pid"] != health["zygote"]["pid"]
                                     and h["zygote"]["state"] != "ready"), 10,
                 "a new zygote, starting")
        s.stop()
        self.assertEqual(existing_dirs(reported), [])
        self.assertTrue(any("which an ended zygote left" in line for line in s.log), s.log[-20:])


class LoadTest(ServerTestCase):
    """A burst of sequential and concurrent requests."""

    def test_sequential_then_concurrent(self):
        """100 sequential then 20 concurrent (8 threads) requests all succeed; only the pool remains."""
        s = self.server
        for i in range(100):
            status, body = s.execute({"parts": [code_part(f"print({i} * {i})")]})
            self.assertEqual(status, 200, body)
            self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "output": f"{i * i}\n"}])

        jobs = queue.Queue()
        for i in range(20):
            jobs.put(i)
        failures = []

        def client():
            while True:
                try:
                    i = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    status, body = s.execute(
                        {"parts": [code_part(f"import time; time.sleep(0.05); print('c', {i})")]})
                    if status != 200 or results(body) != [
                            {"outcome": "OUTCOME_OK", "output": f"c {i}\n"}]:
                        failures.append((i, status, body))
                except Exception as e:
                    failures.append((i, None, repr(e)))

        threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still waiting")
        self.assertEqual(failures, [])

        h = wait_for(lambda: health_when(
            s, lambda h: h["workers"]["running"] == 0 and h["queue"]["depth"] == 0 and
            h["pool"]["ready"] == 2 and h["pool"]["starting"] == 0), 10, "a settled pool")
        self.assertEqual(h["counters"]["executions"], 120)
        self.assertEqual(h["counters"]["workerCrashes"], 0)
        left = wait_for(lambda: (lambda p: p if len(p) <= 2 else None)(s.stray_processes()),
                        5, "workers beyond the pool to exit")
        self.assertEqual(len(left), 2, f"expected exactly the 2 pooled workers: {left}")
        self.assertTrue(all(name == "pyexecd-worker" for _, _, name in left), left)


if __name__ == "__main__":
    unittest.main()
