"""Canonical forms of hosts and paths, so that spelling tricks cannot dodge a rule.

A host is matched in lower case, without port, brackets or trailing dot, Unicode names in their
IDNA (punycode) form and numeric IPv4 spellings (`0x7f.1`, `2130706433`) as dotted quads.
A path is matched with its query removed, percent-escapes decoded once, backslashes as slashes,
`;params` dropped, empty and dot segments resolved, and no trailing slash.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from functools import lru_cache
from urllib.parse import unquote, urlsplit

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
HOST_NAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}")
_NUMERIC_V4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}")
_NEEDS_WORK = re.compile(r"[%\\;#]|//|/\.|^\.")  # anything a plain path never holds

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BadHost(ValueError):
    """A host name that cannot be put in canonical form."""


@lru_cache(maxsize=16384)
def normalize_host(raw: str) -> str:
    """The canonical form of a host (optionally with port / IPv6 brackets) or BadHost."""
    host = raw.strip()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise BadHost(f"unbalanced bracket in {raw!r}")
        return _canonical_ip(host[1:end], raw)
    if host.count(":") == 1:
        host, _, port = host.partition(":")
        if port and not port.isdigit():
            raise BadHost(f"bad port in {raw!r}")
    elif ":" in host:
        return _canonical_ip(host, raw)
    host = host.rstrip(".").lower()
    if not host:
        raise BadHost("empty host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise BadHost(f"not a valid international name: {raw!r}") from e
    if _NUMERIC_V4.fullmatch(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError as e:
            raise BadHost(f"not a valid IPv4 address: {raw!r}") from e
    if len(host) > 253 or not HOST_NAME.fullmatch(host):
        raise BadHost(f"not a valid host name: {raw!r}")
    return host


def _canonical_ip(text: str, raw: str) -> str:
    address = parse_ip(text)
    if address is None:
        raise BadHost(f"not a valid IP address: {raw!r}")
    return str(address)


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """The one reading of an IP address (a client's, a listener's, a resolver's answer): an
    IPv6 zone dropped and an IPv4-mapped IPv6 address read as the IPv4 address it maps, so
    that no spelling of an address escapes a network it is in; None when it is not one."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_ip(host: str) -> bool:
    """True for a canonical host that is an IP literal."""
    return host[-1:].isdigit() or ":" in host


def normalize_path(raw: str) -> str:
    """The canonical form of a request path (query and fragment removed)."""
    path = raw.partition("?")[0]
    if not _NEEDS_WORK.search(path):
        if path.startswith("/"):
            return path if len(path) == 1 or path[-1] != "/" else path.rstrip("/") or "/"
        return "/" + path.rstrip("/")
    path = path.partition("#")[0]
    if "%" in path:
        path = unquote(path, errors="replace")
    path = path.replace("\\", "/")
    segments: list[str] = []
    for segment in path.split("/"):
        segment = segment.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def split_url(url: str) -> tuple[str, str, str, int]:
    """(scheme, canonical host, canonical path, port) of an absolute http(s) URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss"):
        raise BadHost(f"not an http(s) URL: {url!r}")
    netloc = parts.netloc.rpartition("@")[2]
    if not netloc:
        raise BadHost(f"no host in {url!r}")
    host = normalize_host(netloc)
    try:
        port = parts.port or (443 if scheme in ("https", "wss") else 80)
    except ValueError as e:
        raise BadHost(f"bad port in {url!r}") from e
    return scheme, host, normalize_path(parts.path or "/"), port
