"""The Upstream addon (proxy/mitm/upstream.py) in mitmproxy's test context: the last
destination check before a server connection, the answers to server failures, and protocol
switches nothing could inspect."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import SHIPPED_CATALOG
from hookharness import Hooks
from mitmproxy import connection, flow
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import tflow
from proxyharness import write_policy

from proxy.mitm.answers import SINK
from proxy.mitm.state import state_of

POLICY = """
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
rules: []
"""


@pytest.fixture
def hooks(tmp_path) -> Hooks:
    return Hooks(write_policy(tmp_path, POLICY, SHIPPED_CATALOG))


def sdk_request(host: str = "api.openai.com"):
    f = tflow.tflow()
    f.request.host, f.request.port, f.request.path = host, 443, "/v1/chat/completions?key=x"
    f.request.headers["authorization"] = "Bearer sk-test"
    f.client_conn.peername = ("127.0.0.1", 50000)
    return f


def failed(f, message: str, upstream: bool = True, timed_out: bool = False):
    f.error = flow.Error(message)
    state = state_of(f)
    state.upstream_failed, state.timed_out = upstream, timed_out
    return f


def errors(hooks: Hooks, kind: str) -> float:
    name = "aiwarden_upstream_errors_total"
    return hooks.metrics.registry.get_sample_value(name, {"kind": kind}) or 0.0


def test_a_failure_on_the_clients_side_is_not_answered(hooks):
    f = failed(sdk_request(), "client disconnected", upstream=False)
    hooks.pipeline.upstream.error(f)
    assert f.response is None and errors(hooks, "reset") == 0


def test_a_refused_connection_is_a_502_in_the_sdks_format(hooks):
    f = failed(sdk_request(), "Connection refused (errno 111)")
    hooks.pipeline.upstream.error(f)
    assert f.response.status_code == 502
    body = json.loads(f.response.content)
    assert body["error"]["type"] == "upstream_error" and body["error"]["code"] == "refused"
    assert "key=x" not in f.response.text  # the query string is never echoed
    assert errors(hooks, "refused") == 1


def test_a_server_too_slow_is_a_504(hooks):
    f = failed(sdk_request(), "connection closed", timed_out=True)
    hooks.pipeline.upstream.error(f)
    assert f.response.status_code == 504 and errors(hooks, "timeout") == 1


def test_our_own_refusal_is_answered_with_the_block_page(hooks):
    f = failed(sdk_request(), "aiwarden: 169.254.169.254 is in denied destination 169.254.0.0/16")
    hooks.pipeline.upstream.error(f)
    assert f.response.status_code == 403
    assert f.response.headers["X-AIWarden-Rule"] == "network.deny_destinations"
    assert errors(hooks, "policy") == 1


def test_a_block_decided_before_the_body_is_sent_when_the_sink_is_refused(hooks):
    f = failed(sdk_request(), "aiwarden: blocked before its body")
    answer = tflow.tresp(status_code=403)
    state_of(f).blocked_answer = answer
    hooks.pipeline.upstream.error(f)
    assert f.response is answer and state_of(f).blocked_answer is None
    assert errors(hooks, "policy") == 0  # not an upstream error: our own answer


def test_an_answer_already_begun_is_left_alone(hooks):
    f = failed(sdk_request(), "Connection refused (errno 111)")
    f.response = tflow.tresp(status_code=200)
    hooks.pipeline.upstream.error(f)
    assert f.response.status_code == 200 and errors(hooks, "refused") == 1


def connecting(host: str, port: int) -> ServerConnectionHookData:
    server = connection.Server(address=(host, port))
    return ServerConnectionHookData(server, tflow.tclient_conn())


@pytest.mark.parametrize(
    "host, refusal",
    [
        (SINK[0], "aiwarden: blocked before its body"),
        ("169.254.169.254", "aiwarden: 169.254.169.254 is in denied destination 169.254.0.0/16"),
        ("192.0.2.1", None),  # control: a destination the policy does not deny
    ],
)
def test_server_connect_refuses_denied_destinations(hooks, host, refusal):
    data = connecting(host, SINK[1] if host == SINK[0] else 443)
    assert hooks.pipeline.upstream.server_connect(data) is None
    assert data.server.error == refusal


def test_server_connect_looks_a_name_up_before_connecting(hooks, tmp_path):
    loopback_denied = POLICY.replace("169.254.0.0/16", "127.0.0.0/8")
    denying = Hooks(write_policy(tmp_path / "lo", loopback_denied, SHIPPED_CATALOG))
    data = connecting("localhost", 443)
    pending = denying.pipeline.upstream.server_connect(data)
    assert pending is not None and data.server.error is None  # not yet: it is looked up
    asyncio.run(pending)
    assert (
        data.server.error
        == "aiwarden: localhost resolves to 127.0.0.1 is in denied destination 127.0.0.0/8"
    )
    data = connecting("localhost", 443)
    pending = hooks.pipeline.upstream.server_connect(data)  # control: loopback allowed
    asyncio.run(pending)
    assert data.server.error is None


def test_a_switch_to_anything_but_websocket_ends_in_a_502(hooks):
    f = sdk_request()
    f.response = tflow.tresp(status_code=101)
    f.response.headers["upgrade"] = "h2c"
    hooks.pipeline.upstream.response(f)
    assert f.response.status_code == 502 and "(h2c)" in f.response.text
    name = "aiwarden_bad_requests_total"
    assert hooks.metrics.registry.get_sample_value(name, {"reason": "protocol_switch"}) == 1
    ok = sdk_request()
    ok.response = tflow.tresp(status_code=200)  # control
    hooks.pipeline.upstream.response(ok)
    assert ok.response.status_code == 200
