"""When the kernel refuses the server's SIGKILL to a worker (a container without CAP_KILL
over the workers' uids): the refusal is real here -- the server runs under
`capsh --drop=cap_kill`, and every kill of a worker (another uid) fails with EPERM.

What the server must do then: not report a block's deadline as the end of code that runs
on; check the kill, end the worker another way (SIGKILL sent as the worker's own uid,
which the kernel allows without CAP_KILL; else its cgroup v2 cgroup.kill), say so in the
log and in /healthz (counters.killFailures, workers.unkilled), and keep the worker's slot
taken (workers.running) until its process has really ended. Workers that exit by
themselves once their socket closes (every request's, a deleted session's) are not
failures. At shutdown the zygote ends its workers the same way, so none is left.

Not reached here, and said so: the cgroup.kill fallback (it comes after the kill as the
worker's uid, which works wherever the server can make workers at all; and this machine's
cgroups are v1), and the case where nothing works and the slot stays taken for good --
both would need the uid change refused too, which cannot be arranged without faking it.

Run: PYEXECD_BIN=build/pyexecd python3 -u tests/integration/test_kill_refused.py -v
"""

import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (OUTSIDE_UID_CODE, Server, code_part, pid_alive,  # noqa: E402
                     processes_with_uid_in, results, wait_for)

CAP_KILL = 5
# Prints the worker's uid and its start time (clock ticks since boot, field 22 of
# /proc/self/stat: the same clock outside the worker's pid namespace), then spins. Both are
# needed to follow the worker: once it has ended, its slot -- and with it its uid -- goes to
# the next pooled worker, which the test must not take for the spinner.
SPIN = (OUTSIDE_UID_CODE +
        "print(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])\n"
        "import sys; sys.stdout.flush()\nwhile True: pass\n")


def start_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def spinner_processes(uid, started):
    """Pids of uid's processes started no later than the spinner (the spinner itself; a
    later process of that uid is the slot's next worker)."""
    return [p for p, _, _ in processes_with_uid_in(uid, uid + 1)
            if (lambda t: t is not None and t <= started)(start_ticks(p))]


def wait_spinner_gone(uid, started, timeout=5.0):
    """Waits until the spinner (zombie included) is gone; returns the pids left."""
    end = time.time() + timeout
    while True:
        left = spinner_processes(uid, started)
        if not left or time.time() >= end:
            return left
        time.sleep(0.05)


def cap_eff(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("capsh"),
                     "skipped: needs root and capsh to run the server without CAP_KILL")
class KillRefusedTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server("--deadline-ms", "1000", workers=1, pool=1,
                            wrapper=["capsh", "--drop=cap_kill", "--", "-c",
                                     'exec "$0" "$@"']).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()   # and nothing of it is left: the zygote's kills are refused too

    def health(self):
        return self.server.health()[1]

    def test_0_the_server_has_no_cap_kill(self):
        self.assertFalse(cap_eff(self.server.proc.pid) & (1 << CAP_KILL))
        zygote = self.health()["zygote"]["pid"]
        self.assertFalse(cap_eff(zygote) & (1 << CAP_KILL))

    def test_1_workers_that_exit_by_themselves_are_no_failure(self):
        for _ in range(3):
            status, body = self.server.execute({"parts": [code_part("print(1)")]})
            self.assertEqual(status, 200, body)
        status, body, _ = self.server.request("POST", "/v1/sessions", {})
        sid = body["name"].split("/")[-1]
        status, body, _ = self.server.request("POST", f"/v1/sessions/{sid}:execute",
                                              {"parts": [code_part("x = 1")]})
        self.assertEqual(status, 200, body)
        self.assertEqual(self.server.request("DELETE", f"/v1/sessions/{sid}")[0], 200)
        # A worker whose kill was refused counts as running again (unkilled) until it has
        # exited by itself, a moment after its slot was given up: wait for both.
        wait_for(lambda: (lambda w: w["running"] == 0 and w["unkilled"] == 0)(
                     self.health()["workers"]), 10, "no worker running, none left unkilled")
        h = self.health()
        self.assertEqual(h["counters"]["killFailures"], 0, h)
        self.assertEqual(h["workers"]["unkilled"], 0, h)

    def spin_past_deadline(self, path="/v1/execute"):
        """Runs code that prints its uid and start time and spins; returns (reply body, the
        uid, the start time)."""
        status, body, _ = self.server.request("POST", path, {"parts": [code_part(SPIN)]})
        self.assertEqual(status, 200, body)
        res = results(body)
        self.assertEqual(res[-1]["outcome"], "OUTCOME_DEADLINE_EXCEEDED", body)
        uid, started = res[0]["output"].split()[:2]
        return body, int(uid), int(started)

    def check_slot_held_while_alive(self, uid, started):
        """Until the spinner is gone, /healthz never shows its slot free: a sample of
        /healthz taken before the process was seen alive must count it running."""
        while True:
            h = self.health()
            alive = [p for p in spinner_processes(uid, started) if pid_alive(p)]
            if not alive:
                return
            self.assertGreaterEqual(h["workers"]["running"], 1, h)

    def test_2_a_deadline_kill_refused_is_done_another_way(self):
        before = self.health()["counters"]
        _, uid, started = self.spin_past_deadline()
        self.check_slot_held_while_alive(uid, started)
        self.assertEqual(wait_spinner_gone(uid, started), [])
        wait_for(lambda: self.health()["workers"]["unkilled"] == 0, 10, "unkilled back to 0")
        after = self.health()["counters"]
        self.assertEqual(after["killFailures"], before["killFailures"] + 1)
        self.assertEqual(after["deadlineKills"], before["deadlineKills"] + 1)
        log = self.server.log_text()
        self.assertIn("could not be killed (Operation not permitted) and still runs: killed "
                      "as its own uid", log)
        self.assertIn("which could not be killed, has ended", log)
        # The one slot is free again: the next request runs.
        status, body = self.server.execute({"parts": [code_part("print(2)")]})
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[-1]["output"], "2\n")

    def test_3_in_a_session(self):
        before = self.health()["counters"]["killFailures"]
        status, body, _ = self.server.request("POST", "/v1/sessions", {})
        sid = body["name"].split("/")[-1]
        _, uid, started = self.spin_past_deadline(f"/v1/sessions/{sid}:execute")
        self.check_slot_held_while_alive(uid, started)
        self.assertEqual(wait_spinner_gone(uid, started), [])
        status, body, _ = self.server.request("GET", f"/v1/sessions/{sid}")
        self.assertEqual(status, 404, body)
        self.assertIn("past its deadline", body["error"]["message"])
        self.assertEqual(self.health()["counters"]["killFailures"], before + 1)

    def test_4_stop_leaves_nothing_behind(self):
        # A session's worker alive at the stop (its kill refused): the harness's stop in
        # tearDownClass fails if it or any other of the server's processes is left.
        status, body, _ = self.server.request("POST", "/v1/sessions", {})
        self.assertEqual(status, 200, body)
        sid = body["name"].split("/")[-1]
        status, body, _ = self.server.request("POST", f"/v1/sessions/{sid}:execute",
                                              {"parts": [code_part("x = 1")]})
        self.assertEqual(status, 200, body)
        time.sleep(0.2)


if __name__ == "__main__":
    unittest.main()
