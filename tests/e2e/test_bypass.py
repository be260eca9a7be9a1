"""The bypass matrix: every known way around a host-and-path rule, sent to the real proxy.
Each row must be refused (403 from the policy, or 400/431 for a request no server should
see) and must reach no upstream. The local upstreams are allowed destinations, so a row that
slipped through would show up in their request logs.

Names that resolve into denied ranges (DNS rebinding towards loopback or the metadata
address) are in test_proxy.py::test_a_name_resolving_into_a_denied_range_is_refused.
"""

from __future__ import annotations

import shutil
import socket
import ssl

import pytest
from conftest import SHIPPED_CATALOG
from proxyharness import Proxy, Upstream, connect_tunnel, curl, make_upstream_pki, write_policy

from proxy import ca

# localhost is an internal app the proxy intercepts (a monitor rule), so a Host header or SNI
# naming an AI service inside its TLS is seen
POLICY = """
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16, "fe80::/10"]
services:
  - {id: local-app, name: Local app, vendor: Test, category: api, hosts: [localhost],
     source: test}
rules:
  - id: watch-local-app
    match: {services: [local-app]}
    action: monitor
  - id: block-ai
    match: {categories: [chat, api, code-assistant, search, image, video, voice, agent]}
    action: block
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("bypass")
    ca.init(work / "ca")
    (work / "upstream").mkdir()
    upstream_ca, cert, key = make_upstream_pki(work / "upstream")
    plain, tls = Upstream(), Upstream(tls=(cert, key))
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    proxy = Proxy(policy, work / "ca", "--upstream-ca", str(upstream_ca))
    yield proxy, plain, tls, work / "ca" / "ca.pem"
    assert proxy.stop() == 0
    plain.close()
    tls.close()


def raw(proxy: Proxy, data: bytes) -> bytes:
    """Send bytes as they are on a new connection; the reply until the proxy closes."""
    host, port = proxy.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(data)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return reply


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


UP = "{upstream}"  # replaced by the plain upstream's host:port

PLAIN_ROWS = {
    # host spellings
    "upper case": ("GET http://ChatGPT.COM/ HTTP/1.1\r\nHost: ChatGPT.COM\r\n", {403}),
    "trailing dot": ("GET http://chatgpt.com./ HTTP/1.1\r\nHost: chatgpt.com.\r\n", {403}),
    "explicit port 80": ("GET http://chatgpt.com:80/ HTTP/1.1\r\nHost: chatgpt.com:80\r\n", {403}),
    "other port": ("GET http://chatgpt.com:8443/ HTTP/1.1\r\nHost: chatgpt.com:8443\r\n", {403}),
    "fullwidth letters": (
        "GET http://\uff43\uff48\uff41\uff54\uff47\uff50\uff54.com/ HTTP/1.1\r\n"
        "Host: \uff43\uff48\uff41\uff54\uff47\uff50\uff54.com\r\n",
        {400, 403},
    ),
    "percent-encoded dot in host": (
        "GET http://chatgpt%2ecom/ HTTP/1.1\r\nHost: chatgpt%2ecom\r\n",
        {400, 403},
    ),
    "metadata IP as IPv6-mapped literal": (
        "GET http://[::ffff:169.254.169.254]/ HTTP/1.1\r\nHost: [::ffff:169.254.169.254]\r\n",
        {403},
    ),
    "metadata IP in decimal": ("GET http://2852039166/ HTTP/1.1\r\nHost: 2852039166\r\n", {403}),
    "metadata IP in hex": ("GET http://0xa9fea9fe/ HTTP/1.1\r\nHost: 0xa9fea9fe\r\n", {403}),
    "metadata IP in octal": (
        "GET http://0251.0376.0251.0376/ HTTP/1.1\r\nHost: 0251.0376.0251.0376\r\n",
        {403},
    ),
    # the request target and the Host header disagree
    "allowed target, AI Host header": (
        f"GET http://{UP}/ HTTP/1.1\r\nHost: chatgpt.com\r\n",
        {403},
    ),
    "AI target, allowed Host header": (
        "GET http://chatgpt.com/ HTTP/1.1\r\nHost: " + UP + "\r\n",
        {403},
    ),
    "origin-form with an AI Host header": ("GET / HTTP/1.1\r\nHost: chatgpt.com\r\n", {400, 403}),
    # paths on a shared host, where only /copilot_internal/ is Copilot
    "path": ("GET http://api.github.com/copilot_internal/v2/token HTTP/1.1\r\n", {403}),
    "percent-encoded path letter": (
        "GET http://api.github.com/%63opilot_internal/v2/token HTTP/1.1\r\n",
        {403},
    ),
    "percent-encoded slash": (
        "GET http://api.github.com/copilot_internal%2Fv2%2Ftoken HTTP/1.1\r\n",
        {403},
    ),
    "doubled slashes": (
        "GET http://api.github.com//copilot_internal//v2/token HTTP/1.1\r\n",
        {403},
    ),
    "dot segments": (
        "GET http://api.github.com/x/../copilot_internal/./v2/token HTTP/1.1\r\n",
        {403},
    ),
    "encoded dot segments": (
        "GET http://api.github.com/x/%2e%2e/copilot_internal/v2/token HTTP/1.1\r\n",
        {403},
    ),
    ";params": ("GET http://api.github.com/copilot_internal;a=b/v2/token HTTP/1.1\r\n", {403}),
    "backslashes": (
        "GET http://api.github.com/\\copilot_internal\\v2\\token HTTP/1.1\r\n",
        {400, 403},
    ),
    # WebSocket
    "WebSocket upgrade": (
        "GET http://chatgpt.com/backend-api/ws HTTP/1.1\r\nHost: chatgpt.com\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        {403},
    ),
    # requests no server should see, even for an allowed destination
    "Content-Length and Transfer-Encoding (smuggling)": (
        f"POST http://{UP}/upload HTTP/1.1\r\nHost: {UP}\r\nContent-Length: 4\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n",
        {400},
    ),
    "two different Content-Lengths": (
        f"POST http://{UP}/upload HTTP/1.1\r\nHost: {UP}\r\nContent-Length: 4\r\n"
        "Content-Length: 40\r\n\r\nabcd",
        {400},
    ),
    "obfuscated Transfer-Encoding": (
        f"POST http://{UP}/upload HTTP/1.1\r\nHost: {UP}\r\nTransfer-Encoding: xchunked\r\n"
        "\r\n0\r\n\r\n",
        {400},
    ),
    "oversized headers": (
        f"GET http://{UP}/ HTTP/1.1\r\nHost: {UP}\r\nX-Padding: " + "a" * 100_000 + "\r\n",
        {431},
    ),
}


@pytest.mark.parametrize("row", PLAIN_ROWS)
def test_plain_http_rows_are_refused_and_reach_nothing(env, row):
    proxy, plain, tls, _ = env
    request, expected = PLAIN_ROWS[row]
    request = request.replace(UP, f"localhost:{plain.port}")
    if "\r\nHost:" not in request:
        request += "Host: " + request.split("//", 1)[1].split("/", 1)[0] + "\r\n"
    before = plain.connections, tls.connections
    reply = raw(proxy, (request + "Connection: close\r\n\r\n").encode())
    assert status_of(reply) in expected, reply[:300]
    assert (plain.connections, tls.connections) == before, "it reached an upstream"


def tls_request(proxy: Proxy, target: str, sni: str, host: str, cafile) -> tuple[int, bytes]:
    sock, status, head = connect_tunnel(proxy.address, target)
    if status != 200:
        sock.close()
        return status, head
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False
    with context.wrap_socket(sock, server_hostname=sni) as conn:
        conn.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return status_of(reply), reply


TLS_ROWS = {
    # CONNECT host, TLS SNI, Host header
    "AI host throughout": ("chatgpt.com:443", "chatgpt.com", "chatgpt.com"),
    "AI CONNECT host, allowed SNI and Host": ("chatgpt.com:443", "localhost", "localhost"),
    "allowed CONNECT host, AI SNI (domain fronting)": ("{tls}", "chatgpt.com", "localhost"),
    "allowed CONNECT host and SNI, AI Host header": ("{tls}", "localhost", "chatgpt.com"),
    "IP address CONNECT, AI SNI": ("127.0.0.1:{port}", "chatgpt.com", "chatgpt.com"),
    "upper-case SNI with a trailing dot": ("{tls}", "CHATGPT.COM.", "localhost"),
}


@pytest.mark.parametrize("row", TLS_ROWS)
def test_tls_rows_are_refused_and_reach_nothing(env, row):
    proxy, plain, tls, cafile = env
    target, sni, host = TLS_ROWS[row]
    target = target.format(tls=f"localhost:{tls.port}", port=tls.port)
    before = plain.connections, tls.connections
    status, reply = tls_request(proxy, target, sni, host, cafile)
    assert status == 403, reply[:300]
    assert (plain.connections, tls.connections) == before, "it reached an upstream"


def test_http2_inside_an_intercepted_connection_is_refused(env):
    proxy, _, _, cafile = env
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    r = curl("-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--http2",
             "--proxy", proxy.url, "--cacert", str(cafile), "https://chatgpt.com/")  # fmt: skip
    assert r.stdout == "2 403"


def test_allowed_traffic_still_flows(env):
    """The matrix proves nothing if the upstreams were unreachable anyway."""
    proxy, plain, tls, cafile = env
    before = plain.connections, tls.connections
    reply = raw(proxy, f"GET http://localhost:{plain.port}/ HTTP/1.1\r\nHost: localhost:"
                       f"{plain.port}\r\nConnection: close\r\n\r\n".encode())  # fmt: skip
    assert status_of(reply) == 200
    status, _ = tls_request(proxy, f"localhost:{tls.port}", "localhost", "localhost", cafile)
    assert status == 200
    assert (plain.connections, tls.connections) == (before[0] + 1, before[1] + 1)


def test_the_resolver_mitmproxy_connects_with_refuses_a_rebound_name(tmp_path):
    """DNS rebinding: a name can resolve to a public address when it is checked and to the
    metadata address or loopback a moment later, when mitmproxy resolves it again to
    connect. aiwarden's event loop checks that second answer too."""
    import asyncio
    from types import SimpleNamespace

    from proxy.decide.destinations import DestinationGuard
    from proxy.mitm.compat import GuardedLoop
    from proxy.policy.loader import load_policy

    policy = load_policy(write_policy(
        tmp_path, "network: {deny_destinations: [127.0.0.0/8]}\nrules: []\n", SHIPPED_CATALOG
    ))  # fmt: skip
    server = Upstream()
    loop = GuardedLoop()
    loop.gate = SimpleNamespace(
        check_resolved=DestinationGuard(policy.deny_destinations).check_resolved
    )
    try:
        with pytest.raises(OSError, match=r"^aiwarden: localhost resolves to 127\.0\.0\.1"):
            loop.run_until_complete(asyncio.open_connection("localhost", server.port))
        assert server.connections == 0
        loop.gate = SimpleNamespace(
            check_resolved=DestinationGuard(()).check_resolved
        )  # it connects
        _, writer = loop.run_until_complete(asyncio.open_connection("localhost", server.port))
        writer.close()
    finally:
        loop.close()
        server.close()
