"""Side-by-side timing for the bench-*.sh scripts.

Runs each command once per round, in an order shuffled anew every round (so
neither drift nor a cache warmed by the previous command favours one), N
rounds (at least 15 unless asked for fewer; BENCH_SEED replays an order),
timing the wall clock. Peak RSS comes from one more run under GNU time (a
posix_spawn child inherits the spawner's high-water mark, so wait4's
ru_maxrss would report Python's own). Prints medians and ratios.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import time


def run_once(argv, env=None, before=None):
    if before:
        subprocess.run(before, shell=True, check=True)
    t0 = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, env or os.environ,
                          file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                                        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)])
    _, status = os.waitpid(pid, 0)
    dt = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{argv!r} exited with {code}")
    return dt


def peak_rss_kib(argv, env=None, before=None):
    """Max RSS of the command (and the children it waited for), by GNU time."""
    if before:
        subprocess.run(before, shell=True, check=True)
    out = f"/tmp/benchlib-rss-{os.getpid()}"
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out] + argv, env=env or os.environ,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    with open(out) as f:
        kib = int(f.read().split()[-1])
    os.unlink(out)
    return kib


def compare(cases, rounds, baseline, before=None):
    """cases: list of (name, argv, env). Returns {name: (median_s, max_rss_kib)}."""
    times = {name: [] for name, _, _ in cases}
    rss = {name: peak_rss_kib(argv, env, before) for name, argv, env in cases}
    seed = int(os.environ.get("BENCH_SEED") or random.SystemRandom().randrange(1 << 32))
    rng = random.Random(seed)
    if rounds < 15:
        print(f"note: {rounds} rounds (fewer than 15: the medians are rough)")
    print(f"{rounds} rounds, each in a shuffled order (BENCH_SEED={seed})")
    for _ in range(rounds):
        order = list(cases)
        rng.shuffle(order)
        for name, argv, env in order:
            times[name].append(run_once(argv, env, before))
    base = statistics.median(times[baseline])
    print(f"{'':24} {'median':>10} {'min':>10} {'peak RSS':>10} {'vs ' + baseline:>14}")
    result = {}
    for name, _, _ in cases:
        med = statistics.median(times[name])
        result[name] = (med, rss[name])
        print(f"{name:24} {med * 1000:8.1f}ms {min(times[name]) * 1000:8.1f}ms "
              f"{rss[name] / 1024:8.1f}MiB {med / base:13.2f}x")
    return result


if __name__ == "__main__":
    spec = json.load(sys.stdin)
    res = compare([(c["name"], c["argv"], c.get("env")) for c in spec["cases"]],
                  spec["rounds"], spec["baseline"], spec.get("before"))
    json.dump({k: {"median_s": v[0], "rss_kib": v[1]} for k, v in res.items()},
              open(spec["out"], "w"), indent=1) if spec.get("out") else None
