"""The audit log: one JSON line per block, redact and monitor decision, and the records of
discovery (proxy/mitm/discovery.py), which carry an `event` field saying what they are.

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
        """Queue one record (cheap; called on the event loop). Long strings are cut so a line
        stays under PIPE_BUF, the size a pipe (stdout in a container) writes atomically."""
        record.setdefault("ts", rfc3339(time.time()))
        fields = {k: _cut(record.get(k)) for k in FIELDS}
        line = json.dumps(fields, separators=(",", ":"))
        self._queue.put(line + "\n")

    def write_event(self, record: dict) -> None:
        """Queue one record that is not a decision, as it is; its `event` field names its kind
        (thread-safe). The caller keeps it under PIPE_BUF."""
        line = json.dumps({"ts": rfc3339(time.time()), **record}, separators=(",", ":"))
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
