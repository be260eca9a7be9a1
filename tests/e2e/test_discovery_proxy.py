"""Discovery end to end: real clients through the real proxy (and mitmdump) to local upstreams
under AI-looking and ordinary names, then `aiwarden discover` on the audit log it wrote."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHIPPED_CATALOG
from proxyharness import (
    Proxy,
    Upstream,
    curl,
    exchange,
    loopback_names,
    make_upstream_pki,
    metrics,
    mitmdump_proxy,
    value,
    write_policy,
)

from proxy import ca

AIWARDEN = str(Path(sys.executable).parent / "aiwarden")

# -- end to end ----------------------------------------------------------------------------------

AI_NAMES = ("api.some-llm.ai", "chat.newbot.example")
NAMES = (*AI_NAMES, "news.example", "www.news.example", "api.knownai.example",
         "ai.partial.example", "beta.partial.example")  # fmt: skip
POLICY = """
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
services:
  - {id: known-ai, name: Known AI, vendor: Test, category: chat,
     hosts: [knownai.example, "*.knownai.example"], source: test}
  - {id: partial-ai, name: Partial AI, vendor: Test, category: chat,
     hosts: [ai.partial.example], source: test}
discovery: {mode: on, flush_seconds: 1}
rules: []
"""
SECRETS = ("/v1/chat/completions", "/private/path", "/news/today", "token=", "q=secret")


def tunnel_get(proxy: Proxy, name: str, port: int, path: str, source: str, cafile: Path) -> bytes:
    """From client address `source`: CONNECT name:port, TLS with SNI `name`, GET `path`."""
    host, proxy_port = proxy.address.rsplit(":", 1)
    sock = socket.create_connection((host, int(proxy_port)), timeout=15, source_address=(source, 0))
    sock.sendall(f"CONNECT {name}:{port} HTTP/1.1\r\nHost: {name}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096) or b"\r\n\r\n"
    assert head.startswith(b"HTTP/1.1 200"), head
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False  # the upstream's certificate names localhost
    with context.wrap_socket(sock, server_hostname=name) as conn:
        return exchange(conn, f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n")


def plain_get(proxy: Proxy, url: str, source: str) -> str:
    r = curl("--proxy", proxy.url, "--interface", source, url)
    assert r.returncode == 0, r.stderr
    return r.stdout


def discovery_lines(audit: Path, until=lambda lines: True, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        text = audit.read_text() if audit.exists() else ""
        lines = [json.loads(x) for x in text.splitlines() if '"discovery"' in x]
        if until(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def run_discover(policy: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AIWARDEN, "discover", "--policy", str(policy), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory):
    work = tmp_path_factory.mktemp("discovery")
    ca.init(work / "ca")
    upstream_ca, cert, key = make_upstream_pki(work)
    plain, tls = Upstream(), Upstream(tls=(cert, key))
    yield work, plain, tls, upstream_ca
    plain.close()
    tls.close()


@pytest.mark.parametrize("flags", [(), ("--no-fast-tunnels",)], ids=["fast", "mitmproxy"])
def test_discover_ranks_what_clients_reached_through_the_proxy(upstreams, flags, tmp_path):
    work, plain, tls, upstream_ca = upstreams
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    audit = tmp_path / "audit.jsonl"
    with loopback_names(NAMES):
        proxy = Proxy(policy, work / "ca", "--audit-log", str(audit), *flags)
    try:
        tls_before, plain_before = len(tls.requests), len(plain.requests)
        for source in ("127.0.0.2", "127.0.0.3"):
            answer = tunnel_get(proxy, "api.some-llm.ai", tls.port,
                                "/v1/chat/completions?token=abc", source, upstream_ca)  # fmt: skip
            assert b"hello from upstream" in answer
        answer = tunnel_get(proxy, "chat.newbot.example", tls.port, "/private/path", "127.0.0.2",
                            upstream_ca)  # fmt: skip
        assert b"hello from upstream" in answer
        tunnel_get(proxy, "beta.partial.example", tls.port, "/", "127.0.0.2", upstream_ca)
        for i in range(2, 7):  # the ordinary site has the most clients and traffic
            url = f"http://www.news.example:{plain.port}/news/today?q=secret"
            plain_get(proxy, url, f"127.0.0.{i}")
            tunnel_get(proxy, "news.example", tls.port, "/", f"127.0.0.{i}", upstream_ca)
        plain_get(proxy, f"http://api.knownai.example:{plain.port}/v1/x", "127.0.0.2")
        plain_get(proxy, f"http://ai.partial.example:{plain.port}/v1/x", "127.0.0.2")
        # the control: every request reached its upstream
        assert len(tls.requests) - tls_before == 9
        assert len(plain.requests) - plain_before == 7
        assert ("GET", "/v1/chat/completions?token=abc", tls.requests[tls_before][2]) == (
            tls.requests[tls_before]
        )
        lines = discovery_lines(
            audit, lambda ls: {"some-llm.ai", "news.example", "partial.example"}
            <= {x["domain"] for x in ls} and sum(x["connections"] for x in ls) >= 9)  # fmt: skip
        m = metrics(proxy)
    finally:
        assert proxy.stop() == 0
    by_domain: dict[str, list[dict]] = {}
    for line in lines:
        by_domain.setdefault(line["domain"], []).append(line)
    llm = by_domain["some-llm.ai"]
    assert sum(x["connections"] for x in llm) == 2 and max(x["clients"] for x in llm) >= 1
    assert {h for x in llm for h in x["hosts"]} == {"api.some-llm.ai"}
    news = by_domain["news.example"]
    assert sum(x["requests"] for x in news) == 5 and sum(x["connections"] for x in news) == 5
    if not flags:  # the fast path knows the bytes of its tunnels
        assert sum(x["bytes_up"] for x in llm) > 500 and sum(x["bytes_down"] for x in llm) > 500
    assert value(m, "aiwarden_discovery_overflow_total") == 0
    raw = audit.read_text()
    for secret in SECRETS:  # hosts only: never a path or a query string
        assert secret not in raw, secret

    r = run_discover(policy, "--json", "--all", str(audit))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    ranked = [c["domain"] for c in data["candidates"]]
    assert ranked.index("some-llm.ai") < ranked.index("news.example")
    assert ranked.index("newbot.example") < ranked.index("news.example")
    assert "knownai.example" not in ranked and "knownai.example" in data["catalogued"]
    partial = next(c for c in data["candidates"] if c["domain"] == "partial.example")
    assert partial["hosts"] == ["beta.partial.example"]
    assert any(x["signal"] == "catalog" for x in partial["reasons"])
    news = next(c for c in data["candidates"] if c["domain"] == "news.example")
    assert not news["sign"] and news["clients"] >= 1
    top = data["candidates"][0]
    assert top["domain"] == "some-llm.ai"
    assert top["entry"]["hosts"] == ["some-llm.ai", "*.some-llm.ai"]

    text = run_discover(policy, str(audit))
    assert text.returncode == 0, text.stderr
    assert "some-llm.ai  score 7" in text.stdout and "  - id: some-llm" in text.stdout
    assert "news.example" not in text.stdout  # no sign: left out without --all


def test_sample_zero_records_nothing_until_a_reload_turns_discovery_on(upstreams, tmp_path):
    work, plain, tls, upstream_ca = upstreams
    sampled = POLICY.replace("{mode: on,", "{mode: sampled, sample: 0,")
    policy = write_policy(tmp_path / "policy", sampled, SHIPPED_CATALOG)
    audit = tmp_path / "audit.jsonl"
    with loopback_names(NAMES):
        proxy = Proxy(policy, work / "ca", "--audit-log", str(audit), "--policy-watch", "1")
    try:
        before = len(tls.requests)
        for _ in range(3):
            tunnel_get(proxy, "api.some-llm.ai", tls.port, "/", "127.0.0.2", upstream_ca)
            plain_get(proxy, f"http://news.example:{plain.port}/", "127.0.0.2")
        assert len(tls.requests) - before == 3  # the traffic went through
        time.sleep(2.5)  # two windows
        assert discovery_lines(audit, timeout=0) == []
        first = proxy.wait_for(lambda r: r.get("event") == "policy_loaded")["digest"]
        (policy / "policy.yaml").write_text(
            (policy / "policy.yaml").read_text().replace("sampled, sample: 0", "on")
        )
        proxy.wait_for(lambda r: r.get("event") == "policy_loaded" and r["digest"] != first)
        tunnel_get(proxy, "api.some-llm.ai", tls.port, "/", "127.0.0.2", upstream_ca)
        lines = discovery_lines(audit, lambda ls: bool(ls))
    finally:
        assert proxy.stop() == 0
    assert [x["domain"] for x in lines] == ["some-llm.ai"] and lines[0]["connections"] == 1


def test_each_worker_writes_its_own_window_and_discover_sums_them(upstreams, tmp_path):
    work, _plain, tls, upstream_ca = upstreams
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    audit = tmp_path / "audit.jsonl"
    with loopback_names(NAMES):
        proxy = Proxy(policy, work / "ca", "--audit-log", str(audit), "--workers", "2")
    try:
        for i in range(8):
            tunnel_get(proxy, "api.some-llm.ai", tls.port, "/", f"127.0.0.{2 + i % 4}", upstream_ca)
        lines = discovery_lines(audit, lambda ls: sum(x["connections"] for x in ls) >= 8)
    finally:
        assert proxy.stop() == 0
    assert sum(x["connections"] for x in lines) == 8
    r = run_discover(policy, "--json", str(audit))
    assert r.returncode == 0, r.stderr
    (llm,) = json.loads(r.stdout)["candidates"]
    assert (llm["domain"], llm["connections"], llm["lines"]) == ("some-llm.ai", 8, len(lines))


def test_discovery_counts_under_mitmdump_too(upstreams, tmp_path):
    work, plain, _tls, _ = upstreams
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    audit = tmp_path / "audit.jsonl"
    proxy = mitmdump_proxy(policy, work / "ca", f"aiwarden_audit_log={audit}")
    try:
        plain_get(proxy, f"http://localhost:{plain.port}/private/path?q=secret", "127.0.0.2")
        lines = discovery_lines(audit, bool)
    finally:
        proxy.stop()
    assert [(x["domain"], x["requests"], x["hosts"]) for x in lines] == [
        ("localhost", 1, ["localhost"])
    ]
    assert "/private/path" not in audit.read_text()
