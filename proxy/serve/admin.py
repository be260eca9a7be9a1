"""The admin listener: /healthz, /readyz, /metrics, /ca.pem, /proxy.pac and /wpad.dat, and
POST /coaching/revoke.

A deliberately small HTTP/1.1 server on asyncio: GET and HEAD, one request per connection,
nothing from the request is echoed back. Its one POST ends coaching grants (all, or those of
`?user=`, `?client=`, `?service=`): it can only make the proxy stricter, so it needs no more
protection than the listener's own address. It listens on an address of its own, which the
proxy refuses to connect to, so it is never reachable through the proxy.

`AdminListener` is the server; what it reports comes from a `Backend`: the `AdminServer`
addon inside mitmproxy (one process), or the supervisor of `--workers N`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs

from mitmproxy import ctx, exceptions
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy import pac
from proxy.ca import PUBLIC_CERT
from proxy.decide.gate import Gate
from proxy.mitm.coaching import Coaching
from proxy.mitm.identity import Identity
from proxy.mitm.recording import Recorder
from proxy.options import declare
from proxy.policy.model import Policy

logger = logging.getLogger("aiwarden")

MAX_REQUEST_BYTES = 8192
READ_TIMEOUT = 5.0
TEXT = "text/plain; charset=utf-8"
Reply = tuple[int, str, bytes]
Handler = Callable[[dict[str, str]], Reply]  # request headers -> reply


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' to (host, port); ValueError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port out of range")
    return host.strip("[]"), int(port)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class PacSettings:
    proxies: tuple[str, ...] = ()  # empty: the proxy's own address
    mode: str = "all"
    bypass: tuple[str, ...] = ()
    spread: bool = False
    tls: bool = False  # TLS to the proxy is required: its own address is an HTTPS proxy


class Backend(Protocol):
    """What the admin listener reports on."""

    def health(self) -> tuple[bool, str]: ...
    def readiness(self) -> tuple[bool, str]: ...
    def metrics(self) -> bytes: ...
    def policy(self) -> Policy | None: ...
    def proxy_addresses(self) -> list[tuple[str, int]]: ...
    def pac_settings(self) -> PacSettings: ...
    def confdir(self) -> Path: ...
    def revoke_grants(self, user: str | None, client: str | None, service: str | None) -> int:
        """End coaching grants now; how many there were (runs in a thread)."""
        ...

    def push_address(self, address: str, user: str | None, ttl: int | None) -> dict:
        """Map a client address to a user (None: forget it), as an identity collector says;
        what the proxy will now believe (runs in a thread)."""
        ...


class AdminListener:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.address: tuple[str, int] | None = None  # where it listens, once running
        self._server: asyncio.Server | None = None
        self.routes: dict[str, Handler] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/ca.pem": self._ca_pem,
            "/metrics": self._metrics,
            "/proxy.pac": self._pac,
            "/wpad.dat": self._pac,
        }
        self.actions = {  # POST
            "/coaching/revoke": self._revoke,
            "/identity/addresses": self._push_address,
        }
        self._pac_cache: tuple[tuple, bytes] | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_BYTES)
        self.address = self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # -- endpoints ---------------------------------------------------------------------------

    def _healthz(self, _headers: dict[str, str]) -> Reply:
        alive, why = self.backend.health()
        return (200, TEXT, b"ok\n") if alive else (503, TEXT, f"unhealthy: {why}\n".encode())

    def _readyz(self, _headers: dict[str, str]) -> Reply:
        ready, why = self.backend.readiness()
        return (
            (200 if ready else 503),
            TEXT,
            f"{'ready' if ready else 'not ready'}: {why}\n".encode(),
        )

    def _metrics(self, _headers: dict[str, str]) -> Reply:
        return 200, CONTENT_TYPE_LATEST, self.backend.metrics()

    def _pac(self, headers: dict[str, str]) -> Reply:
        """The PAC file for the policy in force (made again when the policy changes)."""
        policy = self.backend.policy()
        if policy is None:
            return 503, TEXT, b"no policy loaded\n"
        settings = self.backend.pac_settings()
        proxies = list(settings.proxies) or self._advertised_proxies(headers)
        key = (policy.digest, tuple(proxies), settings)
        if self._pac_cache is None or self._pac_cache[0] != key:
            script = pac.render(policy, proxies, settings.mode, settings.bypass, settings.spread)
            self._pac_cache = (key, script.encode())
        return 200, pac.CONTENT_TYPE, self._pac_cache[1]

    def _advertised_proxies(self, headers: dict[str, str]) -> list[str]:
        """The proxy's own listen address; when it listens on every address, the name the
        client used to fetch this file, with the proxy's port; as an HTTPS proxy when
        TLS to it is required."""
        out = []
        scheme = "https://" if self.backend.pac_settings().tls else ""
        for host, port in self.backend.proxy_addresses():
            if host in ("0.0.0.0", "::", ""):
                host = headers.get("host", "127.0.0.1").rsplit(":", 1)[0].strip("[]")
            out.append(scheme + format_address(host, port))
        return out

    async def _revoke(self, query: dict[str, str]) -> Reply:
        which = {k: query.get(k) for k in ("user", "client", "service")}
        count = await asyncio.to_thread(self.backend.revoke_grants, **which)
        return 200, "application/json", json.dumps({"revoked": count}).encode() + b"\n"

    async def _push_address(self, query: dict[str, str]) -> Reply:
        address, user = query.get("address", ""), query.get("user") or None
        ttl = query.get("ttl_seconds")
        try:
            ipaddress.ip_address(address)
            seconds = int(ttl) if ttl else None
            if seconds is not None and not 60 <= seconds <= 7 * 86400:
                raise ValueError("ttl_seconds must be from 60 to 604800")
            if user is not None and (len(user) > 256 or any(c.isspace() for c in user)):
                raise ValueError("user must be one word of at most 256 characters")
        except ValueError as e:
            return 400, TEXT, f"bad request: {e}\n".encode()
        try:
            answer = await asyncio.to_thread(self.backend.push_address, address, user, seconds)
        except LookupError as e:
            return 409, TEXT, f"{e}\n".encode()
        return 200, "application/json", json.dumps(answer).encode() + b"\n"

    def _ca_pem(self, _headers: dict[str, str]) -> Reply:
        confdir = self.backend.confdir()
        for name in (PUBLIC_CERT, "mitmproxy-ca-cert.pem"):
            path = confdir / name
            if path.is_file():
                return 200, "application/x-pem-file", path.read_bytes()
        return 404, TEXT, b"no CA certificate in the confdir\n"

    # -- HTTP ----------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _version = request_line.split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (h.partition(":") for h in header_lines if h)
            }
            path, _, query = target.partition("?")
            if method == "POST" and path in self.actions:
                fields = {k: v[0] for k, v in parse_qs(query).items()}
                status, ctype, body = await self.actions[path](fields)
            else:
                status, ctype, body = self._respond(method, path, headers)
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
            ConnectionError,
        ):
            status, ctype, body = 400, TEXT, b"bad request\n"
            method = "GET"
        except Exception:
            logger.exception("admin request failed")
            status, ctype, body = 500, TEXT, b"internal error\n"
            method = "GET"
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            405: "Method Not Allowed",
            409: "Conflict",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }.get(status, "")
        head_out = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
            f"Connection: close\r\n\r\n"
        ).encode()
        try:
            writer.write(head_out + (b"" if method == "HEAD" else body))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _respond(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        handler = self.routes.get(path)
        if handler is None:
            return 404, TEXT, b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, TEXT, b"method not allowed\n"
        return handler(headers)


class AdminServer:
    """The admin listener as a mitmproxy addon, reporting on this process."""

    def __init__(
        self, gate: Gate, recorder: Recorder, coaching: Coaching, identity: Identity
    ) -> None:
        self.gate = gate  # the policy in force
        self.recorder = recorder  # the metrics and the audit log
        self.coaching = coaching  # its grants
        self.identity = identity  # the pushed address map
        self.listener = AdminListener(self)

    @property
    def address(self) -> tuple[str, int] | None:
        return self.listener.address

    def load(self, loader) -> None:
        declare(
            loader, "aiwarden_admin", "aiwarden_pac_proxy", "aiwarden_pac_mode",
            "aiwarden_pac_bypass", "aiwarden_pac_spread",
        )  # fmt: skip

    def configure(self, updated: set[str]) -> None:
        if "aiwarden_pac_mode" in updated and ctx.options.aiwarden_pac_mode not in pac.MODES:
            raise exceptions.OptionsError(f"aiwarden_pac_mode must be one of {pac.MODES}")
        if "aiwarden_pac_proxy" in updated:
            for proxy in ctx.options.aiwarden_pac_proxy:
                try:
                    pac.pac_entry(proxy)
                except ValueError as e:
                    raise exceptions.OptionsError(f"aiwarden_pac_proxy: {e}") from None
        if "aiwarden_admin" in updated and ctx.options.aiwarden_admin:
            try:
                parse_address(ctx.options.aiwarden_admin)
            except ValueError as e:
                raise exceptions.OptionsError(f"aiwarden_admin: {e}") from None

    async def running(self) -> None:
        if ctx.options.aiwarden_admin:
            await self.listener.start(*parse_address(ctx.options.aiwarden_admin))

    async def done(self) -> None:
        await self.listener.stop()

    # -- Backend -------------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """One process: alive while it answers."""
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """Ready to take traffic: a policy, a listener, and an audit log that is written. A
        syslog server that is not reached is said, but leaves the proxy ready: records wait
        for it, and one SIEM outage should not take every proxy out of service."""
        policy, audit = self.gate.policy, self.recorder.audit
        if policy is None or not self.proxy_addresses():
            return False, "policy or listener missing"
        if audit is not None and audit.error is not None:
            return False, f"the audit log cannot be written: {audit.error}"
        why = f"policy {policy.digest[:12]}, proxy listening"
        if audit is not None and audit.syslog_error is not None:  # reported; traffic goes on
            why += f"; audit syslog not reached: {audit.syslog_error}"
        return True, why

    def metrics(self) -> bytes:
        return generate_latest(self.recorder.metrics.registry)

    def policy(self) -> Policy | None:
        return self.gate.policy

    def proxy_addresses(self) -> list[tuple[str, int]]:
        proxyserver = ctx.master.addons.get("proxyserver")  # mitmproxy's
        return [(a[0], a[1]) for a in proxyserver.listen_addrs()] if proxyserver else []

    def pac_settings(self) -> PacSettings:
        o = ctx.options
        return PacSettings(
            tuple(o.aiwarden_pac_proxy),
            o.aiwarden_pac_mode,
            tuple(o.aiwarden_pac_bypass),
            o.aiwarden_pac_spread,
            getattr(o, "aiwarden_require_proxy_tls", False),
        )

    def confdir(self) -> Path:
        return Path(ctx.options.confdir).expanduser()

    def revoke_grants(self, user: str | None, client: str | None, service: str | None) -> int:
        return len(self.coaching.revoke(user=user, client=client, target=service))

    def push_address(self, address: str, user: str | None, ttl: int | None) -> dict:
        return self.identity.push(address, user, ttl)
