"""Proxy authentication against a real LDAP server (OpenLDAP's slapd on loopback), through
mitmproxy's own proxyauth: the right password gets through and the user reaches the rules
and the audit log; a wrong password, an unknown user or no credentials get a 407."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path

import ldapharness
import pytest
from conftest import RESEARCH_MAY_POLICY, SHIPPED_CATALOG
from ldapharness import SUFFIX, Slapd
from proxyharness import Proxy, Upstream, metrics, value, write_policy

from proxy import ca

pytestmark = pytest.mark.skipif(
    not ldapharness.installed(),
    reason="OpenLDAP's slapd is not installed (.ci/run installs the slapd package)",
)

DATA = """
dn: {suffix}
objectClass: dcObject
objectClass: organization
o: Corp
dc: corp

dn: ou=people,{suffix}
objectClass: organizationalUnit
ou: people

dn: cn=alice,ou=people,{suffix}
objectClass: inetOrgPerson
cn: alice
sn: Alice
userPassword: alice-password

dn: cn=bob,ou=people,{suffix}
objectClass: inetOrgPerson
cn: bob
sn: Bob
userPassword: bob-password
"""
POLICY = RESEARCH_MAY_POLICY


def start_slapd(work: Path) -> Slapd:
    return Slapd(work, DATA)


def proxy_with_ldap(work: Path, port: int, *extra: str) -> Proxy:
    ca.init(work / "ca")
    spec = f"ldap:127.0.0.1:{port}:cn=admin,{SUFFIX}:admin-secret:ou=people,{SUFFIX}"
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    return Proxy(policy, work / "ca", "--proxyauth", spec, *extra)


@pytest.fixture(scope="module")
def ldap_server(tmp_path_factory):
    server = start_slapd(tmp_path_factory.mktemp("ldap"))
    yield server.port
    server.stop()


@pytest.fixture(scope="module")
def env(ldap_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("ldap-proxy")
    upstream = Upstream()
    audit = work / "audit.jsonl"
    proxy = proxy_with_ldap(work, ldap_server, "--audit-log", str(audit))
    yield proxy, upstream, audit
    assert proxy.stop() == 0
    upstream.close()


def request(proxy: Proxy, upstream: Upstream, credentials: str | None) -> bytes:
    host = f"localhost:{upstream.port}"
    auth = ""
    if credentials is not None:
        auth = f"Proxy-Authorization: Basic {base64.b64encode(credentials.encode()).decode()}\r\n"
    address, port = proxy.address.rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=15) as sock:
        sock.sendall(f"GET http://{host}/page HTTP/1.1\r\nHost: {host}\r\n{auth}"
                     "Connection: close\r\n\r\n".encode())  # fmt: skip
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def auth_refusals(proxy: Proxy) -> float:
    return value(metrics(proxy), "aiwarden_bad_requests_total", reason="proxy_auth")


def test_the_right_password_gets_the_users_rules_and_audit(env):
    proxy, upstream, audit = env
    reply = request(proxy, upstream, "alice:alice-password")
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    deadline = time.monotonic() + 10
    while not audit.exists() or not audit.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    line = json.loads(audit.read_text().splitlines()[-1])
    assert (line["user"], line["rule"], line["action"]) == ("alice", "research-may", "monitor")


def test_another_user_falls_to_the_block_rule(env):
    proxy, upstream, _ = env
    reply = request(proxy, upstream, "bob:bob-password")
    assert reply.startswith(b"HTTP/1.1 403") and b"block-ai" in reply


@pytest.mark.parametrize(
    "credentials", ["alice:wrong", "mallory:whatever", None, "alice:", ":alice-password"]
)
def test_bad_or_missing_credentials_get_a_407_and_reach_nothing(env, credentials):
    proxy, upstream, _ = env
    before = upstream.connections, auth_refusals(proxy)
    reply = request(proxy, upstream, credentials)
    assert reply.startswith(b"HTTP/1.1 407"), reply[:300]
    assert (upstream.connections, auth_refusals(proxy)) == (before[0], before[1] + 1)


def test_an_unreachable_ldap_server_fails_closed(tmp_path):
    """Once the directory is gone, nobody is authenticated: 407, never an open proxy."""
    server = start_slapd(tmp_path / "ldap")
    proxy = proxy_with_ldap(tmp_path / "proxy", server.port)
    upstream = Upstream()
    try:
        assert request(proxy, upstream, "bob:bob-password").startswith(b"HTTP/1.1 403")
        server.stop()
        before = upstream.connections
        for credentials in ("bob:bob-password", "alice:alice-password"):
            reply = request(proxy, upstream, credentials)
            assert reply.startswith(b"HTTP/1.1 407"), reply[:200]
        assert upstream.connections == before
    finally:
        server.stop()
        assert proxy.stop() == 0
        upstream.close()
