"""Every use aiwarden makes of mitmproxy's internals, and the check of its version.

mitmproxy documents its hooks and addon options; everything else can change in any release.
aiwarden was checked against the versions in TESTED (12.3.x; pyproject.toml pins
mitmproxy>=12.3,<12.4), and `check_mitmproxy_version` refuses others at the start of
`aiwarden run` and when the mitmdump script loads. Each reliance below has a test in
tests/e2e/test_compat.py that fails when mitmproxy stops taking the path it assumes (each was
seen failing with the patch disabled):

1. `answer_upstream_errors`: wraps `HttpStream.handle_protocol_error` (mitmproxy 12.3 sends
   its own HTML page after the `error` hook; a response that hook sets is sent instead, as
   mitmproxy PR #7999 proposes; a block decided before the body is sent this way too), and
   marks the flow (FlowState.upstream_failed). It also sets `mitmproxy.version.MITMPROXY`, which
   mitmproxy's HTTP/1, 2 and 3 error pages read, when they are made, for their Server
   header. Tests: test_an_upstream_failure_gets_aiwardens_answer,
   test_mitmproxys_own_error_page_does_not_name_it.
2. `skip_message_type_checks`: replaces `http.MessageData.__post_init__`, which every
   Request and Response mitmproxy builds calls (a tenth of the CPU of a plain request).
   Test: test_mitmproxy_builds_its_messages_through_the_patched_post_init.
3. `LeanAddonManager`: subclasses `addonmanager.AddonManager`, reads its `chain` with
   `addonmanager.traverse`, is put in place as `Master.addons` after the master is built,
   and relies on mitmproxy dispatching every hook through `trigger_event` (directly, or
   through `handle_lifecycle` for connection and flow hooks). Tests:
   test_mitmproxy_dispatches_hooks_through_trigger_event (and
   tests/unit/mitm/test_lean_addon_manager.py, which compares it with mitmproxy's own).
4. `GuardedLoop.getaddrinfo`: relies on mitmproxy opening upstream connections with
   `asyncio.open_connection(host, port)`, which resolves the name through the running
   loop's `getaddrinfo` (uvloop would not: see the README); that is where a name that
   resolves somewhere denied at connect time (DNS rebinding) is refused. Tests:
   test_mitmproxy_resolves_upstream_names_through_the_loop,
   test_a_name_the_guard_refuses_at_connect_is_never_connected_to,
   test_a_name_rebound_after_the_decision_is_refused_at_connect.
5. `GuardedLoop.create_server` and `SharedPortLoop`: rely on mitmproxy opening its
   listeners with `asyncio.start_server` on the running loop (the only way to ask for
   SO_REUSEPORT), whose protocol factory the fast path wraps; serve/fastpath.py also
   relies on mitmproxy's protocol taking over a connection through `set_protocol`,
   `connection_made` and the bytes read so far. Tests:
   test_mitmproxy_resolves_upstream_names_through_the_loop (the factory is wrapped and
   makes the connection), test_mitmproxys_listener_gets_the_fast_path,
   test_workers_listen_with_so_reuseport; the hand-over: test_fastpath.py.
6. `sni_entries`: reads `ClientHello._client_hello`, mitmproxy's kaitai parse, because
   `ClientHello.sni` gives no name unless there is exactly one valid one. Test:
   test_sni_entries_reads_every_server_name.
7. `close_connection`: `Proxyserver.connections[client.id].close_connection(conn)`, the
   only way in 12.3 to end a connection (and the flow on it) from outside its layers.
   Test: test_a_deadline_closes_a_slow_client_through_its_connection_handler.

8. The layers of `next_layer` (admission.py), as mitmproxy's own next_layer addon uses
   them: `ask_builtin_next_layer` calls the built-in `nextlayer` addon under `mitmdump -s`
   (scripts come first); `is_raw_relay` and `is_tcp_relay` name mitmproxy's raw relay
   layers (admission refuses them, discovery counts them); `read_as_tls`,
   `read_as_http` and `refuse` replace `NextLayer.layer` with `ServerTLSLayer` +
   `ClientTLSLayer`, `HttpLayer(context, HTTPMode.transparent)` or `Refusal`, a layer
   implementing the protected `_handle_event`. Tests: test_integrity.py, under `aiwarden
   run` and mitmdump (e.g. test_unknown_framing_to_a_blocked_host_is_refused_and_counted,
   test_plain_http_whose_first_write_is_two_bytes_is_decided).
9. The parent proxy (mitmproxy's upstream mode, `--upstream-proxy`): `parent_proxy` reads
   the `UpstreamMode` of a client's `proxy_mode` (or of the `mode` option's specs), whose
   connections mitmproxy opens to that address (`server_connect` then names the parent,
   not the destination); `sink_directly` gives a flow blocked before its body a server
   connection of its own with no `via`, because `HttpStream.make_server_connection` asks for
   its connection through `flow.server_conn.via`: the sink is then refused in
   `server_connect` instead of being asked of the parent; `GuardedLoop.getaddrinfo` never
   refuses the parent's own name. Tests (each seen failing with its part disabled), in
   tests/e2e/test_parent_proxy.py, with Squid as the parent:
   test_a_request_blocked_before_its_body_never_reaches_the_parent,
   test_a_blocked_ai_request_never_reaches_the_parent (sink_directly),
   test_an_allowed_intercepted_request_goes_through_the_parent,
   test_plain_http_goes_through_the_parent (server_connect lets the parent through),
   test_an_allowed_tunnel_goes_through_the_parent (the resolver's exemption).
10. TLS to the proxy itself (an HTTPS proxy, proxy_tls.py and admission.py):
   `is_tls_to_the_proxy` reads a ClientHello's `context.layers` as mitmproxy's
   `_setup_explicit_http_proxy` stacks them (the mode layer, then the only ClientTLSLayer)
   and as its tlsconfig tells a secure web proxy; `is_proxy_first_layer` reads a
   `NextLayer`'s context as the first choice under the mode layer (before or after
   mitmproxy's own next_layer stacked its choice); `speak_http1_to_the_proxy` sets
   `client.alpn`, which tlsconfig's `tls_start_client` hands its ALPN callback as the one
   protocol to select: mitmproxy means to force HTTP/1.1 on a secure web proxy (it cannot
   take a CONNECT over HTTP/2) but its check (`len(context.layers) == 2`) never holds in
   12.3, where the HttpLayer is stacked in the same context, and browsers offer h2. Tests:
   tests/e2e/test_https_proxy.py (test_a_tunnel_to_an_allowed_server_through_tls_to_the_proxy
   by name, test_require_tls_refuses_plain_http, under `aiwarden run` and mitmdump;
   test_chromium_follows_a_pac_file_to_the_https_proxy for the ALPN).
11. `import_only_the_addons_used` (`aiwarden run` only): puts the package `mitmproxy.addons`
   in `sys.modules` without running its `__init__`, which imports every default addon (the
   onboarding app's Flask and Jinja among them) for `default_addons()`, which `aiwarden run`
   never calls: a quarter of a second of each proxy's and worker's start (0.97 to 0.73 s of
   CPU to import mitmproxy). Each addon module run.py names is then imported on its own.
   `mitmdump -s` loads mitmproxy as it is. Test: test_aiwarden_run_imports_only_the_addons_it_uses
   (and every test that starts `aiwarden run`).
Documented hook API, not internals: upstream.py refuses a server connection by setting
`data.server.error` in `server_connect`, and reads the refusal back from `flow.error.msg`
("aiwarden: ..."). Tests: test_proxy.py::test_a_name_resolving_into_a_denied_range_is_refused,
test_a_name_rebound_after_the_decision_is_refused_at_connect.
Public API, not listed above: `Proxyserver.listen_addrs()`, the addon names `proxyserver`,
`nextlayer`, `master.Master(options, with_termlog=False)` with `run()` and
`shutdown()` (run.py), `mitmproxy.certs.DEFAULT_DHPARAM` and the confdir CA file format
(ca.py), `mitmproxy.version.VERSION` (metrics, and the check here).

The check runs after imports: a mitmproxy that removed a name imported here fails at
start-up with an ImportError (loud, and nothing is relayed); one that kept the names but
changed what they do is what the version check is for.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mitmproxy import addonmanager, connection, exceptions, hooks, http, version
from mitmproxy.proxy import commands, context, events, layer, layers, mode_specs
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers import modes
from mitmproxy.proxy.layers.http import (
    HTTPMode,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
    SendHttp,
)
from mitmproxy.tls import ClientHello

from proxy.mitm.state import state_of

if TYPE_CHECKING:
    from proxy.decide.gate import Gate
    from proxy.serve.fastpath import FastPath

addon_log = logging.getLogger("mitmproxy.addonmanager")  # where mitmproxy logs addon errors

# -- the versions these reliances were checked against ---------------------------------------

TESTED = ("12.3",)  # release series: any 12.3.x (12.3.1 when this was written)
# the one untested version an operator accepts, after running tests/e2e/test_compat.py with it
# (no "PROXY" in the name: tools and test harnesses strip such variables as proxy settings)
ALLOW_ENV = "AIWARDEN_ACCEPT_MITM_VERSION"


class UntestedMitmproxy(RuntimeError):
    """The installed mitmproxy is not a version aiwarden was tested with."""


def check_mitmproxy_version() -> str | None:
    """None when the installed mitmproxy is a version in TESTED; its version when it is not
    but the operator accepted exactly that one (ALLOW_ENV: log it); UntestedMitmproxy
    otherwise.

    A refusal by default: on another version a patch here may silently stop applying (the
    resolver check, the error answers), and the proxy would then fail open. An operator
    who has run tests/e2e/test_compat.py against a new version accepts exactly that version
    with AIWARDEN_ACCEPT_MITM_VERSION=<version>; the next upgrade is refused again."""
    installed = version.VERSION
    if any(installed == series or installed.startswith(series + ".") for series in TESTED):
        return None
    if os.environ.get(ALLOW_ENV, "").strip() == installed:
        return installed
    tested = ", ".join(f"{series}.x" for series in TESTED)
    raise UntestedMitmproxy(
        f"mitmproxy {installed} is not a version aiwarden was tested with ({tested}); "
        f"install one (pip install 'mitmproxy=={TESTED[-1]}.*'), or, once tests/e2e/test_compat.py "
        f"passes with it, set {ALLOW_ENV}={installed}"
    )


# -- 1. the error hook's answer instead of mitmproxy's error page ----------------------------

_INSTALLED = "_aiwarden_error_response"


def answer_upstream_errors() -> None:
    """Let the `error` hook answer a request whose upstream failed.

    When the upstream of a request fails before its response began (connection refused, a
    name that does not resolve, a certificate that does not verify, a reset, or a
    connection aiwarden closed because the server was too slow), mitmproxy 12.3 calls the
    `error` hook and then sends the client its own HTML error page. This wraps
    `HttpStream.handle_protocol_error` (once per process) so that a response the error hook
    set is sent instead: an SDK gets a JSON error it can read, a browser our page. Nothing
    changes for a flow whose error hook sets no response. The flow is marked
    (FlowState.upstream_failed), so the hook can tell a server's failure from a client's. And
    mitmproxy's own error pages (a request it cannot parse) say `aiwarden` in their Server
    header instead of mitmproxy's name and version."""
    version.MITMPROXY = "aiwarden"  # read by mitmproxy's HTTP/1, 2 and 3 error pages
    stream = http_layer.HttpStream
    if getattr(stream.handle_protocol_error, _INSTALLED, False):
        return
    original = stream.handle_protocol_error

    def handle_protocol_error(self, event) -> Generator:
        answered = self.flow.response is not None  # by the upstream, or by a hook before
        if isinstance(event, ResponseProtocolError):
            state_of(self.flow).upstream_failed = True  # the server side failed
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


def _send(stream, response: http.Response) -> Generator:
    """The response, whole, in place of mitmproxy's error page."""
    client = stream.context.client
    if client.alpn not in (b"h2", b"h3"):  # HTTP/1: this connection ends with the answer
        response.headers["Connection"] = "close"
    yield SendHttp(ResponseHeaders(stream.stream_id, response, False), client)
    if response.raw_content:
        yield SendHttp(ResponseData(stream.stream_id, response.raw_content), client)
    yield SendHttp(ResponseEndOfMessage(stream.stream_id), client)


# -- 2. no per-message type checks ------------------------------------------------------------


def startup_failed(master: Any) -> bool:
    """Whether an error was logged while mitmproxy started: its errorcheck addon is about
    to stop the process, so it must not be announced as listening (or a worker as ready)."""
    check = master.addons.get("errorcheck")
    return bool(check is not None and getattr(check.logger, "has_errored", None))


def skip_message_type_checks() -> None:
    """mitmproxy checks the type of every field of every HTTP request and response it builds
    (`MessageData.__post_init__`, a debugging aid that `python -O` would drop along with
    every assert): a tenth of the CPU of a plain HTTP request. The messages are mitmproxy's
    own parses and aiwarden's `Response.make` calls, whose types the tests pin down; the
    asserts stay. For `aiwarden run` only."""
    http.MessageData.__post_init__ = _no_check


def _no_check(self) -> None:
    return None


# -- 3. hooks only to the addons that have them -------------------------------------------------


class LeanAddonManager(addonmanager.AddonManager):
    """mitmproxy's addon manager, calling each hook only on the addons that have it.

    Stock mitmproxy walks every addon for every hook, through a generator, a context manager
    and a coroutine each, and walks them all again for an `update` hook after every flow
    hook: about a third of the CPU of a plain HTTP request through aiwarden. The addons of
    `aiwarden run` are fixed once it starts, so each hook's handlers are looked up once
    (again after any add or remove). An exception is handled as mitmproxy's safecall does:
    logged, and the next addon runs; the aiwarden addon decides its own errors before that.
    """

    def __init__(self, master) -> None:
        super().__init__(master)
        self._handlers: dict[str, list[Callable]] = {}

    def add(self, *addons) -> None:
        super().add(*addons)
        self._handlers.clear()

    def remove(self, addon) -> None:
        super().remove(addon)
        self._handlers.clear()

    def clear(self) -> None:
        super().clear()
        self._handlers.clear()

    def handlers(self, name: str) -> list[Callable]:
        found = self._handlers.get(name)
        if found is None:
            found = self._handlers[name] = [
                func
                for addon in addonmanager.traverse(self.chain)
                if callable(func := getattr(addon, name, None))
            ]
        return found

    async def trigger_event(self, event: hooks.Hook) -> None:
        handlers = self.handlers(event.name)
        if not handlers:
            return
        args = event.args()
        for func in handlers:
            try:
                result = func(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
            except exceptions.AddonHalt:
                return
            except exceptions.OptionsError:
                raise
            except Exception as e:
                addon_log.error(f"Addon error: {e}", exc_info=True)


# -- 4, 5. the event loop mitmproxy resolves, connects and listens with -------------------------


class GuardedLoop(asyncio.SelectorEventLoop):
    """An event loop whose getaddrinfo refuses names resolving to a denied destination.

    The gate checks names when a request is decided and again in server_connect, but
    mitmproxy then resolves the name once more to connect: a name that answers differently
    the second time (DNS rebinding, towards the metadata address or loopback) would get
    through. Every connection mitmproxy makes resolves through this method, so the gate
    checks the very answer it connects with. The refusal reads "aiwarden: ...", which the
    Upstream addon answers with its block response."""

    gate: Gate | None = None
    fastpath: FastPath | None = None
    parent: tuple[str, int] | None = None  # the parent proxy: the operator's, never refused

    async def create_server(self, protocol_factory, *args, **kwargs):
        """Listeners get the fast path for tunnels in front of mitmproxy (fastpath.py)."""
        if self.fastpath is not None:
            protocol_factory = self.fastpath.wrap(protocol_factory)
        return await super().create_server(protocol_factory, *args, **kwargs)

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        infos = await super().getaddrinfo(
            host, port, family=family, type=type, proto=proto, flags=flags
        )
        if self.gate is None or not isinstance(host, str):
            return infos
        if self.parent is not None and (host.lower(), int(port or 0)) == self.parent:
            return infos  # the parent proxy (--upstream-proxy) is configured, not requested
        return self.gate.check_resolved(host, int(port or 0), infos)


class SharedPortLoop(GuardedLoop):
    """A guarded loop whose servers bind with SO_REUSEPORT (mitmproxy opens its listener
    with a plain asyncio.start_server, which has no other way to ask for it)."""

    async def create_server(self, *args, **kwargs):
        kwargs.setdefault("reuse_port", True)
        return await super().create_server(*args, **kwargs)


# -- 6. every server name of a ClientHello ------------------------------------------------------


def sni_entries(hello: ClientHello) -> Iterator[tuple[int, bytes]]:
    """(name_type, name as sent) for every entry of every server_name extension of `hello`.
    mitmproxy's `ClientHello.sni` gives one name, and none when there are several or one
    is invalid; a decision must see them all, so this reads mitmproxy's own parse."""
    extensions = getattr(hello._client_hello, "extensions", None)
    for extension in extensions.extensions if extensions else ():
        if extension.type != 0x00:  # server_name
            continue
        for entry in extension.body.server_names:
            yield entry.name_type, entry.host_name


# -- 7. closing a connection from outside its layers ---------------------------------------------


def close_connection(master: Any, client: connection.Client, conn: connection.Connection) -> bool:
    """Close `conn` (the client itself, or one of its server connections) through the
    client's connection handler, which ends the flow on it as a peer's close would
    (mitmproxy 12.3 cannot kill a flow in transit). False when it is gone already."""
    proxyserver = master.addons.get("proxyserver")
    handler = proxyserver.connections.get(client.id) if proxyserver else None
    try:
        handler.close_connection(conn)
    except (AttributeError, KeyError):  # gone already
        return False
    return True


# -- 8. the layers next_layer chooses ---------------------------------------------------------

# layers that relay bytes as they come, with no HTTP or TLS hook to decide them
RAW_LAYERS = (layers.TCPLayer, layers.UDPLayer, layers.DNSLayer, layers.RawQuicLayer)


def ask_builtin_next_layer(master: Any, nextlayer: layer.NextLayer) -> None:
    """Under `mitmdump -s`, scripts come before mitmproxy's own next_layer addon: have it
    choose first, so that its choice can be checked."""
    if nextlayer.layer is None:
        builtin = master.addons.get("nextlayer")
        if builtin is not None:
            builtin.next_layer(nextlayer)


def is_raw_relay(nextlayer: layer.NextLayer) -> bool:
    """Whether mitmproxy chose to relay the bytes as they come, with no hook to see them."""
    return isinstance(nextlayer.layer, RAW_LAYERS)


def is_tcp_relay(nextlayer: layer.NextLayer) -> bool:
    """Whether the bytes go on as a TCP relay (what discovery counts as a tunnel)."""
    return isinstance(nextlayer.layer, layers.TCPLayer)


def read_as_tls(nextlayer: layer.NextLayer) -> None:
    """Have mitmproxy's TLS layers read the bytes, so that the ClientHello hook decides."""
    nextlayer.layer = layers.ServerTLSLayer(nextlayer.context)
    nextlayer.layer.child_layer = layers.ClientTLSLayer(nextlayer.context)


def read_as_http(nextlayer: layer.NextLayer) -> None:
    """Have mitmproxy's HTTP layer read the bytes, so that the request hooks decide."""
    nextlayer.layer = layers.HttpLayer(nextlayer.context, HTTPMode.transparent)


def refuse(nextlayer: layer.NextLayer, answer: bytes) -> None:
    """In place of the relay: send `answer`, close, and send nothing upstream."""
    nextlayer.layer = Refusal(nextlayer.context, answer)


class Refusal(layer.Layer):
    """Tells the client why, in the framing it spoke, and closes."""

    def __init__(self, context, answer: bytes) -> None:
        super().__init__(context)
        self.answer = answer

    def _handle_event(self, received: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(received, events.Start):
            if self.answer:
                yield commands.SendData(self.context.client, self.answer)
            yield commands.CloseConnection(self.context.client)


# -- 9. the parent proxy: mitmproxy's upstream mode ---------------------------------------------


def parent_proxy(client: connection.Client) -> tuple[str, tuple[str, int]] | None:
    """(scheme, address) of the parent proxy this client's connections go through (mitmproxy's
    upstream mode), or None when they go to their servers directly."""
    mode = getattr(client, "proxy_mode", None)
    if isinstance(mode, mode_specs.UpstreamMode):
        return mode.scheme, mode.address
    return None


def parent_of_modes(modes: Iterable[str]) -> tuple[str, tuple[str, int]] | None:
    """The parent proxy named by the `mode` option's first upstream spec, or None."""
    for spec in modes:
        mode = mode_specs.ProxyMode.parse(spec)
        if isinstance(mode, mode_specs.UpstreamMode):
            return mode.scheme, mode.address
    return None


def sink_directly(flow: http.HTTPFlow) -> None:
    """A flow about to be sent to the sink (answers.SINK) asks for a server connection of its
    own with no parent proxy, so that `server_connect` sees, and refuses, the sink itself:
    the parent is never asked to connect to it."""
    if flow.server_conn.via is not None:
        flow.server_conn = connection.Server(address=None)


# -- 10. TLS to the proxy itself: an HTTPS proxy ------------------------------------------------

PROXY_MODES = (modes.HttpProxy, modes.HttpUpstreamProxy)  # regular, and behind a parent


def is_tls_to_the_proxy(where: context.Context) -> bool:
    """Whether a ClientHello is the client's TLS to the proxy itself (it speaks proxy HTTP
    inside: a "secure web proxy"), not the TLS of a site inside a CONNECT tunnel. mitmproxy
    stacks a client's first TLS right under the proxy mode layer; a site's TLS comes after an
    HttpLayer, and has a server address (the CONNECT's)."""
    stack = where.layers
    client_tls = [x for x in stack if isinstance(x, layers.ClientTLSLayer)]
    return (
        len(stack) >= 2
        and isinstance(stack[0], PROXY_MODES)
        and len(client_tls) == 1
        and stack[1] is client_tls[0]
        and where.server.address is None
    )


def is_proxy_first_layer(nextlayer: layer.NextLayer) -> bool:
    """Whether this is the choice of what a client's first bytes to the proxy are (plain
    proxy HTTP or TLS to the proxy), directly under the proxy mode layer: nothing above it
    yet, or (mitmproxy's own next_layer chose first) only what that choice stacked."""
    stack = nextlayer.context.layers
    if not stack or not isinstance(stack[0], PROXY_MODES):
        return False
    return len(stack) == 1 or (nextlayer.layer is not None and stack[1] is nextlayer.layer)


def speak_http1_to_the_proxy(where: context.Context) -> None:
    """Have mitmproxy's tlsconfig select HTTP/1.1 in the client's TLS to the proxy: proxy
    requests inside are read as HTTP/1 (a browser offering h2 would otherwise get it)."""
    where.client.alpn = b"http/1.1"


def import_only_the_addons_used() -> None:
    """Reliance 11: the package of mitmproxy's addons, its `__init__` not run (see the top of
    this module). Called before anything imports mitmproxy.addons; a no-op after."""
    if "mitmproxy.addons" in sys.modules:
        return
    spec = importlib.util.find_spec("mitmproxy.addons")
    if spec is not None and spec.submodule_search_locations:
        sys.modules["mitmproxy.addons"] = importlib.util.module_from_spec(spec)
