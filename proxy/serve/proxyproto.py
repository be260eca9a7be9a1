"""The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer puts in front
of a connection to say which client it carries.

Behind a load balancer the proxy otherwise sees the balancer's address as every client's,
which breaks `network.clients`, address-based groups, coaching grants without authentication
and the per-network report. The header is read only on connections from the addresses the
operator names (`--proxy-protocol-from`); from them it is required, and from anyone else it is
never honoured (a client could claim any address).

Only what a decision needs is kept: the source address. `LOCAL` (v2) and `UNKNOWN` (v1) are
the balancer's own connections (health checks): no client is named, and the balancer's
address stands. See https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107  # bytes, CRLF included (the specification's limit)
V2_MAX_BODY = 4096  # addresses and TLVs; the specification allows more, nobody sends it
_V2_FAMILIES = {0x11: (4, 12), 0x12: (4, 12), 0x21: (16, 36), 0x22: (16, 36)}  # ip len, body


class NotProxyProtocol(ValueError):
    """The bytes are not a valid PROXY protocol header."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    length: int  # bytes of the connection the header takes
    source: tuple[str, int] | None  # the client's address and port; None: the balancer's own


def read_header(data: bytes) -> ProxyHeader | None:
    """The header at the start of `data`; None while more bytes are needed."""
    if not data:
        return None
    if data[:1] == b"\r":
        return _read_v2(data)
    if data[:1] == b"P":
        return _read_v1(data)
    raise NotProxyProtocol("the connection does not start with a PROXY protocol header")


def _read_v1(data: bytes) -> ProxyHeader | None:
    if not data.startswith(V1_PREFIX[: len(data)]):
        raise NotProxyProtocol("not a PROXY protocol v1 header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise NotProxyProtocol(f"a PROXY protocol v1 line longer than {V1_MAX} bytes")
        return None
    words = data[len(V1_PREFIX) : end].decode("ascii", "replace").split(" ")
    if words[0] == "UNKNOWN":
        return ProxyHeader(end + 2, None)
    if len(words) != 5 or words[0] not in ("TCP4", "TCP6"):
        raise NotProxyProtocol("a PROXY protocol v1 line that is not TCP4 or TCP6 with 4 fields")
    family, source, _dest, sport, _dport = words
    try:
        ip = ipaddress.ip_address(source)
        port = int(sport)
    except ValueError:
        raise NotProxyProtocol(
            f"a PROXY protocol v1 source that is no address: {source!r}"
        ) from None
    if (ip.version == 4) != (family == "TCP4") or not 0 <= port <= 65535:
        raise NotProxyProtocol("a PROXY protocol v1 source that does not match its family")
    return ProxyHeader(end + 2, (str(ip), port))


def _read_v2(data: bytes) -> ProxyHeader | None:
    if not V2_SIGNATURE.startswith(data[:12]):
        raise NotProxyProtocol("not a PROXY protocol v2 signature")
    if len(data) < 16:
        return None
    version_command, family, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if version_command >> 4 != 2:
        raise NotProxyProtocol("a PROXY protocol header of a version other than 2")
    if length > V2_MAX_BODY:
        raise NotProxyProtocol(f"a PROXY protocol v2 header longer than {V2_MAX_BODY} bytes")
    if len(data) < 16 + length:
        return None
    total = 16 + length
    command = version_command & 0x0F
    if command == 0x0:  # LOCAL: the balancer's own connection
        return ProxyHeader(total, None)
    if command != 0x1:
        raise NotProxyProtocol("a PROXY protocol v2 command other than LOCAL or PROXY")
    if family not in _V2_FAMILIES:  # UNSPEC or a UNIX socket: no client address
        return ProxyHeader(total, None)
    size, needed = _V2_FAMILIES[family]
    if length < needed:
        raise NotProxyProtocol("a PROXY protocol v2 header too short for its addresses")
    body = data[16:total]
    ip = ipaddress.ip_address(body[:size])
    port = struct.unpack("!H", body[2 * size : 2 * size + 2])[0]
    return ProxyHeader(total, (str(ip), port))
