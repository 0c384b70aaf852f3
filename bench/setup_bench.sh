#!/bin/sh
# The benchmark's own Python environment (run by `make bench`; idempotent and instant when
# nothing changed): a venv at /opt/pyexecd/bench-venv with ipykernel and jupyter_client,
# pinned in bench/requirements-bench.lock, for the Jupyter-kernel peer. It is made with the
# sandbox's interpreter (Debian's /usr/bin/python3.11) and sees the sandbox's libraries
# through a .pth file, so the kernel runs the same pandas, matplotlib and sympy as the
# workers. Nothing is installed into the sandbox's venv itself: it must not gain IPython.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SANDBOX_VENV="${PYEXECD_VENV:-/opt/pyexecd/venv}"
VENV="${PYEXECD_BENCH_VENV:-/opt/pyexecd/bench-venv}"
LOCK="$ROOT/bench/requirements-bench.lock"
STAMP="$VENV/.pyexecd-bench-lock"
SITE="$SANDBOX_VENV/lib/python3.11/site-packages"

if [ ! -d "$SITE" ]; then
    echo "setup_bench: $SITE is missing; run scripts/setup.sh (make setup) first" >&2
    exit 1
fi

# Reinstall only when the lock file or the sandbox's venv path changed.
want=$( (sha256sum "$LOCK" | cut -d' ' -f1; echo "$SITE") | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
    exit 0
fi
echo "setup_bench: installing the benchmark's Jupyter peer into $VENV"
rm -rf "$VENV"
/usr/bin/python3.11 -m venv "$VENV"
# Appended after the venv's own site-packages: the sandbox's libraries, read-only.
echo "$SITE" > "$VENV/lib/python3.11/site-packages/pyexecd-sandbox-libs.pth"
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$LOCK"
"$VENV/bin/pip" check
"$VENV/bin/python" -c "import ipykernel, jupyter_client, pandas, matplotlib, sympy"
echo "$want" > "$STAMP"
