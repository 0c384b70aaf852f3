"""GET /metrics: known traffic (executions that end OK, FAILED and past their deadline,
one whose output is cut, a bad request, unknown paths, a refused key, sessions), then the
exposition checked by promtool and scraped by a real Prometheus server, whose HTTP API
must give back the exact counts of that traffic; histograms whose +Inf bucket is their
count; route labels that are templates, never paths; /metrics asking for a key like
every route but the probes.

promtool and prometheus are Debian's (scripts/setup-ops.sh, `make setup-ops`): without
them those two tests are skipped, saying why.

Run: PYEXECD_BIN=build/pyexecd python3 -u tests/integration/test_metrics.py -v
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Server, code_part, http_request, key_file, results, wait_for  # noqa: E402

KEY = "pyx-metrics-key-0123456789abcdef"
AUTH = {"x-goog-api-key": KEY}
OUTPUT_BYTES = 1024
DEADLINE_MS = 300

# The traffic, and what it must count.
OK, FAILED, DEADLINE, CUT = 3, 2, 1, 1
SESSION_EXECUTIONS = 2
EXPECTED = {
    'pyexecd_executions_total{outcome="OUTCOME_OK"}': OK + CUT + SESSION_EXECUTIONS,
    'pyexecd_executions_total{outcome="OUTCOME_FAILED"}': FAILED,
    'pyexecd_executions_total{outcome="OUTCOME_DEADLINE_EXCEEDED"}': DEADLINE,
    'pyexecd_executions_total{outcome="error"}': 0,
    'pyexecd_limit_reached_total{limit="DEADLINE"}': DEADLINE,
    'pyexecd_limit_reached_total{limit="OUTPUT_BYTES"}': CUT,
    'pyexecd_limit_reached_total{limit="MEMORY"}': 0,
    'pyexecd_http_requests_total{route="/v1/execute",method="POST",code="200"}':
        OK + FAILED + DEADLINE + CUT,
    'pyexecd_http_requests_total{route="/v1/execute",method="POST",code="400"}': 1,
    'pyexecd_http_requests_total{route="/v1/execute",method="POST",code="401"}': 1,
    'pyexecd_http_requests_total{route="/v1/execute",method="GET",code="405"}': 1,
    'pyexecd_http_requests_total{route="other",method="GET",code="404"}': 2,
    'pyexecd_http_requests_total{route="/v1/sessions",method="POST",code="200"}': 2,
    'pyexecd_http_requests_total{route="/v1/sessions/{id}:execute",method="POST",code="200"}':
        SESSION_EXECUTIONS,
    'pyexecd_http_requests_total{route="/v1/sessions/{id}",method="DELETE",code="200"}': 1,
    'pyexecd_phase_seconds_count{phase="run"}': OK + FAILED + DEADLINE + CUT + SESSION_EXECUTIONS,
    'pyexecd_phase_seconds_count{phase="queue"}': OK + FAILED + DEADLINE + CUT + SESSION_EXECUTIONS,
    'pyexecd_phase_seconds_count{phase="encode"}': OK + FAILED + DEADLINE + CUT + SESSION_EXECUTIONS,
    'pyexecd_sessions': 1,
    'pyexecd_queue_depth': 0,
    'pyexecd_workers_busy': 0,
    'pyexecd_workers_max': 2,
    'pyexecd_zygote_restarts_total': 0,
    'pyexecd_zygote_ready': 1,
    'pyexecd_build_info{version="0.1.0"}': 1,
}

# A sample line: name, {labels} (whose quoted values may hold braces), value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})? (\S+)$')


def samples(text):
    """{'name{labels}': value} of an exposition text (comments skipped)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MetricsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.keys = key_file("pyexecd-metrics-", f"scraper {KEY}\n")
        cls.server = Server("--api-key-file", cls.keys, "--deadline-ms", str(DEADLINE_MS),
                            "--output-bytes", str(OUTPUT_BYTES)).start()
        cls.send_traffic()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def call(cls, method, path, body=None, headers=AUTH):
        status, data, _ = cls.server.request(method, path, body, headers=headers)
        return status, data

    @classmethod
    def run_code(cls, code, want_outcome):
        status, data = cls.call("POST", "/v1/execute", {"parts": [code_part(code)]})
        assert status == 200, (status, data)
        outcomes = [r["outcome"] for r in results(data)]
        assert want_outcome in outcomes, (want_outcome, data)
        return data

    @classmethod
    def send_traffic(cls):
        for _ in range(OK):
            cls.run_code("print(1+1)", "OUTCOME_OK")
        for _ in range(FAILED):
            cls.run_code("1/0", "OUTCOME_FAILED")
        for _ in range(DEADLINE):
            cls.run_code("while True: pass", "OUTCOME_DEADLINE_EXCEEDED")
        for _ in range(CUT):
            data = cls.run_code(f"print('x' * {OUTPUT_BYTES * 4})", "OUTCOME_OK")
            assert data["executionMetadata"]["limitReached"] == "OUTPUT_BYTES", data
        assert cls.call("POST", "/v1/execute", "{")[0] == 400
        assert cls.call("POST", "/v1/execute", {"parts": [code_part("print(1)")]},
                        headers={})[0] == 401
        assert cls.call("GET", "/v1/execute")[0] == 405
        assert cls.call("GET", "/v1/no-such-thing")[0] == 404
        assert cls.call("GET", "/another/unknown/path")[0] == 404
        status, kept = cls.call("POST", "/v1/sessions", {})
        assert status == 200, kept
        status, gone = cls.call("POST", "/v1/sessions", {})
        assert status == 200, gone
        cls.session_id = kept["name"].split("/")[1]
        for _ in range(SESSION_EXECUTIONS):
            status, data = cls.call("POST", f"/v1/sessions/{cls.session_id}:execute",
                                    {"parts": [code_part("x = 1")]})
            assert status == 200, data
        assert cls.call("DELETE", "/v1/sessions/" + gone["name"].split("/")[1])[0] == 200

    def scrape(self):
        status, text, headers = self.server.request("GET", "/metrics", headers=AUTH)
        self.assertEqual(status, 200, text)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        return text

    def test_1_the_counts_of_the_traffic(self):
        got = samples(self.scrape())
        for key, want in EXPECTED.items():
            with self.subTest(key=key):
                self.assertEqual(got.get(key), want, key)

    def test_2_histogram_buckets_are_cumulative_and_end_in_the_count(self):
        text = self.scrape()
        got = samples(text)
        series = {}
        for key, v in got.items():
            m = re.match(r'(\w+)_bucket\{(.*)le="([^"]+)"\}$', key)
            if m:
                series.setdefault((m.group(1), m.group(2)), []).append((m.group(3), v))
        self.assertIn(("pyexecd_phase_seconds", 'phase="run",'), series)
        self.assertIn(("pyexecd_http_request_duration_seconds", 'route="/v1/execute",'), series)
        for (name, labels), buckets in series.items():
            with self.subTest(name=name, labels=labels):
                counts = [v for _, v in buckets]
                self.assertEqual(counts, sorted(counts), "buckets must not decrease")
                self.assertEqual(buckets[-1][0], "+Inf")
                plain = labels.rstrip(",")
                self.assertEqual(buckets[-1][1], got[f"{name}_count{{{plain}}}"])
                self.assertGreaterEqual(got[f"{name}_sum{{{plain}}}"], 0)
        # The deadline run took at least its deadline, so the run phase's sum does too.
        self.assertGreaterEqual(got['pyexecd_phase_seconds_sum{phase="run"}'],
                                DEADLINE_MS / 1000)
        # Every execution found a pooled worker or waited for one: nothing else.
        self.assertEqual(got['pyexecd_phase_seconds_count{phase="worker_start"}'],
                         got['pyexecd_phase_seconds_count{phase="run"}'])

    def test_3_labels_are_templates_never_paths(self):
        text = self.scrape()
        self.assertNotIn(self.session_id, text)
        self.assertNotIn("no-such-thing", text)
        self.assertNotIn("unknown", text)
        self.assertNotIn("scraper", text, "no API key id is a label")
        self.assertNotIn(KEY, text)
        routes = set(re.findall(r'route="([^"]*)"', text))
        self.assertLessEqual(routes, {"/v1/execute", "/v1/sessions", "/v1/sessions/{id}",
                                      "/v1/sessions/{id}:execute", "/metrics", "/healthz",
                                      "/readyz", "other"})

    def test_4_metrics_need_a_key_when_the_server_has_keys(self):
        status, body = self.call("GET", "/metrics", headers={})
        self.assertEqual(status, 401, body)
        self.assertEqual(body["error"]["status"], "UNAUTHENTICATED")
        status, body = self.call("GET", "/metrics", headers={"Authorization": "Bearer " + KEY})
        self.assertEqual(status, 200)
        self.assertEqual(self.call("POST", "/metrics", b"")[0], 405)
        # The probes still answer anyone.
        self.assertEqual(self.call("GET", "/healthz", headers={})[0], 200)

    def test_5_promtool_accepts_the_exposition(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("skipped: no promtool (make setup-ops installs Debian's prometheus)")
        proc = subprocess.run([promtool, "check", "metrics"], input=self.scrape(),
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(proc.stdout.strip() + proc.stderr.strip(), "",
                         "promtool's linter found something")

    def test_6_a_real_prometheus_scrapes_the_exact_counts(self):
        prometheus = shutil.which("prometheus")
        if not prometheus:
            self.skipTest("skipped: no prometheus (make setup-ops installs Debian's)")
        key_file = os.path.join(self.tmp, "scrape-key")
        with open(key_file, "w") as f:
            f.write(KEY)
        # Bearer, as deploy/kubernetes/README.md tells the kubernetes-pods job to send it.
        config = os.path.join(self.tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: pyexecd\n    metrics_path: /metrics\n"
                    f"    authorization:\n      credentials_file: {key_file}\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{self.server.port}']\n")
        port = free_port()
        log_path = os.path.join(self.tmp, "prometheus.log")
        log = open(log_path, "w")   # a file, not a pipe nobody reads while it runs
        proc = subprocess.Popen(
            [prometheus, f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(self.tmp, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=log)

        def prometheus_log():
            with open(log_path) as f:
                return f.read()[-3000:]
        try:
            def query(q):
                path = "/api/v1/query?query=" + urllib.parse.quote(q)
                status, data, _ = http_request("127.0.0.1", port, "GET", path, timeout=10)
                assert status == 200 and data["status"] == "success", data
                return {tuple(sorted(r["metric"].items())): float(r["value"][1])
                        for r in data["data"]["result"]}

            def scraped():
                assert proc.poll() is None, prometheus_log()
                up = query('up{job="pyexecd"}')
                return up and list(up.values()) == [1.0] and query("pyexecd_build_info")

            try:
                wait_for(scraped, 60, "Prometheus to scrape pyexecd", interval=0.25)
            except AssertionError as e:
                raise AssertionError(f"{e}\n{prometheus_log()}") from None
            for key, want in EXPECTED.items():
                with self.subTest(key=key):
                    got = query(key)   # a sample's text is a PromQL selector
                    self.assertEqual(list(got.values()), [want], (key, got))
            # +Inf is the count, in what Prometheus stored.
            inf = query('pyexecd_phase_seconds_bucket{le="+Inf"}')
            count = query("pyexecd_phase_seconds_count")
            self.assertEqual(sorted(inf.values()), sorted(count.values()))
            self.assertEqual(len(inf), 4)
            # Prometheus's own scrapes are counted like any request.
            scrapes = query('pyexecd_http_requests_total{route="/metrics",code="200"}')
            self.assertGreaterEqual(list(scrapes.values())[0], 1)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


if __name__ == "__main__":
    unittest.main()
