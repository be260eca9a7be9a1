"""Restoration: the service's answer to a request redacted with `restore: true` gets the
originals back in place of the request's placeholders.

- Streams stay streamed: server-sent events (sse.py), JSON lines (ndjson.py) and AWS event
  streams (eventstream.py). Each chunk passes through the restorer of its format (held back
  only where a placeholder may be split), decoded on the way if compressed; the length of the
  stream changes, so its Content-Length and Content-Encoding are dropped.
- JSON and text answers are held whole (mitmproxy decodes and re-encodes them, and fixes
  Content-Length), up to MAX_HELD_BYTES; larger ones pass as they came, with placeholders.
  Over 64 KiB the work runs in a thread, off the event loop.

Whatever cannot be restored (an unknown encoding, a body that is not what its type says, an
error) is sent on unrestored and logged without values: the service only ever saw
placeholders, so the client sees placeholders, never anything else. Every answer is counted
once in aiwarden_restore_total{format, outcome}: counts, never values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Protocol

from mitmproxy import http

from proxy.mitm.answers import OFFLOAD_BYTES
from proxy.mitm.decoding import Decoder, decoder_for
from proxy.mitm.state import STATE, FlowState
from proxy.observe.logs import event
from proxy.observe.metrics import Metrics
from proxy.redact.eventstream import EventStreamRestorer
from proxy.redact.ndjson import NdjsonRestorer
from proxy.redact.restore import JsonRestorer, TextRestorer
from proxy.redact.sse import SseRestorer

MAX_HELD_BYTES = 16 * 1024 * 1024  # an answer held whole to restore it: at most this
_NDJSON = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                     "application/x-jsonl", "application/jsonlines",
                     "application/x-jsonlines"})  # fmt: skip


class StreamRestorer(Protocol):
    """What sse.py, ndjson.py and eventstream.py each provide for their framing."""

    passing: bool
    failure: str | None
    misread: int

    @property
    def replaced(self) -> int: ...
    def feed(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


_STREAMED: dict[str, Callable[[Mapping[str, str]], StreamRestorer]] = {
    "sse": SseRestorer,
    "ndjson": NdjsonRestorer,
    "eventstream": EventStreamRestorer,
}

Count = Callable[[str], None]  # counts an answer's outcome


class Restoration:
    """Chooses, at the answer's headers, to stream it through a restorer or to hold it whole;
    restores a held one once it is complete."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        originals = _originals(flow)
        if not originals:
            return
        kind = _kind(flow.response)
        try:
            if kind in _STREAMED:
                self._stream(flow, kind, originals)
            elif kind != "other":
                self._hold(flow, kind)
            else:
                self._count(kind, "skipped")
        except Exception as e:  # the answer goes on as it came: with placeholders only
            _skipped(flow, f"error: {type(e).__name__}")
            self._count(kind, "failed")

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        originals = _originals(flow)
        response = flow.response
        if not originals or response is None or response.stream:
            return None
        kind = _kind(response)
        if kind not in ("json", "text"):
            return None
        try:
            raw = response.get_content(strict=True)
        except ValueError:
            _skipped(flow, "undecodable body")
            self._count(kind, "skipped")
            return None
        if not raw:
            self._count(kind, "unchanged")
            return None
        if len(raw) > OFFLOAD_BYTES:
            return self._in_thread(flow, raw, kind, originals)
        try:
            self._count(kind, _restore_body(flow, raw, kind, originals))
        except Exception as e:  # sent on as it came: with placeholders only
            _skipped(flow, f"error: {type(e).__name__}")
            self._count(kind, "failed")
        return None

    def _count(self, kind: str, outcome: str) -> None:
        self.metrics.restores(kind, outcome).inc()

    # -- at the headers --------------------------------------------------------------------------

    def _stream(self, flow: http.HTTPFlow, kind: str, originals: Mapping[str, str]) -> None:
        headers = flow.response.headers
        encoding = headers.get("content-encoding", "")
        decoder = decoder_for(encoding)
        if decoder is None:
            _skipped(flow, "content-encoding")
            self._count(kind, "skipped")
            return
        headers.pop("content-encoding", None)  # sent on decoded
        had_length = headers.pop("content-length", None) is not None  # the length changes
        if had_length and flow.request.http_version == "HTTP/1.1":
            headers.setdefault("transfer-encoding", "chunked")
        restorer = _STREAMED[kind](originals)
        count = partial(self._count, kind)
        flow.response.stream = RestoringStream(flow.request.pretty_host, decoder, restorer, count)

    def _hold(self, flow: http.HTTPFlow, kind: str) -> None:
        length = flow.response.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_HELD_BYTES:
            _skipped(flow, "too large")
            self._count(kind, "skipped")
            return
        flow.response.stream = False  # held whole, then restored in `response`

    # -- whole answers off the event loop --------------------------------------------------------

    def _in_thread(
        self, flow: http.HTTPFlow, raw: bytes, kind: str, originals: Mapping[str, str]
    ) -> Awaitable[None]:
        async def off_loop() -> None:
            # mitmproxy waits for this hook before it touches the flow again: the thread has it
            try:
                outcome = await asyncio.to_thread(_restore_body, flow, raw, kind, originals)
            except Exception as e:
                _skipped(flow, f"error: {type(e).__name__}")
                outcome = "failed"
            self._count(kind, outcome)

        return off_loop()


class RestoringStream:
    """The callable mitmproxy passes each chunk of a streamed answer to (b"" at its end).

    It answers with a list of chunks, empty when everything is held back: mitmproxy sends an
    empty bytes chunk as it is, and to an HTTP/1.1 client a chunk of length 0 ends the body.
    """

    def __init__(
        self,
        host: str,
        decoder: Decoder,
        restorer: StreamRestorer,
        count: Count = lambda outcome: None,
    ) -> None:
        self.host = host
        self.decoder = decoder
        self.restorer = restorer
        self.count = count
        self.broken = False  # the encoding failed: nothing more can be sent
        self.failed = False  # restoring failed: the rest passes decoded, unrestored

    def __call__(self, data: bytes) -> list[bytes]:
        out = self._restored(data)
        return [out] if out else []

    def _restored(self, data: bytes) -> bytes:
        if self.broken:
            return b""
        try:
            decoded = self.decoder.decode(data) if data else self.decoder.flush()
        except Exception as e:  # the rest cannot be read: the answer ends here
            self.broken = True
            event("restore_failed", host=self.host, reason=f"decoding: {type(e).__name__}")
            self.count("failed")
            return b""
        if self.failed:
            return decoded
        try:
            out = self.restorer.feed(decoded)
            if self.restorer.failure is not None:  # it passes the rest as it comes
                self._fail(self.restorer.failure)
                return out
            if data:
                return out
            out += self.restorer.finish()
            self._finished()
            return out
        except Exception as e:  # the rest passes unrestored: placeholders, never secrets
            self._fail(type(e).__name__)
            return decoded

    def _fail(self, reason: str) -> None:
        self.failed = True
        event("restore_failed", host=self.host, reason=reason)
        self.count("failed")

    def _finished(self) -> None:
        restorer = self.restorer
        if restorer.misread:
            event("restore_partial", host=self.host, misread=restorer.misread)
        if restorer.passing:  # an event or line too long to hold: the rest passed as it came
            event("restore_skipped", host=self.host, reason="event too large")
            self.count("skipped")
        else:
            self.count("restored" if restorer.replaced else "unchanged")


# -- helpers -------------------------------------------------------------------------------------


def _restore_body(flow: http.HTTPFlow, raw: bytes, kind: str, originals: Mapping[str, str]) -> str:
    """Restore a whole body; the content setter re-encodes it and fixes Content-Length.
    Returns the outcome to count."""
    if kind == "json":
        restorer = JsonRestorer(originals)
        restored = restorer(raw)
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            _skipped(flow, "not UTF-8")
            return "skipped"
        restorer = TextRestorer(originals)
        restored = (restorer.feed(text) + restorer.flush()).encode("utf-8")
    if restored != raw:
        flow.response.content = restored
    return "restored" if restorer.replaced else "unchanged"


def _originals(flow: http.HTTPFlow) -> Mapping[str, str] | None:
    state: FlowState | None = flow.metadata.get(STATE)
    return state.originals if state is not None else None


def _kind(response: http.Response) -> str:
    """sse, ndjson, eventstream (streamed), json, text (held), or other: not restored."""
    mime = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime == "text/event-stream":
        return "sse"
    if mime in _NDJSON:
        return "ndjson"
    if mime == "application/vnd.amazon.eventstream":
        return "eventstream"
    if mime == "application/json" or mime.endswith("+json"):
        return "json"
    if mime.startswith("text/"):
        return "text"
    return "other"


def _skipped(flow: http.HTTPFlow, reason: str) -> None:
    event("restore_skipped", host=flow.request.pretty_host, reason=reason)
