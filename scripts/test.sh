#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what the tests need
# (Debian packages, os-refresh-config 14.1.0 from PyPI in a venv), then runs
# cargo fmt --check, clippy -D warnings and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages
ensure_upstream_venv
export ORC_UPSTREAM_BIN="$UPSTREAM_VENV/bin"
ensure_check_venv
export ORC_CHECK_PYTHON="$CHECK_VENV/bin/python"
# A real Docker engine for the container tests (they fail, not skip, without it).
scripts/container-engine.sh start
# Podman too, for the engine layer's second dialect (the podman tests require it here).
export CONTAINERS_CONF="$PWD/target/engine/containers.conf" ORC_REQUIRE_PODMAN=1
scripts/container-engine.sh podman

[ "$(id -u)" = 0 ] || echo "warning: not root; the root-only tests will fail" >&2

step "cargo fmt --check"
cargo fmt --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
step "cargo machete (no unused dependency)"
ensure_cargo_machete
"$CARGO_MACHETE"
step "cargo test"
set +e
cargo test --all-targets 2>&1 | tee target/test.log
step "end-to-end: scripts/e2e.sh"
scripts/e2e.sh 2>&1 | tee target/e2e.log
set -e
# One closing line for the whole suite (cargo's tests and the end-to-end checks).
cat target/test.log target/e2e.log | awk '
    /^test result:/ { p += $4; f += $6 }
    /^e2e: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4; e2e = 1 }
    /^error: test failed|^error: could not compile/ { f += 1 }
    END { if (!e2e) f += 1; printf "%d passed, %d failed\n", p, f; exit f > 0 }'
