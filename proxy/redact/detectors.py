"""What a detector is, and the scanner that runs detectors over prompt text and redacts.

Each detector is a regular expression, optionally gated by keywords (a cheap `in` test that
skips the regex on text that cannot match) and followed by a validator that rejects
near-misses. The built-in ones live in secret_detectors.py and personal_detectors.py (listed
together in builtin.py); their patterns are this project's own, written from the published
formats of each token and identifier.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Self

try:  # optional accelerator: the same findings, keywords found in one pass (see KeywordIndex)
    import hyperscan
except ImportError:  # pragma: no cover - exercised where hyperscan has no wheel
    hyperscan = None

Validator = Callable[[str], bool]
# A test of a candidate in its surroundings: (whole text, start, end) -> keep it. For what
# the value alone cannot tell: "order #4155550132" is no phone, a bare SSN needs "SSN" near.
ContextCheck = Callable[[str, int, int], bool]


@dataclass(frozen=True, slots=True)
class Detector:
    id: str
    group: str  # secrets | pii | pii.extended (imprecise: only when named) | custom
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
    context: ContextCheck | None = None  # run after `validate`, on the span to redact
    family: str = ""  # a finer group a profile can name too (pii.contact, pii.network...)
    # A Hyperscan expression (ASCII, a non-ASCII character read as "?") that a part of every
    # match of `regex` matches too, lookarounds left out. Where KeywordIndex ran, a detector
    # with no keywords runs only around its matches' ends, `window` = (the longest match,
    # what the lookaheads read after it); one with keywords skips the windows around them
    # in which none ends (most windows of a street's words hold no street).
    hint: str = ""
    # For a number-shaped detector whose every match ends where its run of digits does, and
    # where this matches (es-dni: seven digits before, its letter after): the runs where it
    # does not need no search (es-dni: 11,000 windows per 2.1 MB, none matching, to 2).
    run_then: re.Pattern[str] | None = None
    # For an anchored detector: (keyword, a Hyperscan expression of fixed width, ASCII, that
    # the text matches right after the keyword wherever a match starts there). Where
    # KeywordIndex ran, only those hits count: "--" of a "-----" line starts no option.
    follows: tuple[tuple[str, str], ...] = ()
    # What its findings are called, when not its id: detectors of one kind of value in
    # different shapes (a name after "Name:", in a CSV cell, before 様) report it alike, so
    # markers, placeholders, metrics and audit lines say "person-name" whichever found it.
    kind: str = ""
    # For a number-shaped detector: whether a run holding just digits[0] digits, the fewest
    # a match needs, can be left unsearched (text, run start, run end); phone: a date run
    # glued to a word, "2024-01-15T10:00" (3,800 windows per 2.1 MB, none matching).
    run_skip: Callable[[str, int, int], bool] | None = None

    @property
    def finds(self) -> str:
        """The type of its findings."""
        return self.kind or self.id


@dataclass(frozen=True, slots=True)
class Finding:
    type: str
    start: int
    end: int


# -- building detectors ---------------------------------------------------------------------


def detector(
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
    context: ContextCheck | None = None,
    family: str = "",
    hint: str = "",
    run_then: str = "",
    follows: Iterable[tuple[str, str]] = (),
    kind: str = "",
    run_skip: Callable[[str, int, int], bool] | None = None,
) -> Detector:
    """A detector from its pattern (compiled ASCII-only) and the hints that keep it cheap."""
    then = re.compile(run_then, re.ASCII) if run_then else None
    return Detector(id, group, re.compile(pattern, flags | re.ASCII), tuple(keywords),
                    tuple(folded), validate, span, window, digits, after_letters,
                    anchored, context, family, hint, then, tuple(follows), kind,
                    run_skip)  # fmt: skip


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


# every number-shaped detector needs one; maximal, since a run may hold several numbers
_DIGIT_RUN = re.compile(r"[0-9][0-9 ().-]{5,}[0-9]")  # 7 characters at least
# (the runs are read in the text's ASCII bytes: their methods are faster than str's, and
# a bytes slice needs no look for the widest character; the rest of the text is "?")
_RUN_BYTES, _SEPARATORS_B = b"0123456789 ().-", b" ().-"
_RUN_CHARS = _RUN_BYTES.decode()
_BEFORE_RUN = re.compile(rb"[^0-9 ().-][0-9 ().-]*\Z")  # (\Z: at endpos)
# The same runs, those of seven digits and more, for Hyperscan (see KeywordIndex): it reports
# where a match ends, so a run is matched with the character after it, which ends it.
_DIGIT_RUN_END = rb"[0-9](?:[ ().-]*[0-9]){6,}[ ().-]*[^0-9 ().-]"


def _runs_ending(data: bytes, ends: list[int]) -> Iterator[tuple[int, bytes]]:
    """The runs of their characters that end at `ends`, and where each starts (bytes.rstrip
    finds a short run's start in C, not a loop per character; a long one is left to a regex,
    three times faster a character than rstrip)."""
    for end in ends:
        low = end - 64 if end > 64 else 0
        chunk = data[low:end]
        kept = chunk.rstrip(_RUN_BYTES)
        if kept or low == 0:
            yield low + len(kept), chunk[len(kept) :]
            continue
        width = 256
        while True:
            low = max(0, end - width)
            before = _BEFORE_RUN.search(data, low, end)
            if before is not None or low == 0:
                start = low if before is None else before.start() + 1
                yield start, data[start:end]
                break
            width *= 4  # a run longer than the look: look four times as far


def _literal(data: bytes) -> bytes:
    """A Hyperscan expression that matches `data` as it is."""
    return b"".join(b"\\x%02x" % c for c in data)


# what redaction writes: "[REDACTED:kind]" and restorable placeholders ("<AWS_KEY_1>")
# (two regexes, each with a literal start `re` looks for fast: the alternation of both, tried
# at every character, took 1.4 ms a 64 KB; a placeholder never holds "[" or "]", so one inside
# "[REDACTED ...]" is the only kind of overlap)
_BRACKETED = re.compile(r"\[REDACTED[^\]\n]{0,40}\]")
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")
_AFTER_ANY = 1 << 62  # bisects past every span that starts at a position


def _inside(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    """`span` lies in one of `spans` (sorted, apart)."""
    i = bisect.bisect_right(spans, (span[0], _AFTER_ANY)) - 1
    return i >= 0 and spans[i][0] <= span[0] and span[1] <= spans[i][1]


class SharedText:
    """A text with what several detectors share computed once: the lower-cased text, and the
    runs of digits the number-shaped detectors start from."""

    def __init__(
        self,
        text: str,
        keyword_hits: dict[int, list[tuple[int, int]]] | None,
        run_ends: list[int] | None = None,
        hinted: bool = False,
        data: bytes | None = None,
        hint_ends: dict[int, list[int]] | None = None,
    ) -> None:
        self.text = text
        self._data = data  # its ASCII bytes, the rest as "?", when KeywordIndex made them
        self.keyword_hits = keyword_hits  # by detector position, when an index found them
        # where the runs of seven digits and more end, when KeywordIndex found them
        self._run_ends = run_ends
        # the hints' matches are in keyword_hits (see Detector.hint), or for a detector with
        # keywords, where they end in hint_ends
        self.hinted = hinted
        self.hint_ends = hint_ends or {}
        self._folded: str | None = None
        # start, end, number of digits, and whether a letter sits right before the run
        self._digit_runs: list[tuple[int, int, int, bool]] | None = None
        self._long_runs: list[tuple[int, int, int, bool]] | None = None
        self._markers: list[tuple[int, int]] | None = None

    @property
    def markers(self) -> list[tuple[int, int]]:
        """The spans of what redaction wrote ("[REDACTED:kind]", "<AWS_KEY_1>"), earliest
        first: found once per text, not once per detector (0.8 ms per 64 KB of code each)."""
        if self._markers is None:
            text = self.text
            bracketed = [m.span() for m in _BRACKETED.finditer(text)] if "[REDACTED" in text else []
            markers = bracketed
            if "<" in text:
                placeholders = [m.span() for m in _PLACEHOLDER.finditer(text)]
                markers = sorted(bracketed + [p for p in placeholders if not _inside(p, bracketed)])
            self._markers = markers
        return self._markers

    def in_marker(self, position: int) -> bool:
        return bool(self.markers) and _inside((position, position + 1), self.markers)

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
            if self._run_ends is None:
                pieces = ((m.start(), m.group().encode()) for m in _DIGIT_RUN.finditer(text))
            else:
                data = self._data or text.encode("ascii", "replace")
                pieces = _runs_ending(data, self._run_ends)
            for start, run in pieces:
                bare = run.isdigit()
                if not bare:  # from its first digit to its last: no separator at its ends
                    start += len(run) - len(run.lstrip(_SEPARATORS_B))
                    run = run.strip(_SEPARATORS_B)
                    bare = run.isdigit()
                digits = len(run) if bare else len(run.translate(None, _SEPARATORS_B))
                if digits < 7:  # fewer than any number-shaped detector needs
                    continue
                # glued: a bare number inside a word ("abc123..."); with a separator in the
                # run, what follows the separator can still be a number of its own
                glued = bare and start > 0 and (text[start - 1].isalpha() or text[start - 1] == "_")
                runs.append((start, start + len(run), digits, glued))
            self._digit_runs = runs
        return self._digit_runs

    _LONG = 9  # (most runs hold fewer digits: dates, times, amounts)

    def _runs_of(self, low: int) -> list[tuple[int, int, int, bool]]:
        """The digit runs, those of fewer than _LONG digits left out when `low` is _LONG or
        more: kept once, not filtered again by each detector that needs long runs only."""
        if low < self._LONG:
            return self.digit_runs
        if self._long_runs is None:
            self._long_runs = [r for r in self.digit_runs if r[2] >= self._LONG]
        return self._long_runs

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
            after_letters, skip, text = d.after_letters, d.run_skip, self.text
            runs = [(a, b) for a, b, digits, glued in self._runs_of(low)
                    if low <= digits and (after_letters or not glued)
                    and (skip is None or digits != low or not skip(text, a, b))]  # fmt: skip
            if d.run_then is not None:
                then, text = d.run_then.match, self.text
                runs = [(a, b) for a, b in runs if then(text, b)]
            return _merge(runs, d.window, n)
        if not d.keywords and not d.keywords_folded:
            if d.hint and self.hinted and self.keyword_hits is not None:
                return _merge(sorted(self.keyword_hits.get(position, ())), d.window, n)
            return [(0, n)]
        if self.keyword_hits is not None:
            hits = sorted(self.keyword_hits.get(position, ()))
            if not hits or d.window is None:
                windows = [(0, n)] if hits else []
            else:
                windows = _merge(hits, d.window, n)
            if d.hint and self.hinted:
                windows = _holding(windows, self.hint_ends.get(position, []))
            return windows
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
    """The windows of `window` (before, after) around spans sorted by start, those that touch
    merged, within the text. (Clamped once at the ends: only the first window can start
    before the text, and only the last end after it.)"""
    if not spans:
        return []
    before, after = window or (0, 0)
    if after is None:  # to the end: one window
        return [(max(0, spans[0][0] - before), n)]
    merged: list[tuple[int, int]] = []
    top_a, top_b = spans[0][0] - before, spans[0][1] + after
    for start, end in spans:
        if start - before <= top_b:
            if end + after > top_b:
                top_b = end + after
        else:
            merged.append((top_a, top_b))
            top_a, top_b = start - before, end + after
    merged.append((top_a, top_b))
    merged[0] = (max(0, merged[0][0]), merged[0][1])
    merged[-1] = (merged[-1][0], min(n, merged[-1][1]))
    return merged


def _holding(windows: list[tuple[int, int]], ends: list[int]) -> list[tuple[int, int]]:
    """The windows (a, b) in which one of `ends` (sorted) lies, a < end <= b: a match found
    in a window ends in it, and a part of it that a hint matches too."""
    kept = []
    for a, b in windows:
        i = bisect.bisect_right(ends, a)
        if i < len(ends) and ends[i] <= b:
            kept.append((a, b))
    return kept


class _PerDetectorSet:
    """Built once per tuple of detectors (a profile keeps its tuple for its life), kept in a
    bounded cache of the subclass's own; `of` gives the one for a tuple."""

    _cache: ClassVar[dict[int, tuple[tuple[Detector, ...], Any]]]
    _lock: ClassVar[threading.Lock]

    @classmethod
    def of(cls, detectors: tuple[Detector, ...]) -> Self:
        key = id(detectors)
        entry = cls._cache.get(key)
        if entry is None or entry[0] is not detectors:
            with cls._lock:
                if len(cls._cache) > 256:
                    cls._cache.clear()
                entry = (detectors, cls(detectors))
                cls._cache[key] = entry
        return entry[1]


class KeywordIndex(_PerDetectorSet):
    """Every keyword of a detector set, found in one pass by Hyperscan.

    Checking each keyword with str.find costs a pass over the text per keyword (34 for the
    built-in detectors); Hyperscan finds them all in one pass at several GB/s. Used for texts
    of MIN_TEXT characters and more; it only locates keywords, so the findings are the same as
    without it (but for non-ASCII letters in a keyword, which it compares case-sensitively).
    The same pass finds where the runs of digits end (SharedText.digit_runs): a Python loop
    over a log dense with digits took 5 ms a 64 KB.
    """

    # With some 250 keywords (issue 21), one Hyperscan pass beats the str.find passes from
    # prompts of a few hundred characters: 350 against 570 us at about 550 characters.
    MIN_TEXT = 256
    HINTS_EVERY = 128  # prompts hold one in 300 characters at most (bench/redaction_bench.py)
    _cache: ClassVar[dict[int, tuple[tuple[Detector, ...], KeywordIndex]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, detectors: tuple[Detector, ...]) -> None:
        # A text with a few accents or dashes is scanned with those characters as "?": one
        # byte a character, so no offsets to convert. Keywords that hold such characters (or
        # "?") are found in the UTF-8 by a second database, and their few hits converted.
        # A keyword several detectors share is one expression: one call per hit, not one each.
        narrow: dict[tuple[bytes, int, int, bool], list[int]] = {}
        wide: dict[tuple[bytes, int, int, bool], list[int]] = {}
        hints: list[tuple[bytes, int, tuple[int, ...], int, bool]] = []
        for position, d in enumerate(detectors):
            follows = dict(d.follows) if d.anchored else {}
            for words, flag in ((d.keywords, 0), (d.keywords_folded, hyperscan.HS_FLAG_CASELESS)):
                for word in words:
                    data = word.encode()
                    expression, from_start = _literal(data), False
                    keep = narrow if word.isascii() and "?" not in word else wide
                    if word in follows and keep is narrow:  # found from its start
                        expression += b"(?:" + follows[word].encode("ascii") + b")"
                        from_start = True
                    key = (expression, flag, len(data), from_start)  # bytes, not chars
                    keep.setdefault(key, []).append(position)
            if d.hint:  # ASCII: see Detector.hint
                hints.append((d.hint.encode("ascii"), 0, (position,), 0, False))  # (end, end)
        self.keyworded_hints = {p for p, d in enumerate(detectors)
                                if d.hint and (d.keywords or d.keywords_folded)}  # fmt: skip
        # and, for the number-shaped detectors, the ends of runs of digits (SharedText)
        self.runs = any(d.digits for d in detectors)
        self.narrow = Keywords(_grouped(narrow), with_runs=self.runs)
        self.wide = Keywords(_grouped(wide), with_runs=False)
        self.hints = Keywords(hints, with_runs=False)

    def shared(self, text: str) -> SharedText:
        """The text with its keyword hits and, when a detector is number-shaped, its runs of
        digits: all found in one pass (two when the text and some keywords are not ASCII)."""
        data = ascii_bytes(text)  # (the text itself when it is ASCII)
        found, ends = self.narrow.hits(data)
        if not text.isascii():
            for position, spans in self.wide.hits_in(text).items():
                found.setdefault(position, []).extend(spans)
        # A text dense with hints ("1.2.3.4,1.2.3.4...") would cost a call each: past
        # one hint in HINTS_EVERY characters, the hinted detectors read the whole text.
        hinted = self.hints.hits_up_to(data, len(text) // self.HINTS_EVERY + 32)
        hint_ends = {}
        if hinted is not None:
            for position, spans in hinted.items():
                if position in self.keyworded_hints:
                    hint_ends[position] = sorted(end for _, end in spans)
                else:  # (a detector with no keyword of its own)
                    found[position] = spans
        if self.runs and text and text[-1] in _RUN_CHARS:
            # the one run the pass cannot see, at the very end with no character after it
            # (digit_runs drops it if it holds fewer than seven digits)
            ends.append(len(text))
        runs = ends if self.runs else None
        return SharedText(text, found, runs, hinted=hinted is not None, data=data,
                          hint_ends=hint_ends)  # fmt: skip


def _grouped(
    keywords: dict[tuple[bytes, int, int, bool], list[int]],
) -> list[tuple[bytes, int, tuple[int, ...], int, bool]]:
    return [(expression, flag, tuple(positions), length, from_start)
            for (expression, flag, length, from_start), positions in keywords.items()]  # fmt: skip


class Keywords:
    """One Hyperscan database of keywords (and maybe the digit runs), one scratch space per
    thread: bodies are also redacted off the loop.

    Each expression comes with the detector positions it serves, the length of its hits, and
    whether they are counted from where a match starts (a keyword and what must follow it,
    see Detector.follows), not back from where it ends."""

    @classmethod
    def literals(
        cls,
        pieces: list[bytes],
        positions: list[tuple[int, ...]] | None = None,
        caseless: bool = False,
    ) -> Keywords:
        """A database of `pieces` as they are (`caseless`: in either ASCII case), each hit
        under its `positions` (default: 0)."""
        at = positions if positions is not None else [(0,)] * len(pieces)
        flag = hyperscan.HS_FLAG_CASELESS if caseless else 0
        keywords = [(_literal(p), flag, where, len(p), False)
                    for p, where in zip(pieces, at, strict=True)]  # fmt: skip
        return cls(keywords, with_runs=False)

    def __init__(
        self, keywords: list[tuple[bytes, int, tuple[int, ...], int, bool]], with_runs: bool
    ):
        expressions = [expression for expression, *_ in keywords]
        flags = [flag | hyperscan.HS_FLAG_SOM_LEFTMOST if from_start else flag
                 for _, flag, _, _, from_start in keywords]  # fmt: skip
        # expression id -> (detector positions, length, from_start)
        self.meta = [tuple(entry[2:]) for entry in keywords]
        if with_runs:
            expressions.append(_DIGIT_RUN_END)
            flags.append(0)
        self.database = hyperscan.Database() if expressions else None
        if self.database is not None:
            self.database.compile(
                expressions=expressions,
                ids=list(range(len(expressions))),
                elements=len(expressions),
                flags=flags,
            )
        self._local = threading.local()

    def _scratch(self):  # -> hyperscan.Scratch, this thread's own
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self.database)
        return scratch

    def hits_in(self, text: str) -> dict[int, list[tuple[int, int]]]:
        """Hits in a text that is not ASCII: found in its UTF-8, then moved to character
        positions (a keyword starts and ends on whole characters)."""
        if self.database is None:
            return {}
        data = text.encode("utf-8", "surrogatepass")  # (lone surrogates: JSON "\\ud800")
        found, _ = self.hits(data)
        offsets = sorted({offset for spans in found.values() for span in spans for offset in span})
        chars, byte, char = {}, 0, 0
        for offset in offsets:
            char += len(data[byte:offset].decode("utf-8", "surrogatepass"))
            chars[offset], byte = char, offset
        return {position: [(chars[a], chars[b]) for a, b in spans]
                for position, spans in found.items()}  # fmt: skip

    def hits(self, data: bytes) -> tuple[dict[int, list[tuple[int, int]]], list[int]]:
        """Keyword hits by detector position, and where the runs of digits end."""
        found: dict[int, list[tuple[int, int]]] = {}
        ends: list[int] = []
        if self.database is None:
            return found, ends
        scratch = self._scratch()
        meta, runs = self.meta, len(self.meta)

        def on_match(expression: int, start: int, end: int, _flags: int, _context) -> None:
            if expression == runs:
                ends.append(end - 1)  # the run ends before the character that ended it
                return
            positions, length, from_start = meta[expression]
            span = (start, start + length) if from_start else (end - length, end)
            for position in positions:
                found.setdefault(position, []).append(span)

        self.database.scan(data, match_event_handler=on_match, scratch=scratch)
        return found, ends

    def hits_up_to(self, data: bytes, limit: int) -> dict[int, list[tuple[int, int]]] | None:
        """The hits by detector position, or None past `limit` of them (the scan stops)."""
        found: dict[int, list[tuple[int, int]]] = {}
        if self.database is None:
            return found
        scratch = self._scratch()
        meta, count = self.meta, 0

        def on_match(expression: int, start: int, end: int, _flags: int, _context) -> bool:
            nonlocal count
            positions, length, from_start = meta[expression]
            span = (start, start + length) if from_start else (end - length, end)
            for position in positions:
                found.setdefault(position, []).append(span)
            count += 1
            return count > limit  # True stops the scan

        try:
            self.database.scan(data, match_event_handler=on_match, scratch=scratch)
        except hyperscan.ScanTerminated:
            return None
        return found


class TrieIndex(_PerDetectorSet):
    """Every keyword of a detector set, found with one `re` search per occurrence: the
    keywords as a trie-shaped regex (one for the case-sensitive ones, one for the folded).

    The pure-Python counterpart of KeywordIndex, for short texts (JSON bodies hold many:
    a str.find per keyword and a pass over every detector cost 0.5 ms per string, 8 s per
    64 KB of `["a","a",...]`; now 30 us) and for machines without hyperscan. The same hits
    as str.find: at each place a keyword starts, the regex takes the longest, and every
    keyword that starts there is a prefix of it.
    """

    _cache: ClassVar[dict[int, tuple[tuple[Detector, ...], TrieIndex]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, detectors: tuple[Detector, ...]) -> None:
        self.parts: list[tuple[bool, re.Pattern[str] | None, dict[str, list[tuple[int, int]]]]]
        self.parts = []
        # which detectors a text needs: those whose hints it holds (see `needed`)
        self.by_digits = [i for i, d in enumerate(detectors) if d.digits]
        hinted = [bool(d.keywords or d.keywords_folded) for d in detectors]
        self.keyworded = frozenset(i for i, d in enumerate(detectors) if hinted[i] and not d.digits)
        self.always = [i for i, d in enumerate(detectors) if not (hinted[i] or d.digits)]
        for folded in (False, True):
            owners: dict[str, list[int]] = {}
            for position, d in enumerate(detectors):
                for word in d.keywords_folded if folded else d.keywords:
                    owners.setdefault(word, []).append(position)
            # the hits of a longest match: itself and every keyword that is a prefix of it
            meta = {word: [(p, len(w)) for w in owners if word.startswith(w) for p in owners[w]]
                    for word in owners}  # fmt: skip
            regex = re.compile(_trie(owners)) if owners else None
            self.parts.append((folded, regex, meta))

    def needed(self, shared: SharedText, hits: dict[int, list[tuple[int, int]]]) -> list[int]:
        """The positions of the detectors that can find something in the text, in order:
        those with a keyword hit, those with digit runs when it has some, and those with
        neither hint. A loop over every detector costs 50 us a text, what a short one takes."""
        needed = [i for i in hits if i in self.keyworded]
        needed += self.always
        if self.by_digits and shared.digit_runs:
            needed += self.by_digits
        return sorted(needed)

    def hits(self, shared: SharedText) -> dict[int, list[tuple[int, int]]] | None:
        """None when lower-casing changes the text's length (positions would drift)."""
        found: dict[int, list[tuple[int, int]]] = {}
        for folded, regex, meta in self.parts:
            if regex is None:
                continue
            haystack = shared.text
            if folded:
                haystack = shared.folded
                if len(haystack) != len(shared.text):
                    return None
            search = regex.search
            m = search(haystack)
            while m is not None:
                start = m.start()
                for position, length in meta[m.group()]:
                    found.setdefault(position, []).append((start, start + length))
                m = search(haystack, start + 1)
        return found


def _trie(words: Iterable[str]) -> str:
    """A regex matching the longest of `words` that starts where it is tried."""
    root: dict = {}
    for word in words:
        node = root
        for c in word:
            node = node.setdefault(c, {})
        node[""] = {}

    def pattern(node: dict) -> str:
        branches = [re.escape(c) + pattern(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body  # greedy: the longer first

    return pattern(root)


class TooSlow(Exception):
    """A scan ran past the deadline its caller set (see `deadline`)."""


_DEADLINE: ContextVar[float | None] = ContextVar("redaction_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Scans in this block raise TooSlow once `seconds` have passed. A prompt is the client's
    to shape, and some shapes cost far more per byte than prose (runs of spaced digits, labels
    repeated thousands of times): the caller bounds what a request may cost, and decides."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _on_time(until: float | None) -> None:
    if until is not None and time.monotonic() > until:
        raise TooSlow("the scan ran past its deadline")


_AFTER_SCAN: list[Callable[[], None]] = []


def forget_after_each_scan(clear: Callable[[], None]) -> None:
    """Have `clear` called when each scan ends: a cache of what a scan read (a text, its rows,
    its numbers) holds no prompt past it. A scan running at the same time in another thread
    only loses some of its cache."""
    _AFTER_SCAN.append(clear)


@lru_cache(maxsize=2)
def ascii_bytes(text: str) -> bytes:
    """The text's ASCII, the rest as "?": encoded once for the keyword pass and for the cues
    of personal data (0.1 ms a 64 KB)."""
    return text.encode("ascii", "replace")


forget_after_each_scan(ascii_bytes.cache_clear)


def scan(text: str, detectors: tuple[Detector, ...]) -> list[Finding]:
    """Every finding in `text`, earliest first; overlaps resolved in favour of the earlier,
    then the longer, then the detector listed first."""
    try:
        return _scan(text, detectors)
    finally:
        for clear in _AFTER_SCAN:
            clear()


def _scan(text: str, detectors: tuple[Detector, ...]) -> list[Finding]:
    found: list[tuple[int, int, int, str]] = []
    hits = None
    if hyperscan is not None and len(text) >= KeywordIndex.MIN_TEXT:
        shared = KeywordIndex.of(detectors).shared(text)
        hits = shared.keyword_hits
    else:
        shared = SharedText(text, None)
    trie = TrieIndex.of(detectors)
    if hits is None:  # faster than a str.find per keyword at any size (45 ms to 66 at 64 KB)
        shared.keyword_hits = hits = trie.hits(shared)
    orders = range(len(detectors)) if hits is None else trie.needed(shared, hits)
    memo: dict[tuple[Validator, str], bool] = {}
    until = _DEADLINE.get()
    taken: set[tuple[int, int]] = set()  # the spans found so far (see _anchored_spans)
    for order in orders:
        _on_time(until)
        d = detectors[order]
        starts = shared.starts(d, order) if d.anchored else None
        if starts is not None:
            spans = _anchored_spans(d, shared, starts, memo, until, taken)
        else:
            spans = _windowed_spans(d, text, shared.windows(d, order), memo, until)
        for start, end in spans:
            if end > start:
                found.append((start, -(end - start), order, d.finds))
                taken.add((start, end))
    found.sort()
    findings: list[Finding] = []
    last_end = -1
    for start, negative_length, _order, kind in found:
        if start >= last_end:
            findings.append(Finding(kind, start, start - negative_length))
            last_end = start - negative_length
    return findings


CHAIN = 4  # values of one detector, each overlapping the last: more is a chain of keys


def _anchored_spans(
    d: Detector,
    shared: SharedText,
    starts: list[int],
    memo: dict,
    until: float | None = None,
    taken: set[tuple[int, int]] | frozenset = frozenset(),
) -> Iterator[tuple[int, int]]:
    """The spans of the valid matches of an anchored detector at its keywords' starts.

    A value may run over the next key (`api_key=api_key=…`, `fooKey=ab` glued to the next
    `fooKey=`), and each key's value is then matched and validated again, at the cost of the
    value's length: thousands of keys in a prompt took seconds. Past CHAIN values that each
    overlap the run so far, the run is one value, taken whole without more matching: a
    prompt built of chained keys is redacted, in linear time (failing closed, not open).

    A span in `taken`, found by a detector listed before, is not validated again: the one
    found first wins it whatever this detector says (the value of `api_key=...`, both a
    generic-secret and a named-credential), and each start is tried on its own."""
    text = shared.text
    run_start = run_end = -1
    overlapping = 0
    for position in starts:
        if overlapping >= CHAIN and position < run_end:
            continue
        if shared.in_marker(position):
            continue  # "[REDACTED:aws-access-key]" names no value: a second pass finds nothing
        _on_time(until)
        m = d.regex.match(text, position)
        if m is None:
            continue
        start, end = m.span(d.span_group)
        if end <= start:
            continue
        if start < run_end:
            overlapping += 1
            run_end = max(run_end, end)
            if overlapping == CHAIN:
                yield run_start, run_end
                continue
        else:
            run_start, run_end, overlapping = start, end, 0
        if (start, end) in taken or _valid(d, m, memo):
            yield start, end


def _windowed_spans(
    d: Detector, text: str, windows: list[tuple[int, int]], memo: dict, until: float | None
) -> Iterator[tuple[int, int]]:
    """The spans of the valid matches in `windows`, found like finditer's, but a match that
    fails validation is tried again cut short at each whitespace ("+1 415 555 0100  4111 1111
    1111 1111" first matches the phone pattern as a whole), and then the search goes on from
    the next character, not after the match ("2 4111 1111 1111 1111" must still find the
    card after the first digit). One loop for every window: most windows of a number-shaped
    detector hold no match, or one (a run of digits is a date, an id, an amount), and a
    generator of matches for each cost more than its search (es-dni: 11,000 windows)."""
    search = d.regex.search
    for start, end in windows:
        position = start
        while position < end and (m := search(text, position, end)):
            _on_time(until)
            found = m if _valid(d, m, memo) else _shorter_valid(d, text, m, memo)
            if found is not None:
                yield found.span(d.span_group)
                position = max(found.end(), found.start() + 1)
            else:
                position = m.start() + 1


# Validators' verdicts on values of 8 characters and more are remembered for the scan:
# repeated keys (`api_key=` 8,000 times) hand the same 200-character value over and over,
# `Authorization: Bearer ` repeated the same short one (181 to 40 ms per 64 KB).
_MEMO_MIN, _MEMO_MAX = 8, 4096


def _valid(d: Detector, m: re.Match, memo: dict | None = None) -> bool:
    if d.validate is not None:
        value = m.group(d.span_group)
        if memo is None or len(value) < _MEMO_MIN:
            ok = d.validate(value)
        elif (ok := memo.get((d.validate, value))) is None:
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            ok = memo[d.validate, value] = d.validate(value)
        if not ok:
            return False
    return d.context is None or d.context(m.string, *m.span(d.span_group))


def _shorter_valid(
    d: Detector, text: str, m: re.Match, memo: dict | None = None
) -> re.Match | None:
    a, b = m.span()
    # the cuts found by a regex, not a loop over characters: most matches hold none
    first = _CUT.search(text, a + 1, b)
    if first is None:
        return None
    cuts = [first.start(), *(c.start() for c in _CUT.finditer(text, first.end(), b))]
    for cut in reversed(cuts):  # longest first
        short = d.regex.fullmatch(text, a, cut)
        if short is not None and _valid(d, short, memo):
            return short
    return None


_CUT = re.compile(r"(?<=\S)\s")  # a whitespace after something else (\s: str.isspace)


Replacement = str | Callable[[str, str], str]  # a template, or (type, value) -> text


def redact_text(
    text: str, detectors: Iterable[Detector], replacement: Replacement
) -> tuple[str, list[Finding]]:
    """`text` with every finding replaced by `replacement`: a template ({type} names the
    detector), or a function of the detector and the value found (restorable placeholders)."""
    findings = scan(text, detectors)
    if not findings:
        return text, findings
    out, position = [], 0
    for f in findings:
        out.append(text[position : f.start])
        if isinstance(replacement, str):
            out.append(replacement.replace("{type}", f.type))
        else:
            out.append(replacement(f.type, text[f.start : f.end]))
        position = f.end
    out.append(text[position:])
    return "".join(out), findings
