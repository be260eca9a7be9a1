"""A labelled redaction corpus that the project generates itself.

    python bench/redaction_corpus.py --out corpus.jsonl [--seed 0] [--per-family 20] [--clean 900]

Positives are made from the published formats of each token and identifier (prefixes,
lengths, alphabets, checksums: see bench/corpus/) and placed in prompt-like text: code,
config files, .env, shell history, JSON, logs and chat. Each is labelled with the character
span of the value. Clean prompts (real text of this machine, synthesised logs, math, data exports
and engineering pastes, near-misses)
carry no label and must not be flagged.

One JSON object a line: {"id", "group" (secrets | pii | clean), "family", "kind", "locale"
(PII and null elsewhere), "text", "spans": [{"start", "end", "kind"}]}. The same seed gives the
same corpus on the same machine (the clean text comes from its Python and /usr/share).
--per-family K makes K samples per family, and at least one of each kind in it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import prompts
from corpus.clean_text import CLEAN_CLASSES
from corpus.personal_formats import KINDS as PERSONAL_KINDS
from corpus.personal_formats import PersonalKind
from corpus.secret_formats import KINDS as SECRET_KINDS
from corpus.secret_formats import SecretKind


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    kind: str


@dataclass(frozen=True, slots=True)
class Sample:
    id: str
    group: str  # secrets | pii | clean
    family: str
    kind: str
    locale: str | None
    text: str
    spans: tuple[Span, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Sample:
        raw = json.loads(line)
        raw["spans"] = tuple(Span(**s) for s in raw["spans"])
        return cls(**raw)


def _by_family(kinds: Iterable) -> dict[str, list]:
    families: dict[str, list] = {}
    for kind in kinds:
        families.setdefault(kind.family, []).append(kind)
    return families


def _secret(rng: random.Random, kind: SecretKind, i: int, sample_id: str) -> Sample:
    contexts = kind.contexts or prompts.TOKEN_CONTEXTS
    placed = prompts.place(contexts[i % len(contexts)], kind.make(rng), var=kind.var)
    placed = prompts.frame(rng, placed)
    span = Span(placed.start, placed.end, kind.name)
    return Sample(sample_id, "secrets", kind.family, kind.name, None, placed.text, (span,))


def _personal(rng: random.Random, kind: PersonalKind, i: int, sample_id: str) -> Sample:
    template = prompts.PERSONAL_CONTEXTS[i % len(prompts.PERSONAL_CONTEXTS)]
    placed = prompts.place(template, kind.make(rng), var=kind.key, label=rng.choice(kind.labels))
    span = Span(placed.start, placed.end, kind.name)
    return Sample(sample_id, "pii", kind.family, kind.name, kind.locale, placed.text, (span,))


def positives(seed: int, per_family: int) -> Iterator[Sample]:
    """K samples per family, taking its kinds (and locales) in turn. Each sample has its own
    random generator, so adding a family elsewhere does not change this one's samples."""
    for group, kinds, make in (
        ("secrets", SECRET_KINDS, _secret),
        ("pii", PERSONAL_KINDS, _personal),
    ):
        for family, members in _by_family(kinds).items():
            for i in range(max(per_family, len(members))):
                rng = random.Random(f"{seed}:{group}:{family}:{i}")
                kind = members[i % len(members)]
                yield make(rng, kind, i // len(members), f"{group}-{family}-{i:04d}")


def clean(seed: int, count: int) -> Iterator[Sample]:
    """`count` clean prompts, shared among the classes by their weights."""
    classes = list(CLEAN_CLASSES.items())
    total = sum(weight for _, (_, weight) in classes)
    quotas = [round(count * weight / total) for _, (_, weight) in classes]
    quotas[0] += count - sum(quotas)
    for (name, (make, _)), quota in zip(classes, quotas, strict=True):
        for i in range(quota):
            rng = random.Random(f"{seed}:clean:{name}:{i}")
            yield Sample(f"clean-{name}-{i:04d}", "clean", name, name, None, make(rng))


def generate(seed: int = 0, per_family: int = 20, clean_count: int = 900) -> list[Sample]:
    return [*positives(seed, per_family), *clean(seed, clean_count)]


def write_jsonl(samples: Iterable[Sample], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for sample in samples:
            out.write(sample.to_json() + "\n")


def read_jsonl(path: Path) -> list[Sample]:
    with path.open(encoding="utf-8") as lines:
        return [Sample.from_json(line) for line in lines if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--per-family",
        type=int,
        default=20,
        metavar="K",
        help="samples per family, at least one of each kind (default 20)",
    )
    parser.add_argument(
        "--clean", type=int, default=900, metavar="N", help="clean prompts (default 900)"
    )
    args = parser.parse_args(argv)
    if args.per_family < 1 or args.clean < 0:
        parser.error("--per-family must be at least 1 and --clean at least 0")
    samples = generate(args.seed, args.per_family, args.clean)
    write_jsonl(samples, args.out)
    groups = Counter(s.group for s in samples)
    families = len({(s.group, s.family) for s in samples if s.group != "clean"})
    print(
        f"{args.out}: {len(samples)} samples ({groups['secrets']} secrets, {groups['pii']} "
        f"personal data in {families} families; {groups['clean']} clean)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
