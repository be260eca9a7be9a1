"""Following the text deltas of a streamed answer, whatever carries its events.

LLMs stream their answer as text deltas, and split a placeholder wherever their tokens fall:
`"<"`, `"EMAIL"`, `"_"`, `"1"`, `">"` may arrive in five events. Deltas reads each event
(a JSON object, whether it came as a server-sent event, an NDJSON line or an AWS event-stream
frame), follows the text deltas of the known formats per answer (a choice, a content block,
a candidate) through a TextRestorer, which holds back only what could still become a
placeholder, and gives the held text back at the end of that answer (its finish, its block's
stop, the stream's end) as an event of the same shape. The known formats:

- OpenAI chat completions: `choices[].delta.content`, and tool calls' `function.arguments`;
- OpenAI Responses: `response.output_text.delta`, `response.function_call_arguments.delta`;
- Anthropic messages (also inside Bedrock's InvokeModelWithResponseStream): `content_block_delta`
  events (`text_delta`, `thinking_delta`, `input_json_delta`);
- Gemini: `candidates[].content.parts[].text`;
- Ollama (`/api/chat`, `/api/generate`): `message.content`, `message.thinking`, `response`,
  `thinking`, until `done`;
- Bedrock ConverseStream and Amazon Nova: `{"contentBlockDelta": {"delta": {"text": ...}}}`
  (and `toolUse.input`, `reasoningContent.text`), until `contentBlockStop` or `messageStop`;
- the other models' own chunks in Bedrock's InvokeModelWithResponseStream: Meta Llama
  (`generation`, until `stop_reason`), Amazon Titan (`outputText`, until `completionReason`),
  Mistral (`outputs[].text`, until `stop_reason`), Cohere (`text`, until `is_finished`).

Tool-call arguments are JSON written in pieces: their originals go in escaped for JSON.
The framings (sse.py, ndjson.py, eventstream.py) read and write the events; this module only
follows what is in them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from proxy.redact.restore import JsonRestorer, TextRestorer

Key = tuple  # which answer a delta belongs to: (format, index...)
Held = tuple[object, dict]  # (the framing's tag, an event carrying held-back text)

_ENDS_ALL = frozenset({
    "message_delta", "message_stop", "error",  # Anthropic (and the Responses API's error)
    "response.completed", "response.incomplete", "response.failed",  # OpenAI Responses
})  # fmt: skip


@dataclass(slots=True)
class _Slot:
    """One text delta inside an event's JSON: where it is, and whose answer it continues."""

    key: Key
    holder: dict
    field: str
    ends: bool  # the same event finishes this answer
    template: Callable[[str], dict]  # an event of the same shape carrying other text
    json_text: bool = False  # the text is JSON (tool-call arguments): originals go in escaped


class Deltas:
    """The text deltas of one streamed answer's events, restored in place as they pass."""

    def __init__(self, originals: Mapping[str, str]) -> None:
        self._originals = dict(originals)
        self._texts: dict[Key, TextRestorer] = {}
        self._templates: dict[Key, tuple[object, Callable[[str], dict]]] = {}

    def follow(self, event: dict, tag: object = None) -> tuple[list[Held], bool]:
        """Restores the deltas of `event` in place. Returns the events to send before it (the
        text held for answers it ends), and whether it changed. `tag` is kept for the events
        written later in the shape of this one (an SSE event's name, a frame's headers)."""
        slots = list(_slots(event))
        ending = _ends(event)
        # what this event ends is sent before it, unless its own text may still finish it
        ended = {k for k in self._texts if any(k[: len(p)] == p for p in ending)}
        before = self.flush(ended - {slot.key for slot in slots})
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
            self._templates[slot.key] = (tag, slot.template)
            if out != text:
                slot.holder[slot.field] = out
                changed = True
        return before, changed

    def flush(self, keys: set[Key] | None = None) -> list[Held]:
        """Events carrying the text held for the answers `keys` (None: all of them)."""
        out = []
        for key, restorer in self._texts.items():
            if (keys is None or key in keys) and restorer.held:
                tag, template = self._templates[key]
                out.append((tag, template(restorer.flush())))
        return out

    @property
    def holding(self) -> bool:
        return any(restorer.held for restorer in self._texts.values())

    @property
    def replaced(self) -> int:
        return sum(restorer.replaced for restorer in self._texts.values())


# -- the known formats -------------------------------------------------------------------------

# Anthropic's delta types: the field holding the text, and whether it is JSON text
_ANTHROPIC_DELTAS = {"text_delta": ("text", False), "thinking_delta": ("thinking", False),
                     "input_json_delta": ("partial_json", True)}  # fmt: skip
# Converse's delta members: the member, its text field, and whether it is JSON text
_CONVERSE_DELTAS = (("text", None, False), ("reasoningContent", "text", False),
                    ("toolUse", "input", True))  # fmt: skip


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
    if isinstance(event.get("contentBlockDelta"), dict):  # Bedrock Converse, Amazon Nova
        yield from _converse_slots(event["contentBlockDelta"])
        return
    if "done" in event:  # Ollama
        yield from _ollama_slots(event)
        return
    bedrock = _bedrock_slot(event)
    if bedrock is not None:
        yield bedrock
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


def _ollama_slots(event: dict) -> Iterator[_Slot]:
    """`/api/chat` (`message.content`, `message.thinking`) and `/api/generate` (`response`,
    `thinking`); the line with `"done": true` finishes them all."""
    ends = event.get("done") is True
    message = event.get("message")
    holders = [(message, "message")] if isinstance(message, dict) else [(event, None)]
    for holder, where in holders:
        fields = ("content", "thinking") if where else ("response", "thinking")
        for field in fields:
            if isinstance(holder.get(field), str):
                template = _ollama(event, where, field)
                yield _Slot(("ollama", where, field), holder, field, ends, template)


def _converse_slots(block: dict) -> Iterator[_Slot]:
    delta, index = block.get("delta"), block.get("contentBlockIndex", 0)
    if not isinstance(delta, dict):
        return
    for member, field, json_text in _CONVERSE_DELTAS:
        holder, name = (delta, member) if field is None else (delta.get(member), field)
        if isinstance(holder, dict) and isinstance(holder.get(name), str):
            template = _converse(index, member, field)
            yield _Slot(("converse", index, member), holder, name, False, template, json_text)


# Bedrock models' own chunks: the text field, the field whose value ends the answer (when not
# None or False), and the fields an event of the same shape keeps
_BEDROCK = (("generation", "stop_reason", ()),  # Meta Llama
            ("outputText", "completionReason", ("index",)),  # Amazon Titan
            ("text", "is_finished", ("event_type",)))  # Cohere  # fmt: skip


def _bedrock_slot(event: dict) -> _Slot | None:
    outputs = event.get("outputs")  # Mistral: one output
    output = outputs[0] if isinstance(outputs, list) and len(outputs) == 1 else None
    if isinstance(output, dict) and isinstance(output.get("text"), str):
        ends = output.get("stop_reason") is not None
        return _Slot(("mistral",), output, "text", ends, _mistral)
    for field, until, kept in _BEDROCK:
        if isinstance(event.get(field), str) and until in event:
            fields = {k: event[k] for k in kept if k in event}
            ends = event[until] not in (None, False)
            template = _bedrock(fields, field, until)
            return _Slot(("bedrock", field), event, field, ends, template)
    return None


def _ends(event: dict) -> list[Key]:
    """What an event finishes, as key prefixes: the answers whose keys start with one of
    them (() finishes every answer)."""
    kind = event.get("type")
    finished = event.get("done") is True or event.get("is_finished") is True  # Ollama, Cohere
    if kind in _ENDS_ALL or "messageStop" in event or finished:
        return [()]
    if kind == "content_block_stop":
        return [("anthropic", event.get("index"))]
    if kind in _RESPONSES_DONE:
        return [_responses_key(event)]
    if isinstance(event.get("contentBlockStop"), dict):
        return [("converse", event["contentBlockStop"].get("contentBlockIndex", 0))]
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


def _ollama(event: dict, where: str | None, field: str) -> Callable[[str], dict]:
    fields = {k: v for k, v in event.items() if k in ("model", "created_at")}
    if where is None:
        return lambda text: {**fields, field: text, "done": False}
    role = event[where].get("role", "assistant")
    return lambda text: {**fields, where: {"role": role, field: text}, "done": False}


def _bedrock(fields: dict, field: str, until: str) -> Callable[[str], dict]:
    unfinished = False if until == "is_finished" else None
    return lambda text: {**fields, field: text, until: unfinished}


def _mistral(text: str) -> dict:
    return {"outputs": [{"text": text, "stop_reason": None}]}


def _converse(index: object, member: str, field: str | None) -> Callable[[str], dict]:
    def event(text: str) -> dict:
        delta = {member: text} if field is None else {member: {field: text}}
        return {"contentBlockDelta": {"delta": delta, "contentBlockIndex": index}}

    return event


class StreamRestorer:
    """What the restorers of a streamed answer share (sse.py, ndjson.py, eventstream.py):
    whole placeholders restored in any JSON string, the text deltas followed, the bytes of
    the event being read, and how restoring went; each reads and writes its own framing."""

    def __init__(self, originals: Mapping[str, str]) -> None:
        self._json = JsonRestorer(originals)
        self._deltas = Deltas(originals)
        self._pending = bytearray()  # the event (line, frame) being read
        self.passing = False  # gave up restoring: everything passes as it comes
        self.failure: str | None = None  # why restoring stopped, when it failed
        self.misread = 0  # events of a known shape with something unexpected in them

    @property
    def replaced(self) -> int:
        """Placeholders put back so far (a count, never which)."""
        return self._json.replaced + self._deltas.replaced
