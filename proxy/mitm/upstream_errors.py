"""Let the `error` hook answer a request whose upstream failed.

When the upstream of a request fails before its response began (connection refused, a name
that does not resolve, a certificate that does not verify, a reset, or a connection aiwarden
closed because the server was too slow), mitmproxy 12.3 calls the `error` hook and then sends
the client its own HTML error page. Addons cannot replace that page; mitmproxy PR #7999
proposes that a response the `error` hook sets is sent instead. `install()` adds exactly that
behaviour to `HttpStream.handle_protocol_error`, so that an SDK gets a JSON error it can read
and a browser gets our page. Nothing changes for a flow whose error hook sets no response.
It also marks the flow (UPSTREAM_FAILED), so the hook can tell a server's failure from a
client's. And mitmproxy's own error pages (a request it cannot parse) no longer announce
its name and version in their Server header: they say `aiwarden`.
"""

from __future__ import annotations

from collections.abc import Generator

from mitmproxy import version
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http import (
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
    SendHttp,
)

_INSTALLED = "_aiwarden_error_response"
UPSTREAM_FAILED = "aiwarden_upstream_failed"  # flow.metadata: the error is the server side's


def install() -> None:
    """Wrap HttpStream.handle_protocol_error once per process."""
    version.MITMPROXY = "aiwarden"  # read by mitmproxy's HTTP/1, 2 and 3 error pages
    stream = http_layer.HttpStream
    if getattr(stream.handle_protocol_error, _INSTALLED, False):
        return
    original = stream.handle_protocol_error

    def handle_protocol_error(self, event) -> Generator:
        answered = self.flow.response is not None  # by the upstream, or by a hook before
        if isinstance(event, ResponseProtocolError):
            self.flow.metadata[UPSTREAM_FAILED] = True
        commands = original(self, event)
        reply = None
        while True:
            try:
                command = commands.send(reply)
            except StopIteration:
                return
            if (
                not answered
                and self.flow.response is not None  # the error hook set one
                and isinstance(event, ResponseProtocolError)
                and isinstance(command, SendHttp)
                and command.event is event
            ):
                yield from _send(self, self.flow.response)
                reply = None
            else:
                reply = yield command

    setattr(handle_protocol_error, _INSTALLED, True)
    stream.handle_protocol_error = handle_protocol_error


def _send(stream, response) -> Generator:
    """The response, whole, in place of mitmproxy's error page."""
    client = stream.context.client
    if client.alpn not in (b"h2", b"h3"):  # HTTP/1: this connection ends with the answer
        response.headers["Connection"] = "close"
    yield SendHttp(ResponseHeaders(stream.stream_id, response, False), client)
    if response.raw_content:
        yield SendHttp(ResponseData(stream.stream_id, response.raw_content), client)
    yield SendHttp(ResponseEndOfMessage(stream.stream_id), client)
