#!/bin/sh
# One-time set-up of a Debian 12 machine for pyexecd (run as root; idempotent and quick
# when nothing changed). Installs the build and test dependencies from Debian, then the
# sandbox's pinned Python libraries into /opt/pyexecd/venv with Debian's python3.11, the same
# interpreter the server embeds through libpython3.11.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Outside the source tree: a worker sees neither /root (its work dir is mounted there) nor
# directories its uid cannot enter, and a checkout may live in either.
VENV="${PYEXECD_VENV:-/opt/pyexecd/venv}"
LOCK="$ROOT/sandbox/python/requirements.lock"
STAMP="$VENV/.pyexecd-lock"

# Debian packages: compiler and build tools, the four libraries of the design card and
# libcurl (the openai model's HTTP client), python3.11 with venv support for the sandbox's
# libraries, python3 for the tests and `pyexecd conform` (with PyYAML for cassettes), git
# (one of the programs the parity policy lets code run).
PKGS="build-essential cmake pkg-config libmicrohttpd-dev libcjson-dev libseccomp-dev \
libpython3.11-dev libcurl4-openssl-dev python3.11 python3.11-venv python3 python3-yaml curl \
ca-certificates procps git"

. "$ROOT/scripts/debian_packages.sh"
# shellcheck disable=SC2086
debian_packages_install setup $PKGS

# Python libraries: reinstall only when the lock file changed since the last install.
# PYEXECD_EXTRA_LIBS=1 adds the Gemini API's longer list (requirements-extra.lock: 2.1 GiB,
# most of it tensorflow), so that code finds what the real service documents.
EXTRA="$ROOT/sandbox/python/requirements-extra.lock"
locks="-r $LOCK"
want=$(sha256sum "$LOCK" | cut -d' ' -f1)
if [ "${PYEXECD_EXTRA_LIBS:-0}" = 1 ]; then
    locks="$locks -r $EXTRA"
    want="$want+$(sha256sum "$EXTRA" | cut -d' ' -f1)"
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi
echo "setup: installing the sandbox's Python libraries into $VENV"
rm -rf "$VENV"
/usr/bin/python3.11 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check --upgrade "pip==25.3" "setuptools==80.9.0" "wheel==0.45.1"
# shellcheck disable=SC2086
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps $locks
"$VENV/bin/pip" check
echo "$want" > "$STAMP"
