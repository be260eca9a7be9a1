"""Answers (proxy/mitm/answers.py): how a stopped flow is answered, without reading its body,
and on_error when deciding fails."""

from __future__ import annotations

import pytest
from conftest import SHIPPED_CATALOG
from hookharness import Hooks
from mitmproxy.test import tflow
from proxyharness import write_policy

from proxy.decide.verdict import Action, Decision, Stage
from proxy.mitm.answers import SINK, may_have_body
from proxy.mitm.state import decision_of, state_of

POLICY = "network: {clients: [127.0.0.0/8]}\ndefaults: {on_error: %s}\nrules: []\n"
BLOCKED = Decision(Action.BLOCK, Stage.REQUEST, "no-chat", "because", message="Not here.")


@pytest.fixture
def answers_for(tmp_path):
    def make(on_error: str = "block"):
        hooks = Hooks(write_policy(tmp_path / on_error, POLICY % on_error, SHIPPED_CATALOG))
        return hooks.pipeline.answers, hooks

    return make


def posted(body_read: bool):
    f = tflow.tflow()
    f.request.method, f.request.host, f.request.port = "POST", "chatgpt.com", 443
    f.request.headers["content-length"] = "5"
    f.request.headers["expect"] = "100-continue"
    f.client_conn.peername = ("127.0.0.1", 50000)
    if not body_read:
        f.request.data.content = None  # as at requestheaders: the body is still on the wire
    return f


def test_a_block_before_the_body_streams_it_nowhere_and_answers_later(answers_for):
    answers, _ = answers_for()
    f = posted(body_read=False)
    answers.block(f, BLOCKED, "chatgpt.com")
    assert f.response is None  # a response now would wait for the whole body
    assert (f.request.host, f.request.port) == SINK and f.request.stream is True
    assert state_of(f).blocked_answer.status_code == 403
    assert "expect" not in f.request.headers  # no "100 Continue" to invite the body


def test_a_block_after_the_body_answers_at_once(answers_for):
    answers, _ = answers_for()
    f = posted(body_read=True)
    answers.block(f, BLOCKED, "chatgpt.com")
    assert f.response.status_code == 403 and f.request.host == "chatgpt.com"
    assert f.response.headers["X-AIWarden-Rule"] == "no-chat"


def test_a_refused_connect_gets_the_refusal(answers_for):
    answers, _ = answers_for()
    f = posted(body_read=True)
    f.request.method = "CONNECT"
    answers.block(f, BLOCKED, "chatgpt.com", refuse=True)
    assert f.response.status_code == 403
    assert f.response.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("on_error, answered", [("block", True), ("allow", False)])
def test_a_failed_decision_applies_on_error_explicitly(answers_for, on_error, answered):
    answers, hooks = answers_for(on_error)
    f = posted(body_read=True)
    answers.fail(f, Stage.REQUEST, RuntimeError("boom"))
    assert decision_of(f).action == on_error
    assert (f.response is not None) is answered
    name = "aiwarden_decision_errors_total"
    labels = {"stage": "request", "kind": "RuntimeError"}
    assert hooks.metrics.registry.get_sample_value(name, labels) == 1


def test_guarded_turns_an_exception_into_on_error_and_leaves_answered_flows(answers_for):
    answers, hooks = answers_for()
    f = posted(body_read=True)
    assert answers.guarded(f, Stage.REQUEST, lambda flow: 1 / 0) is None
    assert f.response.status_code == 403
    asked = []
    challenged = posted(body_read=True)
    challenged.response = tflow.tresp(status_code=407)  # proxyauth answered first
    answers.guarded(challenged, Stage.REQUEST, asked.append)
    assert asked == []
    name = "aiwarden_bad_requests_total"
    assert hooks.metrics.registry.get_sample_value(name, {"reason": "proxy_auth"}) == 1


@pytest.mark.parametrize(
    "method, version, headers, expected",
    [
        ("POST", "HTTP/1.1", {"content-length": "5"}, True),
        ("POST", "HTTP/1.1", {"content-length": "0"}, False),
        ("POST", "HTTP/1.1", {"transfer-encoding": "chunked"}, True),
        ("GET", "HTTP/1.1", {}, False),
        ("POST", "HTTP/2.0", {}, True),  # HTTP/2 may send a body without a length
    ],
)
def test_may_have_body(method, version, headers, expected):
    f = tflow.tflow()
    f.request.method, f.request.http_version = method, version
    f.request.headers.clear()
    f.request.headers.update(headers)
    assert may_have_body(f.request) is expected
