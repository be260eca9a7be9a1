"""The Discovery addon's mitmproxy hooks (proxy/mitm/discovery.py), with mitmproxy's test
flows and contexts: what each hook counts (a TLS connection relayed undecrypted, raw TCP, a
forwarded request and its answer's size) and what it leaves alone (what was intercepted,
answered by aiwarden, failed, or sent to the sink of a body blocked unread). The counting
itself, the window and its bounds are in test_discovery.py."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from mitmproxy.options import Options
from mitmproxy.proxy import layer, layers
from mitmproxy.proxy.context import Context
from mitmproxy.test import taddons, tflow
from mitmproxy.tls import ClientHello, ClientHelloData
from prometheus_client import CollectorRegistry
from proxyharness import client_hello

from proxy.decide.verdict import Action, Decision, Stage
from proxy.mitm.answers import SINK
from proxy.mitm.discovery import Discovery
from proxy.mitm.state import STATE, state_of
from proxy.observe.metrics import Metrics
from proxy.policy.loader import load_policy


class FakeAudit:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def write_event(self, record: dict) -> None:
        self.records.append(json.loads(json.dumps(record)))


# the places these tests touch how the addons are wired: how a Discovery gets its policy,
# audit log and metrics, how a flow says enforcement decided on it, and where the
# domain a request was counted under is kept


def make_discovery(policy, audit) -> Discovery:
    recorder = SimpleNamespace(audit=audit, metrics=Metrics(CollectorRegistry()), before_close=[])
    return Discovery(SimpleNamespace(policy=policy), recorder)


def decide(flow) -> None:
    state_of(flow).decision = Decision(Action.ALLOW, Stage.REQUEST, "default", "test")


def undecide(flow) -> None:
    del flow.metadata[STATE]


def counted(flow) -> str | None:
    state = flow.metadata.get(STATE)
    return state.counted if state is not None else None


@pytest.fixture
def discovery(write_policy):
    """A Discovery counting everything, behind stand-ins for the gate and the recorder; returns it
    and a function giving the window's lines, by domain, once written."""
    policy = load_policy(write_policy("version: 1\nrules: []\ndiscovery: {mode: on}\n"))
    audit = FakeAudit()
    d = make_discovery(policy, audit)

    def written() -> dict[str, dict]:
        d.flush(wait=True)
        return {r["domain"]: r for r in audit.records}

    return d, written


def context(client: str = "10.0.0.7", server: tuple[str, int] | None = None) -> Context:
    ctx = Context(tflow.tclient_conn(), Options())
    ctx.client.peername = (client, 50000)
    ctx.server.address = server
    return ctx


def hello(sni: str | None, server=None, ignore=True, client="10.0.0.7") -> ClientHelloData:
    data = ClientHelloData(context(client, server), ClientHello(client_hello(sni)[9:]))
    data.ignore_connection = ignore
    return data


def forwarded(url: str, body: bytes = b"", client: str = "10.0.0.7", **headers: str):
    """A flow enforcement decided on and let go upstream."""
    f = tflow.tflow()
    f.request.url = url
    f.request.headers["host"] = f.request.host
    f.request.content = body
    for name, value in headers.items():
        f.request.headers[name.replace("_", "-")] = value
    f.response = None
    f.client_conn.peername = (client, 50000)
    decide(f)
    return f


# -- connections relayed undecrypted ---------------------------------------------------------


def test_a_tunnelled_tls_connection_is_counted_under_its_sni(discovery):
    d, written = discovery
    d.tls_clienthello(hello("api.new-llm.ai", ("203.0.113.5", 443)))
    d.tls_clienthello(hello("chat.new-llm.ai", ("203.0.113.5", 443), client="10.0.0.8"))
    line = written()["new-llm.ai"]
    assert line["connections"] == 2 and line["clients"] == 2
    assert line["hosts"] == ["api.new-llm.ai", "chat.new-llm.ai"]


def test_without_sni_the_connect_target_is_counted(discovery):
    d, written = discovery
    d.tls_clienthello(hello(None, ("Api.Other-LLM.example.", 443)))
    assert written()["other-llm.example"]["hosts"] == ["api.other-llm.example"]  # normalised


def test_an_intercepted_connection_is_not_counted_at_the_handshake(discovery):
    """Its requests are, one by one, when they are forwarded."""
    d, written = discovery
    d.tls_clienthello(hello("api.new-llm.ai", ("203.0.113.5", 443), ignore=False))
    assert written() == {}


def test_a_name_that_is_not_a_host_is_skipped_without_error(discovery):
    d, written = discovery
    d.tls_clienthello(hello(None, ("bad host..name", 443)))
    assert written() == {}


def test_raw_tcp_is_counted_by_its_destination(discovery):
    d, written = discovery
    tcp = layer.NextLayer(context(server=("ssh.some-llm.ai", 22)))
    tcp.layer = layers.TCPLayer(tcp.context)
    d.next_layer(tcp)
    nowhere = layer.NextLayer(context(server=None))  # no destination: nothing to count
    nowhere.layer = layers.TCPLayer(nowhere.context)
    d.next_layer(nowhere)
    http = layer.NextLayer(context(server=("www.some-llm.ai", 80)))  # not raw TCP
    http.layer = layers.HttpLayer(http.context, layers.http.HTTPMode.transparent)
    d.next_layer(http)
    lines = written()
    assert list(lines) == ["some-llm.ai"]
    assert lines["some-llm.ai"]["hosts"] == ["ssh.some-llm.ai"]
    assert lines["some-llm.ai"]["connections"] == 1


# -- requests forwarded ----------------------------------------------------------------------


def test_a_forwarded_request_and_its_answer_are_counted(discovery):
    d, written = discovery
    f = forwarded("https://api.new-llm.ai/v1/chat", b"x" * 120)
    f.request.headers["content-length"] = "120"
    d.request(f)
    assert counted(f) == "new-llm.ai"
    f.response = tflow.tresp(content=b"y" * 3000)
    f.response.headers["content-length"] = "3000"
    d.responseheaders(f)
    line = written()["new-llm.ai"]
    assert (line["requests"], line["bytes_up"], line["bytes_down"]) == (1, 120, 3000)
    assert line["connections"] == 0 and line["hosts"] == ["api.new-llm.ai"]


def test_without_a_length_the_body_as_read_is_counted(discovery):
    d, written = discovery
    f = forwarded("https://api.new-llm.ai/v1/chat", b"z" * 77)
    del f.request.headers["content-length"]
    d.request(f)
    f.response = tflow.tresp()
    del f.response.headers["content-length"]  # streamed: its size is not known yet
    d.responseheaders(f)
    line = written()["new-llm.ai"]
    assert (line["requests"], line["bytes_up"], line["bytes_down"]) == (1, 77, 0)


@pytest.mark.parametrize("case", ["answered", "failed", "undecided", "sink"])
def test_what_did_not_go_upstream_is_not_counted(discovery, case):
    """Answered by aiwarden (a block), failed, never decided, or a blocked
    body sent to the sink."""
    d, written = discovery
    f = forwarded(f"https://{SINK[0]}/" if case == "sink" else "https://api.new-llm.ai/")
    if case == "answered":
        f.response = tflow.tresp(status_code=403)
    elif case == "failed":
        f.error = tflow.terr()
    elif case == "undecided":
        undecide(f)
    d.request(f)
    assert counted(f) is None
    assert written() == {}


def test_an_answer_to_an_uncounted_request_adds_nothing(discovery):
    d, written = discovery
    f = forwarded("https://api.new-llm.ai/")
    f.response = tflow.tresp(content=b"y" * 10)
    d.responseheaders(f)
    assert written() == {}


def test_off_counts_nothing_through_the_hooks(write_policy):
    policy = load_policy(write_policy("version: 1\nrules: []\ndiscovery: {mode: off}\n"))
    audit = FakeAudit()
    d = make_discovery(policy, audit)
    f = forwarded("https://api.new-llm.ai/", b"x")
    d.request(f)
    d.tls_clienthello(hello("api.new-llm.ai", ("203.0.113.5", 443)))
    d.flush(wait=True)
    assert counted(f) is None and audit.records == []


# -- lifecycle -------------------------------------------------------------------------------


def test_running_writes_the_last_window_before_the_audit_log_closes(discovery):
    """running() asks the recorder to run Discovery.close on shutdown, before the audit log
    closes, and arms the window's flush."""
    d, _ = discovery

    async def scenario() -> None:
        with taddons.context(d):
            d.running()
            assert d.timer is not None  # the window's flush armed
            d.tunnel("api.new-llm.ai", "10.0.0.7")
            for close in d.recorder.before_close:  # what the recorder does on shutdown
                close()

    asyncio.run(scenario())
    assert [r["domain"] for r in d.recorder.audit.records] == ["new-llm.ai"]
    assert d.timer is None


def test_without_a_policy_in_force_nothing_is_counted():
    recorder = SimpleNamespace(
        audit=FakeAudit(), metrics=Metrics(CollectorRegistry()), before_close=[]
    )
    d = Discovery(SimpleNamespace(policy=None), recorder)

    async def scenario() -> None:
        with taddons.context(d):
            d.running()

    asyncio.run(scenario())
    assert d.tunnel("api.new-llm.ai", "10.0.0.7") is None
