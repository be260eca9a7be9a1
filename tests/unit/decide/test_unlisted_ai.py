"""Unlisted AI endpoints: a request to a host the catalog does not know whose body has the
shape of an LLM API call (OpenAI, Anthropic, Gemini, Ollama styles) is counted, logged and
blocked or monitored as `unlisted_ai` says.

The false positives come first: ordinary JSON with `messages`, `input`, `model` or
`contents` fields must never be taken for a prompt."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest
from conftest import SHIPPED_CATALOG
from hookharness import Hooks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy.test import tflow
from prometheus_client import generate_latest
from proxyharness import (
    Proxy,
    Upstream,
    by_label,
    curl,
    make_upstream_pki,
    metrics,
    mitmdump_proxy,
    value,
    write_policy,
)

from proxy import ca
from proxy.decide import llm_shape
from proxy.decide.engine import Engine
from proxy.decide.llm_shape import inspect_body, llm_style, might_be_llm
from proxy.mitm.state import decision_of, state_of
from proxy.observe import report
from proxy.policy.loader import load_policy
from proxy.policy.model import UnlistedAI
from proxy.policy.yamlsource import PolicyError

# -- what is not an LLM API call -------------------------------------------------------------

NOT_LLM = {
    "github issue": {"title": "Crash on start", "body": "see log", "labels": ["bug"]},
    "github graphql": {
        "query": "mutation($input: AddCommentInput!) { addComment(input: $input) { id } }",
        "variables": {"input": {"subjectId": "I_1", "body": "LGTM"}},
    },
    "github workflow dispatch": {"ref": "main", "inputs": {"model": "gpt-4o", "prompt": "x"}},
    "slack postMessage": {"channel": "C024BE91L", "text": "Hello", "blocks": []},
    "slack-like messages of strings": {"channel": "C1", "messages": ["hi", "there"]},
    "chat app's own messages": {
        "conversation_id": "c1",
        "messages": [{"user": "U1", "text": "hi", "ts": "1712.1"}],
    },
    "messages without a model": {"messages": [{"role": "user", "content": "hi"}]},
    "webhook carrying a chat": {
        "event": "message.created",
        "messages": [{"role": "user", "content": "hi"}],
    },
    "car form: model and messages of strings": {"model": "Civic", "messages": ["call me"]},
    "unknown role": {"model": "bot-1", "messages": [{"role": "admin", "content": "hi"}]},
    "content that is a mapping": {
        "model": "bot-1",
        "messages": [{"role": "user", "content": {"text": "hi"}}],
    },
    "message without content": {"model": "bot-1", "messages": [{"role": "user"}]},
    "empty messages": {"model": "gpt-4o", "messages": []},
    "model with spaces": {"model": "Honda Civic", "messages": [{"role": "user", "content": "x"}]},
    "model not a string": {"model": 3, "messages": [{"role": "user", "content": "hi"}]},
    "model and input among form fields": {"model": "x1", "input": "hello", "color": "red"},
    "input without a model": {"input": "hello"},
    "input that is a mapping": {"model": "gpt-4o", "input": {"text": "hi"}},
    "model and prompt among form fields": {
        "model": "survey-2",
        "prompt": "Enter your name",
        "required": True,
    },
    "empty prompt": {"model": "llama3", "prompt": ""},
    "prompt that is a number": {"model": "llama3", "prompt": 5},
    "json-rpc wrapping a chat": {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "chat.send",
        "params": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    },
    "mcp tools/call": {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "search", "arguments": {"input": "x", "model": "y"}},
    },
    "gemini-like contents of strings": {"contents": ["hi"]},
    "contents whose parts are strings": {"contents": [{"parts": ["hi"]}]},
    "contents whose parts are not parts": {"contents": [{"parts": [{"title": "x"}]}]},
    "contents of mappings without parts": {"contents": [{"text": "hi"}]},
    "empty contents": {"contents": []},
    "cms page contents": {"title": "Home", "contents": [{"type": "hero", "parts": []}]},
    "image generation": {"model": "dall-e-3", "prompt": "a cat", "size": "1024x1024"},
    "a rich-text editor's content": {"content": {"parts": [{"text": "Welcome"}]}},
}


@pytest.mark.parametrize("body", NOT_LLM.values(), ids=NOT_LLM.keys())
def test_ordinary_json_is_not_an_llm_call(body):
    assert llm_style(json.dumps(body).encode()) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"model=gpt-4o&messages=hi",
        b'[{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}]',
        b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]',  # cut short
        b'{"model": "gpt-4o", "messages": [truncated',
        b"\x00\x01\x02binary",
        b'"model"',
        b"null",
        b'{"model":' * 100_000,
        b'{"model": "gpt-4o", "n": ' + b"9" * 10_000 + b"}",
        b'{"model": "\xff\xfe", "messages": []}',
    ],
    ids=[
        "empty", "blank", "form", "array", "cut short", "broken", "binary", "string", "null",
        "deep", "huge number", "not utf-8",
    ],
)  # fmt: skip
def test_bodies_that_are_not_json_objects_are_not_llm_calls(raw):
    assert llm_style(raw) is None


def test_the_byte_precheck_lets_only_json_objects_naming_the_keys_through():
    assert might_be_llm(b' {"model": "x"}') and might_be_llm(b'{"contents": []}')
    assert might_be_llm(b'{"m\\u006fdel": 1}')  # escaped keys are parsed to be sure
    assert not might_be_llm(b'{"title": "a model", "body": "its contents"}')
    assert not might_be_llm(b'["model"]') and not might_be_llm(b"model=x")


# -- what is ------------------------------------------------------------------------------------

USER = {"role": "user", "content": "Summarise the attached contract."}

LLM = {
    "openai chat": (
        {"model": "gpt-4o", "messages": [{"role": "system", "content": "be brief"}, USER]},
        "openai-chat",
    ),
    "openai chat with parts, tools and a tool reply": (
        {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                    ],
                },
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
            "temperature": 0.2,
            "stream": True,
        },
        "openai-chat",
    ),
    "openai chat with max_tokens and a system message": (
        {"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]},
        "openai-chat",
    ),
    "openai completions": (
        {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"},
        "openai-completions",
    ),
    "openai completions, token arrays": (
        {"model": "davinci-002", "prompt": [[1, 2, 3]], "max_tokens": 5},
        "openai-completions",
    ),
    "openai responses, a string": (
        {"model": "gpt-4.1", "input": "Tell me a joke"},
        "openai-responses",
    ),
    "openai responses, items": (
        {
            "model": "o3",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
            ],
            "an_extension": {"anything": True},
        },
        "openai-responses",
    ),
    "openai embeddings": (
        {"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float"},
        "openai-embeddings",
    ),
    "anthropic messages": (
        {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [USER]},
        "anthropic-messages",
    ),
    "anthropic messages with system and blocks": (
        {
            "model": "claude-opus-4-1",
            "max_tokens": 512,
            "system": [{"type": "text", "text": "be brief"}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "data": "AA"}},
                        {"type": "text", "text": "what is this?"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "input": {}}]},
            ],
        },
        "anthropic-messages",
    ),
    "anthropic on vertex or bedrock (model in the path)": (
        {"anthropic_version": "vertex-2023-10-16", "max_tokens": 64, "messages": [USER]},
        "anthropic-messages",
    ),
    "gemini": (
        {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"temperature": 0.1},
        },
        "gemini",
    ),
    "gemini, snake_case with inline data and a system instruction": (
        {
            "system_instruction": {"parts": [{"text": "be brief"}]},
            "contents": [
                {"parts": [{"inline_data": {"mime_type": "image/png", "data": "AA"}}]},
                {"role": "model", "parts": [{"text": "a cat"}]},
                {"role": "user", "parts": [{"text": "and this?"}]},
            ],
        },
        "gemini",
    ),
    "gemini embedContent": (
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "hi"}]}},
        "gemini",
    ),
    "ollama generate": (
        {
            "model": "llama3.2:latest",
            "prompt": "why is the sky blue?",
            "stream": False,
            "options": {"temperature": 0},
        },
        "ollama",
    ),
    "ollama chat": (
        {"model": "qwen2.5:7b", "messages": [USER], "keep_alive": "5m"},
        "ollama",
    ),
}


@pytest.mark.parametrize("body, style", LLM.values(), ids=LLM.keys())
def test_llm_calls_are_recognised_with_their_style(body, style):
    assert llm_style(json.dumps(body).encode()) == style


@pytest.mark.parametrize(
    "path, style",
    [
        ("/v1/chat/completions", "openai-chat"),
        ("/v1/messages", "anthropic-messages"),
        ("/api/chat", "ollama"),
        ("/anything", "anthropic-messages"),  # max_tokens is required by Anthropic only
    ],
)
def test_the_path_breaks_ties_between_styles_only(path, style):
    body = json.dumps({"model": "m-1", "max_tokens": 5, "messages": [USER]}).encode()
    assert llm_style(body, path) == style
    assert llm_style(b'{"model": "x", "messages": ["hi"]}', path) is None


def test_escaped_keys_and_whitespace_do_not_hide_a_call():
    body = b'\xef\xbb\xbf \n {"\\u006dodel": "gpt-4o", "messages": [{"role": "user",'
    body += b' "content": "x"}]}'
    assert llm_style(body) == "openai-chat"


KEYS = st.sampled_from([
    "model", "messages", "prompt", "input", "contents", "content", "max_tokens", "system",
    "role", "parts", "text", "anthropic_version", "type", "options",
]) | st.text(max_size=8)  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["user", "assistant", "gpt-4o", "text"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)  # fmt: skip
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.dictionaries(KEYS, JSON, max_size=6), st.sampled_from(["", "/v1/messages", "/api/chat"]))
def test_any_json_object_gets_a_style_or_none_never_an_error(doc, path):
    assert llm_style(json.dumps(doc).encode(), path) in (None, *llm_shape.STYLES)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["", "gzip", "deflate", "br", "gzip, deflate"]))
def test_any_bytes_in_any_encoding_get_an_answer_never_an_error(raw, encoding):
    style, why = inspect_body(raw, encoding, 200)
    assert style is None or why is None


# -- bodies as they come: bounded, compressed ---------------------------------------------------

CHAT = json.dumps({"model": "gpt-4o", "messages": [USER]}).encode()


def deflate(data: bytes, wbits: int) -> bytes:
    c = zlib.compressobj(wbits=wbits)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    "raw, encoding",
    [
        (CHAT, ""),
        (CHAT, "identity"),
        (gzip.compress(CHAT, mtime=0), "gzip"),
        (gzip.compress(CHAT, mtime=0), "x-gzip"),
        (deflate(CHAT, 15), "deflate"),  # zlib-wrapped, as the RFC says
        (deflate(CHAT, -15), "deflate"),  # raw, as some clients send it
        (gzip.compress(deflate(CHAT, 15), mtime=0), "deflate, gzip"),
    ],
)
def test_compressed_bodies_are_decoded_within_the_bound(raw, encoding):
    assert inspect_body(raw, encoding, 4096) == ("openai-chat", None)


def test_a_decompression_bomb_is_not_decoded_past_the_bound():
    bomb = gzip.compress(b'{"model": "gpt-4o", "x": "' + b"a" * 50_000_000 + b'"}')
    assert len(bomb) < 100_000
    assert inspect_body(bomb, "gzip", 1_000_000) == (None, "too_large")


@pytest.mark.parametrize(
    "raw, encoding, reason",
    [
        (CHAT, "br", "encoding"),
        (CHAT, "zstd", "encoding"),
        (b"not gzip at all", "gzip", "encoding"),
        (gzip.compress(CHAT, mtime=0)[:-12], "gzip", "encoding"),  # cut short
        (CHAT + b" " * 5000, "", "too_large"),
    ],
)
def test_what_cannot_be_checked_says_why(raw, encoding, reason):
    assert inspect_body(raw, encoding, 4096) == (None, reason)


def test_ordinary_bodies_are_checked_and_not_llm():
    assert inspect_body(b'{"title": "x"}', "", 4096) == (None, None)
    assert inspect_body(b"\x89PNG....", "", 4096) == (None, None)


# -- the policy ------------------------------------------------------------------------------


def policy_errors(write_policy, section: str) -> list[str]:
    path = write_policy(f"version: 1\n{section}rules: []\n")
    with pytest.raises(PolicyError) as e:
        load_policy(path.parent)
    return [f"{p.line}: {p.message}" for p in e.value.problems]


@pytest.mark.parametrize(
    "section, line, fragment",
    [
        (
            "unlisted_ai: {action: blok}\n",
            3,
            "unlisted_ai: 'action' must be one of block, monitor, off, not 'blok' "
            "(did you mean 'block'?)",
        ),
        (
            "unlisted_ai:\n  acton: block\n",
            4,
            "unlisted_ai: unknown key 'acton' (did you mean 'action'?)",
        ),
        ("unlisted_ai: {max_body_bytes: 0}\n", 3, "'max_body_bytes' must be at least 1"),
        ("unlisted_ai: {max_body_bytes: 1MB}\n", 3, "'max_body_bytes' must be a whole number"),
        ("unlisted_ai: {message: [a]}\n", 3, "'message' must be a string"),
        (
            "unlisted_ai:\n  action: monitor\n  unchecked: block\n",
            5,
            "'unchecked: block' blocks bodies the check cannot read",
        ),
        ("unlisted_ai: {unchecked: drop}\n", 3, "'unchecked' must be one of pass, block"),
        ("unlisted_ai: block\n", 3, "'unlisted_ai' must be a mapping, not a string"),
        ("unlisted_ai:\n", 3, "'unlisted_ai' is empty; give at least 'action'"),
        ("unlisted_al: {action: block}\n", 3, "unknown key 'unlisted_al' (did you mean"),
    ],
)
def test_policy_errors_name_file_and_line(write_policy, section, line, fragment):
    errors = policy_errors(write_policy, section)
    assert any(e.startswith(f"{line}: ") and fragment in e for e in errors), errors


def test_the_rule_id_unlisted_ai_is_reserved(write_policy):
    path = write_policy(
        "version: 1\nrules:\n  - id: unlisted_ai\n    match: {hosts: [x.example]}\n"
        "    action: allow\n"
    )
    with pytest.raises(PolicyError, match=r"policy\.yaml:4: rule 'unlisted_ai': the id"):
        load_policy(path.parent)


def test_absent_it_blocks_and_the_shipped_policy_says_so(write_policy, shipped_policy):
    policy = load_policy(write_policy("version: 1\nrules: []\n").parent)
    assert policy.unlisted_ai == UnlistedAI()
    assert policy.unlisted_ai.action == "block" and policy.unlisted_ai.unchecked == "pass"
    assert policy.unlisted_ai.max_body_bytes == 4 * 1024 * 1024
    assert shipped_policy.unlisted_ai.action == "block"
    assert "\nunlisted_ai:\n  action: block" in shipped_policy.files[0].read_text()


def test_every_key_is_read(write_policy):
    policy = load_policy(
        write_policy(
            "version: 1\nunlisted_ai: {action: block, message: Nope., max_body_bytes: 10, "
            "unchecked: block}\nrules: []\n"
        ).parent
    )
    assert policy.unlisted_ai == UnlistedAI("block", "Nope.", 10, "block")


# -- the decision: one place, the engine -------------------------------------------------------

RULES = """
network: {clients: [127.0.0.0/8], deny_destinations: [169.254.0.0/16]}
defaults: {action: %s, contact: "mailto:sec@corp.example"}
services:
  - {id: gateway, name: Corp gateway, vendor: Corp, category: api,
     hosts: [gateway.corp.example], api_format: openai, source: test}
%s
rules:
  - id: allowed-by-host
    match: {hosts: [llm.corp.example]}
    action: allow
  - id: watched-by-host
    match: {hosts: ["*.watched.example"]}
    action: monitor
  - id: no-admin-pages
    match: {hosts: [shared.example], paths: [/admin/**]}
    action: block
  - id: block-chat
    match: {categories: [chat]}
    action: block
"""


def engine(write_policy, unlisted: str = "", default: str = "allow") -> Engine:
    policy = load_policy(write_policy(f"version: 1\n{RULES % (default, unlisted)}").parent)
    return Engine(policy)


@pytest.mark.parametrize(
    "host, path, checked",
    [
        ("relay.example.net", "/v1/chat/completions", True),  # nothing names it
        ("shared.example", "/v1/chat/completions", True),  # a host rule, on other paths
        ("shared.example", "/admin/x", False),  # blocked already
        ("llm.corp.example", "/v1/chat/completions", False),  # allowed by a rule naming it
        ("a.watched.example", "/v1/chat/completions", True),  # monitored: looked inside
        ("gateway.corp.example", "/v1/chat/completions", False),  # catalogued
        ("chatgpt.com", "/backend-api/conversation", False),  # catalogued, blocked
    ],
)
def test_which_requests_have_their_body_checked(write_policy, host, path, checked):
    e = engine(write_policy)
    assert e.checks_body(e.decide_request("POST", host, path)) is checked


def test_the_unlisted_decision(write_policy):
    e = engine(write_policy, "unlisted_ai: {action: block, message: Not approved.}")
    before = e.decide_request("POST", "relay.example.net", "/v1/chat/completions")
    d = e.decide_unlisted(before, "openai-chat")
    assert (d.action, d.rule, d.service, d.category, d.style) == (
        "block", "unlisted_ai", None, "unlisted-ai", "openai-chat",
    )  # fmt: skip
    assert d.reason.startswith("unlisted AI endpoint: OpenAI-style chat completion to a host")
    assert (d.message, d.contact, d.activity) == (
        "Not approved.",
        "mailto:sec@corp.example",
        "prompt",
    )
    assert e.decide_unlisted(before, None) is None  # not a call: nothing changes
    assert e.decide_unlisted(before, None, "too_large") is None  # unchecked: pass


def test_monitor_off_and_unchecked(write_policy):
    before = engine(write_policy).decide_request("POST", "relay.example.net", "/")
    monitor = engine(write_policy, "unlisted_ai: {action: monitor}")
    d = monitor.decide_unlisted(before, "gemini")
    assert (d.action, d.message) == ("monitor", None)
    for off in ("off", '"off"'):  # unquoted, YAML 1.1 reads it as false
        e = engine(write_policy, f"unlisted_ai: {{action: {off}}}")
        assert e.policy.unlisted_ai.action == "off"
        assert not e.checks_body(before) and e.decide_unlisted(before, "gemini") is None
    strict = engine(write_policy, "unlisted_ai: {action: block, unchecked: block}")
    d = strict.decide_unlisted(before, None, "encoding")
    assert (d.action, d.rule, d.style, d.category) == ("block", "unlisted_ai", None, None)
    assert "could not be checked (encoding)" in d.reason


def test_under_a_monitoring_default_the_body_still_decides(write_policy):
    e = engine(write_policy, default="monitor")
    before = e.decide_request("POST", "relay.example.net", "/v1/messages")
    assert before.action == "monitor" and e.checks_body(before)
    assert e.decide_unlisted(before, "anthropic-messages").action == "block"


def test_explain_shows_what_the_body_check_makes_of_a_body(tmp_path):
    body = tmp_path / "chat.json"
    body.write_bytes(CHAT)
    aiwarden = [str(Path(sys.executable).parent / "aiwarden"), "explain", "--policy",
                str(SHIPPED_CATALOG.parent), "--method", "POST"]  # fmt: skip
    urls = ["http://llm.example.net/v1/chat", "https://llm.example.net/v1/chat"]
    r = subprocess.run([*aiwarden, "--body", str(body), *urls], capture_output=True, text=True)
    plain, tunnelled = r.stdout.split("\n\n")[:2]
    assert "  rule:     unlisted_ai" in plain and "  action:   block" in plain
    assert "  body:     OpenAI-style chat completion (unlisted_ai: block)" in plain
    assert "  body:     not seen: the connection is tunnelled undecrypted" in tunnelled
    r = subprocess.run([*aiwarden, "--json", "--body", "-", "http://llm.example.net/x"],
                       input=b'{"title": "x"}', capture_output=True)  # fmt: skip
    record = json.loads(r.stdout)
    assert (record["action"], record["body"]) == ("allow", "not an LLM API call")


# -- the addon's hooks, in mitmproxy's own test context ------------------------------------------


@pytest.fixture
def warden(tmp_path):
    def make(unlisted: str = "", default: str = "allow"):
        directory = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        policy = write_policy(directory, RULES % (default, unlisted), SHIPPED_CATALOG)
        return Hooks(policy)

    return make


def posted(host: str, body: bytes, path: str = "/v1/chat/completions", **headers: str):
    f = tflow.tflow()
    f.request.method, f.request.host, f.request.port, f.request.path = "POST", host, 443, path
    f.request.headers["host"] = host
    f.request.headers["content-type"] = "application/json"
    f.request.content = body  # sets Content-Length
    for name, text in headers.items():
        f.request.headers[name.replace("_", "-")] = text
    f.client_conn.peername, f.client_conn.sni = ("127.0.0.1", 50000), host
    return f


def sample(addon: Hooks, name: str, **labels: str) -> float:
    return addon.metrics.registry.get_sample_value(name, labels) or 0.0


BODIES = {  # style: (path, body, error format)
    "openai-chat": ("/v1/chat/completions", CHAT, "openai"),
    "anthropic-messages": (
        "/v1/messages",
        json.dumps({"model": "claude-x", "max_tokens": 8, "messages": [USER]}).encode(),
        "anthropic",
    ),
    "gemini": (
        "/v1beta/models/g:generateContent",
        json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode(),
        "gemini",
    ),
    "ollama": (
        "/api/generate",
        json.dumps({"model": "llama3", "prompt": "hi", "stream": False}).encode(),
        "ollama",
    ),
}


def error_format(response) -> str:
    body = json.loads(response.content)
    if body.get("type") == "error":
        return "anthropic"
    if isinstance(body["error"], str):
        return "ollama"
    return "gemini" if "status" in body["error"] else "openai"


@pytest.mark.parametrize("style", BODIES)
def test_an_llm_call_to_an_unknown_host_is_blocked_in_its_own_format(warden, style):
    addon = warden()
    path, body, fmt = BODIES[style]
    f = posted("relay.example.net", body, path)
    assert addon.requestheaders(f) is None
    assert f.response is None and not f.request.stream  # waits for the body
    assert addon.request(f) is None
    assert f.response.status_code == 403
    assert f.response.headers["X-AIWarden-Rule"] == "unlisted_ai"
    assert error_format(f.response) == fmt
    decision = decision_of(f)
    assert (decision.rule, decision.style, decision.category) == (
        "unlisted_ai", style, "unlisted-ai",
    )  # fmt: skip
    assert sample(addon, "aiwarden_unlisted_ai_requests_total", style=style, action="block") == 1
    assert sample(addon, "aiwarden_blocked_total", service="none", rule="unlisted_ai") == 1
    labels = {"action": "block", "service": "none", "category": "unlisted-ai", "stage": "request"}
    assert sample(addon, "aiwarden_requests_total", **labels) == 1
    assert sample(addon, "aiwarden_requests_total", action="allow", service="none",
                  category="none", stage="request") == 0  # fmt: skip


def test_ordinary_json_passes_and_is_counted_once(warden):
    addon = warden()
    f = posted("relay.example.net", json.dumps(NOT_LLM["github issue"]).encode())
    addon.requestheaders(f)
    addon.request(f)
    assert f.response is None and decision_of(f).rule == "default"
    labels = {"action": "allow", "service": "none", "category": "none", "stage": "request"}
    assert sample(addon, "aiwarden_requests_total", **labels) == 1


@pytest.mark.parametrize(
    "host, rule", [("llm.corp.example", "allowed-by-host"), ("gateway.corp.example", "default")]
)
def test_a_host_allow_rule_or_a_catalogued_service_wins_over_the_body(warden, host, rule):
    addon = warden()
    f = posted(host, CHAT)
    addon.requestheaders(f)
    assert f.request.stream is True and state_of(f).body_check is None
    addon.request(f)
    assert f.response is None and decision_of(f).rule == rule


def test_a_rule_monitoring_hosts_looks_inside_them_without_approving(warden, caplog):
    addon = warden()
    f = posted("x.watched.example", CHAT)
    with caplog.at_level("INFO", logger="aiwarden"):
        addon.requestheaders(f)
        addon.request(f)
    assert f.response.status_code == 403 and decision_of(f).rule == "unlisted_ai"
    assert not [r for r in caplog.records if getattr(r, "event", None) == "monitor"]


def test_monitor_lets_it_through_recorded_once(warden, caplog):
    addon = warden("unlisted_ai: {action: monitor}", default="monitor")
    f = posted("relay.example.net", CHAT)
    with caplog.at_level("INFO", logger="aiwarden"):
        addon.requestheaders(f)
        addon.request(f)
    assert f.response is None
    events = [r for r in caplog.records if getattr(r, "event", None) == "monitor"]
    assert [e.fields["rule"] for e in events] == ["unlisted_ai"]
    assert events[0].fields["style"] == "openai-chat"
    assert sample(addon, "aiwarden_unlisted_ai_requests_total", style="openai-chat",
                  action="monitor") == 1  # fmt: skip


def test_off_checks_nothing(warden):
    addon = warden("unlisted_ai: {action: off}")
    f = posted("relay.example.net", CHAT)
    addon.requestheaders(f)
    assert f.request.stream is True
    addon.request(f)
    assert f.response is None
    text = generate_latest(addon.metrics.registry).decode()
    assert "aiwarden_unlisted_ai_requests_total{" not in text


def test_a_gzip_body_is_decoded_and_blocked(warden):
    addon = warden()
    f = posted("relay.example.net", gzip.compress(CHAT), content_encoding="gzip")
    addon.requestheaders(f)
    addon.request(f)
    assert f.response.status_code == 403


@pytest.mark.parametrize(
    "unchecked, status",
    [
        ("unlisted_ai: {max_body_bytes: 100}", None),
        ("unlisted_ai: {max_body_bytes: 100, unchecked: block}", 403),
    ],
)
def test_a_body_over_the_bound_is_not_read_and_passes_or_is_blocked(warden, unchecked, status):
    addon = warden(unchecked)
    f = posted("relay.example.net", CHAT + b" " * 200)
    addon.requestheaders(f)  # Content-Length says it all
    assert state_of(f).body_check is None
    assert (f.response.status_code if f.response else None) == status
    assert sample(addon, "aiwarden_unlisted_ai_unchecked_total", reason="too_large") == 1


def test_a_body_without_a_length_is_blocked_unread_with_unchecked_block(warden, caplog):
    addon = warden("unlisted_ai: {unchecked: block}")
    f = posted("relay.example.net", CHAT)
    del f.request.headers["content-length"]
    f.request.headers["transfer-encoding"] = "chunked"
    f.request.data.content = None  # as at requestheaders: the body is not read yet
    with caplog.at_level("INFO", logger="aiwarden"):
        addon.requestheaders(f)
    assert f.request.host == "aiwarden-blocked.invalid"  # answered before its body
    assert decision_of(f).rule == "unlisted_ai"
    (event,) = [r for r in caplog.records if getattr(r, "event", None) == "block"]
    assert "could not be checked (no_length)" in event.fields["note"]


def test_a_body_without_a_length_is_not_buffered(warden):
    addon = warden()
    f = posted("relay.example.net", CHAT)
    del f.request.headers["content-length"]
    f.request.headers["transfer-encoding"] = "chunked"
    addon.requestheaders(f)
    assert f.request.stream is True and f.response is None
    assert sample(addon, "aiwarden_unlisted_ai_unchecked_total", reason="no_length") == 1


def test_a_decompression_bomb_stops_at_the_bound(warden):
    addon = warden("unlisted_ai: {max_body_bytes: 100000}")
    f = posted("relay.example.net", gzip.compress(b"{" + b" " * 10_000_000 + b"}"),
               content_encoding="gzip")  # fmt: skip
    addon.requestheaders(f)
    addon.request(f)
    assert f.response is None
    assert sample(addon, "aiwarden_unlisted_ai_unchecked_total", reason="too_large") == 1


def test_a_large_body_is_checked_off_the_event_loop(warden):
    addon = warden()
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 200_000}]})
    f = posted("relay.example.net", body.encode())
    addon.requestheaders(f)
    pending = addon.request(f)
    assert pending is not None and f.response is None
    asyncio.run(pending)
    assert f.response.status_code == 403


def test_an_exception_in_the_check_falls_to_on_error(warden, monkeypatch):
    addon = warden()

    def explode(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(llm_shape, "inspect_body", explode)
    f = posted("relay.example.net", CHAT)
    addon.requestheaders(f)
    addon.request(f)
    assert f.response.status_code == 403 and decision_of(f).rule == "default"
    assert (
        sample(addon, "aiwarden_decision_errors_total", stage="request", kind="RuntimeError") == 1
    )


# -- end to end: the real proxy, the official SDKs, a local upstream under an unknown name -------

E2E_POLICY = """
network:
  clients: [127.0.0.0/8, "::1/128"]
  deny_destinations: [169.254.0.0/16]
defaults: {contact: "mailto:security@corp.example"}
%s
rules:
  # a rule on some paths of localhost makes the proxy intercept it; other paths fall to
  # the default, so no rule naming the host decides them
  - id: no-admin-pages
    match: {hosts: [localhost], paths: [/admin/**]}
    action: block
  - id: block-chat
    match: {categories: [chat]}
    action: block
"""
UNLISTED_MESSAGE = "Unapproved AI endpoint."
SECRET_PROMPT = "the merger with Initech closes on Friday"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca.init(directory / "ca")
    upstream_ca, cert, key = make_upstream_pki(directory)
    return {"ca": directory / "ca", "cafile": directory / "ca" / "ca.pem",
            "upstream_ca": upstream_ca, "cert": cert, "key": key}  # fmt: skip


@pytest.fixture(scope="module")
def upstreams(pki):
    plain, tls = Upstream(host="127.0.0.2"), Upstream(tls=(pki["cert"], pki["key"]))
    yield {"http": plain, "https": tls}
    plain.close()
    tls.close()


def start_proxy(pki, directory, section: str) -> Proxy:
    policy = write_policy(directory, E2E_POLICY % section, SHIPPED_CATALOG)
    return Proxy(policy, pki["ca"], "--upstream-ca", str(pki["upstream_ca"]),
                 "--audit-log", str(directory / "audit.jsonl"))  # fmt: skip


@pytest.fixture(scope="module")
def blocking(pki, tmp_path_factory):
    p = start_proxy(pki, tmp_path_factory.mktemp("blocking"),
                    f'unlisted_ai: {{action: block, message: "{UNLISTED_MESSAGE}"}}')  # fmt: skip
    yield p
    assert p.stop() == 0


def base_url(upstreams, scheme: str) -> str:
    server = upstreams[scheme]
    host = "127.0.0.2" if scheme == "http" else "localhost"
    return f"{scheme}://{host}:{server.port}"


@pytest.fixture
def through(pki, monkeypatch):
    """SDKs in this test talk through `proxy`, trusting its CA."""

    def use(proxy: Proxy | None) -> None:
        """None: straight to the network again (the admin listener is never proxied)."""
        for name in ("NO_PROXY", "ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)
        if proxy is not None:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            monkeypatch.setenv("SSL_CERT_FILE", str(pki["cafile"]))

    return use


def audit_lines(proxy: Proxy) -> list[dict]:
    path = Path(proxy.process.args[proxy.process.args.index("--audit-log") + 1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            break
        time.sleep(0.05)
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_openai_sdk_call_to_an_unknown_host_is_blocked_before_the_upstream(
    blocking, upstreams, through, pki, scheme
):
    import openai

    through(blocking)
    upstream = upstreams[scheme]
    before = len(upstream.requests)
    client = openai.OpenAI(api_key="sk-test", base_url=base_url(upstreams, scheme) + "/v1",
                           max_retries=0)  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": SECRET_PROMPT}]
        )
    assert e.value.status_code == 403
    assert UNLISTED_MESSAGE in e.value.message and "rule 'unlisted_ai'" in e.value.message
    assert len(upstream.requests) == before, "nothing may reach the upstream"
    reference = e.value.response.headers["x-aiwarden-reference"]
    record = blocking.wait_for(lambda r: r.get("reference") == reference)
    assert record["event"] == "block" and record["rule"] == "unlisted_ai"
    assert record["style"] == "openai-chat" and record["category"] == "unlisted-ai"
    assert record["host"].startswith(("127.0.0.2", "localhost"))  # as the client named it
    assert record["path"] == "/v1/chat/completions"
    assert SECRET_PROMPT not in json.dumps(blocking.drain())

    # the control: an ordinary JSON POST to the same host reaches it
    trust = ssl.create_default_context(cafile=str(pki["cafile"]))
    r = httpx.post(base_url(upstreams, scheme) + "/v1/issues", json=NOT_LLM["github issue"],
                   proxy=blocking.url, verify=trust, timeout=30)  # fmt: skip
    assert r.status_code == 200 and len(upstream.requests) == before + 1


def test_anthropic_sdk_gets_its_own_permission_error(blocking, upstreams, through):
    import anthropic

    through(blocking)
    upstream = upstreams["https"]
    before = len(upstream.requests)
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=base_url(upstreams, "https"),
                                 max_retries=0)  # fmt: skip
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=64,
            system="be brief",
            messages=[{"role": "user", "content": SECRET_PROMPT}],
        )
    assert e.value.body["error"]["type"] == "permission_error"
    assert UNLISTED_MESSAGE in e.value.body["error"]["message"]
    assert len(upstream.requests) == before


def test_gemini_style_with_curl_and_the_genai_sdk(blocking, upstreams, through, pki):
    from google import genai
    from google.genai import types

    upstream = upstreams["http"]
    before = len(upstream.requests)
    body = {"contents": [{"role": "user", "parts": [{"text": SECRET_PROMPT}]}]}
    url = base_url(upstreams, "http") + "/v1beta/models/gemini-x:generateContent?key=AIzaSECRET"
    r = curl("-i", "--proxy", blocking.url, "-H", "Content-Type: application/json",
             "-d", json.dumps(body), url)  # fmt: skip
    head, _, text = r.stdout.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 403"), r.stdout
    assert json.loads(text)["error"]["status"] == "PERMISSION_DENIED"
    assert len(upstream.requests) == before
    logs = json.dumps(blocking.drain())
    assert "AIzaSECRET" not in logs and SECRET_PROMPT not in logs

    through(blocking)
    client = genai.Client(
        api_key="AIza-test", http_options=types.HttpOptions(base_url=base_url(upstreams, "https"))
    )
    with pytest.raises(genai.errors.ClientError) as e:
        client.models.generate_content(model="gemini-2.5-flash", contents=SECRET_PROMPT)
    assert (e.value.code, e.value.status) == (403, "PERMISSION_DENIED")
    assert UNLISTED_MESSAGE in e.value.message


def test_blocks_are_counted_and_audited(blocking, upstreams, through):
    import openai

    through(blocking)
    client = openai.OpenAI(api_key="sk-test", base_url=base_url(upstreams, "http") + "/v1",
                           max_retries=0)  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError):
        client.responses.create(model="gpt-4.1", input=SECRET_PROMPT)
    through(None)
    m = metrics(blocking)
    assert value(m, "aiwarden_unlisted_ai_requests_total", style="openai-responses",
                 action="block") >= 1  # fmt: skip
    assert value(m, "aiwarden_blocked_total", service="none", rule="unlisted_ai") >= 1
    lines = [a for a in audit_lines(blocking) if a["rule"] == "unlisted_ai"]
    assert lines and all(a["category"] == "unlisted-ai" and a["service"] is None for a in lines)
    responses = [a for a in lines if a["style"] == "openai-responses"]
    assert responses and responses[0]["action"] == "block" and responses[0]["id"]
    assert responses[0]["path"] == "/v1/responses" and responses[0]["activity"] == "prompt"
    assert SECRET_PROMPT not in json.dumps(lines)
    # `aiwarden report` names them apart from traffic to no AI service
    top = report.build(map(json.dumps, lines), None)["top_services"]
    assert top[0]["service"] == "(unlisted AI endpoint)"
    assert top[0]["category"] == "unlisted-ai"


@pytest.mark.parametrize("action", ["monitor", "off"])
def test_monitor_and_off_let_the_call_through(pki, upstreams, through, tmp_path, action):
    import openai

    p = start_proxy(pki, tmp_path, f'unlisted_ai: {{action: "{action}"}}')
    try:
        through(p)
        upstream = upstreams["https"]
        client = openai.OpenAI(api_key="sk-test", base_url=base_url(upstreams, "https") + "/v1",
                               max_retries=0)  # fmt: skip
        reply = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": SECRET_PROMPT}]
        )
        assert reply.choices[0].message.content == "The answer is 42."
        assert SECRET_PROMPT in json.loads(upstream.bodies[-1])["messages"][0]["content"]
        through(None)
        counted = by_label(p, "aiwarden_unlisted_ai_requests_total", "action")
        if action == "monitor":
            assert counted == {"monitor": 1.0}
            record = p.wait_for(lambda r: r.get("event") == "monitor")
            assert record["rule"] == "unlisted_ai" and record["style"] == "openai-chat"
            assert [a["action"] for a in audit_lines(p)] == ["monitor"]
        else:
            assert counted == {}
            assert not [r for r in p.drain() if r.get("event") == "monitor"]
    finally:
        assert p.stop() == 0


def test_over_http2_inside_an_intercepted_connection(blocking, upstreams, pki):
    before = len(upstreams["https"].requests)
    body = json.dumps({"model": "llama3.1:8b", "prompt": SECRET_PROMPT, "options": {}})
    r = curl("-s", "--http2", "-w", "\n%{http_version} %{http_code}", "--proxy", blocking.url,
             "--cacert", str(pki["cafile"]), "-H", "Content-Type: application/json",
             "-d", body, base_url(upstreams, "https") + "/api/generate")  # fmt: skip
    text, _, last = r.stdout.rpartition("\n")
    assert last == "2 403", r.stdout + r.stderr
    assert UNLISTED_MESSAGE in json.loads(text)["error"]  # Ollama's own error shape
    assert len(upstreams["https"].requests) == before


def test_the_same_under_mitmdump(pki, upstreams, tmp_path):
    policy = write_policy(tmp_path, E2E_POLICY % "", SHIPPED_CATALOG)
    p = mitmdump_proxy(policy, pki["ca"])
    try:
        before = len(upstreams["http"].requests)
        body = json.dumps({"model": "claude-x", "max_tokens": 9, "messages": [USER]})
        r = curl("-i", "--proxy", p.url, "-H", "anthropic-version: 2023-06-01", "-d", body,
                 base_url(upstreams, "http") + "/v1/messages")  # fmt: skip
        head, _, text = r.stdout.partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 403") and "x-aiwarden-rule: unlisted_ai" in head.lower()
        assert json.loads(text)["error"]["type"] == "permission_error"
        assert len(upstreams["http"].requests) == before
    finally:
        p.stop()
