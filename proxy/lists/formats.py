"""Community AI-domain lists (v2fly, AdBlock/AdGuard, hosts, plain, reference TSV) as entries.

Read once, so that coverage checks (and later imports) compare the catalog with the lists
admins already trust, in their own syntax, without a converter per tool.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

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
    # the service an import groups the entry under: the v2fly include it came through, else
    # its comment heading; the AdGuard service id; a hosts/plain/ABP section comment; "": none
    group: str = field(default="", compare=False)
    attrs: tuple[str, ...] = field(default=(), compare=False)  # v2fly attributes: ("ads",)

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
    left_out: list[LeftOut] = field(default_factory=list)  # each such rule, where it is


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A line of a list that gives no host entry: `where` is file:line."""

    where: str
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text!r}: {self.reason}"


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
    return parse(text, fmt, path, includes=path.parent)


def parse(
    text: str, fmt: str, path: str | Path = "<list>", includes: Path | None = None
) -> ParsedList:
    """Parse list text; the name of `path` labels v2fly entries (a v2fly file is its group).
    A v2fly `include:NAME` is resolved from the file NAME in `includes`, as v2fly's own
    tool reads its data directory; without `includes` it is noted, not followed."""
    parsed = ParsedList(Path(path), fmt)
    if fmt == "v2fly":
        _v2fly(text.splitlines(), parsed, includes)
        return parsed
    if fmt in ("adguard", "abp") and _adguard_services(text, parsed):
        return parsed
    parser = {
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


class _Headings:
    """Section comments as labels: the first comment line of a block of comments heads the
    entries below it, up to the next blank line or comment block. Header lines (`Title: x`,
    `! Version: 3`), rules of punctuation and long prose are not headings."""

    _META = re.compile(r"[A-Za-z][A-Za-z -]{0,30}:(\s|$)")

    def __init__(self, comment_marks: tuple[str, ...], cosmetic: bool = False) -> None:
        self.marks, self.cosmetic = comment_marks, cosmetic  # cosmetic: `##x` is an ABP rule
        self.heading, self._in_block = "", False

    def line(self, line: str) -> bool:
        """Take one stripped line; True when it was a blank or comment line (no rule)."""
        if not line:
            self.heading, self._in_block = "", False
            return True
        if line.startswith(self.marks) and not (self.cosmetic and line.startswith("##")):
            text = line.lstrip("".join(self.marks)).strip()
            if not self._in_block:  # a new block of comments: a new section
                self.heading = ""
            if not self.heading and self._heading_like(text):
                self.heading = text
            self._in_block = True
            return True
        self._in_block = False
        return False

    def _heading_like(self, text: str) -> bool:
        return (
            bool(text)
            and len(text) <= 80
            and not self._META.match(text)
            and any(c.isalnum() for c in text)
        )


def _v2fly(
    lines: Iterable[str],
    out: ParsedList,
    includes: Path | None,
    chain: tuple[str, ...] = (),
    filters: tuple[tuple[str, ...], ...] = (),
) -> None:
    """One v2fly data file; `chain` names the includes that led here (from the listed file)."""
    name = chain[-1] if chain else out.path.name
    headings = _Headings(("#",))
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if headings.line(line):
            continue
        heading = headings.heading
        line = line.partition("#")[0].strip()
        words = line.split()
        rule, attrs = words[0], [w for w in words[1:] if w.startswith("@")]
        kind, _, value = rule.partition(":") if ":" in rule else ("domain", "", rule)
        group = ">".join(chain) if chain else out.path.name
        label = group + (f": {heading}" if heading else "") + "".join(f" @{a[1:]}" for a in attrs)
        where = f"{name}:{number}"
        if kind == "include":
            _v2fly_include(value, attrs, where, out, includes, chain, filters)
        elif kind in ("regexp", "keyword"):
            out.skipped += 1
            out.notes.append(f"{where}: {kind}:{value} left out (not a host entry)")
            out.left_out.append(LeftOut(where, line, f"{kind} is not a host entry"))
        elif kind in ("domain", "full") and _host_ok(value):
            have = {a[1:] for a in attrs}
            if not all(_wanted(have, f) for f in filters):
                continue
            out.entries.append(
                Entry(
                    DOMAIN if kind == "domain" else FULL,
                    value.lower(),
                    label,
                    group=chain[0] if chain else heading,
                    attrs=tuple(sorted(have)),
                )
            )
        else:
            out.skipped += 1
            out.notes.append(f"{where}: {rule!r} not understood")
            out.left_out.append(LeftOut(where, line, "not understood"))


def _wanted(attrs: set[str], wanted: tuple[str, ...]) -> bool:
    """v2fly's selective include: `@a` only entries with a, `@-a` only entries without it."""
    for w in wanted:
        if w.startswith("@-"):
            if w[2:] in attrs:
                return False
        elif w[1:] not in attrs:
            return False
    return True


def _v2fly_include(
    value: str,
    attrs: list[str],
    where: str,
    out: ParsedList,
    includes: Path | None,
    chain: tuple[str, ...],
    filters: tuple[tuple[str, ...], ...],
) -> None:
    if includes is None:
        out.notes.append(f"{where}: include:{value} not resolved (give that file too)")
        return
    if value in chain or value == out.path.name or "/" in value or value.startswith("."):
        out.notes.append(f"{where}: include:{value} not resolved (it includes itself)")
        return
    target = includes / value
    try:
        text = target.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        out.notes.append(f"{where}: include:{value} not resolved (no readable file {target})")
        return
    _v2fly(text.splitlines(), out, includes, (*chain, value), (*filters, tuple(attrs)))


def _adguard_services(text: str, out: ParsedList) -> bool:
    """AdGuard's blocked services, labelled by service id: the HostlistsRegistry's
    `services.json` (`{"blocked_services": [...]}`, only the `ai` group taken) or one
    `services/<id>.yml`. False when the text is a plain filter list."""
    head = text.lstrip()
    if head.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise ListError(f"{out.path}: not an AdGuard services JSON file: {e}") from None
        services = doc.get("blocked_services") if isinstance(doc, dict) else None
        if not isinstance(services, list):
            raise ListError(f"{out.path}: a JSON list must hold 'blocked_services'")
        other = [s for s in services if isinstance(s, dict) and s.get("group", "ai") != "ai"]
        if other:
            out.notes.append(
                f"{out.path.name}: {len(other)} services outside AdGuard's 'ai' group left out"
            )
        services = [s for s in services if isinstance(s, dict) and s not in other]
    elif re.search(r"^id:", text, re.M) and re.search(r"^rules:", text, re.M):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ListError(f"{out.path}: not an AdGuard service file: {e}") from None
        services = [doc] if isinstance(doc, dict) else []
    else:
        return False
    for number, service in enumerate(services, 1):
        sid, rules = service.get("id"), service.get("rules")
        if not isinstance(sid, str) or not isinstance(rules, list):
            raise ListError(f"{out.path}: service {number} has no 'id' and 'rules'")
        for i, rule in enumerate(rules, 1):
            match = _ABP_RULE.fullmatch(str(rule).strip())
            if match and _host_ok(match[1]):
                out.entries.append(Entry(DOMAIN, match[1].lower(), sid, group=sid))
            else:
                out.skipped += 1
                where = f"{out.path.name}:{sid}:{i}"
                out.left_out.append(LeftOut(where, str(rule), "not a ||domain^ rule"))
    if out.skipped:
        out.notes.append(f"{out.path.name}: {out.skipped} rules other than ||domain^ left out")
    return True


def _abp(lines: Iterable[str], out: ParsedList) -> None:
    headings = _Headings(("!", "#"), cosmetic=True)
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if headings.line(line):
            continue
        if line.startswith("["):  # [Adblock Plus 2.0] header
            continue
        match = _ABP_RULE.fullmatch(line)
        if match and _host_ok(match[1]):
            out.entries.append(Entry(DOMAIN, match[1].lower(), group=headings.heading))
        else:
            out.skipped += 1
            why = "an exception rule" if line.startswith("@@") else "not a ||domain^ rule"
            out.left_out.append(LeftOut(f"{out.path.name}:{number}", line, why))
    if out.skipped:
        out.notes.append(f"{out.path.name}: {out.skipped} rules other than ||domain^ left out")


def _hosts(lines: Iterable[str], out: ParsedList) -> None:
    headings = _Headings(("#",))
    for number, raw in enumerate(lines, 1):
        if headings.line(raw.strip()):
            continue
        where = f"{out.path.name}:{number}"
        words = raw.partition("#")[0].split()
        if words[0] not in _HOSTS_SINKS or len(words) < 2:
            out.skipped += 1
            out.left_out.append(LeftOut(where, raw.strip(), "blocks no host"))
            continue
        for host in words[1:]:  # a hosts line names exact hosts, never their subdomains
            if host.lower() in ("localhost", "localhost.localdomain", "local", "broadcasthost"):
                continue
            if _host_ok(host):
                out.entries.append(Entry(FULL, host.lower(), group=headings.heading))
            else:
                out.skipped += 1
                out.left_out.append(LeftOut(where, host, "not a host name"))
    if out.skipped:
        out.notes.append(f"{out.path.name}: {out.skipped} lines that block no host left out")


def _plain(lines: Iterable[str], out: ParsedList) -> None:
    headings = _Headings(("#",))
    for number, raw in enumerate(lines, 1):
        if headings.line(raw.strip()):
            continue
        line = raw.partition("#")[0].strip()
        if _host_ok(line):
            out.entries.append(Entry(DOMAIN, line.lower(), group=headings.heading))
        else:
            out.skipped += 1
            out.left_out.append(LeftOut(f"{out.path.name}:{number}", line, "not a domain"))
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
