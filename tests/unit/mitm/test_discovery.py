"""Discovery (proxy/mitm/discovery.py): the policy's `discovery:` section, and the bounded
window of what was relayed, as the addon counts it and writes it to the audit log. The scorer
of `aiwarden discover` is in tests/unit/observe/test_discover.py; real clients through the
real proxy in tests/e2e/test_discovery_proxy.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from mitmproxy.test import tflow
from prometheus_client import CollectorRegistry

from proxy.decide.verdict import Action, Decision, Stage
from proxy.mitm.answers import SINK
from proxy.mitm.discovery import CLIENTS_CAP, HOSTS_CAP, OTHER, Discovery
from proxy.mitm.discovery import registrable_domain as domain_of
from proxy.mitm.state import state_of
from proxy.observe.metrics import Metrics
from proxy.policy.loader import load_policy
from proxy.policy.model import DiscoverySettings
from proxy.policy.yamlsource import PolicyError

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
