"""The container files, checked without building: docker/Dockerfile through hadolint (any
finding fails, no ignores), and what the image must be (docker/README.md): multi-stage on
debian:12-slim pinned by tag, a release build, the runtime packages pinned and no build
tools in the last stage, root on purpose, HEALTHCHECK on /healthz, STOPSIGNAL SIGTERM, an
exec-form ENTRYPOINT whose flags the binary has; .dockerignore keeping build output,
tests, .git and results out while everything CMakeLists.txt needs stays in (matched as
Docker matches it); docker/compose.yaml with the sandbox's privileges, a read-only root,
the state dir on tmpfs, the API key secret, a drain-long stop grace period; and
scripts/docker-test.sh parsing as POSIX sh. `make docker-test` builds and runs the image.

Run: python3 -u tests/source/test_dockerfile.py -v
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "docker", "Dockerfile")
COMPOSE = os.path.join(ROOT, "docker", "compose.yaml")
DOCKERIGNORE = os.path.join(ROOT, ".dockerignore")
HADOLINT = os.environ.get("HADOLINT", "/opt/pyexecd/ops-venv/bin/hadolint")

BASE = "debian:12-slim"
# What the last stage must install (the libraries pyexecd links, the venv's interpreter,
# TLS roots, and git: the parity policy lets code run it), each pinned.
RUNTIME_PACKAGES = {"libmicrohttpd12", "libcjson1", "libseccomp2", "libpython3.11", "libcurl4",
                    "python3.11", "ca-certificates", "git"}
# The capabilities the sandbox needs (docker/README.md; the same as deploy/kubernetes/).
CAPABILITIES = {"SYS_ADMIN", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE"}
DRAIN_S = 35          # --drain-ms default
ZYGOTE_STOP_S = 2     # the zygote's own stop after the drain


def instructions(text):
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined
    and comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if cur and line.lstrip().startswith("#"):
            continue    # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def stages(instrs):
    """[(from arguments, [instructions of that stage])]."""
    out = []
    for kw, args in instrs:
        if kw == "FROM":
            out.append((args, []))
        elif out:
            out[-1][1].append((kw, args))
    return out


def binary_flags():
    """The long options of common/config.c."""
    with open(os.path.join(ROOT, "common", "config.c")) as f:
        return set(re.findall(r'\{"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument', f.read()))


def docker_pattern(p):
    """A .dockerignore pattern as a regex, as moby's fileutils reads it: * and ? stay
    within a path element, ** crosses them."""
    p = os.path.normpath(p.strip().lstrip("/"))
    rx, i = "", 0
    while i < len(p):
        if p.startswith("**/", i):
            rx, i = rx + "(?:.*/)?", i + 3
        elif p.startswith("**", i):
            rx, i = rx + ".*", i + 2
        elif p[i] == "*":
            rx, i = rx + "[^/]*", i + 1
        elif p[i] == "?":
            rx, i = rx + "[^/]", i + 1
        else:
            rx, i = rx + re.escape(p[i]), i + 1
    return re.compile(rx + "$")


def ignored_by(patterns, path):
    """Whether Docker leaves `path` (relative, '/'-separated) out of the context: the last
    pattern that matches it or one of its leading directories wins (moby's
    MatchesOrParentMatches)."""
    out = False
    parts = path.split("/")
    for raw in patterns:
        neg = raw.startswith("!")
        rx = docker_pattern(raw[1:] if neg else raw)
        if any(rx.match("/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            out = not neg
    return out


def read_dockerignore():
    with open(DOCKERIGNORE) as f:
        return [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]


def run_sh_n(script):
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    try:
        return subprocess.run(["sh", "-n", f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)


class HadolintTest(unittest.TestCase):
    def setUp(self):
        if not os.access(HADOLINT, os.X_OK):
            self.skipTest("skipped: hadolint not found at %s (make setup-ops installs it)" % HADOLINT)
        # No ignores: neither a config of the user's nor inline pragmas.
        self.tmp = tempfile.mkdtemp()
        self.config = os.path.join(self.tmp, "hadolint.yaml")
        with open(self.config, "w") as f:
            f.write("ignored: []\n")
        self.addCleanup(shutil.rmtree, self.tmp)

    def lint(self, path):
        r = subprocess.run([HADOLINT, "--config", self.config, "--disable-ignore-pragma",
                            "--no-fail", "-f", "json", path],
                           capture_output=True, text=True, timeout=60, cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout or "[]")

    def test_dockerfile_has_no_finding(self):
        self.assertFalse(os.path.exists(os.path.join(ROOT, ".hadolint.yaml")),
                         "no .hadolint.yaml: nothing is ignored")
        findings = self.lint(DOCKERFILE)
        self.assertEqual(findings, [], "\n".join(
            "%s:%s %s %s" % (f["line"], f["column"], f["code"], f["message"]) for f in findings))

    def test_the_linter_finds_what_it_should(self):
        bad = os.path.join(self.tmp, "Dockerfile")
        with open(bad, "w") as f:
            f.write("FROM debian\nRUN apt-get update && apt-get install -y curl\n"
                    "ENTRYPOINT /usr/local/bin/pyexecd --listen 0.0.0.0:8080\n")
        codes = {f["code"] for f in self.lint(bad)}
        self.assertTrue({"DL3006", "DL3008", "DL3015", "DL3025"} <= codes, codes)


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DOCKERFILE) as f:
            cls.text = f.read()
        cls.instrs = instructions(cls.text)
        cls.stages = stages(cls.instrs)
        cls.last = cls.stages[-1][1]

    def of(self, kw, stage=None):
        return [a for k, a in (self.instrs if stage is None else stage) if k == kw]

    def test_multi_stage_on_debian_12_slim_pinned_by_tag(self):
        self.assertGreaterEqual(len(self.stages), 2)
        names = set()
        for args, _ in self.stages:
            words = [w for w in args.split() if not w.startswith("--")]
            image = words[0]
            if image not in names:
                self.assertTrue(image == BASE or image.startswith(BASE + "@sha256:"), args)
            if len(words) == 3 and words[1].upper() == "AS":
                names.add(words[2])
        self.assertIn("build", names)
        # Digests need a registry, which make docker-test does without: say so.
        self.assertIn("digest", self.text)

    def test_the_build_stage_builds_a_release_with_setup_sh(self):
        runs = " ".join(self.of("RUN", self.stages[0][1]))
        self.assertIn("./scripts/setup.sh", runs)
        self.assertRegex(runs, r"cmake -S \. -B \S+ -DPYEXECD_BUILD=release")
        self.assertRegex(runs, r"cmake --build \S+ --target pyexecd")

    def test_the_runtime_stage_installs_pinned_runtime_packages_only(self):
        runs = " ".join(self.of("RUN", self.last))
        m = re.search(r"apt-get install ([^&;]*)", runs)
        self.assertTrue(m, runs)
        words = [w for w in m.group(1).split() if not w.startswith("-")]
        pkgs = {}
        for w in words:
            name, eq, version = w.partition("=")
            self.assertTrue(eq and version, "not pinned: " + w)
            pkgs[name] = version
        self.assertTrue(RUNTIME_PACKAGES <= set(pkgs), RUNTIME_PACKAGES - set(pkgs))
        for name in pkgs:
            self.assertFalse(name.endswith("-dev") or name in {"build-essential", "cmake", "gcc"},
                             "a build tool in the runtime stage: " + name)
        self.assertIn("--no-install-recommends", runs)
        self.assertIn("rm -rf /var/lib/apt/lists/*", runs)
        copies = " ".join(self.of("COPY", self.last))
        self.assertIn("--from=build /opt/pyexecd/venv /opt/pyexecd/venv", copies)
        self.assertRegex(copies, r"--from=build \S+/pyexecd /usr/local/bin/pyexecd")

    def test_root_on_purpose(self):
        # The sandbox needs root in the container (docker/README.md, "Privileges"): no USER
        # line, and the file says why.
        self.assertEqual(self.of("USER"), [])
        self.assertIn("Root in the container, on purpose", self.text)

    def test_healthcheck_stopsignal_expose(self):
        hc = self.of("HEALTHCHECK", self.last)
        self.assertEqual(len(hc), 1)
        cmd = json.loads(hc[0][hc[0].index("CMD") + 3:].strip())
        self.assertEqual(cmd[0], "curl")
        self.assertIn("http://127.0.0.1:8080/healthz", cmd)
        self.assertEqual(self.of("STOPSIGNAL", self.last), ["SIGTERM"])
        self.assertEqual(self.of("EXPOSE", self.last), ["8080"])

    def test_entrypoint_is_exec_form_with_flags_the_binary_has(self):
        entry = json.loads(self.of("ENTRYPOINT", self.last)[0])
        cmd = json.loads(self.of("CMD", self.last)[0])
        self.assertEqual(entry[:3], ["/usr/local/bin/pyexecd", "--listen", "0.0.0.0:8080"])
        flags = binary_flags()
        for a in entry[1:] + cmd:
            if a.startswith("--"):
                self.assertIn(a[2:], flags)
        # Beyond loopback the server needs keys: the default arguments name the secret.
        self.assertEqual(cmd, ["--api-key-file", "/run/secrets/pyexecd_api_keys"])


class DockerignoreTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.patterns = read_dockerignore()

    def out(self, path):
        return ignored_by(self.patterns, path)

    def test_the_matcher(self):
        self.assertTrue(ignored_by(["build*"], "build-asan/x/y.o"))
        self.assertTrue(ignored_by(["tests"], "tests/unit/a.c"))
        self.assertFalse(ignored_by(["tests", "!tests/CMakeLists.txt"], "tests/CMakeLists.txt"))
        self.assertTrue(ignored_by(["**/__pycache__"], "a/b/__pycache__/c.pyc"))
        self.assertFalse(ignored_by(["*.md"], "policies/README.md"))
        self.assertFalse(ignored_by(["fuzz/corpus"], "fuzz/fuzz_utf8.c"))

    def test_build_output_tests_git_results_and_keys_stay_out(self):
        for path in ["build/pyexecd", "build-fuzz/CMakeCache.txt", "build-asan/x.o",
                     "build-memcheck/pyexecd", ".git/HEAD", "tests/unit/test_wire.c",
                     "tests/integration/harness.py", "bench/results/soak.md",
                     "fuzz/corpus/utf8/seed", "fuzz/crashes/x", "docker/api-keys",
                     "sandbox/__pycache__/x.pyc"]:
            self.assertTrue(self.out(path), path + " would be sent to the build")

    def test_what_the_build_reads_stays_in(self):
        need = {"CMakeLists.txt", "main.c", "scripts/setup.sh", "sandbox/python/requirements.lock",
                "tests/CMakeLists.txt", "fuzz/CMakeLists.txt"}
        with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
            cmake = f.read()
        # Every source the top CMakeLists.txt names, and what it embeds.
        need |= set(re.findall(r"\b((?:common|sandbox|server|policies|cmake)/[\w.-]+\.\w+)", cmake))
        with open(os.path.join(ROOT, "fuzz", "CMakeLists.txt")) as f:
            fuzz = f.read()
        targets = re.search(r"set\(FUZZ_TARGETS(.*?)\)", fuzz, re.S).group(1).split()
        need |= {"fuzz/fuzz_%s.c" % t for t in targets} | {"fuzz/replay_main.c", "fuzz/fuzz_util.c"}
        for d in ("common", "sandbox", "server", "policies", "cmake"):
            for name in os.listdir(os.path.join(ROOT, d)):
                if os.path.isfile(os.path.join(ROOT, d, name)):
                    need.add(d + "/" + name)
        for path in sorted(need):
            self.assertTrue(os.path.exists(os.path.join(ROOT, path)), path)
            self.assertFalse(self.out(path), path + " is needed by the build but ignored")

    def test_nothing_of_tests_but_its_cmakelists(self):
        for dirpath, _, files in os.walk(os.path.join(ROOT, "tests")):
            for name in files:
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT).replace(os.sep, "/")
                self.assertEqual(self.out(rel), rel != "tests/CMakeLists.txt", rel)


class ComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            import yaml
        except ImportError:
            raise unittest.SkipTest("skipped: PyYAML is missing (scripts/setup.sh installs python3-yaml)")
        with open(COMPOSE) as f:
            cls.raw = f.read()
        cls.svc = yaml.safe_load(cls.raw)["services"]["pyexecd"]
        cls.cmd = cls.svc["command"]

    def arg(self, flag):
        return self.cmd[self.cmd.index(flag) + 1]

    def test_privileges(self):
        self.assertEqual(self.svc["cap_drop"], ["ALL"])
        self.assertEqual(set(self.svc["cap_add"]), CAPABILITIES)
        self.assertIn("seccomp=unconfined", self.svc["security_opt"])
        self.assertIn("apparmor=unconfined", self.svc["security_opt"])
        self.assertNotIn("privileged", self.svc)
        self.assertIs(self.svc["init"], True)

    def test_read_only_root_state_on_tmpfs(self):
        self.assertIs(self.svc["read_only"], True)
        state = self.arg("--state-dir")
        self.assertIn(state, [t.split(":")[0] for t in self.svc["tmpfs"]])

    def test_keys_from_a_secret(self):
        secret = self.svc["secrets"][0]
        self.assertEqual(self.arg("--api-key-file"), "/run/secrets/" + secret)
        self.assertNotIn("--allow-unauthenticated", self.cmd)
        self.assertEqual(self.arg("--listen"), "0.0.0.0:8080")

    def test_flags_the_binary_has(self):
        flags = binary_flags()
        for a in self.cmd:
            if a.startswith("--"):
                self.assertIn(a[2:], flags)

    def test_stop_and_health(self):
        m = re.fullmatch(r"(\d+)s", self.svc["stop_grace_period"])
        self.assertTrue(m)
        self.assertGreaterEqual(int(m.group(1)), max(40, DRAIN_S + ZYGOTE_STOP_S + 1))
        self.assertEqual(self.svc["stop_signal"], "SIGTERM")
        self.assertIn("http://127.0.0.1:8080/healthz", self.svc["healthcheck"]["test"])

    def test_entrypoint_script(self):
        entry = self.svc["entrypoint"]
        self.assertEqual(entry[:2], ["/bin/sh", "-c"])
        script = entry[2]
        # Compose interpolates $NAME and ${NAME}: every $ of the script is written $$.
        self.assertIsNone(re.search(r"(?<!\$)\$(?!\$)", script.replace("$$", "")), script)
        script = script.replace("$$", "$")
        self.assertIn('exec /usr/local/bin/pyexecd "$@"', script)
        r = run_sh_n(script)
        self.assertEqual(r.returncode, 0, r.stderr)


class DockerTestScriptTest(unittest.TestCase):
    def test_posix_sh(self):
        path = os.path.join(ROOT, "scripts", "docker-test.sh")
        with open(path) as f:
            text = f.read()
        self.assertTrue(text.startswith("#!/bin/sh\n"))
        self.assertRegex(text, r"\nset -eu\n")
        self.assertTrue(os.access(path, os.X_OK))
        r = subprocess.run(["sh", "-n", path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
