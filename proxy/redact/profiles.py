"""Redaction profiles: which detectors run on prompts of approved services, and how.

```yaml
redaction_profiles:
  default:
    detectors: [secrets, pii]          # groups, families (pii.identity...) or detector ids
    phone_regions: [GB, DE]            # national phone formats taken without a country named
    custom:
      - {id: codename, keywords: [PROJECT-HELIOS, Bluefin]}
      - {id: ticket, pattern: 'CORP-[0-9]{5}'}
    replacement: "[REDACTED:{type}]"
    on_unparseable: block              # block | pass
    max_body_bytes: 4194304            # larger: 413, never forwarded unscanned
    files: redact                      # multipart file parts: redact (text) | pass | block
    restore: false                     # true: <KIND_n> placeholders, originals put back
                                       # into the answer (redact/placeholders.py, restore.py)
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy.policy.yamlsource import Fields, Mapping, Problems, did_you_mean, type_name
from proxy.redact.builtin import BY_ID, GROUPS
from proxy.redact.detectors import Detector, custom_keywords, custom_pattern
from proxy.redact.personal_checks import SUPPORTED_REGIONS
from proxy.redact.personal_detectors import phone_detector
from proxy.redact.placeholders import self_findings

PROFILE_KEYS = (
    "detectors",
    "custom",
    "replacement",
    "on_unparseable",
    "max_body_bytes",
    "files",
    "restore",
    "phone_regions",
)
_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
DEFAULT_MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RedactionProfile:
    name: str
    detectors: tuple[Detector, ...]
    replacement: str = "[REDACTED:{type}]"
    on_unparseable: str = "block"
    max_body_bytes: int = DEFAULT_MAX_BODY
    files: str = "redact"
    restore: bool = False  # placeholders instead of `replacement`, restored in the answer


def parse_profiles(node: Mapping | None, problems: Problems) -> dict[str, RedactionProfile]:
    profiles: dict[str, RedactionProfile] = {}
    for name, spec in (node or {}).items():
        where = f"redaction profile {name!r}"
        if not isinstance(spec, Mapping):
            problems.add(node.file, node.value_line(name), f"{where}: must be a mapping")
            continue
        profile = _parse_profile(str(name), spec, where, problems)
        if profile is not None:
            profiles[str(name)] = profile
    return profiles


def _parse_profile(
    name: str, node: Mapping, where: str, problems: Problems
) -> RedactionProfile | None:
    before = len(problems.items)
    f = Fields(node, where, problems, allowed=PROFILE_KEYS)
    detectors: list[Detector] = []
    choices = [*GROUPS, *BY_ID]
    for text, line in f.str_items("detectors") or ():
        if text in GROUPS:
            detectors.extend(BY_ID[d] for d in GROUPS[text])
        elif text in BY_ID:
            detectors.append(BY_ID[text])
        else:
            problems.add(
                node.file,
                line,
                f"{where}: unknown detector {text!r}"
                f"{did_you_mean(text, choices)}; detectors are the groups "
                f"{', '.join(GROUPS)} or one of {', '.join(BY_ID)}",
            )
    detectors = _with_phone_regions(detectors, f, where, problems)
    detectors.extend(_custom(f.sequence("custom"), where, problems))
    if not detectors and len(problems.items) == before:
        problems.add(
            node.file, node.line, f"{where}: no detectors; give 'detectors' and/or 'custom'"
        )
    replacement = f.str("replacement", "[REDACTED:{type}]")
    max_body = f.int("max_body_bytes", DEFAULT_MAX_BODY)
    if max_body is not None and max_body < 1:
        f.error("max_body_bytes", "'max_body_bytes' must be at least 1")
    profile = RedactionProfile(
        name=name,
        detectors=tuple(dict.fromkeys(detectors)),  # listed twice, run once
        replacement=replacement if replacement is not None else "[REDACTED:{type}]",
        on_unparseable=f.str("on_unparseable", "block", choices=("block", "pass")) or "block",
        max_body_bytes=max_body or DEFAULT_MAX_BODY,
        files=f.str("files", "redact", choices=("redact", "pass", "block")) or "redact",
        restore=f.bool("restore"),
    )
    if profile.restore:
        _check_restore(f, node, profile)
    return profile if len(problems.items) == before else None


def _check_restore(f: Fields, node: Mapping, profile: RedactionProfile) -> None:
    """A restoring profile writes placeholders, not `replacement`; and no detector of it may
    find a placeholder itself (it would be redacted again and never restored)."""
    if "replacement" in node:
        f.error("replacement", "'replacement' and 'restore: true' exclude each other: a "
                "restoring profile writes <KIND_n> placeholders")  # fmt: skip
    for sample, kind in self_findings(profile.detectors):
        f.error("restore", f"with 'restore: true' the placeholder {sample} would itself be "
                f"found by detector {kind!r}; narrow that detector")  # fmt: skip


_REGION_HINTS = {"UK": " (the United Kingdom's code is 'GB')", "EN": " (England is in 'GB')"}


def _with_phone_regions(
    detectors: list[Detector], f: Fields, where: str, problems: Problems
) -> list[Detector]:
    """The phone detector of the regions the profile names: their national formats count
    even where no country is named nearby."""
    items = f.str_items("phone_regions")
    if items is None:
        return detectors
    regions: list[str] = []
    for text, line in items:
        if text.upper() in SUPPORTED_REGIONS:
            regions.append(text.upper())
        else:
            hint = _REGION_HINTS.get(text.upper()) or did_you_mean(text.upper(), SUPPORTED_REGIONS)
            problems.add(
                f.node.file,
                line,
                f"{where}: unknown phone region {text!r}{hint}; regions are ISO 3166 codes "
                "like GB, DE, IN",
            )
    if not any(d.id == "phone" for d in detectors):
        f.error("phone_regions", "'phone_regions' needs the phone detector in 'detectors'")
        return detectors
    phone = phone_detector(tuple(dict.fromkeys(regions)))
    return [phone if d.id == "phone" else d for d in detectors]


def _custom(node, where: str, problems: Problems) -> list[Detector]:
    detectors: list[Detector] = []
    seen: set[str] = set()
    for i, item in enumerate(node or ()):
        line = node.item_line(i)
        if not isinstance(item, Mapping):
            problems.add(
                node.file,
                line,
                f"{where}: a custom detector is a mapping with 'id' "
                f"and 'keywords' or 'pattern', not {type_name(item)}",
            )
            continue
        cid = item.get("id")
        here = f"{where}, custom detector {cid!r}" if isinstance(cid, str) else f"{where}, custom"
        f = Fields(item, here, problems, allowed=("id", "keywords", "pattern"), required=("id",))
        cid = f.str("id")
        if cid is None:
            continue
        if not _ID.fullmatch(cid):
            f.error("id", f"id {cid!r} must be a lower-case slug")
        elif cid in BY_ID or cid in GROUPS or cid in seen:
            f.error("id", f"id {cid!r} is already a detector's name")
        seen.add(cid)
        keywords, pattern = f.str_items("keywords"), f.str("pattern")
        if (keywords is None) == (pattern is None):
            problems.add(
                item.file, item.line, f"{here}: give exactly one of 'keywords' and 'pattern'"
            )
        elif keywords is not None:
            detectors.append(custom_keywords(cid, (k for k, _ in keywords)))
        else:
            try:
                detector = custom_pattern(cid, pattern)
            except re.error as e:
                f.error("pattern", f"'pattern' is not a valid regular expression: {e}")
                continue
            if detector.regex.search(""):
                f.error("pattern", "'pattern' matches the empty string")
                continue
            detectors.append(detector)
    return detectors
