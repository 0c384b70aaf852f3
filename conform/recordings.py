"""Reading recordings into cases. The format is found from the content, not the file name:

- the corpus JSONL (tests/conformance/corpus/): whole turns (turn_id, blocks) and single
  blocks (id, code), one JSON object a line; a JSONL of response bodies works too;
- a generateContent response body (JSON, {"candidates": ...});
- a streamGenerateContent stream: a JSON array of response chunks (no alt=sse), or SSE
  (`data: {...}` events, alt=sse);
- a cassette as SDK test suites store HTTP: VCR.py / pytest-recording YAML (or JSON),
  `interactions: [{request: {...}, response: {...}}]`, the response body as VCR writes it
  (`body: {string: ...}`, also gzip-compressed or base64 `!!binary`) or as pydantic-ai's
  serializer does (`parsed_body:` holding the JSON itself);
- any of these gzip-compressed.

Each model response becomes one case: its code blocks in order (executableCode, then its
codeExecutionResult part(s), then its inlineData images), replayed in one interpreter.
A cassette's request adds the user's inlineData files of that turn and the function
names it declared.
"""

import base64
import binascii
import gzip
import json
import os
import re
import zlib

from conform import cases as C

# MIME types pyexecd's work dir takes as input files (README, "Input files"); other
# inlineData (a PDF, audio) is context for the model only.
INPUT_MIME_TYPES = {"image/png", "image/jpeg", "text/csv", "text/xml", "text/x-c++src",
                    "text/x-java", "text/x-python", "text/javascript", "text/x-typescript",
                    "text/plain"}


class FormatError(ValueError):
    """The file is in no format this tool reads."""


def read_file(path):
    """(format name, [Case]) for one file."""
    with open(path, "rb") as f:
        data = f.read()
    return read_bytes(data, path)


def read_bytes(data, path):
    name = os.path.basename(path)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(f"{path}: not UTF-8 text ({e})") from None
    fmt, cases = read_text(text, name, path)
    _unique_ids(cases)
    return fmt, cases


def read_text(text, name, path=None):
    stripped = text.lstrip()
    if not stripped:
        raise FormatError(f"{path or name}: empty file")
    # One JSON document: a response body, a JSON-array stream, a JSON cassette, or a
    # one-line corpus file.
    if stripped[0] in "{[":
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if doc is not None:
            return _from_document(doc, name, path)
    if stripped.startswith("data:") or re.search(r"^data:\s*[{\[]", text, re.M):
        return "sse-stream", response_cases(parse_sse(text), name, path)
    if stripped[0] == "{":
        return _from_jsonl(text, name, path)
    try:
        import yaml
    except ImportError:
        raise FormatError(f"{path or name}: looks like YAML, and reading it needs PyYAML "
                          "(Debian: apt-get install python3-yaml)") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise FormatError(f"{path or name}: neither JSON, JSONL, SSE nor YAML ({e})") from None
    if isinstance(doc, dict) and "interactions" in doc:
        return "cassette-yaml", cassette_cases(doc, name, path)
    raise FormatError(f"{path or name}: not a recording this tool reads (no corpus lines, "
                      "response body, stream or cassette interactions)")


def _from_document(doc, name, path):
    if isinstance(doc, dict):
        if "interactions" in doc:
            return "cassette-json", cassette_cases(doc, name, path)
        if "candidates" in doc or "error" in doc:
            return "response-json", response_cases([doc], name, path)
        if "turn_id" in doc or ("code" in doc and "outcome" in doc):
            return _from_jsonl(json.dumps(doc), name, path)
    if isinstance(doc, list) and doc and all(isinstance(d, dict) for d in doc):
        if any("candidates" in d for d in doc):
            return "stream-json-array", response_cases(doc, name, path)
        if all("request" in d and "response" in d for d in doc):
            return "cassette-json", cassette_cases({"interactions": doc}, name, path)
    raise FormatError(f"{path or name}: JSON, but not a response body, stream, cassette or "
                      "corpus record")


def _from_jsonl(text, name, path):
    turns, singles, responses = [], [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise FormatError(f"{path or name}:{n}: not JSON ({e})") from None
        if not isinstance(row, dict):
            raise FormatError(f"{path or name}:{n}: not a JSON object")
        if "turn_id" in row and "blocks" in row:
            turns.append((n, row))
        elif "code" in row and "outcome" in row and "id" in row:
            singles.append((n, row))
        elif "candidates" in row:
            responses.append((n, row))
        else:
            raise FormatError(f"{path or name}:{n}: neither a corpus turn (turn_id, blocks), "
                              "a single block (id, code, outcome) nor a response body")
    cases = C.turn_cases(turns, name, path) + C.single_cases(singles, name, path)
    for n, row in responses:
        cases += response_cases([row], f"{name}:{n}", path, origin=f"line {n}")
    kinds = [k for k, rows in (("turns", turns), ("blocks", singles),
                               ("responses", responses)) if rows]
    return "corpus-jsonl (" + ", ".join(kinds) + ")", cases


# --- streams and response bodies ---------------------------------------------------------

def parse_sse(text):
    """The JSON events of an SSE stream (data: lines; an event's data lines joined)."""
    events, data = [], []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" ") if line[5:6] == " " else line[5:])
        elif not line.strip():
            if data:
                events.append("\n".join(data))
                data = []
        # event:, id:, retry: and comments carry nothing for us
    if data:
        events.append("\n".join(data))
    chunks = []
    for event in events:
        if event.strip() in ("", "[DONE]"):
            continue
        try:
            chunks.append(json.loads(event))
        except ValueError as e:
            raise FormatError(f"an SSE event is not JSON ({e}): {event[:200]}") from None
    return chunks


def merged_parts(chunks):
    """The parts of candidate 0 across the chunks of a stream (one chunk for a unary
    response), in order."""
    parts = []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        for cand in chunk.get("candidates") or []:
            if cand.get("index", 0) != 0:
                continue
            parts.extend((cand.get("content") or {}).get("parts") or [])
    return parts


def _get(d, camel, snake):
    if camel in d:
        return d[camel]
    return d.get(snake)


def blocks_from_parts(parts):
    """The code blocks of a model turn: each executableCode part starts one; the
    codeExecutionResult parts after it are its entries, the inlineData parts its images.
    A code part with no result is the 2025 shape (one OK entry without output)."""
    blocks = []
    for part in parts:
        code = _get(part, "executableCode", "executable_code")
        result = _get(part, "codeExecutionResult", "code_execution_result")
        inline = _get(part, "inlineData", "inline_data")
        if code is not None:
            blocks.append({"code": code.get("code", ""), "entries": [], "images": 0,
                           "thought": bool(part.get("thought"))})
        elif result is not None and blocks:
            outcome = result.get("outcome", "OUTCOME_UNSPECIFIED")
            if isinstance(outcome, int):
                outcome = {0: "OUTCOME_UNSPECIFIED", 1: "OUTCOME_OK", 2: "OUTCOME_FAILED",
                           3: "OUTCOME_DEADLINE_EXCEEDED"}.get(outcome, str(outcome))
            blocks[-1]["entries"].append((outcome, result.get("output")))
        elif inline is not None and blocks:
            blocks[-1]["images"] += 1
    for b in blocks:
        if not b["entries"]:
            b["entries"] = [("OUTCOME_OK", None)]
            b["result_part"] = False
    return blocks


def response_cases(chunks, name, path, origin=None, request=None, case_id=None,
                   notes=""):
    """One case (or none, when it holds no code) from the chunks of one response."""
    errors = [c["error"] for c in chunks if isinstance(c, dict) and "error" in c]
    parts = merged_parts(chunks)
    blocks = blocks_from_parts(parts)
    if not blocks and not errors:
        return []
    model = next((c.get("modelVersion") for c in chunks
                  if isinstance(c, dict) and c.get("modelVersion")), None)
    files, specs, tool_names = [], [], set()
    if request is not None:
        files, specs, tool_names = request_inputs(request)
    reason = C.infer_nondeterminism([b["code"] for b in blocks])
    note = notes
    if errors:
        note += f" The response ended with an error: {json.dumps(errors[-1])[:300]}"
    if model:
        note += f" Model: {model}."
    case = C.Case(case_id or name, name, reason is None, False, blocks, note.strip(),
                  [s["name"] for s in specs], specs, files=files, tool_names=tool_names,
                  origin=origin, kind="response", deterministic_source="inferred",
                  path=path)
    case.nondeterminism = reason
    if not blocks:
        case.skip = (C.SKIP_NO_CODE, "the stream ended with an error before any code")
    return [case]


def request_inputs(request):
    """([(mime, base64)] input files, [{"name", "mime"}] their descriptions, {declared
    function names}) of a recorded generateContent request: the inlineData parts of its
    last user content of a type the work dir takes, and its fileData parts (which the
    recording does not hold)."""
    contents = _get(request, "contents", "contents") or []
    user = [c for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"]
    files, specs = [], []
    if user:
        for part in user[-1].get("parts") or []:
            inline = _get(part, "inlineData", "inline_data")
            file_data = _get(part, "fileData", "file_data")
            if inline is not None:
                mime = _get(inline, "mimeType", "mime_type") or ""
                if mime in INPUT_MIME_TYPES:
                    ext = _extension(mime)
                    specs.append({"name": f"input_file_{len(specs)}.{ext}", "mime": mime,
                                  "origin": "inlineData part of the recorded request"})
                    files.append((mime, _std_base64(inline.get("data", ""))))
            elif file_data is not None:
                mime = _get(file_data, "mimeType", "mime_type") or ""
                if mime in INPUT_MIME_TYPES:
                    specs.append({"name": f"input_file_{len(specs)}.{_extension(mime)}",
                                  "mime": mime, "origin": "fileData "
                                  + str(_get(file_data, "fileUri", "file_uri"))})
    # fileData parts leave a gap: files after one cannot be supplied in order either.
    if len(files) < len(specs):
        first_missing = next(i for i, s in enumerate(specs)
                             if not s["origin"].startswith("inlineData"))
        files = files[:first_missing]
    names = set()
    for tool in _get(request, "tools", "tools") or []:
        for decl in _get(tool, "functionDeclarations", "function_declarations") or []:
            if decl.get("name"):
                names.add(decl["name"])
    return files, specs, names


def _extension(mime):
    return {"image/png": "png", "image/jpeg": "jpeg", "text/csv": "csv", "text/xml": "xml",
            "text/x-c++src": "cpp", "text/x-java": "java", "text/x-python": "py",
            "text/javascript": "js", "text/x-typescript": "ts", "text/plain": "txt"}[mime]


def _std_base64(data):
    """Standard padded base64 (recordings may hold the URL-safe alphabet)."""
    raw = base64.b64decode(data + "=" * (-len(data) % 4), altchars=b"-_") \
        if ("-" in data or "_" in data) else base64.b64decode(data + "=" * (-len(data) % 4))
    return base64.b64encode(raw).decode()


# --- cassettes ---------------------------------------------------------------------------

def _headers(message):
    """{lower-case name: value} of a VCR request or response (values are lists there)."""
    out = {}
    for k, v in (message.get("headers") or {}).items():
        if isinstance(v, list):
            v = v[0] if v else ""
        out[str(k).lower()] = str(v)
    return out


def body_text(message):
    """The body of a recorded request or response as text (or a parsed JSON value), from
    pydantic-ai's parsed_body or VCR's body / body.string, decompressed (gzip, deflate)
    and base64-decoded as needed. Raises FormatError for a body it cannot read (brotli,
    zstd: not in Python's standard library)."""
    if message.get("parsed_body") is not None:
        return message["parsed_body"]
    body = message.get("body")
    encoding = _headers(message).get("content-encoding", "").lower()
    if isinstance(body, dict):
        if body.get("string") is None and isinstance(body.get("base64_string"), str):
            body = base64.b64decode(body["base64_string"])   # VCR's "preserve exact bytes"
        else:
            body = body.get("string")
    if body is None:
        return None
    if isinstance(body, str) and encoding and _looks_base64(body):
        try:
            body = base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError):
            pass
    if isinstance(body, str):
        return body
    data = bytes(body)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif encoding == "deflate":
        data = zlib.decompress(data)
    elif encoding in ("br", "zstd"):
        raise FormatError(f"body is {encoding}-compressed, which Python's standard library "
                          "cannot read; re-record with decode_compressed_response=True")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # a base64 text that was stored as bytes
        try:
            return _maybe_base64_text(data)
        except ValueError:
            raise FormatError("body is neither UTF-8 nor gzip") from None


def _looks_base64(text):
    t = text.strip()
    return len(t) >= 8 and re.fullmatch(r"[A-Za-z0-9+/=\s]+", t) is not None


def _maybe_base64_text(data):
    raw = base64.b64decode(data)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def _as_json_value(body):
    """A parsed body: dict/list as is; text as JSON, a JSON array stream or SSE."""
    if body is None or isinstance(body, (dict, list)):
        return body
    text = body.strip()
    if not text:
        return None
    if text[0] in "{[":
        try:
            return json.loads(text)
        except ValueError:
            pass
    if text.startswith("data:"):
        return parse_sse(text)
    if _looks_base64(text):
        try:
            return _as_json_value(_maybe_base64_text(text.encode()))
        except (ValueError, OSError):
            pass
    raise FormatError(f"body is not JSON or SSE: {text[:120]!r}")


def cassette_cases(doc, name, path):
    cases = []
    for i, inter in enumerate(doc.get("interactions") or []):
        if not isinstance(inter, dict):
            continue
        request = inter.get("request") or {}
        response = inter.get("response") or {}
        uri = str(request.get("uri", ""))
        case_id = f"{name}#{i}"
        origin = f"interaction {i}"
        status = response.get("status")
        status = status.get("code", 200) if isinstance(status, dict) else (status or 200)
        try:
            body = _as_json_value(body_text(response))
        except (FormatError, OSError, zlib.error) as e:
            if "generateContent" in uri or "GenerateContent" in uri:
                c = C.Case(case_id, name, True, False, [], "", [], origin=origin,
                           kind="response", path=path,
                           skip=(C.SKIP_UNREADABLE, f"response body: {e}"))
                cases.append(c)
            continue
        if body is None or status != 200:
            continue
        chunks = body if isinstance(body, list) else [body]
        try:
            req = _as_json_value(body_text(request))
        except (FormatError, OSError, zlib.error):
            req = None
        found = response_cases(chunks, name, path, origin=origin,
                               request=req if isinstance(req, dict) else None,
                               case_id=case_id, notes=f"{uri}".strip())
        cases.extend(found)
    return cases


EXTENSION_MIME = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg",
                  "csv": "text/csv", "xml": "text/xml", "cpp": "text/x-c++src",
                  "java": "text/x-java", "py": "text/x-python", "js": "text/javascript",
                  "ts": "text/x-typescript", "txt": "text/plain"}


def supply_inputs(cases, directory):
    """--input-dir: the input files a recording describes but does not hold, taken from
    DIRECTORY/<case id>/<name> or DIRECTORY/<name> (input_file_0.csv, ...). Returns the
    number of files added."""
    added = 0
    for case in cases:
        names = list(case.input_files)
        if not names:
            # the code names them (input_file_0.csv) though the recording lists none
            for text in case.codes:
                for m in re.finditer(r"input_file_(\d+)\.(\w+)", text):
                    n = int(m.group(1))
                    while len(names) <= n:
                        names.append(None)
                    names[n] = names[n] or m.group(0)
        for i in range(len(case.files), len(names)):
            name = names[i]
            spec = case.input_specs[i] if i < len(case.input_specs) else {}
            found = None
            for candidate in (os.path.join(directory, case.id, name or ""),
                              os.path.join(directory, name or "")):
                if name and os.path.isfile(candidate):
                    found = candidate
                    break
            if not found:
                break
            mime = spec.get("mime") or EXTENSION_MIME.get(name.rsplit(".", 1)[-1].lower())
            if mime not in INPUT_MIME_TYPES:
                break
            with open(found, "rb") as f:
                case.files.append((mime, base64.b64encode(f.read()).decode()))
            if i >= len(case.input_files):
                case.input_files.append(name)
            added += 1
    return added


def _unique_ids(cases):
    seen = {}
    for c in cases:
        if c.id in seen:
            seen[c.id] += 1
            c.id = f"{c.id}~{seen[c.id]}"
        else:
            seen[c.id] = 1


def read_all(paths):
    """[(path, format, [Case])] for the given files, and the cases of all of them with ids
    made unique across files (a repeated id gets '@file')."""
    out, all_cases, ids = [], [], set()
    for path in paths:
        fmt, cases = read_file(path)
        for c in cases:
            if c.id in ids:
                c.id = f"{c.id}@{os.path.basename(path)}"
            ids.add(c.id)
        out.append((path, fmt, cases))
        all_cases.extend(cases)
    return out, all_cases
