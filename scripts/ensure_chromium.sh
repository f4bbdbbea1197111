#!/usr/bin/env bash
# Installs Debian's chromium for the browser end-to-end test (tests/e2e/test_browser.py).
# Prints the binary's path on success; exits non-zero if it cannot be installed.
set -euo pipefail

for candidate in "${VOCALIS_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    echo "$candidate"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium is missing and apt-get is not available" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "chromium is missing and installing it needs root (apt-get install -y chromium)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >&2 || {
  $SUDO apt-get update -q >&2 && $SUDO apt-get install -y -q chromium >&2
}
if [ -x /usr/bin/chromium ]; then
  echo /usr/bin/chromium
  exit 0
fi
echo "apt-get finished but /usr/bin/chromium is still missing" >&2
exit 1
