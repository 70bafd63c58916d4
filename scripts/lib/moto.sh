# shellcheck shell=bash
# Sourced by scripts/test and bench/backfill: installs moto server (S3 + SQS
# wire protocol, from PyPI) into ./.venv once, starts it on a free localhost
# port, and exports what the AWS SDK and the tests need. Stopped on exit.
# shellcheck source=scripts/lib/cleanup.sh
. "$(dirname "${BASH_SOURCE[0]}")/cleanup.sh"

MOTO_SPEC='moto[server]==5.2.5'
MOTO_VENV=${MOTO_VENV:-.venv}

start_moto() {
  if ! "$MOTO_VENV/bin/python" -c 'import moto, flask' >/dev/null 2>&1; then
    echo "installing $MOTO_SPEC into $MOTO_VENV" >&2
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "$MOTO_SPEC"
  fi
  local port log
  port=$("$MOTO_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log=$(mktemp -t moto.XXXXXX.log)
  "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  on_exit 'kill $MOTO_PID 2>/dev/null; wait $MOTO_PID 2>/dev/null'
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then echo "moto server died:" >&2; cat "$log" >&2; return 1; fi
    sleep 0.2
  done
  curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null || { echo "moto server did not answer on port $port" >&2; cat "$log" >&2; return 1; }
  echo "moto server on http://127.0.0.1:$port" >&2
  export TEST_MOTO_URL="http://127.0.0.1:$port"
  # For tests that start (and stop) a moto server of their own.
  TEST_MOTO_SERVER="$(cd "$MOTO_VENV/bin" && pwd)/moto_server"
  export TEST_MOTO_SERVER
  export AWS_ENDPOINT_URL="$TEST_MOTO_URL"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
  unset AWS_PROFILE
}
