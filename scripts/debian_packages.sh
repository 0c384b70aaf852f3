# shellcheck shell=sh
# Sourced by the set-up scripts (POSIX sh): the one place that installs Debian packages.
#
# debian_packages_install TAG PKG...: installs those of PKG that are not installed, saying
# so with TAG in front. Without root and with some missing, says which and exits 1. Sets
# APT_UPDATED=1 when it ran `apt-get update`. No package's service is started by the
# install (a policy-rc.d that says no, where none is there already, for its length): the
# tests start the programs they need themselves.
debian_packages_install() {
    dp_tag=$1
    shift
    dp_missing=""
    for dp_p in "$@"; do
        dpkg-query -W -f='${Status}' "$dp_p" 2>/dev/null | grep -q "install ok installed" \
            || dp_missing="$dp_missing $dp_p"
    done
    [ -n "$dp_missing" ] || return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "$dp_tag: missing Debian packages:$dp_missing (run as root to install them)" >&2
        exit 1
    fi
    echo "$dp_tag: installing Debian packages:$dp_missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2034  # read by the script that sourced this
    APT_UPDATED=1
    dp_own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        dp_own_policy=1
    fi
    dp_rc=0
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $dp_missing || dp_rc=$?
    [ -z "$dp_own_policy" ] || rm -f /usr/sbin/policy-rc.d
    [ "$dp_rc" -eq 0 ] || exit "$dp_rc"
}
