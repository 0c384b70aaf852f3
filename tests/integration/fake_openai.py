"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for the failures a
real server will not produce on demand.

It stands in for an upstream model server only where a real one (tests/llm/ runs
pyexecd against llama-cpp-python with a real model) cannot be made to misbehave at will:
an HTTP 500, a body that is not JSON, JSON without choices, a call that never answers,
tool-call arguments that are not JSON, a model that never stops calling the tool. The
normal exchange (a tool call, then text) is scripted too, so that the translation of a
Gemini request into chat messages can be checked message by message.

It records every request it received (path, headers, parsed body), so a test asserts on
what pyexecd sent as well as on what pyexecd answered.

    with FakeOpenAI("tool-then-text") as fake:
        ... --model local=openai:{fake.base_url} ...
        fake.requests[0]["body"]["messages"]

A script is a name from SCRIPTS (one function per name: request body and its index in
the conversation in, a Response out) or such a function. Run by itself it serves a
script until interrupted, for trying it with curl:

    python3 tests/integration/fake_openai.py tool-then-text --port 8081
    curl -s 127.0.0.1:8081/v1/chat/completions -d '{"messages":[]}'

Stdlib only; it listens on loopback and nothing else.
"""

import argparse
import hashlib
import http.server
import json
import signal
import socket
import sys
import threading
import time

TOOL_NAME = "run_python"


class Response:
    """What the fake answers to one request: an HTTP status, a body (bytes) and a content
    type; or stall=True: read the request, then never answer (until the fake stops)."""

    def __init__(self, status=200, body=b"", content_type="application/json", stall=False):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.stall = stall


def completion(message, finish_reason):
    """A chat.completion body holding one choice with message."""
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000,
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def json_response(obj, status=200):
    return Response(status, json.dumps(obj).encode())


def text_reply(content):
    """The model answers in text."""
    return json_response(completion({"role": "assistant", "content": content}, "stop"))


def tool_call_reply(*codes, call_id="call_fake", content=None, raw_arguments=None,
                    name=TOOL_NAME):
    """The model calls the tool (run_python unless name says otherwise) once for each code
    (ids call_id, call_id_1, ...); with raw_arguments, one call whose arguments are that
    text as is."""
    args = [raw_arguments] if raw_arguments is not None else [
        json.dumps({"code": c}) for c in codes]
    calls = [{"id": call_id if i == 0 else f"{call_id}_{i}", "type": "function",
              "function": {"name": name, "arguments": a}} for i, a in enumerate(args)]
    return json_response(completion(
        {"role": "assistant", "content": content, "tool_calls": calls}, "tool_calls"))


def tool_messages(body):
    """The tool messages of a chat request body."""
    return [m for m in body.get("messages", []) if m.get("role") == "tool"]


# --- the scripts: (request body, index of the request in this fake's life) -> Response --

# The code of the normal exchange, and what it prints: a value only running it gives.
TOOL_CODE = ("import hashlib\n"
             "digest = hashlib.sha256(b'pyexecd').hexdigest()[:16]\n"
             "print('digest', digest)")
TOOL_OUTPUT = "digest " + hashlib.sha256(b"pyexecd").hexdigest()[:16] + "\n"


def tool_then_text(body, index):
    """A tool call first; once a tool message came back, text quoting it (so the reply
    shows the result reached the model)."""
    tools = tool_messages(body)
    if not tools:
        return tool_call_reply(TOOL_CODE, call_id="call_abc123")
    return text_reply("The tool said: " + tools[-1].get("content", ""))


def text_only(body, index):
    """Text at once, never a tool call."""
    return text_reply("Hello from the fake model.")


def http_500(body, index):
    return json_response({"error": {"message": "the fake model server broke",
                                    "type": "server_error"}}, status=500)


def garbage(body, index):
    """200 with a body that is not JSON."""
    return Response(200, b"<html>this is not JSON {{{", content_type="text/html")


def truncated_json(body, index):
    """200 with JSON cut short."""
    return Response(200, b'{"id": "chatcmpl-fake", "choices": [{"index": 0, "message": {"ro')


def no_choices(body, index):
    """200, JSON, but no choices (what some servers send with an error inside)."""
    return json_response({"id": "chatcmpl-fake", "object": "chat.completion",
                          "error": {"message": "model is loading"}})


def text_of_size(size):
    """A script whose text answer's whole body is exactly size bytes (the text padded)."""
    def script(body, index):
        base = json.dumps(completion({"role": "assistant", "content": ""}, "stop")).encode()
        pad = size - len(base)
        return Response(200, json.dumps(completion({"role": "assistant", "content": "x" * pad},
                                                   "stop")).encode())
    return script


def body_at_limit(body, index):
    """A text answer of exactly pyexecd's LIMIT_UPSTREAM_BODY_BYTES bytes."""
    from limits import LIMITS
    return text_of_size(LIMITS["LIMIT_UPSTREAM_BODY_BYTES"])(body, index)


def body_past_limit(body, index):
    """One byte more than pyexecd keeps of an upstream answer."""
    from limits import LIMITS
    return text_of_size(LIMITS["LIMIT_UPSTREAM_BODY_BYTES"] + 1)(body, index)


def empty_choices(body, index):
    return json_response({"id": "chatcmpl-fake", "object": "chat.completion", "choices": []})


def stall(body, index):
    """Reads the request, then never answers."""
    return Response(stall=True)


def bad_arguments(body, index):
    """A tool call whose arguments are not JSON; text once a tool message came back."""
    tools = tool_messages(body)
    if not tools:
        return tool_call_reply(raw_arguments='{"code": "print(1)"', call_id="call_bad")
    return text_reply("The tool said: " + tools[-1].get("content", ""))


def wrong_tool(body, index):
    """A call of a tool that was not offered; text once a tool message came back."""
    tools = tool_messages(body)
    if not tools:
        return tool_call_reply("ls /", call_id="call_shell", name="shell")
    return text_reply("The tool said: " + tools[-1].get("content", ""))


def tool_then_500(body, index):
    """A tool call, then HTTP 500 when the result comes back."""
    if not tool_messages(body):
        return tool_call_reply(TOOL_CODE, call_id="call_abc123")
    return http_500(body, index)


def _looping(code):
    def script(body, index):
        if body.get("tool_choice") == "none":
            return text_reply("Giving up on the tool.")
        return tool_call_reply(code, call_id=f"call_{index}")
    return script


# Calls the tool on every request that allows it; text when tool_choice is "none".
endless_ok = _looping("print('again')")
endless_failing = _looping("raise ValueError('boom')")


def endless_stubborn(body, index):
    """Calls the tool on every request, tool_choice "none" or not."""
    return tool_call_reply("print('again')", call_id=f"call_{index}")


def fail_then_succeed(body, index):
    """Four failing calls, then one that succeeds, then four failing again, ...: never
    five failures in a row, so only the bound on executions stops it."""
    if body.get("tool_choice") == "none":
        return text_reply("Done.")
    n = len(tool_messages(body))
    code = "print('fine')" if n % 5 == 4 else "raise ValueError('boom')"
    return tool_call_reply(code, call_id=f"call_{index}")


def two_calls_then_text(body, index):
    """Two tool calls in one reply (state shared between them), then text."""
    if not tool_messages(body):
        return tool_call_reply("y = 20", "print(y + 1)", call_id="call_two")
    return text_reply("Two done.")


def image_then_text(body, index):
    """A tool call that shows a matplotlib figure, then text."""
    if not tool_messages(body):
        return tool_call_reply("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
                               "plt.show()\nprint('plotted')", call_id="call_img")
    return text_reply("Plotted.")


SCRIPTS = {
    "tool-then-text": tool_then_text,
    "text-only": text_only,
    "http-500": http_500,
    "garbage": garbage,
    "truncated-json": truncated_json,
    "no-choices": no_choices,
    "empty-choices": empty_choices,
    "body-at-limit": body_at_limit,
    "body-past-limit": body_past_limit,
    "stall": stall,
    "bad-arguments": bad_arguments,
    "wrong-tool": wrong_tool,
    "tool-then-500": tool_then_500,
    "endless-ok": endless_ok,
    "endless-failing": endless_failing,
    "endless-stubborn": endless_stubborn,
    "fail-then-succeed": fail_then_succeed,
    "two-calls-then-text": two_calls_then_text,
    "image-then-text": image_then_text,
}


class FakeOpenAI:
    """The fake server, on 127.0.0.1 at a port the kernel picks, in a thread of its own.
    requests: what it received, in order ({"path", "headers", "body"}; body parsed JSON,
    or the raw text when it was not JSON)."""

    def __init__(self, script="tool-then-text", port=0):
        self.wanted_port = port
        self.script = SCRIPTS[script] if isinstance(script, str) else script
        self.requests = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.stalled = 0   # requests being stalled right now
        self.httpd = None
        self.thread = None

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}/v1"

    def bodies(self):
        with self.lock:
            return [r["body"] for r in self.requests]

    def start(self):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(json_response({"object": "list", "data": [
                        {"id": "fake-model", "object": "model"}]}))
                else:
                    self._send(json_response({"error": {"message": "not found"}}, 404))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with fake.lock:
                    index = len(fake.requests)
                    fake.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body})
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(json_response({"error": {"message": "not found"}}, 404))
                    return
                resp = fake.script(body if isinstance(body, dict) else {}, index)
                if resp.stall:
                    with fake.lock:
                        fake.stalled += 1
                    fake.stopping.wait()   # never answers; the fake's stop ends it
                    with fake.lock:
                        fake.stalled -= 1
                    self.close_connection = True
                    return
                self._send(resp)

            def _send(self, resp):
                try:
                    self.send_response(resp.status)
                    self.send_header("Content-Type", resp.content_type)
                    self.send_header("Content-Length", str(len(resp.body)))
                    self.end_headers()
                    self.wfile.write(resp.body)
                except OSError:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.wanted_port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def wait_stalled(self, n=1, timeout=10):
        """Waits until n requests are being stalled; True when they are."""
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if self.stalled >= n:
                    return True
            time.sleep(0.02)
        return False

    def stop(self):
        self.stopping.set()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class RefusingPort:
    """A loopback port where nothing listens: a socket bound to it but never listening
    (so connections to it are refused, and no other program takes the port meanwhile)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main():
    ap = argparse.ArgumentParser(description="Serve a scripted fake OpenAI-compatible "
                                 "chat-completions server on 127.0.0.1.")
    ap.add_argument("script", choices=sorted(SCRIPTS))
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    fake = FakeOpenAI(args.script, port=args.port).start()
    print(f"fake_openai: {args.script} on {fake.base_url}", flush=True)
    # SIGTERM as well as ^C: a shell's background job ignores SIGINT.
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        done.wait()
    finally:
        fake.stop()
        with fake.lock:
            for r in fake.requests:
                print(json.dumps(r["body"]), file=sys.stderr)


if __name__ == "__main__":
    main()
