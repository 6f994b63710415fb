#!/usr/bin/env bash
# Benchmark of state seeding: the shared make-tree.sh tree (376 MiB, 23,000
# entries) seeded by `orc state seed` vs `rsync -aH` and `cp -a` into an empty
# destination, cold cache (caches dropped before every run), side by side,
# medians and ratios. orc's time includes making the copy durable (syncfs);
# "rsync -aH + sync" is shown too for that comparison.
# Target: orc at most 0.8x the time of rsync -aH, peak RSS under 16 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
build_release
ROUNDS=${ROUNDS:-5}
MAKE_TREE=${MAKE_TREE:-../shared/bench/make-tree.sh}
[ -w /proc/sys/vm/drop_caches ] || { echo "needs root (drops the page cache)" >&2; exit 2; }

work=${BENCH_DIR:-/var/tmp/orc-bench-seed}
root=$work/root
src=$root/var/lib/use-ephemeral/var/lib/bench
if [ ! -e "$work/.built" ]; then
    rm -rf "$work"
    step "building the tree with $MAKE_TREE"
    bash "$MAKE_TREE" "$src" 42
    touch "$work/.built"
fi
echo "/var/lib/bench;" > "$root/var/lib/use-ephemeral/stateful-paths"
echo "tree: $(du -sh --apparent-size "$src" | cut -f1), $(find "$src" | wc -l) entries"

step "timing $ROUNDS rounds, cold cache"
python3 - "$work" "$root" "$src" "$ORC" "$ROUNDS" <<'PY'
import sys
sys.path.insert(0, "scripts")
from benchlib import compare
work, root, src, orc, rounds = sys.argv[1:]
before = (f"rm -rf {root}/mnt/state {work}/rsync {work}/rsync-sync {work}/cp; "
          "sync; echo 3 > /proc/sys/vm/drop_caches")
res = compare([
    ("rsync -aH", ["rsync", "-aH", f"{src}/", f"{work}/rsync"], None),
    ("rsync -aH + sync", ["sh", "-c", f"rsync -aH {src}/ {work}/rsync-sync && sync"], None),
    ("cp -a", ["cp", "-a", src, f"{work}/cp"], None),
    ("orc state seed", [orc, "--root", root, "-q", "state", "seed"], None),
], int(rounds), "rsync -aH", before)
orc_t, orc_rss = res["orc state seed"]
print(f"\norc / rsync -aH         {orc_t / res['rsync -aH'][0]:5.2f}x (target <= 0.8x)")
print(f"orc / rsync -aH + sync  {orc_t / res['rsync -aH + sync'][0]:5.2f}x")
print(f"orc / cp -a             {orc_t / res['cp -a'][0]:5.2f}x")
print(f"orc peak RSS            {orc_rss / 1024:5.1f} MiB (target < 16 MiB)")
PY
