"""The generateContent surface, as raw HTTP over loopback (no SDK): every route under every
prefix, the echo model's turns (unary, SSE and JSON-array streams, parsed from the raw
bytes), state within and across turns, input files and images, snake_case and URL-safe
base64 requests, replayed history, the script model's turn selection and each of its
faults, models.list paging, countTokens, the error bodies and the limits.

Most tests share one server; the few that need flags of their own (a server stopped in
the middle of a stream, LIMIT_MODELS bindings, refused script files) start their own."""

import base64
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import BINARY, Server, read_until_closed
from limits import LIMITS

TOOLS = [{"codeExecution": {}}]
RESPONSE_KEYS = {"candidates", "usageMetadata", "modelVersion", "responseId", "createTime"}
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CODE_ID = re.compile(r"^[a-z0-9]{8}$")
NOT_RUN = "This code block did not run"
# A 1x1 PNG, as a model turn of an earlier chat would carry it back.
TINY_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAA"
            "AABJRU5ErkJggg==")
GENERATION_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]


def user(*parts):
    return {"role": "user", "parts": [{"text": p} if isinstance(p, str) else p for p in parts]}


def fenced(*blocks, lang="python"):
    """A user message holding each block in its own ```python fence."""
    return "Please run this.\n" + "".join(f"```{lang}\n{b}\n```\n" for b in blocks)


def inline(mime, data, snake=False, urlsafe=False):
    enc = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    if snake:
        return {"inline_data": {"mime_type": mime, "data": enc}}
    return {"inlineData": {"mimeType": mime, "data": enc}}


def gen_body(contents, tools=True, **extra):
    body = {"contents": contents, **extra}
    if tools:
        body["tools"] = TOOLS
    return body


# --- raw HTTP -----------------------------------------------------------------------------

class RawReply:
    """One HTTP reply as the bytes arrived: status, headers (lower-case names), the body
    (de-chunked), and whether the body ended properly (the zero chunk, or all of
    Content-Length) before the connection closed."""

    def __init__(self, raw):
        self.raw = raw
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"no complete HTTP head in {raw[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunks = []
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            self.body, self.complete = self._dechunk(rest)
        else:
            n = int(self.headers.get("content-length", len(rest)))
            self.body, self.complete = rest[:n], len(rest) >= n

    def _dechunk(self, data):
        body = b""
        while True:
            size_line, sep, data = data.partition(b"\r\n")
            if not sep:
                return body, False
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return body, data == b"\r\n"
            if len(data) < size + 2:
                return body + data[:size], False
            self.chunks.append(data[:size])
            body += data[:size]
            if data[size:size + 2] != b"\r\n":
                return body, False
            data = data[size + 2:]

    def json(self):
        return json.loads(self.body)


def raw_request(port, method, path, body=b"", timeout=30):
    """Sends one request (Connection: close) on a fresh socket and reads until the server
    closes it."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        data = read_until_closed(sock, timeout)
    finally:
        sock.close()
    if data is None:
        raise AssertionError(f"{method} {path}: the connection stayed open")
    return data


def sse_events(test, data):
    """Asserts data is nothing but `data: <one line of JSON>\\r\\n\\r\\n` events (no other
    line kind, no comment, no [DONE]); returns the parsed events and their raw lines."""
    events, lines = [], []
    rest = data
    while rest:
        test.assertTrue(rest.startswith(b"data: "), rest[:120])
        end = rest.find(b"\r\n\r\n")
        test.assertNotEqual(end, -1, f"an event without its blank line: {rest[:120]!r}")
        line = rest[len(b"data: "):end]
        test.assertNotIn(b"\n", line)
        test.assertNotIn(b"\r", line)
        lines.append(line)
        events.append(json.loads(line))
        rest = rest[end + 4:]
    return events, lines


def google_error(test, status, body, code, status_name, message=None, headers=None):
    """Asserts a Google error reply ({"error": {code, message, status}} only); returns the
    message. headers, when given, must say application/json."""
    test.assertEqual(status, code, body)
    test.assertIsInstance(body, dict, body)
    test.assertEqual(set(body), {"error"}, body)
    err = body["error"]
    test.assertEqual(set(err), {"code", "message", "status"}, err)
    test.assertEqual(err["code"], code)
    test.assertEqual(err["status"], status_name)
    test.assertIsInstance(err["message"], str)
    test.assertTrue(err["message"])
    if message is not None:
        test.assertEqual(err["message"], message)
    if headers is not None:
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        test.assertTrue(ctype.startswith("application/json"), ctype)
    return err["message"]


def check_code_pairs(test, parts):
    """Each executableCode part has an 8-character [a-z0-9] id and is followed by its
    result(s) with the same id."""
    for i, p in enumerate(parts):
        if "executableCode" not in p:
            continue
        cid = p["executableCode"].get("id", "")
        test.assertRegex(cid, CODE_ID)
        test.assertLess(i + 1, len(parts), "a code part is the last part")
        test.assertIn("codeExecutionResult", parts[i + 1], parts[i + 1])
        j = i + 1
        while j < len(parts) and "codeExecutionResult" in parts[j]:
            test.assertEqual(parts[j]["codeExecutionResult"].get("id"), cid)
            j += 1


def check_usage(test, usage, parts):
    keys = {"promptTokenCount", "candidatesTokenCount", "totalTokenCount"}
    tool = any("codeExecutionResult" in p or "inlineData" in p for p in parts)
    if tool:
        keys.add("toolUsePromptTokenCount")
    test.assertEqual(set(usage), keys, usage)
    test.assertEqual(usage["totalTokenCount"], usage["promptTokenCount"] +
                     usage["candidatesTokenCount"] + usage.get("toolUsePromptTokenCount", 0))


def check_unary(test, body, model):
    """A whole GenerateContentResponse; returns its parts."""
    test.assertIsInstance(body, dict, body)
    test.assertEqual(set(body), RESPONSE_KEYS, body)
    test.assertEqual(len(body["candidates"]), 1)
    cand = body["candidates"][0]
    test.assertEqual(set(cand), {"content", "finishReason", "index"})
    test.assertEqual(cand["finishReason"], "STOP")
    test.assertEqual(cand["index"], 0)
    test.assertEqual(set(cand["content"]), {"role", "parts"})
    test.assertEqual(cand["content"]["role"], "model")
    parts = cand["content"]["parts"]
    test.assertTrue(parts)
    for p in parts:
        test.assertEqual(len(p), 1, p)
        test.assertNotEqual(p, {})
    check_code_pairs(test, parts)
    check_usage(test, body["usageMetadata"], parts)
    test.assertEqual(body["modelVersion"], model)
    test.assertIsInstance(body["responseId"], str)
    test.assertTrue(body["responseId"])
    test.assertRegex(body["createTime"], RFC3339_MS)
    return parts


def check_stream(test, events, model):
    """The events of one streamed turn: each a response with one part, one responseId,
    finishReason on the last only. Returns the parts, in order."""
    test.assertTrue(events)
    parts = []
    for i, ev in enumerate(events):
        test.assertEqual(set(ev), RESPONSE_KEYS, ev)
        test.assertEqual(len(ev["candidates"]), 1)
        cand = ev["candidates"][0]
        last = i == len(events) - 1
        test.assertEqual(set(cand), {"content", "index"} | ({"finishReason"} if last else set()),
                         (i, cand))
        if last:
            test.assertEqual(cand["finishReason"], "STOP")
        test.assertEqual(cand["index"], 0)
        test.assertEqual(cand["content"]["role"], "model")
        test.assertEqual(len(cand["content"]["parts"]), 1, cand)
        parts.append(cand["content"]["parts"][0])
        test.assertEqual(ev["modelVersion"], model)
        test.assertEqual(ev["responseId"], events[0]["responseId"])
        test.assertRegex(ev["createTime"], RFC3339_MS)
    check_code_pairs(test, parts)
    check_usage(test, events[-1]["usageMetadata"], parts)
    return parts


def kinds(parts):
    return [next(iter(p)) for p in parts]


def without_ids(parts):
    """The parts with code and result ids dropped (checked elsewhere)."""
    out = []
    for p in parts:
        p = json.loads(json.dumps(p))
        for k in ("executableCode", "codeExecutionResult"):
            if k in p:
                p[k].pop("id", None)
        out.append(p)
    return out


def all_keys(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from all_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from all_keys(v)


def json_value_count(text):
    """The JSON values of a body without empty containers: 1, plus one per '[' '{' ','
    outside strings."""
    n, in_string, i = 1, False, 0
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in ",[{":
            n += 1
        i += 1
    return n


def new_uid_base():
    return 2100000000 + random.randrange(0, 100000) * 1000


def start_refused(test, *flags):
    """Runs pyexecd with flags, expecting it to refuse to start; returns (status, stderr).
    A server that starts anyway is stopped and the test fails."""
    state = tempfile.mkdtemp(prefix="pyexecd-test-")
    try:
        proc = subprocess.Popen(
            [BINARY, "--listen", "127.0.0.1:0", "--state-dir", state, "--worker-uid-base",
             str(new_uid_base()), "--workers", "1", "--pool", "1", *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            test.fail(f"pyexecd started with {flags[:4]}...: {err[-500:]}")
        return proc.returncode, err
    finally:
        shutil.rmtree(state, ignore_errors=True)


# --- the scripts of the shared server ----------------------------------------------------

def line(parts, fault=None, times=None):
    d = {"parts": parts}
    if fault is not None:
        d["fault"] = fault
    if times is not None:
        d["times"] = times
    return json.dumps(d)


def code(c):
    return {"executableCode": {"language": "PYTHON", "code": c}}


BUSY_DELAY_MS = 1000

SCRIPTS = {
    "chat3": [
        line([{"text": "turn one"}, code("x = 1\nprint('t1', x)")]),
        line([{"text": "turn two"}, {"executable_code": {"code": "print('t2', 'x' in globals())"}}]),
        line([{"text": "turn three"}]),
    ],
    "flaky": [line([{"text": "recovered"}], {"error": {
        "code": 429, "message": "Resource has been exhausted (e.g. check quota).",
        "retryDelay": "2s"}})],
    "err500": [line([{"text": "after 500"}], {"error": {
        "code": 500, "status": "INTERNAL", "message": "Internal error encountered."}})],
    "err503": [line([{"text": "after 503"}], {"error": {"code": 503}})],
    "err504": [line([{"text": "after 504"}], {"error": {"code": 504, "message": "late"}})],
    "slow": [line([{"text": "late"}], {"delayMs": 400})],
    "cut": [line([{"text": "a"}, code("print(1)"), {"text": "b"}], {"cutAfterEvents": 2})],
    "deadline": [line([code("print('before', flush=True)\nimport time\ntime.sleep(5)\n"
                            "print('never')"),
                       code("print('after')"), {"text": "done"}], {"deadlineMs": 500})],
    "busy": [line([{"text": "never"}], {"delayMs": BUSY_DELAY_MS,
                                        "error": {"code": 503, "message": "busy"}},
                  times=3600000)],
    "big": [line([{"text": f"line {i}"}]) for i in range(LIMITS["LIMIT_SCRIPT_TURNS"])],
}
ECHO_MODELS = ["a", "b"]
ALL_MODELS = sorted(ECHO_MODELS + list(SCRIPTS) + ["echo"])


class GenerateContentTest(unittest.TestCase):
    """One server for every test here: echo, two more echo models (a, b) and the scripts
    above."""

    @classmethod
    def setUpClass(cls):
        cls.script_dir = tempfile.mkdtemp(prefix="pyexecd-scripts-")
        flags = []
        for name in ECHO_MODELS:
            flags += ["--model", f"{name}=echo"]
        for name, lines in SCRIPTS.items():
            path = os.path.join(cls.script_dir, f"{name}.jsonl")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            flags += ["--model", f"{name}=script:{path}"]
        cls.server = Server(*flags, workers=2, pool=2)
        try:
            cls.server.start()
        except Exception:
            shutil.rmtree(cls.script_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            shutil.rmtree(cls.script_dir, ignore_errors=True)

    # --- helpers ----------------------------------------------------------------------------

    def post(self, path, body, timeout=60):
        return self.server.request("POST", path, body, timeout=timeout)

    def generate(self, contents, model="echo", prefix="/v1beta", tools=True, **extra):
        """A unary generateContent that must succeed; returns (parts, whole body)."""
        status, body, headers = self.post(f"{prefix}/models/{model}:generateContent",
                                          gen_body(contents, tools, **extra))
        self.assertEqual(status, 200, body)
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        return check_unary(self, body, model), body

    def stream_sse(self, contents, model="echo", prefix="/v1beta", tools=True, **extra):
        """A streamed generateContent (alt=sse) from the raw bytes; returns (parts, events,
        reply)."""
        reply = RawReply(raw_request(self.server.port, "POST",
                                     f"{prefix}/models/{model}:streamGenerateContent?alt=sse",
                                     gen_body(contents, tools, **extra)))
        self.assertEqual(reply.status, 200, reply.raw[:300])
        self.assertEqual(reply.headers.get("content-type"), "text/event-stream")
        self.assertTrue(reply.complete, reply.raw[-200:])
        events, _ = sse_events(self, reply.body)
        return check_stream(self, events, model), events, reply

    def stream_array(self, contents, model="echo", prefix="/v1beta", tools=True):
        """streamGenerateContent without alt=sse: one JSON array of responses."""
        reply = RawReply(raw_request(self.server.port, "POST",
                                     f"{prefix}/models/{model}:streamGenerateContent",
                                     gen_body(contents, tools)))
        self.assertEqual(reply.status, 200, reply.raw[:300])
        self.assertTrue(reply.headers.get("content-type", "").startswith("application/json"))
        self.assertTrue(reply.complete, reply.raw[-200:])
        self.assertTrue(reply.body.startswith(b"[{") and reply.body.endswith(b"}]"),
                        reply.body[:50] + b"..." + reply.body[-50:])
        events = json.loads(reply.body)
        self.assertIsInstance(events, list)
        return check_stream(self, events, model), events

    def bad(self, body, code=400, status_name="INVALID_ARGUMENT", message=None,
            path="/v1beta/models/echo:generateContent"):
        status, reply, headers = self.post(path, body)
        return google_error(self, status, reply, code, status_name, message, headers)

    # --- routes -----------------------------------------------------------------------------

    PREFIXES = [
        ("", "models/"),
        ("/v1", "models/"),
        ("/v1beta", "models/"),
        ("/v1alpha", "models/"),
        ("/v1beta1", "models/"),
        ("/gateway/gemini/v1beta", "models/"),
        ("/v1beta1/publishers/google", "publishers/google/models/"),
        ("/v1/projects/my-project/locations/us-central1/publishers/google",
         "publishers/google/models/"),
        ("/proxy/v1beta1/projects/p/locations/global/publishers/google",
         "publishers/google/models/"),
    ]

    def test_every_route_under_every_prefix(self):
        """generateContent, both streams, countTokens, models.get and models.list answer
        under each version, a proxy prefix, and both Vertex prefixes."""
        contents = [user("hello there")]
        for prefix, name_prefix in self.PREFIXES:
            with self.subTest(prefix=prefix):
                parts, _ = self.generate(contents, prefix=prefix)
                self.assertEqual(kinds(parts), ["text"])
                parts, _, _ = self.stream_sse(contents, prefix=prefix)
                self.assertEqual(kinds(parts), ["text"])
                parts, _ = self.stream_array(contents, prefix=prefix)
                self.assertEqual(kinds(parts), ["text"])
                status, body, _ = self.post(f"{prefix}/models/echo:countTokens",
                                            {"contents": contents})
                self.assertEqual((status, body), (200, {"totalTokens": 3}))
                status, body = self.server.get(f"{prefix}/models/echo")
                self.assertEqual(status, 200, body)
                self.assertEqual(body["name"], name_prefix + "echo")
                status, body = self.server.get(f"{prefix}/models")
                self.assertEqual(status, 200, body)
                self.assertEqual([m["name"] for m in body["models"]],
                                 [name_prefix + m for m in ALL_MODELS])
                self.assertNotIn("nextPageToken", body)
        # Code runs behind the Vertex prefixes too.
        vertex = self.PREFIXES[-2][0]
        parts, _ = self.generate([user(fenced("print(6 * 7)"))], prefix=vertex)
        self.assertEqual(parts[2]["codeExecutionResult"]["output"], "42\n")
        parts, _, _ = self.stream_sse([user(fenced("print(6 * 7)"))], prefix=vertex)
        self.assertEqual(parts[2]["codeExecutionResult"]["output"], "42\n")

    def test_paths_not_of_this_surface(self):
        """A prefix whose last segment before models is not a version, or an unknown
        version, is not this surface: the server's plain 404."""
        for path in ["/gateway/models/echo:generateContent", "/v2/models/echo:generateContent",
                     "/v1/projects/p/locations/l/models/echo:generateContent",
                     "/v1beta/models/echo:generateContent/more"]:
            with self.subTest(path=path):
                status, body, _ = self.post(path, gen_body([user("x")]))
                google_error(self, status, body, 404, "NOT_FOUND")

    def test_unknown_model_on_each_route(self):
        """An unknown model is 404 NOT_FOUND in the real API's words, on every route."""
        body = gen_body([user("hi")])
        tail = " Call ListModels to see the list of available models and their supported methods."
        for prefix, name, version in [("/v1beta", "models/nope", "v1beta"),
                                      ("/v1", "models/nope", "v1"),
                                      ("", "models/nope", "v1beta"),
                                      ("/v1beta1/projects/p/locations/l/publishers/google",
                                       "publishers/google/models/nope", "v1beta1")]:
            head = f"{name} is not found for API version {version}, or is not supported for "
            for method in ["generateContent", "streamGenerateContent",
                           "streamGenerateContent?alt=sse"]:
                with self.subTest(prefix=prefix, method=method):
                    status, reply, headers = self.post(f"{prefix}/models/nope:{method}", body)
                    msg = google_error(self, status, reply, 404, "NOT_FOUND", headers=headers)
                    self.assertTrue(msg.startswith(head), msg)
                    self.assertTrue(msg.endswith(tail), msg)
            with self.subTest(prefix=prefix, method="get"):
                status, reply, headers = self.server.request("GET", f"{prefix}/models/nope")
                msg = google_error(self, status, reply, 404, "NOT_FOUND", headers=headers)
                self.assertIn(name, msg)
        status, reply, _ = self.post("/v1beta/models/nope:generateContent", body)
        self.assertEqual(reply["error"]["message"],
                         "models/nope is not found for API version v1beta, or is not supported "
                         "for generateContent." + tail)

    def test_unknown_model_count_tokens_names_the_method(self):
        """countTokens of an unknown model: the real API names the method it was asked for
        ("... or is not supported for countTokens. Call ListModels ...")."""
        status, reply, headers = self.post("/v1beta/models/nope:countTokens",
                                           {"contents": [user("hi")]})
        google_error(self, status, reply, 404, "NOT_FOUND", headers=headers, message=(
            "models/nope is not found for API version v1beta, or is not supported for "
            "countTokens. Call ListModels to see the list of available models and their "
            "supported methods."))

    def test_wrong_method(self):
        """Wrong HTTP methods are 405 with an Allow header; an unknown :method is 404."""
        for method, path, allow in [("GET", "/v1beta/models/echo:generateContent", "POST"),
                                    ("GET", "/v1beta/models/echo:streamGenerateContent", "POST"),
                                    ("PUT", "/v1beta/models/echo:countTokens", "POST"),
                                    ("POST", "/v1beta/models/echo", "GET"),
                                    ("POST", "/v1beta/models", "GET"),
                                    ("DELETE", "/v1beta1/publishers/google/models/echo", "GET")]:
            with self.subTest(method=method, path=path):
                status, body, headers = self.server.request(method, path, "{}")
                google_error(self, status, body, 405, "INVALID_ARGUMENT", headers=headers)
                self.assertEqual(headers.get("Allow"), allow)
        status, body, _ = self.post("/v1beta/models/echo:embedContent", "{}")
        google_error(self, status, body, 404, "NOT_FOUND")

    # --- models -----------------------------------------------------------------------------

    def test_model_resource(self):
        """models.get: the Model resource, named as the path's API names it."""
        status, body = self.server.get("/v1beta/models/a")
        self.assertEqual(status, 200, body)
        self.assertEqual(set(body), {"name", "baseModelId", "version", "displayName",
                                     "description", "inputTokenLimit", "outputTokenLimit",
                                     "supportedGenerationMethods"})
        self.assertEqual(body["name"], "models/a")
        self.assertEqual(body["baseModelId"], "a")
        self.assertEqual(body["supportedGenerationMethods"], GENERATION_METHODS)
        self.assertTrue(body["version"].startswith("pyexecd-"), body["version"])
        self.assertIsInstance(body["inputTokenLimit"], int)
        self.assertIsInstance(body["outputTokenLimit"], int)
        self.assertIn("echo", body["description"])
        status, body = self.server.get("/v1beta1/projects/p/locations/l/publishers/google/models/chat3")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["name"], "publishers/google/models/chat3")
        self.assertIn("script", body["description"])

    def walk_pages(self, prefix, size):
        names, token, pages = [], None, 0
        while True:
            path = f"{prefix}/models?pageSize={size}" + (f"&pageToken={token}" if token else "")
            status, body = self.server.get(path)
            self.assertEqual(status, 200, body)
            pages += 1
            self.assertLessEqual(len(body["models"]), size)
            names += [m["name"] for m in body["models"]]
            if "nextPageToken" not in body:
                self.assertEqual(set(body), {"models"})
                return names, pages
            self.assertEqual(set(body), {"models", "nextPageToken"})
            self.assertIsInstance(body["nextPageToken"], str)
            self.assertTrue(body["nextPageToken"])   # never an empty token
            self.assertEqual(len(body["models"]), size)
            token = body["nextPageToken"]
            self.assertLess(pages, 100, "models.list pages for ever")

    def test_models_list_paging(self):
        """pageSize=1 gives one model a page, sorted, the last page without nextPageToken;
        the same with pageSize 2 and 5 and under Vertex."""
        n = len(ALL_MODELS)
        names, pages = self.walk_pages("/v1beta", 1)
        self.assertEqual(names, ["models/" + m for m in ALL_MODELS])
        self.assertEqual(pages, n)
        for size in (2, 5, n, n + 1):
            names, pages = self.walk_pages("/v1", size)
            self.assertEqual(names, ["models/" + m for m in ALL_MODELS])
            self.assertEqual(pages, -(-n // size))
        names, _ = self.walk_pages("/v1beta1/publishers/google", 3)
        self.assertEqual(names, ["publishers/google/models/" + m for m in ALL_MODELS])
        # pageSize 0 is the default size; past the end is an empty last page.
        status, body = self.server.get("/v1/models?pageSize=0")
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["models"]), n)
        status, body = self.server.get(f"/v1/models?pageSize=1&pageToken={n}")
        self.assertEqual((status, body), (200, {"models": []}))

    def test_models_list_bad_paging(self):
        """A pageSize that is not a number from 0 to the maximum, or a token not from the
        server: 400."""
        too_big = LIMITS["LIMIT_MODEL_PAGE_MAX"] + 1
        for query in ["pageSize=-1", "pageSize=abc", f"pageSize={too_big}", "pageToken=x",
                      "pageToken=-2"]:
            with self.subTest(query=query):
                status, body, headers = self.server.request("GET", f"/v1beta/models?{query}")
                google_error(self, status, body, 400, "INVALID_ARGUMENT", headers=headers)
        status, body = self.server.get(f"/v1beta/models?pageSize={too_big - 1}")
        self.assertEqual(status, 200, body)

    # --- countTokens ------------------------------------------------------------------------

    def test_count_tokens(self):
        """{"totalTokens": N} only: a text counts ceil(bytes/4), an inline file 258, the
        system instruction too; the generateContentRequest form counts the same; it agrees
        with generateContent's promptTokenCount."""
        contents = [user("abcdefghi", inline("text/csv", b"a,b\n1,2\n")),
                    {"role": "model", "parts": [{"text": "12345678"}]},
                    user("xyz")]
        status, body, headers = self.post("/v1/models/echo:countTokens", {"contents": contents})
        self.assertEqual(status, 200, body)
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        self.assertEqual(body, {"totalTokens": 3 + 258 + 2 + 1})
        system = {"parts": [{"text": "be brief"}]}
        wrapped = {"generateContentRequest": {"model": "models/echo", "contents": contents,
                                              "systemInstruction": system,
                                              "generationConfig": {}}}
        status, body, _ = self.post("/v1/models/echo:countTokens", wrapped)
        self.assertEqual((status, body), (200, {"totalTokens": 264 + 2}))
        _, whole = self.generate(contents, system_instruction=system)
        self.assertEqual(whole["usageMetadata"]["promptTokenCount"], 266)
        # generateContentRequest is countTokens' own field.
        self.bad(wrapped)
        self.bad({}, path="/v1/models/echo:countTokens",
                 message="* GenerateContentRequest.contents: contents is not specified")

    # --- the echo model ---------------------------------------------------------------------

    def test_echo_unary_shape(self):
        """Text, then each block's code and result, then a final text; state is shared by
        the blocks of one turn, also after a block failed."""
        contents = [user(fenced("x = 20", "print(x * 2 + 2)", "raise ValueError('boom')",
                                "print('still', x)"))]
        parts, body = self.generate(contents)
        self.assertEqual(kinds(parts), ["text"] + ["executableCode", "codeExecutionResult"] * 4
                         + ["text"])
        shapes = without_ids(parts[1:-1])
        failed = shapes[5]["codeExecutionResult"]
        self.assertEqual(set(failed), {"outcome", "output"})
        self.assertEqual(failed["outcome"], "OUTCOME_FAILED")
        self.assertEqual(shapes[:5] + shapes[6:], [
            {"executableCode": {"language": "PYTHON", "code": "x = 20\n"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK"}},
            {"executableCode": {"language": "PYTHON", "code": "print(x * 2 + 2)\n"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "42\n"}},
            {"executableCode": {"language": "PYTHON", "code": "raise ValueError('boom')\n"}},
            {"executableCode": {"language": "PYTHON", "code": "print('still', x)\n"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "still 20\n"}},
        ])
        self.assertTrue(failed["output"].startswith("boom\nTraceback (most recent call last):"),
                        failed["output"])
        self.assertTrue(failed["output"].endswith("ValueError: boom\n"), failed["output"])
        ids = [p["executableCode"]["id"] for p in parts if "executableCode" in p]
        self.assertEqual(len(set(ids)), 4)
        self.assertIn("1 failed", parts[-1]["text"])
        self.assertEqual(body["usageMetadata"]["promptTokenCount"],
                         -(-len(contents[0]["parts"][0]["text"].encode()) // 4))

    def test_echo_fences(self):
        """```python, ```py, ```python3 and bare ``` blocks run; other languages do not."""
        text = ("```py\na = 1\n```\n```bash\necho no\n```\n```\nb = 2\n```\n"
                "```python3\nprint(a + b)\n```\n")
        parts, _ = self.generate([user(text)])
        codes = [p["executableCode"]["code"] for p in parts if "executableCode" in p]
        self.assertEqual(codes, ["a = 1\n", "b = 2\n", "print(a + b)\n"])
        self.assertEqual(parts[-2]["codeExecutionResult"]["output"], "3\n")

    def test_echo_blocks_of_several_text_parts_and_not_thoughts(self):
        """Every text part of the last user content is searched; a thought part is not."""
        contents = [{"role": "user", "parts": [
            {"text": fenced("v = 'one'")},
            {"text": fenced("print('thought ran')"), "thought": True},
            {"text": fenced("print(v)")}]}]
        parts, _ = self.generate(contents)
        results = [p["codeExecutionResult"] for p in parts if "codeExecutionResult" in p]
        self.assertEqual([r.get("output") for r in results], [None, "one\n"])

    def test_echo_block_limit(self):
        """LIMIT_ECHO_BLOCKS blocks run; the ones past it do not, and the text says so."""
        n = LIMITS["LIMIT_ECHO_BLOCKS"]
        parts, _ = self.generate([user(fenced(*(["i = 0"] + ["i += 1"] * (n - 2) +
                                                ["print(i)"] + ["print('past')"])))])
        results = [p["codeExecutionResult"] for p in parts if "codeExecutionResult" in p]
        self.assertEqual(len(results), n)
        self.assertEqual(results[-1]["output"], f"{n - 2}\n")
        self.assertNotIn("past", json.dumps(parts[:-1]))
        self.assertIn("limit", parts[-1]["text"])

    def test_echo_without_code_tool(self):
        """No codeExecution tool: one text part, nothing runs (unary and stream)."""
        contents = [user(fenced("open('/root/ran', 'w')\nprint('ran')"))]
        parts, body = self.generate(contents, tools=False)
        self.assertEqual(kinds(parts), ["text"])
        self.assertNotIn("toolUsePromptTokenCount", body["usageMetadata"])
        self.assertIn("not enabled", parts[0]["text"])
        parts, events, _ = self.stream_sse(contents, tools=False)
        self.assertEqual(kinds(parts), ["text"])
        self.assertEqual(len(events), 1)
        # Another tool alone does not switch code execution on.
        status, body, _ = self.post("/v1beta/models/echo:generateContent",
                                    {"contents": contents, "tools": [{"googleSearch": {}}]})
        self.assertEqual(status, 200, body)
        self.assertEqual(kinds(check_unary(self, body, "echo")), ["text"])

    def test_echo_without_block(self):
        """No fenced block in the last user message: one text part."""
        parts, body = self.generate([user("just words")])
        self.assertEqual(kinds(parts), ["text"])
        self.assertNotIn("toolUsePromptTokenCount", body["usageMetadata"])

    def test_sse_stream_raw(self):
        """alt=sse: only `data: ` events of one line of JSON, each ending \\r\\n\\r\\n, one part
        each, a code part whole in its own event and its result in the next, the image
        after its result, finishReason on the last; the chunked body ends cleanly."""
        contents = [user(fenced("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
                                "plt.show()\nprint('shown')", "print('second')"))]
        parts, events, reply = self.stream_sse(contents)
        self.assertEqual(kinds(parts), ["text", "executableCode", "codeExecutionResult",
                                        "inlineData", "executableCode", "codeExecutionResult",
                                        "text"])
        self.assertEqual(parts[2]["codeExecutionResult"]["output"], "shown\n")
        self.assertEqual(parts[3]["inlineData"]["mimeType"], "image/png")
        self.assertTrue(base64.b64decode(parts[3]["inlineData"]["data"], validate=True)
                        .startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertEqual(parts[5]["codeExecutionResult"]["output"], "second\n")
        self.assertTrue(reply.raw.endswith(b"\r\n0\r\n\r\n"), reply.raw[-40:])
        self.assertTrue(reply.body.endswith(b"}\r\n\r\n"))
        self.assertNotIn(b"[DONE]", reply.body)
        # The same turn unary has the same parts.
        unary, _ = self.generate(contents)
        self.assertEqual(kinds(unary), kinds(parts))

    def test_json_array_stream(self):
        """streamGenerateContent without alt=sse: a JSON array of the same responses."""
        contents = [user(fenced("y = 5", "print(y)"))]
        parts, events = self.stream_array(contents)
        self.assertEqual(kinds(parts), ["text", "executableCode", "codeExecutionResult",
                                        "executableCode", "codeExecutionResult", "text"])
        self.assertEqual(parts[4]["codeExecutionResult"]["output"], "5\n")
        self.assertEqual(len(events), 6)

    def test_keep_alive_across_streams(self):
        """One connection carries a stream, a unary call, a JSON-array stream and a
        models.list, each answered whole."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            body = json.dumps(gen_body([user(fenced("print(7)"))]))
            for path in ["/v1beta/models/echo:streamGenerateContent?alt=sse",
                         "/v1beta/models/echo:generateContent",
                         "/v1beta/models/echo:streamGenerateContent"]:
                conn.request("POST", path, body)
                resp = conn.getresponse()
                data = resp.read()
                self.assertEqual(resp.status, 200)
                self.assertIn(b'"output":"7\\n"', data)
            conn.request("GET", "/v1beta/models")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(len(json.loads(resp.read())["models"]), len(ALL_MODELS))
        finally:
            conn.close()

    def test_state_not_across_turns(self):
        """A chat's second request cannot see the first turn's variables or files, even
        with the first turn's model content (as streamed: one content per event) replayed."""
        u1 = user(fenced("secret = 41\nopen('note.txt', 'w').write('x')\nprint(secret)"))
        parts, events, _ = self.stream_sse([u1])
        self.assertEqual(parts[2]["codeExecutionResult"]["output"], "41\n")
        history = [ev["candidates"][0]["content"] for ev in events]
        self.assertGreater(len(history), 1)   # consecutive model contents
        u2 = user(fenced("import os\nprint(sorted(os.listdir('.')))", "print(secret + 1)"))
        parts, _ = self.generate([u1] + history + [u2])
        results = [p["codeExecutionResult"] for p in parts if "codeExecutionResult" in p]
        self.assertEqual(results[0], {"outcome": "OUTCOME_OK", "output": "[]\n",
                                      "id": results[0]["id"]})
        self.assertEqual(results[1]["outcome"], "OUTCOME_FAILED")
        self.assertIn("NameError: name 'secret' is not defined", results[1]["output"])
        # No output or text shows the first turn's value (ids are random: not searched).
        shown = [p.get("text") or p.get("codeExecutionResult", {}).get("output", "")
                 for p in parts]
        self.assertFalse(any("41" in t for t in shown), shown)

    # --- files and images -------------------------------------------------------------------

    def test_input_csv_read_by_code(self):
        """The last user content's CSV is input_file_0.csv before the first block, still
        there in the next; a type the work dir does not take is context only."""
        csv = b"x,y\n1,2\n3,4\n"
        contents = [user(fenced("import pandas as pd\ndf = pd.read_csv('input_file_0.csv')\n"
                                "print(df.x.sum(), df.y.sum())",
                                "import os\nprint(sorted(os.listdir('.')))"),
                         inline("text/csv", csv), inline("application/pdf", b"%PDF-1.4"))]
        parts, _ = self.generate(contents)
        results = [p["codeExecutionResult"] for p in parts if "codeExecutionResult" in p]
        self.assertEqual([r["output"] for r in results], ["4 6\n", "['input_file_0.csv']\n"])

    def test_earlier_turns_files_not_written(self):
        """Files of earlier user turns are not in the work dir; the last turn's are."""
        contents = [user("here is old data", inline("text/csv", b"old\n")),
                    {"role": "model", "parts": [{"text": "Got it."}]},
                    user(fenced("import os\nfor f in sorted(os.listdir('.')):\n"
                                "    print(f, open(f, 'rb').read())"),
                         inline("text/plain", b"new"), inline("image/png", b"\x89PNGfake"))]
        parts, _ = self.generate(contents)
        results = [p["codeExecutionResult"] for p in parts if "codeExecutionResult" in p]
        self.assertEqual(results[0]["output"],
                         "input_file_0.txt b'new'\ninput_file_1.png b'\\x89PNGfake'\n")
        # An input image is not returned as an image the code made.
        self.assertNotIn("inlineData", kinds(parts))

    def test_image_part(self):
        """plt.show(): an inlineData image/png part, standard padded base64 of a PNG, right
        after its block's result."""
        contents = [user(fenced("import matplotlib.pyplot as plt\nplt.plot([3, 1, 2])\n"
                                "plt.show()\nprint('plotted')"))]
        parts, body = self.generate(contents)
        self.assertEqual(kinds(parts), ["text", "executableCode", "codeExecutionResult",
                                        "inlineData", "text"])
        self.assertEqual(parts[2]["codeExecutionResult"]["output"], "plotted\n")
        img = parts[3]["inlineData"]
        self.assertEqual(set(img), {"mimeType", "data"})
        self.assertEqual(img["mimeType"], "image/png")
        self.assertRegex(img["data"], r"^[A-Za-z0-9+/]+={0,2}$")
        self.assertEqual(len(img["data"]) % 4, 0)
        self.assertTrue(base64.b64decode(img["data"], validate=True)
                        .startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertGreaterEqual(body["usageMetadata"]["toolUsePromptTokenCount"], 258)

    # --- request spellings ------------------------------------------------------------------

    def test_snake_case_and_urlsafe_base64(self):
        """snake_case names at every depth, the code_execution tool, system_instruction and
        URL-safe base64 are read; the reply is camelCase with standard base64."""
        data = b"\xfb\xff\xfe\xfa-bytes?>"
        enc = base64.urlsafe_b64encode(data).decode()
        self.assertTrue("-" in enc or "_" in enc)
        sig = base64.urlsafe_b64encode(b"\xfb\xef\xbe signature").decode()
        body = {
            "contents": [{"role": "user", "parts": [
                {"text": fenced("import hashlib\nd = open('input_file_0.txt', 'rb').read()\n"
                                "print(d.hex())"), "thought_signature": sig},
                {"inline_data": {"mime_type": "text/plain", "data": enc}}]}],
            "tools": [{"code_execution": {}}],
            "system_instruction": {"parts": [{"text": "Run code."}]},
            "generation_config": {"temperature": 0, "max_output_tokens": 100},
            "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT",
                                 "threshold": "BLOCK_NONE"}],
            "tool_config": {"function_calling_config": {"mode": "AUTO"}},
        }
        status, reply, _ = self.post("/v1/models/echo:generateContent", body)
        self.assertEqual(status, 200, reply)
        parts = check_unary(self, reply, "echo")
        results = [p["codeExecutionResult"] for p in parts if "codeExecutionResult" in p]
        self.assertEqual(results[0]["output"], data.hex() + "\n")
        self.assertEqual([k for k in all_keys(reply) if "_" in k], [])

    def test_history_replayed_not_rerun(self):
        """Earlier model turns with code, results, an image, thought parts and
        thoughtSignatures (URL-safe), several model contents in a row: accepted as sent,
        never re-run; only the last user message's block runs."""
        sig = base64.urlsafe_b64encode(b"\xfb\xff\xbfsig-nature").decode()
        contents = [
            user(fenced("print('HISTORY-1')"), inline("text/csv", b"old\n")),
            {"role": "model", "parts": [
                {"text": "Let me think.", "thought": True, "thoughtSignature": sig},
                {"executableCode": {"language": "PYTHON", "code": "print('HISTORY-2')",
                                    "id": "abcd1234"}, "thoughtSignature": sig},
                {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "HISTORY-2\n",
                                         "id": "abcd1234"}},
                {"executable_code": {"language": 1, "code": "1/0"}},
                {"code_execution_result": {"outcome": 2, "output": "division by zero\n"}},
                {"inlineData": {"mimeType": "image/png", "data": TINY_PNG}},
            ]},
            {"role": "model", "parts": [{"text": "Done.", "thoughtSignature": sig}]},
            {"role": "model", "parts": [{"text": "Really done."}]},
            user(fenced("import os\nprint('now', sorted(os.listdir('.')))")),
        ]
        parts, _ = self.generate(contents, generationConfig={},
                                 toolConfig={"functionCallingConfig": {"mode": "AUTO"}},
                                 safetySettings=[])
        self.assertEqual(kinds(parts), ["text", "executableCode", "codeExecutionResult", "text"])
        self.assertEqual(parts[2]["codeExecutionResult"]["output"], "now []\n")
        self.assertNotIn("HISTORY", json.dumps(parts))
        # The script model counts that history as one model turn.
        parts, _ = self.generate(contents, model="chat3")
        self.assertEqual(parts[0], {"text": "turn two"})

    # --- request errors ---------------------------------------------------------------------

    def test_error_no_contents(self):
        msg = "* GenerateContentRequest.contents: contents is not specified"
        for body in [{}, {"contents": []}, {"contents": None}, {"tools": TOOLS}]:
            with self.subTest(body=body):
                self.bad(body, message=msg)

    def test_error_empty_part(self):
        self.bad({"contents": [user("a", {})]}, message=(
            "* GenerateContentRequest.contents[0].parts[1].data: required oneof field 'data' "
            "must have one initialized field"))

    def test_error_wrong_type(self):
        self.bad({"contents": [{"parts": [{"text": 5}]}]}, message=(
            "Invalid JSON payload received. Invalid value at 'contents[0].parts[0].text' "
            "(TYPE_STRING), 5"))

    def test_error_unknown_nested_field(self):
        self.bad({"contents": [{"parts": [{"text": "a"}, {"inlineData": {
            "mimeType": "text/csv", "data": "QUJD", "foo": 1}}]}]}, message=(
            "Invalid JSON payload received. Unknown name \"foo\" at "
            "'contents[0].parts[1].inline_data': Cannot find field."))
        self.bad({"contents": [{"parts": [{"text": "a"}]}], "tools": [{"frob": {}}]},
                 message="Invalid JSON payload received. Unknown name \"frob\" at 'tools[0]': "
                         "Cannot find field.")

    def test_error_unknown_top_level_field(self):
        """At the top level the real API names no path: 'Unknown name "x": Cannot find
        field.' (no " at ''")."""
        self.bad({"contents": [user("a")], "x": 1},
                 message="Invalid JSON payload received. Unknown name \"x\": Cannot find field.")

    def test_error_bad_code_execution_tool_path(self):
        """A codeExecution tool that is not an object: the path names the tool's index, as
        every other path does ('tools[0].code_execution')."""
        msg = self.bad({"contents": [user("a")], "tools": [{"codeExecution": 1}]})
        self.assertIn("'tools[0].code_execution'", msg)

    def test_error_bad_base64(self):
        for data in ["!!!", "QUJD=QUJD", "Q"]:
            with self.subTest(data=data):
                msg = self.bad({"contents": [user("a", {"inlineData": {
                    "mimeType": "text/csv", "data": data}})]})
                self.assertTrue(msg.startswith(
                    "Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES), "
                    "Base64 decoding failed"), msg)
        msg = self.bad({"contents": [user({"text": "a", "thoughtSignature": "not base64!"})]})
        self.assertIn("'contents[0].parts[0].thought_signature'", msg)

    def test_error_bad_mime_type(self):
        for mime in ["csv", "", "text/", "/csv", "a/b/c"]:
            with self.subTest(mime=mime):
                msg = self.bad({"contents": [user("a", "b", {"inline_data": {
                    "mime_type": mime, "data": "QUJD"}})]})
                self.assertTrue(msg.startswith(
                    "Invalid value at 'contents[0].parts[2].inline_data.mime_type'"), msg)
        msg = self.bad({"contents": [user("a", {"inlineData": {"data": "QUJD"}})]})
        self.assertIn("'contents[0].parts[1].inline_data.mime_type'", msg)

    def test_error_other_shapes(self):
        """Malformed JSON, duplicate fields, empty parts, a second data field, a language
        other than PYTHON, wrong-typed config fields: 400 with a message."""
        for body in [b"", b"not json", b"[1]",
                     b'{"contents": [{"parts": [{"text": "a"}]}], "contents": []}',
                     {"contents": [{"role": "user"}]},
                     {"contents": [{"parts": [{"text": "a", "inlineData": {
                         "mimeType": "text/csv", "data": ""}}]}]},
                     {"contents": [{"parts": [{"executableCode": {"language": "JAVA",
                                                                  "code": "x"}}]}]},
                     {"contents": [user("a")], "generationConfig": 5},
                     {"contents": [user("a")], "tools": {}},
                     {"contents": [user({"text": "a", "thought": "yes"})]},
                     {"contents": [user("a")], "generateContentRequest": {}},
                     b'{"contents": [{"parts": [{"text": "a\\u0000b"}]}]}',
                     b'{"contents": [{"parts": [{"text": "\xff"}]}]}']:
            with self.subTest(body=body):
                self.bad(body)

    def test_body_over_limit_is_413(self):
        """A declared body over LIMIT_BODY_BYTES is refused before it is read."""
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        try:
            sock.sendall(b"POST /v1beta/models/echo:generateContent HTTP/1.1\r\nHost: x\r\n"
                         b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n"
                         % (LIMITS["LIMIT_BODY_BYTES"] + 1))
            reply = b""
            while not reply.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        finally:
            sock.close()
        head, _, payload = reply.decode().partition("\r\n\r\n")
        self.assertTrue(head.startswith("HTTP/1.1 413"), head)
        google_error(self, 413, json.loads(payload), 413, "INVALID_ARGUMENT")

    # --- limits -----------------------------------------------------------------------------

    def test_json_values_limit(self):
        """LIMIT_GEN_JSON_VALUES values in a body are accepted; one more is 400."""
        limit = LIMITS["LIMIT_GEN_JSON_VALUES"]
        for n, ok in [(limit, True), (limit + 1, False)]:
            # 8 values besides the stop sequences: the object, contents, its content, parts,
            # the part, its text, generationConfig, stopSequences.
            body = json.dumps({"contents": [{"parts": [{"text": "x"}]}],
                               "generationConfig": {"stopSequences": ["s"] * (n - 8)}})
            self.assertEqual(json_value_count(body), n)
            status, reply, headers = self.post("/v1beta/models/echo:generateContent", body)
            if ok:
                self.assertEqual(status, 200, reply)
                check_unary(self, reply, "echo")
            else:
                google_error(self, status, reply, 400, "INVALID_ARGUMENT", headers=headers)

    def test_input_file_limit(self):
        """The last user turn's inline data may total the policy's input limit
        (LIMIT_INPUT_FILE_BYTES by default), not a byte more; earlier turns' data is not
        counted."""
        limit = LIMITS["LIMIT_INPUT_FILE_BYTES"]
        self.assertEqual(self.server.health()[1]["limits"]["inputFileBytes"], limit)
        earlier = [user("older data", inline("text/csv", b"c" * (256 << 10))),
                   {"role": "model", "parts": [{"text": "ok"}]}]
        half = limit // 2
        for extra, ok in [(0, True), (1, False)]:
            last = user("files, no code", inline("text/csv", b"a" * half),
                        inline("text/csv", b"b" * (limit - half + extra)))
            status, reply, headers = self.post("/v1beta/models/echo:generateContent",
                                               gen_body(earlier + [last]), timeout=120)
            if ok:
                self.assertEqual(status, 200, str(reply)[:300])
                self.assertEqual(kinds(check_unary(self, reply, "echo")), ["text"])
            else:
                msg = google_error(self, status, reply, 400, "INVALID_ARGUMENT",
                                   headers=headers)
                self.assertIn(str(limit), msg)

    def test_turn_queue_full_is_429(self):
        """LIMIT_TURN_THREADS turns running and LIMIT_TURN_QUEUE waiting: the next is 429
        RESOURCE_EXHAUSTED at once. (The busy script holds each runner BUSY_DELAY_MS.)"""
        accepted = LIMITS["LIMIT_TURN_THREADS"] + LIMITS["LIMIT_TURN_QUEUE"]
        extra = 10
        body = json.dumps(gen_body([user("queue")])).encode()
        req = (b"POST /v1beta/models/busy:generateContent HTTP/1.1\r\nHost: x\r\n"
               b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        socks = [socket.create_connection(("127.0.0.1", self.server.port), timeout=30)
                 for _ in range(accepted + extra)]
        replies = []
        try:
            for s in socks:
                s.sendall(req)
            for s in socks:
                data = read_until_closed(s, 30)
                self.assertIsNotNone(data)
                replies.append(RawReply(data))
        finally:
            for s in socks:
                s.close()
        statuses = [r.status for r in replies]
        self.assertEqual(statuses.count(503), accepted, statuses)
        self.assertEqual(statuses.count(429), extra, statuses)
        for r in replies:
            if r.status == 429:
                google_error(self, 429, r.json(), 429, "RESOURCE_EXHAUSTED", message=(
                    "Every model turn runner is busy and the queue is full; retry later."))
            else:
                self.assertEqual(r.json(), {"error": {"code": 503, "message": "busy",
                                                      "status": "UNAVAILABLE"}})
        # Drained: turns run again.
        self.generate([user("after the queue")])

    # --- the script model ---------------------------------------------------------------

    def test_script_turn_selection(self):
        """A 3-turn chat: each request gets the line of the model turns it holds
        (consecutive model contents count once); past the last line is 400."""
        u1 = user("hello script")
        parts, _ = self.generate([u1], model="chat3")
        self.assertEqual(without_ids(parts), [
            {"text": "turn one"},
            {"executableCode": {"language": "PYTHON", "code": "x = 1\nprint('t1', x)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "t1 1\n"}}])
        m1 = {"role": "model", "parts": parts}
        u2 = user("and again")
        parts2, events, _ = self.stream_sse([u1, m1, u2], model="chat3")
        self.assertEqual(without_ids(parts2), [
            {"text": "turn two"},
            {"executableCode": {"language": "PYTHON", "code": "print('t2', 'x' in globals())"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "t2 False\n"}}])
        streamed = [ev["candidates"][0]["content"] for ev in events]
        u3 = user("third")
        parts3, _ = self.generate([u1, m1, u2] + streamed + [u3], model="chat3")
        self.assertEqual(parts3, [{"text": "turn three"}])
        # Without the code tool the script's model writes no code.
        parts, _ = self.generate([user("no tool")], model="chat3", tools=False)
        self.assertEqual(parts, [{"text": "turn one"}])
        # A conversation that begins with a model turn.
        parts, _ = self.generate([{"role": "model", "parts": [{"text": "Hi!"}]}, user("yo")],
                                 model="chat3")
        self.assertEqual(parts[0], {"text": "turn two"})
        # Past the end.
        status, body, headers = self.post(
            "/v1beta/models/chat3:generateContent",
            gen_body([u1, m1, u2, m1, u3, {"role": "model", "parts": parts3}, user("4th")]))
        msg = google_error(self, status, body, 400, "INVALID_ARGUMENT", headers=headers)
        self.assertIn("3 model turns", msg)

    def test_script_turns_limit(self):
        """A script of LIMIT_SCRIPT_TURNS lines is served to its last line."""
        n = LIMITS["LIMIT_SCRIPT_TURNS"]
        contents = []
        for _ in range(n - 1):
            contents += [user("q"), {"role": "model", "parts": [{"text": "a"}]}]
        parts, _ = self.generate(contents + [user("last")], model="big")
        self.assertEqual(parts, [{"text": f"line {n - 1}"}])
        contents += [user("q"), {"role": "model", "parts": [{"text": "a"}]}]
        status, body, _ = self.post("/v1beta/models/big:generateContent",
                                    gen_body(contents + [user("past")]))
        google_error(self, status, body, 400, "INVALID_ARGUMENT")

    def test_fault_429_then_retry(self):
        """A 429 with RetryInfo on the first attempt; the same request again succeeds; a
        streamed attempt of another conversation gets the 429 as plain JSON too."""
        contents = [user("quota please")]
        status, body, headers = self.post("/v1beta/models/flaky:generateContent",
                                          gen_body(contents))
        self.assertEqual(status, 429, body)
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        self.assertEqual(body, {"error": {
            "code": 429, "message": "Resource has been exhausted (e.g. check quota).",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                         "retryDelay": "2s"}]}})
        self.assertEqual(list(body), ["error"])
        parts, _ = self.generate(contents, model="flaky")
        self.assertEqual(parts, [{"text": "recovered"}])
        parts, _ = self.generate(contents, model="flaky")
        self.assertEqual(parts, [{"text": "recovered"}])
        reply = RawReply(raw_request(self.server.port, "POST",
                                     "/v1beta/models/flaky:streamGenerateContent?alt=sse",
                                     gen_body([user("another conversation")])))
        self.assertEqual(reply.status, 429)
        self.assertTrue(reply.headers["content-type"].startswith("application/json"))
        self.assertEqual(reply.json()["error"]["details"][0]["retryDelay"], "2s")
        parts, _, _ = self.stream_sse([user("another conversation")], model="flaky")
        self.assertEqual(parts, [{"text": "recovered"}])

    def test_fault_500_and_503(self):
        """500 and 503 faults: Google error bodies, no details; the retry succeeds."""
        for model, code, status_name, message, text in [
                ("err500", 500, "INTERNAL", "Internal error encountered.", "after 500"),
                ("err503", 503, "UNAVAILABLE", "Injected by the script.", "after 503")]:
            with self.subTest(model=model):
                contents = [user(f"conversation for {model}")]
                status, body, headers = self.post(f"/v1beta/models/{model}:generateContent",
                                                  gen_body(contents))
                google_error(self, status, body, code, status_name, message, headers)
                parts, _ = self.generate(contents, model=model)
                self.assertEqual(parts, [{"text": text}])

    def test_fault_status_defaults_to_the_codes_name(self):
        """A fault error without a status gets its code's google.rpc.Code name, the pairing
        docs/gemini-wire.md ("Errors") gives: 504 is DEADLINE_EXCEEDED."""
        status, body, headers = self.post("/v1beta/models/err504:generateContent",
                                          gen_body([user("conversation for err504")]))
        google_error(self, status, body, 504, "DEADLINE_EXCEEDED", "late", headers)

    def test_fault_delay(self):
        """delayMs holds the first attempt that long; the retry is not held."""
        contents = [user("take your time")]
        t0 = time.monotonic()
        parts, _ = self.generate(contents, model="slow")
        first = time.monotonic() - t0
        self.assertEqual(parts, [{"text": "late"}])
        self.assertGreaterEqual(first, 0.4)
        t0 = time.monotonic()
        self.generate(contents, model="slow")
        self.assertLess(time.monotonic() - t0, 0.35)

    def test_fault_cut_stream(self):
        """cutAfterEvents 2: an SSE client gets two whole events and then the connection
        closes with the chunked body not ended; the retry streams the whole turn."""
        contents = [user("cut me, sse")]
        path = "/v1beta/models/cut:streamGenerateContent?alt=sse"
        reply = RawReply(raw_request(self.server.port, "POST", path, gen_body(contents)))
        self.assertEqual(reply.status, 200)
        self.assertFalse(reply.complete, reply.raw[-60:])
        self.assertFalse(reply.raw.endswith(b"0\r\n\r\n"))
        events, _ = sse_events(self, reply.body)
        self.assertEqual(len(events), 2)
        parts = [ev["candidates"][0]["content"]["parts"][0] for ev in events]
        self.assertEqual(parts[0], {"text": "a"})
        self.assertEqual(kinds(parts), ["text", "executableCode"])
        self.assertFalse(any("finishReason" in ev["candidates"][0] for ev in events))
        parts, events, _ = self.stream_sse(contents, model="cut")
        self.assertEqual(kinds(parts), ["text", "executableCode", "codeExecutionResult", "text"])
        self.assertEqual(parts[2]["codeExecutionResult"]["output"], "1\n")

    def test_fault_cut_json_array_and_unary(self):
        """cutAfterEvents on the JSON-array stream: two elements, no closing ']', the body
        not ended; on a unary call: the connection closes with nothing sent."""
        reply = RawReply(raw_request(self.server.port, "POST",
                                     "/v1beta/models/cut:streamGenerateContent",
                                     gen_body([user("cut me, array")])))
        self.assertEqual(reply.status, 200)
        self.assertFalse(reply.complete)
        self.assertTrue(reply.body.startswith(b"["))
        self.assertFalse(reply.body.rstrip().endswith(b"]"))
        elements = [json.loads(e) for e in reply.body[1:].split(b",\r\n")]
        self.assertEqual(len(elements), 2)
        raw = raw_request(self.server.port, "POST", "/v1beta/models/cut:generateContent",
                          gen_body([user("cut me, unary")]))
        self.assertEqual(raw, b"")

    def test_fault_deadline(self):
        """deadlineMs 500: a block sleeping 5 s is OUTCOME_DEADLINE_EXCEEDED with what it
        printed; the next block of the turn did not run."""
        t0 = time.monotonic()
        parts, _ = self.generate([user("deadline")], model="deadline")
        self.assertLess(time.monotonic() - t0, 4.0)
        self.assertEqual(kinds(parts), ["executableCode", "codeExecutionResult",
                                        "executableCode", "codeExecutionResult", "text"])
        first = parts[1]["codeExecutionResult"]
        self.assertEqual(first["outcome"], "OUTCOME_DEADLINE_EXCEEDED")
        self.assertEqual(first["output"], "before\n")
        second = parts[3]["codeExecutionResult"]
        self.assertEqual(second["outcome"], "OUTCOME_FAILED")
        self.assertTrue(second["output"].startswith(NOT_RUN), second["output"])
        self.assertEqual(parts[4], {"text": "done"})

    # --- after all of it ------------------------------------------------------------------

    def test_zz_server_healthy_after(self):
        """After everything above: /healthz is 200 and a turn still runs code."""
        status, body = self.server.health()
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "ok")
        parts, _ = self.generate([user(fenced("print('still here')"))])
        self.assertEqual(parts[2]["codeExecutionResult"]["output"], "still here\n")


# SIGTERM lets running turns finish for --drain-ms (test_drain.py); these tests are about
# what is cut when that time is over, so they give it half a second.
SHORT_DRAIN = ("--drain-ms", "500")


class ShutdownTest(unittest.TestCase):
    """Turns still running when the server stops (its drain time over), each on a server of
    its own: an error after a stream started is its last event, `data: {"error": ...}`; a
    turn in a script's delay ends too."""

    def test_error_mid_stream_is_final_event(self):
        server = Server(*SHORT_DRAIN, workers=1, pool=1).start()
        try:
            body = json.dumps(gen_body([user(fenced(
                "print('first')", "import time\ntime.sleep(20)"))])).encode()
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            try:
                sock.sendall(b"POST /v1beta/models/echo:streamGenerateContent?alt=sse HTTP/1.1"
                             b"\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                data = b""
                # text, code, result, second code: then the sleep runs.
                while data.count(b"data: ") < 4:
                    chunk = sock.recv(65536)
                    self.assertTrue(chunk, data[-200:])
                    data += chunk
                server.proc.send_signal(signal.SIGTERM)
                rest = read_until_closed(sock, 30)
                self.assertIsNotNone(rest)
            finally:
                sock.close()
            self.assertEqual(server.proc.wait(30), 0)
        finally:
            server.stop()
        reply = RawReply(data + rest)
        self.assertEqual(reply.status, 200)
        self.assertTrue(reply.complete, reply.raw[-80:])
        events, lines = sse_events(self, reply.body)
        self.assertEqual(len(events), 5)
        self.assertTrue(lines[-1].startswith(b'{"error":'), lines[-1])
        self.assertEqual(events[-1], {"error": {"code": 503, "status": "UNAVAILABLE",
                                                "message": "The server is shutting down."}})
        parts = [ev["candidates"][0]["content"]["parts"][0] for ev in events[:-1]]
        self.assertEqual(kinds(parts), ["text", "executableCode", "codeExecutionResult",
                                        "executableCode"])
        self.assertFalse(any("finishReason" in ev["candidates"][0] for ev in events[:-1]))

    def test_stop_during_script_delay(self):
        """A turn waiting out a script's delayMs ends when the server stops ("running ones
        end at their next step"): the client gets 503 UNAVAILABLE and the server exits
        promptly, not when the delay is over."""
        delay_ms = 8000
        tmp = tempfile.mkdtemp(prefix="pyexecd-scripts-")
        try:
            path = os.path.join(tmp, "hang.jsonl")
            with open(path, "w") as f:
                f.write(line([{"text": "late"}], {"delayMs": delay_ms}) + "\n")
            server = Server("--model", f"hang=script:{path}", *SHORT_DRAIN, workers=1,
                            pool=1).start()
            try:
                body = json.dumps(gen_body([user("wait")])).encode()
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
                try:
                    sock.sendall(b"POST /v1beta/models/hang:generateContent HTTP/1.1\r\n"
                                 b"Host: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                    time.sleep(0.5)   # the turn is in its delay
                    t0 = time.monotonic()
                    server.proc.send_signal(signal.SIGTERM)
                    data = read_until_closed(sock, 30)
                    answered = time.monotonic() - t0
                    status = server.proc.wait(30)
                    exited = time.monotonic() - t0
                finally:
                    sock.close()
            finally:
                server.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(status, 0)
        self.assertIsNotNone(data)
        reply = RawReply(data)
        self.assertLess(answered, 3.0, f"answered after {answered:.1f} s: {data[:200]!r}")
        self.assertLess(exited, 4.0, f"the server took {exited:.1f} s to stop")
        google_error(self, reply.status, reply.json(), 503, "UNAVAILABLE")


class ModelFlagsTest(unittest.TestCase):
    """--model at and past LIMIT_MODELS, and script files the server refuses."""

    def test_limit_models_bindings_start(self):
        """LIMIT_MODELS --model bindings are accepted (the config takes that many), and
        echo is served besides them."""
        n = LIMITS["LIMIT_MODELS"]
        names = [f"m{i:02d}" for i in range(n)]
        flags = []
        for name in names:
            flags += ["--model", f"{name}=echo"]
        server = Server(*flags, workers=1, pool=1)
        try:
            server.start()
        except RuntimeError as e:
            self.fail(f"{n} --model bindings refused: {str(e)[-300:]}")
        try:
            status, body = server.get("/v1beta/models?pageSize=1000")
            self.assertEqual(status, 200, body)
            self.assertEqual([m["name"] for m in body["models"]],
                             ["models/" + m for m in sorted(names + ["echo"])])
        finally:
            server.stop()

    def test_past_limit_models_refused(self):
        n = LIMITS["LIMIT_MODELS"]
        flags = []
        for i in range(n + 1):
            flags += ["--model", f"m{i:02d}=echo"]
        status, err = start_refused(self, *flags)
        self.assertEqual(status, 2, err)
        self.assertIn(f"at most {n} models", err)

    def test_bad_model_flags_refused(self):
        for flags, says in [(["--model", "x=frob"], "unknown kind"),
                            (["--model", "x"], "NAME=SPEC"),
                            (["--model", "a b=echo"], "model name"),
                            (["--model", "a=echo", "--model", "a=echo"], "bound twice"),
                            (["--model", "x=script:"], "script"),
                            (["--model", "x=echo:arg"], "echo")]:
            with self.subTest(flags=flags):
                status, err = start_refused(self, *flags)
                self.assertEqual(status, 2, err)
                self.assertIn(says, err)

    def test_bad_script_files_refused(self):
        """A bad script file stops the server at start, exit status 2, naming FILE:LINE."""
        good = line([{"text": "ok"}])
        cases = [
            ([good, '{"parts": [}'], 2, "Invalid JSON payload"),
            ([line([{"codeExecutionResult": {"outcome": "OUTCOME_OK"}}])], 1,
             "text and executableCode parts only"),
            ([good, "", json.dumps({"parts": [{"text": "a"}], "frob": 1})], 3,
             'Unknown name "frob"'),
            ([json.dumps({"parts": [{"text": "a"}], "fault": {"error": {"code": 200}}})], 1,
             "fault.error.code"),
            ([json.dumps({"parts": [{"text": "a"}], "times": 0})], 1, "times"),
            ([json.dumps({"parts": []})], 1, "parts"),
            ([json.dumps({"parts": [{"text": "a"}], "fault": {"delayMs": -1}})], 1, "delayMs"),
            ([json.dumps({"parts": [{"text": "a"}], "fault": {"sleep": 1}})], 1, '"sleep"'),
            ([good, "[1, 2]"], 2, ""),
        ]
        tmp = tempfile.mkdtemp(prefix="pyexecd-scripts-")
        try:
            for i, (lines_, lineno, says) in enumerate(cases):
                with self.subTest(case=i):
                    path = os.path.join(tmp, f"bad{i}.jsonl")
                    with open(path, "w") as f:
                        f.write("\n".join(lines_) + "\n")
                    status, err = start_refused(self, "--model", f"s=script:{path}")
                    self.assertEqual(status, 2, err)
                    self.assertIn(f": {path}:{lineno}: ", err)
                    self.assertIn(says, err)
            for name, content, says in [("empty.jsonl", "", "no model turn"),
                                        ("missing.jsonl", None, "No such file")]:
                with self.subTest(file=name):
                    path = os.path.join(tmp, name)
                    if content is not None:
                        with open(path, "w") as f:
                            f.write(content)
                    status, err = start_refused(self, "--model", f"s=script:{path}")
                    self.assertEqual(status, 2, err)
                    self.assertIn(f"{path}: {says}", err)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_script_past_turn_limit_refused(self):
        n = LIMITS["LIMIT_SCRIPT_TURNS"]
        tmp = tempfile.mkdtemp(prefix="pyexecd-scripts-")
        try:
            path = os.path.join(tmp, "long.jsonl")
            with open(path, "w") as f:
                f.write("\n".join(line([{"text": f"t{i}"}]) for i in range(n + 1)) + "\n")
            status, err = start_refused(self, "--model", f"s=script:{path}")
            self.assertEqual(status, 2, err)
            self.assertIn(f"{path}:{n + 1}: more than {n} model turns", err)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_script_bytes_limit(self):
        """A script file of LIMIT_SCRIPT_BYTES starts; one byte more is refused."""
        limit = LIMITS["LIMIT_SCRIPT_BYTES"]
        turns = LIMITS["LIMIT_SCRIPT_TURNS"]
        tmp = tempfile.mkdtemp(prefix="pyexecd-scripts-")
        try:
            # turns lines of equal length (newline included) that add up to the limit.
            per = limit // turns
            base = line([{"text": ""}])
            lines_ = [line([{"text": "x" * (per - len(base) - 1)}]) for _ in range(turns)]
            text = "\n".join(lines_) + "\n"
            text += " " * (limit - len(text))   # trailing blanks are part of no line
            self.assertEqual(len(text), limit)
            path = os.path.join(tmp, "at.jsonl")
            with open(path, "w") as f:
                f.write(text)
            with Server("--model", f"s=script:{path}", workers=1, pool=1) as s:
                status, body = s.request("POST", "/v1beta/models/s:generateContent",
                                         gen_body([user({"text": "hi"})]))[:2]
                self.assertEqual(status, 200, body)
            with open(path, "a") as f:
                f.write(" ")
            status, err = start_refused(self, "--model", f"s=script:{path}")
            self.assertEqual(status, 2, err)
            self.assertIn(f"at most {limit} bytes", err)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class ScriptConversationsTest(unittest.TestCase):
    """A script remembers the fault attempts of LIMIT_SCRIPT_CONVERSATIONS conversations:
    with that many, the first is still known (its retry is served); one more forgets the
    oldest, and its fault fires again."""

    def test_conversations_limit(self):
        n = LIMITS["LIMIT_SCRIPT_CONVERSATIONS"]
        tmp = tempfile.mkdtemp(prefix="pyexecd-scripts-")
        path = os.path.join(tmp, "flaky.jsonl")
        with open(path, "w") as f:
            f.write(line([{"text": "served"}], fault={"error": {"code": 429}}) + "\n")
        try:
            with Server("--model", f"f=script:{path}", workers=1, pool=1) as s:
                conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)

                def status_of(text):
                    conn.request("POST", "/v1beta/models/f:generateContent",
                                 json.dumps(gen_body([user({"text": text})])),
                                 {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    r.read()
                    return r.status

                self.assertEqual(status_of("first"), 429)
                self.assertEqual(status_of("first"), 200)
                for i in range(n - 1):   # n conversations in all
                    self.assertEqual(status_of(f"other {i}"), 429)
                self.assertEqual(status_of("first"), 200, "forgotten within the limit")
                self.assertEqual(status_of("one more"), 429)   # evicts "first"
                self.assertEqual(status_of("first"), 429, "remembered past the limit")
                conn.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
