# shellcheck shell=bash
# Sourced by scripts/test: validates the CloudFormation templates under
# deploy/ with cfn-lint (from PyPI, in the same ./.venv as moto), so a
# broken template fails CI.
#
# deploy/logrouter.yaml is linted once per deployment file in
# tests/deploy/cfn-lint/ (CloudFormation Git sync format: the template and
# parameter values), one or more per Compute value: cfn-lint then resolves
# the conditions with those values, so each variant is checked as it would
# be deployed. (Linted bare, cfn-lint would resolve parameter defaults
# inside resources whose condition those defaults turn off, e.g. an empty
# CodeBucket in the Lambda functions, which the template's Rules forbid.)
# --deployment-files needs cfn-lint 1.2x or later; 1.58.0 is pinned.

CFN_LINT_VERSION='1.58.0'

lint_templates() {
  : "${MOTO_VENV:=.venv}"
  if [ "$("$MOTO_VENV/bin/cfn-lint" --version 2>/dev/null)" != "cfn-lint $CFN_LINT_VERSION" ]; then
    echo "installing cfn-lint==$CFN_LINT_VERSION into $MOTO_VENV" >&2
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION"
  fi
  local t
  for t in deploy/*.yaml; do
    grep -qs "template-file-path: $t\$" tests/deploy/cfn-lint/*.yaml \
      || { echo "$t: no deployment file in tests/deploy/cfn-lint/ lints it" >&2; return 1; }
  done
  "$MOTO_VENV/bin/cfn-lint" --deployment-files tests/deploy/cfn-lint/*.yaml
}
