"""The policy's model: who may use the proxy, the ordered rules deciding what happens to AI
traffic, and the settings beside them (loader.py reads and checks it)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from proxy.policy.catalog import (
    Service,
)
from proxy.policy.identity import IdentitySettings
from proxy.policy.patterns import HostPattern
from proxy.policy.tenants import Tenant
from proxy.policy.yamlsource import (
    Fingerprint,
)
from proxy.redact.profiles import DEFAULT_MAX_BODY, RedactionProfile

ACTIONS = ("block", "allow", "redact", "monitor", "warn")
ON_ERROR = ("block", "allow")
BLOCK_WITH = ("page", "refuse")
DEFAULT_RULE_ID = "default"  # the rule id reported when no rule matched
UNLISTED_RULE_ID = "unlisted_ai"  # the rule id reported for an unlisted AI endpoint
UNLISTED_ACTIONS = ("block", "monitor", "off")
UNLISTED_KEYS = ("action", "message", "max_body_bytes", "unchecked")
DEFAULT_MESSAGE = "This AI service is not approved for use by company policy."

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_CLIENTS = ("127.0.0.0/8", "::1/128")
DEFAULT_DENY = ("0.0.0.0/8", "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10")
MATCH_KEYS = (
    "services",
    "vendors",
    "countries",
    "categories",
    "activities",
    "hosts",
    "paths",
    "methods",
    "groups",
    "users",
)


@dataclass(frozen=True, slots=True)
class Defaults:
    action: str = "allow"
    on_error: str = "block"
    block_with: str = "page"
    message: str = DEFAULT_MESSAGE
    contact: str | None = None


DISCOVERY_MODES = ("off", "on", "sampled")


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    """What the proxy counts of the domains it relays, for `aiwarden discover`
    (proxy/mitm/discovery.py). Off unless the policy has a `discovery:` section: the counts name
    every domain clients reach, AI or not, so a policy opts in."""

    mode: str = "off"  # off, on, or sampled (a fraction of connections and requests)
    sample: float = 1.0  # for sampled: the fraction counted
    flush_seconds: int = 300  # one audit line per domain per this many seconds
    max_domains: int = 10_000  # domains kept per window; later ones are counted as "(other)"


@dataclass(frozen=True, slots=True)
class UnlistedAI:
    """What happens to a request whose body has the shape of an LLM API call (llm_shape.py)
    when no catalogued service and no rule naming its host decided it.

    Absent from a policy, it blocks: an approved internal gateway is listed under
    `services:` (catalogued, so never unlisted) or allowed by a rule naming its host, and
    either wins over this check; what is left is AI traffic nobody approved. A rule that
    monitors hosts by name does not approve them: it has the proxy look inside, and their
    bodies are checked."""

    action: str = "block"  # block | monitor | off
    message: str | None = None  # None: defaults.message
    max_body_bytes: int = DEFAULT_MAX_BODY  # bodies larger (sent or decoded) are unchecked
    unchecked: str = "pass"  # a body that cannot be checked: pass | block (action block only)


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    cidrs: tuple[Network, ...]
    users: frozenset[str]
    # directory groups (lower-cased) whose members are in this group, as an identity source
    # names them (a trusted groups header; LDAP)
    directory: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Match:
    """What a rule applies to; every field given must hold, any value within a field will do.
    `groups` and `users` together say who: the client is in a listed group or is a listed user."""

    services: frozenset[str] | None = None
    vendors: frozenset[str] | None = None
    countries: frozenset[str] | None = None  # where the vendor is based, ISO 3166 codes
    categories: frozenset[str] | None = None
    activities: frozenset[str] | None = None
    hosts: tuple[HostPattern, ...] | None = None
    paths: tuple[str, ...] | None = None
    methods: frozenset[str] | None = None
    groups: tuple[str, ...] | None = None
    users: frozenset[str] | None = None

    def is_everything(self) -> bool:
        return all(getattr(self, key) is None for key in MATCH_KEYS)

    def summary(self) -> str:
        parts = []
        for key in MATCH_KEYS:
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key}={','.join(sorted(map(str, value)))}")
        return " ".join(parts) or "everything"


JUSTIFICATION = ("required", "optional", "none")
DEFAULT_TTL = 15 * 60  # seconds a user who proceeds past a warning may use the service
MAX_TTL = 7 * 86_400


@dataclass(frozen=True, slots=True)
class Coaching:
    """What a `warn` rule tells the user and grants when they proceed (proxy/mitm/coaching.py).
    `digest` changes whenever the rule does: grants made under an older form of the rule no
    longer count, so editing a rule (and SIGHUP) asks everyone again."""

    ttl: int = DEFAULT_TTL  # seconds
    justification: str = "optional"  # required | optional | none
    alternative: str | None = None  # the approved alternative, shown on the warning
    digest: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    match: Match
    action: str
    message: str
    block_with: str
    contact: str | None
    description: str | None
    file: str
    line: int
    redact: str | None = None  # the redaction profile, for action: redact
    coaching: Coaching | None = None  # for action: warn
    audit: bool = False  # for action: allow, an audit line for each request or tunnel


@dataclass(frozen=True, slots=True)
class Policy:
    version: int
    defaults: Defaults
    clients: tuple[Network, ...]
    deny_destinations: tuple[Network, ...]
    groups: dict[str, Group]
    services: tuple[Service, ...]
    rules: tuple[Rule, ...]
    redaction_profiles: dict[str, RedactionProfile]
    files: tuple[Path, ...]
    digest: str  # sha256 over the bytes parsed, to tell policies apart in logs and metrics
    fingerprint: Fingerprint  # the files read, stat'd before reading, and the catalog listings
    discovery: DiscoverySettings = DiscoverySettings()
    unlisted_ai: UnlistedAI = UnlistedAI()
    tenants: tuple[Tenant, ...] = ()  # tenant restrictions: vendor headers set by the proxy
    identity: IdentitySettings = field(default_factory=IdentitySettings)  # who is behind it


def services_matching(match: Match, services: list[Service] | tuple[Service, ...]) -> list[Service]:
    """The services a rule's services/vendors/categories fields allow (all when none is set)."""
    return [
        s
        for s in services
        if (match.services is None or s.id in match.services)
        and (match.vendors is None or s.vendor.lower() in match.vendors)
        and (match.countries is None or s.country in match.countries)
        and (match.categories is None or s.category in match.categories)
    ]
