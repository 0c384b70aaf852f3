"""The README's agent loops (docs/examples/agent_loop.py and agent_loop.mjs), run as a
user runs them: the real SDKs, the real server with the script model of
docs/examples/agent_script.jsonl, whose second turn first answers 429 (the loop's retry
option gets the turn). Each loop must print both turns' code, results and text.

Run: PYEXECD_BIN=build/pyexecd python3 -u tests/sdk/test_readme_examples.py -v
"""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdk_common import JS_DIR, NODE_BIN, REPO_ROOT, SDK_VENV, Server, clean_env  # noqa: E402

EXAMPLES = os.path.join(REPO_ROOT, "docs", "examples")
SCRIPT = os.path.join(EXAMPLES, "agent_script.jsonl")
TWO_TO_100 = str(2 ** 100)
DIGIT_SUM = str(sum(int(d) for d in str(2 ** 100)))


class ReadmeExamples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(f"--model=gemini-2.5-flash=script:{SCRIPT}").start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def run_example(self, argv, cwd):
        env = clean_env({"PYEXECD_URL": f"http://127.0.0.1:{self.server.port}"})
        p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        return p.stdout

    def check(self, out):
        # Turn 1: the code, 2**100 as it printed, the text; turn 2 (after the 429 retried):
        # the digit sum.
        self.assertIn("n = 2 ** 100", out)
        self.assertIn(TWO_TO_100 + "\n", out)
        self.assertIn("2**100 is the number above.", out)
        self.assertIn("print(sum(int(d) for d in str(2 ** 100)))", out)
        self.assertIn(DIGIT_SUM + "\n", out)
        self.assertIn("That is the digit sum.", out)

    def test_python_loop(self):
        python = os.path.join(SDK_VENV, "bin", "python")
        if not os.path.exists(python):
            self.skipTest("skipped: the Python SDK is not installed (scripts/setup-sdk.sh)")
        self.check(self.run_example([python, os.path.join(EXAMPLES, "agent_loop.py")],
                                    EXAMPLES))

    def test_javascript_loop(self):
        if not (os.path.exists(NODE_BIN)
                and os.path.isdir(os.path.join(JS_DIR, "node_modules", "@google", "genai"))):
            self.skipTest("skipped: Node and @google/genai are not installed "
                          "(scripts/setup-sdk.sh)")
        # Node resolves @google/genai from the script's own folder: run a copy beside the
        # tests' node_modules, exactly as written.
        copy = os.path.join(JS_DIR, f".readme-example-{os.getpid()}.mjs")
        shutil.copyfile(os.path.join(EXAMPLES, "agent_loop.mjs"), copy)
        try:
            self.check(self.run_example([NODE_BIN, copy], JS_DIR))
        finally:
            os.remove(copy)


if __name__ == "__main__":
    unittest.main()
