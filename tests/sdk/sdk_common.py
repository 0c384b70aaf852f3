"""What the three SDK test files share: the scripted models, the server they start, the
scenarios every SDK runs and what each must show.

Each test file (test_python_sdk.py, test_js_sdk.py, test_go_sdk.py) is a SdkSuite with one
method, run_client(spec): it hands a scenario to its SDK and returns the JSON that the SDK's typed
accessors gave (the JS and Go files run a client program that prints it; the Python file
calls the SDK in-process). spec is a dict:

    {"scenario": "generate", "baseUrl": "http://127.0.0.1:PORT", "model": "echo",
     "prompt": "...", "tools": true, ...}

and every scenario answers with the same shapes (RESPONSE, ERROR below), so one set of
assertions checks all three SDKs.

    RESPONSE = {"text", "executableCode", "codeExecutionResult"   (the SDK's accessors),
                "finishReason", "role", "modelVersion", "responseId",
                "usage": {"promptTokenCount", "candidatesTokenCount", "totalTokenCount",
                          "toolUsePromptTokenCount"},
                "parts": [{"kind": "text", "text"} | {"kind": "code", "language", "code", "id"}
                          | {"kind": "result", "outcome", "output", "id"}
                          | {"kind": "inlineData", "mimeType", "size", "head": hex of 8 bytes}
                          | {"kind": "other", "keys"}]}
    ERROR    = {"type": the SDK's error class, "code": HTTP status, "status", "message",
                "details": the error body's details list}

A missing value is null or absent (Go gives "" where the others give nothing): compare
through opt().

Scenarios: generate, stream, chat, chatStream, inputFile, retry, errorThenOk, models,
vertex (VertexCases: Python, JS), seed and seedChat (SeedCases: Python, Go); each call
answers {"response": RESPONSE} or {"error": ERROR}, a stream {"chunks": [RESPONSE...]}, as
the test methods below read them. A client that fails outright prints {"exception": ERROR}.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import unittest

SDK_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(SDK_DIR))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "integration"))

from harness import Server  # noqa: E402

# Where scripts/setup-sdk.sh installs the SDKs.
PREFIX = os.environ.get("PYEXECD_SDK_PREFIX", "/opt/pyexecd")
SDK_VENV = os.path.join(PREFIX, "sdk-venv")
NODE_BIN = os.path.join(PREFIX, "node", "bin", "node")
GO_OUT = os.path.join(PREFIX, "sdk-go")
JS_DIR = os.path.join(SDK_DIR, "js")
GO_DIR = os.path.join(SDK_DIR, "go")

CLIENT_TIMEOUT = 120
PNG_HEAD = b"\x89PNG\r\n\x1a\n".hex()
ID_RE = re.compile(r"^[a-z0-9]{8}$")


def clean_env(extra=None):
    """This environment without what would send an SDK elsewhere than the base URL it is
    given (GOOGLE_*, GEMINI_* variables, proxies)."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("GOOGLE_", "GEMINI_"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update(extra or {})
    return env


def sha256_of(*paths):
    """The sha256 (hex) of the files' bytes one after the other, as `cat ... | sha256sum`
    gives it in scripts/setup-sdk.sh's stamps."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def read_stamp(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def opt(value):
    """A missing value, whichever way an SDK spells it ("", None, absent), as None."""
    return value if value not in ("", None) else None


# --- the models the server is started with ----------------------------------------------

def text(t):
    return {"text": t}


def code(c):
    return {"executableCode": {"language": "PYTHON", "code": c}}


PRIMES_50 = """\
def is_prime(n):
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n ** 0.5) + 1))

primes = []
n = 2
while len(primes) < 50:
    if is_prime(n):
        primes.append(n)
    n += 1
print(sum(primes))
"""

PRIMES_100_PLOT = """\
import matplotlib.pyplot as plt
primes = []
n = 2
while len(primes) < 100:
    if all(n % p for p in primes if p * p <= n):
        primes.append(n)
    n += 1
print(sum(primes))
plt.plot(range(1, 101), primes)
plt.title("The first 100 primes")
plt.show()
"""

RETRY_FIRST = "values = [4, 0, 2]\nratios = [10 / v for v in values]\nprint(ratios)"
RETRY_SECOND = "ratios = [10 / v for v in values if v]\nprint(ratios)"

SCRIPT_MODEL = "gemini-2.5-flash"
RETRY_MODEL = "retry-model"
FLAKY_RETRY_MODEL = "flaky-retry"      # 429 on the first two attempts
FLAKY_ONCE_MODEL = "flaky-once"        # 429 on the first attempt only
DEADLINE_MODEL = "slow-block"          # a block under a 300 ms deadline
CUT_MODEL = "cut-stream"               # a stream cut after two events
ECHO_ALIAS = "local-echo"              # --model local-echo=echo

FAULT_429 = {"code": 429, "status": "RESOURCE_EXHAUSTED",
             "message": "Resource has been exhausted (e.g. check quota).", "retryDelay": "1s"}

SCRIPTS = {
    # The documentation's examples (tests' prompts PRIMES_PROMPT, CHAT_PROMPTS): three
    # turns, the second with a plot.
    SCRIPT_MODEL: [
        {"parts": [text("I'll write a program that finds the first 50 primes and adds them."),
                   code(PRIMES_50),
                   text("The sum of the first 50 prime numbers is 5117.")]},
        {"parts": [text("Same for 100, with a plot of them."),
                   code(PRIMES_100_PLOT),
                   text("The sum of the first 100 primes is 24133.")]},
        {"parts": [text("Subtracting:"), code("print(24133 - 5117)"),
                   text("The difference is 19016.")]},
    ],
    # A failing block, then the model's retry in the same turn (globals persist).
    RETRY_MODEL: [
        {"parts": [text("I'll compute 10 / v for each value."), code(RETRY_FIRST),
                   text("One value is zero; I'll leave it out."), code(RETRY_SECOND),
                   text("The ratios are 2.5 and 5.0.")]},
    ],
    FLAKY_RETRY_MODEL: [
        {"fault": {"error": FAULT_429}, "times": 2,
         "parts": [text("Recovered."), code("print('served after two 429s')"), text("Done.")]},
    ],
    FLAKY_ONCE_MODEL: [
        {"fault": {"error": FAULT_429}, "times": 1,
         "parts": [text("Second try."), code("print('served on the second call')"),
                   text("Done.")]},
    ],
    DEADLINE_MODEL: [
        {"fault": {"deadlineMs": 300},
         "parts": [text("This takes a while."),
                   code("import time\nprint('started', flush=True)\ntime.sleep(20)"),
                   text("It timed out.")]},
    ],
    CUT_MODEL: [
        {"fault": {"cutAfterEvents": 2},
         "parts": [text("Step one."), code("print(1)"), text("Step two."), code("print(2)"),
                   text("Done.")]},
    ],
}

# Every name the server serves (models.list must show each).
ALL_MODELS = ["echo", ECHO_ALIAS] + list(SCRIPTS)

# --- prompts ----------------------------------------------------------------------------

PLAIN_PROMPT = "What is 6 times 7? Run this:\n```python\nprint(6 * 7)\n```\n"
PLAIN_CODE = "print(6 * 7)"

STREAM_PROMPT = ("Two steps.\n```python\nx = 20\nprint(x)\n```\nThen:\n"
                 "```python\nprint(x + 22)\n```\n")
STREAM_CODES = ["x = 20\nprint(x)", "print(x + 22)"]
STREAM_OUTPUTS = ["20\n", "42\n"]

PLOT_PROMPT = ("Plot the squares.\n```python\nimport matplotlib.pyplot as plt\n"
               "plt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares')\nplt.show()\n```\n")

CSV_TEXT = "x,y\n1,2\n3,4\n5,6\n"
CSV_PROMPT = ("Sum the columns of the attached file.\n```python\nimport pandas as pd\n"
              "df = pd.read_csv('input_file_0.csv')\nprint(df.x.sum(), df.y.sum())\n```\n")
CSV_OUTPUT = "9 12\n"

# The Gemini documentation's code-execution prompt.
PRIMES_PROMPT = ("What is the sum of the first 50 prime numbers? Generate and run code for "
                 "the calculation, and make sure you get all 50.")
CHAT_PROMPTS = [PRIMES_PROMPT,
                "Now the sum of the first 100 primes, and plot them.",
                "What is the difference between the two sums?"]
CHAT_OUTPUTS = ["5117\n", "24133\n", "19016\n"]


def model_flags(script_dir):
    """Writes the scripts into script_dir; returns the server's --model flags."""
    flags = ["--model", f"{ECHO_ALIAS}=echo"]
    for name, lines in SCRIPTS.items():
        path = os.path.join(script_dir, name + ".jsonl")
        with open(path, "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        flags += ["--model", f"{name}=script:{path}"]
    return flags


# --- the scenarios, for every SDK -------------------------------------------------------

class SdkSuite:
    """Mixed into a unittest.TestCase (VertexCases and SeedCases add two more). Subclasses
    set SDK (a label) and define missing() (why the SDK cannot run here, or None) and
    run_client(spec)."""

    SDK = "?"

    @classmethod
    def missing(cls):
        raise NotImplementedError

    def run_client(self, spec):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        why = cls.missing()
        if why:
            raise unittest.SkipTest(f"skipped: {why}")
        cls.script_dir = tempfile.mkdtemp(prefix="pyexecd-sdk-")
        try:
            cls.server = Server(*model_flags(cls.script_dir)).start()
        except BaseException:
            shutil.rmtree(cls.script_dir, ignore_errors=True)
            raise
        cls.base_url = f"http://127.0.0.1:{cls.server.port}"

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            shutil.rmtree(cls.script_dir, ignore_errors=True)

    # --- helpers ---

    def call(self, scenario, **spec):
        out = self.run_client(dict(spec, scenario=scenario, baseUrl=self.base_url))
        self.assertIsInstance(out, dict, out)
        return out

    def response(self, out, key="response"):
        """out[key], failing with what came instead when it is not a response."""
        self.assertIn(key, out, f"{self.SDK}: expected a response, got {json.dumps(out)[:2000]}")
        return out[key]

    def kinds(self, resp):
        return [p["kind"] for p in resp["parts"]]

    def blocks(self, resp):
        """[(code part, result part)] of a response, asserting each result follows its code."""
        parts = [p for p in resp["parts"] if p["kind"] in ("code", "result")]
        self.assertEqual([p["kind"] for p in parts], ["code", "result"] * (len(parts) // 2),
                         self.kinds(resp))
        pairs = list(zip(parts[0::2], parts[1::2]))
        for c, r in pairs:
            self.assertEqual(c["language"], "PYTHON")
            if opt(c.get("id")):
                self.assertEqual(r.get("id"), c["id"], "a result carries its code's id")
        return pairs

    def check_response(self, resp, model):
        """What every whole (unary) reply has, and the accessors agreeing with its parts."""
        self.assertEqual(resp["role"], "model")
        self.assertEqual(resp["finishReason"], "STOP")
        self.assertEqual(resp["modelVersion"], model)
        self.assertTrue(opt(resp.get("responseId")))
        self.assertGreater(resp["usage"]["promptTokenCount"] or 0, 0)
        self.assertGreater(resp["usage"]["totalTokenCount"] or 0, 0)
        self.assertTrue(resp["parts"])
        self.check_accessors(resp)

    def check_accessors(self, resp):
        """executableCode / codeExecutionResult are the first code part and result, text
        the text parts joined."""
        codes = [p for p in resp["parts"] if p["kind"] == "code"]
        results = [p for p in resp["parts"] if p["kind"] == "result"]
        texts = [p["text"] for p in resp["parts"] if p["kind"] == "text"]
        self.assertEqual(opt(resp.get("executableCode")), codes[0]["code"] if codes else None)
        self.assertEqual(opt(resp.get("codeExecutionResult")),
                         opt(results[0].get("output")) if results else None)
        self.assertEqual(opt(resp.get("text")), opt("".join(texts)))

    def check_png(self, part):
        self.assertEqual(part["kind"], "inlineData")
        self.assertEqual(part["mimeType"], "image/png")
        self.assertEqual(part["head"], PNG_HEAD)
        self.assertGreater(part["size"], 1000)

    def check_429(self, err):
        self.assertEqual(err["code"], 429, err)
        self.assertEqual(opt(err.get("status")), "RESOURCE_EXHAUSTED", err)
        self.assertIn(FAULT_429["message"], err.get("message") or "", err)

    # --- the scenarios ---

    def test_plain_call(self):
        resp = self.response(self.call("generate", model="echo", prompt=PLAIN_PROMPT, tools=True))
        self.check_response(resp, "echo")
        self.assertEqual(self.kinds(resp), ["text", "code", "result", "text"])
        [(c, r)] = self.blocks(resp)
        self.assertEqual(c["code"].strip(), PLAIN_CODE)
        self.assertRegex(c["id"], ID_RE)
        self.assertEqual(r["outcome"], "OUTCOME_OK")
        self.assertEqual(r["output"], "42\n")
        self.assertEqual(resp["executableCode"].strip(), PLAIN_CODE)
        self.assertEqual(resp["codeExecutionResult"], "42\n")
        self.assertTrue(opt(resp["text"]))

    def test_without_the_code_tool_nothing_runs(self):
        resp = self.response(self.call("generate", model="echo", prompt=PLAIN_PROMPT, tools=False))
        self.check_response(resp, "echo")
        self.assertEqual(self.kinds(resp), ["text"])
        self.assertIn("not enabled", resp["text"].lower())
        self.assertIsNone(opt(resp.get("executableCode")))

    def test_bound_echo_name(self):
        resp = self.response(self.call("generate", model=ECHO_ALIAS, prompt=PLAIN_PROMPT,
                                       tools=True))
        self.check_response(resp, ECHO_ALIAS)
        self.assertEqual(resp["codeExecutionResult"], "42\n")

    def test_stream(self):
        out = self.call("stream", model="echo", prompt=STREAM_PROMPT, tools=True)
        self.assertIn("chunks", out, out)
        chunks = out["chunks"]
        self.assertGreaterEqual(len(chunks), 3)
        for ch in chunks:
            self.assertEqual(ch["role"], "model")
            self.assertTrue(ch["parts"], "every event holds a part")
            self.check_accessors(ch)
        self.assertEqual(chunks[-1]["finishReason"], "STOP")
        self.assertGreater(chunks[-1]["usage"]["totalTokenCount"] or 0, 0)
        located = [(i, p) for i, ch in enumerate(chunks) for p in ch["parts"]
                   if p["kind"] in ("code", "result")]
        self.assertEqual([p["kind"] for _, p in located], ["code", "result"] * 2)
        for k in range(2):
            (ci, c), (ri, r) = located[2 * k], located[2 * k + 1]
            self.assertEqual(c["code"].strip(), STREAM_CODES[k])
            self.assertEqual(ri, ci + 1, "a code part's result comes in the next event")
            self.assertEqual(r["outcome"], "OUTCOME_OK")
            self.assertEqual(r["output"], STREAM_OUTPUTS[k], "globals persist across blocks")
            self.assertEqual(r["id"], c["id"])

    def check_chat_turns(self, turns):
        self.assertEqual(len(turns), 3)
        for k, resp in enumerate(turns):
            self.check_response(resp, SCRIPT_MODEL)
            pairs = self.blocks(resp)
            self.assertEqual(len(pairs), 1, self.kinds(resp))
            self.assertEqual(pairs[0][1]["outcome"], "OUTCOME_OK")
            # The script answers by the model turns the request carries: turn k's answer
            # shows that the SDK sent the k earlier ones back.
            self.assertEqual(pairs[0][1]["output"], CHAT_OUTPUTS[k], f"turn {k + 1}")
        self.assertEqual(turns[0]["executableCode"].rstrip("\n"), PRIMES_50.rstrip("\n"))
        images = [p for p in turns[1]["parts"] if p["kind"] == "inlineData"]
        self.assertEqual(len(images), 1)
        self.check_png(images[0])
        self.assertEqual(self.kinds(turns[1]), ["text", "code", "result", "inlineData", "text"])

    def check_history(self, history, turns):
        self.assertEqual([h["role"] for h in history], ["user", "model"] * turns, history)
        for h in history[1::2]:
            self.assertIn("code", h["kinds"])
            self.assertIn("result", h["kinds"])

    def test_chat_three_turns(self):
        out = self.call("chat", model=SCRIPT_MODEL, prompts=CHAT_PROMPTS, tools=True)
        self.assertIn("turns", out, out)
        self.check_chat_turns([self.response(t) for t in out["turns"]])
        self.check_history(out["history"], 3)
        self.assertIn("inlineData", out["history"][3]["kinds"], "the plot is in the history")

    def test_chat_streamed(self):
        out = self.call("chatStream", model=SCRIPT_MODEL, prompts=CHAT_PROMPTS[:2], tools=True)
        self.assertIn("turns", out, out)
        self.assertEqual(len(out["turns"]), 2)
        for k, turn in enumerate(out["turns"]):
            self.assertIn("chunks", turn, turn)
            chunks = turn["chunks"]
            self.assertEqual(chunks[-1]["finishReason"], "STOP")
            results = [p for ch in chunks for p in ch["parts"] if p["kind"] == "result"]
            self.assertEqual([r["output"] for r in results], [CHAT_OUTPUTS[k]])
        # A streamed chat keeps one model content per event, or merges them: either way
        # both model turns and their code are there.
        roles = [h["role"] for h in out["history"]]
        self.assertEqual(roles[0], "user")
        self.assertEqual(roles.count("user"), 2)
        kinds = [k for h in out["history"] for k in h["kinds"]]
        self.assertEqual(kinds.count("code"), 2)

    def test_plot_comes_back_as_png(self):
        resp = self.response(self.call("generate", model="echo", prompt=PLOT_PROMPT, tools=True))
        self.check_response(resp, "echo")
        self.assertEqual(self.kinds(resp), ["text", "code", "result", "inlineData", "text"])
        [(c, r)] = self.blocks(resp)
        self.assertEqual(r["outcome"], "OUTCOME_OK")
        self.assertIsNone(opt(r.get("output")), "a silent block has no output")
        self.check_png(resp["parts"][3])

    def test_input_file(self):
        data = base64.b64encode(CSV_TEXT.encode()).decode()
        resp = self.response(self.call("inputFile", model="echo", prompt=CSV_PROMPT, tools=True,
                                       file={"mimeType": "text/csv", "data": data}))
        self.check_response(resp, "echo")
        [(c, r)] = self.blocks(resp)
        self.assertEqual(r["outcome"], "OUTCOME_OK", r)
        self.assertEqual(r["output"], CSV_OUTPUT)

    def test_failed_block_then_the_models_retry(self):
        resp = self.response(self.call("generate", model=RETRY_MODEL, prompt="Divide 10 by each.",
                                       tools=True))
        self.check_response(resp, RETRY_MODEL)
        self.assertEqual(self.kinds(resp), ["text", "code", "result", "text", "code", "result",
                                            "text"])
        (c1, r1), (c2, r2) = self.blocks(resp)
        self.assertEqual(c1["code"], RETRY_FIRST)
        self.assertEqual(r1["outcome"], "OUTCOME_FAILED")
        self.assertIn("ZeroDivisionError: division by zero", r1["output"])
        self.assertIn('File "<string>", line 2', r1["output"])
        self.assertEqual(c2["code"], RETRY_SECOND)
        self.assertEqual(r2["outcome"], "OUTCOME_OK")
        self.assertEqual(r2["output"], "[2.5, 5.0]\n")
        self.assertEqual(resp["executableCode"], RETRY_FIRST)
        self.assertIn("ZeroDivisionError", resp["codeExecutionResult"])

    def test_429_recovered_by_the_retry_option(self):
        # Two 429s, then the turn: only an SDK that retried (3 attempts) gets it.
        out = self.call("retry", model=FLAKY_RETRY_MODEL, prompt="Go.", tools=True,
                        retry={"attempts": 3, "initialDelay": 0.1, "maxDelay": 0.5,
                               "jitter": 0.0})
        resp = self.response(out)
        self.check_response(resp, FLAKY_RETRY_MODEL)
        self.assertEqual(resp["codeExecutionResult"], "served after two 429s\n")

    def test_429_without_retry_is_the_sdks_error(self):
        out = self.call("errorThenOk", model=FLAKY_ONCE_MODEL, prompt="Go.", tools=True)
        self.assertIn("error", out["first"], f"no retry by default, so the 429 shows: {out}")
        err = out["first"]["error"]
        self.check_429(err)
        retry_info = [d for d in err.get("details") or []
                      if str(d.get("@type", "")).endswith("google.rpc.RetryInfo")]
        self.assertEqual(len(retry_info), 1, err)
        self.assertEqual(retry_info[0].get("retryDelay"), "1s")
        # The fault fired once: the same call again is served.
        resp = self.response(out["second"])
        self.assertEqual(resp["codeExecutionResult"], "served on the second call\n")

    def test_unknown_model_is_not_found(self):
        out = self.call("generate", model="no-such-model", prompt=PLAIN_PROMPT, tools=True)
        self.assertIn("error", out, out)
        self.assertEqual(out["error"]["code"], 404)
        self.assertEqual(opt(out["error"].get("status")), "NOT_FOUND")

    def test_models_list_get_and_count_tokens(self):
        out = self.call("models", model=SCRIPT_MODEL, pageSize=2, prompt="hello world, count me")
        self.assertIn("names", out, out)
        for name in ALL_MODELS:
            self.assertIn(f"models/{name}", out["names"])
        self.assertEqual(len(out["names"]), len(set(out["names"])), "no model listed twice")
        self.assertGreaterEqual(out["pages"], 2, "pageSize 2 pages")
        self.assertEqual(out["get"], f"models/{SCRIPT_MODEL}")
        self.assertGreater(out["totalTokens"] or 0, 0)


class VertexCases:
    """Vertex AI mode (vertexai with the dummy key and the base URL): the
    publishers/google/models/... paths."""

    def test_vertex_mode(self):
        out = self.call("vertex", model="echo", prompt=PLAIN_PROMPT, tools=True)
        resp = self.response(out)
        self.check_response(resp, "echo")
        self.assertEqual(resp["codeExecutionResult"], "42\n")
        self.assertGreater(out["totalTokens"] or 0, 0)


class SeedCases:
    """The Gemini documentation's own example, as written but for base URL and key."""

    def test_seed_example(self):
        """It prints the reply's text, code and output."""
        out = self.call("seed")
        resp = self.response(out)
        self.check_response(resp, SCRIPT_MODEL)
        printed = "\n".join(out["printed"])
        self.assertIn("The sum of the first 50 prime numbers is 5117.", printed)
        self.assertIn("while len(primes) < 50:", printed)
        self.assertIn("5117\n", printed)
        self.assertEqual(resp["codeExecutionResult"], "5117\n")

    def test_seed_chat(self):
        """The documentation's chat example: the same prompt, then two follow-ups; each turn
        is answered from the model turns the SDK sent back."""
        out = self.call("seedChat")
        self.assertIn("turns", out, out)
        turns = [self.response(t) for t in out["turns"]]
        self.assertEqual([t["codeExecutionResult"] for t in turns], CHAT_OUTPUTS)
        printed = "\n".join(out["printed"])
        for line in ("The sum of the first 50 prime numbers is 5117.", "19016\n",
                     "The difference is 19016."):
            self.assertIn(line, printed)
