"""Addresses mapped to users by an identity collector, shared by every worker: one SQLite file.

An identity collector (a domain-controller log reader, a VPN concentrator, a NAC) pushes
`address -> user` with an expiry to the admin listener; the policy's map file gives the
static ones. An address that changes hands too often (a shared terminal, NAT, DHCP churn) is
not believed for a while, as the commercial gateways do: its requests then carry no user,
and rules naming users do not match them.

Reads are one primary-key look-up, made once per client connection; writes come from the
admin listener, in a thread. Why SQLite: as for coaching grants (coach/store.py), every worker
must see a push at once, across restarts, without a server of its own.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

from proxy.policy.identity import AddressMap
from proxy.shared_sqlite import SharedSQLite

DEFAULT_FILE = "aiwarden-identity.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    address TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    expires REAL NOT NULL,
    quarantined_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS changes (address TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS changes_by_address ON changes (address, at);
"""


@dataclass(frozen=True, slots=True)
class Pushed:
    """What a push did: the user now mapped (None while the address is quarantined)."""

    user: str | None
    quarantined_until: float = 0.0


class AddressStore(SharedSQLite):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def user_at(self, address: str) -> str | None:
        """The user pushed for this address, unless expired or quarantined."""
        now = time.time()
        row = self._reader.execute(
            "SELECT user FROM users WHERE address=? AND expires>? AND quarantined_until<=?",
            (address, now, now),
        ).fetchone()
        return row[0] if row else None

    def push(
        self, address: str, user: str, ttl: int, max_changes: int, window: int, quarantine: int
    ) -> Pushed:
        """Map `address` to `user` for `ttl` seconds; a change of hands is counted, and more
        than `max_changes` within `window` seconds quarantines the address."""
        now = time.time()
        with self._write_lock:
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT user, expires, quarantined_until FROM users WHERE address=?",
                    (address,),
                ).fetchone()
                quarantined = row[2] if row else 0.0
                if row and row[0] != user and row[1] > now:  # changing hands
                    db.execute("INSERT INTO changes VALUES (?, ?)", (address, now))
                    db.execute("DELETE FROM changes WHERE at<=?", (now - window,))
                    (changes,) = db.execute(
                        "SELECT COUNT(*) FROM changes WHERE address=? AND at>?",
                        (address, now - window),
                    ).fetchone()
                    if changes > max_changes:
                        quarantined = now + quarantine
                db.execute(
                    "INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?)",
                    (address, user, now + ttl, quarantined),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return Pushed(None if quarantined > now else user, quarantined)

    def forget(self, address: str) -> bool:
        """Remove an address's user (a logoff)."""
        with self._write_lock:
            cursor = self._writer.execute("DELETE FROM users WHERE address=?", (address,))
        return cursor.rowcount > 0


def store_path(option: str, confdir: str | Path) -> Path:
    """The store's file: the option's, else the default one in the proxy's confdir."""
    return Path(option).expanduser() if option else Path(confdir).expanduser() / DEFAULT_FILE


def apply_push(
    store: AddressStore, amap: AddressMap | None, address: str, user: str | None, ttl: int | None
) -> dict:
    """An identity collector's push, as the admin listener answers it: what the proxy will
    now believe for the address (None while it is quarantined, or after a logoff)."""
    if amap is None:
        raise LookupError("the policy has no identity.address_map: nothing to push to")
    address = str(ipaddress.ip_address(address))
    if user is None:
        return {"address": address, "user": None, "forgotten": store.forget(address)}
    pushed = store.push(address, user, ttl or amap.ttl, amap.max_changes, amap.window,
                        amap.quarantine)  # fmt: skip
    answer: dict = {"address": address, "user": pushed.user}
    if pushed.quarantined_until:
        answer["quarantined_until"] = pushed.quarantined_until
    return answer
