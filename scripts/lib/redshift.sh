# shellcheck shell=bash
# Sourced by scripts/test after start_moto and start_postgres: starts the
# project's Redshift Data API test server (tests/redshift_data_server.py),
# which runs statements on that PostgreSQL and reads COPY sources from that
# moto S3. Its Python dependency (psycopg) goes into the same ./.venv as
# moto. Exports TEST_REDSHIFT_DATA_URL. Stopped on exit.
# shellcheck source=scripts/lib/cleanup.sh
. "$(dirname "${BASH_SOURCE[0]}")/cleanup.sh"

PSYCOPG_SPEC='psycopg[binary]==3.2.10'

start_redshift_data() {
  : "${MOTO_VENV:=.venv}"
  if ! "$MOTO_VENV/bin/python" -c 'import psycopg, boto3' >/dev/null 2>&1; then
    echo "installing $PSYCOPG_SPEC into $MOTO_VENV" >&2
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "$PSYCOPG_SPEC"
  fi
  local port log
  port=$("$MOTO_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log=$(mktemp -t redshift-data.XXXXXX.log)
  AWS_ENDPOINT_URL="$TEST_MOTO_URL" "$MOTO_VENV/bin/python" tests/redshift_data_server.py \
    --port "$port" --database-url "$TEST_DATABASE_URL" >"$log" 2>&1 &
  RSD_PID=$!
  on_exit 'kill $RSD_PID 2>/dev/null; wait $RSD_PID 2>/dev/null'
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    if ! kill -0 "$RSD_PID" 2>/dev/null; then echo "Redshift Data API test server died:" >&2; cat "$log" >&2; return 1; fi
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/" >/dev/null || { echo "Redshift Data API test server did not answer" >&2; cat "$log" >&2; return 1; }
  export TEST_REDSHIFT_DATA_URL="http://127.0.0.1:$port"
  # For tests that start (and stop) a server of their own.
  TEST_PYTHON="$(cd "$MOTO_VENV/bin" && pwd)/python"
  export TEST_PYTHON
  echo "Redshift Data API test server on $TEST_REDSHIFT_DATA_URL (statements run on PostgreSQL)" >&2
}
