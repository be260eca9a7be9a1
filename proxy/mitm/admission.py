"""Connection admission: the client, the CONNECT, the TLS ClientHello, and bytes that no HTTP
or TLS hook would see.

Decisions happen at the earliest point that knows enough: the client at connect, the host at
CONNECT (refuse, tunnel or intercept), the server names at the ClientHello (tunnelled only
when the CONNECT host and every server name allow it: an AI host in the SNI of an allowed
tunnel is domain fronting). mitmproxy relays what it does not recognise as HTTP or TLS as raw
TCP, with no hook to decide it; such a relay stands only toward a destination every name of
which is tunnel+allow, and is otherwise refused.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from mitmproxy import connection, ctx, http, tls
from mitmproxy.proxy import layer

from proxy.decide.gate import Gate
from proxy.decide.verdict import Action, Mode, Stage
from proxy.mitm import compat, framing
from proxy.mitm.answers import Answers
from proxy.mitm.recording import Recorder
from proxy.mitm.state import Clients
from proxy.observe.audit import new_reference
from proxy.observe.logs import event
from proxy.policy.normalize import BadHost, is_ip, normalize_host

logger = logging.getLogger("aiwarden")


class Admission:
    def __init__(self, gate: Gate, clients: Clients, recorder: Recorder, answers: Answers) -> None:
        self.gate = gate
        self.clients = clients
        self.recorder = recorder
        self.answers = answers

    # -- the client --------------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        self.recorder.metrics.open_connections.inc()
        try:
            allowed = self.gate.client_allowed(client.peername[0])
        except Exception:
            logger.exception("client check failed; refusing the client")
            allowed = False
        if not allowed:
            client.error = "client address not allowed by network.clients"
            self.recorder.metrics.clients_refused.inc()
            event("client_refused", client=client.peername[0])

    def client_disconnected(self, client: connection.Client) -> None:
        self.recorder.metrics.open_connections.dec()

    # -- CONNECT -------------------------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        return self.answers.guarded(flow, Stage.CONNECT, self._connect)

    def _connect(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        user = self.clients.user(flow)
        if user:
            self.clients.of(flow.client_conn).user = user
        host, port = normalize_host(flow.request.host), flow.request.port
        decision = self.gate.connect(
            host, flow.client_conn.peername[0], user, self.clients.groups(flow)
        )
        self.recorder.decided(decision)
        if decision.connect is Mode.REFUSE:
            self.answers.block(flow, decision, host, refuse=True)
            return None
        blocked_inside = decision.connect is Mode.INTERCEPT and decision.action is Action.BLOCK
        if blocked_inside and not is_ip(host):
            return None  # every request will be blocked: no upstream connection, no DNS
        return self.answers.check_destination(flow, host, port, refuse=True)

    # -- TLS ---------------------------------------------------------------------------------

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        """Relay undecrypted only when the CONNECT host and every server name allow it; an
        SNI naming a blocked service inside an allowed tunnel is domain fronting, and one
        that cannot be read is decided by on_error, inside the intercepted connection.
        The client's TLS to the proxy itself (an HTTPS proxy, proxy_tls.py) names no
        destination: mitmproxy terminates it, and what comes inside is decided here as on
        plain HTTP."""
        if compat.is_tls_to_the_proxy(data.context):
            return
        try:
            client = data.context.client
            facts = self.clients.of(client)
            connect = [data.context.server.address[0]] if data.context.server.address else []
            try:
                sni = framing.server_names(data.client_hello)
            except BadHost as e:  # never tunnelled; inside, each request gets on_error
                facts.tls_names = e
                tunnel = None
            else:
                facts.tls_names = sni
                groups = facts.who.groups if facts.who else frozenset()
                tunnel = self.gate.tunnel(connect + sni, client.peername[0], facts.user, groups)
            data.ignore_connection = facts.tunnelled = tunnel is not None
            facts.tunnel_host = connect[0] if connect else (sni[0] if sni else "")
            if tunnel is not None and tunnel.audit:
                host = connect[0] if connect else (sni[0] if sni else "")
                self.recorder.tunnel_audited(tunnel, client.peername[0], facts.user, host)
            self.recorder.connection(Mode.TUNNEL if tunnel else Mode.INTERCEPT)
        except Exception:
            logger.exception("TLS decision failed; intercepting so each request is decided")

    # -- bytes that no HTTP or TLS hook would see ------------------------------------------------

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """Bytes that may still become a request (written two at a time) go to mitmproxy's
        HTTP or TLS layer, which waits for the rest and then asks the hooks; anything else
        not toward a tunnel+allow destination is refused, counted and logged."""
        compat.ask_builtin_next_layer(ctx.master, nextlayer)
        if not compat.is_raw_relay(nextlayer):
            return
        context, data = nextlayer.context, nextlayer.data_client()
        try:
            verdict = self._raw_verdict(context, data)
        except Exception:
            logger.exception("raw-relay decision failed; refusing the connection")
            verdict = "the proxy could not decide these bytes"
        if verdict == "relay":
            facts = self.clients.of(context.client)
            facts.tunnelled = True
            facts.tunnel_host = str(context.server.address[0]) if context.server.address else ""
            return
        if verdict == "tls":
            compat.read_as_tls(nextlayer)
            return
        if verdict == "http":
            compat.read_as_http(nextlayer)
            return
        host = context.server.address[0] if context.server.address else None
        reference = new_reference()
        reason = "bad_tls" if data[:1] == framing.HANDSHAKE else "raw_tcp"
        self.recorder.bad_request(reason, reference=reference, client=context.client.peername[0],
                                  host=host, detail=verdict)  # fmt: skip
        text = f"aiwarden: {verdict}; nothing was forwarded (reference {reference})."
        compat.refuse(nextlayer, framing.refusal_answer(data, text))

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
        facts = self.clients.of(client)
        groups = facts.who.groups if facts.who else frozenset()
        if names and self.gate.tunnel(names, client.peername[0], facts.user, groups):
            return "relay"
        if framing.may_become_http(data):
            return "http"
        return "bytes that are neither HTTP nor TLS, toward a destination that is not tunnelled"
