"""The admin listener: /healthz, /readyz, /metrics and /ca.pem (later /proxy.pac).

A deliberately small HTTP/1.1 server on asyncio: GET and HEAD, one request per connection,
nothing from the request is echoed back. It listens on an address of its own, which the
proxy refuses to connect to, so it is never reachable through the proxy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from mitmproxy import ctx, exceptions
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import pac
from .ca import PUBLIC_CERT

logger = logging.getLogger("aiwarden")

MAX_REQUEST_BYTES = 8192
READ_TIMEOUT = 5.0
Handler = Callable[[dict[str, str]], tuple[int, str, bytes]]  # request headers -> reply


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' to (host, port); ValueError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port out of range")
    return host.strip("[]"), int(port)


class AdminServer:
    def __init__(self) -> None:
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
        self._pac_cache: tuple[tuple, bytes] | None = None

    def load(self, loader) -> None:
        loader.add_option(
            "aiwarden_admin", str, "127.0.0.1:3129",
            "aiwarden admin listener HOST:PORT (/healthz, /readyz, /metrics, /ca.pem, "
            "/proxy.pac, /wpad.dat); empty: none.",
        )  # fmt: skip
        loader.add_option(
            "aiwarden_pac_proxy", Sequence[str], [],
            "Proxies the PAC file names (HOST:PORT, in failover order); default: this one.",
        )  # fmt: skip
        loader.add_option(
            "aiwarden_pac_mode",
            str,
            "all",
            "PAC mode: all (egress) or ai-only (monitor-first rollout).",
        )
        loader.add_option(
            "aiwarden_pac_bypass",
            Sequence[str],
            [],
            "Domains the PAC file sends DIRECT (never AI hosts).",
        )
        loader.add_option(
            "aiwarden_pac_spread",
            bool,
            False,
            "Rotate the PAC's proxies by a stable hash of the host.",
        )

    def configure(self, updated: set[str]) -> None:
        if "aiwarden_pac_mode" in updated and ctx.options.aiwarden_pac_mode not in pac.MODES:
            raise exceptions.OptionsError(f"aiwarden_pac_mode must be one of {pac.MODES}")
        if "aiwarden_admin" in updated and ctx.options.aiwarden_admin:
            try:
                parse_address(ctx.options.aiwarden_admin)
            except ValueError as e:
                raise exceptions.OptionsError(f"aiwarden_admin: {e}") from None

    async def running(self) -> None:
        if not ctx.options.aiwarden_admin:
            return
        host, port = parse_address(ctx.options.aiwarden_admin)
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_BYTES)
        self.address = self._server.sockets[0].getsockname()[:2]

    async def done(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- endpoints ---------------------------------------------------------------------------

    def _healthz(self, _headers: dict[str, str]) -> tuple[int, str, bytes]:
        return 200, "text/plain; charset=utf-8", b"ok\n"

    def _readyz(self, _headers: dict[str, str]) -> tuple[int, str, bytes]:
        warden = ctx.master.addons.get("aiwarden")
        if warden is not None and warden.ready:
            return 200, "text/plain; charset=utf-8", b"ready\n"
        return 503, "text/plain; charset=utf-8", b"not ready: policy or listener missing\n"

    def _metrics(self, _headers: dict[str, str]) -> tuple[int, str, bytes]:
        warden = ctx.master.addons.get("aiwarden")
        if warden is None:
            return 404, "text/plain; charset=utf-8", b"no aiwarden addon\n"
        return 200, CONTENT_TYPE_LATEST, generate_latest(warden.metrics.registry)

    def _pac(self, headers: dict[str, str]) -> tuple[int, str, bytes]:
        """The PAC file for the policy in force (made again when the policy changes)."""
        warden = ctx.master.addons.get("aiwarden")
        if warden is None or warden.engine is None:
            return 503, "text/plain; charset=utf-8", b"no policy loaded\n"
        o = ctx.options
        proxies = list(o.aiwarden_pac_proxy) or self._advertised_proxies(headers)
        key = (
            warden.engine.policy.digest,
            tuple(proxies),
            o.aiwarden_pac_mode,
            tuple(o.aiwarden_pac_bypass),
            o.aiwarden_pac_spread,
        )
        if self._pac_cache is None or self._pac_cache[0] != key:
            script = pac.render(
                warden.engine.policy,
                proxies,
                o.aiwarden_pac_mode,
                o.aiwarden_pac_bypass,
                o.aiwarden_pac_spread,
            )
            self._pac_cache = (key, script.encode())
        return 200, pac.CONTENT_TYPE, self._pac_cache[1]

    def _advertised_proxies(self, headers: dict[str, str]) -> list[str]:
        """The proxy's own listen address; when it listens on every address, the name the
        client used to fetch this file, with the proxy's port."""
        proxyserver = ctx.master.addons.get("proxyserver")
        out = []
        for host, port, *_ in proxyserver.listen_addrs() if proxyserver else ():
            if host in ("0.0.0.0", "::", ""):
                host = headers.get("host", "127.0.0.1").rsplit(":", 1)[0].strip("[]")
            out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return out

    def _ca_pem(self, _headers: dict[str, str]) -> tuple[int, str, bytes]:
        confdir = Path(ctx.options.confdir).expanduser()
        for name in (PUBLIC_CERT, "mitmproxy-ca-cert.pem"):
            path = confdir / name
            if path.is_file():
                return 200, "application/x-pem-file", path.read_bytes()
        return 404, "text/plain; charset=utf-8", b"no CA certificate in the confdir\n"

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
            status, ctype, body = self._respond(method, target.partition("?")[0], headers)
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
            ConnectionError,
        ):
            status, ctype, body = 400, "text/plain; charset=utf-8", b"bad request\n"
            method = "GET"
        except Exception:
            logger.exception("admin request failed")
            status, ctype, body = 500, "text/plain; charset=utf-8", b"internal error\n"
            method = "GET"
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            405: "Method Not Allowed",
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

    def _respond(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        handler = self.routes.get(path)
        if handler is None:
            return 404, "text/plain; charset=utf-8", b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n"
        return handler(headers)
