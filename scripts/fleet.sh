#!/usr/bin/env bash
# A fleet view: `orc --root R status --json` from each root, one table.
#   fleet.sh ROOT...        (ORC=path/to/orc to use another binary; default: orc on PATH)
# Columns: root, result (never = orc never ran there), run id, when it ended, how long
# it took, and the first step that did not succeed. Exits 1 if any root's last run was
# not ok (a never-ran root counts as not ok), 0 otherwise.
set -euo pipefail
orc=${ORC:-orc}
[ $# -gt 0 ] || { echo "usage: fleet.sh ROOT..." >&2; exit 2; }
for root in "$@"; do
    # status exits 1 (failed) or 3 (never ran) with valid JSON on stdout; keep going.
    json=$("$orc" --root "$root" status --json 2>/dev/null) || true
    printf '%s\t%s\n' "$root" "${json//$'\n'/ }"
done | python3 -c '
import json, sys
rows, bad = [], 0
for line in sys.stdin:
    root, _, text = line.rstrip("\n").partition("\t")
    try:
        r = json.loads(text) if text.strip() else None
        unreadable = not text.strip()
    except ValueError:
        r, unreadable = None, True
    if r is None:
        rows.append([root, "unreadable" if unreadable else "never", "-", "-", "-", "-"])
        bad += 1
        continue
    failed = next(("%s/%s" % (s["phase"], s["name"]) for s in r["steps"]
                   if s["result"] not in ("ok", "skipped")), "-")
    rows.append([root, r["result"], r["run_id"], r.get("ended") or "-",
                 "%.1fs" % (r["duration_ms"] / 1000), failed])
    bad += r["result"] != "ok"
head = ["ROOT", "RESULT", "RUN", "ENDED", "TOOK", "FAILED STEP"]
w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
for row in [head] + rows:
    print("  ".join(str(x).ljust(n) for x, n in zip(row, w)).rstrip())
sys.exit(1 if bad else 0)
'
