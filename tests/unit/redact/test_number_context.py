"""Numbers whose surroundings say what they are (issue 21's clean prompts of math, data
exports and engineering pastes): an operand of arithmetic, a barcode or a quantity under its
label, a JSON id, the bytes of a hex dump, a version under its key. The same numbers with a
label of their own kind are still found."""

from __future__ import annotations

import pytest
from conftest import SHIPPED

from proxy.policy.loader import load_policy
from proxy.redact.detectors import scan
from proxy.redact.personal_checks import Cues, luhn_valid

PROFILE = load_policy(SHIPPED).redaction_profiles["default"]
VISA_16, EAN_LUHN = "4012888888881881", "4002020202026"  # both pass Luhn; the EAN its own check


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in scan(text, PROFILE.detectors)]


def test_the_examples_pass_luhn_so_only_their_context_tells():
    assert luhn_valid(VISA_16) and luhn_valid(EAN_LUHN)


@pytest.mark.parametrize(
    "text",
    [
        "Multiply 3125550198 × 12 and round to the nearest thousand.",
        "Is gcd(2125550143, 97) = 1? Use the Euclidean algorithm.",
        "My calculator says 2125550143 * 3 = 6376650429.",
        "What is 7 * 11 = 77, and 3125550198 ÷ 2?",
        "With e = 65537 and n = 3125550198, φ(n) = 2125550143: find d.",
        "Is 48213947 divisible by 3125550198? And 9 divided by 2125550143?",
        "I got 3125550198 = 2 × 1562775099. Is that all of it?",
        f"Why is {VISA_16} mod 97 so slow in my bignum code?",
        f"00000010: {VISA_16[:4]} {VISA_16[4:8]} {VISA_16[8:12]} {VISA_16[12:]} 0a0b 0c0d  "
        "................",
        f'{{"id": {VISA_16}, "type": "shipment", "parcels": 2}}',
        f"sku,ean,qty\nA-17,{EAN_LUHN},3\nA-18,4001234567891,9",
        f"barcode: {EAN_LUHN}",
        "process_resident_memory_bytes 2125550143",
        'size=3125550198 cached=1 "total": 2125550143',
        '{"name": "agent", "assembly_version": "5.6.3.1"}',
        "file_version = '8.2.4.1'",
    ],
)
def test_a_number_its_surroundings_explain_is_left_alone(text):
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("my phone: 2125550143, call after six", "phone"),
        ("12 * 3 = 36; now call 2125550143", "phone"),
        ("tel = 2125550143", "phone"),
        (f"card {VISA_16[:4]} {VISA_16[4:8]} {VISA_16[8:12]} {VISA_16[12:]} exp 12/27",
         "payment-card"),
        (f'{{"card": "{VISA_16}", "amount": 12}}', "payment-card"),
        (f"paid with {EAN_LUHN}", "payment-card"),  # a Visa length and Luhn, no other label
        ('{"ip": "8.8.4.4", "version": "5.6.3.1"}', "ip-address"),
    ],
)  # fmt: skip
def test_the_same_numbers_labelled_as_their_kind_are_found(text, kind):
    assert [k for k, _ in found(text)] == [kind]


def test_cues_found_together_are_those_found_apart():
    """Cues.together scans once for several groups: each group's starts must be its own
    scan's, also for a piece in both groups, a piece not ASCII, and a text with İ."""
    regions = ("paris", "handy", "tél", "電話", "tokyo")
    labels = ("phone", "tel", "handy", "tél", "電話")
    texts = [
        "Call Paris: phone +33 1 23 45 67 89, tél. 01 23 45 67 89; handy 0151 2345678",
        "電話 03-1234-5678 (Tokyo), Telefon: 030 1234567 — İstanbul hotel",
        "no cue at all here 0151 2345678",
    ]
    together = Cues.together(regions, labels)
    for text in texts:
        apart = [Cues(*regions).starts(text), Cues(*labels).starts(text)]
        assert [cues.starts(text) for cues in together] == apart
    assert together[1].starts(texts[0])  # (a control: the pieces are found)
