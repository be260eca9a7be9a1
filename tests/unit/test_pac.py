"""PAC files: evaluated by a real PAC engine (pacparser) over a table of URLs, served by the
admin listener, and followed by headless Chromium."""

from __future__ import annotations

import re

import httpx
import pacparser
import pytest
from conftest import SHIPPED_CATALOG
from proxyharness import CHROMIUM, Proxy, Upstream, chromium_dom, spki_pin, write_policy

from proxy import ca, pac
from proxy.policy.loader import load_policy

PROXY = "PROXY 10.0.0.5:3128"


def evaluate(script: str, urls: list[str]) -> list[str]:
    pacparser.init()
    try:
        pacparser.parse_pac_string(script)
        return [
            pacparser.find_proxy(url, re.match(r"\w+://\[?([^/:\]]+)", url).group(1))
            for url in urls
        ]
    finally:
        pacparser.cleanup()


CASES = [
    # (url, mode all, mode ai-only)
    ("https://chatgpt.com/", PROXY, PROXY),
    ("https://API.OpenAI.com./v1/models", PROXY, PROXY),
    ("https://sub.sub.openai.com/", PROXY, PROXY),
    ("https://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse", PROXY, PROXY),
    ("https://us-central1-aiplatform.googleapis.com/v1/x", PROXY, PROXY),
    ("https://api.github.com/user", PROXY, PROXY),  # shared host: the proxy decides by path
    ("https://new-ai-tool.example/", PROXY, PROXY),  # a rule's own host
    ("https://example.com/", PROXY, "DIRECT"),
    ("https://www.gemini.com/", PROXY, "DIRECT"),
    ("http://8.8.8.8/", PROXY, "DIRECT"),
    ("http://intranet/", "DIRECT", "DIRECT"),
    ("http://localhost:8080/", "DIRECT", "DIRECT"),
    ("http://10.1.2.3/", "DIRECT", "DIRECT"),
    ("http://192.168.1.1/", "DIRECT", "DIRECT"),
    ("http://172.20.0.1/", "DIRECT", "DIRECT"),
    ("http://169.254.169.254/", "DIRECT", "DIRECT"),
    ("https://wiki.corp.example/", "DIRECT", "DIRECT"),  # bypassed
    ("https://corp.example/", "DIRECT", "DIRECT"),
    ("https://notcorp.example/", PROXY, "DIRECT"),
]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    directory = write_policy(
        tmp_path_factory.mktemp("pac"),
        """
        rules:
          - id: block-new-tool
            match: {hosts: [new-ai-tool.example]}
            action: block
          - id: block-ai
            match: {categories: [chat, api, code-assistant]}
            action: block
    """,
        SHIPPED_CATALOG,
    )
    return load_policy(directory)


@pytest.mark.parametrize("mode, column", [("all", 1), ("ai-only", 2)])
def test_pac_table(policy, mode, column):
    script = pac.render(policy, ["10.0.0.5:3128"], mode, bypass=["corp.example", "openai.com"])
    results = evaluate(script, [case[0] for case in CASES])
    assert results == [case[column] for case in CASES]


def test_failover_and_spread(policy):
    two = ["10.0.0.5:3128", "10.0.0.6:3128"]
    plain = pac.render(policy, two)
    assert evaluate(plain, ["https://example.com/"]) == ["PROXY 10.0.0.5:3128; PROXY 10.0.0.6:3128"]
    spread = pac.render(policy, two, spread=True)
    hosts = [f"https://host{i}.example/" for i in range(40)]
    first = evaluate(spread, hosts)
    assert evaluate(spread, hosts) == first  # stable
    assert {r.split(";")[0] for r in first} == {"PROXY 10.0.0.5:3128", "PROXY 10.0.0.6:3128"}
    assert all(sorted(r.split("; ")) == sorted(f"PROXY {p}" for p in two) for r in first)


@pytest.mark.parametrize(
    "given, entry",
    [
        ("10.0.0.5:3128", "PROXY 10.0.0.5:3128"),
        ("http://proxy.corp.example:3128", "PROXY proxy.corp.example:3128"),
        ("https://proxy.corp.example:3129", "HTTPS proxy.corp.example:3129"),
        ("HTTPS://Proxy.corp.example:443/", "HTTPS Proxy.corp.example:443"),
        ("https://[2001:db8::5]:3129", "HTTPS [2001:db8::5]:3129"),
        ("HTTPS p:1", "HTTPS p:1"),  # already an entry
    ],
)
def test_pac_entries(given, entry):
    assert pac.pac_entry(given) == entry


@pytest.mark.parametrize(
    "given, why",
    [
        ("socks5://p:1080", "HOST:PORT, http:// or https://HOST:PORT"),
        ("https://proxy.corp.example", "needs a host and a port"),
        ("https://p:3128/path", "needs a host and a port"),
        ("https://p:0", "needs a host and a port"),
        ("p:99999", "needs a host and a port"),
        ("https://user:pw@p:3128", "needs a host and a port"),
        ("", "needs a host and a port"),
    ],
)
def test_pac_entries_refused(given, why):
    with pytest.raises(ValueError, match=re.escape(why)) as e:
        pac.pac_entry(given)
    assert "pw" not in str(e.value)


def test_an_https_proxy_in_the_pac_file(policy):
    script = pac.render(policy, ["https://proxy.corp.example:3129", "10.0.0.5:3128"])
    assert evaluate(script, ["https://chatgpt.com/", "http://intranet/"]) == [
        "HTTPS proxy.corp.example:3129; PROXY 10.0.0.5:3128",
        "DIRECT",
    ]


def test_only_standard_functions_and_no_dns(policy):
    script = pac.render(policy, ["p:3128"])
    for forbidden in ("dnsResolve", "myIpAddress", "isResolvable", "alert("):
        assert forbidden not in script
    # isInNet is only ever applied to IP literals, so it never resolves a name
    assert script.count("isInNet(") == 5
    assert "if (/^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$/.test(host))" in script


def test_a_large_catalog_stays_a_table_lookup(policy):
    script = pac.render(policy, ["p:3128"])
    assert len(re.findall(r"shExpMatch\(", script)) == 1  # one loop over the few globs
    exact = re.search(r"var AI_EXACT = (\{.*\});", script).group(1)
    assert '"chatgpt.com":1' in exact


# -- served by the proxy, followed by a browser ------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("pacrun")
    ca.init(work / "ca")
    policy = write_policy(
        work / "policy",
        """
        network: {clients: [127.0.0.0/8], deny_destinations: [169.254.0.0/16, 127.0.0.3/32]}
        rules:
          - id: block-ai
            match: {categories: [chat, api]}
            action: block
    """,
        SHIPPED_CATALOG,
    )
    # the proxy refuses this upstream's address: only a DIRECT fetch can reach it
    upstream = Upstream(host="127.0.0.3")
    proxy = Proxy(policy, work / "ca")
    yield proxy, upstream, work
    proxy.stop()
    upstream.close()


def test_admin_serves_the_pac_file(served):
    proxy, _, _ = served
    for path in ("/proxy.pac", "/wpad.dat"):
        r = httpx.get(f"http://{proxy.admin}{path}")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-ns-proxy-autoconfig"
        assert evaluate(r.text, ["https://claude.ai/", "http://10.1.1.1/"]) == [
            f"PROXY {proxy.address}",
            "DIRECT",
        ]


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (.ci/run installs Debian's chromium package)",
)
def test_chromium_following_the_pac_file(served, tmp_path):
    proxy, upstream, work = served
    pin = spki_pin(work / "ca" / "ca.pem")

    def dom(url: str) -> str:
        return chromium_dom(
            url,
            tmp_path / "profile",
            f"--proxy-pac-url=http://{proxy.admin}/proxy.pac",
            f"--ignore-certificate-errors-spki-list={pin}",
        ).stdout

    assert "ChatGPT is blocked by company policy" in dom("https://chatgpt.com/")
    assert "hello from upstream" in dom(f"http://127.0.0.3:{upstream.port}/")  # DIRECT
