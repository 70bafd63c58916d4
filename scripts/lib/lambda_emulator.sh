# shellcheck shell=bash
# Sourced by scripts/test: cargo-lambda from PyPI (pinned in
# scripts/lib/lambda.sh) in ./.venv, for the Lambda-mode tests, which run
# its Runtime API emulator (`cargo lambda watch --only-lambda-apis`) and
# invoke through it (`cargo lambda invoke --data-file`). It runs offline.
# The tests find it through TEST_CARGO_LAMBDA and fail without it.
# shellcheck source=scripts/lib/lambda.sh
. "$(dirname "${BASH_SOURCE[0]}")/lambda.sh"

provide_lambda_emulator() {
  case "$("$LAMBDA_VENV/bin/cargo-lambda" lambda --version 2>/dev/null)" in
    "cargo-lambda $CARGO_LAMBDA_VERSION "* | "cargo-lambda $CARGO_LAMBDA_VERSION") ;;
    *)
      echo "installing cargo-lambda==$CARGO_LAMBDA_VERSION into $LAMBDA_VENV" >&2
      "$LAMBDA_VENV/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
      ;;
  esac
  TEST_CARGO_LAMBDA="$(cd "$LAMBDA_VENV/bin" && pwd)/cargo-lambda"
  export TEST_CARGO_LAMBDA
}
