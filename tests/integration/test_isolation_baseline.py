"""The baseline sandbox layers, seen from inside the sandbox: no network, no new
processes, no signals to other processes, no secrets, bounded memory and disk, and a
private /tmp per request.

Each test names the isolation layer(s) it depends on and is skipped, with the reason,
when /healthz reports the layer as not available on this kernel. Network tests only ever
use loopback addresses.
"""

import os
import secrets
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Server, code_part, pid_alive, processes_with_uid_in, results  # noqa: E402

SECRET_NAME = "PYEXECD_TEST_SECRET_TOKEN"


def lines(result):
    return result.get("output", "").splitlines()


class IsolationBaselineTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        # The server (and so the zygote, were it not scrubbed) inherits this variable.
        cls.secret = "s3cr3t-" + secrets.token_hex(16)
        cls.server = Server(workers=2, pool=2, env={SECRET_NAME: cls.secret}).start()
        status, health = cls.server.health()
        assert status == 200, health
        cls.isolation = health["isolation"]

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    # --- helpers -----------------------------------------------------------------------

    def require(self, *layers, any_of=False):
        """Skips unless the layers are available (all of them, or one with any_of)."""
        missing = [l for l in layers if not self.isolation.get(l)]
        if (any_of and len(missing) == len(layers)) or (not any_of and missing):
            self.skipTest(f"skipped: {' and '.join(missing)} not available on this kernel")

    def run_one(self, code):
        """Runs one block; returns its codeExecutionResult."""
        res = results(self.server.run(code, timeout=60))
        self.assertEqual(len(res), 1, res)
        return res[0]

    def assert_healthy(self):
        status, health = self.server.health()
        self.assertEqual(status, 200, health)
        self.assertEqual(health["status"], "ok")
        self.assertEqual(self.run_one("print('alive')"),
                         {"outcome": "OUTCOME_OK", "output": "alive\n"})

    # --- network -------------------------------------------------------------------------

    def test_inet_sockets_refused(self):
        """AF_INET and AF_INET6 sockets (stream and datagram) raise PermissionError; AF_UNIX works."""
        self.require("seccomp")
        code = (
            "import socket\n"
            "for fam in ('AF_INET', 'AF_INET6'):\n"
            "    for kind in ('SOCK_STREAM', 'SOCK_DGRAM'):\n"
            "        try:\n"
            "            socket.socket(getattr(socket, fam), getattr(socket, kind)).close()\n"
            "            print(fam, kind, 'created')\n"
            "        except PermissionError:\n"
            "            print(fam, kind, 'PermissionError')\n"
            "a, b = socket.socketpair(socket.AF_UNIX)\n"
            "a.sendall(b'ping'); print('AF_UNIX', b.recv(4).decode())\n")
        r = self.run_one(code)
        self.assertEqual(r["outcome"], "OUTCOME_OK", r)
        self.assertEqual(lines(r), [
            "AF_INET SOCK_STREAM PermissionError", "AF_INET SOCK_DGRAM PermissionError",
            "AF_INET6 SOCK_STREAM PermissionError", "AF_INET6 SOCK_DGRAM PermissionError",
            "AF_UNIX ping"])

    def test_loopback_listener_unreachable(self):
        """A TCP listener on the test's own loopback (127.0.0.1, and ::1 if present) accepts nothing from the sandbox."""
        self.require("networkNamespace", "seccomp", any_of=True)
        listeners = []
        for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                ls = socket.socket(fam, socket.SOCK_STREAM)
                ls.bind((host, 0))   # the kernel picks a free port
                ls.listen(16)
                ls.setblocking(False)
                listeners.append((ls, host, ls.getsockname()[1]))
            except OSError:
                if fam == socket.AF_INET:
                    raise
        try:
            targets = ", ".join(f"({h!r}, {p})" for _, h, p in listeners)
            code = (
                "import socket\n"
                f"for host, port in [{targets}]:\n"
                "    try:\n"
                "        socket.create_connection((host, port), timeout=2).close()\n"
                "        print(host, 'connected')\n"
                "    except OSError as e:\n"
                "        print(host, type(e).__name__)\n")
            r = self.run_one(code)
            self.assertEqual(r["outcome"], "OUTCOME_OK", r)
            self.assertEqual(len(lines(r)), len(listeners), r)
            for line in lines(r):
                self.assertNotIn("connected", line)
            # Whatever the code saw, the listeners themselves got no connection...
            for ls, host, port in listeners:
                with self.assertRaises(BlockingIOError, msg=f"{host}:{port} accepted one"):
                    ls.accept()
            # ...though they do work: the test itself can connect.
            for ls, host, port in listeners:
                with socket.create_connection((host, port), timeout=2):
                    time.sleep(0.05)
                    conn, _ = ls.accept()
                    conn.close()
        finally:
            for ls, _, _ in listeners:
                ls.close()

    # --- processes -----------------------------------------------------------------------

    def test_no_new_processes(self):
        """os.system fails, subprocess/os.fork/os.execv raise PermissionError."""
        self.require("seccomp")
        code = (
            "import os, subprocess\n"
            "print('system', os.system('true'))\n"
            "try:\n"
            "    subprocess.run(['true']); print('subprocess ran')\n"
            "except PermissionError:\n"
            "    print('subprocess PermissionError')\n"
            "try:\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        os._exit(0)\n"
            "    print('fork succeeded')\n"
            "except PermissionError:\n"
            "    print('fork PermissionError')\n"
            "try:\n"
            "    os.execv('/bin/true', ['true'])\n"
            "except PermissionError:\n"
            "    print('execv PermissionError')\n")
        r = self.run_one(code)
        self.assertEqual(r["outcome"], "OUTCOME_OK", r)
        out = lines(r)
        self.assertEqual(len(out), 4, r)
        self.assertTrue(out[0].startswith("system "), out)
        self.assertNotEqual(int(out[0].split()[1]), 0, "os.system('true') succeeded")
        self.assertEqual(out[1:], ["subprocess PermissionError", "fork PermissionError",
                                   "execv PermissionError"])

    def test_cannot_signal_server_or_zygote(self):
        """Signals to the server and the zygote fail: PermissionError (other uid) or, in a PID namespace, ProcessLookupError (not even visible)."""
        self.require("uidDrop")
        server_pid, zygote_pid = self.server.proc.pid, self.server.zygote_pid()
        code = (
            "import os\n"
            f"for name, pid in (('server', {server_pid}), ('zygote', {zygote_pid})):\n"
            "    try:\n"
            "        os.kill(pid, 9); print(name, 'signalled')\n"
            "    except OSError as e:\n"
            "        print(name, type(e).__name__)\n")
        r = self.run_one(code)
        self.assertEqual(r["outcome"], "OUTCOME_OK", r)
        refused = "ProcessLookupError" if self.isolation.get("pidNamespace") else "PermissionError"
        self.assertEqual(lines(r), [f"server {refused}", f"zygote {refused}"])
        self.assertTrue(pid_alive(server_pid) and pid_alive(zygote_pid))

    def test_cannot_signal_other_worker(self):
        """A request cannot SIGKILL a concurrent request's worker, which completes OK."""
        self.require("uidDrop")
        s = self.server
        tag = "pxv" + secrets.token_hex(4)   # the victim's process name (comm, <= 15 chars)
        victim_code = (
            "import ctypes, time\n"
            f"ctypes.CDLL(None).prctl(15, b'{tag}', 0, 0, 0)\n"   # PR_SET_NAME
            "time.sleep(3)\n"
            "print('victim done')\n")
        victim = {}

        def run_victim():
            victim["reply"] = s.execute({"parts": [code_part(victim_code)]}, timeout=60)

        t = threading.Thread(target=run_victim, daemon=True)
        t.start()
        lo, hi = s.uid_base, s.uid_base + 10000
        end = time.time() + 10
        found = []
        while time.time() < end and not found:
            found = [(pid, uid) for pid, uid, name in processes_with_uid_in(lo, hi)
                     if name == tag]
            time.sleep(0.02)
        self.assertEqual(len(found), 1, "victim worker not found")
        victim_pid, victim_uid = found[0]

        code = (
            "import os, signal\n"
            "_m = open('/proc/self/uid_map').read().split()\n"
            "print(_m[1] if _m[2] == '1' else os.getuid())\n"   # the uid the host sees
            f"for sig in (signal.SIGKILL, signal.SIGTERM):\n"
            "    try:\n"
            f"        os.kill({victim_pid}, sig); print('signal sent')\n"
            "    except (PermissionError, ProcessLookupError) as e:\n"
            "        print(type(e).__name__)\n")
        r = self.run_one(code)
        self.assertEqual(r["outcome"], "OUTCOME_OK", r)
        out = lines(r)
        self.assertNotEqual(int(out[0]), victim_uid, "attacker and victim share a uid")
        for line in out[1:]:
            self.assertIn(line, ("PermissionError", "ProcessLookupError"))
        self.assertEqual(len(out), 3, r)

        t.join(30)
        status, body = victim["reply"]
        self.assertEqual(status, 200, body)
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "output": "victim done\n"}])

    # --- files, identity, environment ----------------------------------------------------

    def test_shadow_unreadable(self):
        """/etc/shadow: absent from the worker's minimal root; on the host's root, PermissionError."""
        self.require("uidDrop")
        minimal = self.isolation.get("minimalRoot")
        if not minimal and not os.path.exists("/etc/shadow"):
            self.skipTest("skipped: no /etc/shadow on this host")
        r = self.run_one(
            "try:\n"
            "    open('/etc/shadow').read(); print('read it')\n"
            "except OSError as e:\n"
            "    print(type(e).__name__)\n")
        self.assertEqual(r, {"outcome": "OUTCOME_OK", "output": "FileNotFoundError\n"
                             if minimal else "PermissionError\n"})

    def test_not_root(self):
        """The code is never real root: its uid on the host is one of this server's worker uids, and it holds no capability."""
        self.require("uidDrop")
        r = self.run_one(
            "import os\n"
            "print(*os.getresuid(), *os.getresgid())\n"
            "print(open('/proc/self/uid_map').read().split())\n"
            "print(open('/proc/self/gid_map').read().split())\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')])\n")
        self.assertEqual(r["outcome"], "OUTCOME_OK", r)
        ids, uid_map, gid_map, caps = lines(r)
        ids = [int(x) for x in ids.split()]
        self.assertEqual(len(set(ids[:3])), 1, r)
        if self.isolation.get("userNamespace"):
            # Root inside, as in the real service, mapped to exactly one unprivileged uid.
            self.assertEqual(ids, [0] * 6)
            outside = eval(uid_map)
            self.assertEqual(outside[0], "0")
            self.assertEqual(outside[2], "1")
            uid = int(outside[1])
            self.assertEqual(eval(gid_map)[1], outside[1])
        else:
            uid = ids[0]
            self.assertNotEqual(uid, 0)
        self.assertTrue(self.server.uid_base <= uid < self.server.uid_base + 10000, uid)
        # CapInh, CapPrm, CapEff, CapBnd, CapAmb: nothing effective or permitted.
        self.assertEqual(int(eval(caps)[1], 16), 0, caps)
        self.assertEqual(int(eval(caps)[2], 16), 0, caps)

    def test_server_secret_not_in_environment(self):
        """A secret env var of the server process is not in the code's environment."""
        server_pid = self.server.proc.pid
        with open(f"/proc/{server_pid}/environ", "rb") as f:
            self.assertIn(self.secret.encode(), f.read(), "precondition: server has it")
        code = (
            "import os\n"
            f"print({SECRET_NAME!r} in os.environ)\n"
            f"print(any({self.secret!r} in v for v in os.environ.values()))\n"
            "try:\n"
            f"    data = open('/proc/{server_pid}/environ', 'rb').read()\n"
            f"    print('read server environ', {self.secret.encode()!r} in data)\n"
            "except OSError as e:\n"
            "    print(type(e).__name__)\n")
        r = self.run_one(code)
        self.assertEqual(r["outcome"], "OUTCOME_OK", r)
        self.assertNotIn(self.secret, r["output"])
        out = lines(r)
        self.assertEqual(out[:2], ["False", "False"])
        if self.isolation.get("uidDrop"):
            # Another uid's file, or (PID namespace) no such process at all.
            self.assertIn(out[2], ("PermissionError", "FileNotFoundError"))

    # --- resources -----------------------------------------------------------------------

    def test_memory_bomb_is_memory_error(self):
        """bytearray(10**10) gives MemoryError in a FAILED result; the server stays healthy."""
        self.require("rlimits")
        r = self.run_one("x = bytearray(10**10)\nprint('allocated')")
        self.assertEqual(r["outcome"], "OUTCOME_FAILED", r)
        self.assertIn("MemoryError", r.get("output", ""))
        self.assertNotIn("allocated", r.get("output", ""))
        self.assert_healthy()

    def test_300mb_file_in_workdir_fails(self):
        """Writing a 300 MB file to /root fails with ENOSPC or EFBIG; the server stays healthy."""
        self.require("mountNamespace")
        code = (
            "import errno\n"
            "chunk = b'\\0' * (1 << 20)\n"
            "try:\n"
            "    with open('/root/big.bin', 'wb') as f:\n"
            "        for _ in range(300):\n"
            "            f.write(chunk)\n"
            "    print('wrote 300 MB')\n"
            "except OSError as e:\n"
            "    print('OSError', errno.errorcode.get(e.errno, e.errno))\n")
        r = self.run_one(code)
        self.assertEqual(r["outcome"], "OUTCOME_OK", r)
        self.assertIn(r["output"].strip(), ("OSError ENOSPC", "OSError EFBIG"))
        self.assert_healthy()

    def test_workdir_size_capped(self):
        """Files each under the file-size limit, 300 MB together, hit ENOSPC in /root."""
        self.require("mountNamespace")
        code = (
            "import errno\n"
            "chunk = b'\\0' * (1 << 20)\n"
            "written = 0\n"
            "try:\n"
            "    for i in range(6):\n"
            "        with open(f'/root/part{i}.bin', 'wb') as f:\n"
            "            for _ in range(50):\n"
            "                f.write(chunk)\n"
            "                written += 1\n"
            "    print('wrote', written)\n"
            "except OSError as e:\n"
            "    print('OSError', errno.errorcode.get(e.errno, e.errno), written)\n")
        r = self.run_one(code)
        self.assertEqual(r["outcome"], "OUTCOME_OK", r)
        word, err, written = r["output"].split()
        self.assertEqual((word, err), ("OSError", "ENOSPC"), r)
        self.assertLess(int(written), 300)
        self.assert_healthy()

    def test_tmp_not_shared_between_requests(self):
        """A file written to /tmp (and /root) in one request is gone in the next."""
        self.require("mountNamespace")
        name = "marker-" + secrets.token_hex(6)
        r = self.run_one(
            "import os\n"
            f"open('/tmp/{name}', 'w').write('x')\n"
            f"open('/root/{name}', 'w').write('x')\n"
            "print(sorted(os.listdir('/tmp')), sorted(os.listdir('/root')))")
        self.assertEqual(r, {"outcome": "OUTCOME_OK", "output": f"['{name}'] ['{name}']\n"})
        self.assertFalse(os.path.exists(f"/tmp/{name}"), "the write reached the host's /tmp")
        r = self.run_one("import os; print(os.listdir('/tmp'), os.listdir('/root'))")
        self.assertEqual(r, {"outcome": "OUTCOME_OK", "output": "[] []\n"})


if __name__ == "__main__":
    unittest.main()
