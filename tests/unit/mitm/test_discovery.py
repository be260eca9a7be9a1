"""Discovery (proxy/mitm/discovery.py) and `aiwarden discover` (proxy/observe/discover.py):
the policy's `discovery:` section, the bounded window, the scorer, and end to end: real clients
through the real proxy to local upstreams under AI-looking and ordinary names, then `aiwarden
discover` on the audit log it wrote."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import SHIPPED_CATALOG, TESTS
from mitmproxy.test import tflow
from prometheus_client import CollectorRegistry
from proxyharness import (
    Proxy,
    Upstream,
    curl,
    exchange,
    make_upstream_pki,
    metrics,
    mitmdump_proxy,
    value,
    write_policy,
)

from proxy import ca
from proxy.decide.verdict import Action, Decision, Stage
from proxy.mitm.answers import SINK
from proxy.mitm.discovery import CLIENTS_CAP, HOSTS_CAP, OTHER, Discovery
from proxy.mitm.discovery import registrable_domain as domain_of
from proxy.mitm.state import state_of
from proxy.observe import discover, report
from proxy.observe.metrics import Metrics
from proxy.policy.loader import load_policy
from proxy.policy.model import DiscoverySettings
from proxy.policy.yamlsource import PolicyError

AIWARDEN = str(Path(sys.executable).parent / "aiwarden")
LOOPBACK_NAMES = TESTS / "loopback_names"  # sitecustomize.py

# -- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("discovery:\n  mode: sometimes\n", 5, "'mode' must be one of off, on, sampled"),
        ("discovery:\n  mode: sampled\n", 5, "mode: sampled needs 'sample'"),
        ("discovery:\n  mode: on\n  sample: 0.5\n", 6, "'sample' applies to mode: sampled only"),
        ("discovery:\n  mode: sampled\n  sample: 1.5\n", 6, "from 0 to 1, not 1.5"),
        ("discovery:\n  mode: sampled\n  sample: half\n", 6, "from 0 to 1, not 'half'"),
        ("discovery:\n  mode: on\n  flush_seconds: 0\n", 6, "'flush_seconds' must be from 1"),
        ("discovery:\n  mode: on\n  max_domains: many\n", 6, "must be a whole number"),
        ("discovery:\n  mode: on\n  max_domain: 5\n", 6, "did you mean 'max_domains'"),
        ("discovery:\n  flush_seconds: 60\n", 5, "missing required key 'mode'"),
        ("discovery: [on]\n", 4, "'discovery' must be a mapping"),
    ],
)
def test_a_bad_discovery_section_is_a_file_line_error(write_policy, section, line, message):
    path = write_policy("version: 1\nrules: []\n" + section)
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    (problem,) = e.value.problems
    assert (problem.file, problem.line) == (str(path), line), problem
    assert message in problem.message, problem


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("", DiscoverySettings(mode="off")),  # absent: off
        ("discovery: off\n", DiscoverySettings(mode="off")),  # YAML reads a bare off as false
        ("discovery: {mode: off}\n", DiscoverySettings(mode="off")),
        ("discovery: {mode: on}\n", DiscoverySettings(mode="on")),
        (
            "discovery: {mode: sampled, sample: 0.1, flush_seconds: 60, max_domains: 5}\n",
            DiscoverySettings(mode="sampled", sample=0.1, flush_seconds=60, max_domains=5),
        ),
    ],
)
def test_discovery_settings(write_policy, section, expected):
    assert load_policy(write_policy("version: 1\nrules: []\n" + section)).discovery == expected


def test_the_shipped_policy_turns_discovery_on(shipped_policy):
    assert shipped_policy.discovery.mode == "on"


# -- the window ----------------------------------------------------------------------------------


class FakeAudit:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def write_event(self, record: dict) -> None:
        self.records.append(json.loads(json.dumps(record)))


def counting(write_policy, section: str) -> tuple[Discovery, FakeAudit, Metrics]:
    """A Discovery with a policy, an audit log and metrics, and no event loop."""
    policy = load_policy(write_policy("version: 1\nrules: []\n" + section))
    audit, m = FakeAudit(), Metrics(CollectorRegistry())
    recorder = SimpleNamespace(audit=audit, metrics=m, before_close=[])
    d = Discovery(SimpleNamespace(policy=policy), recorder)
    return d, audit, m


def sample(m: Metrics, name: str) -> float:
    return m.registry.get_sample_value(name) or 0.0


def test_registrable_domains():
    assert domain_of("api.some-llm.ai") == "some-llm.ai"
    assert domain_of("a.b.example.co.uk") == "example.co.uk"
    assert domain_of("x.github.io") == "x.github.io"  # a private suffix: one owner per site
    assert domain_of("newbot.example") == "newbot.example"  # an unknown TLD
    assert domain_of("10.1.2.3") == "10.1.2.3" and domain_of("2001:db8::1") == "2001:db8::1"
    assert domain_of("localhost") == "localhost" and domain_of("ai") == "ai"


def test_the_window_is_bounded_and_what_is_beyond_is_counted_as_other(write_policy):
    d, audit, m = counting(write_policy, "discovery: {mode: on, max_domains: 3}\n")
    for i in range(5):
        assert d.tunnel(f"www.site{i}.example", "10.0.0.1") in (f"site{i}.example", OTHER)
    assert d.tunnel("api.site0.example", "10.0.0.2") == "site0.example"  # a tracked domain
    assert sorted(d.window.domains) == ["site0.example", "site1.example", "site2.example"]
    assert d.window.other.connections == 2
    assert sample(m, "aiwarden_discovery_overflow_total") == 2
    assert sample(m, "aiwarden_discovery_domains") == 3
    d.transferred("site0.example", 100, 2000)
    d.flush(wait=True)
    assert sample(m, "aiwarden_discovery_domains") == 0 and not d.window.domains
    by_domain = {r["domain"]: r for r in audit.records}
    assert list(by_domain) == ["site0.example", "site1.example", "site2.example", OTHER]
    site0 = by_domain["site0.example"]
    assert site0["event"] == "discovery" and site0["connections"] == 2
    assert site0["hosts"] == ["api.site0.example", "www.site0.example"]
    assert (site0["clients"], site0["bytes_up"], site0["bytes_down"]) == (2, 100, 2000)
    assert by_domain[OTHER]["hosts"] == [] and by_domain[OTHER]["connections"] == 2
    for record in audit.records:
        assert len(json.dumps(record)) < 4096  # one atomic write to a pipe
    d.flush(wait=True)
    assert len(audit.records) == 4  # an empty window writes nothing


def test_clients_and_hosts_are_capped(write_policy):
    d, audit, _ = counting(write_policy, "discovery: {mode: on}\n")
    for i in range(CLIENTS_CAP + 8):
        d.forwarded(f"h{i % (HOSTS_CAP + 3)}.busy.example", f"10.0.{i}.1", 10)
    d.flush(wait=True)
    (record,) = audit.records
    assert (record["clients"], record["clients_capped"]) == (CLIENTS_CAP, True)
    assert (len(record["hosts"]), record["hosts_capped"]) == (HOSTS_CAP, True)
    assert record["requests"] == CLIENTS_CAP + 8 and record["bytes_up"] == 10 * (CLIENTS_CAP + 8)


def test_sample_zero_counts_nothing_and_off_counts_nothing(write_policy):
    for section in ("discovery: {mode: sampled, sample: 0}\n", "discovery: {mode: off}\n", ""):
        d, audit, _ = counting(write_policy, section)
        assert all(d.tunnel("api.x.ai", "10.0.0.1") is None for _ in range(500)), section
        d.flush(wait=True)
        assert audit.records == []
    d, audit, _ = counting(write_policy, "discovery: {mode: sampled, sample: 0.5}\n")
    counted = sum(d.tunnel("api.x.ai", "10.0.0.1") is not None for _ in range(2000))
    assert 800 < counted < 1200


def test_a_new_policy_applies_at_the_next_connection(write_policy):
    d, audit, _ = counting(write_policy, "discovery: {mode: on}\n")
    d.tunnel("api.x.ai", "10.0.0.1")
    d.gate.policy = load_policy(write_policy("version: 1\nrules: []\ndiscovery: {mode: off}\n"))
    assert d.tunnel("api.x.ai", "10.0.0.1") is None
    assert [r["connections"] for r in audit.records] == [1]  # what was counted was written


def test_a_body_blocked_before_it_was_read_is_not_counted(write_policy):
    """A request blocked before its body is streamed to the sink: not traffic to count."""
    d, _, _ = counting(write_policy, "discovery: {mode: on}\n")
    flows = {}
    for host in ("api.x.ai", SINK[0]):  # a control, then the sink
        f = flows[host] = tflow.tflow()
        f.request.host, f.request.headers["content-length"] = host, "0"
        state_of(f).decision = Decision(Action.ALLOW, Stage.REQUEST, "default", "test")
        d.request(f)
    assert state_of(flows["api.x.ai"]).counted == "x.ai"
    assert state_of(flows[SINK[0]]).counted is None


# -- the scorer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "words"),
    [
        ("some-llm", ["llm"]),
        ("newbot", ["bot"]),
        ("openai", ["ai"]),
        ("gpt4all", ["gpt"]),
        ("my-ai-app", ["ai"]),
        ("mail", []),  # "ai" inside a word is not "ai"
        ("thai", []),
        ("shanghai", []),
        ("mailchimp", []),
        ("chateau", []),
        ("robot", []),
        ("egypt", []),
        ("news", []),
    ],
)
def test_words_are_found_on_label_boundaries(label, words):
    assert [w for w, _, _ in discover.words_in(label)] == words


def seen(domain: str, *hosts: str, **counts) -> discover.Seen:
    s = discover.Seen(domain, hosts=set(hosts or [domain]), lines=1)
    for key, v in counts.items():
        setattr(s, key, v)
    return s


@pytest.fixture(scope="module")
def catalog():
    from conftest import SHIPPED

    return discover.Catalog(load_policy(SHIPPED))


def reasons(candidate) -> dict[str, int]:
    return {r.signal: r.points for r in candidate.reasons}


def test_the_score_and_its_reasons(catalog):
    llm = discover.score(seen("some-llm.ai", "api.some-llm.ai"), catalog)
    assert reasons(llm) == {"name": 3, "tld": 3, "subdomain": 1} and llm.score == 7
    assert llm.category == "api"
    assert [str(r) for r in llm.reasons] == [
        "+3 name: 'llm' in some-llm",
        "+3 tld: .ai",
        "+1 subdomain: api. (api.some-llm.ai)",
    ]
    bot = discover.score(seen("newbot.example", "chat.newbot.example"), catalog)
    assert reasons(bot) == {"name": 1, "subdomain": 1} and bot.has_sign
    news = discover.score(seen("news.example", "www.news.example", clients=12), catalog)
    assert not news.has_sign and reasons(news) == {"traffic": 1}
    # the catalog knows *.openai.com: nothing to discover there
    assert discover.score(seen("openai.com", "newthing.openai.com"), catalog) is None
    lookalike = discover.score(seen("openai-proxy.com", "api.openai-proxy.com"), catalog)
    assert reasons(lookalike) == {"name": 2, "catalog": 2, "subdomain": 1}
    assert "'openai' as in catalogued openai.com" in lookalike.reasons[-1].detail
    same = discover.score(seen("jetbrains.com", "www.jetbrains.com"), catalog)
    assert reasons(same) == {"catalog": 1}  # the vendor's other site: a weak sign
    # a host beside catalogued ones: worth a look, no more (mail.google.com is not AI)
    sibling = discover.score(seen("google.com", "gemini.google.com", "mail.google.com"), catalog)
    assert sibling.hosts == ["mail.google.com"] and reasons(sibling) == {"catalog": 2}
    assert "catalogued" in next(r.detail for r in sibling.reasons if r.signal == "catalog")
    uploads = discover.score(seen("x.example", bytes_up=200_000, bytes_down=100_000), catalog)
    assert reasons(uploads) == {"traffic": 1} and "upload-heavy" in uploads.reasons[0].detail


def test_ranking_and_the_entries_load_as_a_catalog(tmp_path):
    from conftest import SHIPPED

    policy = load_policy(SHIPPED)
    log = discover.Log(
        domains={
            s.domain: s
            for s in (
                seen("news.example", "www.news.example", clients=20, connections=500),
                seen("newbot.example", "chat.newbot.example", clients=1, connections=2),
                seen("some-llm.ai", "api.some-llm.ai", clients=2, connections=3),
                seen("google.com", "gemini.google.com", "mail.google.com"),
                seen("chatgpt.com", "chatgpt.com"),
            )
        }
    )
    result = discover.discover(log, policy)
    order = [c.seen.domain for c in result.candidates]
    assert order == ["some-llm.ai", "newbot.example", "google.com", "news.example"]
    assert [c.score for c in result.candidates] == [7, 2, 2, 1]
    assert result.catalogued == ["chatgpt.com"] and result.without_sign == 1
    text = discover.render_text(result, 25, False, "2026-12-03")
    assert "news.example" not in text.split("services:")[0].split("without any sign")[1]
    entries = text[text.index("services:") :]
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "found.yaml").write_text(entries)
    policy_text = f"version: 1\ncatalog: [cat, {SHIPPED_CATALOG}]\nrules: []\n"
    (tmp_path / "policy.yaml").write_text(policy_text)
    loaded = load_policy(tmp_path / "policy.yaml")
    found = {s.id: s for s in loaded.services if s.file.endswith("found.yaml")}
    assert sorted(found) == ["google", "newbot", "some-llm"]
    assert [h.text for h in found["some-llm"].hosts] == ["some-llm.ai", "*.some-llm.ai"]
    assert [h.text for h in found["google"].hosts] == ["mail.google.com"]  # only what was seen
    assert found["some-llm"].vendor == "TODO" and found["some-llm"].checked == "2026-12-03"
    assert found["some-llm"].source.startswith("aiwarden discover 2026-12-03: 2 clients;")
    data = discover.render_json(result, 2, False, "2026-12-03")
    assert [c["domain"] for c in data["candidates"]] == ["some-llm.ai", "newbot.example"]
    assert data["candidates"][0]["reasons"][0] == {
        "points": 3, "signal": "name", "detail": "'llm' in some-llm"}  # fmt: skip


def test_discover_reads_rotated_and_gzipped_logs_and_sums_windows(tmp_path):
    def line(**fields):
        base = {"ts": "2026-12-03T10:00:00.000Z", "event": "discovery", "hosts_capped": False,
                "connections": 1, "requests": 0, "bytes_up": 10, "bytes_down": 20,
                "clients": 1, "clients_capped": False, "first_seen": "2026-12-03T09:59:00.000Z",
                "last_seen": "2026-12-03T09:59:30.000Z", "sample": 1.0}  # fmt: skip
        return json.dumps({**base, **fields}) + "\n"

    decision = json.dumps({"ts": "2026-12-03T10:00:00.000Z", "action": "block", "host": "x"})
    (tmp_path / "audit.jsonl").write_text(
        decision + "\n" + line(domain="x.ai", hosts=["a.x.ai"], clients=3) + "not json\n"
    )
    with gzip.open(tmp_path / "audit.jsonl.1.gz", "wt") as f:
        f.write(line(domain="x.ai", hosts=["b.x.ai"], first_seen="2026-12-03T08:00:00.000Z"))
        f.write(line(domain=OTHER, hosts=[], connections=7))
        # what the proxy never writes is not printed, into YAML least of all
        f.write(line(domain="evil.ai\n  - id: x", hosts=["a.evil.ai"]))
        f.write(line(domain="x.ai", hosts=["c.x.ai\n  - id: x", "D.X.AI", 7]))
    log = discover.read([tmp_path / "audit.jsonl", tmp_path / "audit.jsonl.1.gz"])
    x = log.domains["x.ai"]
    assert (x.connections, x.bytes_up, x.bytes_down, x.lines) == (3, 30, 60, 3)
    assert x.hosts == {"a.x.ai", "b.x.ai"} and x.clients == 3  # at least 3, in one window
    assert list(log.domains) == ["x.ai"] and log.skipped == 1
    assert x.first_seen == "2026-12-03T08:00:00.000Z" and log.other.connections == 7
    # the report of decisions is not confused by discovery lines
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert report.build(lines, None)["attempts"] == 1


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


@contextlib.contextmanager
def loopback_names(names):
    """Proxies started inside resolve `names` to 127.0.0.1 (tests/loopback_names)."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "AIWARDEN_TEST_LOOPBACK_NAMES")}
    path = [str(LOOPBACK_NAMES), saved["PYTHONPATH"]]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    os.environ["AIWARDEN_TEST_LOOPBACK_NAMES"] = ",".join(names)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
