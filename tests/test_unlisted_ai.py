"""Unlisted AI endpoints: a request to a host the catalog does not know whose body has the
shape of an LLM API call (OpenAI, Anthropic, Gemini, Ollama styles) is counted, logged and
blocked or monitored as `unlisted_ai` says.

The false positives come first: ordinary JSON with `messages`, `input`, `model` or
`contents` fields must never be taken for a prompt."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from proxy.llm_shape import inspect_body, llm_style, might_be_llm

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
    "gemini embedContent": ({"content": {"parts": [{"text": "hi"}]}}, "gemini"),
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
        (gzip.compress(CHAT), "gzip"),
        (gzip.compress(CHAT), "x-gzip"),
        (deflate(CHAT, 15), "deflate"),  # zlib-wrapped, as the RFC says
        (deflate(CHAT, -15), "deflate"),  # raw, as some clients send it
        (gzip.compress(deflate(CHAT, 15)), "deflate, gzip"),
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
        (gzip.compress(CHAT)[:-12], "gzip", "encoding"),  # cut short
        (CHAT + b" " * 5000, "", "too_large"),
    ],
)
def test_what_cannot_be_checked_says_why(raw, encoding, reason):
    assert inspect_body(raw, encoding, 4096) == (None, reason)


def test_ordinary_bodies_are_checked_and_not_llm():
    assert inspect_body(b'{"title": "x"}', "", 4096) == (None, None)
    assert inspect_body(b"\x89PNG....", "", 4096) == (None, None)
