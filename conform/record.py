"""--record: capturing new cases from a Gemini-compatible endpoint.

For each prompt of a JSONL file ({"id", "prompt", optional "model", "deterministic",
"notes"}), POST URL/v1beta/models/{model}:generateContent with the codeExecution tool, and
write one corpus line per response in the turn format of gemini_turns.jsonl (turn_id,
source, model, api, recorded "raw-json", recorded_at, input_files [], deterministic,
notes, blocks with code, outcome, outcome_recorded true, output (null when absent),
images). The lines replay with `conform OUT`.

The real API (https://generativelanguage.googleapis.com with a key in --key-file, sent as
x-goog-api-key) cannot be exercised by this repository's tests, which have no network and
no key; they record from pyexecd's own echo model instead.
"""

import datetime
import http.client
import json
import sys
import time
import urllib.parse

from conform import recordings

RETRY_STATUSES = {429, 500, 503}


def read_prompts(path):
    prompts = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e})") from None
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                raise ValueError(f'{path}:{n}: needs {{"id": ..., "prompt": "..."}}')
            row.setdefault("id", f"p-{n:04d}")
            prompts.append(row)
    ids = [p["id"] for p in prompts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: prompt ids repeat")
    return prompts


def post(url, path, body, key=None, timeout=300):
    u = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = cls(u.hostname, u.port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["x-goog-api-key"] = key
    try:
        conn.request("POST", u.path.rstrip("/") + path, body=json.dumps(body).encode(),
                     headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, raw, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def blocks_for_corpus(parts):
    """The turn format's blocks from a response's parts."""
    out = []
    for b in recordings.blocks_from_parts(parts):
        block = {"code": b["code"]}
        entries = b["entries"]
        if b.get("result_part") is False:
            block.update(outcome=None, outcome_recorded=False, output=None,
                         images=b["images"], result_part=False)
        elif len(entries) > 1:
            block.update(outcome=entries[-1][0], outcome_recorded=True,
                         output=entries[-1][1], images=b["images"],
                         result_parts=[{"outcome": o, "outcome_recorded": True, "output": t}
                                       for o, t in entries])
        else:
            block.update(outcome=entries[0][0], outcome_recorded=True, output=entries[0][1],
                         images=b["images"])
        if b.get("thought"):
            block["thought"] = True
        out.append(block)
    return out


def redact(url):
    """The URL without credentials or query (a key never goes into a recording)."""
    u = urllib.parse.urlsplit(url)
    host = u.hostname or ""
    if u.port:
        host += f":{u.port}"
    return f"{u.scheme}://{host}{u.path}"


def record(url, prompts_path, out_path, model="gemini-2.5-flash", key_file=None,
           deterministic=True, log=sys.stderr, retries=2):
    """Records every prompt; returns (lines written, [(prompt id, error)])."""
    prompts = read_prompts(prompts_path)
    key = None
    if key_file:
        with open(key_file, encoding="utf-8") as f:
            key = f.readline().strip()
    written, errors = 0, []
    today = datetime.date.today().isoformat()
    with open(out_path, "w", encoding="utf-8") as out:
        for p in prompts:
            m = p.get("model") or model
            body = {"contents": [{"role": "user", "parts": [{"text": p["prompt"]}]}],
                    "tools": [{"codeExecution": {}}], "generationConfig": {}}
            path = f"/v1beta/models/{urllib.parse.quote(m, safe='')}:generateContent"
            for attempt in range(retries + 1):
                try:
                    status, raw, headers = post(url, path, body, key)
                except (OSError, http.client.HTTPException) as e:
                    status, raw, headers = None, str(e).encode(), {}
                if status in RETRY_STATUSES and attempt < retries:
                    time.sleep(min(30, 2 * 2 ** attempt))
                    continue
                break
            if status != 200:
                msg = f"HTTP {status}: {raw[:300].decode('utf-8', 'replace')}" if status \
                    else raw.decode("utf-8", "replace")
                errors.append((p["id"], msg))
                print(f"record: {p['id']}: {msg}", file=log)
                continue
            try:
                resp = json.loads(raw)
            except ValueError:
                errors.append((p["id"], "the response is not JSON"))
                continue
            parts = recordings.merged_parts([resp])
            blocks = blocks_for_corpus(parts)
            if not blocks:
                print(f"record: {p['id']}: the response holds no code execution "
                      "(written anyway; conform skips it)", file=log)
            det = p.get("deterministic", deterministic)
            source = f"pyexecd conform --record {redact(url)} ({m}), prompt {p['id']}"
            if resp.get("responseId"):
                source += f", responseId {resp['responseId']}"
            row = {
                "turn_id": p["id"],
                "source": source,
                "model": resp.get("modelVersion") or m,
                "api": "generateContent",
                "recorded": "raw-json",
                "recorded_at": today,
                "input_files": [],
                "deterministic": bool(det),
                "notes": p.get("notes") or ("Recorded with pyexecd conform --record; outcome "
                                            "and output exact; output null = field absent."),
                "prompt": p["prompt"],
                "blocks": blocks,
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            written += 1
    return written, errors
