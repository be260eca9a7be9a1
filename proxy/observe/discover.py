"""`aiwarden discover`: which of the domains the proxy relayed look like AI services that the
catalog does not know, ranked, with a catalog entry for each ready to review.

It reads the discovery lines of audit logs (proxy/mitm/discovery.py), sums them per registrable
domain, leaves out hosts the catalog recognises (the policy's own host index: a domain all
of whose hosts are catalogued is left out), and scores the rest. The score is a sum of
points, each with its reason printed; no hidden weights:

- name: words in the domain's own label (`some-llm` in some-llm.ai). Labels are split on
  `-`, `_` and digits, and a word counts whole (`llm`, `gpt`, `ai`, `chat`, `bot`, ...), or
  as the start or end of a longer token when what is left is a word of 3 letters or more
  (`newbot` = new+bot, `gptzero`). `ai` counts inside a token only next to a known word
  (`openai`, `jasperai`), so `mail`, `thai` or `shanghai` are not AI.
- TLD: `.ai` +3, `.chat` and `.bot` +2.
- subdomain: the labels left of the domain on the hosts seen: `inference.`, `llm.`,
  `models.`, `gpt.` ... +2, `api.`, `chat.` +1.
- catalog: the domain holds a catalogued service on another host (`beta.x.com` when
  `chat.x.com` is catalogued) +2; its name holds the name of a domain that belongs wholly
  to a catalogued service (from openai.com): `openai-proxy.com` +2, `myopenaiapp.com` +1,
  `openai.net` +1 (the same name is often the vendor's other, non-AI site: jetbrains.com
  beside jetbrains.ai).
- traffic (never on its own): upload-heavy (at least 64 KiB up and half as much up as down)
  +1; 10 or more distinct clients in one window +1.
A domain with no point from names, TLD, subdomains or the catalog is "without any sign": left
out, counted in the summary, listed last with `--all`.
"""

from __future__ import annotations

import datetime
import gzip
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from proxy.mitm.discovery import OTHER, registrable_domain
from proxy.policy.model import Policy
from proxy.policy.normalize import BadHost, is_ip, normalize_host
from proxy.policy.patterns import HostIndex


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


TOP = 25
HOSTS_KEPT = 50  # host names kept per domain across windows
UPLOAD_BYTES = 64 * 1024
MANY_CLIENTS = 10

# word -> points when it is a whole token (one less at the start or end of a longer token)
WORDS = {
    "ai": 3, "gpt": 3, "gpts": 3, "llm": 3, "llms": 3, "genai": 3, "copilot": 3,
    "chatgpt": 3, "chatbot": 3, "chatbots": 3, "diffusion": 3, "neural": 2, "inference": 3,
    "prompt": 2, "prompts": 2, "embedding": 2, "embeddings": 2, "transformer": 2,
    "transformers": 2, "agi": 2, "ml": 2, "nlp": 2, "rag": 1, "tts": 2, "stt": 2,
    "chat": 2, "bot": 2, "bots": 2, "agent": 2, "agents": 2, "agentic": 3, "assistant": 2,
    "lm": 1, "gemini": 2, "claude": 2, "llama": 2, "mistral": 1,
}  # fmt: skip
AFFIX_MIN = 3  # a word counts inside a token only when it has this many letters ...
REST_MIN = 3  # ... and leaves this many
# `ai` inside a token, next to one of these
AI_NEIGHBOURS = _set(
    "open jasper write writer copy chat deep meta art voice code play you hey get my go lab "
    "labs data smart brain mind super hyper magic easy quick fast auto text talk ask answer "
    "search image photo video music sound study tutor learn doc docs note notes mail sales "
    "legal law health med fin trade invest crypto dev app apps tool tools hub base cloud one "
    "all any every your our true real pro max plus star sun moon sky blue red green black"
)
NOT_AFFIXED = _set(
    "chateau chateaux chatham chatelaine robot robots abbot talbot cabot turbot sabot agenda"
)
TLDS = {"ai": 3, "chat": 2, "bot": 2}
SUBDOMAINS = {
    "inference": 2, "llm": 2, "llms": 2, "models": 2, "model": 2, "gpt": 2, "ai": 2,
    "genai": 2, "copilot": 2, "completions": 2, "embeddings": 2, "agent": 2, "agents": 2,
    "assistant": 2, "ml": 1, "playground": 1, "api": 1, "chat": 1,
}  # fmt: skip
SIBLING_POINTS = 2
# a name that holds the name of a domain a catalogued service owns (openai-proxy.com)
BRAND_WORD, BRAND_INSIDE, BRAND_SAME, BRAND_MIN = 2, 1, 1, 5
# a category guess from words in the name or subdomains, most specific first
CATEGORY_WORDS = (
    ("image", "diffusion image images img art photo photos pixel paint draw"),
    ("video", "video videos film clip clips"),
    ("voice", "tts stt voice voices speech audio music song sing"),
    ("code-assistant", "code coder coding dev devs copilot"),
    ("translation", "translate translator translation"),
    ("writing", "write writer writing grammar essay paraphrase"),
    ("meeting", "meet meeting meetings notetaker transcribe transcript"),
    ("search", "search answer answers"),
    ("agent", "agent agents agentic"),
    ("api", "api inference llm llms models model embeddings completions"),
)
_SPLIT = re.compile(r"[^a-z]+")
_SLUG = re.compile(r"[^a-z0-9]+")


# -- reading ------------------------------------------------------------------------------------


@dataclass
class Seen:
    """One domain's discovery lines, summed."""

    domain: str
    hosts: set[str] = field(default_factory=set)
    hosts_capped: bool = False
    connections: int = 0
    requests: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    clients: int = 0  # the most distinct clients in one window (of one worker): at least this
    clients_capped: bool = False
    first_seen: str = ""
    last_seen: str = ""
    lines: int = 0  # discovery lines: one per window and worker that saw the domain

    def add(self, record: dict) -> None:
        for key in ("connections", "requests", "bytes_up", "bytes_down"):
            setattr(self, key, getattr(self, key) + _count(record.get(key)))
        clients = _count(record.get("clients"))
        if clients >= self.clients:
            capped = bool(record.get("clients_capped"))
            self.clients_capped = capped or (self.clients_capped and clients == self.clients)
            self.clients = clients
        hosts = record.get("hosts")
        for host in hosts if isinstance(hosts, list) else ():
            if len(self.hosts) < HOSTS_KEPT and _is_host(host):
                self.hosts.add(host)
        self.hosts_capped |= record.get("hosts_capped") is True
        first, last = record.get("first_seen"), record.get("last_seen")
        if isinstance(first, str) and first and (not self.first_seen or first < self.first_seen):
            self.first_seen = first
        if isinstance(last, str) and last > self.last_seen:
            self.last_seen = last
        self.lines += 1


@dataclass
class Log:
    """What the files held."""

    domains: dict[str, Seen] = field(default_factory=dict)
    other: Seen | None = None
    lines: int = 0  # discovery lines read
    skipped: int = 0  # lines that are not JSON, or name no domain
    sample: float = 1.0  # the smallest sample a line was counted with


def read(paths: Iterable[Path]) -> Log:
    log = Log()
    for path in paths:
        for line in _lines(path):
            if '"discovery"' not in line:  # most lines are decisions: skip them cheaply
                continue
            try:
                record = json.loads(line)
            except ValueError:
                log.skipped += 1
                continue
            if not isinstance(record, dict) or record.get("event") != "discovery":
                continue
            domain = record.get("domain")
            if domain != OTHER and not _is_host(domain):
                log.skipped += 1
                continue
            log.lines += 1
            sample = record.get("sample")
            if isinstance(sample, int | float) and 0 <= sample < log.sample:
                log.sample = float(sample)
            if domain == OTHER:
                log.other = log.other or Seen(OTHER)
                log.other.add(record)
                continue
            seen = log.domains.get(domain)
            if seen is None:
                seen = log.domains[domain] = Seen(domain)
            seen.add(record)
    return log


def _lines(path: Path) -> Iterator[str]:
    """The lines of an audit log, rotated copies compressed with gzip included."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        yield from f


def _is_host(value: object) -> bool:
    """A canonical host name or address, as the proxy writes them (nothing else reaches the
    YAML printed)."""
    try:
        return isinstance(value, str) and normalize_host(value) == value
    except BadHost:
        return False


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# -- the catalog --------------------------------------------------------------------------------


class Catalog:
    """What the policy's catalog says about hosts and domains."""

    def __init__(self, policy: Policy) -> None:
        self.index: HostIndex[str] = HostIndex()
        self.by_domain: dict[str, set[str]] = {}  # registrable domain -> service ids on it
        self.brands: dict[str, tuple[str, str]] = {}  # label -> (its domain, service id)
        self.ids = {s.id for s in policy.services}
        for service in policy.services:
            for pattern in service.hosts:
                self.index.add(pattern, service.id)
                suffix = pattern.suffix
                try:
                    domain = registrable_domain(normalize_host(suffix))
                except BadHost:
                    continue
                self.by_domain.setdefault(domain, set()).add(service.id)
                owned = pattern.kind in ("exact", "subdomains") and suffix == domain
                label = _own_label(domain)
                if owned and not is_ip(domain) and len(label) >= BRAND_MIN:
                    self.brands.setdefault(label, (domain, service.id))

    def services_of(self, host: str) -> list[str]:
        """The services whose host patterns match `host`, on any path."""
        try:
            return self.index.lookup(normalize_host(host))
        except BadHost:
            return []


def _own_label(domain: str) -> str:
    """The label a registrable domain adds to its public suffix (`some-llm` of some-llm.ai)."""
    return domain.split(".", 1)[0]


# -- scoring ------------------------------------------------------------------------------------


@dataclass
class Reason:
    points: int
    signal: str  # name, tld, subdomain, catalog, traffic
    detail: str

    def __str__(self) -> str:
        return f"+{self.points} {self.signal}: {self.detail}"


@dataclass
class Candidate:
    seen: Seen
    hosts: list[str]  # the hosts seen that the catalog does not know
    catalogued: dict[str, list[str]]  # catalogued hosts seen -> their services
    reasons: list[Reason]
    category: str
    category_why: str
    shared: bool = False  # the domain holds catalogued services too

    @property
    def score(self) -> int:
        return sum(r.points for r in self.reasons)

    @property
    def has_sign(self) -> bool:
        return any(r.signal != "traffic" for r in self.reasons)


def words_in(label: str) -> list[tuple[str, int, str]]:
    """AI words in one DNS label: (word, points, how it was found)."""
    found = []
    for token in _SPLIT.split(label.lower()):
        if not token:
            continue
        if token in WORDS:
            found.append((token, WORDS[token], f"'{token}' in {label}"))
            continue
        if token in NOT_AFFIXED:
            continue
        for word, points in WORDS.items():
            if len(word) < AFFIX_MIN or len(token) - len(word) < REST_MIN:
                continue
            if token.startswith(word):
                how = f"'{word}' in {label} ({word}+{token[len(word) :]})"
            elif token.endswith(word):
                how = f"'{word}' in {label} ({token[: -len(word)]}+{word})"
            else:
                continue
            found.append((word, max(points - 1, 1), how))
            break
        else:
            if token.endswith("ai") and token[:-2] in AI_NEIGHBOURS:
                found.append(("ai", 2, f"'ai' in {label} ({token[:-2]}+ai)"))
            elif token.startswith("ai") and token[2:] in AI_NEIGHBOURS:
                found.append(("ai", 2, f"'ai' in {label} (ai+{token[2:]})"))
    return found


def score(seen: Seen, catalog: Catalog) -> Candidate | None:
    """The candidate for one domain, or None when the catalog knows every host seen."""
    domain = seen.domain
    catalogued = {h: s for h in sorted(seen.hosts) if (s := catalog.services_of(h))}
    hosts = sorted(h for h in seen.hosts if h not in catalogued)
    if catalogued and not hosts:
        return None
    if not seen.hosts and catalog.services_of(domain):
        return None
    reasons: list[Reason] = []
    names: list[str] = []  # every word found, for the category guess
    if not is_ip(domain):
        label = _own_label(domain)
        for word, points, how in words_in(label):
            if word not in names:
                reasons.append(Reason(points, "name", how))
                names.append(word)
        names += _SPLIT.split(label)
        tld = domain.rsplit(".", 1)[-1]
        if tld in TLDS and domain != tld:
            reasons.append(Reason(TLDS[tld], "tld", f".{tld}"))
        reasons += _subdomains(domain, hosts, names)
        reasons += _catalog(domain, label, catalog, catalogued)
    if seen.bytes_up >= UPLOAD_BYTES and seen.bytes_up * 2 >= seen.bytes_down:
        detail = f"{_size(seen.bytes_up)} up, {_size(seen.bytes_down)} down"
        reasons.append(Reason(1, "traffic", f"upload-heavy: {detail}"))
    if seen.clients >= MANY_CLIENTS:
        more = "+" if seen.clients_capped else ""
        reasons.append(Reason(1, "traffic", f"{seen.clients}{more} clients in one window"))
    category, why = _category(names)
    shared = domain in catalog.by_domain
    return Candidate(seen, hosts, catalogued, reasons, category, why, shared)


def _subdomains(domain: str, hosts: list[str], names: list[str]) -> list[Reason]:
    """The best AI-typical subdomain among the hosts seen."""
    best: tuple[int, str] | None = None
    for host in hosts:
        labels = host[: -len(domain) - 1].split(".") if host.endswith("." + domain) else []
        for label in labels:
            names.extend(_SPLIT.split(label))
            if label in SUBDOMAINS:
                points, how = SUBDOMAINS[label], f"{label}. ({host})"
            else:
                found = words_in(label)
                if not found:
                    continue
                word, points, how = max(found, key=lambda f: f[1])
                points, how = max(points - 1, 1), f"{how} ({host})"
                names.append(word)
            if best is None or points > best[0]:
                best = (points, how)
    return [Reason(best[0], "subdomain", best[1])] if best else []


def _catalog(
    domain: str, label: str, catalog: Catalog, catalogued: dict[str, list[str]]
) -> list[Reason]:
    reasons = []
    siblings = catalog.by_domain.get(domain)
    if siblings:
        services = ", ".join(sorted(siblings)[:3]) + (" ..." if len(siblings) > 3 else "")
        where = f" ({', '.join(list(catalogued)[:3])})" if catalogued else ""
        reasons.append(
            Reason(SIBLING_POINTS, "catalog", f"{domain} also holds catalogued {services}{where}")
        )
    tokens = set(re.split(r"[^a-z0-9]+", label))
    for brand, (owner, service) in catalog.brands.items():
        if owner == domain or brand not in label:
            continue
        if brand == label:  # the same name on another TLD: often the vendor's other site
            points, how = BRAND_SAME, f"the name of catalogued {owner} ({service})"
        elif brand in tokens:
            points, how = BRAND_WORD, f"'{brand}' as in catalogued {owner} ({service})"
        else:
            points = BRAND_INSIDE
            how = f"'{brand}' inside a word, as in catalogued {owner} ({service})"
        reasons.append(Reason(points, "catalog", how))
        break
    return reasons


def _category(names: list[str]) -> tuple[str, str]:
    words = set(names)
    for category, vocabulary in CATEGORY_WORDS:
        hit = words & set(vocabulary.split())
        if hit:
            return category, f"'{sorted(hit)[0]}'"
    return "chat", "no more specific word"


# -- the whole ----------------------------------------------------------------------------------


@dataclass
class Result:
    candidates: list[Candidate]  # ranked, those without a sign last
    catalogued: list[str]  # domains left out: the catalog knows every host seen
    without_sign: int
    log: Log
    ids: set[str]  # the catalog's service ids, which a new entry must not take


def discover(log: Log, policy: Policy) -> Result:
    catalog = Catalog(policy)
    candidates, known = [], []
    for seen in log.domains.values():
        candidate = score(seen, catalog)
        if candidate is None:
            known.append(seen.domain)
        else:
            candidates.append(candidate)
    candidates.sort(key=_rank)
    without = sum(not c.has_sign for c in candidates)
    return Result(candidates, sorted(known), without, log, catalog.ids)


def _rank(c: Candidate) -> tuple:
    seen = c.seen
    return (not c.has_sign, -c.score, -seen.clients, -seen.connections - seen.requests, seen.domain)


def entry(candidate: Candidate, today: str, taken: set[str]) -> dict[str, object]:
    """A catalog entry for review (policies/catalog/README.md's schema)."""
    seen, domain = candidate.seen, candidate.seen.domain
    slug = _SLUG.sub("-", domain if is_ip(domain) else _own_label(domain)).strip("-") or "x"
    if is_ip(domain):
        slug = "ip-" + slug
    sid, n = slug, 2
    if sid in taken:
        sid = _SLUG.sub("-", domain).strip("-")
    while sid in taken:
        sid, n = f"{slug}-{n}", n + 1
    taken.add(sid)
    if is_ip(domain) or candidate.shared:  # only what was seen
        hosts = candidate.hosts or [domain]
    else:  # a domain of its own: all of it, as catalog entries usually say
        hosts = [domain, f"*.{domain}"]
    clients = f"{seen.clients}{'+' if seen.clients_capped else ''} client"
    clients += "s" if seen.clients != 1 or seen.clients_capped else ""
    signs = ", ".join(f"{r.signal} {r.detail}" for r in candidate.reasons[:4])
    name = domain if is_ip(domain) else " ".join(map(str.capitalize, slug.split("-")))
    return {
        "id": sid,
        "name": name,
        "vendor": "TODO",
        "category": candidate.category,
        "hosts": hosts,
        "source": f"aiwarden discover {today}: {clients}; {signs}",
        "checked": today,
    }


def render_entries(candidates: list[Candidate], entries: list[dict]) -> str:
    out = [
        "# Candidate catalog entries from `aiwarden discover`: check each service, set vendor",
        "# (and country), correct name and category, then add it to a file under",
        "# policies/catalog/ (see policies/catalog/README.md).",
        "services:",
    ]
    for candidate, e in zip(candidates, entries, strict=True):
        out += [
            f"  - id: {e['id']}",
            f"    name: {json.dumps(e['name'])}",
            "    vendor: TODO",
            f"    category: {e['category']}  # a guess: {candidate.category_why}",
            f"    hosts: [{', '.join(json.dumps(h) for h in e['hosts'])}]"
            f"  # seen: {', '.join(candidate.hosts[:5]) or '-'}",
            f"    source: {json.dumps(e['source'])}",
            f"    checked: {e['checked']}",
        ]
    return "\n".join(out) + "\n"


def render_text(result: Result, top: int, show_all: bool, today: str) -> str:
    listed = _listed(result, top, show_all)
    log = result.log
    first = min((s.first_seen for s in log.domains.values() if s.first_seen), default="-")
    last = max((s.last_seen for s in log.domains.values()), default="-")
    out = [
        f"aiwarden discover: {log.lines} discovery lines, {first} to {last}"
        + (f" (some sampled, at {log.sample:g} of the traffic)" if log.sample < 1 else ""),
        f"domains seen: {len(log.domains)}; catalogued, left out: {len(result.catalogued)}; "
        f"with a sign: {len(result.candidates) - result.without_sign}; without any sign: "
        f"{result.without_sign}" + ("" if show_all else " (left out; --all lists them)"),
    ]
    if log.other is not None:
        o = log.other
        out.append(
            f"beyond discovery.max_domains: {o.connections} connections and {o.requests} "
            f"requests to domains not itemised (raise max_domains to see them)"
        )
    if not listed:
        out.append("\nno candidates")
        return "\n".join(out) + "\n"
    out.append("")
    for rank, c in enumerate(listed, 1):
        s = c.seen
        more = "+" if s.clients_capped else ""
        out.append(f"{rank:>3}. {s.domain}  score {c.score}")
        out.append(
            f"     clients {s.clients}{more}, connections {s.connections}, requests "
            f"{s.requests}, {_size(s.bytes_up)} up, {_size(s.bytes_down)} down; seen "
            f"{s.first_seen[:19]}Z to {s.last_seen[:19]}Z"
        )
        out.append(f"     hosts: {', '.join(c.hosts[:10]) or '-'}")
        if c.catalogued:
            known = ", ".join(f"{h} ({'/'.join(v)})" for h, v in list(c.catalogued.items())[:3])
            out.append(f"     catalogued already: {known}")
        for reason in c.reasons:
            out.append(f"     {reason}")
    taken = set(result.ids)
    signed = [c for c in listed if c.has_sign]
    entries = [entry(c, today, taken) for c in signed]
    if signed:
        out += ["", render_entries(signed, entries).rstrip("\n")]
    return "\n".join(out) + "\n"


def render_json(result: Result, top: int, show_all: bool, today: str) -> dict:
    listed = _listed(result, top, show_all)
    taken = set(result.ids)
    log = result.log
    return {
        "generated": today,
        "lines": log.lines,
        "sample": log.sample,
        "domains_seen": len(log.domains),
        "catalogued": result.catalogued,
        "without_sign": result.without_sign,
        "other": None if log.other is None else _counts(log.other),
        "candidates": [
            {
                "rank": rank,
                "domain": c.seen.domain,
                "score": c.score,
                "sign": c.has_sign,
                "reasons": [
                    {"points": r.points, "signal": r.signal, "detail": r.detail} for r in c.reasons
                ],
                "hosts": c.hosts,
                "catalogued_hosts": c.catalogued,
                **_counts(c.seen),
                "entry": entry(c, today, taken),
            }
            for rank, c in enumerate(listed, 1)
        ],
    }


def _listed(result: Result, top: int, show_all: bool) -> list[Candidate]:
    listed = [c for c in result.candidates if show_all or c.has_sign]
    return listed[:top] if top > 0 else listed


def _counts(seen: Seen) -> dict[str, object]:
    return {
        "connections": seen.connections,
        "requests": seen.requests,
        "bytes_up": seen.bytes_up,
        "bytes_down": seen.bytes_down,
        "clients": seen.clients,
        "clients_capped": seen.clients_capped,
        "first_seen": seen.first_seen,
        "last_seen": seen.last_seen,
        "lines": seen.lines,
    }


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()
