# shellcheck shell=bash
# Sourced by scripts/test and bench/loader: a PostgreSQL server for this run.
# With DATABASE_URL set, that server is used as it is. Otherwise a throwaway
# cluster is made with the machine's PostgreSQL binaries (initdb, pg_ctl;
# Debian's postgresql package), owned by a non-root user (PostgreSQL refuses
# to run as root; as root the `postgres` account is used), on a free
# localhost port, trust authentication, fsync off (throwaway data), and
# removed on exit. Exports TEST_DATABASE_URL.
# shellcheck source=scripts/lib/cleanup.sh
. "$(dirname "${BASH_SOURCE[0]}")/cleanup.sh"

pg_bin() {
  local d
  for d in ${PG_BIN:-} /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

start_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    export TEST_DATABASE_URL="$DATABASE_URL"
    echo "PostgreSQL from DATABASE_URL" >&2
    return 0
  fi
  local bin dir port as=()
  bin=$(pg_bin) || {
    echo "no PostgreSQL binaries (initdb): install Debian's postgresql package, or set DATABASE_URL" >&2
    return 1
  }
  dir=$(mktemp -d -t logrouter-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "running as root and there is no postgres user to own the cluster" >&2; return 1; }
    chown postgres "$dir"
    as=(runuser -u postgres --)
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2; return 1;
  }
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
    start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop)
  PG_DIR=$dir
  on_exit '"${PG_STOP[@]}" >/dev/null 2>&1; rm -rf "$PG_DIR"'
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "PostgreSQL on $TEST_DATABASE_URL (throwaway cluster in $dir)" >&2
}
