"""The built-in detectors of personal data, and their validators: Luhn and brand lengths for
cards, mod-97 for IBANs, the SSA's rules for SSNs, libphonenumber for phone numbers."""

from __future__ import annotations

import re

import phonenumbers

from proxy.redact.detectors import Detector, detector

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


# -- detectors -------------------------------------------------------------------------------

DETECTORS: tuple[Detector, ...] = (
    detector("email", "pii",
       r"(?<![/\w.%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
       r"\.[A-Za-z]{2,24}\b", keywords=("@",), window=(70, 260)),
    detector("payment-card", "pii", r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-])",
             validate=card_valid, digits=(13, 19), window=(3, 3)),
    detector("iban", "pii", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
       validate=iban_valid, digits=(7, 34), after_letters=True,
       window=(34, 34)),
    detector("us-ssn", "pii", r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])", validate=ssn_valid,
       digits=(9, 9), window=(3, 3)),
    detector("phone", "pii", r"(?<![\w+.:-])\+?\(?\d[\d ().-]{6,18}\d(?![\w.:-])",
       validate=phone_valid, digits=(8, 15), window=(3, 3)),
)  # fmt: skip
