"""Detectors of secrets and personal data in prompt text, and text redaction.

Each detector is a regular expression, optionally gated by keywords (a cheap `in` test that
skips the regex on text that cannot match) and followed by a validator that rejects
near-misses: Luhn for cards, mod-97 for IBANs, the SSA's rules for SSNs, JSON-decoding for
JWTs, Shannon entropy for generic `key = value` secrets, libphonenumber for phone numbers.
Patterns are this project's own, written from the facts in shared/reference/ai-services.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import phonenumbers

Validator = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Detector:
    id: str
    group: str  # secrets | pii | custom
    regex: re.Pattern[str]
    keywords: tuple[str, ...] = ()  # at least one must occur (case-sensitively) to run the regex
    keywords_folded: tuple[str, ...] = ()  # the same, compared with the lower-cased text
    validate: Validator | None = None
    span_group: int = 0  # the regex group to redact (0: the whole match)


@dataclass(frozen=True, slots=True)
class Finding:
    type: str
    start: int
    end: int


# -- validators ----------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    total, double = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if double:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        double = not double
    return total % 10 == 0


_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[068]|35|6(?:011|5|4[4-9]|2)")


def card_valid(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    if not 13 <= len(digits) <= 19 or len(set(digits)) < 2:
        return False
    return bool(_CARD_PREFIX.match(digits)) and luhn_valid(digits)


def iban_valid(text: str) -> bool:
    iban = text.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


_SSN_NOT_ISSUED = {"078051120", "219099999", "123456789", "457555462"}


def ssn_valid(text: str) -> bool:
    digits = re.sub(r"[ -]", "", text)
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return not (
        area in ("000", "666")
        or area[0] == "9"
        or group == "00"
        or serial == "0000"
        or digits in _SSN_NOT_ISSUED
        or len(set(digits)) == 1
    )


def _b64json(part: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return isinstance(json.loads(raw), dict)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False


def jwt_valid(text: str) -> bool:
    header, payload, *_ = text.split(".")
    return _b64json(header) and _b64json(payload)


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_VERSIONISH = re.compile(r"v?\d+(?:[._-]\d+)+[a-z0-9.-]*")


def generic_secret_valid(value: str) -> bool:
    """A value assigned to a key-like name that looks random, not like a word, version, path,
    git SHA or UUID."""
    value = value.strip("\"'")
    if len(value) < 10 or _UUID.fullmatch(value) or _VERSIONISH.fullmatch(value):
        return False
    if _HEX.fullmatch(value) and len(value) in (7, 8, 12, 40, 64):
        return False  # git and content hashes
    if value.isalpha() and (value.islower() or value.isupper()):
        return False  # a plain word
    if "/" in value and value.count("/") >= 2 and "." in value:
        return False  # a path or URL
    has_digit = any(c.isdigit() for c in value)
    return shannon_entropy(value) >= (3.5 if has_digit else 4.0)


_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}\b|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b")


def phone_valid(text: str) -> bool:
    """International numbers with their `+`; without it, only North American numbers
    (national formats of other countries look too much like other numbers)."""
    digits = sum(c.isdigit() for c in text)
    if not 8 <= digits <= 15 or _DATE.match(text):
        return False
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


# -- the built-in detectors ----------------------------------------------------------------


def _d(
    id: str,
    group: str,
    pattern: str,
    keywords: Iterable[str] = (),
    folded: Iterable[str] = (),
    validate: Validator | None = None,
    span: int = 0,
    flags: int = 0,
) -> Detector:
    return Detector(
        id, group, re.compile(pattern, flags), tuple(keywords), tuple(folded), validate, span
    )


BUILTIN: tuple[Detector, ...] = (
    # Whole blocks first, so their contents are not reported as something else.
    _d("private-key", "secrets",
       r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
       r"(?:[\s\S]*?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|[\s\S]*\Z)"
       r"|PuTTY-User-Key-File-\d+:[\s\S]*?(?:Private-MAC: [0-9a-fA-F]+|\Z)",
       keywords=("PRIVATE KEY", "PuTTY-User-Key-File")),
    _d("aws-access-key", "secrets", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
       keywords=("AKIA", "ASIA", "ABIA", "ACCA", "A3T")),
    _d("aws-secret-key", "secrets",
       r"aws.{0,25}?(?:secret|key|pwd|pass|token).{0,25}?[\"'=:\s]\s*([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
       folded=("aws",), span=1, flags=re.IGNORECASE),
    _d("aws-bedrock-key", "secrets",
       r"\bABSK[A-Za-z0-9+/]{109,269}={0,2}|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%&._-]*",
       keywords=("ABSK", "bedrock-api-key-")),
    _d("github-token", "secrets", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b",
       keywords=("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    _d("github-fine-grained-token", "secrets", r"\bgithub_pat_[A-Za-z0-9_]{82}\b",
       keywords=("github_pat_",)),
    _d("gitlab-token", "secrets", r"\bglpat-[A-Za-z0-9_-]{20,}", keywords=("glpat-",)),
    _d("slack-token", "secrets",
       r"\bxox[abposre]-[0-9]{8,13}-[A-Za-z0-9-]{8,}|\bxapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+",
       keywords=("xox", "xapp-")),
    _d("slack-webhook", "secrets",
       r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{8,}"
       r"(?:/[A-Za-z0-9+/_-]+)*", keywords=("hooks.slack.com",)),
    _d("stripe-key", "secrets", r"\b(?:sk|rk|pk)_(?:test|live|prod)_[A-Za-z0-9]{10,99}\b",
       keywords=("_live_", "_test_", "_prod_")),
    _d("anthropic-key", "secrets", r"\bsk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_-]{80,}",
       keywords=("sk-ant-",)),
    _d("openai-key", "secrets",
       r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]*T3BlbkFJ[A-Za-z0-9_-]+"
       r"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}",
       keywords=("T3BlbkFJ", "sk-proj-", "sk-svcacct-", "sk-admin-")),
    _d("huggingface-token", "secrets", r"\b(?:hf|api_org)_[A-Za-z0-9]{34,}\b",
       keywords=("hf_", "api_org_")),
    _d("google-api-key", "secrets", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])",
       keywords=("AIza",)),
    _d("azure-client-secret", "secrets",
       r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
       keywords=("Q~",)),
    _d("jwt", "secrets", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
       keywords=("eyJ",), validate=jwt_valid),
    _d("url-credentials", "secrets",
       r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://([^\s:@/\"'<>]{1,100}:[^\s@/\"'<>]{1,200})@",
       keywords=("://",), span=1),
    _d("generic-secret", "secrets",
       r"\b[A-Za-z0-9_.-]{0,30}(?:access|auth|api|credential|creds|key|passw(?:or)?d|pwd"
       r"|secret|token)[A-Za-z0-9_.-]{0,30}[\"']?\s{0,5}(?:=|:|:=|=>|\bis\b)\s{0,5}[\"']?"
       r"([A-Za-z0-9_./+=~@$!%*#?&-]{10,150})",
       folded=("access", "auth", "api", "cred", "key", "pass", "pwd", "secret", "token"),
       validate=generic_secret_valid, span=1, flags=re.IGNORECASE),
    # Personal data
    _d("email", "pii", r"(?<![/\w.%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
       r"\.[A-Za-z]{2,24}\b", keywords=("@",)),
    _d("payment-card", "pii", r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-])", validate=card_valid),
    _d("iban", "pii", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
       validate=iban_valid),
    _d("us-ssn", "pii", r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])", validate=ssn_valid),
    _d("phone", "pii", r"(?<![\w+.:-])\+?\(?\d[\d ().-]{6,18}\d(?![\w.:-])",
       validate=phone_valid),
)  # fmt: skip

GROUPS = {
    "secrets": [d.id for d in BUILTIN if d.group == "secrets"],
    "pii": [d.id for d in BUILTIN if d.group == "pii"],
}
BY_ID = {d.id: d for d in BUILTIN}


def custom_keywords(id: str, words: Iterable[str]) -> Detector:
    """Whole words or phrases, any case (e.g. code names)."""
    words = sorted(set(words), key=len, reverse=True)
    pattern = "|".join(re.escape(w) for w in words)
    return Detector(
        id,
        "custom",
        re.compile(rf"(?<!\w)(?:{pattern})(?!\w)", re.IGNORECASE),
        keywords_folded=tuple(w.lower() for w in words),
    )


def custom_pattern(id: str, pattern: str) -> Detector:
    """A regular expression (re.error if it is not one)."""
    return Detector(id, "custom", re.compile(pattern))


def scan(text: str, detectors: Iterable[Detector]) -> list[Finding]:
    """Every finding in `text`, earliest first; overlaps resolved in favour of the earlier,
    then the longer, then the detector listed first."""
    found: list[tuple[int, int, int, str]] = []
    folded: str | None = None
    for order, d in enumerate(detectors):
        if d.keywords and not any(k in text for k in d.keywords):
            continue
        if d.keywords_folded:
            if folded is None:
                folded = text.lower()
            if not any(k in folded for k in d.keywords_folded):
                continue
        for m in d.regex.finditer(text):
            if d.validate is not None and not d.validate(m.group(d.span_group)):
                continue
            start, end = m.span(d.span_group)
            if end > start:
                found.append((start, -(end - start), order, d.id))
    found.sort()
    findings: list[Finding] = []
    last_end = -1
    for start, negative_length, _order, kind in found:
        if start >= last_end:
            findings.append(Finding(kind, start, start - negative_length))
            last_end = start - negative_length
    return findings


def redact_text(
    text: str, detectors: Iterable[Detector], replacement: str
) -> tuple[str, list[Finding]]:
    """`text` with every finding replaced by `replacement` ({type} names the detector)."""
    findings = scan(text, detectors)
    if not findings:
        return text, findings
    out, position = [], 0
    for f in findings:
        out.append(text[position : f.start])
        out.append(replacement.replace("{type}", f.type))
        position = f.end
    out.append(text[position:])
    return "".join(out), findings
