"""Starts the real pyexecd binary on loopback and talks HTTP to it.

Every integration test uses this: no mocks, the real server, zygote, kernel sandbox and
interpreter. Each Server gets its own port (chosen by the kernel), state dir and worker uid
range, so servers of different test files never see each other's workers.

    with Server() as s:
        status, body = s.execute(code_part("print(1)"))

stop() (or leaving the with block) sends SIGTERM, waits for the server, and fails the test
if any process of this server (the zygote or a worker, found by its uid range) is left.
"""

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
import threading
import time
import unittest

BINARY = os.environ.get("PYEXECD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "pyexecd")

# Workers run as uid_base + slot, with 2 * (pool + workers + sessions) + 8 slots and one
# more for the zygote's probe; each server gets a range of UID_RANGE uids of its own
# (Server(uid_range=...) a wider one, for thousands of sessions).
UID_RANGE = 1000
# The uids the random bases are drawn from: [UID_SPAN_BASE, UID_SPAN_BASE + UID_SPAN).
UID_SPAN_BASE = 2100000000
UID_SPAN = 100000 * UID_RANGE


def code_part(code, **extra):
    """An executableCode part."""
    return {"executableCode": {"language": "PYTHON", "code": code, **extra}}


def results(body):
    """The codeExecutionResult objects of a reply, in order."""
    return [p["codeExecutionResult"] for p in body.get("parts", []) if "codeExecutionResult" in p]


def images(body):
    return [p["inlineData"] for p in body.get("parts", []) if "inlineData" in p]


def proc_statuses():
    """(pid, /proc/pid/status text) of every process still there when read."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                yield int(pid), f.read()
        except OSError:
            continue


def status_field(text, field):
    """A field of a /proc/pid/status text ("Uid" gives its first number), or None."""
    m = re.search(rf"^{field}:\s+(\S.*?)\s*$", text, re.M)
    return m.group(1) if m else None


def processes_with_uid_in(lo, hi):
    """[(pid, uid, name)] of processes whose real uid is in [lo, hi)."""
    found = []
    for pid, text in proc_statuses():
        uid = status_field(text, "Uid")
        uid = int(uid.split()[0]) if uid else None
        if uid is not None and lo <= uid < hi:
            found.append((pid, uid, status_field(text, "Name") or "?"))
    return found


def read_until_closed(sock, timeout=10):
    """Everything the server sends on sock until it closes it (a reset counts as closed);
    None when it is still open after timeout seconds."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionError:
        return data
    except socket.timeout:
        return None


def fd_count(pid):
    """Open descriptors of pid, or None when it cannot be read (gone, or not ours)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except OSError:
        return False


# The line the server prints once it listens (server/server_main.c).
LISTENING = re.compile(r"listening on http://127\.\d+\.\d+\.\d+:(\d+)")


def follow_stderr(proc, on_line, timeout):
    """Reads proc's stderr on a daemon thread until it closes, handing each line (without
    its newline) to on_line. Returns (the thread, the port the server printed it listens
    on), the port None when none came within timeout seconds or the process ended first."""
    port = []
    seen = threading.Event()

    def drain():
        for line in proc.stderr:
            on_line(line.rstrip("\n"))
            m = not port and LISTENING.search(line)
            if m:
                port.append(int(m.group(1)))
                seen.set()
        seen.set()

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    seen.wait(timeout)
    return thread, (port[0] if port else None)


# Set by ctest in a PYEXECD_BUILD=asan build (tests/CMakeLists.txt): the few checks that
# measure what the sanitizer runtime itself changes (memory held, fork cost, the address
# space a worker maps) are skipped there, saying why.
SANITIZED = os.environ.get("PYEXECD_SANITIZED") == "1"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def server_environment():
    """The environment a test server starts with: ours without the PYEXECD_ variables a
    shell may hold (PYEXECD_CONFIG=/etc/pyexecd/pyexecd.conf, PYEXECD_WORKERS=...: the
    server reads them as settings, README "Configuration"), but for the two ctest sets,
    which name no setting and so show that such variables are ignored."""
    keep = ("PYEXECD_BIN", "PYEXECD_SANITIZED")
    return {k: v for k, v in os.environ.items() if not k.startswith("PYEXECD_") or k in keep}


class Server:
    def __init__(self, *flags, workers=2, pool=2, ready_timeout=180, env=None, wrapper=(),
                 host="127.0.0.1", port=0, uid_range=UID_RANGE):
        """flags: extra command-line flags. env: variables added to the server's
        environment (a secret the sandbox must not see, say). wrapper: a command the
        server runs under (unshare ..., say). host, port: the loopback address it listens
        on (port 0: one the kernel picks). uid_range: how many uids the server's workers
        may use, a multiple of UID_RANGE (a --max-sessions in the hundreds needs more than
        the default, zygote_slots in sandbox/zygote.h): the random base is aligned to it,
        and stray_processes looks at the whole range."""
        self.flags = list(flags)
        self.host = host
        self.listen_port = port
        self.extra_env = dict(env or {})
        self.wrapper = list(wrapper)
        self.workers = workers
        self.pool = pool
        self.ready_timeout = ready_timeout
        if uid_range % UID_RANGE or not 0 < uid_range <= UID_SPAN:
            raise ValueError(f"uid_range must be a multiple of {UID_RANGE} up to {UID_SPAN}")
        self.uid_range = uid_range
        self.uid_base = UID_SPAN_BASE + random.randrange(0, UID_SPAN // uid_range) * uid_range
        self.state_dir = tempfile.mkdtemp(prefix="pyexecd-test-")
        self.proc = None
        self.port = None
        self.log = []
        self._log_lock = threading.Lock()

    # --- life cycle ------------------------------------------------------------------

    def command(self):
        """The server's command line."""
        return self.wrapper + [
            BINARY, "--listen", f"{self.host}:{self.listen_port}", "--state-dir", self.state_dir,
            "--worker-uid-base", str(self.uid_base), "--workers", str(self.workers),
            "--pool", str(self.pool)] + self.flags

    def start(self):
        args = self.command()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, errors="replace",
                                     env=dict(server_environment(), **self.extra_env))

        def keep(line):
            with self._log_lock:
                self.log.append(line)

        self.drainer, self.port = follow_stderr(self.proc, keep, 30)
        if self.port is None:
            self.kill()
            raise RuntimeError("pyexecd did not start:\n" + self.log_text())
        self.wait_ready()
        return self

    def wait_ready(self, timeout=None):
        """Waits until /readyz says ready (the zygote is up) and /healthz shows a pool
        worker ready (when there is a pool); returns the /healthz body."""
        deadline = time.time() + (timeout or self.ready_timeout)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pyexecd exited:\n" + self.log_text())
            try:
                if self.get("/readyz", timeout=5)[0] == 200:
                    status, body = self.get("/healthz", timeout=5)
                    if status == 200 and body.get("pool", {}).get("ready", 0) >= min(self.pool, 1):
                        return body
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise RuntimeError("pyexecd not ready in time:\n" + self.log_text())

    def zygote_pid(self):
        return self.health()[1]["zygote"]["pid"]

    def stray_processes(self):
        """Workers of this server still alive (by uid)."""
        return processes_with_uid_in(self.uid_base, self.uid_base + self.uid_range)

    def stop(self, check_leaks=True):
        """SIGTERM, wait, and (unless told otherwise) assert nothing of ours survives."""
        if not self.proc:
            return
        zygote = None
        try:
            zygote = self.zygote_pid()
        except Exception:
            pass
        self.proc.send_signal(signal.SIGTERM)
        try:
            # SIGTERM drains: a request still running may take its deadline (--drain-ms).
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("pyexecd did not stop on SIGTERM:\n" + self.log_text())
        # A sanitized build (PYEXECD_BUILD=asan) reports memory errors, leaks (the
        # server's, at its exit) and undefined behaviour on stderr: any is a failure.
        with self._log_lock:
            first = next((i for i, line in enumerate(self.log)
                          if any(mark in line for mark in SANITIZER_MARKS)), None)
            report = self.log[first:first + 400] if first is not None else []
        if report:
            raise AssertionError("sanitizer reports in the server's log:\n" +
                                 "\n".join(report))
        if check_leaks:
            deadline = time.time() + 5
            while time.time() < deadline:
                left = self.stray_processes()
                zygote_left = zygote and pid_alive(zygote)
                if not left and not zygote_left:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"processes left after stop: workers={left} "
                                     f"zygote={zygote if zygote_left else None}")
        self._release()

    def _release(self):
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._release()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is None:
            self.stop()
        else:
            self.kill()

    def log_text(self):
        with self._log_lock:
            return "\n".join(self.log[-60:])

    # --- HTTP --------------------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=120):
        """Returns (status, parsed JSON or raw text, response headers)."""
        return http_request(self.host, self.port, method, path, body, headers, timeout)

    def get(self, path, timeout=120):
        status, data, _ = self.request("GET", path, timeout=timeout)
        return status, data

    def health(self):
        return self.get("/healthz", timeout=10)

    def execute(self, body, timeout=120, headers=None, path="/v1/execute"):
        """POST /v1/execute (or another path: a session's :execute). body: dict (sent as
        JSON), str or bytes (sent as is). headers: extra request headers (an API key)."""
        status, data, _ = self.request("POST", path, body, headers=headers, timeout=timeout)
        return status, data

    def run(self, *codes, timeout=120):
        """Runs code blocks as one request; returns the reply, asserting HTTP 200."""
        body = {"parts": [code_part(c) for c in codes]}
        status, data = self.execute(body, timeout=timeout)
        if status != 200:
            raise AssertionError(f"HTTP {status}: {data}")
        return data


class BareServer(Server):
    """A server run with exactly `args` on its command line: the flags Server adds
    (--listen, --state-dir, --worker-uid-base, --workers, --pool) would win over the
    environment and a config file. The test gives it its state dir and uid base through
    whichever source it tests (self.state_dir and self.uid_base, for the leak check and the
    clean-up), and a loopback --listen with port 0 somewhere; pool: the pool it will have,
    for wait_ready."""

    def __init__(self, *args, env=None, pool=2, ready_timeout=180):
        super().__init__(env=env, pool=pool, ready_timeout=ready_timeout)
        self.args = list(args)

    def command(self):
        return [BINARY] + self.args


class ServerTestCase(unittest.TestCase):
    """A test class whose tests share one server, started before the first and stopped
    (with the leak check) after the last. Subclasses set SERVER_FLAGS, WORKERS, POOL."""

    SERVER_FLAGS = ()
    WORKERS = 2
    POOL = 2

    @classmethod
    def setUpClass(cls):
        cls.server = Server(*cls.SERVER_FLAGS, workers=cls.WORKERS, pool=cls.POOL).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()


def http_request(host, port, method, path, body=None, headers=None, timeout=120):
    """One HTTP/1.1 request on a connection of its own. body: dict or list (sent as
    JSON), str or bytes. Returns (status, parsed JSON or raw text, response headers)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            data = json.loads(raw)
        except ValueError:
            data = raw.decode("utf-8", "replace")
        return resp.status, data, dict(resp.getheaders())
    finally:
        conn.close()


def free_port(ip="127.0.0.1"):
    """A TCP port free on ip now (for a program that cannot be told port 0)."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Asks a helper process (a balancer, a router) to stop with sig, and kills it when it
    has not exited within timeout seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def key_file(prefix, text):
    """A temp dir named after prefix holding a --api-key-file with text; returns (dir,
    path). The caller removes the dir."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    path = os.path.join(tmp, "keys")
    with open(path, "w") as f:
        f.write(text)
    return tmp, path


def wait_for(predicate, timeout, what, interval=0.02):
    """Polls predicate() until truthy (an exception counts as not yet); returns its value
    or fails with `what`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = predicate()
        except Exception:
            v = None
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class ExecuteCall(threading.Thread):
    """One POST /v1/execute of `code` on a thread; keeps status, body, the exception if it
    raised (error), and when the reply came (replied_at, monotonic). headers: extra
    request headers (an API key); path: another execute path (a session's)."""

    def __init__(self, server, code, timeout=60, headers=None, path="/v1/execute"):
        super().__init__(daemon=True)
        self.server, self.code, self.timeout = server, code, timeout
        self.headers, self.path = headers, path
        self.status = self.body = self.error = self.replied_at = None

    def run(self):
        try:
            self.status, self.body = self.server.execute(
                {"parts": [code_part(self.code)]}, timeout=self.timeout,
                headers=self.headers, path=self.path)
        except Exception as e:  # reported by the test through .error
            self.error = e
        self.replied_at = time.monotonic()


# Code printing the worker's uid as the host sees it (root inside a user namespace maps
# to the worker's own uid outside; /proc/self/uid_map says which).
OUTSIDE_UID_CODE = (
    "import os\n"
    "_m = open('/proc/self/uid_map').read().split()\n"
    "print(int(_m[1]) if _m[2] == '1' else os.getuid())\n")


def wait_uid_gone(uid, timeout=5.0):
    """Waits until no process (zombies included) runs as uid; returns what is left."""
    end = time.time() + timeout
    while True:
        left = processes_with_uid_in(uid, uid + 1)
        if not left or time.time() >= end:
            return left
        time.sleep(0.05)
