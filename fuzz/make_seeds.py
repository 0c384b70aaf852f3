#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/seed-* from what the tree already holds:
the bodies of the unit tests (tests/unit/*.c, their string literals after the C
preprocessor), of the integration tests (tests/integration/*.py: literal dicts and JSON
strings), the conformance corpus and fixtures, the README's examples, the policies and
the policy fixtures, the fake OpenAI server's answers, the example script, and
hand-written edge cases; for the binary targets (worker_report, interpreter_info,
gemini_encode_response, wire_encode_error) it builds inputs in their layouts.

Optionally (--sdk-captures DIR) the request bodies the real Google Gen AI SDKs sent,
captured by a stub (the seeds made from them are kept in the tree; the captures are not
needed afterwards).

Seeds are the files named seed-*; this script rewrites those and nothing else, so
crash-* regression inputs and inputs libFuzzer found (kept with `run.sh --merge`) stay.
The output is deterministic: the same tree gives the same files.

    python3 fuzz/make_seeds.py [--sdk-captures /work/shared/sdk-captures]
"""

import argparse
import ast
import glob
import hashlib
import json
import os
import re
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
MAX_SEEDS = 64          # per target: "a few dozen"
MAX_SEED_BYTES = 16384  # larger bodies make slow seeds; the fuzzer grows them itself

seeds = {}  # target -> list of (name, bytes)


def add(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > MAX_SEED_BYTES:
        return
    lst = seeds.setdefault(target, [])
    if any(d == data for _, d in lst):
        return
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:60]
    lst.append((name, data))


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ---- string literals of the C unit tests -----------------------------------------------

C_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def c_unescape(s):
    out = bytearray()
    i = 0
    simple = {"n": 10, "t": 9, "r": 13, "b": 8, "f": 12, "v": 11, "a": 7, "\\": 92, '"': 34,
              "'": 39, "?": 63}
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        e = s[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == "x":
            m = re.match(r"[0-9a-fA-F]+", s[i + 2:])
            out.append(int(m.group(0), 16) & 0xFF)
            i += 2 + len(m.group(0))
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", s[i + 1:])
            out.append(int(m.group(0), 8) & 0xFF)
            i += 1 + len(m.group(0))
        else:
            out += e.encode()
            i += 2
    return bytes(out)


def c_literals(path):
    """Each run of adjacent string literals of the preprocessed file, decoded."""
    try:
        text = subprocess.run(["cc", "-E", "-P", "-I", ROOT, path], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = open(path, encoding="utf-8").read()
    # Only the file's own code: its functions come after the headers' declarations.
    out, run, last_end = [], None, None
    for m in C_STRING.finditer(text):
        between = text[last_end:m.start()] if last_end is not None else None
        if run is not None and between is not None and between.strip() == "":
            run += c_unescape(m.group(1))
        else:
            if run is not None:
                out.append(run)
            run = c_unescape(m.group(1))
        last_end = m.end()
    if run is not None:
        out.append(run)
    return out


# ---- literals of the Python tests -------------------------------------------------------

def py_values(path):
    """Literal dicts, lists, str and bytes constants of a Python file (evaluable ones)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Dict, ast.List, ast.Constant)):
            try:
                yield ast.literal_eval(node)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                continue


def json_ish(b):
    return b[:1] in (b"{", b"[")


# ---- the targets ------------------------------------------------------------------------

def execute_seeds():
    t = "wire_parse_execute"
    for b in c_literals(os.path.join(ROOT, "tests/unit/test_wire.c")):
        if json_ish(b) and (b"executable" in b or b"parts" in b or b"inline" in b):
            add(t, "unit-test_wire", b)
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/integration/*.py"))):
        base = os.path.basename(path)[:-3]
        for v in py_values(path):
            if isinstance(v, (str, bytes)):
                b = v.encode("utf-8", "surrogatepass") if isinstance(v, str) else v
                if b.startswith(b'{"executableCode"') or b.startswith(b'{"parts"'):
                    add(t, "integ-" + base, b)
            elif isinstance(v, dict) and ("executableCode" in v or "executable_code" in v or
                                          ("parts" in v and "contents" not in v)):
                add(t, "integ-" + base, compact(v))
    # The README's curl examples.
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    for m in re.finditer(r"-d '(\{.*?\})'", readme, re.S):
        body = m.group(1)
        try:
            json.loads(body)
        except ValueError:
            continue
        add(t if '"contents"' not in body else "gemini_parse_request", "readme",
            body if '"contents"' not in body else b"\0" + body.encode())
    # Conformance turns: their code blocks as one request.
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/conformance/corpus/*.jsonl")) +
                       glob.glob(os.path.join(ROOT, "tests/conformance/fixtures/*.jsonl"))):
        for line in open(path, encoding="utf-8"):
            try:
                turn = json.loads(line)
            except ValueError:
                continue
            blocks = turn.get("blocks") or []
            if not blocks:
                continue
            parts = [{"executableCode": {"language": "PYTHON", "code": b["code"]}}
                     for b in blocks if isinstance(b, dict) and "code" in b]
            if parts:
                add(t, "conformance-" + str(turn.get("turn_id", "turn")), compact({"parts": parts}))
    # Hand-written: each accepted shape, and refusals the parser must word.
    code = {"language": "PYTHON", "code": "print(1)"}
    hand = [
        {"executableCode": code},
        {"executable_code": {"language": 1, "code": "x = 1\nprint(x)", "id": "k3v9q2aa"}},
        {"parts": [{"text": "t", "thought": True, "thoughtSignature": "c2ln"},
                   {"executableCode": code}], "role": "user"},
        {"parts": [{"inlineData": {"mimeType": "text/csv", "data": "eCx5CjEsMgo=",
                                   "displayName": "a.csv"}},
                   {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo"}},
                   {"executableCode": code}]},
        {"parts": [{"inlineData": {"mimeType": "Text/Plain; charset=UTF-8", "data": "-_8"}},
                   {"executableCode": {"language": "PYTHON", "code": "print('\u00e9\u20ac\U0001F600')"}}]},
        {"executableCode": {"language": "PYTHON", "code": "print('a\\u0001b')", "id": ""}},
        {"executableCode": {"language": "PYTHON", "code": "x"}, "thought_signature": "!!"},
        {"parts": [{"executableCode": code}] * 65},
        {"parts": [{"fileData": {"mimeType": "text/csv", "fileUri": "gs://b/f.csv"}}]},
        {"parts": [{"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1"}}]},
    ]
    for i, v in enumerate(hand):
        add(t, "hand-%d" % i, compact(v))
    for raw in [b"", b"{}", b"[]", b"null", b'{"executableCode":', b"\xef\xbb\xbf{}",
                b'{"executableCode":{"language":"PYTHON","code":"a\\u0000b"}}',
                b'{"executableCode":{"language":"PYTHON","code":"\xff"}}',
                b'{"executableCode":{"language":"PYTHON","code":"\\ud83d\\ude00"}}',
                b'{"executableCode":{"language":"PYTHON","code":"\\ud83d"}}',
                b'{"parts":[' + b",".join([b"{}"] * 4100) + b"]}"]:
        add(t, "edge", raw)


def empty_seeds():
    t = "wire_parse_empty"
    for i, raw in enumerate([b"", b" ", b"\r\n\t ", b"{}", b" { } ", b"{\n}\n", b"{}{}",
                             b'{"a":1}', b'{"name":"x"}', b"[]", b"null", b"0", b'""',
                             b"{", b"}", b"{]", b"\x00", b"{}\x00", b"{\"\\u0000\":1}",
                             b"\xef\xbb\xbf{}", b"{,}", b"[" * 64 + b"]" * 64,
                             b"{" + b",".join(b'"k%d":%d' % (k, k) for k in range(40)) + b"}"]):
        add(t, "hand-%d" % i, raw)


def gemini_request(contents, **extra):
    return dict({"contents": contents}, **extra)


def user(text):
    return {"role": "user", "parts": [{"text": text}]}


def gemini_seeds(sdk_dir):
    t = "gemini_parse_request"
    for b in c_literals(os.path.join(ROOT, "tests/unit/test_gemini_wire.c")):
        if json_ish(b) and (b'"contents"' in b or b"generateContentRequest" in b):
            add(t, "unit-test_gemini_wire", b"\0" + b)
            if b"generateContentRequest" in b:
                add(t, "unit-test_gemini_wire-count", b"\1" + b)
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/integration/*.py")) +
                       glob.glob(os.path.join(ROOT, "tests/sdk/*.py"))):
        base = os.path.basename(path)[:-3]
        for v in py_values(path):
            if isinstance(v, dict) and ("contents" in v or "generateContentRequest" in v):
                add(t, "test-" + base, b"\0" + compact(v).encode())
    if sdk_dir:
        for path in sorted(glob.glob(os.path.join(sdk_dir, "*.json"))):
            base = os.path.basename(path)[:-5]
            try:
                doc = json.load(open(path, encoding="utf-8"))
            except ValueError:
                continue
            for req in doc.get("requests", []) if isinstance(doc, dict) else []:
                body = req.get("body") if isinstance(req, dict) else None
                p = req.get("path", "") if isinstance(req, dict) else ""
                if not isinstance(body, dict) or req.get("method") != "POST":
                    continue
                count = b"\1" if ":countTokens" in p else b"\0"
                add(t, "sdk-" + base + "-" + str(req.get("scenario", "")),
                    count + compact(body).encode())
    # The recorded response's parts as history; the prompts as user turns.
    resp = os.path.join(ROOT, "tests/conformance/fixtures/response_body.json")
    if os.path.exists(resp):
        content = json.load(open(resp))["candidates"][0]["content"]
        add(t, "conformance-history", b"\0" + compact(gemini_request(
            [user("plot it"), content, user("again")], tools=[{"codeExecution": {}}])).encode())
    prompts = os.path.join(ROOT, "tests/conformance/fixtures/prompts.jsonl")
    if os.path.exists(prompts):
        for line in open(prompts, encoding="utf-8"):
            p = json.loads(line)
            add(t, "conformance-prompt-" + p["id"], b"\0" + compact(gemini_request(
                [user(p["prompt"])], tools=[{"code_execution": {}}])).encode())
    hand = [
        gemini_request([user("hi")]),
        gemini_request([{"parts": [{"text": "no role"}]}], systemInstruction="be brief"),
        gemini_request([user("x")], system_instruction={"parts": [{"text": "a"}, {"text": "b"}]},
                       generation_config={"temperature": 0}, safety_settings=[],
                       tool_config={}, labels={"a": "b"}, cached_content="c", model="m"),
        gemini_request([user("f"), {"role": "model", "parts": [
            {"executableCode": {"language": "PYTHON", "code": "print(1)", "id": "ab"},
             "thoughtSignature": "----__4gc2lnLTAwMDE="},
            {"codeExecutionResult": {"outcome": "OUTCOME_FAILED", "output": "e\n", "id": "ab"}},
            {"code_execution_result": {"outcome": 3}},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"text": "thinking", "thought": True},
            {"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"inlineData": {"mimeType": "text/csv", "data": "eCx5Cg"}},
                                       {"fileData": {"fileUri": "gs://x"}}, {"text": "go"}]}],
            tools=[{"codeExecution": {}}, {"googleSearch": {}}, {"functionDeclarations": []}]),
        gemini_request([user("\u00e9\u20ac\U0001F600 " * 10)], tools=[{"code_execution": {}}]),
        {"generateContentRequest": {"model": "models/echo", "contents": [user("count me")]}},
        gemini_request([]),
        gemini_request([{"parts": []}]),
        gemini_request([{"parts": [{}]}]),
        gemini_request([{"parts": [{"text": "a", "inlineData": {"mimeType": "a/b", "data": ""}}]}]),
        gemini_request([{"parts": [{"inlineData": {"mimeType": "nocsv", "data": "eA=="}}]}]),
        gemini_request([{"parts": [{"inlineData": {"mimeType": "text/csv", "data": "e"}}]}]),
        gemini_request([user("x")], tools=[{"frob": {}}]),
        gemini_request([user("x")], tools={"codeExecution": {}}),
        {"contents": [user("x")], "frob": 1},
    ]
    for i, v in enumerate(hand):
        add(t, "hand-%d" % i, bytes([i % 2 if "generateContentRequest" in v else 0]) +
            compact(v).encode())
    for raw in [b"\0", b"\1", b"\0{}", b"\1{}", b"\0[]", b"\0{\"contents\":null}",
                b"\0{\"contents\":[{\"parts\":[{\"text\":\"\xff\"}]}]}",
                b"\0{\"contents\":[{\"parts\":[{\"text\":\"a\\u0000\"}]}]}"]:
        add(t, "edge", raw)


def script_seeds():
    t = "gemini_parse_script_line"
    for line in open(os.path.join(ROOT, "docs/examples/agent_script.jsonl"), encoding="utf-8"):
        if line.strip():
            add(t, "docs-agent_script", line.rstrip("\n"))
    for b in c_literals(os.path.join(ROOT, "tests/unit/test_gemini_wire.c")):
        if b.startswith(b'{"parts"') or b.startswith(b'{"fault"') or b.startswith(b'{"times"'):
            add(t, "unit-test_gemini_wire", b)
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/integration/*.py")) +
                       glob.glob(os.path.join(ROOT, "tests/sdk/*.py"))):
        base = os.path.basename(path)[:-3]
        for v in py_values(path):
            if isinstance(v, dict) and ("fault" in v or ("parts" in v and "contents" not in v
                                                         and "role" not in v)):
                add(t, "test-" + base, compact(v))
    hand = [
        {"parts": [{"text": "hi"}, {"executableCode": {"code": "print(1)", "language": 1}}]},
        {"parts": [{"executable_code": {"code": "x", "id": "id1"}}], "times": 2},
        {"fault": {"error": {"code": 503}}},
        {"fault": {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                             "message": "slow down \u00e9", "retryDelay": "2s"}},
         "parts": [{"text": "a"}], "times": 3},
        {"fault": {"delayMs": 10, "cutAfterEvents": 1, "deadlineMs": 100},
         "parts": [{"text": "b"}]},
        {"fault": {"error": {"code": 599, "status": "UNAVAILABLE", "message": "\u00e9" * 300,
                             "retryDelay": "10s"}}},
        {"fault": {"error": {"code": 399}}},
        {"parts": [{"codeExecutionResult": {"outcome": "OUTCOME_OK"}}]},
        {"parts": [{"inlineData": {"mimeType": "image/png", "data": ""}}]},
        {"parts": [{"text": "a"}], "times": 0},
    ]
    for i, v in enumerate(hand):
        add(t, "hand-%d" % i, compact(v))
    for raw in [b"", b"{}", b"[]", b'{"parts":[{"text":"\xc3"}]}', b'{"parts": [}']:
        add(t, "edge", raw)


def strings_under(obj, keys):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in keys and isinstance(v, str):
                yield v
            else:
                yield from strings_under(v, keys)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings_under(v, keys)


def base64_seeds(sdk_dir):
    t = "base64"
    if sdk_dir:
        for path in sorted(glob.glob(os.path.join(sdk_dir, "*.json"))):
            try:
                doc = json.load(open(path, encoding="utf-8"))
            except ValueError:
                continue
            for v in strings_under(doc, {"data", "thoughtSignature", "thought_signature"}):
                add(t, "sdk-" + os.path.basename(path)[:-5], v)
    for b in c_literals(os.path.join(ROOT, "tests/unit/test_base64.c")):
        if len(b) < 200 and b"%" not in b and not b.startswith(b"FAIL"):
            add(t, "unit-test_base64", b)
    for i, raw in enumerate([b"", b"=", b"==", b"===", b"eA==", b"eA", b"eA=", b"eA===",
                             b"----__4gc2lnLTAwMDE=", b"+/8=", b"-_8", b"+_-/",
                             b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg==",
                             b"eCx5CjEsMgozLDQK", b"QQ", b"QR", b"QUI", b"QUJ", b"Q\n==",
                             b"QUJD\x00", b"\xff\xfe", b"A" * 1001, b"AAA=" * 10]):
        add(t, "hand-%d" % i, raw)


def utf8_seeds():
    t = "utf8"
    for b in c_literals(os.path.join(ROOT, "tests/unit/test_utf8.c")):
        if len(b) < 300 and b"%" not in b and not b.startswith(b"FAIL"):
            add(t, "unit-test_utf8", b)
    for i, raw in enumerate([b"", b"ascii", "\u00e9\u20ac\U0001F600".encode(),
                             b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xed\xa0\x80",
                             b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
                             b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\x80", b"\xbf\xbf\xbf",
                             b"a\xffb", b"\x00\x00", b"\xef\xbb\xbf", b"\xf4\x8f\xbf\xbf",
                             "\u00e9".encode() * 100 + b"\xc3",
                             "\U0001F600".encode() * 50 + b"\xf0\x9f"]):
        add(t, "hand-%d" % i, raw)


def policy_seeds():
    t = "policy_parse"
    paths = sorted(glob.glob(os.path.join(ROOT, "policies/*.policy")) +
                   glob.glob(os.path.join(ROOT, "tests/policies/*/*.policy")))
    for path in paths:
        rel = os.path.relpath(path, ROOT).replace("/", "-")
        add(t, rel, open(path, "rb").read())
    for i, raw in enumerate([b"", b"allow read", b"allow read\n", b"allow read\r\n",
                             b"allow read # c\ndefault kill\n",
                             b"errno EPERM open\nallow read\n",
                             b"allow socket if arg0 == AF_UNIX|AF_INET and arg1 & 0xf == 1\n",
                             b"allow clone if arg0 & CLONE_VM|CLONE_THREAD == CLONE_VM\n",
                             b"allow read\nlimit output_bytes 16\nlimit file_size_mib 1\n",
                             b"allow read\nexec /usr/bin/ls /bin/\n",
                             b"allow read\nexec /usr/../bin\n",
                             b"allow read\x00write\n", b"allow " + b"a" * 2000 + b"\n",
                             b"allow read " + b"x " * 130 + b"\n",
                             b"allow read\nlimit deadline_ms 18446744073709551616\n",
                             b"allow read\ndefault errno 4095\n",
                             b"allow read\nkill ptrace\nerrno 38 io_uring_setup\n"]):
        add(t, "hand-%d" % i, raw)


def openai_seeds():
    t = "openai_parse_reply"
    sys.path.insert(0, os.path.join(ROOT, "tests/integration"))
    try:
        import fake_openai  # stdlib only
    except Exception:
        fake_openai = None
    if fake_openai:
        first = {"messages": [{"role": "user", "content": "hi"}]}
        later = {"messages": [{"role": "tool", "content": "OUTCOME_OK\n4\n"}],
                 "tool_choice": "none"}
        for name, fn in sorted(fake_openai.SCRIPTS.items()):
            if name in ("stall", "body-at-limit", "body-past-limit"):
                continue
            for i, body in enumerate((first, later)):
                try:
                    r = fn(body, i)
                except Exception:
                    continue
                if r.body:
                    add(t, "fake_openai-" + name, r.body)
    def completion(message):
        return compact({"id": "c", "object": "chat.completion",
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
    call = lambda args, **kw: dict({"id": "call_1", "type": "function",
                                    "function": {"name": "run_python", "arguments": args}}, **kw)
    hand = [
        completion({"role": "assistant", "content": "plain text \u00e9"}),
        completion({"role": "assistant", "content": None,
                    "tool_calls": [call('{"code": "print(1)"}')]}),
        completion({"role": "assistant", "content": "",
                    "tool_calls": [call({"code": "print(2)"}), {"function": {}}, {}, 5]}),
        completion({"role": "assistant", "tool_calls": [call('{"code": "x"}')] * 12}),
        completion({"role": "assistant", "tool_calls": [dict(call("{}"), id="")]}),
        compact({"error": {"message": "model is loading"}}),
        compact({"error": "plain error string"}),
        compact({"choices": [{"message": "not an object"}]}),
        compact({"choices": {}}),
        compact({"choices": [5]}),
        '{"choices":[{"message":{"content":"\\ud83d\\ude00 ok"}}]}',
    ]
    for i, v in enumerate(hand):
        add(t, "hand-%d" % i, v)
    for raw in [b"", b"{}", b"[]", b"null", b'{"choices":[{"message":{"content":"a\\u0000b"}}]}']:
        add(t, "edge", raw)

    t = "openai_call_code"
    for i, raw in enumerate([b'{"code": "print(1)"}', b'{"code":"import os\\nprint(os.getcwd())"}',
                             b'{"code": ""}', b'{"code": 5}', b'{"code": null}', b"{}", b"[]",
                             b'{"code": "print(1)"', b'"just a string"', b"",
                             b'{"code": "a\\u0000b"}', b'{"code": "\\u00e9\\ud83d\\ude00"}',
                             b'{"code": "x", "code": "y"}',
                             b'{"language": "python", "code": "print(3)"}',
                             b'{"code": "' + b"x" * 1000 + b'"}',
                             b"[" * 100 + b"]" * 100, b'{"code":"print(1)"} ',
                             b' {"code":"print(1)"}', b'{"code":"print(1)"}x',
                             b'{"Code":"print(1)"}', b'{"code":["print(1)"]}',
                             b'{"code":"\\u0041"}', b'{"code":"tab\\there"}',
                             b'{"code":"' + b"\\n" * 500 + b'"}',
                             b'{"a":{"code":"nested"}}']):
        add(t, "hand-%d" % i, raw)


# ---- binary layouts ---------------------------------------------------------------------

IPC_W_READY, IPC_W_SETUP_FAILED, IPC_W_BLOCK_DONE, IPC_W_JOB_DONE = 20, 21, 22, 23


def frame(ftype, payload):
    return struct.pack("<II", ftype, len(payload)) + payload


def pbytes(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<I", len(b)) + b


def block_done(index, status=0, flags=0, out_end=0, err_end=0, error=b"", images=()):
    p = struct.pack("<IIIQQ", index, status, flags, out_end, err_end) + pbytes(error)
    p += struct.pack("<I", len(images))
    for mime, data in images:
        p += pbytes(mime) + pbytes(data)
    return frame(IPC_W_BLOCK_DONE, p)


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d4944415478da63606060f80f0001040100c12d8e5000"
                    "00000049454e44ae426082")


def report(cap=2, merge=False, nblocks=1, end=0, chunk=0, out=b"", err=b"", stream=b""):
    cfg0 = cap | (4 if merge else 0) | ((nblocks - 1) << 3) | (end << 6)
    return (bytes([cfg0, chunk]) + struct.pack("<HH", len(out), len(err)) + out + err +
            stream)


def worker_report_seeds():
    t = "worker_report"
    tb = b"name 'x' is not defined\nTraceback (most recent call last):\n  File \"<string>\", line 1, in <module>\nNameError: name 'x' is not defined\n"
    cases = {
        "ok-one-block": report(out=b"2\n", stream=block_done(0, out_end=2) + frame(IPC_W_JOB_DONE, b"")),
        "two-blocks-exception": report(nblocks=2, out=b"a\nb\n", err=b"warn\n", stream=
            block_done(0, out_end=2) + block_done(1, 1, 0, 4, 5, tb) + frame(IPC_W_JOB_DONE, b"")),
        "merge-exception": report(merge=True, out=b"printed\n", err=b"e", stream=
            block_done(0, 1, 0x8, 8, 1, b"MemoryError\n") + frame(IPC_W_JOB_DONE, b"")),
        "images": report(stream=block_done(0, images=[("image/png", PNG), ("image/jpeg", b"\xff\xd8\xff"),
                                                      ("image/gif", b"GIF89a"), ("image/png", b"")])
                         + frame(IPC_W_JOB_DONE, b"")),
        "truncated-flags": report(cap=0, out=b"x" * 40, err=b"y" * 40, stream=
            block_done(0, 1, 0x1 | 0x2 | 0x4 | 0x100, 40, 40, b"E" * 50) + frame(IPC_W_JOB_DONE, b"")),
        "invalid-utf8-output": report(cap=0, out=b"\xff\xfe\xc3" * 10 + "\u00e9".encode() * 10,
                                      err=b"\xed\xa0\x80", stream=block_done(
            0, 1, 0, 50, 3, b"\xc3(\xa0\xa1" * 20) + frame(IPC_W_JOB_DONE, b"")),
        "ends-past-file": report(out=b"abc", stream=block_done(0, 0, 0, 1 << 40, 2 ** 64 - 1)
                                 + frame(IPC_W_JOB_DONE, b"")),
        "ends-backwards": report(nblocks=2, out=b"abcdef", stream=block_done(0, 0, 0, 5, 0)
                                 + block_done(1, 0, 0, 2, 0) + frame(IPC_W_JOB_DONE, b"")),
        "crash-mid-job": report(nblocks=3, end=0, out=b"started\n", stream=block_done(0, out_end=3)),
        "exit0-mid-job": report(nblocks=2, end=1, out=b"bye", stream=b""),
        "sigsys": report(end=2, err=b"Bad system call", stream=b""),
        "deadline": report(nblocks=4, end=3, out=b"tick\n" * 5, stream=block_done(0, out_end=5)),
        "early-job-done": report(nblocks=2, stream=frame(IPC_W_JOB_DONE, b"")),
        "wrong-index": report(nblocks=2, stream=block_done(1)),
        "bad-status": report(stream=block_done(0, status=7)),
        "ready-while-busy": report(stream=frame(IPC_W_READY, b"\0\0\0\0")),
        "setup-failed-while-busy": report(stream=frame(IPC_W_SETUP_FAILED, b"why\n\x1b[31m")),
        "unknown-frame": report(stream=frame(99, b"x")),
        "short-payload": report(stream=frame(IPC_W_BLOCK_DONE, b"\0\0\0\0\0\0")),
        "oversized-frame": report(stream=struct.pack("<II", IPC_W_BLOCK_DONE, 0xFFFFFFFF)),
        "partial-header": report(stream=b"\x16\0\0"),
        "image-count-lies": report(stream=block_done(0)[:-4] + struct.pack("<I", 0xFFFFFFFF) +
                                   frame(IPC_W_JOB_DONE, b"")),
        "byte-by-byte": report(chunk=1, nblocks=2, out=b"12", stream=block_done(0, out_end=1)
                               + block_done(1, out_end=2) + frame(IPC_W_JOB_DONE, b"")),
        "chunked-61": report(chunk=2, nblocks=8, out=b"0123456789", stream=b"".join(
            block_done(i, i % 2, 0, i + 1, 0, b"err %d\n" % i if i % 2 else b"") for i in range(8))
            + frame(IPC_W_JOB_DONE, b"")),
        "frames-after-done": report(stream=block_done(0) + frame(IPC_W_JOB_DONE, b"") +
                                    block_done(1) + b"garbage"),
        "seventeen-images": report(stream=block_done(0, images=[("image/png", PNG)] * 17)
                                   + frame(IPC_W_JOB_DONE, b"")),
        "cap-1mib": report(cap=3, out=b"o" * 3000, stream=block_done(0, out_end=3000) +
                           frame(IPC_W_JOB_DONE, b"")),
        "empty": b"",
    }
    for name, data in cases.items():
        add(t, name, data)


def interpreter_info_payload(python="3.11.2", libs=(), failures=(), layers=0x3F):
    p = struct.pack("<I", layers) + pbytes(python) + struct.pack("<I", len(libs))
    for name, version, lists in libs:
        p += pbytes(name) + pbytes(version) + struct.pack("<I", lists)
    p += struct.pack("<I", len(failures))
    for f in failures:
        p += pbytes(f)
    return p


def interpreter_info_seeds():
    t = "interpreter_info"
    real = [("numpy", "1.26.4", 3), ("pandas", "2.2.2", 3), ("matplotlib", "3.8.4", 3),
            ("scikit-learn", "1.4.2", 3), ("sympy", "1.12", 2), ("tensorflow", "", 1),
            ("opencv-python", "", 2)]
    cases = {
        "real": interpreter_info_payload(libs=real, failures=["tensorflow: No module named 'tensorflow'"]),
        "empty": interpreter_info_payload(python=""),
        "many-libraries": interpreter_info_payload(libs=[("lib%d" % i, "1.%d" % i, i % 4) for i in range(70)]),
        "many-failures": interpreter_info_payload(failures=["f%d" % i for i in range(12)]),
        "long-strings": interpreter_info_payload(python="3" * 40, libs=[("n" * 80, "v" * 40, 0xFFFFFFFF)],
                                                 failures=["x" * 300]),
        "utf8": interpreter_info_payload(python="3.11\u00e9", libs=[("\u00e9" * 10, "\u20ac", 1)],
                                         failures=["\U0001F600" * 10]),
        "invalid-utf8": interpreter_info_payload(python=b"\xff\xfe".decode("latin-1"),
                                                 libs=[("a\u0001b", "\"\\", 3)]),
        "count-lies": struct.pack("<I", 1) + pbytes("3.11") + struct.pack("<I", 0xFFFFFFFF),
        "short": b"\1\0\0",
        "string-length-lies": struct.pack("<I", 0) + struct.pack("<I", 0x7FFFFFFF) + b"abc",
        "duplicate-names": interpreter_info_payload(libs=[("numpy", "1", 3), ("numpy", "", 3)]),
    }
    lock = os.path.join(ROOT, "sandbox/python/requirements.lock")
    pins = [l.strip().split("==") for l in open(lock, encoding="utf-8")
            if "==" in l and not l.startswith("#")] if os.path.exists(lock) else []
    for i, n in enumerate((len(pins), 39, 16, 1)):
        libs = [(name, version if k % 7 else "", 1 + k % 3) for k, (name, version) in
                enumerate(pins[:n])]
        cases["pinned-%d" % n] = interpreter_info_payload(libs=libs, layers=(0x3F >> i))
    for layers in (0, 1, 0xFFFFFFFF):
        cases["layers-%x" % layers] = interpreter_info_payload(layers=layers, libs=real[:2])
    cases["failures-only"] = interpreter_info_payload(failures=[
        "cv2: libGL.so.1: cannot open shared object file", "torch: No module named 'torch'"])
    cases["nul-inside"] = interpreter_info_payload(python="3.11\0x", libs=[("a\0b", "1\0", 1)])
    for name, data in cases.items():
        add(t, name, data)


def u16(n):
    return struct.pack("<H", n)


def gbytes(b):
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogatepass")
    return u16(len(b)) + b


def gpart(kind, flags=0, text=b"", pid=b"", mime=b"", data=b""):
    return bytes([kind, flags]) + gbytes(text) + gbytes(pid) + gbytes(mime) + gbytes(data)


def gtail(choice=1, version="gemini-2.5-flash", rid="abc123", t=1764690000000, tokens=(10, 5, 3)):
    return (bytes([choice]) + gbytes(version) + gbytes(rid) + gbytes("OTHER") +
            struct.pack("<Q", t) + struct.pack("<III", *tokens))


def encode_response_seeds():
    t = "gemini_encode_response"
    cases = {
        "turn": bytes([4]) + gpart(0, text="Let me compute.") +
                gpart(1, 2, "print(2+2)", "ec_1") + gpart(2, 2 | 4, "4\n", "ec_1") +
                gpart(0, text="It is 4."),
        "failed-and-image": bytes([3]) + gpart(1, text="1/0") +
                            gpart(2, 8, "division by zero\nTraceback...\n") +
                            gpart(3, mime="image/png", data=PNG),
        "no-output": bytes([2]) + gpart(1, text="x = 1") + gpart(2, 4 | 16),
        "control-and-nul": bytes([2]) + gpart(0, 1, "a\0b\x01\x1f\"\\\n\t\u2028") +
                           gpart(1, 2, "print('\\0')", 'id"\\'),
        "invalid-utf8-in": bytes([2]) + gpart(0, text=b"\xff\xc3(\xed\xa0\x80") +
                           gpart(3, mime=b"image/\xff", data=b"\0" * 10),
        "outcomes": bytes([4]) + b"".join(gpart(2, o << 2, "o") for o in range(4)),
        "other": bytes([1]) + gpart(4, text="ignored"),
        "empty": bytes([0]),
        "many": bytes([15]) + gpart(0, text="x") * 15,
    }
    for kind in range(5):
        for flags in (0, 1, 2, 3, 16, 2 | 16):
            cases["kind%d-flags%d" % (kind, flags)] = bytes([1]) + gpart(
                kind, flags, "text \u00e9", "id-%d" % kind, "image/png", PNG[:8])
    for name, data in cases.items():
        choice = 0 if name == "empty" else 1 if name != "other" else 9
        add(t, name, data + gtail(choice=choice))
    add(t, "times", bytes([1]) + gpart(0, text="t") + gtail(t=0, tokens=(0, 0, 0)))
    add(t, "big-tokens", bytes([1]) + gpart(0, text="t") + gtail(tokens=(2**32 - 1,) * 3))
    add(t, "no-tail", bytes([1]) + gpart(0, text="hi"))
    add(t, "nothing", b"")


def encode_error_seeds():
    t = "wire_encode_error"
    def e(code, r, retry, status, delay, message):
        return (u16(code + 1000) + bytes([r, retry]) + gbytes(status) + gbytes(delay) +
                (message if isinstance(message, bytes) else message.encode()))
    cases = {
        "invalid-argument": e(400, 1, 0, "INVALID_ARGUMENT", "", "Invalid JSON payload received. Unknown name \"frob\" at 'part': Cannot find field."),
        "quota": e(429, 5, 1, "RESOURCE_EXHAUSTED", "2s", "Resource has been exhausted"),
        "custom-delay": e(503, 6, 2, "UNAVAILABLE", "1.5s", "The model is overloaded."),
        "client-bytes": e(400, 1, 0, "INVALID_ARGUMENT", "", b"Invalid value at 'x' (\xff\xfe\xc3): \xed\xa0\x80 \xf4\x90\x80\x80"),
        "escapes": e(500, 7, 0, "INTERNAL", "", "quote \" backslash \\ newline \n tab \t ctl \x01\x1f"),
        "empty": e(0, 0, 0, "", "", ""),
        "status-utf8": e(404, 3, 2, "\u00e9\U0001F600", "\u20ac", "not found \u00e9"),
        "negative-code": e(-1000, 15, 0, "X", "", "m"),
        "long": e(413, 2, 0, "INVALID_ARGUMENT", "", "x" * 3000 + "\u00e9" * 500),
        "nul-cut": e(400, 1, 0, "S", "", b"before\0after"),
    }
    for r in range(16):
        cases["result-%d" % r] = e(0, r, r, "", "", "" if r % 2 else "result %d" % r)
    for code in (200, 404, 405, 413, 429, 499, 500, 503, 504, 65535 - 1000):
        cases["http-%d" % code] = e(code, 0, 0, "STATUS", "", "http %d" % code)
    for name, data in cases.items():
        add(t, name, data)
    add(t, "nothing", b"")


# ---- writing ----------------------------------------------------------------------------

def chosen(lst):
    """At most MAX_SEEDS: every hand-written one, then harvested ones, spread over their
    sources (round robin by name), shortest first within a source."""
    hand = [x for x in lst if x[0].startswith(("hand", "edge"))]
    rest = [x for x in lst if not x[0].startswith(("hand", "edge"))]
    by_source = {}
    for x in rest:
        by_source.setdefault(x[0].split("-")[0], []).append(x)
    queues = [sorted(v, key=lambda x: len(x[1])) for _, v in sorted(by_source.items())]
    picked = list(hand)
    while len(picked) < MAX_SEEDS and any(queues):
        for q in queues:
            if q and len(picked) < MAX_SEEDS:
                picked.append(q.pop(0))
    return picked


def write_all():
    for target, lst in sorted(seeds.items()):
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for f in glob.glob(os.path.join(d, "seed-*")):
            os.remove(f)
        lst = chosen(lst)
        for name, data in lst:
            h = hashlib.sha1(data).hexdigest()[:8]
            with open(os.path.join(d, "seed-%s-%s" % (name, h)), "wb") as f:
                f.write(data)
        print("%-26s %3d seeds" % (target, len(lst)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdk-captures", help="a directory of SDK request captures (*.json)")
    args = ap.parse_args()
    execute_seeds()
    empty_seeds()
    gemini_seeds(args.sdk_captures)
    script_seeds()
    base64_seeds(args.sdk_captures)
    utf8_seeds()
    policy_seeds()
    openai_seeds()
    worker_report_seeds()
    interpreter_info_seeds()
    encode_response_seeds()
    encode_error_seeds()
    write_all()


if __name__ == "__main__":
    main()
