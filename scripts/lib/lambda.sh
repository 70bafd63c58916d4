# shellcheck shell=bash
# Sourced by scripts/package: installs the Lambda cross-build tools from
# PyPI into the project's ./.venv (the one scripts/lib/moto.sh makes), at
# pinned versions, if they are missing or at another version:
# - cargo-lambda: `cargo lambda build` (cargo-zigbuild inside it) and, for
#   the end-to-end tests, `cargo lambda watch` / `cargo lambda invoke`;
# - ziglang: the Zig toolchain as a wheel, which cargo-zigbuild runs as
#   `python -m ziglang` (found through CARGO_ZIGBUILD_PYTHON_PATH, set by
#   lambda_env below) as the C compiler and linker of each target, against
#   the glibc version named in the target (x86_64-unknown-linux-gnu.2.34).
# Nothing here downloads a Rust toolchain or a target's standard library:
# those come from rustup (`rustup target add aarch64-unknown-linux-gnu`).

CARGO_LAMBDA_VERSION='1.9.2'
ZIGLANG_VERSION='0.17.1'
LAMBDA_VENV=${LAMBDA_VENV:-${MOTO_VENV:-.venv}}

install_lambda_tools() {
  if [ ! -x "$LAMBDA_VENV/bin/python" ]; then
    echo "creating $LAMBDA_VENV" >&2
    python3 -m venv "$LAMBDA_VENV"
  fi
  local want=()
  case "$("$LAMBDA_VENV/bin/cargo-lambda" lambda --version 2>/dev/null)" in
    "cargo-lambda $CARGO_LAMBDA_VERSION "* | "cargo-lambda $CARGO_LAMBDA_VERSION") ;;
    *) want+=("cargo-lambda==$CARGO_LAMBDA_VERSION") ;;
  esac
  if [ "$("$LAMBDA_VENV/bin/python" -m ziglang version 2>/dev/null)" != "$ZIGLANG_VERSION" ]; then
    want+=("ziglang==$ZIGLANG_VERSION")
  fi
  if ((${#want[@]})); then
    echo "installing ${want[*]} into $LAMBDA_VENV" >&2
    "$LAMBDA_VENV/bin/pip" install --quiet --disable-pip-version-check "${want[@]}"
  fi
}

# Puts the venv's cargo-lambda on PATH (so `cargo lambda` finds it) and
# points cargo-zigbuild at the venv's Python for `python -m ziglang`.
lambda_env() {
  local venv_bin
  venv_bin="$(cd "$LAMBDA_VENV/bin" && pwd)"
  export PATH="$venv_bin:$PATH"
  export CARGO_ZIGBUILD_PYTHON_PATH="$venv_bin/python"
}

# Debian's rust-src package (the source of Rust's standard library, for
# every architecture), downloaded with the machine's own apt set-up (its
# mirror and keyring) from suite LAMBDA_DEBIAN_SUITE (default sid, whose
# version is nearest a current toolchain) and unpacked under DIR; prints
# the library/ folder for LAMBDA_BUILD_STD_SRC. For machines where rustup
# cannot download a target's standard library. Nothing system-wide is
# changed: the package lists and the download stay under DIR.
fetch_debian_rust_src() {
  local dir=$1 suite=${LAMBDA_DEBIAN_SUITE:-sid} uri keyring apt
  uri=$(grep -h -m1 '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1)
  keyring=$(grep -h -m1 '^Signed-By:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1)
  if [ -z "$uri" ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null)
  fi
  [ -n "$uri" ] || { echo "no Debian mirror in this machine's apt configuration" >&2; return 1; }
  apt="$dir/apt"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir/deb"
  echo "deb [signed-by=${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}] $uri $suite main" >"$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "Debug::NoLocking=1")
  apt-get "${opts[@]}" -qq update >&2
  rm -f "$dir"/deb/rust-src_*.deb
  (cd "$dir/deb" && apt-get "${opts[@]}" -qq download rust-src >&2)
  rm -rf "$dir/src"
  dpkg-deb -x "$dir"/deb/rust-src_*.deb "$dir/src"
  ls -d "$dir"/src/usr/src/rustc-*/library | tail -1
}
