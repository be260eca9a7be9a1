"""`aiwarden run --workers 2` against `--workers 1`, same load, same run.

    python bench/workers_bench.py [--seconds 10] [--rounds 3] [--json FILE]

Upstream nginx and the `hey` load come from proxy_bench.py (and share these CPUs: on a
2-core machine they take part of the second core the second worker needs, so this measures
what a loaded host gives, not the ideal). Runs alternate between the worker counts,
`--rounds` times; the median run per class is reported, with its ratio, and the CPU the
proxy's processes used during it (cores = CPU seconds / wall seconds): when 2 workers use
less than twice the cores of 1, the rest of the machine went to nginx and hey. Stock
mitmdump is measured in the same run as the baseline.

Traffic classes:
  http-allowed     plain HTTP to a non-AI host, keep-alive
  http-blocked     plain HTTP to an AI service (blocked), keep-alive
  https-new-conn   non-AI HTTPS, a new connection per request (tunnelled)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from proxyharness import Proxy  # noqa: E402

from bench.proxy_bench import (  # noqa: E402
    CONCURRENCY,
    _best,
    bench_setup,
    hey,
    start_mitmdump,
)

CLIENTS = CONCURRENCY * 2  # enough connections in flight to keep two workers busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/workers.json")
    args = parser.parse_args()
    work, nginx, http_port, https_port = bench_setup()
    policy_dir = work / "policy"

    def aiwarden(workers: int):
        return lambda: Proxy(policy_dir, work / "ca", "--workers", str(workers))

    proxies = {
        "1 worker": aiwarden(1),
        "2 workers": aiwarden(2),
        "mitmdump": lambda: start_mitmdump(work),
    }
    classes = {
        "http-allowed": (f"http://127.0.0.1:{http_port}/", True),
        "http-blocked": ("http://chatgpt.com/backend-api/conversation", True),
        "https-new-conn": (f"https://127.0.0.1:{https_port}/", False),
    }
    results: dict[str, dict[str, list]] = {c: {p: [] for p in proxies} for c in classes}
    try:
        for _ in range(args.rounds):
            for name, make in proxies.items():
                proxy = make()
                try:
                    for cls, (url, keepalive) in classes.items():
                        before = tree_cpu_seconds(proxy.process.pid)
                        run = hey(proxy.url, url, args.seconds, keepalive, clients=CLIENTS)
                        used = tree_cpu_seconds(proxy.process.pid) - before
                        run["proxy_cores"] = round(used / args.seconds, 2)
                        results[cls][name].append(run)
                finally:
                    proxy.stop()
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
        f"python {platform.python_version()}",
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "concurrency": CLIENTS,
        "classes": {},
    }
    print(
        f"workers benchmark, {report['date']}, {report['machine']}; hey -c {CLIENTS}, "
        f"{args.seconds} s per run, {args.rounds} rounds alternating"
    )
    print(
        f"  {'class':<16}{'1 worker':>12}{'2 workers':>12}{'2 / 1':>8}{'mitmdump':>12}  req/s"
        "   proxy cores used, req/s per core (1 / 2 workers)"
    )
    for cls, runs in results.items():
        best = {n: _best(runs[n]) for n in proxies}
        one, two = best["1 worker"], best["2 workers"]
        ratio = round(two["rps"] / one["rps"], 2)
        report["classes"][cls] = {"runs": runs, "ratio_2_to_1": ratio}
        # mitmdump blocks nothing: for an AI host its numbers are failed look-ups
        mitmdump = "n/a" if cls.endswith("blocked") else best["mitmdump"]["rps"]
        print(
            f"  {cls:<16}{best['1 worker']['rps']:>12}{best['2 workers']['rps']:>12}"
            f"{ratio:>7}×{mitmdump:>12}"
            f"   {one['proxy_cores']} / {two['proxy_cores']}, "
            f"{per_core(one)} / {per_core(two)}"
        )
        for n in proxies:
            if best[n]["errors"]:
                print(f"    {n}: errors in the run, status {best[n]['status']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


def per_core(run: dict) -> float:
    return round(run["rps"] / run["proxy_cores"]) if run["proxy_cores"] else 0


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, user + system CPU ticks), from /proc."""
    stats = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(path.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return stats


def tree_pids(pid: int, stats: dict[int, tuple[int, int]] | None = None) -> set[int]:
    """A process and all its descendants."""
    stats = stats if stats is not None else _proc_stats()
    tree, grown = {pid}, True
    while grown:
        grown = False
        for child, (parent, _) in stats.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grown = True
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and all its descendants."""
    stats = _proc_stats()
    ticks = sum(stats[p][1] for p in tree_pids(pid, stats) if p in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
