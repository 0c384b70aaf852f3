"""The HTTP API's edges: routing, request parsing, every error reply and the request-size
limits, each at the limit and one past it. Talks to the real server over loopback."""

import base64
import http.client
import json
import socket
import unittest

from harness import ServerTestCase, code_part, results
from limits import LIMITS


def google_error(test, status, body, code, status_name):
    """Asserts a Google-style error reply."""
    test.assertEqual(status, code, body)
    test.assertIsInstance(body, dict, body)
    test.assertEqual(set(body), {"error"})
    err = body["error"]
    test.assertEqual(err["code"], code)
    test.assertEqual(err["status"], status_name)
    test.assertIsInstance(err["message"], str)
    test.assertTrue(err["message"])
    return err["message"]


class ApiTest(ServerTestCase):
    pass

    def bad(self, body, fragment=None, code=400, status_name="INVALID_ARGUMENT"):
        status, reply = self.server.execute(body)
        message = google_error(self, status, reply, code, status_name)
        if fragment:
            self.assertIn(fragment, message)
        return message

    # --- the happy path ------------------------------------------------------------------

    def test_issue_example(self):
        """The README's curl example returns the code part then its result."""
        status, body = self.server.execute(
            '{"executableCode":{"language":"PYTHON","code":"print(1+1)"}}')
        self.assertEqual(status, 200)
        self.assertEqual(body, {"parts": [
            {"executableCode": {"language": "PYTHON", "code": "print(1+1)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "2\n"}}]})

    def test_reply_is_json(self):
        """Replies carry a JSON content type."""
        _, _, headers = self.server.request("POST", "/v1/execute", code_part("1"))
        self.assertTrue(headers["Content-Type"].startswith("application/json"))

    def test_snake_case_and_content(self):
        """snake_case fields and a Content with a role are accepted; replies are camelCase."""
        status, body = self.server.execute({"role": "user", "parts": [
            {"text": "hello"},
            {"inline_data": {"mime_type": "text/csv", "data": base64.b64encode(b"a\n1\n").decode()}},
            {"executable_code": {"language": "PYTHON", "code": "print(open('input_file_0.csv').read())", "id": "ab12cd34"}},
        ]})
        self.assertEqual(status, 200, body)
        parts = body["parts"]
        self.assertEqual(parts[0], {"text": "hello"})
        self.assertEqual(parts[1]["inlineData"]["mimeType"], "text/csv")
        self.assertEqual(parts[2]["executableCode"]["id"], "ab12cd34")
        self.assertEqual(parts[3], {"codeExecutionResult": {
            "outcome": "OUTCOME_OK", "output": "a\n1\n\n", "id": "ab12cd34"}})

    def test_null_and_empty_fields_are_defaults(self):
        """proto3 JSON: null is a field's default, and an empty id is no id (none echoed)."""
        for extra in ({"id": ""}, {"id": None}):
            code = {"language": "PYTHON", "code": "print(5)", **extra}
            status, body = self.server.execute({"role": None, "parts": [{"executableCode": code}]})
            self.assertEqual(status, 200, body)
            self.assertEqual(body, {"parts": [
                {"executableCode": {"language": "PYTHON", "code": "print(5)"}},
                {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "5\n"}}]})
        status, body = self.server.execute({"executableCode": {"language": "PYTHON", "code": None}})
        self.assertEqual(status, 400, body)
        self.assertIn("code", body["error"]["message"])

    def test_language_as_enum_number(self):
        """proto3 JSON allows enums as numbers: 1 is PYTHON."""
        status, body = self.server.execute({"executableCode": {"language": 1, "code": "print(3)"}})
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[0]["output"], "3\n")

    def test_thought_fields_echoed(self):
        """Parts of a model turn keep thought and thoughtSignature in the echo."""
        part = code_part("print(4)")
        part["thoughtSignature"] = "c2lnbmF0dXJl"
        status, body = self.server.execute({"parts": [part]})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["parts"][0]["thoughtSignature"], "c2lnbmF0dXJl")

    def test_keep_alive(self):
        """Several requests on one connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            for i in range(3):
                conn.request("POST", "/v1/execute", json.dumps(code_part(f"print({i})")))
                resp = conn.getresponse()
                body = json.loads(resp.read())
                self.assertEqual(resp.status, 200)
                self.assertEqual(results(body)[0]["output"], f"{i}\n")
        finally:
            conn.close()

    # --- routing --------------------------------------------------------------------------

    def test_unknown_path(self):
        """An unknown path is 404 NOT_FOUND."""
        status, body, _ = self.server.request("GET", "/v1/nothing")
        google_error(self, status, body, 404, "NOT_FOUND")

    def test_wrong_method(self):
        """GET on /v1/execute is 405 with an Allow header; so is POST on /healthz."""
        status, body, headers = self.server.request("GET", "/v1/execute")
        google_error(self, status, body, 405, "INVALID_ARGUMENT")
        self.assertEqual(headers.get("Allow"), "POST")
        status, body, headers = self.server.request("POST", "/healthz", "{}")
        google_error(self, status, body, 405, "INVALID_ARGUMENT")
        self.assertIn("GET", headers.get("Allow"))

    def test_health_get_and_head(self):
        """/healthz answers GET with a document and HEAD with headers only."""
        status, body = self.server.get("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")
        for key in ("zygote", "workers", "pool", "queue", "isolation", "libraries", "python"):
            self.assertIn(key, body)
        self.assertEqual(body["zygote"]["state"], "ready")
        status, text, _ = self.server.request("HEAD", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(text, "")

    # --- malformed requests -----------------------------------------------------------------

    def test_malformed_json(self):
        """Not JSON, trailing garbage, an empty body, a non-object: 400."""
        for body in ['{"executableCode": ', '{"executableCode": {}} x', "", "[1]", "42"]:
            with self.subTest(body=body):
                self.bad(body)

    def test_nul_in_string(self):
        """An escaped NUL would silently cut the code in cJSON: refused."""
        self.bad('{"executableCode":{"language":"PYTHON","code":"print(1)\\u0000import os"}}',
                 "NUL")
        # An escaped backslash followed by u0000 is ordinary text and runs.
        status, body = self.server.execute(
            '{"executableCode":{"language":"PYTHON","code":"print(\'\\\\u0000\')"}}')
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[0]["output"], "\x00\n")

    def test_invalid_utf8_body(self):
        """A body that is not UTF-8 is refused."""
        self.bad(b'{"executableCode":{"language":"PYTHON","code":"print(\xff)"}}', "UTF-8")

    def test_missing_or_empty_code(self):
        """Code absent, empty or not a string: 400."""
        for ec in [{"language": "PYTHON"}, {"language": "PYTHON", "code": ""},
                   {"language": "PYTHON", "code": 5}]:
            with self.subTest(ec=ec):
                self.bad({"executableCode": ec}, "code")

    def test_other_language(self):
        """Only PYTHON exists."""
        for lang in ["JAVA", "python", 0, 2, None]:
            with self.subTest(lang=lang):
                ec = {"code": "1"} if lang is None else {"language": lang, "code": "1"}
                self.bad({"executableCode": ec}, "PYTHON")

    def test_unknown_and_duplicate_fields(self):
        """Unknown names and duplicate keys are refused, as proto3 JSON parsing does."""
        self.bad({"executableCode": {"language": "PYTHON", "code": "1", "lang": "x"}}, "lang")
        self.bad({"parts": [code_part("1")], "extra": 1}, "extra")
        self.bad('{"executableCode":{"language":"PYTHON","code":"1","code":"2"}}', "Duplicate")

    def test_part_shapes(self):
        """Empty parts, two kinds in one part, results or file URIs in the request: 400."""
        self.bad({"parts": []})
        self.bad({"parts": [{}]}, "empty")
        self.bad({"parts": [{"text": "a", "executableCode": {"language": "PYTHON", "code": "1"}}]})
        self.bad({"parts": [code_part("1"), {"codeExecutionResult": {"outcome": "OUTCOME_OK"}}]},
                 "produced by the server")
        self.bad({"parts": [{"fileData": {"fileUri": "gs://x/y"}}, code_part("1")]})
        self.bad({"parts": [{"text": "only text"}]}, "no executableCode")

    def test_bad_base64(self):
        """inlineData that is not base64 is refused."""
        for data in ["!!!!", "QUJD=QUJD", "Q", "QUJD===="]:
            with self.subTest(data=data):
                self.bad({"parts": [{"inlineData": {"mimeType": "text/csv", "data": data}},
                                    code_part("1")]}, "Base64")

    def test_base64_variants(self):
        """Unpadded and URL-safe base64 decode to the same bytes."""
        raw = bytes(range(256)) * 3 + b"\xfb\xff"
        for data in [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
                     base64.b64encode(raw).decode().rstrip("=")]:
            status, body = self.server.execute({"parts": [
                {"inlineData": {"mimeType": "text/plain", "data": data}},
                code_part("import hashlib; print(hashlib.sha256(open('input_file_0.txt','rb').read()).hexdigest())")]})
            self.assertEqual(status, 200, body)
            import hashlib
            self.assertEqual(results(body)[0]["output"], hashlib.sha256(raw).hexdigest() + "\n")

    def test_unsupported_mime(self):
        """MIME types outside the documented list are refused."""
        for mime in ["application/pdf", "video/mp4", "", "text"]:
            with self.subTest(mime=mime):
                self.bad({"parts": [{"inlineData": {"mimeType": mime, "data": "QUJD"}},
                                    code_part("1")]}, "mime_type")

    def test_mime_extensions(self):
        """Each documented MIME type gets its extension; parameters and case are ignored."""
        cases = [("image/png", "png"), ("image/jpeg", "jpeg"), ("text/csv", "csv"),
                 ("text/xml", "xml"), ("text/x-c++src", "cpp"), ("text/x-java", "java"),
                 ("text/x-python", "py"), ("text/javascript", "js"),
                 ("text/x-typescript", "ts"), ("TEXT/CSV; charset=utf-8", "csv")]
        parts = [{"inlineData": {"mimeType": m, "data": "QUJD"}} for m, _ in cases]
        parts.append(code_part("import os; print(sorted(os.listdir('.')))"))
        status, body = self.server.execute({"parts": parts})
        self.assertEqual(status, 200, body)
        want = sorted(f"input_file_{i}.{ext}" for i, (_, ext) in enumerate(cases))
        self.assertEqual(results(body)[0]["output"], repr(want) + "\n")

    # --- size limits, at the limit and one past it -----------------------------------------

    def padded_body(self, size):
        """A valid request of exactly `size` bytes: one code part and a text part of padding."""
        head = '{"parts":[{"executableCode":{"language":"PYTHON","code":"print(7)"}},{"text":"'
        tail = '"}]}'
        return (head + "x" * (size - len(head) - len(tail)) + tail).encode()

    def test_body_limit(self):
        """A body of exactly the limit runs; one byte more is 413."""
        limit = LIMITS["LIMIT_BODY_BYTES"]
        status, body = self.server.execute(self.padded_body(limit), timeout=120)
        self.assertEqual(status, 200, str(body)[:300])
        self.assertEqual(results(body)[0]["output"], "7\n")
        # One past: the server answers from the declared length, before the body. A client
        # that sends the body anyway finds the connection closed, so ask first the way
        # curl does for large bodies (Expect: 100-continue) and read the answer.
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=30)
        try:
            sock.sendall(b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         b"Content-Length: %d\r\n\r\n" % (limit + 1))
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        finally:
            sock.close()
        head, _, payload = reply.decode().partition("\r\n\r\n")
        self.assertTrue(head.startswith("HTTP/1.1 413"), head)
        google_error(self, 413, json.loads(payload), 413, "INVALID_ARGUMENT")

    def test_huge_declared_length(self):
        """A body declared far over the limit is refused before it is sent."""
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        try:
            sock.sendall(b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
            reply = sock.recv(4096).decode("latin-1")
            self.assertTrue(reply.startswith("HTTP/1.1 413"), reply[:100])
        finally:
            sock.close()

    def test_chunked_over_limit_is_cut(self):
        """A chunked body growing past the limit gets the connection closed, not a hang."""
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=30)
        try:
            sock.sendall(b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * (1 << 20)
            sent = 0
            closed = False
            try:
                while sent <= LIMITS["LIMIT_BODY_BYTES"] + (4 << 20):
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += len(chunk)
            except OSError:
                closed = True
            if not closed:
                sock.settimeout(10)
                data = sock.recv(4096)
                closed = data == b"" or data.startswith(b"HTTP/1.1 413")
            self.assertTrue(closed)
        finally:
            sock.close()
        self.assertEqual(self.server.health()[0], 200)

    def test_input_file_limit(self):
        """Input files totalling exactly the limit are accepted; one byte more is 400."""
        limit = LIMITS["LIMIT_INPUT_FILE_BYTES"]
        # Two files so the total, not one file, is what is limited.
        a = limit // 2
        for extra, ok in [(0, True), (1, False)]:
            files = [b"a" * a, b"b" * (limit - a + extra)]
            parts = [{"inlineData": {"mimeType": "text/plain",
                                     "data": base64.b64encode(f).decode()}} for f in files]
            parts.append(code_part("import os; print(sum(os.path.getsize(f) for f in os.listdir('.')))"))
            status, body = self.server.execute({"parts": parts}, timeout=120)
            if ok:
                self.assertEqual(status, 200, str(body)[:300])
                self.assertEqual(results(body)[0]["output"], f"{limit}\n")
            else:
                google_error(self, status, body, 400, "INVALID_ARGUMENT")

    def test_parts_limit(self):
        """LIMIT_PARTS code parts run in one interpreter; one more is 400."""
        n = LIMITS["LIMIT_PARTS"]
        parts = [code_part("i = 0")] + [code_part("i += 1") for _ in range(n - 2)] + [code_part("print(i)")]
        status, body = self.server.execute({"parts": parts})
        self.assertEqual(status, 200, str(body)[:300])
        self.assertEqual(len(results(body)), n)
        self.assertEqual(results(body)[-1]["output"], f"{n - 2}\n")
        status, body = self.server.execute({"parts": parts + [code_part("1")]})
        google_error(self, status, body, 400, "INVALID_ARGUMENT")

    def test_server_healthy_after_errors(self):
        """After all the bad input above, the server still runs code."""
        status, body = self.server.execute(code_part("print('still here')"))
        self.assertEqual(status, 200)
        self.assertEqual(results(body)[0]["output"], "still here\n")


if __name__ == "__main__":
    unittest.main()
