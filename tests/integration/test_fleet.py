"""A real fleet: three pyexecd replicas on loopback behind HAProxy, configured by the
shipped deploy/haproxy/haproxy.cfg (its variables set in HAProxy's environment, the file
itself unchanged).

  FleetTest  test_1: stateless /v1/execute and generateContent (echo) spread over every
             replica (each reply's X-Pyexecd-Replica, checked against each replica's
             /healthz executions counter);
             test_2: sessions made through the balancer live on replicas of their own, and
             every later call reaches the owner (x = 41, then print(x + 1));
             test_3: a replica SIGTERMed while it runs a long execution: that request
             succeeds, HAProxy takes the replica out within its check interval (/readyz),
             stateless requests during and after the drain all succeed on the survivors,
             a session of the stopped replica is a Google 404 naming it, the survivors'
             sessions go on;
             test_4: a replica's zygote killed: /readyz 503 takes it out (an L7 check
             failure), the other serves everything, and it is back once ready.
  ConfigTest the file passes `haproxy -c` as shipped and with the test's variables; with
             no replica up, HAProxy's own 503 is a Google-style error body.

Run: PYEXECD_BIN=build/pyexecd python3 -u tests/integration/test_fleet.py -v
"""

import collections
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (ExecuteCall, Server, code_part, free_port, follow_stderr,  # noqa: E402
                     http_request, pid_alive, results, stop_process, wait_for)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIG = os.path.join(ROOT, "deploy", "haproxy", "haproxy.cfg")
REPLICAS = ("r1", "r2", "r3")
CHECK_INTER_S = 0.2          # PYEXECD_CHECK_INTER for the test (the file's default: 2 s)
HEADER = "x-pyexecd-replica"


class HAProxy:
    """haproxy -db on the shipped file, in front of `servers` ({replica id: Server}, or
    anything with the .port it listens on), on a loopback port of its own; its status page
    on another. Waits until HAProxy counts every server `expect` (UP)."""

    def __init__(self, servers, expect="UP"):
        self.port, self.stats_port = free_port(), free_port()
        env = dict(os.environ, PYEXECD_BIND=f"127.0.0.1:{self.port}",
                   PYEXECD_STATS_BIND=f"127.0.0.1:{self.stats_port}",
                   PYEXECD_CHECK_INTER=f"{int(CHECK_INTER_S * 1000)}ms",
                   PYEXECD_TIMEOUT="60s")
        for i, (name, s) in enumerate(servers.items(), 1):
            env[f"PYEXECD_R{i}"] = name
            env[f"PYEXECD_R{i}_ADDR"] = f"127.0.0.1:{s.port}"
        self.log = []
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", CONFIG], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, errors="replace")
        self.drainer, _ = follow_stderr(self.proc, self.log.append, 0)
        try:
            wait_for(lambda: self.proc.poll() is not None or
                     set(self.states().values()) == {expect}, 20,
                     f"HAProxy to count every replica {expect}")
            if self.proc.poll() is not None:
                raise RuntimeError("haproxy exited:\n" + "\n".join(self.log))
        except Exception:
            self.close()
            raise

    def states(self):
        """{server name: status} of the pyexecd backend, from the status page's CSV."""
        status, text, _ = http_request("127.0.0.1", self.stats_port, "GET", "/stats;csv",
                                       timeout=5)
        if status != 200:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {r["svname"]: r["status"] for r in rows
                if r["pxname"] == "pyexecd" and r["svname"] not in ("BACKEND", "FRONTEND")}

    def request(self, method, path, body=None, timeout=60):
        """(status, JSON body, headers) of one request through the balancer (header
        names in lower case, as HAProxy sends them)."""
        status, data, headers = http_request("127.0.0.1", self.port, method, path, body,
                                             timeout=timeout)
        return status, data, {k.lower(): v for k, v in headers.items()}

    def close(self):
        stop_process(self.proc)
        self.drainer.join(5)
        self.proc.stderr.close()


def executions(server):
    """The executions counter of a replica's /healthz (asked directly, not through HAProxy)."""
    status, h = server.health()
    assert status == 200, h
    return h["counters"]["executions"]


class FleetTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not shutil.which("haproxy"):
            raise unittest.SkipTest("skipped: haproxy is not installed "
                                    "(scripts/setup-ops.sh installs it)")
        cls.servers = {}
        try:
            for name in REPLICAS:
                cls.servers[name] = Server("--replica-id", name, host="127.0.0.1",
                                           workers=1, pool=1).start()
            cls.haproxy = HAProxy(cls.servers)
        except Exception:
            for s in cls.servers.values():
                s.kill()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.haproxy.close()
        # Nothing left: HAProxy gone, and each replica's zygote and workers (Server.stop).
        assert not pid_alive(cls.haproxy.proc.pid), "haproxy still runs"
        for s in cls.servers.values():
            s.stop()

    def execute(self, code):
        """A stateless execution through HAProxy that must print; returns (output, replica)."""
        status, body, headers = self.haproxy.request("POST", "/v1/execute",
                                                     {"parts": [code_part(code)]})
        self.assertEqual(status, 200, body)
        return results(body)[0].get("output"), headers.get(HEADER)

    def session_call(self, sid, code):
        """:execute in a session through HAProxy: (status, output or the error, replica)."""
        status, body, headers = self.haproxy.request("POST", f"/v1/sessions/{sid}:execute",
                                                     {"parts": [code_part(code)]})
        out = results(body)[0].get("output") if status == 200 else body
        return status, out, headers.get(HEADER)

    def create_session(self):
        """POST /v1/sessions through HAProxy: (id, the replica that answered)."""
        status, body, headers = self.haproxy.request("POST", "/v1/sessions", {})
        self.assertEqual(status, 200, body)
        return body["name"].split("/", 1)[1], headers.get(HEADER)

    def test_1_stateless_requests_spread_over_every_replica(self):
        before = {n: executions(s) for n, s in self.servers.items()}
        served = collections.Counter()
        for i in range(12):
            out, replica = self.execute(f"print({i} * 3)")
            self.assertEqual(out, f"{i * 3}\n")
            served[replica] += 1
        generated = collections.Counter()
        body = {"contents": [{"role": "user", "parts": [{"text": "```python\nprint(6 * 7)\n```"}]}],
                "tools": [{"codeExecution": {}}]}
        for _ in range(6):
            status, reply, headers = self.haproxy.request(
                "POST", "/v1beta/models/echo:generateContent", body)
            self.assertEqual(status, 200, reply)
            parts = reply["candidates"][0]["content"]["parts"]
            outputs = [p["codeExecutionResult"].get("output") for p in parts
                       if "codeExecutionResult" in p]
            self.assertEqual(outputs, ["42\n"], reply)
            generated[headers.get(HEADER)] += 1
        # Round robin: every replica served its share of each kind.
        self.assertEqual(set(served), set(REPLICAS), served)
        self.assertEqual(set(generated), set(REPLICAS), generated)
        for name in REPLICAS:
            self.assertGreaterEqual(served[name], 3, served)
            self.assertGreaterEqual(generated[name], 1, generated)
        # And each replica's own counter agrees with what the header said it served.
        wait_for(lambda: all(executions(s) - before[n] == served[n] + generated[n]
                             for n, s in self.servers.items()), 5,
                 f"/healthz counters to show {served + generated}")

    def test_2_session_calls_reach_their_owner(self):
        owners = {}
        for _ in range(len(REPLICAS)):
            sid, replica = self.create_session()
            self.addCleanup(self.haproxy.request, "DELETE", f"/v1/sessions/{sid}")
            self.assertTrue(sid.startswith(replica + "."), (sid, replica))
            owners[sid] = replica
        self.assertGreaterEqual(len(set(owners.values())), 2, owners)
        for sid, owner in owners.items():
            self.assertEqual(self.session_call(sid, "x = 41"), (200, None, owner))
        # Interleaved calls of the three sessions: each reaches its owner, state intact.
        reached = collections.Counter()
        for _ in range(4):
            for sid, owner in owners.items():
                status, out, replica = self.session_call(sid, "print(x + 1)")
                self.assertEqual((status, out), (200, "42\n"), sid)
                self.assertEqual(replica, owner, sid)
                reached[replica] += 1
        self.assertEqual(sum(reached.values()), 4 * len(owners))
        for sid, owner in owners.items():
            status, info, headers = self.haproxy.request("GET", f"/v1/sessions/{sid}")
            self.assertEqual((status, info["executions"], headers.get(HEADER)), (200, 5, owner))
        # Each replica holds exactly the sessions whose ids name it.
        held = collections.Counter(owners.values())
        for name, s in self.servers.items():
            self.assertEqual(s.health()[1]["sessions"]["active"], held[name], name)
        # An id naming no replica of the fleet: HAProxy balances it, and the replica that
        # gets it says whose it is.
        status, reply, _ = self.haproxy.request("GET", "/v1/sessions/r9." + "ab" * 16)
        self.assertEqual((status, reply["error"]["status"]), (404, "NOT_FOUND"), reply)
        self.assertIn("belongs to replica r9", reply["error"]["message"])

    def test_3_a_stopped_replica_drains_and_the_rest_serve_on(self):
        # A session on each replica (round robin gives one each).
        sessions = dict(reversed(self.create_session()) for _ in REPLICAS)
        self.assertEqual(set(sessions), set(REPLICAS), sessions)
        for sid in sessions.values():
            self.addCleanup(self.haproxy.request, "DELETE", f"/v1/sessions/{sid}")
            self.assertEqual(self.session_call(sid, "x = 41")[0], 200)
        victim = "r3"
        survivors = set(REPLICAS) - {victim}
        vs = self.servers[victim]

        # A long execution on the victim (through its session, so it lands there).
        class SessionCall(ExecuteCall):
            def run(inner):
                try:
                    inner.status, inner.body = inner.server.session_call(
                        sessions[victim], inner.code)[:2]
                except Exception as e:  # reported through .error
                    inner.error = e
                inner.replied_at = time.monotonic()
        long_call = SessionCall(self, "import time; time.sleep(3); print(x + 1)")
        long_call.start()
        wait_for(lambda: vs.request("GET", f"/v1/sessions/{sessions[victim]}")[1]["state"]
                 == "RUNNING", 10, "the long execution to run on " + victim)

        t0 = time.monotonic()
        vs.proc.send_signal(signal.SIGTERM)
        # The victim stops taking connections at once ...
        def refused():
            try:
                socket.create_connection(("127.0.0.1", vs.port), timeout=1).close()
                return False
            except ConnectionRefusedError:
                return True
        wait_for(refused, 5, victim + " to refuse new connections")
        # ... and HAProxy's /readyz check takes it out within its interval.
        wait_for(lambda: self.haproxy.states().get(victim) == "DOWN", 5,
                 "HAProxy to mark " + victim + " down", interval=0.01)
        down_after = time.monotonic() - t0
        self.assertLess(down_after, CHECK_INTER_S + 1.0, f"{victim} down after {down_after:.2f} s")

        # During the drain (the long execution still runs): stateless requests all succeed,
        # on the survivors.
        during = collections.Counter()
        while long_call.is_alive() and sum(during.values()) < 40:
            out, replica = self.execute("print('during')")
            self.assertEqual(out, "during\n")
            during[replica] += 1
        self.assertGreaterEqual(sum(during.values()), 4, during)
        self.assertEqual(set(during), survivors, during)
        print(f"\n  {victim} down in HAProxy {down_after:.2f} s after SIGTERM; "
              f"{sum(during.values())} requests during its drain: {dict(during)}",
              file=sys.stderr)

        # The in-flight request finished, and the victim exited cleanly after it.
        long_call.join(15)
        self.assertIsNone(long_call.error)
        self.assertEqual((long_call.status, long_call.body), (200, "42\n"))
        self.assertEqual(vs.proc.wait(15), 0, vs.log_text())
        self.assertTrue(any("drained, shutting down" in line for line in vs.log),
                        vs.log_text())

        # After: the victim's session is a Google-style 404 naming it, answered at once by
        # a survivor; the survivors' sessions and stateless requests go on.
        t1 = time.monotonic()
        status, reply, replica = self.session_call(sessions[victim], "print(x + 1)")
        self.assertLess(time.monotonic() - t1, 5)
        self.assertEqual(status, 404, reply)
        self.assertEqual(reply["error"]["status"], "NOT_FOUND", reply)
        self.assertIn(f"belongs to replica {victim}", reply["error"]["message"])
        self.assertIn(replica, survivors)
        for name in survivors:
            self.assertEqual(self.session_call(sessions[name], "print(x + 1)"),
                             (200, "42\n", name))
        after = collections.Counter(self.execute("print('after')")[1] for _ in range(10))
        self.assertEqual(set(after), survivors, after)
        self.assertEqual(sum(after.values()), 10)
        self.assertEqual(self.haproxy.states(), {**{n: "UP" for n in survivors},
                                                 victim: "DOWN"})


    def test_4_a_zygote_restart_takes_a_replica_out_until_it_is_ready(self):
        # After test_3: r1 and r2 serve. r1's zygote killed: its /readyz is 503 (an L7
        # check failure, the process still answers), HAProxy takes it out, r2 serves
        # everything, and r1 is back once its new zygote is ready.
        name, other = "r1", "r2"
        s = self.servers[name]
        old = s.zygote_pid()
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: self.haproxy.states().get(name) == "DOWN", 10,
                 f"HAProxy to mark {name} down", interval=0.01)
        while_out = collections.Counter()
        while self.haproxy.states().get(name) == "DOWN" and sum(while_out.values()) < 200:
            out, replica = self.execute("print('while out')")
            self.assertEqual(out, "while out\n")
            while_out[replica] += 1
        self.assertEqual(set(while_out), {other}, while_out)
        self.assertGreaterEqual(sum(while_out.values()), 3, while_out)
        self.assertTrue(any(f"Server pyexecd/{name} is DOWN" in line and "Layer7" in line
                            for line in self.haproxy.log), "\n".join(self.haproxy.log))
        wait_for(lambda: self.haproxy.states().get(name) == "UP", 60, f"{name} to be back")
        self.assertNotEqual(s.zygote_pid(), old)
        back = collections.Counter(self.execute("print('back')")[1] for _ in range(6))
        self.assertEqual(set(back), {name, other}, back)
        self.assertGreaterEqual(min(back.values()), 2, back)


class ConfigTest(unittest.TestCase):
    """`haproxy -c` on the shipped file: as it is (its defaults) and with variables."""

    def check(self, **env):
        return subprocess.run(["haproxy", "-c", "-f", CONFIG], capture_output=True, text=True,
                              env=dict(os.environ, **env), timeout=30)

    def setUp(self):
        if not shutil.which("haproxy"):
            self.skipTest("skipped: haproxy is not installed")

    def test_valid_as_shipped_and_with_variables(self):
        for env in ({}, {"PYEXECD_R1": "10-1-2-3", "PYEXECD_R1_ADDR": "127.0.0.1:9001",
                         "PYEXECD_CHECK_INTER": "500ms", "PYEXECD_BIND": "127.0.0.1:9000"}):
            with self.subTest(env=env):
                out = self.check(**env)
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
                self.assertIn("Configuration file is valid", out.stdout + out.stderr)

    def test_a_bad_value_is_caught(self):
        out = self.check(PYEXECD_CHECK_INTER="soon")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("inter", out.stdout + out.stderr)

    def test_no_replica_ready_is_a_google_503(self):
        """Every replica down (nothing listens on their ports): HAProxy's own 503 is a
        Google-style error body, at once."""
        nobody = {name: types.SimpleNamespace(port=free_port()) for name in REPLICAS}
        haproxy = HAProxy(nobody, expect="DOWN")
        self.addCleanup(haproxy.close)
        t0 = time.monotonic()
        status, body, headers = haproxy.request("POST", "/v1/execute",
                                                {"parts": [code_part("print(1)")]})
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(status, 503, body)
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertEqual((body["error"]["code"], body["error"]["status"]), (503, "UNAVAILABLE"))

    def test_readiness_is_the_check(self):
        with open(CONFIG) as f:
            text = f.read()
        self.assertIn("option httpchk GET /readyz", text)
        self.assertIn("http-check expect status 200", text)
        self.assertIn("use-server %[var(txn.replica)] if session_path", text)


if __name__ == "__main__":
    unittest.main()
