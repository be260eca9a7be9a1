"""compat.answer_upstream_errors() (proxy/mitm/compat.py) on mitmproxy's own HttpStream: driven
one command at a time, as mitmproxy's proxy layer would, for an upstream that failed (the real
proxy's answers are in tests/e2e/test_compat.py).
A response the `error` hook sets goes to the client in place of mitmproxy's error page; when
the hook sets none, or the failure is the client's, mitmproxy's commands are left as they are."""

from __future__ import annotations

import pytest
from mitmproxy import version
from mitmproxy.options import Options
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http import (
    DropStream,
    ErrorCode,
    HttpErrorHook,
    RequestProtocolError,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
    SendHttp,
)
from mitmproxy.test import tflow

from proxy.mitm import compat
from proxy.mitm.state import STATE, state_of


@pytest.fixture(scope="module", autouse=True)
def installed():
    compat.answer_upstream_errors()


def stream(alpn: bytes = b"http/1.1", response=None) -> http_layer.HttpStream:
    """An HttpStream whose request went upstream (its response, if any, had begun)."""
    context = Context(tflow.tclient_conn(), Options())
    context.client.alpn = alpn
    s = http_layer.HttpStream(context, 1)
    s.flow = tflow.tflow()
    s.flow.response = response
    s.client_state = s.state_done
    s.server_state = s.state_wait_for_response_headers
    return s


def drive(s: http_layer.HttpStream, event, answer=None) -> list:
    """Every command of handle_protocol_error; at the error hook, `answer` is what the
    hook sets as the flow's response (None: none, as without aiwarden)."""
    commands, out = s.handle_protocol_error(event), []
    reply = None
    while True:
        try:
            command = commands.send(reply)
        except StopIteration:
            return out
        out.append(command)
        if isinstance(command, HttpErrorHook) and answer is not None:
            s.flow.response = answer
        reply = None


def refused() -> ResponseProtocolError:
    return ResponseProtocolError(1, "Connection refused", ErrorCode.CONNECT_FAILED)


def shapes(commands: list) -> list:
    return [
        (type(c).__name__, type(c.event).__name__) if isinstance(c, SendHttp) else type(c).__name__
        for c in commands
    ]


def test_the_error_hooks_response_is_sent_whole_in_place_of_mitmproxys_page():
    s = stream()
    answer = tflow.tresp(status_code=502, content=b'{"error": "refused"}')
    commands = drive(s, refused(), answer)
    assert shapes(commands) == [
        "HttpErrorHook",
        ("SendHttp", "ResponseHeaders"),
        ("SendHttp", "ResponseData"),
        ("SendHttp", "ResponseEndOfMessage"),
        "DropStream",
    ]
    headers, data, end = (c.event for c in commands[1:4])
    assert isinstance(headers, ResponseHeaders) and headers.response is answer
    assert isinstance(data, ResponseData) and data.data == b'{"error": "refused"}'
    assert isinstance(end, ResponseEndOfMessage)
    assert all(c.connection is s.context.client for c in commands[1:4])  # to the client
    assert commands[-1] == DropStream(1)
    assert answer.headers["connection"] == "close"  # HTTP/1: the connection ends with it
    assert state_of(s.flow).upstream_failed is True


def test_over_http2_the_connection_stays_open_and_an_empty_body_sends_no_data():
    s = stream(alpn=b"h2")
    answer = tflow.tresp(status_code=504, content=b"")
    commands = drive(s, refused(), answer)
    assert shapes(commands) == [
        "HttpErrorHook",
        ("SendHttp", "ResponseHeaders"),
        ("SendHttp", "ResponseEndOfMessage"),
        "DropStream",
    ]
    assert "connection" not in answer.headers


def test_without_a_response_from_the_hook_mitmproxy_answers_as_it_would():
    s = stream()
    event = refused()
    commands = drive(s, event)
    assert shapes(commands) == [
        "HttpErrorHook",
        ("SendHttp", "ResponseProtocolError"),
        "DropStream",
    ]
    assert commands[1].event is event  # mitmproxy's own error page, from the event
    assert state_of(s.flow).upstream_failed is True  # still the server's failure


def test_a_response_that_had_begun_is_not_replaced():
    """The upstream answered and then failed mid-way: the client already has its headers."""
    s = stream(response=tflow.tresp())
    commands = drive(s, refused(), tflow.tresp(status_code=502))
    assert ("SendHttp", "ResponseHeaders") not in shapes(commands)


def test_a_clients_failure_is_not_marked_and_not_answered():
    s = stream()
    s.client_state = s.state_wait_for_request_headers
    event = RequestProtocolError(1, "client disconnected", ErrorCode.CLIENT_DISCONNECTED)
    commands = drive(s, event, tflow.tresp(status_code=502))
    assert STATE not in s.flow.metadata or not state_of(s.flow).upstream_failed
    assert not any(isinstance(c, SendHttp) for c in commands)


def test_install_wraps_once_and_mitmproxys_pages_say_aiwarden():
    wrapped = http_layer.HttpStream.handle_protocol_error
    compat.answer_upstream_errors()
    assert http_layer.HttpStream.handle_protocol_error is wrapped
    assert version.MITMPROXY == "aiwarden"
