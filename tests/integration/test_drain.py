"""Graceful stop and readiness: SIGTERM drains (no new connections, /readyz unready, the
requests already taken finish, then exit 0), --drain-ms bounds it, a second SIGTERM ends
it at once; /readyz is unready while the zygote restarts, /healthz stays the liveness
check.

Run: PYEXECD_BIN=build/pyexecd python3 -u tests/integration/test_drain.py -v
"""

import http.client
import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import ExecuteCall as Call  # noqa: E402
from harness import Server, code_part, pid_alive, results, wait_for  # noqa: E402
from limits import LIMITS  # noqa: E402


def wait_running(server, n=1, timeout=15):
    def running():
        status, h = server.health()
        return status == 200 and h["workers"]["running"] >= n
    wait_for(running, timeout, "the request to start running")


def get_on(conn, path):
    """GET path on an open keep-alive connection: (status, JSON body, headers)."""
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"null"), {k.lower(): v for k, v in r.getheaders()}


class DrainTest(unittest.TestCase):

    def test_sigterm_lets_the_running_request_finish(self):
        s = Server(workers=2, pool=1).start()
        self.addCleanup(s.kill)
        keep = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        status, body, _ = get_on(keep, "/readyz")
        self.assertEqual((status, body), (200, {"status": "ready"}))
        keep2 = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        self.assertEqual(get_on(keep2, "/healthz")[0], 200)
        call = Call(s, "import time; time.sleep(3); print('finished')")
        call.start()
        wait_running(s)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # A new connection is refused (the listening socket is closed).
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
        # On a connection it had: unready, and the connection closes after the reply.
        status, body, headers = get_on(keep, "/readyz")
        self.assertEqual(status, 503, body)
        self.assertEqual(body["error"]["status"], "UNAVAILABLE", body)
        self.assertEqual(headers.get("connection"), "close", headers)
        keep.close()
        # Liveness is not readiness: /healthz still says ok.
        status, body, headers = get_on(keep2, "/healthz")
        self.assertEqual((status, body["status"]), (200, "ok"), body)
        self.assertEqual(headers.get("connection"), "close", headers)
        keep2.close()
        # The running request finishes, and the server exits 0 right after it.
        s.proc.wait(15)
        call.join(5)
        self.assertIsNone(call.error)
        self.assertEqual(call.status, 200, call.body)
        self.assertEqual(results(call.body), [{"outcome": "OUTCOME_OK",
                                               "output": "finished\n"}])
        self.assertEqual(s.proc.returncode, 0, s.log_text())
        self.assertLess(time.monotonic() - t0, 6)
        self.assertTrue(any("draining: 1 requests in flight" in line for line in s.log),
                        s.log_text())
        self.assertTrue(any("drained, shutting down" in line for line in s.log),
                        s.log_text())

    def test_new_request_on_an_open_connection_is_refused(self):
        s = Server(workers=2, pool=1).start()
        self.addCleanup(s.kill)
        keep = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        self.assertEqual(get_on(keep, "/healthz")[0], 200)
        call = Call(s, "import time; time.sleep(2)")
        call.start()
        wait_running(s)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        keep.request("POST", "/v1/execute", body=json.dumps(
            {"parts": [code_part("print(1)")]}))
        r = keep.getresponse()
        body = json.loads(r.read())
        self.assertEqual(r.status, 503, body)
        self.assertEqual(body["error"]["status"], "UNAVAILABLE", body)
        self.assertIn("shutting down", body["error"]["message"])
        self.assertEqual(r.getheader("Connection"), "close")
        keep.close()
        s.proc.wait(15)
        self.assertEqual(s.proc.returncode, 0)
        call.join(5)
        self.assertEqual(call.status, 200, call.body)

    def test_drain_time_bounds_it(self):
        s = Server("--drain-ms", "1000", workers=1, pool=1).start()
        self.addCleanup(s.kill)
        call = Call(s, "import time; time.sleep(20)")
        call.start()
        wait_running(s)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(10)
        took = time.monotonic() - t0
        self.assertEqual(s.proc.returncode, 0)
        self.assertGreater(took, 0.9)
        self.assertLess(took, 5)
        call.join(5)
        self.assertEqual(call.status, 503, call.body)
        self.assertEqual(call.body["error"]["status"], "UNAVAILABLE", call.body)
        self.assertTrue(any("drain time over, 1 requests cut" in line for line in s.log),
                        s.log_text())

    def test_second_sigterm_stops_at_once(self):
        # The longest drain there is (LIMIT_DRAIN_MS_MAX, accepted): only the second
        # signal can end it.
        s = Server("--drain-ms", str(LIMITS["LIMIT_DRAIN_MS_MAX"]), workers=1, pool=1).start()
        self.addCleanup(s.kill)
        zygote = s.zygote_pid()
        call = Call(s, "import time; time.sleep(20)")
        call.start()
        wait_running(s)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        self.assertIsNone(s.proc.poll(), "the first SIGTERM did not drain")
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        s.proc.wait(10)
        self.assertLess(time.monotonic() - t0, 4)
        self.assertEqual(s.proc.returncode, 0)
        call.join(5)
        self.assertEqual(call.status, 503, call.body)
        end = time.monotonic() + 5
        while (pid_alive(zygote) or s.stray_processes()) and time.monotonic() < end:
            time.sleep(0.05)
        self.assertFalse(pid_alive(zygote))
        self.assertEqual(s.stray_processes(), [])

    def test_bad_drain_flag_stops_the_start(self):
        # Not a number, and one past LIMIT_DRAIN_MS_MAX (a day).
        for value in ("soon", str(LIMITS["LIMIT_DRAIN_MS_MAX"] + 1)):
            s = Server("--drain-ms", value)
            with self.assertRaises(RuntimeError) as e:
                s.start()
            self.assertIn("--drain-ms", str(e.exception))


class ReadyDuringRestartTest(unittest.TestCase):

    def test_unready_while_the_zygote_restarts(self):
        s = Server(workers=1, pool=1).start()
        self.addCleanup(s.kill)
        self.assertEqual(s.get("/readyz")[0], 200)
        status, _, _ = s.request("HEAD", "/readyz")
        self.assertEqual(status, 200)
        old = s.zygote_pid()
        os.kill(old, signal.SIGKILL)
        unready = 0
        end = time.monotonic() + 30
        while time.monotonic() < end:
            status, body = s.get("/readyz")
            if status == 503:
                unready += 1
                self.assertEqual(body["error"]["status"], "UNAVAILABLE", body)
                # Liveness is another matter: /healthz is 200 all along, its body saying
                # the zygote is not ready.
                hstatus, h = s.health()
                self.assertEqual(hstatus, 200, h)
                if h["zygote"]["state"] != "ready":
                    self.assertEqual(h["status"], "unavailable", h)
            elif status == 200 and unready:
                break
            time.sleep(0.05)
        self.assertGreater(unready, 0, "/readyz never said unready while the zygote restarted")
        self.assertEqual(s.get("/readyz")[0], 200)
        status, h = s.health()
        self.assertEqual((status, h["status"], h["zygote"]["state"]), (200, "ok", "ready"), h)
        self.assertNotEqual(h["zygote"]["pid"], old)
        self.assertGreaterEqual(h["zygote"]["restarts"], 1, h)
        s.stop()

    def test_healthz_is_200_before_the_zygote_is_ready(self):
        """Liveness from the first answer: /healthz 200 (its body "unavailable", the zygote
        starting) while /readyz is 503, until the zygote is up."""
        s = Server(workers=1, pool=1)
        s.wait_ready = lambda timeout=None: None   # look before it is ready
        s.start()
        self.addCleanup(s.kill)
        first_readyz = s.get("/readyz")[0]
        status, h = s.health()
        self.assertEqual(status, 200, h)
        if first_readyz == 503 and h["zygote"]["state"] == "starting":
            self.assertEqual(h["status"], "unavailable", h)
        Server.wait_ready(s)
        self.assertEqual(s.get("/readyz")[0], 200)
        self.assertEqual(s.health()[1]["status"], "ok")
        self.assertEqual(first_readyz, 503, "the zygote was ready at the first answer")
        s.stop()


if __name__ == "__main__":
    unittest.main()
