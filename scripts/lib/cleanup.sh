# shellcheck shell=bash
# One EXIT trap for everything the scripts start: `on_exit CMD` adds CMD.
CLEANUPS=()
run_cleanups() { local c; for c in "${CLEANUPS[@]}"; do eval "$c" || true; done; }
on_exit() { CLEANUPS+=("$1"); trap run_cleanups EXIT; }
