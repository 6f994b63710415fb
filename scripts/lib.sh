# Shared helpers for the scripts in this directory (sourced, not run).

step() { printf '\n==> %s\n' "$*" >&2; }

# apt-get install PACKAGES (nothing when none is given).
apt_install() {
    [ $# -gt 0 ] || return 0
    step "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Debian packages the tests and benchmarks use, installed only when missing.
ensure_packages() {
    local want=() cmd pkg
    for pair in rsync:rsync setfacl:acl systemd-analyze:systemd flock:util-linux \
                busybox:busybox-static bash:bash man:man-db setcap:libcap2-bin; do
        cmd=${pair%%:*} pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || want+=("$pkg")
    done
    [ -x /usr/bin/time ] || want+=(time)
    apt_install "${want[@]}"
    rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
}

# The real os-refresh-config 14.1.0 (with its dib-run-parts) in a venv under target/.
UPSTREAM_VENV=${UPSTREAM_VENV:-$PWD/target/upstream-venv}
ensure_upstream_venv() {
    if ! "$UPSTREAM_VENV/bin/pip" show os-refresh-config 2>/dev/null | grep -q '^Version: 14.1.0$'; then
        step "installing os-refresh-config 14.1.0 into $UPSTREAM_VENV"
        python3 -m venv "$UPSTREAM_VENV"
        "$UPSTREAM_VENV/bin/pip" install -q --disable-pip-version-check os-refresh-config==14.1.0
    fi
}

build_release() {
    step "cargo build --release"
    cargo build --release -q
    ORC="$PWD/target/release/orc"
}
