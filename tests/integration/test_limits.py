"""Limits not covered elsewhere, each at the limit and one past it: images per block and
per request, JSON values per body, request bodies held at once, the queue wait, and the
size of a policy file. (Body size, input files and parts: test_api; output bytes:
test_semantics; deadline: test_deadline; sessions: test_sessions; the sandbox's
resources: test_attacks_resources.)"""

import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import BINARY, ServerTestCase, code_part, images, read_until_closed, results
from limits import LIMITS

MIB = 1 << 20


def image_files_code(sizes):
    """A block writing PNG files (magic, then zeros) of the given sizes into /root."""
    lines = ["magic = b'\\x89PNG\\r\\n\\x1a\\n'"]
    for i, size in enumerate(sizes):
        lines.append(f"open('f{i:02d}.png', 'wb').write(magic + bytes({size} - len(magic)))")
    return "\n".join(lines) + "\n"


class ImageLimitTest(ServerTestCase):

    def test_images_per_block(self):
        """LIMIT_IMAGES_PER_BLOCK figures come back; one more is dropped and reported."""
        n = LIMITS["LIMIT_IMAGES_PER_BLOCK"]
        for count, dropped in ((n, False), (n + 1, True)):
            code = ("import matplotlib.pyplot as plt\n"
                    f"for i in range({count}):\n"
                    "    plt.figure(figsize=(1, 1)); plt.plot([i])\n")
            reply = self.server.run(code)
            self.assertEqual(len(images(reply)), n, count)
            limit = reply.get("executionMetadata", {}).get("limitReached")
            self.assertEqual(limit, "IMAGES" if dropped else None, count)

    def test_image_bytes_per_request(self):
        """Images totalling LIMIT_IMAGE_BYTES_PER_REQUEST come back; a byte more is dropped."""
        total = LIMITS["LIMIT_IMAGE_BYTES_PER_REQUEST"]
        each = LIMITS["LIMIT_IMAGE_BYTES"]
        sizes = [each] * (total // each)
        self.assertEqual(sum(sizes), total)
        for extra, dropped in ((0, False), (1, True)):
            # Two blocks, so the budget is the request's, not one block's.
            half = len(sizes) // 2
            blocks = [image_files_code(sizes[:half]),
                      image_files_code(sizes[half:] + ([extra + 8] if extra else []))
                      .replace("'f", "'g")]
            reply = self.server.run(*blocks, timeout=180)
            got = images(reply)
            self.assertEqual(len(got), len(sizes), extra)
            limit = reply.get("executionMetadata", {}).get("limitReached")
            self.assertEqual(limit, "IMAGES" if dropped else None, extra)


class BodyLimitTest(ServerTestCase):

    def json_values_body(self, values):
        """{"parts":[1,1,...]} with exactly `values` JSON values as the server counts them
        (one, plus one per '{', '[' and ','): it is refused either way, the question is
        whether for its size or for its content."""
        n = values - 2
        return ('{"parts":[' + ",".join(["1"] * n) + "]}").encode()

    def test_json_values(self):
        """A body of LIMIT_JSON_VALUES values is parsed; one more value is refused unparsed."""
        limit = LIMITS["LIMIT_JSON_VALUES"]
        status, body = self.server.execute(self.json_values_body(limit))
        self.assertEqual(status, 400, body)
        self.assertNotIn("JSON values", body["error"]["message"])
        self.assertIn("Too many parts", body["error"]["message"])
        status, body = self.server.execute(self.json_values_body(limit + 1))
        self.assertEqual(status, 400, body)
        self.assertIn("more JSON values", body["error"]["message"])

    # --- request bodies held at once: bytes received, not lengths declared -------------

    def upload(self, declared, send=0, body=None):
        """A connection POSTing /v1/execute with a body of `declared` bytes, of which it
        sends the first `send` (taken from body, a bytes-like of at least that many)."""
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=30)
        self.addCleanup(s.close)
        s.sendall(b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                  % declared)
        if send:
            s.sendall(body[:send])
        return s

    @staticmethod
    def waiting(s):
        """True when the server neither answered nor closed s: it waits for more body."""
        s.setblocking(False)
        try:
            s.recv(1)
            return False            # a reply, or the end of the connection
        except BlockingIOError:
            return True
        except ConnectionError:
            return False
        finally:
            s.setblocking(True)

    def refused_unread(self, declared, timeout=20):
        """Waits until a request declaring `declared` bytes is refused as soon as its
        headers arrive (the bodies sent before it are then all received), and returns that
        reply. A request that is accepted instead holds nothing; it is closed and the next
        one tried."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.upload(declared)
            s.settimeout(0.5)
            try:
                reply = s.recv(65536).decode("latin-1")
            except socket.timeout:
                reply = None        # accepted: waiting for its body
            s.close()
            if reply is not None:
                return reply
            time.sleep(0.1)
        self.fail(f"a request declaring {declared} bytes was never refused")

    def assert_unavailable(self, reply):
        self.assertTrue(reply.startswith("HTTP/1.1 503"), reply[:200])
        self.assertIn('"status":"UNAVAILABLE"', reply)
        self.assertIn("too many request bodies", reply)

    def assert_budget_free(self):
        """Once the bodies are gone, a normal request runs again."""
        deadline = time.time() + 10
        while True:
            status, body = self.server.execute(code_part("print('free')"))
            if status == 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[0]["output"], "free\n")

    def test_bodies_in_flight(self):
        """Bodies holding LIMIT_BODIES_IN_FLIGHT received bytes stay open; a request that
        does not fit in what is free is 503 at once, one that fits is accepted, and a byte
        that would take the total one past the limit closes the connection that sent it."""
        budget = LIMITS["LIMIT_BODIES_IN_FLIGHT"]
        largest = LIMITS["LIMIT_BODY_BYTES"]
        # Bodies each sent but for their last byte, holding exactly `budget` bytes together.
        held = [largest - 1] * (budget // (largest - 1))
        if budget % (largest - 1):
            held.append(budget % (largest - 1))
        self.assertEqual(sum(held), budget)
        self.assertLessEqual(held[-1] + 1, largest)
        filler = memoryview(b" " * largest)

        # All but the last byte of each, and one byte less of the last body: budget - 1.
        socks = [self.upload(h + 1, h, filler) for h in held[:-1]]
        last = self.upload(held[-1] + 1, held[-1] - 1, filler)
        socks.append(last)
        # 2 bytes do not fit in the 1 left: refused at once (which also says every byte
        # sent so far has been received and counted).
        self.assert_unavailable(self.refused_unread(2))
        # 1 byte fits: accepted, it waits for its body.
        fits = self.upload(1)
        time.sleep(0.5)
        self.assertTrue(self.waiting(fits), "a request that fits was refused")

        # The last body's next byte: exactly `budget` bytes held, and nothing more fits.
        last.sendall(b" ")
        self.assert_unavailable(self.refused_unread(1))
        for i, s in enumerate(socks):
            self.assertTrue(self.waiting(s), f"body {i} was refused")
        self.assertTrue(self.waiting(fits))

        # One byte more: the accepted request's byte closes its connection, unanswered
        # (nothing was reserved for it) ...
        fits.sendall(b" ")
        self.assertEqual(read_until_closed(fits), b"")
        self.assert_unavailable(self.refused_unread(1))   # its byte was not counted
        # ... and so does the last byte of a body that had been held all along.
        socks[0].sendall(b" ")
        self.assertEqual(read_until_closed(socks[0]), b"")
        for i, s in enumerate(socks[1:], 1):
            self.assertTrue(self.waiting(s), f"body {i} was refused")

        for s in socks:
            s.close()
        self.assert_budget_free()

    def test_declared_bodies_hold_nothing(self):
        """Connections that declare large bodies and trickle them in hold only what they
        sent: more of them than LIMIT_BODIES_IN_FLIGHT could hold declared in full do not
        keep a normal request out."""
        budget = LIMITS["LIMIT_BODIES_IN_FLIGHT"]
        largest = LIMITS["LIMIT_BODY_BYTES"]
        count = budget // largest + 1     # their declared lengths add up past the budget
        self.assertGreater(count * largest, budget)
        socks = [self.upload(largest, 1, b" ") for _ in range(count)]
        time.sleep(0.5)
        for i, s in enumerate(socks):
            self.assertTrue(self.waiting(s), f"upload {i} was refused")
        status, body = self.server.execute(code_part("print('not blocked')"), timeout=30)
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[0]["output"], "not blocked\n")
        for i, s in enumerate(socks):   # and they are still being received
            self.assertTrue(self.waiting(s), f"upload {i} was refused")
        for s in socks:
            s.close()


class QueueWaitTest(ServerTestCase):
    SERVER_FLAGS = ("--queue-wait-ms", "1500")
    WORKERS = 1
    POOL = 1

    def queued_behind(self, first_sleep):
        """Starts a request sleeping first_sleep s, then a second one; returns the second's
        (status, body, seconds)."""
        first = {}

        def run_first():
            first["reply"] = self.server.execute(code_part(f"import time; time.sleep({first_sleep})"))

        t = threading.Thread(target=run_first)
        t.start()
        time.sleep(0.3)
        start = time.monotonic()
        status, body = self.server.execute(code_part("print('second')"))
        elapsed = time.monotonic() - start
        t.join(30)
        self.assertEqual(first["reply"][0], 200)
        return status, body, elapsed

    def test_within_queue_wait(self):
        """A request queued for less than --queue-wait-ms runs."""
        status, body, _ = self.queued_behind(0.8)
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body)[0]["output"], "second\n")

    def test_past_queue_wait(self):
        """A request still queued after --queue-wait-ms gets 503 UNAVAILABLE, not a hang."""
        status, body, elapsed = self.queued_behind(4)
        self.assertEqual(status, 503, body)
        self.assertEqual(body["error"]["status"], "UNAVAILABLE")
        self.assertTrue(1.4 <= elapsed < 3.5, elapsed)


class PolicySizeTest(unittest.TestCase):

    def policy_of_size(self, size):
        rules = b"allow read write exit_group\n"
        filler = size - len(rules)
        lines = []
        while filler > 0:
            n = min(filler, 1000)
            lines.append(b"#" + b"x" * (n - 2) + b"\n" if n >= 2 else b"\n")
            filler -= n
        data = rules + b"".join(lines)
        self.assertEqual(len(data), size)
        f = tempfile.NamedTemporaryFile(suffix=".policy", delete=False)
        f.write(data)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_policy_file_size(self):
        """A policy file of LIMIT_POLICY_BYTES compiles; one byte more is refused."""
        limit = LIMITS["LIMIT_POLICY_BYTES"]
        ok = subprocess.run([BINARY, "--print-policy", self.policy_of_size(limit)],
                            capture_output=True, text=True, timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn("filter for arch x86_64", ok.stdout)
        big = self.policy_of_size(limit + 1)
        refused = subprocess.run([BINARY, "--print-policy", big], capture_output=True,
                                 text=True, timeout=30)
        self.assertEqual(refused.returncode, 2)
        self.assertIn(f"{big}: not a regular file of at most {limit} bytes", refused.stderr)


if __name__ == "__main__":
    unittest.main()
