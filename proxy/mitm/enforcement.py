"""Request enforcement: each request decided at its headers, before any upstream connection.

Every name the request claims (the request target, its authority, each Host header, every
TLS server name of its connection) is decided and the strictest decision wins (Gate.request).
Blocked: answered without reading the body. Warned: passed as monitored when its user
proceeded past the warning, else answered like a block with a link to proceed (coaching.py).
Allowed or monitored: the body streams through
unbuffered, unless it is to be checked for an LLM API call (unlisted.py). Redacted: the body
is buffered for redaction.py, which may refuse it before reading it.
"""

from __future__ import annotations

from collections.abc import Awaitable

from mitmproxy import http

from proxy.decide.gate import Gate
from proxy.decide.verdict import Action, Stage
from proxy.mitm.answers import Answers
from proxy.mitm.coaching import Coaching
from proxy.mitm.recording import Recorder
from proxy.mitm.redaction import Redaction
from proxy.mitm.state import STATE, Clients, state_of
from proxy.mitm.unlisted import UnlistedAI
from proxy.policy.normalize import BadHost, normalize_host

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; over it: 431, never forwarded
HOP_BY_HOP_PROXY_HEADERS = ("proxy-authorization", "proxy-connection")  # for the proxy only


class Enforcement:
    def __init__(
        self,
        gate: Gate,
        clients: Clients,
        recorder: Recorder,
        answers: Answers,
        unlisted: UnlistedAI,
        redaction: Redaction,
        coaching: Coaching,
    ) -> None:
        self.gate = gate
        self.clients = clients
        self.recorder = recorder
        self.answers = answers
        self.unlisted = unlisted
        self.redaction = redaction
        self.coaching = coaching

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        state = flow.metadata.get(STATE)
        if state is not None and state.coaching_call:
            return None  # the proxy's own page, answered by coaching.py, never forwarded
        size = head_bytes(flow.request)
        if size > MAX_HEAD_BYTES and not (flow.response or flow.error):
            self.answers.bad_request(
                flow, 431, "header_too_large",
                f"aiwarden: the request's headers are {size} bytes; the limit is "
                f"{MAX_HEAD_BYTES}. Nothing was forwarded.",
            )  # fmt: skip
            return None
        for name in HOP_BY_HOP_PROXY_HEADERS:  # read by proxyauth already; not the server's
            flow.request.headers.pop(name, None)
        return self.answers.guarded(flow, Stage.REQUEST, self._request)

    def _request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        request = flow.request
        tls_names = self.clients.of(flow.client_conn).tls_names
        unreadable = tls_names if isinstance(tls_names, BadHost) else None
        names = claimed_hosts(flow, [] if unreadable else tls_names)
        decision, host = self.gate.request(
            request.method,
            request.path,
            names,
            flow.client_conn.peername[0],
            self.clients.user(flow),
            unreadable,
            self.clients.groups(flow),
        )
        decision = self.unlisted.before_body(flow, decision, host)
        if decision.action is Action.WARN:
            decision = self.coaching.granted(flow, decision, host)
        state = state_of(flow)
        state.decision, state.host, state.names = decision, host, tuple(names)
        checking = state.body_check is not None
        if not checking:  # otherwise counted once the body has been checked
            self.recorder.decided(decision)
        if decision.action is Action.BLOCK:
            self.answers.block(flow, decision, host)
            return None
        if decision.action is Action.WARN:
            return self.coaching.warn(flow, decision, host)
        if decision.action in (Action.ALLOW, Action.MONITOR) and not checking:
            request.stream = True  # nothing to inspect: do not buffer the body
            if decision.action is Action.MONITOR or decision.audit:
                self.recorder.record(flow, decision, host)
        if decision.action is Action.REDACT and self.redaction.refused_early(flow, decision, host):
            return None
        if not flow.client_conn.tls_established:  # plain HTTP: we connect to request.host
            canonical = normalize_host(request.host)
            return self.answers.check_destination(flow, canonical, request.port, refuse=False)
        return None


def claimed_hosts(flow: http.HTTPFlow, tls_names: list[str]) -> list[str]:
    """Every host this request claims to be for, the request target first: the target
    (CONNECT host or absolute-form URL), its authority (absolute-form inside a tunnel,
    HTTP/2 :authority), each Host header and every TLS server name."""
    request = flow.request
    names = [request.host, request.authority, *request.headers.get_all("host"), *tls_names]
    names.append(flow.client_conn.sni)  # mitmproxy's reading of the same ClientHello
    return [n for n in dict.fromkeys(names) if n]


def head_bytes(request: http.Request) -> int:
    """About the size of the request line and headers as they came."""
    fields = request.headers.fields
    return len(request.path) + len(request.host) + sum(len(k) + len(v) + 4 for k, v in fields)
