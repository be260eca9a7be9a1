"""The policy's `identity.directory:` block: what a good one gives, every mistake at its
file:line, the password read from its file and never shown, and rules deciding while the
directory cannot say which groups a user is in."""

from __future__ import annotations

import os

import pytest
from conftest import assert_error, errors_of

from proxy.decide.engine import DIRECTORY_RULE, Engine
from proxy.identity.who import GroupsUnknown
from proxy.policy.loader import load_policy

GOOD = """
version: 1
identity:
  directory:
    servers: [ldaps://dc1.corp.example, "ldaps://dc2.corp.example:3269"]
    base: dc=corp,dc=example
    user_filter: (sAMAccountName={name})
    bind_dn: CN=svc-aiwarden,OU=Service,DC=corp,DC=example
    password_file: ldap.password
    group_filter: (&(objectClass=group)(member={dn}))
    nested: in_chain
    ttl_seconds: 600
groups:
  ai-users: {directory: [AI-Users]}
rules:
  - id: ai-users-may-chat
    match: {groups: [ai-users], services: [chatgpt]}
    action: allow
  - id: no-chat
    match: {categories: [chat]}
    action: block
"""


def test_a_good_block_is_read_with_its_password_from_the_file(write_policy):
    path = write_policy(GOOD, {"ldap.password": "s3cret-Pa55\n"})
    d = load_policy(path.parent).identity.directory
    assert d.servers == ("ldaps://dc1.corp.example", "ldaps://dc2.corp.example:3269")
    assert (d.user_filter, d.nested, d.ttl, d.stale, d.on_error) == (
        "(sAMAccountName={name})", "in_chain", 600, 900, "block")  # fmt: skip
    assert d.password == "s3cret-Pa55"
    assert "s3cret" not in repr(d)  # never in a log line that prints the settings


def _directory(**changes: str) -> str:
    keys = {"servers": "[ldap://127.0.0.1:389]", "base": "dc=corp,dc=example",
            "user_filter": "'(uid={name})'", **changes}  # fmt: skip
    body = "".join(f"    {k}: {v}\n" for k, v in keys.items() if v is not None)
    return "version: 1\nidentity:\n  directory:\n" + body + "rules: []\n"


@pytest.mark.parametrize(
    "changes, line, fragment",
    [
        ({"servers": "[http://dc1]"}, 5, "'http://dc1' is not an ldap:// or ldaps:// URL"),
        ({"servers": "[ldap://dc1:99999]"}, 5, "has a bad port"),
        ({"servers": "['ldap://dc1/dc=corp']"}, 5, "only scheme, host and port"),
        ({"base": None}, 5, "missing required key 'base'"),
        ({"base": "corp.example"}, 6, "'corp.example' is not a distinguished name"),
        ({"group_base": "'ou=groups,,dc=x'"}, 8, "is not a distinguished name"),
        ({"user_filter": "uid={name}"}, 7, "is not an LDAP filter"),
        ({"user_filter": "'(uid={login})'"}, 7, "not {login}"),
        ({"user_filter": "'(uid=alice)'"}, 7, "must name the user with {user}, {name}"),
        ({"bind_dn": "cn=reader"}, 8, "bind_dn needs password_file"),
        ({"password_file": "missing.txt"}, 8, "cannot be read"),
        ({"start_tls": "true", "servers": "[ldaps://dc1]"}, 8, "ldaps:// is TLS already"),
        ({"ca_file": "nowhere.pem"}, 8, "is not a readable file"),
        ({"groups_from": "memberof"}, 8, "'groups_from' must be one of member_of, search"),
        ({"groups_from": "member_of", "group_filter": "'(member={dn})'"}, 9,
         "group_filter is for groups_from: search"),
        ({"group_filter": "'(memberUid={uid})'"}, 8, "not {uid}"),
        ({"nested": "iterative", "group_filter": "'(memberUid={name})'"}, 8,
         "nested: iterative needs a group_filter with (ATTRIBUTE={dn})"),
        ({"nested": "in_chain", "groups_from": "member_of"}, 8, "nested: in_chain needs"),
        ({"ttl_seconds": "0"}, 8, "'ttl_seconds' must be from 1 to 86400"),
        ({"stale_seconds": "-1"}, 8, "'stale_seconds' must be from 0"),
        ({"max_depth": "50"}, 8, "'max_depth' must be from 1 to 10"),
        ({"on_error": "allow"}, 8, "'on_error' must be one of block, no_groups"),
        ({"timeout_seconds": "0"}, 8, "'timeout_seconds' must be from 1 to 60"),
        ({"password": "'hunter2'"}, 8, "unknown key 'password'"),
    ],
)  # fmt: skip
def test_directory_mistakes_are_reported_at_their_line(write_policy, changes, line, fragment):
    assert_error(errors_of(write_policy, _directory(**changes)), line, fragment)


@pytest.mark.parametrize("written", ["off", "false", "'off'"])
def test_nested_off_is_read_as_written(write_policy, written):
    path = write_policy(_directory(nested=written))
    assert load_policy(path.parent).identity.directory.nested == "off"


def test_an_empty_password_file_is_refused_without_showing_anything(write_policy):
    errors = errors_of(write_policy, _directory(bind_dn="cn=r", password_file="pw"), {"pw": ""})
    assert_error(errors, 9, "is empty")


def test_requests_a_group_rule_would_decide_are_blocked_while_groups_are_unknown(write_policy):
    path = write_policy(GOOD.replace("rules:", """  sales: {directory: [sales]}
rules:
  - id: sales-no-wiki
    match: {groups: [sales], hosts: [wiki.corp.example]}
    action: block"""), {"ldap.password": "pw\n"})  # fmt: skip
    engine = Engine(load_policy(path.parent))
    unknown = GroupsUnknown("directory unreachable")
    chat = ("POST", "chatgpt.com", "/backend-api/conversation", "10.1.2.3", "alice")
    decision = engine.decide_request(*chat, unknown)
    assert (decision.action, decision.rule) == ("block", DIRECTORY_RULE)
    assert "directory unreachable" in decision.reason and decision.service == "chatgpt"
    # a group rule could have blocked the wiki: blocked too, although the default allows it
    wiki = ("GET", "wiki.corp.example", "/", "10.1.2.3", "alice")
    assert engine.decide_request(*wiki, unknown).rule == DIRECTORY_RULE
    assert engine.decide_request(*wiki).action == "allow"  # known to be in no group
    # nothing a group rule could decide: decided as usual
    other = ("GET", "example.org", "/", "10.1.2.3", "alice")
    assert engine.decide_request(*other, unknown).action == "allow"
    # known groups still count beside the unknown ones
    known = GroupsUnknown("directory unreachable", frozenset({"ai-users"}))
    assert engine.decide_request(*chat, known).rule == "ai-users-may-chat"
    # a CONNECT to a host a group rule names is opened, so that each request is decided
    connect = engine.decide_connect("chatgpt.com", "10.1.2.3", "alice", unknown)
    assert connect.connect == "intercept" and not connect.tunnels
    assert engine.decide_connect("example.org", "10.1.2.3", "alice", unknown).tunnels


def test_the_password_file_is_watched_but_its_bytes_stay_out_of_the_digest(write_policy):
    path = write_policy(_directory(bind_dn="cn=r", password_file="pw"), {"pw": "first-pw\n"})
    secret = path.parent / "pw"
    first = load_policy(path.parent)
    stat = secret.stat()
    secret.write_text("other-pw\n")  # in place: the same inode and size
    os.utime(secret, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time
    same_stat = load_policy(path.parent)
    assert same_stat.identity.directory.password == "other-pw"
    assert same_stat.digest == first.digest  # the content is not in the digest
    os.utime(secret, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load_policy(path.parent).digest != first.digest  # a change to it is one
    assert first.fingerprint.now() != first.fingerprint  # and the reloader sees it
