#!/bin/sh
# make docker-test: builds docker/Dockerfile with podman, offline from a local base, and runs
# the image's own files with docker/compose.yaml's entrypoint, command, capabilities,
# read-only root, tmpfs and key secret, then a smoke test. Run as root on Debian 12.
#
#   1. tools        debootstrap, podman (and what it needs), installed with apt when missing
#   2. base image   debootstrap --variant=minbase bookworm from this machine's apt mirror
#                   (cached in $CACHE), trimmed as the official slim image is, imported as
#                   debian:12-slim: the Dockerfile's FROM, with no registry
#   3. build        podman build --pull=never --isolation chroot --format docker (OCI
#                   images have no HEALTHCHECK)
#   4. run          podman run (runc); if the engine cannot run it here, the image mounted
#                   (podman image mount) and run in new mount, PID, network, UTS and IPC
#                   namespaces, entered by pivot_root (a chroot would cost the workers
#                   their user namespace), with the same five capabilities (setpriv)
#   5. smoke        in the container's own network namespace (nothing leaves the machine):
#                   /healthz, /readyz, the image's HEALTHCHECK, a key check, print(1+1),
#                   a matplotlib plot, generateContent with the echo model, then SIGTERM
#                   and exit status 0
#
# Options: --fresh-base (debootstrap again), --no-podman-run (straight to the fallback),
# --rm-image (remove pyexecd:test afterwards; kept by default, so that a rerun builds from
# cache). The debootstrap, podman's storage and the logs are in $CACHE
# (PYEXECD_DOCKER_TEST_CACHE, default /var/cache/pyexecd-docker-test): rm -rf it to start over.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${PYEXECD_DOCKER_TEST_CACHE:-/var/cache/pyexecd-docker-test}
IMAGE=localhost/pyexecd:test
BASE=debian:12-slim
FRESH_BASE=0
TRY_PODMAN_RUN=1
KEEP_IMAGE=1

for arg in "$@"; do
    case "$arg" in
    --fresh-base) FRESH_BASE=1 ;;
    --no-podman-run) TRY_PODMAN_RUN=0 ;;
    --rm-image) KEEP_IMAGE=0 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "docker-test: unknown option $arg (--help)" >&2; exit 2 ;;
    esac
done

STEP=start
T0=$(date +%s)
step() { STEP=$1; echo "== $STEP"; }
pass() { echo "PASS: $STEP${1:+: $1}"; }
fail() { echo "FAIL: $STEP: $*" >&2; exit 1; }
cannot() { echo "CANNOT RUN: $STEP: $*" >&2; exit 2; }
elapsed() { echo $(($(date +%s) - $1)); }

TMP=""
DRIVER=""
CONTAINER=""
MOUNTED=""
UNSHARE_PID=""
cleanup() {
    rc=$?
    set +e
    if [ -n "$UNSHARE_PID" ] && kill -0 "$UNSHARE_PID" 2>/dev/null; then
        # Its child is PID 1 of the namespace: killing it ends every process in there,
        # and the mounts go with the namespace.
        child=$(cat "/proc/$UNSHARE_PID/task/$UNSHARE_PID/children" 2>/dev/null)
        for p in $child; do kill -KILL "$p"; done
        kill -KILL "$UNSHARE_PID" 2>/dev/null
        wait "$UNSHARE_PID" 2>/dev/null
    fi
    [ -z "$CONTAINER" ] || pm rm -f -t 0 "$CONTAINER" >/dev/null 2>&1
    [ -z "$MOUNTED" ] || pm image unmount "$IMAGE" >/dev/null 2>&1
    if [ "$KEEP_IMAGE" = 0 ] && [ -n "$DRIVER" ]; then
        pm rmi -f "$IMAGE" >/dev/null 2>&1
    fi
    [ -z "$TMP" ] || rm -rf "$TMP"
    if [ "$rc" -eq 0 ]; then
        echo "docker-test: PASS ($(elapsed "$T0") s)"
    else
        echo "docker-test: FAIL at step '$STEP' (exit $rc); logs in $CACHE/logs" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. tools ----
step "tools"
[ "$(uname -s)" = Linux ] || cannot "needs Linux"
[ "$(id -u)" -eq 0 ] || cannot "needs root: debootstrap, podman's storage and the mounts"
command -v apt-get >/dev/null || cannot "needs apt-get (Debian) to install debootstrap and podman"
PKGS="debootstrap podman runc uidmap fuse-overlayfs catatonit python3 python3-yaml util-linux iproute2 curl"
# shellcheck source=scripts/debian_packages.sh
. "$ROOT/scripts/debian_packages.sh"
# shellcheck disable=SC2086
debian_packages_install docker-test $PKGS
mkdir -p "$CACHE/logs"
TMP=$(mktemp -d /tmp/pyexecd-docker-test.XXXXXX)
chmod 0755 "$TMP"

# Storage of this test's own (base image, build cache), apart from the machine's: overlay
# where the kernel has it for this file system, else vfs (slower, copies every layer).
pm() { podman --root "$CACHE/storage-$DRIVER" --runroot "/run/pyexecd-docker-test-$DRIVER" --storage-driver "$DRIVER" "$@"; }
DRIVER=overlay
if ! pm info >"$CACHE/logs/podman-info.log" 2>&1; then
    echo "docker-test: the overlay storage driver fails here ($(tail -1 "$CACHE/logs/podman-info.log")); using vfs"
    DRIVER=vfs
    pm info >"$CACHE/logs/podman-info.log" 2>&1 \
        || cannot "podman cannot start with vfs storage either: $(tail -1 "$CACHE/logs/podman-info.log")"
fi
pass "$(podman --version), $(debootstrap --version 2>/dev/null | head -1), storage $DRIVER"

# ---- 2. base image ----
step "base image"
# The mirrors this machine's apt uses (deb822 .sources or one-line lists), so the
# debootstrap and the image's apt go where this machine's do.
mirrors=$(python3 - <<'EOF'
import glob, re
main, sec = None, None
def see(uri, suites):
    global main, sec
    uri = uri.rstrip("/")
    for s in suites:
        if s == "bookworm" and not main:
            main = uri
        if s == "bookworm-security" and not sec:
            sec = uri
for path in glob.glob("/etc/apt/sources.list.d/*.sources"):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        f = dict((m.group(1).lower(), m.group(2).split())
                 for m in re.finditer(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
        if "deb" in f.get("types", []) and f.get("enabled", ["yes"])[0] != "no":
            for u in f.get("uris", []):
                see(u, f.get("suites", []))
for path in ["/etc/apt/sources.list"] + glob.glob("/etc/apt/sources.list.d/*.list"):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        w = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
        if len(w) >= 3 and w[0] == "deb":
            see(w[1], [w[2]])
main = main or "http://deb.debian.org/debian"
print(main, sec or re.sub(r"/debian$", "/debian-security", main))
EOF
)
MIRROR=${mirrors% *}
SECURITY=${mirrors#* }
ROOTFS="$CACHE/rootfs-bookworm-minbase"
STAMP="$ROOTFS/.pyexecd-docker-test"
WANT="minbase bookworm $MIRROR $SECURITY v2"
if [ "$FRESH_BASE" = 1 ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    rm -rf "$ROOTFS" "$ROOTFS.tmp"
    t=$(date +%s)
    echo "docker-test: debootstrap --variant=minbase bookworm from $MIRROR"
    debootstrap --variant=minbase bookworm "$ROOTFS.tmp" "$MIRROR" >"$CACHE/logs/debootstrap.log" 2>&1 \
        || fail "debootstrap failed: $(tail -3 "$CACHE/logs/debootstrap.log" | tr '\n' ' ')"
    # Trimmed as the official slim image is: no docs (copyrights kept), man pages or
    # locales, now and in later installs; apt's lists and caches dropped; the security
    # suite and updates the official image's sources name; no host files.
    r="$ROOTFS.tmp"
    cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    printf 'Acquire::GzipIndexes "true";\n' >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
    printf 'Acquire::Languages "none";\n' >"$r/etc/apt/apt.conf.d/docker-no-languages"
    printf 'APT::Install-Recommends "false";\n' >"$r/etc/apt/apt.conf.d/docker-no-recommends"
    find "$r/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* \
        "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
        "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/etc/apt/sources.list "$r"/var/cache/debconf/*-old
    : >"$r/etc/resolv.conf"
    : >"$r/etc/hostname"
    : >"$r/etc/machine-id"
    cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    echo "$WANT" >"$r/.pyexecd-docker-test"
    mv "$r" "$ROOTFS"
    echo "docker-test: debootstrap and trim: $(elapsed "$t") s, $(du -sh --exclude=.pyexecd-docker-test "$ROOTFS" | cut -f1)"
    pm rmi -f "localhost/$BASE" "docker.io/library/$BASE" >/dev/null 2>&1 || :
fi
if ! pm image exists "$BASE"; then
    # Through a file, not a pipe: sh has no pipefail to see tar fail.
    tar -C "$ROOTFS" --numeric-owner --exclude=./.pyexecd-docker-test -cf "$TMP/base.tar" . \
        || fail "tar of $ROOTFS failed"
    pm import --change 'CMD ["bash"]' --message "debootstrap minbase bookworm ($MIRROR)" \
        "$TMP/base.tar" "$BASE" >"$CACHE/logs/import.log" 2>&1 \
        || fail "podman import: $(tail -1 "$CACHE/logs/import.log")"
    rm -f "$TMP/base.tar"
    # Also under the name an unqualified FROM resolves to, whatever the search order.
    pm tag "localhost/$BASE" "docker.io/library/$BASE"
fi
# Every FROM of the Dockerfile (but its own stages) must be here: --pull=never.
# shellcheck disable=SC2013
for from in $(awk 'toupper($1) == "FROM" { for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; break } }' "$ROOT/docker/Dockerfile" | sort -u); do
    case "$from" in build) continue ;; esac
    pm image exists "$from" || fail "the Dockerfile's FROM $from is not in the local storage"
done
pass "$BASE from debootstrap (mirror $MIRROR), $(pm image inspect "$BASE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}')"

# ---- 3. build ----
step "build"
# PyPI may sit behind a TLS-intercepting proxy whose CA only this machine's bundle holds:
# handed to the build as a secret, never written to a layer.
secret=""
[ ! -s /etc/ssl/certs/ca-certificates.crt ] || secret="--secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt"
t=$(date +%s)
# shellcheck disable=SC2086
if ! pm build --pull=never --isolation chroot --format docker --layers \
        $secret -f "$ROOT/docker/Dockerfile" -t "$IMAGE" "$ROOT" >"$CACHE/logs/build.log" 2>&1; then
    tail -40 "$CACHE/logs/build.log" >&2
    fail "podman build failed after $(elapsed "$t") s (the whole log: $CACHE/logs/build.log)"
fi
BUILD_S=$(elapsed "$t")
SIZE=$(pm image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}')
pass "$IMAGE in $BUILD_S s, $SIZE"

step "image config"
cfg=$(pm image inspect "$IMAGE" --format '{{json .Config}}')
hc=$(pm image inspect "$IMAGE" --format '{{json .HealthCheck}}')   # podman keeps it apart
python3 - "$cfg" "$hc" <<'EOF' || fail "the image's configuration is not what the Dockerfile says"
import json, sys
c, hc = json.loads(sys.argv[1]), json.loads(sys.argv[2]) or {}
ok = True
def check(what, cond):
    global ok
    print(("  ok   " if cond else "  BAD  ") + what)
    ok &= bool(cond)
check("ENTRYPOINT is the binary with --listen 0.0.0.0:8080", c.get("Entrypoint", [])[:3] ==
      ["/usr/local/bin/pyexecd", "--listen", "0.0.0.0:8080"])
check("STOPSIGNAL SIGTERM", c.get("StopSignal") == "SIGTERM")
check("HEALTHCHECK on /healthz", "/healthz" in " ".join(hc.get("Test") or []))
check("ExposedPorts 8080/tcp", "8080/tcp" in (c.get("ExposedPorts") or {}))
check("User root (the sandbox needs it: docker/README.md)", c.get("User", "") in ("", "0", "root"))
sys.exit(0 if ok else 1)
EOF
pass

# ---- 4. run ----
# The compose service's entrypoint and command, exactly; a key file of the test's own.
step "compose service"
python3 - "$ROOT/docker/compose.yaml" "$TMP" <<'EOF' || fail "docker/compose.yaml does not read as the service this test runs"
import json, os, sys, yaml
compose = yaml.safe_load(open(sys.argv[1]))
s = compose["services"]["pyexecd"]
def unescape(x):   # compose's own interpolation of $$
    return [a.replace("$$", "$") for a in x]
entry, cmd = unescape(s["entrypoint"]), unescape(s["command"])
caps = [c for c in s["cap_add"]]
assert s["cap_drop"] == ["ALL"], "cap_drop must be [ALL]"
assert s.get("read_only") is True, "read_only must be true"
state = cmd[cmd.index("--state-dir") + 1]
tmpfs = [t for t in s["tmpfs"] if t.split(":")[0] == state]
assert tmpfs, "the --state-dir must be a tmpfs"
keys = cmd[cmd.index("--api-key-file") + 1]
assert keys == "/run/secrets/" + s["secrets"][0], "--api-key-file must be the secret"
import shlex
q = shlex.quote
with open(os.path.join(sys.argv[2], "service.sh"), "w") as f:
    f.write("ENTRY_Q=%s\n" % q(shlex.join(entry)))
    f.write("ENTRY_JSON=%s\n" % q(json.dumps(entry)))
    f.write("COMMAND_Q=%s\n" % q(shlex.join(cmd)))
    f.write("CAPS=%s\n" % q(" ".join(caps)))
    f.write("SECURE=%s\n" % q(" ".join(s["security_opt"])))
    f.write("TMPFS=%s\n" % q(tmpfs[0]))
    f.write("KEYS_PATH=%s\n" % q(keys))
EOF
# shellcheck disable=SC1091
. "$TMP/service.sh"   # ENTRY_Q ENTRY_JSON COMMAND_Q CAPS SECURE TMPFS KEYS_PATH
KEY="docker-test-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '# make docker-test\ndocker-test %s\n' "$KEY" >"$TMP/api-keys"
chmod 0400 "$TMP/api-keys"
pass "command $COMMAND_Q; cap_add $CAPS"

HOW=""
SERVER_PID=""
wait_up() {   # $1: pid whose network namespace the server listens in
    for _ in $(seq 1 240); do
        [ -e "/proc/$1" ] || return 1
        if nsenter --net="/proc/$1/ns/net" curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:8080/readyz 2>/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

if [ "$TRY_PODMAN_RUN" = 1 ]; then
    step "podman run"
    CONTAINER="pyexecd-docker-test-$$"
    flags=""
    for c in $CAPS; do flags="$flags --cap-add $c"; done
    for o in $SECURE; do
        # no AppArmor to be unconfined from when the kernel lacks it
        case "$o" in apparmor=*) [ -d /sys/kernel/security/apparmor ] || continue ;; esac
        flags="$flags --security-opt $o"
    done
    eval "set -- $COMMAND_Q"
    # --network none: its own network namespace with only a loopback; the test enters it.
    # runc, not crun: crun refuses hybrid cgroup hierarchies (v1 with a v2 beside it).
    # Limits no higher than ours (and tasks no more than pid_max): podman's defaults are
    # above them, and the runtime cannot set those here. The health timer is systemd's, which may not run
    # here: the test runs the check itself.
    nofile=$(awk '/^Max open files/ { print $5 }' /proc/self/limits)
    nproc=$(awk -v max="$(cat /proc/sys/kernel/pid_max)" '/^Max processes/ { print ($4 < max ? $4 : max) }' /proc/self/limits)
    # shellcheck disable=SC2086
    if pm run -d --name "$CONTAINER" --network none --init --read-only \
            --tmpfs "$TMPFS" --cap-drop ALL $flags \
            -v "$TMP/api-keys:$KEYS_PATH:ro" --stop-signal SIGTERM --stop-timeout 40 \
            --runtime runc --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
            --health-interval disable \
            --entrypoint "$ENTRY_JSON" "$IMAGE" "$@" \
            >"$CACHE/logs/podman-run.log" 2>&1; then
        SERVER_PID=$(pm inspect -f '{{.State.Pid}}' "$CONTAINER" 2>/dev/null || echo 0)
        if [ "$SERVER_PID" -gt 0 ] && wait_up "$SERVER_PID"; then
            HOW="podman run"
            pass "up in its own network namespace (pid $SERVER_PID)"
        fi
    fi
    if [ -z "$HOW" ]; then
        pm logs "$CONTAINER" >>"$CACHE/logs/podman-run.log" 2>&1 || :
        echo "CANNOT RUN: podman run: $(grep -v '^$' "$CACHE/logs/podman-run.log" | tail -3 | tr '\n' ' ')" >&2
        echo "docker-test: falling back to podman image mount + pivot_root in new namespaces"
        pm rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || :
        CONTAINER=""
    fi
fi

if [ -z "$HOW" ]; then
    step "image mount + pivot_root"
    MNT=$(pm image mount "$IMAGE") || fail "podman image mount $IMAGE"
    MOUNTED=1
    [ -x "$MNT/usr/local/bin/pyexecd" ] || fail "no /usr/local/bin/pyexecd in the image"
    # What the engine would do, in a mount namespace of its own: the image read-only, a
    # tmpfs for the state dir, /tmp and /run, the key file at the secret's path, /dev,
    # a /proc of the new PID namespace, /sys with the cgroup hierarchies read-only (the
    # entrypoint remounts them), a loopback up; then pivot_root and the compose capabilities.
    bset=-all
    for c in $CAPS; do bset="$bset,+$(echo "$c" | tr '[:upper:]' '[:lower:]')"; done
    cat >"$TMP/enter.sh" <<'EOF'
set -eu
R=$TMP/root
mkdir -p "$R"
mount --bind "$MNT" "$R"
mount -o remount,bind,ro "$R"
state=${TMPFS%%:*}
mount -t tmpfs -o "${TMPFS#*:}" tmpfs "$R$state"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
mkdir -p "$R$(dirname "$KEYS_PATH")"
: >"$R$KEYS_PATH"
mount --bind "$TMP/api-keys" "$R$KEYS_PATH"
mount -o remount,bind,ro "$R$KEYS_PATH"
mount --rbind /dev "$R/dev"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --rbind /sys "$R/sys"
for d in "$R"/sys/fs/cgroup/*; do
    if mountpoint -q "$d"; then mount -o remount,bind,ro "$d"; fi
done
ip link set lo up
hostname pyexecd
# pivot_root, as engines do, not chroot: the kernel refuses a user namespace (a layer of
# every worker) to a process whose root is not its mount namespace's.
cd "$R"
pivot_root . .
umount -l .
cd /
exec /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root /usr/bin/setpriv --bounding-set "$BSET" --inh-caps -all "$@"
EOF
    [ -x "$MNT/usr/bin/setpriv" ] || fail "the image has no /usr/bin/setpriv to drop capabilities with"
    eval "set -- $ENTRY_Q $COMMAND_Q"
    export TMP MNT TMPFS KEYS_PATH
    BSET=$bset unshare --mount --propagation private --pid --fork --net --uts --ipc \
        /bin/sh "$TMP/enter.sh" "$@" >"$CACHE/logs/server.log" 2>&1 &
    UNSHARE_PID=$!
    for _ in $(seq 1 50); do
        SERVER_PID=$(awk '{print $1}' "/proc/$UNSHARE_PID/task/$UNSHARE_PID/children" 2>/dev/null || :)
        [ -z "$SERVER_PID" ] || break
        sleep 0.1
    done
    [ -n "$SERVER_PID" ] || fail "the namespaced server did not start: $(tail -3 "$CACHE/logs/server.log")"
    wait_up "$SERVER_PID" || fail "no 200 from /readyz within 120 s: $(tail -5 "$CACHE/logs/server.log" | tr '\n' ' ')"
    HOW="image mount + pivot_root"
    pass "up (namespaced pid 1 = $SERVER_PID), capabilities $bset"
fi

# ---- 5. smoke ----
step "HEALTHCHECK"
hc=$(pm image inspect "$IMAGE" --format '{{json .HealthCheck.Test}}')
if [ -n "$CONTAINER" ]; then
    pm healthcheck run "$CONTAINER" || fail "podman healthcheck run: unhealthy"
    pass "podman healthcheck run: healthy ($hc)"
else
    # The image's own command, in the server's namespaces and root.
    eval "set -- $(python3 -c 'import json, shlex, sys; print(shlex.join(json.loads(sys.argv[1])[1:]))' "$hc")"
    nsenter --target "$SERVER_PID" --mount --net --pid --root --wd "$@" || fail "the image's HEALTHCHECK command failed: $hc"
    pass "$hc exits 0 in the server's root and namespaces"
fi

step "smoke"
nsenter --net="/proc/$SERVER_PID/ns/net" python3 - "$KEY" <<'EOF' || fail "the smoke test failed (server log: $CACHE/logs/)"
import base64, json, sys, urllib.error, urllib.request
key = sys.argv[1]
base = "http://127.0.0.1:8080"
failed = 0
def call(path, body=None, key=key):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    if key:
        req.add_header("x-goog-api-key", key)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
def check(what, cond, detail=""):
    global failed
    print(("PASS: smoke: " if cond else "FAIL: smoke: ") + what + ("" if cond else "  " + str(detail)[:600]))
    failed += not cond
st, h = call("/healthz", key=None)
off = [k for k, v in (h or {}).get("isolation", {}).items() if not v]
check("GET /healthz 200 ok, every isolation layer true", st == 200 and h.get("status") == "ok" and not off,
      (st, h.get("status") if h else None, off))
print("       isolation:", " ".join(k for k, v in h.get("isolation", {}).items() if v))
st, r = call("/readyz", key=None)
check("GET /readyz 200 ready", st == 200 and r.get("status") == "ready", (st, r))
st, r = call("/v1/execute", {"executableCode": {"language": "PYTHON", "code": "print(1+1)"}}, key=None)
check("no key: 401 UNAUTHENTICATED", st == 401, (st, r))
st, r = call("/v1/execute", {"executableCode": {"language": "PYTHON", "code": "print(1+1)"}})
res = [p["codeExecutionResult"] for p in (r or {}).get("parts", []) if "codeExecutionResult" in p]
check("print(1+1) -> OUTCOME_OK '2\\n'", st == 200 and res == [{"outcome": "OUTCOME_OK", "output": "2\n"}], (st, r))
code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title('docker-test')\nplt.show()"
st, r = call("/v1/execute", {"executableCode": {"language": "PYTHON", "code": code}})
imgs = [p["inlineData"] for p in (r or {}).get("parts", []) if "inlineData" in p]
png = imgs and base64.b64decode(imgs[0]["data"])
check("matplotlib plot -> one image/png part (%d bytes)" % len(png or b""),
      st == 200 and len(imgs) == 1 and imgs[0]["mimeType"] == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n",
      (st, str(r)[:300]))
body = {"contents": [{"role": "user", "parts": [{"text": "Run:\n```python\nprint(6 * 7)\n```"}]}],
        "tools": [{"codeExecution": {}}]}
st, r = call("/v1beta/models/echo:generateContent", body)
parts = ((r or {}).get("candidates") or [{}])[0].get("content", {}).get("parts", [])
res = [(p["codeExecutionResult"].get("outcome"), p["codeExecutionResult"].get("output"))
       for p in parts if "codeExecutionResult" in p]
check("generateContent, model echo -> code run, output '42\\n'",
      st == 200 and any("executableCode" in p for p in parts) and res == [("OUTCOME_OK", "42\n")],
      (st, r))
st, r = call("/v1/environment")
vertex = ((r or {}).get("documentedLists") or {}).get("vertex") or {}
check("GET /v1/environment: Python %s, the vertex list's %s libraries all present"
      % ((r or {}).get("python"), vertex.get("libraries")),
      st == 200 and vertex.get("libraries") and vertex.get("missing") == [], (st, str(r)[:300]))
sys.exit(1 if failed else 0)
EOF

step "SIGTERM"
t=$(date +%s)
if [ -n "$CONTAINER" ]; then
    pm kill --signal TERM "$CONTAINER" >/dev/null
    rc=$(pm wait "$CONTAINER")
    pm logs "$CONTAINER" >"$CACHE/logs/server.log" 2>&1 || :
else
    kill -TERM "$SERVER_PID"
    rc=0
    wait "$UNSHARE_PID" || rc=$?
    UNSHARE_PID=""
fi
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM (log: $CACHE/logs/server.log)"
pass "drained and exited 0 in $(elapsed "$t") s ($HOW)"
echo "docker-test: image $IMAGE $SIZE, built in $BUILD_S s; run by $HOW"
