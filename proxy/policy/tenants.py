"""Tenant restrictions: the vendor-defined headers that let only the company's own workspace,
organization or tenant of an AI service be used, and the policy's `tenants:` section.

Companies that buy ChatGPT Enterprise, Claude for Work, Gemini or Copilot must still stop the
same people from using personal accounts of the same service, which the host alone cannot
tell apart. The vendors define a request header for that: a proxy that intercepts their
documented hosts sets it, and the service refuses any other tenant. Each control below is
what the vendor documents (checked 2026-12-03; sources in SOURCES, details in
shared/reference/tenant-headers.md):
- the header is *replaced* on every request, never appended (Anthropic and GitHub answer a
  duplicated header with a 400, and a client must not send its own allowlist);
- only on that vendor's documented hosts;
- a malformed value breaks the service for everyone, so values are checked at load time;
- logged-out use that bypasses the tenant (ChatGPT's `/backend-anon/`) is blocked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy.policy.patterns import HostPattern, parse_host_pattern
from proxy.policy.yamlsource import Mapping, Problems, Sequence, did_you_mean, type_name

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
DOMAIN = r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"


@dataclass(frozen=True)
class TenantControl:
    """One vendor's tenant-restriction header, as the vendor documents it."""

    vendor: str  # the key under `tenants:`
    header: str  # spelled as the vendor writes it
    hosts: tuple[str, ...]  # host patterns the header is set on
    value: str  # what one configured value must look like (a regular expression)
    what: str  # what a value is, for error messages
    separator: str = ","
    max_values: int = 500
    # header names the client may send that stand for the same thing (continuation lines)
    also_strip: tuple[str, ...] = ()
    # path prefixes of logged-out use on these hosts, blocked while a tenant is set
    anonymous_paths: tuple[str, ...] = ()
    # a second header the vendor requires beside the first, and what its one value is
    # (Microsoft's Tenant Restrictions v1: Restrict-Access-Context, the directory setting it)
    context_header: str | None = None
    context_value: str = ""
    context_what: str = ""

    def host_patterns(self) -> tuple[HostPattern, ...]:
        return tuple(parse_host_pattern(h) for h in self.hosts)


CONTROLS = (
    TenantControl(
        vendor="chatgpt",
        header="ChatGPT-Allowed-Workspace-Id",
        hosts=("chatgpt.com", "*.chatgpt.com"),
        value=UUID,
        what="a ChatGPT workspace ID (a UUID)",
        anonymous_paths=("/backend-anon/",),
    ),
    TenantControl(
        vendor="openai-api",
        header="OpenAI-Allowed-Organization-Ids",
        hosts=("api.openai.com",),
        value=r"org-[A-Za-z0-9]{8,64}",
        what="an OpenAI organization ID (org-...)",
    ),
    TenantControl(
        vendor="anthropic",
        header="anthropic-allowed-org-ids",
        hosts=("claude.ai", "api.anthropic.com", "claude.com", "anthropic.com"),
        value=UUID,
        what="an Anthropic organization ID (a UUID)",
        also_strip=tuple(f"anthropic-allowed-org-ids{i}" for i in range(1, 10)),
    ),
    TenantControl(
        vendor="google-workspace",
        header="X-GoogApps-Allowed-Domains",
        hosts=("google.com", "*.google.com"),
        value=rf"{DOMAIN}|consumer_accounts|gserviceaccounts\.com",
        what="a Workspace domain (or consumer_accounts, gserviceaccounts.com)",
    ),
    TenantControl(
        vendor="gemini-code-assist",
        header="X-GeminiCodeAssist-Allowed-Domains",
        hosts=("cloudcode-pa.googleapis.com",),
        value=DOMAIN,
        what="a domain, without @",
    ),
    TenantControl(
        vendor="microsoft",
        header="sec-Restrict-Tenant-Access-Policy",
        hosts=(
            "login.live.com",
            "login.microsoft.com",
            "login.microsoftonline.com",
            "login.windows.net",
        ),
        value=rf"{UUID}:{UUID}",
        what="TENANT-ID:POLICY-ID (Tenant Restrictions v2, both UUIDs)",
        max_values=1,
    ),
    TenantControl(
        vendor="microsoft-v1",
        header="Restrict-Access-To-Tenants",
        hosts=("login.microsoftonline.com", "login.microsoft.com", "login.windows.net"),
        value=rf"{UUID}|{DOMAIN}",
        what="a permitted tenant: a domain (contoso.onmicrosoft.com) or a tenant ID (a UUID)",
        context_header="Restrict-Access-Context",
        context_value=UUID,
        context_what="the directory ID of the tenant that sets the restriction (a UUID)",
    ),
    TenantControl(
        vendor="github",
        header="sec-GitHub-allowed-enterprise",
        hosts=("github.com", "api.github.com", "*.githubcopilot.com"),
        value=r"[A-Za-z0-9][A-Za-z0-9-]{0,62}",
        what="a GitHub enterprise ID or slug",
        separator=", ",
        max_values=20,
    ),
)
BY_VENDOR = {c.vendor: c for c in CONTROLS}
SOURCES = {
    "chatgpt": "https://help.openai.com/en/articles/20001323",
    "openai-api": "https://developers.openai.com/api/docs/guides/organization-blocking",
    "anthropic": "Claude Help Center: network-level access control with Tenant Restrictions",
    "google-workspace": "Google Workspace Admin Help: Block access to consumer accounts",
    "gemini-code-assist": "Gemini Code Assist docs: Restrict access by domain",
    "microsoft": "Microsoft Entra: Tenant Restrictions v2 (corporate proxy)",
    "microsoft-v1": "Microsoft Entra: Use tenant restrictions to manage access to SaaS apps (v1)",
    "github": "GitHub Docs: Restricting access to GitHub.com using a corporate proxy",
}


@dataclass(frozen=True)
class Tenant:
    """A configured tenant restriction: the control, and the header value it sets (and the
    context header's, for a control that has one)."""

    control: TenantControl
    value: str
    context: str | None = None

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The (name, value) of each header set, as the vendor spells the name."""
        first = ((self.control.header, self.value),)
        if self.control.context_header and self.context:
            return (*first, (self.control.context_header, self.context))
        return first

    @property
    def names(self) -> tuple[str, ...]:
        """Every header name a client's lines are removed under before ours are set."""
        return (*(name for name, _ in self.headers), *self.control.also_strip)


def parse_tenants(node: object, file: str, line: int, problems: Problems) -> tuple[Tenant, ...]:
    """The `tenants:` section: vendor -> one value or a list of them; every problem at its
    file:line."""
    if node is None:
        return ()
    if not isinstance(node, Mapping):
        problems.add(
            file, line, f"tenants: must be a mapping of vendor to IDs, not {type_name(node)}"
        )
        return ()
    tenants = []
    for vendor in node:
        where = f"tenants.{vendor}"
        control = BY_VENDOR.get(vendor)
        if control is None:
            problems.add(
                node.file,
                node.key_line(vendor),
                f"tenants: unknown vendor {vendor!r}{did_you_mean(vendor, list(BY_VENDOR))}; "
                f"known: {', '.join(BY_VENDOR)}",
            )
            continue
        if control.context_header:
            tenant = _with_context(node, vendor, where, control, problems)
            if tenant is not None:
                tenants.append(tenant)
            continue
        values = _values(node, vendor, where, control, problems)
        if values:
            tenants.append(Tenant(control, control.separator.join(values)))
    return tuple(tenants)


def _with_context(
    node: Mapping, vendor: str, where: str, control: TenantControl, problems: Problems
) -> Tenant | None:
    """A control of two headers: `{allow: [values], context: VALUE}`."""
    spec = node.get(vendor)
    if not isinstance(spec, Mapping) or set(spec) != {"allow", "context"}:
        problems.add(
            node.file,
            node.value_line(vendor),
            f"{where}: give a mapping with 'allow' ({control.what}, or a list of them) and "
            f"'context' ({control.context_what})",
        )
        return None
    values = _values(spec, "allow", f"{where}.allow", control, problems)
    context = spec.get("context")
    if not isinstance(context, str) or not re.fullmatch(control.context_value, context):
        shown = repr(context) if isinstance(context, str) else type_name(context)
        problems.add(
            spec.file, spec.value_line("context"),
            f"{where}.context: {shown} is not {control.context_what}",
        )  # fmt: skip
        return None
    return Tenant(control, control.separator.join(values), context) if values else None


def _values(
    node: Mapping, vendor: str, where: str, control: TenantControl, problems: Problems
) -> list[str]:
    raw = node.get(vendor)
    items = [(raw, node.value_line(vendor))] if isinstance(raw, str) else None
    if isinstance(raw, Sequence):
        items = [(item, raw.item_line(i)) for i, item in enumerate(raw)]
    if not items:
        problems.add(
            node.file,
            node.value_line(vendor),
            f"{where}: give {control.what}, or a list of them, not {type_name(raw)}",
        )
        return []
    pattern = re.compile(control.value)
    values = []
    for item, line in items:
        if not isinstance(item, str) or not pattern.fullmatch(item):
            shown = repr(item) if isinstance(item, str) else type_name(item)
            problems.add(node.file, line, f"{where}: {shown} is not {control.what}")
        elif item in values:
            problems.add(node.file, line, f"{where}: {item!r} is listed twice")
        else:
            values.append(item)
    if len(values) > control.max_values:
        problems.add(
            node.file,
            node.value_line(vendor),
            f"{where}: {len(values)} values; {control.header} takes at most {control.max_values}",
        )
        return []
    return values if len(values) == len(items) else []
