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
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import ClassVar

import phonenumbers

try:  # optional accelerator: the same findings, keywords found in one pass (see KeywordIndex)
    import hyperscan
except ImportError:  # pragma: no cover - exercised where hyperscan has no wheel
    hyperscan = None

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
    # Where a match can lie around a keyword: (before, after) in characters, after=None: to
    # the end. The regex then runs only in those windows, not over the whole text.
    window: tuple[int, int | None] | None = None
    # Number-shaped detectors run only around runs of digits holding this many digits.
    digits: tuple[int, int] | None = None
    after_letters: bool = False  # also runs glued to letters before them (IBAN: "GB82 …")
    anchored: bool = False  # every match starts at a keyword: try only there


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
    groups = tuple(len(g) for g in re.split(r"[ -]+", text))
    if len(groups) > 1 and not _card_grouping(groups):
        return False  # "415 555 0100 4111 1111" is a phone number and more, not a card
    return bool(_CARD_PREFIX.match(digits)) and luhn_valid(digits)


def _card_grouping(groups: tuple[int, ...]) -> bool:
    """How cards are written: fours (the last group may be shorter), or 4-6-5 / 4-6-4."""
    if groups in ((4, 6, 5), (4, 6, 4)):
        return True
    return all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4


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


# a North American number: optional 1, area code and exchange not starting with 0 or 1
_NANP_SHAPE = re.compile(r"1?[2-9]\d\d[2-9]\d{6}")


def phone_valid(text: str) -> bool:
    """International numbers with their `+`; without it, only North American numbers
    (national formats of other countries look too much like other numbers)."""
    digits = sum(c.isdigit() for c in text)
    if not 8 <= digits <= 15 or _DATE.match(text):
        return False
    if not text.startswith("+") and not _NANP_SHAPE.fullmatch(re.sub(r"\D", "", text)):
        return False  # the cheap test first: libphonenumber costs about a millisecond
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
    window: tuple[int, int | None] | None = None,
    digits: tuple[int, int] | None = None,
    after_letters: bool = False,
    anchored: bool = False,
) -> Detector:
    return Detector(id, group, re.compile(pattern, flags | re.ASCII), tuple(keywords),
                    tuple(folded), validate, span, window, digits, after_letters,
                    anchored)  # fmt: skip


BUILTIN: tuple[Detector, ...] = (
    # Whole blocks first, so their contents are not reported as something else.
    _d("private-key", "secrets",
       r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
       # the body up to its own END: never across the dashes of another BEGIN or END
       r"(?:(?:[^-]|-(?!----)){0,65536}?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
       # no END line (a truncated paste): the header lines and base64 lines that follow
       r"|(?:\r?\n(?:[A-Za-z0-9+/=]+(?=\r?\n|\Z)|[A-Za-z-]+: [^\r\n]*))*)"
       r"|PuTTY-User-Key-File-\d+:[\s\S]*?(?:Private-MAC: [0-9a-fA-F]+|\Z)",
       keywords=("-----BEGIN", "PuTTY-User-Key-File"), anchored=True),
    _d("aws-access-key", "secrets", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
       keywords=("AKIA", "ASIA", "ABIA", "ACCA", "A3T"), window=(4, 24), anchored=True),
    _d("aws-secret-key", "secrets",
       r"aws.{0,25}?(?:secret|key|pwd|pass|token).{0,25}?[\"'=:\s]\s*([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
       folded=("aws",), span=1, flags=re.IGNORECASE, window=(0, 160), anchored=True),
    _d("aws-bedrock-key", "secrets",
       r"\bABSK[A-Za-z0-9+/]{109,269}={0,2}|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%&._-]*",
       keywords=("ABSK", "bedrock-api-key-"), window=(4, 400), anchored=True),
    _d("github-token", "secrets", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b",
       keywords=("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), window=(4, 44), anchored=True),
    _d("github-fine-grained-token", "secrets", r"\bgithub_pat_[A-Za-z0-9_]{82}\b",
       keywords=("github_pat_",), window=(4, 96), anchored=True),
    _d("gitlab-token", "secrets", r"\bglpat-[A-Za-z0-9_-]{20,}", keywords=("glpat-",),
       window=(4, 200), anchored=True),
    _d("slack-token", "secrets",
       r"\bxox[abposre]-[0-9]{8,13}-[A-Za-z0-9-]{8,}|\bxapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+",
       keywords=("xox", "xapp-"), window=(4, 300), anchored=True),
    _d("slack-webhook", "secrets",
       r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{8,}"
       r"(?:/[A-Za-z0-9+/_-]+)*", keywords=("hooks.slack.com",), window=(12, 400)),
    _d("stripe-key", "secrets", r"\b(?:sk|rk|pk)_(?:test|live|prod)_[A-Za-z0-9]{10,99}\b",
       keywords=("_live_", "_test_", "_prod_"), window=(8, 120)),
    _d("anthropic-key", "secrets", r"\bsk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_-]{80,}",
       keywords=("sk-ant-",), window=(4, 600), anchored=True),
    _d("openai-key", "secrets",
       r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]*T3BlbkFJ[A-Za-z0-9_-]+"
       r"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}",
       keywords=("T3BlbkFJ", "sk-proj-", "sk-svcacct-", "sk-admin-"), window=(200, 400)),
    _d("huggingface-token", "secrets", r"\b(?:hf|api_org)_[A-Za-z0-9]{34,}\b",
       keywords=("hf_", "api_org_"), window=(8, 200), anchored=True),
    _d("google-api-key", "secrets", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])",
       keywords=("AIza",), window=(4, 44), anchored=True),
    _d("azure-client-secret", "secrets",
       r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
       keywords=("Q~",), window=(8, 44)),
    _d("jwt", "secrets", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
       keywords=("eyJ",), validate=jwt_valid, window=(4, 16384), anchored=True),
    _d("url-credentials", "secrets",
       r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://([^\s:@/\"'<>]{1,100}:[^\s@/\"'<>]{1,200})@",
       keywords=("://",), span=1, window=(25, 330)),
    _d("generic-secret", "secrets",
       r"(?:access|auth|api|credential|creds|key|passw(?:or)?d|pwd"
       r"|secret|token)[A-Za-z0-9_.-]{0,30}[\"']?\s{0,5}(?:=|:|:=|=>|\bis\b)\s{0,5}[\"']?"
       r"([A-Za-z0-9_./+=~@$!%*#?&-]{10,150})",
       folded=("access", "auth", "api", "cred", "key", "pass", "pwd", "secret", "token"),
       validate=generic_secret_valid, span=1, flags=re.IGNORECASE, window=(0, 260), anchored=True),
    # Personal data
    _d("email", "pii",
       r"(?<![/\w.%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
       r"\.[A-Za-z]{2,24}\b", keywords=("@",), window=(70, 260)),
    _d("payment-card", "pii", r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-])", validate=card_valid,
       digits=(13, 19), window=(3, 3)),
    _d("iban", "pii", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
       validate=iban_valid, digits=(7, 34), after_letters=True,
       window=(34, 34)),
    _d("us-ssn", "pii", r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])", validate=ssn_valid,
       digits=(9, 9), window=(3, 3)),
    _d("phone", "pii", r"(?<![\w+.:-])\+?\(?\d[\d ().-]{6,18}\d(?![\w.:-])",
       validate=phone_valid, digits=(8, 15), window=(3, 3)),
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
        window=(1, 1 + max(len(w) for w in words)),
        anchored=True,
    )


def custom_pattern(id: str, pattern: str) -> Detector:
    """A regular expression (re.error if it is not one)."""
    return Detector(id, "custom", re.compile(pattern))


_NOT_DIGITS = str.maketrans("", "", " ().-")
# every number-shaped detector needs one; maximal, since a run may hold several numbers
_DIGIT_RUN = re.compile(r"[0-9][0-9 ().-]{5,}[0-9]")  # 7 characters at least


class _Text:
    """A text with what several detectors share computed once: the lower-cased text, and the
    runs of digits the number-shaped detectors start from."""

    def __init__(self, text: str, keyword_hits: dict[int, list[tuple[int, int]]] | None) -> None:
        self.text = text
        self.keyword_hits = keyword_hits  # by detector position, when an index found them
        self._folded: str | None = None
        # start, end, number of digits, and whether a letter sits right before the run
        self._digit_runs: list[tuple[int, int, int, bool]] | None = None

    @property
    def folded(self) -> str:
        if self._folded is None:
            self._folded = self.text.lower()
        return self._folded

    @property
    def digit_runs(self) -> list[tuple[int, int, int, bool]]:
        if self._digit_runs is None:
            runs = []
            text = self.text
            for m in _DIGIT_RUN.finditer(text):
                run, start = m.group(), m.start()
                digits = len(run.translate(_NOT_DIGITS))
                if digits < 7:  # fewer than any number-shaped detector needs
                    continue
                # glued: a bare number inside a word ("abc123..."); with a separator in the
                # run, what follows the separator can still be a number of its own
                glued = (
                    start > 0
                    and (text[start - 1].isalpha() or text[start - 1] == "_")
                    and digits == len(run)
                )
                runs.append((start, m.end(), digits, glued))
            self._digit_runs = runs
        return self._digit_runs

    def starts(self, d: Detector, position: int) -> list[int] | None:
        """Where an anchored detector's keywords start (None: use windows instead)."""
        if self.keyword_hits is not None:
            return sorted({a for a, _ in self.keyword_hits.get(position, ())})
        if d.keywords_folded and len(self.folded) != len(self.text):
            return None  # lower-casing changed the length: positions drift
        found: set[int] = set()
        for keywords, haystack in ((d.keywords, self.text), (d.keywords_folded, None)):
            haystack = haystack if haystack is not None else self.folded
            for k in keywords:
                i = haystack.find(k)
                while i >= 0:
                    found.add(i)
                    i = haystack.find(k, i + 1)
        return sorted(found)

    def windows(self, d: Detector, position: int) -> list[tuple[int, int]]:
        """Where `d` must look: merged windows around its keywords or digit runs; the whole
        text when it has neither; nothing when its keywords do not occur."""
        n = len(self.text)
        if d.digits:
            low = d.digits[0]  # more digits than its maximum still count: the run may
            # hold several numbers
            runs = [(a, b) for a, b, digits, glued in self.digit_runs
                    if low <= digits and (d.after_letters or not glued)]  # fmt: skip
            return _merge(runs, d.window, n)
        if not d.keywords and not d.keywords_folded:
            return [(0, n)]
        if self.keyword_hits is not None:
            hits = sorted(self.keyword_hits.get(position, ()))
            if not hits or d.window is None:
                return [(0, n)] if hits else []
            return _merge(hits, d.window, n)
        hits: list[tuple[int, int]] = []
        for keywords, haystack in ((d.keywords, self.text), (d.keywords_folded, None)):
            if not keywords:
                continue
            if haystack is None:
                haystack = self.folded
                if len(haystack) != n:  # lower-casing changed the length: positions drift
                    return [(0, n)] if any(k in haystack for k in keywords) else []
            for k in keywords:
                i = haystack.find(k)
                while i >= 0:
                    hits.append((i, i + len(k)))
                    i = haystack.find(k, i + 1)
        if not hits or d.window is None:
            return [(0, n)] if hits else []
        return _merge(sorted(hits), d.window, n)


def _merge(
    spans: list[tuple[int, int]], window: tuple[int, int | None] | None, n: int
) -> list[tuple[int, int]]:
    before, after = window or (0, 0)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        a, b = max(0, start - before), n if after is None else min(n, end + after)
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


class KeywordIndex:
    """Every keyword of a detector set, found in one pass by Hyperscan.

    Checking each keyword with str.find costs a pass over the text per keyword (34 for the
    built-in detectors); Hyperscan finds them all in one pass at several GB/s. Used for ASCII
    texts of MIN_TEXT characters and more; it only locates keywords, so the findings are the
    same as without it. One scratch space per thread: bodies are also redacted off the loop.
    """

    MIN_TEXT = 4096
    _cache: ClassVar[dict[int, tuple[tuple[Detector, ...], KeywordIndex]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, detectors: tuple[Detector, ...]) -> None:
        expressions, flags = [], []
        self.meta: list[tuple[int, int]] = []  # expression id -> (detector position, length)
        for position, d in enumerate(detectors):
            for words, flag in ((d.keywords, 0), (d.keywords_folded, hyperscan.HS_FLAG_CASELESS)):
                for word in words:
                    expressions.append(b"".join(b"\\x%02x" % c for c in word.encode()))
                    flags.append(flag)
                    self.meta.append((position, len(word)))
        self.database = hyperscan.Database() if expressions else None
        if self.database is not None:
            self.database.compile(
                expressions=expressions,
                ids=list(range(len(expressions))),
                elements=len(expressions),
                flags=flags,
            )
        self._local = threading.local()

    @classmethod
    def of(cls, detectors: tuple[Detector, ...]) -> KeywordIndex:
        key = id(detectors)
        entry = cls._cache.get(key)
        if entry is None or entry[0] is not detectors:
            with cls._lock:
                if len(cls._cache) > 256:
                    cls._cache.clear()
                entry = (detectors, cls(detectors))
                cls._cache[key] = entry
        return entry[1]

    def hits(self, data: bytes) -> dict[int, list[tuple[int, int]]]:
        found: dict[int, list[tuple[int, int]]] = {}
        if self.database is None:
            return found
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self.database)
        meta = self.meta

        def on_match(expression: int, _start: int, end: int, _flags: int, _context) -> None:
            position, length = meta[expression]
            found.setdefault(position, []).append((end - length, end))

        self.database.scan(data, match_event_handler=on_match, scratch=scratch)
        return found


def scan(text: str, detectors: tuple[Detector, ...]) -> list[Finding]:
    """Every finding in `text`, earliest first; overlaps resolved in favour of the earlier,
    then the longer, then the detector listed first."""
    found: list[tuple[int, int, int, str]] = []
    hits = None
    if hyperscan is not None and len(text) >= KeywordIndex.MIN_TEXT and text.isascii():
        hits = KeywordIndex.of(detectors).hits(text.encode("ascii"))
    shared = _Text(text, hits)
    for order, d in enumerate(detectors):
        starts = shared.starts(d, order) if d.anchored else None
        if starts is not None:
            matches = (m for m in map(d.regex.match, repeat(text), starts) if m)
        else:
            matches = (m for a, b in shared.windows(d, order)
                       for m in _valid_matches(d, text, a, b))  # fmt: skip
        for m in matches:
            if starts is not None and not _valid(d, m):  # (windows yield valid ones only)
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


def _valid_matches(d: Detector, text: str, start: int, end: int) -> Iterator[re.Match]:
    """Like finditer, but a match that fails validation is tried again cut short at each
    whitespace ("+1 415 555 0100  4111 1111 1111 1111" first matches the phone pattern as a
    whole), and then the search goes on from the next character, not after the match
    ("2 4111 1111 1111 1111" must still find the card after the first digit)."""
    position = start
    while position < end and (m := d.regex.search(text, position, end)):
        found = m if _valid(d, m) else _shorter_valid(d, text, m)
        if found is not None:
            yield found
            position = max(found.end(), found.start() + 1)
        else:
            position = m.start() + 1


def _valid(d: Detector, m: re.Match) -> bool:
    return d.validate is None or d.validate(m.group(d.span_group))


def _shorter_valid(d: Detector, text: str, m: re.Match) -> re.Match | None:
    a, b = m.span()
    for cut in range(b - 1, a, -1):  # longest first
        if text[cut].isspace() and not text[cut - 1].isspace():
            short = d.regex.fullmatch(text, a, cut)
            if short is not None and _valid(d, short):
                return short
    return None


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
