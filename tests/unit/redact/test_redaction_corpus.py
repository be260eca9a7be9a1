"""The generated redaction corpus (bench/redaction_corpus.py): every positive is valid by its
own format, re-checked here by functions of the test's own, its spans are right, the same
seed gives the same corpus; and `aiwarden redact --jsonl` gives the library's findings.

No recall is asserted here: the bench prints it (bench/redaction_bench.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import select
import struct
import subprocess
import sys
import zlib
from collections import Counter

import phonenumbers
import pytest
from conftest import ROOT, SHIPPED
from cryptography.hazmat.primitives import serialization

from proxy.policy.loader import load_policy
from proxy.redact.detectors import scan

sys.path.insert(0, str(ROOT / "bench"))

import redaction_corpus

SAMPLES = redaction_corpus.generate(seed=7, per_family=3, clean_count=40)
POSITIVES = [s for s in SAMPLES if s.group != "clean"]


def value(sample) -> str:
    (span,) = sample.spans
    return sample.text[span.start : span.end]


def of_kind(*names: str):
    return [s for s in POSITIVES if s.kind in names]


# -- the test's own checks of each published format ----------------------------------------------


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number][::-1]
    odd = sum(digits[0::2])
    even = sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return (odd + even) % 10 == 0


CARD_RULES = {  # brand: (prefix pattern, lengths)
    "visa": (r"4", {13, 16, 19}),
    "mastercard": (r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)", {16}),
    "amex": (r"3[47]", {15}),
    "discover": (r"6011|64[4-9]|65", {16, 19}),
    "diners": (r"3(?:0[0-5]|[68])", {14}),
    "jcb": (r"35(?:2[89]|[3-8]\d)", {16, 19}),
    "maestro": (r"5018|5020|5038|5893|6304|6759|676[1-3]", set(range(12, 20))),
    "unionpay": (r"62", set(range(16, 20))),
}


def iban_ok(text: str) -> bool:
    compact = text.replace(" ", "")
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def crc_checksum_ok(token: str, prefix: str) -> bool:
    body, check = token[len(prefix) : -6], token[-6:]
    return sum(BASE62.index(c) * 62**i for i, c in enumerate(reversed(check))) == zlib.crc32(
        body.encode()
    )


def bech32_ok(text: str) -> bool:
    text = text.lower()
    hrp, data = text.rsplit("1", 1)
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    values += ["qpzry9x8gf2tvdw0s3jn54khce6mua7l".index(c) for c in data]
    chk = 1
    for v in values:
        top, chk = chk >> 25, (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            if top >> i & 1:
                chk ^= g
    return chk == 1


def verhoeff_ok(number: str) -> bool:
    table = ["0123456789", "1234067895", "2340178956", "3401289567", "4012395678",
             "5987604321", "6598710432", "7659821043", "8765932104", "9876543210"]  # fmt: skip
    perm = ["0123456789", "1576283094", "5803796142", "8916043527",
            "9453126870", "4286573901", "2793806415", "7046913258"]  # fmt: skip
    c = 0
    for i, ch in enumerate(reversed(number.replace(" ", ""))):
        c = int(table[c][int(perm[i % 8][int(ch)])])
    return c == 0


def cpf_ok(text: str) -> bool:
    n = [int(c) for c in re.sub(r"\D", "", text)]
    first = sum(a * b for a, b in zip(n[:9], range(10, 1, -1), strict=True)) * 10 % 11 % 10
    second = sum(a * b for a, b in zip(n[:10], range(11, 1, -1), strict=True)) * 10 % 11 % 10
    return len(n) == 11 and n[9] == first and n[10] == second and len(set(n)) > 1


def steuer_id_ok(text: str) -> bool:
    n = re.sub(r"\D", "", text)
    counts = Counter(n[:10]).values()
    product = 10
    for c in n[:10]:
        product = ((int(c) + product) % 10 or 10) * 2 % 11
    return (
        len(n) == 11
        and n[0] != "0"
        and sorted(counts, reverse=True)[0] in (2, 3)
        and int(n[10]) == (11 - product) % 10
    )


def nir_ok(text: str) -> bool:
    n = re.sub(r"\D", "", text)
    return len(n) == 15 and int(n[13:]) == 97 - int(n[:13]) % 97 and n[0] in "12"


def dni_ok(text: str) -> bool:
    n = re.sub(r"\W", "", text)
    return "TRWAGMYFPDXBNJZSQVHLCKE"[int(n[:8]) % 23] == n[8]


def nino_ok(text: str) -> bool:
    n = text.replace(" ", "")
    return bool(re.fullmatch(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]", n)) and n[
        :2
    ] not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def ssn_ok(text: str) -> bool:
    n = re.sub(r"\D", "", text)
    return (
        len(n) == 9
        and n[:3] not in ("000", "666")
        and n[0] != "9"
        and n[3:5] != "00"
        and (n[5:] != "0000")
    )


def b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def ssh_strings(blob: bytes) -> list[bytes]:
    out = []
    while blob:
        (n,) = struct.unpack(">I", blob[:4])
        out.append(blob[4 : 4 + n])
        blob = blob[4 + n :]
    return out


def putty_ok(text: str) -> bool:
    lines = text.splitlines()
    header = dict(line.split(": ", 1) for line in lines if ": " in line)
    public_count = int(header["Public-Lines"])
    at = lines.index(f"Public-Lines: {public_count}")
    public = base64.b64decode("".join(lines[at + 1 : at + 1 + public_count]))
    private_at = at + 1 + public_count
    private_count = int(lines[private_at].split(": ")[1])
    private = base64.b64decode("".join(lines[private_at + 1 : private_at + 1 + private_count]))
    data = b"".join(struct.pack(">I", len(x)) + x for x in (
        header["PuTTY-User-Key-File-3"].encode(), header["Encryption"].encode(),
        header["Comment"].encode(), public, private))  # fmt: skip
    return hmac.compare_digest(
        header["Private-MAC"], hmac.new(b"", data, hashlib.sha256).hexdigest()
    )


PREFIXES = {
    "slack-bot": "xoxb-", "slack-user": "xoxp-", "slack-app": "xapp-1-", "slack-refresh": "xoxe-1-",
    "slack-config": "xoxe.xoxp-1-", "slack-legacy-workspace": "xoxa-2-", "slack-legacy": "xoxs-",
    "gitlab-glpat": "glpat-", "gitlab-gldt": "gldt-", "gitlab-glrt": "glrt-",
    "gitlab-glsoat": "glsoat-", "gitlab-glffct": "glffct-", "gitlab-glptt": "glptt-",
    "gitlab-runner-registration": "GR1348941", "gitlab-glcbt": "glcbt-",
    "github-fine-grained": "github_pat_", "stripe-secret": "sk_live_",
    "stripe-restricted": "rk_live_",
    "anthropic-api": "sk-ant-api03-", "anthropic-admin": "sk-ant-admin01-",
    "huggingface-user": "hf_", "google-api-key": "AIza", "sendgrid-api-key": "SG.",
    "digitalocean-dop": "dop_v1_", "databricks-token": "dapi", "postman-api-key": "PMAK-",
    "newrelic-user-key": "NRAK-", "linear-api-key": "lin_api_", "figma-pat": "figd_",
    "heroku-api-key": "HRKU-AA", "vault-service-token": "hvs.", "grafana-cloud-token": "glc_",
    "grafana-service-account": "glsa_", "shopify-shpat": "shpat_", "square-access-token": "EAAA",
    "twilio-api-key": "SK", "mailgun-api-key": "key-", "atlassian-api-token": "ATATT3",
}  # fmt: skip


# -- tests ---------------------------------------------------------------------------------------


def test_every_family_and_kind_is_generated_with_one_span_on_its_value():
    from corpus.personal_formats import KINDS as PERSONAL
    from corpus.secret_formats import KINDS as SECRETS

    assert {s.kind for s in POSITIVES} == {k.name for k in (*SECRETS, *PERSONAL)}
    families = Counter((s.group, s.family) for s in POSITIVES)
    assert all(n >= 3 for n in families.values()), families
    for s in POSITIVES:
        (span,) = s.spans
        assert 0 <= span.start < span.end <= len(s.text), s.id
        assert span.kind == s.kind
        assert value(s) == value(s).strip() and len(s.text) > len(value(s)), s.id
    assert len({s.id for s in SAMPLES}) == len(SAMPLES)


def test_clean_prompts_have_no_span_and_cover_every_class():
    from corpus.clean_text import CLEAN_CLASSES

    clean = [s for s in SAMPLES if s.group == "clean"]
    assert len(clean) == 40 and not any(s.spans for s in clean)
    assert {s.family for s in clean} == set(CLEAN_CLASSES)


def test_the_same_seed_gives_the_same_corpus_and_another_seed_another():
    again = redaction_corpus.generate(seed=7, per_family=3, clean_count=40)
    assert [s.to_json() for s in again] == [s.to_json() for s in SAMPLES]
    other = redaction_corpus.generate(seed=8, per_family=3, clean_count=40)
    assert sum(a.text != b.text for a, b in zip(other, SAMPLES, strict=True)) > len(SAMPLES) // 2


def test_cards_pass_luhn_with_their_brands_prefix_and_length():
    for s in of_kind(*(f"card-{b}" for b in CARD_RULES)):
        digits = re.sub(r"[ -]", "", value(s))
        prefix, lengths = CARD_RULES[s.kind.removeprefix("card-")]
        assert luhn_ok(digits) and re.match(prefix, digits) and len(digits) in lengths, s.id


def test_ibans_pass_mod_97_and_national_ids_their_check_digits():
    checks = {"iban": iban_ok, "in-aadhaar": verhoeff_ok, "br-cpf": cpf_ok,
              "de-steuer-id": steuer_id_ok, "fr-nir": nir_ok, "es-dni": dni_ok,
              "uk-nino": nino_ok, "ssn-dashes": ssn_ok, "ssn-spaces": ssn_ok,
              "ssn-plain": ssn_ok}  # fmt: skip
    seen = Counter()
    for s in of_kind(*checks):
        assert checks[s.kind](value(s)), (s.id, value(s))
        seen[s.kind] += 1
    assert set(seen) == set(checks)
    assert not iban_ok("DE89370400440532013001") and not verhoeff_ok("234567890123")


def test_phones_are_valid_numbers_of_their_locale():
    regions = {"US": "US", "UK": "GB", "DE": "DE", "FR": "FR", "IN": "IN", "BR": "BR", "JP": "JP"}
    phones = [s for s in POSITIVES if s.family == "phone"]
    assert {s.locale for s in phones} == set(regions)
    for s in phones:
        number = phonenumbers.parse(value(s), regions[s.locale])
        assert phonenumbers.is_valid_number(number), (s.id, value(s))
        assert phonenumbers.region_code_for_number(number) == regions[s.locale]


def test_ip_addresses_are_public():
    for s in of_kind("ipv4", "ipv6"):
        address = ipaddress.ip_address(value(s))
        assert address.is_global and not address.is_multicast


def test_checksummed_tokens_carry_their_checksums():
    for prefix in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"):
        for s in of_kind(f"github-{prefix[:-1]}"):
            assert len(value(s)) == 40 and crc_checksum_ok(value(s), prefix), s.id
    for s in of_kind("npm-token"):
        assert len(value(s)) == 40 and crc_checksum_ok(value(s), "npm_")
    for s in of_kind("age-secret-key"):
        assert value(s).startswith("AGE-SECRET-KEY-1") and bech32_ok(value(s))
    for s in of_kind("pypi-token"):
        raw = base64.urlsafe_b64decode(value(s)[5:] + "==")
        assert value(s).startswith("pypi-AgEIcHlwaS5vcmc") and raw.startswith(b"\x02\x01\x08pypi")
    assert not crc_checksum_ok("ghp_" + "a" * 36, "ghp_")


def test_tokens_have_their_published_prefixes():
    seen = set()
    for s in of_kind(*PREFIXES):
        assert value(s).startswith(PREFIXES[s.kind]) and not re.search(r"\s", value(s)), s.id
        seen.add(s.kind)
    assert seen == set(PREFIXES)
    for s in of_kind("openai-project", "openai-svcacct", "openai-admin", "openai-legacy"):
        assert "T3BlbkFJ" in value(s)
    for s in of_kind("azure-client-secret"):
        assert value(s)[4:6] == "Q~" and value(s)[3].isdigit() and len(value(s)) == 40


def test_jwts_decode_to_json_and_unsecured_ones_have_no_signature():
    for s in of_kind("jwt-signed", "jwt-unsecured"):
        header, payload, signature = value(s).split(".")
        assert isinstance(b64json(payload), dict)
        if s.kind == "jwt-unsecured":
            assert b64json(header) == {"alg": "none"} and signature == ""
        else:
            assert b64json(header)["alg"] == "HS256" and len(signature) == 43


def test_private_keys_load_and_the_putty_mac_verifies():
    for s in of_kind("pem-ec", "gcp-service-account-json"):
        text = value(s)
        if s.kind == "gcp-service-account-json":
            text = json.loads(f'"{text}"')
        assert serialization.load_pem_private_key(text.encode(), None)
    for s in of_kind("openssh"):
        assert serialization.load_ssh_private_key(value(s).encode(), None)
    for s in of_kind("putty"):
        assert putty_ok(value(s)), s.id
    for s in of_kind("pem-rsa"):
        body = "".join(value(s).splitlines()[1:-1])
        assert base64.b64decode(body).startswith(bytes.fromhex("308204a4020100"))


def test_credentials_in_headers_and_urls():
    for s in of_kind("basic-auth"):
        user, _, password = base64.b64decode(value(s)).decode().partition(":")
        assert user and password
        assert s.text[s.spans[0].start - 6 : s.spans[0].start] == "Basic "
    for s in of_kind("bearer-unknown-issuer"):
        assert s.text[s.spans[0].start - 7 : s.spans[0].start] == "Bearer "
    for s in of_kind("url-password"):
        assert s.text[s.spans[0].end] == "@" and "://" in s.text


def test_the_script_writes_what_generate_returns(tmp_path):
    out = tmp_path / "corpus.jsonl"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench/redaction_corpus.py"), "--out", str(out), "--seed", "7",
         "--per-family", "3", "--clean", "40"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert redaction_corpus.read_jsonl(out) == SAMPLES


# -- aiwarden redact --jsonl ---------------------------------------------------------------------


def aiwarden(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "proxy", "redact", "--policy", str(SHIPPED), "--jsonl", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=ROOT, **kwargs,
    )  # fmt: skip


def test_redact_jsonl_gives_the_librarys_findings():
    profile = load_policy(SHIPPED).redaction_profiles["default"]
    chosen = [s for s in SAMPLES if s.id.endswith("-0000")][:40]
    expected, lines = [], []
    for s in chosen:
        lines.append(json.dumps({"id": s.id, "text": s.text}))
        found = scan(s.text, profile.detectors)
        expected.append({"id": s.id, "findings": [
            {"kind": f.type, "start": f.start, "end": f.end} for f in found]})  # fmt: skip
    assert sum(bool(e["findings"]) for e in expected) >= 10  # the comparison is not empty
    proc = aiwarden()
    out, err = proc.communicate("\n".join(lines) + "\n", timeout=120)
    assert proc.returncode == 0, err
    assert [json.loads(line) for line in out.splitlines()] == expected
    # character offsets, not bytes: a finding after a non-ASCII character lands on its value
    text = "Straße 5: mail juergen@example.de please"
    (answer,) = scan_one(text)
    assert [text[f["start"] : f["end"]] for f in answer["findings"]] == ["juergen@example.de"]


def scan_one(lines: str) -> list[dict]:
    proc = aiwarden()
    out, err = proc.communicate(
        "\n".join(json.dumps({"text": line}) for line in lines.splitlines()) + "\n", timeout=120
    )
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_redact_jsonl_answers_each_line_before_the_next_arrives():
    proc = aiwarden(bufsize=1)
    try:
        for i, text in enumerate(["no secret here", "key AKIAIOSFODNN7EXAMPL3 in it"]):
            proc.stdin.write(json.dumps({"id": i, "text": text}) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "no answer to a line until stdin is closed"
            answer = json.loads(proc.stdout.readline())
            assert answer["id"] == i
        assert answer["findings"] == [{"kind": "aws-access-key", "start": 4, "end": 24}]
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_redact_jsonl_answers_a_bad_line_with_its_error_and_goes_on():
    proc = aiwarden()
    out, err = proc.communicate(
        'not json\n{"id": 7, "text": 5}\n["a list"]\n\n{"text": "mail bob@corp.example"}\n',
        timeout=120,
    )
    assert proc.returncode == 2
    answers = [json.loads(line) for line in out.splitlines()]
    assert answers[0]["line"] == 1 and answers[0]["error"].startswith("not JSON")
    assert answers[1] == {"id": 7, "line": 2, "error": 'not a JSON object with a "text" string'}
    assert answers[2]["line"] == 3 and "error" in answers[2]
    assert answers[3] == {"findings": [{"kind": "email", "start": 5, "end": 21}]}
    assert err.splitlines() == [
        f"aiwarden redact: line {a['line']}: {a['error']}" for a in answers[:3]
    ]
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [(), ("--profile", "nope")])
def test_redact_without_url_or_jsonl_or_with_an_unknown_profile_is_one_line(args):
    command = [sys.executable, "-m", "proxy", "redact", "--policy", str(SHIPPED)]
    if args:
        command += ["--jsonl", *args]
    r = subprocess.run(
        command, input="", capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "--url is required" in r.stderr or "no redaction profile 'nope'" in r.stderr


# -- Faker's people (bench/personal_bench.py) ----------------------------------------------------


def test_fakers_people_are_labelled_where_they_stand_and_the_same_for_a_seed():
    pytest.importorskip("faker", reason="faker is in the bench extra")
    from corpus import faker_people

    locales = ("en_IN", "de_DE", "ja_JP")  # (making a locale's generator takes 0.3 s)
    first = faker_people.samples(seed=3, per_locale=12, clean_per_locale=1, locales=locales)
    assert first == faker_people.samples(3, 12, 1, locales)
    assert {s["locale"] for s in first} == set(locales)
    for s in first:
        for start, end, kind in s["spans"]:
            assert kind in faker_people.KINDS and s["text"][start:end].strip(), s
            if kind == "phone":  # only numbers libphonenumber takes: no one has the others
                region = faker_people.LOCALES[s["locale"]][0]
                number = phonenumbers.parse(s["text"][start:end], region)
                assert phonenumbers.is_valid_number(number)
            if kind == "ip-address":
                assert ipaddress.ip_address(s["text"][start:end]).is_global
    assert all(not s["spans"] for s in first if s["group"] == "clean")
