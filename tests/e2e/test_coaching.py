"""Coaching end to end: a `warn` rule stops the official OpenAI SDK, curl and headless
Chromium at a real proxy (fast path on, off, and under mitmdump -s); the user proceeds through
the link or the page, and only then does the request reach the local upstream that stands in
for the vendor (tests/loopback_names). Tickets are single-use and bound to the client that was
warned; grants expire, are revoked by the admin listener, and hold in another process that
shares the store."""

from __future__ import annotations

import json
import re
import ssl
import time

import httpx
import pytest
from conftest import SHIPPED_CATALOG
from proxyharness import (
    CHROMIUM,
    MODES,
    Browser,
    Proxy,
    Upstream,
    curl,
    loopback_names,
    proxy_in_mode,
    spki_pin,
    tls_upstream_pki,
    write_policy,
)

NAMES = ("chatgpt.com", "api.openai.com", "api.anthropic.com")
POLICY = """
network:
  clients: [127.0.0.0/8]
  deny_destinations: [169.254.0.0/16]
defaults: {action: allow}
rules:
  - id: coach-chatgpt
    match: {services: [chatgpt]}
    action: warn
    message: ChatGPT is not approved for company data.
    alternative: https://assistant.corp.example
    justification: required
  - id: coach-openai-api
    match: {services: [openai-api]}
    action: warn
    message: The OpenAI API is not approved.
    ttl: 15m
  - id: coach-anthropic-api
    match: {services: [anthropic-api]}
    action: warn
    justification: none
    ttl: 2s
"""
LINK = re.compile(r"https://[\w.-]+:\d+/\.aiwarden/ack/[\w-]+")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tls_upstream_pki(tmp_path_factory.mktemp("coaching"), NAMES)


@pytest.fixture(scope="module")
def upstream(pki):
    server = Upstream(tls=(pki["cert"], pki["key"]))
    yield server
    server.close()


def start(pki, name: str, mode: str = "fast path", store=None, extra=()) -> Proxy:
    """A proxy on the shared test policy, with its own store and audit log unless told."""
    policy = write_policy(pki["dir"] / name, POLICY, SHIPPED_CATALOG)
    store = store or pki["dir"] / name / "coaching.sqlite3"
    audit = pki["dir"] / name / "audit.jsonl"
    options = {"aiwarden_coaching_store": str(store), "aiwarden_audit_log": str(audit)}
    with loopback_names(NAMES):
        p = proxy_in_mode(mode, policy, pki, options, *extra)
    p.directory = policy
    return p


@pytest.fixture(scope="module", params=MODES)
def any_proxy(request, pki):
    p = start(pki, request.param.replace(" ", "-"), request.param)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def shared_proxy(pki):
    p = start(pki, "main")
    yield p
    p.stop()


@pytest.fixture
def proxy(shared_proxy):
    """The main proxy, with no grant left over from another test."""
    revoke(shared_proxy)
    return shared_proxy


def revoke(proxy: Proxy, **which: str) -> dict:
    r = httpx.post(f"http://{proxy.admin}/coaching/revoke", params=which)
    assert r.status_code == 200, r.text
    return r.json()


def audit_events(proxy_dir, outcome: str) -> list[dict]:
    path = proxy_dir / "audit.jsonl"
    deadline = time.monotonic() + 5  # the audit log is written by a thread of its own
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        found = [
            r for r in map(json.loads, lines)
            if r.get("event") == "coaching" and r.get("outcome") == outcome
        ]  # fmt: skip
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def browser_client(proxy: Proxy, pki) -> httpx.Client:
    """A plain HTTP client, as a user's browser would reach the link: through the proxy."""
    trust = ssl.create_default_context(cafile=str(pki["cafile"]))
    return httpx.Client(proxy=proxy.url, verify=trust, timeout=30)


def openai_client(proxy: Proxy, pki, upstream: Upstream, monkeypatch):
    import openai

    for name in ("NO_PROXY", "ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["cafile"]))
    return openai.OpenAI(
        api_key="sk-test", base_url=f"https://api.openai.com:{upstream.port}/v1", max_retries=0
    )


def ask(client):
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )


def warned_link(proxy: Proxy, pki, upstream: Upstream, path: str = "/v1/models", *args) -> str:
    """Send one request with curl and return the link its warning carries."""
    url = f"https://api.openai.com:{upstream.port}{path}"
    r = curl("--proxy", proxy.url, "--cacert", str(pki["cafile"]), "-D", "-",
             "-H", "Authorization: Bearer sk-test", *args, url)  # fmt: skip
    assert re.search(r"^HTTP/[\d.]+ 403", r.stdout, re.M), r.stdout
    match = LINK.search(r.stdout)
    assert match, r.stdout
    return match.group(0)


def proceed(client: httpx.Client, link: str, justification: str = "", what: str = "proceed"):
    page = client.get(link)
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token, page.text
    origin = link.split("/.aiwarden/")[0]
    return client.post(
        f"{origin}/.aiwarden/{what}",
        data={"token": token.group(1), "justification": justification, "return": ""},
    )


# -- the SDK and the link -------------------------------------------------------------------


def test_the_sdk_is_warned_with_a_link_and_passes_once_the_user_proceeds(
    any_proxy, pki, upstream, monkeypatch
):
    import openai

    client = openai_client(any_proxy, pki, upstream, monkeypatch)
    before = len(upstream.requests)
    with pytest.raises(openai.PermissionDeniedError) as warned:
        ask(client)
    message = str(warned.value)
    assert "The OpenAI API is not approved." in message and "for 15 minutes" in message
    link = LINK.search(message).group(0)
    assert len(upstream.requests) == before  # nothing reached the vendor

    with browser_client(any_proxy, pki) as browser:
        done = proceed(browser, link, "Migrating the billing service, ticket OPS-4411")
    assert done.status_code == 200 and "You may use OpenAI API" in done.text, done.text
    answer = ask(client)  # the same client, the same address: it passes now
    assert answer.choices[0].message.content == "The answer is 42."
    assert len(upstream.requests) == before + 1
    assert not any(p.startswith("/.aiwarden/") for _, p, _ in upstream.requests)

    proceeded = audit_events(any_proxy.directory, "proceeded")
    assert any(
        e["justification"] == "Migrating the billing service, ticket OPS-4411"
        and e["service"] == "openai-api"
        and e["rule"] == "coach-openai-api"
        and e["client"] == "127.0.0.1"
        for e in proceeded
    ), proceeded


def test_the_link_is_single_use(proxy, pki, upstream):
    link = warned_link(proxy, pki, upstream)
    with browser_client(proxy, pki) as browser:
        page = browser.get(link)
        token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
        origin = link.split("/.aiwarden/")[0]
        first = browser.post(f"{origin}/.aiwarden/proceed", data={"token": token})
        again = browser.post(f"{origin}/.aiwarden/proceed", data={"token": token})
        shown = browser.get(link)
    assert first.status_code == 200
    assert again.status_code == 410 and "used already" in again.text
    assert shown.status_code == 410


def test_the_link_is_bound_to_the_client_that_was_warned(proxy, pki, upstream):
    link = warned_link(proxy, pki, upstream)
    token, origin = link.rsplit("/", 1)[1], link.split("/.aiwarden/")[0]
    other = ("--proxy", proxy.url, "--cacert", str(pki["cafile"]), "--interface", "127.0.0.2",
             "-w", "\n%{http_code}")  # fmt: skip
    assert curl(*other, link).stdout.endswith("\n403")
    stolen = curl(*other, "-d", f"token={token}", f"{origin}/.aiwarden/proceed").stdout
    assert stolen.endswith("\n403") and "another client" in stolen
    # the warned client can still use its link; the other one is still warned
    with browser_client(proxy, pki) as mine:
        assert proceed(mine, link).status_code == 200
    url = f"https://api.openai.com:{upstream.port}/v1/models"
    assert curl(*other, "-o", "/dev/null", url).stdout.endswith("403")
    mine = ("--proxy", proxy.url, "--cacert", str(pki["cafile"]), "-o", "/dev/null",
            "-w", "%{http_code}", url)  # fmt: skip
    assert curl(*mine).stdout == "200"


def test_a_required_justification_is_asked_for_and_cancel_ends_the_ticket(proxy, pki, upstream):
    url = f"https://chatgpt.com:{upstream.port}/backend-api/conversation"
    r = curl("--proxy", proxy.url, "--cacert", str(pki["cafile"]), "-H", "Accept: text/plain",
             "-X", "POST", "-d", "{}", url)  # fmt: skip
    link = LINK.search(r.stdout).group(0)
    with browser_client(proxy, pki) as browser:
        empty = proceed(browser, link, "   ")
        assert empty.status_code == 400 and "Say why" in empty.text
        cancelled = proceed(browser, link, what="cancel")
        assert cancelled.status_code == 200 and "assistant.corp.example" in cancelled.text
        assert browser.get(link).status_code == 410  # cancelling used the ticket
    assert audit_events(proxy.directory, "cancelled")


def test_grants_expire(proxy, pki, upstream):
    url = f"https://api.anthropic.com:{upstream.port}/v1/messages"
    args = ("--proxy", proxy.url, "--cacert", str(pki["cafile"]), "-H", "x-api-key: k",
            "-H", "anthropic-version: 2023-06-01", "-d", "{}")  # fmt: skip
    r = curl(*args, url)
    link = LINK.search(r.stdout).group(0)
    assert '"permission_error"' in r.stdout  # the Anthropic API's own error shape
    with browser_client(proxy, pki) as browser:
        page = browser.get(link)
        assert 'name="justification"' not in page.text  # justification: none
        assert proceed(browser, link).status_code == 200
    before = len(upstream.requests)
    assert curl(*args, "-o", "/dev/null", "-w", "%{http_code}", url).stdout == "200"
    assert len(upstream.requests) == before + 1
    time.sleep(2.5)  # the rule's ttl is 2s
    assert curl(*args, "-o", "/dev/null", "-w", "%{http_code}", url).stdout == "403"
    assert len(upstream.requests) == before + 1


def test_the_admin_listener_revokes_grants(proxy, pki, upstream):
    with browser_client(proxy, pki) as browser:
        assert proceed(browser, warned_link(proxy, pki, upstream)).status_code == 200
    url = f"https://api.openai.com:{upstream.port}/v1/models"
    status = ("--proxy", proxy.url, "--cacert", str(pki["cafile"]), "-o", "/dev/null",
              "-w", "%{http_code}", url)  # fmt: skip
    assert curl(*status).stdout == "200"
    assert revoke(proxy, client="127.0.0.1") == {"revoked": 1}
    assert curl(*status).stdout == "403"
    assert audit_events(proxy.directory, "revoked")


def test_a_grant_holds_in_another_process_sharing_the_store_and_after_a_restart(pki, upstream):
    store = pki["dir"] / "shared.sqlite3"
    first, second = start(pki, "first", store=store), start(pki, "second", store=store)
    try:
        with browser_client(first, pki) as browser:
            assert proceed(browser, warned_link(first, pki, upstream)).status_code == 200
        url = f"https://api.openai.com:{upstream.port}/v1/models"
        for p in (second, first):
            r = curl("--proxy", p.url, "--cacert", str(pki["cafile"]), "-o", "/dev/null",
                     "-w", "%{http_code}", url)  # fmt: skip
            assert r.stdout == "200"
        second.stop()
        restarted = start(pki, "second", store=store)
        r = curl("--proxy", restarted.url, "--cacert", str(pki["cafile"]), "-o", "/dev/null",
                 "-w", "%{http_code}", url)  # fmt: skip
        restarted.stop()
        assert r.stdout == "200"
    finally:
        first.stop()
        second.stop()
    assert oct(store.stat().st_mode & 0o777) == "0o600"


def test_a_grant_made_through_one_worker_holds_in_the_others(pki, upstream):
    p = start(pki, "workers", extra=("--workers", "2"))
    try:
        with browser_client(p, pki) as browser:
            assert proceed(browser, warned_link(p, pki, upstream)).status_code == 200
        url = f"https://api.openai.com:{upstream.port}/v1/models"
        served_by: set[int] = set()
        for _ in range(40):  # each curl is a new connection, spread over the workers
            r = curl("--proxy", p.url, "--cacert", str(pki["cafile"]), "-o", "/dev/null",
                     "-w", "%{http_code}", url)  # fmt: skip
            assert r.stdout == "200"
            served_by = {e["worker"] for e in p.drain() if e.get("event") == "monitor"}
            if served_by == {0, 1}:
                break
        assert served_by == {0, 1}  # both workers passed a request on the one grant
    finally:
        p.stop()


# -- a real browser ---------------------------------------------------------------------------


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (.ci/run installs Debian's chromium package)",
)
def test_chromium_clicks_through_the_warning_and_reaches_the_service(
    proxy, pki, upstream, tmp_path
):
    before = len(upstream.requests)
    browser = Browser(
        tmp_path / "profile",
        f"--proxy-server={proxy.url}",
        f"--ignore-certificate-errors-spki-list={spki_pin(pki['cafile'])}",
    )
    try:
        browser.go(f"https://chatgpt.com:{upstream.port}/")
        browser.wait_for("document.querySelector('#proceed')")
        assert "ChatGPT is not approved for company data." in browser.evaluate(
            "document.body.innerText"
        )
        assert len(upstream.requests) == before
        browser.evaluate(
            "document.querySelector('#justification').value = 'Comparing answers for QA';"
            "document.querySelector('#proceed').click()"
        )
        browser.wait_for("document.body.innerText.includes('hello from upstream')")
        assert browser.evaluate("location.pathname") == "/"
    finally:
        browser.close()
    assert any(m == "GET" and p == "/" for m, p, _ in upstream.requests[before:])
    events = audit_events(proxy.directory, "proceeded")
    assert any(e["justification"] == "Comparing answers for QA" for e in events), events


def test_the_proxys_own_paths_are_never_forwarded(proxy, pki, upstream):
    before = len(upstream.requests)
    for path in ("/.aiwarden/ack/made-up-token", "/.aiwarden/anything", "/.aiwarden/proceed"):
        r = curl("--proxy", proxy.url, "--cacert", str(pki["cafile"]), "-o", "/dev/null",
                 "-w", "%{http_code}", f"https://api.openai.com:{upstream.port}{path}")  # fmt: skip
        assert r.stdout in ("404", "410"), (path, r.stdout)
    assert len(upstream.requests) == before


def test_without_a_usable_store_a_warning_blocks(pki, upstream):
    (pki["dir"] / "missing").write_text("a file where a directory would have to be")
    p = start(pki, "no-store", store=pki["dir"] / "missing" / "file" / "x.sqlite3")
    try:
        url = f"https://api.openai.com:{upstream.port}/v1/models"
        r = curl("--proxy", p.url, "--cacert", str(pki["cafile"]), "-D", "-",
                 "-H", "Authorization: Bearer sk-test", url)  # fmt: skip
    finally:
        p.stop()
    assert re.search(r"^HTTP/[\d.]+ 403", r.stdout, re.M), r.stdout
    assert "coaching store is unavailable" in r.stdout and not LINK.search(r.stdout)
