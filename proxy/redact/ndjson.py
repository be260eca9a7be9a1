"""Restoring placeholders in a streamed answer of JSON lines (NDJSON, JSON Lines), line by line.

Ollama's `/api/chat` and `/api/generate` stream one JSON object a line
(`application/x-ndjson`), its text in `message.content` or `response` deltas, split
wherever the model's tokens fall. Each line that is a JSON object goes through Deltas
(deltas.py), which holds back only what could still become a placeholder; the held text is
sent in a line of the same shape before the line that finishes the answer (`"done": true`)
or at the stream's end. Other lines pass as they came, with whole placeholders inside their
JSON strings restored. Unchanged lines keep every byte; a changed one is written compact.
Only the line being read is kept: one longer than MAX_LINE_BYTES ends the restoring, and the
rest of the stream passes as it comes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from proxy.redact.deltas import Held, StreamRestorer

MAX_LINE_BYTES = 1024 * 1024


class NdjsonRestorer(StreamRestorer):
    """Bytes of a JSON-lines stream in (`feed`, then `finish` at its end), the same stream
    with the request's placeholders restored out."""

    def __init__(self, originals: Mapping[str, str]) -> None:
        super().__init__(originals)
        self._eol = b"\n"

    def feed(self, data: bytes) -> bytes:
        if self.passing:
            return data
        start = len(self._pending)
        self._pending += data
        end = self._pending.rfind(b"\n", start)
        if end < 0:
            if len(self._pending) > MAX_LINE_BYTES:
                return self._give_up()
            return b""
        lines = bytes(self._pending[: end + 1]).split(b"\n")[:-1]
        del self._pending[: end + 1]
        out = b"".join(self._line(line + b"\n") for line in lines)
        if len(self._pending) > MAX_LINE_BYTES:
            out += self._give_up()
        return out

    def finish(self) -> bytes:
        """The end of the stream: an unfinished last line, then the text still held."""
        if self.passing:
            return b""
        out = self._line(bytes(self._pending)) if self._pending else b""
        self._pending.clear()
        held = self._written(self._deltas.flush())
        if held and out and not out.endswith(b"\n"):
            out += self._eol  # the held text on a line of its own
        return out + held

    def _give_up(self) -> bytes:
        out = self._written(self._deltas.flush()) + bytes(self._pending)
        self._pending.clear()
        self.passing = True
        return out

    def _line(self, raw: bytes) -> bytes:
        if b"<" not in raw and b"\\u003" not in raw and not self._deltas.holding:
            return raw  # nothing to restore, nothing held back to send before it
        try:
            return self._restored(raw)
        except (TypeError, KeyError, AttributeError):  # a known shape, misread: as it came
            self.misread += 1
            return raw

    def _restored(self, raw: bytes) -> bytes:
        body = raw.rstrip(b"\r\n")
        eol = raw[len(body) :]
        if eol:
            self._eol = eol  # for the lines written here
        try:
            event = json.loads(body)
        except ValueError:
            return raw  # not JSON: passed as it came
        if not isinstance(event, dict):
            return self._json(raw)
        before, changed = self._deltas.follow(event)
        if changed:
            raw = _dumps(event) + eol
        return self._written(before) + self._json(raw)

    def _written(self, held: list[Held]) -> bytes:
        return b"".join(_dumps(event) + self._eol for _, event in held)


def _dumps(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
