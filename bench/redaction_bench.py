"""Redaction: recall and false positives on the labelled corpus, and throughput on
prompt-like text, side by side with detect-secrets on the same input.

    python bench/redaction_bench.py [--megabytes 8] [--json FILE]

detect-secrets (Yelp, the usual pre-commit secret scanner) is installed into the virtualenv
when missing; it is not a dependency of aiwarden. It looks for secrets only, so it is compared
on the secret cases; personal data has no counterpart there.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "redact"))

from test_redaction import CASES, PROFILE, openai_body  # noqa: E402

from proxy.redact import detectors  # noqa: E402
from proxy.redact.bodies import redact_body  # noqa: E402
from proxy.redact.builtin import BUILTIN, GROUPS  # noqa: E402
from proxy.redact.profiles import RedactionProfile  # noqa: E402

SECRET_TYPES = set(GROUPS["secrets"])

PROSE = (
    "We are migrating the billing service to the new cluster next week. The plan is to run "
    "both versions side by side, compare their outputs for a few days, and then switch the "
    "traffic over. Could you review the rollout steps below and point out anything risky? "
    "The team also wants a short summary for the weekly update, written for managers who do "
    "not follow the technical details. Please keep it under two hundred words and mention "
    "the expected downtime, which should be zero if everything goes as planned. "
)
CODE = '''def retry(fn, attempts=3, delay=0.5):
    """Call fn until it succeeds or the attempts run out."""
    for attempt in range(attempts):
        try:
            return fn()
        except ConnectionError as error:
            log.warning("attempt %d failed: %s", attempt + 1, error)
            time.sleep(delay * 2 ** attempt)
    raise RuntimeError("gave up after %d attempts" % attempts)
'''
LOGS = (
    "2026-11-26T10:15:32.481Z INFO  request_id=550e8400-e29b-41d4-a716-446655440000 "
    "method=GET path=/api/v2/orders status=200 duration_ms=42 client=10.20.3.4\n"
    "2026-11-26T10:15:33.007Z WARN  upstream=payments-7f9c4 retry=2 latency_ms=1250 "
    "version=3.12.4 commit=3f786850e387550fdab836ed7e6dc881de23001b\n"
)
JSONISH = (
    '{"service": "billing", "replicas": 3, "image": "registry.corp.example/billing:1.8.2",'
    ' "resources": {"cpu": "500m", "memory": "512Mi"}, "env": ["LOG_LEVEL=info"]}\n'
)


KINDS = {
    "prompts (prose, code, JSON)": [PROSE, PROSE, PROSE, CODE, CODE, JSONISH],
    "log pastes": [LOGS],
}


def prompt_text(megabytes: float, blocks: list[str], seed: int = 7) -> tuple[str, Counter]:
    """Blocks of one kind of text, with a corpus positive about every 8 KB; also what the
    built-in detectors should find in it."""
    rng = random.Random(seed)
    builtin = {d.id for d in BUILTIN}
    positives = [c for c in CASES if c["expect"] and c["text"].isascii()]
    parts, size, planted, expected = [], 0, 0, Counter()
    while size < megabytes * 1_000_000:
        block = rng.choice(blocks)
        parts.append(block)
        size += len(block)
        if size // 8000 > planted:
            case = rng.choice(positives)
            parts.append(case["text"] + "\n")
            expected.update(k for k in case["expect"] if k in builtin)
            planted += 1
    return "".join(parts), expected


def load_detect_secrets():
    try:
        import detect_secrets  # noqa: F401
    except ImportError:
        print("installing detect-secrets for the comparison", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "detect-secrets"], check=True)
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    def scan(text: str) -> Counter:
        found: Counter = Counter()
        with default_settings():
            for line in text.splitlines():
                for secret in scan_line(line):
                    found[secret.type] += 1
        return found

    return scan


def corpus_scores(ds_scan) -> dict:
    ours = {
        "cases": 0,
        "positives": 0,
        "caught": 0,
        "negatives": 0,
        "false_positives": 0,
        "missed": [],
        "flagged": [],
    }
    theirs = {"secret_positives": 0, "caught": 0, "negatives": 0, "false_positives": 0}
    for case in CASES:
        raw = json.dumps(openai_body(case["text"])).encode()
        found = redact_body(raw, "application/json", PROFILE).counts
        expected = Counter(case["expect"])
        ours["cases"] += 1
        if expected:
            ours["positives"] += sum(expected.values())
            caught = sum(min(found.get(k, 0), n) for k, n in expected.items())
            ours["caught"] += caught
            if caught < sum(expected.values()):
                ours["missed"].append(case["text"][:60])
        else:
            ours["negatives"] += 1
            if found:
                ours["false_positives"] += 1
                ours["flagged"].append(case["text"][:60])
        their = ds_scan(case["text"])
        if expected and set(expected) <= SECRET_TYPES:
            theirs["secret_positives"] += 1
            theirs["caught"] += bool(their)
        elif not expected:
            theirs["negatives"] += 1
            theirs["false_positives"] += bool(their)
    return {"aiwarden": ours, "detect_secrets": theirs}


def throughput(text: str, ds_scan) -> dict:
    megabytes = len(text.encode()) / 1e6
    results = {}

    def timed(name, fn, repeat=3):
        best, out = float("inf"), None
        for _ in range(repeat):
            start = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - start)
        results[name] = {"mb_per_s": round(megabytes / best, 1), "seconds": round(best, 3)}
        return out

    ours = timed("aiwarden scan, all built-in detectors", lambda: detectors.scan(text, BUILTIN))
    hs = detectors.hyperscan
    detectors.hyperscan = None
    try:
        timed("aiwarden scan, without hyperscan", lambda: detectors.scan(text, BUILTIN))
    finally:
        detectors.hyperscan = hs
    body = json.dumps(openai_body(text)).encode()
    profile = RedactionProfile("all", BUILTIN)
    timed(
        "aiwarden redact_body, one OpenAI JSON body",
        lambda: redact_body(body, "application/json", profile),
    )
    theirs = timed("detect-secrets scan_line, default plugins", lambda: ds_scan(text), repeat=1)
    results["found"] = {
        "aiwarden": dict(Counter(f.type for f in ours)),
        "detect_secrets": dict(theirs),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=8)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/redaction.json")
    args = parser.parse_args()
    ds_scan = load_detect_secrets()
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, python {platform.python_version()}",
        "hyperscan": detectors.hyperscan is not None,
        "corpus": corpus_scores(ds_scan),
        "texts": {},
    }
    for kind, blocks in KINDS.items():
        text, expected = prompt_text(args.megabytes, blocks)
        report["texts"][kind] = {
            "megabytes": round(len(text.encode()) / 1e6, 2),
            "planted_findings": sum(expected.values()),
            "throughput": throughput(text, ds_scan),
        }
    ours, theirs = report["corpus"]["aiwarden"], report["corpus"]["detect_secrets"]
    print(f"redaction benchmark, {report['date']}, {report['machine']}")
    print(
        f"corpus ({ours['cases']} snippets): aiwarden caught {ours['caught']}/"
        f"{ours['positives']} findings, {ours['false_positives']}/{ours['negatives']} "
        f"near-misses touched"
    )
    for text_ in ours["missed"]:
        print(f"  missed: {text_!r}")
    for text_ in ours["flagged"]:
        print(f"  flagged: {text_!r}")
    print(
        f"  detect-secrets on the secret cases: caught {theirs['caught']}/"
        f"{theirs['secret_positives']}, flagged {theirs['false_positives']}/"
        f"{theirs['negatives']} near-misses"
    )
    for kind, result in report["texts"].items():
        print(
            f"throughput on {result['megabytes']} MB of {kind} "
            f"({result['planted_findings']} planted findings of built-in types):"
        )
        for name, r in result["throughput"].items():
            if name != "found":
                print(f"  {name:<45} {r['mb_per_s']:>8} MB/s")
        found = result["throughput"]["found"]
        print(
            f"  found by aiwarden:       {sum(found['aiwarden'].values())} "
            f"({len(found['aiwarden'])} types; planted {result['planted_findings']})"
        )
        print(
            f"  found by detect-secrets: {sum(found['detect_secrets'].values())} "
            f"({found['detect_secrets']})"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
