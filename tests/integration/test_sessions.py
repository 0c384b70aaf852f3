"""Sessions: one sandboxed interpreter kept across requests.

POST /v1/sessions creates one, POST /v1/sessions/<id>:execute runs blocks in it, GET and
DELETE /v1/sessions/<id> show and end it. Three servers:

  SessionsTest   --max-sessions 4, --deadline-ms 2000, --replica-id r1: the API, state
                 across calls, ends (deadline, crash, exit, DELETE), the session limit, 409,
                 isolation, another replica's ids.
  ReplicaIdTest  session ids <replica>.<32 hex>: the longest replica id, bad ones, none,
                 the host name's default.
  ExpiryTest     --session-idle-ms 1500, --session-lifetime-ms 4000: idle and lifetime.
  ChurnTest      --session-idle-ms 300, --max-sessions 200: 200 sessions dropped without
                 DELETE leave no process, file, mount or descriptor behind.
"""

import base64
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import unittest
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (OUTSIDE_UID_CODE, Server, ServerTestCase, code_part,  # noqa: E402
                     fd_count, pid_alive, processes_with_uid_in, results, wait_uid_gone)
from limits import LIMITS  # noqa: E402

# A session id: 32 hex digits, after the replica id of the server that made it and a dot.
REPLICA_RE = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
ID_RE = re.compile(rf"^(?:{REPLICA_RE}\.)?[0-9a-f]{{32}}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def parse_time(text):
    """An RFC 3339 UTC timestamp with milliseconds -> seconds since the epoch."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def wait_for(predicate, timeout, what, interval=0.02):
    """Polls predicate() until truthy; returns its value or fails with `what`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def files_under(path):
    """Every file and directory below path (relative names)."""
    found = []
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            found.append(os.path.relpath(os.path.join(root, n), path))
    return found


def host_mounts_mentioning(*words):
    with open("/proc/self/mountinfo") as f:
        return [l.rstrip("\n") for l in f if any(w in l for w in words)]


class SessionCase(ServerTestCase):
    """Helpers shared by the session test classes."""

    def create(self, cleanup=True):
        """POST /v1/sessions; asserts 200 and returns the id (deleted after the test)."""
        status, body, _ = self.server.request("POST", "/v1/sessions", {})
        self.assertEqual(status, 200, body)
        m = re.fullmatch(rf"sessions/((?:{REPLICA_RE}\.)?[0-9a-f]{{32}})", body.get("name", ""))
        self.assertIsNotNone(m, f"bad session name in {body}")
        sid = m.group(1)
        if cleanup:
            self.addCleanup(self.server.request, "DELETE", f"/v1/sessions/{sid}")
        return sid

    def call(self, sid, *codes, files=(), timeout=60):
        """POST /v1/sessions/<sid>:execute with inline files then code blocks: (status, body)."""
        parts = [{"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}
                 for mime, data in files]
        parts += [code_part(c) for c in codes]
        status, body, _ = self.server.request(
            "POST", f"/v1/sessions/{sid}:execute", {"parts": parts}, timeout=timeout)
        return status, body

    def run_in(self, sid, *codes, files=()):
        """Runs blocks in the session, asserting 200; returns the codeExecutionResults."""
        status, body = self.call(sid, *codes, files=files)
        self.assertEqual(status, 200, body)
        res = results(body)
        self.assertEqual(len(res), len(codes), body)
        return res

    def out(self, sid, code):
        """Runs one block, asserts OUTCOME_OK, returns its output."""
        r = self.run_in(sid, code)[0]
        self.assertEqual(r["outcome"], "OUTCOME_OK", r)
        return r.get("output", "")

    def outside_uid(self, sid):
        return int(self.out(sid, OUTSIDE_UID_CODE).strip())

    def get(self, sid):
        status, body, _ = self.server.request("GET", f"/v1/sessions/{sid}")
        return status, body

    def sessions_health(self):
        status, h = self.server.health()
        self.assertEqual(status, 200, h)
        return h["sessions"]

    def wait_active(self, n, timeout=1.0):
        """Waits (briefly: /healthz is a snapshot the executor publishes) for active == n."""
        end = time.monotonic() + timeout
        while True:
            h = self.sessions_health()
            if h["active"] == n or time.monotonic() >= end:
                self.assertEqual(h["active"], n, h)
                return h
            time.sleep(0.01)

    def assert_error(self, status, body, code, grpc, contains=None):
        self.assertEqual(status, code, body)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(body.get("error", {}).get("code"), code, body)
        self.assertEqual(body["error"].get("status"), grpc, body)
        if contains:
            self.assertIn(contains, body["error"].get("message", ""), body)

    def assert_ended(self, sid, why):
        """GET, :execute and DELETE all answer 404 'has ended: <why>'."""
        for method, path, body in (("GET", f"/v1/sessions/{sid}", None),
                                   ("POST", f"/v1/sessions/{sid}:execute",
                                    {"parts": [code_part("print(1)")]}),
                                   ("DELETE", f"/v1/sessions/{sid}", None)):
            status, reply, _ = self.server.request(method, path, body)
            self.assert_error(status, reply, 404, "NOT_FOUND",
                              f"sessions/{sid} has ended: {why}")


class SessionsTest(SessionCase):
    SERVER_FLAGS = ("--max-sessions", "4", "--deadline-ms", "2000", "--replica-id", "r1")
    WORKERS = 2
    POOL = 2
    MAX = 4

    def setUp(self):
        # Each test starts with no session alive (each deletes its own in cleanup).
        wait_for(lambda: self.sessions_health()["active"] == 0, 10,
                 "the previous test's sessions to end")

    # --- create and get ----------------------------------------------------------------

    def test_create_returns_named_session(self):
        """POST /v1/sessions answers a fresh session resource: r1.<32 hex> name, RFC 3339 times, ACTIVE, 0 executions."""
        before = time.time()
        status, body, headers = self.server.request("POST", "/v1/sessions", {})
        self.assertEqual(status, 200, body)
        self.assertIn("application/json", headers.get("Content-Type", ""))
        sid = body["name"].split("/", 1)[1]
        self.addCleanup(self.server.request, "DELETE", f"/v1/sessions/{sid}")
        self.assertTrue(body["name"].startswith("sessions/"), body)
        self.assertRegex(sid, r"^r1\.[0-9a-f]{32}$")
        self.assertEqual(headers.get("X-Pyexecd-Replica"), "r1", headers)
        self.assertEqual(set(body), {"name", "state", "createTime", "lastUseTime",
                                     "expireTime", "executions", "memoryBytes"}, body)
        self.assertEqual(body["state"], "ACTIVE")
        self.assertEqual(body["executions"], 0)
        for k in ("createTime", "lastUseTime", "expireTime"):
            self.assertRegex(body[k], TIME_RE, k)
        created = parse_time(body["createTime"])
        self.assertLessEqual(abs(created - before), 5, body)
        # Default idle timeout (10 min) is sooner than the default lifetime (60 min).
        self.assertAlmostEqual(parse_time(body["expireTime"]) - created, 600, delta=1, msg=body)

    def test_ids_are_distinct_random_hex(self):
        """Four sessions get four different 32-lowercase-hex ids that differ in most digit positions (not a counter)."""
        ids = [self.create() for _ in range(self.MAX)]
        for sid in ids:
            self.assertRegex(sid, ID_RE)
        ids = [sid.split(".")[-1] for sid in ids]   # the random part
        self.assertEqual(len(set(ids)), len(ids), ids)
        # Not a counter: ids differ in most positions (random 128-bit ids share ~2 of 32).
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                same = sum(x == y for x, y in zip(ids[a], ids[b]))
                self.assertLess(same, 16, f"{ids[a]} and {ids[b]} look related")

    def test_healthz_counts_sessions(self):
        """/healthz sessions.active follows create and DELETE; sessions.max is --max-sessions."""
        h = self.sessions_health()
        self.assertEqual(h, {"active": 0, "max": self.MAX})
        a = self.create()
        b = self.create()
        self.assertEqual(self.wait_active(2), {"active": 2, "max": self.MAX})
        status, body, _ = self.server.request("DELETE", f"/v1/sessions/{a}")
        self.assertEqual((status, body), (200, {}))
        self.wait_active(1)
        self.server.request("DELETE", f"/v1/sessions/{b}")
        self.wait_active(0)

    def test_get_shows_state(self):
        """GET shows ACTIVE, the execution count, lastUseTime moved by execute (not by GET), and memoryBytes growing with use."""
        sid = self.create()
        status, first = self.get(sid)
        self.assertEqual(status, 200, first)
        self.assertEqual(first["name"], f"sessions/{sid}")
        self.assertEqual(first["executions"], 0)
        self.assertAlmostEqual(parse_time(first["lastUseTime"]), parse_time(first["createTime"]),
                               delta=0.0015, msg=first)
        time.sleep(0.05)
        self.run_in(sid, "x = 1")
        self.run_in(sid, "big = bytearray(64 * 1024 * 1024)", "y = 2")
        status, after = self.get(sid)
        self.assertEqual(status, 200, after)
        self.assertEqual(after["state"], "ACTIVE")
        self.assertEqual(after["executions"], 2, after)   # requests, not blocks
        self.assertEqual(after["createTime"], first["createTime"])
        self.assertGreater(parse_time(after["lastUseTime"]), parse_time(first["lastUseTime"]))
        self.assertGreater(parse_time(after["expireTime"]), parse_time(first["expireTime"]))
        self.assertGreater(first["memoryBytes"], 0, first)
        # The 64 MiB it now holds shows in its memory.
        self.assertGreaterEqual(after["memoryBytes"] - first["memoryBytes"], 60 * 2**20,
                                (first, after))
        # GET is no use: it moves neither lastUseTime nor the count.
        time.sleep(0.05)
        status, again = self.get(sid)
        self.assertEqual(again["executions"], after["executions"])
        self.assertAlmostEqual(parse_time(again["lastUseTime"]), parse_time(after["lastUseTime"]),
                               delta=0.0015, msg=(after, again))

    def test_timestamps_stable_and_ordered(self):
        """Without use, 20 GETs show the same lastUseTime and expireTime, and lastUseTime is never before createTime."""
        sid = self.create()
        seen = set()
        for _ in range(20):
            status, info = self.get(sid)
            self.assertEqual(status, 200, info)
            seen.add((info["createTime"], info["lastUseTime"], info["expireTime"]))
        before_create = [t for t in seen if t[1] < t[0]]
        self.assertEqual((len(seen), before_create), (1, []),
                         f"(createTime, lastUseTime, expireTime) over 20 GETs of an unused "
                         f"session: {sorted(seen)}")

    # --- state across calls --------------------------------------------------------------

    def test_state_persists_across_calls(self):
        """Variables, functions, imports, files and the cwd of one call are there in the next."""
        sid = self.create()
        self.assertEqual(self.out(sid, (
            "import json, os\n"
            "counter = 41\n"
            "def twice(v): return 2 * v\n"
            "open('notes.txt', 'w').write('kept')\n"
            "os.mkdir('sub'); open('sub/deep.bin', 'wb').write(b'\\x00' * 10)\n"
            "print(os.getcwd())\n")), "/root\n")
        self.assertEqual(self.out(sid, (
            "counter += 1\n"
            "print(counter, twice(counter), json.dumps([1]), os.getcwd())\n"
            "print(open('notes.txt').read(), os.path.getsize('sub/deep.bin'))\n")),
            "42 84 [1] /root\nkept 10\n")
        self.assertEqual(self.out(sid, "print(counter, sorted(os.listdir('.')))"),
                         "42 ['notes.txt', 'sub']\n")

    def test_same_interpreter_process(self):
        """Every call of a session runs in the same worker (same host uid and process)."""
        sid = self.create()
        uid = self.outside_uid(sid)
        procs = processes_with_uid_in(uid, uid + 1)
        self.assertEqual(len(procs), 1, procs)
        for _ in range(3):
            self.assertEqual(self.outside_uid(sid), uid)
        self.assertEqual(processes_with_uid_in(uid, uid + 1), procs)

    def test_input_files_keep_numbering(self):
        """Input files are numbered across the session: input_file_0 first, then 1 and 2, and all stay."""
        sid = self.create()
        r = self.run_in(sid, "import os; print(sorted(os.listdir('.')))",
                        files=[("text/csv", b"a,b\n1,2\n")])
        self.assertEqual(r[0]["output"], "['input_file_0.csv']\n", r)
        r = self.run_in(sid, "print(sorted(os.listdir('.')))",
                        files=[("text/plain", b"second"), ("text/x-python", b"[3]")])
        self.assertEqual(r[0]["output"],
                         "['input_file_0.csv', 'input_file_1.txt', 'input_file_2.py']\n", r)
        self.assertEqual(self.out(sid, (
            "print(open('input_file_0.csv').read().split()[1], open('input_file_1.txt').read(),"
            " open('input_file_2.py').read())")), "1,2 second [3]\n")
        # A call without files claims no number.
        self.run_in(sid, "pass")
        r = self.run_in(sid, "print(sorted(f for f in os.listdir('.') if f.endswith('.txt')))",
                        files=[("text/plain", b"third")])
        self.assertEqual(r[0]["output"], "['input_file_1.txt', 'input_file_3.txt']\n", r)

    def test_input_file_name_taken_is_a_400_and_the_session_lives(self):
        """A file (or a symlink) the code made under the next input file's name: 400 naming it, session kept."""
        sid = self.create()
        self.run_in(sid, "import os\nopen('input_file_0.csv', 'w').write('mine')\nstate = 7")
        status, body = self.call(sid, "print('must not run')",
                                 files=[("text/csv", b"a,b\n"), ("text/plain", b"x")])
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["status"], "INVALID_ARGUMENT", body)
        self.assertIn("input_file_0.csv", body["error"]["message"])
        # The session is untouched: its state, its own file, and nothing half-written.
        self.assertEqual(self.out(sid, "print(state, sorted(os.listdir('.')))"),
                         "7 ['input_file_0.csv']\n")

    def test_input_file_collision_on_a_later_file(self):
        """The second file collides: the first is removed again, nothing runs, numbering is unchanged."""
        sid = self.create()
        self.run_in(sid, "import os\nos.symlink('/etc/passwd', 'input_file_1.csv')\nn = 1")
        status, body = self.call(sid, "n = 2", files=[("text/plain", b"x"),
                                                      ("text/csv", b"a,b\n")])
        self.assertEqual(status, 400, body)
        self.assertIn("input_file_1.csv", body["error"]["message"])
        self.assertIn("session is kept", body["error"]["message"])
        self.assertEqual(self.out(sid, "print(n, sorted(os.listdir('.')))"),
                         "1 ['input_file_1.csv']\n")
        # The link was not followed: /etc/passwd (read-only anyway) is as it was, and
        # once the code removes its link the same call goes through with the same names.
        self.run_in(sid, "os.unlink('input_file_1.csv')")
        r = self.run_in(sid, "print(sorted(os.listdir('.')), open('input_file_1.csv').read())",
                        files=[("text/plain", b"x"), ("text/csv", b"a,b\n")])
        self.assertEqual(r[0]["output"], "['input_file_0.txt', 'input_file_1.csv'] a,b\n\n", r)

    def test_input_file_into_a_full_work_area(self):
        """The code filled its work dir's tmpfs: an input file is a 400 saying so, the session is kept."""
        sid = self.create()
        self.run_in(sid, (
            "import os\nchunk = b'\\0' * (1 << 20)\nf = open('fill.bin', 'wb', buffering=0)\n"
            "try:\n    while True:\n        f.write(chunk)\nexcept OSError as e:\n"
            "    full = e.errno\nf.close()\n"
            "try:\n    open('tail.bin', 'wb', buffering=0).write(b'\\0' * 4096)\n"
            "except OSError:\n    pass\n"))
        status, body = self.call(sid, "print('must not run')", files=[("text/csv", b"a" * 4096)])
        self.assertEqual(status, 400, body)
        self.assertIn("does not fit", body["error"]["message"])
        self.assertIn("input_file_0.csv", body["error"]["message"])
        self.assertEqual(self.out(sid, "import errno\nprint(errno.errorcode[full], "
                                       "sorted(os.listdir('.')))"),
                         "ENOSPC ['fill.bin', 'tail.bin']\n")
        # Room made, the same call runs, under the same name.
        self.run_in(sid, "os.unlink('fill.bin')")
        r = self.run_in(sid, "print(len(open('input_file_0.csv').read()))",
                        files=[("text/csv", b"a" * 4096)])
        self.assertEqual(r[0]["output"], "4096\n", r)

    def test_failure_then_state_continues(self):
        """An exception fails its block only: later blocks run and the next call still has the state."""
        sid = self.create()
        self.run_in(sid, "items = [1, 2]")
        r = self.run_in(sid, "items.append(3)\nraise ValueError('boom')", "items.append(4)")
        self.assertEqual(r[0]["outcome"], "OUTCOME_FAILED", r)
        self.assertIn("ValueError: boom", r[0]["output"])
        self.assertEqual(r[1]["outcome"], "OUTCOME_OK", r)
        r = self.run_in(sid, "print(items)")
        self.assertEqual(r[0], {"outcome": "OUTCOME_OK", "output": "[1, 2, 3, 4]\n"})
        status, info = self.get(sid)
        self.assertEqual((status, info["executions"]), (200, 3), info)

    def test_invalid_execute_body_leaves_session_alone(self):
        """A malformed :execute body gets 400 like /v1/execute and neither runs nor ends the session."""
        sid = self.create()
        self.run_in(sid, "v = 'still'")
        for bad in ("{", {"parts": []}, {"parts": [{"executableCode": {"language": "COBOL",
                                                                        "code": "1"}}]},
                    {"contents": []}):
            status, body, _ = self.server.request("POST", f"/v1/sessions/{sid}:execute", bad)
            self.assert_error(status, body, 400, "INVALID_ARGUMENT")
            s1, b1, _ = self.server.request("POST", "/v1/execute", bad)
            self.assertEqual(s1, 400, f"/v1/execute answered {s1} {b1} to {bad!r}")
        self.assertEqual(self.out(sid, "print(v)"), "still\n")
        self.assertEqual(self.get(sid)[1]["executions"], 2)

    def test_memory_limit_applies_per_session(self):
        """A 3 GiB allocation in a session fails with MemoryError (limit MEMORY) and the session lives on."""
        sid = self.create()
        self.run_in(sid, "keep = 'yes'")
        status, body = self.call(sid, "blob = bytearray(3 * 2**30)")
        self.assertEqual(status, 200, body)
        r = results(body)[0]
        self.assertEqual(r["outcome"], "OUTCOME_FAILED", r)
        self.assertIn("MemoryError", r["output"])
        meta = body.get("executionMetadata", {})
        self.assertEqual(meta.get("limitReached"), "MEMORY", body)
        self.assertNotIn("sessionEnded", meta, body)
        self.assertEqual(self.out(sid, "print(keep, 'blob' in dir())"), "yes False\n")

    # --- what ends a session ---------------------------------------------------------------

    def test_each_execution_has_its_own_deadline(self):
        """Two 1.2 s calls pass under a 2 s deadline though they total 2.4 s; the session lives on."""
        sid = self.create()
        for i in range(2):
            r = self.run_in(sid, f"import time; time.sleep(1.2); n = {i}")
            self.assertEqual(r[0]["outcome"], "OUTCOME_OK", r)
        self.assertEqual(self.out(sid, "print(n)"), "1\n")

    def test_deadline_ends_session(self):
        """A block past the deadline: DEADLINE_EXCEEDED with sessionEnded, then 404 'has ended', worker gone."""
        sid = self.create()
        uid = self.outside_uid(sid)
        self.run_in(sid, "x = 1")
        t0 = time.monotonic()
        status, body = self.call(sid, "print('before', flush=True)\nimport time; time.sleep(30)",
                                 "print('never')")
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 200, body)
        r = results(body)
        self.assertEqual(r[0]["outcome"], "OUTCOME_DEADLINE_EXCEEDED", r)
        self.assertEqual(r[0].get("output"), "before\n", r)
        self.assertNotEqual(r[1]["outcome"], "OUTCOME_OK", r)
        self.assertEqual(body.get("executionMetadata"),
                         {"limitReached": "DEADLINE", "sessionEnded": True}, body)
        self.assertLess(elapsed, 2.0 + 2.0, "not cut at the 2 s deadline")
        self.assert_ended(sid, "a code block ran past its deadline")
        self.assertEqual(wait_uid_gone(uid), [], "the session's worker survived its deadline")
        self.wait_active(0)

    def test_segfault_ends_session(self):
        """ctypes.string_at(0) kills the interpreter: FAILED, INTERPRETER_CRASH, sessionEnded, later 404."""
        sid = self.create()
        uid = self.outside_uid(sid)
        status, body = self.call(sid, "import ctypes; ctypes.string_at(0)")
        self.assertEqual(status, 200, body)
        r = results(body)[0]
        self.assertEqual(r["outcome"], "OUTCOME_FAILED", r)
        self.assertIn("SIGSEGV", r["output"])
        self.assertEqual(body.get("executionMetadata"),
                         {"limitReached": "INTERPRETER_CRASH", "sessionEnded": True}, body)
        self.assert_ended(sid, "its interpreter crashed")
        self.assertEqual(wait_uid_gone(uid), [])

    def test_exit_ends_session(self):
        """os._exit(3) ends the session: FAILED with the status, sessionEnded, later 404 'has ended'."""
        sid = self.create()
        uid = self.outside_uid(sid)
        status, body = self.call(sid, "import os; os._exit(3)", "print('not run')")
        self.assertEqual(status, 200, body)
        r = results(body)
        self.assertEqual(r[0]["outcome"], "OUTCOME_FAILED", r)
        self.assertIn("exited with status 3", r[0]["output"])
        self.assertNotEqual(r[1]["outcome"], "OUTCOME_OK", r)
        self.assertTrue(body.get("executionMetadata", {}).get("sessionEnded"), body)
        self.assert_ended(sid, "its interpreter")
        self.assertEqual(wait_uid_gone(uid), [])

    def test_exit_zero_ends_session(self):
        """os._exit(0) stops the interpreter as asked: its block is OK, the session ends ('its interpreter exited')."""
        sid = self.create()
        uid = self.outside_uid(sid)
        status, body = self.call(sid, "print('bye', flush=True); import os; os._exit(0)")
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[0], {"outcome": "OUTCOME_OK", "output": "bye\n"}, body)
        self.assertEqual(body.get("executionMetadata"), {"sessionEnded": True}, body)
        self.assert_ended(sid, "its interpreter exited")
        self.assertEqual(wait_uid_gone(uid), [])

    def test_delete_removes_worker_and_files(self):
        """DELETE answers {}; the worker's uid has no process left, its files are gone, later calls 404."""
        sid = self.create(cleanup=False)
        self.run_in(sid, "open('mine.txt', 'w').write('x' * 1000)\nimport os; os.mkdir('d')")
        uid = self.outside_uid(sid)
        procs = processes_with_uid_in(uid, uid + 1)
        self.assertEqual(len(procs), 1, procs)
        pid = procs[0][0]
        # The work dir is a tmpfs in the worker's mount namespace: seen from the host
        # through /proc/<pid>/root while the worker lives.
        root_view = f"/proc/{pid}/root/root"
        try:
            seen = sorted(os.listdir(root_view))
        except OSError:
            seen = None
        if seen is not None:
            self.assertEqual(seen, ["d", "mine.txt"])
        before = self.wait_active(1)["active"]
        status, body, _ = self.server.request("DELETE", f"/v1/sessions/{sid}")
        self.assertEqual((status, body), (200, {}))
        self.assertEqual(wait_uid_gone(uid), [], "the deleted session's worker survived")
        self.assertFalse(pid_alive(pid))
        self.assertFalse(os.path.exists(root_view))
        self.assertEqual(files_under(os.path.join(self.server.state_dir, "work")), [])
        self.assertEqual(host_mounts_mentioning(self.server.state_dir), [])
        self.wait_active(before - 1)
        self.assert_ended(sid, "it was deleted")
        # A new session starts empty.
        other = self.create()
        self.assertEqual(self.out(other, "import os; print(os.listdir('.'))"), "[]\n")

    def test_delete_during_execution(self):
        """DELETE while a call runs: DELETE answers {}, the running call gets 404, the worker is gone."""
        sid = self.create(cleanup=False)
        uid = self.outside_uid(sid)
        box = {}

        def run():
            box["reply"] = self.call(sid, "import time; time.sleep(10)")

        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_for(lambda: self.get(sid)[1].get("state") == "RUNNING", 10, "RUNNING")
        status, body, _ = self.server.request("DELETE", f"/v1/sessions/{sid}")
        self.assertEqual((status, body), (200, {}))
        t.join(10)
        self.assertFalse(t.is_alive(), "the running call got no reply after DELETE")
        status, body = box["reply"]
        self.assert_error(status, body, 404, "NOT_FOUND", "deleted")
        self.assertEqual(wait_uid_gone(uid), [])
        self.assert_ended(sid, "it was deleted")

    # --- limits and concurrency --------------------------------------------------------------

    def test_session_limit(self):
        """At --max-sessions all creates succeed; one past it gets 429 RESOURCE_EXHAUSTED; a DELETE frees a place."""
        ids = [self.create() for _ in range(self.MAX)]
        self.assertEqual(self.wait_active(self.MAX), {"active": self.MAX, "max": self.MAX})
        status, body, _ = self.server.request("POST", "/v1/sessions", {})
        self.assert_error(status, body, 429, "RESOURCE_EXHAUSTED", f"maximum of {self.MAX}")
        self.wait_active(self.MAX)
        # Every session at the limit works, and plain requests still run.
        for i, sid in enumerate(ids):
            self.assertEqual(self.out(sid, f"print({i})"), f"{i}\n")
        self.assertEqual(results(self.server.run("print('plain')"))[0]["output"], "plain\n")
        status, body, _ = self.server.request("DELETE", f"/v1/sessions/{ids[0]}")
        self.assertEqual(status, 200, body)
        self.create()
        status, body, _ = self.server.request("POST", "/v1/sessions", {})
        self.assert_error(status, body, 429, "RESOURCE_EXHAUSTED")

    def test_concurrent_call_gets_409(self):
        """A second call while one runs gets 409 ABORTED at once; GET says RUNNING; the first completes."""
        sid = self.create()
        box = {}

        def run():
            box["reply"] = self.call(sid, "import time; time.sleep(1.5); first = 'done'\n"
                                          "print(first)")

        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_for(lambda: self.get(sid)[1].get("state") == "RUNNING", 10, "RUNNING")
        t0 = time.monotonic()
        status, body = self.call(sid, "print('second')")
        elapsed = time.monotonic() - t0
        self.assert_error(status, body, 409, "ABORTED", "one at a time")
        self.assertLess(elapsed, 0.5, "the second call waited instead of being refused")
        self.assertTrue(t.is_alive(), "the first call ended before the second was refused")
        t.join(10)
        status, body = box["reply"]
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[0], {"outcome": "OUTCOME_OK", "output": "done\n"})
        status, info = self.get(sid)
        self.assertEqual((info["state"], info["executions"]), ("ACTIVE", 1), info)
        self.assertEqual(self.out(sid, "print(first)"), "done\n")

    # --- isolation between sessions ------------------------------------------------------------

    def test_sessions_isolated(self):
        """Session B sees none of A's files, nor A's process; B's kill and /proc/<pid>/mem of A fail; A is intact."""
        a, b = self.create(), self.create()
        token = secrets.token_hex(16)
        self.run_in(a, (
            f"secret = '{token}'\n"
            f"for p in ('/root/a.txt', '/tmp/a.txt', '/dev/shm/a.txt', '/var/tmp/a.txt'):\n"
            f"    try: open(p, 'w').write(secret)\n"
            f"    except OSError: pass\n"))
        ua, ub = self.outside_uid(a), self.outside_uid(b)
        self.assertNotEqual(ua, ub)
        pa = processes_with_uid_in(ua, ua + 1)
        self.assertEqual(len(pa), 1, pa)
        apid = pa[0][0]
        probe = (
            "import os, signal\n"
            "hits = []\n"
            "for d in ('/root', '/tmp', '/dev/shm', '/var/tmp'):\n"
            "    try:\n"
            "        for root, _, files in os.walk(d):\n"
            "            for f in files:\n"
            "                try:\n"
            f"                    if '{token}' in open(os.path.join(root, f), errors='replace').read():\n"
            "                        hits.append(os.path.join(root, f))\n"
            "                except OSError: pass\n"
            "    except OSError: pass\n"
            "print('files', hits)\n"
            "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
            f"print('sees', {apid} in pids, len(pids))\n"
            f"for what, fn in (('kill', lambda: os.kill({apid}, signal.SIGKILL)),\n"
            f"                 ('mem', lambda: open('/proc/{apid}/mem', 'rb').read(1)),\n"
            f"                 ('environ', lambda: open('/proc/{apid}/environ', 'rb').read())):\n"
            "    try:\n"
            "        fn(); print(what, 'ok')\n"
            "    except OSError as e:\n"
            "        print(what, 'refused', type(e).__name__)\n")
        out = self.out(b, probe).splitlines()
        self.assertEqual(out[0], "files []", out)
        self.assertTrue(out[1].startswith("sees False"), out)
        self.assertEqual([l.split()[:2] for l in out[2:]],
                         [["kill", "refused"], ["mem", "refused"], ["environ", "refused"]], out)
        time.sleep(0.1)
        self.assertTrue(pid_alive(apid), "session A's worker died after B's kill attempt")
        self.assertEqual(self.out(a, "print(secret == open('/root/a.txt').read())"), "True\n")
        # And the other way round: A does not see B's variables either.
        self.run_in(b, "only_b = 1")
        self.assertEqual(self.out(a, "print('only_b' in globals())"), "False\n")

    # --- routes and errors -----------------------------------------------------------------------

    def test_unknown_and_malformed_ids_404(self):
        """Well-formed unknown ids and malformed ids get 404 NOT_FOUND on GET, DELETE and :execute."""
        unknown = secrets.token_hex(16)
        bad = ["abc", unknown[:31], unknown + "0", unknown.upper(), "g" * 32,
               unknown[:16] + "-" + unknown[17:], "%20" + unknown[3:], f"sessions%2F{unknown}",
               # and the replica part: not a DNS label, no dot, an empty one, too long
               f"R1.{unknown}", f"-r1.{unknown}", f"r1-.{unknown}", f"r_1.{unknown}",
               f"r1{unknown}", f".{unknown}", f"r1..{unknown}", f"a.b.{unknown}",
               "a" * (LIMITS["LIMIT_REPLICA_ID_CHARS"] + 1) + "." + unknown]
        known = [(unknown, "was not found"), (f"r1.{unknown}", "was not found")]
        for sid, contains in known + [(b, "No such session") for b in bad]:
            for method, path, body in (("GET", f"/v1/sessions/{sid}", None),
                                       ("DELETE", f"/v1/sessions/{sid}", None),
                                       ("POST", f"/v1/sessions/{sid}:execute",
                                        {"parts": [code_part("print(1)")]})):
                with self.subTest(method=method, path=path):
                    status, reply, _ = self.server.request(method, path, body)
                    self.assert_error(status, reply, 404, "NOT_FOUND", contains)
        for path in ("/v1/sessions/", f"/v1/sessions/{unknown}/", f"/v1/sessions/{unknown}:run",
                     f"/v1/sessions/sessions/{unknown}"):
            with self.subTest(path=path):
                status, reply, _ = self.server.request("GET", path)
                self.assert_error(status, reply, 404, "NOT_FOUND")
        self.wait_active(0)

    def test_another_replicas_session_404_names_its_owner(self):
        """A well-formed id of another replica (r2.<hex>, even the hex of one of ours) is 404
        NOT_FOUND naming r2, on GET, DELETE and :execute; ours is untouched."""
        sid = self.create()
        self.assertEqual(self.out(sid, "x = 41; print(x)"), "41\n")
        theirs = "r2." + sid.split(".")[1]
        for method, path, body in (("GET", f"/v1/sessions/{theirs}", None),
                                   ("DELETE", f"/v1/sessions/{theirs}", None),
                                   ("POST", f"/v1/sessions/{theirs}:execute",
                                    {"parts": [code_part("print(x + 1)")]})):
            with self.subTest(method=method):
                status, reply, _ = self.server.request(method, path, body)
                self.assert_error(status, reply, 404, "NOT_FOUND",
                                  f"sessions/{theirs} belongs to replica r2")
                self.assertIn("route it there", reply["error"]["message"])
        self.assertEqual(self.out(sid, "print(x + 1)"), "42\n")
        status, info = self.get(sid)
        self.assertEqual((status, info["executions"]), (200, 2), info)

    def test_wrong_methods_405(self):
        """Wrong methods get 405 with an Allow header: /v1/sessions, /v1/sessions/<id>, and :execute."""
        sid = self.create()
        unknown = secrets.token_hex(16)
        cases = [("GET", "/v1/sessions", "POST"), ("DELETE", "/v1/sessions", "POST"),
                 ("PUT", "/v1/sessions", "POST")]
        for i in (sid, unknown):
            cases += [(m, f"/v1/sessions/{i}", "GET, DELETE") for m in ("POST", "PUT", "PATCH")]
            cases += [(m, f"/v1/sessions/{i}:execute", "POST") for m in ("GET", "DELETE", "PUT")]
        for method, path, allow in cases:
            with self.subTest(method=method, path=path):
                status, body, headers = self.server.request(method, path)
                self.assertEqual(status, 405, body)
                self.assertEqual(body["error"]["code"], 405, body)
                self.assertEqual(headers.get("Allow"), allow, headers)
        # None of that touched the session.
        status, info = self.get(sid)
        self.assertEqual((status, info["executions"]), (200, 0), info)
        self.wait_active(1)

    def test_create_body_must_be_empty(self):
        """A create body with fields (or not a JSON object) is 400 and creates nothing; empty and {} work."""
        for body in ({"ttl": "60s"}, {"name": "sessions/" + "0" * 32}, [], "[1]", "nope",
                     '{"a":', "null", "{} {}"):
            with self.subTest(body=body):
                status, reply, _ = self.server.request("POST", "/v1/sessions", body)
                self.assert_error(status, reply, 400, "INVALID_ARGUMENT")
        status, reply, _ = self.server.request("POST", "/v1/sessions", {"ttl": "60s"})
        self.assertIn('"ttl"', reply["error"]["message"])
        self.wait_active(0)
        for body in (None, "", " \n", "{}", "{ }"):
            with self.subTest(body=body):
                status, reply, _ = self.server.request("POST", "/v1/sessions", body)
                self.assertEqual(status, 200, reply)
                sid = reply["name"].split("/")[1]
                self.assertEqual(self.server.request("DELETE", f"/v1/sessions/{sid}")[0], 200)


class ReplicaIdTest(unittest.TestCase):
    """--replica-id: the prefix of session ids, reported by /healthz and X-Pyexecd-Replica."""

    def session_on(self, server):
        """Creates a session and runs x = 41 then print(x + 1) in it; returns its id."""
        status, body, headers = server.request("POST", "/v1/sessions", {})
        self.assertEqual(status, 200, body)
        sid = body["name"].split("/", 1)[1]
        for code, output in (("x = 41", None), ("print(x + 1)", "42\n")):
            status, reply, _ = server.request("POST", f"/v1/sessions/{sid}:execute",
                                              {"parts": [code_part(code)]})
            self.assertEqual(status, 200, reply)
            self.assertEqual(results(reply)[0].get("output"), output, reply)
        return sid, headers

    def test_longest_replica_id(self):
        """A replica id of LIMIT_REPLICA_ID_CHARS characters: the session id is it, a dot and 32 hex."""
        rid = "a" + "-" * (LIMITS["LIMIT_REPLICA_ID_CHARS"] - 2) + "z"
        with Server("--replica-id", rid, workers=1, pool=1) as s:
            sid, headers = self.session_on(s)
            self.assertRegex(sid, rf"^{rid}\.[0-9a-f]{{32}}$")
            self.assertEqual(len(sid) + 1, LIMITS["LIMIT_SESSION_ID_BYTES"])
            self.assertEqual(headers.get("X-Pyexecd-Replica"), rid)
            self.assertEqual(s.health()[1]["replica"], rid)
            status, info, _ = s.request("GET", f"/v1/sessions/{sid}")
            self.assertEqual((status, info["name"]), (200, f"sessions/{sid}"), info)
            self.assertEqual(s.request("DELETE", f"/v1/sessions/{sid}")[0], 200)

    def test_bad_replica_ids_stop_the_start(self):
        """One character past the limit, upper case, a leading or trailing '-', a dot: refused."""
        for rid in ("a" * (LIMITS["LIMIT_REPLICA_ID_CHARS"] + 1), "R1", "-r1", "r1-",
                    "r1.example", ""):
            with self.subTest(rid=rid):
                s = Server("--replica-id", rid)
                with self.assertRaises(RuntimeError) as e:
                    s.start()
                self.assertIn("--replica-id", str(e.exception))

    def test_none_gives_bare_ids(self):
        """--replica-id none: 32 hex digits alone, replica null, no header; r2.<hex> names r2."""
        with Server("--replica-id", "none", workers=1, pool=1) as s:
            sid, headers = self.session_on(s)
            self.assertRegex(sid, r"^[0-9a-f]{32}$")
            self.assertNotIn("X-Pyexecd-Replica", headers)
            self.assertIsNone(s.health()[1]["replica"])
            status, reply, _ = s.request("GET", f"/v1/sessions/r2.{sid}")
            self.assertEqual(status, 404, reply)
            self.assertIn("belongs to replica r2", reply["error"]["message"])
            self.assertEqual(s.request("DELETE", f"/v1/sessions/{sid}")[0], 200)

    def test_default_is_the_host_name(self):
        """Without the flag: the host name's first label, lower-cased, when it is a DNS label."""
        label = socket.gethostname().split(".")[0].lower()
        want = label if re.fullmatch(REPLICA_RE, label) else None
        with Server(workers=1, pool=1) as s:
            self.assertEqual(s.health()[1]["replica"], want)
            sid, _ = self.session_on(s)
            self.assertEqual(sid.rpartition(".")[0] or None, want)
            self.assertEqual(s.request("DELETE", f"/v1/sessions/{sid}")[0], 200)


class ExpiryTest(SessionCase):
    """--session-idle-ms 1500, --session-lifetime-ms 4000."""

    SERVER_FLAGS = ("--session-idle-ms", "1500", "--session-lifetime-ms", "4000")
    IDLE = 1.5
    LIFETIME = 4.0

    def test_expire_time_reported(self):
        """expireTime is lastUseTime + idle while that is sooner than createTime + lifetime."""
        sid = self.create()
        status, info = self.get(sid)
        self.assertEqual(status, 200, info)
        self.assertAlmostEqual(parse_time(info["expireTime"]) - parse_time(info["lastUseTime"]),
                               self.IDLE, delta=0.01, msg=info)

    def test_idle_session_reaped(self):
        """A session unused past the idle timeout ends: 404 'has ended' (idle), no process of its uid, count 0."""
        sid = self.create(cleanup=False)
        uid = self.outside_uid(sid)
        time.sleep(self.IDLE * 0.5)
        status, info = self.get(sid)   # still there half-way through
        self.assertEqual(status, 200, info)
        t0 = time.monotonic()
        wait_for(lambda: self.get(sid)[0] == 404, self.IDLE + 2, "the idle session to end")
        self.assertGreater(time.monotonic() - t0, self.IDLE * 0.5 - 0.2,
                           "ended before its idle timeout")
        self.assert_ended(sid, "it was unused for longer than its idle timeout")
        self.assertEqual(wait_uid_gone(uid), [])
        self.wait_active(0)
        self.assertEqual(files_under(os.path.join(self.server.state_dir, "work")), [])

    def test_use_keeps_alive_until_lifetime(self):
        """Calls every 0.5 s keep a session past its idle timeout, but it ends at its maximum lifetime."""
        sid = self.create(cleanup=False)
        t0 = time.monotonic()
        uid = self.outside_uid(sid)
        n = 0
        while time.monotonic() - t0 < self.LIFETIME - 0.7:
            self.assertEqual(self.out(sid, "n = globals().get('n', 0) + 1; print(n)"),
                             f"{n + 1}\n", f"session lost after {time.monotonic() - t0:.2f} s")
            n += 1
            time.sleep(0.5)
        self.assertGreater(time.monotonic() - t0, self.IDLE * 2)
        status, info = self.get(sid)
        self.assertEqual(status, 200, info)
        # Now the lifetime is sooner than idle: expireTime is createTime + lifetime.
        self.assertAlmostEqual(parse_time(info["expireTime"]) - parse_time(info["createTime"]),
                               self.LIFETIME, delta=0.01, msg=info)
        wait_for(lambda: self.get(sid)[0] == 404, 3, "the session to reach its lifetime")
        self.assertGreaterEqual(time.monotonic() - t0, self.LIFETIME - 0.1)
        self.assert_ended(sid, "it reached its maximum lifetime")
        self.assertEqual(wait_uid_gone(uid), [])


class Call(threading.Thread):
    """One request on a thread; keeps (status, body) or the exception it raised."""

    def __init__(self, server, method, path, body=None, timeout=60):
        super().__init__(daemon=True)
        self.args = (server, method, path, body, timeout)
        self.reply = self.error = None

    def run(self):
        server, method, path, body, timeout = self.args
        try:
            status, data, _ = server.request(method, path, body, timeout=timeout)
            self.reply = (status, data)
        except Exception as e:  # reported by the test
            self.error = e


class ZygoteRestartTest(SessionCase):
    """SIGKILL to the zygote while sessions live (one of them running)."""

    def test_zygote_death_ends_sessions(self):
        """The running session call gets 503, every session ends ('has ended'), no worker survives, new sessions work."""
        s = self.server
        idle, busy = self.create(), self.create()
        uids = [self.outside_uid(idle), self.outside_uid(busy)]
        call = Call(s, "POST", f"/v1/sessions/{busy}:execute",
                    {"parts": [code_part("import time; time.sleep(20)")]})
        call.start()
        wait_for(lambda: self.get(busy)[1].get("state") == "RUNNING", 10, "RUNNING")
        old = s.zygote_pid()
        os.kill(old, signal.SIGKILL)
        call.join(15)
        self.assertFalse(call.is_alive(), "the running session call got no reply")
        self.assertIsNone(call.error)
        self.assert_error(*call.reply, 503, "UNAVAILABLE")
        for uid in uids:
            self.assertEqual(wait_uid_gone(uid), [], f"session worker uid {uid} survived")
        for sid in (idle, busy):
            self.assert_ended(sid, "the execution environment restarted")
        s.wait_ready(60)
        self.assertNotEqual(s.zygote_pid(), old)
        self.wait_active(0)
        fresh = self.create()
        self.assertEqual(self.out(fresh, "print('ok')"), "ok\n")


class ShutdownTest(unittest.TestCase):
    """SIGTERM to a server holding sessions, one of them running, with a drain time (half
    a second) shorter than the calls: what is cut when it is over (test_drain.py: what
    finishes within it)."""

    def test_stop_with_live_sessions(self):
        """Once the drain time is over a running session call is answered 503 (like /v1/execute) and no worker survives."""
        server = Server("--drain-ms", "500", workers=2, pool=2).start()
        try:
            sids = []
            for _ in range(2):
                status, body, _ = server.request("POST", "/v1/sessions", {})
                self.assertEqual(status, 200, body)
                sids.append(body["name"].split("/")[1])
            session_call = Call(server, "POST", f"/v1/sessions/{sids[0]}:execute",
                                {"parts": [code_part("import time; time.sleep(20)")]})
            plain_call = Call(server, "POST", "/v1/execute",
                              {"parts": [code_part("import time; time.sleep(20)")]})
            session_call.start()
            plain_call.start()
            wait_for(lambda: server.health()[1]["workers"]["running"] == 1, 10,
                     "the plain request to run")
            wait_for(lambda: server.request("GET", f"/v1/sessions/{sids[0]}")[1].get("state")
                     == "RUNNING", 10, "the session call to run")
        except BaseException:
            server.kill()
            raise
        server.stop()   # asserts no worker or zygote process is left
        session_call.join(10)
        plain_call.join(10)
        self.assertIsNone(plain_call.error)
        self.assertEqual(plain_call.reply[0], 503, plain_call.reply)
        self.assertIsNone(session_call.error,
                          f"POST /v1/sessions/<id>:execute running at SIGTERM got no reply "
                          f"({session_call.error!r}); POST /v1/execute got {plain_call.reply}")
        self.assertEqual(session_call.reply[0], 503, session_call.reply)


class ChurnTest(SessionCase):
    """200 sessions created, used once and dropped without DELETE (--session-idle-ms 2000:
    short, yet longer than a create and its first call take on a loaded machine or under
    AddressSanitizer)."""

    SERVER_FLAGS = ("--session-idle-ms", "2000", "--max-sessions", "200")
    COUNT = 200

    def test_200_dropped_sessions_leave_nothing(self):
        """After 200 undeleted sessions idle out: 0 active, only the idle pool's workers, no files, mounts or fds left."""
        s = self.server
        wait_for(lambda: len(s.stray_processes()) == self.POOL, 20, "the pool to fill")
        server_fds = fd_count(s.proc.pid)
        zygote = s.zygote_pid()
        zygote_fds = fd_count(zygote)
        mounts_before = host_mounts_mentioning("pyexecd", s.state_dir)
        ids, uids = [], set()
        t0 = time.monotonic()
        for i in range(self.COUNT):
            sid = self.create(cleanup=False)
            ids.append(sid)
            uids.add(self.outside_uid(sid))
        churn = time.monotonic() - t0
        self.assertEqual(len(set(ids)), self.COUNT, "duplicate session ids")
        hexes = [sid.split(".")[-1] for sid in ids]   # the random part
        for pos in range(32):
            self.assertGreaterEqual(len({h[pos] for h in hexes}), 8,
                                    f"digit {pos} of 200 ids is far from random")
        wait_for(lambda: self.sessions_health()["active"] == 0, 15,
                 "every session to idle out")
        # Only the idle pool remains: every session's uid is gone unless a pool worker
        # reuses that slot.
        wait_for(lambda: len(s.stray_processes()) <= self.POOL, 10,
                 "session workers to be reaped")
        left = s.stray_processes()
        status, h = s.health()
        self.assertEqual(len(left), h["pool"]["ready"] + h["pool"]["starting"], (left, h))
        pool_uids = {uid for _, uid, _ in left}
        for uid in uids - pool_uids:
            self.assertEqual(processes_with_uid_in(uid, uid + 1), [], uid)
        # Files: work dirs are tmpfs mounts inside each worker's mount namespace; none of
        # them shows on the host, and the fallback work dirs were never used.
        self.assertEqual(host_mounts_mentioning("pyexecd", s.state_dir), mounts_before)
        self.assertEqual(files_under(os.path.join(s.state_dir, "work")), [])
        # Descriptors (sockets, memfd capture files, pidfds) went with the sessions.
        self.assertLessEqual(fd_count(s.proc.pid), server_fds + 2,
                             f"server fds {server_fds} -> {fd_count(s.proc.pid)}")
        self.assertEqual(s.zygote_pid(), zygote, "the zygote restarted")
        self.assertLessEqual(fd_count(zygote), zygote_fds + 2)
        for sid in ids[:3] + ids[-3:]:
            status, body = self.get(sid)
            self.assert_error(status, body, 404, "NOT_FOUND")
        print(f"\n  200 sessions in {churn:.1f} s", file=sys.stderr)

    def test_ended_sessions_remembered_up_to_limit(self):
        """The last LIMIT_SESSION_TOMBSTONES ended sessions are told why; an older one is 'not found'."""
        remembered = LIMITS["LIMIT_SESSION_TOMBSTONES"]
        ids = []
        for _ in range(remembered + 1):
            sid = self.create(cleanup=False)
            status, body, _ = self.server.request("DELETE", f"/v1/sessions/{sid}")
            self.assertEqual(status, 200, body)
            ids.append(sid)
        # ids[1:] are the last `remembered` sessions that ended: each still says why.
        for sid in (ids[1], ids[remembered // 2], ids[-1]):
            self.assert_ended(sid, "it was deleted")
        status, body = self.get(ids[0])
        self.assert_error(status, body, 404, "NOT_FOUND", f"sessions/{ids[0]} was not found")


if __name__ == "__main__":
    unittest.main()
