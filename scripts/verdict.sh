#!/usr/bin/env bash
# The suite's one closing line, "N passed, M failed", from cargo's and e2e's logs
# and exit statuses; exits 0 only when M is 0.
#   verdict.sh CARGO_LOG CARGO_RC [E2E_LOG E2E_RC]
# Each test counts once, from its binary's "test result:" line: the last such line
# before the next binary starts (a line a failing test printed comes before its
# binary's own, and counts nothing). A binary that started ("Running …",
# "Doc-tests …") and never printed its result (killed, crashed) counts as one
# failure; so does a non-zero exit with nothing else failed (a compile error,
# a run killed before its first binary). Without an e2e log (cargo's part alone)
# e2e is not counted; with one, its last "e2e: N passed, M failed" line counts,
# and a missing line or a non-zero exit with 0 failed counts as one failure.
set -euo pipefail
[ $# = 2 ] || [ $# = 4 ] || { echo "usage: $0 CARGO_LOG CARGO_RC [E2E_LOG E2E_RC]" >&2; exit 2; }
cargo_log=$1 cargo_rc=$2 e2e_log=${3:-} e2e_rc=${4:-0}
[ -z "$e2e_log" ] && e2e_log=/dev/null

awk -v cargo_rc="$cargo_rc" -v e2e_rc="$e2e_rc" -v want_e2e="${3:+1}" '
    { file = FILENAME == ARGV[1] ? 1 : 2 }
    # The binary before: its last result line counts.
    function close_binary() {
        if (have) { finished++; p += rp; f += rf; have = 0 }
    }
    file == 1 && /^ +(Running (unittests )?[^ ]+ \(|Doc-tests [^ ]+$)/ { close_binary(); started++ }
    file == 1 && /^test result: (ok|FAILED)\. [0-9]+ passed; [0-9]+ failed;/ {
        have = 1; rp = $4; rf = $6
    }
    file == 2 && /^e2e: [0-9]+ passed, [0-9]+ failed$/ { ep = $2; ef = $4; e2e = 1 }
    END {
        close_binary()
        why = ""
        if (finished < started) {
            f += started - finished
            why = why sprintf("verdict: %d test binar%s started and never reported a result\n",
                              started - finished, started - finished == 1 ? "y" : "ies")
        }
        if (started == 0) { f++; why = why "verdict: cargo ran no test binary\n" }
        else if (cargo_rc != 0 && f == 0) {
            f++; why = why sprintf("verdict: cargo exited %d with no test failed\n", cargo_rc)
        }
        if (want_e2e) {
            if (!e2e) { f++; why = why "verdict: no closing line from e2e\n" }
            else {
                p += ep; f += ef
                if (e2e_rc != 0 && ef == 0) {
                    f++; why = why sprintf("verdict: e2e exited %d with 0 failed\n", e2e_rc)
                }
            }
        }
        printf "%s%d passed, %d failed\n", why, p, f
        exit f > 0
    }' "$cargo_log" "$e2e_log"
