#!/usr/bin/env bash
# Usage: ensure-debian-packages.sh WHAT:PACKAGE ...
# Installs PACKAGE with apt-get when WHAT is missing: a command not on PATH (nor under
# /usr/sbin), or, when WHAT starts with /, a file no path matching that glob exists for.
set -euo pipefail
missing=()
for pair in "$@"; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    if [ "${cmd:0:1}" = "/" ]; then
        # shellcheck disable=SC2086  # the glob is meant to expand
        if ! ls $cmd >/dev/null 2>&1; then
            missing+=("$pkg")
        fi
    elif ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing packages: ${missing[*]} (no apt-get here: install them by hand)" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
