"""Personal data measured on values we did not make: Faker's people of ten locales in forms,
JSON, CSV, emails, chat and unlabelled lists (bench/corpus/faker_people.py), with recall and
precision per kind and locale, for `secrets, pii` and with `pii.extended` too.

    python bench/personal_bench.py [--seed 0] [--per-locale 120] [--clean 600]
                                   [--clean-prose 30] [--tree DIR] [--json FILE]

Recall: labelled values that a finding overlaps (redacted, whatever the detector). Precision
of a kind: its findings that overlap a value labelled that kind, over all its findings,
counting those in the clean prompts: the redaction corpus's clean set (code, docs, logs and
near-misses: bench/redaction_corpus.py) and prose of each locale about companies, places
and jobs with no one's data in it. Per locale, precision counts that locale's prompts only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from corpus import faker_people  # noqa: E402
from redaction_bench import aiwarden_tree, tree_arguments  # noqa: E402
from redaction_corpus import clean  # noqa: E402

# a finding's type -> the kind of value, as the corpus labels it (the -cell and -ja ids: what
# a tree from before Detector.kind reports, for --tree)
KIND_OF = {"person-name": "name", "person-name-cell": "name", "person-name-ja": "name",
           "street-address-cell": "street-address",
           "street-address": "street-address",
           "phone": "phone", "date-of-birth": "date-of-birth", "passport": "passport",
           "iban": "iban", "email": "email", "ip-address": "ip-address",
           "payment-card": "payment-card",
           **dict.fromkeys(("us-ssn", "uk-nino", "de-tax-id", "fr-nir", "es-dni", "it-fiscal-code",
                            "nl-bsn", "in-aadhaar", "br-cpf"), "national-id")}  # fmt: skip


def profiles() -> dict[str, tuple]:
    """`secrets, pii` (the precise checks), and the same with `pii.extended` (names and street
    addresses, from the words around them): the shipped default profile is the second."""
    from proxy.redact.builtin import BY_ID, GROUPS

    precise = tuple(BY_ID[i] for group in ("secrets", "pii") for i in GROUPS[group])
    return {"pii": precise, "pii+extended": precise + tuple(BY_ID[i] for i in
                                                            GROUPS["pii.extended"])}  # fmt: skip


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score(samples: list[dict], detectors: tuple) -> dict:
    """Recall and precision by kind, by kind and locale, and by template; clean prompts
    flagged by detector."""
    from proxy.redact.detectors import scan

    recall: dict[str, Counter] = defaultdict(Counter)
    precision: dict[str, Counter] = defaultdict(Counter)
    clean_by: dict[str, Counter] = defaultdict(Counter)
    for s in samples:
        findings = [(f.start, f.end, KIND_OF[f.type]) for f in scan(s["text"], detectors)
                    if f.type in KIND_OF]  # fmt: skip
        for start, end, kind in findings:
            true = any(k == kind and overlaps((start, end), (a, b)) for a, b, k in s["spans"])
            for key in (kind, f"{kind}/{s['locale']}"):
                if s["group"] == "clean" and "/" in key:
                    continue  # the clean corpus has no locale
                precision[key]["findings"] += 1
                precision[key]["true"] += true
            if s["group"] == "clean":
                clean_by[s["template"]][kind] += 1
        if s["group"] == "clean":
            clean_by[s["template"]]["prompts"] += 1
            clean_by[s["template"]]["flagged"] += bool(findings)
        for a, b, kind in s["spans"]:
            hit = any(overlaps((a, b), (x, y)) for x, y, _ in findings)
            for key in (kind, f"{kind}/{s['locale']}", f"template/{s['template']}", "all"):
                recall[key]["n"] += 1
                recall[key]["found"] += hit
    return {"recall": {k: dict(v) for k, v in recall.items()},
            "precision": {k: dict(v) for k, v in precision.items()},
            "clean": {k: dict(v) for k, v in clean_by.items()}}  # fmt: skip


def pct(found: int, n: int) -> str:
    """Whole percents, but never 100 or 0 when it is not quite that."""
    if not n:
        return "-"
    value = 100 * found / n
    return f"{value:.0f}" if found in (0, n) or 1 <= value <= 99 else f"{value:.1f}"


def print_report(report: dict) -> None:
    scores = report["profiles"]
    print(f"personal data on Faker's values, {report['date']}; {report['corpus']}")
    locales = list(faker_people.LOCALES)
    for title, key in (("recall", "recall"), ("precision", "precision")):
        for profile in scores:
            table = scores[profile][key]
            print(f"\n{title} %, profile {profile} (n: labelled values / findings)")
            print(f"{'kind':<16}{'all':>10}" + "".join(f"{loc:>10}" for loc in locales))
            for kind in (*faker_people.KINDS, "payment-card"):
                cells = []
                for k in (kind, *(f"{kind}/{loc}" for loc in locales)):
                    row = table.get(k, {})
                    n, good = (
                        (row.get("n", 0), row.get("found", 0))
                        if key == "recall"
                        else (row.get("findings", 0), row.get("true", 0))
                    )
                    cells.append(f"{pct(good, n)} ({n})" if n else "-")
                if any(c != "-" for c in cells):
                    print(f"{kind:<16}" + "".join(f"{c:>10}" for c in cells))
    for profile in scores:
        rows = scores[profile]["recall"]
        print(f"\nrecall by template, {profile}: " + ", ".join(
            f"{k.split('/')[1]} {pct(v['found'], v['n'])} %" for k, v in sorted(rows.items())
            if k.startswith("template/")))  # fmt: skip
        for name, row in scores[profile]["clean"].items():
            kinds = {k: v for k, v in row.items() if k not in ("prompts", "flagged")}
            print(f"clean {name}: {row['flagged']} of {row['prompts']} flagged {kinds}")
    print(f"\nFaker values drawn again (no one has them): {report['rejected']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-locale", type=int, default=120)
    parser.add_argument("--clean", type=int, default=600, help="prompts of the clean corpus")
    parser.add_argument("--clean-prose", type=int, default=30, help="clean prose per locale")
    tree_arguments(parser)
    args = parser.parse_args(argv)
    tree = aiwarden_tree(parser, args)
    print(f"aiwarden tree: {tree}", file=sys.stderr)

    samples = faker_people.samples(args.seed, args.per_locale, args.clean_prose)
    samples += [{"id": s.id, "group": "clean", "template": "corpus", "locale": None,
                 "text": s.text, "spans": []} for s in clean(args.seed, args.clean)]  # fmt: skip
    import faker

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}",
        "command": "python bench/personal_bench.py " + " ".join(argv or sys.argv[1:]),
        "tree": str(tree),
        "corpus": (f"Faker {faker.VERSION}, seed {args.seed}: {args.per_locale} prompts in "
                   f"each of {len(faker_people.LOCALES)} locales "
                   f"({sum(len(s['spans']) for s in samples)} labelled values), "
                   f"{args.clean_prose * len(faker_people.LOCALES)} clean prose prompts, "
                   f"{args.clean} clean corpus prompts"),
        "rejected": dict(faker_people.REJECTED),
        "profiles": {name: score(samples, detectors)
                     for name, detectors in profiles().items()},
    }  # fmt: skip
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
