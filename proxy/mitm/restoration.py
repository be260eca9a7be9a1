"""Restoration: the service's answer to a request redacted with `restore: true` gets the
originals back in place of the request's placeholders.

- Server-sent events stay streamed: each chunk passes through an SseRestorer (held back only
  where a placeholder may be split), decoded on the way if compressed; the length of the
  stream changes, so its Content-Length and Content-Encoding are dropped.
- JSON and text answers are held whole (mitmproxy decodes and re-encodes them, and fixes
  Content-Length), up to MAX_HELD_BYTES; larger ones pass as they came, with placeholders.
  Over 64 KiB the work runs in a thread, off the event loop.

Whatever cannot be restored (an unknown encoding, a body that is not what its type says, an
error) is sent on unrestored and logged without values: the service only ever saw
placeholders, so the client sees placeholders, never anything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping

from mitmproxy import http

from proxy.mitm.answers import OFFLOAD_BYTES
from proxy.mitm.decoding import Decoder, decoder_for
from proxy.mitm.state import STATE, FlowState
from proxy.observe.logs import event
from proxy.redact.restore import JsonRestorer, TextRestorer
from proxy.redact.sse import SseRestorer

MAX_HELD_BYTES = 16 * 1024 * 1024  # an answer held whole to restore it: at most this


class Restoration:
    """Chooses, at the answer's headers, to stream it through a restorer or to hold it whole;
    restores a held one once it is complete."""

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        originals = _originals(flow)
        if not originals:
            return
        try:
            kind = _kind(flow.response)
            if kind == "events":
                self._stream(flow, originals)
            elif kind is not None:
                self._hold(flow)
        except Exception as e:  # the answer goes on as it came: with placeholders only
            _skipped(flow, f"error: {type(e).__name__}")

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        originals = _originals(flow)
        response = flow.response
        if not originals or response is None or response.stream:
            return None
        kind = _kind(response)
        if kind is None or kind == "events":
            return None
        try:
            raw = response.get_content(strict=True)
        except ValueError:
            _skipped(flow, "undecodable body")
            return None
        if not raw:
            return None
        if len(raw) > OFFLOAD_BYTES:
            return _in_thread(flow, raw, kind, originals)
        try:
            _restore_body(flow, raw, kind, originals)
        except Exception as e:  # sent on as it came: with placeholders only
            _skipped(flow, f"error: {type(e).__name__}")
        return None

    # -- at the headers --------------------------------------------------------------------------

    @staticmethod
    def _stream(flow: http.HTTPFlow, originals: Mapping[str, str]) -> None:
        headers = flow.response.headers
        encoding = headers.get("content-encoding", "")
        decoder = decoder_for(encoding)
        if decoder is None:
            _skipped(flow, "content-encoding")
            return
        headers.pop("content-encoding", None)  # sent on decoded
        had_length = headers.pop("content-length", None) is not None  # the length changes
        if had_length and flow.request.http_version == "HTTP/1.1":
            headers.setdefault("transfer-encoding", "chunked")
        flow.response.stream = RestoringStream(flow.request.pretty_host, decoder, originals)

    @staticmethod
    def _hold(flow: http.HTTPFlow) -> None:
        length = flow.response.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_HELD_BYTES:
            _skipped(flow, "too large")
            return
        flow.response.stream = False  # held whole, then restored in `response`


class RestoringStream:
    """The callable mitmproxy passes each chunk of a streamed answer to (b"" at its end).

    It answers with a list of chunks, empty when everything is held back: mitmproxy sends an
    empty bytes chunk as it is, and to an HTTP/1.1 client a chunk of length 0 ends the body.
    """

    def __init__(self, host: str, decoder: Decoder, originals: Mapping[str, str]) -> None:
        self.host = host
        self.decoder = decoder
        self.restorer = SseRestorer(originals)
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
            return b""
        if self.failed:
            return decoded
        try:
            out = self.restorer.feed(decoded)
            if data:
                return out
            if self.restorer.misread:
                event("restore_partial", host=self.host, misread=self.restorer.misread)
            return out + self.restorer.finish()
        except Exception as e:  # the rest passes unrestored: placeholders, never secrets
            self.failed = True
            event("restore_failed", host=self.host, reason=type(e).__name__)
            return decoded


# -- whole answers -------------------------------------------------------------------------------


def _restore_body(flow: http.HTTPFlow, raw: bytes, kind: str, originals: Mapping[str, str]) -> None:
    """Restore a whole body; the content setter re-encodes it and fixes Content-Length."""
    if kind == "json":
        restored = JsonRestorer(originals)(raw)
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            _skipped(flow, "not UTF-8")
            return
        restorer = TextRestorer(originals)
        restored = (restorer.feed(text) + restorer.flush()).encode("utf-8")
    if restored != raw:
        flow.response.content = restored


def _in_thread(
    flow: http.HTTPFlow, raw: bytes, kind: str, originals: Mapping[str, str]
) -> Awaitable[None]:
    async def off_loop() -> None:
        # mitmproxy waits for this hook before it touches the flow again: the thread has it
        try:
            await asyncio.to_thread(_restore_body, flow, raw, kind, originals)
        except Exception as e:
            _skipped(flow, f"error: {type(e).__name__}")

    return off_loop()


# -- helpers -------------------------------------------------------------------------------------


def _originals(flow: http.HTTPFlow) -> Mapping[str, str] | None:
    state: FlowState | None = flow.metadata.get(STATE)
    return state.originals if state is not None else None


def _kind(response: http.Response) -> str | None:
    """events (server-sent), json, text, or None: nothing to restore in it."""
    mime = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if mime == "text/event-stream":
        return "events"
    if mime == "application/json" or mime.endswith("+json"):
        return "json"
    if mime.startswith("text/"):
        return "text"
    return None


def _skipped(flow: http.HTTPFlow, reason: str) -> None:
    event("restore_skipped", host=flow.request.pretty_host, reason=reason)
