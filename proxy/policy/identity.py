"""Who is behind a request, besides proxy authentication: the policy's `identity:` section.

Sources, tried in the policy's `order` (the first that names a user wins):
- `proxy_auth`: the proxy's own authentication (`--proxyauth`: Basic with htpasswd or LDAP,
  Kerberos);
- `header`: an identity another proxy already established, in `X-Authenticated-User` (and a
  groups header), believed **only** from the `trusted` addresses (the downstream proxies) and
  removed from every request, whoever sent it, so it never reaches a server;
- `address_map`: a map of client addresses to users (a file, and what an identity collector
  pushes to the admin listener), as the commercial gateways' "IP surrogates" do.

`directory:` (policy/directory.py) is no source of users: it looks up the groups of the user
a source named, in LDAP.

Names are read as the products that send them write them (`WinNT://CORP/alice`,
`CORP\\alice`, `alice@CORP.EXAMPLE`, optionally base64) and reduced to the bare name unless
`keep_domain` is set, so that rules, grants and the audit log name `alice`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from proxy.policy.directory import DirectorySettings, parse_directory
from proxy.policy.yamlsource import Fields, Mapping, Problems, type_name

SOURCES = ("proxy_auth", "header", "address_map")
ENCODINGS = ("plain", "base64")
DEFAULT_USER_HEADER = "X-Authenticated-User"
DEFAULT_GROUPS_HEADER = "X-Authenticated-Groups"
DEFAULT_MAP_TTL = 8 * 3600  # seconds a pushed address-to-user entry holds
MAX_NAME = 256
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_USER = re.compile(r"[^\s,;]{1,256}")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TrustedHeaders:
    trusted: tuple[Network, ...]  # the downstream proxies whose headers are believed
    user: str = DEFAULT_USER_HEADER
    groups: str | None = DEFAULT_GROUPS_HEADER
    encoding: str = "plain"  # plain | base64


@dataclass(frozen=True, slots=True)
class AddressMap:
    entries: dict[str, str] = field(default_factory=dict)  # canonical address -> user, the file's
    ttl: int = DEFAULT_MAP_TTL  # for pushed entries without their own
    # an address that changes hands more than `max_changes` times in `window` seconds is not
    # believed for `quarantine` seconds (shared and NATed addresses, DHCP churn)
    max_changes: int = 3
    window: int = 600
    quarantine: int = 3600


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    order: tuple[str, ...] = ("proxy_auth",)
    headers: TrustedHeaders | None = None
    address_map: AddressMap | None = None
    keep_domain: bool = False
    directory: DirectorySettings | None = None  # where users' groups are looked up (LDAP)

    def header_names(self) -> tuple[str, ...]:
        """Identity headers removed from every request (never believed from others, never
        forwarded)."""
        h = self.headers or TrustedHeaders(())
        return tuple(n for n in (h.user, h.groups) if n)


def bare_name(text: str, keep_domain: bool = False) -> str | None:
    """`WinNT://CORP/alice`, `CORP\\alice`, `alice@CORP.EXAMPLE` -> `alice` (or the whole
    with keep_domain); None for what is no name."""
    text = text.strip()
    if text.lower().startswith("winnt://"):
        text = text[len("winnt://") :].replace("/", "\\", 1)
    if not keep_domain:
        text = text.rsplit("\\", 1)[-1].split("@", 1)[0]
    text = text.strip()
    return text if _USER.fullmatch(text) else None


def decode(value: str, encoding: str) -> str | None:
    """A header value as sent: plain, or base64 of UTF-8 text."""
    if encoding == "plain":
        return value
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def parse_identity(
    node: object,
    policy_dir: Path,
    file: str,
    line: int,
    problems: Problems,
    cidrs,
    read,
    read_secret,
) -> IdentitySettings:
    """The `identity:` section, every problem at its file:line. `cidrs(fields, key)` reads a
    list of networks as the rest of the policy does; `read(path)` reads a file the policy
    names (so that a change to it is a change of the policy, and reloads it);
    `read_secret(path)` a password file (a change to it reloads, its bytes stay out of the
    policy's digest)."""
    if node is None:
        return IdentitySettings()
    if not isinstance(node, Mapping):
        problems.add(file, line, f"identity: must be a mapping, not {type_name(node)}")
        return IdentitySettings()
    f = Fields(node, "identity", problems,
               allowed=("order", "header", "address_map", "keep_domain", "directory"))  # fmt: skip
    headers = _headers(f, cidrs, problems)
    address_map = _address_map(f, policy_dir, problems, read)
    configured = {"proxy_auth": True, "header": headers is not None,
                  "address_map": address_map is not None}  # fmt: skip
    order = tuple(s for s in SOURCES if configured[s])
    items = f.str_items("order")
    if items is not None:
        order = []
        for text, item_line in items:
            if text not in SOURCES:
                problems.add(node.file, item_line,
                             f"identity.order: unknown source {text!r}; sources are "
                             f"{', '.join(SOURCES)}")  # fmt: skip
            elif not configured[text]:
                why = f"identity.order: {text!r} is not configured in identity:"
                problems.add(node.file, item_line, why)
            elif text in order:
                problems.add(node.file, item_line, f"identity.order: {text!r} is listed twice")
            else:
                order.append(text)
        order = tuple(order)
    directory_spec = f.mapping("directory")
    directory = None
    if directory_spec is not None:
        directory = parse_directory(directory_spec, policy_dir, problems, read_secret)
    return IdentitySettings(tuple(order), headers, address_map, f.bool("keep_domain"), directory)


def _headers(f: Fields, cidrs, problems: Problems) -> TrustedHeaders | None:
    spec = f.mapping("header")
    if spec is None:
        return None
    allowed = ("trusted", "user", "groups", "encoding")
    h = Fields(spec, "identity.header", problems, allowed=allowed, required=("trusted",))
    trusted = cidrs(h, "trusted") or ()
    names = {}
    for key, default in (("user", DEFAULT_USER_HEADER), ("groups", DEFAULT_GROUPS_HEADER)):
        name = h.str(key, default)
        if name is not None and not _HEADER_NAME.fullmatch(name):
            h.error(key, f"{key}: {name!r} is not a header name")
        names[key] = name
    encoding = h.str("encoding", "plain", choices=ENCODINGS) or "plain"
    return TrustedHeaders(tuple(trusted), names["user"] or DEFAULT_USER_HEADER,
                          names["groups"], encoding)  # fmt: skip


def _address_map(f: Fields, policy_dir: Path, problems: Problems, read) -> AddressMap | None:
    spec = f.mapping("address_map")
    if spec is None:
        return None
    m = Fields(spec, "identity.address_map", problems,
               allowed=("file", "ttl_seconds", "max_changes", "window_seconds",
                        "quarantine_seconds"))  # fmt: skip
    entries: dict[str, str] = {}
    name = m.str("file")
    if name is not None:
        path = (policy_dir / name).resolve()
        text = read(path)
        entries = _map_entries(text, str(path), problems) if text is not None else {}
    base = AddressMap()

    def whole(key: str, default: int, low: int, high: int) -> int:
        value = m.int(key)
        if value is None:
            return default
        if not low <= value <= high:
            m.error(key, f"{key!r} must be from {low} to {high}, not {value}")
            return default
        return value

    return AddressMap(
        entries,
        ttl=whole("ttl_seconds", base.ttl, 60, 7 * 86400),
        max_changes=whole("max_changes", base.max_changes, 1, 1000),
        window=whole("window_seconds", base.window, 1, 86400),
        quarantine=whole("quarantine_seconds", base.quarantine, 0, 7 * 86400),
    )


def _map_entries(text: str, file: str, problems: Problems) -> dict[str, str]:
    """`ADDRESS USER` per line; `#` starts a comment."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            problems.add(file, number, "an address-map line is 'ADDRESS USER'")
            continue
        try:
            address = str(ipaddress.ip_address(words[0]))
        except ValueError:
            problems.add(file, number, f"{words[0]!r} is not an IP address")
            continue
        user = bare_name(words[1], keep_domain=True)
        if user is None:
            problems.add(file, number, f"{words[1]!r} is not a user name")
        elif address in entries:
            problems.add(file, number, f"{address} is mapped twice")
        else:
            entries[address] = words[1]
    return entries
