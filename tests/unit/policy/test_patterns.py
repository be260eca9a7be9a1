"""Host and path patterns, and the host index's specificity order."""

import pytest

from proxy.policy.normalize import normalize_path
from proxy.policy.patterns import (
    HostIndex,
    PatternError,
    compile_path_patterns,
    covers,
    parse_host_pattern,
)


@pytest.mark.parametrize(
    "raw, kind, text",
    [
        ("api.openai.com", "exact", "api.openai.com"),
        ("API.OpenAI.com.", "exact", "api.openai.com"),
        ("*.openai.com", "subdomains", "*.openai.com"),
        ("bedrock-runtime.*.amazonaws.com", "glob", "bedrock-runtime.*.amazonaws.com"),
        ("*-aiplatform.googleapis.com", "glob", "*-aiplatform.googleapis.com"),
        ("*.bücher.de", "subdomains", "*.xn--bcher-kva.de"),
        ("10.1.2.3", "exact", "10.1.2.3"),
        ("::1", "exact", "::1"),
    ],
)
def test_host_patterns_parse(raw, kind, text):
    pattern = parse_host_pattern(raw)
    assert (pattern.kind, pattern.text) == (kind, text)


@pytest.mark.parametrize(
    "raw, why",
    [
        ("", "empty"),
        ("*.com", "top-level domain"),
        ("chatgpt.*", "top-level domain"),
        ("https://chatgpt.com", "no scheme"),
        ("chatgpt.com:443", "no scheme, port"),
        ("chatgpt.com/path", "no scheme"),
        ("a..b.com", "not a valid host name"),
        ("*.a..b.com", "not a valid label"),
        ("**.openai.com", "'**'"),
        ("exa mple.com", "not a valid host"),
    ],
)
def test_bad_host_patterns(raw, why):
    with pytest.raises(PatternError) as e:
        parse_host_pattern(raw)
    assert why in str(e.value)


def _index(*patterns):
    index = HostIndex()
    for p in patterns:
        index.add(parse_host_pattern(p), p)
    return index


def test_index_exact_wildcard_and_glob():
    index = _index(
        "api.openai.com",
        "*.openai.com",
        "openai.com",
        "bedrock-runtime.*.amazonaws.com",
        "*-aiplatform.googleapis.com",
    )
    assert index.lookup("api.openai.com") == ["api.openai.com", "*.openai.com"]
    assert index.lookup("openai.com") == ["openai.com"]
    assert index.lookup("a.b.c.openai.com") == ["*.openai.com"]
    assert index.lookup("notopenai.com") == []
    assert index.lookup("openai.com.evil.net") == []
    assert index.lookup("bedrock-runtime.eu-west-1.amazonaws.com") == [
        "bedrock-runtime.*.amazonaws.com"
    ]
    # a label wildcard is one label, never two
    assert index.lookup("bedrock-runtime.a.b.amazonaws.com") == []
    assert index.lookup("s3.eu-west-1.amazonaws.com") == []
    assert index.lookup("europe-west4-aiplatform.googleapis.com") == ["*-aiplatform.googleapis.com"]
    assert index.lookup("storage.googleapis.com") == []
    assert index.lookup("127.0.0.1") == []


def test_index_orders_longer_suffixes_first():
    index = _index("*.example.com", "*.a.example.com", "x.a.example.com")
    assert index.lookup("x.a.example.com") == [
        "x.a.example.com",
        "*.a.example.com",
        "*.example.com",
    ]


@pytest.mark.parametrize(
    "patterns, path, hit",
    [
        (["/v1/chat/completions"], "/v1/chat/completions", True),
        (["/v1/chat/completions"], "/V1/CHAT/COMPLETIONS", True),
        (["/v1/chat/completions"], "/v1/chat/completions/x", False),
        (["/v1/chat/completions/"], "/v1/chat/completions", True),
        (["/v1/threads/*"], "/v1/threads/abc", True),
        (["/v1/threads/*"], "/v1/threads/abc/messages", False),
        (["/v1/threads/**"], "/v1/threads/abc/messages", True),
        (["/v1/threads/**"], "/v1/threads", False),
        (["/**/chat/completions"], "/chat/completions", True),
        (["/**/chat/completions"], "/openai/v1/chat/completions", True),
        (["/**/chat/completions"], "/xchat/completions", False),
        (["/v1beta/models/*:generateContent"], "/v1beta/models/gemini-pro:generateContent", True),
        (["/{v1,v1beta}/models"], "/v1beta/models", True),
        (["/{v1,v1beta}/models"], "/v2/models", False),
        (["/a", "/b/**"], "/b/c", True),
    ],
)
def test_path_patterns(patterns, path, hit):
    assert bool(compile_path_patterns(patterns).fullmatch(normalize_path(path))) is hit


@pytest.mark.parametrize(
    "raw, why",
    [
        ("v1/chat", "starts with '/'"),
        ("/v1/chat?x=1", "query string"),
        ("/v1/%63hat", "percent-encoded"),
        ("/v1/{a,b", "unbalanced"),
        ("/v1/a}", "unbalanced"),
        ("/v1/{a,}", "non-empty"),
        ("/v1/chat completions", "cannot appear"),
    ],
)
def test_bad_path_patterns(raw, why):
    with pytest.raises(PatternError) as e:
        compile_path_patterns([raw])
    assert why in str(e.value)


@pytest.mark.parametrize(
    "outer, inner, covered",
    [
        ("*.oaiusercontent.com", "files.oaiusercontent.com", True),
        ("*.oaiusercontent.com", "*.oaiusercontent.com", True),
        ("*.oaiusercontent.com", "*.eu.oaiusercontent.com", True),
        ("*.oaiusercontent.com", "sdmntpr*.oaiusercontent.com", True),
        ("*.oaiusercontent.com", "oaiusercontent.com", False),  # not below itself
        ("oaiusercontent.com", "*.oaiusercontent.com", False),
        ("files.oaiusercontent.com", "*.oaiusercontent.com", False),
        ("sdmntpr*.oaiusercontent.com", "sdmntprwestus.oaiusercontent.com", True),
        ("sdmntpr*.oaiusercontent.com", "files.oaiusercontent.com", False),
        ("sdmntpr*.oaiusercontent.com", "*.oaiusercontent.com", False),
        ("content-push.googleapis.com", "content-push.googleapis.com", True),
        ("*.googleapis.com", "x.notgoogleapis.com", False),
    ],
)
def test_a_host_pattern_covers_another(outer, inner, covered):
    assert covers(parse_host_pattern(outer), parse_host_pattern(inner)) is covered
