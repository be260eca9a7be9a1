"""Where coaching keeps its tickets and grants: one SQLite file that every worker shares.

A warned request gets a ticket: an unguessable token bound to the client address (and user)
that was warned, the service and the rule. Following its link and proceeding turns the ticket
into a grant, once (the ticket is deleted in the same statement that reads it, so two workers
cannot both use it); the grant lets that user, or that address when nobody authenticated, use
that service under that rule until it expires.

Why SQLite rather than signed tokens: an SDK keeps no cookie, so a grant has to be found by
who is asking, server-side; and a grant must hold across workers and worker restarts, be
revocable at once and be used once only, which a token in the client's hands cannot be. SQLite
is in the standard library, several processes share one file safely (WAL), and a grant look-up
is one primary-key read (tens of microseconds), done on the event loop from a connection of its
own; every write runs in a thread.

The file holds live tokens and justifications: it is created 0600.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from proxy.shared_sqlite import SharedSQLite

TICKET_SECONDS = 10 * 60  # how long a warning's link can be followed
REUSE_MARGIN = 60  # a ticket with less left than this is not handed out again
MAX_JUSTIFICATION = 500  # characters kept of what the user wrote
DEFAULT_FILE = "aiwarden-coaching.sqlite3"  # in the proxy's confdir, unless an option says

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    token TEXT PRIMARY KEY,
    client TEXT NOT NULL,
    user TEXT NOT NULL,            -- '' when nobody authenticated
    target TEXT NOT NULL,          -- the service id, or the host for a request no service names
    rule TEXT NOT NULL,
    digest TEXT NOT NULL,          -- the rule's form when the ticket was issued
    reference TEXT NOT NULL,       -- the warning's reference, as in the audit log
    issued REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_by_who ON tickets (client, user, target, rule);
CREATE INDEX IF NOT EXISTS tickets_by_expiry ON tickets (expires);
CREATE TABLE IF NOT EXISTS grants (
    subject TEXT NOT NULL,         -- 'user:NAME', or 'client:ADDRESS' without authentication
    target TEXT NOT NULL,
    rule TEXT NOT NULL,
    digest TEXT NOT NULL,
    client TEXT NOT NULL,
    user TEXT NOT NULL,
    justification TEXT NOT NULL,
    granted REAL NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (subject, target, rule)
);
CREATE INDEX IF NOT EXISTS grants_by_expiry ON grants (expires);
"""


def subject_of(client: str, user: str | None) -> str:
    """Who a grant is for: the authenticated user, else the client address."""
    return f"user:{user}" if user else f"client:{client}"


def clean_justification(text: str) -> str:
    """What the user wrote, on one line, without control characters, cut to the limit."""
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())[:MAX_JUSTIFICATION]


@dataclass(frozen=True, slots=True)
class Ticket:
    token: str
    client: str
    user: str  # '' without authentication
    target: str
    rule: str
    digest: str
    reference: str
    issued: float
    expires: float

    def bound_to(self, client: str, user: str | None) -> bool:
        """Whether this client (and user) is the one that was warned."""
        return self.client == client and self.user == (user or "")


@dataclass(frozen=True, slots=True)
class Grant:
    subject: str
    target: str
    rule: str
    digest: str
    client: str
    user: str
    justification: str
    granted: float
    expires: float


class CoachingStore(SharedSQLite):
    """The shared file. Reads (`granted`, `ticket`) may run on the event loop; everything
    that writes is for a thread (it may wait for another process's write)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    # -- reads, cheap enough for the event loop -----------------------------------------------

    def granted(self, subject: str, target: str, rule: str, digest: str) -> float | None:
        """When the grant for this subject, target and rule (as the rule is now) expires;
        None when there is none in force."""
        row = self._reader.execute(
            "SELECT expires FROM grants WHERE subject=? AND target=? AND rule=? AND digest=?"
            " AND expires>?",
            (subject, target, rule, digest, time.time()),
        ).fetchone()
        return row[0] if row else None

    def ticket(self, token: str) -> Ticket | None:
        """The ticket with this token, if it is still to be used."""
        row = self._reader.execute(
            f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE token=? AND expires>?",
            (token, time.time()),
        ).fetchone()
        return Ticket(*row) if row else None

    def grants(self) -> list[Grant]:
        """Every grant in force, soonest to expire first."""
        rows = self._reader.execute(
            f"SELECT {_GRANT_COLUMNS} FROM grants WHERE expires>? ORDER BY expires",
            (time.time(),),
        ).fetchall()
        return [Grant(*row) for row in rows]

    # -- writes, in a thread --------------------------------------------------------------------

    def issue(
        self, client: str, user: str | None, target: str, rule: str, digest: str, reference: str
    ) -> tuple[Ticket, bool]:
        """The ticket for a warning, and whether it is new: one still open for the same
        client, user, target and rule is handed out again, so a page that warns on each of
        its requests leaves one ticket to follow, not dozens."""
        now = time.time()
        with self._write_lock:
            row = self._writer.execute(
                f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE client=? AND user=? AND target=?"
                " AND rule=? AND digest=? AND expires>? ORDER BY expires DESC LIMIT 1",
                (client, user or "", target, rule, digest, now + REUSE_MARGIN),
            ).fetchone()
            if row:
                return Ticket(*row), False
            ticket = Ticket(
                secrets.token_urlsafe(32), client, user or "", target, rule, digest,
                reference, now, now + TICKET_SECONDS,
            )  # fmt: skip
            self._writer.execute(
                f"INSERT INTO tickets ({_TICKET_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    ticket.token, ticket.client, ticket.user, ticket.target, ticket.rule,
                    ticket.digest, ticket.reference, ticket.issued, ticket.expires,
                ),
            )  # fmt: skip
            return ticket, True

    def use(self, token: str) -> Ticket | None:
        """Take a ticket out, once: None when it was used (or expired) already, by any
        worker."""
        with self._write_lock:
            row = self._writer.execute(
                f"DELETE FROM tickets WHERE token=? AND expires>? RETURNING {_TICKET_COLUMNS}",
                (token, time.time()),
            ).fetchone()
        return Ticket(*row) if row else None

    def grant(self, ticket: Ticket, ttl: int, justification: str) -> Grant:
        """Let the warned user (or address) use the ticket's target for `ttl` seconds."""
        now = time.time()
        grant = Grant(
            subject_of(ticket.client, ticket.user), ticket.target, ticket.rule, ticket.digest,
            ticket.client, ticket.user, clean_justification(justification), now, now + ttl,
        )  # fmt: skip
        with self._write_lock:
            self._writer.execute(
                f"INSERT OR REPLACE INTO grants ({_GRANT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    grant.subject, grant.target, grant.rule, grant.digest, grant.client,
                    grant.user, grant.justification, grant.granted, grant.expires,
                ),
            )  # fmt: skip
        return grant

    def revoke(
        self, user: str | None = None, client: str | None = None, target: str | None = None
    ) -> list[Grant]:
        """End grants now: all of them, or those of a user, a client address or a target."""
        where, args = [], []
        for column, value in (("user", user), ("client", client), ("target", target)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._write_lock:
            rows = self._writer.execute(
                f"DELETE FROM grants{clause} RETURNING {_GRANT_COLUMNS}", args
            ).fetchall()
        return [Grant(*row) for row in rows]

    def sweep(self) -> tuple[list[Ticket], list[Grant]]:
        """Remove the tickets nobody followed in time and the grants that ran out; each is
        returned to exactly one caller, whichever worker sweeps first."""
        now = time.time()
        with self._write_lock:
            tickets = self._writer.execute(
                f"DELETE FROM tickets WHERE expires<=? RETURNING {_TICKET_COLUMNS}", (now,)
            ).fetchall()
            grants = self._writer.execute(
                f"DELETE FROM grants WHERE expires<=? RETURNING {_GRANT_COLUMNS}", (now,)
            ).fetchall()
        return [Ticket(*row) for row in tickets], [Grant(*row) for row in grants]


_TICKET_COLUMNS = "token, client, user, target, rule, digest, reference, issued, expires"
_GRANT_COLUMNS = "subject, target, rule, digest, client, user, justification, granted, expires"


def store_path(option: str, confdir: str | Path) -> Path:
    """The store's file: the option's, else the default one in the proxy's confdir."""
    return Path(option).expanduser() if option else Path(confdir).expanduser() / DEFAULT_FILE
