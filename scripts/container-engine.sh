#!/usr/bin/env bash
# A real container engine for the tests, benchmarks and demo.
#   container-engine.sh start   install Debian's docker.io and busybox-static when
#                               missing, start dockerd if none answers (its pid is
#                               recorded), and build the test image by `docker
#                               import` of a busybox rootfs (no registry needed)
#   container-engine.sh stop    end the dockerd this script started, by its pid
#   container-engine.sh podman  install podman (with catatonit for --init, and
#                               runc) and import the test image into it; prints
#                               the CONTAINERS_CONF to export. Podman 4.3 on these
#                               machines needs its default ulimits emptied, runc
#                               as the runtime and cgroupfs as the cgroup manager:
#                               that file sets them, without touching /etc. Its
#                               CNI networks resolve container names only with
#                               the dnsname plugin, installed here too.
# The test image is orc-test/busybox:latest (override: ORC_TEST_IMAGE).
# Checkouts sharing the engine set it up one at a time (start and podman hold
# /run/lock/orc-engine.lock): one dockerd, one import of the test image.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
state=${ORC_ENGINE_STATE:-$PWD/target/engine}
image=${ORC_TEST_IMAGE:-orc-test/busybox:latest}
mkdir -p "$state"

answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
    local want=()
    command -v dockerd >/dev/null 2>&1 || want+=(docker.io)
    command -v docker >/dev/null 2>&1 || want+=(docker.io)
    [ -x /bin/busybox ] || want+=(busybox-static)
    apt_install "${want[@]}"
    if ! answers; then
        step "starting dockerd"
        # With none of our fds but 0-2: a lock held by whoever ran us (flock) must not
        # live on in the daemon.
        (for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -le 2 ] || eval "exec $fd>&-"; done
         exec dockerd --pidfile "$state/dockerd.pid") </dev/null >"$state/dockerd.log" 2>&1 &
        echo $! > "$state/started.pid"
        for _ in $(seq 1 60); do answers && break; sleep 0.5; done
        answers || { tail -20 "$state/dockerd.log" >&2; echo "dockerd did not come up" >&2; exit 1; }
    fi
    if ! docker image inspect "$image" >/dev/null 2>&1; then
        step "building $image from busybox-static"
        busybox_rootfs | docker import -c 'ENV PATH=/bin' - "$image" >/dev/null
    fi
    echo "engine: docker $(docker version --format '{{.Server.Version}}'), image $image"
}

# A tar stream of a busybox-static root filesystem.
busybox_rootfs() {
    local rootfs
    rootfs=$(mktemp -d)
    mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/data"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
    done
    tar -C "$rootfs" -c .
    rm -rf "$rootfs"
}

podman_setup() {
    local want=()
    command -v podman >/dev/null 2>&1 || want+=(podman)
    [ -x /usr/libexec/podman/catatonit ] || want+=(catatonit)
    command -v runc >/dev/null 2>&1 || want+=(runc)
    [ -x /bin/busybox ] || want+=(busybox-static)
    [ -x /usr/lib/cni/dnsname ] || want+=(golang-github-containernetworking-plugin-dnsname)
    apt_install "${want[@]}"
    cat > "$state/containers.conf" <<CONF
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
    export CONTAINERS_CONF=$state/containers.conf
    if ! podman image exists "localhost/$image"; then
        step "importing localhost/$image into podman"
        busybox_rootfs | podman import -c 'ENV PATH=/bin' - "localhost/$image" >/dev/null
    fi
    echo "CONTAINERS_CONF=$CONTAINERS_CONF"
}

stop() {
    local f=$state/started.pid
    [ -f "$f" ] || { echo "no dockerd was started by this script"; return 0; }
    local pid
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    rm -f "$f"
    echo "stopped dockerd $pid"
}

case "${1:-}" in
    start) host_locked engine start ;;
    stop) stop ;;
    podman) host_locked engine podman_setup ;;
    *) echo "usage: $0 start|stop|podman" >&2; exit 2 ;;
esac
