"""The deployment files: deploy/kubernetes/*.yaml against the Kubernetes schemas
(kubernetes-validate, offline and strict) and against what pyexecd needs of them (probes,
drain time, privileges, state dir, keys, autoscaling, selectors); the pyexecd container's
entrypoint run with a stand-in binary; the router's nginx configuration checked by nginx
and driven end to end against name server and backends on loopback; the systemd unit
through systemd-analyze verify. Every --flag these files pass must be one the binary has.

Run: PYEXECD_BIN=build/pyexecd python3 -u tests/integration/test_deploy_manifests.py -v
"""

import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "kubernetes")
SYSTEMD = os.path.join(ROOT, "deploy", "systemd")
BINARY = harness.BINARY

VALIDATOR = os.environ.get("KUBERNETES_VALIDATE",
                           "/opt/pyexecd/ops-venv/bin/kubernetes-validate")
# The oldest Kubernetes the manifests are written for (the appArmorProfile field and the
# preStop sleep action are 1.30's) and the newest whose schemas the validator ships.
K8S_VERSIONS = ("1.30.0", "1.37.0")

# Flags being added as this is written (log levels): an older binary's --help may lack
# it; every other flag the files pass must be there.
COMING_FLAGS = {"log-level"}

# The capabilities the sandbox needs (deploy/kubernetes/README.md, "Privileges"): the
# Deployment and the unit grant the same.
CAPABILITIES = {"SYS_ADMIN", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE"}
DEFAULT_DRAIN_MS = 35000
ZYGOTE_STOP_S = 2          # LIMIT_ZYGOTE_STOP_GRACE_MS: the zygote's own stop after the drain
HEX32 = "4f0c9b6e2a8d41f7b3e5c1d9a0b7e6f2"


def manifest_files():
    return sorted(os.path.join(K8S, f) for f in os.listdir(K8S) if f.endswith(".yaml"))


def load_manifests():
    """{(kind, name): document} of every document of deploy/kubernetes/*.yaml."""
    docs = {}
    for path in manifest_files():
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in docs, f"{key} defined twice"
                docs[key] = doc
    return docs


def help_text():
    out = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def flags_in(text):
    return set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", text))


def arg_value(args, flag):
    """The value after --flag (or of --flag=value) in an argument list, or None."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def unit_lines(path):
    """[(section, key, value)] of a systemd unit file, in order."""
    section, out = None, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            out.append((section, key.strip(), value.strip()))
    return out


def conf_settings(path):
    """{name: value} of a pyexecd config file (`name = value` lines)."""
    settings = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r"([a-z][a-z0-9-]*) = (\S.*)", line)
            assert m, f"{path}:{n}: not a `name = value` line: {line!r}"
            settings[m.group(1)] = m.group(2)
    return settings


class Manifests:
    """The manifests, loaded once, with the parts the tests read."""

    docs = load_manifests()
    server = docs[("Deployment", "pyexecd")]
    router = docs[("Deployment", "pyexecd-router")]
    server_pod = server["spec"]["template"]
    router_pod = router["spec"]["template"]
    container = server_pod["spec"]["containers"][0]
    args = container["args"]
    entrypoint = docs[("ConfigMap", "pyexecd-entrypoint")]["data"]["entrypoint.sh"]
    router_template = docs[("ConfigMap", "pyexecd-router")]["data"]["nginx.conf.template"]

    @classmethod
    def volume_at(cls, path):
        """The pod volume mounted at path in the server container."""
        mount = next(m for m in cls.container["volumeMounts"] if m["mountPath"] == path)
        return next(v for v in cls.server_pod["spec"]["volumes"] if v["name"] == mount["name"])

    @classmethod
    def port_number(cls, container, port):
        if isinstance(port, int):
            return port
        return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


class SchemaTest(unittest.TestCase):
    """kubernetes-validate, offline, with --strict: an unknown field is an error."""

    def setUp(self):
        if not os.access(VALIDATOR, os.X_OK):
            self.skipTest(f"skipped: no {VALIDATOR} (scripts/setup-ops.sh installs it)")

    def validate(self, *paths, version):
        return subprocess.run([VALIDATOR, "--strict", "-k", version, *paths],
                              capture_output=True, text=True, timeout=300)

    def test_every_manifest_validates(self):
        n = len(Manifests.docs)
        for version in K8S_VERSIONS:
            with self.subTest(version=version):
                out = self.validate(*manifest_files(), version=version)
                text = out.stdout + out.stderr
                self.assertEqual(out.returncode, 0, text)
                # Every document was checked against a schema (none skipped).
                self.assertEqual(len(re.findall(r" passed for resource ", text)), n, text)

    def test_a_misspelled_field_is_refused(self):
        cases = [
            ("deployment.yaml", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:"),
            ("hpa.yaml", "averageUtilization:", "averageUtilisation:"),
            ("services.yaml", "publishNotReadyAddresses:", "publishNotReadyAddress:"),
        ]
        with tempfile.TemporaryDirectory() as tmp:
            for name, field, typo in cases:
                with self.subTest(file=name, typo=typo):
                    with open(os.path.join(K8S, name)) as f:
                        text = f.read()
                    self.assertIn(field, text)
                    bad = os.path.join(tmp, name)
                    with open(bad, "w") as f:
                        f.write(text.replace(field, typo, 1))
                    out = self.validate(bad, version=K8S_VERSIONS[0])
                    self.assertNotEqual(out.returncode, 0, out.stdout + out.stderr)
                    self.assertIn(typo.rstrip(":"), out.stdout + out.stderr)


class ServerDeploymentTest(unittest.TestCase):
    """What the server needs of its Deployment, read with PyYAML."""

    m = Manifests

    def test_everything_is_in_the_namespace(self):
        ns = [name for kind, name in self.m.docs if kind == "Namespace"]
        self.assertEqual(len(ns), 1)
        for (kind, name), doc in self.m.docs.items():
            if kind != "Namespace":
                self.assertEqual(doc["metadata"].get("namespace"), ns[0], (kind, name))

    def test_probes(self):
        c = self.m.container
        listen_port = int(arg_value(self.m.args, "--listen").rsplit(":", 1)[1])
        # Liveness is /healthz (200 while the process serves HTTP); starting up and taking
        # work are readiness, /readyz (503 until the zygote is ready).
        for probe, path in (("startupProbe", "/readyz"), ("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            with self.subTest(probe=probe):
                get = c[probe]["httpGet"]
                self.assertEqual(get["path"], path)
                self.assertEqual(self.m.port_number(c, get["port"]), listen_port)
        # The startup probe waits as long as the server waits for a zygote (120 s).
        s = c["startupProbe"]
        self.assertGreaterEqual(s["periodSeconds"] * s["failureThreshold"], 120)

    def test_grace_period_outlasts_prestop_and_drain(self):
        drain_ms = int(arg_value(self.m.args, "--drain-ms") or DEFAULT_DRAIN_MS)
        pre = self.m.container["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = self.m.server_pod["spec"]["terminationGracePeriodSeconds"]
        self.assertGreater(grace, pre + drain_ms / 1000 + ZYGOTE_STOP_S)

    def test_security_context(self):
        sc = self.m.container["securityContext"]
        self.assertIs(sc["privileged"], False)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertEqual(set(sc["capabilities"]["add"]), CAPABILITIES)
        self.assertEqual(sc["seccompProfile"]["type"], "Unconfined")
        self.assertEqual(sc["appArmorProfile"]["type"], "Unconfined")
        self.assertEqual(sc["runAsUser"], 0)
        # The API server refuses allowPrivilegeEscalation: false beside SYS_ADMIN.
        self.assertIsNot(sc.get("allowPrivilegeEscalation"), False)
        for c in self.m.router_pod["spec"]["containers"]:
            self.assertIs(c["securityContext"]["readOnlyRootFilesystem"], True)
            self.assertEqual(c["securityContext"]["capabilities"]["drop"], ["ALL"])
            self.assertIs(c["securityContext"]["allowPrivilegeEscalation"], False)

    def test_state_dir_is_a_memory_emptydir(self):
        state = arg_value(self.m.args, "--state-dir")
        self.assertTrue(state and state.startswith("/"))
        self.assertEqual(self.m.volume_at(state)["emptyDir"]["medium"], "Memory")

    def test_api_keys_come_from_a_secret_file(self):
        path = arg_value(self.m.args, "--api-key-file")
        vol = self.m.volume_at(os.path.dirname(path))
        secret = vol["secret"]
        self.assertEqual(secret["secretName"], "pyexecd-api-keys")
        keys = [i["path"] for i in secret.get("items", [])] or [os.path.basename(path)]
        self.assertIn(os.path.basename(path), keys)
        self.assertNotIn("--allow-unauthenticated", self.m.args)
        with open(os.path.join(K8S, "README.md")) as f:
            self.assertIn(f"--from-file={os.path.basename(path)}=", f.read())

    def test_workers_match_the_cpu_request(self):
        cpu = self.m.container["resources"]["requests"]["cpu"]
        self.assertEqual(arg_value(self.m.args, "--workers"), str(int(cpu)))
        self.assertNotIn("cpu", self.m.container["resources"].get("limits", {}))

    def test_prometheus_scrapes_metrics_on_the_serving_port(self):
        a = self.m.server_pod["metadata"]["annotations"]
        self.assertEqual(a["prometheus.io/scrape"], "true")
        self.assertEqual(a["prometheus.io/path"], "/metrics")
        self.assertEqual(int(a["prometheus.io/port"]),
                         self.m.port_number(self.m.container, "http"))

    def test_the_entrypoint_is_the_configmap_script(self):
        cmd = self.m.container["command"]
        self.assertEqual(cmd[0], "/bin/sh")
        vol = self.m.volume_at(os.path.dirname(cmd[1]))
        self.assertEqual(vol["configMap"]["name"], "pyexecd-entrypoint")
        self.assertEqual(os.path.basename(cmd[1]), "entrypoint.sh")
        env = {e["name"]: e for e in self.m.container["env"]}
        self.assertEqual(env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP")


class ScalingAndSelectorsTest(unittest.TestCase):
    m = Manifests

    def test_hpa_scales_on_cpu_and_queue_depth(self):
        hpa = self.m.docs[("HorizontalPodAutoscaler", "pyexecd")]
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        ref = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((ref["apiVersion"], ref["kind"], ref["name"]),
                         ("apps/v1", "Deployment", "pyexecd"))
        metrics = hpa["spec"]["metrics"]
        self.assertIn("cpu", [x["resource"]["name"] for x in metrics if x["type"] == "Resource"])
        self.assertIn("pyexecd_queue_depth",
                      [x["pods"]["metric"]["name"] for x in metrics if x["type"] == "Pods"])
        # One pod may be down (the PDB) and one still serves.
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)

    def test_pdbs_select_their_deployments_pods(self):
        for pdb, dep, other in (("pyexecd", self.m.server, self.m.router),
                                ("pyexecd-router", self.m.router, self.m.server)):
            with self.subTest(pdb=pdb):
                sel = self.m.docs[("PodDisruptionBudget", pdb)]["spec"]["selector"]["matchLabels"]
                self.assertTrue(selects(sel, dep["spec"]["template"]["metadata"]["labels"]))
                self.assertFalse(selects(sel, other["spec"]["template"]["metadata"]["labels"]))
                self.assertEqual(sel, dep["spec"]["selector"]["matchLabels"])

    def test_services_select_their_pods_and_ports(self):
        for svc, dep, other in (("pyexecd", self.m.server, self.m.router),
                                ("pyexecd-replicas", self.m.server, self.m.router),
                                ("pyexecd-router", self.m.router, self.m.server)):
            with self.subTest(service=svc):
                spec = self.m.docs[("Service", svc)]["spec"]
                self.assertTrue(selects(spec["selector"], dep["spec"]["template"]["metadata"]["labels"]))
                self.assertFalse(selects(spec["selector"], other["spec"]["template"]["metadata"]["labels"]))
                c = dep["spec"]["template"]["spec"]["containers"][0]
                for p in spec["ports"]:
                    self.assertIn(p["targetPort"], [q["name"] for q in c["ports"]])
        headless = self.m.docs[("Service", "pyexecd-replicas")]["spec"]
        self.assertEqual(headless["clusterIP"], "None")
        self.assertIs(headless["publishNotReadyAddresses"], True)


class EntrypointTest(unittest.TestCase):
    """The container's command, run with a stand-in for the binary that records its
    argv. In a mount namespace of its own: on a cgroup v1 host the script remounts the
    cgroup controllers, which must not touch this host's."""

    def setUp(self):
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("skipped: needs root and unshare(1) for a private mount namespace")
        self.tmp = tempfile.mkdtemp(prefix="pyexecd-entry-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.argv_file = os.path.join(self.tmp, "argv")
        stub = os.path.join(self.tmp, "pyexecd")
        with open(stub, "w") as f:
            f.write(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\0" "$a"; done > {self.argv_file}\n')
        os.chmod(stub, 0o755)
        script = Manifests.entrypoint
        self.assertIn("exec /usr/local/bin/pyexecd ", script)
        self.script = os.path.join(self.tmp, "entrypoint.sh")
        with open(self.script, "w") as f:
            f.write(script.replace("/usr/local/bin/pyexecd", stub))

    def run_entry(self, pod_ip, *args):
        env = {k: v for k, v in os.environ.items() if k != "POD_IP"}
        if pod_ip is not None:
            env["POD_IP"] = pod_ip
        return subprocess.run(["unshare", "--mount", "--propagation", "private",
                               "/bin/sh", self.script, *args],
                              env=env, capture_output=True, text=True, timeout=30)

    def test_syntax(self):
        out = subprocess.run(["/bin/sh", "-n", self.script], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_replica_id_is_the_dashed_pod_ip_before_the_args(self):
        out = self.run_entry("10.1.2.3", *Manifests.args)
        self.assertEqual(out.returncode, 0, out.stderr)
        with open(self.argv_file) as f:
            argv = f.read().split("\0")[:-1]
        self.assertEqual(argv, ["--replica-id", "10-1-2-3"] + Manifests.args)

    def test_no_ipv4_pod_ip_stops_it(self):
        for ip in (None, "", "fd00::1", "10.1.2.3 --x", "10..2.3", ".10.1.2", "10.1.2.3."):
            with self.subTest(pod_ip=ip):
                out = self.run_entry(ip, "--listen", "0.0.0.0:8080")
                self.assertNotEqual(out.returncode, 0)
                self.assertIn("POD_IP", out.stderr)
                self.assertFalse(os.path.exists(self.argv_file))


# --- the router -------------------------------------------------------------------------

def router_env():
    """The router container's environment: {name: value}, fieldRefs as a cluster fills
    them in (the namespace), and the name servers the image's entrypoint exports."""
    c = Manifests.router_pod["spec"]["containers"][0]
    env = {}
    for e in c["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace":
            env[e["name"]] = Manifests.router["metadata"]["namespace"]
    return env


def render_router(overrides=None):
    """The nginx.conf the image's entrypoint would render: envsubst of the variables that
    NGINX_ENVSUBST_FILTER lets through."""
    env = dict(router_env(), NGINX_LOCAL_RESOLVERS="127.0.0.1")
    env.update(overrides or {})
    allowed = re.compile(env["NGINX_ENVSUBST_FILTER"])
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", Manifests.router_template))
    for name in names:
        assert allowed.search(name), f"${{{name}}} would not be substituted"
        assert name in env, f"${{{name}}} has no value in the router's environment"
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env[m.group(1)],
                  Manifests.router_template)


def session_regex():
    """The router's regex for session paths, in Python's dialect."""
    m = re.search(r'location ~ "(\^/v1/sessions/\(\?<pyexecd_replica>[^"]+)"',
                  Manifests.router_template)
    assert m, "no session location in the router's configuration"
    return re.compile(m.group(1).replace("(?<", "(?P<"))


class RouterConfigTest(unittest.TestCase):

    def test_session_paths_name_their_replica(self):
        rx = session_regex()
        routed = {
            f"/v1/sessions/10-1-2-3.{HEX32}": "10-1-2-3",
            f"/v1/sessions/10-1-2-3.{HEX32}:execute": "10-1-2-3",
            f"/v1/sessions/a.{HEX32}": "a",
            f"/v1/sessions/{'a' * 63}.{HEX32}": "a" * 63,
            f"/v1/sessions/pyexecd-7f9c-x2x.{HEX32}": "pyexecd-7f9c-x2x",
        }
        for path, replica in routed.items():
            with self.subTest(path=path):
                m = rx.search(path)
                self.assertTrue(m)
                self.assertEqual(m.group("pyexecd_replica"), replica)
        for path in (f"/v1/sessions/{HEX32}", f"/v1/sessions/evil.example.com.{HEX32}",
                     f"/v1/sessions/10-1-2-3.{HEX32.upper()}", f"/v1/sessions/-a.{HEX32}",
                     f"/v1/sessions/a-.{HEX32}", f"/v1/sessions/{'a' * 64}.{HEX32}",
                     f"/v1/sessions/10-1-2-3.{HEX32}:run", f"/v1/sessions/10-1-2-3.{HEX32}/x",
                     f"/v1/sessions/10-1-2-3.{HEX32[:-1]}", f"/v1/sessions/10_1.{HEX32}",
                     "/v1/sessions"):
            with self.subTest(path=path):
                self.assertIsNone(rx.search(path))

    def test_proxy_targets_are_the_services(self):
        t = Manifests.router_template
        env = router_env()
        headless = Manifests.docs[("Service", "pyexecd-replicas")]
        balanced = Manifests.docs[("Service", "pyexecd")]
        self.assertIn("proxy_pass http://$pyexecd_replica." + headless["metadata"]["name"] +
                      ".${ROUTER_NAMESPACE}.svc.${ROUTER_CLUSTER_DOMAIN}:${ROUTER_PYEXECD_PORT};", t)
        self.assertIn("set $pyexecd_any " + balanced["metadata"]["name"] +
                      ".${ROUTER_NAMESPACE}.svc.${ROUTER_CLUSTER_DOMAIN}:${ROUTER_PYEXECD_PORT};", t)
        for svc in (headless, balanced):
            self.assertEqual(int(env["ROUTER_PYEXECD_PORT"]), svc["spec"]["ports"][0]["port"])
        self.assertEqual(env["ROUTER_NAMESPACE"], headless["metadata"]["namespace"])
        # The largest body the server takes (28 MiB) passes nginx.
        size = re.search(r"client_max_body_size (\d+)m;", t)
        self.assertGreater(int(size.group(1)), 28)

    def test_router_ports_match_its_config(self):
        c = Manifests.router_pod["spec"]["containers"][0]
        conf = render_router()
        for port in c["ports"]:
            self.assertIn(f"listen {port['containerPort']};", conf)
        # The probes ask the router's own server, not pyexecd through it.
        health = re.search(r"listen (\d+);\s*location = /healthz", conf)
        for probe in ("readinessProbe", "livenessProbe"):
            get = c[probe]["httpGet"]
            self.assertEqual(get["path"], "/healthz")
            self.assertEqual(Manifests.port_number(c, get["port"]), int(health.group(1)))

    def test_nginx_accepts_the_rendered_config(self):
        if not shutil.which("nginx"):
            self.skipTest("skipped: nginx is not installed")
        with tempfile.TemporaryDirectory() as tmp:
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(render_router().replace("/tmp/", tmp + "/"))
            out = subprocess.run(["nginx", "-t", "-c", conf, "-e", "/dev/stderr"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)


class FakeNameServer(threading.Thread):
    """A name server on loopback answering A queries from a table, NXDOMAIN for every
    other name, and remembering what it was asked."""

    def __init__(self, table):
        super().__init__(daemon=True)
        self.table = {k.lower(): v for k, v in table.items()}
        self.asked = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def run(self):
        while True:
            try:
                query, addr = self.sock.recvfrom(512)
            except OSError:
                return
            reply = self.answer(query)
            if reply:
                self.sock.sendto(reply, addr)

    def answer(self, q):
        if len(q) < 17:
            return None
        qid = struct.unpack(">H", q[:2])[0]
        i, labels = 12, []
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        question = q[12:i + 5]
        name = ".".join(labels).lower()
        self.asked.append(name)
        ip = self.table.get(name)
        if ip and qtype == 1:
            answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 5, 4) + socket.inet_aton(ip)
            return struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + answer
        rcode = 0 if ip else 3
        return struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, 0, 0, 0) + question

    def close(self):
        self.sock.close()


class EchoBackend:
    """An HTTP server on ip:port answering every request with what it received."""

    def __init__(self, name, ip, port):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                reply = json.dumps({"backend": name, "method": self.command,
                                    "path": self.path, "bodyBytes": len(body)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_DELETE = handle_one

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer((ip, port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


free_port = harness.free_port


def common_free_port(ips):
    """A TCP port free on every address of ips (the router reaches all replicas on one)."""
    for _ in range(50):
        port = free_port(ips[0])
        try:
            for ip in ips:
                with socket.socket() as s:
                    s.bind((ip, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on " + ", ".join(ips))


class Router:
    """nginx running the router's rendered configuration on loopback, its names looked
    up at a FakeNameServer; listen addresses and file paths moved to loopback and a temp
    dir, nothing else changed."""

    def __init__(self, dns_port, pyexecd_port):
        self.tmp = tempfile.mkdtemp(prefix="pyexecd-router-")
        self.port, self.health_port = free_port(), free_port()
        conf = render_router({"NGINX_LOCAL_RESOLVERS": f"127.0.0.1:{dns_port}",
                              "ROUTER_PYEXECD_PORT": str(pyexecd_port)})
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
        conf = conf.replace("listen 8081;", f"listen 127.0.0.1:{self.health_port};")
        conf = conf.replace("/tmp/", self.tmp + "/")
        path = os.path.join(self.tmp, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["nginx", "-c", path, "-e", "/dev/stderr",
                                      "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)

        def up_or_gone():
            return (self.proc.poll() is not None or
                    self.request("GET", "/healthz", port=self.health_port)[0] == 200)

        try:
            harness.wait_for(up_or_gone, 20, "nginx to serve", interval=0.05)
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: " + self.proc.stderr.read())
        except (AssertionError, RuntimeError):
            self.close()
            raise

    def request(self, method, path, body=None, port=None):
        return harness.http_request("127.0.0.1", port or self.port, method, path, body,
                                    timeout=30)[:2]

    def close(self):
        harness.stop_process(self.proc, signal.SIGQUIT)
        self.proc.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def cluster_name(host):
    """The cluster DNS name the router gives a host of the namespace."""
    env = router_env()
    return f"{host}.{env['ROUTER_NAMESPACE']}.svc.{env['ROUTER_CLUSTER_DOMAIN']}"


class RouterEndToEndTest(unittest.TestCase):
    """The rendered router in a real nginx, its cluster names served by a fake name
    server: two replicas' pod records under the headless Service and the balanced
    Service, each an HTTP server on its own loopback address."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("nginx"):
            raise unittest.SkipTest("skipped: nginx is not installed")
        ips = {"10-1-2-3": "127.0.0.2", "10-1-2-4": "127.0.0.3", "any": "127.0.0.4"}
        port = common_free_port(list(ips.values()))
        cls.backends = [EchoBackend(name, ip, port) for name, ip in ips.items()]
        cls.dns = FakeNameServer({
            cluster_name("10-1-2-3.pyexecd-replicas"): ips["10-1-2-3"],
            cluster_name("10-1-2-4.pyexecd-replicas"): ips["10-1-2-4"],
            cluster_name("pyexecd"): ips["any"]})
        cls.dns.start()
        try:
            cls.router = Router(cls.dns.port, port)
        except Exception:
            cls.tearDownClass(router=False)
            raise

    @classmethod
    def tearDownClass(cls, router=True):
        if router:
            cls.router.close()
        cls.dns.close()
        for b in cls.backends:
            b.close()

    def test_session_calls_reach_their_replica(self):
        for method, path, body, backend in (
                ("GET", f"/v1/sessions/10-1-2-3.{HEX32}", None, "10-1-2-3"),
                ("GET", f"/v1/sessions/10-1-2-4.{HEX32}?key=k", None, "10-1-2-4"),
                ("POST", f"/v1/sessions/10-1-2-4.{HEX32}:execute", b"x" * (2 << 20), "10-1-2-4"),
                ("DELETE", f"/v1/sessions/10-1-2-3.{HEX32}", None, "10-1-2-3")):
            with self.subTest(method=method, path=path):
                status, reply = self.router.request(method, path, body)
                self.assertEqual(status, 200, reply)
                self.assertEqual(reply, {"backend": backend, "method": method, "path": path,
                                         "bodyBytes": len(body or b"")})

    def test_everything_else_reaches_any_replica(self):
        for method, path in (("POST", "/v1/sessions"), ("POST", "/v1/execute"),
                             ("POST", "/v1beta/models/echo:generateContent"),
                             ("GET", "/healthz"), ("GET", "/metrics")):
            with self.subTest(path=path):
                status, reply = self.router.request(method, path, b"{}" if method == "POST" else None)
                self.assertEqual(status, 200, reply)
                self.assertEqual((reply["backend"], reply["path"]), ("any", path))

    def test_a_gone_replica_is_a_google_404(self):
        status, reply = self.router.request("GET", f"/v1/sessions/10-9-9-9.{HEX32}")
        self.assertEqual(status, 404, reply)
        self.assertEqual(reply["error"]["status"], "NOT_FOUND")
        self.assertIn(cluster_name("10-9-9-9.pyexecd-replicas"), self.dns.asked)

    def test_an_id_naming_no_replica_is_refused_without_a_lookup(self):
        for path in (f"/v1/sessions/evil.example.com.{HEX32}", f"/v1/sessions/{HEX32}",
                     f"/v1/sessions/10-1-2-3.{HEX32.upper()}:execute"):
            with self.subTest(path=path):
                before = list(self.dns.asked)
                status, reply = self.router.request("POST", path, b"{}")
                self.assertEqual(status, 404, reply)
                self.assertEqual(reply["error"]["status"], "NOT_FOUND")
                self.assertEqual(self.dns.asked, before)


class RealSessionsThroughRouterTest(unittest.TestCase):
    """Two real servers as two replicas behind the router: a session made through it
    lives on, call after call, in the replica that created it."""

    def test_session_state_persists_through_the_router(self):
        if not shutil.which("nginx"):
            self.skipTest("skipped: nginx is not installed")
        ips = {"10-1-2-3": "127.0.0.2", "10-1-2-4": "127.0.0.3"}
        port = common_free_port(list(ips.values()))
        servers = []
        for replica, ip in ips.items():
            s = harness.Server("--replica-id", replica, host=ip, port=port, workers=1, pool=1)
            self.addCleanup(s.stop)
            servers.append(s.start())
        dns = FakeNameServer({cluster_name(f"{r}.pyexecd-replicas"): ip for r, ip in ips.items()}
                             | {cluster_name("pyexecd"): ips["10-1-2-4"]})
        dns.start()
        self.addCleanup(dns.close)
        router = Router(dns.port, port)
        self.addCleanup(router.close)
        status, session = router.request("POST", "/v1/sessions", b"{}")
        self.assertEqual(status, 200, session)
        sid = session["name"].split("/", 1)[1]
        self.assertRegex(sid, r"^10-1-2-4\.[0-9a-f]{32}$")
        for code, output in (("x = 41", None), ("print(x + 1)", "42\n")):
            body = json.dumps(harness.code_part(code)).encode()
            status, reply = router.request("POST", f"/v1/sessions/{sid}:execute", body)
            self.assertEqual(status, 200, reply)
            self.assertEqual(harness.results(reply)[0].get("output"), output)
        self.assertEqual(router.request("DELETE", f"/v1/sessions/{sid}")[0], 200)
        self.assertEqual(router.request("GET", f"/v1/sessions/{sid}")[0], 404)


class SessionIdTest(unittest.TestCase):
    """The session ids the server makes are the ones the router routes."""

    def test_session_name_carries_the_replica_id(self):
        with harness.Server("--replica-id", "10-1-2-3", workers=1, pool=1) as s:
            status, session, _ = s.request("POST", "/v1/sessions", "{}")
            self.assertEqual(status, 200, session)
            sid = session["name"].split("/", 1)[1]
            m = session_regex().search(f"/v1/sessions/{sid}:execute")
            self.assertTrue(m, sid)
            self.assertEqual(m.group("pyexecd_replica"), "10-1-2-3")


# --- the systemd unit -------------------------------------------------------------------

UNIT = os.path.join(SYSTEMD, "pyexecd.service")
CONF = os.path.join(SYSTEMD, "pyexecd.conf")


class SystemdUnitTest(unittest.TestCase):

    def verify(self, unit_text):
        """systemd-analyze verify of unit_text, ExecStart pointed at the built binary
        (verify checks that it exists): (exit code, the lines naming the unit)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "pyexecd.service")
            with open(path, "w") as f:
                f.write(unit_text.replace("/usr/local/bin/pyexecd", os.path.abspath(BINARY)))
            # Logs go to the journal unless told otherwise: to stderr, to be read.
            env = dict(os.environ, SYSTEMD_LOG_TARGET="console", SYSTEMD_LOG_LEVEL="info")
            out = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                                 text=True, timeout=120, env=env)
            lines = [ln for ln in (out.stdout + out.stderr).splitlines()
                     if "pyexecd.service" in ln]
            return out.returncode, lines

    def setUp(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("skipped: no systemd-analyze (scripts/setup-ops.sh installs systemd)")
        with open(UNIT) as f:
            self.unit = f.read()

    def test_verify_passes_without_warnings(self):
        rc, lines = self.verify(self.unit)
        self.assertEqual(rc, 0, lines)
        self.assertEqual(lines, [])

    def test_verify_sees_a_misspelled_key(self):
        self.assertIn("\nKillMode=", self.unit)
        rc, lines = self.verify(self.unit.replace("\nKillMode=", "\nKilMode=", 1))
        self.assertTrue(any("KilMode" in ln for ln in lines), lines)

    def test_stop_and_privileges(self):
        settings = {}
        for section, key, value in unit_lines(UNIT):
            settings.setdefault(key, []).append(value)
        one = {k: v[-1] for k, v in settings.items()}
        self.assertIn(one["Type"], ("simple", "exec"))   # no sd_notify
        self.assertEqual(one["KillSignal"], "SIGTERM")
        self.assertEqual(one["KillMode"], "mixed")       # SIGTERM to the server alone
        self.assertEqual(one["Restart"], "on-failure")
        drain_ms = int(conf_settings(CONF).get("drain-ms", DEFAULT_DRAIN_MS))
        self.assertGreater(int(one["TimeoutStopSec"].rstrip("s")), drain_ms / 1000 + ZYGOTE_STOP_S)
        exec_args = one["ExecStart"].split()
        self.assertEqual(exec_args[0], "/usr/local/bin/pyexecd")
        self.assertEqual(arg_value(exec_args, "--state-dir"), "/run/" + one["RuntimeDirectory"])
        self.assertEqual(set(one["CapabilityBoundingSet"].split()),
                         {"CAP_" + c for c in CAPABILITIES})
        for key in ("User", "DynamicUser", "PrivateUsers", "NoNewPrivileges", "RestrictNamespaces",
                    "ProtectControlGroups", "ProtectKernelTunables", "ProtectHostname",
                    "UMask", "MemoryDenyWriteExecute", "SystemCallFilter", "PrivateNetwork"):
            with self.subTest(key=key):
                self.assertNotIn(key, settings)

    def test_config_file_lines(self):
        # A flag without a value in --help is a boolean: true or false in the file.
        booleans = set(re.findall(r"^\s+--([a-z][a-z0-9-]*)\s{2,}\S", help_text(), re.M))
        self.assertIn("require-isolation", booleans)
        for name, value in conf_settings(CONF).items():
            if name in booleans:
                with self.subTest(name=name):
                    self.assertIn(value, ("true", "false"))
        self.assertIn(f"PYEXECD_CONFIG={os.path.join('/etc/pyexecd', os.path.basename(CONF))}",
                      self.unit)


class ShippedConfigTest(unittest.TestCase):
    """The real binary takes the shipped pyexecd.conf as the unit gives it
    (PYEXECD_CONFIG), and a flag on the command line wins over it."""

    def env(self):
        env = harness.server_environment()
        env["PYEXECD_CONFIG"] = CONF
        return env

    def test_check_config_accepts_it(self):
        out = subprocess.run([BINARY, "--check-config", "--listen", "127.0.0.1:0"],
                             capture_output=True, text=True, timeout=60, env=self.env())
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"# config file: {CONF} (PYEXECD_CONFIG)", out.stdout)
        shown = {}
        for line in out.stdout.splitlines():
            m = re.match(r"^([a-z][a-z0-9-]*) = (.*?)\s+# (.*)$", line)
            if m:
                shown[m.group(1)] = (m.group(2), m.group(3))
        self.assertEqual(shown["listen"], ("127.0.0.1:0", "command line"))
        with open(CONF) as f:
            lines = f.read().splitlines()
        for name, value in conf_settings(CONF).items():
            if name == "listen":
                continue
            with self.subTest(name=name):
                line = next(i for i, ln in enumerate(lines, 1) if ln.startswith(name + " "))
                self.assertEqual(shown[name], (value, f"{CONF}:{line}"))

    def test_serves_with_it(self):
        # As the unit runs it, but on a free loopback port (the flag beats the file's
        # listen) and without --require-isolation (this host may lack a layer).
        server = harness.BareServer("--listen", "127.0.0.1:0",
                                    pool=int(conf_settings(CONF).get("pool", 2)))
        server.args += ["--state-dir", server.state_dir,
                        "--worker-uid-base", str(server.uid_base)]
        server.extra_env = {"PYEXECD_CONFIG": CONF}
        with server:
            settings = conf_settings(CONF)
            self.assertNotEqual(server.port, int(settings["listen"].rsplit(":", 1)[1]))
            status, h = server.health()
            self.assertEqual(status, 200)
            self.assertEqual(h["pool"]["target"], int(settings["pool"]))
            self.assertEqual(h["queue"]["max"], int(settings["queue"]))
            self.assertEqual(h["sessions"]["max"], int(settings["max-sessions"]))
            reply = server.run("print(6 * 7)")
            self.assertEqual(harness.results(reply)[0]["output"], "42\n")


# --- flags ------------------------------------------------------------------------------

class FlagsTest(unittest.TestCase):
    """Every flag the deployment files pass is one `pyexecd --help` lists."""

    def used_flags(self):
        used = {}
        for a in Manifests.args:
            if a.startswith("--"):
                used.setdefault(a[2:].split("=")[0], "deployment.yaml args")
        for f in flags_in(Manifests.entrypoint):
            used.setdefault(f, "entrypoint.sh")
        exec_start = [v for _, k, v in unit_lines(UNIT) if k == "ExecStart"]
        for f in flags_in(" ".join(exec_start)):
            used.setdefault(f, "pyexecd.service ExecStart")
        for name in conf_settings(CONF):
            used.setdefault(name, "pyexecd.conf")
        return used

    def test_every_flag_is_the_binarys(self):
        known = flags_in(help_text())
        used = self.used_flags()
        self.assertIn("replica-id", used)
        for flag, where in sorted(used.items()):
            with self.subTest(flag=flag, where=where):
                if flag in COMING_FLAGS and flag not in known:
                    continue   # being added now (see COMING_FLAGS)
                self.assertIn(flag, known, f"--{flag} ({where}) is not in pyexecd --help")


if __name__ == "__main__":
    unittest.main()
