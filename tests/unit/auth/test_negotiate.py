"""The Negotiate header and user names (proxy/auth/negotiate.py), without a KDC: what a
token is, what a failure is called, and how a principal becomes a user. The tickets
themselves are checked against a real KDC in tests/e2e/test_kerberos.py."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from proxy.auth.negotiate import (
    MAX_TOKEN_BYTES,
    REASONS,
    Acceptor,
    KerberosUnavailable,
    parse_header,
    user_name,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "no_token"),
        ("", "no_token"),
        ("Basic YWxpY2U6cHc=", "no_token"),
        ("NTLM TlRMTVNTUAABAAAA", "no_token"),
        ("Negotiate", "bad_token"),
        ("Negotiate    ", "bad_token"),
        ("Negotiate not-base64!", "bad_token"),
        ("Negotiate " + "A" * (MAX_TOKEN_BYTES * 2), "bad_token"),
        ("Negotiate " + base64.b64encode(b"NTLMSSP\0\1\0\0\0").decode(), "ntlm"),
    ],
)
def test_a_header_without_a_kerberos_token_says_why(value, expected):
    assert parse_header(value) == expected
    assert expected in REASONS


def test_a_token_is_its_bytes_whatever_the_scheme_case():
    token = b"\x60\x82\x02\x00 a ticket"
    encoded = base64.b64encode(token).decode()
    assert parse_header(f"Negotiate {encoded}") == token
    assert parse_header(f"negotiate  {encoded} ") == token


@pytest.mark.parametrize(
    ("principal", "keep", "user"),
    [
        ("alice@CORP.EXAMPLE", False, "alice"),
        ("alice@CORP.EXAMPLE", True, "alice@CORP.EXAMPLE"),
        ("svc/host.corp.example@CORP.EXAMPLE", False, "svc/host.corp.example"),
        ("alice", False, "alice"),
    ],
)
def test_the_realm_is_stripped_unless_kept(principal, keep, user):
    assert user_name(principal, keep) == user


def test_a_missing_or_empty_keytab_is_refused_in_one_line(tmp_path: Path):
    pytest.importorskip("gssapi", reason="the gssapi package is not installed")
    with pytest.raises(KerberosUnavailable, match="no such file"):
        Acceptor(tmp_path / "nothing.keytab")
    (tmp_path / "empty.keytab").write_bytes(b"")
    with pytest.raises(KerberosUnavailable) as e:
        Acceptor(tmp_path / "empty.keytab")
    assert "\n" not in str(e.value) and "empty.keytab" in str(e.value)
