"""The checks that turn a number-shaped or name-shaped candidate into personal data: card brands
with their lengths and Luhn, the SSA's rules for SSNs, libphonenumber for phone numbers by
region, python-stdnum's checksums for national ids, and the words around a candidate.

A candidate counts only when its shape, its checksum and its surroundings agree: a
Luhn-valid 13-digit number with no card brand of that length is no card, and "order
#4155550132" is no phone.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_left
from collections.abc import Iterator
from functools import lru_cache
from itertools import zip_longest

import phonenumbers
from stdnum.br import cpf
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn

from proxy.redact.detectors import Keywords, ascii_bytes, forget_after_each_scan
from proxy.redact.first_names import FIRST_NAMES, NOT_NAMES, PLACE_WORDS, SURNAMES_TOO

try:  # optional, as in detectors.py: finds the words that may label candidates (Cues)
    import hyperscan
except ImportError:  # pragma: no cover - exercised where hyperscan has no wheel
    hyperscan = None

# -- surroundings --------------------------------------------------------------------------------


# what redaction itself wrote ("[REDACTED:phone]", "<PHONE_1>"): never a label, or a second
# pass over redacted text would find what the first left alone
_REDACTED = re.compile(r"\[REDACTED[^\]\n]{0,40}\]|<[A-Z][A-Z0-9_]*_[0-9]+>")
# the halves of markers that a window of text cut: "[REDACTED:pho" at its end, "ACTED:phone]"
# or "ONE_1>" at its start
_CUT_MARKER = re.compile(r"\[REDACTED[^\]\n]{0,40}$|<[A-Z][A-Z0-9_]*$|^[^\[\]<>\n]{0,48}[\]>]")


def _unmarked(window: str) -> str:
    """A window of text without the markers redaction wrote, whole or cut by the window."""
    if "[" not in window and "<" not in window and "]" not in window and ">" not in window:
        return window  # (no marker, whole or cut, in most windows: four finds, no regex)
    return _REDACTED.sub(" ", _CUT_MARKER.sub(" ", window))


def before(text: str, start: int, width: int = 40) -> str:
    """The lower-cased text just before a candidate, on its line."""
    # markers are taken out before the window is cut to its width
    line = text[max(0, start - width - 50) : start].rsplit("\n", 1)[-1]
    return _unmarked(line)[-width:].lower()


def _normal(text: str) -> str:
    """Lower case, and keys like passport_no or date-of-birth as words."""
    return _unmarked(text).lower().replace("_", " ").replace("-", " ")


class Cues:
    """Pieces of text that every match of some words holds (lower-cased, with no space, "_"
    or "-", which _normal changes): where none lies near a candidate, none of the words can
    label it, and the label is not read. Found once per text, by Hyperscan (without it,
    every candidate's label is read)."""

    def __init__(self, *pieces: str) -> None:
        self._scan, self._group = _CueScan((pieces,)), 0

    @classmethod
    def together(cls, *groups: tuple[str, ...]) -> tuple[Cues, ...]:
        """Cues for each group of pieces, all found in one scan of a text (the phone's
        region words and labels: one scan of each cost 0.15 ms a 64 KB)."""
        scan, views = _CueScan(groups), []
        for group in range(len(groups)):
            cues = cls.__new__(cls)
            cues._scan, cues._group = scan, group
            views.append(cues)
        return tuple(views)

    @property
    def wide_chars(self) -> tuple[str, ...] | None:
        """What lower-cases to the wide pieces' characters, of every group scanned with these
        (None: every text not ASCII is searched)."""
        return self._scan.wide_chars

    def near(self, text: str, low: int, high: int) -> bool:
        """Some piece starts in text[low:high]."""
        found = _cue_starts(self._scan, text)
        if found is None:
            return True
        starts = found[self._group]
        i = bisect_left(starts, low)
        return i < len(starts) and starts[i] < high

    def last_before(self, text: str, position: int) -> int | None:
        """Where the last piece that starts before `position` starts (None: none, or not
        known)."""
        found = _cue_starts(self._scan, text)
        if found is None:
            return None
        starts = found[self._group]
        i = bisect_left(starts, position)
        return starts[i - 1] if i else None

    def starts(self, text: str) -> list[int] | None:
        """Where the pieces start in the lower-cased text, in order (None: no Hyperscan, or
        lower-casing changes the text's length)."""
        found = _cue_starts(self._scan, text)
        return None if found is None else found[self._group]


class _CueScan:
    """The Hyperscan databases of one or more groups of cues, each hit under its groups."""

    def __init__(self, groups: tuple[tuple[str, ...], ...]) -> None:
        self.groups = len(groups)
        of_piece: dict[str, list[int]] = {}
        for group, pieces in enumerate(groups):
            for p in pieces:
                of_piece.setdefault(p, []).append(group)
        pieces = list(of_piece)
        # the ASCII pieces in the text's ASCII with the rest as "?" (one byte a character:
        # no offsets to convert), the others in its UTF-8 (their few hits converted)
        narrow = [p for p in pieces if p.isascii() and "?" not in p]
        wide = [p for p in pieces if p not in narrow]
        self.databases = None
        if hyperscan is not None:
            # (the ASCII ones in either case: the text's ASCII is not lower-cased for them)
            self.databases = tuple(
                Keywords.literals([p.encode() for p in part], [tuple(of_piece[p]) for p in part],
                                  caseless=part is narrow)
                for part in (narrow, wide)
            )  # fmt: skip
        # What lower-cases to the wide pieces' other characters: a text holding none of them
        # holds no wide piece, and is neither lower-cased nor encoded again for them (a
        # str.find each: a regex's class took 0.4 ms a 64 KB). None: every text not ASCII
        # is searched (a wide piece may be ASCII, with "?" in it).
        others = {c for p in wide for c in p if not c.isascii()}
        others |= {c.upper() for c in others if len(c.upper()) == 1}
        ascii_wide = any(p.isascii() for p in wide)
        self.wide_chars = None if ascii_wide else tuple(sorted(others))

    def starts(self, text: str) -> list[list[int]] | None:
        """Where each group's pieces start in the lower-cased text, in order (None: lower-casing
        changes the text's length, and positions would drift). The ASCII pieces are found in
        the ASCII bytes in either case: the text's own lower-casing took 0.5 ms a 64 KB, and
        only İ and the Kelvin sign lower-case otherwise (to two characters, to "k")."""
        narrow, wide = self.databases
        if "\u0130" in text or "\u212a" in text:
            folded = _lowered(text)
            if len(folded) != len(text):
                return None
            data, wide_hits = folded.encode("ascii", "replace"), not folded.isascii()
        else:
            data = ascii_bytes(text)  # (as the keyword pass read it)
            wide_hits = not text.isascii() and (
                self.wide_chars is None or any(c in text for c in self.wide_chars)
            )
        hits, _ = narrow.hits(data)
        found = [[start for start, _ in hits.get(group, ())] for group in range(self.groups)]
        if wide_hits:
            more = wide.hits_in(_lowered(text))
            for group in range(self.groups):
                found[group] += [start for start, _ in more.get(group, ())]
        return [sorted(starts) for starts in found]


@lru_cache(maxsize=8)  # (a few per text: hashing a text is done once, then kept)
def _cue_starts(scan: _CueScan, text: str) -> list[list[int]] | None:
    """Where each group's pieces start in the lower-cased text (None: no Hyperscan, or
    lower-casing changed the text's length, and positions would drift)."""
    if scan.databases is None:
        return None
    return scan.starts(text)


@lru_cache(maxsize=2)
def _lowered(text: str) -> str:
    """The text lower-cased, once for every set of cues (0.35 ms a 64 KB)."""
    return text.lower()


# how far before and after a candidate `labelled` reads, and the rows above it a heading
_HEAD, _TAIL, _ABOVE = 110, 90, 4000


def labelled(
    words: re.Pattern[str], text: str, start: int, end: int, cues: Cues | None = None
) -> bool:
    """One of `words` labels the candidate: on its line shortly before or after it ("DOB:
    ...", "... as their SSN", "passport_no=...", a JSON key), or heading its column in a
    comma-separated table. `cues`, when given, are pieces every match of `words` holds."""
    if cues is None or cues.near(text, start - _HEAD, end + _TAIL):
        # the newlines looked for only where head and tail can reach: a 64 KB line holds
        # thousands of candidates, and a scan to its ends for each was quadratic
        line_start = text.rfind("\n", max(0, start - _HEAD), start) + 1
        line_end = text.find("\n", end, end + _TAIL)
        head = _normal(text[max(line_start, start - _HEAD) : start])[-60:]  # no half markers
        tail = _normal(text[end : end + _TAIL if line_end < 0 else line_end])[:40]
        if words.search(head) or words.search(tail):
            return True
    if cues is not None:
        line_start, line_end = _line(text, start)
        if not cues.near(text, line_start - _ABOVE, line_start):
            return False  # (no heading above the line can hold one of the words)
        if not _may_head_the_column(cues, text, line_start, line_end):
            return False
    heading = column_heading(text, start)
    return heading is not None and bool(words.search(_normal(heading)))


def _may_head_the_column(cues: Cues, text: str, line_start: int, line_end: int) -> bool:
    """Whether the last cue above a row can lie in its table's heading: a heading holding a
    cue is at or above that cue's line, so the line is the heading or a row between, and
    holds as many cells as the row or more (a line of prose above a table seldom does: its
    rows were read up to 50 lines above for each candidate)."""
    cue = cues.last_before(text, line_start)
    low = max(0, line_start - _ABOVE)
    if cue is None or cue < low:
        return True  # (not known; or out of reach, which `near` tells)
    newline = text.rfind("\n", low, cue)
    if newline < 0 and low > 0:
        return True  # (the line may be cut where the rows are read from: no shortcut)
    cue_line = text[newline + 1 : text.find("\n", cue, line_start)]
    return _cell_count(cue_line) >= _cell_count(text[line_start:line_end])


def column_heading(text: str, start: int) -> str | None:
    """The first row's cell above `start` in a comma-separated table (CSV pasted in a prompt).
    Commas inside double quotes ("12, rue de Rivoli") separate nothing."""
    line_start, line_end = _line(text, start)
    if line_start == 0 or line_end - line_start > _LONGEST_ROW:
        return None  # (a row is short; counting the commas of a long line for each candidate
        # on it would take time the square of its length)
    row = _row_heading(text, line_start, line_end)
    if row is None:
        return None
    commas, heading = row
    return heading[bisect_left(commas, start - line_start)]  # the commas before `start`


@lru_cache(maxsize=256)  # read once per row, not once per candidate on it and per detector
def _row_heading(text: str, line_start: int, line_end: int) -> tuple[list[int], list[str]] | None:
    """The commas of a row, and the first row's cells above it (None: no table)."""
    line = text[line_start:line_end]
    if "," not in line:
        return None
    commas = _commas(line)
    width = len(commas) + 1
    top = None  # the topmost line above of as many cells (counted, cut only once found)
    for above in _lines_above(text, line_start):
        count = _cell_count(above)
        if count != width:
            if count > width and top is None:  # "...see this table: id,ssn,plan"
                return commas, _cells(above)[-width:]
            break
        top = above
    return None if top is None else (commas, _cells(top))


def _lines_above(text: str, line_start: int) -> Iterator[str]:
    """The 50 lines above the line at `line_start` (within _ABOVE characters, the topmost
    maybe cut), nearest first: found one by one, for a table's rows are read only up to
    the first that is not one of them (splitting the _ABOVE characters took most of it)."""
    low, end = max(0, line_start - _ABOVE), line_start - 1
    for _ in range(50):
        newline = text.rfind("\n", low, end)
        yield text[newline + 1 if newline >= 0 else low : end]
        if newline < 0:
            return
        end = newline


_NEAR = 2048  # lines shorter than this are measured with find and count


def _line(text: str, start: int) -> tuple[int, int]:
    """The start and end of the line `start` is on."""
    before, after = (
        text.rfind("\n", max(0, start - _NEAR), start),
        text.find("\n", start, start + _NEAR),
    )
    if (before >= 0 or start <= _NEAR) and (after >= 0 or start + _NEAR >= len(text)):
        return before + 1, len(text) if after < 0 else after
    newlines = _layout(text)  # a long line: its ends by bisection
    i = bisect_left(newlines, start)
    return newlines[i - 1] + 1 if i else 0, newlines[i] if i < len(newlines) else len(text)


@lru_cache(maxsize=2)
def _layout(text: str) -> list[int]:
    """Where the newlines of a text with long lines are, found once."""
    return [m.start() for m in re.finditer("\n", text)]


_LONGEST_ROW = 2000


def _commas(line: str) -> list[int]:
    """Where the commas outside double quotes are (found by a regex, not a loop over the
    characters: a heading is looked for up to 50 rows above each candidate)."""
    if '"' not in line:
        return [m.start() for m in _COMMA.finditer(line)]
    found, offset = [], 0
    for i, part in enumerate(line.split('"')):  # (every other part is quoted)
        if not i % 2 and "," in part:
            found += [offset + m.start() for m in _COMMA.finditer(part)]
        offset += len(part) + 1
    return found


_COMMA = re.compile(",")


def _cell_count(line: str) -> int:
    """len(_cells(line)), counted in C: the commas outside double quotes, and one."""
    if '"' not in line:
        return line.count(",") + 1
    return sum(part.count(",") for part in line.split('"')[::2]) + 1  # (every other part)


def _cells(line: str) -> list[str]:
    if '"' not in line:
        return line.split(",")  # (the same cells, without finding the commas first)
    cuts = _commas(line)
    return [line[a + 1 : b] for a, b in zip([-1, *cuts], [*cuts, len(line)], strict=True)]


# a label that says a number is an identifier of something else, a barcode or a quantity
_OTHER_ID_WORDS = (
    r"\b(?:order|invoice|inv|ticket|tracking|ref|reference|case|po|sku|item|build|job|"
    r"request|req|txn|transaction|confirmation|booking|shipment|parcel|serial|id|"
    r"ean|gtin|upc|isbn|barcode|bytes|seconds|total|count|size|amount|qty|quantity|"
    r"bestellung|bestellnummer|rechnung|commande|facture|pedido|factura|ordine)"
)
_OTHER_ID_LABEL = re.compile(  # also a quoted key: "id": 4561593267405335147
    rf"(?:{_OTHER_ID_WORDS}(?:\s*(?:number|num|nr|no|id))?[\"']?\.?\s*[:#=]?\s*[\"']?(?:#\s*)?)$"
)
_OTHER_ID_HEADING = re.compile(rf"\W*(?:\w+ )?{_OTHER_ID_WORDS}(?: ?(?:number|num|nr|no|id))?\W*")
# an operand or a result of arithmetic, the value of a one-letter variable: "2014519833 *
# 4108462477 = ...", "gcd(8686701073, ...", "c = 13469785406", "φ(n) = 8276579143"
_NUMBER = re.compile(r"\(?\d[\d ().-]*\d")
_OPERATOR_AFTER = re.compile(r"\s*(?:[*×·÷^≡]|\(?mod\b|=\s*\d+\s*[*×·÷^])")
_OPERATOR_BEFORE = re.compile(
    r"(?:[*×·÷^≡]|\bmod(?:ulo)?|\b(?:gcd|lcm|pow|sqrt|isqrt|divmod|factor)\(|\d\)?\s*[*×·÷^/+-]"
    r"\s*\(?\d+\)?\s*=|(?<![^\s(,;])[a-zα-ω](?:\([a-z]\))?\s*=|\b(?:divisible|divided|"
    r"multiplied)\s+by)\s*$"
)
# a line of a hex dump: an offset, then bytes in groups ("00000010: 4749 4638 3961 0100 ...")
_HEX_DUMP_OFFSET = re.compile(r"\s*(?:0x)?[0-9a-fA-F]{7,16}:?(?:\s+[0-9a-fA-F]{2,8})*\s+$")


def labelled_as_other_id(text: str, start: int) -> bool:
    """ "Order #4155550132", "invoice no. 4111111111111", a column headed order_no or ean, an
    operand of arithmetic, the bytes of a hex dump: the surroundings say what it is."""
    head = before(text, start, 32)
    if _OTHER_ID_LABEL.search(_normal(head)) or _OPERATOR_BEFORE.search(head):
        return True
    number = _NUMBER.match(text, start)
    if number and _OPERATOR_AFTER.match(text, number.end()):
        return True
    line_start = _line(text, start)[0]
    if start - line_start <= 200 and _HEX_DUMP_OFFSET.fullmatch(text, line_start, start):
        return True  # (an xxd line's bytes are within 200 characters of its start)
    heading = column_heading(text, start)
    return heading is not None and bool(_OTHER_ID_HEADING.fullmatch(_normal(heading)))


# -- payment cards -------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    total, double = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if double:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        double = not double
    return total % 10 == 0


def _span(low: int, high: int) -> tuple[str, ...]:
    return tuple(str(n) for n in range(low, high + 1))


# brand: (prefixes, lengths); from the brands' published IIN ranges
CARD_BRANDS: dict[str, tuple[tuple[str, ...], frozenset[int]]] = {
    "visa": (("4",), frozenset({13, 16, 19})),
    "mastercard": (("51", "52", "53", "54", "55", *_span(2221, 2720)), frozenset({16})),
    "amex": (("34", "37"), frozenset({15})),
    "discover": (
        ("6011", "65", *_span(644, 649), *_span(622126, 622925)),
        frozenset(range(16, 20)),
    ),
    "diners": (
        ("300", "301", "302", "303", "304", "305", "3095", "36", "38", "39"),
        frozenset(range(14, 20)),
    ),
    "jcb": (_span(3528, 3589), frozenset(range(16, 20))),
    "maestro": (
        ("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763"),
        frozenset(range(12, 20)),
    ),
    "unionpay": (("62",), frozenset(range(16, 20))),
    "mir": (_span(2200, 2204), frozenset(range(16, 20))),
}
_LENGTHS_BY_PREFIX: dict[str, set[int]] = {}
for _prefixes, _lengths in CARD_BRANDS.values():
    for _prefix in _prefixes:
        _LENGTHS_BY_PREFIX.setdefault(_prefix, set()).update(_lengths)


def card_brand_fits(digits: str) -> bool:
    """Some brand has this prefix and issues numbers of this length."""
    n = len(digits)
    return any(n in _LENGTHS_BY_PREFIX.get(digits[:k], ()) for k in range(1, 7))


_SPACES_OR_DASHES = re.compile(r"[ -]+")


# the first digits of every brand's prefixes: ids and barcodes mostly start with another
_BRAND_FIRST_DIGITS = frozenset(prefix[0] for prefix in _LENGTHS_BY_PREFIX)


def card_valid(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    if not 12 <= len(digits) <= 19 or digits[0] not in _BRAND_FIRST_DIGITS:
        return False  # (card_brand_fits would say no, later)
    if len(set(digits)) < 2:
        return False
    groups = tuple(len(g) for g in _SPACES_OR_DASHES.split(text))
    if len(groups) > 1 and not _card_grouping(groups):
        return False  # "415 555 0100 4111 1111" is a phone number and more, not a card
    return card_brand_fits(digits) and luhn_valid(digits)


def _card_grouping(groups: tuple[int, ...]) -> bool:
    """How cards are written: fours (the last group may be shorter), or 4-6-5 / 4-6-4."""
    if groups in ((4, 6, 5), (4, 6, 4)):
        return True
    return all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4


def card_in_context(text: str, start: int, _end: int) -> bool:
    return not labelled_as_other_id(text, start)


# -- IBAN, SSN -----------------------------------------------------------------------------------


def iban_valid(text: str) -> bool:
    iban = text.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


_SSN_NOT_ISSUED = {"078051120", "219099999", "123456789", "457555462"}


def ssn_valid(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return not (
        area in ("000", "666")
        or area[0] == "9"
        or group == "00"
        or serial == "0000"
        or digits in _SSN_NOT_ISSUED
        or len(set(digits)) == 1
    )


_SSN_WORDS = re.compile(r"\bssn\b|\bss\s*#|social\s+security|\bsoc\.?\s*sec\b|\bssa\b")


def ssn_in_context(text: str, start: int, end: int) -> bool:
    """Nine digits written together are an SSN only with the word near: they are also
    order numbers, ZIP+4 codes and ids."""
    if not text[start:end].isdigit():
        return not labelled_as_other_id(text, start)
    return labelled(_SSN_WORDS, text, start, end)


# -- phone numbers -------------------------------------------------------------------------------

_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}\b|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b")
# a North American number: optional 1, area code and exchange not starting with 0 or 1
_NANP_SHAPE = re.compile(r"1?[2-9]\d\d[2-9]\d{6}")
# how North American numbers are grouped: 4155550132, (415) 555-0132, 1-415-555-0132...
_NANP_GROUPS = {(10,), (11,), (3, 3, 4), (1, 3, 3, 4), (3, 7), (1, 3, 7), (1, 10)}

# words near a national-format number that say which country's plan it follows
_REGION_WORDS: dict[str, tuple[str, ...]] = {
    "GB": ("uk", "britain", "british", "england", "scotland", "wales", "london",
           "manchester", "birmingham", "edinburgh", "glasgow"),
    "DE": ("germany", "german", "deutschland", "berlin", "münchen", "munich", "hamburg",
           "frankfurt", "köln", "cologne", "stuttgart", "handy", "handynummer", "telefon",
           "festnetz", "rufnummer", "mobilnummer"),
    "FR": ("france", "french", "paris", "lyon", "marseille", "toulouse", "portable",
           "téléphone", "tél", "fixe"),
    "IN": ("india", "indian", "mumbai", "delhi", "bangalore", "bengaluru", "chennai",
           "hyderabad", "kolkata", "pune"),
    "BR": ("brazil", "brasil", "brazilian", "paulo", "janeiro", "celular", "telefone"),
    "JP": ("japan", "japanese", "tokyo", "osaka", "kyoto", "yokohama", "電話", "携帯"),
    "ES": ("spain", "españa", "spanish", "madrid", "barcelona", "valencia", "sevilla",
           "móvil", "teléfono"),
    "IT": ("italy", "italia", "italian", "rome", "roma", "milan", "milano", "napoli",
           "torino", "cellulare"),
    "NL": ("netherlands", "nederland", "dutch", "holland", "amsterdam", "rotterdam",
           "utrecht", "mobiel", "telefoonnummer"),
    "AU": ("australia", "australian", "sydney", "melbourne", "brisbane", "perth"),
    "MX": ("mexico", "méxico", "mexican", "guadalajara", "monterrey"),
}  # fmt: skip
_REGION_OF_WORD = {w: r for r, words in _REGION_WORDS.items() for w in words}
_WORD = re.compile(r"[^\W\d_]+")
SUPPORTED_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


# (_REGION_CUES: with the phone's labels, below)


def regions_in_context(text: str, start: int, end: int) -> list[str]:
    """The countries named near a number (one word of _REGION_WORDS), nearest first."""
    if not _REGION_CUES.near(text, start - 110, end + 40):  # (what `before` and the tail read)
        return []
    head = [_REGION_OF_WORD.get(w) for w in _WORD.findall(before(text, start, 60))]
    tail = [_REGION_OF_WORD.get(w) for w in _WORD.findall(text[end : end + 40].lower())]
    nearest = [r for pair in zip_longest(reversed(head), tail) for r in pair if r]
    return list(dict.fromkeys(nearest))


@lru_cache(maxsize=4096)  # a pure function of its arguments; pastes repeat their numbers
def _valid_in(candidate: str, region: str | None) -> bool:
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


_NOT_DIGIT, _DIGITS = re.compile(r"\D"), re.compile(r"\d+")
_GROUP_AFTER, _GROUP_BEFORE = re.compile(r"[ -]\d"), re.compile(r"\d[ -]$")
_EXTENSION = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,5}$")
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# a national number written as one: the trunk 0 and groups ("(08563) 379157", "080-1234-5678",
# "01 69 51 47 06"); bare runs of digits starting with 0 are also ids and codes, and
# 078-05-1120 is shaped as an SSN
_NATIONAL_GROUPS = re.compile(r"(?!\d{3}([ -])\d\d\1\d{4}$)\(?0\d{1,4}\)?(?:[ -]\d{2,8}){1,4}")


def phone_in_context(text: str, start: int, end: int, regions: tuple[str, ...] = ()) -> bool:
    """International numbers with their `+`; without it, North American numbers, national
    numbers written in groups after their trunk 0, and the national formats of the countries
    named nearby or configured (`regions`). Not when a label says it is an order, invoice,
    ticket... number, or another kind of value ("passport number 554837476")."""
    candidate = text[start:end]
    if "x" in candidate:  # (every extension has one: no regex for the rest)
        candidate = _EXTENSION.sub("", candidate)
    bare = _NOT_DIGIT.sub("", candidate)  # (the phone pattern's candidates are ASCII)
    digits = len(bare)
    if not 8 <= digits <= 15 or _DATE.match(candidate) or _DOTTED_QUAD.fullmatch(candidate):
        return False
    if candidate.startswith("+"):
        return _valid_in(candidate, None)
    # the cheap tests first, and the label before the number read only for a number that
    # could pass: a log paste holds thousands of numbers that are no phone's shape
    nanp = bool(_NANP_SHAPE.fullmatch(bare)) and (
        tuple(map(len, _DIGITS.findall(candidate))) in _NANP_GROUPS
    )
    plans = None
    if not nanp:
        if digits > 13:  # longer than any national number
            return False
        plans = _phone_plans(text, start, end, regions)
        if not plans:
            return False
    if labelled_as_other_id(text, start) or labelled_as_other_kind(text, start):
        return False
    if nanp and _valid_in(candidate, "US"):
        return True  # libphonenumber costs tens of microseconds: after the shape tests
    if digits > 13:
        return False
    plans = _phone_plans(text, start, end, regions) if plans is None else plans
    return any(_valid_in(candidate, region) for region in plans)


# a run of eight digits written as a date _DATE reads ("2024-01-15", "15.01.2024")
_DATE_RUN = re.compile(r"\d{4}-\d\d-\d\d|\d\d[./-]\d\d[./-]\d{4}")


def phone_run_unmatched(text: str, start: int, end: int) -> bool:
    """A run of just eight digits (from `start` to `end`, its first digit to its last) holds
    no phone number: a phone number needs eight digits, all of the run's, so it ends where the
    run does, where the pattern's lookahead fails when a word character or ":" follows
    ("2024-01-15T10:00"); or it starts at the run's first digit, with no "(" or "+", and is
    a date phone_in_context turns down ("2024-01-15,"). Not when an "x" ("ext.") lies just
    before: the run's first digits could be another number's extension."""
    if "x" in text[max(0, start - 6) : start]:
        return False
    after = text[end : end + 1]
    if after in ("", "x", "X", "e", "E") or not after.isascii():
        return False  # (an extension may follow; \w is ASCII in the pattern)
    if after.isalnum() or after in "_:":
        return True
    return text[start - 1 : start] not in ("(", "+") and bool(_DATE_RUN.fullmatch(text, start, end))


def _phone_plans(text: str, start: int, end: int, regions: tuple[str, ...]) -> list[str]:
    """The numbering plans to try a national number in: the countries named nearby (all
    common ones when a label says it is a phone), then the configured ones."""
    named = regions_in_context(text, start, end)
    if _grouped_national(text, start, end) or labelled(_PHONE_WORDS, text, start, end, _PHONE_CUES):
        named = [*named, *LABELLED_PHONE_REGIONS]  # any common plan will do
    return list(dict.fromkeys((*named, *regions)))


def _grouped_national(text: str, start: int, end: int) -> bool:
    """Written as a national number, and not as a run of numbers: some group of three digits
    or more ("01 02 03 04 05" is a list as often as a French number), no group of digits
    right before or after ("ids 012 345 678 901")."""
    candidate = text[start:end]
    return bool(
        _NATIONAL_GROUPS.fullmatch(candidate)
        and any(len(g) > 2 for g in _DIGITS.findall(candidate))
        and not _GROUP_AFTER.match(text, end)
        and not _GROUP_BEFORE.search(text[max(0, start - 2) : start])
    )


_PHONE_WORDS = re.compile(
    r"\b(?:phone|mobile|cell|tel|telephone|call (?:me|us)|my number|fax|whatsapp|handy|telefon|"
    r"portable|celular|telefone|cellulare|mobiel|telefoon|bel me|appelez moi|llámame|"
    r"me ligue|chiamatemi|rufen sie mich|ruf mich)\b|téléphone|tél|móvil|teléfono|電話|携帯"
)
# A piece of each of _PHONE_WORDS; a phrase's words are apart by a space, "_" or "-", or by a
# marker redaction wrote ("[" or "<" starts it): "call_me", "call[REDACTED]me" read "call me".
_PHRASES = {"call": ("me", "us"), "my": ("number",), "bel": ("me",), "ruf": ("mich",)}
_PHONE_CUE_PIECES = (
    "phone", "mobile", "cell", "tel", "fax", "whatsapp", "handy", "portable", "celular", "mobiel",
    "appelez", "llámame", "ligue", "chiamatemi", "rufen", "tél", "móvil", "電話", "携帯",
    *(f"{first}{apart}{then}" for first, thens in _PHRASES.items() for apart in " _-"
      for then in thens),
    *(f"{first}{marker}" for first in _PHRASES for marker in "[<"),
)  # fmt: skip
# both looked for near the same candidates: found in one scan
_REGION_CUES, _PHONE_CUES = Cues.together(tuple(_REGION_OF_WORD), _PHONE_CUE_PIECES)
# what a label just before a number says it is, when that is not a phone
_OTHER_KIND_LABEL = re.compile(
    r"(?:passport|reisepass|passeport|pasaporte|passaporto|paspoort|passaporte|パスポート|旅券|"
    r"\bssn|social security|aadhaar|\bcpf|\bdni|\bnie|\bbsn|\bnir|codice fiscale|steuer|"
    r"\biban|\bip\b|birth|\bdob|geburtsdatum|naissance|nacimiento|nascita|geboortedatum)"
    r"\w*(?:[ .]*[^\W\d]{1,12}){0,3}?\W{0,4}$"  # "passport number is", "aadhaar": "
)


def labelled_as_other_kind(text: str, start: int) -> bool:
    """ "My passport number is 554837476", "aadhaar": "3538 2837 8649": the label right before
    a number names another kind of value."""
    return bool(_OTHER_KIND_LABEL.search(_normal(before(text, start, 40))))


# the plans tried for a national number labelled as a phone with no country named
LABELLED_PHONE_REGIONS = ("GB", "DE", "FR", "IN", "BR", "JP", "ES", "IT", "NL", "AU", "MX")


# -- national identity numbers --------------------------------------------------------------------

# HMRC: no D, F, I, Q, U, V in the prefix, no O second, and never these pairs
_NINO_NOT_ALLOCATED = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def uk_nino_valid(text: str) -> bool:
    nino = text.replace(" ", "")
    return nino[:2] not in _NINO_NOT_ALLOCATED and len(set(nino[2:8])) > 1


def de_tax_id_valid(text: str) -> bool:
    return idnr.is_valid(text)


def fr_nir_valid(text: str) -> bool:
    return nir.is_valid(text)


def es_dni_valid(text: str) -> bool:
    return (nie if text[0] in "XYZ" else dni).is_valid(text)


def it_fiscal_code_valid(text: str) -> bool:
    return codicefiscale.is_valid(text)


TAX_ID_WORDS = re.compile(r"steuer|\bidnr|identifikationsnummer|\btax ?id|tax identification")
BSN_WORDS = re.compile(r"\bbsn|burgerservicenummer|sofi ?nummer|citizen service number")
AADHAAR_WORDS = re.compile(r"aadhaa?r|adhaar|\buidai")


def named_near(words: re.Pattern[str], text: str, start: int, end: int) -> bool:
    """The id's name in the 60 characters before it (on any line: "BSN:\n123456782"), or
    labelling it as `labelled` reads labels (after it, a table's heading) when no label before
    it says it is something else ("order 499118665246 (Aadhaar?)")."""
    if words.search(_normal(text[max(0, start - 60) : start])):
        return True
    return not labelled_as_other_id(text, start) and labelled(words, text, start, end)


def nl_bsn_valid(text: str) -> bool:
    return len(set(text.replace(" ", "").replace(".", ""))) > 1 and bsn.is_valid(text)


def in_aadhaar_valid(text: str) -> bool:
    return aadhaar.is_valid(text)


def br_cpf_valid(text: str) -> bool:
    return cpf.is_valid(text)


def cpf_in_context(text: str, start: int, end: int) -> bool:
    """Written 000.000.000-00 it is a CPF; eleven bare digits only with "CPF" near."""
    if not text[start:end].isdigit():
        return True
    return labelled(_CPF_WORD, text, start, end)


_CPF_WORD = re.compile(r"\bcpf\b")


def passport_valid(text: str) -> bool:
    """Letters and digits (most countries), or 8-9 digits (US, IN...); never a word."""
    if not any(c.isdigit() for c in text):
        return False
    return not text.isdigit() or len(text) >= 8


_PASSPORT_WORDS = re.compile(  # and compounds: Reisepassnummer, paspoortnummer
    r"\b(?:passport|reisepass|passeport|pasaporte|passaporto|paspoort|passaporte)|パスポート|旅券"
)


def passport_in_context(text: str, start: int, end: int) -> bool:
    return labelled(_PASSPORT_WORDS, text, start, end)


_BIRTH_WORDS = re.compile(
    r"\bdob\b|\bd\.o\.b\b|date of birth|\bbirth ?date|\bbirthday|\bborn\b|geboren|\bgeb\.|"
    r"geburtsdatum|date de naissance|\bn[ée]e? le\b|fecha de nacimiento|\bnacid[oa]\b|"
    r"\bnací\b|data di nascita|\bnat[oa] il\b|data de nascimento|\bnasci(?:d[oa])? em\b|"
    r"geboortedatum|生年月日|誕生日"
)


def birth_date_in_context(text: str, start: int, end: int) -> bool:
    return labelled(_BIRTH_WORDS, text, start, end)


# -- network ---------------------------------------------------------------------------------


_PRIVATE_IPV4 = ("10.", "127.", "192.168.", "0.", "169.254.", *(f"172.{n}." for n in range(16, 32)))


def public_ip(text: str) -> bool:
    """Addresses on the public internet; private, loopback, link-local, documentation and
    reserved ranges name no one."""
    if text.startswith(_PRIVATE_IPV4):
        return False  # most addresses pasted from logs: no need to parse them
    if ":" in text and "::" not in text and text.count(":") != 7:
        return False  # eight groups or "::": not a time of day ("23:25:01"), parsed in vain
    try:
        return ipaddress.ip_address(text).is_global
    except ValueError:
        return False


# versions and section numbers look like addresses: "v1.2.3.4", "sections 8.2.4.44"
_VERSION_LABEL = re.compile(
    r"(?:\bv|version[\"']?\s*[:=]?\s*[\"']?|==\s*|@\s*|\bver\.?\s*|"
    r"(?:sections?|chapters?|§|clauses?|steps?|rfc\s*\d+)\s*\W?\s*"
    r"(?:[\d.]+\s*(?:,|and|or|to|-)\s*)*)$"
)


def ip_in_context(text: str, start: int, _end: int) -> bool:
    return not _VERSION_LABEL.search(before(text, start, 48))


# -- street addresses --------------------------------------------------------------------------

# what follows "address" without being a street: "IP address 10 times", "email address 2"
_NOT_STREET = re.compile(
    r"(?i)^(?:ip|ips|e-?mail|mac|web|url|memory|return|base|host|server|port|the|a|an|this|that|"
    r"line|bit|byte|bytes|offset|page|block|of|in|at|to|is|was|and|or|for|with|from|on|by)\b"
)


def address_valid(text: str) -> bool:
    """A street is words and a number, not a phrase about another kind of address."""
    return not _NOT_STREET.match(text.lstrip("0123456789/, \t"))


# a column of street addresses: "address", "street", "address_line1", "Anschrift", "住所"...;
# not "ip_address", "email_address", "mac_address" or an address's id; unspaced, as a CSV
# export writes it
_ADDRESS_HEADING = re.compile(
    r"[\"']?(?:(?:(?:home|street|postal|mailing|shipping|billing|delivery|residential|customer) ?)?"
    r"(?:address|street)(?: ?line ?\d)?|adresse|anschrift|straße|dirección|direccion|domicilio|"
    r"endereço|endereco|logradouro|indirizzo|residenza|adres|woonadres|住所)[\"']?"
)
_WORD_IN_CELL = re.compile(r"[^\W\d_]{2}")  # a street has a name: not "10.0.0.1" or "42"
_ADDRESS_HEADING_CUES = Cues("address", "street", "adres", "anschrift", "straße", "direcci",
                             "domicilio", "endere", "logradouro", "indirizzo", "residenza",
                             "住所")  # fmt: skip


def address_in_cell(text: str, start: int, end: int) -> bool:
    """A cell with a number and a word under an address column's heading."""
    if not _WORD_IN_CELL.search(text, start, end) or "@" in text[start:end]:
        return False
    if not _ADDRESS_HEADING_CUES.near(text, _line(text, start)[0] - _ABOVE, start):
        return False  # (no heading above can name an address)
    heading = column_heading(text, start)
    return heading is not None and bool(_ADDRESS_HEADING.fullmatch(_normal(heading)))


# -- names -----------------------------------------------------------------------------------

_TITLE_RUN = (
    r"(?:\s*(?:mr|mrs|ms|miss|mx|dr|dra|prof|ing|dipl\.-ing|dott|dott\.ssa|sig|sig\.ra|mme|mlle|"
    r"sr|sra|srta|herr|frau|m)\b\.?)*\s*$"
)
# said in a sentence, or an honorific: any capitalised name
_SAID_NAME_LABEL = re.compile(
    r"(?:my (?:full )?name is|my name's|je m'appelle|mon nom est|ich hei(?:ß|ss)e|mein name ist|"
    r"me llamo|mi nombre es|me chamo|meu nome é|mi chiamo|il mio nome è|mijn naam is|ik heet|"
    r"私の名前は|\b(?:mr|mrs|ms|miss|mx|dr|dra|prof|herr|frau|monsieur|madame|mme|mlle|señor|"
    r"señora|sr|sra|srta|signor|signora|dott)\.?)" + _TITLE_RUN
)
# a form's or a record's key: a name that ends its field ("Name: Jane Doe", "name": "Jane Doe"),
# not the first word of a description ("theme_name: Get from the popup")
_FORM_NAME_LABEL = re.compile(
    r"(?:name\"?\s*(?:[:：]|- )\s*\"?|\b(?:nom|nombre|nome|naam|nachname|cognome|complet[oa]?)"
    r"\"?\s*(?:[:：]|- )\s*\"?|(?:patient|customer|employee)\s*(?:[:：]|- )\s*|"
    r"氏名\s*[:：]?|名前\s*[:：]?)" + _TITLE_RUN
)
_ENDS_FIELD = re.compile(r"\s*(?:$|[\n\r,;\"'|)(\t]|\.(?:\s|$)| \()")
# a greeting that starts its line: "Hi Wakeeta," names whoever it greets
_GREETING_LINE = re.compile(
    r"\s*(?:dear|hi|hello|hey|hallo|bonjour|hola|ciao|liebe[r]?|sehr geehrter?(?: frau| herr)?|"
    r"cher|chère|estimad[oa]|querid[oa]|olá|prezad[oa]|gentile|beste|geachte|hoi)\s*,?\s*",
    re.IGNORECASE,
)
_ENDS_LINE = re.compile(r"[ \t]*[,!.:]?[ \t]*(?:\r?\n|$)")
_TITLES_ONLY = re.compile(_TITLE_RUN, re.IGNORECASE)  # "Ing. " before a signature's name
# who introduces themselves: "This is Dana Williams from accounts", "this is Priya here"
_INTRODUCED = re.compile(r"\bthis is\s*$")
_INTRODUCED_AFTER = re.compile(r",?[ \t]+(?:from|at|with|here|speaking|calling)\b")


_NAME_PARTS = re.compile(r"[\s'’-]+")
_NOT_SURNAMES = NOT_NAMES - SURNAMES_TOO


def name_valid(text: str) -> bool:
    """No word of it says team, firm or tool, but for surnames that are also such words after
    a first one ("Corinne Parent", "Luiza Sales"; never "Dear Parent", "Sales Team")."""
    first, *rest = _NAME_PARTS.split(text)
    return first not in NOT_NAMES and _NOT_SURNAMES.isdisjoint(rest)


def name_in_context(text: str, start: int, end: int) -> bool:
    """After "my name is", "Name:" or an honorific, any capitalised name. After a greeting or
    a sign-off ("Dear Sir" and "Thanks, Team" are not people), a known first name, or a
    name alone on its line: the greeting's ("Hi Wakeeta,") or the signature's
    ("Regards,\nJake Ellis")."""
    head = before(text, start, 32)
    if _SAID_NAME_LABEL.search(head):
        return True
    if _FORM_NAME_LABEL.search(head):
        return bool(_ENDS_FIELD.match(text, end))
    words = text[start:end].split()
    if _INTRODUCED.search(head):  # (not "This is Python 3", "this is Monday")
        return bool(_INTRODUCED_AFTER.match(text, end)) and (
            len(words) > 1 or words[0] in FIRST_NAMES
        )
    if words[0] in FIRST_NAMES:
        return True
    if not _ENDS_LINE.match(text, end):
        return False
    line = text[text.rfind("\n", 0, start) + 1 : start]
    if _TITLES_ONLY.fullmatch(line):  # a signature: two words at least ("Regards,\nHendriks"
        return len(words) > 1  # is a firm), maybe after titles ("Ing. Kirstin Fiebig")
    return bool(_GREETING_LINE.fullmatch(line))


# a column of names: its heading says whose ("full_name", "Nachname", "氏名"); a bare "name"
# also heads products and hosts, so it counts only beside a column of personal data
_NAME_HEADING = re.compile(
    r"\W*(?:(?:full|customer|client|contact|employee|patient|person|first|last|given|family|"
    r"middle|legal|holder|owner|member|student|applicant|guest|passenger|recipient|sender|"
    r"account holder|card ?holder|beneficiary|billing|shipping) ?name|surname|nachname|vorname|"
    r"vor und nachname|prénom|nom complet|nom et prénom|apellidos?|nombre completo|"
    r"nome completo|nome e cognome|cognome|achternaam|voornaam|volledige naam|氏名|名前)\W*"
)
# a piece of every heading above: where none lies in the rows above a cell, no heading is
# read (a 64 KB CSV of names took 0.9 s without); looked for in those rows alone, as few
# cells are candidates (a pass over the whole text for Cues took 1.5 ms a 64 KB)
_NAME_HEADING_PIECES = ("name", "nom", "naam", "apellido", "氏名", "名前")
_BARE_NAME_HEADING = re.compile(r"\W*(?:name|nom|nombre|nome|naam)\W*")
_PERSONAL_HEADING = re.compile(
    r"e ?mail|phone|mobile|\btel|address|street|\bdob\b|birth|\bssn\b|passport|\biban\b|"
    r"gender|\bage\b|adresse|telefon|geburt|naissance|nacimiento|nascita|nascimento|"
    r"geboorte|correo|courriel|dirección|endereço|indirizzo|adres\b|住所|電話|生年月日|"
    r"\b(?:cpf|dni|nie|bsn|nir|aadhaar|codice fiscale|steuer)"
)
# the first line of an address under a name (a shipping label, a letter's head): a house
# number ("5300", "38/65", "Flat 45"), then after a comma a postal code ("NV 29555",
# "57313 Vilsbiburg", "3809 JD", "B7 2FN", "Mumbai-286347", "26499-807"); what the street
# detector takes as a street ("rue de Perret", "岩手県…7丁目24番12号") needs neither
_HOUSE_NUMBER = re.compile(r"[^\n]{0,60}?(?<![\w/.-])\d{1,5}(?:[/-]\d{1,5})?[A-Za-z]?(?![\w/-])")
_POSTCODE = re.compile(
    r"[^\n]{0,100}?,[ \t]*(?:[A-Z][\w-]*[ \t]+|[A-Z][a-z]+-(?=\d))*(?:[A-Z]{2}[ \t]+)?"
    r"(?:\d{5}(?:-\d{3,4})?|\d{6}|\d{8}|\d{4}[ \t]?[A-Z]{2}|[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2})"
    r"(?![\w-])"
)


def _heading_piece_above(text: str, line_start: int) -> bool:
    """A piece of a name column's heading lies in the rows above the line."""
    above = text[max(0, line_start - _ABOVE) : line_start].lower()
    return any(piece in above for piece in _NAME_HEADING_PIECES)


def _row_above(text: str, line_start: int, line_end: int) -> bool:
    """The line is a row of a table: it has commas, and the line above as many or more (a
    row or the heading), as "Contributors: Jacob Berkman, Abel Cheung" has not."""
    commas = len(_commas(text[line_start:line_end]))
    if not commas or line_start == 0:
        return False
    above = text.rfind("\n", max(0, line_start - 1 - _LONGEST_ROW), line_start - 1) + 1
    return len(_commas(text[above : line_start - 1])) >= commas


def name_in_cell(text: str, start: int, end: int, street: re.Pattern[str]) -> bool:
    """A name alone in a cell or on its line counts under a column heading that names
    people ("full_name"; "name" beside "email" or "phone"), or alone on its line after a
    blank one with an address on the next (a shipping label; not a town's or an office's
    heading): capitalised words alone are titles, products and headings as often."""
    line_start, line_end = _line(text, start)
    row = None
    if (
        line_end - line_start <= _LONGEST_ROW  # (a long line is no row: see column_heading)
        and _row_above(text, line_start, line_end)  # (the cues cost a pass over the text)
        and _heading_piece_above(text, line_start)
    ):
        row = _row_heading(text, line_start, line_end)
    if row is not None:
        commas, heading = row
        cell = _normal(heading[bisect_left(commas, start - line_start)])
        if _NAME_HEADING.fullmatch(cell):
            return True
        if _BARE_NAME_HEADING.fullmatch(cell):
            return any(_PERSONAL_HEADING.search(_normal(h)) for h in heading) or (
                text[start:end].split()[0] in FIRST_NAMES
            )
        return False
    if line_start < 2 or text[line_start - 2] != "\n" or not _ENDS_LINE.match(text, end):
        return False  # (not alone after a blank line)
    words = text[start:end].split()
    if words[0] in PLACE_WORDS or words[-1] in PLACE_WORDS:
        return False  # an office's address under its town or its kind
    below = line_end + 1
    if street.match(text, below):
        return True
    number = _HOUSE_NUMBER.match(text, below)
    return number is not None and bool(_POSTCODE.match(text, number.end()))


# what 様 follows without naming anyone: 仕様 (a specification), 同様, 多様, 模様, 皆様 (everyone),
# 担当者様 (whoever is in charge)...; and お客様, ご家族様 (customers, family: an honorific prefix)
_NOT_JA_NAME_ENDS = frozenset("仕同多模異態客皆神王奥者方各殿左貴有文紋外上若姫仏社位員長生主族")


def ja_name_in_context(text: str, start: int, end: int) -> bool:
    """A name before と申します, or alone on a letter's line before 様, but not a word that
    様 makes polite (お客様, 仕様, 皆様)."""
    if text.startswith("と申します", end):
        return True
    name = text[start:end]
    if name[0] in "おご" or name[-1] in _NOT_JA_NAME_ENDS:
        return False
    return start == 0 or text[start - 1] == "\n"  # (a greeting's line)


for _cache in (_cue_starts, _lowered, _row_heading, _layout, _valid_in):
    forget_after_each_scan(_cache.cache_clear)  # no prompt, row or number kept past its scan
