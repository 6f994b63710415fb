#!/usr/bin/env bash
# Benchmark of the containers step on a real engine, 10 independent containers:
#  - no-op converge (everything already right, a network and healthchecks
#    declared): orc vs a bare `docker ps` and Debian's docker-compose `up -d`
#    on the same 10 services;
#  - full recreate (infra_version bumped every run): orc vs the equivalent
#    serial shell loop, `docker stop; docker rm; docker run -d` per container
#    (graceful like orc), the same loop run in parallel, and
#    `docker-compose up -d --force-recreate`;
#  - each service's downtime during one recreate, from the engine's events
#    (the old container's `die` to the new one's `start`), per tool.
# Targets: no-op under 50 ms; full recreate at most 0.6x the serial loop;
# median per-service downtime at most 0.6x compose's.
# Everything it puts on the engine carries this run's scope (orc.scope, or
# orc-bench.scope for the loops' containers, or the compose project's label) and
# is removed by that label.
# Every docker command holds /work/.docker-test.lock's peer: run this script
# under `flock /work/.docker-test.lock` on a shared engine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/container-engine.sh start
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
build_release
ROUNDS=${ROUNDS:-15}
image=${ORC_TEST_IMAGE:-orc-test/busybox:latest}

work=$(mktemp -d /tmp/orc-bench-containers.XXXXXX)
scope=orcbench-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
cleanup() {
    local f
    docker-compose -p "$scope-compose" -f "$work/compose.yaml" down -t 1 >/dev/null 2>&1 || true
    for f in orc.scope="$scope" orc.scope="$scope-noop" orc-bench.scope="$scope"; do
        docker ps -aq --filter "label=$f" | xargs -r docker rm -f >/dev/null
    done
    docker network ls -q --filter "label=orc.scope=$scope-noop" | xargs -r docker network rm >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
mkdir -p "$root/etc/orc/containers.d" "$root/etc/orc/networks.d"
for i in $(seq 1 10); do
    printf '{"name": "%s-orc-%s", "image": "%s", "command": ["sleep", "3600"], "init": true, "stop_timeout": 1}\n' \
        "$scope" "$i" "$image" > "$root/etc/orc/containers.d/c$i.json"
done
cat > "$work/recreate-orc.sh" <<S
v=\$(cat "$work/v" 2>/dev/null || echo 0); v=\$((v + 1)); echo \$v > "$work/v"
echo "{\"containers\": {\"engine\": \"docker\", \"infra_version\": \"\$v\", \"scope\": \"$scope\"}}" > "$root/etc/orc/orc.json"
exec "$ORC" --root "$root" -q containers reconcile
S
# One container's recreate, as a shell does it: recreate-one.sh NAME.
cat > "$work/recreate-one.sh" <<S
docker stop -t 1 "\$1" >/dev/null 2>&1 || true
docker rm "\$1" >/dev/null 2>&1 || true
docker run -d --init --stop-timeout 1 --label orc-bench.scope=$scope --name "\$1" "$image" sleep 3600 >/dev/null
S
cat > "$work/recreate-sh.sh" <<S
for i in \$(seq 1 10); do sh "$work/recreate-one.sh" $scope-sh-\$i; done
S
cat > "$work/recreate-par.sh" <<S
for i in \$(seq 1 10); do sh "$work/recreate-one.sh" $scope-par-\$i & done
wait
S
{
    echo "services:"
    for i in $(seq 1 10); do
        printf '  s%s:\n    image: %s\n    command: ["sleep", "3600"]\n    init: true\n    stop_grace_period: 1s\n' "$i" "$image"
    done
} > "$work/compose.yaml"
compose=(docker-compose -p "$scope-compose" -f "$work/compose.yaml")
sh "$work/recreate-orc.sh" >/dev/null; sh "$work/recreate-sh.sh"; sh "$work/recreate-par.sh"
"${compose[@]}" up -d >/dev/null 2>&1

# The no-op box: the same 10 containers, 3 of them with a healthcheck, 5 on a network,
# 2 with an image archive (not loaded again: its size, mtime and inode are recorded).
noop=$work/noop
mkdir -p "$noop/etc/orc/containers.d" "$noop/etc/orc/networks.d" "$noop/srv"
docker save -o "$noop/srv/image.tar" "$image"
printf '{"name": "%s-noop-net"}\n' "$scope" > "$noop/etc/orc/networks.d/net.json"
for i in $(seq 1 10); do
    extra=""
    [ "$i" -le 3 ] && extra=', "healthcheck": {"test": ["CMD", "true"], "interval": "1s"}'
    [ "$i" -gt 5 ] && extra=", \"networks\": [\"$scope-noop-net\"]"
    [ "$i" -eq 4 ] || [ "$i" -eq 5 ] && extra=', "image_archive": "/srv/image.tar"'
    printf '{"name": "%s-noop-%s", "image": "%s", "command": ["sleep", "3600"], "init": true, "stop_timeout": 1%s}\n' \
        "$scope" "$i" "$image" "$extra" > "$noop/etc/orc/containers.d/c$i.json"
done
echo "{\"containers\": {\"engine\": \"docker\", \"infra_version\": \"fixed\", \"scope\": \"$scope-noop\"}}" > "$noop/etc/orc/orc.json"
"$ORC" --root "$noop" -q containers reconcile >/dev/null

step "no-op converge, $ROUNDS rounds"
python3 - "$ORC" "$noop" "$ROUNDS" "${compose[@]}" <<'PY'
import sys
sys.path.insert(0, "scripts")
from benchlib import compare
orc, root, rounds = sys.argv[1:4]
compose = sys.argv[4:]
res = compare([
    ("docker ps", ["docker", "ps", "-q"], None),
    ("compose up -d (no-op)", compose + ["up", "-d"], None),
    ("orc no-op reconcile", [orc, "--root", root, "-q", "containers", "reconcile"], None),
], int(rounds) * 4, "docker ps")
o, c = res['orc no-op reconcile'][0], res['compose up -d (no-op)'][0]
print(f"\norc no-op converge      {o * 1000:6.0f} ms (target < 50 ms; 10 containers, 3 healthchecks, "
      f"a network, 2 image archives: 3 engine calls in parallel); compose {c * 1000:.0f} ms, orc/compose {o / c:.2f}x")
PY

step "full recreate of 10 containers, $ROUNDS rounds"
python3 - "$work" "$ROUNDS" "${compose[@]}" <<'PY'
import sys
sys.path.insert(0, "scripts")
from benchlib import compare
work, rounds = sys.argv[1:3]
compose = sys.argv[3:]
loop = "serial stop/rm/run loop"
res = compare([
    (loop, ["sh", f"{work}/recreate-sh.sh"], None),
    ("parallel loop", ["sh", f"{work}/recreate-par.sh"], None),
    ("compose --force-recreate", compose + ["up", "-d", "--force-recreate"], None),
    ("orc recreate", ["sh", f"{work}/recreate-orc.sh"], None),
], int(rounds), loop)
o = res['orc recreate'][0]
print(f"\norc / serial loop       {o / res[loop][0]:5.2f}x (target <= 0.6x; all stop gracefully; "
      f"orc creates each new container before its old one stops, and checks it stays up)")
print(f"orc / parallel loop     {o / res['parallel loop'][0]:5.2f}x")
print(f"orc / compose           {o / res['compose --force-recreate'][0]:5.2f}x")
PY

step "per-service downtime during one full recreate (engine events: die -> start)"
python3 - "$work" "$ROUNDS" "$scope" "${compose[@]}" <<'PY'
import json, statistics, subprocess, sys, time
work, rounds, scope = sys.argv[1:4]
compose = sys.argv[4:]
tools = [
    ("serial loop", ["sh", f"{work}/recreate-sh.sh"], f"{scope}-sh-"),
    ("parallel loop", ["sh", f"{work}/recreate-par.sh"], f"{scope}-par-"),
    ("compose", compose + ["up", "-d", "--force-recreate"], f"{scope}-compose"),
    ("orc", ["sh", f"{work}/recreate-orc.sh"], f"{scope}-orc-"),
]

def downtimes(argv, prefix):
    since = time.time() - 1
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    until = time.time() + 1
    out = subprocess.run(
        ["docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
         "--filter", "type=container", "--filter", "event=die", "--filter", "event=start",
         "--format", "{{json .}}"], check=True, capture_output=True, text=True).stdout
    died, gaps = {}, []
    for line in out.splitlines():
        e = json.loads(line)
        attrs = e["Actor"]["Attributes"]
        # orc's old and new containers carry the service's name in orc.for (the old one
        # is set aside as NAME.orc-old, the new one starts as NAME.orc-new).
        name = attrs.get("orc.for") or attrs.get("name", "")
        if not name.startswith(prefix):
            continue
        if e["Action"] == "die":
            died[name] = e["timeNano"]
        elif e["Action"] == "start" and name in died:
            gaps.append((e["timeNano"] - died.pop(name)) / 1e6)
    if len(gaps) != 10:
        sys.exit(f"{prefix}: {len(gaps)} die -> start pairs, want 10")
    return gaps

med = {}
for name, argv, prefix in tools:
    all_gaps = []
    for _ in range(int(rounds)):
        all_gaps += downtimes(argv, prefix)
    med[name] = statistics.median(all_gaps)
    print(f"{name:16} median {med[name]:7.0f} ms   max {max(all_gaps):7.0f} ms   per service")
print(f"\norc / compose downtime  {med['orc'] / med['compose']:5.2f}x (target <= 0.6x)")
print(f"orc / serial downtime   {med['orc'] / med['serial loop']:5.2f}x")
PY
