#!/usr/bin/env bash
# Benchmark of the phase runner: 4 phases x 25 trivial `#!/bin/sh true`
# scripts, timed side by side (interleaved rounds, medians) for orc, a plain
# sh loop over the same scripts, Debian's run-parts (once per phase) and the
# real os-refresh-config 14.1.0. Prints medians, ratios, per-script times and
# orc's own per-script overhead in microseconds, and peak RSS.
# Targets: orc <= 1.1x the sh loop and <= 0.9x run-parts, >= 15x faster than
# os-refresh-config, peak RSS under 5 MiB.
# The sample root's /run is a tmpfs, as on every systemd box: orc's lock file
# (which names each step's process group as it starts) lives there. orc is also
# timed with its lock file on this machine's disk, and that ratio is printed too,
# and with an environment.d file (what sourcing it adds to a run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_upstream_venv
build_release
ROUNDS=${ROUNDS:-31}
command -v run-parts >/dev/null || apt_install debianutils

work=$(mktemp -d /tmp/orc-bench-phases.XXXXXX)
mkdir -p "$work/root/run"
run_fs=disk
if mount -t tmpfs orc-bench-run "$work/root/run" 2>/dev/null; then run_fs=tmpfs; fi
trap 'umount "$work/root/run" "$work/root-env/run" 2>/dev/null || true; rm -rf "$work"' EXIT
base=$work/root/usr/libexec/os-refresh-config
phases="pre-configure configure post-configure migration"
for phase in $phases; do
    mkdir -p "$base/$phase.d"
    for i in $(seq -w 1 25); do
        printf '#!/bin/sh\ntrue\n' > "$base/$phase.d/$i-step"
        chmod 755 "$base/$phase.d/$i-step"
    done
done
mkdir -p "$work/root/etc/orc"
echo '{"phase_order": "upstream"}' > "$work/root/etc/orc/orc.json"
# The same box with an environment.d file (sourced by one bash process, as at boot).
mkdir -p "$work/root-env"
cp -a "$work/root/." "$work/root-env/"
mkdir -p "$work/root-env/run" "$work/root-env/usr/libexec/os-refresh-config/environment.d"
mount -t tmpfs orc-bench-run "$work/root-env/run" 2>/dev/null || true
printf 'export GREETING="hello"\nexport DB_PASSWORD=s3cret-value\nPORT=8080\n' \
    > "$work/root-env/usr/libexec/os-refresh-config/environment.d/10-env"
cat > "$work/loop.sh" <<LOOP
for phase in $phases; do
    for f in $base/\$phase.d/*; do "\$f" || exit 1; done
done
LOOP
cat > "$work/run-parts.sh" <<RP
for phase in $phases; do run-parts --exit-on-error "$base/\$phase.d" || exit 1; done
RP

step "timing $ROUNDS interleaved rounds"
python3 - "$work" "$base" "$ORC" "$UPSTREAM_VENV" "$ROUNDS" "$run_fs" <<'PY'
import os, sys
sys.path.insert(0, "scripts")
from benchlib import compare
work, base, orc, venv, rounds, run_fs = sys.argv[1:]
up_env = dict(os.environ, PATH=f"{venv}/bin:" + os.environ["PATH"], OS_REFRESH_CONFIG_BASE_DIR=base)
res = compare([
    ("sh loop", ["sh", f"{work}/loop.sh"], None),
    ("run-parts", ["sh", f"{work}/run-parts.sh"], None),
    ("orc run", [orc, "--root", f"{work}/root", "run", "-q"], None),
    ("orc run, lock on disk", [orc, "--root", f"{work}/root", "run", "-q", "--lockfile", f"{work}/disk.lock"], None),
    ("orc run, environment.d", [orc, "--root", f"{work}/root-env", "run", "-q"], None),
    ("os-refresh-config", [f"{venv}/bin/os-refresh-config", "--lockfile", f"{work}/up.lock"], up_env),
], int(rounds), "sh loop")
t = {k: v[0] for k, v in res.items()}
n = 100
print()
for k in ("sh loop", "run-parts", "orc run", "orc run, lock on disk", "orc run, environment.d", "os-refresh-config"):
    print(f"{k:24} {t[k] / n * 1e6:8.0f} us per script")
print(f"orc's own overhead      {(t['orc run'] - t['sh loop']) / n * 1e6:8.0f} us per script over the sh loop")
print(f"environment.d sourced   {(t['orc run, environment.d'] - t['orc run']) * 1e3:8.1f} ms per run (one bash process)")
print(f"\norc / sh loop           {t['orc run'] / t['sh loop']:6.2f}x   (target <= 1.1x; the lock on /run, a {run_fs})")
print(f"  lock on disk          {t['orc run, lock on disk'] / t['sh loop']:6.2f}x   (the lock file on this machine's disk)")
print(f"orc / run-parts         {t['orc run'] / t['run-parts']:6.2f}x   (target <= 0.9x)")
print(f"os-refresh-config / orc {t['os-refresh-config'] / t['orc run']:6.1f}x   (target >= 15x)")
print(f"orc peak RSS            {res['orc run'][1] / 1024:6.1f} MiB (target < 5 MiB; includes the scripts it waited for)")
PY
