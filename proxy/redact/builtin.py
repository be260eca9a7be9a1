"""The built-in detectors, by id and by group: what a redaction profile's `detectors` list names."""

from __future__ import annotations

from proxy.redact import personal_detectors, secret_detectors
from proxy.redact.detectors import Detector

# Secrets first: a private key block is reported whole, not as the things inside it.
BUILTIN: tuple[Detector, ...] = secret_detectors.DETECTORS + personal_detectors.DETECTORS


def _groups(detectors: tuple[Detector, ...]) -> dict[str, list[str]]:
    """Each group (secrets, pii, pii.extended), each family (pii.contact...) and each kind
    found by several detectors (person-name: after a label, in a cell, in Japanese) by name."""
    groups: dict[str, list[str]] = {}
    for d in detectors:
        for name in (d.group, d.family, d.kind):
            if name:
                groups.setdefault(name, []).append(d.id)
    return groups


GROUPS = _groups(BUILTIN)
BY_ID = {d.id: d for d in BUILTIN}
