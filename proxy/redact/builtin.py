"""The built-in detectors, by id and by named set: what a redaction profile's `detectors` list
names. A set is a group (`secrets`, `pii`) or one family of a group (`secrets.cloud`)."""

from __future__ import annotations

from collections.abc import Iterable

from proxy.redact import personal_detectors, secret_detectors
from proxy.redact.detectors import Detector


def named_sets(detectors: Iterable[Detector]) -> dict[str, list[str]]:
    """Detector ids by group, then by `<group>.<family>`, in the order they run."""
    groups: dict[str, list[str]] = {}
    families: dict[str, list[str]] = {}
    for d in detectors:
        groups.setdefault(d.group, []).append(d.id)
        if d.family:
            families.setdefault(f"{d.group}.{d.family}", []).append(d.id)
    return {**groups, **families}


# Secrets first: a private key block is reported whole, not as the things inside it.
BUILTIN: tuple[Detector, ...] = secret_detectors.DETECTORS + personal_detectors.DETECTORS
GROUPS = named_sets(BUILTIN)
BY_ID = {d.id: d for d in BUILTIN}
