"""The pyexecd a replay runs through: one already running (--url), or one started here from
the binary in PYEXECD_BIN, the way tests/integration/harness.py starts one: on 127.0.0.1
port 0 (the port read from its "listening on http://..." line on stderr), its own state
dir in a temporary directory, a worker uid range of its own, stopped with SIGTERM.
"""

import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse

from conform.cases import FIDELITY_HEADER

# Workers run as uid_base + slot; each server gets UID_RANGE uids of its own, picked at
# random in the range the integration harness uses.
UID_RANGE = 1000


class ServerError(RuntimeError):
    pass


class Client:
    """HTTP to a pyexecd base URL (http or https)."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ServerError(f"not an http(s) URL: {url}")
        self.url = f"{u.scheme}://{u.netloc}{u.path.rstrip('/')}"
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
        self.prefix = u.path.rstrip("/")

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, parsed JSON or text, {header: value})."""
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=timeout)
        try:
            data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
            hdrs = {"Content-Type": "application/json"} if data is not None else {}
            hdrs.update(headers or {})
            conn.request(method, self.prefix + path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace")
            return resp.status, parsed, {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()

    def health(self, timeout=10):
        status, body, _ = self.request("GET", "/healthz", timeout=timeout)
        return status, body if isinstance(body, dict) else {}

    def environment(self):
        """GET /v1/environment when the server has it, else None."""
        try:
            status, body, _ = self.request("GET", "/v1/environment", timeout=30)
        except (OSError, http.client.HTTPException):
            return None
        return body if status == 200 and isinstance(body, dict) else None

    def execute(self, parts, fidelity=None, timeout=600):
        headers = {FIDELITY_HEADER: fidelity} if fidelity else {}
        status, body, hdrs = self.request("POST", "/v1/execute", {"parts": parts},
                                          headers=headers, timeout=timeout)
        return status, body, hdrs

    def wait_ready(self, timeout=180, proc=None, log=None, unreachable_after=None):
        """Waits for /readyz to say ready (503 while the zygote starts), then returns the
        /healthz document. unreachable_after: give up after that many seconds of no
        connection at all (a wrong --url)."""
        start = time.time()
        answered, last = False, ""
        while time.time() - start < timeout:
            if proc is not None and proc.poll() is not None:
                raise ServerError("pyexecd exited:\n" + (log() if log else ""))
            try:
                status, _, _ = self.request("GET", "/readyz", timeout=5)
                answered = True
                if status == 200:
                    status, body = self.health(timeout=5)
                    if status == 200:
                        return body
                last = f"/readyz answered {status}"
            except (OSError, http.client.HTTPException) as e:
                last = f"{type(e).__name__}: {e}"
                if (unreachable_after is not None and not answered
                        and time.time() - start > unreachable_after):
                    break
            time.sleep(0.1)
        raise ServerError(f"pyexecd at {self.url} not ready ({last})"
                          + ("\n" + log() if log else ""))


class OwnServer:
    """A pyexecd started from `binary` for this run."""

    def __init__(self, binary, flags=(), workers=2, pool=2, policy="parity"):
        self.binary = binary
        self.flags = list(flags)
        self.workers = workers
        self.pool = pool
        self.policy_asked = policy
        self.policy_note = ""
        self.proc = None
        self.state_dir = None
        self.client = None
        self.log = []
        self._lock = threading.Lock()

    def log_text(self, n=40):
        with self._lock:
            return "\n".join(self.log[-n:])

    def _spawn(self, policy_flags):
        self.uid_base = 2100000000 + random.randrange(0, 100000) * UID_RANGE
        self.state_dir = tempfile.mkdtemp(prefix="pyexecd-conform-")
        args = [self.binary, "--listen", "127.0.0.1:0", "--state-dir", self.state_dir,
                "--worker-uid-base", str(self.uid_base), "--workers", str(self.workers),
                "--pool", str(self.pool)] + policy_flags + self.flags
        self.log = []
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, errors="replace")
        port = {}
        seen = threading.Event()

        def drain():
            for line in proc.stderr:
                with self._lock:
                    self.log.append(line.rstrip("\n"))
                m = re.search(r"listening on (http://[^\s]+)", line)
                if m and "url" not in port:
                    port["url"] = m.group(1).rstrip("/")
                    seen.set()
            seen.set()

        threading.Thread(target=drain, daemon=True).start()
        seen.wait(60)
        return proc, port.get("url")

    def start(self):
        tries = [] if self.policy_asked in (None, "default") else [["--policy", self.policy_asked]]
        tries.append([])
        last = ""
        for policy_flags in tries:
            proc, url = self._spawn(policy_flags)
            if url is None:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                last = self.log_text()
                self._cleanup_dir()
                if policy_flags:
                    why = last.strip().splitlines()[-1] if last.strip() else "it exited"
                    self.policy_note = (f"--policy {self.policy_asked} refused by this binary "
                                        f"({why}); ran the default policy")
                continue
            self.proc = proc
            self.client = Client(url)
            try:
                self.client.wait_ready(proc=proc, log=self.log_text)
            except ServerError as e:
                self.stop()
                if policy_flags:
                    self.policy_note = (f"--policy {self.policy_asked}: the server did not "
                                        "become ready with it; ran the default policy")
                    last = str(e)
                    continue
                raise
            return self
        raise ServerError(f"pyexecd ({self.binary}) did not start:\n{last}")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            try:
                self.proc.stderr.close()
            except OSError:
                pass
        self.proc = None
        self._cleanup_dir()

    def _cleanup_dir(self):
        if self.state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None


def find_binary(repo_root):
    """PYEXECD_BIN, else the repository's build/pyexecd, else pyexecd on PATH."""
    env = os.environ.get("PYEXECD_BIN")
    if env:
        return env
    local = os.path.join(repo_root, "build", "pyexecd")
    if os.access(local, os.X_OK):
        return local
    return shutil.which("pyexecd")


def probe_modules(client, modules, star_modules, timeout=300):
    """({module: importable}, {module: public names}) through the server, one execution;
    ({}, {}) when the probe fails (a server that is not pyexecd, say)."""
    if not modules and not star_modules:
        return {}, {}
    code = ("import importlib, importlib.util, json\n"
            f"mods = {sorted(modules)!r}\nstars = {sorted(star_modules)!r}\n"
            "found = {}\n"
            "for m in mods:\n"
            "    try:\n"
            "        found[m] = importlib.util.find_spec(m) is not None\n"
            "    except Exception:\n"
            "        found[m] = False\n"
            "names = {}\n"
            "for m in stars:\n"
            "    try:\n"
            "        mod = importlib.import_module(m)\n"
            "        names[m] = list(getattr(mod, '__all__', None) or\n"
            "                        [n for n in dir(mod) if not n.startswith('_')])\n"
            "    except Exception:\n"
            "        names[m] = None\n"
            "print(json.dumps({'modules': found, 'stars': names}))\n")
    try:
        status, body, _ = client.execute(
            [{"executableCode": {"language": "PYTHON", "code": code}}], timeout=timeout)
    except (OSError, http.client.HTTPException):
        return {}, {}
    if status != 200 or not isinstance(body, dict):
        return {}, {}
    outs = [p["codeExecutionResult"] for p in body.get("parts", []) if "codeExecutionResult" in p]
    if len(outs) != 1 or outs[0].get("outcome") != "OUTCOME_OK":
        return {}, {}
    try:
        data = json.loads(outs[0].get("output") or "")
    except ValueError:
        return {}, {}
    return data.get("modules", {}), data.get("stars", {})
