"""The upstream side: the last destination check before any server connection, answers when
the server fails, and protocol switches nothing could inspect.

- `server_connect`: a name may have been resolved again since the request was decided, so
  the destination is checked once more; the sink of a request blocked before its body is
  refused here, and its block answer sent by `error`.
- `error`: every flow ends in a response or an error. An upstream error is counted by kind
  and, when no answer has begun, answered in the client's format (compat.py lets the hook's
  response replace mitmproxy's HTML page): a 504 when the server was too slow, a 502
  otherwise, or the block page when our own destination check stopped the connection.
- `response`: a 101 to anything but WebSocket would have mitmproxy relay the rest as raw
  TCP, undecided: the client gets a 502 and the connection ends instead.

Behind a parent proxy (mitmproxy's upstream mode, `aiwarden run --upstream-proxy`), every
server connection mitmproxy opens is to the parent: `server_connect` lets it through
unchecked (the operator configured it; the destination itself was checked when the request
was decided, and the parent resolves its name), and `requestheaders` gives a plain-HTTP
request sent to the parent the parent's credentials (`upstream_auth`) — never the client's
own Proxy-Authorization, which enforcement removed.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable

from mitmproxy import ctx, http

from proxy.decide.destinations import REFUSED
from proxy.decide.gate import Gate
from proxy.mitm import compat
from proxy.mitm.answers import SINK, Answers
from proxy.mitm.recording import Recorder
from proxy.mitm.responses import upstream_error_response
from proxy.mitm.state import STATE, Clients, FlowState
from proxy.observe.audit import new_reference
from proxy.observe.logs import event
from proxy.policy.normalize import normalize_host

logger = logging.getLogger("aiwarden")


class Upstream:
    def __init__(self, gate: Gate, clients: Clients, recorder: Recorder, answers: Answers) -> None:
        self.gate = gate
        self.clients = clients
        self.recorder = recorder
        self.answers = answers

    def load(self, loader) -> None:
        compat.answer_upstream_errors()  # so that `error` answers, not mitmproxy's page

    # -- before connecting ---------------------------------------------------------------------

    def server_connect(self, data) -> Awaitable[None] | None:
        """The last check before any upstream connection; waits only when the name must be
        looked up."""
        if data.server.address == SINK:
            data.server.error = f"{REFUSED}blocked before its body"
            return None
        parent = compat.parent_proxy(data.client)
        if parent is not None and data.server.address == parent[1]:
            return None  # the parent proxy; the destination was checked at the decision

        def failed(error: Exception) -> None:
            logger.error("destination check failed; not connecting", exc_info=error)
            _refuse(data, "destination check failed")

        try:
            host, port = data.server.address
            return self.gate.when_checked(
                normalize_host(host), port, lambda reason: _refuse(data, reason), failed
            )
        except Exception as e:
            failed(e)
            return None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A plain-HTTP request sent to a parent proxy (absolute-form) carries the parent's
        credentials, when there are any: enforcement removed whatever the client sent."""
        request = flow.request
        if request.scheme != "http" or not request.authority or request.method == "CONNECT":
            return  # inside a tunnel (origin-form), the server's; a CONNECT has its own hook
        if compat.parent_proxy(flow.client_conn) is None:
            return
        if auth := parent_authorization():
            request.headers["Proxy-Authorization"] = auth

    # -- when the server fails -------------------------------------------------------------------

    def error(self, flow: http.HTTPFlow) -> None:
        state: FlowState | None = flow.metadata.get(STATE)
        if flow.error is None or state is None or not state.upstream_failed:
            return  # the client's side failed: nobody to answer
        if state.blocked_answer is not None:
            flow.response, state.blocked_answer = state.blocked_answer, None
            return  # a block decided before the body (Answers.block)
        kind = "timeout" if state.timed_out else upstream_error_kind(flow.error.msg)
        if kind == "policy":
            self.recorder.metrics.upstream_errors(kind).inc()
            if flow.response is None:  # our own destination check: a block, audited as one
                reason = flow.error.msg.partition(REFUSED)[2]
                self.answers.deny(flow, flow.request.pretty_host, reason)
            return
        reference = state.reference or new_reference()  # the decision's line, if it had one
        status = 504 if kind == "timeout" else 502
        answered = flow.response is None
        if answered:
            try:
                request = flow.request
                service = self.gate.classify(request.method, request.pretty_host, request.path)
                parent = compat.parent_proxy(flow.client_conn)
                via = format_address(parent[1]) if parent else None
                flow.response = upstream_error_response(
                    request, service, status, kind, reference, via
                )
            except Exception:  # mitmproxy's own error page is still sent
                logger.exception("could not build the upstream error response")
        self.recorder.upstream_error(
            kind, reference, flow.client_conn.peername[0], self.clients.user(flow),
            flow.request.pretty_host, tunnel=False, status=status if answered else None,
        )  # fmt: skip

    def server_connect_error(self, data) -> None:
        """A tunnel's server could not be reached. The client has had its "200 Connection
        established" and will only see the connection close: the log, the metric and the
        audit line are all that say why. (An intercepted request's failure is reported by
        `error`, with an answer.)"""
        facts = self.clients.of(data.client)
        if not facts.tunnelled:
            return
        message = str(data.server.error or "")
        host = str(data.server.address[0]) if data.server.address else ""
        parent = compat.parent_proxy(data.client)
        if parent is not None and data.server.address == parent[1]:
            host = facts.tunnel_host or host  # the destination, not the parent it went through
        self.recorder.upstream_error(
            upstream_error_kind(message), new_reference(), data.client.peername[0],
            facts.user, host, tunnel=True,
        )  # fmt: skip

    # -- the answer ------------------------------------------------------------------------------

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.response.status_code != 101 or flow.websocket is not None:
            return
        upgrade = flow.response.headers.get("upgrade", "")
        reference = new_reference()
        self.recorder.bad_request("protocol_switch", reference=reference, status=502,
                                  client=flow.client_conn.peername[0],
                                  host=flow.request.pretty_host)  # fmt: skip
        flow.response = http.Response.make(
            502,
            f"aiwarden: the server switched this connection to a protocol aiwarden cannot "
            f"inspect ({upgrade or 'unnamed'}); nothing more is relayed "
            f"(reference {reference}).\n",
            {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"},
        )

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Nothing here reads reply bodies: stream them all, so server-sent events and other
        # streamed AI answers reach the client as they are produced.
        flow.response.stream = True


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parent_authorization() -> str | None:
    """The Proxy-Authorization for the parent proxy from mitmproxy's `upstream_auth` option
    (USER:PASS), or None."""
    auth = getattr(ctx.options, "upstream_auth", None)
    if not auth:
        return None
    return "Basic " + base64.b64encode(auth.encode("utf-8")).decode("ascii")


def _refuse(data, reason: str | None) -> None:
    if reason:
        data.server.error = f"{REFUSED}{reason}"
        event("upstream_refused", host=str(data.server.address[0]), reason=reason)


def upstream_error_kind(message: str) -> str:
    """A bounded label for an upstream error message."""
    if REFUSED in message:  # our own destination check, whatever words follow
        return "policy"
    text = message.lower()
    for kind, needles in (
        ("parent", ("upstream proxy",)),  # mitmproxy: the parent proxy refused the CONNECT
        ("refused", ("refused", "errno 111")),
        ("unreachable", ("unreachable", "no route", "errno 101", "errno 113")),
        ("timeout", ("timeout", "timed out")),
        ("tls", ("tls", "ssl", "certificate", "handshake")),
        ("dns", ("name or service", "getaddrinfo", "resolve", "nodename")),
        ("reset", ("reset", "broken pipe", "closed", "disconnect")),
    ):
        if any(n in text for n in needles):
            return kind
    return "other"
