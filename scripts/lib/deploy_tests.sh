# shellcheck shell=bash
# Sourced by scripts/test: deploys deploy/logrouter.yaml into moto's
# CloudFormation for each Compute value and checks it (tests/deploy/, pytest
# from PyPI in the same ./.venv as moto). The tests start a moto server of
# their own (a fresh account) and fail, never skip, when it does not start.

PYTEST_SPEC='pytest==9.2.0'

test_deploy_template() {
  : "${MOTO_VENV:=.venv}"
  if ! "$MOTO_VENV/bin/python" -c 'import moto, flask, boto3, cfnlint' >/dev/null 2>&1; then
    echo "moto[server] and cfn-lint are missing from $MOTO_VENV (start_moto, lint_templates install them)" >&2
    return 1
  fi
  if [ "$("$MOTO_VENV/bin/pytest" --version 2>/dev/null)" != "pytest ${PYTEST_SPEC#pytest==}" ]; then
    echo "installing $PYTEST_SPEC into $MOTO_VENV" >&2
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "$PYTEST_SPEC"
  fi
  # -p no:cacheprovider: no .pytest_cache in the tree.
  (cd tests/deploy && "../../$MOTO_VENV/bin/pytest" -q -p no:cacheprovider "$@")
}
