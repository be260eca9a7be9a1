"""Restoring placeholders in a streamed answer (server-sent events), event by event.

LLMs stream their answer as text deltas, and split a placeholder wherever their tokens fall:
`"<"`, `"EMAIL"`, `"_"`, `"1"`, `">"` may arrive in five events. The text deltas of the known
formats are followed per answer (a choice, a content block, a candidate) through a
TextRestorer, which holds back only what could still become a placeholder; the held text is
sent at the end of that answer (its finish, its block's stop, `[DONE]`, or the stream's end),
in an event of the same shape. The known formats:

- OpenAI chat completions: `choices[].delta.content`, and tool calls' `function.arguments`;
- OpenAI Responses: `response.output_text.delta`, `response.function_call_arguments.delta`;
- Anthropic messages: `content_block_delta` events (`text_delta`, `thinking_delta`,
  `input_json_delta`);
- Gemini (`alt=sse`): `candidates[].content.parts[].text`.

Tool-call arguments are JSON written in pieces: their originals go in escaped for JSON.

Any other event passes as it came, except that whole placeholders inside its JSON strings are
restored (the final `response.completed` of the Responses API repeats the whole text). Only
the event being read is kept, never the stream: an event larger than MAX_EVENT_BYTES ends the
restoring, and the rest of the stream passes as it comes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from proxy.redact.restore import JsonRestorer, TextRestorer

MAX_EVENT_BYTES = 1024 * 1024
# a blank line ends an event; lines end in CRLF, LF or CR (a CR at the end of what has come
# may be the first half of a CRLF: the event then ends one CR early, and the LF that follows
# is an empty line before the next one, which is harmless)
_LINE_END = rb"(?:\r\n|\r(?!\n)|\n)"
_EVENT_END = re.compile(_LINE_END + _LINE_END)
_ENDS_ALL = frozenset({
    "message_delta", "message_stop", "error",  # Anthropic (and the Responses API's error)
    "response.completed", "response.incomplete", "response.failed",  # OpenAI Responses
})  # fmt: skip

Key = tuple  # which answer a delta belongs to: (format, index...)


@dataclass(slots=True)
class _Slot:
    """One text delta inside an event's JSON: where it is, and whose answer it continues."""

    key: Key
    holder: dict
    field: str
    ends: bool  # the same event finishes this answer
    template: Callable[[str], dict]  # an event of the same shape carrying other text
    json_text: bool = False  # the text is JSON (tool-call arguments): originals go in escaped


class SseRestorer:
    """Bytes of an event stream in (`feed`, then `finish` at its end), the same stream with
    the request's placeholders restored out."""

    def __init__(self, originals: Mapping[str, str]) -> None:
        self._originals = dict(originals)
        self._json = JsonRestorer(originals)
        self._pending = bytearray()  # the event being read
        self._searched = 0  # how far _pending holds no event end
        self._texts: dict[Key, TextRestorer] = {}
        self._templates: dict[Key, tuple[bytes | None, Callable[[str], dict]]] = {}
        self.passing = False  # gave up restoring: everything passes as it comes
        self.misread = 0  # events of a known shape with something unexpected in them
        self._eol = b"\n"

    def feed(self, data: bytes) -> bytes:
        if self.passing:
            return data
        self._pending += data
        out = []
        while m := _EVENT_END.search(self._pending, max(0, self._searched - 3)):
            raw = bytes(self._pending[: m.end()])
            del self._pending[: m.end()]
            self._searched = 0
            if raw.startswith(b"\n"):  # the LF of a CRLF whose CR ended the last event
                out.append(b"\n")
                raw = raw[1:]
            try:
                out.append(self._event(raw))
            except (TypeError, KeyError, AttributeError):  # a known shape, misread: as it came
                self.misread += 1
                out.append(raw)
        self._searched = len(self._pending)
        if len(self._pending) > MAX_EVENT_BYTES:
            out.append(self._flush(set(self._texts)) + bytes(self._pending))
            self._pending.clear()
            self.passing = True
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the stream: the text still held, then an unfinished last event."""
        if self.passing:
            return b""
        out = self._flush(set(self._texts)) + self._json(bytes(self._pending))
        self._pending.clear()
        return out

    # -- one event -------------------------------------------------------------------------------

    def _event(self, raw: bytes) -> bytes:
        if b"<" not in raw and b"\\u003" not in raw and not self._holding():
            return raw  # nothing to restore, nothing held back to send before it
        lines = raw.split(b"\n")  # (lines ending in CR alone are not read: passed as they came)
        self._eol = b"\r\n" if b"\r\n" in raw else b"\n"  # for the events written here
        name, data = None, []
        for line in lines:
            line = line.removesuffix(b"\r")
            field, _, value = line.partition(b":")
            if field == b"data":
                data.append(value.removeprefix(b" "))
            elif field == b"event":
                name = value.strip()
        if not data:
            return raw
        payload = b"\n".join(data)
        if payload.strip() == b"[DONE]":
            return self._flush(set(self._texts)) + raw
        try:
            event = json.loads(payload)
        except ValueError:
            return raw  # not JSON: not a format we know
        if not isinstance(event, dict):
            return self._json(raw)
        slots = list(_slots(event))
        ending = _ends(event)
        # what this event ends is sent before it, unless its own text may still finish it
        ended = {k for k in self._texts if any(k[: len(p)] == p for p in ending)}
        before = self._flush(ended - {slot.key for slot in slots})
        changed = False
        for slot in slots:
            text = slot.holder[slot.field]
            restorer = self._texts.get(slot.key)
            if restorer is None:
                restorer = TextRestorer(self._originals, json_text=slot.json_text)
                self._texts[slot.key] = restorer
            out = restorer.feed(text)
            if slot.ends:
                out += restorer.flush()
            self._templates[slot.key] = (name, slot.template)
            if out != text:
                slot.holder[slot.field] = out
                changed = True
        if changed:
            raw = _rewritten(lines, event)
        return before + self._json(raw)

    def _holding(self) -> bool:
        return any(restorer.held for restorer in self._texts.values())

    def _flush(self, keys: set[Key]) -> bytes:
        """Events carrying the text held for the answers `keys`."""
        out = []
        for key, restorer in self._texts.items():
            if key in keys and restorer.held:
                name, template = self._templates[key]
                event = template(restorer.flush())
                eol = self._eol
                head = b"event: " + name + eol if name else b""
                out.append(head + b"data: " + _dumps(event) + eol + eol)
        return b"".join(out)


def _dumps(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _rewritten(lines: list[bytes], event: dict) -> bytes:
    """The event's lines with its data replaced by `event` (one data line, where the first
    was); its other fields and line endings as they were."""
    out, placed = [], False
    for line in lines:
        if line.startswith(b"data:"):
            if placed:
                continue
            placed = True
            line = b"data: " + _dumps(event) + (b"\r" if line.endswith(b"\r") else b"")
        out.append(line)
    return b"\n".join(out)


# -- the known formats -------------------------------------------------------------------------

# Anthropic's delta types: the field holding the text, and whether it is JSON text
_ANTHROPIC_DELTAS = {"text_delta": ("text", False), "thinking_delta": ("thinking", False),
                     "input_json_delta": ("partial_json", True)}  # fmt: skip


def _slots(event: dict) -> Iterator[_Slot]:
    """The text deltas of an event, in order."""
    kind = event.get("type")
    delta = event.get("delta")
    if kind == "content_block_delta" and isinstance(delta, dict):  # Anthropic
        field, json_text = _ANTHROPIC_DELTAS.get(delta.get("type"), (None, False))
        if field is not None and isinstance(delta.get(field), str):
            index = event.get("index")
            template = _anthropic(index, delta["type"], field)
            yield _Slot(("anthropic", index), delta, field, False, template, json_text)
        return
    if kind in _RESPONSES_DELTAS and isinstance(delta, str):  # OpenAI Responses
        json_text = kind == "response.function_call_arguments.delta"
        yield _Slot(_responses_key(event), event, "delta", False, _responses(event), json_text)
        return
    choices = event.get("choices")  # OpenAI chat completions
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and isinstance(choice.get("delta"), dict):
                yield from _chat_slots(event, choice)
    candidates = event.get("candidates")  # Gemini
    if isinstance(candidates, list):
        for candidate in candidates:
            yield from _gemini_slots(event, candidate)


def _chat_slots(event: dict, choice: dict) -> Iterator[_Slot]:
    index, delta = choice.get("index", 0), choice["delta"]
    ends = choice.get("finish_reason") is not None
    if isinstance(delta.get("content"), str):
        yield _Slot(("chat", index), delta, "content", ends, _chat(event, index))
    for call in delta.get("tool_calls") or ():  # the arguments: JSON text, in pieces
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            key = ("chat", index, "tool", call.get("index", 0))
            template = _chat_tool(event, index, call.get("index", 0))
            yield _Slot(key, function, "arguments", ends, template, True)


def _gemini_slots(event: dict, candidate: object) -> Iterator[_Slot]:
    if not isinstance(candidate, dict) or not isinstance(candidate.get("content"), dict):
        return
    parts = candidate["content"].get("parts")
    if not isinstance(parts, list):
        return
    texts = [p for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    finished = candidate.get("finishReason") is not None
    for i, part in enumerate(texts):
        thought = bool(part.get("thought"))
        key = ("gemini", candidate.get("index", 0), thought)
        ends = finished and i == len(texts) - 1
        yield _Slot(key, part, "text", ends, _gemini(event, candidate, thought))


def _ends(event: dict) -> list[Key]:
    """What an event finishes, as key prefixes: the answers whose keys start with one of
    them (() finishes every answer)."""
    kind = event.get("type")
    if kind in _ENDS_ALL:
        return [()]
    if kind == "content_block_stop":
        return [("anthropic", event.get("index"))]
    if kind in _RESPONSES_DONE:
        return [_responses_key(event)]
    ended = []
    for choice in event.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason") is not None:
            ended.append(("chat", choice.get("index", 0)))
    for candidate in event.get("candidates") or ():
        if isinstance(candidate, dict) and candidate.get("finishReason") is not None:
            ended.append(("gemini", candidate.get("index", 0)))
    return ended


_RESPONSES_DELTAS = ("response.output_text.delta", "response.function_call_arguments.delta")
_RESPONSES_DONE = ("response.output_text.done", "response.function_call_arguments.done")


def _responses_key(event: dict) -> Key:
    return ("responses", event.get("item_id"), event.get("output_index"),
            event.get("content_index"))  # fmt: skip


def _anthropic(index: object, kind: str, field: str) -> Callable[[str], dict]:
    return lambda text: {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": kind, field: text},
    }


def _responses(event: dict) -> Callable[[str], dict]:
    fields = {k: v for k, v in event.items() if k != "delta"}
    return lambda text: {**fields, "delta": text}


def _chat(event: dict, index: object) -> Callable[[str], dict]:
    fields = {k: v for k, v in event.items() if k not in ("choices", "usage")}
    return lambda text: {
        **fields,
        "choices": [{"index": index, "delta": {"content": text}, "finish_reason": None}],
    }


def _chat_tool(event: dict, index: object, call: object) -> Callable[[str], dict]:
    fields = {k: v for k, v in event.items() if k not in ("choices", "usage")}
    return lambda text: {
        **fields,
        "choices": [{"index": index, "finish_reason": None, "delta": {
            "tool_calls": [{"index": call, "function": {"arguments": text}}]}}],
    }  # fmt: skip


def _gemini(event: dict, candidate: dict, thought: bool) -> Callable[[str], dict]:
    fields = {k: v for k, v in event.items() if k in ("modelVersion", "responseId")}
    where = {"index": candidate["index"]} if "index" in candidate else {}
    part = {"thought": True} if thought else {}
    role = candidate["content"].get("role", "model")
    return lambda text: {
        **fields,
        "candidates": [{**where, "content": {"role": role, "parts": [{"text": text, **part}]}}],
    }
