"""Restoring placeholders in a streamed answer (server-sent events), event by event.

Each event's data, when it is a JSON object, goes through Deltas (deltas.py), which restores
the text deltas of the known formats and holds back only what could still become a
placeholder; the held text is sent at the end of its answer (its finish, its block's stop,
`[DONE]`, or the stream's end) as an event of the same shape, with the same event name.

Any other event passes as it came, except that whole placeholders inside its JSON strings are
restored (the final `response.completed` of the Responses API repeats the whole text). Only
the event being read is kept, never the stream: an event larger than MAX_EVENT_BYTES ends the
restoring, and the rest of the stream passes as it comes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from proxy.redact.deltas import Held, StreamRestorer

MAX_EVENT_BYTES = 1024 * 1024
# a blank line ends an event; lines end in CRLF, LF or CR (a CR at the end of what has come
# may be the first half of a CRLF: the event then ends one CR early, and the LF that follows
# is an empty line before the next one, which is harmless)
_LINE_END = rb"(?:\r\n|\r(?!\n)|\n)"
_EVENT_END = re.compile(_LINE_END + _LINE_END)


class SseRestorer(StreamRestorer):
    """Bytes of an event stream in (`feed`, then `finish` at its end), the same stream with
    the request's placeholders restored out."""

    def __init__(self, originals: Mapping[str, str]) -> None:
        super().__init__(originals)
        self._searched = 0  # how far _pending holds no event end
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
            out.append(self._written(self._deltas.flush()) + bytes(self._pending))
            self._pending.clear()
            self.passing = True
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the stream: the text still held, then an unfinished last event."""
        if self.passing:
            return b""
        out = self._written(self._deltas.flush()) + self._json(bytes(self._pending))
        self._pending.clear()
        return out

    # -- one event -------------------------------------------------------------------------------

    def _event(self, raw: bytes) -> bytes:
        if b"<" not in raw and b"\\u003" not in raw and not self._deltas.holding:
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
            return self._written(self._deltas.flush()) + raw
        try:
            event = json.loads(payload)
        except ValueError:
            return raw  # not JSON: not a format we know
        if not isinstance(event, dict):
            return self._json(raw)
        before, changed = self._deltas.follow(event, name)
        if changed:
            raw = _rewritten(lines, event)
        return self._written(before) + self._json(raw)

    def _written(self, held: list[Held]) -> bytes:
        """Events carrying held text, each with the event name of the answer's last event."""
        out, eol = [], self._eol
        for name, event in held:
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
