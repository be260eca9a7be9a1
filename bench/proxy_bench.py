"""Proxy throughput: `aiwarden run` against stock `mitmdump` with `block_list`, same load.

    python bench/proxy_bench.py [--seconds 10] [--rounds 2] [--json FILE]

Upstream: Debian's nginx on loopback (HTTP and HTTPS, a fixed 200 reply). Load: `hey`, 20
concurrent clients, through the proxy. Both proxies get the same AI host list: aiwarden as its
shipped catalog and block rule, mitmdump as one `block_list` entry per host pattern (what a
mitmproxy user would write), and both use connection_strategy=lazy so blocked HTTPS is not
connected upstream. Runs alternate between the proxies, `--rounds` times, and the ratios are
taken from the same invocation. nginx and hey are installed with apt-get when missing.

Traffic classes:
  http-allowed       plain HTTP to a non-AI host, keep-alive
  http-blocked       plain HTTP to an AI service (blocked)
  https-blocked      HTTPS to an AI service (blocked; aiwarden intercepts to show the page)
  https-new-conn     non-AI HTTPS, a new connection per request (aiwarden tunnels,
                     mitmdump intercepts everything)
Then aiwarden's memory over 20,000 requests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from proxyharness import Proxy, make_upstream_pki  # noqa: E402

from bench.engine_bench import host_regex, quoted  # noqa: E402
from proxy import ca  # noqa: E402
from proxy.policy import load_policy  # noqa: E402

BIN = Path(sys.executable).parent
CONCURRENCY = 20
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{http};
    listen 127.0.0.1:{https} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def ensure_tools() -> None:
    missing = [
        p
        for p, exe in (("nginx-light", "nginx"), ("hey", "hey"))
        if shutil.which(exe) is None and not Path(f"/usr/sbin/{exe}").exists()
    ]
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def start_nginx(work: Path) -> tuple[subprocess.Popen, int, int]:
    _ca, cert, key = make_upstream_pki(work)
    http_port, https_port = 18080, 18443
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(dir=work, http=http_port, https=https_port, cert=cert, key=key)
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)])
    time.sleep(1)
    return process, http_port, https_port


def bench_setup() -> tuple[Path, subprocess.Popen, int, int]:
    """What every proxy benchmark starts from: the tools, a work directory holding a CA and
    the bench policy, and nginx. (work, nginx, HTTP port, HTTPS port)"""
    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="aiwarden-bench-"))
    ca.init(work / "ca")
    bench_policy(work)
    return work, *start_nginx(work)


def bench_policy(work: Path) -> Path:
    """The shipped rules and catalog in `work`/policy, but loopback is allowed as a
    destination: the upstream lives there."""
    policy_dir = work / "policy"
    policy_dir.mkdir()
    text = (ROOT / "policies/policy.yaml").read_text()
    text = text.replace("catalog: [catalog]", f"catalog: [{ROOT / 'policies/catalog'}]")
    text = re.sub(r"  deny_destinations: \[.*\]", "  deny_destinations: [169.254.0.0/16]", text)
    (policy_dir / "policy.yaml").write_text(text)
    return policy_dir


def start_mitmdump(work: Path, *extra: str) -> Proxy:
    """Stock mitmdump on a free loopback port, with aiwarden's CA and lazy connections."""
    command = [
        str(BIN / "mitmdump"), "--listen-host", "127.0.0.1", "--listen-port", "0",
        "--set", f"confdir={work / 'ca'}", "--set", "connection_strategy=lazy",
        "--set", "ssl_insecure=true", *extra,
    ]  # fmt: skip
    return Proxy(work / "policy", work / "ca", command=command, plain_mitmproxy=True)


def hey(
    proxy_url: str, url: str, seconds: int, keepalive: bool = True, clients: int = CONCURRENCY
) -> dict[str, float]:
    args = ["hey", "-z", f"{seconds}s", "-c", str(clients), "-x", proxy_url, url]
    if not keepalive:
        args.insert(1, "-disable-keepalive")
    return parse_hey(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


def parse_hey(out: str) -> dict:
    """hey's summary: requests/s, p50 and p99 latency, status counts, errors (text)."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50% in ([\d.]+) secs", out)
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    errors = re.search(r"Error distribution:(.*)", out, re.S)
    return {
        "rps": round(rps, 1),
        "p50_ms": round(float(p50.group(1)) * 1000, 1) if p50 else None,
        "p99_ms": round(float(p99.group(1)) * 1000, 1) if p99 else None,
        "status": {k: int(v) for k, v in codes.items()},
        "errors": errors.group(1).strip() if errors else "",
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/proxy.json")
    args = parser.parse_args()
    work, nginx, http_port, https_port = bench_setup()
    policy_dir = work / "policy"
    patterns = [h.text for s in load_policy(policy_dir).services for h in s.hosts]
    # one block_list entry per host pattern, as a mitmproxy user would write them
    block_list = [
        arg for p in patterns for arg in ("--set", f"block_list=!~d {quoted(host_regex(p))}!403")
    ]

    def aiwarden() -> Proxy:
        return Proxy(policy_dir, work / "ca")

    def mitmdump(*extra: str):
        return lambda: start_mitmdump(work, *extra)

    proxies = {
        "aiwarden": aiwarden,
        "mitmdump+block_list": mitmdump(*block_list),  # what a mitmproxy user would run
        "mitmdump": mitmdump(),  # for reference: stock mitmdump blocking nothing
    }
    classes = {
        "http-allowed": (f"http://127.0.0.1:{http_port}/", True),
        "http-blocked": ("http://chatgpt.com/backend-api/conversation", True),
        "https-blocked": ("https://api.openai.com/v1/chat/completions", True),
        "https-new-conn": (f"https://127.0.0.1:{https_port}/", False),
    }
    results: dict[str, dict[str, list]] = {c: {p: [] for p in proxies} for c in classes}
    try:
        for _ in range(args.rounds):
            for name, make in proxies.items():
                proxy = make()
                try:
                    for cls, (url, keepalive) in classes.items():
                        results[cls][name].append(hey(proxy.url, url, args.seconds, keepalive))
                finally:
                    proxy.stop()
        memory = measure_memory(aiwarden, http_port)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
        f"python {platform.python_version()}",
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "concurrency": CONCURRENCY,
        "classes": {},
        "memory": memory,
    }
    print(
        f"proxy benchmark, {report['date']}, {report['machine']}; hey -c {CONCURRENCY}, "
        f"{args.seconds} s per run, {args.rounds} rounds alternating"
    )
    names = list(proxies)
    print(
        f"  {'class':<16}"
        + "".join(f"{n + ' req/s':>26}" for n in names)
        + "".join(f"{'× ' + n:>24}" for n in names[1:])
        + "   p50/p99 ms per proxy"
    )
    for cls, runs in results.items():
        best = {n: _best(runs[n]) for n in names}
        ratios = {
            n: round(best["aiwarden"]["rps"] / best[n]["rps"], 2) if best[n]["rps"] else None
            for n in names[1:]
        }
        if cls.endswith("blocked"):
            ratios["mitmdump"] = None  # it blocks nothing: its numbers are failed look-ups
        report["classes"][cls] = {"runs": runs, "ratio_vs": ratios}
        print(
            f"  {cls:<16}"
            + "".join(f"{best[n]['rps']:>26}" for n in names)
            + "".join(f"{ratios[n]:>23}×" if ratios[n] else f"{'n/a':>24}" for n in names[1:])
            + "   "
            + "  ".join(f"{best[n]['p50_ms']}/{best[n]['p99_ms']}" for n in names)
        )
        for n in names:
            if best[n]["errors"]:
                print(f"    {n}: errors in the run, status {best[n]['status']}")
    print(
        f"  memory: aiwarden RSS {memory['rss_mb']} MB over {memory['requests']} requests "
        f"({memory['growth_after_warmup_percent']} % after the first slice)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


def _best(runs: list[dict]) -> dict:
    """The median run by requests/s (of 2: the lower, to be conservative)."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return ordered[(len(ordered) - 1) // 2]


def measure_memory(make, http_port: int, total: int = 20_000) -> dict:
    """aiwarden's RSS after each of 10 slices of `total` plain-HTTP requests."""
    proxy = make()
    try:
        pid = proxy.process.pid
        curve = [rss_mb(pid)]
        for _ in range(10):
            subprocess.run(
                [
                    "hey",
                    "-n",
                    str(total // 10),
                    "-c",
                    str(CONCURRENCY),
                    "-x",
                    proxy.url,
                    f"http://127.0.0.1:{http_port}/",
                ],
                capture_output=True,
                check=True,
            )
            curve.append(rss_mb(pid))
    finally:
        proxy.stop()
    growth = round((curve[-1] - curve[1]) / curve[1] * 100, 1) if curve[1] else None
    return {"requests": total, "rss_mb": curve, "growth_after_warmup_percent": growth}


if __name__ == "__main__":
    main()
