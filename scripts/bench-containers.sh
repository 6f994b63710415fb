#!/usr/bin/env bash
# Benchmark of the containers step on a real engine, 10 independent containers:
#  - no-op converge (everything already right, a network and healthchecks
#    declared): orc vs a bare `docker ps`;
#  - full recreate (infra_version bumped every run): orc vs the equivalent
#    shell loops, `docker stop; docker rm; docker run -d` per container
#    (graceful like orc), serial and with every container in parallel.
# Targets: no-op under 50 ms; full recreate at most 0.5x the serial loop.
# Everything it puts on the engine carries this run's scope (orc.scope, or
# orc-bench.scope for the loops' containers) and is removed by that label.
# Every docker command holds /work/.docker-test.lock's peer: run this script
# under `flock /work/.docker-test.lock` on a shared engine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/container-engine.sh start
build_release
ROUNDS=${ROUNDS:-15}
image=${ORC_TEST_IMAGE:-orc-test/busybox:latest}

work=$(mktemp -d /tmp/orc-bench-containers.XXXXXX)
scope=orcbench-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
cleanup() {
    local f
    for f in orc.scope="$scope" orc.scope="$scope-noop" orc-bench.scope="$scope"; do
        docker ps -aq --filter "label=$f" | xargs -r docker rm -f >/dev/null
    done
    docker network ls -q --filter "label=orc.scope=$scope-noop" | xargs -r docker network rm >/dev/null
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
sh "$work/recreate-orc.sh" >/dev/null; sh "$work/recreate-sh.sh"; sh "$work/recreate-par.sh"

# The no-op box: the same 10 containers, 3 of them with a healthcheck, 5 on a network.
noop=$work/noop
mkdir -p "$noop/etc/orc/containers.d" "$noop/etc/orc/networks.d"
printf '{"name": "%s-noop-net"}\n' "$scope" > "$noop/etc/orc/networks.d/net.json"
for i in $(seq 1 10); do
    extra=""
    [ "$i" -le 3 ] && extra=', "healthcheck": {"test": ["CMD", "true"], "interval": "1s"}'
    [ "$i" -gt 5 ] && extra=", \"networks\": [\"$scope-noop-net\"]"
    printf '{"name": "%s-noop-%s", "image": "%s", "command": ["sleep", "3600"], "init": true, "stop_timeout": 1%s}\n' \
        "$scope" "$i" "$image" "$extra" > "$noop/etc/orc/containers.d/c$i.json"
done
echo "{\"containers\": {\"engine\": \"docker\", \"infra_version\": \"fixed\", \"scope\": \"$scope-noop\"}}" > "$noop/etc/orc/orc.json"
"$ORC" --root "$noop" -q containers reconcile >/dev/null

step "no-op converge, $ROUNDS rounds"
python3 - "$ORC" "$noop" "$ROUNDS" <<'PY'
import sys
sys.path.insert(0, "scripts")
from benchlib import compare
orc, root, rounds = sys.argv[1:]
res = compare([
    ("docker ps", ["docker", "ps", "-q"], None),
    ("orc no-op reconcile", [orc, "--root", root, "-q", "containers", "reconcile"], None),
], int(rounds) * 4, "docker ps")
print(f"\norc no-op converge      {res['orc no-op reconcile'][0] * 1000:6.0f} ms (target < 50 ms; "
      "10 containers, 3 healthchecks, a network: 2 engine calls in parallel)")
PY

step "full recreate of 10 containers, $ROUNDS rounds"
python3 - "$work" "$ROUNDS" <<'PY'
import sys
sys.path.insert(0, "scripts")
from benchlib import compare
work, rounds = sys.argv[1:]
loop, par = "serial stop/rm/run loop", "parallel stop/rm/run loop"
res = compare([
    (loop, ["sh", f"{work}/recreate-sh.sh"], None),
    (par, ["sh", f"{work}/recreate-par.sh"], None),
    ("orc recreate", ["sh", f"{work}/recreate-orc.sh"], None),
], int(rounds), loop)
print(f"\norc / serial loop       {res['orc recreate'][0] / res[loop][0]:5.2f}x (target <= 0.5x; "
      "all stop gracefully)")
print(f"orc / parallel loop     {res['orc recreate'][0] / res[par][0]:5.2f}x")
PY
