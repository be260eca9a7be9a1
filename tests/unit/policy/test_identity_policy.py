"""The policy's `identity:` section and directory groups: names as the products send them,
every mistake at its file:line, and rules deciding by the groups an identity source named."""

from __future__ import annotations

import base64

import pytest
from conftest import assert_error, errors_of

from proxy.decide.engine import Engine
from proxy.policy.identity import bare_name, decode
from proxy.policy.loader import load_policy


@pytest.mark.parametrize(
    "sent, bare, whole",
    [
        ("alice", "alice", "alice"),
        ("WinNT://CORP/alice", "alice", "CORP\\alice"),
        ("CORP\\alice", "alice", "CORP\\alice"),
        ("alice@CORP.EXAMPLE", "alice", "alice@CORP.EXAMPLE"),
        ("  alice  ", "alice", "alice"),
        ("", None, None),
        ("two words", None, None),
    ],
)
def test_names_are_read_as_the_products_write_them(sent, bare, whole):
    assert bare_name(sent) == bare
    assert bare_name(sent, keep_domain=True) == whole


def test_base64_values_are_decoded_and_garbage_is_nobody():
    assert decode(base64.b64encode(b"CORP\\alice").decode(), "base64") == "CORP\\alice"
    assert decode("not base64!", "base64") is None
    assert decode("alice", "plain") == "alice"


POLICY = """
version: 1
identity:
  header:
    trusted: [10.9.0.0/24]
    encoding: base64
  address_map:
    file: users.map
groups:
  ai-users: {{directory: [AI-Users]}}
rules:
  - id: ai-users-may-chat
    match: {{groups: [ai-users], services: [chatgpt]}}
    action: allow
  - id: no-chat
    match: {{categories: [chat]}}
    action: block
{extra}"""


def test_a_rule_decides_by_the_directory_groups_a_source_named(write_policy):
    path = write_policy(POLICY.format(extra=""))
    (path.parent / "users.map").write_text("# address user\n10.1.2.3 CORP\\alice\n")
    policy = load_policy(path.parent)
    identity = policy.identity
    assert identity.order == ("proxy_auth", "header", "address_map")
    assert identity.headers.encoding == "base64" and identity.address_map.entries == {
        "10.1.2.3": "CORP\\alice"
    }
    engine = Engine(policy)
    url = ("POST", "chatgpt.com", "/backend-api/conversation", "10.1.2.3", "alice")
    assert engine.decide_request(*url, frozenset({"ai-users"})).rule == "ai-users-may-chat"
    assert engine.decide_request(*url, frozenset({"other"})).rule == "no-chat"
    assert engine.decide_request(*url).rule == "no-chat"  # no groups named: not a member
    connect = engine.decide_connect("chatgpt.com", "10.1.2.3", "alice", frozenset({"ai-users"}))
    assert connect.action == "allow"


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("identity: [header]\nrules: []\n", 3, "identity: must be a mapping, not a list"),
        ("identity:\n  header: {user: X}\nrules: []\n",4, "'trusted'"),
        ("identity:\n  header: {trusted: [10.0.0.0/8], user: 'X User'}\nrules: []\n",4,
         "identity.header: user: 'X User' is not a header name"),
        ("identity:\n  header: {trusted: [10.0.0.0/8], encoding: rot13}\nrules: []\n",4,
         "'encoding' must be one of plain, base64"),
        ("identity:\n  order: [header]\nrules: []\n",4,
         "identity.order: 'header' is not configured in identity:"),
        ("identity:\n  order: [kerberos]\nrules: []\n",4, "unknown source 'kerberos'"),
        ("identity:\n  address_map: {window_seconds: 0}\nrules: []\n",4,
         "'window_seconds' must be from 1 to 86400"),
        ("groups:\n  g: {}\nrules: []\n",4, "give 'cidrs', 'users' or 'directory'"),
    ],
)  # fmt: skip
def test_identity_mistakes_are_reported_at_their_line(write_policy, text, line, fragment):
    assert_error(errors_of(write_policy, "version: 1\n" + text), line, fragment)


def test_address_map_file_mistakes_name_the_file_and_line(write_policy, tmp_path):
    path = write_policy("version: 1\nidentity:\n  address_map: {file: users.map}\nrules: []\n")
    (path.parent / "users.map").write_text(
        "10.1.2.3 alice\nnot-an-address bob\n10.1.2.3 carol\n10.1.2.4\n"
    )
    with pytest.raises(Exception) as e:
        load_policy(path.parent)
    text = str(e.value)
    expected = [
        (2, "'not-an-address' is not an IP address"),
        (3, "10.1.2.3 is mapped twice"),
        (4, "an address-map line is 'ADDRESS USER'"),
    ]
    for line, fragment in expected:
        assert f"users.map:{line}: {fragment}" in text, text
