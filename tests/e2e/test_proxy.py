"""The real proxy (`aiwarden run`) on loopback, driven by curl, raw sockets, httpx and the
official SDKs, with local upstream servers."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import socket
import ssl
import sys
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, SHIPPED_CATALOG, local_ai_policy
from proxyharness import (
    CHROMIUM,
    Proxy,
    Upstream,
    chromium_dom,
    connect_tunnel,
    curl,
    make_upstream_pki,
    request_through_tunnel,
    spki_pin,
    write_policy,
)

from proxy import ca

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"
)

MESSAGE = "External AI services are not approved."
POLICY = local_ai_policy(
    defaults='defaults: {contact: "mailto:security@corp.example"}',
    clients=("127.0.0.0/8", "::1/128"),
    deny=("169.254.0.0/16", "fe80::/10"),
    api_format="openai",
    sections="""
    redaction_profiles:
      default:
        detectors: [secrets, pii]
        custom:
          - {id: codename, keywords: [PROJECT-HELIOS]}
    """,
    rules="""
    - id: approved-gateway
      match: {services: [local-ai], paths: ["/v1/**"]}
      action: redact
    - id: watch-local-ai
      match: {services: [local-ai]}
      action: monitor
    - id: no-blocked-uploads
      match: {hosts: [127.0.0.2], paths: [/blocked/**]}
      action: block
    - id: block-ai
      match: {categories: [chat, api, code-assistant, search, image, video, voice, agent]}
      action: block
      message: "External AI services are not approved."
    """,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca.init(directory / "ca")
    upstream_ca, cert, key = make_upstream_pki(directory)
    return {
        "ca": directory / "ca",
        "cafile": directory / "ca" / "ca.pem",
        "upstream_ca": upstream_ca,
        "cert": cert,
        "key": key,
    }


@pytest.fixture(scope="module")
def plain_upstream():
    server = Upstream(host="127.0.0.2")  # 127.0.0.1 stays free of path rules: tunnelled
    yield server
    server.close()


@pytest.fixture(scope="module")
def tls_upstream(pki):
    server = Upstream(tls=(pki["cert"], pki["key"]))
    yield server
    server.close()


@pytest.fixture(scope="module")
def proxy(pki, tmp_path_factory):
    policy = write_policy(tmp_path_factory.mktemp("policy"), POLICY, SHIPPED_CATALOG)
    p = Proxy(policy, pki["ca"], "--upstream-ca", str(pki["upstream_ca"]))
    yield p
    assert p.stop() == 0, "aiwarden did not shut down cleanly on SIGTERM"


def block_logged(proxy: Proxy, reference: str) -> dict:
    return proxy.wait_for(lambda e: e.get("event") == "block" and e.get("reference") == reference)


# -- the admin listener ---------------------------------------------------------------------


def test_admin_endpoints(proxy, pki):
    base = f"http://{proxy.admin}"
    assert httpx.get(f"{base}/healthz").text == "ok\n"
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.text.startswith("ready: ")
    pem = httpx.get(f"{base}/ca.pem")
    assert pem.content == pki["cafile"].read_bytes()
    assert httpx.get(f"{base}/nope").status_code == 404
    assert httpx.post(f"{base}/healthz").status_code == 405
    assert httpx.head(f"{base}/healthz").status_code == 200


# -- blocking -----------------------------------------------------------------------------------


def test_plain_http_request_to_ai_service_is_blocked_with_text(proxy):
    r = curl("-i", "--proxy", proxy.url, "http://claude.ai/api/append_message")
    head, _, body = r.stdout.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 403")
    assert "x-aiwarden-rule: block-ai" in head.lower()
    assert MESSAGE in body and "Service:   Claude (claude.ai)" in body
    reference = next(line.split()[-1] for line in body.splitlines() if line.startswith("Ref"))
    record = block_logged(proxy, reference)
    assert record["host"] == "claude.ai" and record["path"] == "/api/append_message"
    assert record["service"] == "claude" and record["rule"] == "block-ai"


def test_https_api_call_gets_the_openai_error_shape(proxy, pki):
    r = curl(
        "-i",
        "--http1.1",
        "--proxy",
        proxy.url,
        "--cacert",
        str(pki["cafile"]),
        "https://api.openai.com/v1/chat/completions?key=secret",
        "-H",
        "Authorization: Bearer sk-test",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"model": "gpt-4o", "messages": []}',
    )
    head, _, body = r.stdout.split("\r\n\r\n", 1)[1].partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 403")
    error = json.loads(body)["error"]
    assert error["type"] == "permission_denied" and error["code"] == "blocked_by_policy"
    assert MESSAGE in error["message"] and "rule 'block-ai'" in error["message"]
    record = proxy.wait_for(lambda e: e.get("host") == "api.openai.com")
    assert record["path"] == "/v1/chat/completions", "the query string must not be logged"
    assert "secret" not in json.dumps(proxy.drain())


def test_browser_gets_the_html_block_page(proxy, pki):
    r = curl(
        "--proxy",
        proxy.url,
        "--cacert",
        str(pki["cafile"]),
        "-H",
        "Accept: text/html,application/xhtml+xml",
        "https://chatgpt.com/",
    )
    page = r.stdout
    assert "<h1>ChatGPT is blocked by company policy</h1>" in page
    assert MESSAGE in page and '<dd id="rule">block-ai</dd>' in page
    assert 'href="mailto:security@corp.example"' in page
    assert "http" not in page.replace("mailto:", "").split("<body>", 1)[1].replace(
        "chatgpt.com", ""
    ), "the page must not load anything from elsewhere"


def test_openai_sdk_raises_its_permission_error(proxy, pki, monkeypatch):
    import openai

    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["cafile"]))
    client = openai.OpenAI(api_key="sk-test", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 403
    assert MESSAGE in str(e.value) and "OpenAI API" in str(e.value)


def test_anthropic_sdk_raises_its_permission_error(proxy, pki, monkeypatch):
    import anthropic

    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["cafile"]))
    client = anthropic.Anthropic(api_key="sk-ant-test", max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        client.messages.create(
            model="claude-test-model", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.status_code == 403
    assert e.value.body["error"]["type"] == "permission_error"
    assert MESSAGE in e.value.body["error"]["message"]


def test_google_genai_sdk_raises_permission_denied(proxy, pki, monkeypatch):
    from google import genai

    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["cafile"]))
    client = genai.Client(api_key="AIza-test")
    with pytest.raises(genai.errors.ClientError) as e:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (e.value.code, e.value.status) == (403, "PERMISSION_DENIED")
    assert MESSAGE in e.value.message


def test_websocket_upgrade_to_blocked_service_is_refused(proxy, pki):
    upgrade = [
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ]
    plain = curl("-i", "--proxy", proxy.url, *upgrade, "http://api.openai.com/v1/realtime")
    assert plain.stdout.startswith("HTTP/1.1 403")
    secure = curl(
        "-i",
        "--http1.1",
        "--proxy",
        proxy.url,
        "--cacert",
        str(pki["cafile"]),
        *upgrade,
        "https://api.openai.com/v1/realtime?model=gpt-realtime",
    )
    assert "\r\n\r\nHTTP/1.1 403" in secure.stdout
    assert "101 Switching" not in secure.stdout


def test_blocked_request_body_never_reaches_the_upstream(proxy, plain_upstream, tmp_path):
    body = tmp_path / "big.bin"
    body.write_bytes(os.urandom(2 * 1024 * 1024))
    r = curl(
        "-i",
        "--proxy",
        proxy.url,
        "--data-binary",
        f"@{body}",
        f"http://{plain_upstream.host}:{plain_upstream.port}/blocked/upload",
    )
    # mitmproxy answers `Expect: 100-continue` itself, then reads (and drops) the body
    final = r.stdout.removeprefix("HTTP/1.1 100 Continue\r\n\r\n")
    assert final.startswith("HTTP/1.1 403")
    assert "x-aiwarden-rule: no-blocked-uploads" in r.stdout.lower()
    assert not any(path.startswith("/blocked") for _, path, _ in plain_upstream.requests)


# -- what must pass, and how -----------------------------------------------------------------------


def test_non_ai_https_is_tunnelled_with_the_servers_own_certificate(proxy, pki, tls_upstream):
    target = f"127.0.0.1:{tls_upstream.port}"
    r = curl("--proxy", proxy.url, "--cacert", str(pki["upstream_ca"]), f"https://{target}/")
    assert r.stdout == "hello from upstream\n", r.stderr
    status, _, body, cert = request_through_tunnel(
        proxy.address, target, sni=None, host_header=target, cafile=pki["upstream_ca"]
    )
    assert (status, body) == (200, b"hello from upstream\n")
    issuer = dict(part[0] for part in cert["issuer"])
    assert issuer["commonName"] == "test upstream CA"  # not aiwarden's: never decrypted


def test_plain_http_upload_arrives_byte_for_byte(proxy, plain_upstream, tmp_path):
    data = os.urandom(1024 * 1024)
    body = tmp_path / "upload.bin"
    body.write_bytes(data)
    r = curl(
        "--proxy",
        proxy.url,
        "--data-binary",
        f"@{body}",
        "-H",
        "Content-Type: application/octet-stream",
        f"http://{plain_upstream.host}:{plain_upstream.port}/upload",
    )
    assert json.loads(r.stdout) == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_server_sent_events_from_an_allowed_intercepted_host_stream(proxy, pki, tls_upstream):
    tls_upstream.sse_gate.clear()
    events = []
    trust = ssl.create_default_context(cafile=str(pki["cafile"]))
    url = f"https://localhost:{tls_upstream.port}/sse"
    with (
        httpx.Client(proxy=proxy.url, verify=trust, timeout=30) as client,
        client.stream("GET", url) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(line)
                tls_upstream.sse_gate.set()  # the upstream sends the rest only now
    assert events == ["data: event 0", "data: event 1", "data: event 2"]
    record = proxy.wait_for(lambda e: e.get("event") == "monitor")
    assert record["service"] == "local-ai" and record["rule"] == "watch-local-ai"


# -- domain fronting and destinations -------------------------------------------------------------


def test_sni_of_a_blocked_service_in_an_allowed_tunnel_is_blocked(proxy, pki, tls_upstream):
    before = len(tls_upstream.requests)
    status, headers, _, _ = request_through_tunnel(
        proxy.address,
        f"127.0.0.1:{tls_upstream.port}",
        sni="chatgpt.com",
        host_header="chatgpt.com",
        cafile=pki["cafile"],
    )
    assert status == 403 and headers["x-aiwarden-rule"] == "block-ai"
    assert len(tls_upstream.requests) == before


def test_host_header_of_a_blocked_service_is_blocked(proxy, pki, plain_upstream, tls_upstream):
    before = len(plain_upstream.requests), len(tls_upstream.requests)
    r = curl(
        "-i",
        "--proxy",
        proxy.url,
        "-H",
        "Host: chatgpt.com",
        f"http://{plain_upstream.host}:{plain_upstream.port}/",
    )
    assert r.stdout.startswith("HTTP/1.1 403")
    status, headers, _, _ = request_through_tunnel(
        proxy.address,
        f"localhost:{tls_upstream.port}",
        sni="localhost",
        host_header="chatgpt.com",
        cafile=pki["cafile"],
    )
    assert status == 403 and headers["x-aiwarden-rule"] == "block-ai"
    assert (len(plain_upstream.requests), len(tls_upstream.requests)) == before


@pytest.mark.parametrize(
    "target",
    ["169.254.169.254:80", "169.254.169.254:443", "[::ffff:169.254.169.254]:443", "2852039166:443"],
)
def test_metadata_address_is_refused_at_connect(proxy, target):
    sock, status, head = connect_tunnel(proxy.address, target)
    sock.close()
    assert status == 403, head
    assert b"x-aiwarden-rule: network.deny_destinations" in head.lower()


def test_metadata_address_is_refused_for_plain_http(proxy):
    r = curl("-i", "--proxy", proxy.url, "http://169.254.169.254/latest/meta-data/")
    assert r.stdout.startswith("HTTP/1.1 403")
    assert "is in denied destination 169.254.0.0/16" not in r.stdout  # no internals shown


def test_the_proxy_never_connects_to_itself(proxy):
    for target in (proxy.admin, proxy.address):
        sock, status, _ = connect_tunnel(proxy.address, target)
        sock.close()
        assert status == 403, target
    r = curl("-i", "--proxy", proxy.url, f"http://{proxy.admin}/healthz")
    assert r.stdout.startswith("HTTP/1.1 403")


# -- separate proxies ------------------------------------------------------------------------


def test_a_name_resolving_into_a_denied_range_is_refused(pki, tmp_path):
    """localhost resolves to 127.0.0.1, which this policy denies: refused at CONNECT and for
    plain HTTP, the first time (the name is looked up) and again (the answer is cached)."""
    policy = write_policy(
        tmp_path,
        "network: {clients: [127.0.0.0/8], deny_destinations: [127.0.0.0/8]}\nrules: []\n",
        SHIPPED_CATALOG,
    )
    upstream = Upstream()
    p = Proxy(policy, pki["ca"])
    try:
        for _ in range(2):
            sock, status, head = connect_tunnel(p.address, f"localhost:{upstream.port}")
            sock.close()
            assert status == 403, head
            assert b"x-aiwarden-rule: network.deny_destinations" in head.lower()
            r = curl("-i", "--proxy", p.url, f"http://localhost:{upstream.port}/")
            assert r.stdout.startswith("HTTP/1.1 403")
        assert upstream.requests == []
    finally:
        p.stop()
        upstream.close()


def test_clients_outside_network_clients_are_refused(pki, tmp_path):
    policy = write_policy(
        tmp_path, "network: {clients: [10.0.0.0/8]}\nrules: []\n", SHIPPED_CATALOG
    )
    p = Proxy(policy, pki["ca"])
    try:
        r = curl("--proxy", p.url, "http://example.com/")
        assert r.returncode != 0 and r.stdout == ""
        p.wait_for(lambda e: e.get("event") == "client_refused" and e["client"] == "127.0.0.1")
    finally:
        assert p.stop() == 0


def test_proxy_authentication_users_reach_the_rules(pki, tmp_path):
    import bcrypt

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(
        "".join(
            f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n"
            for user, password in (("alice", "a-pass"), ("bob", "b-pass"))
        )
    )
    policy = write_policy(
        tmp_path / "p",
        local_ai_policy(
            rules="""
            - id: alice-may
              match: {users: [alice], services: [local-ai]}
              action: allow
            - id: block-chat
              match: {categories: [chat]}
              action: block
            """
        ),
        SHIPPED_CATALOG,
    )
    upstream = Upstream()
    p = Proxy(policy, pki["ca"], "--proxyauth", f"@{htpasswd}")
    try:
        url = f"http://localhost:{upstream.port}/"
        assert curl("-i", "--proxy", p.url, url).stdout.startswith("HTTP/1.1 407")
        alice = curl("--proxy", p.url, "--proxy-user", "alice:a-pass", url)
        assert alice.stdout == "hello from upstream\n"
        bob = curl("-i", "--proxy", p.url, "--proxy-user", "bob:b-pass", url)
        assert bob.stdout.startswith("HTTP/1.1 403") and "block-chat" in bob.stdout
        record = p.wait_for(lambda e: e.get("event") == "block")
        assert record["user"] == "bob"
        assert "b-pass" not in json.dumps(p.drain())
    finally:
        p.stop()
        upstream.close()


def test_a_bad_policy_stops_the_start_with_every_error(pki, tmp_path):
    (tmp_path / "policy.yaml").write_text(
        f"version: 1\ncatalog: [{SHIPPED_CATALOG}]\nrules:\n  - id: x\n    match: {{}}\n"
        "    action: deny\n"
    )
    r = __import__("subprocess").run(
        [
            str(Path(sys.executable).parent / "aiwarden"),
            "run",
            "--policy",
            str(tmp_path),
            "--confdir",
            str(pki["ca"]),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert f"{tmp_path / 'policy.yaml'}:6: rule 'x': 'action' must be one of" in r.stderr


def test_the_addon_loads_in_mitmdump(pki, tmp_path):
    mitmdump = Path(sys.executable).parent / "mitmdump"
    policy = write_policy(
        tmp_path / "p",
        "rules:\n  - id: block-chat\n    match: {categories: [chat]}\n    action: block\n",
        SHIPPED_CATALOG,
    )
    addon = ROOT / "proxy" / "mitm" / "script.py"
    p = Proxy(
        policy,
        pki["ca"],
        command=[
            str(mitmdump),
            "-s",
            str(addon),
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "0",
            "--set",
            f"confdir={pki['ca']}",
            "--set",
            f"aiwarden_policy={policy}",
            "--set",
            "aiwarden_admin=127.0.0.1:0",
            "--set",
            "connection_strategy=lazy",
        ],
    )
    try:
        r = curl("-i", "--proxy", p.url, "http://chatgpt.com/")
        assert r.stdout.startswith("HTTP/1.1 403")
        assert "x-aiwarden-rule: block-chat" in r.stdout.lower()
        assert httpx.get(f"http://{p.admin}/readyz").status_code == 200
    finally:
        p.stop()


# -- a real browser ----------------------------------------------------------------------------


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (.ci/run installs Debian's chromium package)",
)
def test_chromium_shows_the_block_page_for_chatgpt(proxy, pki, tmp_path):
    r = chromium_dom(
        "https://chatgpt.com/",
        tmp_path / "profile",
        f"--proxy-server={proxy.url}",
        f"--ignore-certificate-errors-spki-list={spki_pin(pki['cafile'])}",
    )
    dom = r.stdout
    assert "ChatGPT is blocked by company policy" in dom, r.stderr[-2000:]
    assert MESSAGE in dom and '<dd id="rule">block-ai</dd>' in dom
    reference = dom.split('<dd id="reference">', 1)[1].split("<", 1)[0]
    record = block_logged(proxy, reference)
    assert record["host"] == "chatgpt.com" and record["service"] == "chatgpt"


# -- redaction towards an approved service -----------------------------------------------------

LEAKY = "Deploy PROJECT-HELIOS with AKIAIOSFODNN7EXAMPLE, then mail bob@corp.example"
CLEAN = "Deploy [REDACTED:codename] with [REDACTED:aws-access-key], then mail [REDACTED:email]"


def gateway_client(proxy, pki, tls_upstream, monkeypatch):
    import openai

    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["cafile"]))
    return openai.OpenAI(
        api_key="sk-test", base_url=f"https://localhost:{tls_upstream.port}/v1", max_retries=0
    )


def test_openai_sdk_prompt_reaches_the_approved_service_redacted(
    proxy, pki, tls_upstream, monkeypatch
):
    client = gateway_client(proxy, pki, tls_upstream, monkeypatch)
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": LEAKY}],
    )
    assert reply.choices[0].message.content == "The answer is 42."
    sent = json.loads(tls_upstream.bodies[-1])
    assert sent["messages"][1]["content"] == CLEAN
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["model"] == "gpt-4o"
    record = proxy.wait_for(lambda e: e.get("event") == "redact")
    assert record["redactions"] == {"codename": 1, "aws-access-key": 1, "email": 1}
    assert record["rule"] == "approved-gateway"
    logs = json.dumps(proxy.drain())
    assert "AKIAIOSFODNN7EXAMPLE" not in logs and "bob@corp.example" not in logs


def test_a_streamed_reply_comes_back_intact(proxy, pki, tls_upstream, monkeypatch):
    client = gateway_client(proxy, pki, tls_upstream, monkeypatch)
    stream = client.chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": LEAKY}]
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "The answer is 42."
    assert json.loads(tls_upstream.bodies[-1])["messages"][0]["content"] == CLEAN


def test_a_gzip_body_is_redacted_and_sent_on_gzipped(proxy, pki, tls_upstream):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": LEAKY}]})
    trust = ssl.create_default_context(cafile=str(pki["cafile"]))
    with httpx.Client(proxy=proxy.url, verify=trust, timeout=30) as client:
        r = client.post(
            f"https://localhost:{tls_upstream.port}/v1/chat/completions",
            content=gzip.compress(body.encode()),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    assert r.status_code == 200
    headers = tls_upstream.requests[-1][2]
    assert headers.get("Content-Encoding", headers.get("content-encoding")) == "gzip"
    sent = json.loads(gzip.decompress(tls_upstream.bodies[-1]))
    assert sent["messages"][0]["content"] == CLEAN


def test_an_unparseable_body_is_refused_with_a_clear_message(proxy, pki, tls_upstream):
    before = len(tls_upstream.bodies)
    trust = ssl.create_default_context(cafile=str(pki["cafile"]))
    with httpx.Client(proxy=proxy.url, verify=trust, timeout=30) as client:
        r = client.post(
            f"https://localhost:{tls_upstream.port}/v1/chat/completions",
            content=b'{"messages": [truncated',
            headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
        )
    assert r.status_code == 403
    message = r.json()["error"]["message"]
    assert "could not check this request for secrets and personal data" in message
    assert "not valid JSON" in message
    assert len(tls_upstream.bodies) == before


def test_a_blocked_upload_is_answered_before_its_body(proxy):
    """Headers announcing 100 MB, then 1 KB: the 403 comes at once. (mitmproxy reads the
    whole body before sending a response an addon set, and holds it in memory.)"""
    host, port = proxy.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST http://chatgpt.com/backend-api/files HTTP/1.1\r\nHost: chatgpt.com\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: 100000000\r\n"
            b"Expect: 100-continue\r\n\r\n" + b"x" * 1024
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)  # a 10 s timeout: a proxy waiting for the body fails here
            assert chunk, reply
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
    assert b"x-aiwarden-rule: block-ai" in reply.lower()
    assert b"100 continue" not in reply.lower()


def test_a_blocked_upload_over_http2_is_answered_before_its_body(proxy, pki, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (20 * 1024 * 1024))
    r = curl("-s", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
             "--proxy", proxy.url, "--cacert", str(pki["cafile"]), "--limit-rate", "1M",
             "--data-binary", f"@{big}", "https://chatgpt.com/backend-api/files",
             timeout=15)  # fmt: skip
    assert r.stdout == "2 403"  # at 1 MB/s the whole body would take 20 s
