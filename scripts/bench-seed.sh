#!/usr/bin/env bash
# Benchmark of state seeding: the shared make-tree.sh tree (376 MiB, 23,000
# entries) seeded by `orc state seed` vs `rsync -aH` (with and without a
# closing `sync`) and `cp -a`, cold cache (caches dropped before every run),
# interleaved rounds, medians and ratios. orc's time includes making the copy
# durable (syncfs).
#
# What is measured is the tool, not the filesystem's allocator: every run
# writes a fresh destination; the one before is moved aside (a rename) and
# all of them are removed only after the series. On ext4 without a journal
# (this machine) the inode allocator steps over every inode freed in the last
# 60 s (360 s once its inode table block is dirty again), so creating inodes
# soon after deleting tens of thousands is several times slower: the script
# also waits until its own last deletion is 6 minutes old (BENCH_NO_WAIT=1
# skips the wait).
#
# The disk's own limits are measured in the same series: a cold read of every
# file with 4 readers, and a write-only pass of the same files (same
# directories and sizes, data from memory, 4 writers) + syncfs.
#
# Targets: orc <= 0.65x `rsync -aH && sync`, <= 0.95x `rsync -aH`, peak RSS
# under 16 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
build_release
ROUNDS=${ROUNDS:-15}
MAKE_TREE=${MAKE_TREE:-../shared/bench/make-tree.sh}
[ -w /proc/sys/vm/drop_caches ] || { echo "needs root (drops the page cache)" >&2; exit 2; }

work=${BENCH_DIR:-/var/tmp/orc-bench-seed}
root=$work/root
src=$root/var/lib/use-ephemeral/var/lib/bench
out=$work/out
trash=$work/trash
if [ ! -e "$work/.built" ]; then
    rm -rf "$work"
    step "building the tree with $MAKE_TREE"
    bash "$MAKE_TREE" "$src" 42
    touch "$work/.built"
fi
echo "/var/lib/bench;" > "$root/var/lib/use-ephemeral/stateful-paths"
freed=$work/.freed-at
remove_copies() {
    rm -rf "$trash" "$out" "$root/mnt"
    sync
    date +%s > "$freed"
}
if [ -e "$trash" ] || [ -e "$out" ] || [ -e "$root/mnt" ]; then
    step "removing the leftovers of an earlier series"
    remove_copies
fi
if [ -z "${BENCH_NO_WAIT:-}" ] && [ -e "$freed" ]; then
    wait=$(( $(cat "$freed") + 370 - $(date +%s) ))
    if [ "$wait" -gt 0 ]; then
        step "waiting ${wait} s: inodes this script freed less than 6 min ago slow ext4's allocator"
        sleep "$wait"
    fi
fi
mkdir -p "$trash" "$out"
trap 'step "removing the copies of this series"; remove_copies' EXIT
echo "tree: $(du -sh --apparent-size "$src" | cut -f1), $(find "$src" | wc -l) entries"
echo "every run writes a fresh destination; earlier ones are moved aside (rename)"
echo "and removed only after the series, so no run pays for deleting the last copy"

step "timing $ROUNDS rounds, cold cache, interleaved"
python3 - "$work" "$root" "$src" "$ORC" "$ROUNDS" <<'PY'
import os, sys
sys.path.insert(0, "scripts")
from benchlib import compare
work, root, src, orc, rounds = sys.argv[1:]
out, trash = f"{work}/out", f"{work}/trash"

# The write-only floor: the tree's directories and regular files (one per inode),
# written from memory by 4 processes, each taking whole directories.
manifest = f"{work}/manifest.txt"
if not os.path.exists(manifest):
    seen, lines = set(), []
    for d, dirs, files in os.walk(src):
        rel = os.path.relpath(d, src)
        lines.append(f"d {rel}")
        for f in files:
            st = os.lstat(os.path.join(d, f))
            if (st.st_mode & 0o170000) == 0o100000 and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                lines.append(f"f {st.st_size} {os.path.join(rel, f)}")
    with open(manifest, "w") as fh:
        fh.write("\n".join(lines) + "\n")
writer = f"{work}/write-floor.py"
with open(writer, "w") as fh:
    fh.write('''
import os, sys
manifest, dest = sys.argv[1:]
dirs, files = [], {}
for line in open(manifest):
    kind, rest = line.rstrip("\\n").split(" ", 1)
    if kind == "d":
        dirs.append(rest)
    else:
        size, rel = rest.split(" ", 1)
        files.setdefault(os.path.dirname(rel) or ".", []).append((rel, int(size)))
for d in dirs:
    os.makedirs(os.path.join(dest, d), exist_ok=True)
data = memoryview(os.urandom(4 << 20))
groups = list(files.values())
kids = []
for k in range(4):
    pid = os.fork()
    if pid == 0:
        for group in groups[k::4]:
            for rel, size in group:
                fd = os.open(os.path.join(dest, rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                left = size
                while left:
                    left -= os.write(fd, data[:min(left, len(data))])
                os.close(fd)
        os._exit(0)
    kids.append(pid)
for pid in kids:
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit("a writer failed")
''')

# Before every run: the destinations of earlier runs moved aside, dirty data written
# back, page cache dropped.
dests = [f"{root}/mnt/state"] + [f"{out}/{n}" for n in ("rsync", "rsync-sync", "cp", "write")]
before = ("n=$(date +%s%N); for d in " + " ".join(dests) +
          f"; do [ -e $d ] && mv $d {trash}/$n.$(basename $d); done; "
          "sync; echo 3 > /proc/sys/vm/drop_caches")
read_floor = f"find {src} -type f -print0 | xargs -0 -P4 -n 512 cat > /dev/null"
write_floor = (f"python3 {writer} {work}/manifest.txt {out}/write && sync -f {out}/write")
res = compare([
    ("rsync -aH", ["rsync", "-aH", f"{src}/", f"{out}/rsync"], None),
    ("rsync -aH && sync", ["sh", "-c", f"rsync -aH {src}/ {out}/rsync-sync && sync"], None),
    ("cp -a", ["cp", "-a", src, f"{out}/cp"], None),
    ("orc state seed", [orc, "--root", root, "-q", "state", "seed"], None),
    ("read floor (4 readers)", ["sh", "-c", read_floor], None),
    ("write floor (+syncfs)", ["sh", "-c", write_floor], None),
], int(rounds), "rsync -aH", before)
orc_t, orc_rss = res["orc state seed"]
r = lambda name: orc_t / res[name][0]
print()
print(f"orc / rsync -aH            {r('rsync -aH'):5.2f}x (target <= 0.95x)")
print(f"orc / rsync -aH && sync    {r('rsync -aH && sync'):5.2f}x (target <= 0.65x)")
print(f"orc / cp -a                {r('cp -a'):5.2f}x")
print(f"orc / read floor           {r('read floor (4 readers)'):5.2f}x")
print(f"orc / write floor          {r('write floor (+syncfs)'):5.2f}x")
print(f"orc peak RSS               {orc_rss / 1024:5.1f} MiB (target < 16 MiB)")
PY
