#!/usr/bin/env bash
# Installs Debian packages the cluster tests need when their program is missing:
#   scripts/ensure_packages.sh redis-server:redis-server haproxy:haproxy
# (program:package pairs). Needs root and apt-get; exits 3 saying why when it cannot.
set -euo pipefail
missing=()
for pair in "$@"; do
  prog=${pair%%:*}
  pkg=${pair#*:}
  command -v "$prog" >/dev/null 2>&1 || [ -x "/usr/sbin/$prog" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing ${missing[*]} and cannot apt-get install (not root or no apt)" >&2
  exit 3
fi
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >&2 \
  || { echo "apt-get install ${missing[*]} failed" >&2; exit 3; }
