"""Decision time of the engine, against mitmproxy's own flow-filter matching on the same hosts.

    python bench/engine_bench.py [--hosts 100000] [--path-rules 1000] [--scale 10] [--json FILE]

Four measurements, each in this one run:
1. the shipped policy: per-decision time over the URL corpus of tests/data/urls.txt, and the
   memory of a running worker (`aiwarden run --workers 2`, RSS of each worker process);
2. the shipped catalog copied --scale times under other domain names (a catalog that size,
   with the same structure: wildcards, shared hosts, paths, activities), same rules;
3. a generated policy with --hosts host patterns and --path-rules path rules: load time, memory
   and per-decision time (load and memory measured in a fresh child process);
4. mitmproxy: what a `block_list` user gets for the same host sets, i.e. one `~d` filter per
   host evaluated in turn (mitmproxy's BlockList loop), and, as mitmproxy's best case, one `~d`
   filter whose regex alternates every host.
Times are per call, measured one call at a time with perf_counter_ns; medians and p99 reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.decide.engine import Engine  # noqa: E402
from proxy.policy.loader import load_policy  # noqa: E402
from proxy.policy.normalize import split_url  # noqa: E402


def corpus_requests() -> list[tuple[str, str, str]]:
    """(method, host, path) of every URL in the test corpus, AI and not."""
    out = []
    for line in (ROOT / "tests/data/urls.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            _service, _activity, method, url = line.split()
            _scheme, host, path, _port = split_url(url)
            out.append((method, host, path))
    return out


def time_calls(func, args_list: list[tuple], rounds: int) -> dict[str, float]:
    """Median and p99 in microseconds of func(*args), each call timed on its own."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(rounds):
        for args in args_list:
            start = clock()
            func(*args)
            samples.append(clock() - start)
    samples.sort()
    return {
        "median_us": round(samples[len(samples) // 2] / 1000, 2),
        "p99_us": round(samples[int(len(samples) * 0.99)] / 1000, 2),
        "calls": len(samples),
    }


# -- a generated policy ------------------------------------------------------------------------


def generate_policy(directory: Path, hosts: int, path_rules: int, seed: int = 7) -> list[str]:
    """Write a policy of `hosts` host patterns and `path_rules` path rules; return the concrete
    host names the benchmark queries (one per pattern)."""
    rng = random.Random(seed)
    per_service = 10
    catalog = directory / "catalog"
    catalog.mkdir()
    examples: list[str] = []
    lines = ["services:"]
    for s in range(hosts // per_service):
        lines += [
            f"  - id: gen-{s}",
            f"    name: Generated {s}",
            f"    vendor: vendor-{s % 500}",
            f"    category: {('chat', 'api', 'code-assistant')[s % 3]}",
            "    source: generated",
            "    hosts:",
        ]
        for h in range(per_service):
            kind = rng.random()
            if kind < 0.80:
                lines.append(f"      - h{h}.svc{s}.example")
                examples.append(f"h{h}.svc{s}.example")
            elif kind < 0.95:
                lines.append(f"      - '*.w{h}.svc{s}.example'")
                examples.append(f"a.b.w{h}.svc{s}.example")
            else:
                lines.append(f"      - 'api-*.g{h}.svc{s}.example'")
                examples.append(f"api-eu.g{h}.svc{s}.example")
    (catalog / "generated.yaml").write_text("\n".join(lines) + "\n")
    rules = ["version: 1", "rules:"]
    for r in range(path_rules):
        host = rng.choice(examples)
        rules += [
            f"  - id: path-rule-{r}",
            "    match:",
            f"      hosts: ['{host}']",
            f"      paths: ['/v1/r{r}/**', '/api/*/r{r}']",
            "      methods: [POST]",
            "    action: allow",
        ]
    rules += [
        "  - id: block-ai",
        "    match: {categories: [chat, api, code-assistant]}",
        "    action: block",
    ]
    (directory / "policy.yaml").write_text("\n".join(rules) + "\n")
    return examples


# -- the shipped catalog, scaled ----------------------------------------------------------------


def renamed(pattern: str, copy: int) -> str:
    """A host pattern moved to another registrable name: api.openai.com -> api.openai-x3.com."""
    head, _, tld = pattern.rpartition(".")
    return f"{head}-x{copy}.{tld}"


def scaled_policy(directory: Path, factor: int) -> list[tuple[str, str, str]]:
    """The shipped policy with its catalog plus factor-1 renamed copies; returns requests (the
    corpus, and the corpus's catalogued hosts as they are named in the copies)."""
    catalog = directory / "catalog"
    shutil.copytree(ROOT / "policies/catalog", catalog, ignore=shutil.ignore_patterns("*.md"))
    shutil.copy(ROOT / "policies/policy.yaml", directory / "policy.yaml")
    originals = sorted((ROOT / "policies/catalog").glob("*.yaml"))
    for copy in range(1, factor):
        for path in originals:
            doc = yaml.safe_load(path.read_text())
            for service in doc["services"]:
                service["id"] = f"{service['id']}-x{copy}"
                service["hosts"] = [renamed(h, copy) for h in service["hosts"]]
            (catalog / f"{path.stem}-x{copy}.yaml").write_text(yaml.safe_dump(doc))
    requests = corpus_requests()
    shipped = Engine(load_policy(ROOT / "policies"))
    rng = random.Random(5)
    copied = []
    for method, host, path in requests:
        if shipped.classify(method, host, path)[0] is not None and factor > 1:
            copied.append((method, renamed(host, rng.randrange(1, factor)), path))
    return requests + copied


# -- a running worker's memory -------------------------------------------------------------------


def worker_memory(policy_dir: Path) -> dict[str, object]:
    """RSS of each worker of `aiwarden run --workers 2` on the policy, once it is ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        admin = s.getsockname()[1]
    aiwarden = str(Path(sys.executable).parent / "aiwarden")
    with tempfile.TemporaryDirectory() as confdir:
        proc = subprocess.Popen(
            [aiwarden, "run", "--policy", str(policy_dir), "--confdir", confdir,
             "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}", "--workers", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1):
                        break
                except OSError:
                    time.sleep(0.3)
            time.sleep(1)
            children = subprocess.run(
                ["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
            rss = {}
            for pid in [str(proc.pid), *children]:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                kb = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS"))
                rss[pid] = round(kb / 1024, 1)
            return {
                "main_rss_mb": rss.pop(str(proc.pid), None),
                "worker_rss_mb": sorted(rss.values()),
            }
        finally:
            proc.terminate()
            proc.wait(timeout=20)


LOAD_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
def rss(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
from proxy.decide.engine import Engine
from proxy.policy.loader import load_policy
before = rss('VmRSS:')
start = time.perf_counter()
engine = Engine(load_policy({policy!r}))
seconds = time.perf_counter() - start
print(json.dumps({{"load_seconds": round(seconds, 3),
                  "rss_growth_mb": round((rss('VmRSS:') - before) / 2**20, 1),
                  "peak_rss_mb": round(rss('VmHWM:') / 2**20, 1)}}))
"""


def measure_load(policy_dir: Path) -> dict[str, float]:
    code = LOAD_CHILD.format(root=str(ROOT), policy=str(policy_dir))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# -- mitmproxy's flow filters --------------------------------------------------------------------


def host_regex(pattern: str) -> str:
    """The `~d` regex a mitmproxy user would write for one of our host patterns."""
    if pattern.startswith("*."):
        return r"(^|\.)" + re.escape(pattern[2:]) + "$"
    return "^" + re.escape(pattern).replace(r"\*", "[^.]*") + "$"


def quoted(regex: str) -> str:
    """A regex as a quoted flow-filter argument (the filter parser unescapes backslashes)."""
    return "'" + regex.replace("\\", "\\\\") + "'"


def mitmproxy_filters(
    patterns: list[str], requests: list[tuple[str, str, str]], rounds: int
) -> dict[str, object]:
    from mitmproxy import flowfilter
    from mitmproxy.test import tflow

    start = time.perf_counter()
    filters = [flowfilter.parse(f"~d {quoted(host_regex(p))}") for p in patterns]
    parse_seconds = time.perf_counter() - start
    flows = []
    for method, host, path in requests:
        flow = tflow.tflow()
        flow.request.method, flow.request.host, flow.request.path = method, host, path
        flow.request.headers["host"] = host
        flows.append((flow,))

    def block_list(flow) -> bool:  # mitmproxy/addons/blocklist.py: BlockList.request
        return any(f(flow) for f in filters)

    result: dict[str, object] = {
        "filters": len(filters),
        "parse_seconds": round(parse_seconds, 3),
        "block_list": time_calls(block_list, flows, rounds),
    }
    start = time.perf_counter()
    one = flowfilter.parse("~d " + quoted("|".join(f"(?:{host_regex(p)})" for p in patterns)))
    result["one_filter_parse_seconds"] = round(time.perf_counter() - start, 3)
    result["one_filter"] = time_calls(one, flows, rounds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--path-rules", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--mitmproxy-hosts",
        type=int,
        default=10_000,
        help="one-filter-per-host is timed up to this many hosts (it is slow)",
    )
    parser.add_argument("--scale", type=int, default=10, help="copies of the shipped catalog")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/engine.json")
    args = parser.parse_args()
    report: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"python {platform.python_version()}".strip(),
    }

    # 1. shipped policy
    shipped = Engine(load_policy(ROOT / "policies"))
    requests = corpus_requests()
    req_args = [(m, h, p, "10.1.2.3", None) for m, h, p in requests]
    con_args = [(h, "10.1.2.3", None) for _m, h, _p in requests]
    shipped_patterns = [h.text for s in shipped.policy.services for h in s.hosts]
    report["shipped"] = {
        "services": len(shipped.policy.services),
        "host_patterns": len(shipped_patterns),
        "load": measure_load(ROOT / "policies"),
        "decide_request": time_calls(shipped.decide_request, req_args, args.rounds),
        "decide_connect": time_calls(shipped.decide_connect, con_args, args.rounds),
        "mitmproxy": mitmproxy_filters(shipped_patterns, requests, max(1, args.rounds // 4)),
        "workers": worker_memory(ROOT / "policies"),
    }

    # 2. the shipped catalog, scaled
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        scaled_requests = scaled_policy(directory, args.scale)
        scaled = Engine(load_policy(directory))
        report["scaled"] = {
            "factor": args.scale,
            "services": len(scaled.policy.services),
            "host_patterns": sum(len(s.hosts) for s in scaled.policy.services),
            "load": measure_load(directory),
            "decide_request": time_calls(
                scaled.decide_request,
                [(m, h, p, "10.1.2.3", None) for m, h, p in scaled_requests],
                max(1, args.rounds // 2),
            ),
            "decide_connect": time_calls(
                scaled.decide_connect,
                [(h, "10.1.2.3", None) for _m, h, _p in scaled_requests],
                max(1, args.rounds // 2),
            ),
            "workers": worker_memory(directory),
        }

    # 2. generated policy
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        examples = generate_policy(directory, args.hosts, args.path_rules)
        load = measure_load(directory)
        engine = Engine(load_policy(directory))
        rng = random.Random(11)
        mix = []
        for i in range(2000):
            if i % 2:
                host = rng.choice(examples)
            else:
                host = f"www.site{rng.randrange(10**6)}.example.org"
            mix.append(("POST", host, f"/v1/r{rng.randrange(args.path_rules)}/chat"))
        rounds = max(1, args.rounds // 20)
        generated: dict[str, object] = {
            "host_patterns": args.hosts,
            "path_rules": args.path_rules,
            "load": load,
            "decide_request": time_calls(
                engine.decide_request, [(*r, "10.1.2.3", None) for r in mix], rounds
            ),
            "decide_connect": time_calls(
                engine.decide_connect, [(r[1], "10.1.2.3", None) for r in mix], rounds
            ),
        }
        patterns = [h.text for s in engine.policy.services for h in s.hosts]
        sample = patterns[: args.mitmproxy_hosts]
        generated["mitmproxy"] = mitmproxy_filters(sample, mix[:100], 1)
        report["generated"] = generated

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)


def _catalog_line(title: str, c: dict) -> str:
    workers = " / ".join(map(str, c["workers"]["worker_rss_mb"]))
    return (
        f"\n{title}: {c['services']} services, {c['host_patterns']} host patterns; "
        f"load {c['load']['load_seconds']} s, +{c['load']['rss_growth_mb']} MB; "
        f"running: main {c['workers']['main_rss_mb']} MB, workers {workers} MB RSS"
    )


def print_report(r: dict) -> None:
    s, g = r["shipped"], r["generated"]
    print(f"aiwarden engine benchmark, {r['date']}, {r['machine']}")
    print(_catalog_line("shipped policy", s))
    rows = [
        ("aiwarden decide_request", s["decide_request"]),
        ("aiwarden decide_connect", s["decide_connect"]),
        (
            f"mitmproxy block_list ({s['mitmproxy']['filters']} ~d filters)",
            s["mitmproxy"]["block_list"],
        ),
        ("mitmproxy one ~d filter, all hosts", s["mitmproxy"]["one_filter"]),
    ]
    _table(rows, s["decide_request"]["median_us"])
    x = r["scaled"]
    print(_catalog_line(f"shipped catalog x{x['factor']}", x))
    rows = [
        ("aiwarden decide_request", x["decide_request"]),
        ("aiwarden decide_connect", x["decide_connect"]),
    ]
    _table(rows, s["decide_request"]["median_us"])
    gm = g["mitmproxy"]
    print(
        f"\ngenerated policy: {g['host_patterns']} host patterns, {g['path_rules']} path rules; "
        f"load {g['load']['load_seconds']} s, +{g['load']['rss_growth_mb']} MB "
        f"(peak RSS {g['load']['peak_rss_mb']} MB)"
    )
    rows = [
        ("aiwarden decide_request", g["decide_request"]),
        ("aiwarden decide_connect", g["decide_connect"]),
        (f"mitmproxy block_list ({gm['filters']} ~d filters only)", gm["block_list"]),
        (f"mitmproxy one ~d filter, {gm['filters']} hosts", gm["one_filter"]),
    ]
    _table(rows, g["decide_request"]["median_us"])
    print(f"  (mitmproxy filter parse: {gm['parse_seconds']} s for {gm['filters']} filters)")


def _table(rows, base: float) -> None:
    print(f"  {'':<52} {'median µs':>10} {'p99 µs':>9} {'× aiwarden':>11}")
    for name, t in rows:
        ratio = t["median_us"] / base if base else float("nan")
        print(f"  {name:<52} {t['median_us']:>10} {t['p99_us']:>9} {ratio:>10.1f}×")


if __name__ == "__main__":
    main()
