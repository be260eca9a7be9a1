"""Kerberos single sign-on for proxy users: `Proxy-Authenticate: Negotiate` (SPNEGO), beside
mitmproxy's own proxyauth (Basic: htpasswd or LDAP).

On when `aiwarden_kerberos_keytab` names the keytab of the proxy's service principal
(`HTTP/proxy.corp.example@CORP.EXAMPLE`). The principal a ticket names becomes the user,
exactly as mitmproxy's proxyauth hands users on: `flow.metadata["proxyauth"] = (user, "")`,
so rules (`users`, `groups` with users), coaching grants and the audit log use it unchanged.
The realm is stripped unless `aiwarden_kerberos_keep_realm`.

It runs after mitmproxy's proxyauth addon, which answers every request without a valid
Basic login with its own 407 when Basic is configured too: this addon then takes over a
request that carries a Negotiate token (or that came on a connection Kerberos already
authenticated), lifting that 407 when the token is good, and adds `Negotiate` to every
challenge. A connection is authenticated once (Negotiate is connection-based, as browsers
treat it): a CONNECT's user owns the requests inside its tunnel, and a plain connection's
first authenticated request owns those after it. A token that fails on such a connection
ends its authentication.

Every failure is a 407 with `Proxy-Authenticate: Negotiate` (and `Basic` when proxyauth is
set), counted in aiwarden_bad_requests_total{reason="proxy_auth"} by the addons after this
one, and by reason in aiwarden_kerberos_failures_total; a failure other than a missing token
is logged on one line with GSSAPI's words, never the token. Checking a ticket decrypts it
and consults the replay cache: it runs in a thread, off the event loop. The
Proxy-Authorization header never goes upstream (enforcement.py drops it for every request).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import weakref
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import connection, ctx, exceptions, http
from mitmproxy.addons.proxyauth import REALM

from proxy.auth.negotiate import Acceptor, KerberosUnavailable, Outcome, parse_header
from proxy.mitm.recording import Recorder
from proxy.mitm.state import Clients
from proxy.observe.logs import event
from proxy.options import declare

logger = logging.getLogger("aiwarden")

HEADER = "proxy-authorization"
BASIC_CHALLENGE = f'Basic realm="{REALM}"'  # mitmproxy's proxyauth's own
GSS_INITIAL_TOKEN = b"\x60"  # a handshake's first token starts so (RFC 2743 3.1)


@dataclass(slots=True)
class Session:
    """A client connection's Kerberos authentication."""

    user: str | None = None
    digest: bytes = b""  # of the token that authenticated it: sent again, it is not re-checked
    context: Any = None  # a GSSAPI context waiting for the client's next token


class Kerberos:
    def __init__(self, clients: Clients, recorder: Recorder) -> None:
        self.clients = clients
        self.recorder = recorder
        self.acceptor: Acceptor | None = None
        self.sessions: weakref.WeakKeyDictionary[connection.Client, Session] = (
            weakref.WeakKeyDictionary()
        )

    def load(self, loader) -> None:
        declare(
            loader,
            "aiwarden_kerberos_keytab",
            "aiwarden_kerberos_principal",
            "aiwarden_kerberos_keep_realm",
        )

    def configure(self, updated: set[str]) -> None:
        names = {"aiwarden_kerberos_keytab", "aiwarden_kerberos_principal",
                 "aiwarden_kerberos_keep_realm"}  # fmt: skip
        if not names & updated:
            return
        keytab = ctx.options.aiwarden_kerberos_keytab
        if not keytab:
            self.acceptor = None
            return
        try:
            self.acceptor = Acceptor(
                Path(keytab),
                ctx.options.aiwarden_kerberos_principal or None,
                ctx.options.aiwarden_kerberos_keep_realm,
            )
        except KerberosUnavailable as e:
            raise exceptions.OptionsError(f"--kerberos-keytab: {e}") from None
        self.sessions.clear()  # a new key: every connection authenticates again
        event("kerberos_ready", keytab=keytab,
              principal=ctx.options.aiwarden_kerberos_principal or "any in the keytab")  # fmt: skip

    # -- hooks ---------------------------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        return self._authenticate(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        return self._authenticate(flow)

    # -- the work ------------------------------------------------------------------------------

    def _authenticate(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """None when there is nothing to wait for; else the check of a token, in a thread."""
        if self.acceptor is None or flow.is_replay or flow.error:
            return None
        if flow.metadata.get("proxyauth") and flow.response is None:
            return None  # mitmproxy's proxyauth accepted a Basic login (or its tunnel's)
        if flow.response is not None and flow.response.status_code != 407:
            return None  # answered already by something other than proxyauth
        value = flow.request.headers.get(HEADER)
        found = parse_header(value)
        session = self.sessions.get(flow.client_conn)
        if isinstance(found, bytes):
            digest = hashlib.sha256(found).digest()
            if session is not None and session.user and session.digest == digest:
                self._succeed(flow, session.user)  # the same token again on its connection
                return None
            return self._check(flow, found, digest, session)
        if found == "no_token" and session is not None and session.user:
            self._succeed(flow, session.user)  # a request on an authenticated connection
            return None
        if found == "no_token" and value and ctx.options.proxyauth:
            self._challenge(flow, None)  # a Basic login proxyauth refused: not Kerberos's
            return None
        self._fail(flow, Outcome(reason=found))
        return None

    async def _check(
        self, flow: http.HTTPFlow, token: bytes, digest: bytes, session: Session | None
    ) -> None:
        acceptor = self.acceptor
        assert acceptor is not None
        pending = session.context if session is not None else None
        if token[:1] == GSS_INITIAL_TOKEN:
            pending = None  # a new handshake, not the next leg of the one pending
        try:
            outcome = await asyncio.to_thread(acceptor.accept, token, pending)
        except Exception as e:  # never an open proxy: a failure to check is a refusal
            logger.error(f"kerberos: checking a token failed: {type(e).__name__}: {e}")
            outcome = Outcome(reason="error", detail=type(e).__name__)
        if outcome.user is not None:
            self.sessions[flow.client_conn] = Session(outcome.user, digest)
            self._succeed(flow, outcome.user)
            return
        if outcome.context is not None:  # another leg: the client answers our token
            self.sessions[flow.client_conn] = Session(context=outcome.context)
            self._challenge(flow, outcome.token)
            return
        self.sessions.pop(flow.client_conn, None)
        self._fail(flow, outcome)

    def _succeed(self, flow: http.HTTPFlow, user: str) -> None:
        flow.metadata["proxyauth"] = (user, "")
        flow.request.headers.pop(HEADER, None)
        if flow.response is not None and flow.response.status_code == 407:
            flow.response = None  # mitmproxy's proxyauth's Basic challenge
        if flow.request.method == "CONNECT":
            self.clients.of(flow.client_conn).user = user

    def _fail(self, flow: http.HTTPFlow, outcome: Outcome) -> None:
        reason = outcome.reason or "error"
        self.recorder.metrics.kerberos_failures(reason).inc()
        if reason != "no_token":  # a missing token is every browser's first request
            event("proxy_auth_failed", scheme="negotiate", reason=reason,
                  client=flow.client_conn.peername[0], detail=outcome.detail)  # fmt: skip
        self._challenge(flow, None)

    def _challenge(self, flow: http.HTTPFlow, token: bytes | None) -> None:
        """A 407 offering Negotiate (with the token of a next leg), and Basic when set."""
        negotiate = "Negotiate" + (f" {base64.b64encode(token).decode()}" if token else "")
        challenges = [negotiate]
        if ctx.options.proxyauth:
            challenges.append(BASIC_CHALLENGE)
        body = "aiwarden: proxy authentication required (Kerberos single sign-on).\n"
        response = http.Response.make(407, body, {"Content-Type": "text/plain"})
        for challenge in challenges:
            response.headers.add("Proxy-Authenticate", challenge)
        flow.request.headers.pop("expect", None)
        flow.response = response
