"""What the first bytes of a connection are, read as strictly as a server might read them.

mitmproxy recognises TLS only with a record version of 3.0 to 3.3 and HTTP only with a
method and a space in its first bytes; anything else it relays as raw TCP, undecided. A
TLS 1.3 server ignores the record version, and a client may send its first bytes two at a
time, so the proxy reads them itself before anything is relayed (admission's `next_layer`
and the fast path):
- `read_client_hello`: a ClientHello behind any record version, or None while incomplete;
- `server_names`: every name of every server_name entry, which mitmproxy's `sni` drops
  unless there is exactly one valid one;
- `starts_with_empty_line`: what HTTP/1 servers skip before a request line, and what makes
  mitmproxy take the request behind it for raw TCP (its own HTTP reader stalls on it);
- `may_become_http`: bytes too few to say they are not the start of an HTTP request;
- `refusal_answer`: what to tell a client whose bytes are refused.
"""

from __future__ import annotations

import re
import struct

from mitmproxy.tls import ClientHello

from proxy.mitm import compat
from proxy.policy.normalize import BadHost, normalize_host

MAX_CLIENT_HELLO = 64 * 1024  # a longer handshake is not a ClientHello anyone sends
HANDSHAKE = b"\x16"  # the TLS record type of a ClientHello
# RFC 6066 allows a DNS host name only; a port (`host:443`, which some clients send) is read
# as normalize_host reads one, and the host decided
_SNI_HOST = re.compile(r"[A-Za-z0-9._:\[\]-]{1,260}")
_METHOD_PREFIX = re.compile(rb"[A-Za-z]{0,20}")  # the longest method is under 20 letters


def read_client_hello(data: bytes) -> ClientHello | None:
    """The ClientHello at the start of `data`, whatever the record version; None while it
    is incomplete; ValueError when these bytes cannot be one."""
    if data[:1] != HANDSHAKE:
        raise ValueError("not a TLS handshake record")
    handshake, offset = b"", 0
    while len(data) >= offset + 5:
        if data[offset : offset + 1] != HANDSHAKE:
            raise ValueError("the ClientHello is interrupted by another record type")
        (size,) = struct.unpack("!H", data[offset + 3 : offset + 5])
        if size == 0:
            raise ValueError("an empty TLS record")
        if len(data) < offset + 5 + size:
            break
        handshake += data[offset + 5 : offset + 5 + size]
        offset += 5 + size
        if len(handshake) >= 4:
            if handshake[0] != 0x01:
                raise ValueError("the first handshake message is not a ClientHello")
            total = 4 + int.from_bytes(handshake[1:4], "big")
            if total > MAX_CLIENT_HELLO:
                raise ValueError("a ClientHello larger than any client sends")
            if len(handshake) >= total:
                try:
                    return ClientHello(handshake[4:total])
                except Exception as e:  # kaitai raises EOFError, ValidationError...
                    raise ValueError(f"an invalid ClientHello: {e}") from None
    if len(data) > MAX_CLIENT_HELLO + 5 * 64:
        raise ValueError("a ClientHello larger than any client sends")
    return None


def server_names(hello: ClientHello) -> list[str]:
    """Every host the ClientHello names, canonical; BadHost when one cannot be read (a
    character no host name holds, a label over 63 characters, a name type other than
    host_name)."""
    names = []
    for name_type, sent in compat.sni_entries(hello):
        raw = sent.decode("ascii", "backslashreplace")
        if name_type != 0 or not _SNI_HOST.fullmatch(raw):
            raise BadHost(f"the TLS server name {raw!r} is not a plain host name")
        names.append(normalize_host(raw))
    return names


def starts_with_empty_line(data: bytes) -> bool:
    return data[:1] in (b"\r", b"\n")


def may_become_http(data: bytes) -> bool:
    """Too few bytes yet to tell an HTTP request from something else (mitmproxy calls two
    bytes, or a method without its space, raw TCP)."""
    return _METHOD_PREFIX.fullmatch(data) is not None


def refusal_answer(data: bytes, text: str) -> bytes:
    """What to tell a client whose bytes are refused, in the framing it spoke: a TLS alert
    (handshake_failure) to a TLS record, an HTTP 400 to text, nothing to anything else."""
    if data[:1] and 0x14 <= data[0] <= 0x17:
        return b"\x15\x03\x03\x00\x02\x02\x28"
    if data[:1].isalpha() or starts_with_empty_line(data):
        body = text.encode() + b"\n"
        return (
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
    return b""
