"""The side-by-side proxy benchmark: aiwarden, stock mitmdump and Squid under the same load.

    python bench/proxy_bench.py [--seconds 8] [--rounds 2] [--memory-requests 100000]
                                [--no-profile] [--json FILE] [--chart FILE]

Upstream: Debian's nginx on loopback (HTTP and HTTPS, a fixed 200 reply). Load: `hey`, 40
concurrent clients. nginx, hey and squid are installed with apt-get when missing.

Contenders, started in turn for every round, each running every traffic class:
  aiwarden        `aiwarden run --workers 1`, the shipped policy plus a local "AI service"
                  (localhost, the OpenAI API's paths: reads allowed, prompts redacted)
  aiwarden-2w     the same with `--workers 2`
  mitmdump        stock mitmdump as a mitmproxy user would run it instead: one `block_list`
                  entry per catalog host pattern, `modify_body` replacing the same kinds of
                  secret in prompts to the local service, connection_strategy=lazy
  squid           Debian's squid: `dstdomain` ACLs for the same hosts, no TLS interception
                  (it tunnels all HTTPS, so it cannot see paths or bodies)
  aiwarden-nofast `--no-fast-tunnels` (only when named in --contenders): tunnels relayed by
                  mitmproxy, to see what the fast path gives
  aiwarden@REF    with `--baseline REF`: aiwarden as it was at git commit REF (a worktree of
                  it, run by the same Python), to compare a change with what it changes

Traffic classes:
  1  http             plain HTTP to a non-AI host, keep-alive
  2  https            non-AI HTTPS, keep-alive (aiwarden and squid tunnel, mitmdump intercepts)
  2  https-new-conn   the same with a new connection per request
  3  http-blocked     plain HTTP to an AI service
  3  https-blocked    HTTPS to an AI service: aiwarden and mitmdump intercept and answer 403,
                      squid refuses the CONNECT
  4  ai-allowed       GET /v1/models on the local AI service: intercepted, path rules, allowed
  5  redact-4k        POST /v1/chat/completions with a 4 KB prompt holding secrets: redacted
  5  redact-64k       the same with a 64 KB prompt

For each run: requests/s, p50 and p99 latency, CPU seconds per 1,000 requests of the proxy's
processes, and their peak resident memory (sampled). The median run per contender and class
is reported, with the ratios aiwarden/mitmdump and aiwarden/squid. Then, unless --no-profile:
py-spy samples aiwarden through one more run of each class, and the share of its CPU samples
inside the policy engine is reported. Last, aiwarden's memory over --memory-requests requests.
Writes bench/results/latest.json and a PNG chart (matplotlib, from the `bench` extra).
"""

from __future__ import annotations

import argparse
import atexit
import collections
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from proxyharness import Proxy, make_upstream_pki  # noqa: E402

from bench.engine_bench import host_regex, quoted  # noqa: E402
from proxy import ca  # noqa: E402
from proxy.policy.loader import load_policy  # noqa: E402

BIN = Path(sys.executable).parent
DECISION_MODULES = ("decide/engine", "policy/normalize", "policy/patterns")  # deciding a request
CONCURRENCY = 40  # enough connections in flight to keep two workers busy
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  client_body_buffer_size 128k;
  client_max_body_size 1m;
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
SQUID_CONF = """
http_port 127.0.0.1:{port}
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log none
cache_store_log none
cache deny all
cache_mem 8 MB
coredump_dir {dir}
pinger_enable off
shutdown_lifetime 0 seconds
{acls}
acl clients src 127.0.0.0/8
http_access deny ai_hosts
http_access deny ai_host_patterns
http_access allow clients
http_access deny all
"""
# a local "AI service" for classes 4 and 5: the OpenAI API's paths on localhost (nginx)
LOCAL_AI = """
services:
  - id: bench-ai
    name: Benchmark AI service
    vendor: Bench
    category: api
    hosts: [localhost]
    activities:
      prompt: {methods: [POST], paths: [/v1/chat/completions]}
      read: {methods: [GET], paths: [/v1/models]}
    api_format: openai
    source: bench
"""
LOCAL_AI_RULES = """
  - id: bench-ai-read
    match: {services: [bench-ai], activities: [read]}
    action: allow
  - id: bench-ai-prompts
    match: {services: [bench-ai], activities: [prompt]}
    action: redact
"""
# what a mitmproxy user would write to take the same secrets out: modify_body regexes
MITMDUMP_REDACTIONS = [
    r"[\w.+-]+@[\w-]+\.[\w.-]+",  # e-mail
    r"AKIA[0-9A-Z]{16}",  # AWS access key id
    r"sk-[A-Za-z0-9_-]{20,}",  # OpenAI-style API key
    r"gh[pousr]_[A-Za-z0-9]{36}",  # GitHub token
    r"\b\d{3}-\d{2}-\d{4}\b",  # US SSN
]
PROSE = (
    "We are migrating the billing service to the new cluster next week. The plan is to run "
    "both versions side by side, compare their outputs for a few days, and then switch the "
    "traffic over. Could you review the rollout steps below and point out anything risky? "
)
CODE = (
    "def retry(fn, attempts=3, delay=0.5):\n    for attempt in range(attempts):\n"
    "        try:\n            return fn()\n        except ConnectionError as error:\n"
    "            log.warning('attempt %d failed: %s', attempt + 1, error)\n"
)
SECRETS = (
    "Ping jane.doe@corp.example if it fails; the deploy key is AKIAIOSFODNN7EXAMPLE and "
    "the bot token ghp_1234567890abcdefghijABCDEFGHIJ123456.\n"
)


@dataclass(frozen=True)
class TrafficClass:
    group: int
    url: str
    keepalive: bool = True
    body_kb: int = 0  # > 0: a POST of an OpenAI chat body this size
    clients: int = CONCURRENCY


def traffic_classes(http_port: int, https_port: int) -> dict[str, TrafficClass]:
    return {
        "http": TrafficClass(1, f"http://127.0.0.1:{http_port}/"),
        # 20 clients: at 40, hey churns (see churned()) in about half the runs
        "https": TrafficClass(2, f"https://127.0.0.1:{https_port}/", clients=CONCURRENCY // 2),
        "https-new-conn": TrafficClass(2, f"https://127.0.0.1:{https_port}/", keepalive=False),
        "http-blocked": TrafficClass(3, "http://chatgpt.com/backend-api/conversation"),
        "https-blocked": TrafficClass(3, "https://api.openai.com/v1/chat/completions"),
        "ai-allowed": TrafficClass(4, f"https://localhost:{https_port}/v1/models"),
        "redact-4k": TrafficClass(
            5, f"https://localhost:{https_port}/v1/chat/completions", body_kb=4
        ),
        "redact-64k": TrafficClass(
            5, f"https://localhost:{https_port}/v1/chat/completions", body_kb=64
        ),
    }


# -- set-up ----------------------------------------------------------------------------------


def ensure_tools(*extra: tuple[str, str]) -> None:
    """Install the Debian packages of missing commands: (package, command)."""
    wanted = (("nginx-light", "nginx"), ("hey", "hey"), *extra)
    missing = [p for p, exe in wanted if not _which(exe)]
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def _which(exe: str) -> str | None:
    return shutil.which(exe) or next(
        (f"{d}/{exe}" for d in ("/usr/sbin", "/sbin") if Path(f"{d}/{exe}").exists()), None
    )


def start_nginx(work: Path) -> tuple[subprocess.Popen, int, int]:
    _ca, cert, key = make_upstream_pki(work)
    http_port, https_port = 18080, 18443
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(dir=work, http=http_port, https=https_port, cert=cert, key=key)
    )
    process = subprocess.Popen([_which("nginx"), "-c", str(conf), "-p", str(work)])
    time.sleep(1)
    return process, http_port, https_port


def baseline(ref: str, work: Path, policy_dir: Path, *extra: str):
    """A contender: `aiwarden run --workers 1` from a git worktree of `ref`, run by this
    Python with the worktree first on its path."""
    tree = work / f"baseline-{ref}"
    git = ["git", "-C", str(ROOT), "worktree"]
    subprocess.run([*git, "add", "--detach", str(tree), ref], check=True, capture_output=True)
    atexit.register(subprocess.run, [*git, "remove", "--force", str(tree)], capture_output=True)
    start = (
        f"import sys; sys.path.insert(0, {str(tree)!r}); from proxy.cli import main; "
        "sys.exit(main())"
    )
    command = [sys.executable, "-c", start, "run", "--policy", str(policy_dir),
               "--confdir", str(work / "ca"), "--listen", "127.0.0.1:0",
               "--admin", "127.0.0.1:0", "--workers", "1", *extra]  # fmt: skip
    return lambda: Proxy(policy_dir, work / "ca", command=command)


def bench_setup(*extra_tools: tuple[str, str]) -> tuple[Path, subprocess.Popen, int, int]:
    """What every proxy benchmark starts from: the tools, a work directory holding a CA and
    the bench policy, and nginx. (work, nginx, HTTP port, HTTPS port)"""
    ensure_tools(*extra_tools)
    work = Path(tempfile.mkdtemp(prefix="aiwarden-bench-"))
    ca.init(work / "ca")
    bench_policy(work)
    return work, *start_nginx(work)


def bench_policy(work: Path) -> Path:
    """The shipped rules and catalog in `work`/policy, but loopback is allowed as a
    destination (the upstream lives there), and localhost is a local AI service whose reads
    are allowed and whose prompts are redacted."""
    policy_dir = work / "policy"
    policy_dir.mkdir()
    text = (ROOT / "policies/policy.yaml").read_text()
    text = text.replace("catalog: [catalog]", f"catalog: [{ROOT / 'policies/catalog'}]")
    text = re.sub(r"  deny_destinations: \[.*\]", "  deny_destinations: [169.254.0.0/16]", text)
    text = text.replace("\nrules:\n", f"\n{LOCAL_AI}\nrules:\n{LOCAL_AI_RULES}", 1)
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


def mitmdump_settings(host_patterns: list[str]) -> list[str]:
    """One block_list entry per host pattern, and one modify_body per secret kind for POSTs
    to the local AI service: what a mitmproxy user would write."""
    settings = []
    for pattern in host_patterns:
        settings += ["--set", f"block_list=!~d {quoted(host_regex(pattern))}!403"]
    for regex in MITMDUMP_REDACTIONS:
        settings += ["--set", f"modify_body=!~d localhost & ~m POST!{regex}![REDACTED]"]
    return settings


class Squid:
    """Debian's squid, one process (-N), denying the catalog's hosts with dstdomain ACLs."""

    def __init__(self, work: Path, host_patterns: list[str]) -> None:
        # squid drops root for its user, "proxy", who cannot enter the bench's 0700 directory
        self.dir = Path(tempfile.mkdtemp(prefix="aiwarden-bench-squid-"))
        port = _free_port()
        (self.dir / "squid.conf").write_text(
            SQUID_CONF.format(port=port, dir=self.dir, acls=squid_acls(host_patterns))
        )
        if os.geteuid() == 0:  # squid drops root for its cache_effective_user, "proxy"
            shutil.chown(self.dir, "proxy")
        self.process = subprocess.Popen(
            [_which("squid"), "-N", "-f", str(self.dir / "squid.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        # a catalog of some 3,000 hosts: parsing it takes seconds, more on a busy machine
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        log = self.dir / "cache.log"
        said = log.read_text()[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"squid did not start: {said}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def squid_acls(host_patterns: list[str]) -> str:
    """dstdomain for exact hosts and *.suffix patterns (".suffix" covers the suffix too),
    dstdom_regex for patterns with a * elsewhere."""
    domains, regexes = set(), set()
    for p in host_patterns:
        if p.startswith("*.") and "*" not in p[2:]:
            domains.add("." + p[2:])
        elif "*" in p:
            regexes.add(host_regex(p))
        else:
            domains.add(p)
    # squid rejects "a.b" next to ".a.b" or ".b": keep the widest
    kept = {d for d in domains if not any(_covers(o, d) for o in domains if o != d)}
    regexes = regexes or {"^$"}
    # squid cuts configuration lines at a few KB: one ACL over many lines of 50 entries
    lines = [f"acl ai_hosts dstdomain {' '.join(c)}" for c in _chunks(sorted(kept), 50)]
    lines += [f"acl ai_host_patterns dstdom_regex -i {' '.join(c)}"
              for c in _chunks(sorted(regexes), 20)]  # fmt: skip
    return "\n".join(lines)


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _covers(wider: str, domain: str) -> bool:
    return wider.startswith(".") and (domain == wider[1:] or domain.endswith(wider))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prompt_body(kb: int, directory: Path) -> Path:
    """An OpenAI chat completion body of about `kb` KB: prose and code, with a line of
    secrets and personal data (three findings) in every 8 KB, as in a pasted log or config."""
    text, size = [], 0
    while size < kb * 1024 - 200:
        chunk = SECRETS if size // 8192 >= len([t for t in text if t is SECRETS]) else PROSE + CODE
        text.append(chunk)
        size += len(chunk)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "".join(text)}]}
    path = directory / f"prompt-{kb}k.json"
    path.write_text(json.dumps(body))
    return path


# -- measuring -------------------------------------------------------------------------------


def hey(proxy_url: str, cls: TrafficClass, seconds: float, body: Path | None) -> dict:
    """One hey run of a traffic class through a proxy (`body`: the class's prompt file)."""
    args = ["hey", "-z", f"{seconds}s", "-c", str(cls.clients), "-x", proxy_url]
    if not cls.keepalive:
        args.append("-disable-keepalive")
    if body is not None:
        args += ["-m", "POST", "-T", "application/json", "-D", str(body)]
    out = subprocess.run([*args, cls.url], capture_output=True, text=True, check=True).stdout
    return parse_hey(out)


def parse_hey(out: str) -> dict:
    """hey's summary: requests/s, p50 and p99 latency, status counts, errors (text)."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50% in ([\d.]+) secs", out)
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    errors = re.search(r"Error distribution:(.*)", out, re.S)
    error_text = errors.group(1).strip() if errors else ""
    return {
        "rps": round(rps, 1),
        "p50_ms": round(float(p50.group(1)) * 1000, 2) if p50 else None,
        "p99_ms": round(float(p99.group(1)) * 1000, 2) if p99 else None,
        "status": {k: int(v) for k, v in codes.items()},
        "errors": error_text,
        "requests": sum(int(v) for v in codes.values())
        + sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", error_text, re.M)),
    }


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


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


class PeakMemory:
    """Samples a process tree's resident memory every 0.5 s while in a `with` block."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mb = pid, 0.0
        self._done = threading.Event()

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))
            if self._done.wait(0.5):
                return


def measured_run(
    process: subprocess.Popen,
    proxy_url: str,
    cls: TrafficClass,
    seconds: float,
    body: Path | None,
    upstream_pid: int,
) -> dict:
    """One hey run through a proxy, with the proxy's CPU per 1,000 requests and peak RSS,
    and the cores the proxy, hey and nginx each used: when they add up to the machine's,
    the proxy was not the only limit."""
    before = tree_cpu_seconds(process.pid), tree_cpu_seconds(upstream_pid), _children_cpu()
    opened = tcp_connections_opened()
    with PeakMemory(process.pid) as memory:
        run = hey(proxy_url, cls, seconds, body)
    run["connections"] = tcp_connections_opened() - opened
    used = tree_cpu_seconds(process.pid) - before[0]
    run["cpu_s_per_1k"] = round(used / run["requests"] * 1000, 3) if run["requests"] else None
    run["peak_rss_mb"] = memory.peak_mb
    run["cores"] = {
        "proxy": round(used / seconds, 2),
        "hey": round((_children_cpu() - before[2]) / seconds, 2),
        "nginx": round((tree_cpu_seconds(upstream_pid) - before[1]) / seconds, 2),
    }
    return run


def tcp_connections_opened() -> int:
    """The kernel's count of connections opened from this machine (Tcp ActiveOpens)."""
    rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
            if line.startswith("Tcp:")]  # fmt: skip
    return int(rows[1][rows[0].index("ActiveOpens")])


def churned(run: dict, cls: TrafficClass) -> bool:
    """A keep-alive run in which hey opened a connection for most requests anyway.

    hey's Go transport sometimes falls into this on the HTTPS keep-alive class, through any
    proxy (seen with squid and aiwarden alike): it dials while a connection is busy, finds
    a surplus when the dial completes, closes one, and keeps doing so. Such a run measures
    new connections, not keep-alive, and is run again. Refused requests (squid's answer to a
    blocked CONNECT) open a connection each by design and are not checked."""
    served = not run["errors"] and all(code.startswith("2") for code in run["status"])
    limit = max(8 * cls.clients, run["requests"] // 20)
    return cls.keepalive and served and run["connections"] > limit


def _children_cpu() -> float:
    """CPU seconds of this process's children that have been waited for (hey runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_run(runs: list[dict]) -> dict:
    """The median run by requests/s (of an even number: the lower, to be conservative)."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return ordered[(len(ordered) - 1) // 2]


# -- the engine's share of aiwarden's CPU ----------------------------------------------------


def ensure_py_spy() -> str | None:
    exe = BIN / "py-spy"
    if not exe.exists():
        print("installing py-spy to profile aiwarden", file=sys.stderr)
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"])
        if done.returncode != 0:
            return None
    return str(exe)


def decision_share(py_spy: str, proxy: Proxy, cls: TrafficClass, seconds: int,
                   body: Path | None, work: Path) -> dict:  # fmt: skip
    """py-spy samples the proxy through one hey run; the share of its CPU samples spent
    deciding (the engine, host and path normalization, pattern matching), and aiwarden's
    own functions that took the most (time inside them, callees included)."""
    out = work / "profile.txt"
    spy = subprocess.Popen(
        [py_spy, "record", "--pid", str(proxy.process.pid), "--format", "raw", "--rate", "250",
         "--duration", str(seconds), "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    hey(proxy.url, cls, seconds - 1, body)
    spy.wait(30)
    if not out.exists():
        return {"error": "py-spy wrote no profile (is ptrace allowed here?)"}
    total = deciding = 0
    own: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        if any(f"(proxy/{m}.py:" in stack for m in DECISION_MODULES):
            deciding += samples
        for frame in {f.split(" (")[0] for f in stack.split(";") if _own_frame(f)}:
            own[frame] += samples
    return {
        "samples": total,
        "decision_percent": round(deciding / total * 100, 2) if total else None,
        "aiwarden_functions_percent": {f: round(n / total * 100, 1) for f, n in own.most_common(6)},
    }


def _own_frame(frame: str) -> bool:
    """A frame of aiwarden's code, other than the entry points every sample passes."""
    entry_points = ("main (", "cmd_run (", "run (proxy/serve/run")
    return " (proxy/" in frame and not frame.startswith(entry_points)


# -- memory over many requests ---------------------------------------------------------------


def measure_memory(make, classes: dict[str, TrafficClass], total: int) -> dict:
    """aiwarden's RSS after each of 10 slices of `total` requests, each slice split over
    classes 1 to 3 sent side by side."""
    mixed = [classes[c] for c in ("http", "https-new-conn", "http-blocked", "https-blocked")]
    proxy = make()
    try:
        pid = proxy.process.pid
        curve = [tree_rss_mb(pid)]
        for _ in range(10):
            loads = [
                subprocess.Popen(
                    ["hey", "-n", str(total // 10 // len(mixed)), "-c", "10", "-x", proxy.url]
                    + ([] if c.keepalive else ["-disable-keepalive"])
                    + [c.url],
                    stdout=subprocess.DEVNULL,
                )
                for c in mixed
            ]
            for load in loads:
                load.wait()
            curve.append(tree_rss_mb(pid))
    finally:
        proxy.stop()
    growth = round((curve[-1] - curve[1]) / curve[1] * 100, 1) if curve[1] else None
    return {"requests": total, "rss_mb": curve, "growth_after_first_slice_percent": growth}


# -- the run ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--only", nargs="*", help="run only these classes")
    parser.add_argument(
        "--contenders",
        nargs="*",
        help="aiwarden, aiwarden-2w, mitmdump, squid (the default), aiwarden-nofast",
    )
    parser.add_argument(
        "--baseline", metavar="REF", help="also run aiwarden as it was at this git commit"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/latest.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "bench/results/latest.png")
    parser.add_argument("--chart-only", action="store_true", help="redraw the chart from --json")
    args = parser.parse_args()
    if args.chart_only:
        return draw_chart(json.loads(args.json.read_text()), args.chart)
    work, nginx, http_port, https_port = bench_setup(("squid", "squid"))
    policy_dir = work / "policy"
    patterns = [
        h.text for s in load_policy(policy_dir).services if s.id != "bench-ai" for h in s.hosts
    ]
    upstream_ca = ("--upstream-ca", str(work / "upstream-ca.pem"))  # nginx's, from bench_setup
    contenders = {
        "aiwarden": lambda: Proxy(policy_dir, work / "ca", "--workers", "1", *upstream_ca),
        "aiwarden-2w": lambda: Proxy(policy_dir, work / "ca", "--workers", "2", *upstream_ca),
        "mitmdump": lambda: start_mitmdump(work, *mitmdump_settings(patterns)),
        "squid": lambda: Squid(work, patterns),
        # only when named in --contenders: the tunnels relayed by mitmproxy, for comparison
        "aiwarden-nofast": lambda: Proxy(
            policy_dir, work / "ca", "--workers", "1", "--no-fast-tunnels", *upstream_ca
        ),
    }
    names = args.contenders or ["aiwarden", "aiwarden-2w", "mitmdump", "squid"]
    if args.baseline:
        name = f"aiwarden@{args.baseline}"
        contenders[name] = baseline(args.baseline, work, policy_dir, *upstream_ca)
        names.append(name)
    contenders = {n: contenders[n] for n in names}
    every_class = traffic_classes(http_port, https_port)
    classes = {c: every_class[c] for c in args.only} if args.only else every_class
    bodies = {kb: prompt_body(kb, work) for kb in {c.body_kb for c in classes.values()} if kb}
    runs: dict[str, dict[str, list]] = {c: {n: [] for n in contenders} for c in classes}
    profile, memory = {}, None
    try:
        for _ in range(args.rounds):
            for name, make in contenders.items():
                proxy = make()
                try:
                    for cls_name, cls in classes.items():
                        body = bodies.get(cls.body_kb)
                        for attempt in range(1, 4):
                            run = measured_run(
                                proxy.process, proxy.url, cls, args.seconds, body, nginx.pid
                            )
                            run["attempt"] = attempt
                            if not churned(run, cls):
                                break
                        runs[cls_name][name].append(run)
                finally:
                    proxy.stop()
        if not args.no_profile and "aiwarden" in contenders:
            py_spy = ensure_py_spy()
            proxy = contenders["aiwarden"]()
            try:
                for cls_name, cls in classes.items():
                    if py_spy is None:
                        profile[cls_name] = {"error": "py-spy could not be installed"}
                        continue
                    body = bodies.get(cls.body_kb)
                    profile[cls_name] = decision_share(py_spy, proxy, cls, 6, body, work)
            finally:
                proxy.stop()
        if args.memory_requests and "aiwarden" in contenders:
            memory = measure_memory(contenders["aiwarden"], every_class, args.memory_requests)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)
    report = summarize(runs, classes, profile, memory, args)
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    draw_chart(report, args.chart)


def summarize(runs, classes, profile, memory, args) -> dict:
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "concurrency": CONCURRENCY,
        "classes": {},
        "profile": profile,
        "memory": memory,
    }
    for cls_name, by_contender in runs.items():
        median = {n: median_run(r) for n, r in by_contender.items()}
        entry = {"group": classes[cls_name].group, "median": median, "runs": by_contender}
        one, two = median.get("aiwarden"), median.get("aiwarden-2w")
        mitmdump, squid = median.get("mitmdump"), median.get("squid")
        for key, numerator, denominator, field in (
            ("vs_mitmdump", one, mitmdump, "rps"),
            ("vs_squid", one, squid, "rps"),
            # aiwarden's CPU per request over squid's: its distance from squid per core
            ("cpu_vs_squid", one, squid, "cpu_s_per_1k"),
            ("workers_2_vs_1", two, one, "rps"),
        ):
            if numerator and denominator and numerator[field] and denominator[field]:
                entry[key] = round(numerator[field] / denominator[field], 2)
        report["classes"][cls_name] = entry
    return report


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{os.cpu_count()} cores ({model}), {platform.machine()}, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


RATIOS = {
    "vs_mitmdump": "aiwarden/mitmdump",
    "vs_squid": "aiwarden/squid",
    "cpu_vs_squid": "CPU per request aiwarden/squid",
    "workers_2_vs_1": "2 workers/1",
}


def print_report(report: dict) -> None:
    print(
        f"proxy benchmark, {report['date']}, {report['machine']}; hey -c {report['concurrency']}, "
        f"{report['seconds_per_run']} s per run, {report['rounds']} rounds alternating"
    )
    print(
        f"  {'class':<16}{'contender':<18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU s/1k':>10}{'peak MB':>9}  cores: proxy+hey+nginx   outcome"
    )
    for cls_name, entry in report["classes"].items():
        for name, run in entry["median"].items():
            outcome = ", ".join(f"{n}×{c}" for c, n in run["status"].items())
            if run["errors"]:
                outcome += f"{', ' if outcome else ''}errors: {run['errors'][:60]!r}"
            print(
                f"  {cls_name:<16}{name:<18}{run['rps']:>9}{run['p50_ms'] or '-':>9}"
                f"{run['p99_ms'] or '-':>9}{run['cpu_s_per_1k'] or '-':>10}"
                f"{run['peak_rss_mb']:>9}  {'+'.join(map(str, run['cores'].values())):<23}"
                f"{outcome}"
            )
        ratios = [f"{label} {entry[key]}×" for key, label in RATIOS.items() if key in entry]
        print(f"  {'':<16}{'; '.join(ratios)}")
    for cls_name, p in report["profile"].items():
        if "error" in p:
            print(f"  profile {cls_name}: {p['error']}")
        else:
            top = ", ".join(f"{f} {v} %" for f, v in p["aiwarden_functions_percent"].items())
            print(f"  profile {cls_name:<15} deciding {p['decision_percent']} % of "
                  f"{p['samples']} samples; aiwarden's own: {top}")  # fmt: skip
    if m := report["memory"]:
        growth = m["growth_after_first_slice_percent"]
        curve = " ".join(map(str, m["rss_mb"]))
        print(f"  memory: aiwarden RSS MB {curve} over {m['requests']} requests ({growth} % "
              "after the first slice)")  # fmt: skip


def draw_chart(report: dict, path: Path) -> None:
    """Requests/s and CPU per 1,000 requests per class and contender, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"no chart: matplotlib is missing (pip install -e '.[bench]'); not writing {path}")
        return
    classes = list(report["classes"])
    names = list(next(iter(report["classes"].values()))["median"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [c + (i - (len(names) - 1) / 2) * width for c in range(len(classes))]
        rps = [report["classes"][c]["median"][name]["rps"] for c in classes]
        cpu = [report["classes"][c]["median"][name]["cpu_s_per_1k"] or 0 for c in classes]
        top.bar(xs, rps, width, label=name)
        bottom.bar(xs, cpu, width, label=name)
    top.set_ylabel("requests/s (higher is better)")
    top.set_yscale("log")
    bottom.set_ylabel("CPU s per 1,000 requests\n(lower is better)")
    bottom.set_yscale("log")
    bottom.set_xticks(range(len(classes)), classes, rotation=20)
    top.legend(ncols=len(names), loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=9)
    fig.text(0.01, 0.005, "squid tunnels the AI classes (ai-allowed, redact-*) without seeing "
             "paths or bodies; it refuses https-blocked at CONNECT.", fontsize=8)  # fmt: skip
    fig.suptitle(f"aiwarden, mitmdump and squid, same load (hey -c {report['concurrency']})\n"
                  f"{report['date']}, {report['machine']}", fontsize=9)  # fmt: skip
    for axis in (top, bottom):
        axis.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"chart: {path}")


if __name__ == "__main__":
    main()
