"""The fast path for tunnels: a CONNECT that the policy relays undecrypted, relayed without
mitmproxy's per-connection machinery.

mitmproxy spends about 4 ms of CPU on every connection it relays (a connection handler, a
dozen hook dispatches through every addon, a stack of layers): most of the cost of a new
HTTPS connection to a non-AI host. So `aiwarden run` puts this in front of mitmproxy on its
listener: it reads a new client's first request head itself and, when that is a CONNECT
aiwarden would tunnel, relays it; anything else goes to mitmproxy exactly as it arrived.

It relays only when all of these hold, each asked of the gate (decide/gate.py) that the
addons ask too:
- the client's address is in `network.clients`, proxy authentication (Basic or Kerberos)
  is off and the request carries no Proxy-Authorization (users can decide rules: the
  authenticating addons must see them), and TLS to the proxy is not required;
- when the address map names the user and the policy looks groups up in a directory, the
  user's groups are in the cache within their ttl (a look-up would make the fast path wait:
  mitmproxy's hooks await it instead, and fill the cache for the user's next connections);
- the CONNECT host's decision is to tunnel, with action allow;
- the destination is not denied (`network.deny_destinations`, the proxy's own listeners);
- the first bytes in the tunnel are a TLS ClientHello (any record version, framing.py) every
  server name of which may be tunnelled too (`Gate.tunnel`: an AI host in the SNI of an
  allowed tunnel is domain fronting);
- the server connection opens, through the loop's guarded resolver (run.GuardedLoop), so a
  name that now resolves somewhere denied is refused.
As with connection_strategy=lazy, the server is connected to only after the ClientHello.
A client whose first bytes are a TLS handshake to the proxy itself (an HTTPS proxy,
mitm/proxy_tls.py) goes to mitmproxy at once, which terminates that TLS; the tunnels inside
are mitmproxy's to relay (the fast path reads plaintext only).
When one of the first three fails, mitmproxy gets the request instead (nothing has been
answered yet). When a later one fails, the client already holds its "200 Connection
established": mitmproxy gets the CONNECT and what followed, and its own 200 is not sent a
second time. mitmproxy then refuses, intercepts or reports the error as it always does.
An exception in the fast path hands the connection to mitmproxy the same way, or, once
bytes have been relayed, closes it: nothing fails open.

A relayed tunnel is counted for discovery (discovery.py) under its first TLS server name,
with the bytes it carried each way once it closes.

Behind a parent proxy (`--upstream-proxy`, mitmproxy's upstream mode) the tunnel is opened
with a CONNECT to the parent, with the parent's credentials (never the client's), once the
CONNECT is decided and its destination checked, and before the client is answered: the
client gets its 200 only when the parent answered 2xx, and otherwise a 502 that says what
the parent answered (or why it could not be reached), and the connection ends; nothing is
relayed. The ClientHello is then read and decided as above before any byte of the client's
reaches the parent; when it is not relayed (mitmproxy takes it), the tunnel through the
parent is closed having carried nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Callable

from mitmproxy import ctx, exceptions

from proxy.decide.gate import Gate
from proxy.decide.verdict import Decision, Mode
from proxy.mitm import compat, framing
from proxy.mitm.directory_groups import DirectoryGroups
from proxy.mitm.discovery import Discovery
from proxy.mitm.identity import Identity
from proxy.mitm.recording import Recorder
from proxy.mitm.upstream import format_address, parent_authorization, upstream_error_kind
from proxy.observe.audit import new_reference
from proxy.observe.logs import event
from proxy.options import declare
from proxy.policy.normalize import BadHost, normalize_host, parse_ip
from proxy.serve import proxyproto

logger = logging.getLogger("aiwarden")

MAX_CONNECT_HEAD = 8 * 1024  # a longer CONNECT request is mitmproxy's to answer
IDLE_TIMEOUT = 600.0  # as mitmproxy's tcp_timeout: an idle tunnel is closed
PARENT_TIMEOUT = 30.0  # for the parent proxy to answer the CONNECT (or --upstream-timeout)
MAX_PARENT_HEAD = 16 * 1024  # a longer answer to the CONNECT is refused
PARENT_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*")
# the host as a name or IPv4 address, or an IPv6 address in brackets; anything odder is
# mitmproxy's to judge
CONNECT_LINE = re.compile(
    rb"CONNECT ([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5}) (HTTP/1\.[01])\r\n"
)


class FastPath:
    """The addon side: options, and the state every fast-path connection reads."""

    def __init__(
        self,
        gate: Gate,
        recorder: Recorder,
        discovery: Discovery | None,
        identity: Identity | None = None,
        directory: DirectoryGroups | None = None,
    ) -> None:
        self.ports: frozenset[int] = frozenset()  # the proxy's listening ports
        self.enabled = False
        self.gate = gate
        self.recorder = recorder
        self.discovery = discovery  # counts the tunnels relayed
        self.identity = identity  # who a client address is (an address map), if anyone
        self.directory = directory  # that user's directory groups, when known without waiting
        self.header_timeout = 0
        self.parent: tuple[str, int] | None = None  # the parent proxy (upstream mode)
        self.parent_auth: str | None = None  # its Proxy-Authorization
        self.parent_timeout = PARENT_TIMEOUT  # for it to answer the CONNECT
        self.balancers: tuple = ()  # networks whose connections carry a PROXY header

    def load(self, loader) -> None:
        declare(loader, "aiwarden_fast_tunnels", "aiwarden_proxy_protocol_from")

    def configure(self, updated: set[str]) -> None:
        parent = compat.parent_of_modes(ctx.options.mode)
        self.parent = parent[1] if parent else None
        self.parent_auth = parent_authorization()
        authenticating = ctx.options.proxyauth or getattr(
            ctx.options, "aiwarden_kerberos_keytab", ""
        )  # each CONNECT must be authenticated: mitmproxy's hooks see it
        self.enabled = (
            ctx.options.aiwarden_fast_tunnels
            and not authenticating
            # plain CONNECTs are refused: mitmproxy's to answer (TLS ones are handed over)
            and not getattr(ctx.options, "aiwarden_require_proxy_tls", False)
            and (parent is None or parent[0] == "http")  # a TLS parent: mitmproxy's
        )
        self.header_timeout = getattr(ctx.options, "aiwarden_client_header_timeout", 0)
        upstream_timeout = getattr(ctx.options, "aiwarden_upstream_timeout", 0)
        self.parent_timeout = min(PARENT_TIMEOUT, upstream_timeout or PARENT_TIMEOUT)
        if "aiwarden_proxy_protocol_from" in updated:
            try:
                self.balancers = tuple(
                    ipaddress.ip_network(text, strict=False)
                    for text in ctx.options.aiwarden_proxy_protocol_from
                )
            except ValueError as e:
                raise exceptions.OptionsError(f"--proxy-protocol-from: {e}") from None

    def behind_balancer(self, peername) -> bool:
        """Whether a connection comes from a load balancer that sends a PROXY header."""
        if not self.balancers or not peername:
            return False
        ip = parse_ip(peername[0])
        return ip is not None and any(ip in net for net in self.balancers)

    def running(self) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        self.ports = frozenset(port for _, port, *_ in proxyserver.listen_addrs())

    def wrap(self, mitmproxy_factory: Callable[[], asyncio.Protocol]) -> Callable:
        """A listener's protocol factory with the fast path in front of mitmproxy's."""
        return lambda: FastConnection(self, mitmproxy_factory)


class FastConnection(asyncio.Protocol):
    """One client connection, from its first byte until it is relayed or handed over."""

    def __init__(self, fastpath: FastPath, mitmproxy_factory: Callable) -> None:
        self.fastpath = fastpath
        self.mitmproxy_factory = mitmproxy_factory
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.state = "head"  # head, checking, hello, connecting, relay, handed over, closed
        self.connect_head = b""
        self.upstream: Upstream | None = None
        self.header_timer: asyncio.TimerHandle | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.active = False  # bytes relayed since the last idle check
        self.eofs = 0  # directions the sender has closed
        self.counting = False  # counted in aiwarden_open_connections, until handed over
        self.name = ""  # the first TLS server name, else the CONNECT host
        self.peername: tuple | None = None  # the client: the socket's, or a PROXY header's
        self.relayed_for: tuple | None = None  # the client a PROXY header named, if any
        self.sent = self.received = 0  # bytes relayed, counted for discovery
        self.counted: str | None = None  # the domain discovery counted this tunnel under

    # -- the client, before the tunnel -----------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        sockname = transport.get_extra_info("sockname")
        fastpath = self.fastpath
        self.gate, self.recorder = fastpath.gate, fastpath.recorder
        self.peername = transport.get_extra_info("peername")
        if sockname and sockname[1] in fastpath.ports and fastpath.behind_balancer(self.peername):
            self.state = "proxy header"  # read first, whether or not the fast path is on
            self._arm_header_timer()
            return
        self._start()

    def _start(self) -> None:
        """Take the connection on, from its client's first request head."""
        sockname = self.transport.get_extra_info("sockname")
        fastpath = self.fastpath
        if not fastpath.enabled or fastpath.gate.policy is None or not sockname:
            return self.hand_over()  # switched off, or not listening yet
        if sockname[1] not in fastpath.ports:
            return self.hand_over()  # the admin listener
        self.client = self.peername[0]
        self.state = "head"
        self.counting = True
        self.recorder.metrics.open_connections.inc()
        self._arm_header_timer()
        if self.buffer:
            self._read_head()

    def data_received(self, data: bytes) -> None:
        if self.state == "relay":
            self.active = True
            self.sent += len(data)
            self.upstream.transport.write(data)
            return
        self.buffer += data
        try:
            if self.state == "proxy header":
                self._read_proxy_header()
            elif self.state == "head":
                self._read_head()
            elif self.state == "hello":
                self._read_hello()
        except Exception:
            logger.exception("fast path failed; handing the connection to mitmproxy")
            self._fail()

    def _read_proxy_header(self) -> None:
        """A load balancer's PROXY header: its source is the client from now on, for the
        fast path and for mitmproxy (which is handed a transport that says so)."""
        try:
            header = proxyproto.read_header(self.buffer)
        except proxyproto.NotProxyProtocol as e:
            reference = new_reference()
            self.recorder.bad_request("proxy_protocol", reference=reference,
                                      client=self.peername[0], detail=str(e))  # fmt: skip
            self._disarm_header_timer()
            self.state = "closed"
            self.transport.close()
            return
        if header is None:
            return
        self._disarm_header_timer()
        self.buffer = self.buffer[header.length :]
        if header.source is not None:
            self.peername = header.source
            self.relayed_for = header.source
        self._start()

    def _read_head(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_CONNECT_HEAD or not b"CONNECT ".startswith(self.buffer[:8]):
                self.hand_over()
            return
        head, rest = self.buffer[: end + 4], self.buffer[end + 4 :]
        match = CONNECT_LINE.match(head)
        if match is None or b"\nproxy-authorization:" in head.lower():
            return self.hand_over()
        try:
            host, port = normalize_host(match.group(1).decode("ascii")), int(match.group(2))
        except BadHost:
            return self.hand_over()
        decision = self._decide(host)
        if not 0 < port < 65536 or decision is None:
            return self.hand_over()
        self.decision = decision
        self.connect_head, self.buffer = head, rest
        self.host, self.port, self.http_version = host, port, match.group(3)
        self.state = "checking"
        looking_up = self.gate.when_checked(host, port, self._checked, self._check_failed)
        if looking_up is not None:  # a name not looked up lately: resolve it off the loop
            self.transport.pause_reading()
            asyncio.get_running_loop().create_task(looking_up)

    def _decide(self, *names: str) -> Decision | None:
        """The gate's decision to tunnel this client's connection claiming `names`, or
        None."""
        if not self.gate.client_allowed(self.client):
            return None
        identity = self.fastpath.identity
        if identity is None:
            return self.gate.tunnel(names, self.client, None)
        if identity.needs_mitmproxy(self.client):
            return None  # a downstream proxy's CONNECT says who it is in its headers
        who = identity.for_address(self.client)
        groups = who.groups
        directory = self.fastpath.directory
        if who.user and directory is not None:
            known = directory.fresh(who.user)
            if known is None:  # the groups need a look-up: mitmproxy's hooks await it
                return None
            groups = known | groups
        return self.gate.tunnel(names, self.client, who.user, groups)

    def _checked(self, reason: str | None) -> None:
        """The destination check's answer: mitmproxy refuses a denied one, with the reason."""
        if self.state != "checking":  # the client left, or its deadline passed
            return
        if reason is not None:
            return self.hand_over()
        if self.fastpath.parent is not None:
            self._disarm_header_timer()  # the parent's own deadline runs instead
            self.transport.pause_reading()  # until the client is answered
            asyncio.get_running_loop().create_task(self._through_parent(self.fastpath.parent))
            return
        if not self.transport.is_reading():
            self.transport.resume_reading()
        self._answer()

    def _check_failed(self, error: Exception) -> None:
        logger.error("fast path: destination check failed; handing over", exc_info=error)
        self._checked("the check failed")

    async def _through_parent(self, parent: tuple[str, int]) -> None:
        """Open the tunnel with a CONNECT to the parent proxy; the client gets its 200 only
        once the parent answered 2xx, else a 502 saying why, and nothing is relayed."""
        loop = asyncio.get_running_loop()
        upstream: Upstream | None = None
        authority = format_address((self.host, self.port))
        request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if self.fastpath.parent_auth:
            request += f"Proxy-Authorization: {self.fastpath.parent_auth}\r\n"
        try:
            async with asyncio.timeout(self.fastpath.parent_timeout):
                _, upstream = await loop.create_connection(
                    lambda: Upstream(self, handshake=True), *parent
                )
                upstream.transport.write(request.encode() + b"\r\n")
                head = await upstream.head
        except Exception as e:
            if upstream is not None:
                upstream.transport.close()
            if isinstance(e, TimeoutError):
                kind, why = "timeout", f"no answer in {self.fastpath.parent_timeout:g} s"
            else:
                kind, why = upstream_error_kind(str(e)), str(e) or type(e).__name__
            return self._parent_failed(parent, kind, why)
        if self.state != "checking":  # the client left meanwhile
            upstream.transport.close()
            return
        status = PARENT_STATUS.match(head)
        if status is None or not status.group(1).startswith(b"2"):
            upstream.transport.close()
            answer = status.group(0).decode("latin-1") if status else "no HTTP answer"
            return self._parent_failed(parent, "parent", f"it answered {answer}")
        logger.debug("fast path: tunnel to %s:%s open through the parent", self.host, self.port)
        self.upstream = upstream
        self.transport.resume_reading()
        self._answer()

    def _parent_failed(self, parent: tuple[str, int], kind: str, why: str) -> None:
        """The client's answer when the parent proxy did not open the tunnel: a 502 to its
        CONNECT (it has had no 200), counted, logged and audited like any upstream failure."""
        if self.state != "checking":
            return
        reference = new_reference()
        self.recorder.upstream_error(
            kind, reference, self.client, None, self.host, tunnel=True, status=502
        )
        body = (
            f"aiwarden could not open a tunnel to {format_address((self.host, self.port))} "
            f"through the parent proxy {format_address(parent)}: {why} "
            f"[reference {reference}]\n"
        ).encode("utf-8", "replace")
        self.transport.write(
            self.http_version + b" 502 Bad Gateway\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Cache-Control: no-store\r\n"
            + f"X-AIWarden-Reference: {reference}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body
        )
        self._close()

    def _answer(self) -> None:
        """200 to the CONNECT; as with connection_strategy=lazy, the server is connected to
        only once the ClientHello is read and allowed."""
        self.transport.write(self.http_version + b" 200 Connection established\r\n\r\n")
        self.state = "hello"
        self._arm_header_timer()
        if self.buffer:
            self._read_hello()

    def _read_hello(self) -> None:
        """The tunnel's first bytes: relay them when they are a ClientHello every server name
        of which may be tunnelled too; otherwise mitmproxy, and admission's checks of what it
        chooses, decide (plain HTTP in a tunnel, fronting, unknown framing)."""
        try:
            hello = framing.read_client_hello(self.buffer)  # as admission reads it
        except ValueError:
            return self.hand_over(answered=True)
        if hello is None:
            return  # not whole yet
        try:
            names = framing.server_names(hello)  # all of them: mitmproxy's .sni keeps one
        except BadHost:
            return self.hand_over(answered=True)  # admission intercepts; on_error decides
        # the CONNECT host again too, as admission does: the policy may have changed since
        decision = self._decide(self.host, *names)
        if decision is None:
            return self.hand_over(answered=True)
        self.decision = decision
        self.name = names[0] if names else self.host
        self._disarm_header_timer()
        if self.upstream is not None:  # the tunnel through the parent proxy is open
            return self._relay(self.upstream)
        self.state = "connecting"
        self.transport.pause_reading()
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:  # the loop's guarded resolver refuses a name that now resolves somewhere denied
            _, upstream = await loop.create_connection(lambda: Upstream(self), self.host, self.port)
        except Exception as e:
            logger.debug("fast path: %s:%s: %r; handing over", self.host, self.port, e)
            if self.state == "connecting":
                self.hand_over(answered=True)  # mitmproxy tries, and fails, its own way
            return
        if self.state != "connecting":  # the client left meanwhile
            upstream.transport.close()
            return
        self._relay(upstream)

    def _relay(self, upstream: Upstream) -> None:
        """Relay from now on: the bytes read so far first, then whatever comes."""
        self.upstream = upstream
        logger.debug("fast path: relaying %s:%s", self.host, self.port)
        self.recorder.decided(self.decision)
        self.recorder.connection(Mode.TUNNEL)
        if self.decision.audit:
            self.recorder.tunnel_audited(self.decision, self.client, None, self.host)
        self.state = "relay"
        if (discovery := self.fastpath.discovery) is not None:
            self.counted = discovery.tunnel(self.name, self.client)
        self._arm_idle_timer()
        data, self.buffer = self.buffer, b""
        self.sent += len(data)
        upstream.transport.write(data)
        if early := upstream.take_early():  # sent by the server before the relay began
            self.relay_from_upstream(early)
        if not upstream.transport.is_reading():
            upstream.transport.resume_reading()
        if not self.transport.is_reading():
            self.transport.resume_reading()

    # -- relaying --------------------------------------------------------------------------

    def relay_from_upstream(self, data: bytes) -> None:
        self.active = True
        self.received += len(data)
        self.transport.write(data)

    def eof_received(self) -> bool:
        return self.relay_eof(self.upstream.transport if self.state == "relay" else None)

    def relay_eof(self, to: asyncio.Transport | None) -> bool:
        """One side closed its sending half: pass it on; once both have, close."""
        self.eofs += 1
        if to is None or self.eofs == 2 or not to.can_write_eof():
            self._close()
            return False
        to.write_eof()
        return True  # half-closed: the other side may still send

    def pause_writing(self) -> None:  # the client reads slower than upstream sends
        if self.upstream is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == "handed over":
            return
        self._close()

    # -- endings ---------------------------------------------------------------------------

    def hand_over(self, answered: bool = False) -> None:
        """mitmproxy takes the connection with the bytes read so far. `answered`: the
        client has its 200 to the CONNECT already; mitmproxy's is not sent again."""
        if self.state in ("handed over", "closed"):
            return
        replay = self.connect_head + self.buffer
        if self.upstream is not None:  # a tunnel through the parent, unused: closed
            upstream, self.upstream = self.upstream, None
            upstream.transport.close()
        if self.counting:
            self.counting = False
            self.recorder.metrics.open_connections.dec()  # mitmproxy counts it from now on
        self._disarm_header_timer()
        self.state = "handed over"
        transport = self.transport
        if answered or self.relayed_for:
            transport = ClientTransport(self.transport, answered, self.relayed_for)
        protocol = self.mitmproxy_factory()
        self.transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if replay:
            protocol.data_received(replay)
        if not self.transport.is_reading():
            self.transport.resume_reading()

    def _fail(self) -> None:
        """An unexpected error while reading the head or the ClientHello (relaying raises
        nothing of ours): mitmproxy decides, after the 200 if it was sent."""
        self.hand_over(answered=self.state in ("hello", "connecting"))

    def _close(self) -> None:
        if self.state in ("closed", "handed over"):
            return
        self.state = "closed"
        self._disarm_header_timer()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        if self.counting:
            self.counting = False
            self.recorder.metrics.open_connections.dec()
        self.transport.close()
        if self.upstream is not None:
            self.upstream.transport.close()
        if self.counted is not None:
            self.fastpath.discovery.transferred(self.counted, self.sent, self.received)

    # -- timers ----------------------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        """The client's deadline for its request head, and again for its ClientHello (the
        Deadlines addon's `aiwarden_client_header_timeout`)."""
        self._disarm_header_timer()
        if timeout := self.fastpath.header_timeout:
            loop = asyncio.get_running_loop()
            self.header_timer = loop.call_later(timeout, self._client_too_slow)

    def _disarm_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _client_too_slow(self) -> None:
        self.header_timer = None
        self.recorder.metrics.bad_requests("header_timeout").inc()
        event("client_too_slow", client=self.client)
        self._close()

    def _arm_idle_timer(self) -> None:
        self.idle_timer = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self._idle_check)

    def _idle_check(self) -> None:
        """Every IDLE_TIMEOUT: close a tunnel that relayed nothing since the last check."""
        if self.state == "relay" and not self.active:
            return self._close()
        self.active = False
        self._arm_idle_timer()


class Upstream(asyncio.Protocol):
    """The server side of a fast-path tunnel. With `handshake`, a connection to the parent
    proxy: its answer to the CONNECT is read first, into `head`."""

    def __init__(self, client: FastConnection, handshake: bool = False) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.early = bytearray()  # what came before the relay began
        self.head: asyncio.Future[bytes] | None = None
        if handshake:
            self.head = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.client.state == "relay" and self.client.upstream is self:
            return self.client.relay_from_upstream(data)
        self.early += data
        if self.head is not None and not self.head.done():
            end = self.early.find(b"\r\n\r\n")
            if end >= 0:
                head, self.early = bytes(self.early[:end]), self.early[end + 4 :]
                self.head.set_result(head)
            elif len(self.early) > MAX_PARENT_HEAD:
                self.head.set_exception(ConnectionError("its answer to CONNECT is too long"))
        elif len(self.early) > MAX_PARENT_HEAD:  # the server talks first, and much: no
            self.transport.pause_reading()

    def take_early(self) -> bytes:
        early, self.early = bytes(self.early), bytearray()
        return early

    def _handshake_ended(self, why: str) -> bool:
        if self.head is not None and not self.head.done():
            self.head.set_exception(ConnectionError(why))
            return True
        return False

    def eof_received(self) -> bool:
        if self._handshake_ended("it closed the connection before answering"):
            return False
        relaying = self.client.state == "relay" and self.client.upstream is self
        return self.client.relay_eof(self.client.transport if relaying else None)

    def pause_writing(self) -> None:  # the server reads slower than the client sends
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._handshake_ended("it closed the connection before answering")
        if self.client.upstream is self:
            self.client._close()


class ClientTransport(asyncio.Transport):
    """The client's transport as mitmproxy sees it after a hand-over.
    - `answered` (a late hand-over): mitmproxy's answer to the replayed CONNECT is dropped
      (the client has one). Should mitmproxy answer anything but 2xx — the policy changed
      in between — the client's tunnel is closed.
    - `peername`: the client a load balancer's PROXY header named, which mitmproxy then
      takes for the client's address (its ACL, rules, logs)."""

    def __init__(
        self, transport: asyncio.Transport, answered: bool, peername: tuple | None = None
    ) -> None:
        super().__init__()
        self._transport = transport
        self._answer: bytes | None = b"" if answered else None
        self._peername = peername

    def write(self, data: bytes) -> None:
        if self._answer is None:
            return self._transport.write(data)
        self._answer += data
        end = self._answer.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = self._answer[:end], self._answer[end + 4 :]
        self._answer = None
        if not re.match(rb"HTTP/1\.[01] 2\d\d", head):
            self._transport.abort()
            return
        if rest:
            self._transport.write(rest)

    def writelines(self, chunks) -> None:
        for chunk in chunks:
            self.write(chunk)

    def get_extra_info(self, name, default=None):
        if name == "peername" and self._peername is not None:
            return self._peername
        return self._transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._transport.write_eof()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def set_protocol(self, protocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self):
        return self._transport.get_protocol()
