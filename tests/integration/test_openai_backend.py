"""The openai model backend (--model NAME=openai:URL,...) against a scripted fake
OpenAI-compatible server (fake_openai.py): the translation of a Gemini request into chat
messages and of the model's tool calls into executableCode / codeExecutionResult parts,
the loop's bounds, and every upstream failure a real server will not produce on demand,
each as the exact Google error. The server must stay healthy after each case, and leave no
process behind (the harness checks on stop). tests/llm/ runs the same backend against a
real model server."""

import json
import os
import re
import tempfile
import time
import unittest

from limits import LIMITS  # noqa: E402
from harness import Server
from fake_openai import (SCRIPTS, TOOL_CODE, TOOL_NAME, TOOL_OUTPUT, FakeOpenAI,
                         RefusingPort)

# The upstream call timeout for this server: the stalled upstream must be given up on
# after it, well before the default 120 s.
UPSTREAM_TIMEOUT_MS = 1500
MAX_EXECUTIONS = 10        # LIMIT_OPENAI_EXECUTIONS
MAX_FAILED_IN_ROW = 5      # LIMIT_OPENAI_FAILURES_IN_ROW
TOKEN = "s3cret-token-for-the-fake"
SYSTEM = "You are the test's model. Answer briefly."
PROMPT = "Compute the digest, please."


def gen_body(text=PROMPT, code_tool=True, system=SYSTEM, contents=None):
    body = {"contents": contents or [{"role": "user", "parts": [{"text": text}]}]}
    if code_tool:
        body["tools"] = [{"codeExecution": {}}]
    if system is not None:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    return body


def parts_of(body):
    cands = body["candidates"]
    assert len(cands) == 1, body
    assert cands[0]["content"]["role"] == "model", body
    return cands[0]["content"]["parts"]


def kinds(parts):
    """Each part's kind: "text", "executableCode", "codeExecutionResult", "inlineData"."""
    return [next(k for k in ("text", "executableCode", "codeExecutionResult", "inlineData")
                 if k in p) for p in parts]


def sse_events(raw):
    """The JSON events of an alt=sse body, checking its framing: `data: <one-line JSON>`
    then a blank line (CRLF CRLF), nothing else."""
    assert isinstance(raw, str), raw
    assert raw.endswith("\r\n\r\n"), repr(raw[-200:])
    chunks = raw.split("\r\n\r\n")
    assert chunks[-1] == "", repr(raw[-200:])
    events = []
    for chunk in chunks[:-1]:
        assert chunk.startswith("data: "), repr(chunk[:200])
        assert "\n" not in chunk and "\r" not in chunk, repr(chunk[:200])
        events.append(json.loads(chunk[len("data: "):]))
    return events


class OpenAIBackendTest(unittest.TestCase):
    """One pyexecd serving a model name per fake upstream script."""

    # model name -> (script, extra options)
    BINDINGS = {
        "ok": ("tool-then-text", ",tool-choice=required"),
        "ok-auto": ("tool-then-text", ""),
        "named": ("tool-then-text", ",tool-choice=run_python"),
        "renamed": ("text-only", ",model=upstream-model-7"),
        "keyed": ("text-only", None),          # key-file added in setUpClass
        "text": ("text-only", ""),
        "http500": ("http-500", ""),
        "garbage": ("garbage", ""),
        "truncated": ("truncated-json", ""),
        "nochoices": ("no-choices", ""),
        "emptychoices": ("empty-choices", ""),
        "stall": ("stall", ""),
        "badargs": ("bad-arguments", ""),
        "wrongtool": ("wrong-tool", ""),
        "midfail": ("tool-then-500", ""),
        "loop": ("endless-ok", ""),
        "failloop": ("endless-failing", ""),
        "stubborn": ("endless-stubborn", ""),
        "alternating": ("fail-then-succeed", ""),
        "two": ("two-calls-then-text", ""),
        "image": ("image-then-text", ""),
        "bigbody": ("body-at-limit", ""),
        "hugebody": ("body-past-limit", ""),
    }

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pyexecd-openai-test-")
        cls.key_file = os.path.join(cls.tmp, "key")
        with open(cls.key_file, "w") as f:
            f.write(TOKEN + "\n")
        cls.fakes = {}
        cls.refusing = RefusingPort()
        flags = ["--upstream-timeout-ms", str(UPSTREAM_TIMEOUT_MS)]
        try:
            for name, (script, opts) in cls.BINDINGS.items():
                assert script in SCRIPTS, script
                fake = FakeOpenAI(script).start()
                cls.fakes[name] = fake
                if opts is None:
                    opts = ",key-file=" + cls.key_file
                flags += ["--model", f"{name}=openai:{fake.base_url}{opts}"]
            flags += ["--model", f"refused=openai:{cls.refusing.base_url}"]
            cls.server = Server(*flags).start()
        except BaseException:
            cls._stop_fakes()
            raise

    @classmethod
    def _stop_fakes(cls):
        for fake in cls.fakes.values():
            fake.stop()
        cls.refusing.close()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            cls._stop_fakes()

    def tearDown(self):
        # After every case, failure or not: the server still serves.
        status, health = self.server.health()
        self.assertEqual(status, 200, health)
        self.assertEqual(health.get("status"), "ok", health)

    # --- helpers ---------------------------------------------------------------------------

    def generate(self, model, body=None, timeout=60):
        self.fakes.get(model) and self.fakes[model].requests.clear()
        status, data, _ = self.server.request(
            "POST", f"/v1beta/models/{model}:generateContent", body or gen_body(),
            headers={"Content-Type": "application/json"}, timeout=timeout)
        return status, data

    def stream(self, model, body=None, timeout=60):
        self.fakes[model].requests.clear()
        return self.server.request(
            "POST", f"/v1beta/models/{model}:streamGenerateContent?alt=sse",
            body or gen_body(), headers={"Content-Type": "application/json"},
            timeout=timeout)

    def ok(self, model, body=None):
        status, data = self.generate(model, body)
        self.assertEqual(status, 200, f"{data}\n{self.server.log_text()}")
        return data

    def google_error(self, model, code, status_name, *reasons, body=None, timeout=60):
        status, data = self.generate(model, body, timeout=timeout)
        self.assertEqual(status, code, data)
        self.assertIsInstance(data, dict, data)
        self.assertEqual(set(data), {"error"}, data)
        err = data["error"]
        self.assertEqual(err["code"], code, data)
        self.assertEqual(err["status"], status_name, data)
        for reason in reasons:
            self.assertRegex(err["message"], reason, data)
        return err["message"]

    def chat_requests(self, model):
        """The chat request bodies the fake of model received, all at the right path."""
        fake = self.fakes[model]
        for r in fake.requests:
            self.assertEqual(r["path"], "/v1/chat/completions", r)
            self.assertTrue(r["headers"].get("Content-Type", "").startswith(
                "application/json"), r["headers"])
            self.assertIsInstance(r["body"], dict, r)
            self.assertIs(r["body"].get("stream"), False, r["body"])
        return fake.bodies()

    def assert_tool_offered(self, req, choice):
        self.assertEqual(req["tool_choice"], choice, req)
        self.assertEqual(len(req["tools"]), 1, req["tools"])
        tool = req["tools"][0]
        self.assertEqual(tool["type"], "function", tool)
        fn = tool["function"]
        self.assertEqual(fn["name"], TOOL_NAME, tool)
        self.assertIsInstance(fn["description"], str)
        self.assertTrue(fn["description"])
        params = fn["parameters"]
        self.assertEqual(params["type"], "object", params)
        self.assertEqual(set(params["properties"]), {"code"}, params)
        self.assertEqual(params["properties"]["code"]["type"], "string", params)
        self.assertEqual(params["required"], ["code"], params)

    # --- the normal exchange -----------------------------------------------------------

    def test_tool_call_then_text(self):
        """A tool call is run in the turn's interpreter; its real output goes back in a tool
        message; the model's text ends the reply."""
        data = self.ok("ok")
        parts = parts_of(data)
        self.assertEqual(kinds(parts), ["executableCode", "codeExecutionResult", "text"], parts)
        code = parts[0]["executableCode"]
        self.assertEqual(code["language"], "PYTHON")
        self.assertEqual(code["code"], TOOL_CODE)
        result = parts[1]["codeExecutionResult"]
        self.assertEqual(result["outcome"], "OUTCOME_OK", result)
        self.assertEqual(result["output"], TOOL_OUTPUT, result)
        if "id" in code or "id" in result:
            self.assertEqual(code.get("id"), result.get("id"), parts)
        # The fake quotes the tool message it got: the real output made the round trip.
        self.assertEqual(parts[2]["text"], "The tool said: OUTCOME_OK\n" + TOOL_OUTPUT)
        self.assertEqual(data["candidates"][0]["finishReason"], "STOP", data)

        reqs = self.chat_requests("ok")
        self.assertEqual(len(reqs), 2, reqs)
        first, second = reqs
        # First call: system (the request's systemInstruction first), user text, the one
        # tool, tool_choice as configured; the model name is the Gemini name.
        self.assertEqual(first["model"], "ok", first)
        self.assertEqual([m["role"] for m in first["messages"]], ["system", "user"], first)
        self.assertTrue(first["messages"][0]["content"].startswith(SYSTEM), first)
        self.assertEqual(first["messages"][1]["content"], PROMPT, first)
        self.assert_tool_offered(first, "required")
        # Second call: the same, then the assistant's tool call and the tool's result;
        # tool_choice "auto" after the first call of a turn.
        msgs = second["messages"]
        self.assertEqual([m["role"] for m in msgs], ["system", "user", "assistant", "tool"], msgs)
        self.assertEqual(msgs[:2], first["messages"])
        asst = msgs[2]
        # No text: "", not null (llama-cpp-python refuses null) nor absent.
        self.assertEqual(asst["content"], "", asst)
        self.assertEqual(len(asst["tool_calls"]), 1, asst)
        call = asst["tool_calls"][0]
        self.assertEqual(call["id"], "call_abc123", call)
        self.assertEqual(call["type"], "function", call)
        self.assertEqual(call["function"]["name"], TOOL_NAME, call)
        self.assertEqual(json.loads(call["function"]["arguments"]), {"code": TOOL_CODE}, call)
        self.assertEqual(msgs[3], {"role": "tool", "tool_call_id": "call_abc123",
                                   "content": "OUTCOME_OK\n" + TOOL_OUTPUT}, msgs[3])
        self.assert_tool_offered(second, "auto")

    def test_tool_choice_default_is_auto(self):
        self.ok("ok-auto")
        reqs = self.chat_requests("ok-auto")
        self.assertEqual(len(reqs), 2, reqs)
        self.assert_tool_offered(reqs[0], "auto")
        self.assert_tool_offered(reqs[1], "auto")

    def test_upstream_body_limit(self):
        """An answer of LIMIT_UPSTREAM_BODY_BYTES is read; one byte more is refused as a
        misbehaving upstream (500 INTERNAL naming the limit), never held whole."""
        data = self.ok("bigbody", gen_body(code_tool=False, system=None))
        [part] = parts_of(data)
        self.assertGreater(len(part["text"]), LIMITS["LIMIT_UPSTREAM_BODY_BYTES"] - 1000)
        self.assertEqual(set(part["text"]), {"x"})
        self.google_error("hugebody", 500, "INTERNAL", "larger than",
                          body=gen_body(code_tool=False, system=None))

    def test_tool_choice_named(self):
        """tool-choice=run_python sends the named form, which servers without "required"
        (llama-cpp-python) honour; later calls are "auto"."""
        self.ok("named")
        reqs = self.chat_requests("named")
        self.assertEqual(len(reqs), 2, reqs)
        self.assert_tool_offered(reqs[0], {"type": "function",
                                           "function": {"name": TOOL_NAME}})
        self.assert_tool_offered(reqs[1], "auto")

    def test_no_code_execution_tool_no_tools(self):
        """Without the codeExecution tool, no tool is offered and no tool_choice sent."""
        data = self.ok("text", gen_body(code_tool=False, system=None))
        self.assertEqual(parts_of(data), [{"text": "Hello from the fake model."}])
        reqs = self.chat_requests("text")
        self.assertEqual(len(reqs), 1, reqs)
        self.assertNotIn("tools", reqs[0])
        self.assertNotIn("tool_choice", reqs[0])
        self.assertEqual([m["role"] for m in reqs[0]["messages"]], ["system", "user"])

    def test_text_answer_with_tool_offered(self):
        data = self.ok("text")
        self.assertEqual(parts_of(data), [{"text": "Hello from the fake model."}])
        reqs = self.chat_requests("text")
        self.assertEqual(len(reqs), 1, reqs)
        self.assert_tool_offered(reqs[0], "auto")

    def test_upstream_model_name_and_no_key(self):
        """model= names the upstream's model; without key-file no Authorization header."""
        self.ok("renamed")
        [req] = self.fakes["renamed"].requests
        self.assertEqual(req["body"]["model"], "upstream-model-7")
        self.assertNotIn("authorization", {k.lower() for k in req["headers"]})

    def test_key_file_bearer_token(self):
        self.ok("keyed")
        [req] = self.fakes["keyed"].requests
        auth = {k.lower(): v for k, v in req["headers"].items()}.get("authorization")
        self.assertEqual(auth, "Bearer " + TOKEN)

    def test_history_translated(self):
        """An earlier model turn's code and result become an assistant tool call and a tool
        message; its text, assistant text."""
        contents = [
            {"role": "user", "parts": [{"text": "What is 2 + 2?"}]},
            {"role": "model", "parts": [
                {"text": "Let me compute."},
                {"executableCode": {"language": "PYTHON", "code": "print(2 + 2)"}},
                {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "4\n"}},
                {"text": "It is 4."}]},
            {"role": "user", "parts": [{"text": "And now say hello."}]},
        ]
        self.ok("text", gen_body(contents=contents))
        [req] = self.chat_requests("text")
        msgs = req["messages"]
        roles = [m["role"] for m in msgs]
        self.assertEqual(roles, ["system", "user", "assistant", "tool", "assistant", "user"], msgs)
        self.assertEqual(msgs[1]["content"], "What is 2 + 2?")
        asst = msgs[2]
        self.assertEqual(asst.get("content"), "Let me compute.", asst)
        [call] = asst["tool_calls"]
        self.assertEqual(call["function"]["name"], TOOL_NAME)
        self.assertEqual(json.loads(call["function"]["arguments"]), {"code": "print(2 + 2)"})
        self.assertEqual(msgs[3]["tool_call_id"], call["id"], msgs)
        self.assertEqual(msgs[3]["content"], "OUTCOME_OK\n4\n", msgs)
        self.assertEqual(msgs[4]["content"], "It is 4.", msgs)
        self.assertEqual(msgs[5]["content"], "And now say hello.", msgs)

    def test_two_calls_in_one_answer_share_the_interpreter(self):
        data = self.ok("two")
        parts = parts_of(data)
        self.assertEqual(kinds(parts), ["executableCode", "codeExecutionResult",
                                        "executableCode", "codeExecutionResult", "text"], parts)
        self.assertEqual(parts[1]["codeExecutionResult"], {"outcome": "OUTCOME_OK",
                         **({"id": parts[0]["executableCode"]["id"]}
                            if "id" in parts[0]["executableCode"] else {})})
        self.assertEqual(parts[3]["codeExecutionResult"]["output"], "21\n", parts)
        reqs = self.chat_requests("two")
        self.assertEqual(len(reqs), 2, reqs)
        msgs = reqs[1]["messages"]
        self.assertEqual([m["role"] for m in msgs],
                         ["system", "user", "assistant", "tool", "tool"], msgs)
        ids = [c["id"] for c in msgs[2]["tool_calls"]]
        self.assertEqual(ids, ["call_two", "call_two_1"])
        self.assertEqual([m["tool_call_id"] for m in msgs[3:]], ids)
        # y = 20 prints nothing: the outcome alone, then a newline.
        self.assertEqual([m["content"] for m in msgs[3:]], ["OUTCOME_OK\n", "OUTCOME_OK\n21\n"])

    def test_image_part_after_result(self):
        data = self.ok("image")
        parts = parts_of(data)
        self.assertEqual(kinds(parts), ["executableCode", "codeExecutionResult", "inlineData",
                                        "text"], parts)
        self.assertEqual(parts[1]["codeExecutionResult"]["output"], "plotted\n")
        self.assertEqual(parts[2]["inlineData"]["mimeType"], "image/png")
        self.assertTrue(parts[2]["inlineData"]["data"].startswith("iVBORw0KGgo"))
        msgs = self.chat_requests("image")[1]["messages"]
        self.assertEqual(msgs[-1]["content"], "OUTCOME_OK\nplotted\n")

    # --- calls the model got wrong ------------------------------------------------------

    def test_arguments_not_json(self):
        """Arguments that are not JSON: nothing runs (no code part), the model hears why."""
        data = self.ok("badargs")
        parts = parts_of(data)
        self.assertEqual(kinds(parts), ["text"], parts)
        reqs = self.chat_requests("badargs")
        self.assertEqual(len(reqs), 2, reqs)
        tool = reqs[1]["messages"][-1]
        self.assertEqual(tool["role"], "tool", tool)
        self.assertEqual(tool["tool_call_id"], "call_bad")
        self.assertTrue(tool["content"].startswith("OUTCOME_FAILED\n"), tool)
        self.assertRegex(tool["content"], "JSON", tool)
        self.assertEqual(parts[0]["text"], "The tool said: " + tool["content"])

    def test_unknown_tool(self):
        data = self.ok("wrongtool")
        self.assertEqual(kinds(parts_of(data)), ["text"], data)
        tool = self.chat_requests("wrongtool")[1]["messages"][-1]
        self.assertEqual(tool["tool_call_id"], "call_shell")
        self.assertTrue(tool["content"].startswith("OUTCOME_FAILED\n"), tool)
        self.assertIn(TOOL_NAME, tool["content"])

    # --- the loop's bounds -----------------------------------------------------------------

    def assert_bounded(self, model, executions, text=None):
        started = time.time()
        data = self.ok(model)
        parts = parts_of(data)
        codes = [p for p in parts if "executableCode" in p]
        self.assertEqual(len(codes), executions, kinds(parts))
        reqs = self.chat_requests(model)
        # One call per execution, then one last call that may only answer in text.
        self.assertEqual(len(reqs), executions + 1, [r.get("tool_choice") for r in reqs])
        self.assertEqual([r["tool_choice"] for r in reqs],
                         ["auto"] * executions + ["none"])
        if text is not None:
            self.assertEqual(parts[-1], {"text": text}, parts[-1:])
        self.assertLess(time.time() - started, 60)
        return parts, reqs

    def test_endless_calls_stop_at_ten_executions(self):
        parts, reqs = self.assert_bounded("loop", MAX_EXECUTIONS, "Giving up on the tool.")
        for r in [p["codeExecutionResult"] for p in parts if "codeExecutionResult" in p]:
            self.assertEqual(r["outcome"], "OUTCOME_OK")
            self.assertEqual(r["output"], "again\n")
        # Each call's result went back.
        self.assertEqual(len([m for m in reqs[-1]["messages"] if m["role"] == "tool"]),
                         MAX_EXECUTIONS)

    def test_five_failures_in_a_row_stop(self):
        parts, reqs = self.assert_bounded("failloop", MAX_FAILED_IN_ROW, "Giving up on the tool.")
        outs = [p["codeExecutionResult"] for p in parts if "codeExecutionResult" in p]
        self.assertEqual({r["outcome"] for r in outs}, {"OUTCOME_FAILED"})
        for m in [m for m in reqs[-1]["messages"] if m["role"] == "tool"]:
            self.assertTrue(m["content"].startswith("OUTCOME_FAILED\nboom\n"), m)
            self.assertIn("ValueError: boom", m["content"])

    def test_failures_not_in_a_row_run_to_ten(self):
        """Four failures, a success, four failures...: only the bound on executions stops it."""
        self.assert_bounded("alternating", MAX_EXECUTIONS, "Done.")

    def test_model_ignoring_tool_choice_none_still_stops(self):
        """An upstream that calls the tool even when told "none": its last calls are not
        run, and the turn ends."""
        self.assert_bounded("stubborn", MAX_EXECUTIONS)

    # --- upstream failures: Google errors --------------------------------------------------

    def test_http_500_is_internal(self):
        self.google_error("http500", 500, "INTERNAL", "HTTP 500")

    def test_not_json_is_internal(self):
        self.google_error("garbage", 500, "INTERNAL", "(?i)not JSON")

    def test_truncated_json_is_internal(self):
        self.google_error("truncated", 500, "INTERNAL", "(?i)not JSON")

    def test_no_choices_is_internal(self):
        self.google_error("nochoices", 500, "INTERNAL", "choices")

    def test_empty_choices_is_internal(self):
        self.google_error("emptychoices", 500, "INTERNAL", "choices")

    def test_failure_after_a_tool_call_is_internal(self):
        """The upstream fails once the code ran: the error, not a partial reply."""
        self.google_error("midfail", 500, "INTERNAL", "HTTP 500")
        self.assertEqual(len(self.chat_requests("midfail")), 2)

    def test_refused_is_unavailable(self):
        started = time.time()
        self.google_error("refused", 503, "UNAVAILABLE", "(?i)connect|refused")
        self.assertLess(time.time() - started, 10)

    def test_stalled_upstream_times_out_unavailable(self):
        """An upstream that accepts and never answers: 503 by the upstream timeout."""
        started = time.time()
        self.google_error("stall", 503, "UNAVAILABLE", "(?i)time ?out|timed out",
                          timeout=30)
        elapsed = time.time() - started
        self.assertGreaterEqual(elapsed, UPSTREAM_TIMEOUT_MS / 1000 - 0.2)
        self.assertLess(elapsed, UPSTREAM_TIMEOUT_MS / 1000 + 8)
        self.assertEqual(len(self.fakes["stall"].requests), 1)

    def test_streamed_tool_call_then_text(self):
        """?alt=sse through the fake: `data: <json>` events, the parts in order, the last
        one with finishReason STOP."""
        status, raw, headers = self.stream("ok")
        self.assertEqual(status, 200, raw)
        self.assertTrue(headers.get("Content-Type", "").startswith("text/event-stream"), headers)
        events = sse_events(raw)
        self.assertGreaterEqual(len(events), 2, events)
        parts = []
        for ev in events:
            parts += parts_of(ev)
        self.assertEqual(kinds(parts), ["executableCode", "codeExecutionResult", "text"], parts)
        self.assertEqual(parts[0]["executableCode"]["code"], TOOL_CODE)
        self.assertEqual(parts[1]["codeExecutionResult"]["output"], TOOL_OUTPUT)
        self.assertEqual(parts[2]["text"], "The tool said: OUTCOME_OK\n" + TOOL_OUTPUT)
        self.assertEqual(events[-1]["candidates"][0].get("finishReason"), "STOP", events[-1])
        for ev in events[:-1]:
            self.assertNotIn("finishReason", ev["candidates"][0], ev)
        self.assertEqual(len(self.chat_requests("ok")), 2)

    def test_streamed_upstream_error_before_any_event(self):
        """Nothing sent yet: the error is the HTTP reply itself."""
        status, data, _ = self.stream("http500")
        self.assertEqual(status, 500, data)
        self.assertEqual(data["error"]["status"], "INTERNAL", data)

    def test_streamed_upstream_error_after_events(self):
        """Events already sent: the stream ends with an {"error": ...} event."""
        status, raw, _ = self.stream("midfail")
        self.assertEqual(status, 200, raw)
        events = sse_events(raw)
        self.assertIn("error", events[-1], events[-1])
        self.assertEqual(events[-1]["error"]["code"], 500, events[-1])
        self.assertEqual(events[-1]["error"]["status"], "INTERNAL", events[-1])
        self.assertRegex(events[-1]["error"]["message"], "HTTP 500")
        parts = []
        for ev in events[:-1]:
            parts += parts_of(ev)
        self.assertEqual(kinds(parts)[:1], ["executableCode"], parts)


if __name__ == "__main__":
    unittest.main()
