#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what the tests need
# (Debian packages, os-refresh-config 14.1.0 from PyPI in a venv), then runs
# cargo fmt --check, clippy -D warnings and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages
ensure_locales
ensure_upstream_venv
export ORC_UPSTREAM_BIN="$UPSTREAM_VENV/bin"
ensure_check_venv
export ORC_CHECK_PYTHON="$CHECK_VENV/bin/python"
# A real Docker engine for the container tests (they fail, not skip, without it).
scripts/container-engine.sh start
# Podman too, for the engine layer's second dialect (the podman tests fail without it).
export CONTAINERS_CONF="$PWD/target/engine/containers.conf"
scripts/container-engine.sh podman

[ "$(id -u)" = 0 ] || echo "warning: not root; the root-only tests will fail" >&2

step "cargo fmt --check"
cargo fmt --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
step "cargo machete (no unused dependency)"
ensure_cargo_machete
"$CARGO_MACHETE"
step "cargo test --all-targets --no-fail-fast"
# Every binary runs even when one fails; the statuses are kept, not tee's.
set +e
cargo test --all-targets --no-fail-fast 2>&1 | tee target/test.log
cargo_rc=${PIPESTATUS[0]}
step "end-to-end: scripts/e2e.sh"
scripts/e2e.sh 2>&1 | tee target/e2e.log
e2e_rc=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo's tests and the end-to-end checks),
# each test counted once; non-zero when anything failed or did not finish.
scripts/verdict.sh target/test.log "$cargo_rc" target/e2e.log "$e2e_rc"
