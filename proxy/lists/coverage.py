"""How much of a community list the catalog recognises, and which ordinary domains it catches.

The admin's check of the catalog against lists they trust: the engine is asked about the same
URLs a user's browser would open, so the numbers are what the proxy would really do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.decide.engine import Engine
from proxy.lists.formats import Entry, ParsedList, reference_text
from proxy.policy.normalize import BadHost, split_url


@dataclass(slots=True)
class ListCoverage:
    """One list (a file, or one value of the reference format's third column)."""

    name: str
    file: str
    format: str
    counted: list[Entry] = field(default_factory=list)
    missing: list[Entry] = field(default_factory=list)
    dropped: int = 0

    @property
    def recognised(self) -> int:
        return len(self.counted) - len(self.missing)

    @property
    def share(self) -> float:
        return self.recognised / len(self.counted) if self.counted else 1.0


@dataclass(frozen=True, slots=True)
class FalsePositive:
    """A negative entry one of whose URLs the policy treats as an AI service (or blocks)."""

    entry: Entry
    url: str
    service: str | None
    action: str


def recognised_by(engine: Engine, entry: Entry) -> str | None:
    """The id of the catalog service any probe URL of the entry is matched to, else None."""
    for url in entry.probes():
        try:
            _scheme, host, path, _port = split_url(url)
            service, _activity = engine.classify("GET", host, path)
        except BadHost:
            return None
        if service is not None:
            return service.id
    return None


def measure(
    engine: Engine, parsed: ParsedList, drops: dict[str, set[str]] | None = None
) -> list[ListCoverage]:
    """Coverage per list of a parsed file; entries named in `drops` (per list) are not counted."""
    drops = drops or {}
    lists: dict[str, ListCoverage] = {}
    seen: set[tuple[str, str, str]] = set()
    for entry in parsed.entries:
        name = entry.list or parsed.path.name
        cov = lists.get(name)
        if cov is None:
            cov = lists[name] = ListCoverage(name, str(parsed.path), parsed.format)
        key = (name, entry.kind, entry.value)
        if key in seen:
            continue
        seen.add(key)
        if reference_text(entry) in drops.get(name, ()):
            cov.dropped += 1
            continue
        cov.counted.append(entry)
        if recognised_by(engine, entry) is None:
            cov.missing.append(entry)
    return list(lists.values())


def false_positives(engine: Engine, parsed: ParsedList) -> list[FalsePositive]:
    """Negative entries whose https://d/ or https://www.d/ (https://h/ for full:h) is matched."""
    found = []
    for entry in parsed.entries:
        urls = entry.probes()[:2] if entry.kind == "domain" else entry.probes()
        for url in urls:
            try:
                _scheme, host, path, _port = split_url(url)
            except BadHost:
                continue
            decision = engine.decide_request("GET", host, path)
            if decision.service or decision.action == "block":
                found.append(FalsePositive(entry, url, decision.service, decision.action))
                break
    return found
