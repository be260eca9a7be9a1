"""The TenantHeaders addon (proxy/mitm/tenants.py) through the pipeline's hooks: the vendor's
header replaces whatever the client sent, on that vendor's hosts only, never on a block."""

from __future__ import annotations

from conftest import SHIPPED_CATALOG
from hookharness import Hooks
from mitmproxy.test import tflow
from proxyharness import write_policy

WS = "437adf77-4085-4b22-b7b1-de7b6f5ec6c0"
ORG = "11111111-2222-4333-8444-555555555555"
POLICY = f"""
network: {{clients: [127.0.0.0/8]}}
defaults: {{action: allow}}
tenants:
  chatgpt: [{WS}]
  anthropic: [{ORG}]
  microsoft-v1:
    allow: [contoso.com, {ORG}]
    context: {WS}
rules:
  - id: no-gemini
    match: {{services: [gemini]}}
    action: block
"""


def hooks(tmp_path) -> Hooks:
    return Hooks(write_policy(tmp_path, POLICY, SHIPPED_CATALOG))


def request(host: str, path: str = "/backend-api/conversation", **headers: str):
    f = tflow.tflow()
    f.request.host, f.request.port, f.request.path = host, 443, path
    f.request.headers["host"] = host
    for name, value in headers.items():
        f.request.headers.add(name.replace("_", "-"), value)
    f.client_conn.peername = ("127.0.0.1", 50000)
    return f


def test_the_clients_own_value_is_replaced_by_ours_once(tmp_path):
    h = hooks(tmp_path)
    f = request("chatgpt.com", ChatGPT_Allowed_Workspace_Id="my-personal-workspace")
    f.request.headers.add("chatgpt-allowed-workspace-id", "another")
    assert h.requestheaders(f) is None and f.response is None
    assert f.request.headers.get_all("chatgpt-allowed-workspace-id") == [WS]
    sample = h.metrics.registry.get_sample_value
    assert sample("aiwarden_tenant_headers_total", {"vendor": "chatgpt"}) == 1


def test_continuation_lines_the_client_sent_are_removed(tmp_path):
    h = hooks(tmp_path)
    f = request("api.anthropic.com", "/v1/messages", anthropic_allowed_org_ids1="x,y")
    h.requestheaders(f)
    assert f.request.headers.get_all("anthropic-allowed-org-ids") == [ORG]
    assert "anthropic-allowed-org-ids1" not in f.request.headers


def test_other_hosts_get_no_tenant_header(tmp_path):
    h = hooks(tmp_path)
    f = request("example.com", "/", ChatGPT_Allowed_Workspace_Id="left alone")
    h.requestheaders(f)
    assert f.request.headers["chatgpt-allowed-workspace-id"] == "left alone"
    assert "anthropic-allowed-org-ids" not in f.request.headers


def test_logged_out_use_is_blocked_and_gets_no_header(tmp_path):
    h = hooks(tmp_path)
    f = request("chatgpt.com", "/backend-anon/f/conversation")
    h.requestheaders(f)
    assert f.response.status_code == 403
    assert f.response.headers["X-AIWarden-Rule"] == "tenants.chatgpt"
    assert "chatgpt-allowed-workspace-id" not in f.request.headers


def test_over_http2_the_name_is_lowercase_as_http2_requires(tmp_path):
    h = hooks(tmp_path)
    f = request("chatgpt.com", ChatGPT_Allowed_Workspace_Id="mine")
    f.request.http_version = "HTTP/2.0"
    h.requestheaders(f)
    sent = [
        (k, v) for k, v in f.request.headers.fields if k.lower() == b"chatgpt-allowed-workspace-id"
    ]
    assert sent == [(b"chatgpt-allowed-workspace-id", WS.encode())]


def test_a_request_fronted_behind_another_host_still_gets_the_vendors_header(tmp_path):
    """The connection went to example.com, but the TLS server name and the Host header
    name chatgpt.com: whichever the vendor's server reads, it gets our workspace."""
    h = hooks(tmp_path)
    f = request("example.com", ChatGPT_Allowed_Workspace_Id="mine")
    f.request.headers["host"] = "chatgpt.com"
    f.client_conn.sni = "chatgpt.com"
    h.requestheaders(f)
    assert f.response is None
    assert f.request.headers.get_all("chatgpt-allowed-workspace-id") == [WS]


def test_microsofts_v1_sets_both_headers_replacing_the_clients(tmp_path):
    h = hooks(tmp_path)
    f = request(
        "login.microsoftonline.com",
        "/common/oauth2/v2.0/authorize",
        Restrict_Access_To_Tenants="personal.example",
        restrict_access_context="x",
    )
    h.requestheaders(f)
    assert f.request.headers.get_all("Restrict-Access-To-Tenants") == [f"contoso.com,{ORG}"]
    assert f.request.headers.get_all("Restrict-Access-Context") == [WS]
