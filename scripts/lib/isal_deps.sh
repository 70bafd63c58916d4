# shellcheck shell=bash
# Sourced by scripts/test, scripts/demo and bench/router: what the router's
# `isal` feature needs to build ISA-L from its vendored source (isal-sys
# runs autogen.sh, configure and make, and assembles igzip with nasm):
# nasm, autoconf, automake and libtool, from Debian's packages. Installed
# with apt-get when one is missing (root, as on this project's machines and
# CI); elsewhere, says which to install and fails.

ISAL_DEB_PACKAGES=(nasm autoconf automake libtool)

# Succeeds when every tool is there, after installing what was missing.
provide_isal_deps() {
  local missing=() tool
  for tool in nasm autoconf automake libtoolize make; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "the router's isal feature needs ${missing[*]}: installing ${ISAL_DEB_PACKAGES[*]}" >&2
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "not root with apt-get here: install ${ISAL_DEB_PACKAGES[*]} (and make) yourself, or build without --features router/isal" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -qq update >&2
  DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends \
    "${ISAL_DEB_PACKAGES[@]}" make >&2
}
