"""Per-activity rules for the ChatGPT, Claude and Gemini web apps, end to end: the real proxy
(fast path on, off, and under mitmdump -s) with a policy that allows the apps but refuses
uploads, sharing and logged-out use. Every recorded request shape of tests/data/
webapp_requests.yaml is sent by curl, as the browser would send it, to a local upstream that
serves the vendors' names (tests/loopback_names) and records what reaches it: the prompts and
the rest of the apps reach it (the control), the refused requests get the block answer and
never reach it, the PUT of a file to the upload host included."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import DATA, SHIPPED_CATALOG
from proxyharness import (
    MODES,
    Proxy,
    Upstream,
    curl,
    loopback_names,
    proxy_in_mode,
    tls_upstream_pki,
    write_policy,
)

REQUESTS = yaml.safe_load((DATA / "webapp_requests.yaml").read_text())["requests"]
NAMES = tuple(sorted({urlsplit(r["url"]).hostname for r in REQUESTS}))
REFUSED = ("upload", "share", "anonymous")
RULE = "no-uploads-sharing-or-logged-out"
POLICY = f"""
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
defaults: {{action: allow}}
rules:
  - id: {RULE}
    match:
      services: [chatgpt, claude, gemini, gemini-uploads]
      activities: [{", ".join(REFUSED)}]
    action: block
    message: "Chat is fine; files, share links and logged-out use are not."
  - id: approved-chat
    match: {{services: [chatgpt, claude, gemini]}}
    action: allow
  - id: block-ai
    match: {{categories: [chat, api]}}
    action: block
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_upstream_pki(tmp_path_factory.mktemp("webapp"), NAMES)


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


def send(proxy: Proxy, pki: dict, upstream: Upstream, request: dict) -> tuple[int, str]:
    """The recorded request, sent through the proxy to the upstream's port: its status and
    response headers."""
    url = urlsplit(request["url"])
    target = url._replace(netloc=f"{url.hostname}:{upstream.port}").geturl()
    args = ["--proxy", proxy.url, "--cacert", str(pki["both"]), "-D", "-", "-o", "/dev/null",
            "-X", request["method"]]  # fmt: skip
    for name, value in (request.get("headers") or {}).items():
        args += ["-H", f"{name}: {value}"]
    if request["method"] not in ("GET", "HEAD"):
        args += ["--data-binary", request.get("body", "")]
    r = curl(*args, target)
    statuses = re.findall(r"^HTTP/[\d.]+ (\d{3})", r.stdout, re.M)  # CONNECT's 200 first
    assert statuses, (r.stdout, r.stderr)
    return int(statuses[-1]), r.stdout.lower()


def _id(request: dict) -> str:
    return f"{request['activity'] or 'none'}:{request['method']}:{request['url'][8:60]}"


@pytest.mark.parametrize("app", ["chatgpt", "claude", "gemini"])
def test_each_recorded_request_is_decided_by_its_activity(proxy, upstream, pki, app):
    """One test per app and proxy mode, each request checked in turn: the test count stays
    small (each proxy start costs a second) while every recorded shape goes through."""
    mine = [r for r in REQUESTS if r["app"] == app]
    refused = [r for r in mine if r["activity"] in REFUSED]
    passed = [r for r in mine if r["activity"] not in REFUSED]
    assert refused and any(r["activity"] == "prompt" for r in passed)  # both sides are tried
    for request in passed:
        before = len(upstream.requests)
        status, _headers = send(proxy, pki, upstream, request)
        assert status == 200, _id(request)
        assert len(upstream.requests) == before + 1, _id(request)
        method, path, _ = upstream.requests[-1]
        assert (method, path.split("?")[0]) == (request["method"], urlsplit(request["url"]).path)
    for request in refused:
        before = len(upstream.requests)
        status, headers = send(proxy, pki, upstream, request)
        assert status == 403, _id(request)
        assert f"x-aiwarden-rule: {RULE}" in headers, _id(request)
        assert len(upstream.requests) == before, f"{_id(request)} reached the vendor"


def test_the_file_put_to_the_upload_host_is_refused_but_its_download_passes(proxy, upstream, pki):
    """The same host and path: PUT (the upload of step 2) is refused, GET is the control."""
    url = "https://sdmntprwestus.oaiusercontent.com/files/0000-b9ed/raw?se=x&sp=w&sig=x"
    before = len(upstream.requests)
    put = {"method": "PUT", "url": url, "headers": {"x-ms-blob-type": "BlockBlob"},
           "body": "%PDF-1.7 confidential"}  # fmt: skip
    status, headers = send(proxy, pki, upstream, put)
    assert (status, f"x-aiwarden-rule: {RULE}" in headers) == (403, True)
    assert len(upstream.requests) == before
    assert send(proxy, pki, upstream, {"method": "GET", "url": url})[0] == 200
    assert upstream.requests[-1][:2] == ("GET", "/files/0000-b9ed/raw?se=x&sp=w&sig=x")
