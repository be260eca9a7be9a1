"""Tenant restrictions end to end: the real proxy (fast path on, off, and under mitmdump -s)
sets each vendor's header on requests from curl (HTTP/1.1 and HTTP/2) and the official SDKs,
exactly once and with the configured value, whatever the client sent; a local upstream serves
the vendors' names (tests/loopback_names) and records every header line it receives."""

from __future__ import annotations

import contextlib
import re

import pytest
from conftest import SHIPPED_CATALOG
from proxyharness import (
    MODES,
    Upstream,
    curl,
    loopback_names,
    proxy_in_mode,
    tls_upstream_pki,
    write_policy,
)

WORKSPACE = "437adf77-4085-4b22-b7b1-de7b6f5ec6c0"
ORG = "11111111-2222-4333-8444-555555555555"
OPENAI_ORG = "org-Tkxfm8owx4zIPaJGNDVrPs6m"
NAMES = ("chatgpt.com", "api.anthropic.com", "api.openai.com", "login.microsoftonline.com")
POLICY = f"""
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
defaults: {{action: allow}}
tenants:
  chatgpt: [{WORKSPACE}]
  anthropic: [{ORG}]
  openai-api: [{OPENAI_ORG}]
  microsoft-v1:
    allow: [contoso.com, {ORG}]
    context: {WORKSPACE}
rules: []
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_upstream_pki(tmp_path_factory.mktemp("tenants"), NAMES)


@pytest.fixture(scope="module")
def upstream(pki):
    server = Upstream(tls=(pki["cert"], pki["key"]))
    yield server
    server.close()


@pytest.fixture(scope="module", params=MODES)
def proxy(request, pki):
    policy = write_policy(pki["dir"] / request.param.replace(" ", "-"), POLICY, SHIPPED_CATALOG)
    with loopback_names(NAMES):
        p = proxy_in_mode(request.param, policy, pki)
    yield p
    p.stop()


def received(upstream: Upstream, name: str) -> list[str]:
    """The values of header `name` in the last request the upstream got, every line of it."""
    return [v for k, v in upstream.header_lists[-1] if k.lower() == name.lower()]


@pytest.mark.parametrize("http2", [False, True], ids=["HTTP/1.1", "HTTP/2"])
def test_curls_own_header_is_replaced_by_the_workspace(proxy, upstream, pki, http2):
    before = len(upstream.requests)
    url = f"https://chatgpt.com:{upstream.port}/backend-api/me"
    version = "--http2" if http2 else "--http1.1"
    r = curl("-sS", "--proxy", proxy.url, "--cacert", str(pki["cafile"]), version,
             "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
             "-H", "ChatGPT-Allowed-Workspace-Id: my-personal-one",
             "-H", "chatgpt-allowed-workspace-id: and-another", url)  # fmt: skip
    status, version = r.stdout.split()
    assert status == "200", r.stderr
    assert version == ("2" if http2 else "1.1")  # the client spoke what the test says
    assert len(upstream.requests) == before + 1
    assert received(upstream, "ChatGPT-Allowed-Workspace-Id") == [WORKSPACE]


def test_an_example_host_gets_no_tenant_header(proxy, upstream, pki):
    """The control: a host no tenant names (localhost) keeps what the client sent."""
    url = f"https://localhost:{upstream.port}/x"
    r = curl("-sS", "--proxy", proxy.url, "--cacert", str(pki["both"]), "-o", "/dev/null",
             "-w", "%{http_code}", "-H", "ChatGPT-Allowed-Workspace-Id: left-alone",
             url)  # fmt: skip
    assert r.stdout == "200", r.stderr
    assert received(upstream, "ChatGPT-Allowed-Workspace-Id") == ["left-alone"]


def test_logged_out_chatgpt_is_blocked_and_never_reaches_the_vendor(proxy, upstream, pki):
    before = len(upstream.requests)
    url = f"https://chatgpt.com:{upstream.port}/backend-anon/f/conversation"
    r = curl("-sS", "--proxy", proxy.url, "--cacert", str(pki["cafile"]), "-D", "-",
             "-o", "/dev/null", "-X", "POST", "-d", "{}", url)  # fmt: skip
    assert re.search(r"^HTTP/[\d.]+ 403", r.stdout, re.M), r.stdout  # after CONNECT's 200
    assert "x-aiwarden-rule: tenants.chatgpt" in r.stdout.lower()
    assert len(upstream.requests) == before


def test_microsoft_sign_in_gets_both_v1_headers_once(proxy, upstream, pki):
    url = f"https://login.microsoftonline.com:{upstream.port}/common/oauth2/v2.0/authorize"
    r = curl("-sS", "--proxy", proxy.url, "--cacert", str(pki["cafile"]), "-o", "/dev/null",
             "-w", "%{http_code}", "-H", "Restrict-Access-To-Tenants: personal.example",
             url)  # fmt: skip
    assert r.stdout == "200", r.stderr
    assert received(upstream, "Restrict-Access-To-Tenants") == [f"contoso.com,{ORG}"]
    assert received(upstream, "Restrict-Access-Context") == [WORKSPACE]


@pytest.fixture
def through(proxy, pki, monkeypatch):
    """The SDKs reach the network through `proxy`, trusting its CA, as a user's would."""
    for name in ("NO_PROXY", "ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["cafile"]))


def test_the_anthropic_sdk_call_carries_the_org_and_no_continuation(upstream, through):
    import anthropic

    client = anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url=f"https://api.anthropic.com:{upstream.port}",
        max_retries=0,
        default_headers={"anthropic-allowed-org-ids1": "forged"},
    )
    before = len(upstream.requests)
    # the stand-in upstream does not answer in the Messages API's shape
    with contextlib.suppress(anthropic.APIError):
        client.messages.create(model="claude-x", max_tokens=8,
                               messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert len(upstream.requests) == before + 1
    assert received(upstream, "anthropic-allowed-org-ids") == [ORG]
    assert received(upstream, "anthropic-allowed-org-ids1") == []


def test_the_openai_sdk_call_carries_the_organization(upstream, through):
    import openai

    client = openai.OpenAI(
        api_key="sk-test",
        base_url=f"https://api.openai.com:{upstream.port}/v1",
        max_retries=0,
        default_headers={"OpenAI-Allowed-Organization-Ids": "org-mine00000"},
    )
    answer = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "The answer is 42."
    assert received(upstream, "OpenAI-Allowed-Organization-Ids") == [OPENAI_ORG]
