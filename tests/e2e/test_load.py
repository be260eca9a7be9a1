"""Mixed load on the real proxy (two workers): 200 connections at a time for a fixed time,
blocked, monitored and tunnelled. No request may fail, and the metrics and the audit log
must count exactly what was sent."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter

import pytest
from conftest import SHIPPED_CATALOG, local_ai_policy
from proxyharness import (
    Proxy,
    Upstream,
    connect_tunnel,
    make_upstream_pki,
    metrics,
    plain_request,
    write_policy,
)

from proxy import ca

CONNECTIONS = 200
SECONDS = 6

POLICY = local_ai_policy(
    category="api",
    rules="""
    - id: watch-local-ai
      match: {services: [local-ai]}
      action: monitor
    - id: block-ai
      match: {categories: [chat]}
      action: block
    """,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("load")
    ca.init(work / "ca")
    (work / "upstream").mkdir()
    upstream_ca, cert, key = make_upstream_pki(work / "upstream")
    plain, tls = Upstream(), Upstream(tls=(cert, key))
    audit = work / "audit.jsonl"
    proxy = Proxy(write_policy(work / "policy", POLICY, SHIPPED_CATALOG), work / "ca",
                  "--workers", "2", "--audit-log", str(audit))  # fmt: skip
    yield proxy, plain, tls, upstream_ca, audit
    assert proxy.stop() == 0
    plain.close()
    tls.close()


def test_mixed_load_fails_nothing_and_is_counted_exactly(env):
    proxy, plain, tls, upstream_ca, audit = env
    trust = ssl.create_default_context(cafile=str(upstream_ca))
    sent: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def blocked(n: str) -> bool:
        reply = plain_request(proxy.address, f"GET http://chatgpt.com/load/{n} HTTP/1.1\r\n"
                              "Host: chatgpt.com\r\nConnection: close\r\n\r\n")  # fmt: skip
        return reply.startswith(b"HTTP/1.1 403")

    def monitored(n: str) -> bool:
        host = f"localhost:{plain.port}"
        reply = plain_request(proxy.address, f"GET http://{host}/load/{n} HTTP/1.1\r\n"
                              f"Host: {host}\r\nConnection: close\r\n\r\n")  # fmt: skip
        return reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"hello from upstream\n")

    def tunnelled(_: str) -> bool:
        sock, status, _ = connect_tunnel(proxy.address, f"127.0.0.1:{tls.port}")
        if status != 200:
            sock.close()
            return False
        with trust.wrap_socket(sock, server_hostname="127.0.0.1") as conn:  # no SNI: tunnel
            conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        return reply.startswith(b"HTTP/1.1 200")

    kinds = {"blocked": blocked, "monitored": monitored, "tunnelled": tunnelled}

    def client(number: int) -> None:
        kind = list(kinds)[number % 3]
        i = 0
        while time.monotonic() < deadline:
            name = f"{number}-{i}"
            try:
                ok = kinds[kind](name)
            except OSError as e:
                ok, name = False, f"{name}: {e!r}"
            with lock:
                sent[kind] += 1
                if not ok:
                    failures.append(f"{kind} {name}")
            i += 1

    before = metrics(proxy)
    lines_before = len(audit.read_text().splitlines()) if audit.exists() else 0
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [], failures[:10]
    assert min(sent.values()) >= CONNECTIONS // 3  # every client got through at least once

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return metrics(proxy).get(key, 0) - before.get(key, 0)

    expected_lines = lines_before + sent["blocked"] + sent["monitored"]
    wait = time.monotonic() + 15
    while len(audit.read_text().splitlines()) < expected_lines and time.monotonic() < wait:
        time.sleep(0.1)
    lines = [json.loads(line) for line in audit.read_text().splitlines()[lines_before:]]
    assert Counter(line["action"] for line in lines) == {
        "block": sent["blocked"],
        "monitor": sent["monitored"],
    }
    assert delta("aiwarden_blocked_total", service="chatgpt", rule="block-ai") == sent["blocked"]
    assert (
        delta("aiwarden_requests_total", action="monitor", service="local-ai", category="api",
              stage="request")
        == sent["monitored"]
    )  # fmt: skip
    assert delta("aiwarden_connections_total", mode="tunnel") == sent["tunnelled"]
    assert len(tls.requests) >= sent["tunnelled"]
