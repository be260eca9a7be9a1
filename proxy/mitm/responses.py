"""What a blocked client receives: something it understands, saying why.

- API clients get the error body of the API they called, so the official SDK raises its own
  permission error carrying our message (OpenAI-compatible, Anthropic, Gemini, Ollama);
  other JSON clients get a plain JSON error.
- Browsers get a self-contained HTML page: the service, the rule, the policy's message, a
  contact link and the reference id that is also in the audit log.
- Everything else gets text/plain with the same facts.
Every response is 403 with `X-AIWarden-Rule` and `X-AIWarden-Reference`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from mitmproxy import http

from proxy.coach.pages import duration
from proxy.decide.verdict import Decision
from proxy.policy.catalog import Service

STATUS = 403
_SAFE_LINK_SCHEMES = ("https://", "http://", "mailto:")


@dataclass(frozen=True, slots=True)
class Block:
    """The facts every kind of block response shows."""

    decision: Decision
    reference: str
    service: Service | None
    host: str
    api_format: str | None = None  # when no service says it: the API the body spoke
    acknowledge: str | None = None  # a warning's link: open it to proceed (coaching.py)

    @property
    def service_name(self) -> str:
        return self.service.name if self.service else self.host

    @property
    def message(self) -> str:
        return self.decision.message or "Blocked by company policy."

    @property
    def how_to_proceed(self) -> str | None:
        """A warning's instructions: where to acknowledge it, and for how long it counts."""
        if self.acknowledge is None:
            return None
        coaching = self.decision.coaching
        ttl = f" for {duration(coaching.ttl)}" if coaching else ""
        return (
            f"To use it anyway{ttl}, open {self.acknowledge} in your browser (through this "
            "proxy) and proceed; then retry."
        )

    def sentence(self) -> str:
        verb = "blocked" if self.acknowledge is None else "not approved"
        proceed = f" {self.how_to_proceed}" if self.acknowledge else ""
        return (
            f"{self.message}{proceed} [aiwarden: {self.service_name} {verb} by rule "
            f"'{self.decision.rule}', reference {self.reference}]"
        )


def client_kind(
    request: http.Request, service: Service | None, api_format: str | None = None
) -> str:
    """Which response format this client understands: openai, anthropic, gemini, ollama,
    html, json or text. `api_format` is the API a request body was recognised as speaking,
    for hosts no service describes."""
    headers = request.headers
    if "anthropic-version" in headers:
        return "anthropic"
    if "x-goog-api-key" in headers or "x-goog-api-client" in headers:
        return "gemini"
    api_call = "authorization" in headers or "x-api-key" in headers
    api_format = api_format or (service.api_format if service is not None else None)
    if api_format and (api_call or not _wants_html(headers)):
        return api_format
    if _wants_html(headers):
        return "html"
    accept = headers.get("accept", "")
    if "json" in accept or "json" in headers.get("content-type", "") or api_call:
        return "json"
    return "text"


def _wants_html(headers: http.Headers) -> bool:
    return "text/html" in headers.get("accept", "")


def block_response(request: http.Request, block: Block, status: int = STATUS) -> http.Response:
    kind = client_kind(request, block.service, block.api_format)
    if kind == "html":
        body, ctype = render_html(block).encode(), "text/html; charset=utf-8"
    elif kind == "text":
        body, ctype = render_text(block).encode(), "text/plain; charset=utf-8"
    else:
        body, ctype = json.dumps(_json_body(kind, block, status)).encode(), "application/json"
    return http.Response.make(status, body, _headers(block, ctype))


UPSTREAM_FAILURES = {
    "refused": "the server refused the connection",
    "unreachable": "the server cannot be reached from here",
    "timeout": "the server did not answer in time",
    "tls": "the server's TLS certificate or handshake failed verification",
    "dns": "the server's name does not resolve",
    "reset": "the server closed the connection before answering",
    "other": "the connection to the server failed",
    "parent": "the parent proxy refused to connect to it",
}


def upstream_error_response(
    request: http.Request,
    service: Service | None,
    status: int,
    kind: str,
    reference: str,
    via: str | None = None,
) -> http.Response:
    """A 502 or 504 for a request whose upstream failed, in the client's own format. SDKs
    may retry it: the failure is the server's, not the policy's. `via`: the parent proxy the
    connection went through."""
    host = request.pretty_host
    through = f" through the parent proxy {via}" if via else ""
    text = (
        f"aiwarden could not get an answer from {host}{through}: "
        f"{UPSTREAM_FAILURES.get(kind, UPSTREAM_FAILURES['other'])} [reference {reference}]"
    )
    client = client_kind(request, service)
    headers = {"Cache-Control": "no-store", "X-AIWarden-Reference": reference}
    if client == "html":
        page = _ERROR_PAGE.format(status=status, host=html.escape(host), text=html.escape(text))
        return http.Response.make(
            status, page.encode(), {**headers, "Content-Type": "text/html; charset=utf-8"}
        )
    if client == "text":
        return http.Response.make(
            status, (text + "\n").encode(), {**headers, "Content-Type": "text/plain; charset=utf-8"}
        )
    if client == "openai":
        body = {"error": {"message": text, "type": "upstream_error", "code": kind, "param": None}}
    elif client == "anthropic":
        body = {"type": "error", "error": {"type": "api_error", "message": text}}
    elif client == "gemini":
        body = {"error": {"code": status, "message": text, "status": "UNAVAILABLE"}}
    else:
        body = {"error": {"message": text, "kind": kind, "reference": reference}}
    return http.Response.make(
        status, json.dumps(body).encode(), {**headers, "Content-Type": "application/json"}
    )


def refuse_response(block: Block) -> http.Response:
    """The answer to a refused CONNECT: no TLS, so plain text is all a client can show."""
    return http.Response.make(
        STATUS, render_text(block).encode(), _headers(block, "text/plain; charset=utf-8")
    )


def _headers(block: Block, content_type: str) -> dict[str, str]:
    headers = {
        "Content-Type": content_type,
        "Cache-Control": "no-store",
        "X-AIWarden-Rule": block.decision.rule,
        "X-AIWarden-Reference": block.reference,
        "X-Should-Retry": "false",  # the OpenAI and Anthropic SDKs honour it
    }
    if block.acknowledge:
        headers["X-AIWarden-Acknowledge"] = block.acknowledge
    return headers


def _json_body(kind: str, block: Block, status: int = STATUS) -> dict:
    text = block.sentence()
    if kind == "openai":
        return {
            "error": {
                "message": text,
                "type": "permission_denied",
                "code": "blocked_by_policy",
                "param": None,
            }
        }
    if kind == "anthropic":
        return {"type": "error", "error": {"type": "permission_error", "message": text}}
    if kind == "gemini":
        gemini_status = "PERMISSION_DENIED" if status == STATUS else "INVALID_ARGUMENT"
        return {"error": {"code": status, "message": text, "status": gemini_status}}
    if kind == "ollama":  # Ollama's own API answers errors as {"error": "text"}
        return {"error": text}
    error = {
        "message": block.message,
        "rule": block.decision.rule,
        "service": block.decision.service,
        "reference": block.reference,
        "contact": block.decision.contact,
    }
    if block.acknowledge:
        error["acknowledge"] = block.acknowledge
        error["how_to_proceed"] = block.how_to_proceed
    return {"error": error}


def render_text(block: Block) -> str:
    title = "Blocked by company policy" if block.acknowledge is None else "Not approved"
    lines = [title, "", block.message, ""]
    if block.acknowledge:
        lines[3:3] = [block.how_to_proceed, ""]
    lines += [
        f"Service:   {block.service_name}",
        f"Rule:      {block.decision.rule}",
        f"Reference: {block.reference}",
    ]
    if block.decision.contact:
        lines.append(f"Contact:   {block.decision.contact}")
    return "\n".join(lines) + "\n"


def render_html(block: Block) -> str:
    e = html.escape
    contact = block.decision.contact
    contact_html = ""
    if contact:
        if contact.startswith(_SAFE_LINK_SCHEMES):
            label = contact.removeprefix("mailto:")
            contact_html = (
                f'<p class="contact">Need this service for your work? '
                f'<a href="{e(contact)}">Ask for access: {e(label)}</a></p>'
            )
        else:
            contact_html = f'<p class="contact">Need this service? Contact {e(contact)}.</p>'
    return _PAGE.format(
        service=e(block.service_name),
        message=e(block.message),
        rule=e(block.decision.rule),
        reference=e(block.reference),
        host=e(block.host),
        contact=contact_html,
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Blocked: {service}</title>
<style>
body{{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;color:#1d2330;
margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}}
main{{background:#fff;max-width:36rem;margin:2rem;padding:2rem 2.5rem;border-radius:12px;
box-shadow:0 2px 12px rgba(0,0,0,.08);border-top:6px solid #c0392b}}
h1{{font-size:1.4rem;margin:0 0 1rem}} .message{{font-size:1.1rem}}
dl{{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:1.5rem 0;
color:#4a5163}}
dt{{font-weight:600}} dd{{margin:0;font-family:ui-monospace,monospace}}
.contact a{{color:#1f5fbf}} footer{{margin-top:1.5rem;font-size:.85rem;color:#7a8194}}
</style></head>
<body><main>
<h1>{service} is blocked by company policy</h1>
<p class="message">{message}</p>
<dl>
<dt>Service</dt><dd id="service">{service}</dd>
<dt>Address</dt><dd id="host">{host}</dd>
<dt>Rule</dt><dd id="rule">{rule}</dd>
<dt>Reference</dt><dd id="reference">{reference}</dd>
</dl>
{contact}
<footer>Quote the reference when you contact the security team. Filtered by aiwarden.</footer>
</main></body></html>
"""

_ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{status}: {host} did not answer</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;color:#1d2330}}
</style></head>
<body><h1>{host} did not answer</h1><p>{text}</p>
<p>This is not a policy block: try again later. Filtered by aiwarden.</p></body></html>
"""
