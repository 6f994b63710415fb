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
# is removed by that label at the end, whatever happened: containers, then
# networks, then a check that nothing with those labels is left (else it says
# what and fails).
# Every engine call (the peers' too) runs under a timeout (BENCH_TIMEOUT, 120 s):
# a peer that fails or hangs ends the script with its name and the end of its
# stderr, then the cleanup. On a shared engine run this under
# `flock /work/.engine.lock`.
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
export BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
# An engine call that cannot hang the script.
dk() { timeout -k 5 "$BENCH_TIMEOUT" docker "$@"; }
labels=("orc.scope=$scope" "orc.scope=$scope-noop" "orc-bench.scope=$scope"
        "com.docker.compose.project=$scope-compose")
cleanup() {
    local rc=$? f left
    set +e
    trap - EXIT INT TERM
    [ "$rc" = 0 ] || echo "bench-containers: failed (exit $rc); removing what carries ${labels[*]}" >&2
    # One container at a time: docker 20.10 removing several endpoints of one network at
    # once can lose count of them (the daemon logs "key modified"), and the network then
    # "has active endpoints" until the daemon restarts.
    for f in "${labels[@]}"; do
        dk ps -aq --filter "label=$f" | xargs -r -n1 timeout -k 5 "$BENCH_TIMEOUT" docker rm -f >/dev/null
    done
    for f in "${labels[@]}"; do
        dk network ls -q --filter "label=$f" | xargs -r timeout -k 5 "$BENCH_TIMEOUT" docker network rm >/dev/null
    done
    left=$(for f in "${labels[@]}"; do
        dk ps -a --filter "label=$f" --format 'container {{.Names}}' || echo "docker ps failed ($f)"
        dk network ls --filter "label=$f" --format 'network {{.Name}}' || echo "docker network ls failed ($f)"
    done)
    if [ -n "$left" ]; then
        echo "bench-containers: the cleanup left on the engine (remove by hand):" $left >&2
        rc=1
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "bench-containers: \`$BASH_COMMAND\` failed (exit $?; 124: timed out after $BENCH_TIMEOUT s)" >&2' ERR
echo "peer: docker-compose $(docker-compose version --short 2>/dev/null); load average $(cut -d' ' -f1-3 /proc/loadavg)"
root=$work/root
mkdir -p "$root/etc/orc/containers.d" "$root/etc/orc/networks.d"
for i in $(seq 1 10); do
    printf '{"name": "%s-orc-%s", "image": "%s", "command": ["sleep", "3600"], "init": true, "stop_timeout": 1}\n' \
        "$scope" "$i" "$image" > "$root/etc/orc/containers.d/c$i.json"
done
cat > "$work/recreate-orc.sh" <<S
v=\$(cat "$work/v" 2>/dev/null || echo 0); v=\$((v + 1)); echo \$v > "$work/v"
echo "{\"containers\": {\"engine\": \"docker\", \"infra_version\": \"\$v\", \"scope\": \"$scope\"}}" > "$root/etc/orc/orc.json"
exec timeout -k 5 $BENCH_TIMEOUT "$ORC" --root "$root" -q containers reconcile
S
# One container's recreate, as a shell does it: recreate-one.sh NAME.
cat > "$work/recreate-one.sh" <<S
t="timeout -k 5 $BENCH_TIMEOUT"
\$t docker stop -t 1 "\$1" >/dev/null 2>&1 || true
\$t docker rm "\$1" >/dev/null 2>&1 || true
exec \$t docker run -d --init --stop-timeout 1 --label orc-bench.scope=$scope --name "\$1" "$image" sleep 3600 >/dev/null
S
cat > "$work/recreate-sh.sh" <<S
set -e
for i in \$(seq 1 10); do sh "$work/recreate-one.sh" $scope-sh-\$i; done
S
cat > "$work/recreate-par.sh" <<S
pids=""
for i in \$(seq 1 10); do sh "$work/recreate-one.sh" $scope-par-\$i & pids="\$pids \$!"; done
rc=0; for p in \$pids; do wait \$p || rc=1; done; exit \$rc
S
{
    echo "services:"
    for i in $(seq 1 10); do
        printf '  s%s:\n    image: %s\n    command: ["sleep", "3600"]\n    init: true\n    stop_grace_period: 1s\n    network_mode: bridge\n' "$i" "$image"
    done
} > "$work/compose.yaml"
# On the default bridge, like the loops' and orc's containers: compose makes no network
# of its own (a project network is what docker 20.10 failed to remove after parallel
# recreates, its endpoint count off).
compose=(timeout -k 5 "$BENCH_TIMEOUT" docker-compose -p "$scope-compose" -f "$work/compose.yaml")
sh "$work/recreate-orc.sh" >/dev/null; sh "$work/recreate-sh.sh"; sh "$work/recreate-par.sh"
"${compose[@]}" up -d >/dev/null 2>"$work/compose.err" || { cat "$work/compose.err" >&2; exit 1; }

# The no-op box: the same 10 containers, 3 of them with a healthcheck, 5 on a network,
# 2 with an image archive (not loaded again: its size, mtime and inode are recorded).
noop=$work/noop
mkdir -p "$noop/etc/orc/containers.d" "$noop/etc/orc/networks.d" "$noop/srv"
dk save -o "$noop/srv/image.tar" "$image"
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
timeout -k 5 "$BENCH_TIMEOUT" "$ORC" --root "$noop" -q containers reconcile >/dev/null

step "no-op converge, $ROUNDS rounds"
python3 - "$ORC" "$noop" "$ROUNDS" "${compose[@]}" <<'PY'
import sys
sys.path.insert(0, "scripts")
from benchlib import compare
orc, root, rounds = sys.argv[1:4]
compose = sys.argv[4:]
res = compare([
    ("docker ps", ["docker", "ps", "-q"], None),  # benchlib kills it at BENCH_TIMEOUT
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
import json, os, statistics, subprocess, sys, time
work, rounds, scope = sys.argv[1:4]
compose = sys.argv[4:]
tools = [
    ("serial loop", ["sh", f"{work}/recreate-sh.sh"], f"{scope}-sh-"),
    ("parallel loop", ["sh", f"{work}/recreate-par.sh"], f"{scope}-par-"),
    ("compose", compose + ["up", "-d", "--force-recreate"], f"{scope}-compose"),
    ("orc", ["sh", f"{work}/recreate-orc.sh"], f"{scope}-orc-"),
]

def run(argv):
    """argv's stdout; a failure or a hang (BENCH_TIMEOUT) ends the bench, naming it."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, start_new_session=True,
                           timeout=float(os.environ["BENCH_TIMEOUT"]))
    except subprocess.TimeoutExpired:
        sys.exit(f"bench: {' '.join(argv)} did not end within {os.environ['BENCH_TIMEOUT']} s")
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} exited with {r.returncode}; its stderr ends:\n  "
                 + "\n  ".join(r.stderr.strip().splitlines()[-10:]))
    return r.stdout

def downtimes(argv, prefix):
    # From now: a window opened earlier takes in the last round's events of the
    # recreate benchmark above (12 pairs where 10 are wanted).
    since = time.time()
    run(argv)
    until = time.time() + 1
    out = run(["docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
               "--filter", "type=container", "--filter", "event=die", "--filter", "event=start",
               "--format", "{{json .}}"])
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
