"""Redacting request bodies: finding the text in JSON, form and multipart bodies.

JSON is walked whole: every string value is prompt text except structural fields (model, role,
type, ids...) and base64 media, which are left exactly as they were. This covers the formats
of shared/reference/ai-services.md (OpenAI chat and responses, Anthropic messages, Gemini in
camelCase and snake_case, Bedrock Converse, Cohere v1/v2) and unknown shapes alike, and the
JSON keeps its shape. A body with nothing to redact is passed on byte for byte.

With a restoring profile each finding becomes a placeholder, chosen so it occurs nowhere in
the body's own text, and the Result carries the mapping for the answer (`originals`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from proxy.redact.detectors import Replacement, redact_text
from proxy.redact.placeholders import NoPlaceholder, Placeholders
from proxy.redact.profiles import RedactionProfile

# Keys whose string values are structure, not prompt text.
STRUCTURAL_KEYS = frozenset({
    "model", "role", "type", "id", "object", "name_type", "anthropic_version", "tool_call_id",
    "call_id", "previous_response_id", "conversation", "parent_message_id", "mime_type",
    "mimeType", "media_type", "mediaType", "format", "encoding", "voice", "detail",
    "modalities", "stop_reason", "service_tier", "tool_choice", "reasoning_effort",
    "response_mime_type", "responseMimeType", "fileUri", "file_uri", "cachedContent",
    "cached_content", "content_type",
})  # fmt: skip
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
MEDIA_MIN_LENGTH = 256


class Unparseable(ValueError):
    """The body is not what its Content-Type says, or not a format we can redact."""


class Unredactable(Unparseable):
    """A body that is never passed unredacted, whatever `on_unparseable` says."""


@dataclass
class Result:
    body: bytes
    changed: bool = False
    findings: list[tuple[str, str, int, int]] = field(default_factory=list)  # where, type, span
    originals: dict[str, str] = field(default_factory=dict, repr=False)  # placeholder -> value

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(kind for _, kind, _, _ in self.findings))


def redact_body(raw: bytes, content_type: str, profile: RedactionProfile) -> Result:
    """Redact a decoded request body; raises Unparseable for what cannot be read."""
    try:
        return _redact_body(raw, content_type, profile)
    except NoPlaceholder as e:
        raise Unredactable(str(e)) from None


def _redact_body(raw: bytes, content_type: str, profile: RedactionProfile) -> Result:
    if not raw.strip():
        return Result(raw)
    mime = content_type.split(";", 1)[0].strip().lower()
    if (
        mime == "application/json"
        or mime.endswith("+json")
        or (not mime and raw.lstrip()[:1] in (b"{", b"["))
    ):
        return _json(raw, profile)
    if mime == "application/x-www-form-urlencoded":
        return _form(raw, profile)
    if mime == "multipart/form-data":
        replace = _replacement(profile, raw.decode("utf-8", "replace"))
        return _with_originals(_multipart(raw, content_type, profile, replace), replace)
    if mime.startswith("text/") or mime in ("application/x-ndjson", "application/jsonl"):
        replace = _replacement(profile, raw.decode("utf-8", "replace"))
        return _with_originals(_text(raw, profile, "body", replace), replace)
    raise Unparseable(f"cannot read a {mime or 'untyped'} body as text")


def _replacement(profile: RedactionProfile, taken: str) -> Replacement:
    """What findings become: the profile's text, or this request's placeholders (which must
    not occur in `taken`, the body's own text)."""
    return Placeholders(taken, profile.detectors) if profile.restore else profile.replacement


def _with_originals(result: Result, replace: Replacement) -> Result:
    if isinstance(replace, Placeholders) and result.changed:
        result.originals = dict(replace.originals)
    return result


def _text(raw: bytes, profile: RedactionProfile, where: str, replace: Replacement) -> Result:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Unparseable(f"{where} is not UTF-8 text") from e
    out, found = redact_text(text, profile.detectors, replace)
    if not found:
        return Result(raw)
    return Result(out.encode("utf-8"), True, [(where, f.type, f.start, f.end) for f in found])


# -- JSON ------------------------------------------------------------------------------------


def _json(raw: bytes, profile: RedactionProfile) -> Result:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise Unparseable(f"the body is not valid JSON ({e})") from None
    findings: list[tuple[str, str, int, int]] = []
    # every string as written unescaped: a placeholder must match none of them
    taken = json.dumps(doc, ensure_ascii=False) if profile.restore else ""
    replace = _replacement(profile, taken)
    doc = _walk(doc, "$", profile, replace, findings)
    if not findings:
        return Result(raw)
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _with_originals(Result(body, True, findings), replace)


def _walk(
    value, path: str, profile: RedactionProfile, replace: Replacement, findings: list
) -> object:
    if isinstance(value, str):
        if _is_media(value):
            return value
        out, found = redact_text(value, profile.detectors, replace)
        findings.extend((path, f.type, f.start, f.end) for f in found)
        return out
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and _is_structural(key):
                continue
            value[key] = _walk(item, f"{path}.{key}", profile, replace, findings)
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = _walk(item, f"{path}[{i}]", profile, replace, findings)
    return value


def _is_structural(key: str) -> bool:
    return key in STRUCTURAL_KEYS or key.endswith(("_id", "Id", "_ids"))


def _is_media(text: str) -> bool:
    """Base64 payloads (images, audio, files): a data: URL, or a long unbroken base64 run."""
    if text.startswith("data:") and ";base64," in text[:200]:
        return True
    return len(text) >= MEDIA_MIN_LENGTH and _BASE64.fullmatch(text) is not None


# -- forms -----------------------------------------------------------------------------------


def _form(raw: bytes, profile: RedactionProfile) -> Result:
    try:
        pairs = parse_qsl(
            raw.decode("ascii"), keep_blank_values=True, strict_parsing=True, errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as e:
        raise Unparseable(f"the form body cannot be read ({e})") from None
    findings: list[tuple[str, str, int, int]] = []
    replace = _replacement(profile, "\n".join(v for pair in pairs for v in pair))
    out = []
    for name, value in pairs:
        if not _is_structural(name) and not _is_media(value):
            value, found = redact_text(value, profile.detectors, replace)
            findings.extend((f"form.{name}", f.type, f.start, f.end) for f in found)
        out.append((name, value))
    if not findings:
        return Result(raw)
    return _with_originals(Result(urlencode(out).encode("ascii"), True, findings), replace)


# -- multipart ---------------------------------------------------------------------------------


def _multipart(
    raw: bytes, content_type: str, profile: RedactionProfile, replace: Replacement
) -> Result:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise Unparseable("multipart body without a boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    pieces = raw.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise Unparseable("the multipart body is not complete")
    findings: list[tuple[str, str, int, int]] = []
    parts = []
    for piece in pieces[1:-1]:
        if not piece.startswith(b"\r\n") or b"\r\n\r\n" not in piece:
            raise Unparseable("a multipart part has no headers")
        head, _, body = piece[2:].partition(b"\r\n\r\n")
        if not body.endswith(b"\r\n"):
            raise Unparseable("a multipart part is not terminated")
        body = body[:-2]
        headers = head.decode("latin-1")
        name = re.search(r'name="([^"]*)"', headers)
        where = f"multipart.{name.group(1) if name else '?'}"
        if "filename=" in headers.lower():
            body = _file_part(body, headers, where, profile, replace, findings)
        elif not (name and _is_structural(name.group(1))):
            result = _text(body, profile, where, replace)
            findings.extend(result.findings)
            body = result.body
        parts.append(b"\r\n" + head + b"\r\n\r\n" + body + b"\r\n")
    if not findings:
        return Result(raw)
    return Result(
        pieces[0] + b"".join(delimiter + p for p in parts) + delimiter + pieces[-1], True, findings
    )


_TEXT_FILE = re.compile(
    r"content-type:\s*(text/|application/(json|xml|x-ndjson|csv|yaml))", re.IGNORECASE
)


def _file_part(
    body: bytes,
    headers: str,
    where: str,
    profile: RedactionProfile,
    replace: Replacement,
    findings: list,
) -> bytes:
    if profile.files == "block":
        raise FileBlocked(f"{where} is a file upload, which this profile blocks")
    if profile.files == "pass":
        return body
    declared_text = _TEXT_FILE.search(headers) is not None
    try:
        result = _text(body, profile, where, replace)
    except Unparseable:
        if declared_text:
            raise
        return body  # a binary file: not text we can read; passed as the profile allows
    findings.extend(result.findings)
    return result.body


class FileBlocked(Unredactable):
    """A file part under a profile with `files: block`."""
