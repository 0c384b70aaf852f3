#!/bin/sh
# Set-up for `make fuzz` (run as root; idempotent): Debian's clang 14 and its runtime
# libraries, which hold libFuzzer and the sanitizers' runtimes. gcc has no libFuzzer, so
# the normal build does not need these.
set -eu
PKGS="clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "setup-fuzz: missing Debian packages:$missing (run as root to install them)" >&2
    exit 1
fi
echo "setup-fuzz: installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
