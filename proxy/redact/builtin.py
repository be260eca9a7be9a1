"""The built-in detectors, by id and by group: what a redaction profile's `detectors` list names."""

from __future__ import annotations

from proxy.redact import personal_detectors, secret_detectors
from proxy.redact.detectors import Detector

# Secrets first: a private key block is reported whole, not as the things inside it.
BUILTIN: tuple[Detector, ...] = secret_detectors.DETECTORS + personal_detectors.DETECTORS
GROUPS = {
    "secrets": [d.id for d in BUILTIN if d.group == "secrets"],
    "pii": [d.id for d in BUILTIN if d.group == "pii"],
}
BY_ID = {d.id: d for d in BUILTIN}
