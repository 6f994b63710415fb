#!/usr/bin/env bash
# The Debian package: target/debian/orc_<version>_<arch>.deb, built with
# cargo-deb (pinned; installed into a cache dir the first time) from the
# release binary: /usr/bin/orc, the personalities os-refresh-config,
# dib-run-parts and register-state-path, the unit (enabled by the standard
# deb-systemd-helper snippets, never started by an install), man pages (section 1
# for the commands, section 5 for orc.json, the registry and the report), the report's
# JSON Schema (/usr/share/orc/schema),
# bash/zsh/fish completions, and the base dir with its phase dirs.
#   package.sh            build it; prints the path of the .deb on stdout
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

assets=target/deb-assets
revision=1   # the Debian revision: orc_<version>-<revision>_<arch>.deb

# The files the package ships that are generated from the binary itself.
generate_assets() {
    local bin=$1
    rm -rf "$assets"
    mkdir -p "$assets/man"
    "$bin" man "$assets/man"
    "$bin" completions bash > "$assets/orc.bash"
    "$bin" completions zsh > "$assets/_orc"
    "$bin" completions fish > "$assets/orc.fish"
    # The package installs orc in /usr/bin (systemd/orc.service is for install.sh's /usr/local).
    sed 's|^ExecStart=/usr/local/bin/orc|ExecStart=/usr/bin/orc|' systemd/orc.service > "$assets/orc.service"
    grep -q '^ExecStart=/usr/bin/orc run$' "$assets/orc.service"
    changelog "$("$bin" --version | awk '{print $2}')-$revision" > "$assets/changelog"
}

# A Debian changelog for this version, dated by the last commit (reproducible).
changelog() {
    local version=$1 date
    date=$(git log -1 --format=%cD 2>/dev/null || date -R)
    printf 'orc (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- orc developers <orc@example.org>  %s\n' \
        "$version" "$version" "$date"
}

main() {
    ensure_commands dpkg-shlibdeps:dpkg-dev strip:binutils
    ensure_cargo_deb
    build_release >&2
    generate_assets "$ORC"
    step "cargo deb"
    local out
    out=$("$CARGO_DEB" deb --no-build --deb-revision "$revision" | tail -1)
    [ -f "$out" ] || { echo "package.sh: cargo-deb did not report a package" >&2; exit 1; }
    echo "$out"
}

main "$@"
