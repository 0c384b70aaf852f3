"""google-genai 3.6.1 (the Python Gen AI SDK) against the real pyexecd: every scenario of
sdk_common.SdkSuite, Vertex mode and the documentation's example, run in-process through
the SDK's typed accessors (response.executable_code, .code_execution_result, .text,
part.inline_data), plus what only this file checks: the async client, a block under a
script's deadline, a stream the server cuts. The SDK is pointed at the server with only
`genai.Client(api_key="local", http_options=types.HttpOptions(base_url=...))`.

The SDK lives in the venv scripts/setup-sdk.sh makes (/opt/pyexecd/sdk-venv): run by
another python3, this file runs itself again under that venv's python. It skips (the
reason starting "skipped:") only when that venv or the SDK is not there.

Run: PYEXECD_BIN=build/pyexecd python3 tests/sdk/test_python_sdk.py -v
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
_VENV = os.path.join(os.environ.get("PYEXECD_SDK_PREFIX", "/opt/pyexecd"), "sdk-venv")
_VENV_PYTHON = os.path.join(_VENV, "bin", "python")
if (os.path.realpath(sys.prefix) != os.path.realpath(_VENV) and os.access(_VENV_PYTHON, os.X_OK)
        and not os.environ.get("PYEXECD_SDK_REEXEC")):
    os.environ["PYEXECD_SDK_REEXEC"] = "1"
    os.execv(_VENV_PYTHON, [_VENV_PYTHON, "-u", os.path.abspath(__file__)] + sys.argv[1:])

import asyncio  # noqa: E402
import base64  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, HERE)

from sdk_common import (CUT_MODEL, DEADLINE_MODEL, PNG_HEAD, PLOT_PROMPT,  # noqa: E402
                        SCRIPT_MODEL, SDK_VENV, STREAM_OUTPUTS, STREAM_PROMPT, SdkSuite,
                        SeedCases, VertexCases, clean_env, read_stamp, sha256_of)

try:
    from google import genai
    from google.genai import errors, types
except ImportError as e:
    genai = None
    IMPORT_ERROR = str(e)

# The SDK reads GOOGLE_* / GEMINI_* variables and proxies: none of them may send it
# elsewhere than the base URL.
# Its one-time warning that .text leaves out the code parts: what the tests read anyway.
logging.getLogger("google_genai.types").setLevel(logging.ERROR)

_ENV = clean_env()
os.environ.clear()
os.environ.update(_ENV)


def value(enum):
    """An SDK enum's wire name (an unknown one stays the string it was)."""
    return getattr(enum, "value", enum)


def part_of(p):
    if p.executable_code is not None:
        return {"kind": "code", "language": value(p.executable_code.language),
                "code": p.executable_code.code, "id": p.executable_code.id}
    if p.code_execution_result is not None:
        return {"kind": "result", "outcome": value(p.code_execution_result.outcome),
                "output": p.code_execution_result.output, "id": p.code_execution_result.id}
    if p.inline_data is not None:
        data = p.inline_data.data
        assert isinstance(data, bytes), type(data)
        return {"kind": "inlineData", "mimeType": p.inline_data.mime_type, "size": len(data),
                "head": data[:8].hex()}
    if p.text is not None:
        return {"kind": "text", "text": p.text}
    return {"kind": "other", "keys": sorted(p.model_dump(exclude_none=True))}


def summary(r):
    cand = r.candidates[0] if r.candidates else None
    content = cand.content if cand else None
    u = r.usage_metadata
    return {
        "text": r.text,
        "executableCode": r.executable_code,
        "codeExecutionResult": r.code_execution_result,
        "finishReason": value(cand.finish_reason) if cand else None,
        "role": content.role if content else None,
        "modelVersion": r.model_version,
        "responseId": r.response_id,
        "usage": {
            "promptTokenCount": u.prompt_token_count if u else None,
            "candidatesTokenCount": u.candidates_token_count if u else None,
            "totalTokenCount": u.total_token_count if u else None,
            "toolUsePromptTokenCount": u.tool_use_prompt_token_count if u else None,
        },
        "parts": [part_of(p) for p in (content.parts or [])] if content else [],
    }


def error_of(e):
    if isinstance(e, errors.APIError):
        body = e.details if isinstance(e.details, dict) else {}
        return {"type": type(e).__name__, "code": e.code, "status": e.status,
                "message": e.message, "details": (body.get("error") or {}).get("details")}
    return {"type": type(e).__name__, "code": None, "status": None, "message": str(e),
            "details": None}


def outcome(fn):
    try:
        return {"response": summary(fn())}
    except errors.APIError as e:
        return {"error": error_of(e)}


def chunks_of(fn):
    chunks = []
    try:
        for c in fn():
            chunks.append(summary(c))
    except errors.APIError as e:
        return {"chunks": chunks, "error": error_of(e)}
    return {"chunks": chunks}


def history_of(chat):
    return [{"role": c.role, "kinds": [part_of(p)["kind"] for p in c.parts or []]}
            for c in chat.get_history()]


class PythonSdkTest(SdkSuite, VertexCases, SeedCases, unittest.TestCase):
    SDK = "google-genai"

    @classmethod
    def missing(cls):
        if os.path.realpath(sys.prefix) != os.path.realpath(SDK_VENV):
            return (f"no SDK venv at {SDK_VENV} (scripts/setup-sdk.sh makes it); this is "
                    f"{sys.executable}")
        if genai is None:
            return (f"google-genai is not importable ({IMPORT_ERROR}); scripts/setup-sdk.sh "
                    f"installs it into {SDK_VENV}")
        return None

    def tearDown(self):
        for client in self.__dict__.pop("_clients", []):
            client.close()

    # --- the client, changed from the real API's only in base URL and key ---

    def client(self, retry=None, **kw):
        http = types.HttpOptions(base_url=self.base_url)
        if retry:
            http.retry_options = types.HttpRetryOptions(
                attempts=retry["attempts"], initial_delay=retry["initialDelay"],
                max_delay=retry["maxDelay"], jitter=retry["jitter"])
        client = genai.Client(api_key="local", http_options=http, **kw)
        # A Client closes its HTTP client when it is garbage collected, even while one of
        # its chats or models objects is still in use: keep it for the test's duration.
        self.__dict__.setdefault("_clients", []).append(client)
        return client

    @staticmethod
    def config(spec):
        if not spec.get("tools"):
            return None
        return types.GenerateContentConfig(
            tools=[types.Tool(code_execution=types.ToolCodeExecution())])

    def run_client(self, spec):
        scenario = spec["scenario"]
        model, prompt = spec.get("model"), spec.get("prompt")
        if scenario in ("generate", "retry"):
            client = self.client(retry=spec.get("retry"))
            return outcome(lambda: client.models.generate_content(
                model=model, contents=prompt, config=self.config(spec)))
        if scenario == "stream":
            client = self.client()
            return chunks_of(lambda: client.models.generate_content_stream(
                model=model, contents=prompt, config=self.config(spec)))
        if scenario in ("chat", "chatStream"):
            chat = self.client().chats.create(model=model, config=self.config(spec))
            if scenario == "chat":
                turns = [outcome(lambda m=m: chat.send_message(m)) for m in spec["prompts"]]
            else:
                turns = [chunks_of(lambda m=m: chat.send_message_stream(m))
                         for m in spec["prompts"]]
            return {"turns": turns, "history": history_of(chat)}
        if scenario == "inputFile":
            client = self.client()
            f = spec["file"]
            contents = [types.Part.from_bytes(data=base64.b64decode(f["data"]),
                                              mime_type=f["mimeType"]),
                        prompt]
            return outcome(lambda: client.models.generate_content(
                model=model, contents=contents, config=self.config(spec)))
        if scenario == "errorThenOk":
            first = self.run_client(dict(spec, scenario="generate"))
            second = self.run_client(dict(spec, scenario="generate"))
            return {"first": first, "second": second}
        if scenario == "models":
            client = self.client()
            pager = client.models.list(config={"page_size": spec["pageSize"]})
            names, pages = [], 1
            while True:
                names += [m.name for m in pager.page]
                if not pager.config.get("page_token"):
                    break
                pager.next_page()
                pages += 1
                self.assertLess(pages, 50, "models.list keeps paging")
            return {"names": names, "pages": pages,
                    "get": client.models.get(model=model).name,
                    "totalTokens": client.models.count_tokens(model=model,
                                                              contents=prompt).total_tokens}
        if scenario == "vertex":
            client = self.client(vertexai=True)
            out = outcome(lambda: client.models.generate_content(
                model=model, contents=prompt, config=self.config(spec)))
            out["totalTokens"] = client.models.count_tokens(model=model,
                                                            contents=prompt).total_tokens
            return out
        if scenario == "seed":
            return self.seed()
        if scenario == "seedChat":
            return self.seed_chat()
        self.fail(f"unknown scenario {scenario}")

    def seed(self):
        """The Gemini documentation's Python example, base URL and key given."""
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            client = genai.Client(api_key="local",
                                  http_options=types.HttpOptions(base_url=self.base_url))

            response = client.models.generate_content(
                model="gemini-2.5-flash",
                contents="What is the sum of the first 50 prime numbers? "
                "Generate and run code for the calculation, and make sure you get all 50.",
                config=types.GenerateContentConfig(
                    tools=[types.Tool(code_execution=types.ToolCodeExecution)]
                ),
            )

            for part in response.candidates[0].content.parts:
                if part.text is not None:
                    print(part.text)
                if part.executable_code is not None:
                    print(part.executable_code.code)
                if part.code_execution_result is not None:
                    print(part.code_execution_result.output)
        return {"printed": printed.getvalue().split("\n"), "response": summary(response)}

    def seed_chat(self):
        """The documentation's Python chat example, base URL and key given, with two
        follow-up questions."""
        printed = io.StringIO()
        turns = []
        with contextlib.redirect_stdout(printed):
            client = genai.Client(api_key="local",
                                  http_options=types.HttpOptions(base_url=self.base_url))

            chat = client.chats.create(
                model="gemini-2.5-flash",
                config=types.GenerateContentConfig(
                    tools=[types.Tool(code_execution=types.ToolCodeExecution)]
                ),
            )

            for message in [
                "What is the sum of the first 50 prime numbers? "
                "Generate and run code for the calculation, and make sure you get all 50.",
                "Now the sum of the first 100 primes, and plot them.",
                "What is the difference between the two sums?",
            ]:
                response = chat.send_message(message)
                for part in response.candidates[0].content.parts:
                    if part.text is not None:
                        print(part.text)
                    if part.executable_code is not None:
                        print(part.executable_code.code)
                    if part.code_execution_result is not None:
                        print(part.code_execution_result.output)
                turns.append({"response": summary(response)})
        return {"printed": printed.getvalue().split("\n"), "turns": turns}

    # --- what only the Python SDK checks here ---

    def test_installed_version(self):
        self.assertEqual(genai.__version__, "3.6.1")
        self.assertEqual(read_stamp(os.path.join(SDK_VENV, ".pyexecd-lock")),
                         sha256_of(os.path.join(HERE, "requirements-sdk.lock")),
                         "the SDK venv is not from the current requirements-sdk.lock: run "
                         "scripts/setup-sdk.sh")

    def test_inline_data_is_png_bytes(self):
        response = self.client().models.generate_content(
            model="echo", contents=PLOT_PROMPT,
            config=types.GenerateContentConfig(
                tools=[types.Tool(code_execution=types.ToolCodeExecution())]))
        images = [p for p in response.candidates[0].content.parts if p.inline_data]
        self.assertEqual(len(images), 1)
        self.assertTrue(images[0].inline_data.data.startswith(b"\x89PNG"))
        self.assertEqual(images[0].inline_data.data[:8].hex(), PNG_HEAD)
        self.assertEqual(images[0].inline_data.mime_type, "image/png")
        self.assertEqual(value(response.candidates[0].finish_reason), "STOP")
        self.assertIs(response.candidates[0].finish_reason, types.FinishReason.STOP)

    def test_async_stream(self):
        async def go():
            client = self.client()
            chunks = []
            try:
                async for c in await client.aio.models.generate_content_stream(
                        model="echo", contents=STREAM_PROMPT,
                        config=types.GenerateContentConfig(
                            tools=[types.Tool(code_execution=types.ToolCodeExecution())])):
                    chunks.append(c)
            finally:
                await client.aio.aclose()
            return chunks

        chunks = asyncio.run(go())
        outputs = [c.code_execution_result for c in chunks if c.code_execution_result]
        self.assertEqual(outputs, STREAM_OUTPUTS)
        self.assertIs(chunks[-1].candidates[0].finish_reason, types.FinishReason.STOP)

    def test_script_deadline_ends_a_sleeping_block(self):
        response = self.client().models.generate_content(
            model=DEADLINE_MODEL, contents="Wait.",
            config=types.GenerateContentConfig(
                tools=[types.Tool(code_execution=types.ToolCodeExecution())]))
        [result] = [p.code_execution_result for p in response.candidates[0].content.parts
                    if p.code_execution_result]
        self.assertIs(result.outcome, types.Outcome.OUTCOME_DEADLINE_EXCEEDED)
        self.assertEqual(result.output, "started\n", "what it printed before the deadline")

    def test_cut_stream_raises_then_the_turn_is_served(self):
        client = self.client()
        config = types.GenerateContentConfig(
            tools=[types.Tool(code_execution=types.ToolCodeExecution())])
        got = []
        with self.assertRaises(Exception) as cm:
            for c in client.models.generate_content_stream(model=CUT_MODEL, contents="Go.",
                                                           config=config):
                got.append(c)
        self.assertNotIsInstance(cm.exception, errors.APIError, "a cut, not an error reply")
        self.assertEqual(len(got), 2, "the events before the cut arrive")
        # The fault fired once: the same call again streams the whole turn.
        again = list(client.models.generate_content_stream(model=CUT_MODEL, contents="Go.",
                                                           config=config))
        self.assertIs(again[-1].candidates[0].finish_reason, types.FinishReason.STOP)
        outputs = [c.code_execution_result for c in again if c.code_execution_result]
        self.assertEqual(outputs, ["1\n", "2\n"])

    def test_chat_history_keeps_code_parts_typed(self):
        chat = self.client().chats.create(
            model=SCRIPT_MODEL,
            config=types.GenerateContentConfig(
                tools=[types.Tool(code_execution=types.ToolCodeExecution())]))
        first = chat.send_message("What is the sum of the first 50 prime numbers?")
        self.assertEqual(first.code_execution_result, "5117\n")
        second = chat.send_message("And the first 100, plotted?")
        self.assertEqual(second.code_execution_result, "24133\n")
        history = chat.get_history()
        self.assertEqual([c.role for c in history], ["user", "model", "user", "model"])
        model_parts = history[3].parts
        self.assertTrue(any(p.executable_code for p in model_parts))
        self.assertTrue(any(p.inline_data and p.inline_data.data.startswith(b"\x89PNG")
                            for p in model_parts))

    def test_api_key_through_the_sdk(self):
        """A server with --api-key-file: the SDK's own x-goog-api-key gets through with a
        right key; a wrong one is the SDK's ClientError 403 PERMISSION_DENIED."""
        import tempfile
        from harness import Server
        key = "sdk-test-key-0123456789abcdef"
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "keys")
            with open(path, "w") as f:
                f.write(f"sdk {key}\n")
            with Server("--api-key-file", path, workers=1, pool=1) as server:
                url = f"http://127.0.0.1:{server.port}"
                config = types.GenerateContentConfig(
                    tools=[types.Tool(code_execution=types.ToolCodeExecution())])
                prompt = "```python\nprint(6 * 7)\n```"
                with genai.Client(api_key=key,
                                  http_options=types.HttpOptions(base_url=url)) as good:
                    reply = good.models.generate_content(model="echo", contents=prompt,
                                                         config=config)
                    self.assertEqual(reply.code_execution_result, "42\n")
                with genai.Client(api_key="sdk-test-key-wrong-wrong-wrong",
                                  http_options=types.HttpOptions(base_url=url)) as bad:
                    with self.assertRaises(errors.ClientError) as cm:
                        bad.models.generate_content(model="echo", contents=prompt,
                                                    config=config)
                    self.assertEqual(cm.exception.code, 403)
                    self.assertEqual(cm.exception.status, "PERMISSION_DENIED")


if __name__ == "__main__":
    unittest.main()
