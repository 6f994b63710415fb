# Shared helpers for the scripts in this directory (sourced, not run).

step() { printf '\n==> %s\n' "$*" >&2; }

# host_locked NAME CMD...: runs CMD holding /run/lock/orc-NAME.lock (flock), so
# checkouts on one host take turns on what they share there (apt, the locales, the
# engine's setup). CMD runs in a subshell, released when it ends.
host_locked() {
    local name=$1
    shift
    mkdir -p /run/lock
    (
        exec {fd}>"/run/lock/orc-$name.lock"
        flock "$fd"
        "$@"
    )
}

# apt-get install PACKAGES (nothing when none is given).
apt_install() {
    [ $# -gt 0 ] || return 0
    host_locked apt apt_install_now "$@"
}
apt_install_now() {
    step "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
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

# The real os-refresh-config 14.1.0 (with its dib-run-parts), and the agents that
# drive it (os-collect-config and os-apply-config 14.1.0), in a venv under target/.
UPSTREAM_VENV=${UPSTREAM_VENV:-$PWD/target/upstream-venv}
ensure_upstream_venv() {
    local pkg
    for pkg in os-refresh-config os-collect-config os-apply-config; do
        if ! "$UPSTREAM_VENV/bin/pip" show "$pkg" 2>/dev/null | grep -q '^Version: 14.1.0$'; then
            step "installing $pkg 14.1.0 into $UPSTREAM_VENV"
            [ -x "$UPSTREAM_VENV/bin/pip" ] || python3 -m venv "$UPSTREAM_VENV"
            "$UPSTREAM_VENV/bin/pip" install -q --disable-pip-version-check "$pkg==14.1.0"
        fi
    done
}

# The checkers of orc's machine-readable output (JSON Schema, Prometheus text format), in
# a venv under target/: the tests run tests/tools/check.py with it (ORC_CHECK_PYTHON).
CHECK_VENV=${CHECK_VENV:-$PWD/target/check-venv}
ensure_check_venv() {
    if ! "$CHECK_VENV/bin/python" -c 'import jsonschema, prometheus_client' 2>/dev/null; then
        step "installing jsonschema and prometheus-client into $CHECK_VENV"
        python3 -m venv "$CHECK_VENV"
        "$CHECK_VENV/bin/pip" install -q --disable-pip-version-check \
            jsonschema==4.23.0 prometheus-client==0.21.1
    fi
}

build_release() {
    step "cargo build --release"
    cargo build --release -q
    ORC="$PWD/target/release/orc"
}

# Tools the image and package builds use, cached under one stable dir so a
# re-run does not fetch or compile them again.
if [ -z "${ORC_TOOLS:-}" ]; then
    if [ -w /var/cache ] || [ -w /var/cache/orc-tools ]; then ORC_TOOLS=/var/cache/orc-tools
    else ORC_TOOLS=${XDG_CACHE_HOME:-$HOME/.cache}/orc-tools; fi
fi
CARGO_DEB_VERSION=3.8.0
CARGO_MACHETE_VERSION=0.9.2
DIB_VERSION=3.43.0

# tools_ensure HAVE INSTALL: runs INSTALL unless HAVE succeeds. Checkouts sharing
# $ORC_TOOLS take turns (a flock on $ORC_TOOLS/.lock), and the one that waited finds
# the tool the other installed.
tools_ensure() {
    "$1" && return 0
    mkdir -p "$ORC_TOOLS"
    local fd
    exec {fd}>"$ORC_TOOLS/.lock"
    flock "$fd"
    "$1" || "$2"
    exec {fd}>&-
}

# cargo-deb, pinned, compiled once into $ORC_TOOLS (about a minute on 2 cores).
# Sets CARGO_DEB.
ensure_cargo_deb() {
    CARGO_DEB=$ORC_TOOLS/cargo-deb-$CARGO_DEB_VERSION/bin/cargo-deb
    tools_ensure have_cargo_deb install_cargo_deb
}
have_cargo_deb() { [[ "$("$CARGO_DEB" --version 2>/dev/null || true)" == *" $CARGO_DEB_VERSION"* ]]; }
install_cargo_deb() {
    step "installing cargo-deb $CARGO_DEB_VERSION into $ORC_TOOLS"
    cargo install -q --locked --root "$ORC_TOOLS/cargo-deb-$CARGO_DEB_VERSION" \
        cargo-deb --version "$CARGO_DEB_VERSION"
}

# cargo-machete, pinned, compiled once into $ORC_TOOLS: the CI check that fails on a
# dependency nothing uses. Sets CARGO_MACHETE.
ensure_cargo_machete() {
    CARGO_MACHETE=$ORC_TOOLS/cargo-machete-$CARGO_MACHETE_VERSION/bin/cargo-machete
    tools_ensure have_cargo_machete install_cargo_machete
}
have_cargo_machete() { [[ "$("$CARGO_MACHETE" --version 2>/dev/null || true)" == "$CARGO_MACHETE_VERSION" ]]; }
install_cargo_machete() {
    step "installing cargo-machete $CARGO_MACHETE_VERSION into $ORC_TOOLS"
    cargo install -q --locked --root "$ORC_TOOLS/cargo-machete-$CARGO_MACHETE_VERSION" \
        cargo-machete --version "$CARGO_MACHETE_VERSION"
}

# diskimage-builder, pinned, in a venv made with the system python (readable by
# every user, so a normal user can run disk-image-create). Sets DIB_VENV.
ensure_dib_venv() {
    DIB_VENV=$ORC_TOOLS/dib-$DIB_VERSION
    tools_ensure have_dib install_dib
}
have_dib() { grep -qx "Version: $DIB_VERSION" <<<"$("$DIB_VENV/bin/pip" show diskimage-builder 2>/dev/null || true)"; }
install_dib() {
    [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip' 2>/dev/null \
        || apt_install python3-venv
    step "installing diskimage-builder $DIB_VERSION into $DIB_VENV"
    rm -rf "$DIB_VENV"
    /usr/bin/python3 -m venv "$DIB_VENV"
    "$DIB_VENV/bin/pip" install -q --disable-pip-version-check "diskimage-builder==$DIB_VERSION"
    chmod -R a+rX "$DIB_VENV"
}

# Debian packages, each only when its command is missing: ensure_commands CMD:PKG...
ensure_commands() {
    local want=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || want+=("${pair#*:}")
    done
    apt_install "${want[@]}"
}

# The mirrors this machine's apt uses (deb822 /etc/apt/sources.list.d/debian.sources,
# else /etc/apt/sources.list): prints "MAIN SECURITY", either may be "-".
apt_mirrors() {
    python3 - <<'PY'
import re
main = sec = None
try:
    text = open("/etc/apt/sources.list.d/debian.sources").read()
    for stanza in re.split(r"\n\s*\n", text):
        f = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        uri = f.get("URIs", "").split()
        if not uri or "deb" not in f.get("Types", "").split():
            continue
        if "-security" in f.get("Suites", ""):
            sec = sec or uri[0]
        else:
            main = main or uri[0]
except OSError:
    pass
try:
    for line in open("/etc/apt/sources.list"):
        m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m and "-security" in m.group(2):
            sec = sec or m.group(1)
        elif m:
            main = main or m.group(1)
except OSError:
    pass
print(main or "-", sec or "-")
PY
}

# e2e's closing line, from the number of checks DECLARED up front and those that
# PASSED and FAILED: each declared check that did not run counts as failed, and
# more checks than declared (a stale declaration) as one more. Returns 0 only
# when every declared check ran and passed.
e2e_closing() {
    local declared=$1 passed=$2 failed=$3 ran
    ran=$((passed + failed))
    if [ "$ran" -lt "$declared" ]; then
        echo "FAILED: $((declared - ran)) of the $declared declared checks did not run"
        failed=$((failed + declared - ran))
    elif [ "$ran" -gt "$declared" ]; then
        echo "FAILED: $ran checks ran, $declared declared (update E2E_CHECKS in scripts/e2e.sh)"
        failed=$((failed + 1))
    fi
    echo "e2e: $passed passed, $failed failed"
    [ "$failed" = 0 ]
}

# The locales the tests run orc under (tests/run.rs), generated when missing.
TEST_LOCALES="en_US.UTF-8 de_DE.UTF-8 tr_TR.UTF-8 sv_SE.UTF-8"
ensure_locales() {
    command -v localedef >/dev/null 2>&1 && [ -d /usr/share/i18n/locales ] || apt_install locales
    host_locked locales generate_locales
}
generate_locales() {
    local l have
    have=$(locale -a)
    for l in $TEST_LOCALES; do
        grep -qix "${l%.UTF-8}.utf8" <<<"$have" && continue
        step "generating the locale $l"
        localedef -i "${l%.UTF-8}" -f UTF-8 "$l"
    done
}
