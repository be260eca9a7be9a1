"""Restoring placeholders in an AWS event stream (`application/vnd.amazon.eventstream`), frame
by frame: Bedrock's InvokeModelWithResponseStream and ConverseStream.

A frame (AWS's published "event stream encoding") is a prelude (total length and headers
length, big-endian uint32 each, then the CRC32 of those 8 bytes), the headers, the payload,
and the CRC32 of everything before it. Bedrock's payloads are JSON:

- InvokeModelWithResponseStream (`:event-type: chunk`): `{"bytes": "<base64>"}`, the base64 of
  the model's own JSON chunk (Anthropic's events, Amazon Nova's `contentBlockDelta`...);
- ConverseStream: the event's members, named by the `:event-type` header
  (`contentBlockDelta`: `{"contentBlockIndex": 0, "delta": {"text": "..."}}`).

Each event goes through Deltas (deltas.py) as JSON; a changed one is framed again, with its
headers as they came and new lengths and CRCs; a frame carrying held-back text is written
with the headers of that answer's last frame. Frames with nothing to restore pass as they
came. A frame that does not check (lengths, CRCs, headers) ends the restoring: the text held
is sent, then the rest of the stream as it comes, and `failure` says why.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from proxy.redact.deltas import Held, StreamRestorer

MAX_FRAME_BYTES = 16 * 1024 * 1024  # the format's own limit
_PRELUDE = struct.Struct(">II")  # total length, headers length
_CRC = struct.Struct(">I")
_SMALLEST = _PRELUDE.size + 2 * _CRC.size  # a frame without headers nor payload
# header value types: their fixed sizes (None: a uint16 length, then the bytes)
_VALUE_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 6: None, 7: None, 8: 8, 9: 16}
_STRING = 7


class Malformed(ValueError):
    """A frame that does not check: its lengths, CRCs or headers."""


# -- the codec -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    headers: bytes  # the header block as it came: written back unchanged
    payload: bytes

    def encode(self) -> bytes:
        total = _SMALLEST + len(self.headers) + len(self.payload)
        prelude = _PRELUDE.pack(total, len(self.headers))
        message = prelude + _CRC.pack(zlib.crc32(prelude)) + self.headers + self.payload
        return message + _CRC.pack(zlib.crc32(message))

    def header_strings(self) -> dict[str, str]:
        """The headers whose values are strings (`:event-type`, `:message-type`...)."""
        out, raw, i = {}, self.headers, 0
        try:
            while i < len(raw):
                size = raw[i]
                name = raw[i + 1 : i + 1 + size].decode("utf-8")
                kind = raw[i + 1 + size]
                i += 2 + size
                width = _VALUE_SIZES.get(kind, -1)
                if width == -1:
                    raise Malformed(f"header type {kind}")
                if width is None:
                    (width,) = struct.unpack_from(">H", raw, i)
                    i += 2
                if i + width > len(raw):
                    raise Malformed("header past its block")
                if kind == _STRING:
                    out[name] = raw[i : i + width].decode("utf-8")
                i += width
        except (IndexError, struct.error, UnicodeDecodeError) as e:
            raise Malformed(f"headers: {type(e).__name__}") from None
        return out


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """String headers as a header block."""
    out = bytearray()
    for name, value in headers.items():
        key, data = name.encode("utf-8"), value.encode("utf-8")
        out += bytes([len(key)]) + key + bytes([_STRING]) + struct.pack(">H", len(data)) + data
    return bytes(out)


def read_frame(buffer: bytes | bytearray) -> tuple[Frame, int] | None:
    """The first frame of `buffer` and its length; None while it is incomplete."""
    if len(buffer) < _PRELUDE.size + _CRC.size:
        return None
    total, headers = _PRELUDE.unpack_from(buffer)
    (crc,) = _CRC.unpack_from(buffer, _PRELUDE.size)
    if crc != zlib.crc32(bytes(buffer[: _PRELUDE.size])):
        raise Malformed("prelude CRC")
    if total < _SMALLEST or headers > total - _SMALLEST or total > MAX_FRAME_BYTES:
        raise Malformed("lengths")
    if len(buffer) < total:
        return None
    (crc,) = _CRC.unpack_from(buffer, total - _CRC.size)
    if crc != zlib.crc32(bytes(buffer[: total - _CRC.size])):
        raise Malformed("message CRC")
    start = _PRELUDE.size + _CRC.size
    end = start + headers
    return Frame(bytes(buffer[start:end]), bytes(buffer[end : total - _CRC.size])), total


# -- restoring -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    """How an event was carried, to write held text the same way."""

    headers: bytes
    wrapped_in: str | None  # the `:event-type` whose members the payload is (ConverseStream)
    base64: bool  # the payload is {"bytes": base64 of the event} (InvokeModelWithResponseStream)


class EventStreamRestorer(StreamRestorer):
    """Bytes of an AWS event stream in (`feed`, then `finish` at its end), the same stream
    with the request's placeholders restored out."""

    def __init__(self, originals: Mapping[str, str]) -> None:
        super().__init__(originals)
        self._headers: dict[bytes, dict[str, str]] = {}  # header blocks read

    def feed(self, data: bytes) -> bytes:
        if self.passing:
            return data
        self._pending += data
        out = []
        while True:
            try:
                read = read_frame(self._pending)
            except Malformed as e:
                self.failure = f"malformed frame: {e}"
                out.append(self._written(self._deltas.flush()) + bytes(self._pending))
                self._pending.clear()
                self.passing = True
                break
            if read is None:
                break
            frame, size = read
            raw = bytes(self._pending[:size])
            del self._pending[:size]
            try:
                out.append(self._frame(frame, raw))
            except (TypeError, KeyError, AttributeError, ValueError):  # misread: as it came
                # (ValueError: base64 or JSON in `bytes` that does not read)
                self.misread += 1
                out.append(raw)
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the stream: the text still held, then an unfinished last frame."""
        if self.passing:
            return b""
        out = self._written(self._deltas.flush()) + bytes(self._pending)
        self._pending.clear()
        return out

    def _frame(self, frame: Frame, raw: bytes) -> bytes:
        held = self._deltas.holding
        if not held and not _may_hold(frame.payload) and b'"bytes"' not in frame.payload:
            return raw  # nothing to restore, nothing held back to send before it
        headers = self._headers.get(frame.headers)
        if headers is None:  # a stream repeats a few header blocks: each is read once
            headers = frame.header_strings()
            if len(self._headers) < 64:
                self._headers[frame.headers] = headers
        if headers.get(":message-type", "event") != "event":  # an exception: the end
            return self._written(self._deltas.flush()) + raw
        try:
            payload = json.loads(frame.payload)
        except ValueError:
            return raw  # not JSON: not a format we know
        if not isinstance(payload, dict):
            return self._reframed(frame, raw, self._json(frame.payload))
        if isinstance(payload.get("bytes"), str):  # InvokeModelWithResponseStream
            return self._chunk(frame, raw, payload, held)
        kind = headers.get(":event-type")
        if not kind or kind in payload:  # the event whole in the payload
            shape, event = _Shape(frame.headers, None, False), payload
        else:  # ConverseStream: the payload holds the members of the event `kind`
            shape, event = _Shape(frame.headers, kind, False), {kind: payload}
        before, changed = self._deltas.follow(event, shape)
        body = frame.payload
        if changed:
            body = _dumps(event[kind] if shape.wrapped_in else event)
        return self._written(before) + self._reframed(frame, raw, self._json(body))

    def _chunk(self, frame: Frame, raw: bytes, payload: dict, held: bool) -> bytes:
        """A model's own chunk, in base64."""
        inner = base64.b64decode(payload["bytes"], validate=True)
        if not held and not _may_hold(inner):
            return raw
        event = json.loads(inner)
        if not isinstance(event, dict):
            return raw
        before, changed = self._deltas.follow(event, _Shape(frame.headers, None, True))
        restored = self._json(_dumps(event) if changed else inner)
        if restored == inner:
            return self._written(before) + raw
        payload["bytes"] = base64.b64encode(restored).decode("ascii")
        return self._written(before) + Frame(frame.headers, _dumps(payload)).encode()

    @staticmethod
    def _reframed(frame: Frame, raw: bytes, payload: bytes) -> bytes:
        return raw if payload == frame.payload else Frame(frame.headers, payload).encode()

    @staticmethod
    def _written(held: list[Held]) -> bytes:
        out = []
        for shape, event in held:
            if shape.base64:
                payload = _dumps({"bytes": base64.b64encode(_dumps(event)).decode("ascii")})
            elif shape.wrapped_in:
                payload = _dumps(event[shape.wrapped_in])
            else:
                payload = _dumps(event)
            out.append(Frame(shape.headers, payload).encode())
        return b"".join(out)


def _may_hold(data: bytes) -> bool:
    """Whether JSON text may hold a placeholder, or the start of one."""
    return b"<" in data or b"\\u003" in data


def _dumps(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
