#!/usr/bin/env bash
# Runs benchmarks and pastes what each printed into README.md, between its
# markers `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` (the figures there
# are never typed by hand). A benchmark that fails leaves its block alone and
# fails this script.
#   bench-readme.sh [NAME...]   NAME: phases, seed, containers (default: all)
#   bench-readme.sh --paste NAME FILE   only paste FILE into NAME's block
# The containers benchmark uses the shared engine: run this under
# `flock /work/.engine.lock` there.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# paste NAME FILE: replaces the body of NAME's block in README.md by FILE in a code
# block, with how and where it was made.
paste_block() {
    python3 - README.md "$1" "$2" "$(nproc)" <<'PY'
import re, sys, datetime
readme, name, out, cores = sys.argv[1:]
text = open(readme).read()
begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
if text.count(begin) != 1 or text.count(end) != 1:
    sys.exit(f"{readme}: no single {begin} ... {end} block")
body = open(out).read().strip("\n")
day = datetime.date.today().isoformat()
block = (f"{begin}\n`scripts/bench-readme.sh {name}` ({day}, {cores} cores):\n\n"
         f"```text\n{body}\n```\n{end}")
new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
tmp = readme + ".tmp"
open(tmp, "w").write(new)
import os; os.replace(tmp, readme)
PY
}

if [ "${1:-}" = --paste ]; then
    [ $# = 3 ] || { echo "usage: $0 --paste NAME FILE" >&2; exit 2; }
    paste_block "$2" "$3"
    exit
fi

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(phases seed containers)
mkdir -p target/bench
for name in "${names[@]}"; do
    step "scripts/bench-$name.sh (its figures go to README.md)"
    scripts/"bench-$name.sh" > "target/bench/$name.out"
    cat "target/bench/$name.out"
    paste_block "$name" "target/bench/$name.out"
done
