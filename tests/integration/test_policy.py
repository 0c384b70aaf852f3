"""Sandbox policies through the real binary: the compiled default matches its golden copy,
a bad policy stops the server before anything starts (status 2, "file:line: ..."), a
custom policy's system-call rules and limits take effect, command-line flags override the
policy, and a kernel that refuses isolation layers degrades visibly (or, with
--require-isolation, stops the server).

Fixtures live in tests/policies/{valid,invalid}; each invalid one starts with
"# expect: LINE: FRAGMENT".
"""

import difflib
import errno
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (BINARY, SANITIZED, Server, ServerTestCase, code_part,  # noqa: E402
                     proc_statuses, results, status_field)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(REPO, "tests", "policies")
DEFAULT_POLICY = os.path.join(REPO, "policies", "default.policy")
GOLDEN = os.path.join(REPO, "tests", "golden", "default.pfc")

# How long a server given a bad policy may take to exit: it checks the policy first.
BAD_POLICY_EXIT_S = 5
# How long a zygote takes to start and report its layers (~2 s here; generous).
ZYGOTE_START_S = 30


def expectation(path):
    """(line, fragment) from an invalid fixture's "# expect: LINE: FRAGMENT" first line."""
    with open(path) as f:
        first = f.readline()
    m = re.match(r"# expect: (\d+): (.+?)\s*$", first)
    if not m:
        raise AssertionError(f"{path}: first line is not '# expect: LINE: FRAGMENT'")
    return int(m.group(1)), m.group(2)


def invalid_fixtures():
    d = os.path.join(FIXTURES, "invalid")
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".policy"))


def children_named(ppid):
    """[(pid, name, cmdline)] of live processes whose parent is ppid."""
    found = []
    for pid, status in proc_statuses():
        if status_field(status, "PPid") != str(ppid):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        found.append((pid, status_field(status, "Name") or "?", cmdline))
    return found


def run_watching_children(args, timeout):
    """Runs args, polling for children until it exits. Returns (status or None on
    timeout, stdout, stderr, children seen, seconds taken)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace")
    out_err = {}

    def collect():
        out_err["out"], out_err["err"] = proc.communicate()

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    seen = {}
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        for pid, name, cmd in children_named(proc.pid):
            # LeakSanitizer's check at exit runs in a clone of the process (its tracer),
            # with the same command line (or none, read as it ends): not a child of
            # pyexecd's making.
            if SANITIZED and (not cmd.strip() or cmd.split() == list(args)):
                continue
            seen[pid] = (name, cmd)
        time.sleep(0.001)
    status = proc.poll()
    elapsed = time.monotonic() - t0
    if status is None:
        proc.kill()
    reader.join(10)
    return status, out_err.get("out", ""), out_err.get("err", ""), seen, elapsed


def uid_base():
    return 2100000000 + random.randrange(0, 100000) * 1000


def custom_policy_text():
    """default.policy with deadline_ms 1500, output_bytes 100, and getrandom refused with
    ENOSYS instead of allowed."""
    with open(DEFAULT_POLICY) as f:
        text = f.read()
    text, n1 = re.subn(r"(?m)^limit\s+deadline_ms\s+\d+", "limit deadline_ms 1500", text)
    text, n2 = re.subn(r"(?m)^limit\s+output_bytes\s+\d+", "limit output_bytes 100", text)
    text, n3 = re.subn(r"(?m)^(allow\b[^#\n]*?)\s+getrandom\b", r"\1", text)
    if (n1, n2, n3) != (1, 1, 1):
        raise AssertionError(f"default.policy changed shape: substitutions {n1} {n2} {n3}")
    return text + "\n# the test's change: getrandom says 'not implemented'\nerrno ENOSYS getrandom\n"


GETRANDOM_CODE = (
    "import os\n"
    "try:\n"
    "    print('ok', len(os.getrandom(4)))\n"
    "except OSError as e:\n"
    "    print('errno', e.errno)\n")


# --- (a) the golden copy of the compiled default ------------------------------------------

class GoldenFilterTest(unittest.TestCase):

    def test_print_policy_matches_golden(self):
        """--print-policy policies/NAME.policy prints exactly tests/golden/NAME.pfc, for the
        default and the parity policy."""
        for name in ("default", "parity"):
            with self.subTest(policy=name):
                proc = subprocess.run([BINARY, "--print-policy", f"policies/{name}.policy"],
                                      cwd=REPO, capture_output=True, timeout=30)
                self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
                self.assertEqual(proc.stderr, b"")
                golden_path = os.path.join(REPO, "tests", "golden", f"{name}.pfc")
                with open(golden_path, "rb") as f:
                    golden = f.read()
                if proc.stdout != golden:
                    diff = "".join(difflib.unified_diff(
                        golden.decode(errors="replace").splitlines(True),
                        proc.stdout.decode(errors="replace").splitlines(True),
                        f"tests/golden/{name}.pfc", "pyexecd --print-policy", n=2))
                    self.fail(f"the compiled {name} policy differs from its golden copy; if "
                              "the change is intended, regenerate it (policies/README.md):\n"
                              + diff[:6000])

    def test_golden_reflects_policy_essentials(self):
        """The golden filter kills i386/x32, refuses with EPERM by default, allows read."""
        with open(GOLDEN) as f:
            pfc = f.read()
        self.assertRegex(pfc, r"# default action\n\s*action ERRNO\(1\);")
        self.assertRegex(pfc, r"# invalid architecture action\n\s*action KILL_PROCESS;")
        self.assertRegex(pfc, r'"read" \(0\)[^\n]*\n\s*if \(\$syscall == 0\)\n\s*action ALLOW;')
        self.assertRegex(pfc, r'"ptrace" \(101\)[^\n]*\n\s*if \(\$syscall == 101\)\n\s*'
                              r'action KILL_PROCESS;')
        self.assertNotIn('"execve"', pfc)


# --- (b) a bad policy stops the server before anything starts -----------------------------

class InvalidPolicyTest(unittest.TestCase):

    def test_fixture_set_is_complete(self):
        """The invalid fixtures cover the brief's 26 cases, each with an expect line."""
        fixtures = invalid_fixtures()
        self.assertGreaterEqual(len(fixtures), 26)
        for path in fixtures:
            line, fragment = expectation(path)
            self.assertGreater(line, 1, path)   # line 1 is the expect comment itself
            self.assertTrue(fragment, path)

    def test_server_refuses_each_invalid_policy(self):
        """Each invalid fixture: exit 2 at once, "path:line: fragment", no listener, no zygote."""
        for path in invalid_fixtures():
            with self.subTest(fixture=os.path.basename(path)):
                line, fragment = expectation(path)
                state = os.path.join(tempfile.gettempdir(),
                                     f"pyexecd-policy-test-{os.getpid()}-{random.getrandbits(40):x}")
                args = [BINARY, "--policy", path, "--listen", "127.0.0.1:0", "--state-dir",
                        state, "--worker-uid-base", str(uid_base()), "--workers", "1",
                        "--pool", "1"]
                try:
                    status, out, err, children, elapsed = run_watching_children(
                        args, BAD_POLICY_EXIT_S)
                    self.assertIsNotNone(status, f"still running after {BAD_POLICY_EXIT_S} s")
                    self.assertEqual(status, 2, err)
                    self.assertIn(f"pyexecd: {path}:{line}: ", err)
                    self.assertIn(fragment, err)
                    self.assertNotIn("listening", err)
                    self.assertNotIn("zygote", err)
                    self.assertEqual(children, {}, "the server started a child (a zygote?)")
                    # Nothing past the policy check ran: not even the state dir was made.
                    self.assertFalse(os.path.exists(state), "the state dir was created")
                finally:
                    shutil.rmtree(state, ignore_errors=True)

    def test_print_policy_refuses_each_invalid_policy(self):
        """--print-policy on each invalid fixture: exit 2, no filter printed, same message."""
        for path in invalid_fixtures():
            with self.subTest(fixture=os.path.basename(path)):
                line, fragment = expectation(path)
                proc = subprocess.run([BINARY, "--print-policy", path], capture_output=True,
                                      text=True, timeout=30)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertEqual(proc.stdout, "")
                self.assertIn(f"pyexecd: {path}:{line}: ", proc.stderr)
                self.assertIn(fragment, proc.stderr)

    def test_unknown_syscall_stops_server(self):
        """`allow frobnicate` (caught by the filter build, not the parser) also exits 2."""
        path = os.path.join(FIXTURES, "invalid", "unknown_syscall.policy")
        state = tempfile.mkdtemp(prefix="pyexecd-policy-test-")
        os.rmdir(state)
        try:
            status, _, err, children, elapsed = run_watching_children(
                [BINARY, "--policy", path, "--listen", "127.0.0.1:0", "--state-dir", state,
                 "--worker-uid-base", str(uid_base())], BAD_POLICY_EXIT_S)
            self.assertEqual(status, 2, err)
            self.assertEqual(err.strip(), f"pyexecd: {path}:3: unknown system call frobnicate")
            self.assertEqual(children, {})
            self.assertFalse(os.path.exists(state))
        finally:
            shutil.rmtree(state, ignore_errors=True)

    def test_missing_policy_file_stops_server(self):
        """--policy naming no file: exit 2 with "path: No such file or directory"."""
        path = os.path.join(tempfile.gettempdir(), f"no-such-{random.getrandbits(48):x}.policy")
        status, _, err, children, _ = run_watching_children(
            [BINARY, "--policy", path, "--listen", "127.0.0.1:0",
             "--worker-uid-base", str(uid_base())], BAD_POLICY_EXIT_S)
        self.assertEqual(status, 2, err)
        self.assertIn(f"pyexecd: {path}: No such file or directory", err)
        self.assertNotIn("listening", err)
        self.assertEqual(children, {})


class ValidFixtureTest(unittest.TestCase):

    def test_valid_fixtures_print(self):
        """Each valid fixture compiles: --print-policy exits 0 with a PFC filter."""
        d = os.path.join(FIXTURES, "valid")
        for name in sorted(os.listdir(d)):
            if not name.endswith(".policy"):
                continue
            with self.subTest(fixture=name):
                proc = subprocess.run([BINARY, "--print-policy", os.path.join(d, name)],
                                      capture_output=True, text=True, timeout=30)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertIn("# pseudo filter code start", proc.stdout)
                self.assertIn('"read"', proc.stdout)


# --- (c) a custom policy takes effect ----------------------------------------------------

class CustomPolicyTest(unittest.TestCase):
    """One server with the custom policy, one with the built-in default to compare."""

    @classmethod
    def setUpClass(cls):
        fd, cls.policy_path = tempfile.mkstemp(prefix="pyexecd-test-", suffix=".policy")
        with os.fdopen(fd, "w") as f:
            f.write(custom_policy_text())
        os.chmod(cls.policy_path, 0o644)
        cls.server = Server("--policy", cls.policy_path, workers=1, pool=1).start()
        try:
            cls.default = Server(workers=1, pool=1).start()
        except Exception:
            cls.server.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
            cls.default.stop()
        finally:
            os.unlink(cls.policy_path)

    def test_health_reports_policy(self):
        """/healthz: deadlineMs 1500, outputBytes 100, policy = the file's path."""
        status, h = self.server.health()
        self.assertEqual(status, 200, h)
        self.assertEqual(h["status"], "ok")
        self.assertEqual(h["limits"]["deadlineMs"], 1500)
        self.assertEqual(h["limits"]["outputBytes"], 100)
        self.assertEqual(h["policy"], self.policy_path)

    def test_default_health_reports_builtin_policy(self):
        """/healthz of a server without --policy names the built-in default and its limits."""
        status, h = self.default.health()
        self.assertEqual(status, 200, h)
        self.assertEqual(h["policy"], "policies/default.policy")
        self.assertEqual(h["limits"]["deadlineMs"], 30000)
        self.assertEqual(h["limits"]["outputBytes"], 1048576)

    def test_getrandom_refused_with_enosys(self):
        """Under the policy, os.getrandom raises OSError ENOSYS (38): the errno rule applies."""
        r = results(self.server.run(GETRANDOM_CODE))
        self.assertEqual(r[0]["outcome"], "OUTCOME_OK", r)
        self.assertEqual(r[0]["output"], f"errno {errno.ENOSYS}\n")

    def test_urandom_falls_back_to_device(self):
        """os.urandom still works: CPython falls back to /dev/urandom when getrandom is ENOSYS."""
        r = results(self.server.run("import os; print(len(os.urandom(4)))"))
        self.assertEqual(r[0], {"outcome": "OUTCOME_OK", "output": "4\n"})

    def test_getrandom_works_under_default(self):
        """Under the default policy os.getrandom returns its 4 bytes."""
        r = results(self.default.run(GETRANDOM_CODE))
        self.assertEqual(r[0], {"outcome": "OUTCOME_OK", "output": "ok 4\n"})

    def test_sleep_hits_policy_deadline(self):
        """A 2 s sleep passes the policy's 1.5 s deadline: DEADLINE_EXCEEDED at ~1.5 s."""
        t0 = time.monotonic()
        status, reply = self.server.execute(
            {"parts": [code_part("import time; print('a'); time.sleep(2); print('b')")]},
            timeout=30)
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 200, reply)
        r = results(reply)
        self.assertEqual(r[0]["outcome"], "OUTCOME_DEADLINE_EXCEEDED", r)
        self.assertEqual(r[0].get("output"), "a\n")
        self.assertEqual(reply.get("executionMetadata", {}).get("limitReached"), "DEADLINE")
        self.assertTrue(1.4 <= elapsed < 1.95, f"reply after {elapsed:.2f} s, want ~1.5 s")

    def test_sleep_under_default_deadline_completes(self):
        """The same 2 s sleep under the default policy (30 s) completes normally."""
        r = results(self.default.run("import time; time.sleep(2); print('done')"))
        self.assertEqual(r[0], {"outcome": "OUTCOME_OK", "output": "done\n"})

    def test_output_cut_at_policy_bytes(self):
        """A 200-byte print is cut to the policy's 100 bytes, with the truncation note."""
        status, reply = self.server.execute({"parts": [code_part("print('x' * 200)")]})
        self.assertEqual(status, 200, reply)
        out = results(reply)[0].get("output", "")
        self.assertTrue(out.startswith("x" * 100), out)
        self.assertNotIn("x" * 101, out)
        self.assertIn("[output truncated: more than 100 bytes were written]", out)
        self.assertEqual(reply.get("executionMetadata", {}).get("limitReached"), "OUTPUT_BYTES",
                         reply)

    def test_output_under_default_not_cut(self):
        """The same print under the default policy comes back whole."""
        r = results(self.default.run("print('x' * 200)"))
        self.assertEqual(r[0], {"outcome": "OUTCOME_OK", "output": "x" * 200 + "\n"})


# --- (d) command-line flags override the policy ------------------------------------------

class FlagOverrideTest(ServerTestCase):
    """The custom policy (deadline_ms 1500, output_bytes 100) with --deadline-ms 4000."""

    WORKERS = 1
    POOL = 1

    @classmethod
    def setUpClass(cls):
        fd, cls.policy_path = tempfile.mkstemp(prefix="pyexecd-test-", suffix=".policy")
        with os.fdopen(fd, "w") as f:
            f.write(custom_policy_text())
        cls.SERVER_FLAGS = ("--policy", cls.policy_path, "--deadline-ms", "4000")
        try:
            super().setUpClass()
        except Exception:
            os.unlink(cls.policy_path)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            os.unlink(cls.policy_path)

    def test_health_shows_flag_deadline(self):
        """/healthz: deadlineMs is the flag's 4000; outputBytes stays the policy's 100."""
        status, h = self.server.health()
        self.assertEqual(status, 200, h)
        self.assertEqual(h["limits"]["deadlineMs"], 4000)
        self.assertEqual(h["limits"]["outputBytes"], 100)
        self.assertEqual(h["policy"], self.policy_path)

    def test_sleep_within_flag_deadline_completes(self):
        """A 2 s sleep, past the policy's 1.5 s but within the flag's 4 s, completes."""
        r = results(self.server.run("import time; time.sleep(2); print('done')", timeout=30))
        self.assertEqual(r[0], {"outcome": "OUTCOME_OK", "output": "done\n"})

    def test_policy_syscall_rules_still_apply(self):
        """The flag changes only the deadline: getrandom is still ENOSYS."""
        r = results(self.server.run(GETRANDOM_CODE))
        self.assertEqual(r[0]["output"], f"errno {errno.ENOSYS}\n")


# --- (e) a kernel that refuses layers ------------------------------------------------------

UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]


def unshare_refusal():
    """None when `unshare --user --map-root-user --mount` works here, else why not."""
    if not shutil.which("unshare"):
        return "no unshare(1) on PATH"
    try:
        proc = subprocess.run(UNSHARE + ["true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare failed: {e}"
    if proc.returncode != 0:
        return f"the kernel refuses an unprivileged user namespace: {proc.stderr.strip()}"
    return None


def NamespacedServer(**kw):
    """A Server started inside a fresh user (and mount) namespace: root there, with no
    real privilege, so the cgroup writes and the worker uid changes it tries may fail."""
    return Server(wrapper=UNSHARE, **kw)


class DegradedKernelTest(unittest.TestCase):

    def setUp(self):
        why = unshare_refusal()
        if why:
            self.skipTest(f"skipped: {why}")

    def test_missing_layers_reported_and_code_runs(self):
        """In a user namespace: /healthz ok, missing layers false and logged, print(1) runs."""
        s = NamespacedServer(workers=1, pool=1, ready_timeout=ZYGOTE_START_S)
        try:
            s.start()
        except RuntimeError as e:
            s.kill()
            self.fail(f"the server did not become ready inside a user namespace: {e}")
        try:
            status, h = s.health()
            self.assertEqual(status, 200, h)
            self.assertEqual(h["status"], "ok", h)
            iso = h["isolation"]
            self.assertTrue(all(isinstance(v, bool) for v in iso.values()), iso)
            # Worker uids past the namespace's one-uid map cannot be taken.
            self.assertIs(iso["uidDrop"], False, iso)
            missing = sorted(k for k, v in iso.items() if v is False)
            log = s.log_text()
            for layer in missing:
                self.assertIn(f"isolation layer {layer} is not available", log)
            for layer in (k for k, v in iso.items() if v):
                self.assertNotIn(f"isolation layer {layer} is not available", log)
            r = results(s.run("print(1)"))
            self.assertEqual(r, [{"outcome": "OUTCOME_OK", "output": "1\n"}])
        finally:
            s.stop(check_leaks=False)   # worker uids are not the harness's range here

    def test_require_isolation_stops_server(self):
        """With --require-isolation in a user namespace: exit 1, naming a missing layer."""
        state = tempfile.mkdtemp(prefix="pyexecd-test-")
        try:
            args = UNSHARE + [BINARY, "--listen", "127.0.0.1:0", "--state-dir", state,
                              "--worker-uid-base", str(uid_base()), "--workers", "1",
                              "--pool", "1", "--require-isolation"]
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True, errors="replace")
            try:
                _, err = proc.communicate(timeout=ZYGOTE_START_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                self.fail(f"still serving {ZYGOTE_START_S} s after start with "
                          f"--require-isolation:\n{err[-3000:]}")
            self.assertEqual(proc.returncode, 1, err)
            self.assertRegex(err, r"pyexecd: isolation layer \w+ is not available and "
                                  r"--require-isolation is set")
            self.assertIn("isolation layer uidDrop is not available and --require-isolation",
                          err)
        finally:
            shutil.rmtree(state, ignore_errors=True)

    def test_parity_without_pid_namespace_stops_server(self):
        """The parity policy runs programs, whose whole tree must end with their worker:
        where the kernel refuses a PID namespace (here: in a user namespace), the server
        stops, exit 1, saying why, rather than serve without that wall."""
        state = tempfile.mkdtemp(prefix="pyexecd-test-")
        try:
            args = UNSHARE + [BINARY, "--listen", "127.0.0.1:0", "--state-dir", state,
                              "--worker-uid-base", str(uid_base()), "--workers", "1",
                              "--pool", "1", "--policy", "parity"]
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True, errors="replace")
            try:
                _, err = proc.communicate(timeout=ZYGOTE_START_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                self.fail(f"still serving {ZYGOTE_START_S} s after start:\n{err[-3000:]}")
            self.assertEqual(proc.returncode, 1, err)
            self.assertIn("isolation layer pidNamespace is not available and the policy runs "
                          "programs, which needs it", err)
        finally:
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
