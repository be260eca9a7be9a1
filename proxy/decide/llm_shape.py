"""Recognising an LLM API call by the shape of its request body, whatever host it goes to.

A host the catalog does not know can still be an AI service: a self-hosted model server
(vLLM, Ollama, TGI behind an OpenAI-compatible route), a relay or reseller, a colleague's
gateway. Their clients speak one of a few wire formats, so the body says what the host does
not. `llm_style(body)` names the format, or None:

- `openai-chat`: `model` (a model id) and `messages`, a non-empty list whose every item is
  `{role, content}` with an OpenAI role; content a string, typed parts, or null for an
  assistant's tool calls.
- `anthropic-messages`: `model` (or `anthropic_version`, when the model is in the path),
  `messages` with roles user/assistant only, and a positive whole `max_tokens`; `system` a
  string or text blocks.
- `openai-completions`: `model` and `prompt` (a non-empty string, strings or token ids), with
  nothing beside them but completions parameters.
- `openai-responses`: `model` and `input`, a list of message or typed items, or a string with
  nothing beside it but Responses parameters.
- `openai-embeddings`: `model` and `input` (strings or token ids), only embeddings parameters.
- `gemini`: `contents`, a non-empty list whose every item has `parts`, every part a text,
  inline data, file or function part (camelCase or snake_case); or embedContent's `content`
  with its `model` (or an `:embedContent` path).
- `ollama`: the OpenAI chat or completions shape with an Ollama-only key (`options`,
  `keep_alive`, ...) or an `/api/chat` or `/api/generate` path.

Structure, not keywords: a form with a `messages` list of strings, a chat app's messages
with authors and texts, a JSON-RPC envelope wrapping a chat, a `model` that holds a space,
or an `input` among other form fields are not calls. The weak shapes (a lone `prompt` or
`input` string) must come with nothing but their API's parameters. Only the top level is
looked at, as a server would read it.

Bodies are bounded and decoded here too (`inspect_body`): gzip and deflate within
`limit` bytes of output, so a decompression bomb stops at the bound; anything that cannot
be read within it (too large, another encoding, a corrupt stream) comes back as a reason,
for the policy to pass or block. A body that is not a JSON object is not a call. Nothing in
this module raises on bad input, and nothing here is logged: prompts never leave it.
"""

from __future__ import annotations

import json
import re
import zlib

# style -> (how a person reads it, the error format its SDK understands; see responses.py)
STYLES: dict[str, tuple[str, str]] = {
    "openai-chat": ("OpenAI-style chat completion", "openai"),
    "openai-completions": ("OpenAI-style completion", "openai"),
    "openai-responses": ("OpenAI-style Responses call", "openai"),
    "openai-embeddings": ("OpenAI-style embeddings call", "openai"),
    "anthropic-messages": ("Anthropic-style Messages call", "anthropic"),
    "gemini": ("Gemini-style generateContent call", "gemini"),
    "ollama": ("Ollama-style generate or chat call", "ollama"),
}

# why a body could not be checked
TOO_LARGE, ENCODING = "too_large", "encoding"

_PRECHECK = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*\{")
_NEEDLES = (b'"model"', b'"contents"', b'"content"', b'"anthropic_version"', b"\\u")
_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.:/@+-]{0,255}", re.ASCII)

OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
ANTHROPIC_ROLES = frozenset({"user", "assistant"})
GEMINI_ROLES = frozenset({"user", "model", "function", "tool"})
GEMINI_PART_KEYS = frozenset({
    "text", "inlineData", "inline_data", "fileData", "file_data", "functionCall",
    "function_call", "functionResponse", "function_response", "executableCode",
    "executable_code", "codeExecutionResult", "code_execution_result",
})  # fmt: skip
# keys only one of the two message APIs has: they decide between OpenAI and Anthropic
ANTHROPIC_ONLY_KEYS = frozenset({
    "system", "anthropic_version", "stop_sequences", "top_k", "thinking", "anthropic_beta",
    "container", "mcp_servers", "context_management",
})  # fmt: skip
ANTHROPIC_ONLY_BLOCKS = frozenset({
    "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
    "server_tool_use", "web_search_tool_result", "search_result", "container_upload",
})  # fmt: skip
OPENAI_ONLY_KEYS = frozenset({
    "max_completion_tokens", "n", "response_format", "logprobs", "top_logprobs",
    "frequency_penalty", "presence_penalty", "logit_bias", "seed", "stream_options",
    "modalities", "audio", "prediction", "reasoning_effort", "store", "parallel_tool_calls",
    "functions", "function_call", "web_search_options", "verbosity", "user",
})  # fmt: skip
OLLAMA_ONLY_KEYS = frozenset({
    "options", "keep_alive", "format", "raw", "images", "context", "template", "think",
})  # fmt: skip
_SAMPLING = frozenset({
    "model", "stream", "temperature", "top_p", "top_k", "min_p", "max_tokens", "stop", "seed",
    "user", "n", "logprobs", "presence_penalty", "frequency_penalty", "repetition_penalty",
    "logit_bias", "stream_options", "best_of", "echo", "suffix", "min_tokens",
    "stop_token_ids", "ignore_eos", "typical_p",
})  # fmt: skip
COMPLETIONS_KEYS = _SAMPLING | {"prompt", "system"} | OLLAMA_ONLY_KEYS
RESPONSES_KEYS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "previous_response_id",
    "conversation", "reasoning", "text", "store", "stream", "stream_options",
    "max_output_tokens", "temperature", "top_p", "metadata", "parallel_tool_calls",
    "truncation", "user", "include", "background", "service_tier", "prompt",
    "prompt_cache_key", "safety_identifier", "max_tool_calls", "top_logprobs",
})  # fmt: skip
EMBEDDINGS_KEYS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
GEMINI_EMBED_KEYS = frozenset({
    "content", "model", "taskType", "task_type", "title", "outputDimensionality",
    "output_dimensionality",
})  # fmt: skip


def describe(style: str) -> str:
    return STYLES[style][0]


def api_format(style: str | None) -> str | None:
    """The error format a client of this style understands (None: no style)."""
    return STYLES[style][1] if style in STYLES else None


def looks_like_object(body: bytes) -> bool:
    """Whether the body starts as a JSON object does (the first, cheapest test)."""
    return _PRECHECK.match(body) is not None


def might_be_llm(body: bytes) -> bool:
    """The cheap test on bytes before any parsing: a JSON object naming one of the keys the
    shapes need (or written with escapes, which only parsing can read)."""
    return _PRECHECK.match(body) is not None and any(n in body for n in _NEEDLES)


def llm_style(body: bytes, path: str = "") -> str | None:
    """The style of LLM API call this request body is, or None. `path` (the request path,
    without the query) only breaks ties between styles that the body alone cannot tell
    apart; it never makes a body a call."""
    if not might_be_llm(body):
        return None
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, a number too long, too deep
        return None
    if not isinstance(doc, dict):
        return None
    try:
        return _style(doc, path.partition("?")[0].rstrip("/"))
    except RecursionError:  # pragma: no cover - the walk is a few levels deep
        return None


def inspect_body(
    raw: bytes, content_encoding: str, limit: int, path: str = ""
) -> tuple[str | None, str | None]:
    """(style, None) for a call, (None, None) for anything else, or (None, why) when the
    body cannot be checked within `limit` bytes: 'too_large' or 'encoding'."""
    body, why = decode(raw, content_encoding, limit)
    if body is None:
        return None, why
    return llm_style(body, path), None


def decode(raw: bytes, content_encoding: str, limit: int) -> tuple[bytes | None, str | None]:
    """The body with its Content-Encoding undone, never more than `limit` bytes of it."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    body = raw
    for coding in reversed(codings):  # the last one listed was applied last
        if len(body) > limit:
            return None, TOO_LARGE
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            candidates = (zlib.MAX_WBITS | 16,)
        elif coding == "deflate":  # zlib-wrapped as the RFC says, or raw as some clients do
            candidates = (zlib.MAX_WBITS, -zlib.MAX_WBITS)
        else:
            return None, ENCODING
        for wbits in candidates:
            decoded, why = _inflate(body, wbits, limit)
            if why != ENCODING:
                break
        if decoded is None:
            return None, why
        body = decoded
    if len(body) > limit:
        return None, TOO_LARGE
    return body, None


def _inflate(data: bytes, wbits: int, limit: int) -> tuple[bytes | None, str | None]:
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error:
        return None, ENCODING
    if len(out) > limit or d.unconsumed_tail:
        return None, TOO_LARGE
    if not d.eof:  # cut short
        return None, ENCODING
    return out, None


# -- the shapes --------------------------------------------------------------------------------


def _style(doc: dict, path: str) -> str | None:
    if "messages" in doc:
        return _messages_style(doc, path)
    if "contents" in doc:
        return "gemini" if _gemini_contents(doc["contents"]) else None
    if "prompt" in doc:
        return _prompt_style(doc, path)
    if "input" in doc:
        return _input_style(doc, path)
    if "content" in doc and doc.keys() <= GEMINI_EMBED_KEYS:
        # embedContent: a lone content is common JSON, so the model or the method must say so
        named = _model_id(doc.get("model")) or path.endswith(":embedContent")
        return "gemini" if named and _gemini_content(doc["content"]) else None
    return None


def _one_of(value: object, choices: frozenset[str]) -> bool:
    """`value in choices`, for any JSON value (a list or mapping is not hashable)."""
    return isinstance(value, str) and value in choices


def _model_id(value: object) -> bool:
    return isinstance(value, str) and _MODEL_ID.fullmatch(value) is not None


def _typed_parts(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in value)
    )


def _openai_message(m: object) -> bool:
    if not isinstance(m, dict) or not _one_of(m.get("role"), OPENAI_ROLES):
        return False
    content = m.get("content")
    if isinstance(content, str) or _typed_parts(content):
        return True
    return (
        content is None and m["role"] == "assistant" and ("tool_calls" in m or "function_call" in m)
    )


def _anthropic_message(m: object) -> bool:
    if not isinstance(m, dict) or not _one_of(m.get("role"), ANTHROPIC_ROLES):
        return False
    content = m.get("content")
    return (isinstance(content, str) and bool(content)) or _typed_parts(content)


def _messages_style(doc: dict, path: str) -> str | None:
    messages = doc["messages"]
    if not isinstance(messages, list) or not messages:
        return None
    has_model = _model_id(doc.get("model"))
    anthropic = (
        (has_model or isinstance(doc.get("anthropic_version"), str))
        and _positive_int(doc.get("max_tokens"))
        and _anthropic_system(doc.get("system"))
        and all(_anthropic_message(m) for m in messages)
    )
    openai = has_model and "system" not in doc and all(_openai_message(m) for m in messages)
    if anthropic and openai:  # both read it: the keys, then the path, then max_tokens decide
        blocks = {
            p.get("type") for m in messages if isinstance(m["content"], list) for p in m["content"]
        }
        if doc.keys() & ANTHROPIC_ONLY_KEYS or blocks & ANTHROPIC_ONLY_BLOCKS:
            openai = False
        elif doc.keys() & (OPENAI_ONLY_KEYS | OLLAMA_ONLY_KEYS) or path.endswith(
            ("/chat/completions", "/api/chat")
        ):
            anthropic = False
    if anthropic:
        return "anthropic-messages"
    if openai:
        ollama = doc.keys() & OLLAMA_ONLY_KEYS or path.endswith("/api/chat")
        return "ollama" if ollama else "openai-chat"
    return None


def _anthropic_system(value: object) -> bool:
    return value is None or isinstance(value, str) or _typed_parts(value)


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _tokens(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(_positive_or_zero(t) for t in value)


def _positive_or_zero(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _texts_or_tokens(value: object) -> bool:
    """A non-empty string, or a non-empty list of strings, token ids or lists of token ids."""
    if isinstance(value, str):
        return bool(value.strip())
    if not isinstance(value, list) or not value:
        return False
    return (
        all(isinstance(v, str) and v for v in value)
        or _tokens(value)
        or all(_tokens(v) for v in value)
    )


def _prompt_style(doc: dict, path: str) -> str | None:
    if not (_model_id(doc.get("model")) and _texts_or_tokens(doc["prompt"])):
        return None
    if not doc.keys() <= COMPLETIONS_KEYS:
        return None
    ollama = doc.keys() & OLLAMA_ONLY_KEYS or path.endswith("/api/generate")
    return "ollama" if ollama else "openai-completions"


def _input_style(doc: dict, path: str) -> str | None:
    if not _model_id(doc.get("model")):
        return None
    value = doc["input"]
    if isinstance(value, list) and value and all(_response_item(i) for i in value):
        return "openai-responses"  # structured items: a shape of its own, extensions allowed
    if not _texts_or_tokens(value):
        return None
    keys = doc.keys()
    if keys <= EMBEDDINGS_KEYS and (
        isinstance(value, list)
        or keys & {"encoding_format", "dimensions"}
        or path.endswith("/embeddings")
    ):
        return "openai-embeddings"
    if isinstance(value, str) and keys <= RESPONSES_KEYS:
        return "openai-responses"
    return None


def _response_item(item: object) -> bool:
    if not isinstance(item, dict):
        return False
    if "role" in item:
        return _openai_message(item)
    kind = item.get("type")
    return isinstance(kind, str) and kind.replace("_", "").isalpha() and kind != "message"


def _gemini_contents(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(_gemini_content(c) for c in value)


def _gemini_content(content: object) -> bool:
    if not isinstance(content, dict):
        return False
    if "role" in content and not _one_of(content["role"], GEMINI_ROLES):
        return False
    parts = content.get("parts")
    return isinstance(parts, list) and bool(parts) and all(_gemini_part(p) for p in parts)


def _gemini_part(part: object) -> bool:
    if not isinstance(part, dict) or not part.keys() & GEMINI_PART_KEYS:
        return False
    return "text" not in part or isinstance(part["text"], str)
