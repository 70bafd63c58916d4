# shellcheck shell=bash
# Sourced by scripts/test and bench/loader: a PostgreSQL server for this run.
# With DATABASE_URL set, that server is used as it is. Otherwise a throwaway
# cluster is made with the machine's PostgreSQL binaries (initdb, pg_ctl;
# Debian's postgresql package), owned by a non-root user (PostgreSQL refuses
# to run as root; as root the `postgres` account is used), on a free
# localhost port, trust authentication, fsync off (throwaway data), TLS on
# with a certificate from a CA made for this run (openssl), and removed on
# exit. Exports TEST_DATABASE_URL, TEST_DATABASE_CA (the CA that signed the
# server's certificate, for sslrootcert) and TEST_DATABASE_WRONG_CA (a CA
# that signed nothing: verification against it must fail).
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

# A CA and a server certificate it signs, for localhost and 127.0.0.1, in
# $1; and a second CA that signs nothing. Elliptic-curve keys: quick to make.
make_test_certs() {
  local d=$1 ca
  command -v openssl >/dev/null || {
    echo "no openssl to make the test cluster's TLS certificates: install Debian's openssl package" >&2
    return 1
  }
  for ca in ca wrong-ca; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=logrouter $ca" -keyout "$d/$ca.key" -out "$d/$ca.crt" 2>>"$d/openssl.log" || {
      cat "$d/openssl.log" >&2; return 1;
    }
  done
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
  if ! openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>>"$d/openssl.log" ||
    ! openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
      -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>>"$d/openssl.log"; then
    cat "$d/openssl.log" >&2
    return 1
  fi
  chmod 600 "$d/server.key"
}

start_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    export TEST_DATABASE_URL="$DATABASE_URL"
    # The CA of that server's certificate, for the TLS tests.
    export TEST_DATABASE_CA="${DATABASE_CA:-}" TEST_DATABASE_WRONG_CA="${DATABASE_WRONG_CA:-}"
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
  # One role that must give its password (SCRAM), for the tests that check
  # a password never shows in logs, errors or metrics; every other role is
  # trusted.
  { echo "host all logrouter_pw 127.0.0.1/32 scram-sha-256"; cat "$dir/data/pg_hba.conf"; } >"$dir/pg_hba.conf" &&
    cat "$dir/pg_hba.conf" >"$dir/data/pg_hba.conf"
  make_test_certs "$dir" || return 1
  [ "${#as[@]}" = 0 ] || chown postgres "$dir/server.key"
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100 -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" \
    start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop)
  PG_DIR=$dir
  on_exit '"${PG_STOP[@]}" >/dev/null 2>&1; rm -rf "$PG_DIR"'
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export TEST_DATABASE_CA="$dir/ca.crt" TEST_DATABASE_WRONG_CA="$dir/wrong-ca.crt"
  echo "PostgreSQL on $TEST_DATABASE_URL (throwaway cluster in $dir)" >&2
}
