"""Restorable placeholders: one request's mapping between what was found and `<KIND_n>`.

A profile with `restore: true` replaces each finding with a placeholder instead of a fixed
text, so the service's answer can be given its originals back (proxy/redact/restore.py).
The same value gets the same placeholder throughout a request; numbers count per kind. A
placeholder never matches text the request already holds (a prompt that quotes `<EMAIL_1>`
gets `<EMAIL_2>` for its first address), so only placeholders of our own are restored.
The mapping lives in the flow alone: it is never logged, audited, counted or written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from proxy.redact.detectors import Detector, scan

# What a placeholder looks like: upper-case letters, digits and underscores in angle brackets.
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")
MAX_TRIES = 10_000  # numbers tried for one placeholder before giving up on the request


class NoPlaceholder(ValueError):
    """No free placeholder could be found (the request quotes thousands of them)."""


def label(kind: str) -> str:
    """A detector id as a placeholder's kind: `aws-access-key` -> `AWS_ACCESS_KEY`."""
    return re.sub(r"[^A-Z0-9]+", "_", kind.upper()).strip("_") or "SECRET"


def placeholder(kind: str, number: int) -> str:
    return f"<{label(kind)}_{number}>"


def self_findings(detectors: Iterable[Detector]) -> list[tuple[str, str]]:
    """(placeholder, detector) pairs where a detector would find a placeholder of these
    detectors itself: such a profile cannot restore (the policy loader reports it)."""
    detectors = tuple(detectors)
    clashes = []
    for d in detectors:
        sample = placeholder(d.finds, 1)
        clashes.extend((sample, f.type) for f in scan(sample, detectors))
    return clashes


class Placeholders:
    """One request's placeholders: handed to the redactor as its replacement, then to the
    restorer of the answer as `originals`."""

    def __init__(self, taken: str, detectors: Iterable[Detector]) -> None:
        # the placeholder-shaped texts of the request itself: none of them is used
        self._taken = frozenset(PLACEHOLDER.findall(taken))
        self._detectors = tuple(detectors)
        self._by_value: dict[str, str] = {}
        self._next: dict[str, int] = {}
        self.originals: dict[str, str] = {}  # placeholder -> the value it stands for

    def __call__(self, kind: str, value: str) -> str:
        """The placeholder for a value found by `kind` (the same one for the same value)."""
        known = self._by_value.get(value)
        if known is not None:
            return known
        name = label(kind)
        first = self._next.get(name, 1)
        for number in range(first, first + MAX_TRIES):
            candidate = f"<{name}_{number}>"
            if candidate not in self._taken and not scan(candidate, self._detectors):
                break
        else:
            raise NoPlaceholder(f"no free placeholder for {name} in this request")
        self._next[name] = number + 1
        self._by_value[value] = candidate
        self.originals[candidate] = value
        return candidate

    def __bool__(self) -> bool:
        return bool(self.originals)

    def __repr__(self) -> str:  # never the values, wherever a repr ends up
        return f"<Placeholders: {len(self.originals)}>"
