"""The mitmproxy addon that enforces the policy.

`aiwarden run` embeds it; people who already run mitmproxy load it as a script:

    mitmdump -s proxy/mitm/script.py --set aiwarden_policy=policies --set connection_strategy=lazy

(Imports are absolute because mitmdump loads this file as a script, outside its package.)

Decisions happen at the earliest point that knows enough: the client at connect, the host at
CONNECT (refuse, tunnel or intercept), the SNI at the TLS ClientHello (tunnel only when both
CONNECT host and SNI allow it), the whole request line at request headers (before any upstream
connection).

The invariant: a connection whose destination is not tunnel+allow for every name it claims
carries no byte upstream that a decision did not see. Every name a request claims (CONNECT
host, each TLS server name, request target, each Host header, HTTP/2 :authority) is decided
and the strictest decision wins; bytes mitmproxy would relay as raw TCP (unknown framing, a
TLS record it does not recognise, a protocol after a 101 that is not WebSocket) are relayed
only toward a destination every name of which is tunnel+allow, and otherwise refused.

An exception inside a decision never lets traffic through by accident: the flow gets the
policy's `on_error` action (block by default). Hooks are synchronous and return an
awaitable only when they must resolve a name, so the common path never waits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from functools import lru_cache

from mitmproxy import connection, ctx, exceptions, http, tls
from mitmproxy.proxy import commands, events, layer, layers
from mitmproxy.proxy.layers.http import HTTPMode

from proxy.decide import llm_shape
from proxy.decide.destinations import UNRESOLVED, DestinationGuard
from proxy.decide.engine import INTERCEPT, REFUSE, TUNNEL, Decision, Engine
from proxy.mitm import compat, deadlines, framing
from proxy.mitm.responses import (
    Block,
    block_response,
    new_reference,
    refuse_response,
    upstream_error_response,
)
from proxy.observe.audit import AuditLog
from proxy.observe.logs import event
from proxy.observe.metrics import NONE, Metrics, upstream_error_kind
from proxy.policy.loader import load_policy
from proxy.policy.model import UNLISTED_RULE_ID, Policy
from proxy.policy.normalize import BadHost, is_ip, normalize_host
from proxy.policy.reload import PolicyReloader
from proxy.policy.yamlsource import PolicyError
from proxy.redact.bodies import FileBlocked, Result, Unparseable, redact_body

logger = logging.getLogger("aiwarden")

# when the CONNECT host, the SNI and the Host header disagree, the strictest decision wins
STRICTNESS = {"allow": 0, "monitor": 1, "redact": 2, "block": 3}
DENIED_RULE = "network.deny_destinations"
OFFLOAD_BYTES = 64 * 1024  # larger bodies are redacted in a thread, off the event loop
BLOCKED_ANSWER = "aiwarden_blocked_answer"  # flow.metadata: sent when the sink is refused
BODY_CHECK = "aiwarden_body_check"  # flow.metadata: the body is to be checked for an LLM call
SINK = ("aiwarden-blocked.invalid", 9)  # where a blocked request's body would go: nowhere
MAX_HEAD_BYTES = 64 * 1024  # request line and headers; over it: 431, never forwarded
# layers that relay bytes as they come, with no HTTP or TLS hook to decide them
RAW_LAYERS = (layers.TCPLayer, layers.UDPLayer, layers.DNSLayer, layers.RawQuicLayer)
HOP_BY_HOP_PROXY_HEADERS = ("proxy-authorization", "proxy-connection")  # for the proxy only


class AIWarden:
    def __init__(self, protect: Iterable[tuple[str, int]] = ()) -> None:
        """`protect`: addresses of this deployment besides its own listeners (a worker's
        supervisor's admin listener) that the proxy must never connect to."""
        self.engine: Engine | None = None
        self.guard = DestinationGuard(())
        self._listeners: list[tuple[str, int]] = list(protect)
        self._users: weakref.WeakKeyDictionary[connection.Client, str] = weakref.WeakKeyDictionary()
        # the TLS server names a client's ClientHello claimed, or why they cannot be read
        self._tls_names: weakref.WeakKeyDictionary[connection.Client, list[str] | BadHost] = (
            weakref.WeakKeyDictionary()
        )
        self.metrics = Metrics()
        self.audit: AuditLog | None = None
        self.reloader: PolicyReloader | None = None
        # called on shutdown before the audit log closes (discovery writes its last window)
        self.before_close: list[Callable[[], None]] = []

    # -- options and lifecycle ---------------------------------------------------------------

    def load(self, loader) -> None:
        compat.answer_upstream_errors()
        loader.add_option(
            "aiwarden_policy", str, "policies",
            "aiwarden policy: a directory holding policy.yaml, or a policy file.",
        )  # fmt: skip
        loader.add_option(
            "aiwarden_audit_log", str, "",
            "aiwarden audit log: a file (JSON Lines, reopened on SIGHUP), '-' for stdout, "
            "or empty for none.",
        )  # fmt: skip
        loader.add_option(
            "aiwarden_policy_watch", int, 2,
            "aiwarden: look for policy changes every this many seconds (0: only on SIGHUP).",
        )  # fmt: skip

    def configure(self, updated: set[str]) -> None:
        if "aiwarden_policy_watch" in updated and ctx.options.aiwarden_policy_watch < 0:
            raise exceptions.OptionsError("aiwarden_policy_watch must be 0 or more seconds")
        if "aiwarden_policy" in updated:
            try:
                policy = load_policy(ctx.options.aiwarden_policy)
            except PolicyError as e:
                self.metrics.policy_reloads("error").inc()
                raise exceptions.OptionsError(f"aiwarden: the policy has errors:\n{e}") from None
            self.install(policy, self.prepare(policy))
        if self.reloader is not None and updated & {"aiwarden_policy", "aiwarden_policy_watch"}:
            self._watch()  # changed at run time: watch the new path, at the new pace
        if "aiwarden_audit_log" in updated:
            if self.audit is not None:
                self.audit.close()
            target = ctx.options.aiwarden_audit_log
            self.audit = (
                AuditLog(target, self.metrics.audit_errors.inc, self.metrics.audit_ok.set)
                if target
                else None
            )

    def prepare(self, policy: Policy) -> tuple[Engine, DestinationGuard]:
        """What a policy needs to decide; built off the event loop on a reload."""
        guard = DestinationGuard(policy.deny_destinations)
        for host, port in self._listeners:
            guard.protect(host, port)
        return Engine(policy), guard

    def install(self, policy: Policy, prepared: tuple[Engine, DestinationGuard]) -> None:
        """Put a checked policy in force, in one assignment: a request already decided keeps
        its decision, the next one is decided by the new policy."""
        self.engine, self.guard = prepared
        _client_allowed.cache_clear()
        self.metrics.policy_loaded(
            policy.digest, len(policy.files), len(policy.rules), len(policy.services)
        )
        event(
            "policy_loaded",
            policy=str(policy.files[0]),
            digest=policy.digest[:12],
            rules=len(policy.rules),
            services=len(policy.services),
        )

    def reload_policy(self) -> None:
        """SIGHUP: read the policy again now."""
        if self.reloader is not None:
            self.reloader.reload_now()

    def _watch(self) -> None:
        if self.reloader is not None:
            self.reloader.stop()
        self.reloader = PolicyReloader(
            ctx.options.aiwarden_policy, self.engine.policy, self.prepare, self.install,
            self._policy_rejected,
        )  # fmt: skip
        self.reloader.start(ctx.options.aiwarden_policy_watch)

    def _policy_rejected(self, error: Exception) -> None:
        """A changed policy with errors: counted and logged; the one in force stays."""
        self.metrics.policy_reloads("error").inc()
        errors = str(error).splitlines() if isinstance(error, PolicyError) else [repr(error)]
        logger.error(
            "policy change refused, %s stays in force:\n%s",
            self.engine.policy.digest[:12],
            "\n".join(errors),
            extra={
                "event": "policy_rejected",
                "fields": {"errors": errors, "in_force": self.engine.policy.digest[:12]},
            },
        )

    def running(self) -> None:
        self._watch()
        proxyserver = ctx.master.addons.get("proxyserver")
        addresses = list(proxyserver.listen_addrs()) if proxyserver else []
        admin = ctx.master.addons.get("adminserver")
        if admin is not None and admin.address:
            addresses.append(admin.address)
        self._listeners += [(host, port) for host, port, *_ in addresses]
        for host, port in self._listeners:
            self.guard.protect(host, port)
        event(
            "listening",
            proxy=" ".join(f"{h}:{p}" for h, p, *_ in proxyserver.listen_addrs()),
            admin=f"{admin.address[0]}:{admin.address[1]}" if admin and admin.address else None,
        )
        if ctx.options.connection_strategy != "lazy":
            logger.warning(
                "connection_strategy is not 'lazy': blocked hosts will be "
                "connected to at CONNECT; set connection_strategy=lazy"
            )

    def done(self) -> None:
        if self.reloader is not None:
            self.reloader.stop()
        for call in self.before_close:
            try:
                call()
            except Exception:
                logger.exception("shutdown step failed")
        if self.audit is not None:
            self.audit.close()

    def readiness(self) -> tuple[bool, str]:
        """Ready to take traffic: a policy, a listener, and an audit log that is written."""
        proxyserver = ctx.master.addons.get("proxyserver")
        if self.engine is None or not (proxyserver and proxyserver.listen_addrs()):
            return False, "policy or listener missing"
        if self.audit is not None and self.audit.error is not None:
            return False, f"the audit log cannot be written: {self.audit.error}"
        return True, f"policy {self.engine.policy.digest[:12]}, proxy listening"

    # -- the client --------------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        self.metrics.open_connections.inc()
        try:
            allowed = _client_allowed(client.peername[0], self.engine.policy.clients)
        except Exception:
            logger.exception("client check failed; refusing the client")
            allowed = False
        if not allowed:
            client.error = "client address not allowed by network.clients"
            self.metrics.clients_refused.inc()
            event("client_refused", client=client.peername[0])

    def client_disconnected(self, client: connection.Client) -> None:
        self.metrics.open_connections.dec()

    # -- CONNECT ---------------------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        return self._guarded(flow, "connect", self._connect)

    def _connect(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        client, user = flow.client_conn.peername[0], _user(flow)
        if user:
            self._users[flow.client_conn] = user
        host, port = normalize_host(flow.request.host), flow.request.port
        decision = self.metrics.timed("connect", self.engine.decide_connect, host, client, user)
        self.metrics.requests(
            decision.action, decision.service or NONE, decision.category or NONE, "connect"
        ).inc()
        if decision.connect == REFUSE:
            self._block(flow, decision, host, refuse=True)
            return None
        if decision.connect == INTERCEPT and decision.action == "block" and not is_ip(host):
            return None  # every request will be blocked: no upstream connection, no DNS
        return self._check_destination(flow, host, port, refuse=True)

    # -- TLS ---------------------------------------------------------------------------------

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        """Relay undecrypted only when the CONNECT host and every server name allow it; an
        SNI naming a blocked service inside an allowed tunnel is domain fronting, and one
        that cannot be read is decided by on_error, inside the intercepted connection."""
        try:
            client = data.context.client
            connect = [data.context.server.address[0]] if data.context.server.address else []
            try:
                sni = framing.server_names(data.client_hello)
            except BadHost as e:  # never tunnelled; inside, each request gets on_error
                self._tls_names[client] = e
                tunnel = None
            else:
                self._tls_names[client] = sni
                user = self._users.get(client)
                tunnel = self.tunnel_decision(connect + sni, client.peername[0], user)
            data.ignore_connection = tunnel is not None
            self.metrics.connections(TUNNEL if tunnel else INTERCEPT).inc()
        except Exception:
            logger.exception("TLS decision failed; intercepting so each request is decided")

    def tunnel_decision(
        self, names: Iterable[str], client: str, user: str | None
    ) -> Decision | None:
        """The decision to relay a connection undecrypted, or None when it must not be:
        every name it claims must be tunnel+allow (a name that cannot be read gets the
        on_error decision). The first name's decision is returned. The one rule for the
        ClientHello, raw bytes (next_layer) and the fast path."""
        decide, first = self.engine.decide_connect, None
        for name in names:
            decision = self.metrics.timed("connect", decide, name, client, user)
            if decision.connect != TUNNEL or decision.action != "allow":
                return None
            first = first or decision
        return first

    # -- bytes that no HTTP or TLS hook would see ------------------------------------------------

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """mitmproxy relays what it does not recognise as HTTP or TLS as raw TCP, with no
        hook to decide it: such a relay stands only toward a destination every name of which
        is tunnel+allow. Bytes that may still become a request (written two at a time) go to
        mitmproxy's HTTP or TLS layer, which waits for the rest and then asks the hooks;
        anything else is refused, counted and logged."""
        if nextlayer.layer is None:  # under mitmdump -s, scripts come before mitmproxy's own
            builtin = ctx.master.addons.get("nextlayer")
            if builtin is not None:
                builtin.next_layer(nextlayer)  # its choice, so that it can be checked
        if not isinstance(nextlayer.layer, RAW_LAYERS):
            return
        context, data = nextlayer.context, nextlayer.data_client()
        try:
            verdict = self._raw_verdict(context, data)
        except Exception:
            logger.exception("raw-relay decision failed; refusing the connection")
            verdict = "the proxy could not decide these bytes"
        if verdict == "relay":
            return
        if verdict == "tls":
            nextlayer.layer = layers.ServerTLSLayer(context)
            nextlayer.layer.child_layer = layers.ClientTLSLayer(context)
            return
        if verdict == "http":
            nextlayer.layer = layers.HttpLayer(context, HTTPMode.transparent)
            return
        host = context.server.address[0] if context.server.address else None
        reference = new_reference()
        reason = "bad_tls" if data[:1] == framing.HANDSHAKE else "raw_tcp"
        self.metrics.bad_requests(reason).inc()
        event("bad_request", reference=reference, client=context.client.peername[0],
              host=host, reason=reason, detail=verdict)  # fmt: skip
        text = f"aiwarden: {verdict}; nothing was forwarded (reference {reference})."
        nextlayer.layer = Refusal(context, framing.refusal_answer(data, text))

    def _raw_verdict(self, context, data: bytes) -> str:
        """'relay' as mitmproxy chose; 'tls' or 'http' for bytes that mitmproxy's TLS or
        HTTP layer must read, so that their hooks decide; or why the bytes are refused."""
        names = [context.server.address[0]] if context.server.address else []
        if context.client.sni:
            names.append(context.client.sni)
        if data[:1] == framing.HANDSHAKE:
            try:
                hello = framing.read_client_hello(data)
                if hello is None:
                    return "tls"
                names += framing.server_names(hello)
            except ValueError as e:  # BadHost is a ValueError too
                return f"a TLS handshake that cannot be read ({e})"
        elif framing.starts_with_empty_line(data):  # even toward an allowed host: a server
            return "an empty line before the request"  # would read the Host header behind it
        client = context.client
        if names and self.tunnel_decision(names, client.peername[0], self._users.get(client)):
            return "relay"
        if framing.may_become_http(data):
            return "http"
        return "bytes that are neither HTTP nor TLS, toward a destination that is not tunnelled"

    # -- requests ------------------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        size = _head_bytes(flow.request)
        if size > MAX_HEAD_BYTES and not (flow.response or flow.error):
            self._bad_request(
                flow, 431, "header_too_large",
                f"aiwarden: the request's headers are {size} bytes; the limit is "
                f"{MAX_HEAD_BYTES}. Nothing was forwarded.",
            )  # fmt: skip
            return None
        for name in HOP_BY_HOP_PROXY_HEADERS:  # read by proxyauth already; not the server's
            flow.request.headers.pop(name, None)
        return self._guarded(flow, "request", self._request)

    def _bad_request(self, flow: http.HTTPFlow, status: int, reason: str, text: str) -> None:
        """A request no upstream should see, refused before any decision; counted, logged."""
        self.metrics.bad_requests(reason).inc()
        event("bad_request", client=flow.client_conn.peername[0], reason=reason, status=status)
        flow.request.headers.pop("expect", None)
        flow.response = http.Response.make(
            status,
            text + "\n",
            {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"},
        )

    def _request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        request = flow.request
        client, user = (
            flow.client_conn.peername[0],
            _user(flow) or self._users.get(flow.client_conn),
        )
        decision, host = None, request.host
        tls_names = self._tls_names.get(flow.client_conn, [])
        if isinstance(tls_names, BadHost):  # a server name that cannot be read: on_error
            decision = self.engine.error_decision("request", f"unreadable host: {tls_names}")
            tls_names = []
        for name in _claimed_hosts(flow, tls_names):
            d = self.metrics.timed(
                "request",
                self.engine.decide_request,
                request.method,
                name,
                request.path,
                client,
                user,
            )
            if decision is None or STRICTNESS[d.action] > STRICTNESS[decision.action]:
                decision, host = d, name
        decision = self._before_body(flow, decision, host)
        flow.metadata["aiwarden"] = decision
        body_check = BODY_CHECK in flow.metadata
        if not body_check:  # otherwise counted once the body has been checked
            self._count(decision)
        if decision.action == "block":
            self._block(flow, decision, host)
            return None
        if decision.action in ("allow", "monitor") and not body_check:
            request.stream = True  # nothing to inspect: do not buffer the body
        if decision.action == "monitor" and not body_check:
            self._record(flow, decision, host)
        if decision.action == "redact":
            if request.headers.get("upgrade", "").lower() == "websocket":
                message = (
                    "aiwarden cannot check WebSocket messages for secrets and personal "
                    "data, so this approved-with-redaction service is not available "
                    "over WebSocket."
                )
                self._block(flow, replace(decision, action="block", message=message), host)
                return None
            limit = self.engine.policy.redaction_profiles[decision.profile].max_body_bytes
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                self._too_large(flow, decision, host, limit)
                return None
        if not flow.client_conn.tls_established:  # plain HTTP: we connect to request.host
            canonical = normalize_host(request.host)
            return self._check_destination(flow, canonical, request.port, refuse=False)
        return None

    def _count(self, decision: Decision) -> None:
        self.metrics.requests(
            decision.action, decision.service or NONE, decision.category or NONE, "request"
        ).inc()

    # -- unlisted AI endpoints: the body of requests no service or host rule decided ----------

    def _before_body(self, flow: http.HTTPFlow, decision: Decision, host: str) -> Decision:
        """Whether this request's body is to be checked for an LLM API call (see
        Engine.checks_body): then the request waits for its body, which is bounded by
        unlisted_ai.max_body_bytes as it was announced. A body that cannot be checked is
        counted, and passes or is blocked as unlisted_ai.unchecked says."""
        request = flow.request
        if not (self.engine.checks_body(decision) and _may_have_body(request)):
            return decision
        if request.headers.get("upgrade", "").lower() == "websocket":
            return decision
        limit = self.engine.policy.unlisted_ai.max_body_bytes
        length = request.headers.get("content-length", "").strip()
        if not length.isdigit():  # chunked, or HTTP/2 without a length: unbounded
            unchecked = "no_length"
        elif int(length) > limit:
            unchecked = llm_shape.TOO_LARGE
        else:
            flow.metadata[BODY_CHECK] = (host, self.engine)
            return decision
        self.metrics.unlisted_ai_unchecked(unchecked).inc()
        return self.engine.decide_unlisted(decision, None, unchecked) or decision

    def _check_body(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        host, engine = flow.metadata.pop(BODY_CHECK)
        decision = flow.metadata["aiwarden"]
        if flow.response or flow.error or BLOCKED_ANSWER in flow.metadata:
            self._count(decision)  # answered already (a denied destination)
            return None
        request = flow.request
        raw = request.raw_content or b""
        encoding = request.headers.get("content-encoding", "")
        limit = engine.policy.unlisted_ai.max_body_bytes
        path = request.path.partition("?")[0]
        if len(raw) <= OFFLOAD_BYTES or not (encoding or llm_shape.looks_like_object(raw)):
            outcome = llm_shape.inspect_body(raw, encoding, limit, path)
            self._body_checked(flow, decision, host, engine, outcome)
            return None

        async def off_loop() -> None:  # decompressing and parsing megabytes takes a while
            try:
                outcome = await asyncio.to_thread(
                    llm_shape.inspect_body, raw, encoding, limit, path
                )
                self._body_checked(flow, decision, host, engine, outcome)
            except Exception as e:
                self._fail(flow, "request", e)

        return off_loop()

    def _body_checked(
        self,
        flow: http.HTTPFlow,
        decision: Decision,
        host: str,
        engine: Engine,
        outcome: tuple[str | None, str | None],
    ) -> None:
        style, unchecked = outcome
        if unchecked is not None:
            self.metrics.unlisted_ai_unchecked(unchecked).inc()
        unlisted = engine.decide_unlisted(decision, style, unchecked)
        if unlisted is not None:
            if style is not None:
                self.metrics.unlisted_ai(style, unlisted.action).inc()
            decision = flow.metadata["aiwarden"] = unlisted
        self._count(decision)
        if decision.action == "block":
            self._block(flow, decision, host)
        elif decision.action == "monitor":
            self._record(flow, decision, host)

    # -- redaction ------------------------------------------------------------------------------

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Check the body of requests toward hosts nothing names for an LLM API call, and
        redact the body of requests the policy approves with redaction."""
        if BODY_CHECK in flow.metadata:
            try:
                return self._check_body(flow)
            except Exception as e:
                self._fail(flow, "request", e)
                return None
        decision = flow.metadata.get("aiwarden")
        if decision is None or decision.action != "redact" or flow.response or flow.error:
            return None
        try:
            return self._redact(flow, decision)
        except Exception as e:
            self._fail(flow, "request", e)
            return None

    def _redact(self, flow: http.HTTPFlow, decision: Decision) -> Awaitable[None] | None:
        profile = self.engine.policy.redaction_profiles[decision.profile]
        host = flow.request.pretty_host
        try:
            raw = flow.request.get_content(strict=True)  # Content-Encoding decoded
        except ValueError as e:
            self._unreadable(flow, decision, host, Unparseable(f"cannot decode the body: {e}"))
            return None
        if raw is not None and len(raw) > profile.max_body_bytes:
            self._too_large(flow, decision, host, profile.max_body_bytes)
            return None
        ctype = flow.request.headers.get("content-type", "")
        if raw is None or len(raw) <= OFFLOAD_BYTES:
            self._apply(flow, decision, host, _redact_or_error(raw or b"", ctype, profile))
            return None

        async def off_loop() -> None:
            try:
                outcome = await asyncio.to_thread(_redact_or_error, raw, ctype, profile)
                self._apply(flow, decision, host, outcome)
            except Exception as e:
                self._fail(flow, "request", e)

        return off_loop()

    def _apply(
        self, flow: http.HTTPFlow, decision: Decision, host: str, outcome: Result | Unparseable
    ) -> None:
        if isinstance(outcome, Unparseable):
            self._unreadable(flow, decision, host, outcome)
            return
        if outcome.changed:
            flow.request.content = outcome.body  # re-encoded as the client sent it
        counts = outcome.counts
        flow.metadata["aiwarden_redactions"] = counts
        self._record(flow, decision, host, redactions=counts)

    def _unreadable(
        self, flow: http.HTTPFlow, decision: Decision, host: str, error: Unparseable
    ) -> None:
        profile = self.engine.policy.redaction_profiles[decision.profile]
        if profile.on_unparseable == "pass" and not isinstance(error, FileBlocked):
            flow.metadata["aiwarden_redactions"] = {}
            self._record(flow, decision, host, redactions={}, note="unparseable body passed")
            return
        message = (
            "aiwarden could not check this request for secrets and personal data, so it was "
            f"not sent: {error}."
        )
        self._block(flow, replace(decision, action="block", message=message), host)

    def _too_large(self, flow: http.HTTPFlow, decision: Decision, host: str, limit: int) -> None:
        message = (
            f"The request body is larger than the {limit} bytes aiwarden checks for secrets "
            "and personal data, so it was not sent."
        )
        blocked = replace(decision, action="block", message=message)
        self._block(flow, blocked, host, status=413)

    def error(self, flow: http.HTTPFlow) -> None:
        """Every flow ends in a response or an error. An upstream error is counted by kind
        and, when no answer has begun, answered in the client's format (upstream_errors.py):
        a 504 when the server was too slow, a 502 otherwise, or the block page when it was
        our own destination check that stopped the connection."""
        if flow.error is None or not flow.metadata.get(compat.UPSTREAM_FAILED):
            return  # the client's side failed: nobody to answer
        if (answer := flow.metadata.pop(BLOCKED_ANSWER, None)) is not None:
            flow.response = answer  # a block decided before the body (see _block_before_body)
            return
        kind = upstream_error_kind(flow.error.msg)
        if flow.metadata.get(deadlines.TIMED_OUT):
            kind = "timeout"
        self.metrics.upstream_errors(kind).inc()
        if flow.response is not None:
            return
        try:
            if kind == "policy":
                reason = flow.error.msg.removeprefix("aiwarden: ")
                self._deny(flow, flow.request.pretty_host, reason)
                return
            request = flow.request
            service, _ = self.engine.classify(request.method, request.pretty_host, request.path)
            reference = new_reference()
            status = 504 if kind == "timeout" else 502
            flow.response = upstream_error_response(flow.request, service, status, kind, reference)
        except Exception:  # mitmproxy's own error page is still sent
            logger.exception("could not build the upstream error response")
            return
        event(
            "upstream_error",
            reference=reference,
            client=flow.client_conn.peername[0],
            host=flow.request.pretty_host,
            kind=kind,
            status=status,
        )

    def response(self, flow: http.HTTPFlow) -> None:
        """A server that switches protocols to anything but WebSocket would have mitmproxy
        relay the rest of the connection as raw TCP, undecided: the client gets a 502 and
        the connection ends instead."""
        if flow.response.status_code != 101 or flow.websocket is not None:
            return
        upgrade = flow.response.headers.get("upgrade", "")
        reference = new_reference()
        self.metrics.bad_requests("protocol_switch").inc()
        event("bad_request", reference=reference, client=flow.client_conn.peername[0],
              host=flow.request.pretty_host, reason="protocol_switch", status=502)  # fmt: skip
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

    # -- upstream connections ------------------------------------------------------------------

    def server_connect(self, data) -> Awaitable[None] | None:
        """The last check before any upstream connection (a name may have been resolved
        again since the request was decided); waits only when the name must be looked up."""
        if data.server.address == SINK:
            data.server.error = "aiwarden: blocked before its body"
            return None
        try:
            host, port = data.server.address
            host = normalize_host(host)
            reason = self.guard.why_denied_now(host, port)
        except Exception:
            logger.exception("destination check failed; not connecting")
            reason = "destination check failed"
        if reason is not UNRESOLVED:
            self._refuse_upstream(data, reason)
            return None

        async def check() -> None:
            try:
                self._refuse_upstream(data, await self.guard.why_denied(host, port))
            except Exception:
                logger.exception("destination check failed; not connecting")
                self._refuse_upstream(data, "destination check failed")

        return check()

    @staticmethod
    def _refuse_upstream(data, reason: str | None) -> None:
        if reason:
            data.server.error = f"aiwarden: {reason}"
            event("upstream_refused", host=str(data.server.address[0]), reason=reason)

    # -- shared --------------------------------------------------------------------------------

    def _guarded(self, flow: http.HTTPFlow, stage: str, decide) -> Awaitable[None] | None:
        """Run a decision; an exception applies on_error instead of mitmproxy's default of
        letting the flow go on."""
        if flow.response or flow.error:  # answered already, e.g. proxyauth's 407
            if flow.response and flow.response.status_code == 407:
                self.metrics.bad_requests("proxy_auth").inc()
            return None
        try:
            return decide(flow)
        except Exception as e:
            self._fail(flow, stage, e)
            return None

    def _check_destination(
        self, flow: http.HTTPFlow, host: str, port: int, refuse: bool
    ) -> Awaitable[None] | None:
        """Refuse denied destinations (IP literals, names resolving into a denied range, our
        own listeners); waits for DNS only when the name was not looked up recently."""
        reason = self.guard.why_denied_now(host, port)
        if reason is not UNRESOLVED:
            if reason:
                self._deny(flow, host, reason, refuse=refuse)
            return None

        async def check() -> None:
            try:
                reason = await self.guard.why_denied(host, port)
            except Exception as e:
                self._fail(flow, "connect" if refuse else "request", e)
                return
            if reason:
                self._deny(flow, host, reason, refuse=refuse)

        return check()

    def _block(
        self,
        flow: http.HTTPFlow,
        decision: Decision,
        host: str,
        refuse: bool = False,
        status: int = 403,
    ) -> None:
        service = self.engine.services.get(decision.service) if decision.service else None
        # (decisions made on error name no service, so this needs no engine)
        api_format = llm_shape.api_format(decision.style)  # an unlisted AI endpoint's API
        block = Block(decision, new_reference(), service, host, api_format)
        # no "100 Continue": a client that waits for it sends no body we would only drop
        flow.request.headers.pop("expect", None)
        if refuse:
            flow.response = refuse_response(block)
        elif flow.request.raw_content is None and _may_have_body(flow.request):
            self._block_before_body(flow, block_response(flow.request, block, status))
        else:
            flow.response = block_response(flow.request, block, status)
        self._record(flow, decision, host, block.reference)

    @staticmethod
    def _block_before_body(flow: http.HTTPFlow, answer: http.Response) -> None:
        """Answer without reading the body. A response set now would be sent only after
        mitmproxy has read, and held in memory, the whole body. Instead the request is
        streamed toward an address server_connect refuses, and the error hook sends the
        answer (upstream_errors.py); the body is never read."""
        flow.metadata[BLOCKED_ANSWER] = answer
        flow.request.stream = True
        flow.request.host, flow.request.port = SINK

    def _deny(self, flow: http.HTTPFlow, host: str, reason: str, refuse: bool = False) -> None:
        decision = Decision(
            action="block",
            stage="connect" if refuse else "request",
            rule=DENIED_RULE,
            reason=reason,
            message="The proxy does not connect to this destination.",
        )
        self._block(flow, decision, host, refuse=refuse)

    def _fail(self, flow: http.HTTPFlow, stage: str, error: Exception) -> None:
        """A decision raised: apply on_error explicitly (mitmproxy would let the flow go on)."""
        self.metrics.decision_errors(stage, type(error).__name__).inc()
        logger.error(
            "decision failed at %s: %s: %s", stage, type(error).__name__, error, exc_info=error
        )
        host = flow.request.host
        if self.engine is None:
            decision = Decision(
                action="block", stage=stage, rule="default", reason="no policy is loaded"
            )
        else:
            decision = self.engine.error_decision(stage, f"{type(error).__name__} while deciding")
        flow.metadata["aiwarden"] = decision
        if decision.action == "block":
            self._block(flow, decision, host, refuse=stage == "connect")

    def _record(
        self,
        flow: http.HTTPFlow,
        decision: Decision,
        host: str,
        reference: str | None = None,
        redactions: dict[str, int] | None = None,
        note: str | None = None,
    ) -> None:
        """Count it, and write one audit line per block, redact or monitor decision; never
        headers, bodies, query strings, credentials or what was redacted (only its types)."""
        service = decision.service or NONE
        if decision.action == "block":
            self.metrics.blocked(service, decision.rule).inc()
            if decision.stage == "connect":
                self.metrics.connections(REFUSE).inc()
        for detector, count in (redactions or {}).items():
            self.metrics.redactions(detector, service).inc(count)
        user = _user(flow) or self._users.get(flow.client_conn)
        path = flow.request.path.partition("?")[0] if decision.stage == "request" else None
        if decision.rule == UNLISTED_RULE_ID and decision.style is None:
            note = note or decision.reason  # blocked unread: say why (unlisted_ai.unchecked)
        if self.audit is not None:
            self.audit.write({
                "id": reference, "client": flow.client_conn.peername[0], "user": user,
                "method": flow.request.method, "host": host, "path": path,
                "service": decision.service, "category": decision.category,
                "country": decision.country, "activity": decision.activity, "rule": decision.rule,
                "action": decision.action, "stage": decision.stage, "redactions": redactions,
                "style": decision.style,
            })  # fmt: skip
        event(
            decision.action,
            reference=reference,
            client=flow.client_conn.peername[0],
            user=user,
            method=flow.request.method,
            host=host,
            path=path,
            service=decision.service,
            activity=decision.activity,
            rule=decision.rule,
            stage=decision.stage,
            style=decision.style,
            category=decision.category if decision.style else None,
            redactions=redactions,
            note=note,
        )


def _redact_or_error(raw: bytes, content_type: str, profile) -> Result | Unparseable:
    """Redaction's outcome as a value, so it can cross from a worker thread."""
    try:
        return redact_body(raw, content_type, profile)
    except Unparseable as e:
        return e


def _may_have_body(request: http.Request) -> bool:
    headers = request.headers
    if "transfer-encoding" in headers:
        return True
    if "content-length" in headers:
        return headers["content-length"].strip() not in ("", "0")
    # HTTP/2 and 3 may send a body without announcing its length
    return request.method in ("POST", "PUT", "PATCH") and not request.http_version.startswith(
        "HTTP/1"
    )


def _head_bytes(request: http.Request) -> int:
    """About the size of the request line and headers as they came."""
    fields = request.headers.fields
    return len(request.path) + len(request.host) + sum(len(k) + len(v) + 4 for k, v in fields)


def _user(flow: http.HTTPFlow) -> str | None:
    """The user proxyauth authenticated (never the password, which sits next to it)."""
    auth = flow.metadata.get("proxyauth")
    return auth[0] if auth else None


def _claimed_hosts(flow: http.HTTPFlow, tls_names: list[str]) -> list[str]:
    """Every host this request claims to be for: the request target (CONNECT host or
    absolute-form URL), its authority (absolute-form inside a tunnel, HTTP/2 :authority),
    each Host header and every TLS server name."""
    request = flow.request
    names = {request.host, request.authority, *request.headers.get_all("host"), *tls_names}
    names.add(flow.client_conn.sni)  # mitmproxy's reading of the same ClientHello
    return [n for n in names if n]


@lru_cache(maxsize=4096)
def _client_allowed(address: str, networks: tuple) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class Refusal(layer.Layer):
    """In place of a raw relay that no decision allowed: tells the client why, in the
    framing it spoke, and closes. Nothing is ever sent upstream."""

    def __init__(self, context, answer: bytes) -> None:
        super().__init__(context)
        self.answer = answer

    def _handle_event(self, received: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(received, events.Start):
            if self.answer:
                yield commands.SendData(self.context.client, self.answer)
            yield commands.CloseConnection(self.context.client)
