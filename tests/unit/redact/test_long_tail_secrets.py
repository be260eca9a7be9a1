"""The long tail of secrets (trufflehog's detector families): credential-shaped values that a
weak name names (`Key=`, `fooKey`, `x_token - '...'`), Jenkins' encrypted secrets, and
services' fixed token prefixes; and the near-misses each must leave alone. The values are
made up here, in each format's shape."""

from __future__ import annotations

import base64
import random
import string
import uuid

import pytest

from proxy.redact.detectors import scan
from proxy.redact.secret_detectors import DETECTORS, credential_shaped, token_value_valid


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in scan(text, DETECTORS)]


def assert_found(text: str, value: str | None) -> None:
    """Something is found in `text`, and `value` among it when given."""
    values = [v for _, v in found(text)]
    assert values, text
    if value is not None:
        assert value in values


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("[DEBUG] Using Key={}", "q7v2mx9kd0rt4lw8zp1cj6hs3bn5fy2a"),
        ("[DEBUG] Using acme KEY={}", "Qh3DP9Zf7vHtmnDwsbS219qcz4d883Y7"),
        ("using key = {}", "4f0c9a7e1b2d3c4e5f60718293a4b5c6d7e8f901"),
        ('acmeKey := "{}"', "Xr7pLm2QvN9sT4wK8zB3cJ6hY1dF5gA0"),
        ('widget_key: "{}"', "k29fj3m5x8qp1zr7vt4nw6bl0ch2yd9s"),
        ('"DUO_SKEY": "{}"', "ZQ8PLK3mN7vR2xT5wY9bC4dF6gH1jK0sLa3P"),
        ('const acmeKey string = "{}"', "Vb8-Kq3Zr5Lw9Nm2Xp7Tc4Hj6Fd1Gs0A"),
        ("acme token - '{}'", "r8Kp2Qz7Lm4Nv9Xt3Bw6Cy1Dh5Fj0Gs"),
        ('req.Header.Set("X-Acme-Api-Key", "{}")', "c7a1f3e9b2d84605a9c1e7f3b5d2a8c4"),
        ("acme_token2 = '{}'", "z3y8x1w6v5u4t9s2r7q0p5o8n3m6l1"),
        ("https://api.acme.test/v1/data?key={}", "W9xk2Lq7Rz4Mn8Vb3Tc6"),
        ("| apiKey | {} |", "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"),
        ("LicenseKey {}", "Hq4bW_RY8DAQYJVUfyV2QRgfKcgk"),
        ('"acme_key": "{}"', "PSIYbVgfkbEPQoqJfzHpACTtihONkQ_cKmOpNDPNiC"),
    ],
)
def test_a_credential_shaped_value_that_a_weak_name_names_is_found(template, value):
    assert value in [v for _, v in found(template.format(value))]


@pytest.mark.parametrize(
    "text",
    [
        "#12 CACHED cache key=sha256:09aab4b50670034a02fe0d5f6cb91684ba6461f5ac3405c2d0202b1e3b1",
        'publicKey: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEq2k9vT3m"',
        'key: "user-profile-cache-v2"',
        "sorted(items, key=operator.itemgetter(1))",
        'key = "ecdsa-sha2-nistp256"',
        'idempotencyKey: "a8098c1a-f86e-4d8a-9b2c-3f4e5d6c7b8a"',
        "key: ${{ runner.os }}-pip-${{ hashFiles('**/requirements.txt') }}",
        'key: "getUserProfileByIdentifier"',
        'apiKey: "YOUR_API_KEY_GOES_HERE"',
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "the monkey=a8f3k2m9x7q1w5e4r6t8y0u2 is not a key name",
        'key = "src/main/resources/application.yml"',
        "key: 2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        'partition_key = "7f3c9a1e5b2d8f4a6c0e9b3d"',
        "press the key combination Ctrl+Shift+P",
        'acme token - "my-test-token-1"',
        "user_id = 12345678901234567890",
    ],
)
def test_what_a_weak_name_names_but_is_no_credential_is_left_alone(text):
    assert found(text) == []


@pytest.mark.parametrize(
    ("value", "shaped"),
    [
        ("q7v2mx9kd0rt4lw8zp1cj6hs3bn5fy2a", True),
        ("hfCnuVcYOgiRjlDEmAoRbN", True),  # base62 with no digit
        ("LY027C40U2KNNZLFO1WEU3XQZ13LW515", True),  # capitals and digits
        ("HTTPSConnectionPool2", False),
        ("ecdsa-sha2-nistp256", False),
        ("build-2024-11-03-rc1", False),
        ("short1", False),
        ("0123456789012345678901", False),  # digits: an id
        ("sha256:09aab4b50670034a02fe0d5f6cb91684ba6461f5", False),
        ("exports/2026-04-06/part-00002.parquet", False),  # a path
        ("tokens/q7v2Mx9kd0Rt4lw8zP1cj6", True),  # a path with a key in it
        ("12|q7v2Mx9kd0Rt4lw8zP1cj6hs3bn5fy2aLY027C40", True),  # Laravel Sanctum
        ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", True),  # hex
    ],
)
def test_credential_shaped(value, shaped):
    assert credential_shaped(value) is shaped


def test_a_prefixed_token_is_no_snake_case_name():
    assert token_value_valid("sk_d21e2be3622049c7809f95cc02313821")
    assert not token_value_valid("new_password_hash_value")


def test_a_service_named_before_token_is_not_a_paging_token():
    assert found("statuspage token = '0c8xiakjyy42sep7fs17pzq08ra0e4aj04uq'")
    assert found("next page token = 'CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA'") == []


def test_a_long_quoted_value_is_read_whole():
    value = "eyQ" + "Lk9dHMjpK5snSPYf6ZCiXXxQRlie2wMITSkTjuzywCiga696mN" * 5
    assert found(f'"acme_secret": "{value}"') == [("generic-secret", value)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("<secret>{AQAAABAAAAAQvJ0tbNl3PZk2G7hW8x5YQzR1m4Lc6Fd9Ts2Uv8Xw=}</secret>",
         "AQAAABAAAAAQvJ0tbNl3PZk2G7hW8x5YQzR1m4Lc6Fd9Ts2Uv8Xw="),
        ("<secret>{acme AQAAABAAA b7c1d5tag9jfuhz4y7v6v05dx2wq2z1u}</secret>",
         "b7c1d5tag9jfuhz4y7v6v05dx2wq2z1u"),
    ],
)  # fmt: skip
def test_jenkins_secrets(text, value):
    assert ("jenkins-secret", value) in found(text)


def test_jenkins_marker_with_no_credential_after_it_is_left_alone():
    assert found("<secret>{acme AQAAABAAA changeme}</secret>") == []


@pytest.mark.parametrize(
    "value",
    [
        "alcht_" + "Zq8Xv2Lm5Nc7Bw3Kj9Hd4Fs6Gt1Ry0",
        "apify_api_" + "Hq7Lm2Nv9Xc4Bw8Kj3Fd6Gs1Rt5Yp0Zq2Lw8",
        "bkua_" + "q8w2e7r4t9y1u6i3o5p0a8s2d7f4g9h1j6k3l5z0",
        "slk_" + "3c6f69a93b14fbd6061e00fb40876b327826df4fe393e760d3109de08165e793",
        "VF.DM." + "628d5d92faf688001bda7907" + ".dmC8KKO1oX8JO5ai",
        "1000." + "1fa6966eafbb115624baa4103269e50e" + "." + "e57d155232227b4e41fa7dd2b88dd4d4",
        "rootly_" + "7f1e8738d7d6b540bc52e1bc24c6e2c109dc44642f9e5d583be7e5d04f8bd282",
        "spu-" + "3f10194ca38240ddb880bab79492384b",
        "NRBR-" + "cd83c5e6c53fe2edc1a",
    ],
)
def test_service_token_prefixes(value):
    assert ("service-token", value) in found(f"here: {value} ok")


@pytest.mark.parametrize(
    "text",
    [
        "spu-" + "a" * 32,  # a placeholder run
        "rootly_" + "0" * 64,
        "see api-docs for the sdk-v2 release",
        "VF.DM.notahexid.short",
    ],
)
def test_service_token_near_misses(text):
    assert [kind for kind, _ in found(text)] == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('"duo_skey": "{}"', "ZQ8PLK3mN7vR2xT5wY9bC4dF6gH1jK0sLa3P"),
        ('acme_key: "{}"', "49|Q7KJBwfPzF2ESyNui5yBw9OVB6eWj0iXkssEKC7b"),  # Laravel Sanctum
        ("secret_id = '{}'", "5b1a3c2e-8d4f-4a6b-9c0e-2f7d1b3a5c8e"),  # Vault AppRole
        ('clientSecret                = "{}"', "U6DtAX5r6RPZxd~l12Ri3X8J9urt5Q-xs"),
        ('"acme_secret": "{}"', "647501-6p71dd66-3k6s-un9a-0ri0-0ypi87cz3rmx"),
    ],
)
def test_more_names_and_shapes(text, value):
    assert value in [v for _, v in found(text.format(value))]


@pytest.mark.parametrize(
    "text",
    [
        'acme_secret = "1.21.0-alpine3.18"',  # a version, with a short suffix
        'acme_key: "12|short"',
        'acme token - "####################"',
    ],
)
def test_versions_and_masks_are_no_credentials(text):
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"name": "DB_PASSWORD", "value": "{}"}', "Tiger1992@lake"),
        ("env:\n  - name: ACME_API_TOKEN\n    value: {}\n", "r8Kp2Qz7Lm4Nv9Xt3Bw6Cy1Dh5Fj0Gs"),
        ("az storage blob list -storagekey {}", "hGeB3WqDyx0mGsQMsQDl+gmnXa51ZODiBtcXJpMo"),
        ("assert.equal(parsed['AccountKey'], '{}');", "KWPLd0rpW2T0U7K2pVpF8rYr1BgYtR7wYQk33AYi"),
        ("acme auth token |{}", "skCrESWvpXysjmaMGdMecRnw2mTVURqlVABArKApL1j4SL"),
        ("<secret>{acme AQAAABAAA {} }</secret>", "W_HlMtrmELzXm4bSlWv49JLcgvg5hvu467Wbb"),
    ],
)
def test_names_and_values_in_lists_calls_and_tables(text, value):
    assert value in [v for _, v in found(text.replace("{}", value))]


def test_a_name_and_value_pair_of_something_else_is_left_alone():
    assert found('{"name": "LOG_LEVEL", "value": "debug"}') == []
    assert found("env:\n  - name: ACME_TOKEN_URL\n    value: https://auth.acme.test/t\n") == []


# -- structured shapes (made up here: random characters in each published format) ------------

_RNG = random.Random(21)
_B62 = string.ascii_letters + string.digits


def _rand(n: int, alphabet: str = _B62) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


def _b64(n_bytes: int) -> str:
    return base64.b64encode(_RNG.randbytes(n_bytes)).decode()


_AWS_ID = "AKIA" + _rand(16, string.ascii_uppercase + "234567")
_AWS_SECRET = _rand(40, _B62 + "+/")
_AWS_SESSION = "IQoJb3JpZ2luX2Vj" + _rand(300, _B62 + "+/")
_STORAGE_KEY = _b64(64)
_ACR_PASSWORD = _rand(42, _B62 + "+/") + "+ACR" + _rand(6)
_TABLEAU = _b64(16) + ":" + _rand(32)
_REFRESH = "0.A" + _rand(60, _B62 + "_-") + ".AgABAAEAAAD" + _rand(300, _B62 + "_-")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f"aws credentials{{\n  id: {_AWS_ID}\n  secret: {_AWS_SECRET}\n}}", _AWS_SECRET),
        (f"<id>{{{_AWS_ID}}}</id>\n<secret>{{AQAAABAAA .{_AWS_SECRET};}}</secret>", _AWS_SECRET),
        (f"id: ASIA{_AWS_ID[4:]}\nsecret: x\nsession: {_AWS_SESSION}\n", _AWS_SESSION),
        (f'static const std::string AzuriteAccountKey{{\n    "{_STORAGE_KEY}"}};', _STORAGE_KEY),
        (f'DEFAULT_ACCOUNT_KEY\n        = "{_STORAGE_KEY}";', _STORAGE_KEY),
        (f'key =\\n  process.env.ACCOUNT_KEY ||\\n  \\"{_STORAGE_KEY}\\";', _STORAGE_KEY),
        (f"ACRPWD={_ACR_PASSWORD}", _ACR_PASSWORD),
        (f'"value":"{_ACR_PASSWORD}"', _ACR_PASSWORD),
        (f"name test-token\n{_TABLEAU}\nserver=x.online.tableau.com", _TABLEAU),
        (f'"token\\n{_TABLEAU}\\nserver"', _TABLEAU),
        (f"| RefreshToken | {_REFRESH} |", _REFRESH),
        (f"user1:ATBB{_rand(32)} and more", None),
        (f"mailgun key-{_rand(32, string.ascii_lowercase + string.digits)}", None),
        (f'"settings": "\\n\\t[DEBUG] Using API_KEY={_rand(32)}\\n\\t[INFO] ok"', None),
        (f"secret_id2 = '{uuid.UUID(int=_RNG.getrandbits(128))}'", None),
    ],
)
def test_structured_shapes(text, value):
    assert_found(text, value)


@pytest.mark.parametrize(
    "text",
    [
        # 64 bytes of base64 that no account key names: an integrity hash
        f'"integrity": "sha512-{_b64(64)}"',
        # base64, a colon, letters that read as words
        f"{_b64(16)}:abcdefghijklmnopqrstuvwxyzabcdef",
        "ATBB is an abbreviation, ATBBREVIATIONS too",
        "key-value-store-implementation-notes-v2",
        "0.Alpha release notes",
    ],
)
def test_structured_shape_near_misses(text):
    assert found(text) == []


def test_a_git_sha_after_an_access_key_id_is_no_secret_key():
    text = f"{_AWS_ID} was rotated in commit 4f0c9a7e1b2d3c4e5f60718293a4b5c6d7e8f901"
    assert found(text) == [("aws-access-key", _AWS_ID)]


_VENDOR_KEY = _rand(32)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f"mixpanel {_VENDOR_KEY} for the events", _VENDOR_KEY),
        (f'cloudsmith: "{_rand(40, "0123456789abcdef")}"', None),
        (f'const hs = new HubSpotAPI("{uuid.UUID(int=_RNG.getrandbits(128))}");', None),
        (f"onesignal: {uuid.UUID(int=_RNG.getrandbits(128))}", None),
        (f'apiMetrics := "{_VENDOR_KEY}"', _VENDOR_KEY),
        (f'scrapingBeeApiKey =\n  "{_rand(80, string.ascii_uppercase + string.digits)}";', None),
        (f"kickbox token = '_{_rand(63)}'", None),
        (f"https://api.acme.test/v1/example?tokenkey={_rand(50)}", None),
        (f"<secret>{{acme AQAAABAAA {uuid.UUID(int=_RNG.getrandbits(128))}}}</secret>", None),
        (f"hook: https://hooks.zapier.com/hooks/catch/{_rand(7, string.digits)}/{_rand(7)}/", None),
        (
            f"https://acme.tines.com/webhook/{_rand(32, string.ascii_lowercase + string.digits)}"
            f"/{_rand(32, string.ascii_lowercase + string.digits)}",
            None,
        ),
    ],
)
def test_vendor_named_values_and_webhooks(text, value):
    assert_found(text, value)


@pytest.mark.parametrize(
    "text",
    [
        "bump mixpanel 2.45.0-rc1 and hubspot 11.2.3",
        "Red Hat Enterprise Linux: redhat 8.5.0-x86_64",
        "mailgun domain: mg.example.com",
        "the onesignal integration sends push notifications",
        "metabase: src/metabase/query_processor/middleware",
        "loggly endpoint logs-01.loggly.com",
        "https://hooks.zapier.com/hooks/standard/",
    ],
)
def test_vendor_names_with_no_credential_are_left_alone(text):
    assert found(text) == []


def test_a_dunder_name_is_no_token():
    assert found("ROOT_VALIDATOR_CONFIG_KEY = '__root_validator_config__'") == []


def test_a_plain_text_secure_string_is_a_secret():
    value = _rand(24)
    text = f'$p = ConvertTo-SecureString -String "{value}" -AsPlainText -Force'
    assert value in [v for _, v in found(text)]


@pytest.mark.parametrize(
    ("text", "shaped"),
    [
        ('secret = "a2djRWTXDS1iMbThoK.C7e:yVsUdL3[:"', True),  # a stray bracket: random
        ("salesflow token = '4nXYKv]mHDeom5esert30Ea7]4QEfMg6'", True),
        ('secret = "config[env][region_name_value]"', False),  # brackets that pair: code
        ('token = "(lambda x: x)(a8f3k2m9x7q1w5e4)"', False),
        ("token = 'a8f3k2m9x7q1w5e4r6t8|y0u2'", False),  # a pipe
    ],
)
def test_a_stray_bracket_is_no_code(text, shaped):
    assert bool(found(text)) == shaped


def test_words_with_a_stray_bracket_are_no_secret():
    text = (
        "'\"ldap[s]:url_server_ldap[:port]:dn_auth:password:dn_subtree[?search_filter_key=...]\" '"
    )
    assert found(text) == []


def test_a_kind_prefixing_a_random_part_is_no_placeholder_word():
    value = "secret_" + _rand(16)
    assert value in [v for _, v in found(f'convert_key: "{value}"')]
    assert found('acme_key: "secret_token_01"') == []


def test_atlassian_data_center_tokens():
    pat = base64.b64encode(b"%012d" % _RNG.randrange(10**11, 10**12) + b":" + _RNG.randbytes(20))
    assert found(f"confluence_b={pat.decode()}") == [("atlassian-dc-token", pat.decode())]
    # 44 base64 characters that decode to anything else
    other = base64.b64encode(_RNG.randbytes(33)).decode()
    assert found(f"blob {('M' + other[1:])} end") == []
