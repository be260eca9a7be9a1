"""The PROXY protocol reader (proxy/serve/proxyproto.py): v1 and v2 headers as HAProxy and
the cloud load balancers send them, cut anywhere, and what is not one."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from proxy.serve.proxyproto import V2_SIGNATURE, NotProxyProtocol, ProxyHeader, read_header


def v2(command: int, family: int, body: bytes) -> bytes:
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def v2_tcp4(src: str, sport: int, tlv: bytes = b"") -> bytes:
    addrs = ipaddress.ip_address(src).packed + ipaddress.ip_address("10.0.0.1").packed
    return v2(1, 0x11, addrs + struct.pack("!HH", sport, 3128) + tlv)


def v2_tcp6(src: str, sport: int) -> bytes:
    addrs = ipaddress.ip_address(src).packed + ipaddress.ip_address("2001:db8::1").packed
    return v2(1, 0x21, addrs + struct.pack("!HH", sport, 3128))


REQUEST = b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    "header, source",
    [
        (b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 3128\r\n", ("203.0.113.7", 51000)),
        (b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 3128\r\n", ("2001:db8::7", 51000)),
        (b"PROXY UNKNOWN\r\n", None),  # the balancer's own health check
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None),
        (v2_tcp4("203.0.113.7", 51000), ("203.0.113.7", 51000)),
        (v2_tcp4("203.0.113.7", 51000, tlv=b"\x04\x00\x03abc"), ("203.0.113.7", 51000)),
        (v2_tcp6("2001:db8::7", 51000), ("2001:db8::7", 51000)),
        (v2(0, 0x00, b""), None),  # LOCAL
        (v2(1, 0x31, b"\x00" * 216), None),  # a UNIX socket: no client address
    ],
)
def test_headers_name_their_client_and_leave_the_rest(header, source):
    assert read_header(header + REQUEST) == ProxyHeader(len(header), source)
    for cut in range(len(header)):  # any prefix asks for more
        assert read_header(header[:cut]) is None


@pytest.mark.parametrize(
    "data, why",
    [
        (REQUEST, "does not start with a PROXY protocol header"),
        (b"PROXY TCP4 203.0.113.7 10.0.0.1 51000\r\n", "TCP4 or TCP6 with 4 fields"),
        (b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n", "does not match its family"),
        (b"PROXY TCP4 nobody 10.0.0.1 1 2\r\n", "no address"),
        (b"PROXY TCP4 10.1.1.1 10.0.0.1 70000 2\r\n", "does not match"),
        (b"PROXY " + b"x" * 120, "longer than 107"),
        (b"PROXX TCP4", "not a PROXY protocol v1 header"),
        (V2_SIGNATURE[:5] + b"X" * 20, "not a PROXY protocol v2 signature"),
        (V2_SIGNATURE + b"\x11\x11\x00\x0c" + b"\x00" * 12, "version other than 2"),
        (v2(2, 0x11, b"\x00" * 12), "command other than LOCAL or PROXY"),
        (v2(1, 0x11, b"\x00" * 4), "too short for its addresses"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", "longer than 4096"),
    ],
)
def test_what_is_not_a_header_is_refused(data, why):
    with pytest.raises(NotProxyProtocol, match=why):
        read_header(data)
