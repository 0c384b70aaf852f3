"""Traceback profiles (--fidelity, the X-Pyexecd-Fidelity header) and GET /v1/environment,
through the real server.

Run: PYEXECD_BIN=build/pyexecd python3 tests/integration/test_fidelity_environment.py -v
"""

import json
import subprocess
import tempfile
import unittest

from harness import BINARY, Server, code_part, results

CURRENT = ('Traceback (most recent call last):\n'
           '  File "/usr/bin/entry/named_interpreters/python/interpreter", line 98, in '
           '_run_python\n')
OLD = ('Traceback (most recent call last):\n'
       '  File "/usr/bin/entry/entry_point", line 117, in _run_python\n')
PLAIN = ('Traceback (most recent call last):\n'
         '  File "<string>", line 1, in <module>\n'
         'ZeroDivisionError: division by zero\n')
FAILING = "1/0"
VERTEX = {"altair", "chess", "opencv-python-headless", "matplotlib", "mpmath", "numpy",
          "pandas", "pdfminer.six", "reportlab", "seaborn", "scikit-learn", "statsmodels",
          "striprtf", "sympy", "tabulate"}


def failed_output(server, headers=None):
    status, body, _ = server.request("POST", "/v1/execute", code_part(FAILING),
                                     headers=headers or {})
    assert status == 200, body
    return results(body)[0]["output"]


class FidelityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(workers=1, pool=1).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_default_is_current(self):
        out = failed_output(self.server)
        self.assertTrue(out.startswith("division by zero\n" + CURRENT), out)

    def test_header_chooses_each_profile(self):
        for name, head in (("current", "division by zero\n" + CURRENT),
                           ("2025", "division by zero\n" + OLD), ("plain", PLAIN)):
            with self.subTest(profile=name):
                out = failed_output(self.server, {"X-Pyexecd-Fidelity": name})
                self.assertTrue(out.startswith(head), out)
                if name == "plain":
                    self.assertEqual(out, PLAIN)

    def test_bad_header_is_400(self):
        status, body, _ = self.server.request("POST", "/v1/execute", code_part(FAILING),
                                              headers={"X-Pyexecd-Fidelity": "1999"})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["status"], "INVALID_ARGUMENT")
        self.assertIn("X-Pyexecd-Fidelity", body["error"]["message"])

    def test_header_on_generate_content(self):
        req = {"contents": [{"role": "user", "parts": [
            {"text": "```python\n1/0\n```"}]}], "tools": [{"codeExecution": {}}]}
        status, body, _ = self.server.request(
            "POST", "/v1beta/models/echo:generateContent", req,
            headers={"X-Pyexecd-Fidelity": "2025", "Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        outs = [p["codeExecutionResult"]["output"] for p in
                body["candidates"][0]["content"]["parts"] if "codeExecutionResult" in p]
        self.assertEqual(len(outs), 1, body)
        self.assertTrue(outs[0].startswith("division by zero\n" + OLD), outs)

    def test_environment(self):
        status, env, headers = self.server.request("GET", "/v1/environment")
        self.assertEqual(status, 200, env)
        self.assertRegex(env["python"], r"^3\.\d+\.\d+$")
        self.assertEqual(env["policy"], "policies/default.policy")
        libs = {l["name"]: l for l in env["libraries"]}
        for name in VERTEX:
            self.assertIn(name, libs)
            self.assertIsInstance(libs[name]["version"], str, libs[name])
            self.assertEqual(libs[name]["documentedIn"], ["vertex", "geminiApi"])
        vertex = env["documentedLists"]["vertex"]
        self.assertEqual(vertex, {"missing": [], "libraries": 15, "present": 15})
        gemini = env["documentedLists"]["geminiApi"]
        self.assertEqual(gemini["libraries"], len(env["libraries"]))
        self.assertEqual(gemini["present"] + len(gemini["missing"]), gemini["libraries"])
        for name in gemini["missing"]:
            self.assertIsNone(libs[name]["version"])
            self.assertEqual(libs[name]["documentedIn"], ["geminiApi"])
        # What the interpreter says of itself agrees.
        code = ("from importlib import metadata\n"
                "print(metadata.version('numpy'))\n")
        out = results(self.server.run(code))[0]["output"]
        self.assertEqual(out.strip(), libs["numpy"]["version"])


class FidelityFlagTest(unittest.TestCase):
    def test_flag_sets_the_default(self):
        with Server("--fidelity", "plain", workers=1, pool=1) as s:
            self.assertEqual(failed_output(s), PLAIN)
            out = failed_output(s, {"X-Pyexecd-Fidelity": "current"})
            self.assertTrue(out.startswith("division by zero\n" + CURRENT), out)

    def test_flag_and_runner_frame_refused_together(self):
        for flags in (["--fidelity", "2025", "--runner-frame", "x:5"],
                      ["--fidelity", "nope"]):
            with self.subTest(flags=flags):
                p = subprocess.run([BINARY, *flags, "--listen", "127.0.0.1:0",
                                    "--state-dir", tempfile.mkdtemp()],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("fidelity", p.stderr)


if __name__ == "__main__":
    unittest.main()
