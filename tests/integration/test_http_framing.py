"""Request framing, over raw sockets: a request whose body's end is in doubt (Content-Length
twice, or Content-Length with Transfer-Encoding) is refused with 400 and its connection
closed, so what follows it is never read as a second request (request smuggling); a
well-framed keep-alive connection still serves one request after another."""

import json
import socket
import unittest

from harness import ServerTestCase, code_part, read_until_closed

EXECUTE = json.dumps({"parts": [code_part("print('first')")]}).encode()
# What a proxy that framed the request differently would take for a second request.
_SMUGGLED_BODY = json.dumps({"parts": [code_part("print('smuggled')")]}).encode()
SMUGGLED = (b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % len(_SMUGGLED_BODY) + _SMUGGLED_BODY)


def chunked(body):
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


def parse_responses(data):
    """[(status, {lowercased header: value}, body)] of the responses in data, in order
    (each framed by its Content-Length)."""
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"a truncated response: {data[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        responses.append((status, headers, rest[:length]))
        data = rest[length:]
    return responses


class FramingTest(ServerTestCase):

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=30)
        self.addCleanup(s.close)
        return s

    def assert_refused_and_closed(self, request, mentions):
        s = self.connect()
        s.sendall(request)
        data = read_until_closed(s, timeout=15)
        self.assertIsNotNone(data, "the connection is still open")
        responses = parse_responses(data)
        self.assertEqual(len(responses), 1, responses)   # the smuggled request got none
        status, headers, body = responses[0]
        self.assertEqual(status, 400, body)
        self.assertEqual(headers.get("connection", "").lower(), "close", headers)
        error = json.loads(body)["error"]
        self.assertEqual(error["status"], "INVALID_ARGUMENT")
        self.assertIn(mentions, error["message"])

    def test_duplicate_content_length(self):
        """Two Content-Lengths, the second covering a smuggled request: one 400, then the
        connection closes."""
        request = (b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                   b"Content-Length: %d\r\n\r\n" % (len(EXECUTE), len(EXECUTE) + len(SMUGGLED))
                   + EXECUTE + SMUGGLED)
        self.assert_refused_and_closed(request, "more than one Content-Length")

    def test_equal_duplicate_content_length(self):
        """Two equal Content-Lengths are refused too."""
        request = (b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                   b"content-length: %d\r\n\r\n" % (len(EXECUTE), len(EXECUTE))
                   + EXECUTE + SMUGGLED)
        self.assert_refused_and_closed(request, "more than one Content-Length")

    def test_content_length_and_transfer_encoding(self):
        """Content-Length with Transfer-Encoding: chunked, in either order: 400, closed."""
        body = chunked(EXECUTE)
        cl = b"Content-Length: %d\r\n" % len(body)
        te = b"Transfer-Encoding: chunked\r\n"
        for headers in (cl + te, te + cl):
            with self.subTest(headers=headers):
                request = (b"POST /v1/execute HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
                           + body + SMUGGLED)
                self.assert_refused_and_closed(request, "Content-Length and Transfer-Encoding")

    def test_keep_alive(self):
        """A well-framed connection serves two requests, one after the other."""
        s = self.connect()
        f = s.makefile("rb")
        self.addCleanup(f.close)
        replies = []
        for request in (
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                % (len(EXECUTE), EXECUTE)):
            s.sendall(request)
            status = int(f.readline().split()[1])
            headers = {}
            while True:
                line = f.readline().decode("latin-1").strip()
                if not line:
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.assertNotEqual(headers.get("connection", "").lower(), "close", headers)
            replies.append((status, json.loads(f.read(int(headers["content-length"])))))
        self.assertEqual(replies[0][0], 200, replies[0])
        self.assertEqual(replies[0][1]["status"], "ok")
        self.assertEqual(replies[1][0], 200, replies[1])
        self.assertEqual(replies[1][1]["parts"][1]["codeExecutionResult"]["output"], "first\n")


if __name__ == "__main__":
    unittest.main()
