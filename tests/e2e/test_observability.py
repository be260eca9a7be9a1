"""Metrics and the audit log of the real proxy: exact counts for the traffic sent, one audit
line per decision even under 200 concurrent connections, logrotate's SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import SHIPPED_CATALOG, local_ai_policy
from proxyharness import (
    WORKERS,
    Proxy,
    Upstream,
    connect_tunnel,
    curl,
    metrics,
    plain_request,
    value,
    write_policy,
)

from proxy import ca

POLICY = local_ai_policy(
    api_format="openai",
    sections="""
    redaction_profiles:
      default: {detectors: [secrets, pii]}
    """,
    rules="""
    - id: approved
      match: {services: [local-ai], paths: ["/v1/**"]}
      action: redact
    - id: watch
      match: {services: [local-ai]}
      action: monitor
    - id: block-ai
      match: {categories: [chat, api]}
      action: block
    """,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("obs")
    ca.init(work / "ca")
    policy = write_policy(work / "policy", POLICY, SHIPPED_CATALOG)
    upstream = Upstream()
    audit = work / "audit.jsonl"
    proxy = Proxy(policy, work / "ca", "--audit-log", str(audit))
    yield proxy, upstream, audit
    assert proxy.stop() == 0
    upstream.close()


def audit_lines(path, count: int, timeout: float = 10) -> list[dict]:
    """The audit log once it holds `count` lines (it is written by a thread of its own)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


def test_counts_and_audit_lines_match_the_traffic(setup):
    proxy, upstream, audit = setup
    before = metrics(proxy)
    start = len(audit_lines(audit, 0, timeout=0))
    blocked = [
        curl("-si", "--proxy", proxy.url, f"http://claude.ai/api/append_message?k={i}")
        for i in range(3)
    ]
    references = sorted(
        line.split(": ")[1].strip()
        for r in blocked
        for line in r.stdout.splitlines()
        if line.lower().startswith("x-aiwarden-reference")
    )
    sock, status, _ = connect_tunnel(proxy.address, "169.254.169.254:443")
    sock.close()
    assert status == 403
    monitored = curl("--proxy", proxy.url, f"http://localhost:{upstream.port}/page")
    assert monitored.stdout == "hello from upstream\n"
    body = json.dumps({"messages": [{"role": "user", "content": "mail bob@corp.example"}]})
    redacted = curl(
        "--proxy",
        proxy.url,
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body,
        f"http://localhost:{upstream.port}/v1/upload",
    )
    assert redacted.returncode == 0
    lines = audit_lines(audit, start + 6)[start:]
    assert [line["action"] for line in lines] == ["block"] * 4 + ["monitor", "redact"]
    assert sorted(line["id"] for line in lines[:3]) == references  # what users were shown
    first = lines[0]
    assert first["path"] == "/api/append_message" and first["service"] == "claude"
    assert first["category"] == "chat" and first["rule"] == "block-ai"
    assert first["client"] == "127.0.0.1" and first["stage"] == "request"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert lines[3]["rule"] == "network.deny_destinations" and lines[3]["stage"] == "connect"
    assert lines[5]["redactions"] == {"email": 1}
    raw = audit.read_text()
    assert "bob@corp.example" not in raw and "k=0" not in raw
    after = metrics(proxy)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("aiwarden_blocked_total", service="claude", rule="block-ai") == 3
    assert delta("aiwarden_blocked_total", service="none", rule="network.deny_destinations") == 1
    blocked = {"action": "block", "service": "claude", "category": "chat", "stage": "request"}
    assert delta("aiwarden_requests_total", **blocked) == 3
    monitored = {"action": "monitor", "service": "local-ai", "category": "chat", "stage": "request"}
    assert delta("aiwarden_requests_total", **monitored) == 1
    assert delta("aiwarden_redactions_total", detector="email", service="local-ai") == 1
    assert delta("aiwarden_connections_total", mode="refuse") == 1
    assert delta("aiwarden_decision_seconds_count", stage="request") >= 5
    # each worker loaded it once
    assert value(after, "aiwarden_policy_reloads_total", result="success") == int(WORKERS)
    assert value(after, "aiwarden_policy_last_reload_timestamp_seconds") > 1.7e9
    assert (
        value(
            after,
            "aiwarden_build_info",
            version="0.1.0",
            python=__import__("platform").python_version(),
            mitmproxy=__import__("mitmproxy.version").version.VERSION,
        )
        == 1
    )


def test_one_audit_line_and_one_count_per_decision_under_200_connections(setup):
    proxy, _, audit = setup
    before = metrics(proxy)
    start = len(audit_lines(audit, 0, timeout=0))

    def blocked_request(i: int) -> int:
        reply = plain_request(
            proxy.address,
            f"GET http://chatgpt.com/c/{i} HTTP/1.1\r\n"
            "Host: chatgpt.com\r\nConnection: close\r\n\r\n",
        )
        return int(reply.split(b" ", 2)[1])

    with ThreadPoolExecutor(max_workers=200) as pool:
        statuses = list(pool.map(blocked_request, range(200)))
    assert statuses == [403] * 200
    lines = audit_lines(audit, start + 200)[start:]
    assert len(lines) == 200
    assert sorted(int(line["path"].rsplit("/", 1)[1]) for line in lines) == list(range(200))
    assert len({line["id"] for line in lines}) == 200
    after = metrics(proxy)
    blocked = value(after, "aiwarden_blocked_total", service="chatgpt", rule="block-ai") - value(
        before, "aiwarden_blocked_total", service="chatgpt", rule="block-ai"
    )
    assert blocked == 200


def test_sighup_reopens_the_audit_log_for_logrotate(setup):
    proxy, _, audit = setup
    rotated = audit.with_suffix(".1")
    os.replace(audit, rotated)
    proxy.process.send_signal(signal.SIGHUP)
    proxy.wait_for(lambda e: e.get("event") == "audit_log_reopened")
    curl("-s", "--proxy", proxy.url, "http://claude.ai/after-rotation")
    lines = audit_lines(audit, 1)
    assert [line["path"] for line in lines] == ["/after-rotation"]
    assert "/after-rotation" not in rotated.read_text()
    os.replace(rotated, audit.with_suffix(".old"))  # the other tests count from the new file


def test_metrics_carry_no_client_addresses_users_or_urls(setup):
    proxy, _, _ = setup
    text = httpx.get(f"http://{proxy.admin}/metrics").text
    assert "127.0.0.1" not in text and "append_message" not in text and "claude.ai" not in text


def test_audit_log_to_stdout_for_container_log_collection(tmp_path):
    ca.init(tmp_path / "ca")
    policy = write_policy(tmp_path / "policy", POLICY, SHIPPED_CATALOG)
    proxy = Proxy(policy, tmp_path / "ca", "--audit-log", "-")
    try:
        curl("-s", "--proxy", proxy.url, "http://claude.ai/to-stdout")
        line = proxy.wait_for(lambda r: r.get("path") == "/to-stdout" and "event" not in r)
        assert line["action"] == "block" and set(line) >= {"ts", "id", "client", "rule"}
    finally:
        assert proxy.stop() == 0


def audit_ok(proxy: Proxy) -> float:
    return value(metrics(proxy), "aiwarden_audit_log_ok")


def test_a_removed_audit_log_is_made_again_without_a_signal(tmp_path):
    ca.init(tmp_path / "ca")
    audit = tmp_path / "audit.jsonl"
    proxy = Proxy(write_policy(tmp_path / "p", POLICY, SHIPPED_CATALOG), tmp_path / "ca",
                  "--audit-log", str(audit))  # fmt: skip
    try:
        curl("-s", "--proxy", proxy.url, "http://claude.ai/first")
        assert [line["path"] for line in audit_lines(audit, 1)] == ["/first"]
        audit.unlink()  # an operator's mistake, or a rotation without SIGHUP
        curl("-s", "--proxy", proxy.url, "http://claude.ai/second")
        assert [line["path"] for line in audit_lines(audit, 1)] == ["/second"]
        assert audit_ok(proxy) == 1
    finally:
        assert proxy.stop() == 0


def test_an_audit_log_that_cannot_be_written_makes_the_proxy_unready(tmp_path):
    """The proxy keeps deciding, counts what it loses, and says so in /readyz until the
    audit log can be written again."""
    ca.init(tmp_path / "ca")
    audit = tmp_path / "audit.jsonl"
    proxy = Proxy(write_policy(tmp_path / "p", POLICY, SHIPPED_CATALOG), tmp_path / "ca",
                  "--audit-log", str(audit))  # fmt: skip
    ready = f"http://{proxy.admin}/readyz"
    try:
        curl("-s", "--proxy", proxy.url, "http://claude.ai/before")
        audit_lines(audit, 1)
        audit.unlink()
        audit.mkdir()  # now the name cannot be opened as a file
        blocked = curl("-si", "--proxy", proxy.url, "http://claude.ai/while-broken")
        assert blocked.stdout.startswith("HTTP/1.1 403")  # still deciding
        proxy.wait_for(lambda r: "cannot write" in r.get("msg", ""))
        assert audit_ok(proxy) == 0
        assert value(metrics(proxy), "aiwarden_audit_write_errors_total") == 1
        r = httpx.get(ready)
        assert r.status_code == 503
        assert r.text.startswith("not ready: the audit log cannot be written")
        assert "Is a directory" in r.text or int(WORKERS) > 1  # a supervisor says less
        audit.rmdir()  # fixed: the next line is written, and the proxy is ready again
        curl("-s", "--proxy", proxy.url, "http://claude.ai/after")
        assert [line["path"] for line in audit_lines(audit, 1)] == ["/after"]
        assert audit_ok(proxy) == 1 and httpx.get(ready).status_code == 200
    finally:
        assert proxy.stop() == 0


def test_a_full_disk_is_counted_and_reported(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is missing: no way to make writes fail with ENOSPC here")
    ca.init(tmp_path / "ca")
    proxy = Proxy(write_policy(tmp_path / "p", POLICY, SHIPPED_CATALOG), tmp_path / "ca",
                  "--audit-log", "/dev/full")  # fmt: skip
    try:
        for i in range(3):
            r = curl("-si", "--proxy", proxy.url, f"http://claude.ai/full-{i}")
            assert r.stdout.startswith("HTTP/1.1 403")
        deadline = time.monotonic() + 10
        while value(metrics(proxy), "aiwarden_audit_write_errors_total") < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert audit_ok(proxy) == 0
        reply = httpx.get(f"http://{proxy.admin}/readyz")
        assert reply.status_code == 503 and "the audit log cannot be written" in reply.text
        assert "No space left on device" in reply.text or int(WORKERS) > 1
        proxy.wait_for(lambda r: "cannot write" in r.get("msg", ""))
        errors = [r for r in proxy.drain() if "cannot write" in r.get("msg", "")]
        assert 1 <= len(errors) <= int(WORKERS)  # logged once (per process), not per line
    finally:
        assert proxy.stop() == 0
