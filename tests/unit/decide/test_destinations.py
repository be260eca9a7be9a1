"""DestinationGuard (proxy/decide/destinations.py) in-process: denied ranges, this host's
unspecified address, the proxy's own listeners, IPv4-mapped IPv6, names checked by every address
they resolve to (with a stand-in resolver), the short DNS cache, and check_resolved, which the
guarded event loop applies to the answer mitmproxy connects with."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from proxy.decide import destinations
from proxy.decide.destinations import UNRESOLVED, DestinationGuard

DENY = [ipaddress.ip_network(n) for n in ("169.254.0.0/16", "10.0.0.0/8", "fe80::/10")]
ip = ipaddress.ip_address


def info(address: str, port: int = 443) -> tuple:
    """One getaddrinfo entry for `address`."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


@pytest.fixture
def resolver(monkeypatch):
    """getaddrinfo answering from a table (a missing name does not resolve); the names it
    was asked, in order."""
    table: dict[str, list[str]] = {}
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        if host == "bad-idna.example":
            raise UnicodeError("label too long")
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [info(a, port) for a in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table, asked


@pytest.fixture
def clock(monkeypatch):
    """time.monotonic as the guard sees it, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(destinations.time, "monotonic", lambda: now[0])
    return now


# -- addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, reason",
    [
        ("169.254.169.254", "169.254.169.254 is in denied destination 169.254.0.0/16"),
        ("10.1.2.3", "10.1.2.3 is in denied destination 10.0.0.0/8"),
        ("fe80::1", "fe80::1 is in denied destination fe80::/10"),
        # this host, whatever the policy says
        ("0.0.0.0", "0.0.0.0 is this host"),
        ("::", ":: is this host"),
        # elsewhere
        ("198.51.100.7", None),
        ("2001:db8::1", None),
        ("11.0.0.1", None),  # just outside 10.0.0.0/8
        ("169.255.0.1", None),
    ],
)
def test_denied_ranges_and_this_hosts_unspecified_address(address, reason):
    assert DestinationGuard(DENY).why_denied_ip(ip(address), 443) == reason


@pytest.mark.parametrize(
    "address, reason",
    [
        ("::ffff:169.254.169.254", "169.254.169.254 is in denied destination 169.254.0.0/16"),
        ("::ffff:10.0.0.1", "10.0.0.1 is in denied destination 10.0.0.0/8"),
        ("::ffff:a9fe:a9fe", "169.254.169.254 is in denied destination 169.254.0.0/16"),
        ("::ffff:0.0.0.0", "0.0.0.0 is this host"),
        ("::ffff:198.51.100.7", None),
    ],
)
def test_an_ipv4_address_written_as_ipv6_is_the_ipv4_address(address, reason):
    """However the literal reaches the guard: as the host asked for, or in a resolver's
    answer."""
    guard = DestinationGuard(DENY)
    assert guard.why_denied_now(address, 443) == reason
    if reason is None:
        assert guard.check_resolved("h.example", 443, [info(address)])
    else:
        with pytest.raises(OSError) as e:
            guard.check_resolved("h.example", 443, [info(address)])
        assert str(e.value) == f"aiwarden: h.example resolves to {reason}"


def test_the_unspecified_address_is_denied_with_nothing_in_the_policy():
    guard = DestinationGuard(())
    assert guard.why_denied_ip(ip("0.0.0.0"), 80) == "0.0.0.0 is this host"
    assert guard.why_denied_ip(ip("169.254.169.254"), 80) is None


def test_a_listener_on_one_address_is_denied_on_that_address_and_port_only():
    guard = DestinationGuard(())
    guard.protect("127.0.0.1", 3128)
    guard.protect("::1", 9090)
    assert guard.why_denied_ip(ip("127.0.0.1"), 3128) == "127.0.0.1:3128 is the proxy itself"
    assert guard.why_denied_ip(ip("::1"), 9090) == "::1:9090 is the proxy itself"
    assert guard.why_denied_now("::ffff:127.0.0.1", 3128) == "127.0.0.1:3128 is the proxy itself"
    assert guard.why_denied_ip(ip("127.0.0.1"), 3129) is None
    assert guard.why_denied_ip(ip("127.0.0.2"), 3128) is None  # another address
    assert guard.why_denied_ip(ip("127.0.0.1"), 9090) is None  # that port is on ::1


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "localhost"])
def test_a_listener_on_every_address_is_denied_by_any_address_of_this_host(host):
    """An unspecified (or unparsable) listen address: the port, on loopback and this host's
    own addresses; not the same port elsewhere."""
    guard = DestinationGuard(())
    guard.protect(host, 8081)
    for local in ("127.0.0.1", "127.9.9.9", "::1"):
        assert guard.why_denied_ip(ip(local), 8081) == f"{local}:8081 is the proxy itself"
    assert guard.why_denied_ip(ip("127.0.0.1"), 8082) is None
    assert guard.why_denied_ip(ip("198.51.100.7"), 8081) is None  # not this host


# -- names ---------------------------------------------------------------------------------


def test_a_literal_is_answered_now_and_a_name_must_be_looked_up(resolver):
    guard = DestinationGuard(DENY)
    assert guard.why_denied_now("169.254.169.254", 80) == (
        "169.254.169.254 is in denied destination 169.254.0.0/16"
    )
    assert guard.why_denied_now("fe80::1", 80) == "fe80::1 is in denied destination fe80::/10"
    assert guard.why_denied_now("198.51.100.7", 80) is None
    assert guard.why_denied_now("metadata.example", 80) is UNRESOLVED
    assert resolver[1] == []  # nothing was looked up


def test_a_name_is_denied_when_any_of_its_addresses_is(resolver):
    table, _ = resolver
    table["mixed.example"] = ["198.51.100.7", "2001:db8::1", "169.254.169.254"]
    table["public.example"] = ["198.51.100.7", "2001:db8::1"]
    table["mapped.example"] = ["::ffff:10.9.9.9"]
    guard = DestinationGuard(DENY)
    assert asyncio.run(guard.why_denied("mixed.example", 80)) == (
        "mixed.example resolves to 169.254.169.254 is in denied destination 169.254.0.0/16"
    )
    assert asyncio.run(guard.why_denied("public.example", 80)) is None
    assert asyncio.run(guard.why_denied("mapped.example", 80)) == (
        "mapped.example resolves to 10.9.9.9 is in denied destination 10.0.0.0/8"
    )


def test_a_name_resolving_to_the_proxys_own_port_is_denied(resolver):
    table, _ = resolver
    table["me.example"] = ["127.0.0.1"]
    guard = DestinationGuard(())
    guard.protect("0.0.0.0", 3128)
    assert asyncio.run(guard.why_denied("me.example", 3128)) == (
        "me.example resolves to 127.0.0.1:3128 is the proxy itself"
    )
    assert asyncio.run(guard.why_denied("me.example", 443)) is None


@pytest.mark.parametrize("name", ["nowhere.example", "bad-idna.example"])
def test_a_name_that_does_not_resolve_is_not_denied_here(resolver, name):
    """The connection will fail on its own; the guard does not invent a reason."""
    assert asyncio.run(DestinationGuard(DENY).why_denied(name, 80)) is None


def test_an_answer_is_cached_for_a_few_seconds_then_looked_up_again(resolver, clock):
    """Within DNS_CACHE_SECONDS the same (name, port) is answered without a lookup, and
    why_denied_now knows it; after, the name is UNRESOLVED again and a change is seen."""
    table, asked = resolver
    table["rebind.example"] = ["198.51.100.7"]
    guard = DestinationGuard(DENY)
    assert asyncio.run(guard.why_denied("rebind.example", 80)) is None
    table["rebind.example"] = ["169.254.169.254"]  # rebound
    clock[0] += destinations.DNS_CACHE_SECONDS - 0.5
    assert guard.why_denied_now("rebind.example", 80) is None  # the cached answer
    assert asyncio.run(guard.why_denied("rebind.example", 80)) is None
    assert asyncio.run(guard.why_denied("rebind.example", 443)) is not None  # another port
    assert asyncio.run(guard.why_denied("rebind.example", 443)) is not None  # now cached
    assert asyncio.run(guard.why_denied("rebind.example", 443)) is not None  # now cached
    assert asked == ["rebind.example", "rebind.example"]
    clock[0] += 1.0  # the first answer is older than DNS_CACHE_SECONDS
    assert guard.why_denied_now("rebind.example", 80) is UNRESOLVED
    assert asyncio.run(guard.why_denied("rebind.example", 80)) == (
        "rebind.example resolves to 169.254.169.254 is in denied destination 169.254.0.0/16"
    )
    assert guard.why_denied_now("rebind.example", 80) is not None  # cached: denied
    assert len(asked) == 3


def test_a_name_that_does_not_resolve_is_cached_too(resolver, clock):
    _, asked = resolver
    guard = DestinationGuard(DENY)
    assert asyncio.run(guard.why_denied("nowhere.example", 80)) is None
    assert guard.why_denied_now("nowhere.example", 80) is None
    assert asked == ["nowhere.example"]


def test_the_cache_is_bounded(resolver, clock, monkeypatch):
    """At DNS_CACHE_SIZE entries it starts over, rather than grow with every name seen."""
    table, _ = resolver
    monkeypatch.setattr(destinations, "DNS_CACHE_SIZE", 3)
    guard = DestinationGuard(DENY)
    for n in range(3):
        table[f"n{n}.example"] = ["198.51.100.7"]
        asyncio.run(guard.why_denied(f"n{n}.example", 80))
    assert all(guard.why_denied_now(f"n{n}.example", 80) is None for n in range(3))
    table["n3.example"] = ["198.51.100.7"]
    asyncio.run(guard.why_denied("n3.example", 80))
    assert [guard.why_denied_now(f"n{n}.example", 80) for n in range(4)] == [
        UNRESOLVED, UNRESOLVED, UNRESOLVED, None
    ]  # fmt: skip


# -- the answer mitmproxy connects with ----------------------------------------------------


def test_check_resolved_passes_an_allowed_answer_through_unchanged():
    infos = [info("198.51.100.7"), info("2001:db8::1")]
    assert DestinationGuard(DENY).check_resolved("public.example", 443, infos) is infos


@pytest.mark.parametrize(
    "addresses, reason",
    [
        (["198.51.100.7", "169.254.169.254"], "169.254.169.254 is in denied destination"),
        (["fe80::1%eth0"], "fe80::1 is in denied destination fe80::/10"),  # scoped
        (["::ffff:10.0.0.1"], "10.0.0.1 is in denied destination 10.0.0.0/8"),
        (["0.0.0.0"], "0.0.0.0 is this host"),
    ],
)
def test_check_resolved_refuses_an_answer_with_any_denied_address(addresses, reason):
    """The second lookup, made to connect (DNS rebinding): an OSError, which mitmproxy
    reports as a failed connection."""
    infos = [info(a) for a in addresses]
    with pytest.raises(OSError, match=r"^aiwarden: rebound\.example resolves to ") as e:
        DestinationGuard(DENY).check_resolved("rebound.example", 443, infos)
    assert reason in str(e.value)


def test_check_resolved_refuses_the_proxys_own_listener():
    guard = DestinationGuard(())
    guard.protect("127.0.0.1", 3128)
    with pytest.raises(OSError) as e:
        guard.check_resolved("me.example", 3128, [info("127.0.0.1", 3128)])
    assert str(e.value) == "aiwarden: me.example resolves to 127.0.0.1:3128 is the proxy itself"
    assert guard.check_resolved("me.example", 3129, [info("127.0.0.1", 3129)])
