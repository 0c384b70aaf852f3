"""The hostile-code attack suite, part one: what sandboxed code can reach. Network,
new processes and forbidden system calls, file-system reads and writes, persistence from
one request into the next, information leaks, and forged output.

Every row is one attack (attack_table.Row): the snippet, the exact result it must get,
and where it means something a check from outside the sandbox (the listener the test
itself started accepted nothing, the host file was not touched, the next request sees
nothing of this one). After every row the server must answer /healthz and no worker
process may be left (AttackTestCase.wait_settled). On top of that, every reply any row
gets (the row's own and those of its before/outside steps) must not hold the secret the
server was started with, and must hold results for the one code part sent and no other.

Each row names the isolation layers it relies on (NEEDS); when /healthz reports one of
them as not available, the row is skipped with "skipped: <layer> not available on this
kernel".

Network rows only ever use loopback: the listeners (TCP, UDP, a tiny DNS responder, an
abstract and a pathname AF_UNIX socket) are the test's own, and no host name but
"localhost" (from /etc/hosts) is ever resolved.
"""

import ast
import json
import os
import secrets
import shutil
import socket
import struct
import sys
import tempfile
import textwrap
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from attack_table import (AttackTestCase, Row, all_of, failed_with,  # noqa: E402
                          nowhere_in_output, ok)
from harness import (BINARY, Server, code_part, images, processes_with_uid_in,  # noqa: E402
                     results)

SECRET_NAME = "PYEXECD_ATTACK_SECRET_TOKEN"

# What the server answers when seccomp killed the worker (server/executor_workers.c).
SIGSYS_TEXT = ("The interpreter process was stopped: it made a system call the sandbox "
               "forbids (signal 31, SIGSYS).\n")
# ... and when the worker broke the IPC protocol, so the server killed it.
PROTOCOL_KILL_TEXT = "The interpreter process ended unexpectedly.\n"
# server/block_output.c: the text of a block after the interpreter stopped.
NOT_RUN_TEXT = "This code block did not run"

# The minimal /dev of sandbox/confine.c.
DEV_ENTRIES = ["fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout",
               "urandom", "zero"]

# The worker's environment: what server/main.c gives the zygote, less MPLCONFIGDIR (the
# runner drops it: it names the server's state dir), plus what the libraries the zygote
# imports set for themselves (OpenCV's LD_LIBRARY_PATH, the OpenMP flags).
ENV_REQUIRED = {"PATH", "HOME", "LANG", "MPLBACKEND", "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS"}
ENV_ALLOWED = ENV_REQUIRED | {"GLIBC_TUNABLES", "LD_LIBRARY_PATH", "KMP_DUPLICATE_LIB_OK",
                              "KMP_INIT_AT_FORK"}


def py(text):
    """A snippet written indented in this file, as the code of a row."""
    return textwrap.dedent(text).strip("\n") + "\n"


def visible_host_dir():
    """A host directory the sandbox sees (read-only) and the test may create entries in:
    not one of those a private tmpfs hides (/tmp, /var/tmp, /root, /dev/shm)."""
    for d in ("/run/lock", "/run", os.path.dirname(os.path.abspath(BINARY))):
        if os.path.isdir(d) and os.access(d, os.W_OK):
            return d
    raise unittest.SkipTest("no host directory visible to the sandbox is writable")


# --- expectations (beyond attack_table's) ---------------------------------------------

def lines(*expected):
    """OUTCOME_OK whose output is exactly these lines."""
    def check(test, reply, r):
        test.assertEqual(r["outcome"], "OUTCOME_OK", r)
        test.assertEqual(r.get("output", "").splitlines(), list(expected), r)
    return check


def by_root(minimal, host):
    """`minimal` where the worker has its own minimal root (/healthz minimalRoot), `host`
    where the kernel left it the host's root, read-only (no mount namespace)."""
    def check(test, reply, r):
        (minimal if test.isolation.get("minimalRoot") else host)(test, reply, r)
    return check


def lines_one_of(*alternatives):
    """OUTCOME_OK whose output is exactly one of these lists of lines (where the answer
    depends on where the checkout lives: a path under /tmp or /root is not even there in
    the worker, whose /tmp and /root are private)."""
    def check(test, reply, r):
        test.assertEqual(r["outcome"], "OUTCOME_OK", r)
        test.assertIn(r.get("output", "").splitlines(), [list(a) for a in alternatives], r)
    return check


def each_line_in(allowed, count):
    """OUTCOME_OK with `count` lines, each one of `allowed`."""
    def check(test, reply, r):
        test.assertEqual(r["outcome"], "OUTCOME_OK", r)
        out = r.get("output", "").splitlines()
        test.assertEqual(len(out), count, r)
        for line in out:
            test.assertIn(line, allowed, r)
    return check


def forbidden_syscall(printed=None, never="survived"):
    """The worker was killed by seccomp: the FAILED text is the server's SIGSYS reason,
    limitReached is FORBIDDEN_SYSCALL; what it printed before is kept (an OK part before
    the FAILED one), what it would have printed after never appears."""
    def check(test, reply, r):
        rs = results(reply)
        test.assertEqual(rs[-1], {"outcome": "OUTCOME_FAILED", "output": SIGSYS_TEXT}, reply)
        test.assertEqual(reply.get("executionMetadata", {}).get("limitReached"),
                         "FORBIDDEN_SYSCALL", reply)
        text = "".join(x.get("output", "") for x in rs)
        if printed is not None:
            test.assertEqual(rs[0], {"outcome": "OUTCOME_OK", "output": printed}, reply)
        test.assertNotIn(never, text)
    return check


def protocol_kill(test, reply, r):
    """The code wrote garbage to the worker's control socket: the server killed the worker
    and failed the block (INTERPRETER_CRASH), nothing more."""
    rs = results(reply)
    test.assertEqual(rs[-1]["outcome"], "OUTCOME_FAILED", reply)
    test.assertTrue(rs[-1]["output"].endswith(PROTOCOL_KILL_TEXT), reply)
    test.assertEqual(reply.get("executionMetadata", {}).get("limitReached"),
                     "INTERPRETER_CRASH", reply)


def no_images(test, reply, r):
    test.assertEqual(images(reply), [], reply)


def no_limit(test, reply, r):
    test.assertNotIn("executionMetadata", reply)


# --- outside checks ---------------------------------------------------------------------

def assert_nothing_accepted(test, listener, what):
    """A non-blocking listening socket has no connection waiting."""
    with test.assertRaises(BlockingIOError, msg=f"{what} accepted a connection"):
        conn, _ = listener.accept()
        conn.close()


def assert_nothing_received(test, sock, what):
    with test.assertRaises(BlockingIOError, msg=f"{what} received a datagram"):
        sock.recvfrom(65536)


def next_requests(code, expect_output, times=3):
    """Outside check: `times` later requests (more than the pool, so at least one runs in a
    worker forked after this row's) each get exactly `expect_output`."""
    def outside(test, ctx, reply):
        for _ in range(times):
            r = results(test.server.run(code, timeout=60))
            test.assertEqual(r, [{"outcome": "OUTCOME_OK", "output": expect_output}])
    return outside


# --- the common base --------------------------------------------------------------------

class AttackBase(AttackTestCase):
    """Starts the server with a secret in its environment, records every reply, and checks
    each one: no secret, and results only for the one code part sent."""

    ROWS = ()
    NEEDS = {}                 # row id -> isolation layers it relies on
    DEFAULT_NEEDS = ("seccomp",)

    @classmethod
    def make_server(cls):
        return Server(*cls.SERVER_FLAGS, workers=cls.WORKERS, pool=cls.POOL,
                      env={SECRET_NAME: cls.secret})

    @classmethod
    def setUpClass(cls):
        cls.secret = "s3cr3t-" + secrets.token_hex(16)
        cls.server = cls.make_server().start()
        with open(f"/proc/{cls.server.proc.pid}/environ", "rb") as f:
            assert cls.secret.encode() in f.read(), "precondition: the server has the secret"
        status, health = cls.server.health()
        assert status == 200, health
        cls.isolation = health["isolation"]
        cls.replies = []
        execute = cls.server.execute

        def recording_execute(body, timeout=120):
            status, data = execute(body, timeout=timeout)
            cls.replies.append((body, status, data))
            return status, data

        cls.server.execute = recording_execute
        try:
            cls.set_up_fixtures()
        except BaseException:
            cls.server.kill()
            raise

    @classmethod
    def set_up_fixtures(cls):
        pass

    @classmethod
    def tear_down_fixtures(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        try:
            cls.tear_down_fixtures()
        finally:
            super().tearDownClass()

    def ctx(self):
        return {"tag": secrets.token_hex(6)}

    def run_row(self, row):
        missing = [layer for layer in self.NEEDS.get(row.id, self.DEFAULT_NEEDS)
                   if not self.isolation.get(layer)]
        if missing:
            self.skipTest(f"skipped: {' and '.join(missing)} not available on this kernel")
        del self.replies[:]
        super().run_row(row)
        for body, status, reply in self.replies:
            self.assert_clean_reply(body, status, reply)

    def assert_clean_reply(self, body, status, reply):
        text = json.dumps(reply) if not isinstance(reply, str) else reply
        self.assertNotIn(self.secret, text, "the server's secret reached the output")
        self.assertEqual(status, 200, reply)
        self.assertIsInstance(reply, dict, reply)
        sent = sum(1 for p in body.get("parts", []) if "executableCode" in p)
        got = [p for p in reply.get("parts", []) if "executableCode" in p]
        self.assertEqual(len(got), sent, reply)
        rs = results(reply)
        if sent == 1:
            # One block: one result, or (stdout kept apart from a failure) OK then FAILED.
            self.assertIn(len(rs), (1, 2), reply)
            if len(rs) == 2:
                self.assertEqual([r["outcome"] for r in rs],
                                 ["OUTCOME_OK", "OUTCOME_FAILED"], reply)
        for r in rs:
            self.assertNotIn(NOT_RUN_TEXT, r.get("output", ""), reply)


# =======================================================================================
# Network
# =======================================================================================

def _expect_abstract_refused(test, reply, r):
    # Its own network namespace: the name does not exist there (refused). Without one,
    # Landlock's abstract-socket scope refuses it (EPERM).
    want = ("ConnectionRefusedError" if test.isolation.get("networkNamespace")
            else "PermissionError")
    lines(f"abstract {want}")(test, reply, r)


def _outside_tcp(test, ctx, reply):
    for ls, what in test.tcp_listeners:
        assert_nothing_accepted(test, ls, what)
    # ...though they work: the test itself can connect.
    for ls, what in test.tcp_listeners:
        fam = ls.family
        with socket.create_connection(ls.getsockname()[:2], timeout=2):
            end = time.time() + 2
            while True:
                try:
                    conn, _ = ls.accept()
                    conn.close()
                    break
                except BlockingIOError:
                    if time.time() > end:
                        test.fail(f"{what} ({fam}) does not work")
                    time.sleep(0.01)


def _outside_udp(test, ctx, reply):
    assert_nothing_received(test, test.udp, "the UDP listener")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"self-test", test.udp.getsockname())
    end = time.time() + 2
    while True:
        try:
            data, _ = test.udp.recvfrom(100)
            test.assertEqual(data, b"self-test")
            break
        except BlockingIOError:
            if time.time() > end:
                test.fail("the UDP listener does not work")
            time.sleep(0.01)


def _outside_dns(test, ctx, reply):
    time.sleep(0.2)
    test.assertEqual(test.dns.queries, [], "the DNS responder got a query")
    test.assertTrue(test.dns.self_test(), "the DNS responder does not answer")


def _outside_unix_abstract(test, ctx, reply):
    assert_nothing_accepted(test, test.abstract, "the abstract AF_UNIX listener")


def _outside_unix_path(test, ctx, reply):
    assert_nothing_accepted(test, test.unix_stream, "the host's pathname AF_UNIX listener")
    assert_nothing_received(test, test.unix_dgram, "the host's pathname AF_UNIX datagram socket")


def _before_server_port(test, ctx):
    status, h = test.server.health()
    test.assertEqual(status, 200, h)
    return {"executions_before": h["counters"]["executions"],
            "crashes_before": h["counters"]["workerCrashes"]}


def _outside_server_port(test, ctx, reply):
    h, _ = test.wait_settled()   # the counters are updated once the worker is done
    # The code's request, and no other, reached the executor.
    test.assertEqual(h["counters"]["executions"], ctx["executions_before"] + 1, h)
    test.assertEqual(h["counters"]["workerCrashes"], ctx["crashes_before"], h)
    test.assertEqual(results(test.server.run("print('alive')")),
                     [{"outcome": "OUTCOME_OK", "output": "alive\n"}])


class DnsResponder:
    """A UDP DNS responder on 127.0.0.1 that records every query and answers REFUSED."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries.append((data, peer))
            if len(data) >= 12:
                # Same id and question; QR=1, RCODE=5 (REFUSED).
                reply = data[:2] + b"\x81\x05" + data[4:6] + b"\0\0\0\0\0\0" + data[12:]
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def self_test(self):
        """The test itself queries the responder: it must answer (then forget it)."""
        q = dns_query("pyexecd-self-test.invalid")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(q, ("127.0.0.1", self.port))
            try:
                answer = s.recv(512)
            except socket.timeout:
                return False
        time.sleep(0.05)
        del self.queries[:]
        return answer[:2] == q[:2]

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def dns_query(name):
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", 0x5eed, 0x0100, 1, 0, 0, 0) + qname + b"\0\x01\0\x01"


NET_ROWS = [
    Row("net-inet-tcp", "network",
        attack="AF_INET SOCK_STREAM socket (any TCP client or server)",
        code=py("""
            import socket
            for proto in (0, socket.IPPROTO_TCP):
                try:
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto); print('created')
                except OSError as e:
                    print(type(e).__name__, e.errno)
            """),
        expect=lines("PermissionError 1", "PermissionError 1")),
    Row("net-inet-udp-raw", "network",
        attack="AF_INET SOCK_DGRAM (UDP, ICMP ping socket) and SOCK_RAW (ICMP, raw IP)",
        code=py("""
            import socket
            for kind, proto in ((socket.SOCK_DGRAM, 0), (socket.SOCK_DGRAM, socket.IPPROTO_ICMP),
                                (socket.SOCK_RAW, socket.IPPROTO_ICMP),
                                (socket.SOCK_RAW, socket.IPPROTO_RAW)):
                try:
                    socket.socket(socket.AF_INET, kind, proto); print('created')
                except OSError as e:
                    print(type(e).__name__, e.errno)
            """),
        expect=lines(*["PermissionError 1"] * 4)),
    Row("net-inet6-all", "network",
        attack="AF_INET6 stream, datagram and raw (ICMPv6) sockets",
        code=py("""
            import socket
            for kind, proto in ((socket.SOCK_STREAM, 0), (socket.SOCK_DGRAM, 0),
                                (socket.SOCK_RAW, socket.IPPROTO_ICMPV6)):
                try:
                    socket.socket(socket.AF_INET6, kind, proto); print('created')
                except OSError as e:
                    print(type(e).__name__, e.errno)
            """),
        expect=lines(*["PermissionError 1"] * 3)),
    Row("net-packet", "network",
        attack="AF_PACKET raw and cooked sockets (sniff or inject Ethernet frames)",
        code=py("""
            import socket
            for kind in (socket.SOCK_RAW, socket.SOCK_DGRAM):
                try:
                    socket.socket(socket.AF_PACKET, kind, socket.htons(3)); print('created')
                except OSError as e:
                    print(type(e).__name__, e.errno)
            """),
        expect=lines("PermissionError 1", "PermissionError 1")),
    Row("net-netlink", "network",
        attack="AF_NETLINK sockets (route, audit, uevents): reconfigure or observe the host",
        code=py("""
            import socket
            for kind, proto in ((socket.SOCK_RAW, socket.NETLINK_ROUTE),
                                (socket.SOCK_DGRAM, socket.NETLINK_ROUTE),
                                (socket.SOCK_RAW, 15), (socket.SOCK_RAW, 9)):
                try:
                    socket.socket(socket.AF_NETLINK, kind, proto); print('created')
                except OSError as e:
                    print(type(e).__name__, e.errno)
            """),
        expect=lines(*["PermissionError 1"] * 4)),
    Row("net-other-families", "network",
        attack="every other address family: VSOCK (the hypervisor), ALG (kernel crypto), "
               "KEY, TIPC, RDS, CAN, Bluetooth, XDP, QIPCRTR, LLC, X25, AX25, AppleTalk; "
               "and socketpair() with AF_INET",
        code=py("""
            import socket
            fams = {'VSOCK': 40, 'ALG': 38, 'KEY': 15, 'TIPC': 30, 'RDS': 21, 'CAN': 29,
                    'BLUETOOTH': 31, 'XDP': 44, 'QIPCRTR': 42, 'LLC': 26, 'X25': 9, 'AX25': 3,
                    'APPLETALK': 5}
            for name, fam in fams.items():
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW,
                             socket.SOCK_SEQPACKET):
                    try:
                        socket.socket(fam, kind, 0).close(); print(name, kind, 'created')
                    except PermissionError:
                        pass
                    except OSError as e:
                        print(name, kind, type(e).__name__)
            try:
                socket.socketpair(socket.AF_INET, socket.SOCK_STREAM); print('socketpair created')
            except OSError as e:
                print('socketpair', type(e).__name__)
            """),
        expect=lines("socketpair PermissionError")),
    Row("net-tcp-loopback-listener", "network",
        attack="TCP connect to the test's own listeners on 127.0.0.1 and ::1",
        code=py("""
            import socket
            for host, port in (('127.0.0.1', $tcp_port), ('::1', $tcp6_port)):
                if not port:
                    continue
                try:
                    socket.create_connection((host, port), timeout=2).close(); print('connected')
                except OSError as e:
                    print(type(e).__name__)
            """),
        expect=lambda test, reply, r: lines(
            *["PermissionError"] * len(test.tcp_listeners))(test, reply, r),
        outside=_outside_tcp),
    Row("net-udp-loopback-listener", "network",
        attack="UDP sendto the test's own listener on 127.0.0.1",
        code=py("""
            import socket
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.sendto(b'exfiltrated', ('127.0.0.1', $udp_port)); print('sent')
            except OSError as e:
                print(type(e).__name__)
            """),
        expect=lines("PermissionError"),
        outside=_outside_udp),
    Row("net-server-http-port", "network",
        attack="an HTTP request from inside to the server's own port on 127.0.0.1 "
               "(recursive execution, or a flood of the server)",
        code=py("""
            import socket
            req = (b'POST /v1/execute HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2\\r\\n\\r\\n{}')
            try:
                c = socket.create_connection(('127.0.0.1', $server_port), timeout=2)
                c.sendall(req); print('sent', c.recv(100))
            except OSError as e:
                print(type(e).__name__)
            """),
        expect=lines("PermissionError"),
        before=_before_server_port,
        outside=_outside_server_port),
    Row("net-dns-direct", "network",
        attack="a DNS query sent straight to the test's loopback DNS responder (UDP and TCP)",
        code=py("""
            import socket, struct
            q = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)
            q += b'\\x0cpyexecd-test\\x07invalid\\x00\\x00\\x01\\x00\\x01'
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                try:
                    s = socket.socket(socket.AF_INET, kind)
                    if kind == socket.SOCK_DGRAM:
                        s.sendto(q, ('127.0.0.1', $dns_port))
                    else:
                        s.connect(('127.0.0.1', $dns_port)); s.sendall(struct.pack('>H', len(q)) + q)
                    print('queried')
                except OSError as e:
                    print(type(e).__name__)
            """),
        expect=lines("PermissionError", "PermissionError"),
        outside=_outside_dns),
    Row("net-getaddrinfo-localhost", "network",
        attack="socket.getaddrinfo('localhost'): may resolve from /etc/hosts, must reach no "
               "resolver",
        code=py("""
            import socket
            try:
                addrs = {a[4][0] for a in socket.getaddrinfo('localhost', 53)}
                print('resolved', '127.0.0.1' in addrs or '::1' in addrs)
            except OSError as e:
                print(type(e).__name__)
            """),
        expect=lines("resolved True"),
        outside=_outside_dns),
    Row("net-unix-abstract", "network",
        attack="AF_UNIX connect to an abstract socket the test process listens on",
        code=py("""
            import socket
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect('\\0$abstract'); print('abstract connected')
            except OSError as e:
                print('abstract', type(e).__name__)
            """),
        expect=_expect_abstract_refused,
        outside=_outside_unix_abstract),
    Row("net-unix-pathname-host", "network",
        attack="AF_UNIX connect and sendto a world-writable pathname socket of the host (a "
               "host service's socket: the network namespace does not cover these)",
        code=py("""
            import socket
            for kind, path in ((socket.SOCK_STREAM, '$unix_path'),
                               (socket.SOCK_DGRAM, '$unix_dgram_path')):
                s = socket.socket(socket.AF_UNIX, kind)
                try:
                    if kind == socket.SOCK_STREAM:
                        s.connect(path); s.sendall(b'from the sandbox')
                    else:
                        s.sendto(b'from the sandbox', path)
                    print('reached')
                except OSError as e:
                    print(type(e).__name__)
            """),
        expect=lambda test, reply, r: (
            test.assertEqual(r["outcome"], "OUTCOME_OK", r),
            test.assertNotIn("reached", r.get("output", ""),
                             "the sandbox reached a host AF_UNIX socket")),
        outside=_outside_unix_path),
    Row("net-lo-up-ioctl", "network",
        attack="bring up the loopback interface (SIOCSIFFLAGS through an AF_UNIX socket; "
               "`ip link set lo up` via exec) to make loopback usable",
        code=py("""
            import fcntl, os, socket, struct
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            flags = struct.unpack('16sH', fcntl.ioctl(s, 0x8913, struct.pack('16sH14x', b'lo', 0))[:18])[1]
            print('lo up before', bool(flags & 1))
            try:
                fcntl.ioctl(s, 0x8914, struct.pack('16sH14x', b'lo', flags | 1)); print('set')
            except OSError as e:
                print('SIOCSIFFLAGS', type(e).__name__)
            print('ip', os.system('ip link set lo up') != 0)
            print('interfaces', [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]])
            try:
                socket.socket(socket.AF_INET, socket.SOCK_STREAM); print('created')
            except OSError as e:
                print('AF_INET', type(e).__name__)
            """),
        expect=lines("lo up before False", "SIOCSIFFLAGS PermissionError", "ip True",
                     "interfaces ['lo']", "AF_INET PermissionError")),
]


class NetworkAttacks(AttackBase):
    """Network: no socket but AF_UNIX, nothing on loopback reachable."""

    ROWS = NET_ROWS
    NEEDS = {
        "net-tcp-loopback-listener": ("seccomp",),
        "net-unix-abstract": ("networkNamespace",),
        "net-lo-up-ioctl": ("networkNamespace", "seccomp"),
        "net-unix-pathname-host": ("seccomp",),
    }

    @classmethod
    def set_up_fixtures(cls):
        cls.tcp_listeners = []
        for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                ls = socket.socket(fam, socket.SOCK_STREAM)
                ls.bind((host, 0))
            except OSError:
                if fam == socket.AF_INET:
                    raise
                continue
            ls.listen(16)
            ls.setblocking(False)
            cls.tcp_listeners.append((ls, f"the TCP listener on {host}"))
        cls.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cls.udp.bind(("127.0.0.1", 0))
        cls.udp.setblocking(False)
        cls.dns = DnsResponder()
        cls.abstract_name = "pyexecd-test-" + secrets.token_hex(8)
        cls.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cls.abstract.bind("\0" + cls.abstract_name)
        cls.abstract.listen(16)
        cls.abstract.setblocking(False)
        # A pathname socket where a host service's would be: a directory the sandbox sees.
        cls.unix_dir = tempfile.mkdtemp(prefix="pyexecd-test-", dir=visible_host_dir())
        os.chmod(cls.unix_dir, 0o755)
        cls.unix_stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cls.unix_stream.bind(os.path.join(cls.unix_dir, "stream.sock"))
        cls.unix_stream.listen(16)
        cls.unix_stream.setblocking(False)
        cls.unix_dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        cls.unix_dgram.bind(os.path.join(cls.unix_dir, "dgram.sock"))
        cls.unix_dgram.setblocking(False)
        for name in ("stream.sock", "dgram.sock"):
            os.chmod(os.path.join(cls.unix_dir, name), 0o777)

    @classmethod
    def tear_down_fixtures(cls):
        for ls, _ in cls.tcp_listeners:
            ls.close()
        for s in (cls.udp, cls.abstract, cls.unix_stream, cls.unix_dgram):
            s.close()
        cls.dns.close()
        shutil.rmtree(cls.unix_dir, ignore_errors=True)

    def ctx(self):
        tcp6 = [ls.getsockname()[1] for ls, _ in self.tcp_listeners if ls.family == socket.AF_INET6]
        return dict(super().ctx(),
                    tcp_port=self.tcp_listeners[0][0].getsockname()[1],
                    tcp6_port=tcp6[0] if tcp6 else 0,
                    udp_port=self.udp.getsockname()[1],
                    dns_port=self.dns.port,
                    server_port=self.server.port,
                    abstract=self.abstract_name,
                    unix_path=os.path.join(self.unix_dir, "stream.sock"),
                    unix_dgram_path=os.path.join(self.unix_dir, "dgram.sock"))


# =======================================================================================
# New processes and forbidden system calls
# =======================================================================================

def _killing_syscall(name, call):
    """Code making one system call the policy kills on; it says so first."""
    return py(f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        print('calling {name}', flush=True)
        {call}
        print('survived')
        """)


EXEC_ROWS = [
    Row("exec-os-system", "exec",
        attack="os.system('echo pwned; echo pwned > /root/pwned'): a shell",
        code=py("""
            import os
            status = os.system('echo pwned; echo pwned > /root/pwned')
            print(os.WEXITSTATUS(status) if os.WIFEXITED(status) else status,
                  os.path.exists('/root/pwned'))
            """),
        # glibc's system(): the spawn failed, so "the shell could not run" (127).
        expect=lines("127 False")),
    Row("exec-subprocess-run", "exec",
        attack="subprocess.run(['/bin/sh', '-c', 'echo pwned'])",
        code="import subprocess\nsubprocess.run(['/bin/sh', '-c', 'echo pwned'])\n",
        expect=all_of(failed_with("PermissionError: [Errno 1] Operation not permitted"),
                      nowhere_in_output("pwned"))),
    Row("exec-execv-sh", "exec",
        attack="os.execv('/bin/sh'): replace the interpreter by a shell",
        code="import os\nos.execv('/bin/sh', ['sh', '-c', 'echo pwned'])\n",
        expect=failed_with("PermissionError: [Errno 1] Operation not permitted")),
    Row("exec-posix-spawn", "exec",
        attack="os.posix_spawn('/bin/sh')",
        code="import os\nos.posix_spawn('/bin/sh', ['sh', '-c', 'echo pwned'], {})\n",
        expect=failed_with("PermissionError: [Errno 1] Operation not permitted: '/bin/sh'")),
    Row("exec-fork-variants", "exec",
        attack="os.fork, libc fork() through ctypes, os.forkpty",
        code=py("""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            for name, fn in (('os.fork', os.fork), ('os.forkpty', os.forkpty)):
                try:
                    if fn() in (0, (0,)):
                        os._exit(0)
                    print(name, 'forked')
                except OSError as e:
                    print(name, type(e).__name__)
            print('libc.fork', libc.fork(), ctypes.get_errno())
            """),
        # os.forkpty: no /dev/ptmx in the minimal /dev, so it fails before forking.
        expect=lines("os.fork PermissionError", "os.forkpty FileNotFoundError",
                     "libc.fork -1 1")),
    Row("exec-multiprocessing", "exec",
        attack="multiprocessing.Process(...).start()",
        code=py("""
            import multiprocessing
            p = multiprocessing.Process(target=print, args=('child ran',))
            p.start()
            p.join()
            """),
        expect=all_of(failed_with("PermissionError: [Errno 1] Operation not permitted"),
                      nowhere_in_output("child ran"))),
    Row("exec-pty-spawn", "exec",
        attack="pty.spawn('/bin/sh'): a shell on a pseudo-terminal",
        code="import pty\npty.spawn('/bin/sh')\n",
        # The minimal /dev has no ptmx: it fails before even trying to fork.
        expect=failed_with("OSError: out of pty devices")),
    Row("exec-syscall-execve", "exec",
        attack="execve(59) and execveat(322) straight through ctypes syscall()",
        code=py("""
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            argv = (ctypes.c_char_p * 2)(b'/bin/sh', None)
            print('execve', libc.syscall(59, b'/bin/sh', argv, None), ctypes.get_errno())
            print('execveat', libc.syscall(322, -100, b'/bin/sh', argv, None, 0), ctypes.get_errno())
            """),
        expect=lines("execve -1 1", "execveat -1 1")),
    Row("exec-syscall-fork-clone", "exec",
        attack="fork(57), vfork(58), clone(56) as a process and with CLONE_NEWUSER, "
               "clone3(435) through ctypes syscall()",
        code=py("""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            for name, args in (('fork', (57,)), ('vfork', (58,)),
                               ('clone', (56, 17, 0, 0, 0, 0)),
                               ('clone-newuser', (56, 0x10000000 | 17, 0, 0, 0, 0)),
                               ('clone-newpid-newnet', (56, 0x20000000 | 0x40000000 | 17, 0, 0, 0, 0)),
                               ('clone3', (435, None, 0))):
                r = libc.syscall(*args)
                if r == 0:
                    os._exit(0)
                print(name, r, ctypes.get_errno())
            """),
        # clone3 says "not implemented" (so glibc falls back to an inspectable clone).
        expect=lines("fork -1 1", "vfork -1 1", "clone -1 1", "clone-newuser -1 1",
                     "clone-newpid-newnet -1 1", "clone3 -1 38")),
    Row("exec-int80", "exec",
        attack="an i386 system call (int 0x80, getpid) from machine code in an executable "
               "anonymous mapping, bypassing the x86-64 table",
        code=py("""
            import ctypes, mmap
            m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            m.write(bytes.fromhex('b814000000cd80c3'))  # mov eax, 20; int 0x80; ret
            fn = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
            print('calling int 0x80', flush=True)
            print('survived', fn())
            """),
        expect=forbidden_syscall(printed="calling int 0x80\n")),
    Row("exec-x32", "exec",
        attack="an x32 system call (getpid | __X32_SYSCALL_BIT)",
        code=_killing_syscall("x32 getpid", "libc.syscall(0x40000000 | 39)"),
        expect=forbidden_syscall(printed="calling x32 getpid\n")),
    Row("exec-ptrace", "exec",
        attack="ptrace(PTRACE_ATTACH) through ctypes (syscall 101)",
        code=_killing_syscall("ptrace", "libc.syscall(101, 16, 1, 0, 0)"),
        expect=forbidden_syscall(printed="calling ptrace\n")),
    Row("exec-unshare", "exec",
        attack="unshare(CLONE_NEWUSER) through ctypes (syscall 272): a new user namespace "
               "with full capabilities in it",
        code=_killing_syscall("unshare", "libc.syscall(272, 0x10000000)"),
        expect=forbidden_syscall(printed="calling unshare\n")),
    Row("exec-mount", "exec",
        attack="mount a tmpfs over /root through ctypes (syscall 165)",
        code=_killing_syscall("mount", "libc.syscall(165, b'none', b'/root', b'tmpfs', 0, None)"),
        expect=forbidden_syscall(printed="calling mount\n")),
    Row("exec-bpf", "exec",
        attack="bpf(BPF_MAP_CREATE) through ctypes (syscall 321)",
        code=_killing_syscall("bpf", "libc.syscall(321, 0, ctypes.create_string_buffer(64), 64)"),
        expect=forbidden_syscall(printed="calling bpf\n")),
    Row("exec-io-uring", "exec",
        attack="io_uring_setup through ctypes (syscall 425): system calls seccomp never sees",
        code=_killing_syscall("io_uring_setup",
                              "libc.syscall(425, 8, ctypes.create_string_buffer(120))"),
        expect=forbidden_syscall(printed="calling io_uring_setup\n")),
    Row("exec-userfaultfd", "exec",
        attack="userfaultfd (323): the classic primitive for winning kernel races",
        code=_killing_syscall("userfaultfd", "libc.syscall(323, 0)"),
        expect=forbidden_syscall(printed="calling userfaultfd\n")),
    Row("exec-perf-event-open", "exec",
        attack="perf_event_open (298) on the worker itself: kernel attack surface and side "
               "channels",
        code=_killing_syscall("perf_event_open",
                              "libc.syscall(298, ctypes.create_string_buffer(128), 0, -1, -1, 0)"),
        expect=forbidden_syscall(printed="calling perf_event_open\n")),
    Row("exec-setns-keyctl", "exec",
        attack="setns (308) into the namespaces of /proc/1 (itself), then keyctl (250) had it "
               "survived",
        code=py("""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open('/proc/self/ns/net', os.O_RDONLY)
            print('calling setns', flush=True)
            libc.syscall(308, fd, 0)
            libc.syscall(250, 0, 0)
            print('survived')
            """),
        expect=forbidden_syscall(printed="calling setns\n")),
]


class ExecAttacks(AttackBase):
    """New processes are refused (PermissionError); exploit-only system calls, i386 and x32
    calls kill the worker with SIGSYS (FORBIDDEN_SYSCALL)."""

    ROWS = EXEC_ROWS
    NEEDS = {"exec-pty-spawn": ("mountNamespace", "seccomp")}


# =======================================================================================
# File-system reads
# =======================================================================================

def _before_shadow(test, ctx):
    if not os.path.exists("/etc/shadow") and not test.isolation.get("minimalRoot"):
        test.skipTest("skipped: no /etc/shadow on this host")
    return {}


def _expect_not_elf(test, reply, r):
    test.assertEqual(r["outcome"], "OUTCOME_OK", r)
    out = r.get("output", "").splitlines()
    test.assertEqual(len(out), 3, r)
    for line in out:
        test.assertNotEqual(line.split()[1], "elf",
                            "the server's binary was read through /proc: " + line)


def _outside_binary_not_empty(test, ctx, reply):
    test.assertGreater(os.path.getsize(BINARY), 0, "precondition: the binary is not empty")


def _before_victim(test, ctx):
    """Starts a concurrent request (the victim) that plants a secret in each of its private
    dirs and waits; returns once it has (it renames its process to say so)."""
    name = "victim-" + secrets.token_hex(6)
    secret = "victim-secret-" + secrets.token_hex(12)
    comm = "pxv" + secrets.token_hex(4)
    code = py(f"""
        import ctypes, os, time
        for d in ('/root', '/tmp', '/var/tmp', '/dev/shm'):
            with open(os.path.join(d, {name!r}), 'w') as f:
                f.write({secret!r})
        ctypes.CDLL(None).prctl(15, {comm.encode()!r}, 0, 0, 0)
        time.sleep(8)
        print([os.path.exists(os.path.join(d, {name!r}))
               for d in ('/root', '/tmp', '/var/tmp', '/dev/shm')])
        """)
    box = {}

    def run():
        box["reply"] = test.server.execute({"parts": [code_part(code)]}, timeout=60)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    end = time.time() + 15
    while not any(n == comm for _, _, n in processes_with_uid_in(
            test.server.uid_base, test.server.uid_base + 10000)):
        if time.time() > end or not t.is_alive():
            t.join(1)
            test.fail(f"the victim did not start: {box}")
        time.sleep(0.02)
    return {"victim_name": name, "victim_secret": secret,
            "victim_secret_hex": secret.encode().hex(), "victim_thread": t,
            "victim_box": box}


def _outside_victim(test, ctx, reply):
    # The victim was still running (holding its files) when the attacker's search ended.
    test.assertTrue(ctx["victim_thread"].is_alive(), "the victim ended before the search did")
    ctx["victim_thread"].join(60)
    status, body = ctx["victim_box"]["reply"]
    test.assertEqual(status, 200, body)
    # The victim's files were there all along (it ran while the attacker searched).
    test.assertEqual(results(body), [{"outcome": "OUTCOME_OK",
                                      "output": "[True, True, True, True]\n"}])
    test.assertNotIn(ctx["victim_secret"], json.dumps(reply))


def _expect_old_root_gone(test, reply, r):
    test.assertEqual(r["outcome"], "OUTCOME_OK", r)
    out = r["output"].splitlines()
    test.assertEqual(out[:2], ["[]", "/ True True"], r)
    # The top level: the links into /usr (merged /usr) or the directories, and the
    # sandbox's own directories; nothing else of the host's.
    top = set(ast.literal_eval(out[2]))
    # The server's state dir is bound at its own path (the zygote and MPLCONFIGDIR name it),
    # so its first component shows too, as an empty tmpfs directory when it is not one of
    # the sandbox's own (a CI checkout may put the temporary dirs under /check, say).
    state_top = test.server.state_dir.strip("/").split("/")[0]
    test.assertLessEqual(top, {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt",
                               "proc", "root", "run", "sbin", "sys", "tmp", "usr", "var",
                               state_top}, r)
    test.assertLessEqual({"etc", "usr", "tmp", "proc", "dev", "root"}, top, r)


def _host_root_names():
    try:
        return sorted(os.listdir("/root"))
    except OSError:
        return []


FSR_ROWS = [
    Row("fsr-shadow", "fs-read",
        attack="read /etc/shadow directly and through /proc/self/root and /proc/1/root",
        code=py("""
            for p in ('/etc/shadow', '/proc/self/root/etc/shadow', '/proc/1/root/etc/shadow'):
                try:
                    open(p, 'rb').read(); print(p, 'read')
                except OSError as e:
                    print(p, type(e).__name__)
            """),
        expect=by_root(lines("/etc/shadow FileNotFoundError",
                             "/proc/self/root/etc/shadow FileNotFoundError",
                             "/proc/1/root/etc/shadow FileNotFoundError"),
                       lines("/etc/shadow PermissionError",
                             "/proc/self/root/etc/shadow PermissionError",
                             "/proc/1/root/etc/shadow PermissionError")),
        before=_before_shadow),
    Row("fsr-own-environ", "fs-read",
        attack="/proc/1/environ and /proc/self/environ (pid 1 is the worker itself, forked "
               "from the zygote): the server's secret must not be there",
        code=py("""
            for p in ('/proc/1/environ', '/proc/self/environ', '/proc/thread-self/environ',
                      '/proc/1/cmdline'):
                try:
                    data = open(p, 'rb').read()
                    print(p, 'secret' if bytes.fromhex('$secret_hex') in data else 'no secret')
                except OSError as e:
                    print(p, type(e).__name__)
            """),
        # Not dumpable (uid change): its environ belongs to real root, PermissionError.
        expect=lambda test, reply, r: each_line_in(
            {f"{p} {w}" for p in ("/proc/1/environ", "/proc/self/environ",
                                  "/proc/thread-self/environ", "/proc/1/cmdline")
             for w in ("PermissionError", "no secret")}, 4)(test, reply, r)),
    Row("fsr-server-proc", "fs-read",
        attack="/proc/<server pid>/{environ,cmdline,status,exe,root} and the zygote's: the "
               "server's secret and files",
        code=py("""
            import os
            for who, pid in (('server', $server_pid), ('zygote', $zygote_pid)):
                for f in ('environ', 'cmdline', 'status'):
                    try:
                        open(f'/proc/{pid}/{f}', 'rb').read(); print(who, f, 'read')
                    except OSError as e:
                        print(who, f, type(e).__name__)
                for f, fn in (('exe', os.readlink), ('root', os.listdir)):
                    try:
                        fn(f'/proc/{pid}/{f}'); print(who, f, 'read')
                    except OSError as e:
                        print(who, f, type(e).__name__)
            """),
        expect=lines(*[f"{who} {f} FileNotFoundError" for who in ("server", "zygote")
                       for f in ("environ", "cmdline", "status", "exe", "root")])),
    Row("fsr-server-binary", "fs-read",
        attack="read the server's binary at its path (covered by an empty file)",
        code=py("""
            import os
            try:
                print(os.stat('$binary').st_size, len(open('$binary', 'rb').read()))
            except FileNotFoundError:
                print('absent')
            """),
        expect=lines_one_of(["0 0"], ["absent"]),
        outside=_outside_binary_not_empty),
    Row("fsr-binary-via-proc-exe", "fs-read",
        attack="read the server's binary through /proc/self/exe, /proc/1/exe and "
               "/proc/thread-self/exe (the worker is a fork of the zygote, the same binary)",
        code=py("""
            for p in ('/proc/self/exe', '/proc/1/exe', '/proc/thread-self/exe'):
                try:
                    data = open(p, 'rb').read()
                    print(p, 'elf' if data[:4] == b'\\x7fELF' else 'other', len(data))
                except OSError as e:
                    print(p, type(e).__name__)
            """),
        expect=_expect_not_elf,
        outside=_outside_binary_not_empty),
    Row("fsr-state-dir", "fs-read",
        attack="list the server's state dir (here outside /tmp, so only the cover hides it) "
               "and reach into its work and matplotlib subdirectories (the dir is 0711: "
               "without the cover both could be reached)",
        code=py("""
            import os
            try:
                print(oct(os.stat('$state_dir').st_mode & 0o7777))
            except FileNotFoundError:
                print('absent')
                raise SystemExit
            for p in ('$state_dir', '$state_dir/work', '$state_dir/matplotlib'):
                try:
                    os.listdir(p) if p == '$state_dir' else os.stat(p)
                    print(p[len('$state_dir'):] or '.', 'reached')
                except OSError as e:
                    print(p[len('$state_dir'):] or '.', type(e).__name__)
            """),
        expect=lines_one_of(["0o0", ". PermissionError", "/work PermissionError",
                             "/matplotlib PermissionError"], ["absent"]),
        outside=lambda test, ctx, reply: test.assertLessEqual(
            {"work", "matplotlib"}, set(os.listdir(ctx["state_dir"])),
            "precondition: the state dir holds work/ and matplotlib/")),
    Row("fsr-open-by-handle", "fs-read",
        attack="open_by_handle_at (the 'shocker' escape: open a host inode by handle), "
               "name_to_handle_at, chroot and pivot_root-free escapes",
        code=py("""
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            handle = ctypes.create_string_buffer(8 + 128)
            ctypes.c_uint.from_buffer(handle).value = 128
            mount_id = ctypes.c_int()
            print('name_to_handle_at', libc.syscall(303, -100, b'/etc/passwd', handle,
                                                    ctypes.byref(mount_id), 0), ctypes.get_errno())
            root = ctypes.create_string_buffer(bytes.fromhex('08000000010000000200000000000000'))
            print('open_by_handle_at', libc.syscall(304, -100, root, 0), ctypes.get_errno())
            print('chroot', libc.syscall(161, b'/tmp'), ctypes.get_errno())
            """),
        expect=lines("name_to_handle_at -1 1", "open_by_handle_at -1 1", "chroot -1 1")),
    Row("fsr-proc-listing", "fs-read",
        attack="list /proc to find other processes (server, zygote, other workers)",
        code=py("""
            import os, threading, time
            t = threading.Thread(target=time.sleep, args=(0.5,)); t.start()
            names = os.listdir('/proc')
            print(sorted(n for n in names if n.isdigit()), os.getpid())
            print('self' in names, 'thread-self' in names)
            t.join()
            """),
        expect=lines("['1'] 1", "True True")),
    Row("fsr-cgroup-hidden", "fs-read",
        attack="read the cgroup tree (other workers' memory use), raise its own limit, "
               "escape to the root group, make a new group",
        code=py("""
            import errno, os
            for label, op in (
                    ('list', lambda: os.listdir('/sys/fs/cgroup')),
                    ('read', lambda: open('/sys/fs/cgroup/memory/memory.usage_in_bytes').read()),
                    ('raise', lambda: open('/sys/fs/cgroup/memory/memory.limit_in_bytes', 'w').write('-1')),
                    ('escape', lambda: open('/sys/fs/cgroup/cgroup.procs', 'w').write('1')),
                    ('mkdir', lambda: os.mkdir('/sys/fs/cgroup/evil'))):
                try:
                    op(); print(label, 'done')
                except OSError as e:
                    print(label, errno.errorcode[e.errno])
            """),
        expect=lines("list EACCES", "read EACCES", "raise EACCES", "escape EACCES",
                     "mkdir EACCES")),
    Row("fsr-concurrent-workdir", "fs-read",
        attack="search /root /tmp /var/tmp /dev/shm (contents) and /proc (names) for a "
               "secret file a concurrent request is holding in its private dirs",
        code=py("""
            import os
            found = []
            secret = bytes.fromhex('$victim_secret_hex').decode()
            for top in ('/root', '/tmp', '/var/tmp', '/dev/shm', '/proc'):
                for d, dirs, files in os.walk(top):
                    if top == '/proc' and d.count('/') > 3:
                        dirs[:] = []
                    for f in files + dirs:
                        if '$victim_name' in f:
                            found.append(os.path.join(d, f))
                        if top != '/proc' and f in files:
                            try:
                                if secret in open(os.path.join(d, f)).read():
                                    found.append(os.path.join(d, f))
                            except OSError:
                                pass
            print('found', found)
            """),
        expect=lines("found []"),
        before=_before_victim,
        outside=_outside_victim),
    Row("fsr-host-root-hidden", "fs-read",
        attack="read the host's /root (the real one, hidden under the work dir's tmpfs)",
        code=py("""
            import os
            print(os.listdir('/root'), [n for n in $host_root if os.path.lexists('/root/' + n)])
            try:
                open('/root/.bashrc').read(); print('read')
            except OSError as e:
                print(type(e).__name__)
            """),
        expect=lines("[] []", "FileNotFoundError")),
    Row("fsr-dev-minimal", "fs-read",
        attack="look for disks, memory, kernel log, terminals and other devices in /dev",
        code=py("""
            import os
            print(sorted(os.listdir('/dev')), os.listdir('/dev/shm'))
            print([p for p in ('/dev/vda', '/dev/sda', '/dev/mem', '/dev/kmem', '/dev/port',
                               '/dev/kmsg', '/dev/ptmx', '/dev/tty', '/dev/console',
                               '/dev/kvm', '/dev/fuse', '/dev/net/tun', '/dev/pts/ptmx',
                               '/dev/mqueue', '/dev/hugepages') if os.path.lexists(p)])
            """),
        expect=lines(f"{DEV_ENTRIES} []", "[]")),
    # --- the minimal root (nsjail's and bubblewrap's way): nothing of the host but
    # /usr, the venv and a few files; its own /etc -------------------------------------
    Row("root-own-etc", "fs-read",
        attack="read /etc first, as a peer's sandbox test does: passwd, group, hostname, "
               "hosts, resolv.conf, and what else /etc holds",
        code=py("""
            import os, pwd, socket
            print(sorted(os.listdir('/etc')))
            print([l.split(':')[0] for l in open('/etc/passwd')],
                  [l.split(':')[0] for l in open('/etc/group')])
            print(open('/etc/hostname').read().strip(), socket.gethostname(),
                  repr(open('/etc/resolv.conf').read()))
            print(sorted({l.split()[0] for l in open('/etc/hosts') if l.strip()}))
            print(pwd.getpwuid(0).pw_name, pwd.getpwnam('nobody').pw_uid)
            """),
        expect=lines("['alternatives', 'fonts', 'group', 'hostname', 'hosts', 'ld.so.cache', "
                     "'nsswitch.conf', 'passwd', 'resolv.conf']",
                     "['root', 'nobody'] ['root', 'nogroup']", "sandbox sandbox ''",
                     "['127.0.0.1', '::1']", "root 65534")),
    Row("root-host-paths-absent", "fs-read",
        attack="look for the host's /home, /srv, /opt, /var, /mnt, /boot, its /etc files "
               "(ssh keys, machine-id, shadow, os-release), the server's checkout and "
               "binary directory, and the paths to them through /proc/1/root",
        code=py("""
            import os
            paths = ['/home', '/srv', '/mnt', '/media', '/boot', '/var/lib', '/var/log',
                     '/var/mail', '/var/spool', '/var/backups', '/etc/ssh', '/etc/shadow',
                     '/etc/machine-id', '/etc/os-release', '/etc/apt', '/etc/cron.d',
                     '/opt/pyexecd/wheels', '/snap', '/work', '/root/.ssh',
                     '$checkout/README.md', '$checkout/server', '$bindir/CMakeCache.txt']
            seen = [p for p in paths if os.path.lexists(p)]
            seen += [p for p in paths if os.path.lexists('/proc/1/root' + p)]
            print(seen)
            print(sorted(os.listdir('/opt')), sorted(os.listdir('/var')))
            """),
        expect=lines("[]", "['pyexecd'] ['cache', 'tmp']")),
    Row("root-old-root-detached", "fs-read",
        attack="find the host's old root after pivot_root: the mount table, '..' from /, "
               "/proc/1/root/..",
        code=py("""
            import os
            allowed = ('/usr', '/opt/pyexecd/venv', '/etc/ld.so.cache', '/etc/alternatives',
                       '/etc/fonts', '/var/cache/fontconfig', '/dev', '/sys/fs/cgroup',
                       '/proc', '/tmp', '/root', '/var/tmp', '/run', '$state_dir')
            points = {l.split()[4] for l in open('/proc/self/mountinfo')} - {'/'}
            print(sorted(p for p in points
                         if not any(p == a or p.startswith(a + '/') for a in allowed)))
            print(os.path.realpath('/..'), os.listdir('/..') == os.listdir('/'),
                  os.listdir('/proc/1/root/..') == os.listdir('/'))
            print(sorted(os.listdir('/')))
            """),
        expect=_expect_old_root_gone),
]


class FileReadAttacks(AttackBase):
    """Reads: nothing of the host's secrets, the server's files or other requests."""

    ROWS = FSR_ROWS
    NEEDS = {
        "fsr-shadow": ("uidDrop",),
        "fsr-own-environ": ("uidDrop",),
        "fsr-server-proc": ("pidNamespace",),
        "fsr-server-binary": ("mountNamespace",),
        "fsr-binary-via-proc-exe": ("mountNamespace",),
        "fsr-state-dir": ("mountNamespace",),
        "fsr-open-by-handle": ("seccomp",),
        "fsr-proc-listing": ("pidNamespace", "mountNamespace"),
        "fsr-cgroup-hidden": ("mountNamespace",),
        "fsr-concurrent-workdir": ("mountNamespace", "pidNamespace"),
        "fsr-host-root-hidden": ("mountNamespace",),
        "fsr-dev-minimal": ("mountNamespace",),
        "root-own-etc": ("minimalRoot",),
        "root-host-paths-absent": ("minimalRoot",),
        "root-old-root-detached": ("minimalRoot",),
    }

    @classmethod
    def make_server(cls):
        # A state dir where only the sandbox's cover hides it: beside the binary, not in
        # /tmp (which the worker's private /tmp hides anyway).
        server = super().make_server()
        shutil.rmtree(server.state_dir, ignore_errors=True)
        server.state_dir = tempfile.mkdtemp(prefix="pyexecd-test-state-",
                                            dir=os.path.dirname(os.path.abspath(BINARY)))
        return server

    def ctx(self):
        return dict(super().ctx(), secret_hex=self.secret.encode().hex(),
                    server_pid=self.server.proc.pid, zygote_pid=self.server.zygote_pid(),
                    binary=os.path.realpath(BINARY), state_dir=self.server.state_dir,
                    host_root=repr(_host_root_names()),
                    checkout=os.path.realpath(os.path.join(os.path.dirname(__file__), "..", "..")),
                    bindir=os.path.dirname(os.path.realpath(BINARY)))


# =======================================================================================
# File-system writes
# =======================================================================================

def _outside_no_host_files(test, ctx, reply):
    for d in ("/usr", "/etc", "/opt", "/var", "/", "/bin", "/run"):
        test.assertFalse(os.path.lexists(os.path.join(d, "pyexecd-attack-" + ctx["tag"])), d)


def _outside_hostname(test, ctx, reply):
    test.assertEqual(socket.gethostname(), test.host_name, "the host's name changed")


def _before_clock(test, ctx):
    return {"t0": time.time()}


def _outside_prompt(test, ctx, reply):
    test.assertLess(time.time() - ctx["t0"], 8, "the reply was not prompt")


FSW_ROWS = [
    Row("fsw-system-dirs", "fs-write",
        attack="create files in /usr, /etc, /opt, /var, /, /bin, /run; append to /etc/passwd",
        code=py("""
            import errno
            for d in ('/usr', '/etc', '/opt', '/var', '', '/bin', '/run'):
                try:
                    open(d + '/pyexecd-attack-$tag', 'w').write('x'); print(d or '/', 'written')
                except OSError as e:
                    print(d or '/', type(e).__name__, errno.errorcode[e.errno])
            try:
                open('/etc/passwd', 'a').write('evil::0:0::/:/bin/sh\\n'); print('passwd written')
            except OSError as e:
                print('/etc/passwd', type(e).__name__, errno.errorcode[e.errno])
            """),
        # The minimal root is read-only as a whole; the host's /etc/passwd is also not
        # the worker's to write. /run: the minimal root's is empty and root's (EACCES
        # before EROFS); the host's is covered (it holds host sockets).
        expect=by_root(lines("/usr OSError EROFS", "/etc OSError EROFS", "/opt OSError EROFS",
                             "/var OSError EROFS", "/ OSError EROFS", "/bin OSError EROFS",
                             "/run PermissionError EACCES", "/etc/passwd OSError EROFS"),
                       lines("/usr OSError EROFS", "/etc OSError EROFS", "/opt OSError EROFS",
                             "/var OSError EROFS", "/ OSError EROFS", "/bin OSError EROFS",
                             "/run PermissionError EACCES",
                             "/etc/passwd PermissionError EACCES")),
        outside=_outside_no_host_files),
    Row("fsw-proc-sys", "fs-write",
        attack="write kernel settings: hostname, core_pattern, drop_caches, ASLR off; "
               "lower the worker's OOM score",
        code=py("""
            import errno
            for p, text in (('/proc/sys/kernel/hostname', 'pwned'),
                            ('/proc/sys/kernel/core_pattern', '|/bin/sh'),
                            ('/proc/sys/vm/drop_caches', '3'),
                            ('/proc/sys/kernel/randomize_va_space', '0'),
                            ('/proc/self/oom_score_adj', '-1000')):
                try:
                    with open(p, 'w') as f:
                        f.write(text)
                    print(p, 'written')
                except OSError as e:
                    print(p, type(e).__name__)
            print(open('/proc/sys/kernel/hostname').read().strip())
            """),
        expect=lines("/proc/sys/kernel/hostname PermissionError",
                     "/proc/sys/kernel/core_pattern PermissionError",
                     "/proc/sys/vm/drop_caches PermissionError",
                     "/proc/sys/kernel/randomize_va_space PermissionError",
                     "/proc/self/oom_score_adj PermissionError", "sandbox"),
        outside=_outside_hostname),
    Row("fsw-symlink-escape", "fs-write",
        attack="symlinks in /root to /etc/passwd and to a PNG outside the work dir: write "
               "through one, have the image collector return the other",
        code=py("""
            import os, matplotlib
            png = os.path.join(matplotlib.get_data_path(), 'images', 'matplotlib.png')
            print(open(png, 'rb').read(4) == b'\\x89PNG')
            os.symlink('/etc/passwd', '/root/passwd.png')
            os.symlink(png, '/root/stolen.png')
            try:
                open('/root/passwd.png', 'a').write('evil::0:0::/:/bin/sh\\n'); print('written')
            except OSError as e:
                print(type(e).__name__)
            """),
        expect=all_of(by_root(lines("True", "OSError"), lines("True", "PermissionError")),
                      no_images)),
    Row("fsw-hardlink", "fs-write",
        attack="hard links to /etc/passwd and /proc/self/exe from /root and /tmp",
        code=py("""
            import errno, os
            for src, dst in (('/etc/passwd', '/root/x'), ('/etc/passwd', '/tmp/x'),
                             ('/proc/self/exe', '/root/exe')):
                try:
                    os.link(src, dst, follow_symlinks=True); print(dst, 'linked')
                except OSError as e:
                    print(dst, errno.errorcode[e.errno])
            """),
        expect=lines("/root/x EXDEV", "/tmp/x EXDEV", "/root/exe EXDEV")),
    Row("fsw-fifo-image", "fs-write",
        attack="a FIFO, a listening socket, a directory and an empty file named *.png in "
               "/root, to make the image collector block or misread",
        code=py("""
            import os, socket
            for p in ('/root/img.png', '/tmp/img.png'):
                try:
                    os.mkfifo(p); print(p, 'fifo made')
                except OSError as e:
                    print(p, type(e).__name__)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind('/root/sock.png'); s.listen(1)
            os.mkdir('/root/dir.png')
            open('/root/empty.png', 'wb').close()
            print(sorted(os.listdir('/root')))
            """),
        expect=all_of(lines("/root/img.png PermissionError", "/tmp/img.png PermissionError",
                            "['dir.png', 'empty.png', 'sock.png']"), no_images),
        before=_before_clock,
        outside=_outside_prompt),
    Row("fsw-sparse-10g", "fs-write",
        attack="a 10 GB sparse file: truncate, seek and write, fallocate",
        code=py("""
            import errno, os
            size = 10 << 30
            def truncate():
                open('/root/a', 'wb').close(); os.truncate('/root/a', size)
            def seek_write():
                with open('/root/b', 'wb') as f:
                    f.seek(size); f.write(b'x')
            def fallocate():
                fd = os.open('/root/c', os.O_CREAT | os.O_WRONLY)
                os.posix_fallocate(fd, 0, size)
            for fn in (truncate, seek_write, fallocate):
                try:
                    fn(); print(fn.__name__, 'done')
                except OSError as e:
                    print(fn.__name__, errno.errorcode[e.errno])
            print(sum(os.stat('/root/' + n).st_size for n in 'abc'))
            """),
        # RLIMIT_FSIZE (512 MiB): EFBIG, and SIGXFSZ is ignored so nothing is killed.
        expect=lines("truncate EFBIG", "seek_write EFBIG", "fallocate EFBIG", "0")),
    Row("fsw-nosuid-noexec", "fs-write",
        attack="a set-uid file in /root; the writable mounts must be nosuid/noexec/nodev and "
               "running the file impossible",
        code=py("""
            import os, shutil
            for d in ('/root', '/tmp', '/var/tmp', '/dev/shm'):
                f = os.statvfs(d).f_flag
                print(d, bool(f & os.ST_NOSUID), bool(f & os.ST_NOEXEC), bool(f & os.ST_NODEV))
            f = os.statvfs('/').f_flag
            print('/', bool(f & os.ST_RDONLY), bool(f & os.ST_NOSUID))
            shutil.copy('/bin/sh', '/root/sh')
            os.chmod('/root/sh', 0o4755)
            try:
                os.execv('/root/sh', ['sh', '-c', 'id'])
            except OSError as e:
                print('exec', type(e).__name__)
            """),
        expect=lines("/root True True True", "/tmp True True True", "/var/tmp True True True",
                     "/dev/shm True True True", "/ True True", "exec PermissionError")),
    Row("fsw-mknod", "fs-write",
        attack="device nodes (a /dev/mem-like char device, a disk block device) in the "
               "writable dirs",
        code=py("""
            import os, stat
            for path, kind, dev in (('/root/mem', stat.S_IFCHR, os.makedev(1, 1)),
                                    ('/tmp/vda', stat.S_IFBLK, os.makedev(254, 0)),
                                    ('/dev/shm/kmsg', stat.S_IFCHR, os.makedev(1, 11))):
                try:
                    os.mknod(path, kind | 0o666, dev); print(path, 'made')
                except OSError as e:
                    print(path, type(e).__name__)
            """),
        expect=lines("/root/mem PermissionError", "/tmp/vda PermissionError",
                     "/dev/shm/kmsg PermissionError")),
    Row("fsw-private-dirs-per-request", "fs-write",
        attack="leave files in /root, /tmp, /var/tmp and /dev/shm for the next request",
        code=py("""
            import os
            for d in ('/root', '/tmp', '/var/tmp', '/dev/shm'):
                open(os.path.join(d, 'left-$tag'), 'w').write('x')
            print('left')
            """),
        expect=lines("left"),
        outside=next_requests(
            "import os\nprint([os.listdir(d) for d in ('/root', '/tmp', '/var/tmp', '/dev/shm')])\n",
            "[[], [], [], []]\n")),
    Row("fsw-devshm-fill", "fs-write",
        attack="300 files of 1 MB in /dev/shm (its own size cap)",
        code=py("""
            import errno
            n = 0
            try:
                for i in range(300):
                    with open(f'/dev/shm/f{i}', 'wb') as f:
                        f.write(b'\\0' * (1 << 20))
                    n += 1
                print('wrote all')
            except OSError as e:
                print('OSError', errno.errorcode[e.errno], n < 300)
            """),
        expect=lines("OSError ENOSPC True")),
]


class FileWriteAttacks(AttackBase):
    """Writes: only the private size-capped tmpfs dirs, nothing executable or lasting."""

    ROWS = FSW_ROWS
    NEEDS = {
        "fsw-system-dirs": ("mountNamespace",),
        "fsw-proc-sys": ("userNamespace", "utsNamespace"),
        "fsw-symlink-escape": ("mountNamespace", "landlock"),
        "fsw-hardlink": ("mountNamespace",),
        "fsw-fifo-image": ("mountNamespace", "seccomp"),
        "fsw-sparse-10g": ("rlimits", "mountNamespace"),
        "fsw-nosuid-noexec": ("mountNamespace", "seccomp"),
        "fsw-mknod": ("mountNamespace", "seccomp"),
        "fsw-private-dirs-per-request": ("mountNamespace",),
        "fsw-devshm-fill": ("mountNamespace",),
    }

    @classmethod
    def set_up_fixtures(cls):
        cls.host_name = socket.gethostname()


# =======================================================================================
# Persistence and information leaks
# =======================================================================================

def _outside_env(test, ctx, reply):
    """Nothing of the server's own environment beyond the allowed keys reached the code."""
    r = results(reply)[0]
    keys = set(json.loads(r["output"].splitlines()[0]))
    with open(f"/proc/{test.server.proc.pid}/environ", "rb") as f:
        server_env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
    leaked = {k.decode() for k in server_env} & keys - ENV_ALLOWED
    test.assertEqual(leaked, set(), "server environment variables reached the code")


def _expect_env(test, reply, r):
    test.assertEqual(r["outcome"], "OUTCOME_OK", r)
    keys_line, secret_line = r["output"].splitlines()
    keys = set(json.loads(keys_line))
    test.assertEqual(keys - ENV_ALLOWED, set(), "unexpected environment variables")
    test.assertEqual(ENV_REQUIRED - keys, set(), "expected environment variables missing")
    test.assertEqual(secret_line, "False False")


PERSIST_ROWS = [
    Row("persist-atexit-sitecustomize", "persistence",
        attack="an atexit hook, and sitecustomize/usercustomize/.pth files in every "
               "writable dir, to run code in the next request",
        code=py("""
            import atexit, os
            marker = 'PERSISTED-$tag'
            for d in ('/root', '/tmp', '/var/tmp', '/dev/shm'):
                for name in ('sitecustomize.py', 'usercustomize.py'):
                    with open(os.path.join(d, name), 'w') as f:
                        f.write('print(%r)\\n' % marker)
                with open(os.path.join(d, 'evil.pth'), 'w') as f:
                    f.write('import os; print(%r)\\n' % marker)
            atexit.register(print, marker + '-atexit')
            atexit.register(lambda: open('/root/atexit-ran', 'w').close())
            print('planted')
            """),
        expect=lines("planted"),
        outside=next_requests(
            "import os, sys\nprint(os.listdir('/root'), 'sitecustomize' in sys.modules,"
            " 'usercustomize' in sys.modules)\n", "[] False False\n")),
    Row("persist-monkeypatch", "persistence",
        attack="hijack json in sys.modules, replace builtins.print and open, add to "
               "os.environ and sys.path, for the next request",
        code=py("""
            import builtins, os, sys, types
            fake = types.ModuleType('json')
            fake.dumps = lambda *a, **k: 'HIJACKED-$tag'
            sys.modules['json'] = fake
            os.environ['PYEXECD_INJECTED'] = '$tag'
            sys.path.insert(0, '/root')
            _write = sys.stdout.write
            builtins.print = lambda *a, **k: _write('HIJACKED-$tag\\n')
            builtins.open = None
            print('x')
            """),
        expect=lambda test, reply, r: (
            test.assertEqual(r["outcome"], "OUTCOME_OK", r),
            test.assertTrue(r.get("output", "").startswith("HIJACKED-"), r)),
        outside=next_requests(
            "import builtins, io, json, os, sys\nprint(json.dumps([1]),"
            " os.environ.get('PYEXECD_INJECTED'), '/root' in sys.path, builtins.open is io.open)\n",
            "[1] None False True\n")),
    Row("persist-sysv-ipc-abstract", "persistence",
        attack="a System V shared memory segment and a listening abstract AF_UNIX socket "
               "left for the next request",
        code=py("""
            import ctypes, socket
            libc = ctypes.CDLL(None, use_errno=True)
            print('shmget', libc.shmget(0x5eed, 4096, 0o1666) >= 0)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind('\\0pyexecd-persist'); s.listen(1)
            import builtins; builtins._keep = s
            print('bound')
            """),
        expect=lines("shmget True", "bound"),
        outside=next_requests(py("""
            import ctypes, socket
            libc = ctypes.CDLL(None, use_errno=True)
            print(libc.shmget(0x5eed, 0, 0), ctypes.get_errno())
            try:
                socket.socket(socket.AF_UNIX).connect('\\0pyexecd-persist'); print('connected')
            except OSError as e:
                print(type(e).__name__)
            """), "-1 2\nConnectionRefusedError\n")),
    Row("persist-late-thread", "persistence",
        attack="a non-daemon thread that outlives the block, to keep running and write later",
        code=py("""
            import threading, time
            def late():
                time.sleep(20)
                print('late output')
            threading.Thread(target=late).start()
            print('main done')
            """),
        expect=lines("main done"),
        before=_before_clock,
        outside=_outside_prompt),
    Row("persist-environment", "info-leak",
        attack="os.environ: the server's environment (a secret set on it) and anything but "
               "the expected keys",
        code=py("""
            import json, os
            print(json.dumps(sorted(os.environ)))
            secret = bytes.fromhex('$secret_hex').decode()
            print('$secret_name' in os.environ, any(secret in v for v in os.environ.values()))
            """),
        expect=_expect_env,
        outside=_outside_env),
    Row("persist-other-process-memory", "info-leak",
        attack="another process's memory: /proc/<pid>/mem of the zygote and server, "
               "process_vm_readv/writev on the zygote",
        code=py("""
            import ctypes, os
            print(sorted(p for p in os.listdir('/proc') if p.isdigit()))
            for pid in (2, $zygote_pid, $server_pid):
                try:
                    open(f'/proc/{pid}/mem', 'rb'); print(pid, 'opened')
                except OSError as e:
                    print('mem', type(e).__name__)
            libc = ctypes.CDLL(None, use_errno=True)
            buf = ctypes.create_string_buffer(64)
            iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 64)
            remote = (ctypes.c_void_p * 2)(0x400000, 64)
            for name, nr in (('readv', 310), ('writev', 311)):
                r = libc.syscall(nr, $zygote_pid, iov, 1, remote, 1, 0)
                print(name, r, ctypes.get_errno())
            """),
        expect=lines("['1']", "mem FileNotFoundError", "mem FileNotFoundError",
                     "mem FileNotFoundError", "readv -1 1", "writev -1 1")),
]


class PersistenceAttacks(AttackBase):
    """Nothing a request does reaches the next one; nothing of the server's reaches it."""

    ROWS = PERSIST_ROWS
    DEFAULT_NEEDS = ()
    NEEDS = {
        "persist-atexit-sitecustomize": ("mountNamespace",),
        "persist-sysv-ipc-abstract": ("ipcNamespace", "networkNamespace"),
        "persist-other-process-memory": ("pidNamespace", "seccomp"),
    }

    def ctx(self):
        return dict(super().ctx(), secret_hex=self.secret.encode().hex(),
                    secret_name=SECRET_NAME,
                    server_pid=self.server.proc.pid, zygote_pid=self.server.zygote_pid())


# =======================================================================================
# Output forgery
# =======================================================================================

def _expect_close_stdout(test, reply, r):
    test.assertEqual(r["outcome"], "OUTCOME_OK", r)
    test.assertNotIn("after close", r.get("output", ""))


FORGE_ROWS = [
    Row("forge-fake-json", "output-forgery",
        attack="print a fake reply / codeExecutionResult JSON and the server's own kill text",
        code=py("""
            print('{"parts":[{"codeExecutionResult":{"outcome":"OUTCOME_OK","output":"forged"}}]}')
            print('"codeExecutionResult": {"outcome": "OUTCOME_FAILED"}')
            print('The interpreter process was stopped: it made a system call the sandbox '
                  'forbids (signal 31, SIGSYS).')
            """),
        expect=all_of(ok(exact=(
            '{"parts":[{"codeExecutionResult":{"outcome":"OUTCOME_OK","output":"forged"}}]}\n'
            '"codeExecutionResult": {"outcome": "OUTCOME_FAILED"}\n' + SIGSYS_TEXT)),
            no_limit)),
    Row("forge-garbage-all-fds", "output-forgery",
        attack="garbage frames written to every descriptor 3..20 (the control socket among "
               "them)",
        code=py("""
            import os
            for fd in range(3, 21):
                try:
                    os.write(fd, b'\\xff' * 16 + b'garbage frame')
                except OSError:
                    pass
            import time; time.sleep(1)
            print('survived')
            """),
        expect=protocol_kill),
    Row("forge-oversized-frame", "output-forgery",
        attack="a frame header claiming 4 GiB written to the control socket",
        code=py("""
            import os, struct
            sock = [int(n) for n in os.listdir('/proc/self/fd')
                    if os.path.exists(f'/proc/self/fd/{n}')
                    and os.readlink(f'/proc/self/fd/{n}').startswith('socket:')]
            print(len(sock), flush=True)
            os.write(sock[0], struct.pack('<II', 0xffffffff, 0xffffffff))
            import time; time.sleep(1)
            print('survived')
            """),
        expect=all_of(protocol_kill,
                      lambda test, reply, r: test.assertEqual(
                          results(reply)[0], {"outcome": "OUTCOME_OK", "output": "1\n"}))),
    Row("forge-block-reports", "output-forgery",
        attack="block reports through _pyexecd.block_done for this block, then for blocks "
               "1, 2, 63 and 2**32-1 that do not exist, with a forged non-image part",
        code=py("""
            import _pyexecd
            imgs = [('text/html', b'<script>alert(1)</script>')]
            for i in (0, 1, 2, 63, 2**32 - 1):
                try:
                    _pyexecd.block_done(i, 0, '', False, False, False, imgs, 0)
                except Exception as e:
                    print(type(e).__name__)
            print('after forging')
            """),
        # The first report (block 0, OK, a text/html "image") stands, the image dropped
        # (IMAGES); the one for block 1 ends the worker; no other result appears.
        expect=all_of(no_images, lambda test, reply, r: (
            test.assertEqual(results(reply), [{"outcome": "OUTCOME_OK"}], reply),
            test.assertEqual(reply.get("executionMetadata", {}).get("limitReached"),
                             "IMAGES", reply)))),
    Row("forge-close-control-socket", "output-forgery",
        attack="replace the control socket by one end of a socket pair of the code's own, "
               "so the block's report (and the job's end) go to the code, not the server",
        code=py("""
            import os, socket
            sock = [int(n) for n in os.listdir('/proc/self/fd')
                    if os.path.exists(f'/proc/self/fd/{n}')
                    and os.readlink(f'/proc/self/fd/{n}').startswith('socket:')]
            a, b = socket.socketpair()
            os.dup2(a.fileno(), sock[0])
            import builtins; builtins._keep = (a, b)
            print('replaced', len(sock))
            """),
        # The server sees its socket close: it waits (at most 2 s) for the worker's exit
        # status, which does not come (the worker waits on its fake socket for a next
        # job), then kills the worker and fails the block.
        expect=all_of(protocol_kill, lambda test, reply, r: test.assertEqual(
            results(reply)[0], {"outcome": "OUTCOME_OK", "output": "replaced 1\n"}, reply)),
        before=_before_clock,
        outside=_outside_prompt),
    Row("forge-close-stdout", "output-forgery",
        attack="os.close(1), then print",
        code="import os\nos.close(1)\nprint('after close')\n",
        expect=_expect_close_stdout),
    Row("forge-invalid-utf8", "output-forgery",
        attack="invalid UTF-8 written straight to fd 1",
        code="import os\nos.write(1, b'abc\\xff\\xfedef\\xc3\\n')\n",
        expect=ok(exact="abc\ufffd\ufffddef\ufffd\n")),
]


class OutputForgeryAttacks(AttackBase):
    """Output is data, never structure; a broken control channel ends one block only."""

    ROWS = FORGE_ROWS
    DEFAULT_NEEDS = ()


ATTACK_CLASSES = (NetworkAttacks, ExecAttacks, FileReadAttacks, FileWriteAttacks,
                  PersistenceAttacks, OutputForgeryAttacks)


def load_tests(loader, standard_tests, pattern):
    """Only the concrete classes: the imported AttackTestCase and the AttackBase here
    have no rows and would each start a server for nothing."""
    suite = unittest.TestSuite()
    for cls in ATTACK_CLASSES:
        suite.addTests(loader.loadTestsFromTestCase(cls))
    return suite


if __name__ == "__main__":
    unittest.main()
