"""Identity: who is behind each request, from the sources the policy's `identity:` orders
(policy/identity.py): the proxy's own authentication, a trusted downstream proxy's
`X-Authenticated-User` (and groups), an address-to-user map.

It runs before admission and enforcement, so the CONNECT and every request are decided with
the user (and directory groups) it finds; what it finds is on the flow
(`FlowState.who`, read through `Clients.user` and `Clients.groups`) and, for a CONNECT, on the
client connection, for the requests inside the tunnel.

- The identity headers are removed from every request, whoever sent it: believed only from
  the trusted addresses, never forwarded to a server.
- A plain-HTTP connection from a downstream proxy can carry many users' requests: each is
  read from its own headers. Inside a tunnel, the CONNECT's identity holds.
- The address map (the file's entries, then what an identity collector pushed to the admin
  listener, identity/addresses.py) is read once per client connection.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from mitmproxy import ctx, http

from proxy.identity.addresses import AddressStore, apply_push, store_path
from proxy.identity.who import NOBODY, Who
from proxy.mitm.state import Clients, state_of
from proxy.options import declare
from proxy.policy.identity import IdentitySettings, bare_name, decode
from proxy.policy.model import Policy

logger = logging.getLogger("aiwarden")
MAX_GROUPS = 200  # groups read from one header


class Identity:
    def __init__(self, clients: Clients, policy: Callable[[], Policy | None]) -> None:
        """`policy()`: the policy in force (its `identity:` settings)."""
        self.clients = clients
        self._policy = policy
        self.path = None
        self._store: AddressStore | None = None
        self._unusable: str | None = None

    def load(self, loader) -> None:
        declare(loader, "aiwarden_identity_store")

    def configure(self, updated: set[str]) -> None:
        if "aiwarden_identity_store" in updated or "confdir" in updated:
            self.close()
            self.path = store_path(ctx.options.aiwarden_identity_store, ctx.options.confdir)
            self._unusable = None

    def done(self) -> None:
        self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def store(self) -> AddressStore | None:
        """The pushed address map, opened on first use; None when it cannot be (logged)."""
        if self._store is None and self._unusable is None and self.path is not None:
            try:
                self._store = AddressStore(self.path)
            except Exception as e:
                self._unusable = f"{type(e).__name__}: {e}"
                logger.error("identity store %s cannot be used: %s", self.path, self._unusable)
        return self._store

    @property
    def settings(self) -> IdentitySettings:
        policy: Policy | None = self._policy()
        return policy.identity if policy is not None else IdentitySettings()

    # -- hooks -------------------------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        who = self._resolve(flow)
        self.clients.of(flow.client_conn).who = who
        state_of(flow).who = who

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        inside_tunnel = flow.client_conn.tls_established or flow.request.is_http2
        facts = self.clients.of(flow.client_conn)
        if inside_tunnel and facts.who is not None:
            state_of(flow).who = facts.who
            self._strip(flow)
        else:
            state_of(flow).who = self._resolve(flow)

    # -- the sources -----------------------------------------------------------------------

    def _resolve(self, flow: http.HTTPFlow) -> Who:
        """The first source, in the policy's order, that names a user; the identity headers
        are removed from the request either way."""
        settings = self.settings
        client = flow.client_conn.peername[0]
        found = NOBODY
        for source in settings.order:
            if source == "proxy_auth":
                auth = flow.metadata.get("proxyauth")  # mitmproxy's proxyauth (or Kerberos)
                user = auth[0] if auth else self.clients.of(flow.client_conn).user
                if user:
                    found = Who(user, frozenset(), "proxy_auth")
            elif source == "header":
                found = self._from_headers(flow, settings, client)
            elif source == "address_map":
                found = self.for_address(client, settings)
            if found.user:
                break
        self._strip(flow)
        return found

    def _from_headers(self, flow: http.HTTPFlow, settings: IdentitySettings, client: str) -> Who:
        h = settings.headers
        if h is None or not _in(client, h.trusted):
            return NOBODY
        headers = flow.request.headers
        raw = headers.get(h.user)
        text = decode(raw, h.encoding) if raw else None
        user = bare_name(text, settings.keep_domain) if text else None
        if not user:
            return NOBODY
        groups: set[str] = set()
        for value in headers.get_all(h.groups) if h.groups else ():
            decoded = decode(value, h.encoding) or ""
            for item in decoded.split(",")[:MAX_GROUPS]:
                if name := bare_name(item, settings.keep_domain):
                    groups.add(name.lower())
        return Who(user, frozenset(groups), "header")

    def for_address(self, client: str, settings: IdentitySettings | None = None) -> Who:
        """The address map's user for a client address (the file's, then a pushed one)."""
        settings = settings or self.settings
        amap = settings.address_map
        if amap is None:
            return NOBODY
        user = amap.entries.get(_canonical(client))
        if user is None and (store := self.store()) is not None:
            user = store.user_at(_canonical(client))
        if not user:
            return NOBODY
        return Who(bare_name(user, settings.keep_domain) or user, frozenset(), "address_map")

    def needs_mitmproxy(self, client: str) -> bool:
        """Whether a connection must go through mitmproxy to be told who it is: from a
        trusted downstream proxy, whose CONNECT carries the identity headers."""
        h = self.settings.headers
        return h is not None and _in(client, h.trusted)

    def _strip(self, flow: http.HTTPFlow) -> None:
        for name in self.settings.header_names():
            flow.request.headers.pop(name, None)

    # -- pushes from an identity collector (the admin listener, in a thread) --------------------

    def push(self, address: str, user: str | None, ttl: int | None = None) -> dict:
        """An identity collector's push (admin listener): `user` None forgets the address."""
        store = self.store()
        if store is None:
            raise LookupError(f"the identity store cannot be used: {self._unusable}")
        return apply_push(store, self.settings.address_map, address, user, ttl)


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _in(client: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(ip in net for net in networks)
