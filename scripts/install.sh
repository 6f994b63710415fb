#!/usr/bin/env bash
# Installs orc: the binary, its personalities (os-refresh-config, dib-run-parts,
# register-state-path), the systemd unit, man pages and bash completion
# (generated from the binary's own clap definition), and the base dir with its
# phase dirs. Idempotent. --root installs into an image tree. No container
# specs dir: an image without specs never calls a container engine.
#   install.sh [--root DIR] [--prefix P] [--binary PATH]
# Defaults: --root /, --prefix /usr/local, --binary target/release/orc (built if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=/ prefix=/usr/local binary=
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=$2; shift 2 ;;
        --prefix) prefix=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        *) echo "usage: $0 [--root DIR] [--prefix P] [--binary PATH]" >&2; exit 2 ;;
    esac
done
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be absolute" >&2; exit 2 ;; esac
if [ -z "$binary" ]; then
    binary=$here/../target/release/orc
    [ -x "$binary" ] || (cd "$here/.." && cargo build --release -q)
fi
unit_src=$here/../systemd/orc.service
[ -f "$unit_src" ] || unit_src=$here/orc.service   # next to install.sh when shipped alone
r=${root%/}

install -d -m 0755 "$r$prefix/bin" "$r$prefix/share/man/man1" \
    "$r$prefix/share/bash-completion/completions" "$r/etc/systemd/system" "$r/etc/orc"
install -m 0755 "$binary" "$r$prefix/bin/.orc.new"
mv -f "$r$prefix/bin/.orc.new" "$r$prefix/bin/orc"
for name in os-refresh-config dib-run-parts register-state-path; do
    ln -sfn orc "$r$prefix/bin/$name"
done
sed "s|^ExecStart=/usr/local/bin/orc|ExecStart=$prefix/bin/orc|" "$unit_src" > "$r/etc/systemd/system/orc.service.new"
chmod 0644 "$r/etc/systemd/system/orc.service.new"
mv -f "$r/etc/systemd/system/orc.service.new" "$r/etc/systemd/system/orc.service"
"$binary" man "$r$prefix/share/man/man1"
# The file-format pages (orc.json(5), ...) belong in man5.
install -d -m 0755 "$r$prefix/share/man/man5"
mv -f "$r$prefix/share/man/man1"/*.5 "$r$prefix/share/man/man5/"
"$binary" completions bash > "$r$prefix/share/bash-completion/completions/orc"
base=$r/usr/libexec/os-refresh-config
for d in pre-configure configure migration post-configure error environment; do
    install -d -m 0755 "$base/$d.d"
done
echo "installed orc into ${root} (prefix $prefix)"
