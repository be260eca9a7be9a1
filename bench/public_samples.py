"""Redaction measured on the public secret scanners' own test data: the true positives of
gitleaks' rules, detect-secrets' plugin tests and (when bench/corpus/public_trufflehog.py is
there) trufflehog's detector tests, read in place from their git repositories at run time and
placed in prompt text. aiwarden, gitleaks and detect-secrets scan the same prompts in the
same run (the runners and the scoring of bench/redaction_bench.py).

    python bench/public_samples.py [--mirrors DIR] [--gitleaks REPO] [--detect-secrets REPO]
                                   [--trufflehog REPO] [--seed 0] [--clean 600]
                                   [--tree DIR] [--json FILE] [--no-scanners] [--misses]

A repository is a bare git repository (read at HEAD) or a checkout; by default
DIR/<owner>+<name>/repo (DIR: /work/.mirror). Nothing of theirs is copied here, and the
--json results hold counts, rule names and where a miss came from, not the samples.

Each test case goes into one of four prompts, in turn within its family: a question around
a fenced paste, a .env paste, a log line, a JSON config (the case escaped as a JSON string).
A case counts as found when a finding overlaps its secret. Family = the scanner's rule,
plugin or detector. "Kinds aiwarden claims" are the families whose vendor (the first word of
the family) is one aiwarden has a detector or a corpus family for. The scanners' own
near-misses (gitleaks' `fps`, detect-secrets' `should_flag=False` cases) are scored as clean
text, apart from the clean prompts of bench/redaction_corpus.py.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from corpus.public_detect_secrets import detect_secrets_samples  # noqa: E402
from corpus.public_gitleaks import gitleaks_samples  # noqa: E402
from corpus.public_sources import PublicSample, head_commit  # noqa: E402
from redaction_bench import (  # noqa: E402
    Found,
    Tool,
    aiwarden_tool,
    aiwarden_tree,
    detect_secrets_tool,
    gitleaks_tool,
    overlaps,
    score,
    tree_arguments,
)
from redaction_corpus import Sample, Span, clean  # noqa: E402

Source = Callable[[Path], list[PublicSample]]


def trufflehog_source() -> Source | str:
    """trufflehog's extraction (bench/corpus/public_trufflehog.py), or why it is not run."""
    try:
        module = importlib.import_module("corpus.public_trufflehog")
    except ImportError as e:
        return f"trufflehog: not run ({e.name or 'corpus.public_trufflehog'} is not here)"
    extract = module.trufflehog_samples
    extract.set_apart = module.set_apart  # what it reads and sets apart, reported with it
    return extract


# name -> (repository under --mirrors, extraction)
SOURCES: dict[str, tuple[str, Callable[[], Source | str]]] = {
    "gitleaks": ("gitleaks+gitleaks/repo", lambda: gitleaks_samples),
    "detect-secrets": ("Yelp+detect-secrets/repo", lambda: detect_secrets_samples),
    "trufflehog": ("trufflesecurity+trufflehog/repo", trufflehog_source),
}


# -- prompts -----------------------------------------------------------------------------------

TEMPLATES = (
    ("fenced", "why does this fail?\n```\n«case»\n```\n"),
    ("env", "here's my .env, the app can't reach the API since the deploy:\n\n"
            "NODE_ENV=production\nPORT=8080\n«case»\nLOG_LEVEL=debug\n"),
    ("log", "the worker crashes on start, log below\n\n"
            "2026-11-30T08:14:02.114Z worker[3121] INFO loaded config: «case»\n"
            "2026-11-30T08:14:02.115Z worker[3121] ERROR exiting with status 1\n"),
    ("json", 'can you check this config? the service ignores it\n\n{"service": "billing", '
             '"region": "eu-west-1", "settings": "«case»", "retries": 3}\n'),
)  # fmt: skip


def prompt(case: PublicSample, template: str, escape: bool) -> tuple[str, int, int]:
    """The case inside the template, and where its secret landed."""
    show = (lambda s: json.dumps(s)[1:-1]) if escape else (lambda s: s)
    before, after = template.split("«case»")
    head, secret, tail = (show(case.text[: case.start]), show(case.secret),
                          show(case.text[case.end :]))  # fmt: skip
    start = len(before) + len(head)
    return before + head + secret + tail + after, start, start + len(secret)


def samples_of(cases: list[PublicSample]) -> list[Sample]:
    """The cases as the bench's samples: positives by (source, family), near-misses clean."""
    out, index = [], Counter()
    for case in cases:
        key = (case.source, case.family, case.positive)
        i = index[key]
        index[key] += 1
        name, template = TEMPLATES[i % len(TEMPLATES)]
        text, start, end = prompt(case, template, escape=name == "json")
        family = f"{case.source}/{case.family}"
        sample_id = f"{'pos' if case.positive else 'neg'}:{family}:{i:04d}:{name}"
        if case.positive:
            out.append(Sample(sample_id, "secrets", family, case.family, None, text,
                              (Span(start, end, case.family),)))  # fmt: skip
        else:
            out.append(Sample(sample_id, "clean", f"near-miss/{case.source}", case.family,
                              None, text))  # fmt: skip
    return out


# -- what aiwarden claims ----------------------------------------------------------------------


def claimed_vendors() -> set[str]:
    """The first words of aiwarden's secret detectors and of its own corpus' families."""
    from corpus.secret_formats import KINDS

    from proxy.redact.builtin import BUILTIN

    words = {_vendor(d.id) for d in BUILTIN if d.group == "secrets"}
    words |= {_vendor(k.family) for k in KINDS} | {_vendor(k.name) for k in KINDS}
    return words | {"keyword", "basic", "ip"}  # password, url-credentials, ip-address


def _vendor(family: str) -> str:
    return re.split(r"[-_ ]", family.lower(), maxsplit=1)[0]


# -- placeholders: misses a human should look at -----------------------------------------------

_PLACEHOLDER = re.compile(r"example|x{4}|z{4}|test|fake|dummy|sample|1234|abcd|0000|your",
                          re.IGNORECASE)  # fmt: skip


def looks_fake(secret: str) -> bool:
    return bool(_PLACEHOLDER.search(secret)) or len(set(secret)) <= 8


# -- the report --------------------------------------------------------------------------------


def _pct(found: int, n: int) -> str:
    return f"{100 * found / n:.0f} %" if n else "-"


def summarise(samples: list[Sample], founds: dict[str, Found], tools: list[Tool],
              claimed: set[str]) -> dict:  # fmt: skip
    """Recall per source and family, totals, clean flagged; aiwarden's misses."""
    scores = {t.name: score(samples, founds[t.name], t.secret_rules) for t in tools}
    families: dict[str, dict] = {}
    for s in samples:
        if s.group != "secrets":
            continue
        fresh = {"n": 0, "placeholders": 0, **{t.name: 0 for t in tools},
                 **{f"{t.name} placeholders": 0 for t in tools}}  # fmt: skip
        row = families.setdefault(s.family, fresh)
        span = s.spans[0]
        fake = looks_fake(s.text[span.start : span.end])
        row["n"] += 1
        row["placeholders"] += fake
        for t in tools:
            hit = any(overlaps((a, b), (span.start, span.end))
                      for a, b, _ in founds[t.name].get(s.id, []))  # fmt: skip
            row[t.name] += hit
            row[f"{t.name} placeholders"] += hit and fake
    empty = {"n": 0, "families": 0, **{t.name: 0 for t in tools},
             **{f"{t.name}_families_95": 0 for t in tools}}  # fmt: skip
    totals: dict[str, dict] = defaultdict(lambda: dict(empty))
    for family, row in families.items():
        source = family.split("/", 1)[0]
        keys = [source, "all kinds"]
        if _vendor(family.split("/", 1)[1]) in claimed:
            keys += [f"{source} (claimed)", "kinds aiwarden claims"]
        for key in keys:
            total = totals[key]
            total["n"] += row["n"]
            total["families"] += 1
            for t in tools:
                total[t.name] += row[t.name]
                total[f"{t.name}_families_95"] += row[t.name] >= 0.95 * row["n"]
        # what a human would count: the cases whose secret does not look like a placeholder
        real = row["n"] - row["placeholders"]
        if real:
            total = totals["all kinds, placeholders aside"]
            total["n"] += real
            total["families"] += 1
            for t in tools:
                found = row[t.name] - row[f"{t.name} placeholders"]
                total[t.name] += found
                total[f"{t.name}_families_95"] += found >= 0.95 * real
    clean_rows = {t.name: scores[t.name]["clean"] for t in tools}
    misses = []
    for s in samples:
        if s.group == "secrets":
            span = s.spans[0]
            if not any(overlaps((a, b), (span.start, span.end))
                       for a, b, _ in founds["aiwarden"].get(s.id, [])):  # fmt: skip
                secret = s.text[span.start : span.end]
                misses.append({"id": s.id, "family": s.family, "length": len(secret),
                               "looks_fake": looks_fake(secret)})  # fmt: skip
    flagged_by: dict[str, dict[str, Counter]] = {t.name: defaultdict(Counter) for t in tools}
    for s in samples:
        if s.group == "clean":
            where = "near-misses" if s.family.startswith("near-miss/") else "clean prompts"
            for t in tools:
                flagged_by[t.name][where].update({r for _, _, r in founds[t.name].get(s.id, [])})
    return {"families": families, "totals": dict(totals), "clean": clean_rows,
            "clean_flagged_by": {t: {w: dict(c.most_common()) for w, c in by.items()}
                                 for t, by in flagged_by.items()},
            "aiwarden_misses": misses}  # fmt: skip


def print_report(report: dict, samples: list[Sample], show_misses: bool) -> None:
    tools = list(report["tools"])
    result = report["result"]
    print(f"redaction on the public scanners' test data, {report['date']}, {report['machine']}")
    for name, src in report["sources"].items():
        print(f"  {name}: {src}")
    for name in tools:
        print(f"  {name}: {report['tools'][name]}")
    for reason in report["not_run"]:
        print(f"  {reason}")
    head = "".join(f"{t:>16}" for t in tools)
    print(f"\nrecall by family (cases found)\n{'family':<52}{'n':>5}{head}")
    for family, row in sorted(result["families"].items()):
        cells = "".join(f"{row[t]:>10} {_pct(row[t], row['n']):>5}" for t in tools)
        print(f"{family:<52}{row['n']:>5}{cells}")
    print(f"\ntotals (cases found; families at >= 95 %)\n{'':<40}{'n':>6}{'fam':>5}{head}")
    for key, row in sorted(result["totals"].items(), key=lambda kv: (" " in kv[0], kv[0])):
        cells = "".join(f"{_pct(row[t], row['n']):>7} {row[f'{t}_families_95']:>4}/"
                        f"{row['families']:<3}" for t in tools)  # fmt: skip
        print(f"{key:<40}{row['n']:>6}{row['families']:>5}{cells}")
    print(f"\nclean text flagged\n{'class':<30}{'n':>5}" + "".join(f"{t:>16}" for t in tools))
    classes = sorted(result["clean"]["aiwarden"])
    for cls in classes:
        rows = [result["clean"][t].get(cls, {}) for t in tools]
        print(f"{cls:<30}{rows[0].get('n', 0):>5}"
              + "".join(f"{r.get('any', 0):>16}" for r in rows))  # fmt: skip
    prompts = [c for c in classes if not c.startswith("near-miss/")]
    print(f"{'ALL clean prompts':<30}"
          f"{sum(result['clean']['aiwarden'][c]['n'] for c in prompts):>5}"
          + "".join(f"{sum(result['clean'][t].get(c, {}).get('any', 0) for c in prompts):>16}"
                    for t in tools))  # fmt: skip
    for name in tools:
        for where, by in sorted(result["clean_flagged_by"][name].items()):
            if by:
                print(f"  {name} flagged {where} with: "
                      + ", ".join(f"{r} {n}" for r, n in by.items()))  # fmt: skip
    misses = result["aiwarden_misses"]
    fake = sum(m["looks_fake"] for m in misses)
    print(f"\naiwarden missed {len(misses)} cases ({fake} look like placeholders)")
    by_id = {s.id: s for s in samples}
    for m in misses if show_misses else []:
        s = by_id[m["id"]]
        span = s.spans[0]
        mark = "fake? " if m["looks_fake"] else ""
        print(f"  {mark}{m['id']}: {s.text[span.start : span.end][:100]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"),
                        help="where <owner>+<name>/repo are (default /work/.mirror)")  # fmt: skip
    for name in SOURCES:
        parser.add_argument(f"--{name}", type=Path, metavar="REPO",
                            help=f"{name}'s repository (bare or checkout)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean", type=int, default=600, metavar="N")
    tree_arguments(parser)
    parser.add_argument("--no-scanners", action="store_true", help="aiwarden only")
    parser.add_argument("--misses", action="store_true", help="print aiwarden's misses")
    args = parser.parse_args(argv)
    tree = aiwarden_tree(parser, args)

    cases: list[PublicSample] = []
    sources, not_run = {}, []
    for name, (default, make) in SOURCES.items():
        repo = getattr(args, name.replace("-", "_")) or args.mirrors / default
        extract = make()
        if isinstance(extract, str):
            not_run.append(extract)
            continue
        if not repo.exists():
            not_run.append(f"{name}: not run (no repository at {repo})")
            continue
        found = gitleaks_samples(repo, args.seed) if name == "gitleaks" else extract(repo)
        cases += found
        sources[name] = (f"{repo} @ {head_commit(repo)}: {sum(c.positive for c in found)} "
                         f"cases in {len({c.family for c in found if c.positive})} families, "
                         f"{sum(not c.positive for c in found)} near-misses")  # fmt: skip
        apart = getattr(extract, "set_apart", None)  # cases read that hold no secret
        if apart is not None and (kept_out := apart(repo)):
            listed = ", ".join(f"{family} {n}" for family, n in sorted(kept_out.items()))
            sources[name] += f"; set apart, ids and URLs, not secrets: {listed}"
    samples = samples_of(cases) + list(clean(args.seed, args.clean))
    ours, _ = aiwarden_tool(tree)
    tools = [ours]
    if not args.no_scanners:
        for make in (gitleaks_tool, detect_secrets_tool):
            tool = make()
            (tools.append if isinstance(tool, Tool) else not_run.append)(tool)
    founds: dict[str, Found] = {}
    seconds = {}
    for tool in tools:
        print(f"scanning {len(samples)} prompts with {tool.name}", file=sys.stderr)
        start = time.perf_counter()
        founds[tool.name] = tool.find(samples)
        seconds[tool.name] = round(time.perf_counter() - start, 1)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}",
        "command": "python bench/public_samples.py " + " ".join(argv or sys.argv[1:]),
        "sources": sources,
        "tools": {
            t.name: f"{t.version} ({seconds[t.name]} s, one file a prompt for the scanners)"
            for t in tools
        },
        "not_run": not_run,
        "seed": args.seed,
        "result": summarise(samples, founds, tools, claimed_vendors()),
    }
    print_report(report, samples, args.misses)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    random.seed(0)
    sys.exit(main())
