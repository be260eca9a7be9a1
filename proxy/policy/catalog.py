"""The AI service catalog: which hosts and paths belong to which service.

Catalog files (`policies/catalog/*.yaml`) and a policy's own `services:` list share one schema;
see policies/catalog/README.md for it and for the category and activity vocabularies.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from proxy.policy.patterns import (
    HostPattern,
    PatternError,
    check_path_pattern,
    covers,
    parse_host_pattern,
)
from proxy.policy.yamlsource import (
    Fields,
    Mapping,
    Problems,
    Sequence,
    Sources,
    load_yaml,
    type_name,
)

CATEGORIES: dict[str, str] = {
    "chat": "chat assistants people use in a browser or app (ChatGPT, Claude, Gemini, Le Chat)",
    "api": "model APIs and inference platforms called by programs (OpenAI API, Bedrock)",
    "code-assistant": "AI coding tools and their back ends (Copilot, Cursor, Windsurf)",
    "search": "AI answer and search engines (Perplexity)",
    "image": "image generation (Midjourney)",
    "video": "video generation (Sora)",
    "voice": "speech, voice and music generation (ElevenLabs)",
    "agent": "agents and app builders that act or build on the user's behalf (Jules, Manus, v0)",
    "writing": "writing, grammar, paraphrasing and copywriting assistants (Grammarly, QuillBot)",
    "translation": "machine translation of text and documents (DeepL)",
    "meeting": "meeting assistants and note takers that record and summarise calls (Otter)",
    "companion": "companion and character chat (Character.AI, Replika)",
    "productivity": "AI slides, documents, email and office tools (Gamma, Tome)",
    "model-hub": "model and dataset hubs where models are shared and downloaded (Civitai)",
}

ACTIVITIES: dict[str, str] = {
    "prompt": "sending a prompt or a generation request",
    "upload": "uploading files or attachments",
    "realtime": "opening a realtime (voice or WebSocket) session",
    "login": "signing in",
    "share": "sharing a conversation or its output",
    "read": "reading history, models or other results",
    "anonymous": "using the service without signing in",
}

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE")

_SERVICE_ID = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")
SERVICE_KEYS = (
    "id", "name", "vendor", "country", "category", "hosts", "paths", "activities", "api_format",
    "source", "checked",
)  # fmt: skip
_COUNTRY = re.compile(r"[A-Z]{2}")  # ISO 3166-1 alpha-2, where the vendor is based
API_FORMATS = ("openai", "anthropic", "gemini")  # error bodies the official SDKs understand


ACTIVITY_KEYS = ("methods", "paths", "hosts", "source", "checked")


@dataclass(frozen=True, slots=True)
class Activity:
    name: str
    methods: frozenset[str] | None  # None: any method
    paths: tuple[str, ...]
    hosts: tuple[HostPattern, ...] = ()  # empty: on every host of the service
    source: str | None = None  # where this activity's facts come from, when not the service's
    checked: str | None = None  # YYYY-MM-DD: when this activity was last checked


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    name: str
    vendor: str
    category: str
    hosts: tuple[HostPattern, ...]
    host_lines: tuple[int, ...]  # where each host pattern is written
    paths: tuple[str, ...]  # empty: every path of these hosts
    activities: tuple[Activity, ...]
    api_format: str | None  # the API's error format, so blocked SDK calls fail their own way
    source: str
    file: str
    line: int
    country: str | None = None  # ISO 3166-1 alpha-2 of where the vendor is based
    checked: str | None = None  # YYYY-MM-DD: when the entry was last checked against its source


def load_catalog_files(
    paths: Iterable[Path], problems: Problems, sources: Sources | None = None
) -> list[Service]:
    """Every service of the given catalog files, in order. A file that is empty, or holds
    nothing, is an error: read half-written, it would quietly drop its services."""
    services: list[Service] = []
    for path in paths:
        before = len(problems.items)
        doc = load_yaml(path, problems, sources)
        if doc is None and len(problems.items) > before:
            continue  # unreadable or empty: reported
        if not isinstance(doc, Mapping):
            problems.add(
                str(path), 1, f"a catalog file is a mapping with 'services:', not {type_name(doc)}"
            )
            continue
        top = Fields(doc, "catalog", problems, allowed=["services"], required=["services"])
        services.extend(parse_services(top.sequence("services"), problems))
    return services


def parse_services(node: Sequence | None, problems: Problems) -> list[Service]:
    if node is None:
        return []
    services = []
    for i, item in enumerate(node):
        if not isinstance(item, Mapping):
            problems.add(
                node.file, node.item_line(i), f"a service is a mapping, not {type_name(item)}"
            )
            continue
        service = _parse_service(item, problems)
        if service is not None:
            services.append(service)
    return services


def _parse_service(node: Mapping, problems: Problems) -> Service | None:
    sid = node.get("id")
    where = f"service {sid!r}" if isinstance(sid, str) else "service"
    f = Fields(
        node,
        where,
        problems,
        allowed=SERVICE_KEYS,
        required=("id", "name", "vendor", "category", "hosts", "source"),
    )
    errors_before = len(problems.items)
    sid = f.str("id")
    if sid is not None and not _SERVICE_ID.fullmatch(sid):
        f.error("id", f"id {sid!r} must be a lower-case slug: letters, digits and '-'")
    name, vendor, source = f.str("name"), f.str("vendor"), f.str("source")
    category = f.str("category", choices=CATEGORIES)
    hosts, host_lines = [], []
    for text, line in f.str_items("hosts") or ():
        try:
            hosts.append(parse_host_pattern(text))
            host_lines.append(line)
        except PatternError as e:
            problems.add(node.file, line, f"{where}: bad host pattern: {e}")
    paths = _path_list(f, "paths", where, problems)
    activities = _parse_activities(f, where, problems, hosts)
    api_format = f.str("api_format", choices=API_FORMATS)
    country = _country(f)
    checked = _checked(f)
    if len(problems.items) > errors_before or None in (sid, name, vendor, category, source):
        return None
    return Service(
        id=sid, name=name, vendor=vendor, category=category, hosts=tuple(hosts),
        host_lines=tuple(host_lines), paths=tuple(paths), activities=tuple(activities),
        api_format=api_format, source=source, file=node.file, line=node.line, country=country,
        checked=checked,
    )  # fmt: skip


def _country(f: Fields) -> str | None:
    value = f.node.get("country")
    if value is False:  # YAML 1.1 reads a bare NO (Norway) as false
        f.error("country", 'country NO must be quoted: "NO" (bare, YAML reads it as false)')
        return None
    country = f.str("country")
    if country is not None and not _COUNTRY.fullmatch(country):
        f.error("country", f"country {country!r} must be an ISO 3166 code: two capital letters")
        return None
    return country


def _checked(f: Fields) -> str | None:
    """The date an entry was last checked: a YAML date, or a string in YYYY-MM-DD form."""
    value = f.node.get("checked")
    if value is None:
        return None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    f.error("checked", f"'checked' must be a date, YYYY-MM-DD, not {value!r}")
    return None


def _path_list(f: Fields, key: str, where: str, problems: Problems) -> list[str]:
    paths = []
    for text, line in f.str_items(key) or ():
        try:
            check_path_pattern(text)
            paths.append(text)
        except PatternError as e:
            problems.add(f.node.file, line, f"{where}: bad path pattern: {e}")
    return paths


def methods_from(f: Fields, where: str, problems: Problems) -> frozenset[str] | None:
    """The `methods` list of a mapping, upper-cased and checked; None when absent."""
    items = f.str_items("methods")
    if items is None:
        return None
    methods = set()
    for text, line in items:
        method = text.upper()
        if method not in HTTP_METHODS:
            problems.add(f.node.file, line, f"{where}: unknown HTTP method {text!r}")
        methods.add(method)
    return frozenset(methods)


def _parse_activities(
    f: Fields, where: str, problems: Problems, service_hosts: list[HostPattern]
) -> list[Activity]:
    node = f.mapping("activities")
    if node is None:
        return []
    activities = []
    for name, spec in node.items():
        here = f"{where}, activity {name!r}"
        if name not in ACTIVITIES:
            problems.add(
                node.file,
                node.key_line(name),
                f"{where}: unknown activity {name!r}; activities are {', '.join(ACTIVITIES)}",
            )
            continue
        if isinstance(spec, Sequence):  # several method+path sets (on different hosts)
            specs = [(item, spec.item_line(i)) for i, item in enumerate(spec)]
        else:
            specs = [(spec, node.value_line(name))]
        for item, line in specs:
            if not isinstance(item, Mapping):
                problems.add(
                    node.file,
                    line,
                    f"{here}: must be a mapping with 'paths' and optional 'methods', 'hosts', "
                    f"'source', 'checked' (or a list of such mappings), not {type_name(item)}",
                )
                continue
            af = Fields(item, here, problems, allowed=ACTIVITY_KEYS, required=("paths",))
            activities.append(
                Activity(
                    name,
                    methods_from(af, here, problems),
                    tuple(_path_list(af, "paths", here, problems)),
                    _activity_hosts(af, here, problems, service_hosts),
                    af.str("source"),
                    _checked(af),
                )
            )
    return activities


def _activity_hosts(
    f: Fields, where: str, problems: Problems, service_hosts: list[HostPattern]
) -> tuple[HostPattern, ...]:
    """The hosts an activity is limited to: each must lie within the service's own hosts
    (the activity names what the service does there; it cannot claim a host)."""
    hosts = []
    for text, line in f.str_items("hosts") or ():
        try:
            host = parse_host_pattern(text)
        except PatternError as e:
            problems.add(f.node.file, line, f"{where}: bad host pattern: {e}")
            continue
        if service_hosts and not any(covers(outer, host) for outer in service_hosts):
            problems.add(
                f.node.file,
                line,
                f"{where}: host {host.text!r} is not one of the service's hosts; "
                f"an activity's hosts must lie within the service's 'hosts'",
            )
            continue
        hosts.append(host)
    return tuple(hosts)
