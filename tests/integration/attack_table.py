"""The attack suite's table machinery: each row is one hostile snippet, the result it must
get, and an optional check from outside the sandbox. After every row the server must
answer /healthz and no process of a finished worker may remain.

    ROWS = [
        Row("net-tcp-loopback", "network",
            attack="TCP connect to the test's own loopback listener",
            code="import socket; socket.create_connection(('127.0.0.1', $port))",
            expect=failed_with("PermissionError")),
        ...
    ]

    class NetworkAttacks(AttackTestCase):
        ROWS = ROWS

`code` may hold $placeholders (string.Template) filled from the test's context (fixture values such as a
listener's port; `ctx()` returns them). `expect(test, reply, result)` asserts on the whole
reply and its first codeExecutionResult (`result`). `before(test, ctx)` prepares
(starts a listener, writes a file); `outside(test, ctx, reply)` checks from the host.
"""

import collections
import string
import time

from harness import SANITIZED, ServerTestCase, code_part, results

Row = collections.namedtuple(
    "Row", "id category attack code expect before outside",
    defaults=(None, None))


# --- expectations ----------------------------------------------------------------------

def ok(*fragments, exact=None):
    """OUTCOME_OK whose output contains every fragment (or equals `exact`)."""
    def check(test, reply, r):
        test.assertEqual(r["outcome"], "OUTCOME_OK", r)
        if exact is not None:
            test.assertEqual(r.get("output"), exact)
        for f in fragments:
            test.assertIn(f, r.get("output", ""))
    return check


def failed_with(*fragments):
    """OUTCOME_FAILED whose output contains every fragment (an exception name, say)."""
    def check(test, reply, r):
        failed = [x for x in results(reply) if x["outcome"] == "OUTCOME_FAILED"]
        test.assertTrue(failed, reply)
        for f in fragments:
            test.assertIn(f, failed[-1].get("output", ""))
    return check


def killed(reason_fragment, limit="INTERPRETER_CRASH"):
    """OUTCOME_FAILED because the interpreter was stopped, with `limit` reported (a
    seccomp kill reports FORBIDDEN_SYSCALL, the OOM killer MEMORY, ...)."""
    def check(test, reply, r):
        failed = [x for x in results(reply) if x["outcome"] == "OUTCOME_FAILED"]
        test.assertTrue(failed, reply)
        test.assertIn(reason_fragment, failed[-1].get("output", ""))
        test.assertEqual(reply.get("executionMetadata", {}).get("limitReached"), limit, reply)
    return check


def deadline(partial=None):
    """OUTCOME_DEADLINE_EXCEEDED, optionally with output starting with `partial`."""
    def check(test, reply, r):
        test.assertEqual(r["outcome"], "OUTCOME_DEADLINE_EXCEEDED", r)
        test.assertEqual(reply.get("executionMetadata", {}).get("limitReached"), "DEADLINE")
        if partial is not None:
            test.assertTrue(r.get("output", "").startswith(partial), r)
    return check


def nowhere_in_output(text):
    """No result of the reply has `text` in its output (what a child would have printed)."""
    def check(test, reply, r):
        test.assertNotIn(text, "".join(x.get("output", "") for x in results(reply)))
    return check


def all_of(*checks):
    def check(test, reply, r):
        for c in checks:
            c(test, reply, r)
    return check


# Rows whose result the AddressSanitizer runtime changes, skipped in the sanitized build
# only (make test-asan); make test runs them.
UNDER_SANITIZER = {
    "parity-fork-bomb": "under ASan each fork copies the page tables of a terabyte-scale "
                        "shadow mapping: the bomb meets the deadline before the task limit",
    "parity-child-rlimit": "a worker's address-space limit is its mapped size plus the "
                           "headroom, and under ASan the mapped size counts the shadow "
                           "memory: a child that is not sanitized gets terabytes",
}


# --- the runner ------------------------------------------------------------------------

class AttackTestCase(ServerTestCase):
    """Runs ROWS, one subTest each, then checks the server's health after each."""

    ROWS = ()
    TIMEOUT = 120

    def ctx(self):
        """Values for the $placeholders of the rows' code."""
        return {}

    def wait_settled(self, timeout=10.0):
        """Waits until nothing runs and every worker process left is an idle pool one;
        returns (health, processes) or fails."""
        end = time.time() + timeout
        while True:
            status, h = self.server.health()
            procs = self.server.stray_processes()
            idle = h["pool"]["ready"] + h["pool"]["starting"] if status == 200 else -1
            if status == 200 and h["workers"]["running"] == 0 and len(procs) <= idle:
                return h, procs
            if time.time() >= end:
                self.fail(f"server not settled after a row: status={status} health={h} "
                          f"processes={procs}")
            time.sleep(0.05)

    def run_row(self, row):
        if SANITIZED and row.id in UNDER_SANITIZER:
            self.skipTest("skipped: " + UNDER_SANITIZER[row.id])
        context = dict(self.ctx())
        if row.before:
            context.update(row.before(self, context) or {})
        code = string.Template(row.code).substitute(context) if context else row.code
        status, reply = self.server.execute({"parts": [code_part(code)]}, timeout=self.TIMEOUT)
        self.assertEqual(status, 200, reply)
        rs = results(reply)
        self.assertTrue(rs, reply)
        row.expect(self, reply, rs[0])
        if row.outside:
            row.outside(self, context, reply)

    def test_rows(self):
        """Every row gets its expected result; the server stays healthy, nothing leaks."""
        seen = set()
        for row in self.ROWS:
            self.assertNotIn(row.id, seen, "duplicate row id")
            seen.add(row.id)
            with self.subTest(row=row.id, attack=row.attack):
                try:
                    self.run_row(row)
                finally:
                    self.wait_settled()
