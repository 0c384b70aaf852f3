"""The request log: exactly one JSON line per request on stderr (level info), with its
request id, method, route template, status, how its executions ended and where their time
went, its bytes and its API key's id (never the key); X-Request-Id honoured when sane (up
to LIMIT_REQUEST_ID_BYTES printable characters without spaces, quotes or backslashes),
else replaced by a new one, and echoed on every reply, errors and streams included;
--log-level filtering the lines.

Run: PYEXECD_BIN=build/pyexecd python3 -u tests/integration/test_request_log.py -v
"""

import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import BINARY, Server, code_part, key_file, wait_for  # noqa: E402
from limits import LIMITS  # noqa: E402

KEY = "pyx-log-key-aaaaaaaaaaaaaaaaaaaaaa"
AUTH = {"x-goog-api-key": KEY}
ID_LIMIT = LIMITS["LIMIT_REQUEST_ID_BYTES"]
GENERATED = re.compile(r"^[0-9a-f]{32}$")
DURATIONS = ("queueMs", "workerStartMs", "runMs", "encodeMs", "totalMs")


def request_lines(server):
    """The server's request log lines so far, parsed."""
    with server._log_lock:
        lines = list(server.log)
    out = []
    for line in lines:
        if line.startswith("{"):
            rec = json.loads(line)   # every line that looks like JSON must be JSON
            if rec.get("msg") == "request":
                out.append(rec)
    return out


def line_of(server, request_id):
    """The one log line of request_id (waits for it: the line follows the reply)."""
    found = wait_for(lambda: [r for r in request_lines(server) if r["requestId"] == request_id],
                     10, f"the log line of {request_id}")
    assert len(found) == 1, found
    return found[0]


class RequestLogTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.keys = key_file("pyexecd-log-", f"tenant-a {KEY}\n")
        cls.server = Server("--api-key-file", cls.keys, "--output-bytes", "1024").start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def call(self, method, path, body=None, request_id=None, headers=AUTH):
        h = dict(headers)
        if request_id is not None:
            h["X-Request-Id"] = request_id
        status, data, got = self.server.request(method, path, body, headers=h)
        return status, data, got

    def test_an_execution_has_one_line_with_every_field(self):
        body = json.dumps({"parts": [code_part("print('x' * 2000)")]})
        status, data, headers = self.call("POST", "/v1/execute", body, "exec-1")
        self.assertEqual(status, 200, data)
        self.assertEqual(headers["X-Request-Id"], "exec-1")
        rec = line_of(self.server, "exec-1")
        self.assertEqual(rec["level"], "info")
        self.assertRegex(rec["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual((rec["method"], rec["route"], rec["status"]),
                         ("POST", "/v1/execute", 200))
        self.assertEqual((rec["executions"], rec["outcome"], rec["limit"]),
                         (1, "OUTCOME_OK", "OUTPUT_BYTES"))
        for d in DURATIONS:
            self.assertIsInstance(rec[d], float, d)
            self.assertGreaterEqual(rec[d], 0, d)
        self.assertGreater(rec["runMs"], 0)
        self.assertGreaterEqual(rec["totalMs"], rec["runMs"])
        self.assertEqual(rec["bytesIn"], len(body))
        self.assertEqual(rec["bytesOut"], len(json.dumps(data, separators=(",", ":"))))
        self.assertEqual(rec["keyId"], "tenant-a")
        self.assertNotIn("aborted", rec)

    def test_a_failure_is_its_outcome(self):
        self.call("POST", "/v1/execute", {"parts": [code_part("1/0")]}, "fail-1")
        rec = line_of(self.server, "fail-1")
        self.assertEqual((rec["outcome"], rec["status"]), ("OUTCOME_FAILED", 200))
        self.assertNotIn("limit", rec)

    def test_the_key_is_never_logged(self):
        self.call("POST", "/v1/execute", {"parts": [code_part("print(1)")]}, "key-1")
        self.call("GET", "/v1/environment", None, "key-2", headers={"Authorization": "Bearer " + KEY})
        self.call("GET", f"/v1/environment?key={KEY}", None, "key-3", headers={})
        for rid in ("key-1", "key-2", "key-3"):
            self.assertEqual(line_of(self.server, rid)["keyId"], "tenant-a")
        self.assertNotIn(KEY, self.server.log_text())
        with self.server._log_lock:
            self.assertFalse(any(KEY in line for line in self.server.log))

    def test_a_refused_request_has_no_key_id(self):
        status, _, headers = self.call("POST", "/v1/execute", {}, "nokey-1", headers={})
        self.assertEqual(status, 401)
        self.assertEqual(headers["X-Request-Id"], "nokey-1")
        rec = line_of(self.server, "nokey-1")
        self.assertEqual((rec["status"], rec["route"]), (401, "/v1/execute"))
        self.assertNotIn("keyId", rec)
        wrong = {"x-goog-api-key": "pyx-log-key-bbbbbbbbbbbbbbbbbbbbbb"}
        self.assertEqual(self.call("POST", "/v1/execute", {}, "nokey-2", headers=wrong)[0], 403)
        self.assertNotIn("keyId", line_of(self.server, "nokey-2"))

    def test_errors_echo_the_id_and_name_their_route(self):
        for method, path, body, status, route in (
                ("GET", "/v1/no/such/thing", None, 404, "other"),
                ("POST", "/v1/execute", "{", 400, "/v1/execute"),
                ("PUT", "/v1/execute", None, 405, "/v1/execute"),
                ("GET", "/v1/sessions/" + "0" * 32, None, 404, "/v1/sessions/{id}"),
                ("POST", "/v1/sessions/" + "0" * 32 + ":execute",
                 {"parts": [code_part("1")]}, 404, "/v1/sessions/{id}:execute")):
            rid = f"err-{status}-{method}-{route}"
            with self.subTest(path=path):
                got, _, headers = self.call(method, path, body, rid)
                self.assertEqual(got, status)
                self.assertEqual(headers["X-Request-Id"], rid)
                rec = line_of(self.server, rid)
                self.assertEqual((rec["status"], rec["route"], rec["method"]),
                                 (status, route, method))
                self.assertNotIn("executions", rec)

    def test_ids_at_the_limit_are_kept_and_bad_ones_replaced(self):
        at_limit = "a" * ID_LIMIT
        status, _, headers = self.call("GET", "/healthz", None, at_limit)
        self.assertEqual(headers["X-Request-Id"], at_limit)
        self.assertEqual(line_of(self.server, at_limit)["route"], "/healthz")
        for bad in ("a" * (ID_LIMIT + 1), "has space", 'quo"te', "back\\slash", "it's",
                    "caf\u00e9"):
            with self.subTest(bad=bad):
                headers = {"X-Request-Id": bad.encode("utf-8").decode("latin-1")}
                _, _, got = self.server.request("GET", "/healthz", headers=headers)
                new = got["X-Request-Id"]
                self.assertRegex(new, GENERATED)
                self.assertEqual(line_of(self.server, new)["route"], "/healthz")
        with self.server._log_lock:
            self.assertFalse(any("a" * (ID_LIMIT + 1) in line for line in self.server.log))

    def test_without_an_id_a_new_one_each_time(self):
        ids = set()
        for _ in range(3):
            _, _, headers = self.call("GET", "/readyz")
            self.assertRegex(headers["X-Request-Id"], GENERATED)
            ids.add(headers["X-Request-Id"])
        self.assertEqual(len(ids), 3)
        for rid in ids:
            self.assertEqual(line_of(self.server, rid)["status"], 200)

    def test_a_session_call_and_a_stream(self):
        status, s, _ = self.call("POST", "/v1/sessions", {}, "sess-create")
        self.assertEqual(status, 200, s)
        sid = s["name"].split("/")[1]
        status, _, _ = self.call("POST", f"/v1/sessions/{sid}:execute",
                                 {"parts": [code_part("y = 2")]}, "sess-exec")
        self.assertEqual(status, 200)
        rec = line_of(self.server, "sess-exec")
        self.assertEqual((rec["route"], rec["executions"], rec["outcome"]),
                         ("/v1/sessions/{id}:execute", 1, "OUTCOME_OK"))
        self.assertNotIn(sid, json.dumps(rec))
        self.assertNotIn("executions", line_of(self.server, "sess-create"))
        self.call("DELETE", f"/v1/sessions/{sid}", None, "sess-delete")
        self.assertEqual(line_of(self.server, "sess-delete")["route"], "/v1/sessions/{id}")

        # A streamed turn of the echo model running two blocks: the id on the stream's
        # headers, one line once the stream has ended, both executions in it.
        text = "```python\nprint(1)\n```\nand\n```python\n1/0\n```"
        gen = {"contents": [{"role": "user", "parts": [{"text": text}]}],
               "tools": [{"codeExecution": {}}]}
        status, body, headers = self.call(
            "POST", "/v1beta/models/echo:streamGenerateContent?alt=sse", gen, "stream-1")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["X-Request-Id"], "stream-1")
        self.assertIn("data: ", body)
        rec = line_of(self.server, "stream-1")
        self.assertEqual(rec["route"], "/{version}/models/{model}:streamGenerateContent")
        self.assertEqual((rec["executions"], rec["outcome"]), (2, "OUTCOME_FAILED"))
        self.assertEqual(rec["bytesOut"], len(body.encode()))

    def test_every_request_has_exactly_one_line(self):
        for i in range(5):
            self.call("GET", "/healthz", None, f"count-{i}")
            self.call("POST", "/v1/execute", {"parts": [code_part("print(2)")]}, f"count-x{i}")
        for i in range(5):
            line_of(self.server, f"count-{i}")     # asserts it is exactly one
            line_of(self.server, f"count-x{i}")


class LogLevelTest(unittest.TestCase):
    """--log-level: info has the request lines; warn drops them but keeps start-up; error
    keeps only what stops the server (and the listening line, at every level); debug adds
    the workers' own lines."""

    def serve(self, level):
        s = Server("--log-level", level, workers=1, pool=1).start()
        try:
            status, _, headers = s.request("GET", "/healthz", headers={"X-Request-Id": "lvl"})
            self.assertEqual(status, 200)
            self.assertEqual(headers["X-Request-Id"], "lvl")
            s.execute({"parts": [code_part("print(1)")]})
        finally:
            s.stop()
        return list(s.log)

    def test_levels(self):
        lines = {level: self.serve(level) for level in ("debug", "warn", "error")}
        for level, log in lines.items():
            with self.subTest(level=level):
                self.assertTrue(any("pyexecd: listening on http://" in x for x in log), log)
        self.assertTrue(any(x.startswith("{") and '"requestId":"lvl"' in x
                            for x in lines["debug"]), lines["debug"])
        self.assertTrue(any(re.search(r"pyexecd: worker \d+ ready after", x)
                            for x in lines["debug"]))
        for level in ("warn", "error"):
            self.assertFalse(any(x.startswith("{") for x in lines[level]), lines[level])
        self.assertTrue(any(re.search(r"zygote \d+ ready after", x) for x in lines["warn"]))
        self.assertFalse(any(re.search(r"zygote \d+ ready after", x) for x in lines["error"]))
        self.assertFalse(any("worker" in x and "ready after" in x for x in lines["warn"]))

    def test_a_bad_level_is_refused(self):
        proc = subprocess.run([BINARY, "--log-level", "loud"], capture_output=True, text=True,
                              timeout=20)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("bad value for --log-level: 'loud'", proc.stderr)


if __name__ == "__main__":
    unittest.main()
