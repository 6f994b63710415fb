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
import signal
import statistics
import subprocess
import sys
import threading
import time


def _timeout():
    """BENCH_TIMEOUT (seconds): a command still running then is killed with its process
    group and fails the bench (a wedged engine ends the run, it never hangs it)."""
    t = os.environ.get("BENCH_TIMEOUT")
    return float(t) if t else None


def _fail(argv, how, err_file):
    """Ends the bench naming the command, how it failed and the end of its stderr."""
    with open(err_file, errors="replace") as f:
        tail = f.read().strip().splitlines()[-10:]
    os.unlink(err_file)
    shown = " ".join(argv)
    sys.exit(f"bench: {shown} {how}" + ("; its stderr ends:\n  " + "\n  ".join(tail) if tail else ""))


def run_once(argv, env=None, before=None):
    if before:
        subprocess.run(before, shell=True, check=True, timeout=_timeout())
    err_file = f"/tmp/benchlib-err-{os.getpid()}"
    t0 = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, env or os.environ, setpgroup=0,
                          file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                                        (os.POSIX_SPAWN_OPEN, 2, err_file,
                                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)])
    killed = []
    timer = None
    if _timeout():
        def kill():
            killed.append(True)
            os.killpg(pid, signal.SIGKILL)
        timer = threading.Timer(_timeout(), kill)
        timer.start()
    _, status = os.waitpid(pid, 0)
    dt = time.perf_counter() - t0
    if timer:
        timer.cancel()
    if killed:
        _fail(argv, f"did not end within {_timeout():.0f} s (killed)", err_file)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        _fail(argv, f"exited with {code}", err_file)
    os.unlink(err_file)
    return dt


def peak_rss_kib(argv, env=None, before=None):
    """Max RSS of the command (and the children it waited for), by GNU time."""
    if before:
        subprocess.run(before, shell=True, check=True, timeout=_timeout())
    out = f"/tmp/benchlib-rss-{os.getpid()}"
    r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out] + argv, env=env or os.environ,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=_timeout())
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} exited with {r.returncode}; its stderr ends:\n  "
                 + "\n  ".join(r.stderr.decode(errors="replace").strip().splitlines()[-10:]))
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
