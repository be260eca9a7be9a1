"""Canonical hosts and paths: every spelling of the same place must come out the same."""

import pytest

from proxy.policy.normalize import BadHost, normalize_host, normalize_path, split_url


@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("api.openai.com", "api.openai.com"),
        ("API.OpenAI.COM", "api.openai.com"),
        ("api.openai.com.", "api.openai.com"),
        ("api.openai.com:443", "api.openai.com"),
        ("API.OPENAI.COM.:8443", "api.openai.com"),
        ("ｃｈａｔｇｐｔ.com", "chatgpt.com"),  # fullwidth letters fold under IDNA
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("XN--MNCHEN-3YA.DE", "xn--mnchen-3ya.de"),
        ("[::1]", "::1"),
        ("[::1]:3128", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[::ffff:169.254.169.254]", "169.254.169.254"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("169.254.169.254", "169.254.169.254"),
    ],
)
def test_host_spellings(raw, canonical):
    assert normalize_host(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    ["", ".", "[::1", "exa mple.com", "a..b", "host:port", "-bad-.com", "x" * 64 + ".com", "[zz]"],
)
def test_bad_hosts_are_refused(raw):
    with pytest.raises(BadHost):
        normalize_host(raw)


@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1/%63hat/completions", "/v1/chat/completions"),
        ("/v1/%63%68%61%74/completions", "/v1/chat/completions"),
        ("/v1//chat/completions", "/v1/chat/completions"),
        ("//v1///chat//completions", "/v1/chat/completions"),
        ("/v1/./chat/completions", "/v1/chat/completions"),
        ("/v1/x/../chat/completions", "/v1/chat/completions"),
        ("/v1/%2e%2e/v1/chat/completions", "/v1/chat/completions"),
        ("/../../v1/chat/completions", "/v1/chat/completions"),
        ("/v1/chat/completions/", "/v1/chat/completions"),
        ("/v1/chat/completions?stream=true", "/v1/chat/completions"),
        ("/v1/chat/completions#frag", "/v1/chat/completions"),
        ("/v1/chat;jsessionid=1/completions", "/v1/chat/completions"),
        ("/v1/chat/completions;x", "/v1/chat/completions"),
        ("/v1\\chat\\completions", "/v1/chat/completions"),
        ("/v1/chat%2Fcompletions", "/v1/chat/completions"),
        ("/v1/chat%5ccompletions", "/v1/chat/completions"),
        ("v1/chat/completions", "/v1/chat/completions"),
        ("", "/"),
        ("/", "/"),
        ("/?q=1", "/"),
    ],
)
def test_path_spellings(raw, canonical):
    assert normalize_path(raw) == canonical


def test_path_keeps_case_and_characters_it_does_not_need_to_touch():
    # matching ignores case; the canonical path keeps what the client sent
    assert normalize_path("/v1beta/models/Gemini:generateContent") == (
        "/v1beta/models/Gemini:generateContent"
    )


def test_split_url():
    assert split_url("https://User:pw@API.OpenAI.com:443/v1//chat/completions?x=1") == (
        "https",
        "api.openai.com",
        "/v1/chat/completions",
        443,
    )
    assert split_url("http://example.com") == ("http", "example.com", "/", 80)
    assert split_url("wss://api.openai.com/v1/realtime?model=x")[3] == 443
    with pytest.raises(BadHost):
        split_url("ftp://example.com/")
    with pytest.raises(BadHost):
        split_url("https:///nohost")
