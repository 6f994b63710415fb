#!/usr/bin/env bash
# End-to-end: a minimal Debian root with systemd (debootstrap, cached), the
# elements applied the way diskimage-builder would (extra-data.d outside the
# chroot, install.d and finalise.d inside it), imported into the local Docker
# engine and booted with systemd as PID 1 and a fresh /mnt/state volume; then
# a reboot on the same volume. Prints "N passed, N failed" and its time.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
t0=$(date +%s)
scripts/container-engine.sh start >/dev/null
build_release
t_build=$(date +%s)
cache=${ORC_E2E_CACHE:-/var/cache/orc-e2e}
mirror=${ORC_E2E_MIRROR:-http://deb.debian.org/debian}
work=$PWD/target/e2e
box=orc-e2e
image=orc-e2e:latest
volume=orc-e2e-state
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAILED: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
in_box() { docker exec "$box" "$@"; }
cleanup() {
    docker rm -f "$box" orc-e2e-app >/dev/null 2>&1 || true
    docker volume rm -f "$volume" >/dev/null 2>&1 || true
    mountpoint -q "$work/root/tmp/in_target.d" && umount "$work/root/tmp/in_target.d" || true
}
trap cleanup EXIT
cleanup

if [ ! -d "$cache/rootfs" ]; then
    command -v debootstrap >/dev/null || apt_install debootstrap
    step "debootstrap bookworm into $cache (cached for later runs)"
    rm -rf "$cache/rootfs.tmp"; mkdir -p "$cache"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$cache/rootfs.tmp" "$mirror" >"$cache/debootstrap.log"
    mv "$cache/rootfs.tmp" "$cache/rootfs"
fi
t_root=$(date +%s)

step "applying the elements orc, use-ephemeral, e2e-box"
rm -rf "$work"; mkdir -p "$work/hooks"
cp -a "$cache/rootfs" "$work/root"
for el in elements/orc elements/use-ephemeral tests/e2e/elements/e2e-box; do
    cp -a "$el/." "$work/hooks/"
done
export TMP_HOOKS_PATH=$work/hooks ORC_BINARY=$ORC ORC_SOURCE=$PWD
"$ORC" dib-run-parts "$work/hooks/extra-data.d"
mkdir -p "$work/root/tmp/in_target.d"
mount --bind "$work/hooks" "$work/root/tmp/in_target.d"
for phase in install.d finalise.d; do
    for script in $("$ORC" dib-run-parts --list "$work/hooks/$phase"); do
        echo "chroot: $phase/$(basename "$script")"
        chroot "$work/root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            TMP_HOOKS_PATH=/tmp/in_target.d "/tmp/in_target.d/$phase/$(basename "$script")"
    done
done
umount "$work/root/tmp/in_target.d"
rmdir "$work/root/tmp/in_target.d"

step "importing and booting $image"
tar -C "$work/root" -c . | docker import --change 'CMD ["/sbin/init"]' - "$image" >/dev/null
docker volume create "$volume" >/dev/null
boot() {
    docker run -d --name "$box" --hostname e2e-box \
        --cap-add SYS_ADMIN --stop-signal SIGRTMIN+3 \
        -v /sys/fs/cgroup/systemd:/sys/fs/cgroup/systemd:rw \
        --tmpfs /run --tmpfs /run/lock \
        -v "$volume":/mnt/state \
        -v /var/run/docker.sock:/run/docker.sock \
        "$image" /sbin/init >/dev/null
}
wait_settled() {
    local s
    for _ in $(seq 1 120); do
        s=$(in_box systemctl is-active orc.service 2>/dev/null || true)
        case "$s" in active|failed) echo "$s"; return 0 ;; esac
        sleep 0.5
    done
    echo "$s"
}
report() { in_box cat /var/lib/orc/last-run.json; }
field() { python3 -c "import json,sys; r=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

boot
state=$(wait_settled)
check "first boot: orc.service is active ($state)" test "$state" = active
journal=$(in_box journalctl -u orc.service --no-pager -o cat)
check "journal shows the phases" grep -q "completed configure" <<<"$journal"
check "journal shows the scripts' output" grep -q "configure: hello from environment.d on e2e-box" <<<"$journal"
warnings=$(in_box journalctl -u orc.service --no-pager -o cat -p warning || true)
check "journal has no warning" test -z "$warnings"
status=$(in_box systemctl show -p StatusText --value orc.service)
check "systemd got orc's STATUS ($status)" grep -q "^run .* ok in" <<<"$status"
check "registered state was seeded" in_box grep -q "pristine data from the image" /mnt/state/var/lib/e2e-app/data.txt
check "the image path is a symlink into the state" test "$(in_box readlink /var/lib/e2e-app)" = /mnt/state/var/lib/e2e-app
check "orc status is ok" in_box orc status
check "5 paths seeded" test "$(report | field "[s['outcome'] for s in r['state']].count('seeded')")" = 5
check "the box container runs on the host engine" test "$(docker inspect -f '{{.State.Running}} {{index .Config.Labels "orc.managed"}}' orc-e2e-app)" = "true true"

step "reboot on the same state volume"
in_box sh -c 'echo "edited by the service" > /var/lib/e2e-app/data.txt'
docker stop -t 30 "$box" >/dev/null
docker start "$box" >/dev/null
state=$(wait_settled)
check "second boot: orc.service is active ($state)" test "$state" = active
check "nothing re-seeded" test "$(report | field "sorted(set(s['outcome'] for s in r['state']))")" = "['present']"
check "the edit survived" in_box grep -q "edited by the service" /mnt/state/var/lib/e2e-app/data.txt
check "the box container was left alone" test "$(report | field "[c['action'] for c in r['containers']]")" = "['keep']"
check "orc status is ok again" in_box orc status
overhead=$(report | field "r['overhead_ms']")
steps=$(report | field "len(r['steps'])")
check "boot overhead ${overhead} ms for ${steps} steps, 5 seeded paths, converged containers (< 50 ms)" \
    python3 -c "import sys; sys.exit(0 if float('$overhead') < 50 else 1)"
check "man orc is readable from the installed tree" sh -c "MANPATH='$work/root/usr/local/share/man' man orc 2>/dev/null | grep -q 'orc-run(1)'"
check "completions load in bash" bash -c "source '$work/root/usr/local/share/bash-completion/completions/orc' && complete -p orc >/dev/null"

t1=$(date +%s)
echo "e2e time: $((t1 - t0)) s in all: $((t_build - t0)) s engine and release build, $((t_root - t_build)) s debootstrap (0 when cached), $((t1 - t_root)) s applying the elements, booting twice and checking"
echo "e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
