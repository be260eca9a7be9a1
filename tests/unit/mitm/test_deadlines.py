"""Deadlines (proxy/mitm/deadlines.py) in mitmproxy's own test context: which hook arms and
which disarms the client's header deadline and the server's answer deadline, what happens when
one runs out (the connection closed, the flow marked timed out), and the options.

The deadlines are whole seconds, so the tests that let one run out wait about a second; the
scenarios of a kind share one wait."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
from mitmproxy import exceptions
from mitmproxy.options import Options
from mitmproxy.proxy.context import Context
from mitmproxy.test import taddons, tflow
from mitmproxy.tls import ClientHello, ClientHelloData
from proxyharness import client_hello

from proxy.mitm.deadlines import Deadlines
from proxy.mitm.recording import Recorder
from proxy.mitm.state import Clients, state_of

WAIT = 1.3  # a deadline of 1 s, and some room


class ProxyServer:
    """Stands in for mitmproxy's proxyserver addon: the connection handlers by client id,
    each recording what the deadlines closed."""

    def __init__(self) -> None:
        self.connections: dict[str, SimpleNamespace] = {}
        self.closed: list[tuple[str, object]] = []  # (client id, connection closed)

    def handler(self, client) -> None:
        self.connections[client.id] = SimpleNamespace(
            close_connection=lambda conn: self.closed.append((client.id, conn))
        )


# the two places these tests touch how the addons are wired: how Deadlines is made, and how a
# flow says its server was too slow


def make_deadlines() -> Deadlines:
    return Deadlines(Recorder(Clients()))


def timed_out(flow) -> bool:
    return state_of(flow).timed_out


def context(deadlines: Deadlines, server: ProxyServer, client: int = 1, upstream: int = 1):
    ctx = taddons.context(deadlines, server)
    ctx.configure(
        deadlines, aiwarden_client_header_timeout=client, aiwarden_upstream_timeout=upstream
    )
    return ctx


def client_of(server: ProxyServer):
    client = tflow.tclient_conn()
    server.handler(client)
    return client


def hello(client, ignore: bool) -> ClientHelloData:
    record = client_hello("example.com")
    data = ClientHelloData(Context(client, Options()), ClientHello(record[9:]))
    data.ignore_connection = ignore
    return data


def flow_of(client):
    f = tflow.tflow()
    f.client_conn = client
    return f


# -- the options ---------------------------------------------------------------------------


def test_the_options_and_their_defaults():
    with taddons.context(make_deadlines()) as ctx:
        assert ctx.options.aiwarden_client_header_timeout == 30
        assert ctx.options.aiwarden_upstream_timeout == 300


@pytest.mark.parametrize("name", ["aiwarden_client_header_timeout", "aiwarden_upstream_timeout"])
def test_a_negative_timeout_is_refused_and_zero_is_no_limit(name):
    deadlines = make_deadlines()
    with taddons.context(deadlines) as ctx:
        with pytest.raises(exceptions.OptionsError, match=f"{name} must be 0 or more seconds"):
            ctx.configure(deadlines, **{name: -1})
        ctx.configure(deadlines, **{name: 0})
        assert getattr(ctx.options, name) == 0


# -- the client: its request headers -------------------------------------------------------


def test_each_hook_that_ends_the_wait_for_headers_disarms_and_the_others_are_closed(caplog):
    """One client per path through the hooks; after the deadline, exactly the clients still
    waiting are closed (the client itself, not a server connection) and counted."""
    server, deadlines = ProxyServer(), make_deadlines()

    async def scenario() -> dict[str, str]:
        with context(deadlines, server):
            clients = {name: client_of(server) for name in (
                "silent", "headers", "tcp", "gone", "tunnelled", "intercepted",
                "connect-again",
            )}  # fmt: skip
            for client in clients.values():
                deadlines.client_connected(client)
            deadlines.requestheaders(flow_of(clients["headers"]))
            deadlines.tcp_start(tflow.ttcpflow(client_conn=clients["tcp"]))
            deadlines.client_disconnected(clients["gone"])
            deadlines.tls_clienthello(hello(clients["tunnelled"], ignore=True))
            deadlines.tls_clienthello(hello(clients["intercepted"], ignore=False))
            # headers came, then a CONNECT: TLS and the first request inside are timed anew
            deadlines.requestheaders(flow_of(clients["connect-again"]))
            deadlines.http_connect(flow_of(clients["connect-again"]))
            await asyncio.sleep(WAIT)
            return {c.id: name for name, c in clients.items()}

    with caplog.at_level(logging.INFO, logger="aiwarden"):
        names = asyncio.run(scenario())
    closed = sorted(names[cid] for cid, conn in server.closed if conn.id == cid)
    assert closed == ["connect-again", "intercepted", "silent"]
    assert len(server.closed) == 3  # and nothing else: no server connection
    bad = deadlines.recorder.metrics.registry.get_sample_value
    assert bad("aiwarden_bad_requests_total", {"reason": "header_timeout"}) == 3
    assert sum(r.getMessage().startswith("client_too_slow") for r in caplog.records) == 3


def test_a_connect_restarts_the_deadline_it_does_not_add_one():
    """Armed again, the old timer is cancelled: the client is closed once, a deadline after
    the CONNECT, not a deadline after it connected."""
    server, deadlines = ProxyServer(), make_deadlines()

    async def scenario() -> list[int]:
        with context(deadlines, server):
            client = client_of(server)
            deadlines.client_connected(client)
            await asyncio.sleep(0.5)
            deadlines.http_connect(flow_of(client))
            await asyncio.sleep(0.7)  # the first deadline has passed
            early = len(server.closed)
            await asyncio.sleep(0.8)  # the second one too
            return [early, len(server.closed)]

    assert asyncio.run(scenario()) == [0, 1]


def test_zero_arms_nothing():
    server, deadlines = ProxyServer(), make_deadlines()

    async def scenario() -> None:
        with context(deadlines, server, client=0, upstream=0):
            client = client_of(server)
            deadlines.client_connected(client)
            deadlines.request(flow_of(client))
            await asyncio.sleep(0.1)  # a deadline of 0 s would have run out by now

    asyncio.run(scenario())
    assert server.closed == []


def test_outside_an_event_loop_the_hooks_arm_nothing_and_do_not_fail():
    server, deadlines = ProxyServer(), make_deadlines()
    with context(deadlines, server):
        client = client_of(server)
        f = flow_of(client)
        deadlines.client_connected(client)
        deadlines.http_connect(f)
        deadlines.request(f)
        deadlines.responseheaders(f)
    assert server.closed == []


def test_a_client_whose_connection_is_already_gone_is_not_an_error():
    server, deadlines = ProxyServer(), make_deadlines()

    async def scenario() -> None:
        with context(deadlines, server):
            deadlines.client_connected(tflow.tclient_conn())  # no handler: closed meanwhile
            await asyncio.sleep(WAIT)

    asyncio.run(scenario())
    assert server.closed == []


# -- the server: its answer ----------------------------------------------------------------


def test_a_server_too_slow_is_closed_and_its_flow_marked_timed_out():
    """Per flow: the request arms, response headers or an error disarm; a flow answered
    before the request hook (blocked, say) is not timed; a flow answered meanwhile is left."""
    server, deadlines = ProxyServer(), make_deadlines()
    flows: dict[str, object] = {}

    async def scenario() -> None:
        with context(deadlines, server, client=0):
            for name in ("slow", "answered", "failed", "blocked", "answered-late"):
                flows[name] = flow_of(client_of(server))
                flows[name].response = None
            flows["blocked"].response = tflow.tresp()
            for f in flows.values():
                deadlines.request(f)
            deadlines.responseheaders(flows["answered"])
            deadlines.error(flows["failed"])
            flows["answered-late"].response = tflow.tresp()  # headers hook not seen yet
            await asyncio.sleep(WAIT)

    asyncio.run(scenario())
    marked = sorted(name for name, f in flows.items() if timed_out(f))
    assert marked == ["slow"]
    slow = flows["slow"]
    assert server.closed == [(slow.client_conn.id, slow.server_conn)]  # the server side only
