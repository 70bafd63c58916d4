# shellcheck shell=bash
# Sourced by scripts/test: validates the CloudFormation templates under
# deploy/ with cfn-lint (from PyPI, in the same ./.venv as moto), so a
# broken template fails CI.

CFN_LINT_SPEC='cfn-lint==1.22.0'

lint_templates() {
  : "${MOTO_VENV:=.venv}"
  if ! "$MOTO_VENV/bin/cfn-lint" --version >/dev/null 2>&1; then
    echo "installing $CFN_LINT_SPEC into $MOTO_VENV" >&2
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "$CFN_LINT_SPEC"
  fi
  "$MOTO_VENV/bin/cfn-lint" deploy/*.yaml
}
