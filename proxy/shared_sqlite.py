"""One SQLite file that every worker process shares (coaching grants, the address map).

Created 0600: it holds live tokens and who sits at which address. WAL mode, so readers never
wait for a writer and a write by one worker is seen by the others at once. One connection
reads, on the event loop, with a short busy timeout (a primary-key read takes tens of
microseconds); the other writes, from threads, one write at a time, and may wait for another
process's write.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path


class SharedSQLite:
    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # never readable by others
        self._writer = self._connect(timeout=10.0)
        self._writer.executescript(schema)
        self._write_lock = threading.Lock()
        self._reader = self._connect(timeout=0.5)

    def _connect(self, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def close(self) -> None:
        self._reader.close()
        self._writer.close()
