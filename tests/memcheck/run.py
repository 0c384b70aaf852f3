#!/usr/bin/env python3
"""valgrind memcheck on the pyexecd server under a short mixed load.

    make memcheck                                  # builds build-memcheck/ (dev), runs this
    python3 tests/memcheck/run.py --bin /tmp/build-memcheck/pyexecd [--requests 200]

The server (only the server: --trace-children=no, so the zygote and the workers it forks
run natively) runs under memcheck with full leak checking. The load, from a few client
threads over loopback (stdlib http.client and raw sockets): executions of every kind
(prints, globals across blocks, exceptions, print-then-raise, SyntaxError, deadline hits,
output past --output-bytes, stderr floods, invalid UTF-8, matplotlib plots, input files,
a 2 MB body, MemoryError, a fork attempt, an interpreter that kills itself), sessions
(create, executes with state kept, GET, DELETE; one abandoned until its idle timeout;
one ended by a deadline; the --max-sessions limit), generateContent with the echo model
(unary, streamGenerateContent?alt=sse, countTokens), bad requests (malformed JSON, wrong
types, unknown fields, bad base64, unknown paths, methods, sessions and models, a 40 MB
Content-Length), clients that go away mid-body, mid-execution and mid-stream, and a
zygote restart (SIGKILL, one request in flight, then /healthz ok and executions again).
Then SIGTERM.

Pass: every reply as expected; the server exits 0 (valgrind's --error-exitcode is 99);
ERROR SUMMARY 0 errors; definitely, indirectly and possibly lost all 0; no valgrind
"unhandled syscall" warning; nothing left in the worker uid range; no descriptor open at
exit beyond stdin, stdout and stderr.

Two things valgrind 3.19 (Debian 12's) cannot do that the server needs, and how this
driver works around them without touching the server (tests/memcheck/README.md):
  - it has no seccomp(2): libseccomp then believes the kernel has no
    SCMP_ACT_KILL_PROCESS, and the server's policy check refuses to start. A preloaded
    shim calls seccomp_api_set(3) (the server only compiles the filter; the zygote,
    which loads it, runs natively);
  - it has no pidfd_open(2) nor pidfd_send_signal(2): the shim's syscall() takes both.
    pidfd_open asks this driver over a unix socket (it opens the pidfd natively and
    sends it back with SCM_RIGHTS: a real pidfd, readable when the zygote exits);
    pidfd_send_signal reads the pid from /proc/self/fdinfo and calls kill(2).
The shim is compiled into the output dir at each run (cc, -lseccomp).

Logs (valgrind's, the server's stderr, a summary) stay in --out (default a new
/tmp/pyexecd-memcheck-* dir). Exit status 0 on pass, 1 on failure, 2 on a setup error.
"""

import argparse
import base64
import collections
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SUPPRESSIONS = os.path.join(HERE, "pyexecd.supp")
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from harness import UID_RANGE, follow_stderr  # noqa: E402

# Short limits, so that the hostile cases cost little.
DEADLINE_MS = 1500
OUTPUT_BYTES = 65536
SESSION_IDLE_MS = 1500
MAX_SESSIONS = 4
WORKERS = 2
POOL = 2

SHIM_C = r"""
/* Preloaded into the server under valgrind by tests/memcheck/run.py: see its docstring. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

__attribute__((constructor)) static void memcheck_shim_init(void)
{
    seccomp_api_set(3);
}

static long pidfd_open_by_driver(long pid)
{
    const char *path = getenv("PYEXECD_MEMCHECK_PIDFD_SOCK");
    if (!path) {
        errno = ENOSYS;
        return -1;
    }
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    char req[32];
    int n = snprintf(req, sizeof(req), "%ld\n", pid);
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 || write(s, req, (size_t)n) != n) {
        int e = errno;
        close(s);
        errno = e;
        return -1;
    }
    char buf[16];
    memset(buf, 0, sizeof(buf));
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
    struct msghdr m;
    memset(&m, 0, sizeof(m));
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.b;
    m.msg_controllen = sizeof(ctl.b);
    ssize_t r = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
    close(s);
    struct cmsghdr *h = r > 0 ? CMSG_FIRSTHDR(&m) : NULL;
    if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
        int fd;
        memcpy(&fd, CMSG_DATA(h), sizeof(fd));
        return fd;
    }
    errno = r > 0 && atoi(buf) > 0 ? atoi(buf) : EIO;
    return -1;
}

static long pidfd_kill(int pidfd, int sig)
{
    char p[64], line[128];
    long pid = 0;
    snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", pidfd);
    FILE *f = fopen(p, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "Pid:", 4) == 0)
            pid = strtol(line + 4, NULL, 10);
    fclose(f);
    if (pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    return kill((pid_t)pid, sig);
}

long syscall(long nr, ...)
{
    static long (*real)(long, ...);
    va_list ap;
    long a[6];
    va_start(ap, nr);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (nr == SYS_pidfd_open)
        return pidfd_open_by_driver(a[0]);
    if (nr == SYS_pidfd_send_signal && a[2] == 0 && a[3] == 0)
        return pidfd_kill((int)a[0], (int)a[1]);
    if (!real)
        real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
"""

TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAA"
    "AABJRU5ErkJggg==")


def log(msg):
    print(f"[memcheck {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- the pidfd service the shim asks ------------------------------------------------------

class PidfdService:
    """Answers "PID\\n" with a pidfd for PID (SCM_RIGHTS), or with an errno as text."""

    def __init__(self, path):
        self.path = path
        self.served = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    data = b""
                    while not data.endswith(b"\n") and len(data) < 32:
                        chunk = conn.recv(32)
                        if not chunk:
                            break
                        data += chunk
                    try:
                        fd = os.pidfd_open(int(data))
                    except OSError as e:
                        conn.sendall(str(e.errno or 5).encode())
                        continue
                    except ValueError:
                        conn.sendall(b"22")
                        continue
                    try:
                        socket.send_fds(conn, [b"ok"], [fd])
                        self.served += 1
                    finally:
                        os.close(fd)
                except OSError:
                    pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --- HTTP -----------------------------------------------------------------------------------

class Reply:
    def __init__(self, status, body, raw, headers):
        self.status, self.body, self.raw, self.headers = status, body, raw, headers


def http_request(port, method, path, body=None, headers=None, timeout=300):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        hdrs = dict(headers or {})
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            data = json.loads(raw)
        except ValueError:
            data = raw.decode("utf-8", "replace")
        return Reply(resp.status, data, raw, {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


def raw_exchange(port, data, timeout=60):
    """Sends bytes, then reads until the server closes; returns the status (0: none)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                if b"\r\n\r\n" in got and (b"Connection: close" in got or len(got) > 1 << 20):
                    break
        except (ConnectionError, socket.timeout):
            pass
        m = re.match(rb"HTTP/1\.[01] (\d{3})", got)
        return int(m.group(1)) if m else 0
    finally:
        s.close()


def code_part(code, **extra):
    return {"executableCode": {"language": "PYTHON", "code": code, **extra}}


def inline(mime, data):
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


def results(body):
    if not isinstance(body, dict):
        return []
    return [p["codeExecutionResult"] for p in body.get("parts", []) if "codeExecutionResult" in p]


def images(body):
    if not isinstance(body, dict):
        return []
    return [p["inlineData"] for p in body.get("parts", [])
            if "inlineData" in p and p["inlineData"].get("mimeType") == "image/png"]


def is_error(body, code):
    return isinstance(body, dict) and body.get("error", {}).get("code") == code


# --- the load -------------------------------------------------------------------------------

class Load:
    def __init__(self, port, seed):
        self.port = port
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = collections.Counter()     # op -> requests
        self.disconnects = 0
        self.anomalies = []

    def note(self, op, n=1):
        with self.lock:
            self.counts[op] += n

    def bad(self, op, why, reply=None):
        detail = ""
        if reply is not None:
            detail = f" (HTTP {reply.status}: {str(reply.body)[:300]})"
        with self.lock:
            self.anomalies.append(f"{op}: {why}{detail}")

    def req(self, op, method, path, body=None, expect=(200,), headers=None, timeout=300):
        self.note(op)
        try:
            r = http_request(self.port, method, path, body, headers, timeout)
        except (OSError, http.client.HTTPException) as e:
            self.bad(op, f"{type(e).__name__}: {e}")
            return None
        if r.status not in expect:
            self.bad(op, f"status {r.status}, expected {expect}", r)
            return None
        if r.status >= 400 and not is_error(r.body, r.status):
            self.bad(op, "error body not {error: {code, ...}}", r)
        return r

    def execute(self, op, parts, check, path="/v1/execute"):
        r = self.req(op, "POST", path, {"parts": parts})
        if r is None:
            return None
        try:
            why = check(r.body)
        except Exception as e:  # noqa: BLE001 - a malformed reply is an anomaly
            why = f"check raised {type(e).__name__}: {e}"
        if why:
            self.bad(op, why, r)
        return r

    # --- executions ---

    def ok_output(self, expect):
        def check(body):
            res = results(body)
            if [x.get("outcome") for x in res] != ["OUTCOME_OK"]:
                return f"outcomes {[x.get('outcome') for x in res]}"
            if expect is not None and res[0].get("output") != expect:
                return f"output {res[0].get('output')!r} != {expect!r}"
            return None
        return check

    def op_print(self):
        nonce = f"n{self.rng.randrange(10**9)}"
        self.execute("exec.print", [code_part(f"print({nonce!r})")], self.ok_output(nonce + "\n"))

    def op_globals(self):
        def check(body):
            res = results(body)
            if len(res) != 3 or res[2].get("output") != "42\n":
                return f"results {res}"
        self.execute("exec.globals", [code_part("x = 40"), code_part("x += 2"),
                                      code_part("print(x)")], check)

    def op_silent(self):
        def check(body):
            res = results(body)
            if len(res) != 1 or res[0].get("outcome") != "OUTCOME_OK" or "output" in res[0]:
                return f"results {res}"
        self.execute("exec.silent", [code_part("y = [i * i for i in range(1000)]")], check)

    def op_exception(self):
        def check(body):
            res = results(body)
            if len(res) != 1 or res[0].get("outcome") != "OUTCOME_FAILED" or \
                    "ZeroDivisionError" not in res[0].get("output", ""):
                return f"results {res}"
        self.execute("exec.exception", [code_part("1 / 0")], check)

    def op_print_raise(self):
        def check(body):
            res = results(body)
            if [x.get("outcome") for x in res] != ["OUTCOME_OK", "OUTCOME_FAILED"] or \
                    res[0].get("output") != "before\n":
                return f"results {res}"
        self.execute("exec.print_raise",
                     [code_part("print('before')\nraise ValueError('boom')")], check)

    def op_syntax(self):
        def check(body):
            res = results(body)
            if len(res) != 2 or res[0].get("outcome") != "OUTCOME_FAILED" or \
                    "SyntaxError" not in res[0].get("output", "") or \
                    res[1].get("outcome") != "OUTCOME_OK":
                return f"results {res}"
        self.execute("exec.syntax", [code_part("def (:\n  pass"), code_part("print(1)")], check)

    def op_deadline(self):
        def check(body):
            res = results(body)
            if len(res) != 2 or res[0].get("outcome") != "OUTCOME_DEADLINE_EXCEEDED" or \
                    res[0].get("output") != "started\n" or \
                    res[1].get("outcome") != "OUTCOME_FAILED":
                return f"results {res}"
            if body.get("executionMetadata", {}).get("limitReached") != "DEADLINE":
                return f"executionMetadata {body.get('executionMetadata')}"
        self.execute("exec.deadline", [
            code_part("import time\nprint('started', flush=True)\ntime.sleep(60)"),
            code_part("print('never')")], check)

    def op_busy_deadline(self):
        def check(body):
            res = results(body)
            if [x.get("outcome") for x in res] != ["OUTCOME_DEADLINE_EXCEEDED"]:
                return f"results {res}"
        self.execute("exec.busy_deadline", [code_part("while True:\n    pass")], check)

    def op_big_output(self):
        def check(body):
            res = results(body)
            if len(res) != 1 or "[output truncated" not in res[0].get("output", "") or \
                    body.get("executionMetadata", {}).get("limitReached") != "OUTPUT_BYTES":
                return f"no truncation note / metadata: {str(res)[:200]} " \
                       f"{body.get('executionMetadata')}"
        self.execute("exec.big_output", [code_part("print('x' * 300000)")], check)

    def op_stderr_flood(self):
        def check(body):
            res = results(body)
            if not res or res[-1].get("outcome") != "OUTCOME_FAILED":
                return f"results {str(res)[:300]}"
        self.execute("exec.stderr_flood", [code_part(
            "import sys\nfor _ in range(2000):\n    sys.stderr.write('e' * 100 + '\\n')\n"
            "raise RuntimeError('after the flood')")], check)

    def op_bad_utf8(self):
        def check(body):
            res = results(body)
            if len(res) != 1 or "\ufffd" not in res[0].get("output", ""):
                return f"results {res}"
        self.execute("exec.bad_utf8", [code_part(
            "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok\\n')")], check)

    def op_plot(self):
        def check(body):
            res, imgs = results(body), images(body)
            if [x.get("outcome") for x in res] != ["OUTCOME_OK"] or len(imgs) != 1 or \
                    not base64.b64decode(imgs[0]["data"]).startswith(b"\x89PNG"):
                return f"results {res}, {len(imgs)} images"
        self.execute("exec.plot", [code_part(
            "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('m')\nplt.show()")],
            check)

    def op_two_figures_and_file(self):
        def check(body):
            if len(images(body)) != 3:
                return f"{len(images(body))} images, expected 3"
        self.execute("exec.figures", [code_part(
            "import matplotlib.pyplot as plt\n"
            "plt.figure(); plt.plot([1, 2]); plt.show()\n"
            "plt.figure(); plt.bar([1, 2], [3, 4]); plt.show()\n"
            "plt.figure(); plt.plot([2, 1]); plt.savefig('saved.png')")], check)

    def op_input_csv(self):
        rows = self.rng.randrange(2, 50)
        csv = "x,y\n" + "".join(f"{i},{i * 2}\n" for i in range(rows))
        total = sum(range(rows))
        self.execute("exec.input_csv", [
            inline("text/csv", csv.encode()),
            code_part("import pandas as pd\ndf = pd.read_csv('input_file_0.csv')\n"
                      "print(int(df.x.sum()))")], self.ok_output(f"{total}\n"))

    def op_input_files(self):
        self.execute("exec.input_files", [
            inline("text/plain", b"hello file\n"), inline("image/png", TINY_PNG),
            code_part("import os\nprint(sorted(os.listdir('.')), open('input_file_0.txt').read(),"
                      " end='')")],
            self.ok_output("['input_file_0.txt', 'input_file_1.png'] hello file\n"))

    def op_big_input(self):
        data = ("a,b\n" + "1,2\n" * (2 * 1024 * 1024 // 4)).encode()
        self.execute("exec.big_input", [
            inline("text/csv", data),
            code_part("import os\nprint(os.path.getsize('input_file_0.csv'))")],
            self.ok_output(f"{len(data)}\n"))

    def op_snake_case(self):
        self.execute("exec.snake_case", [{"executable_code": {
            "language": "PYTHON", "code": "print('snake')", "id": "abcd1234"}}],
            self.ok_output("snake\n"))

    def op_memory(self):
        def check(body):
            res = results(body)
            if len(res) != 1 or "MemoryError" not in res[0].get("output", ""):
                return f"results {res}"
        self.execute("exec.memory", [code_part("b = bytearray(5 * 1024 ** 3)")], check)

    def op_fork(self):
        def check(body):
            if len(results(body)) != 1:
                return f"results {results(body)}"
        self.execute("exec.fork", [code_part(
            "import os\ntry:\n    os.fork()\nexcept OSError as e:\n    print('refused', e.errno)")],
            check)

    def op_crash(self):
        def check(body):
            res = results(body)
            if len(res) != 2 or res[0].get("outcome") != "OUTCOME_FAILED" or \
                    "SIGABRT" not in res[0].get("output", "") or \
                    body.get("executionMetadata", {}).get("limitReached") != "INTERPRETER_CRASH":
                return f"results {res} {body.get('executionMetadata')}"
        self.execute("exec.crash", [
            code_part("import os\nos.abort()"),
            code_part("print('not run')")], check)

    # --- sessions ---

    def create_session(self, op="session.create", expect=(200,)):
        r = self.req(op, "POST", "/v1/sessions", {}, expect=expect)
        if r is None or r.status != 200:
            return None
        m = re.fullmatch(r"sessions/((?:[a-z0-9-]{1,63}\.)?[0-9a-f]{32})", str(r.body.get("name", "")))
        if not m:
            self.bad(op, "no session name", r)
            return None
        return m.group(1)

    def op_session(self):
        sid = self.create_session()
        if not sid:
            return
        path = f"/v1/sessions/{sid}:execute"
        self.execute("session.execute", [inline("text/plain", b"kept\n"), code_part("z = 1")],
                     self.ok_output(None), path)
        for i in range(self.rng.randrange(1, 4)):
            self.execute("session.execute", [code_part("z += 1\nprint(z)")],
                         self.ok_output(f"{i + 2}\n"), path)
        self.execute("session.execute",
                     [code_part("print(open('input_file_0.txt').read(), end='')")],
                     self.ok_output("kept\n"), path)
        r = self.req("session.get", "GET", f"/v1/sessions/{sid}")
        if r is not None and r.body.get("state") != "ACTIVE":
            self.bad("session.get", "not ACTIVE", r)
        self.req("session.delete", "DELETE", f"/v1/sessions/{sid}")
        self.req("session.after_delete", "GET", f"/v1/sessions/{sid}", expect=(404,))

    def op_session_deadline(self):
        sid = self.create_session()
        if not sid:
            return
        path = f"/v1/sessions/{sid}:execute"
        self.execute("session.deadline", [code_part("import time\ntime.sleep(60)")],
                     lambda b: None if [x.get("outcome") for x in results(b)] ==
                     ["OUTCOME_DEADLINE_EXCEEDED"] else f"results {results(b)}", path)
        self.req("session.after_deadline", "POST", path, {"parts": [code_part("print(1)")]},
                 expect=(404,))

    def session_abandoned(self):
        """A session left alone until its idle timeout ends it."""
        sid = self.create_session()
        if not sid:
            return
        self.execute("session.execute", [code_part("big = list(range(100000))")],
                     self.ok_output(None), f"/v1/sessions/{sid}:execute")
        time.sleep(SESSION_IDLE_MS / 1000 + 1.5)
        r = self.req("session.expired", "GET", f"/v1/sessions/{sid}", expect=(404,))
        if r is not None and "idle" not in str(r.body):
            self.bad("session.expired", "not ended by the idle timeout", r)

    def session_limit(self):
        """--max-sessions sessions, then one more: 429; then all deleted."""
        sids = [self.create_session() for _ in range(MAX_SESSIONS)]
        self.create_session("session.over_limit", expect=(429,))
        for sid in sids:
            if sid:
                self.req("session.delete", "DELETE", f"/v1/sessions/{sid}")

    # --- generateContent ---

    GEN = "/v1beta/models/echo"

    def gen_body(self, *blocks, extra_parts=()):
        text = "Please run this.\n" + "".join(f"```python\n{b}\n```\n" for b in blocks)
        return {"contents": [{"role": "user", "parts": [{"text": text}, *extra_parts]}],
                "tools": [{"codeExecution": {}}]}

    def op_generate(self):
        nonce = self.rng.randrange(10**6)
        r = self.req("gen.unary", "POST", f"{self.GEN}:generateContent",
                     self.gen_body(f"print({nonce})", "1/0"))
        if r is None:
            return
        parts = r.body.get("candidates", [{}])[0].get("content", {}).get("parts", [])
        res = [p["codeExecutionResult"] for p in parts if "codeExecutionResult" in p]
        if [x.get("outcome") for x in res] != ["OUTCOME_OK", "OUTCOME_FAILED"] or \
                res[0].get("output") != f"{nonce}\n":
            self.bad("gen.unary", f"results {res}", r)

    def op_generate_file(self):
        r = self.req("gen.file", "POST", f"{self.GEN}:generateContent", self.gen_body(
            "print(open('input_file_0.csv').read().count(chr(10)))",
            extra_parts=[inline("text/csv", b"a,b\n1,2\n")]))
        if r is not None and '"output": "2\\n"' not in json.dumps(r.body):
            self.bad("gen.file", "no output 2", r)

    def op_stream(self):
        r = self.req("gen.sse", "POST", f"{self.GEN}:streamGenerateContent?alt=sse",
                     self.gen_body("print('streamed')", "import matplotlib.pyplot as plt\n"
                                   "plt.plot([1, 2])\nplt.show()"))
        if r is None:
            return
        text = r.raw.decode("utf-8", "replace")
        events = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]
        blob = json.dumps(events)
        if not events or "streamed\\n" not in blob or "image/png" not in blob:
            self.bad("gen.sse", f"{len(events)} events: {text[:300]!r}")

    def op_count_tokens(self):
        r = self.req("gen.count_tokens", "POST", f"{self.GEN}:countTokens",
                     {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]})
        if r is not None and not isinstance(r.body.get("totalTokens"), int):
            self.bad("gen.count_tokens", "no totalTokens", r)

    # --- bad requests ---

    BAD = [
        ("POST", "/v1/execute", "{not json", 400),
        ("POST", "/v1/execute", '{"executableCode": {"language": "PYTHON", "code": 5}}', 400),
        ("POST", "/v1/execute", '{"executableCode": {"language": "PYTHON", "code": "1",'
                                ' "extra": 1}}', 400),
        ("POST", "/v1/execute", '{"parts": [{"inlineData": {"mimeType": "text/csv",'
                                ' "data": "!!!"}}, ' + json.dumps(code_part("1")) + ']}', 400),
        ("POST", "/v1/execute", '{"parts": [{"inlineData": {"mimeType": "app/x",'
                                ' "data": "AA=="}}, ' + json.dumps(code_part("1")) + ']}', 400),
        ("POST", "/v1/execute", '{"parts": []}', 400),
        ("POST", "/v1/execute", "[" * 5000 + "]" * 5000, 400),
        ("POST", "/v1/execute", b'{"executableCode": {"code": "\xff\xfe"}}', 400),
        ("POST", "/v1/execute", "", 400),
        ("GET", "/v1/execute", None, 405),
        ("GET", "/no/such/path", None, 404),
        ("POST", "/v1/sessions/" + "0" * 32 + ":execute",
         json.dumps({"parts": [code_part("1")]}), 404),
        ("DELETE", "/v1/sessions/not-a-session", None, 404),
        ("POST", "/v1beta/models/nosuchmodel:generateContent",
         '{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}', 404),
        ("POST", "/v1beta/models/echo:generateContent", '{"contents": 3}', 400),
        ("POST", "/v1beta/models/echo:streamGenerateContent?alt=sse", "{", 400),
    ]

    def op_bad(self):
        method, path, body, status = self.rng.choice(self.BAD)
        self.req("bad.http", method, path, body, expect=(status,))

    def op_bad_raw(self):
        self.note("bad.raw")
        cases = [
            (b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 41943040\r\n\r\n", (413,)),
            (b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
             b"Content-Length: 7\r\n\r\n{}{}{", (400,)),
            (b"GARBAGE\r\n\r\n", (400, 0)),
        ]
        data, expect = self.rng.choice(cases)
        try:
            st = raw_exchange(self.port, data)
        except OSError as e:
            self.bad("bad.raw", f"{type(e).__name__}: {e}")
            return
        if st not in expect:
            self.bad("bad.raw", f"status {st}, expected {expect} for {data[:60]!r}")

    def op_disconnect(self):
        """The client goes away: mid-body, while its execution runs, or mid-stream."""
        self.note("disconnect")
        with self.lock:   # each kind in turn, so that a short run has them all
            kind = ("stream", "execution", "body")[self.disconnects % 3]
            self.disconnects += 1
        if kind == "stream":
            # Events keep coming after the client left, some time apart: libmicrohttpd
            # sees the connection gone at a send, and the turn's next writes then fail.
            body = json.dumps(self.gen_body(
                "print('first', flush=True)",
                *[f"import time\ntime.sleep(0.3)\nprint({i})" for i in range(4)]))
            path = f"{self.GEN}:streamGenerateContent?alt=sse"
        else:
            body = json.dumps({"parts": [code_part("import time\ntime.sleep(0.5)\nprint(1)")]})
            path = "/v1/execute"
        extra = 100 if kind == "body" else 0
        head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body) + extra}\r\n\r\n").encode()
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            s.sendall(head + body.encode())
            if kind == "stream":
                got = b""
                while b"data: " not in got:   # the first event, then away
                    chunk = s.recv(65536)
                    if not chunk:
                        self.bad("disconnect", f"stream closed before an event: {got[:200]!r}")
                        break
                    got += chunk
            else:
                time.sleep(0.2)
            s.close()
        except OSError as e:
            self.bad("disconnect", f"{kind}: {type(e).__name__}: {e}")

    def op_keepalive(self):
        """Several requests over one connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            for i in range(4):
                self.note("keepalive")
                conn.request("POST", "/v1/execute", json.dumps(
                    {"parts": [code_part(f"print({i})")]}), {"Content-Type": "application/json"})
                resp = conn.getresponse()
                body = json.loads(resp.read())
                if resp.status != 200 or results(body)[0].get("output") != f"{i}\n":
                    self.bad("keepalive", f"HTTP {resp.status} {str(body)[:200]}")
            conn.request("GET", "/healthz")
            self.note("keepalive")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                self.bad("keepalive", f"healthz HTTP {resp.status}")
        except (OSError, http.client.HTTPException, ValueError) as e:
            self.bad("keepalive", f"{type(e).__name__}: {e}")
        finally:
            conn.close()

    # op, weight. Deadline hits cost DEADLINE_MS of a worker each: few of them.
    MIX = [
        ("op_print", 14), ("op_globals", 5), ("op_silent", 3), ("op_exception", 5),
        ("op_print_raise", 4), ("op_syntax", 3), ("op_deadline", 1.2), ("op_busy_deadline", 0.6),
        ("op_big_output", 3), ("op_stderr_flood", 2), ("op_bad_utf8", 2), ("op_plot", 3),
        ("op_two_figures_and_file", 1), ("op_input_csv", 4), ("op_input_files", 3),
        ("op_big_input", 0.6), ("op_snake_case", 2), ("op_memory", 1), ("op_fork", 1),
        ("op_crash", 1), ("op_session", 3), ("op_session_deadline", 0.6),
        ("op_generate", 4), ("op_generate_file", 2), ("op_stream", 3), ("op_count_tokens", 1),
        ("op_bad", 14), ("op_bad_raw", 3), ("op_disconnect", 2), ("op_keepalive", 1),
    ]

    def schedule(self, requests):
        """Ops drawn by weight until about `requests` requests; each op once at least."""
        names = [n for n, _ in self.MIX]
        weights = [w for _, w in self.MIX]
        ops = list(names) + ["op_disconnect"] * 2   # each kind of disconnect at least once
        while len(ops) < requests * 0.8:   # sessions and keep-alive are several requests
            ops.append(self.rng.choices(names, weights)[0])
        self.rng.shuffle(ops)
        return ops

    def run_ops(self, ops, concurrency):
        it = iter(ops)
        it_lock = threading.Lock()

        def client():
            while True:
                with it_lock:
                    op = next(it, None)
                if op is None:
                    return
                try:
                    getattr(self, op)()
                except Exception:  # noqa: BLE001 - a driver bug must not hide the run
                    self.bad(op, "driver exception:\n" + traceback.format_exc())

        threads = [threading.Thread(target=client) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


# --- the server under valgrind --------------------------------------------------------------

def proc_uid_and_name(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None, None
    uid = re.search(r"^Uid:\s+(\d+)", text, re.M)
    name = re.search(r"^Name:\s+(.*)$", text, re.M)
    state = re.search(r"^State:\s+(\S)", text, re.M)
    if state and state.group(1) == "Z":
        return None, None
    return (int(uid.group(1)) if uid else None), (name.group(1) if name else "?")


def processes_in_uid_range(lo, hi):
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            uid, name = proc_uid_and_name(int(p))
            if uid is not None and lo <= uid < hi:
                found.append((int(p), uid, name))
    return found


class MemcheckServer:
    def __init__(self, binary, out, shim, pidfd_sock, extra_valgrind, reachable):
        self.binary = binary
        self.out = out
        self.state_dir = tempfile.mkdtemp(prefix="state-", dir=out)
        self.vg_log = os.path.join(out, "valgrind.log")
        self.err_log = os.path.join(out, "server.log")
        self.uid_base = 2300000000 + random.randrange(0, 100000) * UID_RANGE
        kinds = "all" if reachable else "definite,indirect,possible"
        self.valgrind = [
            "valgrind", "--tool=memcheck", "--leak-check=full",
            f"--show-leak-kinds={kinds}",
            "--errors-for-leak-kinds=definite,indirect,possible",
            "--error-exitcode=99", "--trace-children=no", "--child-silent-after-fork=yes",
            "--track-fds=yes", "--num-callers=40", f"--log-file={self.vg_log}",
        ]
        if os.path.exists(SUPPRESSIONS):
            self.valgrind.append(f"--suppressions={SUPPRESSIONS}")
        self.valgrind += list(extra_valgrind)
        self.args = [
            binary, "--listen", "127.0.0.1:0", "--state-dir", self.state_dir,
            "--worker-uid-base", str(self.uid_base), "--workers", str(WORKERS),
            "--pool", str(POOL), "--http-threads", "2", "--deadline-ms", str(DEADLINE_MS),
            "--output-bytes", str(OUTPUT_BYTES), "--session-idle-ms", str(SESSION_IDLE_MS),
            "--max-sessions", str(MAX_SESSIONS)]
        self.env = dict(os.environ, LD_PRELOAD=shim, PYEXECD_MEMCHECK_PIDFD_SOCK=pidfd_sock)
        self.proc = None
        self.port = None
        self.lines = []

    def start(self, timeout):
        cmd = ["nice", "-n", "10"] + self.valgrind + self.args
        log("starting: " + " ".join(cmd))
        self.err = open(self.err_log, "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, errors="replace", env=self.env)

        def keep(line):
            self.err.write(line + "\n")
            self.err.flush()
            self.lines.append(line)

        self.drainer, self.port = follow_stderr(self.proc, keep, timeout)
        if self.port is None:
            raise RuntimeError("the server did not print its port:\n" + self.tail())
        return self.wait_ready(timeout)

    def tail(self, n=30):
        return "\n".join(self.lines[-n:])

    def health(self):
        r = http_request(self.port, "GET", "/healthz", timeout=60)
        return r.body if r.status == 200 and isinstance(r.body, dict) else None

    def wait_ready(self, timeout, not_zygote=None):
        """Until /readyz says ready and /healthz shows a pool worker ready (and a zygote
        other than not_zygote); returns the health."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n" + self.tail())
            try:
                h = http_request(self.port, "GET", "/readyz", timeout=60).status == 200 \
                    and self.health()
                if h and h["pool"]["ready"] >= 1 and h["zygote"]["pid"] != not_zygote:
                    return h
            except (OSError, http.client.HTTPException, KeyError, TypeError):
                pass
            time.sleep(0.2)
        raise RuntimeError("the server was not ready in time:\n" + self.tail())

    def wait_quiet(self, timeout):
        """Until no execution runs, no session is alive and the pool is full."""
        end = time.monotonic() + timeout
        h = None
        while time.monotonic() < end:
            h = self.health()
            if h and h["workers"]["running"] == 0 and h["sessions"]["active"] == 0 and \
                    h["queue"]["depth"] == 0 and h["pool"]["ready"] >= POOL:
                return h
            time.sleep(0.2)
        return h

    def stop(self, timeout):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.drainer.join(10)
        self.err.close()
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- valgrind's log -------------------------------------------------------------------------

def parse_valgrind_log(path, pid):
    """Figures of the server process's (pid's) lines of valgrind's log."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return {"missing": True}
    mine = [ln[len(f"=={pid}== "):] if ln.startswith(f"=={pid}== ") else ln[len(f"=={pid}=="):]
            for ln in text.splitlines() if ln.startswith(f"=={pid}==")]
    body = "\n".join(mine)
    fig = {"text": body, "all": text}
    m = re.findall(r"ERROR SUMMARY: ([\d,]+) errors from ([\d,]+) contexts", body)
    fig["errors"] = int(m[-1][0].replace(",", "")) if m else None
    fig["contexts"] = int(m[-1][1].replace(",", "")) if m else None
    fig["leak"] = {}
    if "All heap blocks were freed -- no leaks are possible" in body:
        for k in ("definitely lost", "indirectly lost", "possibly lost", "still reachable"):
            fig["leak"][k] = (0, 0)
    for k in ("definitely lost", "indirectly lost", "possibly lost", "still reachable",
              "suppressed"):
        mm = re.findall(rf"{k}: ([\d,]+) bytes in ([\d,]+) blocks", body)
        if mm:
            fig["leak"][k] = (int(mm[-1][0].replace(",", "")), int(mm[-1][1].replace(",", "")))
    mm = re.search(r"in use at exit: ([\d,]+) bytes in ([\d,]+) blocks", body)
    fig["in_use"] = (int(mm.group(1).replace(",", "")), int(mm.group(2).replace(",", ""))) \
        if mm else None
    mm = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes", body)
    fig["heap"] = mm.groups() if mm else None
    mm = re.search(r"FILE DESCRIPTORS: (\d+) open(?: \((\d+) std\))? at exit", body)
    fig["fds_open"] = int(mm.group(1)) if mm else None
    # Each open descriptor: its number, what it is, and where it was opened. Those the
    # server inherited (valgrind's log among them) and stdio are not the server's.
    fds = []
    cur = None
    for ln in mine:
        m2 = re.match(r"Open (.*?)descriptor (\d+):\s*(.*)$", ln)
        if m2:
            cur = {"fd": int(m2.group(2)), "what": (m2.group(1) + m2.group(3)).strip(),
                   "stack": []}
            fds.append(cur)
        elif cur is not None and ln.strip() and not ln.startswith("HEAP SUMMARY"):
            cur["stack"].append(ln.strip())
        else:
            cur = None
    fig["fds"] = [f for f in fds if f["fd"] > 2 and
                  not any("inherited from parent" in x for x in f["stack"])]
    fig["unhandled"] = sorted(set(re.findall(r"unhandled amd64-linux syscall: (\d+)", text)))
    # The error blocks: from a line naming a problem to the next blank line.
    blocks, cur = [], None
    for ln in mine:
        if cur is None and re.match(r"(Invalid |Conditional jump|Use of uninitialised|"
                                    r"Syscall param|Mismatched free|Source and destination|"
                                    r"Argument '|\d[\d,]* (\([\d,]+ direct, [\d,]+ indirect\) )?"
                                    r"bytes in [\d,]+ blocks are (definitely|indirectly|"
                                    r"possibly) lost)", ln):
            cur = [ln]
        elif cur is not None:
            if ln.strip() == "":
                blocks.append("\n".join(cur))
                cur = None
            else:
                cur.append(ln)
    if cur:
        blocks.append("\n".join(cur))
    fig["blocks"] = blocks
    return fig


# --- main -----------------------------------------------------------------------------------

def build_shim(out):
    src = os.path.join(out, "memcheck_shim.c")
    so = os.path.join(out, "memcheck_shim.so")
    with open(src, "w") as f:
        f.write(SHIM_C)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O1", "-g", "-Wall", "-shared", "-fPIC", "-o", so, src, "-ldl",
                    "-lseccomp"], check=True)
    return so


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build-memcheck", "pyexecd"),
                    help="the pyexecd binary (a dev build: -O0 -g)")
    ap.add_argument("--requests", type=int, default=200, help="about this many requests")
    ap.add_argument("--concurrency", type=int, default=3)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None, help="dir for the logs (default: a new one in /tmp)")
    ap.add_argument("--reachable", action="store_true",
                    help="also list the still-reachable blocks (to see what they are)")
    ap.add_argument("--valgrind-arg", action="append", default=[],
                    help="an extra valgrind option (repeatable)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("memcheck: must run as root (workers run under uids of their own)",
              file=sys.stderr)
        return 2
    if not shutil.which("valgrind"):
        print("memcheck: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        print(f"memcheck: no binary at {binary}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    out = os.path.abspath(args.out) if args.out else tempfile.mkdtemp(prefix="pyexecd-memcheck-")
    os.makedirs(out, exist_ok=True)
    log(f"binary {binary}, seed {seed}, logs in {out}")

    started = time.monotonic()
    shim = build_shim(out)
    pidfd_sock = os.path.join(out, "pidfd.sock")
    if os.path.exists(pidfd_sock):
        os.unlink(pidfd_sock)
    pidfds = PidfdService(pidfd_sock)
    server = MemcheckServer(binary, out, shim, pidfd_sock, args.valgrind_arg, args.reachable)
    problems = []
    load = None
    phases = {}
    rc = None
    zygotes = set()
    try:
        t0 = time.monotonic()
        h = server.start(timeout=300)
        phases["start"] = time.monotonic() - t0
        zygotes.add(h["zygote"]["pid"])
        log(f"ready on port {server.port} in {phases['start']:.1f} s, zygote {h['zygote']['pid']}")
        load = Load(server.port, seed)

        # The abandoned session, from the start: it expires while the load runs.
        abandoned = threading.Thread(target=load.session_abandoned)
        abandoned.start()

        ops = load.schedule(args.requests)
        half = len(ops) // 2
        t0 = time.monotonic()
        load.run_ops(ops[:half], args.concurrency)
        abandoned.join()
        phases["load 1"] = time.monotonic() - t0

        # Sessions up to --max-sessions, once nothing else holds one.
        server.wait_quiet(60)
        load.session_limit()

        # A zygote restart, with one request in flight.
        t0 = time.monotonic()
        h = server.health()
        old = h["zygote"]["pid"]
        restarts = h["zygote"]["restarts"]
        inflight = {}

        def in_flight():
            try:
                inflight["r"] = http_request(server.port, "POST", "/v1/execute", {"parts": [
                    code_part("import time\ntime.sleep(1)\nprint('slept')")]})
            except (OSError, http.client.HTTPException) as e:
                inflight["e"] = e

        t = threading.Thread(target=in_flight)
        t.start()
        time.sleep(0.3)
        log(f"killing the zygote {old}")
        os.kill(old, signal.SIGKILL)
        t.join()
        load.note("zygote.in_flight")
        r = inflight.get("r")
        if r is None or r.status not in (200, 503):
            problems.append(f"the request in flight at the zygote kill: "
                            f"{inflight.get('e') or (r.status, r.body)}")
        h = server.wait_ready(120, not_zygote=old)
        zygotes.add(h["zygote"]["pid"])
        if h["zygote"]["restarts"] < restarts + 1:
            problems.append(f"zygote restarts {h['zygote']['restarts']}, expected > {restarts}")
        load.op_print()
        phases["zygote restart"] = time.monotonic() - t0
        log(f"zygote restarted: {h['zygote']['pid']} (restarts {h['zygote']['restarts']})")

        t0 = time.monotonic()
        load.run_ops(ops[half:], args.concurrency)
        phases["load 2"] = time.monotonic() - t0

        h = server.wait_quiet(60)
        if not h or h["sessions"]["active"] or h["workers"]["running"]:
            problems.append(f"not quiet at the end: {h}")
        final_health = h
        if h and h["zygote"]["restarts"] != 1:
            problems.append(f"zygote restarts {h['zygote']['restarts']}, expected 1 "
                            "(the kill): it died under the load")
        log("SIGTERM")
        t0 = time.monotonic()
        rc = server.stop(timeout=600)
        phases["exit + leak check"] = time.monotonic() - t0
    except Exception as e:  # noqa: BLE001
        problems.append(f"driver: {type(e).__name__}: {e}")
        traceback.print_exc()
        server.kill()
        final_health = None
    finally:
        pidfds.close()
    wall = time.monotonic() - started

    # What is left of this server.
    end = time.monotonic() + 10
    left = processes_in_uid_range(server.uid_base, server.uid_base + UID_RANGE)
    while left and time.monotonic() < end:
        time.sleep(0.2)
        left = processes_in_uid_range(server.uid_base, server.uid_base + UID_RANGE)
    if left:
        problems.append(f"worker processes left: {left}")
    for z in zygotes:
        uid, name = proc_uid_and_name(z)
        if name is not None and "zygote" in name:
            problems.append(f"zygote {z} still alive")
    shutil.rmtree(server.state_dir, ignore_errors=True)

    fig = parse_valgrind_log(server.vg_log, server.proc.pid if server.proc else 0)
    if rc is None:
        problems.append("the server did not exit on SIGTERM")
    elif rc == 99:
        problems.append("valgrind exited 99: it found errors or leaks")
    elif rc != 0:
        problems.append(f"the server exited {rc}")
    if fig.get("errors") is None:
        problems.append("no ERROR SUMMARY in valgrind's log")
    elif fig["errors"]:
        problems.append(f"ERROR SUMMARY: {fig['errors']} errors from {fig['contexts']} contexts")
    for k in ("definitely lost", "indirectly lost", "possibly lost"):
        v = fig.get("leak", {}).get(k)
        if v is None:
            problems.append(f"no '{k}' figure in valgrind's log")
        elif v[0]:
            problems.append(f"{k}: {v[0]} bytes in {v[1]} blocks")
    if fig.get("unhandled"):
        problems.append(f"valgrind met unhandled syscalls {fig['unhandled']}: the server saw "
                        "ENOSYS where it would not natively")
    for f in fig.get("fds", []):
        where = "; ".join(x for x in f["stack"][:4])
        problems.append(f"descriptor {f['fd']} ({f['what'] or '?'}) open at exit, opened {where}")
    if load:
        problems += load.anomalies

    # The report.
    total = sum(load.counts.values()) if load else 0
    lines = ["", "=== memcheck: pyexecd server under valgrind ==="]
    lines.append(f"requests: {total} ({args.concurrency} clients, seed {seed})")
    if load:
        by = ", ".join(f"{k} {v}" for k, v in sorted(load.counts.items()))
        lines.append(f"  {by}")
    lines.append(f"pidfds opened for the shim: {pidfds.served}; zygotes: {sorted(zygotes)}")
    if final_health:
        c = final_health["counters"]
        lines.append(f"server counters: executions {c['executions']}, deadline kills "
                     f"{c['deadlineKills']}, worker crashes {c['workerCrashes']}, "
                     f"setup failures {c['workerSetupFailures']}")
    lines.append("wall time: " + f"{wall:.1f} s (" +
                 ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()) + ")")
    lines.append(f"server exit status: {rc} (valgrind's error exit code is 99)")
    lines.append(f"ERROR SUMMARY: {fig.get('errors')} errors from {fig.get('contexts')} contexts")
    for k in ("definitely lost", "indirectly lost", "possibly lost", "still reachable",
              "suppressed"):
        v = fig.get("leak", {}).get(k)
        lines.append(f"  {k}: " + (f"{v[0]} bytes in {v[1]} blocks" if v else "-"))
    if fig.get("in_use"):
        lines.append(f"  in use at exit: {fig['in_use'][0]} bytes in {fig['in_use'][1]} blocks")
    if fig.get("heap"):
        lines.append("  total heap usage: {} allocs, {} frees, {} bytes allocated".format(
            *fig["heap"]))
    lines.append(f"descriptors open at exit: {fig.get('fds_open')} in all, "
                 f"{len(fig.get('fds', []))} of the server's own (not stdio, not inherited)")
    lines.append(f"logs: {out} (valgrind.log, server.log)")
    if fig.get("blocks"):
        lines.append("")
        lines.append(f"valgrind reports ({len(fig['blocks'])}; first 10):")
        for b in fig["blocks"][:10]:
            lines.append(b)
            lines.append("")
    if problems:
        lines.append("")
        lines.append(f"FAILED: {len(problems)} problem(s):")
        lines += [f"  - {p}" for p in problems[:50]]
    else:
        lines.append("PASSED: no error, no leak")
    report = "\n".join(lines)
    print(report, flush=True)
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(report + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
