"""Where the proxy will not connect: `network.deny_destinations` (cloud metadata, loopback,
link-local...), also when a name resolves there; this host's unspecified address (`0.0.0.0`,
`::`, which Linux connects to the machine itself) whatever the policy says; and the proxy's
own listeners by any address of this host."""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Iterable

from proxy.policy.model import Network
from proxy.policy.normalize import IPAddress, is_ip, parse_ip

DNS_CACHE_SECONDS = 10.0
REFUSED = "aiwarden: "  # how the error of a connection refused here begins
DNS_CACHE_SIZE = 4096


class Unresolved:
    """why_denied_now's answer for a name not looked up recently."""


UNRESOLVED = Unresolved()


class DestinationGuard:
    def __init__(self, deny: Iterable[Network]) -> None:
        self.deny = tuple(deny)
        self.own: set[tuple[IPAddress, int]] = set()  # the proxy's and admin's listeners
        self.own_ports: set[int] = set()  # listeners bound to every address
        self._dns: dict[tuple[str, int], tuple[float, tuple[IPAddress, ...]]] = {}

    def protect(self, host: str, port: int) -> None:
        """Never connect to this listener of ours (an unspecified host means any address)."""
        address = parse_ip(host)
        if address is None or address.is_unspecified:
            self.own_ports.add(port)
        else:
            self.own.add((address, port))

    def why_denied_ip(self, address: IPAddress, port: int) -> str | None:
        """The reason a connection to this address is refused, or None."""
        if address.is_unspecified:
            return f"{address} is this host"
        for network in self.deny:
            if address in network:
                return f"{address} is in denied destination {network}"
        if (address, port) in self.own or (port in self.own_ports and is_this_host(address)):
            return f"{address}:{port} is the proxy itself"
        return None

    def why_denied_now(self, host: str, port: int) -> str | Unresolved | None:
        """The check without waiting: IP literals, and names resolved in the last
        DNS_CACHE_SECONDS; UNRESOLVED when the name must be looked up (see why_denied)."""
        if is_ip(host):
            address = parse_ip(host)
            return self.why_denied_ip(address, port) if address else None
        hit = self._dns.get((host, port))
        if hit is None or hit[0] <= time.monotonic():
            return UNRESOLVED
        return self._why_denied_name(host, port, hit[1])

    async def why_denied(self, host: str, port: int) -> str | None:
        """The full check: a name is denied when any address it resolves to is denied.
        A name that does not resolve is not denied here: the connection will fail anyway."""
        reason = self.why_denied_now(host, port)
        if reason is not UNRESOLVED:
            return reason
        return self._why_denied_name(host, port, await self._resolve(host, port))

    def _why_denied_name(
        self, host: str, port: int, addresses: tuple[IPAddress, ...]
    ) -> str | None:
        for address in addresses:
            reason = self.why_denied_ip(address, port)
            if reason:
                return f"{host} resolves to {reason}"
        return None

    def check_resolved(self, host: str, port: int, infos: list) -> list:
        """getaddrinfo's answer for a connection about to be made, or OSError when any of
        its addresses is denied (see compat.GuardedLoop)."""
        addresses = tuple(a for a in (parse_ip(info[4][0]) for info in infos) if a is not None)
        reason = self._why_denied_name(host, port, addresses)
        if reason:
            raise OSError(f"{REFUSED}{reason}")
        return infos

    async def _resolve(self, host: str, port: int) -> tuple[IPAddress, ...]:
        # straight to the resolver: the loop's own getaddrinfo may be the guarded one
        lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            infos = await asyncio.get_running_loop().run_in_executor(None, lookup)
        except (OSError, UnicodeError):
            addresses: tuple[IPAddress, ...] = ()
        else:
            addresses = tuple(a for a in (parse_ip(info[4][0]) for info in infos) if a is not None)
        if len(self._dns) >= DNS_CACHE_SIZE:
            self._dns.clear()
        self._dns[(host, port)] = (time.monotonic() + DNS_CACHE_SECONDS, addresses)
        return addresses


def is_this_host(address: IPAddress) -> bool:
    """Whether a connection to `address` stays on this machine: loopback, or an address of
    one of its interfaces (the kernel routes to it from itself). Rechecked every minute, as
    interfaces gain and lose addresses."""
    return address.is_loopback or _routes_to_itself(address, int(time.monotonic() // 60))


@functools.lru_cache(maxsize=256)
def _routes_to_itself(address: IPAddress, minute: int) -> bool:
    """A UDP socket "connected" to the address (which sends nothing) takes the address
    itself as its source only when the address is this machine's."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((str(address), 9))
            return parse_ip(probe.getsockname()[0]) == address
    except OSError:  # no route: not reachable from here at all
        return False
