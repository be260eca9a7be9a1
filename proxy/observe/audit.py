"""The audit log: one JSON line per block, redact and monitor decision, and the records of
discovery (proxy/mitm/discovery.py) and coaching, which carry an `event` field saying what
they are. `AuditTrail` hands each record to the file and to syslog (proxy/observe/syslog.py),
made into its line once, so both carry the same text.

Lines are queued on the event loop and written by a thread of their own, flushed one by one,
so a slow disk never stalls traffic and nothing is dropped under load. `reopen()` (on SIGHUP)
starts a new file after logrotate moved the old one; "-" writes to stdout for container log
collection. Each line is one write(2) to a file opened O_APPEND, so the workers of
`--workers N` share one file without interleaving lines. A line holds the decision and who
made the request, never prompt text, header values, credentials or query strings.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from proxy.observe.syslog import SyslogSender

if TYPE_CHECKING:
    from proxy.decide.verdict import Decision

logger = logging.getLogger("aiwarden")

FIELDS = (
    "ts",
    "id",
    "client",
    "user",
    "method",
    "host",
    "path",
    "service",
    "category",
    "country",
    "activity",
    "rule",
    "action",
    "stage",
    "redactions",
    "style",  # the LLM API style of an unlisted AI endpoint's request (unlisted_ai), else null
)


STDOUT = 1
MAX_FIELD_CHARS = 512  # a path or user longer than this is cut, marked with "..."


def new_reference() -> str:
    """A short id that ties what the user sees (a block page, an error) and the log line to
    the audit line."""
    return secrets.token_hex(6)


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


# -- the record, one format for the file and syslog -------------------------------------------


def decision_fields(record: dict) -> dict:
    """A decision's record: FIELDS in order, `ts` now unless given. Long strings are cut so a
    line stays under PIPE_BUF, the size a pipe (stdout in a container) writes atomically."""
    record.setdefault("ts", rfc3339(time.time()))
    return {k: _cut(record.get(k)) for k in FIELDS}


def decision_record(
    decision: Decision,
    reference: str,
    client: str,
    user: str | None,
    method: str,
    host: str,
    path: str | None,
    redactions: dict[str, int] | None = None,
) -> dict:
    """The record of a decision (proxy/decide/verdict.py's Decision) about one request or
    CONNECT: what the audit trail writes for it, whichever hook made it."""
    return {
        "id": reference, "client": client, "user": user, "method": method, "host": host,
        "path": path, "service": decision.service, "category": decision.category,
        "country": decision.country, "activity": decision.activity, "rule": decision.rule,
        "action": decision.action, "stage": decision.stage, "redactions": redactions,
        "style": decision.style,
    }  # fmt: skip


def event_fields(record: dict) -> dict:
    """A record that is not a decision, as it is after `ts`; its `event` field names its kind.
    The caller keeps it under PIPE_BUF."""
    return {"ts": rfc3339(time.time()), **record}


def json_line(fields: dict) -> str:
    """The record as the file's line and syslog's MSG: compact JSON, all ASCII."""
    return json.dumps(fields, separators=(",", ":"))


class AuditTrail:
    """Where audit records go: the JSON Lines file, syslog (proxy/observe/syslog.py), or both;
    each record is made into its line once and handed to each."""

    def __init__(self, file: AuditLog | None, syslog: SyslogSender | None) -> None:
        self.file = file
        self.syslog = syslog
        self._sinks = tuple(s for s in (file, syslog) if s is not None)

    @property
    def error(self) -> str | None:
        """Why the file cannot be written (the proxy is then not ready); None: fine."""
        return self.file.error if self.file is not None else None

    @property
    def syslog_error(self) -> str | None:
        """Why syslog is not reached (reported, but the proxy stays ready); None: fine."""
        return self.syslog.error if self.syslog is not None else None

    def write(self, record: dict) -> None:
        """One decision (cheap; called on the event loop)."""
        fields = decision_fields(record)
        line = json_line(fields)
        for sink in self._sinks:
            sink.put(fields, line)

    def write_event(self, record: dict) -> None:
        """One record that is not a decision (thread-safe); its `event` field names its kind."""
        fields = event_fields(record)
        line = json_line(fields)
        for sink in self._sinks:
            sink.put(fields, line)

    def reopen(self) -> None:
        for sink in self._sinks:
            sink.reopen()

    def close(self) -> None:
        """Write and send what is queued, then stop."""
        for sink in self._sinks:
            sink.close()


class AuditLog:
    def __init__(
        self,
        target: str,
        on_error: Callable[[], None] | None = None,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        """`on_error()` for each line lost; `on_health(ok)` when writing starts failing or
        works again."""
        self.target = target
        self.on_error = on_error or (lambda: None)
        self.on_health = on_health or (lambda ok: None)
        self.error: str | None = None  # why the last line could not be written; None: fine
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reopen = threading.Event()
        self._fd: int | None = None
        self._thread = threading.Thread(target=self._run, name="aiwarden-audit", daemon=True)
        self._thread.start()

    def write(self, record: dict) -> None:
        """Queue one decision (cheap; called on the event loop)."""
        fields = decision_fields(record)
        self.put(fields, json_line(fields))

    def write_event(self, record: dict) -> None:
        """Queue one record that is not a decision (thread-safe)."""
        fields = event_fields(record)
        self.put(fields, json_line(fields))

    def put(self, fields: dict, line: str) -> None:
        """Queue one record already made into its line (`json_line`)."""
        self._queue.put(line + "\n")

    def reopen(self) -> None:
        self._reopen.set()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                break
            self._write(line.encode())
        self._close()

    def _write(self, data: bytes) -> None:
        try:
            if self._reopen.is_set() or self._fd is None or self._replaced():
                self._reopen.clear()
                self._open()
            written = os.write(self._fd, data)
            if written != len(data):  # a full disk; the rest would start a broken line
                raise OSError(0, f"only {written} of {len(data)} bytes written")
        except OSError as e:
            self.on_error()
            self._close()  # try to open it again for the next line
            if self.error is None:  # logged once, not for every line while it lasts
                self.error = str(e.strerror or e)
                logger.error("audit log %s: cannot write: %s", self.target, self.error)
                self.on_health(False)
            return
        if self.error is not None:
            logger.warning("audit log %s: writing again after: %s", self.target, self.error)
            self.error = None
            self.on_health(True)

    def _replaced(self) -> bool:
        """Whether the file was removed or moved away without a SIGHUP (lines written to
        it now would be lost)."""
        if self.target == "-":
            return False
        try:
            ours, there = os.fstat(self._fd), os.stat(self.target)
        except OSError:
            return True
        return (ours.st_ino, ours.st_dev) != (there.st_ino, there.st_dev)

    def _open(self) -> None:
        self._close()
        if self.target == "-":
            self._fd = STDOUT
        else:
            self._fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def _close(self) -> None:
        if self._fd is not None and self._fd != STDOUT:
            os.close(self._fd)
        self._fd = None


def coaching_fields(
    outcome: str,
    client: str,
    user: str | None,
    target: str,
    rule: str,
    reference: str | None = None,
    until: float | None = None,
) -> dict:
    """The fields of a coaching event (proxy/mitm/coaching.py) in the audit and log lines;
    the audit line adds `event: coaching` and the justification."""
    return {
        "outcome": outcome, "id": reference, "client": client, "user": user or None,
        "service": target, "rule": rule, "until": rfc3339(until) if until is not None else None,
    }  # fmt: skip


def _cut(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        return value[: MAX_FIELD_CHARS - 3] + "..."
    return value
