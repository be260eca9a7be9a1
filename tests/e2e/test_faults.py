"""Upstream faults on the real proxy: a refused connection, a reset before the answer, a
certificate that does not verify and a server too slow to answer each get a 502 or 504 in the
client's own format (the official SDKs raise their own error carrying our message), counted
by kind, never a hang."""

from __future__ import annotations

import json
import socket
import threading
import time

import anthropic
import openai
import pytest
from conftest import SHIPPED_CATALOG
from proxyharness import (
    Proxy,
    Upstream,
    by_label,
    connect_tunnel,
    curl,
    make_upstream_pki,
    write_policy,
)

from proxy import ca

# localhost is an approved internal AI gateway the proxy intercepts (monitor)
POLICY = """
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
services:
  - {id: gateway, name: AI gateway, vendor: Corp, category: api, hosts: [localhost],
     api_format: openai, source: test}
rules:
  - id: watch-gateway
    match: {services: [gateway]}
    action: monitor
"""


class FaultyServer:
    """A TCP server that accepts and then misbehaves: 'reset' closes at once after the
    request, 'silent' reads the request and never answers."""

    def __init__(self, behaviour: str) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.recv(65536)
            if self.behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                conn.close()
            else:
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    ca.init(work / "ca")
    (work / "upstream").mkdir()
    _, cert, key = make_upstream_pki(work / "upstream")  # a CA the proxy does not trust
    untrusted = Upstream(tls=(cert, key))
    reset, silent = FaultyServer("reset"), FaultyServer("silent")
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    proxy = Proxy(policy, work / "ca", "--upstream-timeout", "2", "--client-header-timeout", "2")
    yield proxy, work / "ca" / "ca.pem", untrusted, reset, silent
    assert proxy.stop() == 0
    untrusted.close()
    reset.close()
    silent.close()


@pytest.mark.parametrize(
    ("fault", "status", "kind", "says"),
    [
        ("refused", 502, "refused", "the server refused the connection"),
        ("reset", 502, "reset", "the server closed the connection before answering"),
        ("silent", 504, "timeout", "the server did not answer in time"),
    ],
)
def test_plain_http_faults_get_a_clear_answer(env, fault, status, kind, says):
    proxy, _, _, reset, silent = env
    port = {"refused": closed_port(), "reset": reset.port, "silent": silent.port}[fault]
    before = by_label(proxy, "aiwarden_upstream_errors_total", "kind").get(kind, 0)
    start = time.monotonic()
    r = curl("-si", "--proxy", proxy.url, f"http://localhost:{port}/page", timeout=20)
    assert r.stdout.startswith(f"HTTP/1.1 {status}"), r.stdout[:300]
    head, _, body = r.stdout.partition("\r\n\r\n")
    assert "x-aiwarden-reference:" in head.lower()
    # the gateway speaks the OpenAI API: its error shape
    error = json.loads(body)["error"]
    assert error["type"] == "upstream_error" and error["code"] == kind
    assert error["message"].startswith(f"aiwarden could not get an answer from localhost: {says}")
    assert time.monotonic() - start < 15  # never a hang; the timeout case takes its 2 s
    assert by_label(proxy, "aiwarden_upstream_errors_total", "kind").get(kind, 0) == before + 1


def test_a_browser_gets_a_page(env):
    proxy = env[0]
    r = curl("-si", "--proxy", proxy.url, "-H", "Accept: text/html,*/*",
             f"http://localhost:{closed_port()}/")  # fmt: skip
    assert r.stdout.startswith("HTTP/1.1 502")
    assert "text/html" in r.stdout.split("\r\n\r\n")[0].lower()
    assert "<h1>localhost did not answer</h1>" in r.stdout
    assert "This is not a policy block" in r.stdout


def test_a_certificate_that_does_not_verify_is_a_502_inside_tls(env):
    proxy, cafile, untrusted, _, _ = env
    r = curl("-s", "-w", "\n%{http_code}", "--proxy", proxy.url, "--cacert", str(cafile),
             f"https://localhost:{untrusted.port}/page")  # fmt: skip
    body, _, code = r.stdout.rpartition("\n")
    assert code == "502"
    assert "TLS certificate or handshake failed verification" in body
    assert untrusted.requests == []  # no request went over the unverified connection


def test_http2_clients_get_the_answer_too(env):
    proxy, cafile, _, _, _ = env
    r = curl("-s", "--http2", "-w", "\n%{http_version} %{http_code}", "--proxy", proxy.url,
             "--cacert", str(cafile), f"https://localhost:{closed_port()}/page")  # fmt: skip
    body, _, last = r.stdout.rpartition("\n")
    assert last == "2 502"
    assert "the server refused the connection" in body


def test_the_openai_sdk_raises_its_own_error_with_our_message(env, monkeypatch):
    proxy = env[0]
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    client = openai.OpenAI(
        api_key="sk-test", base_url=f"http://localhost:{closed_port()}/v1", max_retries=0
    )
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 502
    assert "aiwarden could not get an answer from localhost" in raised.value.message
    assert raised.value.body["type"] == "upstream_error"


def test_the_anthropic_sdk_raises_its_own_error_with_our_message(env, monkeypatch):
    proxy, _, _, _, silent = env
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    client = anthropic.Anthropic(
        api_key="sk-ant-test", base_url=f"http://localhost:{silent.port}", max_retries=0
    )
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model="m", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert raised.value.status_code == 504
    assert raised.value.body["error"]["type"] == "api_error"
    assert "the server did not answer in time" in raised.value.body["error"]["message"]


def test_a_client_dribbling_its_headers_is_disconnected(env):
    """slowloris: one header byte every half second, never finishing."""
    proxy = env[0]
    host, port = proxy.address.rsplit(":", 1)
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(b"GET http://localhost/ HTTP/1.1\r\nX-Slow: ")
        closed = False
        while time.monotonic() - start < 15:
            try:
                sock.sendall(b"a")
                sock.settimeout(0.5)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
    assert closed, "still connected after 15 s"
    assert time.monotonic() - start >= 2  # its deadline, not at once
    assert proxy.wait_for(lambda r: r.get("event") == "client_too_slow", timeout=5)


def test_a_slow_but_complete_request_is_served(env):
    proxy = env[0]
    upstream = Upstream()
    host, port = proxy.address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            time.sleep(1)  # under the deadline
            sock.sendall(f"GET http://localhost:{upstream.port}/page HTTP/1.1\r\n".encode())
            time.sleep(0.5)
            sock.sendall(f"Host: localhost:{upstream.port}\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
    finally:
        upstream.close()


def test_a_quiet_raw_tcp_tunnel_outlives_the_header_deadline(env):
    """A CONNECT tunnel carrying a non-HTTP protocol is not a slow request."""
    proxy = env[0]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    sock, status, _ = connect_tunnel(proxy.address, f"127.0.0.1:{server.getsockname()[1]}")
    try:
        assert status == 200
        sock.sendall(b"SSH-2.0-test\r\n")
        assert sock.recv(1024) == b"SSH-2.0-test\r\n"
        time.sleep(3)  # longer than the 2 s header deadline
        sock.sendall(b"still here\r\n")
        assert sock.recv(1024) == b"still here\r\n"
    finally:
        sock.close()
        server.close()
