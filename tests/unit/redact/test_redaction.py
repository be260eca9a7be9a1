"""The redactor: the labelled corpus in the three main API formats, the shapes of request
bodies, profile validation, and `aiwarden redact`."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, SHIPPED_CATALOG, assert_error, errors_of

from proxy.policy.loader import load_policy
from proxy.policy.yamlsource import Problems, load_yaml
from proxy.redact.bodies import FileBlocked, Unparseable, redact_body
from proxy.redact.builtin import BUILTIN
from proxy.redact.detectors import redact_text, scan
from proxy.redact.profiles import RedactionProfile, parse_profiles

CORPUS = DATA / "redaction_corpus.yaml"


def corpus():
    problems = Problems()
    doc = load_yaml(CORPUS, problems)
    profiles = parse_profiles(_as_profiles(doc["profile"]), problems)
    assert not problems, problems.items
    return profiles["corpus"], doc["cases"]


def _as_profiles(spec):
    from proxy.policy.yamlsource import Mapping

    node = Mapping(corpus=spec)
    node.file, node.line, node.key_lines, node.value_lines = str(CORPUS), 1, {}, {}
    return node


PROFILE, CASES = corpus()
ALL = RedactionProfile("all", BUILTIN)


def openai_body(text):
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": [{"type": "text", "text": text}]},
        ],
    }


def anthropic_body(text):
    return {
        "model": "claude-test-model",
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    }


def gemini_body(text):
    return {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }


FORMATS = {"openai": openai_body, "anthropic": anthropic_body, "gemini": gemini_body}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CASES, ids=[c["text"][:40] for c in CASES])
def test_corpus(case, fmt):
    raw = json.dumps(FORMATS[fmt](case["text"])).encode()
    result = redact_body(raw, "application/json", PROFILE)
    found = [kind for kind, n in result.counts.items() for _ in range(n)]
    assert sorted(found) == sorted(case["expect"])
    if not case["expect"]:
        assert result.body == raw  # a near-miss is passed on byte for byte
        return
    sent = json.loads(result.body)
    original = FORMATS[fmt](case["text"])
    assert _shape(sent) == _shape(original)  # same keys, same structure, same non-text values
    for kind in case["expect"]:
        assert f"[REDACTED:{kind}]" in result.body.decode()


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


def test_corpus_is_large_enough():
    assert len(CASES) * len(FORMATS) >= 200
    assert sum(1 for c in CASES if not c["expect"]) >= 30
    found = {kind for c in CASES for kind in c["expect"]}
    assert {d.finds for d in BUILTIN} <= found, "every kind has positive cases"


def test_every_detector_alone_finds_a_positive_case_of_its_kind():
    # (several detectors may find one kind: person-name after a label, in a cell, before 様)
    positives = [c["text"] for c in CASES if c["expect"]]
    for d in BUILTIN:
        found = (f.type for text in positives for f in scan(text, (d,)))
        assert d.finds in found, f"{d.id} finds no positive case of the corpus"


# -- the shapes of bodies ----------------------------------------------------------------------

SECRET = "AKIAIOSFODNN7EXAMPLE"
IMAGE = base64.b64encode(bytes(range(256)) * 4).decode()


def redact_json(doc, profile=ALL):
    result = redact_body(json.dumps(doc).encode(), "application/json", profile)
    return json.loads(result.body), result


def test_structural_fields_and_base64_media_are_never_altered():
    doc = {
        "model": SECRET,
        "role": SECRET,
        "id": SECRET,
        "tool_call_id": SECRET,
        "previous_response_id": SECRET,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}},
                    {"type": "input_audio", "input_audio": {"data": IMAGE, "format": "wav"}},
                    {"type": "text", "text": f"see {SECRET}"},
                ],
            }
        ],
    }
    sent, result = redact_json(doc)
    assert sent["model"] == sent["role"] == sent["id"] == sent["tool_call_id"] == SECRET
    assert sent["messages"][0]["content"][0]["image_url"]["url"].endswith(IMAGE)
    assert sent["messages"][0]["content"][1]["input_audio"]["data"] == IMAGE
    assert sent["messages"][0]["content"][2]["text"] == "see [REDACTED:aws-access-key]"
    assert result.findings == [("$.messages[0].content[2].text", "aws-access-key", 4, 24)]


def test_openai_tool_calls_and_responses_api():
    doc = {
        "model": "gpt-4o",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": f"k={SECRET}"}]},
            {"type": "function_call_output", "call_id": "c1", "output": f"found {SECRET}"},
        ],
        "instructions": "mail bob@corp.example",
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"key": SECRET})},
                    }
                ],
            }
        ],
    }
    sent, result = redact_json(doc)
    assert SECRET not in json.dumps(sent) and "bob@corp.example" not in json.dumps(sent)
    arguments = json.loads(sent["messages"][0]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"key": "[REDACTED:aws-access-key]"}  # still valid JSON inside
    assert result.counts == {"aws-access-key": 3, "email": 1}


def test_anthropic_system_blocks_tool_results_and_documents():
    doc = {
        "model": "claude-test-model",
        "system": [{"type": "text", "text": f"ctx {SECRET}"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "ssn 536-22-1842"}],
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "q",
                        "input": {"query": "bob@corp.example"},
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "text",
                            "media_type": "text/plain",
                            "data": f"notes: {SECRET}",
                        },
                    },
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": IMAGE},
                    },
                ],
            }
        ],
    }
    sent, result = redact_json(doc)
    assert result.counts == {"aws-access-key": 2, "us-ssn": 1, "email": 1}
    assert sent["messages"][0]["content"][0]["tool_use_id"] == "toolu_1"
    assert sent["messages"][0]["content"][3]["source"]["data"] == IMAGE


def test_gemini_snake_case_and_inline_data():
    doc = {
        "system_instruction": {"parts": [{"text": f"use {SECRET}"}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "card 4111 1111 1111 1111"},
                    {"inline_data": {"mime_type": "image/jpeg", "data": IMAGE}},
                    {"functionResponse": {"name": "f", "response": {"out": "bob@corp.example"}}},
                ],
            }
        ],
    }
    sent, result = redact_json(doc)
    assert result.counts == {"aws-access-key": 1, "payment-card": 1, "email": 1}
    assert sent["contents"][0]["parts"][1]["inline_data"]["data"] == IMAGE


def test_bedrock_converse_and_cohere():
    converse = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": f"k {SECRET}"},
                    {
                        "toolResult": {
                            "toolUseId": "t",
                            "content": [{"json": {"v": "bob@corp.example"}}],
                        }
                    },
                ],
            }
        ],
        "system": [{"text": "ssn 536-22-1842"}],
    }
    cohere = {
        "model": "command-r",
        "message": f"k {SECRET}",
        "preamble": "mail a@b.example",
        "chat_history": [{"role": "USER", "message": "ssn 536-22-1842"}],
    }
    assert redact_json(converse)[1].counts == {"aws-access-key": 1, "email": 1, "us-ssn": 1}
    sent, result = redact_json(cohere)
    assert result.counts == {"aws-access-key": 1, "email": 1, "us-ssn": 1}
    assert sent["chat_history"][0]["role"] == "USER"


def test_unknown_json_shapes_have_every_string_redacted():
    sent, _ = redact_json({"deeply": [{"nested": {"free": [f"x {SECRET}"]}}], "n": 5})
    assert sent == {"deeply": [{"nested": {"free": ["x [REDACTED:aws-access-key]"]}}], "n": 5}


def test_form_bodies():
    raw = f"model=x&q=my+key+{SECRET}&empty=".encode()
    result = redact_body(raw, "application/x-www-form-urlencoded", ALL)
    assert result.body == b"model=x&q=my+key+%5BREDACTED%3Aaws-access-key%5D&empty="


def multipart(file_type: str, file_body: bytes) -> bytes:
    return (
        b'--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nmail bob@corp.ex'
        b'ample\r\n--B\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
        b"Content-Type: " + file_type.encode() + b"\r\n\r\n" + file_body + b"\r\n--B--\r\n"
    )


def test_multipart_text_parts_and_text_files_are_redacted():
    raw = multipart("text/plain", f"key {SECRET}\n".encode())
    result = redact_body(raw, "multipart/form-data; boundary=B", ALL)
    assert result.counts == {"email": 1, "aws-access-key": 1}
    assert b"[REDACTED:email]\r\n--B\r\n" in result.body
    assert result.body.endswith(b"key [REDACTED:aws-access-key]\n\r\n--B--\r\n")


def test_multipart_binary_files_pass_and_files_block_refuses():
    binary = bytes(range(256))
    result = redact_body(multipart("image/png", binary), "multipart/form-data; boundary=B", ALL)
    assert binary in result.body and result.counts == {"email": 1}
    blocking = RedactionProfile("b", BUILTIN, files="block")
    with pytest.raises(FileBlocked):
        redact_body(multipart("text/plain", b"hi"), "multipart/form-data; boundary=B", blocking)
    passing = RedactionProfile("p", BUILTIN, files="pass")
    raw = multipart("text/plain", SECRET.encode())
    assert SECRET.encode() in redact_body(raw, "multipart/form-data; boundary=B", passing).body


@pytest.mark.parametrize(
    "raw, ctype",
    [
        (b"{oops", "application/json"),
        (b"\xff\xfe", "text/plain"),
        (b"\x00\x01", "application/octet-stream"),
        (b"a=%zz&&", "application/x-www-form-urlencoded"),
        (b"--B\r\nno end", "multipart/form-data; boundary=B"),
        (b"x", "multipart/form-data"),
        (b"[" * 100000, "application/json"),
    ],
)
def test_unreadable_bodies_raise_unparseable(raw, ctype):
    with pytest.raises(Unparseable):
        redact_body(raw, ctype, ALL)


# -- profiles in the policy ----------------------------------------------------------------------


def profile_policy(profile: str, rule_extra: str = "    action: redact") -> str:
    return (
        f"version: 1\nredaction_profiles:\n{profile}rules:\n  - id: r\n"
        f"    match: {{services: [openai-api]}}\n{rule_extra}\n"
    )


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        (
            profile_policy("  default:\n    detectors: [secret, pii]\n"),
            5,
            "unknown detector 'secret' (did you mean 'secrets'?)",
        ),
        (
            profile_policy(
                "  default:\n    detectors: [pii]\n    custom:\n"
                "      - {id: t, pattern: 'CORP-[0-9'}\n"
            ),
            7,
            "'pattern' is not a valid regular expression",
        ),
        (
            profile_policy("  default:\n    custom:\n      - {id: t, pattern: 'x*'}\n"),
            6,
            "'pattern' matches the empty string",
        ),
        (
            profile_policy("  default:\n    custom:\n      - {id: email, keywords: [a]}\n"),
            6,
            "id 'email' is already a detector's name",
        ),
        (
            profile_policy("  default:\n    custom:\n      - {id: t, keywords: [a], pattern: b}\n"),
            6,
            "give exactly one of 'keywords' and 'pattern'",
        ),
        (
            profile_policy("  default:\n    detectors: [pii]\n    max_body_bytes: 0\n"),
            6,
            "'max_body_bytes' must be at least 1",
        ),
        (
            profile_policy("  default:\n    detectors: [pii]\n    on_unparseable: drop\n"),
            6,
            "'on_unparseable' must be one of block, pass",
        ),
        (
            profile_policy("  default:\n    replacment: x\n    detectors: [pii]\n"),
            5,
            "unknown key 'replacment' (did you mean 'replacement'?)",
        ),
        (
            profile_policy("  strict:\n    detectors: [pii]\n"),
            9,
            "action: redact needs a redaction",
        ),
        (
            profile_policy(
                "  strict:\n    detectors: [pii]\n", "    action: redact\n    redact: strikt"
            ),
            10,
            "unknown redaction profile 'strikt' (did you mean 'strict'?)",
        ),
        (
            profile_policy(
                "  strict:\n    detectors: [pii]\n", "    action: block\n    redact: strict"
            ),
            10,
            "'redact' names a profile for action: redact only",
        ),
        (profile_policy("  empty: {}\n"), 4, "no detectors"),
        (
            profile_policy("  default:\n    detectors: [pii.extend]\n"),
            5,
            "unknown detector 'pii.extend' (did you mean 'pii.extended'?)",
        ),
        (
            profile_policy(
                "  default:\n    detectors: [pii]\n    phone_regions:\n      - GB\n      - UK\n"
            ),
            8,
            "unknown phone region 'UK' (the United Kingdom's code is 'GB')",
        ),
        (
            profile_policy("  default:\n    detectors: [secrets]\n    phone_regions: [GB]\n"),
            6,
            "'phone_regions' needs the phone detector in 'detectors'",
        ),
    ],
)
def test_profile_errors(write_policy, text, line, fragment):
    assert_error(errors_of(write_policy, text), line, fragment)


def test_the_rule_gets_the_default_profile(write_policy):
    policy = load_policy(write_policy(profile_policy("  default:\n    detectors: [pii]\n")))
    assert policy.rules[0].redact == "default"
    assert [d.id for d in policy.redaction_profiles["default"].detectors] == [
        "email",
        "phone",
        "payment-card",
        "iban",
        "us-ssn",
        "uk-nino",
        "de-tax-id",
        "fr-nir",
        "es-dni",
        "it-fiscal-code",
        "nl-bsn",
        "in-aadhaar",
        "br-cpf",
        "passport",
        "date-of-birth",
        "ip-address",
    ]  # not pii.extended: person-name and street-address run only when named


def profile_of(write_policy, spec: str) -> RedactionProfile:
    return load_policy(write_policy(profile_policy(spec))).redaction_profiles["default"]


def test_names_and_addresses_run_only_when_a_profile_names_them(write_policy):
    text = "My name is Priya Sharma, I live at 42 Elm Road; DOB: 1985-03-14"
    plain = profile_of(write_policy, "  default:\n    detectors: [pii]\n")
    named = profile_of(write_policy, "  default:\n    detectors: [pii, pii.extended]\n")
    assert redact_text(text, plain.detectors, "[{type}]")[0] == (
        "My name is Priya Sharma, I live at 42 Elm Road; DOB: [date-of-birth]"
    )
    assert redact_text(text, named.detectors, "[{type}]")[0] == (
        "My name is [person-name], I live at [street-address]; DOB: [date-of-birth]"
    )


def test_a_family_names_its_detectors_precise_or_not(write_policy):
    network = profile_of(write_policy, "  default:\n    detectors: [pii.network]\n")
    identity = profile_of(write_policy, "  default:\n    detectors: [pii.identity]\n")
    assert [d.id for d in network.detectors] == ["ip-address"]
    assert [d.id for d in identity.detectors] == [
        "date-of-birth",
        "person-name",
        "person-name-cell",
        "person-name-ja",
    ]


def test_a_kind_found_in_several_shapes_is_named_once(write_policy):
    csv = "id,full_name,email\n1,Dana Whitfield,dana@example.com\n"
    by_kind = profile_of(write_policy, "  default:\n    detectors: [person-name]\n")
    shapes = ["person-name", "person-name-cell", "person-name-ja"]
    assert [d.id for d in by_kind.detectors] == shapes
    text, findings = redact_text(csv, by_kind.detectors, "[REDACTED:{type}]")
    assert [f.type for f in findings] == ["person-name"]  # found by person-name-cell
    assert "1,[REDACTED:person-name],dana@" in text
    # control: one shape named by its id is that detector alone
    cell = profile_of(write_policy, "  default:\n    detectors: [person-name-ja]\n")
    assert [d.id for d in cell.detectors] == ["person-name-ja"]
    assert redact_text(csv, cell.detectors, "[REDACTED:{type}]")[1] == []


def test_phone_regions_take_national_formats_with_no_country_named(write_policy):
    # bare national digits (no "phone", "call"... and not written in groups: any plan would do)
    text = "try 07911123456 or 01711234567"
    default = profile_of(write_policy, "  default:\n    detectors: [phone]\n")
    uk = profile_of(write_policy, "  default:\n    detectors: [pii]\n    phone_regions: [gb]\n")
    assert redact_text(text, default.detectors, "[{type}]")[0] == text
    assert redact_text(text, uk.detectors, "[{type}]")[0] == "try [phone] or 01711234567"
    assert len(uk.detectors) == len(profile_of(write_policy, "  default:\n    detectors: [pii]\n"
                                                ).detectors)  # fmt: skip


@pytest.mark.parametrize(
    "number, is_card",
    [
        ("4222222222222", True),  # Visa 13
        ("4012888888881881", True),  # Visa 16
        ("4111111111111111110", True),  # Visa 19
        ("411111111111116", False),  # Visa has no 15
        ("5555555555554444", True),  # Mastercard 16
        ("5105105105102", False),  # Mastercard has no 13
        ("2223000048400011", True),  # Mastercard 2-series
        ("378282246310005", True),  # Amex 15
        ("3782822463100052", False),  # Amex has no 16 (Luhn-valid)
        ("6011000990139424", True),  # Discover
        ("36227206271667", True),  # Diners 14
        ("3530111333300000", True),  # JCB 16
        ("353011133330000125", True),  # JCB 18
        ("3528000000007", False),  # JCB has no 13
        ("675964982648", True),  # Maestro 12
        ("6200000000000005", True),  # UnionPay 16
        ("2200000000000004", True),  # Mir 16
        ("1234567890128", False),  # no brand starts with 1
        ("4111111111111112", False),  # Luhn fails
    ],
)
def test_a_card_needs_a_brand_of_its_length_and_luhn(number, is_card):
    from proxy.redact.personal_checks import card_valid, luhn_valid

    assert card_valid(number) is is_card
    if not is_card and number != "4111111111111112":
        assert luhn_valid(number), "the near-miss must fail on brand or length, not Luhn"


# -- the command line ----------------------------------------------------------------------------


def test_aiwarden_redact_prints_the_body_and_explains_without_values(write_policy):
    path = write_policy(profile_policy("  default:\n    detectors: [secrets, pii]\n"))
    body = json.dumps(openai_body(f"use {SECRET} and mail bob@corp.example"))
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "aiwarden"),
            "redact",
            "--policy",
            str(path),
            "--url",
            "https://api.openai.com/v1/chat/completions",
            "--explain",
        ],
        input=body,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    sent = json.loads(r.stdout)
    assert sent["messages"][1]["content"][0]["text"] == (
        "use [REDACTED:aws-access-key] and mail [REDACTED:email]"
    )
    assert r.stderr.splitlines() == [
        "profile default: 2 found",
        "  aws-access-key             $.messages[1].content[0].text [4:24]",
        "  email                      $.messages[1].content[0].text [34:50]",
    ]
    assert SECRET not in r.stderr and "bob@" not in r.stderr
    assert SHIPPED_CATALOG.exists()


# -- the keyword index finds what the plain search finds ------------------------------------


def test_hyperscan_keyword_index_finds_exactly_what_the_plain_search_finds(monkeypatch):
    from proxy.redact import detectors

    if detectors.hyperscan is None:
        pytest.skip(
            "hyperscan is not installed (it is an x86-64 dependency); the plain "
            "search is the only path here"
        )
    filler = "\nSome ordinary prose about access keys, tokens and passwords.\n" * 3
    # (not the truncated private key: with no END line it rightly runs to the end of the text)
    cases = [c for c in CASES if c["text"].isascii() and "truncated" not in c["text"]]
    text = filler.join(c["text"] for c in cases) + filler
    assert len(text) > detectors.KeywordIndex.MIN_TEXT and text.isascii()
    indexed = detectors.scan(text, PROFILE.detectors)
    monkeypatch.setattr(detectors, "hyperscan", None)
    plain = detectors.scan(text, PROFILE.detectors)
    assert indexed == plain
    expected = sum(len(c["expect"]) for c in cases)
    assert len(indexed) >= expected


def test_hyperscan_finds_the_same_in_text_that_is_not_ascii(monkeypatch):
    from proxy.redact import detectors

    if detectors.hyperscan is None:
        pytest.skip("hyperscan is not installed (it is an x86-64 dependency)")
    # keywords that are not ASCII either: their hits are in bytes ("生年月日" is 12 of them)
    filler = "\nGrüße aus München, née à Zürich — 東京の電話 ✓ Straße 5 生年月日 氏名\n" * 3
    cases = [c for c in CASES if "truncated" not in c["text"]]
    text = filler.join(c["text"] for c in cases) + filler
    assert len(text) > detectors.KeywordIndex.MIN_TEXT and not text.isascii()
    indexed = detectors.scan(text, PROFILE.detectors)
    monkeypatch.setattr(detectors, "hyperscan", None)
    assert indexed == detectors.scan(text, PROFILE.detectors)
    assert len(indexed) >= sum(len(c["expect"]) for c in cases)


def test_a_truncated_private_key_is_redacted_up_to_the_prose_after_it():
    text = (
        "here:\n-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oOBj0ZgZfw6loAoGCCqGSM49\nAwEHoUQDQgAE\n"
        "Please review this, thanks"
    )
    out, _ = redact_text(text, BUILTIN, "[R]")
    assert out == "here:\n[R]\nPlease review this, thanks"


def test_a_truncated_key_never_reaches_for_the_end_line_of_a_later_one():
    truncated = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZp\n"
    complete = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
    text = f"first:\n{truncated}Between them, mail bob@corp.example please.\n{complete}\nend"
    out, _ = redact_text(text, BUILTIN, "[R:{type}]")
    assert out == (
        "first:\n[R:private-key]\nBetween them, mail [R:email] please.\n[R:private-key]\nend"
    )


# -- secret families and checksums (issue 21) --------------------------------------------------


def test_a_profile_can_choose_families_of_secrets(write_policy):
    policy = load_policy(
        write_policy(profile_policy("  default:\n    detectors: [secrets.chat, github-token]\n"))
    )
    chosen = [d.id for d in policy.redaction_profiles["default"].detectors]
    assert chosen[-1] == "github-token"
    assert {"slack-token", "telegram-bot-token", "discord-webhook"} <= set(chosen)
    assert {d.family for d in BUILTIN if d.id in chosen[:-1]} == {"secrets.chat"}


def test_an_unknown_family_is_a_one_line_error_with_a_suggestion(write_policy):
    text = profile_policy("  default:\n    detectors: [secrets.chatt]\n")
    assert_error(errors_of(write_policy, text), 5, "unknown detector 'secrets.chatt' (did you mean")


def test_every_secret_detector_has_a_family_and_a_keyword_or_anchor():
    for d in BUILTIN:
        if d.group == "secrets":
            assert d.family, d.id
            assert d.keywords or d.keywords_folded or d.digits, f"{d.id} runs on every text"


@pytest.mark.parametrize("prefix", ["ghp", "npm"])
def test_a_token_with_a_valid_checksum_is_found_even_when_it_looks_regular(prefix):
    from proxy.redact.secret_detectors import base62_crc32

    body = "aaaaaaaaaabbbbbbbbbbaaaaaaaaaa"  # a run no entropy check would let through...
    valid = f"{prefix}_{body}{base62_crc32(body)}"  # ...but its CRC32 says it is real
    forged = f"{prefix}_{body}aaaaaa"
    _, found = redact_text(f"token {valid} and {forged}", BUILTIN, "[R]")
    assert [(f.start, f.end) for f in found] == [(6, 6 + len(valid))]


def test_a_dotted_value_that_is_no_name_is_judged_without_backtracking():
    # Telling a reference (settings.SECRET_KEY) from a token was exponential in the length of
    # a run of capitals: this value took longer than the test run. It is no name: a secret.
    value = "cfg." + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefABCDEF1x" * 3
    out, _ = redact_text(f"api_key = {value}", BUILTIN, "[R:{type}]")
    assert out == "api_key = [R:generic-secret]"
    out, _ = redact_text("api_key = settings.OPENAI_API_KEY", BUILTIN, "[R:{type}]")
    assert out == "api_key = settings.OPENAI_API_KEY"
