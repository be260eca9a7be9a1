"""`aiwarden catalog import`: a community AI-domain list as catalog YAML of its own.

Each imported list becomes one file (`<list>.yaml`) in a directory the policy includes
(`catalog: [catalog, imported]`): one domain-level service per label of the list. What the
curated catalog already recognises stays with it; an entry that would catch a shared host (a
path-scoped curated service's host, a domain the curated catalog claims only part of, a public
or shared-hosting suffix, a host of a negative list) is reported, never imported. The files are
rewritten whole, atomically, and only when their content changes: importing the same list
again changes nothing, not even a date.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from publicsuffixlist import PublicSuffixList

from proxy.lists.formats import DOMAIN, Entry, LeftOut, ParsedList
from proxy.policy.catalog import Service, load_catalog_files, parse_services
from proxy.policy.patterns import HostIndex, HostPattern, PatternError, parse_host_pattern
from proxy.policy.yamlsource import Fields, Mapping, Problem, Problems, Sequence, Sources, load_yaml

# a name no catalog lists: whether `*.d` is taken is asked with PROBE.d
PROBE = "aiwarden-import-probe"
ADS = "ads"  # v2fly's attribute for ad and tracking hosts


class ImportProblem(Exception):
    """An import that cannot go on: the problems (file:line: message) say why."""

    def __init__(self, problems: Iterable[Problem | str]) -> None:
        self.problems = [str(p) for p in problems]
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class Skip:
    """An entry not imported: `service` when something else has it, else the conflict."""

    entry: Entry
    label: str
    reason: str
    service: str | None = None


@dataclass(slots=True)
class Planned:
    """One service of an imported file, with its hosts in list order."""

    id: str
    label: str
    hosts: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    checked: str = ""
    status: str = "new"  # new, changed or unchanged


@dataclass(slots=True)
class ListImport:
    """What importing one list did (or, with dry_run, would do)."""

    parsed: ParsedList
    name: str  # the list's name: its file name
    out: Path
    services: list[Planned] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    catalogued: list[Skip] = field(default_factory=list)
    conflicts: list[Skip] = field(default_factory=list)
    duplicates: int = 0  # entries a service of the same label covers already
    status: str = "unchanged"  # written, unchanged, or "would be written" (--dry-run)

    @property
    def left_out(self) -> list[LeftOut]:
        return self.parsed.left_out


def slug(text: str) -> str:
    """A lower-case slug of letters, digits and '-'; v2fly's `!cn` (not China) is `not-cn`."""
    text = text.lower().replace("!", "not-")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def file_for(list_name: str) -> str:
    """The file name an imported list is written to (stable: the list's own name)."""
    return f"{_slug_or_hash(list_name, 40)}.yaml"


def _slug_or_hash(text: str, limit: int) -> str:
    """A slug that stays unique: text with letters that a slug drops (Chinese, Cyrillic...) or
    too long for one gets a short hash of the whole text."""
    base = slug(text)
    lossless = base and len(base) <= limit and text.isascii()
    if lossless:
        return base
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{base[:limit].strip('-')}-{digest}".strip("-")


# -- the catalogs an import must not contradict ------------------------------------------------


def policy_file(policy: Path) -> Path:
    return policy / "policy.yaml" if policy.is_dir() else policy


def catalog_dirs(policy: Path) -> list[Path]:
    """The catalog directories a policy names (as its loader reads them); [] if unreadable."""
    file = policy_file(policy)
    problems = Problems()
    doc = load_yaml(file, problems)
    if not isinstance(doc, Mapping):
        return []
    value = doc.get("catalog")
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else None
    names = names or ["catalog"]
    return [(file.parent / n).resolve() for n in names if isinstance(n, str)]


def curated_services(policy: Path, out: Path) -> list[Service]:
    """The services of the policy's catalog directories but `out`, and of its `services:`:
    the curated catalog, which imports never override. ImportProblem when it does not load."""
    file = policy_file(policy)
    problems, sources = Problems(), Sources()
    doc = load_yaml(file, problems, sources)
    if not isinstance(doc, Mapping):
        if not problems:
            problems.add(str(file), 1, "the policy must be a mapping")
        raise ImportProblem(problems.items)
    services: list[Service] = []
    top = Fields(doc, "policy", Problems(), allowed=doc.keys())
    for text, line in top.str_items("catalog") or [("catalog", doc.line)]:
        directory = (file.parent / text).resolve()
        if directory == out.resolve():
            continue
        if not directory.is_dir():
            problems.add(str(file), line, f"catalog directory {text!r} does not exist")
            continue
        services.extend(load_catalog_files(sources.glob(directory), problems, sources))
    own = doc.get("services")
    if isinstance(own, Sequence):
        services.extend(parse_services(own, problems))
    if problems:
        raise ImportProblem(problems.items)
    return services


def load_imported(paths: Iterable[Path]) -> list[Service]:
    """Services of other imported files; ImportProblem when one does not load."""
    problems = Problems()
    services = load_catalog_files(paths, problems)
    if problems:
        raise ImportProblem(problems.items)
    return services


@dataclass(slots=True)
class Negatives:
    """Hosts a negative list says are ordinary: for `d`, d and www.d (what `catalog coverage
    --negative` asks about), for `full:h`, h. An import must match none of them."""

    under: dict[str, tuple[str, str]] = field(default_factory=dict)  # suffix -> (host, file)

    def add(self, parsed: ParsedList) -> None:
        for entry in parsed.entries:
            hosts = [entry.host, f"www.{entry.host}"] if entry.kind == DOMAIN else [entry.host]
            for host in hosts:
                labels = host.split(".")
                for i in range(len(labels)):
                    self.under.setdefault(".".join(labels[i:]), (host, parsed.path.name))

    def caught(self, entry: Entry) -> tuple[str, str] | None:
        """The negative host (and its list) the entry would catch, if any."""
        if entry.kind == DOMAIN:
            return self.under.get(entry.host)
        hit = self.under.get(entry.host)
        return hit if hit and hit[0] == entry.host else None


@dataclass(frozen=True, slots=True)
class _Owner:
    service: str  # its id
    kind: str  # curated, imported (another list's file) or label (this list)
    who: str  # the other file's name, or the label


class _Claims:
    """Host patterns already taken, and by whom: looked up the way the engine routes, so the
    most specific pattern answers."""

    def __init__(self) -> None:
        self.index: HostIndex[_Owner] = HostIndex()

    def add(self, pattern: str, owner: _Owner) -> None:
        self.index.add(parse_host_pattern(pattern), owner)

    def owner(self, host: str) -> _Owner | None:
        found = self.index.lookup(host)
        return found[0] if found else None


class Plan:
    """Everything an import checks entries against, built once for all lists of a run."""

    def __init__(self, curated: list[Service], negatives: Negatives) -> None:
        self.psl = PublicSuffixList()
        self.negatives = negatives
        self.curated = _Claims()
        self.shared: list[tuple[Service, HostPattern]] = []  # path-scoped services' hosts
        self.shared_index: HostIndex[tuple[Service, str]] = HostIndex()
        self.below: dict[str, tuple[Service, str]] = {}  # domain -> a curated host below it
        for service in curated:
            for host in service.hosts:
                if service.paths:
                    self.shared.append((service, host))
                    self.shared_index.add(host, (service, host.text))
                else:
                    self.curated.add(host.text, _Owner(service.id, "curated", service.file))
                    self._note_below(host, service)

    def _note_below(self, pattern: HostPattern, service: Service) -> None:
        """Remember the domains above a curated host: a curated entry that claims only part of
        a domain (sydney.bing.com, gateway.ai.cloudflare.com) says the domain is wider."""
        labels = pattern.suffix.split(".")
        start = 0 if pattern.kind == "glob" else 1  # a glob is any name below its suffix
        for i in range(start, len(labels) - 1):
            self.below.setdefault(".".join(labels[i:]), (service, pattern.text))

    def wider(self, entry: Entry) -> str | None:
        """Why a domain entry is wider than the AI service the curated catalog found in it."""
        hit = self.below.get(entry.host) if entry.kind == DOMAIN else None
        if hit is None:
            return None
        service, text = hit
        return (
            f"wider than the AI service: the curated catalog claims only {text} below it "
            f"({service.id})"
        )

    def shared_host(self, entry: Entry) -> str | None:
        """Why the entry would catch a host the curated catalog knows to be shared."""
        host = entry.host
        probes = [host, f"{PROBE}.{host}"] if entry.kind == DOMAIN else [host]
        for probe in probes:
            for service, text in self.shared_index.lookup(probe):
                return _shared_reason(service, text)
        if entry.kind == DOMAIN:
            for service, pattern in self.shared:  # a shared host below the domain
                if pattern.suffix == host or pattern.suffix.endswith("." + host):
                    return _shared_reason(service, pattern.text)
        return None


def _shared_reason(service: Service, host: str) -> str:
    return (
        f"shared host: curated service {service.id} is only some paths of {host} "
        f"({service.file}:{service.line})"
    )


def plan_list(
    parsed: ParsedList,
    plan: Plan,
    others: list[Service],
    old: dict[str, dict],
    today: str,
    category: str,
    out: Path,
) -> ListImport:
    """Decide entry by entry, in list order (a label's first claim on a domain wins)."""
    name = parsed.path.name
    result = ListImport(parsed, name, out)
    imported = _Claims()
    for service in others:
        for host in service.hosts:
            imported.add(host.text, _Owner(service.id, "imported", Path(service.file).name))
    mine = _Claims()
    by_label: dict[str, Planned] = {}
    prefix = f"import-{_slug_or_hash(name, 40)}"
    used_ids: set[str] = {s.id for s in others}
    for entry in parsed.entries:
        label = entry.group or name
        skip = _conflict(entry, plan)
        if skip:
            result.conflicts.append(Skip(entry, label, skip))
            continue
        taken = _taken(entry, plan.curated, imported, mine)
        if taken is not None:
            owner, host = taken
            sid, who = owner.service, owner.who
            at = "" if host == entry.host else f" ({host})"
            if owner.kind == "curated":
                why = f"already catalogued as {sid}{at}"
                result.catalogued.append(Skip(entry, label, why, sid))
            elif owner.kind == "imported":
                why = f"already imported as {sid} ({who})"
                result.catalogued.append(Skip(entry, label, why, sid))
            elif who == label:
                result.duplicates += 1  # the label lists it twice, or a domain and its subdomain
            else:
                why = f"claimed first by label {who!r} of this list ({sid})"
                result.conflicts.append(Skip(entry, label, why, sid))
            continue
        wider = plan.wider(entry)
        if wider:
            result.conflicts.append(Skip(entry, label, wider))
            continue
        service = by_label.get(label)
        if service is None:
            sid = _unique(f"{prefix}-{_slug_or_hash(label, 40)}", used_ids, label)
            used_ids.add(sid)
            service = by_label[label] = Planned(sid, label)
        for pattern in [entry.host, f"*.{entry.host}"] if entry.kind == DOMAIN else [entry.host]:
            service.hosts.append(pattern)
            mine.add(pattern, _Owner(service.id, "label", label))
        service.entries.append(entry)
    result.services = list(by_label.values())
    for service in result.services:
        before = old.get(service.id)
        same = (before or {}).get("key") == (service.label, category, tuple(service.hosts))
        if before is not None and same and before.get("checked"):
            service.checked, service.status = before["checked"], "unchanged"
        else:
            service.checked = today
            service.status = "changed" if before is not None else "new"
    result.removed = [sid for sid in old if sid not in {s.id for s in result.services}]
    return result


def _taken(entry: Entry, *claims: _Claims) -> tuple[_Owner, str] | None:
    """Who already recognises the entry, and at which host: the hosts `catalog coverage` asks
    about (d, www.d, api.d), and any other name below d, in the order of `claims`."""
    host = entry.host
    probes = [host]
    if entry.kind == DOMAIN:
        probes += [f"www.{host}", f"api.{host}", f"{PROBE}.{host}"]
    for claim in claims:
        for probe in probes:
            owner = claim.owner(probe)
            if owner is not None:
                return owner, probe
    return None


def _unique(sid: str, used: set[str], label: str) -> str:
    if sid not in used:
        return sid
    digest = hashlib.sha256(label.encode()).hexdigest()[:8]
    return f"{sid}-{digest}"


def _conflict(entry: Entry, plan: Plan) -> str | None:
    host = entry.host
    try:
        parse_host_pattern(host)
        if entry.kind == DOMAIN:
            parse_host_pattern(f"*.{host}")
    except PatternError as e:
        return f"not a host pattern: {e}"
    if plan.psl.is_public(host):
        return (
            "public suffix or shared hosting domain (Public Suffix List): "
            "it would catch every site under it"
        )
    if ADS in entry.attrs:
        return (
            "tracking host (@ads): not where prompts go, and often shared third-party "
            "infrastructure"
        )
    caught = plan.negatives.caught(entry)
    if caught:
        return f"in the negative list {caught[1]}: it would catch {caught[0]}"
    return plan.shared_host(entry)


# -- the file ----------------------------------------------------------------------------------


HEADER = "# Imported from the "  # how every imported file starts


def foreign_files(out: Path) -> list[Path]:
    """Catalog files in `out` that no import wrote (a curated directory given as --out)."""
    found = []
    for path in sorted(out.glob("*.yaml")) if out.is_dir() else ():
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                first = f.readline()
        except OSError:
            first = ""
        if not first.startswith(HEADER):
            found.append(path)
    return found


def render_file(result: ListImport, fmt: str, category: str) -> str:
    """The catalog YAML of one imported list: stable, so equal input gives equal bytes."""
    q = lambda s: json.dumps(s, ensure_ascii=False)  # noqa: E731 - a YAML double-quoted scalar
    lines = [
        f"{HEADER}{fmt} list {result.name} by `aiwarden catalog import`.",
        "# Do not edit: the next import of the list rewrites this file. Curated entries",
        "# (the policy's other catalog directories) win over these; see the command's report.",
        "services:" if result.services else "services: []",
    ]
    for s in result.services:
        lines += [
            f"  - id: {s.id}",
            f"    name: {q(s.label)}",
            '    vendor: "unknown"',
            f"    category: {category}",
            "    hosts:",
            *(f"      - {q(h)}" for h in s.hosts),
            f"    source: {q(f'imported from {fmt} list {result.name}: {s.label}')}",
            f"    checked: {s.checked}",
        ]
    return "\n".join(lines) + "\n"


def read_old(path: Path) -> dict[str, dict]:
    """The services of a previous import of the list, by id ({} when there is none or it does
    not load: then everything is new)."""
    problems = Problems()
    if not path.is_file():
        return {}
    services = load_catalog_files([path], problems)
    if problems:
        return {}
    old = {}
    for s in services:
        key = (s.name, s.category, tuple(h.text for h in s.hosts))
        old[s.id] = {"key": key, "checked": s.checked}
    return old


def write_atomically(path: Path, text: str, others: list[Service], curated: list[Service]) -> None:
    """Write `text` beside `path`, load it with the catalog loader, check that its ids and hosts
    are nobody else's, and only then rename it over `path`: a proxy watching the directory
    never reads a half-written or contradictory file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as an ordinary write would (mkstemp's is 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        problems = Problems()
        services = load_catalog_files([Path(temp)], problems)
        ids = {s.id: s for s in (*curated, *others)}
        hosts = {h.text: s for s in (*curated, *others) for h in s.hosts}
        for s in services:
            if s.id in ids:
                problems.add(str(path), s.line, f"service id {s.id!r} is already used")
            for h, line in zip(s.hosts, s.host_lines, strict=True):
                if h.text in hosts:
                    problems.add(
                        str(path), line, f"host {h.text!r} is already {hosts[h.text].id}'s"
                    )
        if problems:  # named after the file it would have replaced
            raise ImportProblem(str(p).replace(temp, str(path)) for p in problems.items)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
