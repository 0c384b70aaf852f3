"""Wall-clock deadlines: a block past its limit is killed from outside, keeps what it
printed, stops the rest of its request, and leaves no process behind.

Two servers: one with the default 30 s deadline (no --deadline-ms flag), one with
--deadline-ms 1500 for the cheaper cases.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (OUTSIDE_UID_CODE, ServerTestCase, code_part, results,  # noqa: E402
                     wait_uid_gone)

# First block of a request whose worker a test wants to follow: its uid on the host,
# which no other process has (the worker's pid is 1 inside its own PID namespace).
WHOAMI = OUTSIDE_UID_CODE


def parse_whoami(result):
    return int(result["output"])


class DefaultDeadlineTest(ServerTestCase):
    """The server's own default deadline (30 s), no --deadline-ms flag."""

    def test_sleep_past_default_deadline(self):
        """A 60 s sleep is cut at 30 s, keeps "a\\n", skips later blocks, kills its worker."""
        s = self.server
        status, health = s.health()
        self.assertEqual(status, 200)
        self.assertEqual(health["limits"]["deadlineMs"], 30000, "default deadline changed")
        kills_before = health["counters"]["deadlineKills"]

        body = {"parts": [code_part(WHOAMI),
                          code_part("import time; print('a'); time.sleep(60)"),
                          code_part("print('must not run')")]}
        t0 = time.monotonic()
        status, reply = s.execute(body, timeout=90)
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 200, reply)
        res = results(reply)
        self.assertEqual(len(res), 3, reply)

        self.assertEqual(res[0]["outcome"], "OUTCOME_OK", res[0])
        uid = parse_whoami(res[0])

        self.assertEqual(res[1]["outcome"], "OUTCOME_DEADLINE_EXCEEDED", res[1])
        self.assertEqual(res[1].get("output"), "a\n")
        self.assertTrue(29.5 <= elapsed < 31.0, f"reply after {elapsed:.2f} s, want ~30 s")
        self.assertEqual(reply.get("executionMetadata", {}).get("limitReached"), "DEADLINE",
                         reply)

        self.assertEqual(res[2]["outcome"], "OUTCOME_FAILED", res[2])
        self.assertNotIn("must not run", res[2].get("output", ""))

        # The killed worker (its pid, and anything of its uid) is gone. Checked before any
        # new request, which could reuse the uid slot.
        self.assertEqual(wait_uid_gone(uid), [], "killed worker left behind")

        status, health = s.health()
        self.assertEqual(status, 200, health)
        self.assertEqual(health["status"], "ok")
        self.assertEqual(health["counters"]["deadlineKills"], kills_before + 1)
        self.assertEqual(health["workers"]["running"], 0)

        after = s.run("print(6 * 7)")
        self.assertEqual(results(after), [{"outcome": "OUTCOME_OK", "output": "42\n"}])


class ShortDeadlineTest(ServerTestCase):
    """--deadline-ms 1500."""

    DEADLINE = 1.5
    SERVER_FLAGS = ("--deadline-ms", "1500")

    def timed_run(self, *codes):
        t0 = time.monotonic()
        reply = self.server.run(*codes, timeout=60)
        return reply, time.monotonic() - t0

    def test_health_reports_flag(self):
        """/healthz reports the --deadline-ms value the server runs with."""
        status, health = self.server.health()
        self.assertEqual(status, 200)
        self.assertEqual(health["limits"]["deadlineMs"], 1500)

    def test_c_loop_ignoring_signals_is_killed(self):
        """A regex backtracking in C (Python signals ignored, all blocked) dies at the deadline."""
        plain = "import re; re.match(r'(a+)+$', 'a'*40+'b')"
        hardened = ("import re, signal\n"
                    "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGHUP):\n"
                    "    signal.signal(s, signal.SIG_IGN)\n"
                    "signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))\n"
                    "re.match(r'(a+)+$', 'a'*40+'b')")
        for name, code in (("plain", plain), ("signals ignored and blocked", hardened)):
            with self.subTest(name):
                reply, elapsed = self.timed_run(WHOAMI, code, "print('after')")
                res = results(reply)
                uid = parse_whoami(res[0])
                self.assertEqual(res[1]["outcome"], "OUTCOME_DEADLINE_EXCEEDED", res[1])
                self.assertEqual(res[2]["outcome"], "OUTCOME_FAILED", res[2])
                self.assertEqual(reply.get("executionMetadata", {}).get("limitReached"),
                                 "DEADLINE")
                self.assertTrue(self.DEADLINE - 0.05 <= elapsed < self.DEADLINE + 1.5,
                                f"reply after {elapsed:.2f} s")
                self.assertEqual(wait_uid_gone(uid), [], "busy worker survived")

    def test_print_loop_returns_partial_output(self):
        """An endless print loop returns DEADLINE_EXCEEDED with what it printed so far."""
        reply, elapsed = self.timed_run("i = 0\nwhile True:\n    print(i)\n    i += 1")
        res = results(reply)
        self.assertEqual(len(res), 1, reply)
        self.assertEqual(res[0]["outcome"], "OUTCOME_DEADLINE_EXCEEDED")
        out = res[0].get("output", "")
        self.assertTrue(out.startswith("0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"), out[:100])
        # Deadline wins over the output limit this loop may also reach.
        self.assertEqual(reply.get("executionMetadata", {}).get("limitReached"), "DEADLINE")
        self.assertLess(elapsed, self.DEADLINE + 1.5)

    def test_short_block_ok(self):
        """A block sleeping 0.5 s, well under 1.5 s, completes OK with its output."""
        reply, _ = self.timed_run("import time; time.sleep(0.5); print('slept')")
        self.assertEqual(results(reply), [{"outcome": "OUTCOME_OK", "output": "slept\n"}])
        self.assertNotIn("executionMetadata", reply)

    def test_just_under_and_just_past_the_limit(self):
        """Sleeping 1.2 s (under 1.5 s) is OK; sleeping 1.7 s (past it) is cut at ~1.5 s."""
        reply, _ = self.timed_run("import time; time.sleep(1.2); print('under')")
        self.assertEqual(results(reply), [{"outcome": "OUTCOME_OK", "output": "under\n"}])
        self.assertNotIn("executionMetadata", reply)

        reply, elapsed = self.timed_run("import time; time.sleep(1.7); print('past')")
        res = results(reply)
        self.assertEqual(res[0]["outcome"], "OUTCOME_DEADLINE_EXCEEDED", res)
        self.assertNotIn("past", res[0].get("output", ""))
        self.assertTrue(self.DEADLINE - 0.05 <= elapsed < 1.7,
                        f"reply after {elapsed:.2f} s: not cut at the deadline")

    def test_each_block_has_its_own_deadline(self):
        """Three 1.0 s blocks all pass under a 1.5 s deadline though they total 3 s."""
        code = "import time; time.sleep(1.0); print('block', {})"
        reply, elapsed = self.timed_run(*(code.format(i) for i in range(3)))
        self.assertEqual(results(reply),
                         [{"outcome": "OUTCOME_OK", "output": f"block {i}\n"} for i in range(3)])
        self.assertNotIn("executionMetadata", reply)
        self.assertGreaterEqual(elapsed, 3.0)

    def test_left_over_thread_does_not_keep_worker(self):
        """A non-daemon thread left sleeping neither delays the reply nor keeps its worker."""
        code = ("import threading, time\n"
                "threading.Thread(target=time.sleep, args=(100,)).start()\n" + WHOAMI)
        reply, elapsed = self.timed_run(code)
        res = results(reply)
        self.assertEqual(res[0]["outcome"], "OUTCOME_OK", res)
        self.assertLess(elapsed, 1.0, "the reply waited for the thread")
        uid = parse_whoami(res[0])
        self.assertEqual(wait_uid_gone(uid, timeout=3), [],
                         "the worker's thread kept it alive")


if __name__ == "__main__":
    unittest.main()
