#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests.
#   scripts/ensure_postgres.sh start DIR   -> prints postgresql+asyncpg://… on stdout
#   scripts/ensure_postgres.sh stop DIR
# Installs Debian's postgresql with apt-get when initdb is missing (needs root). The cluster runs
# as a non-root user (postgres servers refuse root) on a free loopback port, with fsync off: it
# is thrown away after the tests.
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?directory}

find_bin() {
  local found
  found=$(command -v "$1" 2>/dev/null || true)
  if [ -z "$found" ]; then
    found=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n1 || true)
  fi
  echo "$found"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
start)
  initdb=$(find_bin initdb)
  if [ -z "$initdb" ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
      echo "initdb not found and cannot apt-get install postgresql (not root or no apt)" >&2
      exit 3
    fi
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
      >&2 || { echo "apt-get install postgresql failed" >&2; exit 3; }
    initdb=$(find_bin initdb)
  fi
  bindir=$(dirname "$(readlink -f "$initdb")")
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home postgres
  fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_owner "$bindir/initdb" -D "$dir/data" -U vocalis -A trust -E UTF8 >/dev/null
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" \
    start >/dev/null
  echo "postgresql+asyncpg://vocalis@127.0.0.1:$port/postgres"
  ;;
stop)
  bindir=$(dirname "$(readlink -f "$(find_bin pg_ctl)")")
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
