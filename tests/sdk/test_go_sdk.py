"""google.golang.org/genai (the Go Gen AI SDK, the version go/go.mod pins) against the real
pyexecd: every scenario of sdk_common.SdkSuite plus the documentation's example, each run
by the client program of go/ (built by scripts/setup-sdk.sh into
/opt/pyexecd/sdk-go/genai-client), the SDK pointed at the server with only
`genai.ClientConfig{APIKey: "local", Backend: genai.BackendGeminiAPI,
HTTPOptions: genai.HTTPOptions{BaseURL: ...}}`.

Skips (the reason starting "skipped:") only when the client could not be built, for the
reason the set-up wrote (no Go toolchain that fits, say).

Run: PYEXECD_BIN=build/pyexecd python3 tests/sdk/test_go_sdk.py -v
"""

import glob
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sdk_common import (CLIENT_TIMEOUT, GO_DIR, GO_OUT, SdkSuite, SeedCases,  # noqa: E402
                        clean_env, read_stamp, sha256_of)

GO_CLIENT = os.path.join(GO_OUT, "genai-client")


class GoSdkTest(SdkSuite, SeedCases, unittest.TestCase):
    SDK = "google.golang.org/genai"

    @classmethod
    def missing(cls):
        if os.access(GO_CLIENT, os.X_OK):
            return None
        why = read_stamp(os.path.join(GO_OUT, "NOT-BUILT"))
        return f"the Go SDK client is not built: {why or 'run scripts/setup-sdk.sh'}"

    def run_client(self, spec):
        proc = subprocess.run([GO_CLIENT], input=json.dumps(spec), capture_output=True,
                              text=True, timeout=CLIENT_TIMEOUT, env=clean_env())
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            self.fail(f"genai-client {spec['scenario']} exited {proc.returncode}:\n"
                      f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        out = json.loads(lines[-1])
        if "exception" in out:
            self.fail(f"genai-client {spec['scenario']} failed: {json.dumps(out['exception'])}")
        return out

    def test_client_built_from_current_sources(self):
        sources = [os.path.join(GO_DIR, "go.mod"), os.path.join(GO_DIR, "go.sum")]
        sources += sorted(glob.glob(os.path.join(GO_DIR, "*.go")))
        self.assertEqual(read_stamp(GO_CLIENT + ".src"), sha256_of(*sources),
                         f"{GO_CLIENT} was built from other sources: run scripts/setup-sdk.sh")


if __name__ == "__main__":
    unittest.main()
