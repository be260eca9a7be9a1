"""The audit log: one JSON line per block, redact and monitor decision.

Lines are queued on the event loop and written by a thread of their own, flushed one by one,
so a slow disk never stalls traffic and nothing is dropped under load. `reopen()` (on SIGHUP)
starts a new file after logrotate moved the old one; "-" writes to stdout for container log
collection. A line holds the decision and who made the request, never prompt text, header
values, credentials or query strings.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

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
    "activity",
    "rule",
    "action",
    "stage",
    "redactions",
)


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class AuditLog:
    def __init__(self, target: str, on_error: Callable[[], None] | None = None) -> None:
        self.target = target
        self.on_error = on_error or (lambda: None)
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reopen = threading.Event()
        self._file: IO[str] | None = None
        self._thread = threading.Thread(target=self._run, name="aiwarden-audit", daemon=True)
        self._thread.start()

    def write(self, record: dict) -> None:
        """Queue one record (cheap; called on the event loop)."""
        record.setdefault("ts", rfc3339(time.time()))
        line = json.dumps({k: record.get(k) for k in FIELDS}, separators=(",", ":"))
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
            self._write(line)
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()

    def _write(self, line: str) -> None:
        try:
            if self._reopen.is_set() or self._file is None:
                self._reopen.clear()
                self._open()
            self._file.write(line)
            self._file.flush()
        except OSError as e:
            self.on_error()
            logger.error("audit log %s: cannot write: %s", self.target, e.strerror or e)
            self._file = None  # try to open it again for the next line

    def _open(self) -> None:
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()
        if self.target == "-":
            self._file = sys.stdout
        else:
            self._file = open(self.target, "a", encoding="utf-8")  # noqa: SIM115
