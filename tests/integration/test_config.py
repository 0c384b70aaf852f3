"""Settings from flags, PYEXECD_* variables and a config file (README "Configuration"):
the precedence (flag > environment > file > default) seen in what the running server
does and reports, the zygote getting the merged settings, booleans, --model from the
environment, every refusal naming its source and setting, the file's size limit, and
--help, --check-config and the README agreeing on every setting and its default."""

import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (BINARY, OUTSIDE_UID_CODE, BareServer, results,  # noqa: E402
                     server_environment)
from limits import LIMITS  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = os.path.join(ROOT, "README.md")
# Flags that are actions, not settings: no default to state.
ACTIONS = {"help", "version", "print-policy", "check-config"}


def env_name(flag):
    return "PYEXECD_" + flag.upper().replace("-", "_")


def run(args, env=None, conf=None, timeout=60):
    """Runs the binary with args, our environment (its PYEXECD_ variables dropped) plus
    env; conf: a config file's text, named by PYEXECD_CONFIG. Returns the CompletedProcess."""
    full = dict(server_environment(), **(env or {}))
    path = None
    if conf is not None:
        f = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        f.write(conf)
        f.close()
        path = full["PYEXECD_CONFIG"] = f.name
    try:
        return subprocess.run([BINARY] + list(args), capture_output=True, text=True,
                              timeout=timeout, env=full)
    finally:
        if path:
            os.unlink(path)


def report(args=(), env=None, conf=None):
    """--check-config's settings: {name: (value, origin)} (repeatable ones: a list), the
    commented-out ones with value None; and the whole output."""
    out = run(["--check-config"] + list(args), env=env, conf=conf)
    assert out.returncode == 0, out.stderr
    settings = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^(# )?([a-z][a-z0-9-]*) = (.*?)\s+# (.*)$", line)
        if not m:
            continue
        value = None if m.group(1) else m.group(3)
        if m.group(2) == "model":
            settings.setdefault("model", [])
            if value is not None:
                settings["model"].append((value, m.group(4)))
        else:
            settings[m.group(2)] = (value, m.group(4))
    return settings, out.stdout


def write_conf(test, text):
    f = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    f.write(text)
    f.close()
    test.addCleanup(os.unlink, f.name)
    return f.name


def help_blocks():
    """{flag: its --help text} for every flag --help lists."""
    out = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    blocks, flag = {}, None
    for line in out.stdout.splitlines():
        m = re.match(r"^  --([a-z][a-z0-9-]*)", line)
        if m:
            flag = m.group(1)
            blocks[flag] = line
        elif flag and line.startswith("    "):
            blocks[flag] += " " + line.strip()
        else:
            flag = None
    return blocks, out.stdout


def readme_rows():
    """{flag: (environment cell, default cell)} of README's Configuration table."""
    with open(README) as f:
        text = f.read()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        m = len(cells) == 4 and re.match(r"^`--([a-z][a-z0-9-]*)[^`]*`$", cells[0])
        if m:
            rows[m.group(1)] = (cells[1], cells[2])
    return rows


# --- the running server -------------------------------------------------------------------

class PrecedenceTest(unittest.TestCase):
    """One server whose settings come from all four places at once."""

    @classmethod
    def setUpClass(cls):
        cls.conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        cls.server = BareServer("--listen", "127.0.0.1:0", "--deadline-ms", "1500",
                                pool=1)
        s = cls.server
        cls.conf.write(
            "# every source at once\n"
            f"state-dir = {s.state_dir}\n"
            f"worker-uid-base = {s.uid_base}\n"
            "workers = 3\n"
            "queue = 7\n"
            "max-sessions = 5\n"
            "deadline-ms = 2500\n"
            "pool = 2\n"
            "listen = 127.0.0.1:8080\n"
            "model = gamma=echo\n")
        cls.conf.close()
        s.extra_env = {"PYEXECD_CONFIG": cls.conf.name, "PYEXECD_MAX_SESSIONS": "6",
                       "PYEXECD_DEADLINE_MS": "2000", "PYEXECD_POOL": "1",
                       "PYEXECD_MODEL": "alpha=echo beta=echo",
                       "PYEXECD_RUNNER_FRAME": "/srv/runner.py:7"}
        s.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        os.unlink(cls.conf.name)

    def test_each_setting_from_the_highest_source(self):
        status, h = self.server.health()
        self.assertEqual(status, 200)
        self.assertEqual(h["limits"]["deadlineMs"], 1500)   # flag over env and file
        self.assertEqual(h["sessions"]["max"], 6)           # env over file
        self.assertEqual(h["pool"]["target"], 1)            # env over file
        self.assertEqual(h["workers"]["max"], 3)            # file
        self.assertEqual(h["queue"]["max"], 7)              # file
        self.assertNotEqual(self.server.port, 8080)         # --listen over the file's

    def test_the_deadline_applies_to_an_execution(self):
        start = time.monotonic()
        reply = self.server.run("while True: pass")
        took = time.monotonic() - start
        self.assertEqual(results(reply)[0]["outcome"], "OUTCOME_DEADLINE_EXCEEDED")
        self.assertGreater(took, 1.4)
        self.assertLess(took, 2.0 + 3)   # the flag's 1.5 s, not the env's 2 s or the file's

    def test_the_zygote_has_the_merged_settings(self):
        # The runner frame (from the environment) is the zygote's alone to write, and the
        # uid base (from the file) is the zygote's to hand out.
        failed = results(self.server.run("1/0"))[0]
        self.assertEqual(failed["outcome"], "OUTCOME_FAILED")
        self.assertIn('File "/srv/runner.py", line 7, in _run_python', failed["output"])
        uid = int(results(self.server.run(OUTSIDE_UID_CODE))[0]["output"])
        self.assertTrue(self.server.uid_base <= uid < self.server.uid_base + 1000, uid)

    def test_nothing_of_the_settings_reaches_the_sandbox(self):
        code = ("import os\n"
                "print(sorted(k for k in os.environ if k.startswith('PYEXECD')))\n"
                "print(open('/proc/self/cmdline', 'rb').read().split(b'\\0')[0].decode())\n")
        out = results(self.server.run(code))[0]["output"].splitlines()
        self.assertEqual(out[0], "[]")
        self.assertEqual(out[1], "pyexecd-zygote")

    def test_models_from_the_environment_only(self):
        status, body = self.server.get("/v1beta/models?pageSize=1000")
        self.assertEqual(status, 200, body)
        names = sorted(m["name"] for m in body["models"])
        self.assertEqual(names, ["models/alpha", "models/beta", "models/echo"])


# --- --check-config: booleans, origins, what is ignored -----------------------------------

class CheckConfigTest(unittest.TestCase):

    def test_origins(self):
        conf = "workers = 3\nmax-sessions = 5\npool = 1\n"
        settings, _ = report(["--workers", "4"], env={"PYEXECD_MAX_SESSIONS": "6"}, conf=conf)
        self.assertEqual(settings["workers"], ("4", "command line"))
        self.assertEqual(settings["max-sessions"], ("6", "PYEXECD_MAX_SESSIONS"))
        self.assertEqual(settings["pool"][0], "1")
        self.assertRegex(settings["pool"][1], r"\.conf:3$")
        self.assertEqual(settings["queue"], (str(LIMITS["LIMIT_QUEUE"]), "default"))

    def test_booleans(self):
        conf = "require-isolation = true\nallow-unauthenticated = false\n"
        settings, _ = report(conf=conf)
        self.assertEqual(settings["require-isolation"][0], "true")
        self.assertRegex(settings["require-isolation"][1], r"\.conf:1$")
        self.assertEqual(settings["allow-unauthenticated"][0], "false")
        # false in the environment overrides the file's true; a flag turns it on again
        settings, _ = report(env={"PYEXECD_REQUIRE_ISOLATION": "false",
                                  "PYEXECD_ALLOW_UNAUTHENTICATED": "true"}, conf=conf)
        self.assertEqual(settings["require-isolation"], ("false", "PYEXECD_REQUIRE_ISOLATION"))
        self.assertEqual(settings["allow-unauthenticated"],
                         ("true", "PYEXECD_ALLOW_UNAUTHENTICATED"))
        settings, _ = report(["--require-isolation"],
                             env={"PYEXECD_REQUIRE_ISOLATION": "false"}, conf=conf)
        self.assertEqual(settings["require-isolation"], ("true", "command line"))

    def test_models_never_merged(self):
        conf = "model = f1=echo\nmodel = f2=echo\n"
        settings, _ = report(conf=conf)
        self.assertEqual([v for v, _ in settings["model"]], ["f1=echo", "f2=echo"])
        env = {"PYEXECD_MODEL": " a=echo\tb=echo "}
        settings, _ = report(env=env, conf=conf)
        self.assertEqual(settings["model"], [("a=echo", "PYEXECD_MODEL"),
                                             ("b=echo", "PYEXECD_MODEL")])
        settings, _ = report(["--model", "c=echo"], env=env, conf=conf)
        self.assertEqual(settings["model"], [("c=echo", "command line")])

    def test_variables_naming_no_setting_are_ignored(self):
        # The project's scripts and tests set these around the binary.
        env = {"PYEXECD_BIN": BINARY, "PYEXECD_SANITIZED": "0", "PYEXECD_URL": "http://x",
               "PYEXECD_PORT": "1", "PYEXECD_VENV": "/opt/v", "PYEXECD_MAX_SESION": "3",
               "PYEXECD_TEST_SECRET_TOKEN": "s3cr3t"}
        settings, text = report(env=env)
        self.assertEqual(settings["max-sessions"][1], "default")
        line = next(ln for ln in text.splitlines() if ln.startswith("# ignored"))
        for name in env:
            self.assertIn(name, line)
        self.assertNotIn("s3cr3t", text)

    def test_an_empty_variable_is_unset(self):
        settings, _ = report(env={"PYEXECD_WORKERS": ""}, conf="workers = 3\n")
        self.assertEqual(settings["workers"][0], "3")

    def test_config_flag_over_the_variable(self):
        path = write_conf(self, "queue = 9\n")
        settings, text = report(["--config", path], conf="queue = 8\n")
        self.assertEqual(settings["queue"], ("9", f"{path}:1"))
        self.assertIn(f"# config file: {path} (--config)", text)
        settings, text = report(["--config="], conf="queue = 8\n")
        self.assertEqual(settings["queue"][1], "default")
        self.assertIn("# config file: none", text)

    def test_help_whatever_the_file(self):
        out = run(["--help"], env={"PYEXECD_CONFIG": "/nonexistent/pyexecd.conf",
                                   "PYEXECD_WORKERS": "x"})
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("PYEXECD_<FLAG>", out.stdout)


# --- refusals -------------------------------------------------------------------------------

class RefusalTest(unittest.TestCase):
    """Each stops the real start (no --check-config) with exit 2 and a message naming the
    source and the setting, before anything listens."""

    def refused(self, want, args=(), env=None, conf=None):
        out = run(["--listen", "127.0.0.1:0"] + list(args), env=env, conf=conf)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertNotIn("listening", out.stderr)
        self.assertIn(want, out.stderr)
        return out.stderr

    def test_file(self):
        for conf, want in (
            ("workers = 2\nmax-sesions = 3\n", ":2: max-sesions: unknown setting (see --help)"),
            ("workers = x\n", ":1: workers: bad value 'x' (see --help)"),
            ("listen = nowhere\n", ":1: listen: bad value 'nowhere' (see --help)"),
            ("# ok\n\nworkers 4\n", ":3: workers: no '=' (a line is name = value"),
            ("require-isolation\n", ":1: require-isolation: no '='"),
            ("require-isolation = yes\n", ":1: require-isolation: bad value 'yes': true or false"),
            ("--workers = 2\n", ":1: --workers: unknown setting (a name is a flag without "
                                "its dashes)"),
            ("no-such-flag = 1\n", ":1: no-such-flag: unknown setting"),
            ("workers =\n", ":1: workers: no value"),
            ("workers = 2\nworkers = 3\n", ":2: workers: given again (line 1)"),
            ("failed-stdout = both\n", ":1: failed-stdout: bad value 'both'"),
        ):
            with self.subTest(conf=conf):
                err = self.refused(want, conf=conf)
                self.assertRegex(err, r"pyexecd: /\S+\.conf:\d+: ")

    def test_environment(self):
        for env, want in (
            ({"PYEXECD_WORKERS": "x"}, "PYEXECD_WORKERS: bad value 'x' (see --help)"),
            ({"PYEXECD_MAX_SESSIONS": "-1"}, "PYEXECD_MAX_SESSIONS: bad value '-1'"),
            ({"PYEXECD_DEADLINE_MS": "1"}, "PYEXECD_DEADLINE_MS: bad value '1'"),
            ({"PYEXECD_STATE_DIR": "relative"}, "PYEXECD_STATE_DIR: bad value 'relative'"),
            ({"PYEXECD_REQUIRE_ISOLATION": "1"},
             "PYEXECD_REQUIRE_ISOLATION: bad value '1': true or false"),
            ({"PYEXECD_MODEL": "nokind"}, "--model nokind: expected NAME=SPEC"),
        ):
            with self.subTest(env=env):
                self.refused(want, env=env)

    def test_missing_file(self):
        self.refused("PYEXECD_CONFIG: /nonexistent/pyexecd.conf: cannot read: No such file",
                     env={"PYEXECD_CONFIG": "/nonexistent/pyexecd.conf"})
        self.refused("--config: /nonexistent/other.conf: cannot read: No such file",
                     args=["--config", "/nonexistent/other.conf"])
        self.refused("PYEXECD_CONFIG: /tmp: not a regular file", env={"PYEXECD_CONFIG": "/tmp"})

    def test_file_size(self):
        """A file of LIMIT_CONFIG_FILE_BYTES is read; one byte more is refused."""
        limit = LIMITS["LIMIT_CONFIG_FILE_BYTES"]
        head = "queue = 9\n"
        filler = limit - len(head)
        lines = []
        while filler > 0:
            n = min(filler, 80)
            lines.append("#" * (n - 1) + "\n" if n >= 2 else "\n")
            filler -= n
        text = head + "".join(lines)
        self.assertEqual(len(text), limit)
        settings, _ = report(conf=text)
        self.assertEqual(settings["queue"][0], "9")
        self.refused(f"not a regular file of at most {limit} bytes", conf=text + "\n")

    def test_command_line_only(self):
        for flag in ("zygote", "server-pid", "help", "version", "print-policy",
                     "check-config"):
            with self.subTest(flag=flag, source="environment"):
                self.refused(f"{env_name(flag)}: --{flag} is taken only from the command line",
                             env={env_name(flag): "true" if flag != "server-pid" else "1"})
            with self.subTest(flag=flag, source="file"):
                self.refused(f":1: {flag}: taken only from the command line",
                             conf=f"{flag} = 1\n")
        self.refused(":1: config: taken only from the command line (or PYEXECD_CONFIG)",
                     conf="config = /etc/other.conf\n")


# --- --help, --check-config and the README ------------------------------------------------

class DocumentedTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.help, cls.help_text = help_blocks()
        cls.readme = readme_rows()
        cls.settings, cls.report_text = report()

    def test_help_gives_every_settings_default(self):
        for flag, text in self.help.items():
            if flag not in ACTIONS:
                with self.subTest(flag=flag):
                    self.assertIn("default", text)
        for words in ("PYEXECD_<FLAG>", "name = value", "Precedence", "true or false"):
            self.assertIn(words, self.help_text)

    def test_readme_lists_what_help_lists(self):
        self.assertEqual(set(self.readme), set(self.help))
        for flag, (env, default) in self.readme.items():
            with self.subTest(flag=flag):
                if flag in ACTIONS:
                    self.assertEqual(env, "—")
                else:
                    self.assertEqual(env, f"`{env_name(flag)}`")
                    self.assertTrue(default, "no default")

    def test_check_config_reports_every_setting(self):
        settings = {f for f in self.readme if f not in ACTIONS and f != "config"}
        self.assertEqual(set(self.settings), settings)

    def test_defaults_agree(self):
        """Each default the README and --help state is the one the binary uses."""
        cores = str(os.sysconf("SC_NPROCESSORS_ONLN"))
        policy = dict(re.findall(r"(deadline|output) (\d+)", self.report_text.splitlines()[-1]))
        policy_values = {"deadline-ms": policy["deadline"], "output-bytes": policy["output"],
                         "worker-memory-mib": str(LIMITS["LIMIT_WORKER_AS_HEADROOM"] >> 20)}
        for flag, (env, default) in self.readme.items():
            if flag in ACTIONS or flag == "config":
                continue
            value = self.settings[flag]
            if flag == "model":   # repeatable: none given
                self.assertEqual(value, [])
                continue
            if re.search(rf"^# {flag} = \(see --help\)", self.report_text, re.M):
                continue   # config_value_text has no case for it (yet): nothing to compare
            with self.subTest(flag=flag, default=default):
                m = re.fullmatch(r"`([^`]*)`", default)
                if m:
                    self.assertEqual(m.group(1).replace("UID", str(os.geteuid())), value[0])
                elif default == "one per core":
                    self.assertEqual(value[0], cores)
                elif default.startswith("the policy's: "):
                    self.assertIsNone(value[0])
                    self.assertEqual(default.split(": ")[1], policy_values[flag])
                self.assertEqual(value[1], "default")
        # --help's numbers, where it gives one, are these too.
        for flag, text in self.help.items():
            m = re.search(r"default:? (?:the policy's, )?(\d+)(?![\d.:])", text)
            if m and flag in self.settings:
                with self.subTest(flag=flag):
                    want = self.settings[flag][0] or policy_values[flag]
                    self.assertEqual(m.group(1), want)


if __name__ == "__main__":
    unittest.main()
