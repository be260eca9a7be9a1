"""The PROXY protocol through the real proxy (fast path on and off): behind a load balancer
(127.0.0.2 here), the client a header names is the client — for `network.clients`, for
address-based groups and in the log — whether the header is v1 or v2; the balancer's
connections must carry one; nobody else's header is believed."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
from conftest import SHIPPED_CATALOG
from proxyharness import Proxy, Upstream, by_label, loopback_names, metrics, write_policy

from proxy import ca
from proxy.serve.proxyproto import V2_SIGNATURE

BALANCER = "127.0.0.2"
POLICY = """
network:
  clients: [127.0.0.0/8, 10.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
groups:
  research: {cidrs: [10.20.0.0/16]}
defaults: {action: allow}
rules:
  - id: research-may-chat
    match: {groups: [research], services: [chatgpt]}
    action: allow
  - id: block-chat
    match: {categories: [chat]}
    action: block
"""


def v1(client: str) -> bytes:
    family = "TCP6" if ":" in client else "TCP4"
    return f"PROXY {family} {client} 127.0.0.1 40000 3128\r\n".encode()


def v2(client: str) -> bytes:
    addrs = ipaddress.ip_address(client).packed + ipaddress.ip_address("127.0.0.1").packed
    body = addrs + struct.pack("!HH", 40000, 3128)
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(body)) + body


@pytest.fixture(scope="module")
def upstream():
    server = Upstream()
    yield server
    server.close()


@pytest.fixture(scope="module", params=["fast path", "no fast path"])
def proxy(request, tmp_path_factory):
    work = tmp_path_factory.mktemp("proxy-protocol")
    ca.init(work / "ca")
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    fast = () if request.param == "fast path" else ("--no-fast-tunnels",)
    with loopback_names(["chatgpt.com"]):
        p = Proxy(policy, work / "ca", "--proxy-protocol-from", f"{BALANCER}/32", *fast)
    yield p
    p.stop()


def send(proxy: Proxy, data: bytes, source: str = BALANCER) -> bytes:
    host, port = proxy.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30, source_address=(source, 0)) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer


def get(url: str) -> bytes:
    host = url.split("/")[2]
    return f"GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


@pytest.mark.parametrize("header", [v1, v2])
def test_the_header_names_the_client_for_rules_and_logs(proxy, upstream, header):
    blocked = send(proxy, header("10.1.2.3") + get("http://chatgpt.com/"))
    assert blocked.startswith(b"HTTP/1.1 403") and b"block-chat" in blocked
    logged = proxy.wait_for(lambda e: e.get("event") == "block" and e.get("rule") == "block-chat")
    assert logged["client"] == "10.1.2.3"
    proxy.logs.clear()
    before = len(upstream.requests)
    research = send(proxy, header("10.20.0.5") + get(f"http://chatgpt.com:{upstream.port}/"))
    assert research.startswith(b"HTTP/1.1 200"), research[:200]  # the group, by address
    assert len(upstream.requests) == before + 1


def test_a_client_the_header_names_outside_network_clients_is_refused(proxy):
    refused = ("aiwarden_clients_refused_total", ())
    before = metrics(proxy).get(refused, 0)
    for request in (get("http://chatgpt.com/"), b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"):
        answer = send(proxy, v2("192.0.2.9") + request)
        assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert b"Connection established" not in answer
    assert metrics(proxy)[refused] == before + 2  # by network.clients, not by accident


def test_the_balancers_connections_must_carry_a_header(proxy):
    before = by_label(proxy, "aiwarden_bad_requests_total", "reason").get("proxy_protocol", 0)
    assert send(proxy, get("http://chatgpt.com/")) == b""  # closed, nothing answered
    after = by_label(proxy, "aiwarden_bad_requests_total", "reason").get("proxy_protocol", 0)
    assert after == before + 1


def test_nobody_elses_header_is_believed(proxy, upstream):
    answer = send(proxy, v1("10.20.0.5") + get(f"http://chatgpt.com:{upstream.port}/"),
                  source="127.0.0.1")  # fmt: skip
    assert not answer.startswith(b"HTTP/1.1 200")  # "PROXY ..." is no request
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
