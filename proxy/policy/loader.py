"""Loading the policy: reading policy.yaml and its catalog, and checking everything.

`load_policy(path)` reads `policy.yaml` (or the file given) and the catalog it names, checks
everything, and returns a Policy or raises PolicyError listing every `file:line: message`.
The same function serves `aiwarden check`, start-up and every reload; the Policy remembers
what was read (`fingerprint`), so the reloader can tell whether it is still what is on disk.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from proxy.policy.catalog import (
    ACTIVITIES,
    CATEGORIES,
    Service,
    load_catalog_files,
    methods_from,
    parse_services,
)
from proxy.policy.identity import parse_identity
from proxy.policy.model import (
    ACTIONS,
    BLOCK_WITH,
    DEFAULT_CLIENTS,
    DEFAULT_DENY,
    DEFAULT_RULE_ID,
    DEFAULT_TTL,
    DISCOVERY_MODES,
    JUSTIFICATION,
    MATCH_KEYS,
    MAX_TTL,
    ON_ERROR,
    UNLISTED_ACTIONS,
    UNLISTED_KEYS,
    UNLISTED_RULE_ID,
    Coaching,
    Defaults,
    DiscoverySettings,
    Group,
    Match,
    Network,
    Policy,
    Rule,
    UnlistedAI,
    services_matching,
)
from proxy.policy.patterns import PatternError, check_path_pattern, parse_host_pattern
from proxy.policy.tenants import parse_tenants
from proxy.policy.yamlsource import (
    Fields,
    Mapping,
    Problems,
    Sources,
    did_you_mean,
    load_yaml,
    type_name,
)
from proxy.redact.profiles import parse_profiles


def load_policy(path: str | Path, sources: Sources | None = None) -> Policy:
    """Load and check a policy directory (holding policy.yaml) or policy file. `sources`
    records what was read, also when the policy turns out to have errors."""
    with gc_paused():
        return _load_policy(Path(path), sources or Sources())


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """For building a policy or engine: hundreds of thousands of objects and no cycles, which
    the collector would rescan again and again (a third of the load time at 100,000 hosts)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_policy(path: Path, sources: Sources) -> Policy:
    try:
        file = path / "policy.yaml" if path.is_dir() else path
    except (OSError, ValueError):  # unreadable, or a NUL byte: reported when it is read
        file = path
    problems = Problems()
    doc = load_yaml(file, problems, sources)
    if not isinstance(doc, Mapping):
        if not problems:
            problems.add(str(file), 1, f"the policy must be a mapping, not {type_name(doc)}")
        problems.raise_if_any()
    return _PolicyReader(file, doc, problems, sources).read()


class _PolicyReader:
    def __init__(self, file: Path, doc: Mapping, problems: Problems, sources: Sources) -> None:
        self.file, self.doc, self.problems, self.sources = file, doc, problems, sources
        self.name = str(file)

    def read(self) -> Policy:
        top = Fields(
            self.doc,
            "policy",
            self.problems,
            required=("version", "rules"),
            allowed=(
                "version",
                "catalog",
                "defaults",
                "network",
                "groups",
                "services",
                "redaction_profiles",
                "unlisted_ai",
                "rules",
                "discovery",
                "tenants",
                "identity",
            ),
        )
        version = top.int("version")
        if version is not None and version != 1:
            top.error("version", f"unsupported policy version {version}; this aiwarden reads 1")
        services, catalog_files = self._services(top)
        defaults = self._defaults(top.mapping("defaults"))
        clients, deny = self._network(top.mapping("network"))
        groups = self._groups(top.mapping("groups"))
        self.profiles = parse_profiles(top.mapping("redaction_profiles"), self.problems)
        unlisted = self._unlisted_ai(top)
        rules = self._rules(top, services, groups, defaults)
        discovery = self._discovery(top)
        tenants = parse_tenants(
            top.node.get("tenants"), self.name, top.line("tenants"), self.problems
        )
        identity = parse_identity(
            top.node.get("identity"), self.file.parent, self.name, top.line("identity"),
            self.problems, self._cidrs, lambda path: self.sources.read(path, self.problems),
            self.sources.read_secret,
        )  # fmt: skip
        self.problems.raise_if_any()
        files = (self.file, *catalog_files)
        return Policy(
            version=1,
            defaults=defaults,
            clients=clients,
            deny_destinations=deny,
            groups=groups,
            services=tuple(services),
            rules=tuple(rules),
            redaction_profiles=self.profiles,
            files=files,
            digest=self.sources.digest(),
            fingerprint=self.sources.fingerprint(),
            discovery=discovery,
            unlisted_ai=unlisted,
            tenants=tenants,
            identity=identity,
        )

    # -- catalog ---------------------------------------------------------------------------

    def _services(self, top: Fields) -> tuple[list[Service], list[Path]]:
        dirs = top.str_items("catalog") or [("catalog", top.node.line)]
        services: list[Service] = []
        files: list[Path] = []
        for text, line in dirs:
            try:
                directory = (self.file.parent / text).resolve()
            except (OSError, ValueError):  # a NUL byte, a loop of symlinks...
                directory = None
            # listed even when missing, so that the reloader sees the directory's files appear
            found = self.sources.glob(directory) if directory is not None else ()
            if directory is None or not directory.is_dir():
                self.problems.add(
                    self.name,
                    line,
                    f"catalog directory {text!r} does not exist "
                    f"(relative paths start from {self.file.parent})",
                )
                continue
            if not found:  # a policy that relies on services no file gives would allow them
                self.problems.add(
                    self.name, line, f"catalog directory {text!r} holds no *.yaml files"
                )
            files.extend(found)
            services.extend(load_catalog_files(found, self.problems, self.sources))
        services.extend(parse_services(top.sequence("services"), self.problems))
        self._check_unique_services(services)
        return services, files

    def _check_unique_services(self, services: list[Service]) -> None:
        by_id: dict[str, Service] = {}
        claims: dict[str, tuple[Service, int]] = {}
        for service in services:
            first = by_id.setdefault(service.id, service)
            if first is not service:
                self.problems.add(
                    service.file,
                    service.line,
                    f"service id {service.id!r} is already used at {first.file}:{first.line}",
                )
            for host, line in zip(service.hosts, service.host_lines, strict=True):
                other = claims.setdefault(host.text, (service, line))
                if other[0] is service:
                    continue
                if not (service.paths and other[0].paths):
                    self.problems.add(
                        service.file,
                        line,
                        f"service {service.id!r}: host {host.text!r} is already claimed "
                        f"by service {other[0].id!r} at {other[0].file}:{other[1]};"
                        f" two services may share a host only when both list "
                        f"'paths'",
                    )

    # -- defaults, network, groups -----------------------------------------------------------

    def _defaults(self, node: Mapping | None) -> Defaults:
        if node is None:
            return Defaults()
        f = Fields(
            node,
            "defaults",
            self.problems,
            allowed=("action", "on_error", "block_with", "message", "contact"),
        )
        base = Defaults()
        action = f.str("action", base.action, choices=("allow", "block", "monitor"))
        return Defaults(
            action=action or base.action,
            on_error=f.str("on_error", base.on_error, choices=ON_ERROR) or base.on_error,
            block_with=f.str("block_with", base.block_with, choices=BLOCK_WITH) or "page",
            message=f.str("message", base.message) or base.message,
            contact=f.str("contact"),
        )

    def _unlisted_ai(self, top: Fields) -> UnlistedAI:
        base = UnlistedAI()
        node = top.mapping("unlisted_ai")
        if node is None:
            if top.has("unlisted_ai") or "unlisted_ai" not in top.node:
                return base  # absent, or not a mapping (reported)
            top.error("unlisted_ai", "'unlisted_ai' is empty; give at least 'action'")
            return base
        f = Fields(node, "unlisted_ai", self.problems, allowed=UNLISTED_KEYS)
        if node.get("action") is False:  # YAML 1.1 reads an unquoted `off` as false
            action = "off"
        else:
            action = f.str("action", base.action, choices=UNLISTED_ACTIONS) or base.action
        max_body = f.int("max_body_bytes", base.max_body_bytes)
        if max_body is not None and max_body < 1:
            f.error("max_body_bytes", "'max_body_bytes' must be at least 1")
            max_body = None
        unchecked = f.str("unchecked", base.unchecked, choices=("pass", "block"))
        if unchecked == "block" and action != "block":
            f.error(
                "unchecked",
                f"'unchecked: block' blocks bodies the check cannot read, which only "
                f"means something with 'action: block', not {action!r}",
            )
        return UnlistedAI(
            action=action,
            message=f.str("message"),
            max_body_bytes=max_body or base.max_body_bytes,
            unchecked=unchecked or base.unchecked,
        )

    def _network(self, node: Mapping | None) -> tuple[tuple[Network, ...], tuple[Network, ...]]:
        if node is None:
            return _networks(DEFAULT_CLIENTS), _networks(DEFAULT_DENY)
        f = Fields(node, "network", self.problems, allowed=("clients", "deny_destinations"))
        clients = self._cidrs(f, "clients")
        deny = self._cidrs(f, "deny_destinations")
        return (
            clients if clients is not None else _networks(DEFAULT_CLIENTS),
            deny if deny is not None else _networks(DEFAULT_DENY),
        )

    def _cidrs(self, f: Fields, key: str) -> tuple[Network, ...] | None:
        items = f.str_items(key)
        if items is None:
            return None
        networks = []
        for text, line in items:
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as e:
                hint = ""
                with contextlib.suppress(ValueError):
                    hint = f"; did you mean {ipaddress.ip_network(text, strict=False)}?"
                self.problems.add(f.node.file, line, f"{f.where}: {key}: {e}{hint}")
        return tuple(networks)

    def _groups(self, node: Mapping | None) -> dict[str, Group]:
        groups: dict[str, Group] = {}
        if node is None:
            return groups
        for name, spec in node.items():
            where = f"group {name!r}"
            if not isinstance(spec, Mapping):
                self.problems.add(
                    node.file,
                    node.value_line(name),
                    f"{where}: must be a mapping with 'cidrs', 'users' and/or 'directory'",
                )
                continue
            f = Fields(spec, where, self.problems, allowed=("cidrs", "users", "directory"))
            cidrs = self._cidrs(f, "cidrs") or ()
            users = frozenset(text for text, _ in f.str_items("users") or ())
            directory = frozenset(t.lower() for t, _ in f.str_items("directory") or ())
            if not any(f.has(k) for k in ("cidrs", "users", "directory")):
                self.problems.add(
                    spec.file, spec.line, f"{where}: give 'cidrs', 'users' or 'directory'"
                )
            groups[str(name)] = Group(str(name), cidrs, users, directory)
        return groups

    # -- discovery ---------------------------------------------------------------------------

    def _discovery(self, top: Fields) -> DiscoverySettings:
        base = DiscoverySettings()
        if isinstance(top.node.get("discovery"), bool):  # `discovery: off` (YAML 1.1)
            return replace(base, mode="on" if top.node["discovery"] else "off")
        node = top.mapping("discovery")
        if node is None:
            return base
        f = Fields(
            node,
            "discovery",
            self.problems,
            required=("mode",),
            allowed=("mode", "sample", "flush_seconds", "max_domains"),
        )
        mode = node.get("mode")
        if isinstance(mode, bool):  # YAML 1.1 reads a bare on/off as a boolean
            mode = "on" if mode else "off"
        elif mode is not None:
            mode = f.str("mode", choices=DISCOVERY_MODES)
        sample = self._fraction(f, "sample")
        if mode == "sampled" and not f.has("sample"):
            f.error("mode", "mode: sampled needs 'sample', the fraction counted (0 to 1)")
        elif mode not in ("sampled", None) and f.has("sample"):
            f.error("sample", "'sample' applies to mode: sampled only")
        flush = self._whole(f, "flush_seconds", 1, 86_400)
        most = self._whole(f, "max_domains", 1, 1_000_000)
        return DiscoverySettings(
            mode=mode or base.mode,
            sample=sample if sample is not None and mode == "sampled" else base.sample,
            flush_seconds=flush or base.flush_seconds,
            max_domains=most or base.max_domains,
        )

    @staticmethod
    def _fraction(f: Fields, key: str) -> float | None:
        value = f.node.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            f.error(key, f"{key!r} must be a number from 0 to 1, not {value!r}")
            return None
        return float(value)

    @staticmethod
    def _whole(f: Fields, key: str, low: int, high: int) -> int | None:
        value = f.int(key)
        if value is not None and not low <= value <= high:
            f.error(key, f"{key!r} must be from {low:,} to {high:,}, not {value:,}")
            return None
        return value

    # -- rules ---------------------------------------------------------------------------------

    def _rules(
        self, top: Fields, services: list[Service], groups: dict[str, Group], defaults: Defaults
    ) -> list[Rule]:
        node = top.sequence("rules")
        if node is None:
            return []
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        catch_all: Rule | None = None
        # what each match field may name: canonical spelling -> the name to suggest
        self.vocabulary = {
            "services": {s.id: s.id for s in services},
            "vendors": {s.vendor.lower(): s.vendor for s in services},
            "countries": {s.country: s.country for s in services if s.country},
            "categories": {c: c for c in CATEGORIES},
            "activities": {a: a for a in ACTIVITIES},
            "groups": {g: g for g in groups},
        }
        for i, item in enumerate(node):
            line = node.item_line(i)
            if not isinstance(item, Mapping):
                self.problems.add(node.file, line, f"a rule is a mapping, not {type_name(item)}")
                continue
            rule = self._rule(item, services, groups, defaults, seen)
            if rule is None:
                continue
            if catch_all is not None:
                self.problems.add(
                    node.file,
                    line,
                    f"rule {rule.id!r} can never match: rule {catch_all.id!r} "
                    f"(line {catch_all.line}) matches everything before it",
                )
            elif rule.match.is_everything():
                catch_all = rule
            rules.append(rule)
        return rules

    def _rule(
        self,
        node: Mapping,
        services: list[Service],
        groups: dict[str, Group],
        defaults: Defaults,
        seen: dict[str, int],
    ) -> Rule | None:
        rid = node.get("id")
        where = f"rule {rid!r}" if isinstance(rid, str) else "rule"
        f = Fields(
            node,
            where,
            self.problems,
            required=("id", "match", "action"),
            allowed=(
                "id",
                "description",
                "match",
                "action",
                "message",
                "contact",
                "block_with",
                "redact",
                "audit",
                *COACHING_KEYS,
            ),
        )
        before = len(self.problems.items)
        rid = f.str("id")
        if rid is not None:
            if rid == DEFAULT_RULE_ID:
                f.error("id", f"the id {DEFAULT_RULE_ID!r} is reserved for the defaults")
            elif rid == UNLISTED_RULE_ID:
                f.error("id", f"the id {UNLISTED_RULE_ID!r} is reserved for unlisted AI endpoints")
            elif rid in seen:
                f.error("id", f"duplicate rule id {rid!r} (first at line {seen[rid]})")
            else:
                seen[rid] = node.line
        action = f.str("action", choices=ACTIONS)
        match_node = f.mapping("match")
        match = (
            self._match(match_node, where, services, groups) if match_node is not None else Match()
        )
        rule = Rule(
            id=rid or "",
            match=match,
            action=action or "block",
            message=f.str("message", defaults.message) or defaults.message,
            block_with=f.str("block_with", defaults.block_with, choices=BLOCK_WITH) or "page",
            contact=f.str("contact", defaults.contact),
            description=f.str("description"),
            file=node.file,
            line=node.line,
            redact=self._profile_of(f, action),
        )
        audit = f.bool("audit")
        if f.has("audit") and rule.action != "allow":
            f.error("audit", "'audit' is for action: allow (every other action is audited)")
        rule = replace(rule, coaching=_coaching_of(f, rule), audit=audit)
        return rule if len(self.problems.items) == before else None

    def _profile_of(self, f: Fields, action: str | None) -> str | None:
        """The redaction profile a rule names (or 'default' for action: redact)."""
        name = f.str("redact")
        if action != "redact":
            if name is not None:
                f.error("redact", "'redact' names a profile for action: redact only")
            return None
        if name is None:
            if "default" in self.profiles:
                return "default"
            f.error(
                "action",
                "action: redact needs a redaction profile: add 'redact: NAME', or "
                "a profile named 'default' under redaction_profiles",
            )
            return None
        if name not in self.profiles:
            f.error(
                "redact", f"unknown redaction profile {name!r}{did_you_mean(name, self.profiles)}"
            )
            return None
        return name

    def _match(
        self, node: Mapping, where: str, services: list[Service], groups: dict[str, Group]
    ) -> Match:
        where = f"{where}, match"
        p = self.problems
        before = len(p.items)
        f = Fields(node, where, p, allowed=MATCH_KEYS)

        def known(key: str, noun: str) -> frozenset[str] | None:
            """The values of list `key`, each checked against the policy's vocabulary."""
            choices = self.vocabulary[key]
            items = f.str_items(key)
            if items is None:
                return None
            values = set()
            for text, line in items:
                value = text.lower() if key == "vendors" else text
                value = value.upper() if key == "countries" else value
                if value not in choices:
                    p.add(
                        node.file,
                        line,
                        f"{where}: unknown {noun} {text!r}{did_you_mean(text, choices.values())}",
                    )
                values.add(value)
            return frozenset(values)

        hosts = []
        for text, line in f.str_items("hosts") or ():
            try:
                hosts.append(parse_host_pattern(text))
            except PatternError as e:
                p.add(node.file, line, f"{where}: bad host pattern: {e}")
        paths = []
        for text, line in f.str_items("paths") or ():
            try:
                check_path_pattern(text)
                paths.append(text)
            except PatternError as e:
                p.add(node.file, line, f"{where}: bad path pattern: {e}")
        match = Match(
            services=known("services", "service"),
            vendors=known("vendors", "vendor"),
            countries=known("countries", "vendor country"),
            categories=known("categories", "category"),
            activities=known("activities", "activity"),
            hosts=tuple(hosts) if f.has("hosts") else None,
            paths=tuple(paths) if f.has("paths") else None,
            methods=methods_from(f, where, p),
            groups=tuple(sorted(known("groups", "group") or ())) if f.has("groups") else None,
            users=frozenset(t for t, _ in f.str_items("users") or ()) if f.has("users") else None,
        )
        by_service = match.services or match.vendors or match.countries or match.categories
        if by_service and len(p.items) == before and not services_matching(match, services):
            p.add(
                node.file,
                node.line,
                f"{where}: no catalogued service is in all of {match.summary()}",
            )
        return match


COACHING_KEYS = ("ttl", "justification", "alternative")
_DURATION = re.compile(r"(\d+)\s*([smhd]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _coaching_of(f: Fields, rule: Rule) -> Coaching | None:
    """A warn rule's coaching settings; the keys are an error on any other action."""
    if rule.action != "warn":
        for key in COACHING_KEYS:
            if f.has(key):
                f.error(key, f"{key!r} is for action: warn only")
        return None
    ttl = DEFAULT_TTL
    if f.has("ttl"):
        text = str(f.node["ttl"]).strip().lower()
        match = _DURATION.fullmatch(text)
        seconds = int(match.group(1)) * _SECONDS[match.group(2)] if match else None
        if seconds is None or isinstance(f.node["ttl"], bool):
            f.error("ttl", f"'ttl' must be a duration like 90s, 15m, 8h or 1d, not {text!r}")
        elif not 1 <= seconds <= MAX_TTL:
            f.error("ttl", f"'ttl' must be from 1s to {MAX_TTL // 86400}d, not {text}")
        else:
            ttl = seconds
    justification = f.str("justification", "optional", choices=JUSTIFICATION) or "optional"
    alternative = f.str("alternative")
    facts = (rule.id, rule.match.summary(), rule.message, ttl, justification, alternative)
    digest = hashlib.sha256(repr(facts).encode()).hexdigest()[:16]
    return Coaching(ttl, justification, alternative, digest)


def _networks(texts: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(t) for t in texts)
