"""The coaching addon's own pages (proxy/mitm/coaching.py) under mitmproxy's test context:
whatever fails while answering them, the request is answered by the proxy and never goes on
to the server, and nothing else decides it."""

from __future__ import annotations

import asyncio

import pytest
from conftest import SHIPPED_CATALOG
from hookharness import Hooks
from mitmproxy.test import tflow
from proxyharness import write_policy

from proxy.mitm.state import decision_of

POLICY = """
network: {clients: [127.0.0.0/8]}
defaults: {on_error: allow}
rules:
  - {id: coach, match: {categories: [chat]}, action: warn}
"""


@pytest.fixture
def hooks(tmp_path):
    h = Hooks(write_policy(tmp_path / "p", POLICY, SHIPPED_CATALOG))
    h.context.options.aiwarden_coaching_store = str(tmp_path / "store.sqlite3")
    return h


def request(method: str, path: str, body: bytes = b""):
    f = tflow.tflow()
    f.request.method, f.request.host, f.request.port, f.request.path = (
        method, "chatgpt.com", 443, path
    )  # fmt: skip
    f.request.headers["content-type"] = "application/x-www-form-urlencoded"
    f.request.headers["content-length"] = str(len(body))
    f.request.content = body
    f.client_conn.peername = ("127.0.0.1", 50000)
    return f


def broken_store():
    raise RuntimeError("disk on fire")


@pytest.mark.parametrize("path", ["/.aiwarden/ack/abc", "/.aiwarden/elsewhere"])
def test_a_page_that_fails_is_answered_not_forwarded(hooks, monkeypatch, path):
    monkeypatch.setattr(hooks.pipeline.coaching, "store", broken_store)
    flow = request("GET", path)
    assert hooks.requestheaders(flow) is None
    expected = 500 if "ack" in path else 404
    assert flow.response.status_code == expected
    assert decision_of(flow) is None  # enforcement left it alone: not decided, not allowed


def test_a_form_that_fails_is_answered_not_forwarded(hooks, monkeypatch):
    flow = request("POST", "/.aiwarden/proceed", b"token=abc&justification=x")
    hooks.requestheaders(flow)
    assert flow.response is None  # the form's body is read first
    monkeypatch.setattr(hooks.pipeline.coaching, "store", broken_store)
    assert hooks.request(flow) is None
    assert flow.response.status_code == 500 and decision_of(flow) is None


def test_a_form_without_a_length_is_refused(hooks):
    flow = request("POST", "/.aiwarden/proceed")
    del flow.request.headers["content-length"]
    hooks.requestheaders(flow)
    assert flow.response.status_code == 413


def test_a_warned_request_gets_a_link_and_no_decision_lets_it_pass(hooks):
    flow = request("POST", "/backend-api/conversation", b"{}")
    flow.request.headers["accept"] = "application/json"
    pending = hooks.requestheaders(flow)
    asyncio.run(pending)  # the ticket is written off the event loop
    assert flow.response.status_code == 403
    assert "/.aiwarden/ack/" in flow.response.headers["x-aiwarden-acknowledge"]
    assert decision_of(flow).action == "warn"


def test_a_link_nobody_followed_is_recorded_as_timed_out_once(hooks):
    coaching = hooks.pipeline.coaching
    flow = request("POST", "/backend-api/conversation", b"{}")
    flow.request.headers["accept"] = "application/json"
    asyncio.run(hooks.requestheaders(flow))
    store = coaching.store()
    store._writer.execute("UPDATE tickets SET expires = 0")  # ten minutes later
    timed_out = hooks.metrics.coaching.metric.labels("timed_out", "chatgpt")
    asyncio.run(coaching.sweep())
    asyncio.run(coaching.sweep())
    assert timed_out._value.get() == 1
    warned = hooks.metrics.coaching.metric.labels("warned", "chatgpt")
    assert warned._value.get() == 1
