"""Per-API-key bounds and session ownership (--api-key-file, --key-max-executions,
--key-max-sessions, a key's executions= and sessions= in the file).

A key at its bound of executions (running or queued: /v1/execute, session executes,
generateContent turns that run code) or of sessions gets 429 RESOURCE_EXHAUSTED naming
its id and the bound, never the key, while another key is still served and the
server-wide bounds keep working. Every place is given back, whatever way the call ends
(results, exceptions, deadlines, a client gone, 404 and 409 refusals; a session's on
delete, deadline death and idle expiry): after a burst of those the key runs up to its
bound again, and not one more. A session belongs to the key that created it: any other
key gets 404 with the same body as for an id that never existed.

Run: PYEXECD_BIN=build/pyexecd python3 -u tests/integration/test_key_limits.py -v
"""

import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import ExecuteCall, Server, code_part, results, wait_for  # noqa: E402
from limits import LIMITS  # noqa: E402
from test_auth import start_refused  # noqa: E402

KEY_A = "pyx-limit-key-aaaaaaaaaaaaaaaaaaaa"
KEY_B = "pyx-limit-key-bbbbbbbbbbbbbbbbbbbb"
KEY_C = "pyx-limit-key-cccccccccccccccccccc"
A = {"x-goog-api-key": KEY_A}
B = {"x-goog-api-key": KEY_B}
C = {"x-goog-api-key": KEY_C}
KEYS = (KEY_A, KEY_B, KEY_C)
QUICK = {"parts": [code_part("print(6 * 7)")]}
HOLD_S = 3   # how long a held execution sleeps


def generate_body(code):
    return {"contents": [{"role": "user", "parts": [{"text": f"```python\n{code}\n```"}]}],
            "tools": [{"codeExecution": {}}]}


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


class KeyServerTest(unittest.TestCase):
    """A server with keys; every reply goes through reply(), which checks that no key is
    in it."""

    KEY_FILE = ""
    FLAGS = ()
    WORKERS = 3
    POOL = 2

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pyexecd-key-limits-")
        keys = write(os.path.join(cls.tmp, "keys"), cls.KEY_FILE)
        cls.server = Server("--api-key-file", keys, *cls.FLAGS, workers=cls.WORKERS,
                            pool=cls.POOL).start()

    @classmethod
    def tearDownClass(cls):
        try:
            log = cls.server.log_text()
            for key in KEYS:
                assert key not in log, "a key is in the server's log"
            cls.server.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def request(self, method, path, body=None, headers=None):
        status, data, reply_headers = self.server.request(method, path, body, headers=headers)
        text = json.dumps(data) + json.dumps(reply_headers)
        for key in KEYS:
            self.assertNotIn(key, text, "a key is in a reply")
        return status, data

    def post(self, path, body, headers):
        return self.request("POST", path, body, headers)

    def execute(self, headers, body=QUICK):
        return self.post("/v1/execute", body, headers)

    def create(self, headers):
        status, body = self.post("/v1/sessions", {}, headers)
        if status == 200:
            sid = body["name"].split("/")[-1]
            self.addCleanup(self.request, "DELETE", f"/v1/sessions/{sid}", None, headers)
            return status, body, sid
        return status, body, None

    def assert_ok(self, status, body):
        self.assertEqual(status, 200, body)
        if "parts" in body:
            self.assertEqual(results(body)[-1]["outcome"], "OUTCOME_OK", body)

    def assert_key_limit(self, status, body, key_id, bound, what):
        self.assertEqual(status, 429, body)
        self.assertEqual(set(body), {"error"}, body)
        err = body["error"]
        self.assertEqual((err["code"], err["status"]), (429, "RESOURCE_EXHAUSTED"), body)
        self.assertIn(f"API key {key_id} ", err["message"])
        self.assertIn(f"maximum of {bound} {what}", err["message"])

    def running(self):
        return self.server.health()[1]["workers"]["running"]

    def hold(self, headers, n, seconds=HOLD_S):
        """n executions of headers' key, sleeping, all running before it returns."""
        before = self.running()
        calls = [ExecuteCall(self.server, f"import time; time.sleep({seconds}); print('held')",
                             headers=headers) for _ in range(n)]
        for c in calls:
            c.start()
        wait_for(lambda: self.running() >= before + n, 20, f"{n} held executions running")
        return calls

    def join(self, calls):
        for c in calls:
            c.join(60)
            self.assertIsNone(c.error)
            self.assert_ok(c.status, c.body)


class BoundsTest(KeyServerTest):
    """alpha: its own bounds (2 executions, 2 sessions); beta: the flags' (3 and 3);
    gamma: no per-key bound (0 in the file overrides the flag)."""

    KEY_FILE = (f"# tenants\nalpha {KEY_A} executions=2 sessions=2\n"
                f"beta {KEY_B}\n{KEY_C} sessions=0 executions=0\n")
    FLAGS = ("--key-max-executions", "3", "--key-max-sessions", "3", "--queue", "4")
    WORKERS = 4

    def test_execution_bound_is_per_key(self):
        held = self.hold(A, 2)
        # At the bound: one more is refused, at once, naming the key and the bound ...
        t0 = time.monotonic()
        self.assert_key_limit(*self.execute(A), "alpha", 2, "executions")
        self.assertLess(time.monotonic() - t0, HOLD_S / 2)
        # ... also in a session, and as a generateContent turn that runs code ...
        status, _, sid = self.create(A)
        self.assertEqual(status, 200)
        self.assert_key_limit(*self.post(f"/v1/sessions/{sid}:execute", QUICK, A),
                              "alpha", 2, "executions")
        self.assert_key_limit(*self.post("/v1beta/models/echo:generateContent",
                                         generate_body("print(1)"), A),
                              "alpha", 2, "executions")
        # ... while another key is served, the held ones still running.
        self.assert_ok(*self.execute(B))
        self.assert_ok(*self.post("/v1beta/models/echo:generateContent",
                                  generate_body("print(1)"), B))
        self.assertTrue(all(c.is_alive() for c in held))
        self.join(held)
        # Back under the bound: runs again.
        self.assert_ok(*self.execute(A))
        self.assert_ok(*self.post(f"/v1/sessions/{sid}:execute", QUICK, A))

    def test_a_turn_that_runs_code_counts(self):
        reply = []
        turn = threading.Thread(target=lambda: reply.append(self.post(
            "/v1beta/models/echo:generateContent",
            generate_body(f"import time; time.sleep({HOLD_S})"), A)), daemon=True)
        turn.start()
        wait_for(lambda: self.running() >= 1, 20, "the turn's code running")
        held = self.hold(A, 1)
        self.assert_key_limit(*self.execute(A), "alpha", 2, "executions")
        self.join(held)
        turn.join(60)
        self.assertEqual(reply[0][0], 200, reply)
        self.assert_ok(*self.execute(A))

    def test_flag_default_and_its_bound(self):
        # beta has no bound of its own: the flags' 3.
        held = self.hold(B, 3)
        self.assert_key_limit(*self.execute(B), "beta", 3, "executions")
        self.assert_ok(*self.execute(A))
        self.join(held)
        for _ in range(3):
            self.assertEqual(self.create(B)[0], 200)
        status, body, _ = self.create(B)
        self.assert_key_limit(status, body, "beta", 3, "sessions")

    def test_zero_in_the_file_is_no_per_key_bound(self):
        # key-4 (no id: named after its line) has executions=0: only the server's
        # bounds, here --workers 4 + --queue 4.
        held = self.hold(C, 4)
        queued = [ExecuteCall(self.server, "print('queued')", headers=C) for _ in range(4)]
        for q in queued:
            q.start()
        wait_for(lambda: self.server.health()[1]["queue"]["depth"] >= 4, 20, "a full queue")
        # The server's own bound: its 429, not a key's.
        status, body = self.execute(C)
        self.assertEqual(status, 429, body)
        self.assertIn("queue is full", body["error"]["message"])
        self.assertNotIn("API key", body["error"]["message"])
        self.join(held)
        self.join(queued)
        for _ in range(4):
            self.assertEqual(self.create(C)[0], 200)

    def test_session_bound_is_per_key(self):
        sids = []
        for _ in range(2):
            status, body, sid = self.create(A)
            self.assertEqual(status, 200, body)
            sids.append(sid)
        status, body, _ = self.create(A)
        self.assert_key_limit(status, body, "alpha", 2, "sessions")
        # Another key creates and uses its own.
        status, body, sid_b = self.create(B)
        self.assertEqual(status, 200, body)
        self.assert_ok(*self.post(f"/v1/sessions/{sid_b}:execute", QUICK, B))
        # A delete gives the place back: exactly one.
        self.assertEqual(self.request("DELETE", f"/v1/sessions/{sids[0]}", None, A)[0], 200)
        self.assertEqual(self.create(A)[0], 200)
        self.assert_key_limit(*self.create(A)[:2], "alpha", 2, "sessions")

    def test_sessions_are_the_owners_alone(self):
        status, body, sid = self.create(A)
        self.assertEqual(status, 200, body)
        self.assert_ok(*self.post(f"/v1/sessions/{sid}:execute",
                                  {"parts": [code_part("x = 41")]}, A))
        # An id of the same shape that never existed: what B must get for A's.
        unknown = "0123456789abcdef0123456789abcdef"
        self.assertNotEqual(unknown, sid)

        def same_as_unknown(method, suffix, body=None):
            got = self.request(method, f"/v1/sessions/{sid}{suffix}", body, B)
            want = self.request(method, f"/v1/sessions/{unknown}{suffix}", body, B)
            self.assertEqual(got[0], 404, got)
            self.assertEqual(got[1]["error"]["status"], "NOT_FOUND")
            self.assertEqual(json.dumps(got[1]).replace(sid, unknown), json.dumps(want[1]))

        same_as_unknown("GET", "")
        same_as_unknown("POST", ":execute", QUICK)
        same_as_unknown("DELETE", "")
        # B's calls changed nothing: A's session and its state are there.
        status, body = self.post(f"/v1/sessions/{sid}:execute",
                                 {"parts": [code_part("print(x + 1)")]}, A)
        self.assert_ok(status, body)
        self.assertEqual(results(body)[-1]["output"], "42\n")
        self.assertEqual(self.request("GET", f"/v1/sessions/{sid}", None, A)[0], 200)
        # Once it ended, A is told why; B still learns nothing (no tombstone oracle).
        self.assertEqual(self.request("DELETE", f"/v1/sessions/{sid}", None, A)[0], 200)
        status, body = self.request("GET", f"/v1/sessions/{sid}", None, A)
        self.assertEqual(status, 404)
        self.assertIn("has ended: it was deleted", body["error"]["message"])
        same_as_unknown("GET", "")
        same_as_unknown("POST", ":execute", QUICK)


class ReleaseTest(KeyServerTest):
    """Places come back on every path: a short deadline and idle time make the deaths and
    expiries quick."""

    KEY_FILE = f"alpha {KEY_A} executions=2 sessions=2\nbeta {KEY_B}\n"
    FLAGS = ("--deadline-ms", "1000", "--session-idle-ms", "1500")
    WORKERS = 3

    def at_bound_again(self):
        """alpha runs 2 at once again, not 3; creates 2 sessions, not 3: its counts are
        back at zero (neither left taken nor given back twice)."""
        held = self.hold(A, 2, seconds=0.6)
        self.assert_key_limit(*self.execute(A), "alpha", 2, "executions")
        self.join(held)
        made = [self.create(A) for _ in range(2)]
        self.assertEqual([m[0] for m in made], [200, 200], made)
        self.assert_key_limit(*self.create(A)[:2], "alpha", 2, "sessions")
        for _, _, sid in made:
            self.assertEqual(self.request("DELETE", f"/v1/sessions/{sid}", None, A)[0], 200)

    def test_executions_come_back_after_failures(self):
        bodies = ["raise ValueError('no')", "import time; time.sleep(5)",
                  "import os; os._exit(3)", "while True: pass",
                  "import ctypes; ctypes.string_at(0)"]
        for _ in range(2):
            for code in bodies:
                calls = [ExecuteCall(self.server, code, headers=A) for _ in range(2)]
                for c in calls:
                    c.start()
                for c in calls:
                    c.join(60)
                    self.assertEqual(c.status, 200, (code, c.body, c.error))
                    self.assertNotEqual(results(c.body)[-1]["outcome"], "OUTCOME_OK")
        # Clients gone before the answer (at the bound, mid-sleep).
        for _ in range(3):
            socks = []
            for _ in range(2):
                s = socket.create_connection((self.server.host, self.server.port))
                body = json.dumps({"parts": [code_part("import time; time.sleep(0.5)")]})
                s.sendall((f"POST /v1/execute HTTP/1.1\r\nHost: x\r\nx-goog-api-key: {KEY_A}"
                           f"\r\nContent-Type: application/json\r\nContent-Length: "
                           f"{len(body)}\r\n\r\n{body}").encode())
                socks.append(s)
            time.sleep(0.2)
            for s in socks:
                s.close()
        wait_for(lambda: self.running() == 0, 20, "the abandoned executions ending")
        # Refusals that never ran: bad bodies, unknown sessions, a busy session.
        for _ in range(3):
            self.assertEqual(self.execute(A, body="{not json")[0], 400)
            self.assertEqual(self.post("/v1/sessions/" + "a" * 32 + ":execute", QUICK, A)[0],
                             404)
        status, _, sid = self.create(A)
        busy = ExecuteCall(self.server, "import time; time.sleep(0.8)", headers=A,
                           path=f"/v1/sessions/{sid}:execute")
        busy.start()
        wait_for(lambda: self.request("GET", f"/v1/sessions/{sid}", None, A)[1]["state"]
                 == "RUNNING", 10, "the session busy")
        self.assertEqual(self.post(f"/v1/sessions/{sid}:execute", QUICK, A)[0], 409)
        busy.join(30)
        self.assertEqual(self.request("DELETE", f"/v1/sessions/{sid}", None, A)[0], 200)
        self.at_bound_again()

    def test_sessions_come_back_after_deaths_expiry_and_deletes(self):
        # Killed by a deadline: the session ends with its interpreter.
        for _ in range(2):
            sids = [self.create(A)[2] for _ in range(2)]
            self.assertNotIn(None, sids)
            calls = [ExecuteCall(self.server, "import time; time.sleep(5)", headers=A,
                                 path=f"/v1/sessions/{sid}:execute") for sid in sids]
            for c in calls:
                c.start()
            for c in calls:
                c.join(60)
                self.assertEqual(c.status, 200, c.body)
                self.assertEqual(results(c.body)[-1]["outcome"],
                                 "OUTCOME_DEADLINE_EXCEEDED")
            for sid in sids:
                self.assertEqual(self.request("GET", f"/v1/sessions/{sid}", None, A)[0], 404)
        # Crashed interpreters.
        sids = [self.create(A)[2] for _ in range(2)]
        for sid in sids:
            self.post(f"/v1/sessions/{sid}:execute",
                      {"parts": [code_part("import os; os._exit(1)")]}, A)
        # (The session is reaped, and its place given back, by the executor's next sweep
        # or the next call naming it, just after that reply: ask, so that it is.)
        for sid in sids:
            self.assertEqual(self.request("GET", f"/v1/sessions/{sid}", None, A)[0], 404)
        # Expired: unused past --session-idle-ms.
        sids = [self.create(A)[2] for _ in range(2)]
        self.assertNotIn(None, sids)
        wait_for(lambda: all(self.request("GET", f"/v1/sessions/{s}", None, A)[0] == 404
                             for s in sids), 20, "the sessions expiring", interval=0.2)
        # Another key's delete attempts take nothing of alpha's away, nor give any back.
        sids = [self.create(A)[2] for _ in range(2)]
        for sid in sids:
            self.assertEqual(self.request("DELETE", f"/v1/sessions/{sid}", None, B)[0], 404)
        self.assert_key_limit(*self.create(A)[:2], "alpha", 2, "sessions")
        for sid in sids:
            self.assertEqual(self.request("DELETE", f"/v1/sessions/{sid}", None, A)[0], 200)
        self.at_bound_again()


class KeyFileTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pyexecd-key-limits-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_bad_options_name_file_and_line(self):
        emax = LIMITS["LIMIT_KEY_EXECUTIONS_MAX"]
        smax = LIMITS["LIMIT_KEY_SESSIONS_MAX"]
        good = f"a {KEY_A}\n"
        for line, why in ((f"b {KEY_B} executions=x", "bad executions="),
                          (f"b {KEY_B} executions=-1", "bad executions="),
                          (f"b {KEY_B} executions=", "bad executions="),
                          (f"b {KEY_B} executions={emax + 1}", f"to {emax}"),
                          (f"b {KEY_B} sessions={smax + 1}", f"to {smax}"),
                          (f"b {KEY_B} sessions=1 sessions=2", "sessions= given twice"),
                          (f"b {KEY_B} extra sessions=1", "more than two words"),
                          (f"b {KEY_B} sessions=1 executions=1 x", "more than two words")):
            with self.subTest(line=line.replace(KEY_B, "KEY")):
                path = write(os.path.join(self.tmp, "keys"), f"# c\n{good}\n{line}\n")
                err = start_refused(self, "--listen", "127.0.0.1:0", "--api-key-file", path)
                self.assertIn(f"--api-key-file {path}:4: ", err)
                self.assertIn(why, err)
                self.assertNotIn(KEY_B, err)

    def test_flags_need_keys_and_bounds(self):
        err = start_refused(self, "--listen", "127.0.0.1:0", "--key-max-executions", "2")
        self.assertIn("need --api-key-file", err)
        keys = write(os.path.join(self.tmp, "keys"), f"{KEY_A}\n")
        over = LIMITS["LIMIT_KEY_SESSIONS_MAX"] + 1
        err = start_refused(self, "--listen", "127.0.0.1:0", "--api-key-file", keys,
                            "--key-max-sessions", str(over))
        self.assertIn("--key-max-sessions", err)

    def test_options_at_their_bounds_load(self):
        emax = LIMITS["LIMIT_KEY_EXECUTIONS_MAX"]
        smax = LIMITS["LIMIT_KEY_SESSIONS_MAX"]
        # A key alone with options (its id is then key-N), and the options in any order.
        path = write(os.path.join(self.tmp, "keys"),
                     f"{KEY_A} sessions={smax} executions={emax}\n"
                     f"{KEY_B} executions=1 sessions=0\n")
        with Server("--api-key-file", path, workers=1, pool=1) as s:
            held = ExecuteCall(s, "import time; time.sleep(2)", headers=B)
            held.start()
            wait_for(lambda: s.health()[1]["workers"]["running"] >= 1, 20, "B's execution")
            status, body, _ = s.request("POST", "/v1/execute", QUICK, headers=B)
            self.assertEqual(status, 429, body)
            self.assertIn("API key key-2 already has its maximum of 1 executions",
                          body["error"]["message"])
            held.join(30)
            self.assertEqual(held.status, 200)
            status, body, _ = s.request("POST", "/v1/execute", QUICK, headers=A)
            self.assertEqual(status, 200, body)


if __name__ == "__main__":
    unittest.main()
