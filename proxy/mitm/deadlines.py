"""Deadlines for slow peers: a client that takes too long to send its request (slowloris),
and a server that takes too long to start answering.

mitmproxy closes a connection only after `tcp_timeout` (600 s) without any traffic, so a
client sending one header byte every few seconds, or a server that accepts a request and
never answers, would hold a connection (and the client waiting on it) indefinitely.

- Client: from the moment it connects, and again after a CONNECT (TLS and the first request
  inside), it has `aiwarden_client_header_timeout` seconds to complete its request headers,
  or the connection is closed. A tunnelled connection (TLS relayed undecrypted, or raw TCP)
  is not ours to time. Later requests on a kept-alive connection fall under mitmproxy's idle
  timeout.
- Server: from the moment the request is whole, it has `aiwarden_upstream_timeout` seconds
  to send its response headers. Then its connection is closed and the flow is marked
  timed out, which the Upstream addon's `error` hook answers with a 504.

mitmproxy 12.3 cannot kill a flow in transit; closing the connection through its connection
handler (compat.close_connection) ends the flow the way a peer's close would.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import connection, ctx, exceptions, http, tcp, tls

from proxy.mitm import compat
from proxy.mitm.recording import Recorder
from proxy.mitm.state import state_of
from proxy.observe.logs import event
from proxy.options import declare

logger = logging.getLogger("aiwarden")


class Deadlines:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._clients: dict[str, asyncio.TimerHandle] = {}  # client id -> header deadline
        self._flows: dict[str, asyncio.TimerHandle] = {}  # flow id -> answer deadline

    def load(self, loader) -> None:
        declare(loader, "aiwarden_client_header_timeout", "aiwarden_upstream_timeout")

    def configure(self, updated: set[str]) -> None:
        for name in ("aiwarden_client_header_timeout", "aiwarden_upstream_timeout"):
            if name in updated and getattr(ctx.options, name) < 0:
                raise exceptions.OptionsError(f"{name} must be 0 or more seconds")

    # -- the client --------------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        self._arm_client(client)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._arm_client(flow.client_conn)  # now the TLS handshake and the first request

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        if data.ignore_connection:  # tunnelled: whatever comes next is not HTTP we read
            self._disarm(self._clients, data.context.client.id)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._disarm(self._clients, flow.client_conn.id)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:  # a raw TCP tunnel (SSH over CONNECT...)
        self._disarm(self._clients, flow.client_conn.id)

    def client_disconnected(self, client: connection.Client) -> None:
        self._disarm(self._clients, client.id)

    def _arm_client(self, client: connection.Client) -> None:
        timeout = ctx.options.aiwarden_client_header_timeout
        if timeout and (loop := _running_loop()):
            self._disarm(self._clients, client.id)
            self._clients[client.id] = loop.call_later(timeout, self._client_too_slow, client)

    def _client_too_slow(self, client: connection.Client) -> None:
        self._clients.pop(client.id, None)
        self.recorder.metrics.bad_requests("header_timeout").inc()
        event("client_too_slow", client=client.peername[0])
        _close(client, client)

    # -- the server --------------------------------------------------------------------------

    def request(self, flow: http.HTTPFlow) -> None:
        """The request is whole (and, when redacted, about to leave): time the server."""
        timeout = ctx.options.aiwarden_upstream_timeout
        if timeout and flow.response is None and flow.error is None and (loop := _running_loop()):
            self._flows[flow.id] = loop.call_later(timeout, self._server_too_slow, flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._disarm(self._flows, flow.id)

    def error(self, flow: http.HTTPFlow) -> None:
        self._disarm(self._flows, flow.id)

    def _server_too_slow(self, flow: http.HTTPFlow) -> None:
        self._flows.pop(flow.id, None)
        if flow.response is None and flow.error is None:
            state_of(flow).timed_out = True
            _close(flow.client_conn, flow.server_conn)

    @staticmethod
    def _disarm(timers: dict[str, asyncio.TimerHandle], key: str) -> None:
        timer = timers.pop(key, None)
        if timer is not None:
            timer.cancel()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop, or None when a hook is called outside mitmproxy (unit tests)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _close(client: connection.Client, conn: connection.Connection) -> None:
    """Close `conn` (the client itself, or one of its server connections)."""
    if not compat.close_connection(ctx.master, client, conn):  # gone already
        logger.debug("deadline: no live connection to close for %s", client.peername)
