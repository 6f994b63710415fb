#!/usr/bin/env bash
# Benchmark of the containers step on a real engine, 10 independent containers:
#  - no-op converge (everything already right): orc vs a bare `docker ps`;
#  - full recreate (infra_version bumped every run): orc vs the equivalent
#    serial `docker rm -f` / `docker run` shell loop (Cloudron's way).
# Targets: no-op under 150 ms; full recreate at most 0.6x the serial loop.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/container-engine.sh start
build_release
ROUNDS=${ROUNDS:-5}
image=${ORC_TEST_IMAGE:-orc-test/busybox:latest}

work=$(mktemp -d /tmp/orc-bench-containers.XXXXXX)
cleanup() {
    docker ps -aq --filter name=orcbench- | xargs -r docker rm -f >/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
mkdir -p "$root/etc/orc/containers.d"
for i in $(seq 1 10); do
    printf '{"name": "orcbench-orc-%s", "image": "%s", "command": ["sleep", "3600"], "init": true, "stop_timeout": 1}\n' \
        "$i" "$image" > "$root/etc/orc/containers.d/c$i.json"
done
cat > "$work/recreate-orc.sh" <<S
v=\$(cat "$work/v" 2>/dev/null || echo 0); v=\$((v + 1)); echo \$v > "$work/v"
echo "{\"containers\": {\"engine\": \"docker\", \"infra_version\": \"\$v\"}}" > "$root/etc/orc/orc.json"
exec "$ORC" --root "$root" -q containers reconcile
S
cat > "$work/recreate-sh.sh" <<S
for i in \$(seq 1 10); do
    docker rm -f orcbench-sh-\$i >/dev/null 2>&1 || true
    docker run -d --init --name orcbench-sh-\$i "$image" sleep 3600 >/dev/null
done
S
sh "$work/recreate-orc.sh" >/dev/null; sh "$work/recreate-sh.sh"
echo '{"containers": {"engine": "docker", "infra_version": "fixed"}}' > "$root/etc/orc/orc.json"
"$ORC" --root "$root" -q containers reconcile >/dev/null

step "no-op converge, $ROUNDS rounds"
python3 - "$ORC" "$root" "$ROUNDS" <<'PY'
import sys
sys.path.insert(0, "scripts")
from benchlib import compare
orc, root, rounds = sys.argv[1:]
res = compare([
    ("docker ps", ["docker", "ps", "-q"], None),
    ("orc no-op reconcile", [orc, "--root", root, "-q", "containers", "reconcile"], None),
], int(rounds) * 4, "docker ps")
print(f"\norc no-op converge      {res['orc no-op reconcile'][0] * 1000:6.0f} ms (target < 150 ms)")
PY

step "full recreate of 10 containers, $ROUNDS rounds"
python3 - "$work" "$ROUNDS" <<'PY'
import sys
sys.path.insert(0, "scripts")
from benchlib import compare
work, rounds = sys.argv[1:]
res = compare([
    ("serial rm -f/run loop", ["sh", f"{work}/recreate-sh.sh"], None),
    ("orc recreate", ["sh", f"{work}/recreate-orc.sh"], None),
], int(rounds), "serial rm -f/run loop")
print(f"\norc / serial loop       {res['orc recreate'][0] / res['serial rm -f/run loop'][0]:5.2f}x (target <= 0.6x; "
      "orc stops gracefully, the loop kills)")
PY
