"""Every failure and every decision a SOC asks about leaves a trace, through the real proxy:
a tunnel whose server cannot be reached (the client only sees the connection close after its
200) is logged with a reference, counted by kind and audited, with the fast path on and off;
every audit line has an id; an intercepted request whose server fails is audited under the id
of its decision's line; an allow rule with `audit: true` writes a line for each request and
each tunnel."""

from __future__ import annotations

import json
import socket
import time

import pytest
from conftest import SHIPPED_CATALOG
from proxyharness import (
    Proxy,
    Upstream,
    by_label,
    curl,
    loopback_names,
    make_upstream_pki,
    write_policy,
)

from proxy import ca

NAMES = ("tunnel.test", "partner.test")
POLICY = """
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
defaults: {action: allow}
services:
  - {id: gateway, name: AI gateway, vendor: Corp, category: api, hosts: [localhost],
     api_format: openai, source: test}
rules:
  - id: watch-gateway
    match: {services: [gateway]}
    action: monitor
  - id: partner-site
    match: {hosts: [partner.test]}
    action: allow
    audit: true
"""


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("audit-trail")
    ca.init(work / "ca")
    upstream_ca, cert, key = make_upstream_pki(work, NAMES)
    return {"dir": work, "ca": work / "ca", "cafile": work / "ca" / "ca.pem",
            "upstream_ca": upstream_ca, "cert": cert, "key": key}  # fmt: skip


@pytest.fixture(scope="module", params=["fast path", "no fast path"])
def proxy(request, work):
    name = request.param.replace(" ", "-")
    policy = write_policy(work["dir"] / name, POLICY, SHIPPED_CATALOG)
    audit = work["dir"] / name / "audit.jsonl"
    fast = () if request.param == "fast path" else ("--no-fast-tunnels",)
    with loopback_names(NAMES):
        p = Proxy(policy, work["ca"], "--audit-log", str(audit),
                  "--upstream-ca", str(work["upstream_ca"]), *fast)  # fmt: skip
    p.audit = audit
    yield p
    p.stop()


def audit_lines(proxy, predicate, timeout: float = 5, count: int = 1) -> list[dict]:
    """The audit lines that match, once there are `count` of them (or the time is up): the
    lines of one request are written at different moments."""
    deadline = time.monotonic() + timeout
    while True:
        text = proxy.audit.read_text() if proxy.audit.exists() else ""
        found = [r for r in map(json.loads, text.splitlines()) if predicate(r)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_tunnel_whose_server_refuses_is_logged_counted_and_audited(proxy, work):
    before = by_label(proxy, "aiwarden_upstream_errors_total", "kind").get("refused", 0)
    port = closed_port()
    r = curl("--proxy", proxy.url, "--cacert", str(work["upstream_ca"]),
             f"https://tunnel.test:{port}/")  # fmt: skip
    assert r.returncode != 0  # the client only sees the tunnel close
    logged = proxy.wait_for(
        lambda e: e.get("event") == "upstream_error" and e.get("host") == "tunnel.test"
    )
    assert logged["kind"] == "refused" and logged["tunnel"] is True and logged["reference"]
    assert by_label(proxy, "aiwarden_upstream_errors_total", "kind")["refused"] == before + 1
    (line,) = audit_lines(proxy, lambda r: r.get("event") == "upstream_error"
                          and r.get("id") == logged["reference"])  # fmt: skip
    assert line["client"] == "127.0.0.1" and line["kind"] == "refused" and line["tunnel"]


def test_an_intercepted_failure_is_audited_under_its_decisions_id(proxy):
    r = curl("-si", "--proxy", proxy.url, f"http://localhost:{closed_port()}/v1/models")
    assert r.stdout.startswith("HTTP/1.1 502")
    reference = r.stdout.lower().split("x-aiwarden-reference: ", 1)[1].split("\r\n", 1)[0]
    lines = audit_lines(proxy, lambda r: r.get("id") == reference, timeout=10, count=2)
    assert {line.get("event") or line["action"] for line in lines} == {"monitor", "upstream_error"}
    (error,) = [line for line in lines if line.get("event")]
    assert error["kind"] == "refused" and error["status"] == 502 and error["tunnel"] is False


def test_every_audit_line_has_an_id(proxy, work):
    plain = Upstream()
    tls = Upstream(tls=(work["cert"], work["key"]))
    try:
        monitored = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", proxy.url,
                         f"http://localhost:{plain.port}/v1/models")  # fmt: skip
        allowed = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", proxy.url,
                       f"http://partner.test:{plain.port}/page")  # fmt: skip
        tunnelled = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", proxy.url,
                         "--cacert", str(work["upstream_ca"]),
                         f"https://partner.test:{tls.port}/page")  # fmt: skip
    finally:
        plain.close()
        tls.close()
    assert (monitored.stdout, allowed.stdout, tunnelled.stdout) == ("200", "200", "200")
    partner = audit_lines(proxy, lambda r: r.get("rule") == "partner-site", timeout=10, count=2)
    assert {(r["method"], r["stage"], r["action"]) for r in partner} >= {
        ("GET", "request", "allow"),
        ("CONNECT", "connect", "allow"),
    }
    every = audit_lines(proxy, lambda r: True)
    assert every and all(r.get("id") for r in every), [r for r in every if not r.get("id")]
