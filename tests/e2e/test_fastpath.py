"""The fast path for tunnels (proxy/serve/fastpath.py) on the real proxy: a tunnel it relays
behaves, is counted and is timed exactly as one mitmproxy relays (`--no-fast-tunnels`), and
whatever it does not relay itself reaches mitmproxy intact, also after its "200 Connection
established" was sent."""

from __future__ import annotations

import hashlib
import signal
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from conftest import BLOCK_AI_POLICY, SHIPPED_CATALOG
from proxyharness import (
    Proxy,
    Upstream,
    by_label,
    client_hello,
    connect_tunnel,
    exchange,
    make_upstream_pki,
    metrics,
    request_through_tunnel,
    value,
    write_policy,
)

from proxy import ca

POLICY = BLOCK_AI_POLICY
LOCALHOST_BLOCKED = POLICY.replace(
    "rules:",
    "services:\n  - {id: local, name: Local, vendor: T, category: chat, hosts: [localhost],"
    " source: test}\nrules:",
)
MODES = {"fast": (), "mitmproxy": ("--no-fast-tunnels",)}
GET = "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
SETTINGS = ("--log-level", "debug", "--client-header-timeout", "2")
BIG = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("fastpath")
    ca.init(work / "ca")
    upstream_ca, cert, key = make_upstream_pki(work)
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    proxies = {mode: Proxy(policy, work / "ca", *SETTINGS, *flags) for mode, flags in MODES.items()}
    tls = Upstream(tls=(cert, key))
    yield proxies, tls, upstream_ca, work / "ca" / "ca.pem"
    for proxy in proxies.values():
        assert proxy.stop() == 0
    tls.close()


@pytest.fixture(params=list(MODES))
def mode(request):
    return request.param


def get_inside(sock: socket.socket, host: str, cafile: Path) -> bytes:
    """TLS inside an answered tunnel, SNI and Host `host`, trusting `cafile`: the answer."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False
    with context.wrap_socket(sock, server_hostname=host) as conn:
        return exchange(conn, GET.format(host=host))


class RawServer:
    """A TCP server for one connection: reads what the client sends until it half-closes
    (`until_eof`) or for the length of one ClientHello, then sends `reply` and closes."""

    def __init__(self, reply: bytes, until_eof: bool) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        threading.Thread(target=self._serve, args=(reply, until_eof), daemon=True).start()

    def _serve(self, reply: bytes, until_eof: bool) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while chunk := conn.recv(65536):
                self.received += chunk
                if not until_eof and len(self.received) >= 5 + int.from_bytes(
                    self.received[3:5], "big"
                ):
                    break
            conn.sendall(reply)
        self.sock.close()


def test_a_tunnel_works_and_is_counted_the_same_either_way(env, mode):
    proxies, tls, upstream_ca, _ = env
    proxy = proxies[mode]
    before = metrics(proxy)
    status, _, body, _ = request_through_tunnel(
        proxy.address, f"localhost:{tls.port}", "localhost", "localhost", upstream_ca
    )
    assert (status, body) == (200, b"hello from upstream\n")
    time.sleep(0.3)  # the close reaches the proxy
    after = metrics(proxy)
    for name, labels in (
        ("aiwarden_connections_total", {"mode": "tunnel"}),
        ("aiwarden_requests_total", {"action": "allow", "service": "none",
                                     "category": "none", "stage": "connect"}),
    ):  # fmt: skip
        assert value(after, name, **labels) - value(before, name, **labels) == 1, name
    assert value(after, "aiwarden_open_connections") == 0
    relayed = [r for r in proxy.drain() if "fast path: relaying" in r.get("msg", "")]
    assert bool(relayed) == (mode == "fast")


def test_an_ai_sni_inside_an_allowed_tunnel_reaches_mitmproxy_after_the_200(env, mode):
    """Domain fronting: the fast path answered the CONNECT, read the ClientHello, and hands
    both to mitmproxy, whose second 200 the client must never see: the next bytes it reads
    are mitmproxy's TLS ServerHello, and the request gets the block page."""
    proxies, tls, _, aiwarden_ca = env
    proxy = proxies[mode]
    connections = tls.connections
    sock, status, head = connect_tunnel(proxy.address, f"localhost:{tls.port}")
    assert status == 200 and head.endswith(b"\r\n\r\n") and head.count(b"HTTP/") == 1
    data = get_inside(sock, "chatgpt.com", aiwarden_ca)
    assert data.startswith(b"HTTP/1.1 403"), data[:200]
    assert tls.connections == connections  # the server never saw the fronted request


def test_plain_http_inside_an_allowed_tunnel_is_decided_by_its_host(env, mode):
    proxies, tls, _, _ = env
    sock, status, _ = connect_tunnel(proxies[mode].address, f"localhost:{tls.port}")
    assert status == 200
    with sock:
        data = exchange(sock, GET.format(host="chatgpt.com"))
    assert data.startswith(b"HTTP/1.1 403"), data[:200]


def test_a_half_close_reaches_the_server_and_its_answer_the_client(env):
    """(mitmproxy closes the whole tunnel at the client's EOF; the fast path passes the
    half-close on, as TCP means it.)"""
    proxies, _, _, _ = env
    server = RawServer(b"answer after your EOF", until_eof=True)
    sock, status, _ = connect_tunnel(proxies["fast"].address, f"localhost:{server.port}")
    assert status == 200
    hello = client_hello("localhost")
    with sock:
        sock.sendall(hello + b"more bytes")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data == b"answer after your EOF"
    assert server.received == hello + b"more bytes"


def test_a_large_answer_arrives_whole_to_a_slow_reader(env, mode):
    """Flow control: the proxy holds the server back rather than buffering it all."""
    proxies, _, _, _ = env
    payload = bytes(range(256)) * (BIG // 256)
    server = RawServer(payload, until_eof=False)
    sock, status, _ = connect_tunnel(proxies[mode].address, f"localhost:{server.port}")
    assert status == 200
    received = hashlib.sha256()
    size = 0
    with sock:
        sock.sendall(client_hello("localhost"))
        time.sleep(1)  # the server has sent all it can; the proxy must have paused it
        while chunk := sock.recv(65536):
            received.update(chunk)
            size += len(chunk)
    assert size == BIG
    assert received.hexdigest() == hashlib.sha256(payload).hexdigest()


def test_a_client_silent_after_connect_is_cut_at_the_header_deadline(env, mode):
    proxies, tls, _, _ = env
    proxy = proxies[mode]
    before = by_label(proxy, "aiwarden_bad_requests_total", "reason").get("header_timeout", 0)
    sock, status, _ = connect_tunnel(proxy.address, f"localhost:{tls.port}")
    assert status == 200
    start = time.monotonic()
    with sock:
        sock.settimeout(10)
        assert sock.recv(1024) == b""  # closed by the proxy
    assert time.monotonic() - start < 6
    after = by_label(proxy, "aiwarden_bad_requests_total", "reason").get("header_timeout", 0)
    assert after - before == 1


def test_a_server_that_refuses_closes_the_tunnel(env, mode):
    """The ClientHello is allowed but nobody listens: the fast path hands over, mitmproxy
    fails to connect too, and the client's connection ends instead of hanging."""
    proxies, _, _, _ = env
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    sock, status, _ = connect_tunnel(proxies[mode].address, f"localhost:{port}")
    assert status == 200
    with sock:
        sock.settimeout(10)
        sock.sendall(client_hello("localhost"))
        assert sock.recv(1024) == b""


def test_a_policy_change_between_connect_and_clienthello_is_obeyed(tmp_path, env, mode):
    """The CONNECT host is decided again at the ClientHello, under the policy then in force:
    a host blocked meanwhile gets the block page, not a tunnel."""
    _, tls, _, aiwarden_ca = env
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    proxy = Proxy(policy, aiwarden_ca.parent, "--policy-watch", "0", *MODES[mode])
    try:
        sock, status, _ = connect_tunnel(proxy.address, f"localhost:{tls.port}")
        assert status == 200
        first = proxy.wait_for(lambda r: r.get("event") == "policy_loaded")["services"]
        write_policy(tmp_path / "policy", LOCALHOST_BLOCKED, SHIPPED_CATALOG)
        proxy.process.send_signal(signal.SIGHUP)
        proxy.wait_for(lambda r: r.get("event") == "policy_loaded" and r["services"] > first)
        data = get_inside(sock, "localhost", aiwarden_ca)
        assert data.startswith(b"HTTP/1.1 403"), data[:200]
    finally:
        assert proxy.stop() == 0
