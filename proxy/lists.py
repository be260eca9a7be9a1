"""Community AI-domain lists (v2fly, AdBlock/AdGuard, hosts, plain, reference TSV) as entries.

Read once, so that coverage checks (and later imports) compare the catalog with the lists
admins already trust, in their own syntax, without a converter per tool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("v2fly", "adguard", "abp", "hosts", "plain", "reference")

DOMAIN, FULL, URL = "domain", "full", "url"

_HOSTS_SINKS = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1", "::0"})
_ABP_RULE = re.compile(r"\|\|([A-Za-z0-9._-]+)\^")
_NAME = re.compile(r"[A-Za-z0-9_*-]+(\.[A-Za-z0-9_*-]+)*\.?")


class ListError(ValueError):
    """A list that cannot be read at all (missing file, unknown format, wrong columns)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One list entry: `kind` domain (d and its subdomains), full (exactly host) or url."""

    kind: str
    value: str  # the host, or host/path for a url entry
    label: str = ""  # the list's own group (v2fly file: heading @attrs, AdGuard service...)
    list: str = ""  # the list it is counted in (the reference format's third column)

    @property
    def host(self) -> str:
        return self.value.partition("/")[0]

    @property
    def path(self) -> str:
        return "/" + self.value.partition("/")[2] if self.kind == URL else "/"

    def probes(self) -> list[str]:
        """The URLs whose classification decides whether a catalog recognises this entry."""
        if self.kind == DOMAIN:
            return [
                f"https://{self.value}/",
                f"https://www.{self.value}/",
                f"https://api.{self.value}/",
            ]
        return [f"https://{self.host}{self.path}"]


@dataclass(slots=True)
class ParsedList:
    """The entries of one file, and what could not be taken from it (said, never silently lost)."""

    path: Path
    format: str
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # includes unresolved, regexps left out...
    skipped: int = 0  # rules of the file that are not host entries


def render(entry: Entry, fmt: str) -> str:
    """The entry written in the syntax of `fmt`, so a miss can be pasted back into such a list."""
    if fmt == "v2fly":
        return {DOMAIN: "domain:", FULL: "full:"}.get(entry.kind, "url:") + entry.value
    if fmt in ("adguard", "abp"):
        return f"||{entry.value}^" if entry.kind == DOMAIN else f"|https://{entry.value}"
    if fmt == "hosts":
        return f"0.0.0.0 {entry.host}"
    if fmt == "reference":
        prefix = {DOMAIN: "", FULL: "full:"}.get(entry.kind, "url:")
        return f"{prefix}{entry.value}\t{entry.label}" if entry.label else prefix + entry.value
    return entry.value if entry.kind != FULL else entry.host


def read_list(path: str | Path, fmt: str) -> ParsedList:
    """Parse a file in one of FORMATS, or ListError with one line saying why not."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ListError(f"unknown list format {fmt!r} (one of {', '.join(FORMATS)})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ListError(f"{path}: cannot read: {reason}") from None
    return parse(text, fmt, path)


def parse(text: str, fmt: str, path: str | Path = "<list>") -> ParsedList:
    """Parse list text; the name of `path` labels v2fly entries (a v2fly file is its group)."""
    parsed = ParsedList(Path(path), fmt)
    parser = {
        "v2fly": _v2fly,
        "adguard": _abp,
        "abp": _abp,
        "hosts": _hosts,
        "plain": _plain,
        "reference": _reference,
    }.get(fmt)
    if parser is None:
        raise ListError(f"unknown list format {fmt!r} (one of {', '.join(FORMATS)})")
    parser(text.splitlines(), parsed)
    return parsed


def guess_format(text: str) -> str:
    """The likeliest format of a list, from its first rules (for `--format auto`)."""
    lines = [ln.strip() for ln in text.splitlines()[:200]]
    if lines and lines[0].startswith("#") and any(ln.count("\t") >= 2 for ln in lines[1:]):
        return "reference"
    rules = [ln for ln in lines if ln and not ln.startswith(("#", "!", "["))]
    if any(ln.startswith(("||", "@@", "|")) for ln in rules):
        return "adguard"
    if any(ln.split()[0] in _HOSTS_SINKS for ln in rules if ln.split()):
        return "hosts"
    if any(re.match(r"(domain|full|include|regexp|keyword):", ln) for ln in rules):
        return "v2fly"
    return "plain"


def _host_ok(host: str) -> bool:
    return bool(_NAME.fullmatch(host)) and "*" not in host


def _v2fly(lines: Iterable[str], out: ParsedList) -> None:
    group, heading = out.path.name, ""
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            heading = ""
            continue
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            continue
        line = line.partition("#")[0].strip()
        words = line.split()
        rule, attrs = words[0], [w for w in words[1:] if w.startswith("@")]
        kind, _, value = rule.partition(":") if ":" in rule else ("domain", "", rule)
        label = group + (f": {heading}" if heading else "") + "".join(f" @{a[1:]}" for a in attrs)
        where = f"{out.path.name}:{number}"
        if kind == "include":
            out.notes.append(f"{where}: include:{value} not resolved (give that file too)")
        elif kind in ("regexp", "keyword"):
            out.skipped += 1
            out.notes.append(f"{where}: {kind}:{value} left out (not a host entry)")
        elif kind in ("domain", "full") and _host_ok(value):
            out.entries.append(Entry(DOMAIN if kind == "domain" else FULL, value.lower(), label))
        else:
            out.skipped += 1
            out.notes.append(f"{where}: {rule!r} not understood")


def _abp(lines: Iterable[str], out: ParsedList) -> None:
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("!") or (line.startswith("#") and not line.startswith("##")):
            continue
        if line.startswith("["):  # [Adblock Plus 2.0] header
            continue
        match = _ABP_RULE.fullmatch(line)
        if match and _host_ok(match[1]):
            out.entries.append(Entry(DOMAIN, match[1].lower()))
        else:
            out.skipped += 1
    if out.skipped:
        out.notes.append(f"{out.path.name}: {out.skipped} rules other than ||domain^ left out")


def _hosts(lines: Iterable[str], out: ParsedList) -> None:
    for raw in lines:
        words = raw.partition("#")[0].split()
        if not words:
            continue
        if words[0] not in _HOSTS_SINKS or len(words) < 2:
            out.skipped += 1
            continue
        for host in words[1:]:  # a hosts line names exact hosts, never their subdomains
            if host.lower() in ("localhost", "localhost.localdomain", "local", "broadcasthost"):
                continue
            if _host_ok(host):
                out.entries.append(Entry(FULL, host.lower()))
            else:
                out.skipped += 1
    if out.skipped:
        out.notes.append(f"{out.path.name}: {out.skipped} lines that block no host left out")


def _plain(lines: Iterable[str], out: ParsedList) -> None:
    for raw in lines:
        line = raw.partition("#")[0].strip()
        if not line:
            continue
        if _host_ok(line):
            out.entries.append(Entry(DOMAIN, line.lower()))
        else:
            out.skipped += 1
    if out.skipped:
        out.notes.append(f"{out.path.name}: {out.skipped} lines that are not a domain left out")


def _reference(lines: Iterable[str], out: ParsedList) -> None:
    for number, raw in enumerate(lines, 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        columns = raw.rstrip("\r\n").split("\t")
        if len(columns) != 3:
            raise ListError(
                f"{out.path}:{number}: expected entry<TAB>label<TAB>list, "
                f"found {len(columns)} column{'s' * (len(columns) != 1)}"
            )
        text, label, name = columns
        kind, value = DOMAIN, text
        if text.startswith("full:"):
            kind, value = FULL, text[5:]
        elif text.startswith("url:"):
            kind, value = URL, text[4:]
        if _host_ok(value.partition("/")[0]):
            out.entries.append(Entry(kind, value.lower(), label, name))
        else:
            out.skipped += 1
            out.notes.append(f"{out.path.name}:{number}: {text!r} is not a host entry")


def read_drops(path: str | Path) -> dict[str, set[str]]:
    """drops-public.tsv (`list<TAB>entry<TAB>reason`): the entries per list that are not counted."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ListError(f"{path}: cannot read: {e.strerror or e}") from None
    drops: dict[str, set[str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        columns = raw.split("\t")
        if len(columns) < 2:
            raise ListError(f"{path}:{number}: expected list<TAB>entry<TAB>reason")
        drops.setdefault(columns[0], set()).add(columns[1].lower())
    return drops


def reference_text(entry: Entry) -> str:
    """The entry as the reference format's first column writes it (how drops name it)."""
    return {DOMAIN: "", FULL: "full:"}.get(entry.kind, "url:") + entry.value
