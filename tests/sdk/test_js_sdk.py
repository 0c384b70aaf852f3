"""@google/genai 3.3.0 (the JS Gen AI SDK) against the real pyexecd: every scenario of
sdk_common.SdkSuite plus Vertex mode, each run by js/client.mjs under the Node 22 that
scripts/setup-sdk.sh installs (/opt/pyexecd/node), the SDK pointed at the server with only
`new GoogleGenAI({apiKey: "local", httpOptions: {baseUrl}})`.

Skips (the reason starting "skipped:") only when that Node or the SDK is not installed.

Run: PYEXECD_BIN=build/pyexecd python3 tests/sdk/test_js_sdk.py -v
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sdk_common import (CLIENT_TIMEOUT, JS_DIR, NODE_BIN, PREFIX, SdkSuite,  # noqa: E402
                        VertexCases, clean_env, read_stamp, sha256_of)

GENAI_PACKAGE = os.path.join(JS_DIR, "node_modules", "@google", "genai", "package.json")
NODE_STAMP = os.path.join(PREFIX, "node", ".pyexecd-node")
JS_STAMP = os.path.join(JS_DIR, "node_modules", ".pyexecd-lock")


class JsSdkTest(SdkSuite, VertexCases, unittest.TestCase):
    SDK = "@google/genai"

    @classmethod
    def missing(cls):
        if not os.access(NODE_BIN, os.X_OK):
            return f"no Node 22 at {NODE_BIN} (scripts/setup-sdk.sh installs it)"
        if not os.path.isfile(GENAI_PACKAGE):
            return ("@google/genai is not installed in tests/sdk/js/node_modules "
                    "(scripts/setup-sdk.sh runs npm ci there)")
        return None

    def run_client(self, spec):
        proc = subprocess.run([NODE_BIN, "client.mjs"], cwd=JS_DIR, input=json.dumps(spec),
                              capture_output=True, text=True, timeout=CLIENT_TIMEOUT,
                              env=clean_env())
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            self.fail(f"client.mjs {spec['scenario']} exited {proc.returncode}:\n"
                      f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        out = json.loads(lines[-1])
        if "exception" in out:
            self.fail(f"client.mjs {spec['scenario']} raised: {json.dumps(out['exception'])}")
        return out

    def test_installed_versions(self):
        """The pinned Node and SDK, installed from the current package-lock.json."""
        node = subprocess.run([NODE_BIN, "--version"], capture_output=True, text=True)
        self.assertRegex(node.stdout.strip(), r"^v22\.")
        with open(GENAI_PACKAGE) as f:
            self.assertEqual(json.load(f)["version"], "3.3.0")
        self.assertEqual(read_stamp(JS_STAMP),
                         sha256_of(os.path.join(JS_DIR, "package-lock.json"), NODE_STAMP),
                         "tests/sdk/js/node_modules is not from the current package-lock.json: "
                         "run scripts/setup-sdk.sh")


if __name__ == "__main__":
    unittest.main()
