"""The `identity.directory:` block: where the groups of a user are looked up (LDAP, Active
Directory or OpenLDAP), how long an answer holds, and what happens when the directory cannot
give one.

The bind password is never in the policy: `password_file` names a file beside it (mode 0600,
owned by the service user), read when the policy is loaded and watched with it, so that a
new password is taken without a restart. What is read is never logged, nor in the policy's
digest; the settings' repr leaves it out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from proxy.policy.yamlsource import Fields, Mapping, Problems

ReadSecret = Callable[[Path], str]  # raises ValueError saying why it cannot
GROUPS_FROM = ("member_of", "search")
NESTED = ("off", "iterative", "in_chain")
# a user whose groups the directory cannot give (down beyond `stale_seconds`): `block` blocks
# their requests that a rule naming directory groups would decide (the rule might have
# refused them) and decides the rest as usual; `no_groups` decides as for a user in no group
DIRECTORY_ON_ERROR = ("block", "no_groups")
IN_CHAIN = "1.2.840.113556.1.4.1941"  # Active Directory's LDAP_MATCHING_RULE_IN_CHAIN
MAX_DEPTH = 10
_RDN = re.compile(r"[A-Za-z0-9][\w.-]*=.+")  # attribute=value (or OID=value)
_DN_TEMPLATE = re.compile(r"\{(\w+)\}")
DN_ASSERTION = re.compile(r"\((\w+)=\{dn\}\)")  # (member={dn}): followed for nesting
USER_FIELDS = ("user", "name")  # the user as rules name them; the bare name (no realm/domain)
GROUP_FIELDS = ("dn", "user", "name")  # a group search can name the user's entry, or names


@dataclass(frozen=True, slots=True)
class DirectorySettings:
    servers: tuple[str, ...]  # ldap:// or ldaps:// URLs, tried in order
    base: str  # where users (and, by default, groups) are searched
    user_filter: str  # e.g. (uid={name}); the values are escaped per RFC 4515
    bind_dn: str | None = None  # None: an anonymous bind
    password: str = field(default="", repr=False)  # from password_file; never logged
    password_file: str | None = None
    start_tls: bool = False
    ca_file: str | None = None  # to verify ldaps:// and StartTLS; None: the system's roots
    groups_from: str = "search"  # member_of (the user's memberOf) or search
    group_base: str | None = None  # None: `base`
    group_filter: str = "(member={dn})"  # for a group search; {dn}, {user} or {name}
    group_name: str = "cn"  # the group's attribute that rules' `directory:` names
    nested: str = "off"  # off | iterative (bounded by max_depth) | in_chain (AD only)
    max_depth: int = 5
    ttl: int = 300  # seconds an answer is used before the directory is asked again
    stale: int = 900  # seconds past the ttl an answer still serves while the directory fails
    on_error: str = "block"  # block | no_groups, once no answer may serve
    timeout: int = 5  # seconds for connecting, and for each operation


def parse_directory(
    spec: Mapping, policy_dir: Path, problems: Problems, read_secret: ReadSecret
) -> DirectorySettings | None:
    """The `identity.directory:` mapping, each mistake at its file:line; None when it is
    unusable (the problems say why). `read_secret(path)` reads the password file (watched
    for changes with the policy, kept out of its digest)."""
    where = "identity.directory"
    f = Fields(
        spec,
        where,
        problems,
        allowed=("servers", "base", "user_filter", "bind_dn", "password_file", "start_tls",
                 "ca_file", "groups_from", "group_base", "group_filter", "group_name",
                 "nested", "max_depth", "ttl_seconds", "stale_seconds", "on_error",
                 "timeout_seconds"),
        required=("servers", "base", "user_filter"),
    )  # fmt: skip
    servers = []
    for url, line in f.str_items("servers") or ():
        parts = urlsplit(url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            problems.add(spec.file, line, f"{where}: {url!r} is not an ldap:// or ldaps:// URL")
            continue
        try:
            parts.port  # noqa: B018 -- raises for a port that is no number or out of range
        except ValueError:
            problems.add(spec.file, line, f"{where}: {url!r} has a bad port")
            continue
        if parts.path not in ("", "/") or parts.query or parts.username:
            why = f"{where}: {url!r}: only scheme, host and port (the base DN is 'base')"
            problems.add(spec.file, line, why)
            continue
        servers.append(url)
    base = _dn(f, "base")
    user_filter = _filter(f, "user_filter", None, USER_FIELDS)
    bind_dn = _dn(f, "bind_dn")
    password, password_file = "", f.str("password_file")
    if password_file is not None:
        password = _read_password(f, (policy_dir / password_file).resolve(), read_secret)
    elif bind_dn is not None:
        f.error("bind_dn", "bind_dn needs password_file (the password is never in the policy)")
    start_tls = f.bool("start_tls")
    if start_tls and any(s.startswith("ldaps:") for s in servers):
        f.error("start_tls", "start_tls is for ldap:// servers; ldaps:// is TLS already")
    ca_file = f.str("ca_file")
    if ca_file is not None:
        ca_path = (policy_dir / ca_file).resolve()
        if not ca_path.is_file():
            f.error("ca_file", f"ca_file {str(ca_path)!r} is not a readable file")
        ca_file = str(ca_path)
    groups_from = f.str("groups_from", "search", choices=GROUPS_FROM) or "search"
    group_filter = _filter(f, "group_filter", "(member={dn})", GROUP_FIELDS)
    if groups_from == "member_of" and f.has("group_filter"):
        f.error("group_filter", "group_filter is for groups_from: search")
    group_name = f.str("group_name", "cn") or "cn"
    if spec.get("nested") is False:  # YAML reads a bare `off` (or `false`) as false
        nested = "off"
    else:
        nested = f.str("nested", "off", choices=NESTED) or "off"
    follows_dn = bool(DN_ASSERTION.search(group_filter or ""))
    if nested == "in_chain" and (groups_from != "search" or not follows_dn):
        f.error(
            "nested",
            "nested: in_chain needs groups_from: search and a group_filter with "
            "(member={dn}) in it (Active Directory's matching rule follows member links)",
        )
    if nested == "iterative" and groups_from == "search" and not follows_dn:
        f.error(
            "nested",
            "nested: iterative needs a group_filter with (ATTRIBUTE={dn}) in it: "
            "a group is found as a member of another by its DN",
        )
    bounds = {
        "max_depth": (5, 1, MAX_DEPTH),
        "ttl_seconds": (300, 1, 86400),
        "stale_seconds": (900, 0, 7 * 86400),
        "timeout_seconds": (5, 1, 60),
    }
    whole = {}
    for key, (default, low, high) in bounds.items():
        value = f.int(key)
        if value is not None and not low <= value <= high:
            f.error(key, f"{key!r} must be from {low} to {high}, not {value}")
            value = None
        whole[key] = default if value is None else value
    on_error = f.str("on_error", "block", choices=DIRECTORY_ON_ERROR) or "block"
    if not servers or base is None or user_filter is None or group_filter is None:
        return None
    return DirectorySettings(
        servers=tuple(servers),
        base=base,
        user_filter=user_filter,
        bind_dn=bind_dn,
        password=password,
        password_file=password_file,
        start_tls=start_tls,
        ca_file=ca_file,
        groups_from=groups_from,
        group_base=_dn(f, "group_base"),
        group_filter=group_filter,
        group_name=group_name,
        nested=nested,
        max_depth=whole["max_depth"],
        ttl=whole["ttl_seconds"],
        stale=whole["stale_seconds"],
        on_error=on_error,
        timeout=whole["timeout_seconds"],
    )


def _dn(f: Fields, key: str) -> str | None:
    """A distinguished name: `attribute=value` parts, separated by commas (a comma escaped
    with a backslash is part of a value)."""
    text = f.str(key)
    if text is None:
        return None
    parts = re.split(r"(?<!\\),", text)
    if not all(_RDN.fullmatch(part.strip()) for part in parts):
        f.error(key, f"{key} {text!r} is not a distinguished name like 'dc=corp,dc=example'")
        return None
    return text


def _filter(f: Fields, key: str, default: str | None, names: tuple[str, ...]) -> str | None:
    """A filter template: parenthesised, naming only the fields it may."""
    text = f.str(key, default)
    if text is None:
        return None
    if not (text.startswith("(") and text.endswith(")")) or text.count("(") != text.count(")"):
        f.error(key, f"{key} {text!r} is not an LDAP filter: '(attribute={{{names[0]}}})'")
        return None
    used = _DN_TEMPLATE.findall(text)
    unknown = sorted(set(used) - set(names))
    if unknown or not used:
        allowed = ", ".join("{" + n + "}" for n in names)
        f.error(key, f"{key} {text!r} must name the user with {allowed}"
                + (f", not {{{unknown[0]}}}" if unknown else ""))  # fmt: skip
        return None
    return text


def _read_password(f: Fields, path: Path, read_secret: ReadSecret) -> str:
    """The bind password: the file's first line. Its text never reaches a problem or a log."""
    try:
        text = read_secret(path)
    except ValueError as e:
        f.error("password_file", f"password_file {str(path)!r} cannot be read: {e}")
        return ""
    password = text.splitlines()[0] if text else ""
    if not password:
        f.error("password_file", f"password_file {str(path)!r} is empty")
    return password
