#!/usr/bin/env bash
# Benchmark of the phase runner: 4 phases x 25 trivial `#!/bin/sh true`
# scripts, timed side by side for orc, the real os-refresh-config 14.1.0 and
# a plain sh loop over the same scripts. Prints medians, ratios and peak RSS.
# Targets: orc within 1.2x of the sh loop, >= 15x faster than upstream,
# peak RSS under 5 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_upstream_venv
build_release
ROUNDS=${ROUNDS:-15}

work=$(mktemp -d /tmp/orc-bench-phases.XXXXXX)
trap 'rm -rf "$work"' EXIT
base=$work/root/usr/libexec/os-refresh-config
for phase in pre-configure configure post-configure migration; do
    mkdir -p "$base/$phase.d"
    for i in $(seq -w 1 25); do
        printf '#!/bin/sh\ntrue\n' > "$base/$phase.d/$i-step"
        chmod 755 "$base/$phase.d/$i-step"
    done
done
mkdir -p "$work/root/etc/orc"
echo '{"phase_order": "upstream"}' > "$work/root/etc/orc/orc.json"
cat > "$work/loop.sh" <<LOOP
for phase in pre-configure configure post-configure migration; do
    for f in $base/\$phase.d/*; do "\$f" || exit 1; done
done
LOOP

step "timing $ROUNDS rounds"
python3 - "$work" "$base" "$ORC" "$UPSTREAM_VENV" "$ROUNDS" <<'PY'
import os, sys
sys.path.insert(0, "scripts")
from benchlib import compare
work, base, orc, venv, rounds = sys.argv[1:]
up_env = dict(os.environ, PATH=f"{venv}/bin:" + os.environ["PATH"], OS_REFRESH_CONFIG_BASE_DIR=base)
res = compare([
    ("sh loop", ["sh", f"{work}/loop.sh"], None),
    ("orc run", [orc, "--root", f"{work}/root", "run", "-q"], None),
    ("os-refresh-config", [f"{venv}/bin/os-refresh-config", "--lockfile", f"{work}/up.lock"], up_env),
], int(rounds), "sh loop")
orc_t, orc_rss = res["orc run"]
loop_t = res["sh loop"][0]
up_t = res["os-refresh-config"][0]
print(f"\norc / sh loop           {orc_t / loop_t:6.2f}x   (target <= 1.2x)")
print(f"os-refresh-config / orc {up_t / orc_t:6.1f}x   (target >= 15x)")
print(f"orc peak RSS            {orc_rss / 1024:6.1f} MiB (target < 5 MiB; includes the scripts it waited for)")
PY
