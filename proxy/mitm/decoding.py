"""Content-Encoding undone chunk by chunk, for a streamed answer that must be read as it
passes (restoring placeholders in server-sent events).

mitmproxy decodes whole bodies only; a stream is decoded here, with the same libraries, and
sent on decoded (the caller drops the Content-Encoding header). gzip, deflate, br and zstd, as
mitmproxy supports; any other coding, or several, has no decoder (`decoder_for` is None).
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli

try:  # as mitmproxy.net.encoding imports it
    from compression import zstd
except ImportError:  # Python < 3.14
    from backports import zstd


class Decoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Identity:
    def decode(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Zlib:
    """gzip, or deflate with its zlib header (wbits 47: either, detected)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(47)

    def decode(self, data: bytes) -> bytes:
        return self._d.decompress(data)

    def flush(self) -> bytes:
        return self._d.flush()


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def decode(self, data: bytes) -> bytes:
        return self._d.process(data)

    def flush(self) -> bytes:
        return b""


class _Zstd:
    def __init__(self) -> None:
        self._d = zstd.ZstdDecompressor()

    def decode(self, data: bytes) -> bytes:
        return self._d.decompress(data)

    def flush(self) -> bytes:
        return b""


_DECODERS = {"": _Identity, "identity": _Identity, "gzip": _Zlib, "x-gzip": _Zlib,
             "deflate": _Zlib, "br": _Brotli, "zstd": _Zstd}  # fmt: skip


def decoder_for(content_encoding: str) -> Decoder | None:
    """A fresh decoder for a Content-Encoding header's value (None: not one we decode)."""
    factory = _DECODERS.get(content_encoding.strip().lower())
    return factory() if factory is not None else None
