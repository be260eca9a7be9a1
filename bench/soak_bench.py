"""Soak: aiwarden under steady mixed load for a fixed time, its memory sampled throughout.

    python bench/soak_bench.py [--minutes 10] [--workers 1] [--json FILE]

Three `hey` loads run side by side the whole time (nginx upstream from proxy_bench.py):
plain HTTP to a non-AI host, plain HTTP to an AI service (blocked, audited), and non-AI
HTTPS with a new connection each request (tunnelled). The resident memory of the proxy's
processes is sampled every 15 s. Growth is measured from the sample after the first minute
(caches warm) to the last; the target is under 10 %. Every status code is reported, so a
failed request shows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from proxyharness import Proxy  # noqa: E402

from bench.proxy_bench import bench_setup, parse_hey, tree_rss_mb  # noqa: E402

SAMPLE_EVERY = 15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/soak.json")
    args = parser.parse_args()
    work, nginx, http_port, https_port = bench_setup()
    policy_dir = work / "policy"
    audit = work / "audit.jsonl"
    proxy = Proxy(policy_dir, work / "ca", "--workers", str(args.workers),
                  "--audit-log", str(audit))  # fmt: skip
    seconds = int(args.minutes * 60)
    loads = {
        "http-allowed": ([], f"http://127.0.0.1:{http_port}/"),
        "http-blocked": ([], "http://chatgpt.com/backend-api/conversation"),
        "https-new-conn": (["-disable-keepalive"], f"https://127.0.0.1:{https_port}/"),
    }
    heys = {
        name: subprocess.Popen(
            ["hey", *flags, "-z", f"{seconds}s", "-c", "20", "-x", proxy.url, url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, (flags, url) in loads.items()
    }
    curve = []
    start = time.monotonic()
    try:
        while any(h.poll() is None for h in heys.values()):
            curve.append((round(time.monotonic() - start), tree_rss_mb(proxy.process.pid)))
            time.sleep(SAMPLE_EVERY)
        outputs = {name: h.communicate()[0] for name, h in heys.items()}
        curve.append((round(time.monotonic() - start), tree_rss_mb(proxy.process.pid)))
    finally:
        for h in heys.values():
            h.kill() if h.poll() is None else None
        proxy.stop()
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)
    warm = next((mb for t, mb in curve if t >= 60), curve[0][1])
    growth = round((curve[-1][1] - warm) / warm * 100, 1)
    results = {name: parse_hey(out) for name, out in outputs.items()}
    audited = len(audit.read_text().splitlines())
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
        f"python {platform.python_version()}",
        "minutes": args.minutes,
        "workers": args.workers,
        "loads": results,
        "audit_lines": audited,
        "rss_mb": curve,
        "growth_after_first_minute_percent": growth,
    }
    print(f"soak, {report['date']}, {report['machine']}, {args.minutes} min, "
          f"{args.workers} worker(s)")  # fmt: skip
    for name, r in results.items():
        print(f"  {name:<16} {r['rps']:>8} req/s  status {r['status']}"
              + (f"  errors: {r['errors'][:200]}" if r["errors"] else ""))  # fmt: skip
    blocked = results["http-blocked"]["status"].get("403", 0)
    print(f"  audit lines {audited} (blocked responses {blocked})")
    print(f"  RSS MB: {' '.join(str(mb) for _, mb in curve)}")
    print(f"  growth after the first minute: {growth} % (target < 10 %)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
