"""The addons of the pipeline (proxy/mitm/pipeline.py), their hooks in mitmproxy's own test
context: failing closed, and the choices that are hard to provoke through a real client (an
exception inside a decision)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import ssl

import pytest
from conftest import SHIPPED_CATALOG
from hookharness import Hooks, settled
from mitmproxy import exceptions
from mitmproxy.options import Options
from mitmproxy.proxy.context import Context
from mitmproxy.test import taddons, tflow
from mitmproxy.tls import ClientHello, ClientHelloData
from proxyharness import write_policy

from proxy.mitm import redaction
from proxy.mitm.pipeline import build
from proxy.mitm.state import decision_of, state_of
from proxy.policy.loader import load_policy

POLICY = """
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
defaults: {on_error: %s}
rules:
  - id: block-chat
    match: {categories: [chat]}
    action: block
"""


@pytest.fixture
def warden(tmp_path):
    def make(on_error: str = "block"):
        policy = write_policy(tmp_path / on_error, POLICY % on_error, SHIPPED_CATALOG)
        hooks = Hooks(policy)
        return hooks, hooks.context

    return make


def flow_for(host: str, path: str = "/", host_header: str | None = None):
    f = tflow.tflow()
    f.request.host, f.request.port, f.request.path = host, 443, path
    f.request.headers["host"] = host_header or host
    f.client_conn.peername = ("127.0.0.1", 50000)
    return f


def explode(*args, **kwargs):
    raise RuntimeError("boom")


def test_an_exception_in_a_request_decision_blocks(warden, monkeypatch):
    addon, _ = warden("block")
    monkeypatch.setattr(addon.engine, "decide_request", explode)
    f = flow_for("example.com")
    assert addon.requestheaders(f) is None
    assert f.response.status_code == 403
    assert f.response.headers["X-AIWarden-Rule"] == "default"
    assert "RuntimeError while deciding; on_error is block" in decision_of(f).reason


def test_on_error_allow_lets_the_flow_go_on_explicitly(warden, monkeypatch):
    addon, _ = warden("allow")
    monkeypatch.setattr(addon.engine, "decide_request", explode)
    f = flow_for("example.com")
    addon.requestheaders(f)
    assert f.response is None
    assert decision_of(f).action == "allow"


def test_an_exception_at_connect_refuses_the_tunnel(warden, monkeypatch):
    addon, _ = warden("block")
    monkeypatch.setattr(addon.engine, "decide_connect", explode)
    f = flow_for("example.com")
    f.request.method = "CONNECT"
    addon.http_connect(f)
    assert f.response.status_code == 403
    assert f.response.headers["Content-Type"].startswith("text/plain")


def test_an_unreadable_host_at_connect_falls_to_on_error(warden):
    addon, _ = warden("block")
    f = flow_for("exa mple.com")
    addon.http_connect(f)
    assert f.response.status_code == 403


def test_a_client_check_that_fails_refuses_the_client(warden, monkeypatch):
    addon, _ = warden("block")
    client = tflow.tclient_conn()
    client.peername = ("not an address", 1)
    addon.client_connected(client)
    assert client.error


@pytest.mark.parametrize(
    "address, refused", [("127.0.0.1", False), ("10.1.1.1", True), ("::ffff:127.0.0.1", False)]
)
def test_only_network_clients_may_connect(warden, address, refused):
    addon, _ = warden("block")
    client = tflow.tclient_conn()
    client.peername = (address, 40000)
    addon.client_connected(client)
    assert bool(client.error) is refused


def _hello(sni: str | None, connect_host: str) -> ClientHelloData:
    """A real ClientHello (made by Python's TLS stack) on a connection CONNECTed to a host."""
    tls_context = ssl.create_default_context()
    tls_context.check_hostname = False
    outgoing = ssl.MemoryBIO()
    client = tls_context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    record = outgoing.read()
    hello = ClientHello(record[9:])  # without the record (5 bytes) and handshake (4) headers
    assert hello.sni == sni
    context = Context(tflow.tclient_conn(), Options())
    context.client.peername = ("127.0.0.1", 40000)
    context.server.address = (connect_host, 443)
    return ClientHelloData(context, hello)


@pytest.mark.parametrize(
    "sni, connect_host, tunnel",
    [
        ("example.com", "example.com", True),
        (None, "93.184.216.34", True),
        ("chatgpt.com", "example.com", False),  # domain fronting: SNI of a blocked service
        ("example.com", "chatgpt.com", False),
    ],
)
def test_clienthello_tunnels_only_when_sni_and_connect_host_allow_it(
    warden, sni, connect_host, tunnel
):
    addon, _ = warden("block")
    data = _hello(sni, connect_host)
    addon.tls_clienthello(data)
    assert data.ignore_connection is tunnel


def test_an_exception_at_clienthello_intercepts(warden, monkeypatch):
    addon, _ = warden("block")
    monkeypatch.setattr(addon.engine, "decide_connect", explode)
    data = _hello("example.com", "example.com")
    addon.tls_clienthello(data)
    assert data.ignore_connection is False


def test_the_strictest_of_target_host_header_and_sni_wins(warden):
    addon, _ = warden("block")
    f = flow_for("example.com", host_header="chatgpt.com")
    addon.requestheaders(f)
    assert f.response.status_code == 403
    f = flow_for("example.com")
    f.client_conn.sni = "claude.ai"
    addon.requestheaders(f)
    assert f.response.status_code == 403


def test_a_bad_policy_is_an_options_error_with_every_problem(tmp_path):
    (tmp_path / "policy.yaml").write_text(f"version: 1\ncatalog: [{SHIPPED_CATALOG}]\nrules: 5\n")
    policy = build(admin=False).policy
    with taddons.context(policy) as context, pytest.raises(exceptions.OptionsError) as e:
        context.configure(policy, aiwarden_policy=str(tmp_path))
    assert f"{tmp_path / 'policy.yaml'}:3: policy: 'rules' must be a list" in str(e.value)


def test_the_policy_run_checked_is_put_in_force_unless_a_file_changed_since(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(SHIPPED_CATALOG / "openai.yaml", catalog)  # a chat service, loaded fast
    directory = write_policy(tmp_path, POLICY % "block", catalog)
    checked = load_policy(directory)
    pipeline = build(admin=False, preloaded=(str(directory), checked))
    with taddons.context(pipeline.policy) as context:
        context.configure(pipeline.policy, aiwarden_policy=str(directory))
        assert pipeline.gate.policy is checked  # not read a second time

    checked = load_policy(directory)
    (directory / "policy.yaml").write_text(
        (directory / "policy.yaml").read_text().replace("block-chat", "chat-blocked")
    )
    pipeline = build(admin=False, preloaded=(str(directory), checked))
    with taddons.context(pipeline.policy) as context:
        context.configure(pipeline.policy, aiwarden_policy=str(directory))
        assert pipeline.gate.policy is not checked
        assert [r.id for r in pipeline.gate.policy.rules] == ["chat-blocked"]

    other = write_policy(tmp_path / "other", POLICY % "allow", catalog)
    pipeline = build(admin=False, preloaded=(str(directory), load_policy(directory)))
    with taddons.context(pipeline.policy) as context:
        context.configure(pipeline.policy, aiwarden_policy=str(other))
        assert pipeline.gate.policy.defaults.on_error == "allow"  # the path asked for


REDACT_POLICY = """
    network: {clients: [127.0.0.0/8]}
    redaction_profiles:
      default: {detectors: [secrets, pii], on_unparseable: %s, max_body_bytes: 1000}
    rules:
      - id: approved
        match: {services: [openai-api]}
        action: redact
"""


def redacting(tmp_path, on_unparseable="block"):
    policy = write_policy(tmp_path, REDACT_POLICY % on_unparseable, SHIPPED_CATALOG)
    return Hooks(policy)


def post(body: bytes, content_type="application/json", encoding: str | None = None):
    f = flow_for("api.openai.com", "/v1/chat/completions")
    f.request.method = "POST"
    f.request.headers["content-type"] = content_type
    if encoding:
        f.request.headers["content-encoding"] = encoding
    f.request.content = body  # encoded as the header says
    return f


PROMPT = (
    b'{"model":"gpt-4o","messages":[{"role":"user",'
    b'"content":"key AKIAIOSFODNN7EXAMPLE mail bob@corp.example"}]}'
)


@pytest.mark.parametrize("encoding", [None, "gzip", "br", "zstd", "deflate"])
def test_redact_rewrites_the_body_in_its_own_encoding(tmp_path, encoding):
    addon = redacting(tmp_path)
    f = post(PROMPT, encoding=encoding)
    assert addon.requestheaders(f) is None and f.response is None
    settled(addon.request(f))  # on the loop, or in a thread when the machine is slow
    assert f.response is None
    assert f.request.headers.get("content-encoding") == encoding
    sent = json.loads(f.request.get_content())
    assert sent["messages"][0]["content"] == ("key [REDACTED:aws-access-key] mail [REDACTED:email]")
    assert state_of(f).redactions == {"aws-access-key": 1, "email": 1}


def test_a_body_without_findings_goes_on_byte_for_byte(tmp_path):
    addon = redacting(tmp_path)
    body = b'{ "model": "gpt-4o",  "messages": [{"role": "user", "content": "hello"}] }'
    f = post(body)
    addon.requestheaders(f)
    settled(addon.request(f))
    assert f.request.content == body and state_of(f).redactions == {}


@pytest.mark.parametrize(
    "body, ctype",
    [(b"{not json", "application/json"), (b"\x00\x01binary", "application/octet-stream")],
)
def test_an_unparseable_body_is_refused_with_a_clear_message(tmp_path, body, ctype):
    addon = redacting(tmp_path)
    f = post(body, content_type=ctype)
    addon.requestheaders(f)
    settled(addon.request(f))
    assert f.response.status_code == 403
    message = json.loads(f.response.content)["error"]["message"]
    assert "could not check this request for secrets and personal data" in message


def test_on_unparseable_pass_forwards_the_body(tmp_path):
    addon = redacting(tmp_path, on_unparseable="pass")
    f = post(b"{not json")
    addon.requestheaders(f)
    settled(addon.request(f))
    assert f.response is None and f.request.content == b"{not json"


def test_a_body_over_max_body_bytes_gets_413_and_is_not_forwarded(tmp_path):
    addon = redacting(tmp_path)
    f = post(b'{"messages": [{"role": "user", "content": "' + b"x" * 2000 + b'"}]}')
    addon.requestheaders(f)  # Content-Length says it all
    assert f.response.status_code == 413
    assert "larger than the 1000 bytes" in json.loads(f.response.content)["error"]["message"]


def test_a_websocket_upgrade_under_redact_is_refused_not_passed_unredacted(tmp_path):
    addon = redacting(tmp_path)
    f = flow_for("api.openai.com", "/v1/realtime?model=gpt-realtime")
    f.request.headers["upgrade"] = "websocket"
    f.request.headers["connection"] = "Upgrade"
    addon.requestheaders(f)
    assert f.response.status_code == 403
    assert "cannot check WebSocket messages" in json.loads(f.response.content)["error"]["message"]


def test_a_small_body_slow_to_check_is_finished_in_a_thread_and_one_too_slow_is_blocked(
    tmp_path, monkeypatch
):
    addon = redacting(tmp_path)
    monkeypatch.setattr(redaction, "LOOP_SECONDS", -1.0)  # every body is slow on the loop
    f = post(PROMPT)
    addon.requestheaders(f)
    pending = addon.request(f)
    assert pending is not None and f.response is None  # handed to a thread, not passed
    asyncio.run(pending)
    assert f.response is None and state_of(f).redactions == {"aws-access-key": 1, "email": 1}
    assert b"AKIAIOSFODNN7EXAMPLE" not in f.request.get_content()

    monkeypatch.setattr(redaction, "THREAD_SECONDS", -1.0)  # ...and too slow in the thread
    f = post(PROMPT)
    addon.requestheaders(f)
    asyncio.run(addon.request(f))
    assert f.response.status_code == 403
    message = json.loads(f.response.content)["error"]["message"]
    assert "could not check this request" in message and "took longer than" in message
