"""Discovery: what the proxy counts of the domains it relays, so that `aiwarden discover`
(proxy/observe/discover.py) can find AI services nobody has catalogued.

Per registrable domain (the Public Suffix List's: api.x.co.uk and www.x.co.uk are x.co.uk,
x.github.io and y.github.io are two; an IP address counts as itself), over a window of
`discovery.flush_seconds`:
- connections tunnelled, by the fast path (fastpath.py) or by mitmproxy (a TLS connection
  relayed undecrypted, or raw TCP toward a tunnel+allow destination);
- requests forwarded upstream, plain HTTP or inside an intercepted connection;
- bytes each way where the proxy knows them: every byte of a fast-path tunnel, the declared
  Content-Length of a forwarded request's and response's bodies (mitmproxy does not count
  the bytes of the tunnels it relays);
- first and last seen, distinct client addresses (exact up to CLIENTS_CAP, then "at least"),
  and the host names seen (the first HOSTS_CAP).
Never a path, query string, header or body. Blocked or refused traffic is not counted: it
reached nothing, and the audit log has its own line for it.

At the end of a window each domain becomes one audit line, `"event": "discovery"`, and the
window starts empty; with `--workers N` each worker writes its own. Memory is bounded: at
most `discovery.max_domains` domains a window; traffic to a further domain is counted under
"(other)", without hosts, and in aiwarden_discovery_overflow_total.

Counting costs a few dict and set operations per connection or request on the event loop
(the registrable domain of a host is remembered); the lines of a window are built and queued
by a thread. Settings follow the policy in force: a reload is applied at the next
connection, request or window end.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from functools import lru_cache

from mitmproxy import http, tls
from mitmproxy.proxy import layer

from proxy.decide.gate import Gate
from proxy.mitm import compat
from proxy.mitm.answers import SINK
from proxy.mitm.recording import Recorder
from proxy.mitm.state import STATE, decision_of, state_of
from proxy.observe.audit import AuditTrail, rfc3339
from proxy.observe.logs import event
from proxy.policy.model import DiscoverySettings, Policy
from proxy.policy.normalize import BadHost, is_ip, normalize_host

logger = logging.getLogger("aiwarden")

OTHER = "(other)"  # the domain of what was counted beyond max_domains
CLIENTS_CAP = 32  # distinct client addresses kept per domain and window
HOSTS_CAP = 10  # host names kept per domain and window


class Counts:
    """One domain's counts in one window."""

    __slots__ = (
        "bytes_down",
        "bytes_up",
        "clients",
        "clients_capped",
        "connections",
        "first",
        "hosts",
        "hosts_capped",
        "last",
        "requests",
    )

    def __init__(self, now: float) -> None:
        self.connections = self.requests = self.bytes_up = self.bytes_down = 0
        self.clients: set[str] = set()
        self.hosts: set[str] = set()
        self.clients_capped = self.hosts_capped = False
        self.first = self.last = now

    def record(self, now: float) -> dict:
        return {
            "hosts": sorted(self.hosts),
            "hosts_capped": self.hosts_capped,
            "connections": self.connections,
            "requests": self.requests,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "clients": len(self.clients),
            "clients_capped": self.clients_capped,
            "first_seen": rfc3339(self.first),
            "last_seen": rfc3339(self.last),
        }


class Window:
    def __init__(self, now: float) -> None:
        self.start = now
        self.domains: dict[str, Counts] = {}
        self.other: Counts | None = None


class Discovery:
    """The addon: counts what admission and enforcement let through (its hooks run after
    theirs), and what the fast path relays (which calls `tunnel` and `transferred`)."""

    def __init__(self, gate: Gate, recorder: Recorder) -> None:
        self.gate = gate  # the policy in force, whose discovery settings apply
        self.recorder = recorder  # the audit log discovery writes to, and metrics
        self.policy: Policy | None = None  # the policy whose settings are in force
        self.settings = DiscoverySettings()
        self.sample = 1.0
        self.window = Window(time.time())
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timer: asyncio.TimerHandle | None = None
        self._warned = False

    # -- lifecycle ---------------------------------------------------------------------------

    def running(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.recorder.before_close.append(self.close)  # the last window, before the log closes
        self._on()

    def close(self) -> None:
        """Write the window so far (on shutdown), here and now."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.flush(wait=True)

    def _on(self) -> bool:
        """Whether to count, after taking up the settings of a policy that changed."""
        policy = self.gate.policy
        if policy is None:
            return False
        if policy is not self.policy:
            self.apply(policy)
        return self.settings.mode != "off" and self.recorder.audit is not None

    def apply(self, policy: Policy) -> None:
        old, new = self.settings, policy.discovery
        self.policy, self.settings = policy, new
        self.sample = new.sample if new.mode == "sampled" else 1.0
        if new == old:
            return
        if new.mode == "off":
            self.flush()  # what was counted so far is not lost
        else:
            registrable_domain("example.com")  # reads the Public Suffix List once, now
            if self.recorder.audit is None and not self._warned:
                self._warned = True
                logger.warning("discovery is on, but there is no audit log to write it to")
        if new.mode == "off" or new.flush_seconds != old.flush_seconds or self.timer is None:
            self._arm()
        event("discovery_settings", mode=new.mode, sample=self.sample,
              flush_seconds=new.flush_seconds, max_domains=new.max_domains)  # fmt: skip

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.loop is not None and self.settings.mode != "off":
            self.timer = self.loop.call_later(self.settings.flush_seconds, self._tick)

    def _tick(self) -> None:
        self.timer = None
        try:
            if self._on():
                self.flush()
        except Exception:
            logger.exception("discovery: the window could not be written")
        if self.timer is None:
            self._arm()

    def flush(self, wait: bool = False) -> None:
        """End the window: its lines are built and queued by a thread (here, with `wait`)."""
        window, now = self.window, time.time()
        self.window = Window(now)
        self.recorder.metrics.discovery_domains.set(0)
        audit = self.recorder.audit
        if audit is None or not (window.domains or window.other):
            return
        if wait or self.loop is None:
            write_window(window, now, self.sample, audit)
        else:
            self.loop.run_in_executor(None, write_window, window, now, self.sample, audit)

    # -- counting ----------------------------------------------------------------------------

    def tunnel(self, host: str, client: str) -> str | None:
        """A connection relayed undecrypted to `host` (a canonical name or address); the
        domain it was counted under, for `transferred`, or None when it was not counted."""
        try:
            if not self._on() or (self.sample < 1.0 and random.random() >= self.sample):
                return None
            domain, counts = self._counts(host, client)
            counts.connections += 1
            return domain
        except Exception:  # counting never stands in the way of traffic
            logger.exception("discovery: a tunnel could not be counted")
            return None

    def forwarded(self, host: str, client: str, up: int) -> str | None:
        """A request forwarded to `host` with a body of `up` bytes (as far as known)."""
        try:
            if not self._on() or (self.sample < 1.0 and random.random() >= self.sample):
                return None
            domain, counts = self._counts(host, client)
            counts.requests += 1
            counts.bytes_up += up
            return domain
        except Exception:
            logger.exception("discovery: a request could not be counted")
            return None

    def transferred(self, domain: str, up: int, down: int) -> None:
        """Bytes of a connection or request counted before under `domain` (maybe in an
        earlier window: then they are this window's)."""
        try:
            window = self.window
            counts = window.domains.get(domain) if domain != OTHER else window.other
            if counts is None:
                counts = self._slot(domain, time.time())[1]
            counts.bytes_up += up
            counts.bytes_down += down
        except Exception:
            logger.exception("discovery: bytes could not be counted")

    def _counts(self, host: str, client: str) -> tuple[str, Counts]:
        now = time.time()
        domain, counts = self._slot(registrable_domain(host), now)
        counts.last = now
        if client not in counts.clients:
            if len(counts.clients) < CLIENTS_CAP:
                counts.clients.add(client)
            else:
                counts.clients_capped = True
        if domain != OTHER and host not in counts.hosts:
            if len(counts.hosts) < HOSTS_CAP:
                counts.hosts.add(host)
            else:
                counts.hosts_capped = True
        return domain, counts

    def _slot(self, domain: str, now: float) -> tuple[str, Counts]:
        window = self.window
        counts = window.domains.get(domain)
        if counts is not None:
            return domain, counts
        metrics = self.recorder.metrics
        if len(window.domains) >= self.settings.max_domains:
            metrics.discovery_overflow.inc()
            if window.other is None:
                window.other = Counts(now)
            return OTHER, window.other
        counts = window.domains[domain] = Counts(now)
        metrics.discovery_domains.inc()
        return domain, counts

    # -- hooks: what mitmproxy relays (after admission and enforcement decided) ------------

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        """A TLS connection mitmproxy relays undecrypted (admission said so)."""
        if not data.ignore_connection:
            return
        context = data.context
        name = data.client_hello.sni or (context.server.address or ("",))[0]
        self._tunnel_to(name, context.client.peername[0])

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """Raw TCP relayed toward a tunnel+allow destination (admission refuses it
        toward anything else, replacing the layer)."""
        if compat.is_tcp_relay(nextlayer) and nextlayer.context.server.address:
            context = nextlayer.context
            self._tunnel_to(context.server.address[0], context.client.peername[0])

    def _tunnel_to(self, name: str, client: str) -> None:
        try:
            host = normalize_host(name)
        except BadHost:
            return
        self.tunnel(host, client)

    def request(self, flow: http.HTTPFlow) -> None:
        """A request about to go upstream (or, streamed, gone): neither answered by aiwarden
        nor failed nor sent to the sink of a body blocked unread."""
        if flow.response or flow.error or decision_of(flow) is None:
            return
        request = flow.request
        if request.host == SINK[0]:  # a body blocked before it was read
            return
        try:
            host = normalize_host(request.pretty_host)
        except BadHost:
            return
        length = request.headers.get("content-length", "")
        up = int(length) if length.isdigit() else len(request.raw_content or b"")
        domain = self.forwarded(host, flow.client_conn.peername[0], up)
        if domain is not None:
            state_of(flow).counted = domain

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = flow.metadata.get(STATE)
        domain = state.counted if state is not None else None
        if domain is None:
            return
        length = flow.response.headers.get("content-length", "")
        if length.isdigit():
            self.transferred(domain, 0, int(length))


def write_window(window: Window, end: float, sample: float, audit: AuditTrail) -> None:
    """One audit line per domain of a finished window (run by a thread)."""
    try:
        _write_window(window, end, sample, audit)
    except Exception:
        logger.exception("discovery: the window could not be written")


def _write_window(window: Window, end: float, sample: float, audit: AuditTrail) -> None:
    common = {
        "window_start": rfc3339(window.start),
        "window_seconds": round(end - window.start, 3),
        "sample": sample,
    }
    items = list(window.domains.items())
    if window.other is not None:
        items.append((OTHER, window.other))
    for domain, counts in items:
        audit.write_event({"event": "discovery", "domain": domain, **counts.record(end), **common})


@lru_cache(maxsize=16384)
def registrable_domain(host: str) -> str:
    """The registrable domain of a canonical host (the Public Suffix List's, private
    suffixes included), or the host itself for an IP address or a public suffix."""
    if is_ip(host):
        return host
    return _suffixes().privatesuffix(host) or host


@lru_cache(maxsize=1)
def _suffixes():
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()  # the copy bundled with the package: no network
