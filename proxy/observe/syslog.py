"""The audit stream to syslog: every audit record as an RFC 5424 message over UDP (RFC 5426),
TCP (RFC 6587, octet counting) or TLS (RFC 5425), sent by a thread of its own.

The message is `<PRI>1 TIMESTAMP HOSTNAME aiwarden PROCID MSGID [origin ...][meta ...] MSG`:
MSG is the audit record's own JSON line (the same text the file gets), all ASCII, so a SIEM's
stock JSON parsing maps it; the structured data holds only SD-IDs IANA registered (`origin`,
`meta` with a sequenceId that shows what was lost on the way), since any other needs a private
enterprise number. MSGID is `decision` or the record's `event` (discovery, coaching).

It never stalls traffic: records wait in a bounded queue, and what does not fit is dropped and
counted; a TCP or TLS server that is away is tried again with a growing pause, and while it
is, the queue fills and then drops. One log line when sending starts failing and one when it
works again, however long it lasts. Messages carry what the audit record carries, never
prompt text, credentials or query strings.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from proxy import __version__

logger = logging.getLogger("aiwarden")

APP_NAME = "aiwarden"
SCHEMES = {"udp": 514, "tcp": 601, "tls": 6514}  # the IANA ports of RFC 5426, 6587 and 5425
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14,
    "clock": 15, **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
# severities (RFC 5424 6.2.1)
WARNING, NOTICE, INFO = 4, 5, 6
QUEUE_SIZE = 10_000  # records waiting while the server is slow or away; then dropped
CONNECT_TIMEOUT = 5.0
SEND_TIMEOUT = 5.0
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
NIL = "-"


# -- the message ------------------------------------------------------------------------------


def severity(fields: dict) -> int:
    """warning: a block; notice: a redaction, and a user who went on past a warning;
    info: everything else (monitor, discovery windows, the other coaching events)."""
    if fields.get("event") is None:
        action = fields.get("action")
        return WARNING if action == "block" else NOTICE if action == "redact" else INFO
    if fields.get("event") == "coaching" and fields.get("outcome") == "proceeded":
        return NOTICE
    return INFO


def facility_number(value: str) -> int:
    """A facility by name (`local0`, `audit`...) or number (0-23)."""
    value = value.strip().lower()
    if value in FACILITIES:
        return FACILITIES[value]
    if value.isdigit() and 0 <= int(value) <= 23:
        return int(value)
    raise ValueError(f"unknown syslog facility {value!r}: one of {', '.join(FACILITIES)} or 0-23")


def header_field(value: str | None, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most `limit` characters, or "-"."""
    kept = "".join(c for c in value or "" if 33 <= ord(c) <= 126)[:limit]
    return kept or NIL


def sd_value(value: str) -> str:
    """An SD-PARAM value with `"`, `\\` and `]` escaped (RFC 5424 6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def structured_data(elements: list[tuple[str, list[tuple[str, str]]]]) -> str:
    """`[id name="value" ...]...`, or "-" for none."""
    parts = []
    for sd_id, params in elements:
        pairs = "".join(f' {name}="{sd_value(value)}"' for name, value in params)
        parts.append(f"[{sd_id}{pairs}]")
    return "".join(parts) or NIL


def message(
    fields: dict,
    line: str,
    facility: int,
    hostname: str,
    procid: int | str,
    sequence: int,
) -> bytes:
    """One RFC 5424 message of an audit record: `fields` (the record) give PRI, TIMESTAMP and
    MSGID; `line` (its JSON, all ASCII) is MSG."""
    pri = facility * 8 + severity(fields)
    msgid = "decision" if fields.get("event") is None else str(fields["event"])
    sd = structured_data([
        ("origin", [("software", APP_NAME), ("swVersion", __version__)]),
        ("meta", [("sequenceId", str(sequence))]),
    ])  # fmt: skip
    head = " ".join((
        f"<{pri}>1", header_field(fields.get("ts"), 32), header_field(hostname, 255),
        APP_NAME, header_field(str(procid), 128), header_field(msgid, 32), sd,
    ))  # fmt: skip
    return f"{head} {line}".encode()


def octet_counted(msg: bytes) -> bytes:
    """TCP and TLS framing (RFC 6587 3.4.1, RFC 5425 4.3): the length, a space, the message."""
    return b"%d %s" % (len(msg), msg)


# -- where it goes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    scheme: str  # udp, tcp or tls
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_url(url: str) -> Destination:
    """`udp://host[:514]`, `tcp://host[:601]` or `tls://host[:6514]`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        raise ValueError(f"syslog {url!r}: the scheme must be one of udp://, tcp://, tls://")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"syslog {url!r}: give {parts.scheme}://HOST[:PORT] and nothing else")
    try:
        port = parts.port or SCHEMES[parts.scheme]
    except ValueError:
        raise ValueError(f"syslog {url!r}: the port must be a number of 1-65535") from None
    return Destination(parts.scheme, parts.hostname, port)


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verifies the server's certificate and name: with `ca_file`, or the system's roots."""
    return ssl.create_default_context(cafile=ca_file or None)


# -- the sender -------------------------------------------------------------------------------


class SyslogSender:
    """Sends audit records to one syslog server from a thread of its own."""

    def __init__(
        self,
        url: str,
        ca_file: str | None = None,
        facility: str = "local0",
        on_drop: Callable[[str], None] | None = None,
        on_health: Callable[[bool], None] | None = None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        """`on_drop(reason)` for each record lost (`queue_full`, `send_error`); `on_health(ok)`
        when sending starts failing or works again. Raises ValueError for a bad URL or
        facility, OSError for a CA file that cannot be read."""
        self.destination = parse_url(url)
        self.facility = facility_number(facility)
        self.context = tls_context(ca_file) if self.destination.scheme == "tls" else None
        self.on_drop = on_drop or (lambda reason: None)
        self.on_health = on_health or (lambda ok: None)
        self.error: str | None = None  # why the last message could not be sent; None: fine
        self.hostname = socket.gethostname()
        self.procid = os.getpid()
        self._sequence = 0
        self._queue: queue.Queue[tuple[dict, str] | None] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._sock: socket.socket | ssl.SSLSocket | None = None
        self._udp_sock: tuple[socket.socket, tuple] | None = None
        self._retry_at = 0.0  # TCP, TLS: when to try connecting again
        self._backoff = BACKOFF_FIRST
        self._thread = threading.Thread(target=self._run, name="aiwarden-syslog", daemon=True)
        self._thread.start()

    def put(self, fields: dict, line: str) -> None:
        """Queue one record (cheap, never blocks): its fields and its JSON line."""
        try:
            self._queue.put_nowait((fields, line))
        except queue.Full:
            self.on_drop("queue_full")

    def reopen(self) -> None:
        """SIGHUP: nothing to reopen (a connection that broke is made again by itself)."""

    def close(self, timeout: float = 3.0) -> None:
        """Send what is queued, for up to `timeout` seconds, then stop."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()  # a server still away: stop waiting for it
        self._thread.join(1.0)

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                break
            fields, line = item
            self._sequence = self._sequence % 2_147_483_647 + 1
            msg = message(fields, line, self.facility, self.hostname, self.procid, self._sequence)
            if not self._send(msg):
                self.on_drop("send_error")
        self._disconnect()
        while True:  # stopped with records still queued: lost, and counted
            try:
                if self._queue.get_nowait() is not None:
                    self.on_drop("send_error")
            except queue.Empty:
                break

    def _send(self, msg: bytes) -> bool:
        """One message, whether it was sent. UDP: one datagram, no retry (a lost datagram
        goes unnoticed, as UDP syslog does). TCP, TLS: octet counted; a connection the server
        closed is made again at once, one that cannot be made is tried again after a pause
        that grows to BACKOFF_MAX while the message waits (and the queue fills)."""
        if self.destination.scheme == "udp":
            try:
                sock, address = self._udp()
                sock.sendto(msg, address)
            except (OSError, UnicodeError) as e:
                self._disconnect()
                self._udp_sock = None
                self._failing(_reason(e))
                return False
            self._working()
            return True
        framed = octet_counted(msg)
        while not self._stop.is_set():
            reused = self._sock is not None and not _closed(self._sock)
            if not reused:
                self._disconnect()
                wait = self._retry_at - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
            try:
                sock = self._sock if reused else self._connect()
                sock.sendall(framed)
            except (OSError, ValueError, UnicodeError) as e:
                self._disconnect()
                if reused:
                    continue  # it broke since the last message: a new connection, at once
                self._failing(_reason(e))
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, BACKOFF_MAX)
                continue
            self._working()
            return True
        return False

    def _udp(self) -> tuple[socket.socket, tuple]:
        if self._udp_sock is None:
            d = self.destination
            family, kind, proto, _, address = socket.getaddrinfo(
                d.host, d.port, type=socket.SOCK_DGRAM
            )[0]
            self._disconnect()
            self._sock = socket.socket(family, kind, proto)
            self._udp_sock = (self._sock, address)
        return self._udp_sock

    def _connect(self) -> socket.socket:
        d = self.destination
        sock = socket.create_connection((d.host, d.port), timeout=CONNECT_TIMEOUT)
        try:
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=d.host)
            sock.settimeout(SEND_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._backoff = BACKOFF_FIRST
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError, ValueError):
                if isinstance(self._sock, ssl.SSLSocket):
                    self._sock.settimeout(1.0)
                    self._sock.unwrap()  # close_notify: the server sees a clean end
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None

    def _failing(self, reason: str) -> None:
        if self.error is None:  # logged once, not for every message while it lasts
            self.error = reason
            logger.error("audit syslog %s: cannot send: %s", self.destination, reason)
            self.on_health(False)

    def _working(self) -> None:
        if self.error is not None:
            logger.warning("audit syslog %s: sending again after: %s", self.destination, self.error)
            self.error = None
            self.on_health(True)


def _closed(sock: socket.socket) -> bool:
    """Whether a TCP or TLS server closed the connection (a syslog server sends nothing
    back); a send into a closed connection would be lost without an error."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False
    sock.setblocking(False)
    try:
        if isinstance(sock, ssl.SSLSocket):
            return sock.recv(1) == b""  # TLS 1.3 session tickets are read, not data
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        return False
    except (OSError, ValueError):
        return True
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(SEND_TIMEOUT)


def _reason(e: Exception) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate not verified: {e.verify_message}"
    if isinstance(e, OSError) and e.errno is not None:
        return e.strerror or errno.errorcode.get(e.errno, str(e))
    return str(e) or type(e).__name__
