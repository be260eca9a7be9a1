"""Identity without passwords on the wire, through the real proxy: a real Squid in front
(Debian's package) authenticates people and passes `X-Authenticated-User` and groups on, and
aiwarden decides by them — believed only from Squid's address, removed from every request,
never forwarded; an address-to-user map (the policy's file, and what an identity collector
pushes to the admin listener) names users by address, for the fast path too; an address that
changes hands too often is not believed."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import SHIPPED_CATALOG
from proxyharness import (
    SQUID,
    Proxy,
    Squid,
    Upstream,
    curl,
    free_port,
    loopback_names,
    write_policy,
)

from proxy import ca

NCSA = Path("/usr/lib/squid/basic_ncsa_auth")
SQUID_ADDRESS = "127.0.0.3"  # Squid's outgoing address: the one aiwarden trusts
NAMES = ("chatgpt.com", "tunnel.test")
POLICY = f"""
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
identity:
  header:
    trusted: [{SQUID_ADDRESS}/32]
  address_map:
    file: users.map
    max_changes: 1
groups:
  ai-users: {{directory: [AI-Users]}}
defaults: {{action: allow}}
rules:
  - id: alice-may-chat
    match: {{users: [alice], services: [chatgpt]}}
    action: allow
  - id: ai-users-may-chat
    match: {{groups: [ai-users], services: [chatgpt]}}
    action: allow
  - id: dave-and-erin-may-chat
    match: {{users: [dave, erin], services: [chatgpt]}}
    action: allow
  - id: no-chat
    match: {{services: [chatgpt]}}
    action: block
  - id: tunnel-for-dave
    match: {{users: [dave], hosts: [tunnel.test]}}
    action: allow
  - id: no-tunnel
    match: {{hosts: [tunnel.test]}}
    action: block
    block_with: refuse
"""
SQUID_AUTH = """
auth_param basic program {ncsa} {{dir}}/htpasswd
auth_param basic realm test
acl authed proxy_auth REQUIRED
acl bob proxy_auth bob
http_access allow authed
http_access deny all
request_header_add X-Authenticated-User "WinNT://CORP/%ul" all
request_header_add X-Authenticated-Groups "WinNT://CORP/AI-Users" bob
cache_peer 127.0.0.1 parent {parent} 0 no-query no-digest default name=aiwarden
never_direct allow all
tcp_outgoing_address {outgoing}
"""


def htpasswd(users: tuple[str, ...]) -> str:
    """Lines for Squid's basic_ncsa_auth: each user's password is USER-pass."""
    lines = []
    for user in users:
        command = ["openssl", "passwd", "-apr1", f"{user}-pass"]
        hashed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        lines.append(f"{user}:{hashed.strip()}\n")
    return "".join(lines)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("identity")
    ca.init(work / "ca")
    return work


@pytest.fixture(scope="module")
def upstream():
    server = Upstream()
    yield server
    server.close()


@pytest.fixture(scope="module", params=["fast path", "no fast path"])
def proxy(request, work):
    name = request.param.replace(" ", "-")
    policy = write_policy(work / name, POLICY, SHIPPED_CATALOG)
    (policy / "users.map").write_text("127.0.0.4 CORP\\dave\n")
    fast = () if request.param == "fast path" else ("--no-fast-tunnels",)
    with loopback_names(NAMES):
        p = Proxy(policy, work / "ca", "--identity-store", str(work / name / "identity.db"),
                  *fast)  # fmt: skip
    yield p
    p.stop()


@pytest.fixture(scope="module")
def squid(proxy, work, request):
    if not SQUID or not NCSA.exists():
        pytest.skip("squid is not installed (.ci/run installs Debian's squid package)")
    parent = int(proxy.address.rsplit(":", 1)[1])
    extra = SQUID_AUTH.format(ncsa=NCSA, parent=parent, outgoing=SQUID_ADDRESS)
    s = Squid((), extra, files={"htpasswd": htpasswd(("alice", "bob", "carol"))})
    yield s
    s.stop()


def through_squid(squid: Squid, user: str, url: str) -> str:
    r = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", squid.url,
             "--proxy-user", f"{user}:{user}-pass", url)  # fmt: skip
    return r.stdout


def test_squid_names_the_user_and_group_and_aiwarden_decides_by_them(proxy, squid, upstream):
    url = f"http://chatgpt.com:{upstream.port}/backend-api/conversation"
    before = len(upstream.requests)
    assert through_squid(squid, "alice", url) == "200"  # by user, the domain stripped
    assert through_squid(squid, "bob", url) == "200"  # by the directory group Squid named
    assert through_squid(squid, "carol", url) == "403"  # nobody special: the block
    assert len(upstream.requests) == before + 2
    for _method, _path, headers in upstream.requests[before:]:
        assert not {"x-authenticated-user", "x-authenticated-groups"} & {
            k.lower() for k in headers
        }  # never forwarded
    for user in ("alice", "carol"):  # Squid was asked to authenticate them
        credentials = base64.b64encode(f"{user}:{user}-pass".encode()).decode()
        # (Squid writes a line once the answer is sent: it may come after curl has it)
        line = squid.wait_for_line(credentials)
        assert line.split()[3].endswith(credentials)  # its Proxy-Authorization


def test_squid_names_the_user_of_a_connect_too(proxy, squid, upstream):
    proxy.logs.clear()
    through_squid(squid, "alice", f"https://tunnel.test:{upstream.port}/")  # dave's only
    refused = proxy.wait_for(lambda e: e.get("event") == "block" and e.get("stage") == "connect")
    assert (refused["user"], refused["rule"], refused["host"]) == ("alice", "no-tunnel",
                                                                   "tunnel.test")  # fmt: skip


def test_nobody_else_can_claim_a_user(proxy, upstream):
    url = f"http://chatgpt.com:{upstream.port}/backend-api/conversation"
    before = len(upstream.requests)
    r = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", proxy.url,
             "-H", "X-Authenticated-User: alice",
             "-H", "X-Authenticated-Groups: WinNT://CORP/AI-Users", url)  # fmt: skip
    assert r.stdout == "403"
    other = f"http://localhost:{upstream.port}/page"  # allowed: forwarded, without the header
    r = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", proxy.url,
             "-H", "X-Authenticated-User: alice", other)  # fmt: skip
    assert r.stdout == "200"
    assert "x-authenticated-user" not in {k.lower() for k in upstream.requests[-1][2]}
    assert len(upstream.requests) == before + 1


def from_address(proxy, address: str, url: str, *args: str) -> str:
    r = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", proxy.url,
             "--interface", address, *args, url)  # fmt: skip
    return r.stdout


def push(proxy, address: str, user: str | None = None) -> httpx.Response:
    params = {"address": address, **({"user": user} if user else {})}
    return httpx.post(f"http://{proxy.admin}/identity/addresses", params=params)


def test_the_address_map_names_users_by_address_also_for_tunnels(proxy, upstream, work):
    url = f"http://chatgpt.com:{upstream.port}/backend-api/conversation"
    assert from_address(proxy, "127.0.0.4", url) == "200"  # dave, from the policy's file
    assert from_address(proxy, "127.0.0.5", url) == "403"  # nobody yet
    assert push(proxy, "127.0.0.5", "CORP\\erin").json() == {
        "address": "127.0.0.5",
        "user": "CORP\\erin",
    }
    assert from_address(proxy, "127.0.0.5", url) == "200"  # erin, pushed
    tunnel = f"https://tunnel.test:{free_port()}/"  # nothing listens: the CONNECT is the test
    refused = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", proxy.url,
                   "--interface", "127.0.0.1", tunnel).stdout  # fmt: skip
    allowed = curl("-s", "-o", "/dev/null", "-w", "%{http_connect}", "--proxy", proxy.url,
                   "--interface", "127.0.0.4", tunnel).stdout  # fmt: skip
    assert refused in ("000", "403") and allowed == "200"  # the CONNECT, decided by user


def test_an_address_that_changes_hands_too_often_is_not_believed(proxy, upstream):
    url = f"http://chatgpt.com:{upstream.port}/backend-api/conversation"
    assert push(proxy, "127.0.0.6", "erin").json()["user"] == "erin"
    assert push(proxy, "127.0.0.6", "dave").json()["user"] == "dave"  # one change: allowed
    answer = push(proxy, "127.0.0.6", "erin").json()  # a second within the window: too many
    assert answer["user"] is None and "quarantined_until" in answer
    assert from_address(proxy, "127.0.0.6", url) == "403"
    assert push(proxy, "127.0.0.7").status_code == 200  # a logoff of an unknown address
    bad = httpx.post(f"http://{proxy.admin}/identity/addresses", params={"address": "x"})
    assert bad.status_code == 400
