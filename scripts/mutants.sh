#!/usr/bin/env bash
# cargo-mutants on the pure modules, one file at a time (-j 1: the machine is shared),
# each against the unit tests that cover it (`cargo test --lib`, filtered to the
# module and its neighbours; registry's 2000-case property tests are skipped, the
# hand-written cases stay). Outcomes in target/mutants/NAME; scores in tests/README.md.
#   mutants.sh [NAME...]   NAME: plan phases registry hash (default: all)
#   ORC_MUTANTS_ARGS       more cargo-mutants arguments (e.g. --list, or --in-place
#                          in a scratch worktree instead of copying the tree)
# cargo-mutants 27.1.0 is pinned (from PATH when it is that version, else installed
# into $ORC_TOOLS). The tree is copied (target too, so dependencies are not rebuilt).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

CARGO_MUTANTS_VERSION=27.1.0
have_cargo_mutants() { [[ "$(cargo mutants --version 2>/dev/null || true)" == "cargo-mutants $CARGO_MUTANTS_VERSION" ]]; }
install_cargo_mutants() {
    step "installing cargo-mutants $CARGO_MUTANTS_VERSION into $ORC_TOOLS"
    cargo install -q --locked --root "$ORC_TOOLS/cargo-mutants-$CARGO_MUTANTS_VERSION" \
        cargo-mutants --version "$CARGO_MUTANTS_VERSION"
}
export PATH="$ORC_TOOLS/cargo-mutants-$CARGO_MUTANTS_VERSION/bin:$PATH"
tools_ensure have_cargo_mutants install_cargo_mutants

# mutate NAME FILE [cargo-mutants args...] -- TEST FILTERS...
mutate() {
    local name=$1 file=$2
    shift 2
    step "cargo mutants: $file"
    # shellcheck disable=SC2086 # words
    cargo mutants --file "$file" --timeout 120 --cargo-arg=--lib -o "target/mutants/$name" \
        ${ORC_MUTANTS_ARGS:---jobs 1 --copy-target=true} "$@" || true
}

[ $# -gt 0 ] || set -- plan phases registry hash
for n in "$@"; do
    case "$n" in
        plan) mutate plan src/plan.rs -- -- plan:: phases:: runner:: trust:: ;;
        phases) mutate phases src/phases.rs -- -- phases:: plan:: ;;
        registry) mutate registry src/state/registry.rs -- -- state::registry:: \
            --skip any_bytes_parse --skip registry_like_bytes --skip any_path_is_checked ;;
        hash)
            mutate hash-spec src/containers/spec.rs --re 'hash' -- -- containers::
            mutate hash-network src/containers/network.rs --re 'hash' -- -- containers:: ;;
        *) echo "mutants.sh: unknown module $n (plan phases registry hash)" >&2; exit 2 ;;
    esac
done
